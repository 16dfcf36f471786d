//! Run records ([`crate::record`]): one row per ended attempt, written `pending` with the end of
//! the attempt (in `job_save`'s transaction), filled in by the recorder, trimmed by retention.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row};

use super::rows::time;
use super::{Store, StoreError, millis, timed};
use crate::domain::JobId;
use crate::record::{AttemptRecord, Evidence, RecordState};

const COLUMNS: &str = "job_id, attempt, state, app_id, driver_log, evidence, summary, headline, \
    ended_at, recorded_at, logs_deleted_at, classification";

/// The records still to gather: how many, and when the oldest one's attempt ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub pending: i64,
    pub oldest: Option<DateTime<Utc>>,
}

impl Store {
    /// How far behind the recorder is.
    pub async fn record_backlog(&self) -> Result<Backlog, StoreError> {
        timed("record_backlog", async {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, MIN(ended_at) AS oldest FROM attempt_records \
                 WHERE state = 'pending'",
            )
            .fetch_one(&self.pool)
            .await?;
            let oldest: Option<i64> = row.try_get("oldest")?;
            Ok(Backlog {
                pending: row.try_get("n")?,
                oldest: oldest.map(time),
            })
        })
        .await
    }

    /// Records still to gather, oldest first.
    pub async fn record_pending(&self, limit: u32) -> Result<Vec<AttemptRecord>, StoreError> {
        self.records(
            "record_pending",
            "WHERE state = 'pending' ORDER BY ended_at, job_id, attempt LIMIT $1",
            &[i64::from(limit)],
        )
        .await
    }

    /// Recorded attempts that ended before `before` and still have archived logs: what
    /// retention deletes.
    pub async fn record_expired(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.records(
            "record_expired",
            "WHERE logs_deleted_at IS NULL AND ended_at < $1 AND state = 'recorded' \
             ORDER BY ended_at LIMIT $2",
            &[millis(before), i64::from(limit)],
        )
        .await
    }

    /// Every record of a job, by attempt.
    pub async fn record_list(&self, job_id: &JobId) -> Result<Vec<AttemptRecord>, StoreError> {
        timed("record_list", async {
            let sql =
                format!("SELECT {COLUMNS} FROM attempt_records WHERE job_id = $1 ORDER BY attempt");
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(job_id.as_str())
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(record).collect()
        })
        .await
    }

    pub async fn record_get(
        &self,
        job_id: &JobId,
        attempt: u32,
    ) -> Result<Option<AttemptRecord>, StoreError> {
        timed("record_get", async {
            let sql =
                format!("SELECT {COLUMNS} FROM attempt_records WHERE job_id = $1 AND attempt = $2");
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(job_id.as_str())
                .bind(i64::from(attempt))
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(record).transpose()
        })
        .await
    }

    /// Writes what the recorder gathered (or what retention deleted), only while the row is
    /// still in state `from`: false when it no longer is. Two replicas that both gathered one
    /// attempt (one of them a paused ex-holder of the `jobs` lease) cannot overwrite each
    /// other's record: the first write wins.
    pub async fn record_save(
        &self,
        r: &AttemptRecord,
        from: RecordState,
    ) -> Result<bool, StoreError> {
        timed("record_save", async {
            let done = sqlx::query(
                "UPDATE attempt_records SET state = $1, app_id = $2, driver_log = $3, \
                 evidence = $4, summary = $5, headline = $6, recorded_at = $7, \
                 logs_deleted_at = $8, classification = $9 \
                 WHERE job_id = $10 AND attempt = $11 AND state = $12",
            )
            .bind(r.state.as_str())
            .bind(r.app_id.clone())
            .bind(r.driver_log.clone())
            .bind(
                r.evidence
                    .as_ref()
                    .map(|e| serde_json::to_string(e).expect("evidence serializes")),
            )
            .bind(r.summary.as_ref().map(|s| s.to_string()))
            .bind(r.headline.clone())
            .bind(r.recorded_at.map(millis))
            .bind(r.logs_deleted_at.map(millis))
            .bind(
                r.classification
                    .as_ref()
                    .map(|c| serde_json::to_string(c).expect("a classification serializes")),
            )
            .bind(r.job_id.as_str())
            .bind(i64::from(r.attempt))
            .bind(from.as_str())
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn records(
        &self,
        op: &'static str,
        clause: &str,
        args: &[i64],
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        timed(op, async {
            let sql = format!("SELECT {COLUMNS} FROM attempt_records {clause}");
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for arg in args {
                query = query.bind(*arg);
            }
            let rows = query.fetch_all(&self.pool).await?;
            rows.iter().map(record).collect()
        })
        .await
    }
}

/// A pending record for an attempt that just ended (nothing when it has one already).
pub(super) async fn record_insert_pending(
    tx: &mut sqlx::Transaction<'_, Any>,
    job_id: &JobId,
    attempt: u32,
    ended_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO attempt_records (job_id, attempt, state, ended_at) \
         VALUES ($1, $2, 'pending', $3) ON CONFLICT (job_id, attempt) DO NOTHING",
    )
    .bind(job_id.as_str())
    .bind(i64::from(attempt))
    .bind(millis(ended_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn record(row: &AnyRow) -> Result<AttemptRecord, StoreError> {
    let raw_id: String = row.try_get("job_id")?;
    let job_id = JobId::parse(&raw_id)
        .ok_or_else(|| StoreError::Corrupt(format!("record job id {raw_id:?}")))?;
    let state: String = row.try_get("state")?;
    let evidence: Option<String> = row.try_get("evidence")?;
    let summary: Option<String> = row.try_get("summary")?;
    let classification: Option<String> = row.try_get("classification")?;
    let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("{what}: {e}"));
    Ok(AttemptRecord {
        job_id,
        attempt: u32::try_from(row.try_get::<i64, _>("attempt")?).unwrap_or(0),
        state: RecordState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("record state {state:?}")))?,
        app_id: row.try_get("app_id")?,
        driver_log: row.try_get("driver_log")?,
        evidence: evidence
            .map(|e| serde_json::from_str::<Evidence>(&e))
            .transpose()
            .map_err(|e| corrupt("record evidence", e))?,
        summary: summary
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| corrupt("record summary", e))?,
        headline: row.try_get("headline")?,
        ended_at: time(row.try_get("ended_at")?),
        recorded_at: row.try_get::<Option<i64>, _>("recorded_at")?.map(time),
        logs_deleted_at: row.try_get::<Option<i64>, _>("logs_deleted_at")?.map(time),
        classification: classification
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|e| corrupt("record classification", e))?,
    })
}
