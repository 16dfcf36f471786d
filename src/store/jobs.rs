//! Job, attempt and event queries (noun-first: `job_insert`, `job_list`, …).

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row};

use super::leases::Fence;
use super::rows::{self, ATTEMPT_COLUMNS, EVENT_COLUMNS, JOB_COLUMNS};
use super::{Store, StoreError, millis, timed};
use crate::backend::BackendRef;
use crate::domain::{Attempt, Event, Job, JobId, JobState, NewEvent};

/// What `job_insert` did.
#[derive(Debug)]
pub enum InsertOutcome {
    /// The job is new and stored.
    Created(Job),
    /// The idempotency key was used before with the same spec: the original job.
    Existing(Job),
    /// The idempotency key was used before with a different spec.
    KeyConflict { existing: JobId },
}

/// Filters for `job_list`; all optional, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub team: Option<String>,
    /// Only jobs of these teams (what the caller may see); `None`: every team.
    pub visible_teams: Option<Vec<String>>,
    pub env: Option<String>,
    pub state: Option<JobState>,
    pub name: Option<String>,
    pub labels: Vec<(String, String)>,
    /// Only jobs older than this one (the last id of the previous page).
    pub before: Option<JobId>,
    pub limit: u32,
}

/// A value bound to a dynamically built statement.
pub(super) enum Arg {
    Text(String),
    Int(i64),
}

pub(super) fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    args: Vec<Arg>,
) -> Query<'q, Any, AnyArguments> {
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s),
            Arg::Int(i) => query.bind(i),
        };
    }
    query
}

/// `$first, $first+1, …` for `count` values.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) const LIVE_STATES: &str = "('QUEUED', 'SUBMITTED', 'RUNNING', 'RETRYING', 'CANCELLING')";

