//! Replays an event log's lines into a [`RunSummary`]: CPU-bound, streaming, bounded memory.
//!
//! Only the events a summary needs are parsed, into borrowed structs of only the fields it
//! needs (names as in Spark's `JsonProtocol`); every other line is recognised by its leading
//! `{"Event":"…"` and passed over. State grows with executors and with stages still running,
//! never with tasks: per-stage task times go into a fixed-size log histogram.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::summary::{
    Allocation, ExecutorStats, IoStats, LogStats, MemoryStats, Peak, ReasonCount, RunSummary,
    StageSkew, StageStats, SummaryStatus, TaskFailure, TaskStats,
};

/// Stage attempts kept in `stages.skew`.
const MAX_SKEW_STAGES: usize = 50;
/// Distinct removal reasons kept; the rest are counted as "other".
const MAX_REASONS: usize = 20;
/// Spark's default executor memory overhead: 10 %, at least 384 MiB.
const OVERHEAD_FACTOR: f64 = 0.10;
const MIN_OVERHEAD_MIB: u64 = 384;

/// The events whose loss makes a summary partial when their line was too long to read.
const NEEDED: [&str; 11] = [
    "SparkListenerTaskStart",
    "SparkListenerExecutorMetricsUpdate",
    "SparkListenerApplicationStart",
    "SparkListenerApplicationEnd",
    "SparkListenerExecutorAdded",
    "SparkListenerExecutorRemoved",
    "SparkListenerTaskEnd",
    "SparkListenerStageCompleted",
    "SparkListenerStageExecutorMetrics",
    "SparkListenerEnvironmentUpdate",
    "SparkListenerResourceProfileAdded",
];

/// Accumulates events; [`Replay::finish`] gives the summary.
#[derive(Default)]
pub struct Replay {
    app: App,
    executors: HashMap<String, Executor>,
    alive: u64,
    max_alive: u64,
    removed: u64,
    removal_reasons: HashMap<String, u64>,
    tasks: TaskStats,
    failures: HashMap<FailureKey, u64>,
    io: IoStats,
    stages: HashMap<(i64, i64), StageAcc>,
    finished_stages: Vec<StageSkew>,
    largest_shuffle: u64,
    /// Tasks started and not yet ended, and the cores of the executors alive.
    running: u64,
    cores_alive: u64,
    stages_total: u64,
    stages_failed: u64,
    driver_peaks: Peaks,
    memory: ExecutorMemory,
    last_time: i64,
    bad_lines: u64,
    oversized_needed: u64,
    first_error: Option<String>,
}

#[derive(Default)]
struct App {
    id: Option<String>,
    attempt: Option<String>,
    name: Option<String>,
    spark_version: Option<String>,
    start: Option<i64>,
    end: Option<i64>,
}

#[derive(Default)]
struct Executor {
    added: Option<i64>,
    removed: Option<i64>,
    cores: u64,
    peaks: Peaks,
}

/// Peak executor metrics: JVM heap, JVM off-heap, process-tree RSS (JVM, Python, other).
#[derive(Default, Clone, Copy)]
struct Peaks {
    reported: bool,
    heap: u64,
    off_heap: u64,
    rss: [u64; 3],
}

impl Peaks {
    fn update(&mut self, metrics: &ExecutorMetrics) {
        if !metrics.measured() {
            return;
        }
        self.reported = true;
        self.heap = self.heap.max(metrics.heap);
        self.off_heap = self.off_heap.max(metrics.off_heap);
        for (peak, value) in
            self.rss
                .iter_mut()
                .zip([metrics.rss_jvm, metrics.rss_python, metrics.rss_other])
        {
            *peak = (*peak).max(value);
        }
    }

    fn rss(&self) -> u64 {
        self.rss.iter().sum()
    }
}

/// Executor memory requested (MiB), from the default resource profile or Spark properties.
#[derive(Default)]
struct ExecutorMemory {
    profile_mib: Option<u64>,
    properties_mib: Option<u64>,
    driver_mib: Option<u64>,
}

struct StageAcc {
    tasks: u64,
    time: u64,
    max: u64,
    histogram: Histogram,
    shuffle_read: u64,
    shuffle_write: u64,
}

/// Task durations in buckets 1 % apart: a median within 1 %, in fixed memory.
struct Histogram(Vec<u32>);

const BUCKET_BASE: f64 = 1.01;
/// Buckets up to 1.01^2200 ms: beyond any task duration.
const BUCKETS: usize = 2200;

impl Histogram {
    fn new() -> Histogram {
        Histogram(vec![0; BUCKETS])
    }

