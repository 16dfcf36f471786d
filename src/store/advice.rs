//! The history sizing advice reads ([`crate::advice`]): a signature's latest finished runs with
//! the summary and classification of each one's last attempt, newest first. Served by the `jobs_signature` index
//! (migration 0011), so it reads only the rows it returns however long the history.

use sqlx::{AssertSqlSafe, Row};

use super::rows::{self, JOB_COLUMNS};
use super::{Store, StoreError, timed};
use crate::advice::Run;
use crate::remediation::Classification;

impl Store {
    /// The last `limit` finished (succeeded or failed) jobs named `name` of `team`/`env`,
    /// newest first, each with its last attempt's summary and class when it was recorded.
    pub async fn signature_runs(
        &self,
        team: &str,
        env: &str,
        name: &str,
        limit: u32,
    ) -> Result<Vec<Run>, StoreError> {
        timed("signature_runs", async {
            let sql = format!(
                "SELECT {JOB_COLUMNS}, (SELECT r.summary FROM attempt_records r \
                   WHERE r.job_id = jobs.id AND r.attempt = jobs.attempts) AS last_summary, \
                 (SELECT r.classification FROM attempt_records r \
                   WHERE r.job_id = jobs.id AND r.attempt = jobs.attempts) AS last_class \
                 FROM jobs WHERE team = $1 AND env = $2 AND name = $3 \
                   AND state IN ('SUCCEEDED', 'FAILED') \
                 ORDER BY id DESC LIMIT $4"
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(team)
                .bind(env)
                .bind(name)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|row| {
                    let summary: Option<String> = row.try_get("last_summary")?;
                    // A summary this version cannot read is no evidence, not a failure.
                    let summary = summary.and_then(|s| serde_json::from_str(&s).ok());
                    let class: Option<String> = row.try_get("last_class")?;
                    let class = class
                        .and_then(|c| serde_json::from_str::<Classification>(&c).ok())
                        .map(|c| c.class);
                    Ok(Run::of(rows::job(row)?, summary, class))
                })
                .collect()
        })
        .await
    }
}
