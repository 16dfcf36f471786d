//! Session queries: create (one per team, env and name until deleted), read, list, optimistic
//! saves with their history, and the gateway's activity marks.

use chrono::{DateTime, Utc};
use sqlx::{Any, AssertSqlSafe};

use super::jobs::{Arg, bind_all};
use super::rows::{self, SESSION_COLUMNS, SESSION_EVENT_COLUMNS};
use super::{Store, StoreError, millis, timed};
use crate::domain::{Session, SessionEvent, SessionId, SessionState};

/// What `session_insert` did.
#[derive(Debug)]
pub enum SessionInsert {
    Created(Session),
    /// A session of that team, env and name exists (and is not deleted): that one.
    Existing(Session),
}

/// Filters for `session_list`; all optional, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub team: Option<String>,
    /// Only sessions of these teams (what the caller may see); `None`: every team.
    pub visible_teams: Option<Vec<String>>,
    pub env: Option<String>,
    pub state: Option<SessionState>,
    /// Only sessions older than this one (the last id of the previous page).
    pub before: Option<SessionId>,
    pub limit: u32,
}

/// A state change to record with a save.
#[derive(Clone, Debug)]
pub struct SessionChange {
    pub from: SessionState,
    pub to: SessionState,
    pub reason: String,
}