    fn bucket(ms: u64) -> usize {
        (((ms + 1) as f64).ln() / BUCKET_BASE.ln()) as usize
    }

    fn add(&mut self, ms: u64) {
        let bucket = Self::bucket(ms).min(BUCKETS - 1);
        self.0[bucket] += 1;
    }

    /// The lower bound of the bucket holding the median.
    fn median(&self, count: u64) -> u64 {
        let rank = count.div_ceil(2);
        let mut seen = 0u64;
        for (bucket, n) in self.0.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank && seen > 0 {
                return (BUCKET_BASE.powi(bucket as i32) - 1.0).ceil() as u64;
            }
        }
        0
    }
}

// ---- the events, as much of them as a summary reads --------------------------------------

#[derive(Deserialize)]
struct EventName<'a> {
    #[serde(rename = "Event", borrow)]
    event: Cow<'a, str>,
}

#[derive(Deserialize)]
struct LogStart<'a> {
    #[serde(rename = "Spark Version", borrow)]
    version: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ApplicationStart<'a> {
    #[serde(rename = "App Name", borrow)]
    name: Cow<'a, str>,
    #[serde(rename = "App ID", borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "Timestamp")]
    time: i64,
    #[serde(rename = "App Attempt ID", borrow, default)]
    attempt: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Timestamped {
    #[serde(rename = "Timestamp")]
    time: i64,
}

#[derive(Deserialize)]
struct ExecutorAdded<'a> {
    #[serde(rename = "Timestamp")]
    time: i64,
    #[serde(rename = "Executor ID", borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "Executor Info")]
    info: ExecutorInfo,
}

#[derive(Deserialize)]
struct ExecutorInfo {
    #[serde(rename = "Total Cores")]
    cores: u64,
}

#[derive(Deserialize)]
struct ExecutorRemoved<'a> {
    #[serde(rename = "Timestamp")]
    time: i64,
    #[serde(rename = "Executor ID", borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "Removed Reason", borrow, default)]
    reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TaskEnd<'a> {
    #[serde(rename = "Stage ID")]
    stage: i64,
    #[serde(rename = "Stage Attempt ID")]
    stage_attempt: i64,
    #[serde(rename = "Task End Reason", borrow)]
    reason: EndReason<'a>,
    #[serde(rename = "Task Info", borrow)]
    info: TaskInfo<'a>,
    #[serde(rename = "Task Executor Metrics", default)]
    executor_metrics: Option<ExecutorMetrics>,
    #[serde(rename = "Task Metrics", default)]
    metrics: Option<TaskMetrics>,
}

#[derive(Deserialize)]
struct EndReason<'a> {
    #[serde(rename = "Reason", borrow)]
    reason: Cow<'a, str>,
    #[serde(rename = "Class Name", borrow, default)]
    class_name: Option<Cow<'a, str>>,
    #[serde(rename = "Exit Caused By App", default)]
    caused_by_app: Option<bool>,
    #[serde(rename = "Loss Reason", borrow, default)]
    loss_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TaskInfo<'a> {
    #[serde(rename = "Executor ID", borrow)]
    executor: Cow<'a, str>,
    #[serde(rename = "Launch Time")]
    launch: i64,
    #[serde(rename = "Finish Time", default)]
    finish: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TaskMetrics {
    #[serde(rename = "Executor Run Time")]
    run_time: u64,
    /// Nanoseconds.
    #[serde(rename = "Executor CPU Time")]
    cpu_time: u64,
    #[serde(rename = "JVM GC Time")]
    gc_time: u64,
    #[serde(rename = "Memory Bytes Spilled")]
    memory_spilled: u64,
    #[serde(rename = "Disk Bytes Spilled")]
    disk_spilled: u64,
    #[serde(rename = "Shuffle Read Metrics")]
    shuffle_read: ShuffleRead,
    #[serde(rename = "Shuffle Write Metrics")]
    shuffle_write: ShuffleWrite,
    #[serde(rename = "Input Metrics")]
    input: InputMetrics,
    #[serde(rename = "Output Metrics")]
    output: OutputMetrics,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShuffleRead {
    #[serde(rename = "Remote Bytes Read")]
    remote_bytes: u64,
    #[serde(rename = "Local Bytes Read")]
    local_bytes: u64,
    #[serde(rename = "Total Records Read")]
    records: u64,
}

impl ShuffleRead {
    /// Bytes read, from other executors and from this one (the History Server's
    /// `shuffleReadBytes`).
    fn bytes(&self) -> u64 {
        self.remote_bytes + self.local_bytes
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShuffleWrite {
    #[serde(rename = "Shuffle Bytes Written")]
    bytes: u64,
    #[serde(rename = "Shuffle Records Written")]
    records: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InputMetrics {
    #[serde(rename = "Bytes Read")]
    bytes: u64,
    #[serde(rename = "Records Read")]
    records: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OutputMetrics {
    #[serde(rename = "Bytes Written")]
    bytes: u64,
    #[serde(rename = "Records Written")]
    records: u64,
}

/// Spark's `ExecutorMetrics`, whose values are -1 until first measured (the `Task Executor
/// Metrics` of a task lost with its executor say `"JVMHeapMemory":-1`): read as 0, not measured.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ExecutorMetrics {
    #[serde(rename = "JVMHeapMemory", deserialize_with = "unset_as_zero")]
    heap: u64,
    #[serde(rename = "JVMOffHeapMemory", deserialize_with = "unset_as_zero")]
    off_heap: u64,
    #[serde(rename = "ProcessTreeJVMRSSMemory", deserialize_with = "unset_as_zero")]
    rss_jvm: u64,
    #[serde(
        rename = "ProcessTreePythonRSSMemory",
        deserialize_with = "unset_as_zero"
    )]
    rss_python: u64,
    #[serde(
        rename = "ProcessTreeOtherRSSMemory",
        deserialize_with = "unset_as_zero"
    )]
    rss_other: u64,
}