impl Store {
    /// Stores a new job with its labels and first event; with an idempotency key, returns the
    /// original job instead when the key was already used for the same spec.
    pub async fn job_insert(&self, job: &Job, digest: &str) -> Result<InsertOutcome, StoreError> {
        timed("job_insert", async {
            let mut tx = self.writer.begin().await?;
            // The job row first: it takes SQLite's write lock at the first statement, so the
            // transaction never has to upgrade a read lock (which fails instead of waiting).
            job_row_insert(&mut tx, job).await?;
            if let Some(key) = &job.idempotency_key {
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_keys (team, key, digest, job_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (team, key) DO NOTHING",
                )
                .bind(&job.team)
                .bind(key)
                .bind(digest)
                .bind(job.id.as_str())
                .bind(millis(job.created_at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    tx.rollback().await?;
                    return self.idempotent_replay(&job.team, key, digest).await;
                }
            }
            for (key, value) in &job.spec.labels {
                sqlx::query("INSERT INTO job_labels (job_id, key, value) VALUES ($1, $2, $3)")
                    .bind(job.id.as_str())
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
            }
            let accepted = NewEvent {
                attempt: None,
                from: None,
                to: JobState::Queued,
                reason: std::iter::once("accepted".to_string())
                    .chain(job.sized_from.as_ref().map(|s| s.describe()))
                    .chain(job.sizing.as_ref().and_then(|s| s.describe()))
                    .collect::<Vec<_>>()
                    .join("; "),
                detail: None,
            };
            event_insert(&mut tx, &job.id, &accepted, job.created_at).await?;
            if let Some(sizing) = &job.sizing {
                super::sizing::decision_insert(&mut tx, job, sizing).await?;
            }
            tx.commit().await?;
            Ok(InsertOutcome::Created(job.clone()))
        })
        .await
    }

    async fn idempotent_replay(
        &self,
        team: &str,
        key: &str,
        digest: &str,
    ) -> Result<InsertOutcome, StoreError> {
        let row =
            sqlx::query("SELECT digest, job_id FROM idempotency_keys WHERE team = $1 AND key = $2")
                .bind(team)
                .bind(key)
                .fetch_one(&self.pool)
                .await?;
        let stored_digest: String = row.try_get("digest")?;
        let job_id: String = row.try_get("job_id")?;
        let job_id = JobId::parse(&job_id)
            .ok_or_else(|| StoreError::Corrupt(format!("idempotency job id {job_id:?}")))?;
        if stored_digest != digest {
            return Ok(InsertOutcome::KeyConflict { existing: job_id });
        }
        let job = self.job_get(&job_id).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("idempotency key points at missing job {job_id}"))
        })?;
        Ok(InsertOutcome::Existing(job))
    }

    pub async fn job_get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        timed("job_get", async {
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(rows::job).transpose()
        })
        .await
    }

    /// The jobs with these ids, those that exist, in one query.
    pub async fn job_get_many(&self, ids: &[JobId]) -> Result<Vec<Job>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        timed("job_get_many", async {
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({})",
                placeholders(1, ids.len())
            );
            let args = ids
                .iter()
                .map(|id| Arg::Text(id.as_str().to_owned()))
                .collect();
            let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), args)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(rows::job).collect()
        })
        .await
    }

    /// Jobs matching the filter, newest first (ids sort by creation time).
    pub async fn job_list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        timed("job_list", async {
            let (sql, args) = list_sql(filter);
            let query = bind_all(sqlx::query(AssertSqlSafe(sql)), args);
            let rows = query.fetch_all(&self.pool).await?;
            rows.iter().map(rows::job).collect()
        })
        .await
    }

    /// Writes a job's changed fields if nobody else wrote it since it was read (its version),
    /// together with the attempt it touched and the event that explains the change. Returns
    /// false, writing nothing, when the job was changed concurrently: re-read and decide again.
    pub async fn job_save(
        &self,
        job: &mut Job,
        attempt: Option<&Attempt>,
        event: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        self.job_save_fenced(job, attempt, event, None).await
    }

    /// [`Store::job_save`] under a lease: also false, writing nothing, once `fence`'s term is
    /// not the lease's any more (a paused ex-holder cannot overwrite its successor's writes).
    pub async fn job_save_fenced(
        &self,
        job: &mut Job,
        attempt: Option<&Attempt>,
        event: Option<&NewEvent>,
        fence: Option<&Fence>,
    ) -> Result<bool, StoreError> {
        timed("job_save", async {
            let now = chrono::Utc::now();
            let mut tx = self.writer.begin().await?;
            // The lease row is not locked: a paused holder inside this transaction would then
            // block its own takeover. A takeover committing between this check and the commit
            // lets one last write through, which the successor's version checks then see.
            let fenced = if fence.is_some() {
                " AND EXISTS (SELECT 1 FROM leases WHERE name = $13 AND term = $14)"
            } else {
                ""
            };
            let sql = format!(
                "UPDATE jobs SET state = $1, attempts = $2, failure_reason = $3, \
                 failure_class = $4, spark_ui_url = $5, updated_at = $6, started_at = $7, \
                 finished_at = $8, next_attempt_at = $9, spec = $12, version = version + 1 \
                 WHERE id = $10 AND version = $11{fenced}"
            );
            let mut update = sqlx::query(AssertSqlSafe(sql))
                .bind(job.state.as_str())
                .bind(i64::from(job.attempts))
                .bind(job.failure_reason.clone())
                .bind(job.failure_class.map(|c| c.as_str().to_owned()))
                .bind(job.spark_ui_url.clone())
                .bind(millis(now))
                .bind(job.started_at.map(millis))
                .bind(job.finished_at.map(millis))
                .bind(job.next_attempt_at.map(millis))
                .bind(job.id.as_str())
                .bind(job.version)
                // A resized retry changes the spec the next attempt runs.
                .bind(serde_json::to_string(&job.spec).expect("a JobSpec always serializes"));
            if let Some(fence) = fence {
                update = update.bind(fence.lease.clone()).bind(fence.term);
            }
            let updated = update.execute(&mut *tx).await?.rows_affected();
            if updated == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            if let Some(attempt) = attempt {
                attempt_upsert(&mut tx, attempt).await?;
                // An attempt that ran and ended gets its run record, to be gathered.
                if let (Some(ended_at), Some(_)) = (attempt.ended_at, &attempt.backend_ref) {
                    super::records::record_insert_pending(
                        &mut tx,
                        &attempt.job_id,
                        attempt.attempt,
                        ended_at,
                    )
                    .await?;
                }
            }
            if let Some(event) = event {
                event_insert(&mut tx, &job.id, event, now).await?;
            }
            tx.commit().await?;
            job.version += 1;
            job.updated_at = now;
            Ok(true)
        })
        .await
    }

    /// Records where an attempt runs when its job changed while the attempt was being
    /// submitted (a cancel came in): whoever stops the attempt then finds it. Never replaces a
    /// reference already recorded; false when there was one, or no such attempt.
    pub async fn attempt_record_ref(
        &self,
        job_id: &JobId,
        attempt: u32,
        backend_ref: &BackendRef,
    ) -> Result<bool, StoreError> {
        timed("attempt_record_ref", async {
            let updated = sqlx::query(
                "UPDATE attempts SET backend_ref = $1 \
                 WHERE job_id = $2 AND attempt = $3 AND backend_ref IS NULL",
            )
            .bind(backend_ref.to_string())
            .bind(job_id.as_str())
            .bind(i64::from(attempt))
            .execute(&self.writer)
            .await?
            .rows_affected();
            Ok(updated == 1)
        })
        .await
    }

    pub async fn attempt_list(&self, job_id: &JobId) -> Result<Vec<Attempt>, StoreError> {
        timed("attempt_list", async {
            let sql = format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id = $1 ORDER BY attempt"
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(job_id.as_str())
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(rows::attempt).collect()
        })
        .await
    }

    pub async fn event_list(&self, job_id: &JobId) -> Result<Vec<Event>, StoreError> {
        timed("event_list", async {
            let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE job_id = $1 ORDER BY id");
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(job_id.as_str())
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(rows::event).collect()
        })
        .await
    }

    /// How many of a team's jobs are started on a backend (SUBMITTED, RUNNING, CANCELLING):
    /// what `limits.maxRunningJobsPerTeam` caps.
    pub async fn job_count_started(&self, team: &str) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) AS n FROM jobs \
                   WHERE state IN ('SUBMITTED', 'RUNNING', 'CANCELLING') AND team = $1";
        self.count_of_team("job_count_started", sql, team).await
    }

    /// How many of each team's jobs are in each live state (queued, started, retrying,
    /// cancelling): what the per-team workload gauges show.
    pub async fn job_count_live_by_team(&self) -> Result<Vec<super::TeamCount>, StoreError> {
        let sql = "SELECT team, env, state, COUNT(*) AS n FROM jobs \
                   WHERE state IN ('QUEUED', 'SUBMITTED', 'RUNNING', 'RETRYING', 'CANCELLING') \
                   GROUP BY team, env, state";
        self.counts_by_team_state("job_count_live_by_team", sql)
            .await
    }

    /// How many jobs are in each state (for the `sk8_jobs` gauge).
    pub async fn job_count_by_state(&self) -> Result<Vec<(JobState, i64)>, StoreError> {
        timed("job_count_by_state", async {
            let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|row: &AnyRow| {
                    let state: String = row.try_get("state")?;
                    let state = JobState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("job state {state:?}")))?;
                    Ok((state, row.try_get("n")?))
                })
                .collect()
        })
        .await
    }
}

