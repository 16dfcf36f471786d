//! Which sessions have RPCs in flight through this gateway: a session is idle only when none
//! is, however long ago the last one began (a long query is one RPC).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::SessionId;

#[derive(Default)]
pub struct Activity {
    in_flight: Mutex<HashMap<SessionId, usize>>,
}

/// One RPC in flight; dropping it ends it.
pub struct Busy {
    activity: Arc<Activity>,
    session: SessionId,
}

impl Activity {
    /// Marks an RPC for `session` as in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>, session: &SessionId) -> Busy {
        *self.lock().entry(session.clone()).or_default() += 1;
        metrics::gauge!("sk8_gateway_active_streams").increment(1.0);
        Busy {
            activity: self.clone(),
            session: session.clone(),
        }
    }

    /// Whether any RPC for the session is in flight here.
    pub fn busy(&self, session: &SessionId) -> bool {
        self.lock().contains_key(session)
    }

    /// The sessions with RPCs in flight here.
    pub fn busy_sessions(&self) -> Vec<SessionId> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, usize>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut in_flight = self.activity.lock();
        if let Some(count) = in_flight.get_mut(&self.session) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.session);
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
        drop(second);
        assert!(!activity.busy(&id));
        assert!(activity.busy_sessions().is_empty());
    }
}
