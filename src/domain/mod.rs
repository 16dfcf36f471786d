//! Domain types: identifiers, the JobSpec and its validation, the job state machine,
//! sessions, and team namespaces (with Kubernetes quantities).
//!
//! Nothing here does I/O; everything is plain data with the rules that make it valid.

pub mod ids;
pub mod job;
pub mod jobspec;
pub mod names;
pub mod namespace;
pub mod quantity;
pub mod session;
pub mod state;
pub mod violations;

pub use ids::{JobId, SessionId};
pub use job::{Attempt, Event, Job, NewEvent};
pub use jobspec::{JobSpec, SpecDefaults};
pub use namespace::{NamespacePolicy, NamespaceSpec};
pub use session::{Session, SessionEvent, SessionSpec, SessionState};
pub use state::{FailureClass, JobState};

/// The current time as the store keeps it, to the millisecond: an object the API returns at
/// once (a submitted job, a created session) reads the same when it is read back.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(3)
}

#[cfg(test)]
mod now_tests {
    #[test]
    fn now_is_whole_milliseconds() {
        assert_eq!(super::now().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
