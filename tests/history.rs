//! Run summaries from event logs (`sk8::history`): real logs of Spark 4.3 (the fixtures of
//! `tests/fixtures/eventlogs`, made by its `generate.sh`) in every encoding Spark writes, and
//! bad input — truncated, in progress, garbage lines, wrong JSON types, a 100 MB line, empty
//! and missing logs — each giving a partial or missing summary with its reason, in bounded
//! memory.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sk8::history::{Location, Objects, RunSummary, StoreOptions, SummaryStatus, summarize};

fn eventlogs(name: &str) -> PathBuf {
    common::fixture("eventlogs").join(name)
}

fn objects_at(dir: &Path) -> Objects {
    Objects::open(&Location::local(dir), &StoreOptions::default()).unwrap()
}

/// The app id of the one log in a fixture directory.
fn app_in(dir: &Path) -> String {
    let name = std::fs::read_dir(dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let name = name.to_string_lossy();
    let name = name.strip_prefix("eventlog_v2_").unwrap_or(&name);
    name.split('.').next().unwrap().to_string()
}

async fn fixture_summary(name: &str) -> (String, RunSummary) {
    let dir = eventlogs(name);
    let app = app_in(&dir);
    let summary = summarize(&objects_at(&dir), &app).await;
    (app, summary)
}

/// The zstd fixture's log, uncompressed: the source of the plain and damaged variants.
fn plain_log() -> (String, Vec<u8>) {
    let dir = eventlogs("zstd");
    let app = app_in(&dir);
    let file = dir.join(format!("eventlog_v2_{app}/events_1_{app}.zstd"));
    let mut plain = Vec::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(file).unwrap())
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    (app, plain)
}

/// What job.py did, whatever the encoding: the numbers every complete summary of it shows.
fn assert_job_py(summary: &RunSummary) {
    assert_eq!(
        summary.status,
        SummaryStatus::Complete,
        "{:?}",
        summary.reason
    );
    assert_eq!(summary.app_name.as_deref(), Some("sk8-history-fixture"));
    assert_eq!(summary.spark_version.as_deref(), Some("4.3.0"));
    assert!(summary.start_time.unwrap() < summary.end_time.unwrap());
    let tasks = &summary.tasks;
    // 6 + 4 + 1 + 2 + 4 + 1 tasks in 6 stages; partitions 0 and 3 of the UDF's stage fail once.
    assert_eq!((tasks.total, tasks.succeeded, tasks.failed), (20, 18, 2));
    assert_eq!(tasks.failures.len(), 1);
    assert_eq!(tasks.failures[0].kind, "ExceptionFailure");
    assert_eq!(
        tasks.failures[0].class_name.as_deref(),
        Some("org.apache.spark.api.python.PythonException")
    );
    assert!(tasks.task_time_ms >= tasks.run_time_ms && tasks.run_time_ms > tasks.cpu_time_ms);
    // Its 6-task stage kept both cores of local[2,3] busy.
    assert_eq!(tasks.peak_running, 2);
    assert_eq!((summary.stages.total, summary.stages.failed), (6, 0));
    let worst = summary.stages.worst.as_ref().unwrap();
    assert!(worst.max_task_ms >= worst.median_task_ms);
    let io = &summary.io;
    assert_eq!(io.output_records, 20_000, "job.py writes 20000 rows");
    assert!(
        io.shuffle_write_records >= 20_000 && io.shuffle_read_records == io.shuffle_write_records
    );
    assert!(
        io.memory_spilled_bytes > 0 && io.disk_spilled_bytes > 0,
        "{io:?}"
    );
    let largest = summary.stages.largest_shuffle_bytes;
    assert!(
        largest > 0 && largest <= io.shuffle_read_bytes.max(io.shuffle_write_bytes),
        "largest stage shuffle {largest} of {io:?}"
    );
    assert!(io.input_bytes > 0);
    // local[2,3]: the driver is the one executor, with 2 cores.
    assert_eq!(
        (summary.executors.added, summary.executors.max_alive),
        (1, 1)
    );
    let memory = &summary.memory;
    assert!(memory.executor_jvm_heap.unwrap().max > 10 << 20);
    assert!(memory.executor_process_tree_rss.unwrap().max > memory.executor_jvm_heap.unwrap().max);
    assert!(memory.driver_jvm_heap.unwrap() > 10 << 20);
    let allocation = &summary.allocation;
    assert!(allocation.core_seconds > allocation.task_seconds && allocation.task_seconds > 0.0);
    assert!(allocation.memory_gib_seconds > 0.0);
    assert!(
        summary
            .headline()
            .starts_with("complete, 6 stages, 20 tasks (2 failed")
    );
}

