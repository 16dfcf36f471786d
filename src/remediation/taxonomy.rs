//! The taxonomy of failures: every failed attempt ends in one [`Class`] (with a free-form
//! subclass), decided by one rule on one piece of evidence, and the rule names an [`Action`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What kind of failure ended an attempt. The names are the config's and the API's.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// An executor killed at its container memory limit (`OOMKilled`, 137) without a JVM OOM:
    /// off-heap, Python workers or overhead.
    ExecutorContainerOom,
    /// An executor's JVM ran out of heap (exit 52, `OutOfMemoryError` in its tasks).
    ExecutorHeapOom,
    /// The driver ran out of memory (heap, container, or `spark.driver.maxResultSize`).
    DriverOom,
    /// A pod evicted by its node under pressure.
    Eviction,
    /// A pod preempted, its spot node lost or drained.
    Preemption,
    /// An image that would not pull: a bad name or missing image (`bad_image`), or registry
    /// trouble (`registry`).
    ImagePull,
    /// The API refused the application or its pods: quota, RBAC, an admission webhook.
    Admission,
    /// The driver or executors never got a node in time.
    Unschedulable,
    /// A shuffle block could not be fetched (a lost executor's output).
    ShuffleFetch,
    /// The object store asked Spark to slow down (`SlowDown`, 503).
    ObjectStoreThrottling,
    /// The job's own code or configuration failed: an exception, `AnalysisException`, a
    /// Python traceback, exit 1. Never retried.
    UserError,
    /// sk8 stopped it: cancelled, or past its `timeoutSeconds`. Never retried.
    Cancelled,
    /// The platform failed it, or nothing told why.
    Platform,
}

impl Class {
    pub const ALL: [Class; 13] = [
        Class::ExecutorContainerOom,
        Class::ExecutorHeapOom,
        Class::DriverOom,
        Class::Eviction,
        Class::Preemption,
        Class::ImagePull,
        Class::Admission,
        Class::Unschedulable,
        Class::ShuffleFetch,
        Class::ObjectStoreThrottling,
        Class::UserError,
        Class::Cancelled,
        Class::Platform,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::ExecutorContainerOom => "executor_container_oom",
            Class::ExecutorHeapOom => "executor_heap_oom",
            Class::DriverOom => "driver_oom",
            Class::Eviction => "eviction",
            Class::Preemption => "preemption",
            Class::ImagePull => "image_pull",
            Class::Admission => "admission",
            Class::Unschedulable => "unschedulable",
            Class::ShuffleFetch => "shuffle_fetch",
            Class::ObjectStoreThrottling => "object_store_throttling",
            Class::UserError => "user_error",
            Class::Cancelled => "cancelled",
            Class::Platform => "platform",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// What people read: "executor heap OOM".
    pub fn describe(self) -> &'static str {
        match self {
            Class::ExecutorContainerOom => "executor container OOM",
            Class::ExecutorHeapOom => "executor heap OOM",
            Class::DriverOom => "driver OOM",
            Class::Eviction => "eviction",
            Class::Preemption => "preemption",
            Class::ImagePull => "image pull failure",
            Class::Admission => "admission refused",
            Class::Unschedulable => "unschedulable",
            Class::ShuffleFetch => "shuffle fetch failure",
            Class::ObjectStoreThrottling => "object-store throttling",
            Class::UserError => "user code error",
            Class::Cancelled => "cancelled or timed out",
            Class::Platform => "platform or unknown failure",
        }
    }

    /// The platform took the attempt away through no fault of the job: its retries do not use
    /// up the job's budget.
    pub fn is_free(self) -> bool {
        matches!(self, Class::Eviction | Class::Preemption)
    }

    /// Retrying cannot help: the job's own fault, or sk8 stopped it on purpose.
    pub fn never_retried(self) -> bool {
        matches!(self, Class::UserError | Class::Cancelled)
    }

    /// More memory would have prevented it (what sizing advice's probation watches for).
    pub fn is_memory(self) -> bool {
        matches!(
            self,
            Class::ExecutorHeapOom | Class::ExecutorContainerOom | Class::DriverOom
        )
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule says to do about a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Another attempt with the same spec.
    Retry,
    /// Another attempt with more memory where the class says how much.
    RetryResized,
    /// Another attempt on another cluster of the team's route (a plain retry where there is
    /// none, said so).
    Reroute,
    /// No further attempt.
    Fail,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Retry,
        Action::RetryResized,
        Action::Reroute,
        Action::Fail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::RetryResized => "retryResized",
            Action::Reroute => "reroute",
            Action::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a piece of evidence came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// A pod's status: container terminations, waiting reasons, its own reason, conditions.
    PodStatus,
    /// A Kubernetes Event about one of the application's pods.
    KubeEvent,
    /// The Spark operator's state, or the backend's own account of the end.
    OperatorStatus,
    /// The local driver process's exit.
    ProcessExit,
    /// The driver's log.
    DriverLog,
    /// A failed executor's log.
    ExecutorLog,
    /// Task ends in the Spark event log.
    EventLog,
    /// What sk8 itself did or was told (a timeout, an API refusal at submit).
    Sk8,
}

/// The fact that decided a classification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub source: Source,
    /// The line or fields that matched, trimmed.
    pub excerpt: String,
}

/// How one failed attempt was classified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    pub class: Class,
    /// Finer than the class: `quota`, `bad_image`, `max_result_size`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subclass: Option<String>,
    /// The id of the rule that matched (first match wins).
    pub rule: String,
    /// What the rule says to do; the decision may differ (budgets, caps).
    pub action: Action,
    /// What decided it, most telling first.
    pub evidence: Vec<Finding>,
}

impl Classification {
    /// "executor heap OOM, rule oom-exit-52".
    pub fn describe(&self) -> String {
        format!("{}, rule {}", self.class.describe(), self.rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_actions_round_trip_through_their_names() {
        for class in Class::ALL {
            assert_eq!(Class::parse(class.as_str()), Some(class));
            let json = serde_json::to_value(class).unwrap();
            assert_eq!(json, class.as_str());
        }
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
            assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
        }
        assert_eq!(Class::parse("oom"), None);
    }
}
