//! The execution-history store: all SQL lives here.
//!
//! Durable: jobs (with their spec and labels), attempts (with their run records), events,
//! idempotency keys, sessions and the desired spec of team namespaces. Nothing else is kept between restarts; the reconciler
//! rebuilds its picture from the live jobs at startup. One code path serves SQLite (the embedded default) and Postgres through
//! `sqlx::Any`: columns hold only plain types (TEXT, BIGINT; timestamps as Unix milliseconds)
//! and statements use `$n` placeholders, which both engines accept. Each engine has its own
//! migrations folder, embedded and run at startup.

mod advice;
mod audit;
mod jobs;
mod leases;
mod live;
mod namespaces;
mod records;
mod rows;
mod sessions;
mod sizes;
pub mod sizing;
mod writer;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

pub use audit::AuditFilter;
pub use jobs::{InsertOutcome, JobFilter};
pub use leases::Fence;
pub use live::{LiveJob, LiveScope};
pub use namespaces::{ActiveWork, NamespaceFilter, NamespaceWrite};
pub use records::Backlog;
pub use sessions::{SessionChange, SessionFilter, SessionInsert};

/// How many of a team's jobs or sessions are in a state (for the workload gauges).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamCount {
    pub team: String,
    pub env: String,
    pub state: String,
    pub n: i64,
}

/// Which database engine backs the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Engine::Postgres)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("the database is unreachable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("run database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[source] sqlx::Error),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    /// Another process has the (SQLite) database.
    #[error("{0}")]
    InUse(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if unavailable(&err) {
            StoreError::Unavailable(err)
        } else {
            StoreError::Query(err)
        }
    }
}

/// Whether an error says the database cannot be reached or is going away (a restart, a
/// failover, a full connection table, SQLite's write lock held too long) rather than that the
/// statement is wrong: such failures pass on their own, so callers get 503 and retry.
fn unavailable(err: &sqlx::Error) -> bool {
    use sqlx::error::DatabaseError;
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                // BUSY (5) and LOCKED (6), with their extended codes.
                return sqlite
                    .code()
                    .and_then(|code| code.parse::<u32>().ok())
                    .is_some_and(|n| matches!(n & 0xff, 5 | 6));
            }
            db.code().is_some_and(|code| unavailable_sqlstate(&code))
        }
        _ => false,
    }
}

/// Postgres SQLSTATE classes 08 (connection exception), 57P (operator intervention: admin
/// shutdown, crash shutdown, cannot connect now), 53300 (too many connections), 40001 and
/// 40P01 (serialization failure, deadlock: retryable by definition).
fn unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || matches!(code, "53300" | "40001" | "40P01")
}

impl From<StoreError> for crate::error::Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => crate::error::Error::Unavailable(
                "the execution-history store is unreachable; retry shortly".into(),
            ),
            other => crate::error::Error::Internal(other.into()),
        }
    }
}

/// Connection settings for the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// A handle on the store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    /// For reads (and, on Postgres, writes).
    pool: AnyPool,
    /// For every write: on SQLite a pool of one connection (see [`writer`]), else `pool`.
    writer: AnyPool,
    engine: Engine,
    /// Held while any handle lives: this process's claim on a SQLite file.
    _lock: Option<std::sync::Arc<std::fs::File>>,
}

impl Store {
    /// Connects, creating a SQLite file (and its folder) if needed, and runs the migrations.
    pub async fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        install_default_drivers();
        let engine = Engine::from_url(&options.url)
            .ok_or_else(|| StoreError::UnsupportedUrl(options.url.clone()))?;
        let store = match engine {
            Engine::Sqlite => {
                let (url, path) = sqlite_url(&options.url)?;
                let pools = writer::sqlite_pools(&url, path.as_deref(), options).await?;
                Store {
                    pool: pools.read,
                    writer: pools.write,
                    engine,
                    _lock: pools.lock,
                }
            }
            Engine::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect(&options.url)
                    .await?;
                Store {
                    writer: pool.clone(),
                    pool,
                    engine,
                    _lock: None,
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A migrated in-memory SQLite store, for unit tests (one connection: each has its own
    /// memory database).
    #[cfg(test)]
    pub async fn in_memory() -> Self {
        Store::connect(&StoreOptions {
            url: "sqlite::memory:".into(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        })
        .await
        .expect("an in-memory store")
    }

    /// A `SELECT team, env, state, COUNT(*) AS n … GROUP BY team, env, state`, for gauges.
    async fn counts_by_team_state(
        &self,
        op: &'static str,
        sql: &'static str,
    ) -> Result<Vec<TeamCount>, StoreError> {
        use sqlx::Row;
        timed(op, async {
            let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(TeamCount {
                        team: row.try_get("team")?,
                        env: row.try_get("env")?,
                        state: row.try_get("state")?,
                        n: row.try_get("n")?,
                    })
                })
                .collect()
        })
        .await
    }

    /// A `SELECT COUNT(*) AS n … WHERE … team = $1`, for the per-team caps.
    async fn count_of_team(
        &self,
        op: &'static str,
        sql: &'static str,
        team: &str,
    ) -> Result<i64, StoreError> {
        use sqlx::Row;
        timed(op, async {
            let row = sqlx::query(sql).bind(team).fetch_one(&self.pool).await?;
            Ok(row.try_get("n")?)
        })
        .await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self.engine {
            Engine::Sqlite => {
                sqlx::migrate!("migrations/sqlite")
                    .run(&self.writer)
                    .await?
            }
            Engine::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        timed("ping", async {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// Makes sure a SQLite database file can be created: its folder exists and the URL asks for
/// read-write-create. Returns the URL and the file (none for an in-memory database).
fn sqlite_url(url: &str) -> Result<(String, Option<PathBuf>), StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok((url.to_owned(), None));
    }
    let path = PathBuf::from(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Unavailable(e.into()))?;
    }
    let url = if url.contains('?') {
        url.to_owned()
    } else {
        format!("{url}?mode=rwc")
    };
    Ok((url, Some(path)))
}

/// Runs one store operation, recording its latency and outcome as metrics.
async fn timed<T>(
    op: &'static str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let start = Instant::now();
    let result = fut.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::histogram!("sk8_store_op_seconds", "op" => op, "outcome" => outcome)
        .record(start.elapsed().as_secs_f64());
    result
}

/// Milliseconds since the Unix epoch, the store's timestamp format.
fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}