impl ExecutorMetrics {
    fn measured(&self) -> bool {
        [
            self.heap,
            self.off_heap,
            self.rss_jvm,
            self.rss_python,
            self.rss_other,
        ]
        .iter()
        .any(|v| *v > 0)
    }
}

fn unset_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(i64::deserialize(d)?.max(0) as u64)
}

#[derive(Deserialize)]
struct StageCompleted {
    #[serde(rename = "Stage Info")]
    info: StageInfo,
}

#[derive(Deserialize)]
struct StageInfo {
    #[serde(rename = "Stage ID")]
    id: i64,
    #[serde(rename = "Stage Attempt ID")]
    attempt: i64,
    #[serde(rename = "Failure Reason", default)]
    failure: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct StageExecutorMetrics<'a> {
    #[serde(rename = "Executor ID", borrow)]
    executor: Cow<'a, str>,
    #[serde(rename = "Executor Metrics")]
    metrics: ExecutorMetrics,
}

#[derive(Deserialize)]
struct ExecutorMetricsUpdate<'a> {
    #[serde(rename = "Executor ID", borrow)]
    executor: Cow<'a, str>,
    #[serde(rename = "Executor Metrics Updated", default)]
    updates: Vec<MetricsUpdate>,
}

#[derive(Deserialize)]
struct MetricsUpdate {
    #[serde(rename = "Executor Metrics")]
    metrics: ExecutorMetrics,
}

#[derive(Deserialize)]
struct EnvironmentUpdate<'a> {
    #[serde(rename = "Spark Properties", borrow, default)]
    properties: HashMap<Cow<'a, str>, Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResourceProfileAdded<'a> {
    #[serde(rename = "Resource Profile Id")]
    id: i64,
    #[serde(rename = "Executor Resource Requests", borrow)]
    executor: HashMap<Cow<'a, str>, ResourceRequest>,
}

#[derive(Deserialize)]
struct ResourceRequest {
    #[serde(rename = "Amount")]
    amount: u64,
}

/// Which event a line holds, from its leading `{"Event":"…"` (how Spark writes every line),
/// else by parsing the line.
fn event_name(line: &[u8]) -> Option<Cow<'_, str>> {
    const PREFIX: &[u8] = b"{\"Event\":\"";
    if let Some(rest) = line.strip_prefix(PREFIX) {
        let end = memchr::memchr(b'"', rest)?;
        return std::str::from_utf8(&rest[..end]).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<EventName>(line)
        .ok()
        .map(|e| e.event)
}

/// The event name at the start of a line cut short (for oversized lines).
pub fn event_name_of_prefix(prefix: &[u8]) -> Option<&str> {
    let rest = prefix.strip_prefix(b"{\"Event\":\"")?;
    let end = memchr::memchr(b'"', rest)?;
    std::str::from_utf8(&rest[..end]).ok()
}

impl Replay {
    pub fn new() -> Replay {
        Replay::default()
    }

