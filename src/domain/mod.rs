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

pub use ids::{JobId, SessionId};
pub use job::{Attempt, Event, Job, NewEvent};
pub use jobspec::{JobSpec, SpecDefaults};
pub use namespace::{NamespacePolicy, NamespaceSpec};
pub use session::{Session, SessionEvent, SessionSpec, SessionState};
pub use state::{FailureClass, JobState};
