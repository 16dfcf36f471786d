//! The job reconciler: a level-triggered loop that compares each live job in the store with
//! what its backend reports, and moves it along
//! `QUEUED → SUBMITTED → RUNNING → SUCCEEDED | FAILED | CANCELLED` (via `RETRYING` and
//! `CANCELLING`), writing an event for every transition.
//!
//! A pass holds no state of its own and never retries inside itself: whatever fails is tried
//! again by the next pass, which runs every `interval` or sooner when woken (a submit, a cancel,
//! a process exit). Every write is conditional on the job's version, so a concurrent cancel is
//! never overwritten: the pass re-reads the job next time and decides again.

mod orphans;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backend::{
    AttemptRequest, AttemptStatus, Backend, BackendError, StopProgress, StopReason,
};
use crate::domain::{Attempt, FailureClass, Job, JobState, NewEvent};
use crate::store::{Store, StoreError};

/// How many live jobs are observed at once in a pass.
const OBSERVE_CONCURRENCY: usize = 16;
/// How many waiting jobs one pass may try to start. Starting is sequential (capacity is handed
/// out in order), so without a bound a burst of thousands of submits makes one pass take
/// minutes, and no running job is observed meanwhile; the next pass starts the rest at once.
const STARTS_PER_PASS: usize = 64;

pub use orphans::{OrphanPolicy, OrphanSettings};

#[derive(Clone, Debug)]
pub struct ReconcilerSettings {
    pub interval: Duration,
    pub retry_backoff: Duration,
    pub max_retry_backoff: Duration,
    pub orphans: OrphanSettings,
}

pub struct Reconciler {
    store: Store,
    backend: Arc<dyn Backend>,
    settings: ReconcilerSettings,
    wake: Arc<Notify>,
}

/// What one pass did, for its log line.
#[derive(Debug, Default)]
struct PassReport {
    live: usize,
    errors: usize,
}

impl Reconciler {
    pub fn new(
        store: Store,
        backend: Arc<dyn Backend>,
        settings: ReconcilerSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Reconciler {
            store,
            backend,
            settings,
            wake,
        }
    }

