//! Run history: where Spark's event logs and sk8's archived logs live, and what each
//! application attempt did, read from its event log.
//!
//! - [`objects`]: a [`Location`] URL (`file://`, `s3://`, `gs://`, `az://`; [`Location::spark_url`]
//!   is what Spark is told to write to) and [`Objects`], async reads and writes there through
//!   the `object_store` crate (`put`, `put_reader` for logs of any size, `get`, `head`, `list`,
//!   `list_dir`, `delete`, `delete_prefix` for retention), with typed [`ObjectsError`]s.
//!   [`StoreOptions`] (camelCase) configures endpoints, regions and credentials.
//! - [`eventlog`]: finds an application's log (one file or a rolling `eventlog_v2_*`
//!   directory; plain, zstd, lz4 or snappy; finished or `.inprogress`) and streams its lines
//!   with a bound on line length ([`codec`]: Spark's compression framings).
//! - [`replay`]: the CPU-bound fold of a log's lines into a summary, in bounded memory.
//! - [`summary`]: [`RunSummary`], the per-attempt record (serde camelCase, an OpenAPI schema).
//!
//! [`summarize`] puts them together and never fails: a log it cannot read gives a summary
//! `partial` or `missing` with the `reason`. It lists the store on the caller's runtime and
//! replays the log on a blocking thread (`spawn_blocking`), so it never stalls the async
//! workers; callers bound how many run at once (a semaphore), since each one keeps a core busy
//! for the length of its log (~0.5 s per 100 MB).

pub mod codec;
pub mod eventlog;
mod http;
pub mod objects;
pub mod replay;
pub mod summary;

use std::io::Read;

use tokio::runtime::Handle;

pub use eventlog::EventLog;
pub use objects::{Entry, Listing, Location, Objects, ObjectsError, StoreOptions};
pub use summary::{RunSummary, SummaryStatus};

use replay::Replay;
use summary::LogStats;

/// Lines longer than this are skipped, not read (SQL plans can be megabytes; no event a
/// summary needs comes near this).
pub const MAX_LINE: usize = 16 << 20;

/// The summary of `app_id`'s last attempt, from its event log in `objects`. Never fails.
pub async fn summarize(objects: &Objects, app_id: &str) -> RunSummary {
    let log = match eventlog::find(objects, app_id).await {
        Ok(Some(log)) => log,
        Ok(None) => {
            return RunSummary::missing(format!(
                "no event log for {app_id} in {}",
                objects.location()
            ));
        }
        Err(e) => return RunSummary::missing(format!("listing event logs: {e}")),
    };
    let objects = objects.clone();
    let runtime = Handle::current();
    tokio::task::spawn_blocking(move || summarize_log(&objects, &log, &runtime))
        .await
        .unwrap_or_else(|e| RunSummary::missing(format!("the summary task failed: {e}")))
}

/// Replays `log` into a summary; blocking (remote files stream through `runtime`).
pub fn summarize_log(objects: &Objects, log: &EventLog, runtime: &Handle) -> RunSummary {
    if let Some(codec) = &log.unsupported_codec {
        return RunSummary::missing(format!("unsupported event log codec {codec}"));
    }
    let files = log.files.iter();
    summarize_reader(
        files.map(|file| (file.key.clone(), eventlog::open(objects, file, runtime))),
        log,
    )
}

/// Replays the files' readers in order.
pub fn summarize_reader(
    files: impl Iterator<Item = (String, std::io::Result<Box<dyn Read + Send>>)>,
    log: &EventLog,
) -> RunSummary {
    let mut replay = Replay::new();
    let mut splitter = eventlog::LineSplitter::new(MAX_LINE);
    let mut read_error = None;
    let mut keys = Vec::new();
    for (key, reader) in files {
        let outcome = reader.and_then(|mut reader| {
            let mut oversized = Vec::new();
            let result =
                splitter.split(&mut reader, &mut |line| replay.line(line), &mut |prefix| {
                    oversized.push(prefix.to_vec())
                });
            for prefix in oversized {
                replay.oversized(&prefix);
            }
            result
        });
        keys.push(key.clone());
        if let Err(e) = outcome {
            read_error = Some(format!("reading {key}: {e}"));
            break;
        }
    }
    let stats = LogStats {
        files: keys,
        codec: log
            .files
            .iter()
            .find_map(|f| f.codec)
            .map(|c| c.name().to_string()),
        in_progress: log.in_progress,
        bytes: splitter.stats.bytes,
        lines: splitter.stats.lines,
        oversized_lines: splitter.stats.oversized,
        bad_lines: 0,
    };
    let mut problems = replay.problems(&stats, log.in_progress);
    if let Some(error) = read_error {
        problems.insert(0, format!("truncated log: {error}"));
    }
    let empty = stats.lines == 0;
    let mut summary = replay.finish(stats);
    if empty {
        let why = problems
            .first()
            .filter(|p| p.starts_with("truncated log: reading"));
        summary.status = SummaryStatus::Missing;
        summary.reason = Some(
            why.cloned()
                .unwrap_or_else(|| "the event log is empty".into()),
        );
    } else if !problems.is_empty() {
        summary.status = SummaryStatus::Partial;
        summary.reason = Some(problems.join("; "));
    }
    summary
}
