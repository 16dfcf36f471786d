//! SparkApplication `status` → what sk8 observes of the attempt.
//!
//! The operator reports `status.currentState.currentStateSummary`. Its final summaries
//! (`ResourceReleased`, `TerminatedWithoutReleaseResources`) say only that the application is
//! over, not how it ended: the outcome is the last non-final entry of
//! `status.stateTransitionHistory`, whose keys are "0", "1", … and must be ordered numerically
//! ("10" comes after "9").

use serde_json::Value;

use super::render::CONNECT_PORT;
use crate::backend::{AttemptStatus, ServerStatus};
use crate::domain::FailureClass;

/// Where a summary leaves the attempt.
enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed(FailureClass),
    /// Over, outcome in the history.
    Released,
}

fn phase(summary: &str) -> Phase {
    match summary {
        "Submitted" | "ScheduledToRestart" | "DriverRequested" | "DriverStarted" => Phase::Pending,
        "DriverReady"
        | "InitializedBelowThresholdExecutors"
        | "RunningHealthy"
        | "RunningWithBelowThresholdExecutors"
        | "RunningWithPartialCapacity" => Phase::Running,
        "Succeeded" => Phase::Succeeded,
        "Failed" => Phase::Failed(FailureClass::Application),
        "SchedulingFailure" | "DriverStartTimedOut" | "ExecutorsStartTimedOut" => {
            Phase::Failed(FailureClass::Scheduling)
        }
        "DriverReadyTimedOut" | "DriverEvicted" => Phase::Failed(FailureClass::Infrastructure),
        "ResourceReleased" | "TerminatedWithoutReleaseResources" => Phase::Released,
        // A summary newer than this code: keep waiting rather than guess an outcome.
        _ => Phase::Pending,
    }
}

/// The attempt's status as the operator reports it.
pub fn attempt_status(status: &Value) -> AttemptStatus {
    let current = &status["currentState"];
    let Some(summary) = current["currentStateSummary"].as_str() else {
        return AttemptStatus::Pending {
            detail: "created; the Spark operator has not picked it up yet".into(),
        };
    };
    match phase(summary) {
        Phase::Released => outcome_from_history(status, summary),
        other => status_of(other, summary, current),
    }
}

/// A session's Spark Connect server as the operator reports it: serving once the driver is
/// ready (its readiness probe on the Connect port passed) at its pod IP.
pub fn server_status(status: &Value) -> ServerStatus {
    let ended = |reason| ServerStatus::Ended {
        reason,
        stopped_by_sk8: false,
    };
    match attempt_status(status) {
        AttemptStatus::Pending { detail } => ServerStatus::Starting { detail },
        AttemptStatus::Running { detail, .. } => match driver_ip(status) {
            Some(ip) => ServerStatus::Ready {
                endpoint: format!("{ip}:{CONNECT_PORT}"),
            },
            None => ServerStatus::Starting {
                detail: format!("{detail}; the driver pod has no IP yet"),
            },
        },
        AttemptStatus::Succeeded { detail } => {
            ended(format!("the Spark Connect server exited: {detail}"))
        }
        AttemptStatus::Failed { reason, .. } => ended(reason),
    }
}

/// The driver pod's IP as the operator last observed it.
pub fn driver_ip(status: &Value) -> Option<&str> {
    status["currentState"]["lastObservedDriverStatus"]["podIP"].as_str()
}

fn status_of(phase: Phase, summary: &str, state: &Value) -> AttemptStatus {
    let detail = describe(summary, state);
    match phase {
        Phase::Pending | Phase::Released => AttemptStatus::Pending { detail },
        Phase::Running => AttemptStatus::Running {
            spark_ui_url: None,
            detail,
        },
        Phase::Succeeded => AttemptStatus::Succeeded { detail },
        Phase::Failed(class) => failed(class, detail, state),
    }
}

/// A failure; a driver killed for its memory is told apart from an application error.
fn failed(class: FailureClass, detail: String, state: &Value) -> AttemptStatus {
    if oom_killed(&state["lastObservedDriverStatus"]) {
        return AttemptStatus::Failed {
            class: FailureClass::OutOfMemory,
            reason: format!("the driver was OOMKilled (raise driver.memory): {detail}"),
        };
    }
    AttemptStatus::Failed {
        class,
        reason: detail,
    }
}

fn oom_killed(driver: &Value) -> bool {
    driver["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["state"]["terminated"]["reason"] == "OOMKilled"
                || c["lastState"]["terminated"]["reason"] == "OOMKilled"
        })
}

