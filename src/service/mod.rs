//! The service layer: what sk8 does for a caller, independent of transport. HTTP handlers and
//! gRPC services are thin wrappers over these functions.

pub mod advice;
pub mod namespaces;
mod runs;
pub mod sessions;
pub mod sizing;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::{Audit, AuditEvent};
use crate::auth::{Identity, Role};
use crate::backend::{Backend, LogStream};
use crate::domain::jobspec::Format;
use crate::domain::{Attempt, Event, Job, JobId, JobSpec, JobState, NewEvent, SpecDefaults};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::record::History;
use crate::record::confs::apply_team_policy;
use crate::remediation::resize::{self, SizedFrom};
use crate::service::namespaces::guard::{Footprint, NamespaceGuard};
use crate::store::{InsertOutcome, JobFilter, Store};
use crate::wake::Wake;

/// The most jobs one list call returns.
pub const MAX_PAGE: u32 = 500;
pub const DEFAULT_PAGE: u32 = 50;
const MAX_IDEMPOTENCY_KEY: usize = 256;
/// How many times a cancel re-reads a job that changed under it before giving up.
const CANCEL_TRIES: usize = 5;
const LOG_WAIT_POLL: Duration = Duration::from_millis(500);
/// How long `/readyz` waits for the store: under the readiness probe's 3 s.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct JobService {
    store: Store,
    backend: Arc<dyn Backend>,
    defaults: SpecDefaults,
    /// Wakes the reconciler so a new or cancelled job is acted on without waiting a tick.
    wake: Arc<Wake>,
    /// The submission guard of team namespaces.
    guard: Option<NamespaceGuard>,
    audit: Audit,
    limits: Arc<Limits>,
    /// Where run records' archived logs are, and the History Server's address.
    history: History,
    /// Who opted out of resizing (a job starts from its remembered size otherwise).
    remediation: Arc<crate::remediation::Remediation>,
    /// The sizing modes and profiles of teams (`sizing:` in the config).
    sizing: Arc<crate::advice::auto::SizingConfig>,
}

pub use runs::{AttemptDetail, AttemptLinks, AttemptView};

/// A job with its attempts: the answer to `GET /v1/jobs/{id}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    pub attempts: Vec<AttemptView>,
    pub links: Links,
    /// Why a QUEUED or RETRYING job is not starting now (the backend is full or unreachable);
    /// live, not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
}

/// Where to look at a job from outside sk8.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Links {
    /// The live Spark UI, proxied by sk8 behind its own authentication (`/v1/jobs/{id}/ui/`),
    /// while the job runs. `sparkUiUrl` is the driver's own address, reachable in its network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spark_ui: Option<String>,
    /// The latest attempt's page on the Spark History Server, once its application id is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_server: Option<String>,
    pub events: String,
    pub logs: String,
}

/// One page of a job listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Whether a submission created a job or found the one an idempotency key points at.
pub enum Submitted {
    Created(Job),
    Existing(Job),
}

impl JobService {
    pub fn new(
        store: Store,
        backend: Arc<dyn Backend>,
        defaults: SpecDefaults,
        wake: Arc<Wake>,
        audit: Audit,
        limits: Arc<Limits>,
        history: History,
    ) -> Self {
        JobService {
            store,
            backend,
            defaults,
            wake,
            guard: None,
            audit,
            limits,
            history,
            remediation: Arc::default(),
            sizing: Arc::default(),
        }
    }

    /// The sizing modes and profiles submissions get.
    pub fn with_sizing(mut self, sizing: crate::advice::auto::SizingConfig) -> Self {
        self.sizing = Arc::new(sizing);
        self
    }

    /// Whose jobs may start from a remembered size (all but those opted out by default).
    pub fn with_remediation(mut self, remediation: Arc<crate::remediation::Remediation>) -> Self {
        self.remediation = remediation;
        self
    }

