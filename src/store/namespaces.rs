//! Team namespace queries: the desired spec of each `sjns-<team>-<env>`, written by PUT and
//! read by the API, the submission guard and the namespace reconciler; and the count of work
//! still running in a namespace, which a delete must respect.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::jobs::{Arg, LIVE_STATES, bind_all};
use super::{Store, StoreError, millis, timed};
use crate::domain::namespace::TeamNamespace;
use crate::domain::{JobId, NamespaceSpec, SessionId};

const COLUMNS: &str = "team, env, namespace, spec, created_at, updated_at, deleted_at, version";

/// What `namespace_put` did.
#[derive(Debug)]
pub enum NamespaceWrite {
    Created(TeamNamespace),
    Updated(TeamNamespace),
    /// The stored spec was already this one.
    Unchanged(TeamNamespace),
}

/// Filters for `namespace_list`; combined with AND.
#[derive(Clone, Debug, Default)]
pub struct NamespaceFilter {
    pub team: Option<String>,
    /// Only namespaces of these teams (what the caller may see); `None`: every team.
    pub visible_teams: Option<Vec<String>>,
    pub env: Option<String>,
    /// Only namespaces whose name sorts after this one (the last of the previous page).
    pub after: Option<String>,
    pub limit: u32,
}

/// Jobs and sessions that still run in a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveWork {
    pub jobs: Vec<JobId>,
    pub sessions: Vec<SessionId>,
}

impl ActiveWork {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.sessions.is_empty()
    }
}

impl Store {
    /// Stores the spec of a namespace: a new row, a changed spec, or nothing when it is the
    /// same (a namespace being deleted is provisioned again).
    pub async fn namespace_put(&self, spec: &NamespaceSpec) -> Result<NamespaceWrite, StoreError> {
        timed("namespace_put", async {
            let now = millis(Utc::now());
            let text = serde_json::to_string(spec).expect("a spec serializes");
            let row = sqlx::query(
                "INSERT INTO namespaces (team, env, namespace, spec, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $5, 0) \
                 ON CONFLICT (team, env) DO UPDATE SET spec = excluded.spec, \
                 updated_at = excluded.updated_at, deleted_at = NULL, \
                 version = namespaces.version + 1 \
                 WHERE namespaces.spec <> excluded.spec OR namespaces.deleted_at IS NOT NULL \
                 RETURNING version",
            )
            .bind(spec.team.as_str())
            .bind(spec.env.as_str())
            .bind(spec.namespace())
            .bind(text)
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
            let version: Option<i64> = row.map(|r| r.try_get("version")).transpose()?;
            let stored = self
                .namespace_get(spec.team.as_str(), spec.env.as_str())
                .await?
                .ok_or_else(|| StoreError::Corrupt("a namespace vanished as it was written".into()))?;
            Ok(match version {
                Some(0) => NamespaceWrite::Created(stored),
                Some(_) => NamespaceWrite::Updated(stored),
                None => NamespaceWrite::Unchanged(stored),
            })
        })
        .await
    }

    /// A namespace, also while it is being deleted.
    pub async fn namespace_get(
        &self,
        team: &str,
        env: &str,
    ) -> Result<Option<TeamNamespace>, StoreError> {
        timed("namespace_get", async {
            let sql = format!("SELECT {COLUMNS} FROM namespaces WHERE team = $1 AND env = $2");
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(team)
                .bind(env)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(namespace).transpose()
        })
        .await
    }

