//! Lease rows: taken when free or expired (the term grows), renewed by their holder, given
//! back at shutdown. See `crate::lease` for what they guard.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};

use super::{Engine, Store, StoreError, millis, timed};

/// A lease held under a term: what a write made under it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub term: i64,
}

impl Store {
    /// Takes `lease` for `holder` until `until` if it is free or expired at `now`; the new
    /// term, or `None` while someone else holds it.
    pub async fn lease_take(
        &self,
        lease: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        // A SQLite file has one sk8 process (`writer`): whoever held a lease before is gone,
        // and a restarted replica need not wait out its predecessor's TTL.
        let free = match self.engine {
            Engine::Sqlite => "$4 = $4",
            Engine::Postgres => "leases.expires_at < $4",
        };
        let sql = format!(
            "INSERT INTO leases (name, holder, term, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             term = leases.term + 1, expires_at = excluded.expires_at \
             WHERE {free} RETURNING term"
        );
        timed("lease_take", async {
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(lease)
                .bind(holder)
                .bind(millis(until))
                .bind(millis(now))
                .fetch_optional(&self.writer)
                .await?;
            Ok(row.map(|row| row.try_get("term")).transpose()?)
        })
        .await
    }

    /// Extends a lease its holder still has under `term`; false when it was lost.
    pub async fn lease_renew(
        &self,
        fence: &Fence,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        timed("lease_renew", async {
            let updated = sqlx::query(
                "UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 AND term = $4",
            )
            .bind(millis(until))
            .bind(&fence.lease)
            .bind(holder)
            .bind(fence.term)
            .execute(&self.writer)
            .await?
            .rows_affected();
            Ok(updated == 1)
        })
        .await
    }

    /// Gives a lease back (at shutdown), so another replica takes it at once.
    pub async fn lease_release(&self, fence: &Fence, holder: &str) -> Result<(), StoreError> {
        timed("lease_release", async {
            sqlx::query(
                "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND term = $3",
            )
            .bind(&fence.lease)
            .bind(holder)
            .bind(fence.term)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
        .await
    }
}