    /// Jobs pass the namespace guard before they are stored.
    pub fn with_guard(mut self, guard: NamespaceGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Parses, validates and stores a job (before anything reaches a backend); audited.
    pub async fn submit(
        &self,
        body: &[u8],
        format: Format,
        idempotency_key: Option<String>,
        caller: &Identity,
    ) -> Result<Submitted> {
        let parsed = match &idempotency_key {
            Some(key) => check_idempotency_key(key),
            None => Ok(()),
        }
        .and_then(|()| JobSpec::parse(body, format, &self.defaults));
        let team = parsed.as_ref().ok().map(|spec| spec.team.to_string());
        let body = sizing::Body {
            bytes: body,
            format,
        };
        let result = match parsed {
            Ok(spec) => self.admit(spec, body, idempotency_key, caller).await,
            Err(err) => Err(err),
        };
        let resource = result.as_ref().ok().map(|submitted| {
            let (Submitted::Created(job) | Submitted::Existing(job)) = submitted;
            format!("job/{}", job.id)
        });
        self.audit.record(
            AuditEvent::by(caller, "job.submit")
                .team(team)
                .resource(resource)
                .outcome(&result),
        );
        result
    }

    /// Checks a parsed job against the caller's rights and the team's limits, then stores it.
    async fn admit(
        &self,
        spec: JobSpec,
        body: sizing::Body<'_>,
        idempotency_key: Option<String>,
        caller: &Identity,
    ) -> Result<Submitted> {
        may_act(caller, Role::Member, spec.team.as_str(), "submit jobs")?;
        self.limits.submits.admit(spec.team.as_str())?;
        let spec = self.guard_admits(spec).await?;
        let digest = spec.digest();
        let (spec, sized_from) = self.remembered_size(spec).await?;
        let (spec, sizing) = self.sized(spec, body, true).await?;
        let mut job = Job::new(spec, idempotency_key, crate::domain::now());
        job.sized_from = sized_from;
        job.sizing = sizing;
        let (trace, parent) = crate::telemetry::run_trace::for_submit();
        (job.trace_id, job.trace_parent) = (Some(trace), parent);
        let outcome = match self.store.job_insert(&job, &digest).await? {
            InsertOutcome::Created(job) => {
                self.wake.queue();
                Submitted::Created(job)
            }
            InsertOutcome::Existing(job) => Submitted::Existing(job),
            InsertOutcome::KeyConflict { existing } => {
                return Err(Error::Conflict(format!(
                    "Idempotency-Key was already used for job {existing} with a different spec; \
                     use a new key for a different job"
                )));
            }
        };
        let label = if matches!(outcome, Submitted::Created(_)) {
            "created"
        } else {
            "replayed"
        };
        metrics::counter!("sk8_job_submits_total", "outcome" => label).increment(1);
        Ok(outcome)
    }

    /// The effective spec of a submission (remembered sizes and advice applied), validated
    /// and checked as a submission is, without storing anything.
    pub async fn dry_run(
        &self,
        body: &[u8],
        format: Format,
        caller: &Identity,
    ) -> Result<sizing::DryRun> {
        let spec = JobSpec::parse(body, format, &self.defaults)?;
        may_act(caller, Role::Member, spec.team.as_str(), "submit jobs")?;
        let spec = self.guard_admits(spec).await?;
        let (spec, sized_from) = self.remembered_size(spec).await?;
        let (spec, sizing) = self
            .sized(
                spec,
                sizing::Body {
                    bytes: body,
                    format,
                },
                false,
            )
            .await?;
        Ok(sizing::DryRun {
            spec,
            sized_from,
            sizing,
        })
    }

    /// The namespace guard's verdict on a submission.
    async fn guard_admits(&self, mut spec: JobSpec) -> Result<JobSpec> {
        if let Some(guard) = &self.guard {
            let footprint = Footprint::of_job(&spec);
            if let Some(team) = guard.admit(&spec.team, &spec.env, &footprint).await? {
                apply_team_policy(&mut spec.spark_conf, team.event_log);
            }
        }
        Ok(spec)
    }

    /// `spec` grown to the size a resized retry of the same job (team, env, name) found to
    /// work, unless the job or its team opted out or the size no longer fits its namespace.
    async fn remembered_size(&self, spec: JobSpec) -> Result<(JobSpec, Option<SizedFrom>)> {
        if !self.remediation.resizes(spec.team.as_str(), &spec) {
            return Ok((spec, None));
        }
        let remembered = self
            .store
            .size_get(spec.team.as_str(), spec.env.as_str(), &spec.name)
            .await?;
        let Some(mut sized) = remembered else {
            return Ok((spec, None));
        };
        let mut grown = spec.clone();
        sized
            .changes
            .retain(|change| resize::apply(&mut grown, change));
        if sized.changes.is_empty() {
            return Ok((spec, None));
        }
        if let Some(guard) = &self.guard {
            let footprint = Footprint::of_job(&grown);
            if guard
                .admit(&grown.team, &grown.env, &footprint)
                .await
                .is_err()
            {
                return Ok((spec, None));
            }
        }
        Ok((grown, Some(sized)))
    }

    pub async fn get(&self, id: &str, caller: &Identity) -> Result<JobDetail> {
        let job = self.find(id, caller).await?;
        let attempts = self.attempt_views(&job).await?;
        let links = Links {
            spark_ui: Self::spark_ui_link(&job),
            history_server: attempts.last().and_then(|a| a.links.history_server.clone()),
            events: format!("/v1/jobs/{}/events", job.id),
            logs: format!("/v1/jobs/{}/logs", job.id),
        };
        let waiting = matches!(job.state, JobState::Queued | JobState::Retrying);
        let waiting_reason = if waiting {
            self.waiting_reason(&job).await?
        } else {
            None
        };
        Ok(JobDetail {
            job,
            attempts,
            links,
            waiting_reason,
        })
    }

    /// Why a waiting job does not start now: its backend is full or unreachable, or its team
    /// is at `limits.maxRunningJobsPerTeam`.
    async fn waiting_reason(&self, job: &Job) -> Result<Option<String>> {
        if let Err(full) = self.backend.capacity(&job.spec) {
            return Ok(Some(full.reason));
        }
        let cap = self.limits.max_running_jobs_per_team;
        if cap == 0 {
            return Ok(None);
        }
        let started = self.store.job_count_started(&job.team).await?;
        Ok((started >= i64::from(cap)).then(|| {
            format!(
                "team {} has {started} jobs running, its limit (limits.maxRunningJobsPerTeam: \
                 {cap}); this one starts when one of them ends",
                job.team
            )
        }))
    }

    pub async fn list(
        &self,
        mut filter: JobFilter,
        page_token: Option<&str>,
        caller: &Identity,
    ) -> Result<JobPage> {
        filter.visible_teams = caller.visible_teams();
        if let Some(token) = page_token {
            filter.before = Some(decode_page_token(token, JobId::parse)?);
        }
        filter.limit = filter.limit.clamp(1, MAX_PAGE);
        let jobs = self.store.job_list(&filter).await?;
        let next_page_token = (jobs.len() == filter.limit as usize)
            .then(|| jobs.last().map(|j| encode_page_token(&j.id)))
            .flatten();
        Ok(JobPage {
            jobs,
            next_page_token,
        })
    }

    /// Cancels a job: at once if nothing of it runs, else via CANCELLING while the reconciler
    /// stops its attempt. Cancelling a cancelled or cancelling job is a no-op.
    pub async fn cancel(&self, id: &str, caller: &Identity) -> Result<Job> {
        self.cancel_because(id, "cancel requested", caller).await
    }

    /// Cancels a job for `caller`, recording `reason` in its history; audited.
    pub async fn cancel_because(&self, id: &str, reason: &str, caller: &Identity) -> Result<Job> {
        let result = self.cancel_tries(id, reason, caller).await;
        self.audit.record(
            AuditEvent::by(caller, "job.cancel")
                .team(result.as_ref().ok().map(|job| job.team.clone()))
                .resource(format!("job/{id}"))
                .outcome(&result),
        );
        result
    }

    async fn cancel_tries(&self, id: &str, reason: &str, caller: &Identity) -> Result<Job> {
        for _ in 0..CANCEL_TRIES {
            let mut job = self.find(id, caller).await?;
            may_act(caller, Role::Member, &job.team, "cancel jobs")?;
            let to = match job.state {
                JobState::Cancelled | JobState::Cancelling => return Ok(job),
                JobState::Succeeded | JobState::Failed => {
                    return Err(Error::Conflict(format!(
                        "job {} already finished as {}; only queued or running jobs can be cancelled",
                        job.id, job.state
                    )));
                }
                JobState::Queued | JobState::Retrying => JobState::Cancelled,
                JobState::Submitted | JobState::Running => JobState::Cancelling,
            };
            let event = NewEvent {
                attempt: (job.attempts > 0).then_some(job.attempts),
                from: Some(job.state),
                to,
                reason: reason.into(),
                detail: None,
            };
            job.state = to;
            if to == JobState::Cancelled {
                job.finished_at = Some(crate::domain::now());
                job.next_attempt_at = None;
            }
            if self.store.job_save(&mut job, None, Some(&event)).await? {
                if to == JobState::Cancelled {
                    crate::telemetry::workload::cancelled(&job);
                    crate::telemetry::run_trace::run_ended(&job);
                }
                self.wake.job(job.id.clone());
                return Ok(job);
            }
        }
        Err(Error::Unavailable(format!(
            "job {id} is changing state rapidly; retry the cancel"
        )))
    }

    pub async fn events(&self, id: &str, caller: &Identity) -> Result<Vec<Event>> {
        let job = self.find(id, caller).await?;
        Ok(self.store.event_list(&job.id).await?)
    }

    /// The driver log of the job's latest attempt. With `follow`, waits for a queued job to
    /// start and streams until the attempt ends.
    /// The driver log of attempt `attempt` (`?attempt=N`), or of the latest that started.
    pub async fn logs(
        &self,
        id: &str,
        attempt: Option<&str>,
        follow: bool,
        caller: &Identity,
    ) -> Result<LogStream> {
        let mut job = self.find(id, caller).await?;
        if let Some(number) = attempt {
            let attempt = self.attempt_numbered(&job, number).await?;
            return self.attempt_log(&job, attempt, follow).await;
        }
        loop {
            if let Some(attempt) = self.latest_started_attempt(&job).await? {
                return self.attempt_log(&job, attempt, follow).await;
            }
            if !follow || job.state.is_terminal() {
                return Err(Error::NotFound(format!(
                    "job {} has no driver log: it is {} and no attempt has started; use \
                     ?follow=true to wait for it",
                    job.id, job.state
                )));
            }
            tokio::time::sleep(LOG_WAIT_POLL).await;
            job = self.find(id, caller).await?;
        }
    }

    async fn latest_started_attempt(&self, job: &Job) -> Result<Option<Attempt>> {
        let attempts = self.store.attempt_list(&job.id).await?;
        Ok(attempts.into_iter().rev().find(|a| a.backend_ref.is_some()))
    }

    /// A job the caller may see; another team's job is not found, like one that never was.
    async fn find(&self, id: &str, caller: &Identity) -> Result<Job> {
        let not_found = || {
            Error::NotFound(format!(
                "job {id:?} not found; `sk8 list` shows the jobs you can see"
            ))
        };
        let id = JobId::parse(id).ok_or_else(not_found)?;
        let job = self.store.job_get(&id).await?.ok_or_else(not_found)?;
        if !caller.sees(&job.team) {
            return Err(not_found());
        }
        Ok(job)
    }

    /// Whether the store answers (readiness).
    pub async fn ready(&self) -> Result<()> {
        // Within the probe's own timeout (deploy/: 3 s): a probe that times out is a failure
        // too, but a 503 says why, and a ping stuck on a black-holed connection would pile up.
        match tokio::time::timeout(READY_TIMEOUT, self.store.ping()).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(Error::Unavailable(format!(
                "the execution-history store did not answer within {}s",
                READY_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Refreshes the store-derived gauges (called when metrics are scraped).
    pub async fn record_job_gauges(&self) -> Result<()> {
        Ok(crate::telemetry::gauges::refresh(&self.store).await?)
    }
}

fn check_idempotency_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY
        && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "Idempotency-Key",
            format!("must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters without spaces"),
        ))
    }
}

/// Page tokens are opaque to clients: the last id seen, base64url-encoded so that nobody builds
/// on the format.
/// An opaque token for the page after the item with this id.
pub(crate) fn encode_page_token(id: &impl std::fmt::Display) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{id}"))
}