    /// Takes one line of the log.
    pub fn line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Some(event) = event_name(line) else {
            self.bad("a line that is not a JSON event");
            return;
        };
        let outcome = match event.as_ref() {
            "SparkListenerLogStart" => parse(line, |e: LogStart| {
                self.app.spark_version = Some(e.version.into_owned());
            }),
            "SparkListenerApplicationStart" => parse(line, |e: ApplicationStart| self.app_start(e)),
            "SparkListenerApplicationEnd" => parse(line, |e: Timestamped| {
                self.app.end = Some(e.time);
                self.seen(e.time);
            }),
            "SparkListenerExecutorAdded" => parse(line, |e: ExecutorAdded| self.executor_added(e)),
            "SparkListenerExecutorRemoved" => {
                parse(line, |e: ExecutorRemoved| self.executor_removed(e))
            }
            "SparkListenerTaskStart" => {
                self.task_started();
                Ok(())
            }
            "SparkListenerTaskEnd" => parse(line, |e: TaskEnd| self.task_end(e)),
            "SparkListenerStageCompleted" => {
                parse(line, |e: StageCompleted| self.stage_completed(e))
            }
            "SparkListenerStageExecutorMetrics" => parse(line, |e: StageExecutorMetrics| {
                self.executor_metrics(&e.executor, &e.metrics)
            }),
            "SparkListenerExecutorMetricsUpdate" => parse(line, |e: ExecutorMetricsUpdate| {
                for update in &e.updates {
                    self.executor_metrics(&e.executor, &update.metrics);
                }
            }),
            "SparkListenerEnvironmentUpdate" => {
                parse(line, |e: EnvironmentUpdate| self.environment(e))
            }
            "SparkListenerResourceProfileAdded" => {
                parse(line, |e: ResourceProfileAdded| self.resource_profile(e))
            }
            _ => Ok(()),
        };
        if let Err(error) = outcome {
            self.bad(&format!("{event}: {error}"));
        }
    }

    /// Notes a line too long to read, by the event its first bytes name.
    pub fn oversized(&mut self, prefix: &[u8]) {
        if event_name_of_prefix(prefix).is_none_or(|name| NEEDED.contains(&name)) {
            self.oversized_needed += 1;
        }
    }

    fn bad(&mut self, error: &str) {
        self.bad_lines += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.chars().take(200).collect());
        }
    }

    fn seen(&mut self, time: i64) {
        self.last_time = self.last_time.max(time);
    }

    fn app_start(&mut self, event: ApplicationStart) {
        self.app.name = Some(event.name.into_owned());
        self.app.id = event.id.map(Cow::into_owned);
        self.app.attempt = event.attempt.map(Cow::into_owned);
        self.app.start = Some(event.time);
        self.seen(event.time);
    }

    fn executor_added(&mut self, event: ExecutorAdded) {
        self.seen(event.time);
        let executor = self.executors.entry(event.id.into_owned()).or_default();
        if executor.added.is_some() {
            return;
        }
        executor.added = Some(event.time);
        executor.cores = event.info.cores;
        self.cores_alive += event.info.cores;
        self.alive += 1;
        self.max_alive = self.max_alive.max(self.alive);
    }

    fn executor_removed(&mut self, event: ExecutorRemoved) {
        self.seen(event.time);
        let Some(executor) = self.executors.get_mut(event.id.as_ref()) else {
            return;
        };
        if executor.removed.is_some() {
            return;
        }
        executor.removed = Some(event.time);
        self.cores_alive = self.cores_alive.saturating_sub(executor.cores);
        self.alive = self.alive.saturating_sub(1);
        self.removed += 1;
        let reason = event.reason.as_deref().unwrap_or("unknown");
        let reason: String = reason.chars().take(200).collect();
        if self.removal_reasons.len() < MAX_REASONS || self.removal_reasons.contains_key(&reason) {
            *self.removal_reasons.entry(reason).or_default() += 1;
        } else {
            *self.removal_reasons.entry("other".into()).or_default() += 1;
        }
    }

    /// Counts a task start (nothing in the event is needed). A freed core's next task can be
    /// logged as started just before the last one's end, so a saturated run would count a
    /// few more than its cores: the count is held to the cores alive.
    fn task_started(&mut self) {
        self.running += 1;
        let running = match self.cores_alive {
            0 => self.running,
            cores => self.running.min(cores),
        };
        self.tasks.peak_running = self.tasks.peak_running.max(running);
    }

    fn task_end(&mut self, event: TaskEnd) {
        // A log cut at its start (rolled files lost) can end tasks it never started.
        self.running = self.running.saturating_sub(1);
        let tasks = &mut self.tasks;
        tasks.total += 1;
        match event.reason.reason.as_ref() {
            "Success" => tasks.succeeded += 1,
            "TaskKilled" | "TaskCommitDenied" => tasks.killed += 1,
            _ => {
                tasks.failed += 1;
                // In local mode the tasks run in the driver's JVM, as executor `driver`.
                let key = failure_key(&event.reason, event.info.executor == "driver");
                *self.failures.entry(key).or_default() += 1;
            }
        }
        let duration = if event.info.finish > 0 {
            (event.info.finish - event.info.launch).max(0) as u64
        } else {
            0
        };
        tasks.task_time_ms += duration;
        self.seen(event.info.finish);
        if let Some(metrics) = &event.metrics {
            self.task_metrics(metrics);
        }
        if let Some(metrics) = &event.executor_metrics {
            self.executor_metrics(&event.info.executor, metrics);
        }
        let stage = self
            .stages
            .entry((event.stage, event.stage_attempt))
            .or_insert_with(|| StageAcc {
                tasks: 0,
                time: 0,
                max: 0,
                histogram: Histogram::new(),
                shuffle_read: 0,
                shuffle_write: 0,
            });
        stage.tasks += 1;
        stage.time += duration;
        stage.max = stage.max.max(duration);
        stage.histogram.add(duration);
        if let Some(m) = &event.metrics {
            stage.shuffle_read += m.shuffle_read.bytes();
            stage.shuffle_write += m.shuffle_write.bytes;
        }
    }

    fn task_metrics(&mut self, m: &TaskMetrics) {
        self.tasks.run_time_ms += m.run_time;
        self.tasks.cpu_time_ms += m.cpu_time / 1_000_000;
        self.tasks.gc_time_ms += m.gc_time;
        let io = &mut self.io;
        io.memory_spilled_bytes += m.memory_spilled;
        io.disk_spilled_bytes += m.disk_spilled;
        io.shuffle_read_bytes += m.shuffle_read.bytes();
        io.shuffle_read_records += m.shuffle_read.records;
        io.shuffle_write_bytes += m.shuffle_write.bytes;
        io.shuffle_write_records += m.shuffle_write.records;
        io.input_bytes += m.input.bytes;
        io.input_records += m.input.records;
        io.output_bytes += m.output.bytes;
        io.output_records += m.output.records;
    }

    fn executor_metrics(&mut self, executor: &str, metrics: &ExecutorMetrics) {
        if executor == "driver" {
            self.driver_peaks.update(metrics);
        }
        // In local mode the driver is also the executor that runs the tasks.
        if executor != "driver" || self.executors.contains_key("driver") {
            self.executors
                .entry(executor.to_string())
                .or_default()
                .peaks
                .update(metrics);
        }
    }

    fn stage_completed(&mut self, event: StageCompleted) {
        self.stages_total += 1;
        if event.info.failure.is_some() {
            self.stages_failed += 1;
        }
        if let Some(stage) = self.stages.remove(&(event.info.id, event.info.attempt)) {
            self.finish_stage(event.info.id, event.info.attempt, stage);
        }
    }

    fn finish_stage(&mut self, id: i64, attempt: i64, stage: StageAcc) {
        let shuffle = stage.shuffle_read.max(stage.shuffle_write);
        self.largest_shuffle = self.largest_shuffle.max(shuffle);
        self.finished_stages.push(StageSkew {
            stage_id: id,
            attempt_id: attempt,
            tasks: stage.tasks,
            task_time_ms: stage.time,
            max_task_ms: stage.max,
            median_task_ms: stage.histogram.median(stage.tasks).min(stage.max),
        });
        // Keep the heaviest stages, the worst skew among them; bounded whatever the log.
        if self.finished_stages.len() >= 2 * MAX_SKEW_STAGES {
            self.trim_stages();
        }
    }

    fn trim_stages(&mut self) {
        let worst = worst_stage(&self.finished_stages).cloned();
        self.finished_stages
            .sort_by_key(|s| std::cmp::Reverse(s.task_time_ms));
        self.finished_stages.truncate(MAX_SKEW_STAGES);
        if let Some(worst) = worst
            && !self.finished_stages.contains(&worst)
        {
            self.finished_stages.pop();
            self.finished_stages.push(worst);
        }
    }

    fn environment(&mut self, event: EnvironmentUpdate) {
        let property = |key: &str| event.properties.get(key).map(|v| v.as_ref());
        let mib = |key: &str| property(key).and_then(memory_mib);
        if let Some(heap) = mib("spark.executor.memory").or(Some(1024)) {
            let overhead =
                mib("spark.executor.memoryOverhead").unwrap_or_else(|| default_overhead(heap));
            let off_heap = if property("spark.memory.offHeap.enabled") == Some("true") {
                mib("spark.memory.offHeap.size").unwrap_or(0)
            } else {
                0
            };
            let pyspark = mib("spark.executor.pyspark.memory").unwrap_or(0);
            self.memory.properties_mib = Some(heap + overhead + off_heap + pyspark);
        }
        self.memory.driver_mib = Some(mib("spark.driver.memory").unwrap_or(1024));
    }

    fn resource_profile(&mut self, event: ResourceProfileAdded) {
        if event.id != 0 {
            return;
        }
        let amount = |key: &str| event.executor.get(key).map(|r| r.amount);
        if let Some(heap) = amount("memory") {
            let overhead = amount("memoryOverhead").unwrap_or_else(|| default_overhead(heap));
            let total = heap
                + overhead
                + amount("offHeap").unwrap_or(0)
                + amount("pyspark.memory").unwrap_or(0);
            self.memory.profile_mib = Some(total);
        }
    }

    /// The summary of everything taken so far.
    pub fn finish(mut self, log: LogStats) -> RunSummary {
        let open: Vec<_> = self.stages.drain().collect();
        for ((id, attempt), stage) in open {
            self.finish_stage(id, attempt, stage);
        }
        self.trim_stages();
        let end = self.app.end.unwrap_or(self.last_time);
        let mut summary = RunSummary {
            status: SummaryStatus::Complete,
            reason: None,
            app_id: self.app.id.take(),
            attempt_id: self.app.attempt.take(),
            app_name: self.app.name.take(),
            spark_version: self.app.spark_version.take(),
            start_time: self.app.start,
            end_time: self.app.end,
            executors: self.executor_stats(),
            memory: self.memory_stats(),
            allocation: self.allocation(end),
            stages: StageStats {
                total: self.stages_total,
                failed: self.stages_failed,
                worst: worst_stage(&self.finished_stages).cloned(),
                skew: std::mem::take(&mut self.finished_stages),
                largest_shuffle_bytes: self.largest_shuffle,
            },
            tasks: std::mem::take(&mut self.tasks),
            io: std::mem::take(&mut self.io),
            log: LogStats {
                bad_lines: self.bad_lines,
                ..log
            },
        };
        summary
            .stages
            .skew
            .sort_by_key(|s| std::cmp::Reverse(s.task_time_ms));
        summary.tasks.failures = self.failure_list();
        summary
    }

    fn executor_stats(&self) -> ExecutorStats {
        ExecutorStats {
            added: self
                .executors
                .values()
                .filter(|e| e.added.is_some())
                .count() as u64,
            removed: self.removed,
            max_alive: self.max_alive,
            removal_reasons: by_count(self.removal_reasons.iter().map(|(r, n)| (r.clone(), *n)))
                .map(|(reason, count)| ReasonCount { reason, count })
                .collect(),
        }
    }

    fn failure_list(&self) -> Vec<TaskFailure> {
        by_count(self.failures.iter().map(|(k, n)| (k.clone(), *n)))
            .map(
                |((kind, class_name, exit_code, caused_by_app, on_driver), count)| TaskFailure {
                    kind,
                    class_name,
                    exit_code,
                    caused_by_app,
                    on_driver,
                    count,
                },
            )
            .collect()
    }

    fn memory_stats(&self) -> MemoryStats {
        let reporting: Vec<&Peaks> = self
            .executors
            .iter()
            .filter(|(id, e)| e.peaks.reported && id.as_str() != "driver")
            .map(|(_, e)| &e.peaks)
            .collect();
        let local_driver = self
            .executors
            .get("driver")
            .map(|e| &e.peaks)
            .filter(|p| p.reported);
        // In local mode the driver is the only executor: its peaks are the executors' too.
        let executors: Vec<&Peaks> = if reporting.is_empty() {
            local_driver.into_iter().collect()
        } else {
            reporting
        };
        let driver = &self.driver_peaks;
        let driver_value = |value: u64| (driver.reported && value > 0).then_some(value);
        MemoryStats {
            executors_reporting: executors.len() as u64,
            executor_jvm_heap: peak(executors.iter().map(|p| p.heap)),
            executor_jvm_off_heap: peak(executors.iter().map(|p| p.off_heap)),
            executor_process_tree_rss: peak(executors.iter().map(|p| p.rss())),
            driver_jvm_heap: driver_value(driver.heap),
            driver_jvm_off_heap: driver_value(driver.off_heap),
            driver_process_tree_rss: driver_value(driver.rss()),
        }
    }

    fn allocation(&self, end: i64) -> Allocation {
        let executor_mib = self.memory.profile_mib.or(self.memory.properties_mib);
        let mut core_seconds = 0.0;
        let mut memory_gib_seconds = 0.0;
        for (id, executor) in &self.executors {
            let Some(added) = executor.added else {
                continue;
            };
            let seconds = (executor.removed.unwrap_or(end) - added).max(0) as f64 / 1000.0;
            core_seconds += executor.cores as f64 * seconds;
            let mib = if id == "driver" {
                self.memory.driver_mib
            } else {
                executor_mib
            };
            memory_gib_seconds += mib.unwrap_or(0) as f64 / 1024.0 * seconds;
        }
        let task_seconds = self.tasks.task_time_ms as f64 / 1000.0;
        Allocation {
            core_seconds,
            task_seconds,
            core_usage: (core_seconds > 0.0).then(|| task_seconds / core_seconds),
            executor_memory_mib: executor_mib,
            memory_gib_seconds,
        }
    }

    /// Why the summary is not complete, if it is not: the first reason decides the status.
    pub fn problems(&self, log: &LogStats, in_progress: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if self.app.start.is_none() {
            problems.push("no application start in the log".to_string());
        }
        if in_progress {
            problems.push(
                "log in progress (the application was still running or did not stop cleanly)"
                    .into(),
            );
        } else if self.app.end.is_none() {
            problems.push("truncated log: no application end".into());
        }
        if self.bad_lines > 0 {
            let first = self.first_error.as_deref().unwrap_or_default();
            problems.push(format!(
                "{} unreadable lines (first: {first})",
                self.bad_lines
            ));
        }
        if self.oversized_needed > 0 {
            problems.push(format!("{} oversized lines skipped", log.oversized_lines));
        }
        problems
    }
}

