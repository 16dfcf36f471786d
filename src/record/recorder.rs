//! The recorder: fills in the run record of every ended attempt, off the reconciler's path, a
//! bounded number at a time (`history.summaryWorkers`).
//!
//! For each pending record, in this order: ask the backend what it knows of the end (evidence,
//! failed executors' log tails, the application id), archive the driver log and the tails into
//! the history location, let the backend release what it kept for this (the retained
//! SparkApplication), summarize the event log, store it all. Nothing here holds a job up: the
//! job already has its outcome, and a record whose gathering fails stays pending for the next
//! pass. A pass after a crash finds what the first one archived (the driver log is read back from
//! the archive when the backend no longer has it).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use super::{AttemptRecord, RecordState, archive, archive_prefix};
use crate::backend::{Backend, BackendRef, Ended};
use crate::domain::{Attempt, FailureClass, Job, JobSpec, JobState};
use crate::history::{Objects, RunSummary, SummaryStatus};
use crate::remediation::{Facts, Remediation, facts};
use crate::store::{Store, StoreError};
use crate::telemetry::run_trace::{self, Steps};
use crate::wake::Wake;

/// How many pending records one pass reads per worker.
const BATCH_PER_WORKER: u32 = 4;

/// The history location, opened, and the History Server that reads it.
#[derive(Clone, Debug)]
pub struct History {
    pub objects: Objects,
    pub server_url: Option<String>,
}

impl History {
    /// The History Server's page of an application, when a server is configured.
    pub fn server_link(&self, app_id: &str) -> Option<String> {
        let base = self.server_url.as_deref()?.trim_end_matches('/');
        Some(format!("{base}/history/{app_id}/"))
    }
}

pub struct Recorder {
    store: Store,
    backend: Arc<dyn Backend>,
    history: History,
    workers: usize,
    every: Duration,
    /// The `jobs` lease: only its holder records (none: always).
    lease: Option<Arc<crate::lease::Lease>>,
    /// Classifies failed attempts from their records.
    remediation: Arc<Remediation>,
    /// Told when a failed attempt is classified, so its decision follows at once.
    wake: Option<Arc<Wake>>,
}

impl Recorder {
    pub fn new(
        store: Store,
        backend: Arc<dyn Backend>,
        history: History,
        workers: usize,
        every: Duration,
    ) -> Self {
        Recorder {
            store,
            backend,
            history,
            workers: workers.max(1),
            every,
            lease: None,
            remediation: Arc::default(),
            wake: None,
        }
    }

    /// Classifies failed attempts by `remediation` and announces each on `wake`.
    pub fn with_remediation(mut self, remediation: Arc<Remediation>, wake: Arc<Wake>) -> Self {
        self.remediation = remediation;
        self.wake = Some(wake);
        self
    }