/// The id a page token continues after.
pub(crate) fn decode_page_token<T>(
    token: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T> {
    use base64::Engine;
    let invalid = || Error::invalid("page_token", "is not a token returned by a previous page");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix("v1:").and_then(parse).ok_or_else(invalid)
}

/// Whether the caller may act as `role` in `team` (to `action`): the refusal says whether the
/// team or the role is missing.
pub(crate) fn may_act(caller: &Identity, role: Role, team: &str, action: &str) -> Result<()> {
    if caller.may(role, team) {
        return Ok(());
    }
    Err(Error::Forbidden(if caller.sees(team) {
        format!(
            "{} is a {} of team {team}; to {action} takes the {} role",
            caller.user,
            caller.role.as_str(),
            role.as_str()
        )
    } else {
        format!(
            "{} is not a member of team {team}; a team-admin of {team} can grant access",
            caller.user
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_forgeries() {
        let id = JobId::generate();
        assert_eq!(
            decode_page_token(&encode_page_token(&id), JobId::parse).unwrap(),
            id
        );
        for bad in ["", "!!", "djE6", "bm9wZQ"] {
            assert_eq!(
                decode_page_token(bad, JobId::parse).unwrap_err().field(),
                Some("page_token")
            );
        }
    }

    #[test]
    fn idempotency_keys_are_bounded_printable() {
        assert!(check_idempotency_key("run-2026-11-24").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key(&"k".repeat(257)).is_err());
    }
}