fn parse<'a, T: Deserialize<'a>>(
    line: &'a [u8],
    apply: impl FnOnce(T),
) -> Result<(), serde_json::Error> {
    serde_json::from_slice(line).map(apply)
}

/// Kind, exception class, exit code, caused by the app.
/// Kind, exception class, exit code, caused by the app, and whether the task ran in the
/// driver's JVM (local mode).
type FailureKey = (String, Option<String>, Option<i32>, Option<bool>, bool);

fn failure_key(reason: &EndReason, on_driver: bool) -> FailureKey {
    let kind = reason.reason.to_string();
    match kind.as_str() {
        "ExceptionFailure" => (
            kind,
            reason.class_name.as_deref().map(String::from),
            None,
            None,
            on_driver,
        ),
        "ExecutorLostFailure" => {
            let exit = reason.loss_reason.as_deref().and_then(exit_code);
            (kind, None, exit, reason.caused_by_app, on_driver)
        }
        _ => (kind, None, None, None, on_driver),
    }
}

/// The exit code a loss reason names: "exited with code 137", "exit code 52", "Exit status: 143".
pub fn exit_code(reason: &str) -> Option<i32> {
    let lower = reason.to_ascii_lowercase();
    ["exit code", "with code", "exit status", "exitcode"]
        .iter()
        .find_map(|marker| {
            let at = lower.find(marker)? + marker.len();
            let rest = lower[at..].trim_start_matches([':', ' ', '=']);
            let digits: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            digits.parse().ok()
        })
}

