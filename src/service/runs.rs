//! What the API shows of each attempt's run: its application id, record headline and links on
//! `GET /v1/jobs/{id}`, the whole record on `GET /v1/jobs/{id}/attempts/{n}`, and its driver
//! log (live from the backend while it runs, from the archive after).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::JobService;
use crate::auth::Identity;
use crate::backend::{BackendError, LogStream};
use crate::domain::{Attempt, Job, JobState};
use crate::error::{Error, Result};
use crate::record::{AttemptRecord, Evidence, RecordState, recorder};

/// An attempt with what its run record says of it in one line, and where to look further.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    #[serde(flatten)]
    pub attempt: Attempt,
    /// The Spark application id, once known (at once on Kubernetes, where sk8 sets it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Whether its run record is gathered yet (none before the attempt ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordState>,
    /// The summary of its event log in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    pub links: AttemptLinks,
}

/// Where to look at one attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptLinks {
    /// The live Spark UI (while the attempt runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spark_ui: Option<String>,
    /// The Spark History Server's page (`history.serverUrl`), once the application id is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_server: Option<String>,
    pub logs: String,
    /// The whole run record.
    pub record: String,
}

/// One attempt's whole run record: `GET /v1/jobs/{id}/attempts/{n}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptDetail {
    #[serde(flatten)]
    pub view: AttemptView,
    /// The archived driver log, relative to `history.eventLogDir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<crate::history::RunSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<DateTime<Utc>>,
    /// When `history.retentionDays` deleted its archived logs and event log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs_deleted_at: Option<DateTime<Utc>>,
}

impl JobService {
    /// Each attempt with its record's headline and links.
    pub(super) async fn attempt_views(&self, job: &Job) -> Result<Vec<AttemptView>> {
        let attempts = self.store.attempt_list(&job.id).await?;
        let records = self.store.record_list(&job.id).await?;
        Ok(attempts
            .into_iter()
            .map(|attempt| {
                let record = records.iter().find(|r| r.attempt == attempt.attempt);
                self.view(job, attempt, record)
            })
            .collect())
    }

    fn view(&self, job: &Job, attempt: Attempt, record: Option<&AttemptRecord>) -> AttemptView {
        let app_id = record.and_then(|r| r.app_id.clone()).or_else(|| {
            let backend_ref = attempt.backend_ref.as_ref()?;
            self.backend.app_id(backend_ref)
        });
        let live = attempt.ended_at.is_none() && attempt.attempt == job.attempts;
        let number = attempt.attempt;
        AttemptView {
            links: AttemptLinks {
                spark_ui: Self::spark_ui_link(job).filter(|_| live),
                history_server: app_id
                    .as_deref()
                    .and_then(|id| self.history.server_link(id)),
                logs: format!("/v1/jobs/{}/logs?attempt={number}", job.id),
                record: format!("/v1/jobs/{}/attempts/{number}", job.id),
            },
            app_id,
            record: record.map(|r| r.state),
            headline: record.and_then(|r| r.headline.clone()),
            attempt,
        }
    }

    /// Where the live Spark UI of job `id` is served (its driver's own address), for sk8's
    /// proxy at `/v1/jobs/{id}/ui/`: only while the job runs and its driver announced one.
    pub async fn spark_ui_upstream(&self, id: &str, caller: &Identity) -> Result<String> {
        let job = self.find(id, caller).await?;
        match (&job.state, &job.spark_ui_url) {
            (JobState::Running, Some(url)) => Ok(url.clone()),
            (JobState::Running, None) => Err(Error::Unavailable(format!(
                "job {} is running but its driver has not announced its Spark UI yet",
                job.id
            ))),
            (state, _) => Err(Error::Conflict(format!(
                "job {} is {}: the Spark UI lives only while the driver runs; after the run, \
                 see its attempts' historyServer links and `sk8 describe {}`",
                job.id,
                state.as_str(),
                job.id
            ))),
        }
    }

    /// The link to sk8's proxy of the live Spark UI, while there is one to reach.
    pub(super) fn spark_ui_link(job: &Job) -> Option<String> {
        (job.state == JobState::Running && job.spark_ui_url.is_some())
            .then(|| format!("/v1/jobs/{}/ui/", job.id))
    }

    /// One attempt's whole run record.
    pub async fn attempt(
        &self,
        id: &str,
        number: &str,
        caller: &Identity,
    ) -> Result<AttemptDetail> {
        let job = self.find(id, caller).await?;
        let attempt = self.attempt_numbered(&job, number).await?;
        let record = self.store.record_get(&job.id, attempt.attempt).await?;
        let summary = record
            .as_ref()
            .and_then(|r| r.summary.clone())
            .and_then(|s| serde_json::from_value(s).ok());
        let view = self.view(&job, attempt, record.as_ref());
        let record = record.as_ref();
        Ok(AttemptDetail {
            view,
            driver_log: record.and_then(|r| r.driver_log.clone()),
            evidence: record.and_then(|r| r.evidence.clone()),
            summary,
            recorded_at: record.and_then(|r| r.recorded_at),
            logs_deleted_at: record.and_then(|r| r.logs_deleted_at),
        })
    }

    pub(super) async fn attempt_numbered(&self, job: &Job, number: &str) -> Result<Attempt> {
        let n: u32 = number.parse().map_err(|_| {
            Error::invalid(
                "attempt",
                format!("must be an attempt number, got {number:?}"),
            )
        })?;
        let attempts = self.store.attempt_list(&job.id).await?;
        attempts
            .into_iter()
            .find(|a| a.attempt == n && a.backend_ref.is_some())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "job {} has no attempt {n} that started (it has made {})",
                    job.id, job.attempts
                ))
            })
    }

    /// The driver log of attempt `number` (the latest that started when `None`): the archived
    /// copy once the attempt's record has one, else the backend's (live, followed on request).
    pub(super) async fn attempt_log(
        &self,
        job: &Job,
        attempt: Attempt,
        follow: bool,
    ) -> Result<LogStream> {
        if attempt.ended_at.is_some() {
            let record = self.store.record_get(&job.id, attempt.attempt).await?;
            if let Some(record) = record {
                if let Some(at) = record.logs_deleted_at {
                    return Err(Error::NotFound(format!(
                        "the driver log of attempt {} of job {} was deleted on {} \
                         (history.retentionDays); its summary and evidence are kept: \
                         GET /v1/jobs/{}/attempts/{}",
                        attempt.attempt,
                        job.id,
                        at.format("%Y-%m-%d"),
                        job.id,
                        attempt.attempt
                    )));
                }
                if let Some(key) = &record.driver_log {
                    return recorder::archived_log(&self.history.objects, key)
                        .await
                        .map_err(|e| archive_error(&job.id, attempt.attempt, e));
                }
            }
        }
        let backend_ref = attempt.backend_ref.expect("a started attempt");
        self.backend
            .logs(&backend_ref, follow)
            .await
            .map_err(|e| match e {
                BackendError::NotFound(m) => Error::NotFound(m),
                other => Error::Unavailable(other.to_string()),
            })
    }
}

fn archive_error(job: &crate::domain::JobId, n: u32, err: crate::history::ObjectsError) -> Error {
    if err.is_not_found() {
        Error::NotFound(format!(
            "the archived driver log of attempt {n} of job {job} is gone from the history location"
        ))
    } else {
        Error::Unavailable(format!("the history location cannot be read: {err}"))
    }
}
