//! Which sessions have RPCs in flight through this gateway, and when each was last used: a
//! session is idle only when no RPC is in flight, however long ago the last one began (a long
//! query is one RPC). The session reconciler writes the marks to the store once per pass, so
//! RPCs cost no store write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::domain::SessionId;

#[derive(Default)]
pub struct Activity {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    in_flight: HashMap<SessionId, usize>,
    /// When each session last began or ended an RPC, since the last [`Activity::take_used`].
    used: HashMap<SessionId, DateTime<Utc>>,
}

/// One RPC in flight; dropping it ends it.
pub struct Busy {
    activity: Arc<Activity>,
    session: SessionId,
}

impl Activity {
    /// Marks an RPC for `session` as in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>, session: &SessionId) -> Busy {
        let mut state = self.lock();
        *state.in_flight.entry(session.clone()).or_default() += 1;
        state.used.insert(session.clone(), Utc::now());
        drop(state);
        metrics::gauge!("sk8_gateway_active_streams").increment(1.0);
        Busy {
            activity: self.clone(),
            session: session.clone(),
        }
    }

    /// Whether any RPC for the session is in flight here.
    pub fn busy(&self, session: &SessionId) -> bool {
        self.lock().in_flight.contains_key(session)
    }

    /// When each session was last used: now for those with RPCs in flight, else when their
    /// last RPC began or ended. Takes the marks of finished RPCs.
    pub fn take_used(&self) -> Vec<(SessionId, DateTime<Utc>)> {
        let mut state = self.lock();
        let now = Utc::now();
        let mut used: Vec<_> = state.used.drain().collect();
        used.extend(state.in_flight.keys().map(|id| (id.clone(), now)));
        used
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.activity.lock();
        state.used.insert(self.session.clone(), Utc::now());
        if let Some(count) = state.in_flight.get_mut(&self.session) {
            *count -= 1;
            if *count == 0 {
                state.in_flight.remove(&self.session);
            }
        }
        metrics::gauge!("sk8_gateway_active_streams").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_busy_until_its_last_rpc_ends() {
        let activity = Arc::new(Activity::default());
        let id = SessionId::generate();
        let first = activity.begin(&id);
        let second = activity.begin(&id);
        drop(first);
        assert!(activity.busy(&id));
        assert_eq!(
            activity.take_used().len(),
            2,
            "a mark, and one for the RPC in flight"
        );
        drop(second);
        assert!(!activity.busy(&id));
        assert_eq!(activity.take_used().len(), 1, "the end of the last RPC");
        assert!(activity.take_used().is_empty());
    }
}
