//! The job reconciler: compares live jobs in the store with what their backend reports, and
//! moves each along `QUEUED → SUBMITTED → RUNNING → SUCCEEDED | FAILED | CANCELLED` (via
//! `RETRYING` and `CANCELLING`), writing an event for every transition.
//!
//! It is event-driven with a level-triggered safety net. Each turn of the loop reads the jobs
//! someone announced through [`Wake`] (a watch event, a process exit, a cancel), the jobs whose
//! timeout is due, and a bounded batch of waiting jobs to start; every `resync` it reads every
//! live job, page by page, in case something was never announced. Reads come in batches with
//! their current attempts, so the cost of a turn follows what changed, not how many jobs live.
//!
//! A turn never retries inside itself: what fails is looked at again by the next turn. Every
//! write is conditional on the job's version, so a concurrent cancel is never overwritten: the
//! job is re-read and decided again.

pub mod namespaces;
mod orphans;
mod remediate;
pub mod sessions;
mod stop;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::MutexGuard;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backend::{
    AttemptRequest, AttemptStatus, Backend, BackendError, StopProgress, StopReason,
};
use crate::domain::{Attempt, FailureClass, Job, JobId, JobState, NewEvent};
use crate::history::Objects;
use crate::lease::Lease;
use crate::remediation::Remediation;
use crate::service::namespaces::guard::NamespaceGuard;
use crate::store::{Fence, LiveJob, LiveScope, Store, StoreError};
use crate::telemetry::run_trace;
use crate::wake::Wake;

/// How many live jobs are observed at once.
const OBSERVE_CONCURRENCY: usize = 16;
/// How many live jobs one read brings in (a page of the resync, a batch of announced jobs).
const READ_BATCH: u32 = 500;
/// How many waiting jobs one turn may start, and for how long it may keep starting. Starting is
/// sequential (capacity is handed out in order), so without a bound a burst of thousands of
/// submits makes one turn take minutes, and no change of a running job is noticed meanwhile;
/// the next turn starts the rest at once.
const STARTS_PER_TURN: u32 = 64;
const START_BUDGET: Duration = Duration::from_millis(200);
/// How many waiting jobs one turn reads at most while looking for ones that can start (jobs
/// bound for an unreachable cluster are passed over, and the turn reads further).
const WAITING_SCAN_PER_TURN: usize = 2_000;

pub use orphans::{OrphanPolicy, OrphanSettings};

#[derive(Clone, Debug)]
pub struct ReconcilerSettings {
    /// The longest a turn waits for an announcement (retry backoffs and other replicas' submits
    /// are noticed at this pace).
    pub interval: Duration,
    /// How often every live job is read, announced or not.
    pub resync: Duration,
    pub retry_backoff: Duration,
    pub max_retry_backoff: Duration,
    pub orphans: OrphanSettings,
    /// `limits.maxRunningJobsPerTeam` (0: no cap).
    pub max_running_per_team: u32,
}

pub struct Reconciler {
    store: Store,
    backend: Arc<dyn Backend>,
    settings: ReconcilerSettings,
    wake: Arc<Wake>,
    /// When jobs with `timeoutSeconds` run out of time, so they are looked at then.
    deadlines: Mutex<BTreeSet<(DateTime<Utc>, JobId)>>,
    /// Held from counting a team's started jobs to saving the new start, so concurrent starts
    /// cannot pass the per-team cap together.
    team_starts: tokio::sync::Mutex<()>,
    /// The `jobs` lease: turns run only while this replica holds it (none: always, for tests).
    lease: Option<Arc<Lease>>,
    /// The term this turn acts under: every save carries it.
    fence: Mutex<Option<Fence>>,
    /// The rules and budgets that decide what follows a failed attempt.
    remediation: Arc<Remediation>,
    /// Caps resized retries at the team namespace's LimitRange maximum and quota.
    guard: Option<NamespaceGuard>,
    /// Where a cancelled or timed-out attempt's driver log is copied before it is stopped.
    history: Option<Objects>,
}

/// What one turn did: for its log line, and what the next turn looks at again.
#[derive(Debug, Default)]
struct TurnReport {
    looked_at: usize,
    errors: usize,
    again: HashSet<JobId>,
}

