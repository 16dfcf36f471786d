//! The execution-history store: all SQL lives here.
//!
//! Durable: jobs (with their spec and labels), attempts, events, idempotency keys, sessions and
//! the desired spec of team namespaces. Nothing else is kept between restarts; the reconciler
//! rebuilds its picture from the live jobs at startup. One code path serves SQLite (the embedded default) and Postgres through
//! `sqlx::Any`: columns hold only plain types (TEXT, BIGINT; timestamps as Unix milliseconds)
//! and statements use `$n` placeholders, which both engines accept. Each engine has its own
//! migrations folder, embedded and run at startup.

mod audit;
mod jobs;
mod live;
mod namespaces;
mod rows;
mod sessions;

use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

pub use audit::AuditFilter;
pub use jobs::{InsertOutcome, JobFilter};
pub use live::{LiveJob, LiveScope};
pub use namespaces::{ActiveWork, NamespaceFilter, NamespaceWrite};
pub use sessions::{SessionChange, SessionFilter, SessionInsert};

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
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(err)
            }
            other => StoreError::Query(other),
        }
    }
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
    pool: AnyPool,
    engine: Engine,
}

impl Store {
    /// Connects, creating a SQLite file (and its folder) if needed, and runs the migrations.
    pub async fn connect(options: &StoreOptions) -> Result<Self, StoreError> {
        install_default_drivers();
        let engine = Engine::from_url(&options.url)
            .ok_or_else(|| StoreError::UnsupportedUrl(options.url.clone()))?;
        let url = match engine {
            Engine::Sqlite => sqlite_url(&options.url)?,
            Engine::Postgres => options.url.clone(),
        };
        let mut pool_options = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if engine == Engine::Sqlite {
            // WAL lets readers run beside the single writer; NORMAL sync is durable across
            // process crashes (the threat here), busy_timeout queues writers instead of failing.
            pool_options = pool_options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                    )
                    .await
                    .map(|_| ())
                })
            });
        }
        let pool = pool_options.connect(&url).await?;
        let store = Store { pool, engine };
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
            Engine::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
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

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes sure a SQLite database file can be created: its folder exists and the URL asks for
/// read-write-create.
fn sqlite_url(url: &str) -> Result<String, StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_owned());
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Unavailable(e.into()))?;
    }
    Ok(if url.contains('?') {
        url.to_owned()
    } else {
        format!("{url}?mode=rwc")
    })
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
