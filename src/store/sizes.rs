//! Remembered sizes ([`crate::remediation::resize`]): per job signature (team, env, name), the
//! memory a resized retry found to work, and which attempt of which job found it. Durable; one
//! row per signature, replaced by the latest success.

use chrono::Utc;
use sqlx::Row;

use super::{Store, StoreError, millis, timed};
use crate::remediation::resize::{Change, SizedFrom};

impl Store {
    /// Remembers `sized` as the starting size of the next job `team`/`env`/`name`.
    pub async fn size_remember(
        &self,
        team: &str,
        env: &str,
        name: &str,
        sized: &SizedFrom,
    ) -> Result<(), StoreError> {
        timed("size_remember", async {
            let changes = serde_json::to_string(&sized.changes).expect("changes serialize");
            let mut tx = self.writer.begin().await?;
            sqlx::query(
                "INSERT INTO remembered_sizes (team, env, name, job_id, attempt, changes, \
                 remembered_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (team, env, name) DO UPDATE SET job_id = excluded.job_id, \
                 attempt = excluded.attempt, changes = excluded.changes, \
                 remembered_at = excluded.remembered_at",
            )
            .bind(team)
            .bind(env)
            .bind(name)
            .bind(&sized.job_id)
            .bind(i64::from(sized.attempt))
            .bind(changes)
            .bind(millis(Utc::now()))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The size remembered for `team`/`env`/`name`, if any.
    pub async fn size_get(
        &self,
        team: &str,
        env: &str,
        name: &str,
    ) -> Result<Option<SizedFrom>, StoreError> {
        timed("size_get", async {
            let row = sqlx::query(
                "SELECT job_id, attempt, changes FROM remembered_sizes \
                 WHERE team = $1 AND env = $2 AND name = $3",
            )
            .bind(team)
            .bind(env)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let changes: String = row.try_get("changes")?;
            let changes: Vec<Change> = serde_json::from_str(&changes)
                .map_err(|e| StoreError::Corrupt(format!("remembered size: {e}")))?;
            Ok(Some(SizedFrom {
                job_id: row.try_get("job_id")?,
                attempt: u32::try_from(row.try_get::<i64, _>("attempt")?).unwrap_or(0),
                changes,
            }))
        })
        .await
    }
}