impl TurnReport {
    fn record(&mut self, id: JobId, result: Result<(), PassError>) {
        self.looked_at += 1;
        match result {
            Ok(()) | Err(PassError::AtCapacity { .. } | PassError::Undecided) => {}
            Err(PassError::Changed) => {
                self.again.insert(id);
            }
            Err(_) => {
                self.errors += 1;
                self.again.insert(id);
            }
        }
    }
}

impl Reconciler {
    pub fn new(
        store: Store,
        backend: Arc<dyn Backend>,
        settings: ReconcilerSettings,
        wake: Arc<Wake>,
    ) -> Self {
        Reconciler {
            store,
            backend,
            settings,
            wake,
            deadlines: Mutex::default(),
            team_starts: tokio::sync::Mutex::default(),
            lease: None,
            fence: Mutex::default(),
            remediation: Arc::default(),
            guard: None,
            history: None,
        }
    }

    /// Copies the driver log of an attempt it cancels or times out into `objects` first.
    pub fn with_history(mut self, objects: Objects) -> Self {
        self.history = Some(objects);
        self
    }

    /// Decides failed attempts by `remediation` (the defaults otherwise).
    pub fn with_remediation(
        mut self,
        remediation: Arc<Remediation>,
        guard: NamespaceGuard,
    ) -> Self {
        self.remediation = remediation;
        self.guard = Some(guard);
        self
    }

