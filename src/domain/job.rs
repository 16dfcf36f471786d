//! Jobs, attempts and events: the records of the execution history.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{FailureClass, JobId, JobSpec, JobState};

/// A batch job as stored: its spec, where it is in its life, and why it ended.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: JobId,
    pub team: String,
    pub env: String,
    pub name: String,
    pub namespace: String,
    pub state: JobState,
    pub spec: JobSpec,
    /// Attempts started so far.
    #[serde(rename = "attemptCount")]
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<FailureClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spark_ui_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// When the next attempt may start (RETRYING only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The W3C trace id of the run's trace (the submitter's trace when the submit carried a
    /// `traceparent`), in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The span the run's trace hangs under (the submit's), in hex.
    #[serde(skip)]
    pub trace_parent: Option<String>,
    /// The job started from a size a resized retry of the same job found to work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sized_from: Option<crate::remediation::resize::SizedFrom>,
    /// What sizing advice did at submit: the advice given, what was applied and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizing: Option<crate::advice::auto::Sizing>,
    /// Optimistic-concurrency counter: every write checks and bumps it.
    #[serde(skip)]
    pub version: i64,
}

impl Job {
    /// A new job, QUEUED, not yet stored.
    pub fn new(spec: JobSpec, idempotency_key: Option<String>, now: DateTime<Utc>) -> Self {
        Job {
            id: JobId::generate(),
            team: spec.team.to_string(),
            env: spec.env.to_string(),
            name: spec.name.clone(),
            namespace: spec.namespace(),
            state: JobState::Queued,
            spec,
            attempts: 0,
            failure_reason: None,
            failure_class: None,
            spark_ui_url: None,
            idempotency_key,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            trace_id: None,
            trace_parent: None,
            sized_from: None,
            sizing: None,
            version: 0,
        }
    }

    pub fn max_attempts(&self) -> u32 {
        self.spec.retry.max_attempts
    }
}

/// One try at running a job: one local process or one SparkApplication.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub job_id: JobId,
    /// 1-based.
    pub attempt: u32,
    /// Which backend ran it (`local`, `noop`, `kubernetes`).
    pub backend: String,
    /// The backend's handle on it (process id and log path, or cluster/namespace/name).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub backend_ref: Option<serde_json::Value>,
    pub state: JobState,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<FailureClass>,
    /// How a failed attempt was classified and what was decided about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<crate::remediation::AttemptRemediation>,
}

/// One state transition of a job: the history.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: i64,
    pub job_id: JobId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<JobState>,
    pub to: JobState,
    pub at: DateTime<Utc>,
    pub reason: String,
    /// What the backend reported, verbatim, when it caused the transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An event about to be written, tied to the job write that causes it.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub attempt: Option<u32>,
    pub from: Option<JobState>,
    pub to: JobState,
    pub reason: String,
    pub detail: Option<String>,
}
