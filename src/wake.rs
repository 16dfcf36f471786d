//! What the reconciler should look at next.
//!
//! Whoever learns that a job may have changed says so here: the API (a submit, a cancel), the
//! backends (a process exit, a watch event naming the job, an API server that came back). The
//! reconciler then reads just those jobs instead of rescanning every live one, which is what
//! keeps a status change to its record in the store well under a second with ten thousand jobs
//! running. A periodic full resync remains the safety net for anything not announced.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

use crate::domain::JobId;

#[derive(Default)]
pub struct Wake {
    pending: Mutex<Pending>,
    notify: Notify,
}

/// What has been announced since the reconciler last took it.
#[derive(Debug, Default, PartialEq)]
pub struct Pending {
    /// Jobs that may have changed.
    pub jobs: HashSet<JobId>,
    /// Waiting jobs may start (a submit, or capacity freed up).
    pub queue: bool,
    /// Anything may have changed (a watch relisted, the backend came back): look at every job.
    pub all: bool,
    /// When the first of these was announced: where the reconciler's lag starts.
    pub since: Option<Instant>,
}

impl Wake {
    /// A job may have changed.
    pub fn job(&self, id: JobId) {
        self.update(|p| {
            p.jobs.insert(id);
        });
    }

    /// A job was submitted or capacity freed up: waiting jobs may start.
    pub fn queue(&self) {
        self.update(|p| p.queue = true);
    }

    /// Anything may have changed.
    pub fn all(&self) {
        self.update(|p| p.all = true);
    }

    /// Resolves once something is announced (at once if something already is).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Takes everything announced so far.
    pub fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }

    fn update(&self, change: impl FnOnce(&mut Pending)) {
        let mut pending = self.lock();
        pending.since.get_or_insert_with(Instant::now);
        change(&mut pending);
        drop(pending);
        self.notify.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn announcements_accumulate_until_taken() {
        let wake = Wake::default();
        let id = JobId::generate();
        wake.job(id.clone());
        wake.job(id.clone());
        wake.queue();
        // A permit is stored: the reconciler does not miss what came while it was busy.
        wake.notified().await;
        let pending = wake.take();
        assert_eq!(pending.jobs, HashSet::from([id]));
        assert!(pending.queue && !pending.all);
        assert!(pending.since.is_some());
        assert_eq!(wake.take(), Pending::default());
    }
}
