//! The run record of every attempt: what sk8 keeps of it beside its state transitions, on every
//! backend.
//!
//! - [`archive`]: copying a driver log into the history location (by the recorder, and by the
//!   reconciler before it stops a cancelled or timed-out attempt);
//! - [`confs`]: the Spark confs that make every attempt leave an event log under an id known
//!   up front;
//! - [`evidence`]: how the attempt ended as the backend saw it (pods, exit status);
//! - [`AttemptRecord`]: what is stored per attempt (migration 0006): the Spark application id,
//!   where its driver log and failed executors' log tails were archived, the evidence and the
//!   summary of its event log. A record is written `pending` in the same transaction that ends
//!   the attempt, so no ended attempt is forgotten across a crash; the [`Recorder`] fills it in;
//! - [`retention`]: `history.retentionDays` after an attempt ended, its archived logs and event
//!   log are deleted; the record stays with its job.
//!
//! Archived logs live in the history location (`history.eventLogDir`) under
//! `sk8/<job-id>/<attempt>/`, beside Spark's own event logs (which the History Server reads;
//! it skips folders that are not event logs).

pub mod archive;
pub mod confs;
pub mod evidence;
pub mod recorder;
pub mod retention;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::JobId;
pub use evidence::Evidence;
pub use recorder::{History, Recorder};
pub use retention::Retention;

/// Where an attempt's run record is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// The attempt ended; its logs and summary are being gathered.
    Pending,
    /// Everything that could be gathered is stored.
    Recorded,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Pending => "pending",
            RecordState::Recorded => "recorded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(RecordState::Pending),
            "recorded" => Some(RecordState::Recorded),
            _ => None,
        }
    }
}

/// What is stored of one attempt's run.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    #[serde(skip)]
    pub job_id: JobId,
    #[serde(skip)]
    pub attempt: u32,
    pub state: RecordState,
    /// The Spark application id (the History Server's key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The archived driver log, relative to the history location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The summary of the attempt's event log.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub summary: Option<serde_json::Value>,
    /// One line from the summary, for listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// When the attempt ended.
    pub ended_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<DateTime<Utc>>,
    /// When retention deleted its archived logs and event log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs_deleted_at: Option<DateTime<Utc>>,
    /// How the failed attempt was classified from this record (none for a success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<crate::remediation::Classification>,
}

impl AttemptRecord {
    /// A record to fill in, for an attempt that just ended.
    pub fn pending(job_id: JobId, attempt: u32, ended_at: DateTime<Utc>) -> Self {
        AttemptRecord {
            job_id,
            attempt,
            state: RecordState::Pending,
            app_id: None,
            driver_log: None,
            evidence: None,
            summary: None,
            headline: None,
            ended_at,
            recorded_at: None,
            logs_deleted_at: None,
            classification: None,
        }
    }
}

/// The folder of an attempt's archived logs in the history location.
pub fn archive_prefix(job_id: &JobId, attempt: u32) -> String {
    format!("sk8/{job_id}/{attempt}")
}
