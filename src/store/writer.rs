//! One writer path for SQLite, and one sk8 process per SQLite file.
//!
//! SQLite has a single write lock per database. When several pooled connections write at once,
//! all but one wait in SQLite's busy handler, which sleeps and polls (milliseconds each), so a
//! burst of writes spends its time asleep while the CPU idles. Here every write goes through a
//! pool of exactly one connection: writers queue in the pool (woken in order, without polling)
//! and that connection never waits on the lock. Reads use the other pool's connections; WAL lets
//! them run beside the writer and see each commit at once. Postgres has no such lock: its reads
//! and writes share one pool.
//!
//! A second process on the same file would bring that contention back and, worse, run a second
//! reconciler over the same jobs (SQLite has no leases; several replicas need Postgres). So the
//! first process holds an exclusive lock on `<file>.lock` for its lifetime, and a second is
//! refused at startup with a message naming the holder. The kernel drops the lock when the
//! holder dies, even by `kill -9`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Executor, pool::PoolOptions};

use super::{StoreError, StoreOptions};

/// The pools of a SQLite store: `read` for queries, `write` (one connection) for changes; and
/// the lock that keeps other processes off the file (none for an in-memory database).
pub(super) struct SqlitePools {
    pub read: AnyPool,
    pub write: AnyPool,
    pub lock: Option<Arc<File>>,
}

/// Opens a SQLite database (`url` already fit for creating it, `path` its file when not in
/// memory) for this process alone.
pub(super) async fn sqlite_pools(
    url: &str,
    path: Option<&Path>,
    options: &StoreOptions,
) -> Result<SqlitePools, StoreError> {
    let lock = path.map(lock_file).transpose()?.map(Arc::new);
    let read = pool_options(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect(url)
        .await?;
    let write = match path {
        // Each connection to `:memory:` is a database of its own: one pool serves both.
        None => read.clone(),
        Some(_) => {
            pool_options(1)
                .acquire_timeout(options.acquire_timeout)
                .connect(url)
                .await?
        }
    };
    Ok(SqlitePools { read, write, lock })
}

fn pool_options(max_connections: u32) -> PoolOptions<sqlx::Any> {
    // WAL lets readers run beside the single writer; NORMAL sync is durable across process
    // crashes (the threat here); busy_timeout covers what else may hold the lock for a moment
    // (a checkpoint, the sqlite3 shell).
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                )
                .await
                .map(|_| ())
            })
        })
}

/// Takes `<database>.lock` for this process, writing its pid there for the next one's
/// message; refused when another process holds it.
fn lock_file(database: &Path) -> Result<File, StoreError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = Path::new(&name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::Unavailable(e.into()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StoreError::InUse(format!(
                "the SQLite database {} is in use by another sk8 process (pid {}, holding {}). \
                 SQLite serves one sk8 process; stop the other one, or use Postgres \
                 (store.url: postgres://…) to run several replicas",
                database.display(),
                holder.trim(),
                path.display()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(StoreError::Unavailable(e.into())),
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()))
        .map_err(|e| StoreError::Unavailable(e.into()))?;
    Ok(file)
}