    /// Runs turns only while this replica holds `lease`, and fences every save with its term.
    pub fn with_lease(mut self, lease: Arc<Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Waits while another replica holds the lease; the term to act under once this one does
    /// (`Ok(None)` without a lease), or `Err` on shutdown.
    async fn hold(&self, shutdown: &CancellationToken) -> Result<Option<Fence>, ()> {
        let Some(lease) = &self.lease else {
            return Ok(None);
        };
        loop {
            if let Some(fence) = lease.current() {
                return Ok(Some(fence));
            }
            *self.fence.lock().unwrap_or_else(|p| p.into_inner()) = None;
            tokio::select! {
                _ = shutdown.cancelled() => return Err(()),
                _ = lease.changed() => {}
            }
        }
    }

    /// Runs turns until `shutdown` is cancelled, with an orphan sweep every so often. The first
    /// turn reads every live job (what happened while sk8 was down is announced by nobody).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut sweep = orphans::OrphanSweep::new(self.settings.orphans.clone());
        let mut last_sweep: Option<Instant> = None;
        let mut last_resync: Option<Instant> = None;
        let mut again = HashSet::new();
        let mut term = None;
        loop {
            let Ok(fence) = self.hold(&shutdown).await else {
                break;
            };
            if fence.as_ref().map(|f| f.term) != term {
                // Newly taken: what happened under the previous holder was announced there.
                term = fence.as_ref().map(|f| f.term);
                last_resync = None;
                last_sweep = Some(Instant::now());
            }
            *self.fence.lock().unwrap_or_else(|p| p.into_inner()) = fence.clone();
            if last_sweep.is_none_or(|at| at.elapsed() >= sweep.every()) {
                last_sweep = Some(Instant::now());
                let still_held = || self.still_holds(fence.as_ref());
                if let Err(err) = sweep.run(&self.store, &self.backend, &still_held).await {
                    tracing::warn!(error = %err, "orphan sweep failed; the next one retries");
                }
            }
            let pending = self.wake.take();
            let announced = pending.since;
            let start = Instant::now();
            let mut report = if pending.all
                || last_resync.is_none_or(|at| at.elapsed() >= self.resync_every())
            {
                last_resync = Some(Instant::now());
                self.resync().await
            } else {
                let mut ids = pending.jobs;
                ids.extend(again.drain());
                ids.extend(self.due_deadlines());
                let mut report = self.look_at(ids).await;
                if self.lease.is_some() {
                    self.look_at_cancelling(&mut report).await;
                }
                report
            };
            self.start_waiting(&mut report).await;
            metrics::histogram!("sk8_reconcile_pass_seconds").record(start.elapsed().as_secs_f64());
            if let Some(announced) = announced {
                metrics::histogram!("sk8_reconcile_lag_seconds")
                    .record(announced.elapsed().as_secs_f64());
            }
            if report.errors > 0 {
                tracing::warn!(
                    looked_at = report.looked_at,
                    errors = report.errors,
                    "reconcile turn had errors; the next turn retries"
                );
            }
            again = report.again;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.next_wait()) => {}
            }
        }
        tracing::info!("reconciler stopped");
    }

    /// Observes every live job, a page at a time.
    async fn resync(&self) -> TurnReport {
        let mut report = TurnReport::default();
        let mut after: Option<JobId> = None;
        let mut live = 0;
        loop {
            let page = match self
                .store
                .job_live_batch(LiveScope::After(after.as_ref()), READ_BATCH)
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "reconciler cannot read live jobs");
                    report.errors += 1;
                    return report;
                }
            };
            let full = page.len() == READ_BATCH as usize;
            live += page.len();
            after = page.last().map(|live| live.job.id.clone());
            self.observe_all(page, &mut report).await;
            if !full {
                break;
            }
        }
        metrics::gauge!("sk8_reconcile_live_jobs").set(live as f64);
        report
    }

    /// Whether this replica still acts under `fence` (always, without a lease).
    fn still_holds(&self, fence: Option<&Fence>) -> bool {
        match &self.lease {
            None => true,
            Some(lease) => lease.current().as_ref() == fence,
        }
    }

    /// Observes the jobs being cancelled, wherever the cancel came in.
    async fn look_at_cancelling(&self, report: &mut TurnReport) {
        match self
            .store
            .job_live_batch(LiveScope::Cancelling, READ_BATCH)
            .await
        {
            Ok(jobs) => self.observe_all(jobs, report).await,
            Err(err) => {
                tracing::warn!(error = %err, "reconciler cannot read cancelling jobs");
                report.errors += 1;
            }
        }
    }

    /// Observes the named jobs that are still live.
    async fn look_at(&self, ids: HashSet<JobId>) -> TurnReport {
        let mut report = TurnReport::default();
        let ids: Vec<JobId> = ids.into_iter().collect();
        for chunk in ids.chunks(READ_BATCH as usize) {
            match self
                .store
                .job_live_batch(LiveScope::Ids(chunk), READ_BATCH)
                .await
            {
                Ok(jobs) => self.observe_all(jobs, &mut report).await,
                Err(err) => {
                    tracing::warn!(error = %err, "reconciler cannot read announced jobs");
                    report.errors += 1;
                    report.again.extend(chunk.iter().cloned());
                }
            }
        }
        report
    }

    /// Observes started jobs concurrently; waiting ones are left to [`Self::start_waiting`].
    async fn observe_all(&self, jobs: Vec<LiveJob>, report: &mut TurnReport) {
        let started = jobs
            .into_iter()
            .filter(|live| !matches!(live.job.state, JobState::Queued | JobState::Retrying));
        let mut results = futures::stream::iter(started)
            .map(|live| async move { (live.job.id.clone(), self.reconcile(live).await) })
            .buffer_unordered(OBSERVE_CONCURRENCY);
        while let Some((id, result)) = results.next().await {
            report.record(id, result);
        }
    }

    /// Starts waiting jobs in order, oldest first, up to [`STARTS_PER_TURN`] or for
    /// [`START_BUDGET`]; a job whose target has no capacity is passed over, and the turn ends
    /// when nothing can start anywhere. When the turn used up its share, the next follows at
    /// once for the rest.
    async fn start_waiting(&self, report: &mut TurnReport) {
        let budget = Instant::now() + START_BUDGET;
        let mut started = 0;
        let mut scanned = 0;
        let mut after: Option<JobId> = None;
        while scanned < WAITING_SCAN_PER_TURN {
            let scope = LiveScope::Waiting {
                now: Utc::now(),
                after: after.as_ref(),
            };
            let batch = match self.store.job_live_batch(scope, STARTS_PER_TURN).await {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::warn!(error = %err, "reconciler cannot read waiting jobs");
                    report.errors += 1;
                    return;
                }
            };
            let full = batch.len() == STARTS_PER_TURN as usize;
            scanned += batch.len();
            after = batch.last().map(|live| live.job.id.clone());
            let mut batch = batch.into_iter().peekable();
            while batch.peek().is_some() {
                // A few at once where the backend allows it; each group is finished before the
                // next, so nothing is left half-started when the turn stops.
                let group = batch.by_ref().take(self.backend.start_concurrency().max(1));
                let results =
                    futures::future::join_all(group.map(|live| async move {
                        (live.job.id.clone(), self.reconcile(live).await)
                    }))
                    .await;
                let mut full_everywhere = false;
                for (id, result) in results {
                    match result {
                        // Waiting for capacity is normal, not an error (and no immediate next
                        // turn: capacity frees up on its own schedule).
                        Err(PassError::AtCapacity { everywhere }) => full_everywhere |= everywhere,
                        // Waiting for its classification is neither a start nor an error.
                        Err(PassError::Undecided) => {}
                        result => {
                            started += usize::from(result.is_ok());
                            report.record(id, result);
                        }
                    }
                }
                if full_everywhere {
                    return;
                }
                if started >= STARTS_PER_TURN as usize || Instant::now() >= budget {
                    self.wake.queue();
                    return;
                }
            }
            if !full {
                return;
            }
        }
    }

    /// How often every live job is read: each interval when the backend does not announce
    /// every change (local processes: the Spark UI link appears in the driver log).
    fn resync_every(&self) -> Duration {
        if self.backend.announces_changes() {
            self.settings.resync
        } else {
            self.settings.interval
        }
    }

    /// Jobs whose timeout has come, taken off the schedule.
    fn due_deadlines(&self) -> Vec<JobId> {
        let now = Utc::now();
        let mut deadlines = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        while let Some(first) = deadlines.first().filter(|(at, _)| *at <= now) {
            due.push(first.1.clone());
            deadlines.pop_first();
        }
        due
    }

    /// Until the next turn: the interval, or sooner when a timeout comes first.
    fn next_wait(&self) -> Duration {
        let deadlines = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
        let until_deadline = deadlines
            .first()
            .map(|(at, _)| (*at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        until_deadline.map_or(self.settings.interval, |d| d.min(self.settings.interval))
    }

    async fn reconcile(&self, live: LiveJob) -> Result<(), PassError> {
        let span = tracing::info_span!("reconcile", job_id = %live.job.id, team = %live.job.team);
        let result = self.reconcile_job(live).instrument(span).await;
        if let Err(PassError::Store(err)) = &result {
            tracing::warn!(error = %err, "store write failed; retrying next turn");
        }
        result
    }

    async fn reconcile_job(&self, live: LiveJob) -> Result<(), PassError> {
        let LiveJob { job, attempt } = live;
        match job.state {
            JobState::Queued => self.start_attempt(job).await,
            JobState::Retrying if job.next_attempt_at.is_none() => {
                self.decide_pending(job, attempt).await
            }
            JobState::Retrying if job.next_attempt_at.is_some_and(|at| at <= Utc::now()) => {
                self.start_attempt(job).await
            }
            JobState::Submitted | JobState::Running => match attempt {
                Some(attempt) => self.observe(job, attempt).await,
                None => Ok(()),
            },
            JobState::Cancelling => self.finish_cancel(job, attempt).await,
            _ => Ok(()),
        }
    }

    /// Writes the job (with its attempt and event); [`PassError::Changed`] when someone else
    /// wrote it first, so the next turn reads it again. Transitions are counted here, once
    /// written: a save that lost the race changed nothing.
    async fn save(
        &self,
        job: &mut Job,
        attempt: Option<&Attempt>,
        event: Option<&NewEvent>,
    ) -> Result<(), PassError> {
        let fence = self.fence.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let saved = self
            .store
            .job_save_fenced(job, attempt, event, fence.as_ref())
            .await?;
        if !saved {
            return Err(PassError::Changed);
        }
        if let Some(event) = event {
            let to = event.to.as_str();
            metrics::counter!("sk8_job_transitions_total", "to" => to).increment(1);
            if event.to.is_terminal() {
                metrics::counter!("sk8_jobs_finished_total", "state" => to).increment(1);
            }
            crate::telemetry::workload::transition(job, attempt, event, Utc::now());
            self.trace(job, attempt, event).await;
        }
        Ok(())
    }

    /// Adds what a saved transition ended to the run's trace (`telemetry::run_trace`): the wait
    /// in the queue, an attempt, the run. Only while export is on; the trace is best effort.
    async fn trace(&self, job: &Job, attempt: Option<&Attempt>, event: &NewEvent) {
        if !run_trace::wanted() {
            return;
        }
        if event.to == JobState::Submitted
            && event.from == Some(JobState::Queued)
            && let Some(attempt) =
                attempt.filter(|a| a.attempt == 1 && job.started_at == Some(a.created_at))
        {
            run_trace::queued_ended(job, attempt.created_at);
        }
        // A failed attempt is saved twice: ended, then with remediation's decision; its span
        // goes once, with the decision.
        let finished = |a: &&Attempt| {
            a.ended_at.is_some() && !(a.state == JobState::Failed && a.remediation.is_none())
        };
        if let Some(attempt) = attempt.filter(finished) {
            match self.store.event_list(&job.id).await {
                Ok(events) => run_trace::attempt_ended(job, attempt, &events),
                Err(err) => tracing::debug!(error = %err, "attempt span without its events"),
            }
        }
        if event.to.is_terminal() {
            run_trace::run_ended(job);
        }
    }

    /// Records the next attempt first, then hands it to the backend, so a crash in between
    /// leaves an attempt the next pass finds and submits (idempotently) again.
    async fn start_attempt(&self, mut job: Job) -> Result<(), PassError> {
        if let Err(full) = self.backend.capacity(&job.spec) {
            return Err(PassError::AtCapacity {
                everywhere: full.everywhere,
            });
        }
        let team_slot = self.team_slot(&job.team).await?;
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
            remediation: None,
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
        self.save(&mut job, Some(&attempt), Some(&event)).await?;
        drop(team_slot);
        self.submit(job, attempt).await
    }

    /// Under `limits.maxRunningJobsPerTeam`, the right to start one more of `team`'s jobs (held
    /// until the start is saved); the job waits in QUEUED while the team is at its cap.
    async fn team_slot(&self, team: &str) -> Result<Option<MutexGuard<'_, ()>>, PassError> {
        let cap = self.settings.max_running_per_team;
        if cap == 0 {
            return Ok(None);
        }
        let slot = self.team_starts.lock().await;
        if self.store.job_count_started(team).await? >= i64::from(cap) {
            return Err(PassError::AtCapacity { everywhere: false });
        }
        Ok(Some(slot))
    }

    async fn submit(&self, mut job: Job, mut attempt: Attempt) -> Result<(), PassError> {
        let request = AttemptRequest {
            job_id: job.id.clone(),
            attempt: attempt.attempt,
            spec: job.spec.clone(),
            traceparent: run_trace::traceparent(&job, attempt.attempt),
            avoid: self.rerouted_from(&job, attempt.attempt).await?,
        };
        let asked = Utc::now();
        let submitted = self.backend.submit(&request).await;
        let error = submitted.as_ref().err().map(ToString::to_string);
        let step = run_trace::Step::since("backend.submit", asked, error);
        run_trace::attempt_step(&job, attempt.attempt, &step);
        match submitted {
            Ok(backend_ref) => {
                attempt.backend_ref = Some(backend_ref);
                match self.save(&mut job, Some(&attempt), None).await {
                    Err(PassError::Changed) => return self.changed_while_submitting(attempt).await,
                    saved => saved?,
                }
                // Look at the new attempt right away rather than a whole interval later.
                self.wake.job(job.id.clone());
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
                self.save(&mut job, Some(&attempt), Some(&event)).await?;
                Err(PassError::AtCapacity { everywhere: false })
            }
            Err(BackendError::NotFound(reason)) => {
                tracing::warn!(%reason, "submit failed; retrying next pass");
                Err(PassError::Backend(BackendError::NotFound(reason)))
            }
        }
    }

    /// The job changed while its attempt was being submitted: a cancel, usually, which saw no
    /// backend reference to stop. The reference is recorded on the attempt anyway; if the job
    /// is being cancelled, has ended or moved past the attempt, what was just created is
    /// stopped here (the cancel may have read the attempt before the reference was recorded).
    /// Nothing started is left running unrecorded.
    async fn changed_while_submitting(&self, attempt: Attempt) -> Result<(), PassError> {
        let backend_ref = attempt.backend_ref.clone().expect("a submitted attempt");
        self.store
            .attempt_record_ref(&attempt.job_id, attempt.attempt, &backend_ref)
            .await?;
        let job = self.store.job_get(&attempt.job_id).await?;
        let unwanted = job.as_ref().is_none_or(|job| {
            job.state.is_terminal()
                || job.state == JobState::Cancelling
                || job.attempts != attempt.attempt
        });
        if unwanted {
            tracing::info!(
                attempt = attempt.attempt,
                "the job was cancelled while its attempt was submitted; stopping the attempt"
            );
            self.backend
                .stop(&backend_ref, StopReason::Cancelled)
                .await?;
        }
        self.wake.job(attempt.job_id.clone());
        Err(PassError::Changed)
    }

    async fn observe(&self, mut job: Job, attempt: Attempt) -> Result<(), PassError> {
        let Some(backend_ref) = attempt.backend_ref.clone() else {
            // Recorded but never handed to the backend (a crash or a transient failure).
            return self.submit(job, attempt).await;
        };
        if let Some(limit) = self.timed_out(&job) {
            return match self
                .stop_keeping_log(&attempt, &backend_ref, StopReason::TimedOut)
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
                self.save(&mut job, Some(&attempt), event.as_ref()).await
            }
            AttemptStatus::Succeeded { detail } => self.succeed(job, attempt, detail).await,
            AttemptStatus::Failed { class, reason } => {
                let detail = Some(reason.clone());
                self.fail_attempt(job, attempt, class, reason, detail).await
            }
        }
    }

    /// The job's `timeoutSeconds` once it has run that long; until then its deadline is
    /// scheduled, so the turn at that moment looks at it.
    fn timed_out(&self, job: &Job) -> Option<u64> {
        let limit = job.spec.timeout_seconds?;
        let deadline = job.started_at? + chrono::Duration::seconds(limit.try_into().ok()?);
        if deadline <= Utc::now() {
            return Some(limit);
        }
        self.deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((deadline, job.id.clone()));
        None
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
        self.save(&mut job, Some(&attempt), Some(&e)).await?;
        if attempt.attempt > 1 {
            self.remember_size(&job, attempt.attempt).await;
        }
        Ok(())
    }

    /// Stops the live attempt of a CANCELLING job; CANCELLED once nothing of it runs. An attempt
    /// that already ended keeps its true outcome.
    async fn finish_cancel(&self, mut job: Job, attempt: Option<Attempt>) -> Result<(), PassError> {
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
                    // Decided at once and not retried: the job is being cancelled.
                    let detail = Some(reason.clone());
                    return self
                        .fail_attempt(job, attempt, FailureClass::Application, reason, detail)
                        .await;
                }
                _ => {}
            }
            if self
                .stop_keeping_log(&attempt, &backend_ref, StopReason::Cancelled)
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
        self.save(&mut job, attempt.as_ref(), Some(&e)).await
    }
}

