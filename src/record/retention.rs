//! Retention of archived logs (`history.retentionDays`): once an attempt ended longer ago than
//! that, its archived driver log, its failed executors' log tails and Spark's event log are
//! deleted from the history location. The record itself (application id, evidence, summary)
//! stays with its job: it is small, and what remediation and sizing advice learn from.
//!
//! One replica does it (the holder of the `global` lease); a pass deletes a bounded batch, so a
//! large backlog (retention shortened, a long outage of the store) is worked off a batch per
//! pass instead of in one long sweep.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{AttemptRecord, RecordState, archive_prefix};
use crate::history::{Objects, ObjectsError, eventlog};
use crate::lease::Lease;
use crate::store::{Store, StoreError};

/// How many expired records one pass deletes at most.
const BATCH: u32 = 100;

pub struct Retention {
    store: Store,
    objects: Objects,
    keep: Duration,
    every: Duration,
    lease: Option<Arc<Lease>>,
}

/// Why a pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    #[error("the history location: {0}")]
    Objects(#[from] ObjectsError),
}

impl Retention {
    /// Deletes the archived logs of attempts that ended more than `keep` ago, checking every
    /// `every`.
    pub fn new(store: Store, objects: Objects, keep: Duration, every: Duration) -> Self {
        Retention {
            store,
            objects,
            keep,
            every,
            lease: None,
        }
    }

    /// Deletes only while this replica holds `lease`.
    pub fn with_lease(mut self, lease: Arc<Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Runs passes until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let holder = self.lease.as_ref().is_none_or(|l| l.current().is_some());
            if holder {
                match self.pass(Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(attempts = n, "retention: archived logs deleted"),
                    Err(err) => {
                        tracing::warn!(error = %err, "retention pass failed; the next one retries");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.every) => {}
            }
        }
    }

    /// Deletes the logs of one batch of attempts that ended before `now - keep`; how many.
    pub async fn pass(&self, now: DateTime<Utc>) -> Result<usize, RetentionError> {
        let keep = chrono::Duration::from_std(self.keep).unwrap_or(chrono::Duration::MAX);
        let before = now
            .checked_sub_signed(keep)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let expired = self.store.record_expired(before, BATCH).await?;
        let count = expired.len();
        for record in expired {
            self.expire(record, now).await?;
        }
        Ok(count)
    }

    /// Deletes one attempt's logs, then marks its record: a failure in between leaves the
    /// record unmarked, so the next pass deletes again (deleting is idempotent).
    async fn expire(
        &self,
        mut record: AttemptRecord,
        now: DateTime<Utc>,
    ) -> Result<(), RetentionError> {
        let mut deleted = self
            .objects
            .delete_prefix(&archive_prefix(&record.job_id, record.attempt))
            .await?;
        if let Some(app_id) = &record.app_id {
            deleted += self.delete_event_log(app_id).await?;
        }
        record.driver_log = None;
        record.logs_deleted_at = Some(now);
        // Retention reads only recorded records; it marks them and leaves their state.
        self.store
            .record_save(&record, RecordState::Recorded)
            .await?;
        metrics::counter!("sk8_history_objects_deleted_total").increment(deleted);
        Ok(())
    }

    /// Deletes an application's event log: its file, or a rolling log's whole folder (its
    /// parts and the appstatus marker beside them).
    async fn delete_event_log(&self, app_id: &str) -> Result<u64, ObjectsError> {
        let Some(log) = eventlog::find(&self.objects, app_id).await? else {
            return Ok(0);
        };
        let folder = log
            .files
            .first()
            .and_then(|f| f.key.rsplit_once('/'))
            .map(|(folder, _)| folder.to_string());
        if let Some(folder) = folder {
            return self.objects.delete_prefix(&folder).await;
        }
        for file in &log.files {
            self.objects.delete(&file.key).await?;
        }
        Ok(log.files.len() as u64)
    }
}