    /// Namespaces by name, deleted ones included only while being deleted.
    pub async fn namespace_list(
        &self,
        filter: &NamespaceFilter,
    ) -> Result<Vec<TeamNamespace>, StoreError> {
        timed("namespace_list", async {
            let mut conditions = vec!["1 = 1".to_owned()];
            let mut args = Vec::new();
            let mut add = |condition: &str, value: String| {
                args.push(Arg::Text(value));
                conditions.push(format!("{condition} ${}", args.len()));
            };
            if let Some(team) = &filter.team {
                add("team =", team.clone());
            }
            if let Some(env) = &filter.env {
                add("env =", env.clone());
            }
            if let Some(after) = &filter.after {
                add("namespace >", after.clone());
            }
            if let Some(teams) = &filter.visible_teams {
                conditions.push(super::jobs::team_in(teams, &mut args));
            }
            args.push(Arg::Int(i64::from(filter.limit)));
            let sql = format!(
                "SELECT {COLUMNS} FROM namespaces WHERE {} ORDER BY namespace LIMIT ${}",
                conditions.join(" AND "),
                args.len()
            );
            let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), args)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(namespace).collect()
        })
        .await
    }

    /// Every namespace, for the reconciler (there are a few hundred at most).
    pub async fn namespace_list_all(&self) -> Result<Vec<TeamNamespace>, StoreError> {
        timed("namespace_list_all", async {
            let sql = format!("SELECT {COLUMNS} FROM namespaces ORDER BY namespace");
            let rows = sqlx::query(AssertSqlSafe(sql))
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(namespace).collect()
        })
        .await
    }

    /// Marks a namespace as being deleted (from then on it is no longer repaired); false when
    /// it does not exist.
    pub async fn namespace_mark_deleted(&self, team: &str, env: &str) -> Result<bool, StoreError> {
        timed("namespace_mark_deleted", async {
            let updated = sqlx::query(
                "UPDATE namespaces SET deleted_at = COALESCE(deleted_at, $1), \
                 version = version + 1 WHERE team = $2 AND env = $3",
            )
            .bind(millis(Utc::now()))
            .bind(team)
            .bind(env)
            .execute(&self.writer)
            .await?
            .rows_affected();
            Ok(updated > 0)
        })
        .await
    }

    /// Forgets a namespace its clusters have let go, unless it was provisioned again meanwhile.
    pub async fn namespace_remove(&self, team: &str, env: &str) -> Result<(), StoreError> {
        timed("namespace_remove", async {
            sqlx::query(
                "DELETE FROM namespaces WHERE team = $1 AND env = $2 AND deleted_at IS NOT NULL",
            )
            .bind(team)
            .bind(env)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }

    /// Jobs not finished and sessions whose server runs, in a team environment.
    pub async fn namespace_active_work(
        &self,
        team: &str,
        env: &str,
    ) -> Result<ActiveWork, StoreError> {
        timed("namespace_active_work", async {
            let ids = |table: &str, live: &str| {
                format!("SELECT id FROM {table} WHERE team = $1 AND env = $2 AND state IN {live}")
            };
            let mut found = [Vec::new(), Vec::new()];
            for (ids, sql) in found.iter_mut().zip([
                ids("jobs", LIVE_STATES),
                ids("sessions", "('STARTING', 'READY', 'STOPPING')"),
            ]) {
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(team)
                    .bind(env)
                    .fetch_all(&self.pool)
                    .await?;
                for row in rows {
                    ids.push(row.try_get::<String, _>("id")?);
                }
            }
            let [jobs, sessions] = found;
            let corrupt = |id: &String| StoreError::Corrupt(format!("id {id:?}"));
            Ok(ActiveWork {
                jobs: jobs
                    .iter()
                    .map(|id| JobId::parse(id).ok_or_else(|| corrupt(id)))
                    .collect::<Result<_, _>>()?,
                sessions: sessions
                    .iter()
                    .map(|id| SessionId::parse(id).ok_or_else(|| corrupt(id)))
                    .collect::<Result<_, _>>()?,
            })
        })
        .await
    }
}

fn namespace(row: &AnyRow) -> Result<TeamNamespace, StoreError> {
    let spec: String = row.try_get("spec")?;
    let time = |millis: i64| DateTime::from_timestamp_millis(millis).unwrap_or_default();
    Ok(TeamNamespace {
        team: row.try_get("team")?,
        env: row.try_get("env")?,
        namespace: row.try_get("namespace")?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("namespace spec: {e}")))?,
        created_at: time(row.try_get("created_at")?),
        updated_at: time(row.try_get("updated_at")?),
        deleted_at: row.try_get::<Option<i64>, _>("deleted_at")?.map(time),
        version: row.try_get("version")?,
    })
}
