//! What sizing advice did at submit ([`crate::advice::auto`]), durable: one decision row per
//! job that was given advice (written with the job, in its transaction), the reverts of
//! applied recommendations per signature, and the per-team report summed from both.

use std::collections::BTreeMap;

use chrono::Utc;
use sqlx::{Any, Row};

use super::{Store, StoreError, millis, timed};
use crate::advice::auto::{Revert, Sizing};
use crate::advice::report::Report;
use crate::domain::Job;

/// Savings are kept in thousandths (BIGINT, so one query serves both engines).
const MILLI: f64 = 1000.0;

/// Records what sizing did for `job`, when it was given any advice.
pub(super) async fn decision_insert(
    tx: &mut sqlx::Transaction<'_, Any>,
    job: &Job,
    sizing: &Sizing,
) -> Result<(), StoreError> {
    if sizing.given() == 0 {
        return Ok(());
    }
    let saving = sizing.saving();
    sqlx::query(
        "INSERT INTO sizing_decisions (job_id, team, given, applied, gib_millis, core_millis) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(job.id.as_str())
    .bind(&job.team)
    .bind(sizing.given() as i64)
    .bind(sizing.applied.len() as i64)
    .bind((saving.gib_seconds * MILLI).round() as i64)
    .bind((saving.core_seconds * MILLI).round() as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A signature: team, env, name and main program.
pub struct Signature<'a> {
    pub team: &'a str,
    pub env: &'a str,
    pub name: &'a str,
    pub main: &'a str,
}

impl Store {
    /// Records reverts of a probation run's changes; a revert already recorded (the same run
    /// judged by two submissions) is kept as it was.
    pub async fn sizing_revert_insert(
        &self,
        signature: &Signature<'_>,
        reverts: &[Revert],
    ) -> Result<(), StoreError> {
        timed("sizing_revert_insert", async {
            let mut tx = self.writer.begin().await?;
            for revert in reverts {
                sqlx::query(
                    "INSERT INTO sizing_reverts (job_id, setting, team, env, name, main, rule, \
                     from_value, to_value, reason, reverted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (job_id, setting) DO NOTHING",
                )
                .bind(&revert.job_id)
                .bind(&revert.setting)
                .bind(signature.team)
                .bind(signature.env)
                .bind(signature.name)
                .bind(signature.main)
                .bind(&revert.rule)
                .bind(&revert.from)
                .bind(&revert.to)
                .bind(&revert.reason)
                .bind(millis(Utc::now()))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The reverts recorded for a signature, newest first.
    pub async fn sizing_reverts(
        &self,
        signature: &Signature<'_>,
    ) -> Result<Vec<Revert>, StoreError> {
        timed("sizing_reverts", async {
            let rows = sqlx::query(
                "SELECT job_id, setting, rule, from_value, to_value, reason FROM sizing_reverts \
                 WHERE team = $1 AND env = $2 AND name = $3 AND main = $4 \
                 ORDER BY reverted_at DESC",
            )
            .bind(signature.team)
            .bind(signature.env)
            .bind(signature.name)
            .bind(signature.main)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(Revert {
                        job_id: row.try_get("job_id")?,
                        setting: row.try_get("setting")?,
                        rule: row.try_get("rule")?,
                        from: row.try_get("from_value")?,
                        to: row.try_get("to_value")?,
                        reason: row.try_get("reason")?,
                    })
                })
                .collect()
        })
        .await
    }

    /// The report of `team`, or of every team that was given advice.
    pub async fn sizing_report(&self, team: Option<&str>) -> Result<Vec<Report>, StoreError> {
        timed("sizing_report", async {
            let filter = if team.is_some() {
                "WHERE d.team = $1"
            } else {
                ""
            };
            // CAST: Postgres sums BIGINTs as NUMERIC, which sqlx::Any does not decode.
            let decisions = format!(
                "SELECT d.team, COUNT(*) AS jobs, CAST(SUM(d.given) AS BIGINT) AS given, \
                 CAST(SUM(d.applied) AS BIGINT) AS applied, \
                 CAST(SUM(CASE WHEN j.state = 'SUCCEEDED' THEN d.gib_millis ELSE 0 END) \
                   AS BIGINT) AS gib, \
                 CAST(SUM(CASE WHEN j.state = 'SUCCEEDED' THEN d.core_millis ELSE 0 END) \
                   AS BIGINT) AS core \
                 FROM sizing_decisions d JOIN jobs j ON j.id = d.job_id {filter} \
                 GROUP BY d.team"
            );
            let reverts = format!(
                "SELECT d.team, COUNT(*) AS reverted FROM sizing_reverts d {filter} \
                 GROUP BY d.team"
            );
            let mut reports: BTreeMap<String, Report> = BTreeMap::new();
            if let Some(team) = team {
                reports.insert(team.to_owned(), Report::default());
            }
            let query = |sql: String| {
                let q = sqlx::query(sqlx::AssertSqlSafe(sql));
                match team {
                    Some(team) => q.bind(team.to_owned()),
                    None => q,
                }
            };
            for row in query(decisions).fetch_all(&self.pool).await? {
                let report = reports.entry(row.try_get("team")?).or_default();
                report.jobs = count(row.try_get("jobs")?);
                report.given = count(row.try_get("given")?);
                report.applied = count(row.try_get("applied")?);
                report.saved.gib_seconds = row.try_get::<i64, _>("gib")? as f64 / MILLI;
                report.saved.core_seconds = row.try_get::<i64, _>("core")? as f64 / MILLI;
            }
            for row in query(reverts).fetch_all(&self.pool).await? {
                let report = reports.entry(row.try_get("team")?).or_default();
                report.reverted = count(row.try_get("reverted")?);
            }
            Ok(reports
                .into_iter()
                .map(|(team, report)| Report { team, ..report })
                .collect())
        })
        .await
    }
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}
