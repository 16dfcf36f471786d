//! Domain types: identifiers, the JobSpec and its validation, and the job state machine.
//!
//! Nothing here does I/O; everything is plain data with the rules that make it valid.

pub mod ids;
pub mod job;
pub mod jobspec;
pub mod names;
pub mod state;

pub use ids::JobId;
pub use job::{Attempt, Event, Job, NewEvent};
pub use jobspec::{JobSpec, SpecDefaults};
pub use state::{FailureClass, JobState};
