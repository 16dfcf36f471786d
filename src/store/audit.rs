//! Audit rows: appended in batches by the audit writer, read newest first by `GET /v1/audit`.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::jobs::{Arg, bind_all, placeholders, team_in};
use super::rows::time;
use super::{Store, StoreError, millis, timed};
use crate::audit::AuditEvent;

const COLUMNS: &str = "id, at, actor, action, team, resource, outcome, detail";

/// Filters for `audit_list`; combined with AND.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only these teams' events (what the caller may see); `None`: every event.
    pub visible_teams: Option<Vec<String>>,
    pub team: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only events older than this one (the last of the previous page).
    pub before: Option<i64>,
    pub limit: u32,
}

impl Store {
    pub async fn audit_insert(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        timed("audit_insert", async {
            let rows: Vec<String> = (0..events.len())
                .map(|i| format!("({})", placeholders(i * 7 + 1, 7)))
                .collect();
            let sql = format!(
                "INSERT INTO audit_events (at, actor, action, team, resource, outcome, detail) \
                 VALUES {}",
                rows.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for event in events {
                query = query
                    .bind(millis(event.at))
                    .bind(event.actor.clone())
                    .bind(event.action.clone())
                    .bind(event.team.clone())
                    .bind(event.resource.clone())
                    .bind(event.outcome.clone())
                    .bind(event.detail.clone());
            }
            query.execute(&self.writer).await?;
            Ok(())
        })
        .await
    }

    /// Deletes the events older than `before`; returns how many.
    pub async fn audit_prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        timed("audit_prune", async {
            let deleted = sqlx::query("DELETE FROM audit_events WHERE at < $1")
                .bind(millis(before))
                .execute(&self.writer)
                .await?
                .rows_affected();
            Ok(deleted)
        })
        .await
    }

    /// Events newest first, each with its id (the page cursor).
    pub async fn audit_list(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        timed("audit_list", async {
            let mut conditions = vec!["1 = 1".to_owned()];
            let mut args = Vec::new();
            let mut add = |condition: &str, value: Arg| {
                args.push(value);
                conditions.push(format!("{condition} ${}", args.len()));
            };
            for (column, value) in [
                ("team =", &filter.team),
                ("actor =", &filter.actor),
                ("action =", &filter.action),
            ] {
                if let Some(value) = value {
                    add(column, Arg::Text(value.clone()));
                }
            }
            if let Some(before) = filter.before {
                add("id <", Arg::Int(before));
            }
            if let Some(teams) = &filter.visible_teams {
                conditions.push(team_in(teams, &mut args));
            }
            args.push(Arg::Int(i64::from(filter.limit)));
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_events WHERE {} ORDER BY id DESC LIMIT ${}",
                conditions.join(" AND "),
                args.len()
            );
            let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), args)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(row).collect()
        })
        .await
    }
}

fn row(row: &AnyRow) -> Result<(i64, AuditEvent), StoreError> {
    let event = AuditEvent {
        at: time(row.try_get("at")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        team: row.try_get("team")?,
        resource: row.try_get("resource")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
    };
    Ok((row.try_get("id")?, event))
}
