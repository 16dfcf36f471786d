//! The reconciler's reads: live jobs in batches, each with its current attempt, so that looking
//! at a thousand jobs costs two queries instead of a thousand and one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::jobs::{Arg, LIVE_STATES, bind_all, placeholders};
use super::rows::{self, ATTEMPT_COLUMNS, JOB_COLUMNS};
use super::{Store, StoreError, millis, timed};
use crate::domain::{Attempt, Job, JobId};

/// A live job and its current attempt (none before the first).
#[derive(Clone, Debug)]
pub struct LiveJob {
    pub job: Job,
    pub attempt: Option<Attempt>,
}

/// Which live jobs to read, oldest first.
#[derive(Clone, Copy, Debug)]
pub enum LiveScope<'a> {
    /// These jobs, those of them still live.
    Ids(&'a [JobId]),
    /// Live jobs after this id: pages through all of them.
    After(Option<&'a JobId>),
    /// Jobs being cancelled: the cancel may have come through another replica, whose
    /// announcement does not reach the lease holder's reconciler.
    Cancelling,
    /// Jobs waiting to start at `now`, after this id: QUEUED, or RETRYING with their backoff
    /// over.
    Waiting {
        now: DateTime<Utc>,
        after: Option<&'a JobId>,
    },
}

impl Store {
    /// Up to `limit` live jobs in `scope`, with their current attempts.
    pub async fn job_live_batch(
        &self,
        scope: LiveScope<'_>,
        limit: u32,
    ) -> Result<Vec<LiveJob>, StoreError> {
        timed("job_live_batch", async {
            let (condition, mut args) = live_condition(scope);
            args.push(Arg::Int(i64::from(limit)));
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE {condition} ORDER BY id LIMIT ${}",
                args.len()
            );
            let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), args)
                .fetch_all(&self.pool)
                .await?;
            let jobs = rows.iter().map(rows::job).collect::<Result<Vec<_>, _>>()?;
            let mut current = self.current_attempts(&jobs).await?;
            Ok(jobs
                .into_iter()
                .map(|job| LiveJob {
                    attempt: current.remove(&job.id),
                    job,
                })
                .collect())
        })
        .await
    }

    /// The current attempt of each job that has one, in one query.
    async fn current_attempts(&self, jobs: &[Job]) -> Result<HashMap<JobId, Attempt>, StoreError> {
        let started: Vec<&Job> = jobs.iter().filter(|j| j.attempts > 0).collect();
        if started.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id IN ({})",
            placeholders(1, started.len())
        );
        let args = started
            .iter()
            .map(|j| Arg::Text(j.id.as_str().to_owned()))
            .collect();
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), args)
            .fetch_all(&self.pool)
            .await?;
        let wanted: HashMap<&JobId, u32> = started.iter().map(|j| (&j.id, j.attempts)).collect();
        let mut current = HashMap::new();
        for row in &rows {
            let attempt = rows::attempt(row)?;
            if wanted.get(&attempt.job_id) == Some(&attempt.attempt) {
                current.insert(attempt.job_id.clone(), attempt);
            }
        }
        Ok(current)
    }
}

fn live_condition(scope: LiveScope<'_>) -> (String, Vec<Arg>) {
    match scope {
        LiveScope::Ids(ids) => (
            format!(
                "state IN {LIVE_STATES} AND id IN ({})",
                placeholders(1, ids.len().max(1))
            ),
            if ids.is_empty() {
                vec![Arg::Text(String::new())]
            } else {
                ids.iter()
                    .map(|id| Arg::Text(id.as_str().to_owned()))
                    .collect()
            },
        ),
        LiveScope::After(None) => (format!("state IN {LIVE_STATES}"), Vec::new()),
        LiveScope::After(Some(after)) => (
            format!("state IN {LIVE_STATES} AND id > $1"),
            vec![Arg::Text(after.as_str().to_owned())],
        ),
        LiveScope::Cancelling => ("state = 'CANCELLING'".to_owned(), Vec::new()),
        LiveScope::Waiting { now, after } => {
            let waiting = "(state = 'QUEUED' OR (state = 'RETRYING' AND \
                 (next_attempt_at IS NULL OR next_attempt_at <= $1)))";
            let mut args = vec![Arg::Int(millis(now))];
            let condition = match after {
                None => waiting.to_owned(),
                Some(after) => {
                    args.push(Arg::Text(after.as_str().to_owned()));
                    format!("{waiting} AND id > $2")
                }
            };
            (condition, args)
        }
    }
}