fn event(attempt: Option<u32>, from: JobState, to: JobState, reason: String) -> NewEvent {
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
    AtCapacity { everywhere: bool },
    /// Someone else wrote the job first; it is read again.
    #[error("the job changed concurrently")]
    Changed,
    /// A failed attempt waits for its classification.
    #[error("the failed attempt is not classified yet")]
    Undecided,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::noop::NoopBackend;
    use crate::domain::jobspec::Format;
    use crate::domain::{JobSpec, SpecDefaults};

    fn reconciler(store: Store) -> Reconciler {
        let settings = ReconcilerSettings {
            interval: Duration::from_secs(1),
            resync: Duration::from_secs(60),
            retry_backoff: Duration::from_secs(1),
            max_retry_backoff: Duration::from_secs(60),
            orphans: OrphanSettings {
                policy: OrphanPolicy::Report,
                every: Duration::from_secs(60),
                keep_finished: Duration::from_secs(60),
            },
            max_running_per_team: 0,
        };
        Reconciler::new(store, Arc::new(NoopBackend), settings, Arc::default())
    }

    /// Two writers of the same job version: the one that lost the race counts nothing.
    #[test]
    fn only_saved_transitions_are_counted() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let store = Store::in_memory().await;
                let body = br#"{"team":"t","env":"e","name":"n","mainApplicationFile":"/x.py"}"#;
                let defaults = SpecDefaults {
                    spark_version: "4.0.1".into(),
                    image: "i".into(),
                };
                let spec = JobSpec::parse(body, Format::Json, &defaults).unwrap();
                let job = Job::new(spec, None, Utc::now());
                store.job_insert(&job, "digest").await.unwrap();
                let reconciler = reconciler(store);
                let cancel = event(None, JobState::Queued, JobState::Cancelled, "test".into());
                let (mut first, mut second) = (job.clone(), job);
                first.state = JobState::Cancelled;
                second.state = JobState::Cancelled;
                reconciler
                    .save(&mut first, None, Some(&cancel))
                    .await
                    .unwrap();
                let lost = reconciler.save(&mut second, None, Some(&cancel)).await;
                assert!(matches!(lost, Err(PassError::Changed)), "{lost:?}");
            });
        });
        let text = metrics.render();
        assert!(
            text.contains("sk8_job_transitions_total{to=\"CANCELLED\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sk8_jobs_finished_total{state=\"CANCELLED\"} 1\n"),
            "{text}"
        );
    }
}