/// Resolves a final summary from the last entry before it that says how the attempt ended.
fn outcome_from_history(status: &Value, final_summary: &str) -> AttemptStatus {
    let outcome = history(status).into_iter().rev().find_map(|entry| {
        let summary = entry["currentStateSummary"].as_str()?;
        match phase(summary) {
            Phase::Succeeded => Some(status_of(Phase::Succeeded, summary, entry)),
            Phase::Failed(class) => Some(status_of(Phase::Failed(class), summary, entry)),
            _ => None,
        }
    });
    outcome.unwrap_or_else(|| AttemptStatus::Failed {
        class: FailureClass::Infrastructure,
        reason: format!(
            "the application ended ({final_summary}) without recording success or failure"
        ),
    })
}

/// `stateTransitionHistory` entries in numeric key order.
fn history(status: &Value) -> Vec<&Value> {
    let Some(entries) = status["stateTransitionHistory"].as_object() else {
        return Vec::new();
    };
    let mut numbered: Vec<(u64, &Value)> = entries
        .iter()
        .filter_map(|(key, entry)| Some((key.parse().ok()?, entry)))
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    numbered.into_iter().map(|(_, entry)| entry).collect()
}

fn describe(summary: &str, state: &Value) -> String {
    match state["message"].as_str().filter(|m| !m.is_empty()) {
        Some(message) => format!("{summary}: {message}"),
        None => summary.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn released_after(entries: &[(&str, &str)]) -> Value {
        let mut history = serde_json::Map::new();
        for (i, (summary, message)) in entries.iter().enumerate() {
            history.insert(
                i.to_string(),
                json!({"currentStateSummary": summary, "message": message}),
            );
        }
        let last = entries.len().to_string();
        history.insert(last, json!({"currentStateSummary": "ResourceReleased"}));
        json!({
            "currentState": {"currentStateSummary": "ResourceReleased"},
            "stateTransitionHistory": history,
        })
    }

    #[test]
    fn no_status_yet_is_pending() {
        assert!(matches!(
            attempt_status(&json!(null)),
            AttemptStatus::Pending { .. }
        ));
    }

    #[test]
    fn live_summaries_map_to_pending_and_running() {
        let at = |summary: &str| {
            attempt_status(&json!({"currentState": {"currentStateSummary": summary}}))
        };
        assert!(matches!(
            at("DriverRequested"),
            AttemptStatus::Pending { .. }
        ));
        assert!(matches!(at("SomethingNew"), AttemptStatus::Pending { .. }));
        match at("RunningHealthy") {
            AttemptStatus::Running { detail, .. } => assert_eq!(detail, "RunningHealthy"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn released_resolves_to_the_outcome_before_it() {
        let ok = released_after(&[("Submitted", ""), ("RunningHealthy", ""), ("Succeeded", "")]);
        assert!(matches!(
            attempt_status(&ok),
            AttemptStatus::Succeeded { .. }
        ));
        let failed = released_after(&[("Submitted", ""), ("Failed", "exit code 1")]);
        assert_eq!(
            attempt_status(&failed),
            AttemptStatus::Failed {
                class: FailureClass::Application,
                reason: "Failed: exit code 1".into()
            }
        );
        let lost = released_after(&[("Submitted", "")]);
        assert!(matches!(
            attempt_status(&lost),
            AttemptStatus::Failed {
                class: FailureClass::Infrastructure,
                ..
            }
        ));
    }

    #[test]
    fn history_keys_sort_numerically() {
        // Eleven entries: "10" (Failed) is the last one before the release, not "9".
        let mut entries = vec![("RunningHealthy", ""); 10];
        entries.push(("DriverEvicted", "node drained"));
        let status = released_after(&entries);
        assert_eq!(
            attempt_status(&status),
            AttemptStatus::Failed {
                class: FailureClass::Infrastructure,
                reason: "DriverEvicted: node drained".into()
            }
        );
    }

    #[test]
    fn each_failure_kind_has_its_class() {
        for (summary, class) in [
            ("Failed", FailureClass::Application),
            ("SchedulingFailure", FailureClass::Scheduling),
            ("DriverStartTimedOut", FailureClass::Scheduling),
            ("ExecutorsStartTimedOut", FailureClass::Scheduling),
            ("DriverReadyTimedOut", FailureClass::Infrastructure),
            ("DriverEvicted", FailureClass::Infrastructure),
        ] {
            let status = released_after(&[("Submitted", ""), (summary, "why")]);
            match attempt_status(&status) {
                AttemptStatus::Failed { class: got, reason } => {
                    assert_eq!(got, class, "{summary}");
                    assert_eq!(reason, format!("{summary}: why"));
                }
                other => panic!("{summary}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_oom_killed_driver_is_out_of_memory() {
        let status = json!({"currentState": {
            "currentStateSummary": "Failed",
            "message": "driver container failed",
            "lastObservedDriverStatus": {"containerStatuses": [
                {"name": "spark-kubernetes-driver",
                 "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}
            ]},
        }});
        match attempt_status(&status) {
            AttemptStatus::Failed { class, reason } => {
                assert_eq!(class, FailureClass::OutOfMemory);
                assert!(reason.contains("raise driver.memory"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