/// `team IN (…)` over `teams` (never true for none), its values bound after `args`.
pub(super) fn team_in(teams: &[String], args: &mut Vec<Arg>) -> String {
    if teams.is_empty() {
        return "1 = 0".into();
    }
    let mut placeholders = Vec::new();
    for team in teams {
        args.push(Arg::Text(team.clone()));
        placeholders.push(format!("${}", args.len()));
    }
    format!("team IN ({})", placeholders.join(", "))
}

fn list_sql(filter: &JobFilter) -> (String, Vec<Arg>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    let mut push = |clause: &str, arg: Arg, args: &mut Vec<Arg>| {
        args.push(arg);
        clauses.push(clause.replace('?', &format!("${}", args.len())));
    };
    let text = |s: &Option<String>| s.clone().map(Arg::Text);
    for (column, value) in [
        ("team", text(&filter.team)),
        ("env", text(&filter.env)),
        ("name", text(&filter.name)),
    ] {
        if let Some(value) = value {
            push(&format!("{column} = ?"), value, &mut args);
        }
    }
    if let Some(state) = filter.state {
        push("state = ?", Arg::Text(state.as_str().into()), &mut args);
    }
    if let Some(before) = &filter.before {
        push("id < ?", Arg::Text(before.as_str().into()), &mut args);
    }
    if let Some(teams) = &filter.visible_teams {
        clauses.push(team_in(teams, &mut args));
    }
    for (key, value) in &filter.labels {
        args.push(Arg::Text(key.clone()));
        args.push(Arg::Text(value.clone()));
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM job_labels l WHERE l.job_id = jobs.id AND l.key = ${} AND l.value = ${})",
            args.len() - 1,
            args.len()
        ));
    }
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    args.push(Arg::Int(i64::from(filter.limit)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
    (sql, args)
}

async fn job_row_insert(tx: &mut sqlx::Transaction<'_, Any>, job: &Job) -> Result<(), StoreError> {
    let spec = serde_json::to_string(&job.spec).expect("a JobSpec always serializes");
    sqlx::query(
        "INSERT INTO jobs (id, team, env, name, namespace, state, spec, attempts, \
         idempotency_key, created_at, updated_at, version, trace_id, trace_parent, sized_from, \
         sizing) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(job.id.as_str())
    .bind(&job.team)
    .bind(&job.env)
    .bind(&job.name)
    .bind(&job.namespace)
    .bind(job.state.as_str())
    .bind(spec)
    .bind(i64::from(job.attempts))
    .bind(job.idempotency_key.clone())
    .bind(millis(job.created_at))
    .bind(millis(job.updated_at))
    .bind(job.version)
    .bind(job.trace_id.clone())
    .bind(job.trace_parent.clone())
    .bind(
        job.sized_from
            .as_ref()
            .map(|s| serde_json::to_string(s).expect("a size serializes")),
    )
    .bind(
        job.sizing
            .as_ref()
            .map(|s| serde_json::to_string(s).expect("a sizing record serializes")),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn attempt_upsert(
    tx: &mut sqlx::Transaction<'_, Any>,
    a: &Attempt,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO attempts (job_id, attempt, backend, backend_ref, state, created_at, \
         ended_at, failure_reason, failure_class, remediation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (job_id, attempt) DO UPDATE \
         SET backend_ref = COALESCE(excluded.backend_ref, attempts.backend_ref), \
         state = excluded.state, ended_at = excluded.ended_at, \
         failure_reason = excluded.failure_reason, failure_class = excluded.failure_class, \
         remediation = excluded.remediation",
    )
    .bind(a.job_id.as_str())
    .bind(i64::from(a.attempt))
    .bind(&a.backend)
    .bind(a.backend_ref.as_ref().map(|r| r.to_string()))
    .bind(a.state.as_str())
    .bind(millis(a.created_at))
    .bind(a.ended_at.map(millis))
    .bind(a.failure_reason.clone())
    .bind(a.failure_class.map(|c| c.as_str().to_owned()))
    .bind(
        a.remediation
            .as_ref()
            .map(|r| serde_json::to_string(r).expect("a remediation serializes")),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn event_insert(
    tx: &mut sqlx::Transaction<'_, Any>,
    job_id: &JobId,
    event: &NewEvent,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (job_id, attempt, from_state, to_state, at, reason, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(job_id.as_str())
    .bind(event.attempt.map(i64::from))
    .bind(event.from.map(|s| s.as_str().to_owned()))
    .bind(event.to.as_str())
    .bind(millis(at))
    .bind(event.reason.clone())
    .bind(event.detail.clone())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