    /// Runs passes until `shutdown` is cancelled, with an orphan sweep every so often.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut sweep = orphans::OrphanSweep::new(self.settings.orphans.clone());
        let mut last_sweep: Option<Instant> = None;
        loop {
            if last_sweep.is_none_or(|at| at.elapsed() >= sweep.every()) {
                last_sweep = Some(Instant::now());
                if let Err(err) = sweep.run(&self.store, &self.backend).await {
                    tracing::warn!(error = %err, "orphan sweep failed; the next one retries");
                }
            }
            let report = self.pass().await;
            if report.errors > 0 {
                tracing::warn!(
                    live = report.live,
                    errors = report.errors,
                    "reconcile pass had errors; the next pass retries"
                );
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.interval) => {}
            }
        }
        tracing::info!("reconciler stopped");
    }

    async fn pass(&self) -> PassReport {
        let start = std::time::Instant::now();
        let jobs = match self.store.job_list_live().await {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(error = %err, "reconciler cannot read live jobs");
                return PassReport { live: 0, errors: 1 };
            }
        };
        let live = jobs.len();
        let (waiting, observed): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|job| matches!(job.state, JobState::Queued | JobState::Retrying));
        // Observing is independent per job; starting is sequential, oldest first, so the
        // backend's capacity is handed out in order.
        let mut errors: usize = futures::stream::iter(observed)
            .map(|job| self.reconcile(job))
            .buffer_unordered(OBSERVE_CONCURRENCY)
            .filter(|r| futures::future::ready(r.is_err()))
            .count()
            .await;
        let mut capped = waiting.len() > STARTS_PER_PASS;
        for job in waiting.into_iter().take(STARTS_PER_PASS) {
            match self.reconcile(job).await {
                // Waiting for capacity is normal, not an error: the rest wait too (and no
                // immediate next pass: capacity frees up on its own schedule).
                Err(PassError::AtCapacity) => {
                    capped = false;
                    break;
                }
                Err(_) => errors += 1,
                Ok(()) => {}
            }
        }
        if capped {
            self.wake.notify_one();
        }
        metrics::histogram!("sk8_reconcile_pass_seconds").record(start.elapsed().as_secs_f64());
        metrics::gauge!("sk8_reconcile_live_jobs").set(live as f64);
        PassReport { live, errors }
    }

    async fn reconcile(&self, job: Job) -> Result<(), PassError> {
        let span = tracing::info_span!("reconcile", job_id = %job.id, team = %job.team);
        let result = self.reconcile_job(job).instrument(span).await;
        if let Err(PassError::Store(err)) = &result {
            tracing::warn!(error = %err, "store write failed; retrying next pass");
        }
        result
    }

    async fn reconcile_job(&self, job: Job) -> Result<(), PassError> {
        match job.state {
            JobState::Queued => self.start_attempt(job).await,
            JobState::Retrying if job.next_attempt_at.is_none_or(|at| at <= Utc::now()) => {
                self.start_attempt(job).await
            }
            JobState::Submitted | JobState::Running => self.observe(job).await,
            JobState::Cancelling => self.finish_cancel(job).await,
            _ => Ok(()),
        }
    }

    /// Records the next attempt first, then hands it to the backend, so a crash in between
    /// leaves an attempt the next pass finds and submits (idempotently) again.
    async fn start_attempt(&self, mut job: Job) -> Result<(), PassError> {
        if self.backend.capacity().is_err() {
            return Err(PassError::AtCapacity);
        }
        let number = job.attempts + 1;
        let now = Utc::now();
        let attempt = Attempt {
            job_id: job.id.clone(),
            attempt: number,
            backend: self.backend.name().into(),
            backend_ref: None,
            state: JobState::Submitted,
            created_at: now,
            ended_at: None,
            failure_reason: None,
            failure_class: None,
        };
        let from = job.state;
        job.state = JobState::Submitted;
        job.attempts = number;
        job.started_at.get_or_insert(now);
        job.next_attempt_at = None;
        let event = event(
            Some(number),
            from,
            JobState::Submitted,
            format!(
                "attempt {number} submitted to the {} backend",
                self.backend.name()
            ),
        );
        if !self
            .store
            .job_save(&mut job, Some(&attempt), Some(&event))
            .await?
        {
            return Ok(());
        }
        self.submit(job, attempt).await
    }

    async fn submit(&self, mut job: Job, mut attempt: Attempt) -> Result<(), PassError> {
        let request = AttemptRequest {
            job_id: job.id.clone(),
            attempt: attempt.attempt,
            spec: job.spec.clone(),
        };
        match self.backend.submit(&request).await {
            Ok(backend_ref) => {
                attempt.backend_ref = Some(backend_ref);
                self.store.job_save(&mut job, Some(&attempt), None).await?;
                // Look at the new attempt right away rather than a whole interval later.
                self.wake.notify_one();
                Ok(())
            }
            Err(BackendError::Rejected { class, reason }) => {
                self.fail_attempt(job, attempt, class, reason, None).await
            }
            Err(err @ (BackendError::AtCapacity(_) | BackendError::Transient(_))) => {
                // Give the attempt back: the job waits QUEUED until the backend can take it
                // (it says why through `capacity()` meanwhile, so later passes don't churn).
                if matches!(err, BackendError::Transient(_)) {
                    tracing::warn!(error = %err, "submit failed; the job waits QUEUED");
                }
                let reason = err.to_string();
                job.state = JobState::Queued;
                job.attempts -= 1;
                attempt.state = JobState::Cancelled;
                attempt.failure_reason = Some(format!("not started: {reason}"));
                let event = event(
                    Some(attempt.attempt),
                    JobState::Submitted,
                    JobState::Queued,
                    format!("waiting: {reason}"),
                );
                self.store
                    .job_save(&mut job, Some(&attempt), Some(&event))
                    .await?;
                Err(PassError::AtCapacity)
            }
            Err(BackendError::NotFound(reason)) => {
                tracing::warn!(%reason, "submit failed; retrying next pass");
                Err(PassError::Backend(BackendError::NotFound(reason)))
            }
        }
    }

    async fn current_attempt(&self, job: &Job) -> Result<Option<Attempt>, PassError> {
        Ok(self.store.attempt_get(&job.id, job.attempts).await?)
    }

    async fn observe(&self, mut job: Job) -> Result<(), PassError> {
        let Some(attempt) = self.current_attempt(&job).await? else {
            return Ok(());
        };
        let Some(backend_ref) = attempt.backend_ref.clone() else {
            // Recorded but never handed to the backend (a crash or a transient failure).
            return self.submit(job, attempt).await;
        };
        if let Some(limit) = self.timed_out(&job) {
            return match self
                .backend
                .stop(&backend_ref, StopReason::TimedOut)
                .await?
            {
                StopProgress::Stopping => Ok(()),
                StopProgress::Gone => {
                    let reason = format!("timed out: still running after timeoutSeconds={limit}");
                    self.fail_attempt(job, attempt, FailureClass::Timeout, reason, None)
                        .await
                }
            };
        }
        match self.backend.status(&backend_ref).await? {
            AttemptStatus::Pending { .. } => Ok(()),
            AttemptStatus::Running {
                spark_ui_url,
                detail,
            } => {
                let new_url = spark_ui_url.is_some() && spark_ui_url != job.spark_ui_url;
                if job.state == JobState::Running && !new_url {
                    return Ok(());
                }
                let from = job.state;
                job.state = JobState::Running;
                job.spark_ui_url = spark_ui_url.or(job.spark_ui_url.take());
                let mut attempt = attempt;
                attempt.state = JobState::Running;
                let event = (from != JobState::Running).then(|| {
                    let mut e = event(
                        Some(attempt.attempt),
                        from,
                        JobState::Running,
                        "the driver is running".into(),
                    );
                    e.detail = Some(detail);
                    e
                });
                self.store
                    .job_save(&mut job, Some(&attempt), event.as_ref())
                    .await?;
                Ok(())
            }
            AttemptStatus::Succeeded { detail } => self.succeed(job, attempt, detail).await,
            AttemptStatus::Failed { class, reason } => {
                let detail = Some(reason.clone());
                self.fail_attempt(job, attempt, class, reason, detail).await
            }
        }
    }

    fn timed_out(&self, job: &Job) -> Option<u64> {
        let limit = job.spec.timeout_seconds?;
        let started = job.started_at?;
        let elapsed = Utc::now().signed_duration_since(started).num_seconds();
        (elapsed >= 0 && elapsed as u64 >= limit).then_some(limit)
    }

    async fn succeed(
        &self,
        mut job: Job,
        mut attempt: Attempt,
        detail: String,
    ) -> Result<(), PassError> {
        let now = Utc::now();
        attempt.state = JobState::Succeeded;
        attempt.ended_at = Some(now);
        let mut e = event(
            Some(attempt.attempt),
            job.state,
            JobState::Succeeded,
            "the application succeeded".into(),
        );
        e.detail = Some(detail);
        job.state = JobState::Succeeded;
        job.finished_at = Some(now);
        job.failure_reason = None;
        job.failure_class = None;
        self.store
            .job_save(&mut job, Some(&attempt), Some(&e))
            .await?;
        metrics::counter!("sk8_jobs_finished_total", "state" => "SUCCEEDED").increment(1);
        Ok(())
    }

    /// Ends an attempt as failed and decides: another attempt after a backoff, or FAILED.
    async fn fail_attempt(
        &self,
        mut job: Job,
        mut attempt: Attempt,
        class: FailureClass,
        reason: String,
        detail: Option<String>,
    ) -> Result<(), PassError> {
        let now = Utc::now();
        attempt.state = JobState::Failed;
        attempt.ended_at = Some(now);
        attempt.failure_reason = Some(reason.clone());
        attempt.failure_class = Some(class);
        let from = job.state;
        let retry = class.retryable() && job.attempts < job.max_attempts();
        let summary = if retry {
            let delay = self.backoff(&job);
            job.state = JobState::Retrying;
            job.next_attempt_at = Some(now + delay);
            format!(
                "attempt {} of {} failed ({}); retrying in {}s: {reason}",
                attempt.attempt,
                job.max_attempts(),
                class.as_str(),
                delay.num_seconds()
            )
        } else {
            job.state = JobState::Failed;
            job.finished_at = Some(now);
            metrics::counter!("sk8_jobs_finished_total", "state" => "FAILED").increment(1);
            format!(
                "attempt {} failed ({}): {reason}",
                attempt.attempt,
                class.as_str()
            )
        };
        job.failure_reason = Some(reason);
        job.failure_class = Some(class);
        let mut e = event(Some(attempt.attempt), from, job.state, summary);
        e.detail = detail;
        self.store
            .job_save(&mut job, Some(&attempt), Some(&e))
            .await?;
        Ok(())
    }

    /// `base × 2^(n-1)` after the n-th attempt, capped.
    fn backoff(&self, job: &Job) -> chrono::Duration {
        let base = job
            .spec
            .retry
            .backoff_seconds
            .map(Duration::from_secs)
            .unwrap_or(self.settings.retry_backoff);
        let factor = 1u32 << job.attempts.saturating_sub(1).min(16);
        let delay = base
            .saturating_mul(factor)
            .min(self.settings.max_retry_backoff);
        chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
    }

    /// Stops the live attempt of a CANCELLING job; CANCELLED once nothing of it runs. An attempt
    /// that already ended keeps its true outcome.
    async fn finish_cancel(&self, mut job: Job) -> Result<(), PassError> {
        let attempt = self.current_attempt(&job).await?;
        let backend_ref = attempt.as_ref().and_then(|a| a.backend_ref.clone());
        if let (Some(attempt), Some(backend_ref)) = (attempt.clone(), backend_ref) {
            match self.backend.status(&backend_ref).await? {
                AttemptStatus::Succeeded { detail } => {
                    return self.succeed(job, attempt, detail).await;
                }
                AttemptStatus::Failed {
                    class: FailureClass::Application,
                    reason,
                } => {
                    let detail = Some(reason.clone());
                    job.spec.retry.max_attempts = job.attempts; // a cancelled job is not retried
                    return self
                        .fail_attempt(job, attempt, FailureClass::Application, reason, detail)
                        .await;
                }
                _ => {}
            }
            if self
                .backend
                .stop(&backend_ref, StopReason::Cancelled)
                .await?
                == StopProgress::Stopping
            {
                return Ok(());
            }
        }
        let now = Utc::now();
        let attempt = attempt.map(|mut a| {
            a.state = JobState::Cancelled;
            a.ended_at = Some(now);
            a
        });
        job.state = JobState::Cancelled;
        job.finished_at = Some(now);
        let e = event(
            attempt.as_ref().map(|a| a.attempt),
            JobState::Cancelling,
            JobState::Cancelled,
            "cancelled; nothing of it runs any more".into(),
        );
        self.store
            .job_save(&mut job, attempt.as_ref(), Some(&e))
            .await?;
        metrics::counter!("sk8_jobs_finished_total", "state" => "CANCELLED").increment(1);
        Ok(())
    }
}

fn event(attempt: Option<u32>, from: JobState, to: JobState, reason: String) -> NewEvent {
    metrics::counter!("sk8_job_transitions_total", "to" => to.as_str()).increment(1);
    NewEvent {
        attempt,
        from: Some(from),
        to,
        reason,
        detail: None,
    }
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the backend is at capacity")]
    AtCapacity,
}
