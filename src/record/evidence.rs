//! Evidence of how an attempt ended, as its backend saw it before cleaning up: on Kubernetes
//! the termination state, disruption conditions and waiting reasons of the driver and of every
//! executor that ended abnormally, and the Events of the application's pods; locally the
//! process's exit status or signal.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a backend recorded of an attempt's end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The local process's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessExit>,
    /// The driver pod, then executor pods that ended abnormally (Kubernetes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodEvidence>,
    /// Kubernetes Events of the application's pods, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<KubeEvent>,
    /// What could not be gathered, and why (the pods were gone, the API did not answer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<String>,
    /// Set when this was gathered just before sk8 stopped the attempt (why it stopped it): on
    /// Kubernetes the stop deletes the pods, so this is how they were then, still running or
    /// waiting, not how they ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_stop: Option<String>,
}

/// How a local driver process ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessExit {
    /// Its exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it (a status above 128 from the shell: 137 is 9, SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why sk8 stopped it, when it did (cancel, timeout, shutdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by_sk8: Option<String>,
}

impl ProcessExit {
    /// From a shell's exit status: above 128 means killed by signal `status - 128`.
    pub fn from_status(code: i32) -> Self {
        ProcessExit {
            exit_code: Some(code),
            signal: (code > 128 && code < 160).then_some(code - 128),
            stopped_by_sk8: None,
        }
    }
}

/// A driver or executor pod as it was at the attempt's end.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodEvidence {
    pub name: String,
    /// `driver` or `executor`.
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The pod's own reason (`Evicted`) and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerEvidence>,
    /// `DisruptionTarget` and other conditions that say why a pod went (preemption, eviction,
    /// node drain), and an unschedulable `PodScheduled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where the tail of its log was archived (failed executors), relative to the history
    /// location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
}

/// One container's last state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEvidence {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// `OOMKilled`, `Error`, `Completed`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why it was waiting (`ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    #[serde(default)]
    pub restart_count: i32,
}

/// A pod condition worth keeping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A Kubernetes Event about one of the application's pods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeEvent {
    /// The pod it is about.
    pub object: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
}

impl Evidence {
    /// One line for people: the most telling fact (an OOM kill, an eviction, an image that
    /// would not pull), or none when nothing ended abnormally.
    pub fn headline(&self) -> Option<String> {
        if let Some(process) = &self.process {
            return match (process.signal, process.exit_code, &process.stopped_by_sk8) {
                (_, _, Some(why)) => Some(format!("stopped by sk8: {why}")),
                (Some(signal), _, _) => Some(format!("the driver was killed by signal {signal}")),
                (None, Some(code), _) if code != 0 => Some(format!("the driver exited {code}")),
                _ => None,
            };
        }
        self.pods.iter().find_map(PodEvidence::headline)
    }
}

impl PodEvidence {
    fn headline(&self) -> Option<String> {
        let who = format!("{} {}", self.role, self.name);
        if self.reason.as_deref() == Some("Evicted") {
            return Some(format!("{who} was evicted"));
        }
        for container in &self.containers {
            if let Some(waiting) = &container.waiting {
                return Some(format!("{who} was waiting: {waiting}"));
            }
            match (&container.reason, container.exit_code) {
                (Some(reason), Some(code)) if code != 0 => {
                    return Some(format!("{who} ended {reason} (exit code {code})"));
                }
                _ => {}
            }
        }
        self.conditions
            .iter()
            .find(|c| c.kind == "DisruptionTarget")
            .map(|c| {
                let why = c.reason.as_deref().unwrap_or("disrupted");
                format!("{who} was disrupted: {why}")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_above_128_are_signals() {
        assert_eq!(ProcessExit::from_status(137).signal, Some(9));
        assert_eq!(ProcessExit::from_status(1).signal, None);
    }

    #[test]
    fn the_headline_names_the_first_abnormal_end() {
        let mut evidence = Evidence::default();
        assert_eq!(evidence.headline(), None);
        evidence.pods.push(PodEvidence {
            name: "app-exec-1".into(),
            role: "executor".into(),
            containers: vec![ContainerEvidence {
                name: "spark-kubernetes-executor".into(),
                exit_code: Some(137),
                reason: Some("OOMKilled".into()),
                ..ContainerEvidence::default()
            }],
            ..PodEvidence::default()
        });
        assert_eq!(
            evidence.headline().as_deref(),
            Some("executor app-exec-1 ended OOMKilled (exit code 137)")
        );
    }
}