/// Spark's memory strings ("4g", "512m", "1024" MiB) in MiB.
fn memory_mib(value: &str) -> Option<u64> {
    let value = value.trim().to_ascii_lowercase();
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let number: u64 = value[..digits_end].parse().ok()?;
    match value[digits_end..].trim_end_matches('b') {
        "" | "m" => Some(number),
        "k" => Some(number / 1024),
        "g" => Some(number * 1024),
        "t" => Some(number * 1024 * 1024),
        _ => None,
    }
}

fn default_overhead(heap_mib: u64) -> u64 {
    ((heap_mib as f64 * OVERHEAD_FACTOR) as u64).max(MIN_OVERHEAD_MIB)
}

/// The max and nearest-rank 95th percentile of the values, if any.
fn peak(values: impl Iterator<Item = u64>) -> Option<Peak> {
    let mut values: Vec<u64> = values.filter(|v| *v > 0).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((values.len() as f64) * 0.95).ceil() as usize;
    Some(Peak {
        max: *values.last().expect("not empty"),
        p95: values[rank.clamp(1, values.len()) - 1],
    })
}

/// The stage whose slowest task ran longest beyond its median task.
fn worst_stage(stages: &[StageSkew]) -> Option<&StageSkew> {
    stages
        .iter()
        .filter(|s| s.tasks > 1)
        .max_by_key(|s| s.max_task_ms - s.median_task_ms)
}