    /// Records only while this replica holds `lease` (the one that ends attempts).
    pub fn with_lease(mut self, lease: Arc<crate::lease::Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Records pending attempts every `every` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(err) = self.pass().await {
                tracing::warn!(error = %err, "the recorder cannot read pending run records; retrying");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.every) => {}
            }
        }
        tracing::info!("recorder stopped");
    }

    /// Whether this replica may record now. Asked again before each step that acts on what
    /// another replica may be recording too (reading the batch, releasing an application):
    /// a replica paused mid-pass resumes with its lease expired and must leave the attempts
    /// to its successor rather than delete their applications under it.
    fn holds(&self) -> bool {
        self.lease.as_ref().is_none_or(|l| l.current().is_some())
    }

    /// Records one batch of pending attempts, `workers` at once.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        if !self.holds() {
            return Ok(0);
        }
        let limit = BATCH_PER_WORKER * self.workers as u32;
        let pending = self.store.record_pending(limit).await?;
        let count = pending.len();
        futures::stream::iter(pending)
            .for_each_concurrent(self.workers, |record| async move {
                let (job, attempt) = (record.job_id.clone(), record.attempt);
                if let Err(err) = self.record(record).await {
                    tracing::warn!(job_id = %job, attempt, error = %err, "recording the attempt failed; the next pass retries");
                }
            })
            .await;
        Ok(count)
    }

    async fn record(&self, mut record: AttemptRecord) -> Result<(), StoreError> {
        let Some((job, attempt)) = self.attempt_of(&record).await? else {
            // The job is gone (its record goes with it) or never ran: nothing to gather.
            return Ok(());
        };
        let backend_ref = attempt.backend_ref.clone().unwrap_or_default();
        // Each step is timed for the attempt's trace (`record` and its children).
        let mut steps = Steps::start();
        let mut ended = self.backend.ended(&backend_ref).await;
        self.or_before_stop(&record, &attempt, &mut ended).await;
        steps.done("backend.ended", None);
        let (driver_log, log_tail) = self
            .archive_driver_log(&backend_ref, &record, &mut ended)
            .await;
        let prefix = archive_prefix(&record.job_id, record.attempt);
        record.driver_log = driver_log;
        let executor_logs: Vec<(String, String)> = ended
            .executor_tails
            .iter()
            .map(|(pod, tail)| (pod.clone(), facts::tail(tail)))
            .collect();
        archive::keep_tails(&self.history.objects, &prefix, &mut ended).await;
        let missing = record
            .driver_log
            .is_none()
            .then(|| "no driver log archived".to_owned());
        steps.done("archive logs", missing);
        if !self.holds() {
            tracing::info!(job_id = %record.job_id, attempt = record.attempt,
                "the jobs lease was lost while recording; the holder records this attempt");
            return Ok(());
        }
        let released = self.backend.release(&backend_ref).await;
        if let Err(err) = &released {
            tracing::warn!(job_id = %record.job_id, attempt = record.attempt, error = %err,
                "could not release the ended attempt; the orphan sweep will");
        }
        let error = released.err().map(|e| e.to_string());
        steps.done("backend.release", error);
        let app_id = ended.app_id.clone().or(record.app_id.take());
        let summary = self.summarize(&job.spec, app_id.as_deref()).await;
        let unread = (summary.status == SummaryStatus::Missing)
            .then(|| (summary.reason.clone()).unwrap_or_else(|| "no event log read".into()));
        steps.done("summarize event log", unread);
        if attempt.state == JobState::Failed {
            let facts = Facts {
                evidence: ended.evidence.clone(),
                driver_log: log_tail,
                executor_logs,
                ..Facts::from_reason(
                    attempt.failure_class,
                    attempt.failure_reason.as_deref().unwrap_or_default(),
                )
            }
            .with_summary(&summary);
            let classification = self.remediation.classify(&job.team, &facts);
            metrics::counter!("sk8_failures_classified_total", "class" => classification.class.as_str())
                .increment(1);
            record.classification = Some(classification);
        }
        record.headline = Some(summary.headline());
        record.summary = Some(serde_json::to_value(&summary).expect("a summary serializes"));
        record.app_id = app_id;
        record.evidence = Some(ended.evidence);
        record.state = RecordState::Recorded;
        record.recorded_at = Some(Utc::now());
        if !self
            .store
            .record_save(&record, RecordState::Pending)
            .await?
        {
            tracing::info!(job_id = %record.job_id, attempt = record.attempt,
                "another replica recorded this attempt first; keeping its record");
            return Ok(());
        }
        metrics::counter!("sk8_attempts_recorded_total").increment(1);
        run_trace::recorded(&job, record.attempt, &steps);
        if summary.status != SummaryStatus::Missing {
            crate::telemetry::workload::resources(
                &job.team,
                &job.env,
                &summary.allocation,
                &summary.memory,
            );
        }
        if let (Some(wake), Some(_)) = (&self.wake, &record.classification) {
            // Its job waits among the waiting jobs for this classification.
            wake.queue();
        }
        Ok(())
    }

    /// The job and the attempt, if both are still there.
    async fn attempt_of(
        &self,
        record: &AttemptRecord,
    ) -> Result<Option<(Job, Attempt)>, StoreError> {
        let Some(job) = self.store.job_get(&record.job_id).await? else {
            return Ok(None);
        };
        let attempts = self.store.attempt_list(&record.job_id).await?;
        Ok(attempts
            .into_iter()
            .find(|a| a.attempt == record.attempt && a.backend_ref.is_some())
            .map(|a| (job, a)))
    }

    /// Copies the driver log into the archive (its end is kept for classification); its key,
    /// or none with the reason in the evidence's gaps. An archive left by an earlier pass, or
    /// by the reconciler just before it stopped the attempt, is kept (and its end read back)
    /// when the backend no longer has the log.
    async fn archive_driver_log(
        &self,
        backend_ref: &BackendRef,
        record: &AttemptRecord,
        ended: &mut Ended,
    ) -> (Option<String>, String) {
        let objects = &self.history.objects;
        let key = archive::driver_log_key(&record.job_id, record.attempt);
        let gap = match archive::copy_driver_log(self.backend.as_ref(), objects, backend_ref, &key)
            .await
        {
            Ok(end) => return (Some(key), end),
            Err(gap) => gap,
        };
        if objects.head(&key).await.is_ok() {
            let end = archive::archived_end(objects, &key).await;
            return (Some(key), end);
        }
        ended.evidence.gaps.push(gap);
        (None, String::new())
    }

    /// For an attempt sk8 stopped (a cancel, a timeout: nothing is kept for any other), what
    /// was kept of its pods just before: afterwards they are being deleted (gone, or some left
    /// over), which says nothing of the run. A local process's exit says how it ended, and is
    /// kept.
    async fn or_before_stop(&self, record: &AttemptRecord, attempt: &Attempt, ended: &mut Ended) {
        let stopped = attempt.state == JobState::Cancelled
            || attempt.failure_class == Some(FailureClass::Timeout);
        if !stopped || ended.evidence.process.is_some() {
            return;
        }
        let objects = &self.history.objects;
        if let Some(kept) = archive::kept_before_stop(objects, &record.job_id, record.attempt).await
        {
            ended.app_id = ended.app_id.take().or(kept.app_id);
            ended.evidence = kept.evidence;
        }
    }

    /// The summary of the attempt's event log; says why when there is none to read.
    async fn summarize(&self, spec: &JobSpec, app_id: Option<&str>) -> RunSummary {
        if !super::confs::event_log_enabled(&spec.spark_conf) {
            return RunSummary::missing(
                "event logging disabled by the job's sparkConf or its team's namespace (eventLog)",
            );
        }
        match app_id {
            Some(app_id) => crate::history::summarize(&self.history.objects, app_id).await,
            None => RunSummary::missing(
                "the application id is unknown: the driver never announced its event log",
            ),
        }
    }
}

/// A driver log archived in the history location, as a stream for `GET /v1/jobs/{id}/logs`.
pub async fn archived_log(
    objects: &Objects,
    key: &str,
) -> Result<crate::backend::LogStream, crate::history::ObjectsError> {
    let stream = objects.get(key).await?;
    Ok(Box::pin(stream.map_err(std::io::Error::other)))
}
