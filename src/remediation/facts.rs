//! [`Facts`]: everything known of a failed attempt, in the shape rules match on — gathered from
//! the backend's account of the end, the run record's evidence (pods, Events, the local exit),
//! the tails of the driver's and failed executors' logs, and the task ends of the event log.

use crate::domain::FailureClass;
use crate::history::RunSummary;
use crate::record::Evidence;

/// How much of the end of a log is kept for matching: where Spark writes why it stopped.
pub const LOG_TAIL_BYTES: usize = 256 * 1024;

/// What is known of one failed attempt.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The backend's coarse class (`timeout` when sk8 stopped it for its `timeoutSeconds`).
    pub backend_class: Option<FailureClass>,
    /// The backend's account of the end: the operator's state and message, the process's exit,
    /// or the API's refusal at submit.
    pub reason: String,
    /// The operator's final state (`SchedulingFailure`, `ExecutorsStartTimedOut`…), when the
    /// reason names one.
    pub operator_state: Option<String>,
    pub evidence: Evidence,
    /// The end of the driver's log.
    pub driver_log: String,
    /// The end of each failed executor's log, by pod.
    pub executor_logs: Vec<(String, String)>,
    /// Task ends from the event log, one line each: `ExceptionFailure java.lang.OutOfMemoryError`,
    /// `ExecutorLostFailure exit 52`, `FetchFailed`.
    pub task_ends: Vec<String>,
}

/// The operator states that end an application (Apache Spark Kubernetes Operator).
const OPERATOR_STATES: [&str; 6] = [
    "SchedulingFailure",
    "DriverStartTimedOut",
    "ExecutorsStartTimedOut",
    "DriverReadyTimedOut",
    "DriverEvicted",
    "Failed",
];

impl Facts {
    /// Facts from the backend's account alone (no record: a refusal at submit, a timeout).
    pub fn from_reason(backend_class: Option<FailureClass>, reason: &str) -> Self {
        Facts {
            backend_class,
            reason: reason.to_owned(),
            operator_state: operator_state(reason),
            ..Facts::default()
        }
    }

    /// Adds the task ends an event-log summary counted.
    pub fn with_summary(mut self, summary: &RunSummary) -> Self {
        // A task that failed in the driver's own JVM (local mode) is the driver's failure: its
        // exit code and log classify it, not the executor rules.
        self.task_ends = summary
            .tasks
            .failures
            .iter()
            .filter(|f| !f.on_driver)
            .map(|f| {
                let mut line = f.kind.clone();
                if let Some(class) = &f.class_name {
                    line = format!("{line} {class}");
                }
                if let Some(code) = f.exit_code {
                    line = format!("{line} exit {code}");
                }
                line
            })
            .collect();
        self
    }
}

/// The operator state a status message starts with or names (`Failed` only at the start:
/// it is too common a word).
fn operator_state(reason: &str) -> Option<String> {
    OPERATOR_STATES
        .iter()
        .find(|s| reason.contains(*s) && (**s != "Failed" || reason.starts_with("Failed")))
        .map(|s| (*s).to_owned())
}

/// The last `LOG_TAIL_BYTES` of `log`, as text (cut at a line start when it can be).
pub fn tail(log: &[u8]) -> String {
    let start = log.len().saturating_sub(LOG_TAIL_BYTES);
    let mut text = String::from_utf8_lossy(&log[start..]).into_owned();
    if start > 0
        && let Some(newline) = text.find('\n')
    {
        text.drain(..=newline);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_states_are_read_from_the_reason() {
        let facts = Facts::from_reason(
            None,
            "ExecutorsStartTimedOut: Executors did not start in time.",
        );
        assert_eq!(
            facts.operator_state.as_deref(),
            Some("ExecutorsStartTimedOut")
        );
        assert_eq!(operator_state("the task Failed twice"), None);
    }

    #[test]
    fn a_tail_starts_at_a_line() {
        let mut log = vec![b'x'; LOG_TAIL_BYTES];
        log.extend_from_slice(b"\nlast line\n");
        assert_eq!(tail(&log), "last line\n");
        assert_eq!(tail(b"short\n"), "short\n");
    }
}
