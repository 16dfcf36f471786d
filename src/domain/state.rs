//! The job state machine, independent of any backend.
//!
//! `QUEUED → SUBMITTED → RUNNING → SUCCEEDED | FAILED | CANCELLED`, with `RETRYING` between
//! attempts and `CANCELLING` while a cancel of a live attempt is in flight.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Queued,
    Submitted,
    Running,
    Retrying,
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Submitted,
        JobState::Running,
        JobState::Retrying,
        JobState::Cancelling,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Submitted => "SUBMITTED",
            JobState::Running => "RUNNING",
            JobState::Retrying => "RETRYING",
            JobState::Cancelling => "CANCELLING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
        }
    }

    /// Parses the wire/store form, case-insensitively (CLI users type `--state running`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// States in which an attempt may be alive in a backend.
    pub fn has_live_attempt(self) -> bool {
        matches!(
            self,
            JobState::Submitted | JobState::Running | JobState::Cancelling
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an attempt failed; decides whether another attempt can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The Spark application itself failed (non-zero exit, exception): retried per policy.
    Application,
    /// The platform lost the attempt (process vanished, node gone): retried per policy.
    Infrastructure,
    /// The job cannot run as specified (no Spark installed, missing file): never retried.
    Configuration,
    /// The job ran past `timeoutSeconds`: never retried.
    Timeout,
    /// The cluster could not place the driver or executors in time (quota, no node fits):
    /// retried per policy, since capacity may free up.
    Scheduling,
    /// The driver was killed for exceeding its memory: never retried, the same size would fail
    /// again; raise `driver.memory`.
    OutOfMemory,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Application => "application",
            FailureClass::Infrastructure => "infrastructure",
            FailureClass::Configuration => "configuration",
            FailureClass::Timeout => "timeout",
            FailureClass::Scheduling => "scheduling",
            FailureClass::OutOfMemory => "out_of_memory",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            FailureClass::Application,
            FailureClass::Infrastructure,
            FailureClass::Configuration,
            FailureClass::Timeout,
            FailureClass::Scheduling,
            FailureClass::OutOfMemory,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureClass::Application | FailureClass::Infrastructure | FailureClass::Scheduling
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
            assert_eq!(JobState::parse(&state.as_str().to_lowercase()), Some(state));
        }
        assert_eq!(JobState::parse("DONE"), None);
    }

    #[test]
    fn only_final_states_are_terminal() {
        let terminal: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [JobState::Succeeded, JobState::Failed, JobState::Cancelled]
        );
    }
}