impl Store {
    /// Stores a new session and its first event, unless one of that name exists.
    pub async fn session_insert(&self, session: &Session) -> Result<SessionInsert, StoreError> {
        timed("session_insert", async {
            let mut tx = self.writer.begin().await?;
            let spec = serde_json::to_string(&session.spec).expect("a spec serializes");
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, team, env, name, namespace, state, spec, starts, \
                 created_at, updated_at, last_active_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0) \
                 ON CONFLICT (team, env, name) WHERE deleted_at IS NULL DO NOTHING",
            )
            .bind(session.id.as_str())
            .bind(&session.team)
            .bind(&session.env)
            .bind(&session.name)
            .bind(&session.namespace)
            .bind(session.state.as_str())
            .bind(spec)
            .bind(i64::from(session.starts))
            .bind(millis(session.created_at))
            .bind(millis(session.updated_at))
            .bind(millis(session.last_active_at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                let existing = self
                    .session_by_name(&session.team, &session.env, &session.name)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt("a session name conflict without a session".into())
                    })?;
                return Ok(SessionInsert::Existing(existing));
            }
            let created = SessionChange {
                from: SessionState::Starting,
                to: SessionState::Starting,
                reason: "created".into(),
            };
            session_event_insert(&mut tx, &session.id, None, &created, session.created_at).await?;
            tx.commit().await?;
            Ok(SessionInsert::Created(session.clone()))
        })
        .await
    }

    pub async fn session_get(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        timed("session_get", async {
            let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(rows::session).transpose()
        })
        .await
    }

    pub async fn session_by_name(
        &self,
        team: &str,
        env: &str,
        name: &str,
    ) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE team = $1 AND env = $2 AND name = $3 AND deleted_at IS NULL"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(team)
            .bind(env)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::session).transpose()
    }

    /// Sessions matching the filter, newest first.
    pub async fn session_list(&self, filter: &SessionFilter) -> Result<Vec<Session>, StoreError> {
        timed("session_list", async {
            let mut conditions = Vec::new();
            let mut args = Vec::new();
            let mut add = |column: &str, value: String| {
                args.push(Arg::Text(value));
                conditions.push(format!("{column} ${}", args.len()));
            };
            if let Some(team) = &filter.team {
                add("team =", team.clone());
            }
            if let Some(env) = &filter.env {
                add("env =", env.clone());
            }
            if let Some(state) = filter.state {
                add("state =", state.as_str().into());
            }
            if let Some(before) = &filter.before {
                add("id <", before.as_str().into());
            }
            if let Some(teams) = &filter.visible_teams {
                conditions.push(super::jobs::team_in(teams, &mut args));
            }
            args.push(Arg::Int(i64::from(filter.limit)));
            let limit = args.len();
            let sql = match conditions.is_empty() {
                true => format!("SELECT {SESSION_COLUMNS} FROM sessions ORDER BY id DESC LIMIT ${limit}"),
                false => format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE {} ORDER BY id DESC LIMIT ${limit}",
                    conditions.join(" AND ")
                ),
            };
            let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), args)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(rows::session).collect()
        })
        .await
    }

    /// How many of each team's sessions are starting, ready or stopping.
    pub async fn session_count_live_by_team(&self) -> Result<Vec<super::TeamCount>, StoreError> {
        let sql = "SELECT team, env, state, COUNT(*) AS n FROM sessions \
                   WHERE state IN ('STARTING', 'READY', 'STOPPING') GROUP BY team, env, state";
        self.counts_by_team_state("session_count_live_by_team", sql)
            .await
    }

    /// How many of a team's sessions run or are being started or stopped: what
    /// `limits.maxSessionsPerTeam` caps.
    pub async fn session_count_running(&self, team: &str) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) AS n FROM sessions \
                   WHERE state IN ('STARTING', 'READY', 'STOPPING') AND team = $1";
        self.count_of_team("session_count_running", sql, team).await
    }

    /// Sessions whose server runs or is being started or stopped: what the session reconciler
    /// works on (a handful, unlike jobs).
    pub async fn session_list_live(&self) -> Result<Vec<Session>, StoreError> {
        timed("session_list_live", async {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions \
                 WHERE state IN ('STARTING', 'READY', 'STOPPING') ORDER BY id"
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(rows::session).collect()
        })
        .await
    }

    /// Writes a session if nobody else wrote it since it was read (its version), with the
    /// state change that explains it. False, writing nothing, when it changed meanwhile.
    pub async fn session_save(
        &self,
        session: &mut Session,
        change: Option<&SessionChange>,
    ) -> Result<bool, StoreError> {
        timed("session_save", async {
            let now = Utc::now();
            let mut tx = self.writer.begin().await?;
            let updated = sqlx::query(
                "UPDATE sessions SET state = $1, starts = $2, backend_ref = $3, endpoint = $4, \
                 reason = $5, updated_at = $6, last_active_at = $7, deleted_at = $8, \
                 version = version + 1 WHERE id = $9 AND version = $10",
            )
            .bind(session.state.as_str())
            .bind(i64::from(session.starts))
            .bind(session.backend_ref.as_ref().map(|r| r.to_string()))
            .bind(session.endpoint.clone())
            .bind(session.reason.clone())
            .bind(millis(now))
            .bind(millis(session.last_active_at))
            .bind(session.deleted_at.map(millis))
            .bind(session.id.as_str())
            .bind(session.version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            if let Some(change) = change {
                session_event_insert(&mut tx, &session.id, Some(change.from), change, now).await?;
            }
            tx.commit().await?;
            session.version += 1;
            session.updated_at = now;
            Ok(true)
        })
        .await
    }

    /// Marks RPC activity (for the idle timeout); never moves the mark back, and does not
    /// count as a change of the session (no version bump).
    pub async fn session_touch(&self, id: &SessionId, at: DateTime<Utc>) -> Result<(), StoreError> {
        timed("session_touch", async {
            sqlx::query(
                "UPDATE sessions SET last_active_at = $1 WHERE id = $2 AND last_active_at < $1",
            )
            .bind(millis(at))
            .bind(id.as_str())
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn session_event_list(
        &self,
        id: &SessionId,
    ) -> Result<Vec<SessionEvent>, StoreError> {
        timed("session_event_list", async {
            let sql = format!(
                "SELECT {SESSION_EVENT_COLUMNS} FROM session_events WHERE session_id = $1 ORDER BY id"
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(rows::session_event).collect()
        })
        .await
    }
}

async fn session_event_insert(
    tx: &mut sqlx::Transaction<'_, Any>,
    id: &SessionId,
    from: Option<SessionState>,
    change: &SessionChange,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO session_events (session_id, from_state, to_state, at, reason) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_str())
    .bind(from.map(|s| s.as_str().to_owned()))
    .bind(change.to.as_str())
    .bind(millis(at))
    .bind(change.reason.clone())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