#[tokio::test]
async fn every_encoding_spark_writes() {
    for name in ["zstd", "lz4", "snappy"] {
        let (app, summary) = fixture_summary(name).await;
        assert_eq!(summary.app_id.as_deref(), Some(app.as_str()), "{name}");
        assert_eq!(summary.log.codec.as_deref(), Some(name));
        assert!(!summary.log.in_progress);
        assert_job_py(&summary);
    }
}

/// The same log as the zstd fixture, written by the test as `name` files under a temp dir.
fn write_log(files: &[(String, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

#[tokio::test]
async fn plain_and_multi_part_rolling_logs_agree_with_zstd() {
    let (app, plain) = plain_log();
    let (_, reference) = fixture_summary("zstd").await;

    let dir = write_log(&[(app.clone(), plain.clone())]);
    let single = summarize(&objects_at(dir.path()), &app).await;
    assert_job_py(&single);
    assert_eq!(single.log.codec, None);
    assert_eq!(
        (&single.tasks, &single.io, &single.stages),
        (&reference.tasks, &reference.io, &reference.stages)
    );

    // Three parts, numbered 1, 2, 10: read in numeric order (lexical would put 10 second).
    let lines: Vec<&[u8]> = plain.split_inclusive(|b| *b == b'\n').collect();
    let third = lines.len() / 3;
    let parts = [
        &lines[..third],
        &lines[third..2 * third],
        &lines[2 * third..],
    ];
    let files: Vec<(String, Vec<u8>)> = parts
        .iter()
        .zip([1, 2, 10])
        .map(|(part, n)| {
            let name = format!("eventlog_v2_{app}/events_{n}_{app}.zstd");
            (name, zstd(&part.concat()))
        })
        .chain([(format!("eventlog_v2_{app}/appstatus_{app}"), Vec::new())])
        .collect();
    let dir = write_log(&files);
    let rolling = summarize(&objects_at(dir.path()), &app).await;
    assert_job_py(&rolling);
    assert_eq!(rolling.log.files.len(), 3);
    assert!(
        rolling.log.files[2].contains("events_10_"),
        "{:?}",
        rolling.log.files
    );
    assert_eq!(
        (&rolling.tasks, &rolling.memory),
        (&reference.tasks, &reference.memory)
    );
}

#[tokio::test]
async fn in_progress_and_truncated_logs_are_partial() {
    let (app, plain) = plain_log();
    let half = &plain[..plain.len() / 2];

    let dir = write_log(&[(format!("{app}.inprogress"), half.to_vec())]);
    let summary = summarize(&objects_at(dir.path()), &app).await;
    assert_eq!(summary.status, SummaryStatus::Partial);
    assert!(
        summary.reason.as_ref().unwrap().contains("log in progress"),
        "{:?}",
        summary.reason
    );
    assert!(summary.log.in_progress);
    assert!(summary.tasks.total > 0 && summary.tasks.total < 20);

    // Cut mid-line: the last line is unreadable and the end is missing.
    let dir = write_log(&[(app.clone(), half.to_vec())]);
    let summary = summarize(&objects_at(dir.path()), &app).await;
    assert_eq!(summary.status, SummaryStatus::Partial);
    let reason = summary.reason.unwrap();
    assert!(
        reason.starts_with("truncated log: no application end"),
        "{reason}"
    );
    assert!(reason.contains("1 unreadable lines"), "{reason}");

    // A compressed log cut mid-frame; Spark writes a frame per flush, so frames of 16 lines.
    let lines: Vec<&[u8]> = plain.split_inclusive(|b| *b == b'\n').collect();
    let compressed: Vec<u8> = lines
        .chunks(16)
        .flat_map(|chunk| zstd(&chunk.concat()))
        .collect();
    let cut = compressed[..compressed.len() * 2 / 3].to_vec();
    let dir = write_log(&[(format!("{app}.zstd"), cut)]);
    let summary = summarize(&objects_at(dir.path()), &app).await;
    assert_eq!(summary.status, SummaryStatus::Partial);
    let reason = summary.reason.unwrap();
    assert!(reason.starts_with("truncated log: reading"), "{reason}");
    assert!(summary.tasks.total > 0, "{reason} {:?}", summary.log);
    assert!(summary.tasks.total < 20);
}

#[tokio::test]
async fn garbage_and_wrong_types_are_counted_not_fatal() {
    let (app, plain) = plain_log();
    let mut damaged = Vec::new();
    for (i, line) in plain.split_inclusive(|b| *b == b'\n').enumerate() {
        damaged.extend_from_slice(line);
        if i == 10 {
            damaged.extend_from_slice(b"\x00\xffnot json at all\n");
            damaged.extend_from_slice(
                br#"{"Event":"SparkListenerTaskEnd","Stage ID":"zero","Task Info":[]}"#,
            );
            damaged.push(b'\n');
            damaged.extend_from_slice(
                br#"{"Event":"SparkListenerExecutorAdded","Timestamp":"yesterday"}"#,
            );
            damaged.push(b'\n');
        }
    }
    let dir = write_log(&[(app.clone(), damaged)]);
    let summary = summarize(&objects_at(dir.path()), &app).await;
    assert_eq!(summary.status, SummaryStatus::Partial);
    assert_eq!(summary.log.bad_lines, 3);
    assert!(
        summary
            .reason
            .unwrap()
            .starts_with("3 unreadable lines (first: a line that is not a JSON event)")
    );
    assert_eq!(summary.tasks.total, 20, "the good lines still count");
}

/// Peak resident memory of this test process (nextest runs each test in a process of its own).
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[tokio::test]
async fn a_100_mb_line_is_skipped_in_bounded_memory() {
    let (app, plain) = plain_log();
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.path().join(&app)).unwrap());
    let lines: Vec<&[u8]> = plain.split_inclusive(|b| *b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if i == lines.len() / 2 {
            file.write_all(br#"{"Event":"SparkListenerTaskEnd","Task Info":{"x":""#)
                .unwrap();
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..100 {
                file.write_all(&chunk).unwrap();
            }
            file.write_all(b"\"}}\n").unwrap();
        }
        file.write_all(line).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    drop(plain);

    let summary = summarize(&objects_at(dir.path()), &app).await;
    assert_eq!(summary.status, SummaryStatus::Partial);
    assert_eq!(summary.log.oversized_lines, 1);
    assert!(
        summary
            .reason
            .unwrap()
            .contains("1 oversized lines skipped")
    );
    assert_eq!(summary.tasks.total, 20, "every other line is read");
    assert!(summary.log.bytes > 100 << 20);
    let peak = peak_rss_bytes();
    assert!(
        peak < 64 << 20,
        "peak RSS {} MiB while reading a 100 MB line",
        peak >> 20
    );
}

#[tokio::test]
async fn empty_and_missing_logs_are_missing() {
    let dir = write_log(&[
        ("local-1".to_string(), Vec::new()),
        ("local-2.lzf".to_string(), b"x".to_vec()),
    ]);
    let objects = objects_at(dir.path());
    let empty = summarize(&objects, "local-1").await;
    assert_eq!(
        (empty.status, empty.reason.as_deref()),
        (SummaryStatus::Missing, Some("the event log is empty"))
    );
    let lzf = summarize(&objects, "local-2").await;
    assert_eq!(
        lzf.reason.as_deref(),
        Some("unsupported event log codec lzf")
    );
    let missing = summarize(&objects, "local-3").await;
    assert_eq!(missing.status, SummaryStatus::Missing);
    assert!(
        missing
            .reason
            .as_ref()
            .unwrap()
            .starts_with("no event log for local-3 in file://")
    );
    assert!(
        missing
            .headline()
            .starts_with("missing: no event log for local-3")
    );
}

/// A team whose namespace turns event logs off (`eventLog: false`) gets runs without them: the
/// stored spec says so, and the summary is missing with that reason; a job of that team that
/// asks for its log keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_policy_turns_event_logs_off_unless_the_spec_asks() {
    use common::{Engine, Options, TestApp, fake_job};
    use std::time::Duration;
    const WAIT: Duration = Duration::from_secs(60);

    let app = TestApp::spawn(Options::new(Engine::Sqlite)).await;
    let body = serde_json::json!({"eventLog": false});
    let (status, applied) = app.put("/v1/namespaces/quiet/dev", &body).await;
    assert!((200..300).contains(&status), "{status} {applied}");
    let (_, namespace) = app.get("/v1/namespaces/quiet/dev").await;
    assert_eq!(namespace["spec"]["eventLog"], false, "{namespace}");

    let summary_of = |id: String| {
        let app = &app;
        async move {
            let done = app.wait_finished(&id, WAIT).await;
            assert_eq!(done["state"], "SUCCEEDED", "{done}");
            let record = app.wait_recorded(&id, WAIT).await;
            (done, record["summary"].clone())
        }
    };
    let quiet = app.submit(&fake_job("quiet", "nightly", "eventlog")).await;
    let (job, summary) = summary_of(quiet["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        job["spec"]["sparkConf"]["spark.eventLog.enabled"], "false",
        "{job}"
    );
    assert_eq!(summary["status"], "missing", "{summary}");
    assert!(
        summary["reason"]
            .as_str()
            .unwrap()
            .contains("namespace (eventLog)"),
        "{summary}"
    );

    let mut asks = fake_job("quiet", "audited", "eventlog");
    asks["sparkConf"] = serde_json::json!({"spark.eventLog.enabled": "true"});
    let asks = app.submit(&asks).await;
    let (_, summary) = summary_of(asks["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(summary["status"], "complete", "the spec wins: {summary}");
}