fn by_count<K: Ord>(items: impl Iterator<Item = (K, u64)>) -> impl Iterator<Item = (K, u64)> {
    let mut items: Vec<(K, u64)> = items.collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_running_at_once_are_held_to_the_cores_alive() {
        let mut replay = Replay::new();
        let start = br#"{"Event":"SparkListenerTaskStart","Stage ID":0}"#;
        for _ in 0..3 {
            replay.line(start);
        }
        assert_eq!(replay.tasks.peak_running, 3, "no executor seen: as counted");
        let mut replay = Replay::new();
        replay.line(
            br#"{"Event":"SparkListenerExecutorAdded","Timestamp":1,"Executor ID":"1","Executor Info":{"Total Cores":2}}"#,
        );
        for _ in 0..3 {
            replay.line(start);
        }
        assert_eq!(replay.tasks.peak_running, 2);
    }

    #[test]
    fn histogram_median_within_one_percent() {
        let mut histogram = Histogram::new();
        for ms in [5, 7, 9, 1000, 100_000] {
            histogram.add(ms);
        }
        assert_eq!(histogram.median(5), 9);
        let mut histogram = Histogram::new();
        for ms in 1..=10_001u64 {
            histogram.add(ms * 10);
        }
        let median = histogram.median(10_001);
        assert!((49_500..=50_010).contains(&median), "{median}");
    }

    #[test]
    fn reads_exit_codes_and_memory() {
        assert_eq!(exit_code("Command exited with code 137"), Some(137));
        assert_eq!(
            exit_code("The executor with id 2 exited with exit code 52(JVM OOM)."),
            Some(52)
        );
        assert_eq!(exit_code("Container killed. Exit status: 143."), Some(143));
        assert_eq!(exit_code("Executor heartbeat timed out"), None);
        assert_eq!(memory_mib("4g"), Some(4096));
        assert_eq!(memory_mib("512m"), Some(512));
        assert_eq!(memory_mib("2048"), Some(2048));
        assert_eq!(memory_mib("lots"), None);
        assert_eq!(peak([1, 2, 3].into_iter()), Some(Peak { max: 3, p95: 3 }));
        let many = peak(1..=100);
        assert_eq!(many, Some(Peak { max: 100, p95: 95 }));
    }

    #[test]
    fn unmeasured_executor_metrics_are_not_peaks() {
        // A task lost with its executor (Spark 4.3, local-cluster, executor killed).
        let mut replay = Replay::new();
        replay.line(
            br#"{"Event":"SparkListenerTaskEnd","Stage ID":0,"Stage Attempt ID":0,"Task End Reason":{"Reason":"ExecutorLostFailure","Executor ID":"0","Exit Caused By App":true,"Loss Reason":"Command exited with code 137"},"Task Info":{"Task ID":1,"Executor ID":"0","Launch Time":1000,"Finish Time":3500,"Failed":true,"Accumulables":[]},"Task Executor Metrics":{"JVMHeapMemory":-1,"JVMOffHeapMemory":0,"ProcessTreeJVMRSSMemory":0}}"#,
        );
        assert_eq!(replay.bad_lines, 0, "{:?}", replay.first_error);
        assert_eq!((replay.tasks.failed, replay.tasks.task_time_ms), (1, 2500));
        let key = (
            "ExecutorLostFailure".to_string(),
            None,
            Some(137),
            Some(true),
            false,
        );
        assert_eq!(replay.failures.get(&key), Some(&1));
        assert!(!replay.executors["0"].peaks.reported);
    }

    #[test]
    fn a_task_that_failed_in_the_drivers_jvm_says_so() {
        // Local mode: the task ran as executor `driver`, so its OOM was the driver's heap.
        let mut replay = Replay::new();
        replay.line(
            br#"{"Event":"SparkListenerTaskEnd","Stage ID":0,"Stage Attempt ID":0,"Task End Reason":{"Reason":"ExceptionFailure","Class Name":"java.lang.OutOfMemoryError","Description":"Java heap space","Stack Trace":[]},"Task Info":{"Task ID":0,"Executor ID":"driver","Launch Time":1000,"Finish Time":2000,"Failed":true,"Accumulables":[]}}"#,
        );
        assert_eq!(replay.bad_lines, 0, "{:?}", replay.first_error);
        let failures = replay.failure_list();
        assert_eq!(failures.len(), 1);
        assert!(failures[0].on_driver, "{failures:?}");
    }

    #[test]
    fn wrong_types_and_garbage_are_counted() {
        let mut replay = Replay::new();
        replay.line(b"garbage");
        replay.line(br#"{"Event":"SparkListenerTaskEnd","Stage ID":"zero"}"#);
        replay.line(br#"{"Event":"SparkListenerJobStart","anything":[1,2]}"#);
        replay.line(b"   ");
        assert_eq!(replay.bad_lines, 2);
        let problems = replay.problems(&LogStats::default(), false);
        assert!(
            problems[2].starts_with("2 unreadable lines (first: a line that is not"),
            "{problems:?}"
        );
    }
}
