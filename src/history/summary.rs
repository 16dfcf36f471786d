//! [`RunSummary`]: what one Spark application attempt did, as read from its event log — the
//! record sk8 keeps per attempt and serves in its API.
//!
//! Times are Unix milliseconds, sizes bytes. A summary is always produced: one that could not
//! be read completely says so in `status` and `reason`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether the summary covers the whole application.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SummaryStatus {
    /// The log was read to the application's end.
    Complete,
    /// Some of the log was read: `reason` says what was missing or unreadable.
    Partial,
    /// No log could be read: `reason` says why.
    #[default]
    Missing,
}

/// What an application attempt did, from its event log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub status: SummaryStatus,
    /// Why the summary is partial or missing (`truncated log`, `no event log for app-…`).
    pub reason: Option<String>,
    pub app_id: Option<String>,
    pub attempt_id: Option<String>,
    pub app_name: Option<String>,
    pub spark_version: Option<String>,
    /// Application start and end, Unix milliseconds.
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub log: LogStats,
    pub executors: ExecutorStats,
    pub tasks: TaskStats,
    pub stages: StageStats,
    pub io: IoStats,
    pub memory: MemoryStats,
    pub allocation: Allocation,
}

/// How the event log was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogStats {
    /// The files read, in order (keys relative to the event log location).
    pub files: Vec<String>,
    /// Compression codec (`zstd`, `lz4`, `snappy`), none for plain logs.
    pub codec: Option<String>,
    /// Spark was still writing the log (`.inprogress`).
    pub in_progress: bool,
    /// Uncompressed bytes read.
    pub bytes: u64,
    pub lines: u64,
    /// Lines longer than the reader's bound, skipped without being held in memory.
    pub oversized_lines: u64,
    /// Lines that were not JSON or whose fields had the wrong types.
    pub bad_lines: u64,
}

/// Executors over the application's life.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorStats {
    pub added: u64,
    pub removed: u64,
    /// The most executors alive at the same time.
    pub max_alive: u64,
    /// Why executors were removed, most frequent first.
    pub removal_reasons: Vec<ReasonCount>,
}

/// A reason and how often it was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

/// Tasks and the time they took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStats {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub killed: u64,
    /// Failed tasks by reason, most frequent first.
    pub failures: Vec<TaskFailure>,
    /// Sum of task durations (launch to finish), as the History Server's `totalDuration`.
    pub task_time_ms: u64,
    /// Sum of the tasks' `Executor Run Time`.
    pub run_time_ms: u64,
    /// Sum of the tasks' `Executor CPU Time`.
    pub cpu_time_ms: u64,
    /// Sum of the tasks' `JVM GC Time`.
    pub gc_time_ms: u64,
    /// The most tasks running at once (task starts less task ends, in log order): what the
    /// widest moment of the run used of its executors' cores.
    #[serde(default)]
    pub peak_running: u64,
}

/// One kind of task failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailure {
    /// Spark's reason: `ExceptionFailure`, `FetchFailed`, `ExecutorLostFailure`, `TaskKilled`…
    pub kind: String,
    /// The exception class of an `ExceptionFailure`.
    pub class_name: Option<String>,
    /// The executor's exit code of an `ExecutorLostFailure`, when its loss reason names one.
    pub exit_code: Option<i32>,
    /// Whether the application caused the executor loss (`Exit Caused By App`).
    pub caused_by_app: Option<bool>,
    /// The task ran in the driver's JVM (local mode, executor `driver`): its failure was the
    /// driver's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_driver: bool,
    pub count: u64,
}

/// Stages and how evenly their tasks ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStats {
    /// Stage attempts completed (a retried stage counts once per attempt).
    pub total: u64,
    pub failed: u64,
    /// The stage whose slowest task waited longest beyond the median one.
    pub worst: Option<StageSkew>,
    /// Per stage attempt, the ones with the most task time first (at most 50).
    pub skew: Vec<StageSkew>,
    /// The most shuffle bytes one stage attempt read or wrote (the larger of the two): the
    /// shuffle that `spark.sql.shuffle.partitions` has to split.
    #[serde(default)]
    pub largest_shuffle_bytes: u64,
}

/// Task-time spread in one stage attempt. The median is exact to within 1 %.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageSkew {
    pub stage_id: i64,
    pub attempt_id: i64,
    pub tasks: u64,
    pub task_time_ms: u64,
    pub max_task_ms: u64,
    pub median_task_ms: u64,
}

/// Bytes and records moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IoStats {
    pub memory_spilled_bytes: u64,
    pub disk_spilled_bytes: u64,
    pub shuffle_read_bytes: u64,
    pub shuffle_read_records: u64,
    pub shuffle_write_bytes: u64,
    pub shuffle_write_records: u64,
    pub input_bytes: u64,
    pub input_records: u64,
    pub output_bytes: u64,
    pub output_records: u64,
}

/// Peak memory, from the executors' metrics (`spark.eventLog.logStageExecutorMetrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// How many executors reported metrics (the driver not included).
    pub executors_reporting: u64,
    pub executor_jvm_heap: Option<Peak>,
    pub executor_jvm_off_heap: Option<Peak>,
    /// Resident memory of the executor's process tree (JVM + Python + other), which needs
    /// `spark.executor.processTreeMetrics.enabled`: the sum of each part's peak.
    pub executor_process_tree_rss: Option<Peak>,
    pub driver_jvm_heap: Option<u64>,
    pub driver_jvm_off_heap: Option<u64>,
    pub driver_process_tree_rss: Option<u64>,
}

/// Each executor's peak, summarized across executors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Peak {
    pub max: u64,
    /// The 95th percentile (nearest rank) of the executors' peaks.
    pub p95: u64,
}

/// What was allocated against what was used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// Sum over executors of cores × seconds alive.
    pub core_seconds: f64,
    /// Sum of task durations, in seconds.
    pub task_seconds: f64,
    /// task_seconds / core_seconds, when cores were allocated.
    pub core_usage: Option<f64>,
    /// Executor memory (heap + overhead + off-heap, as requested) in MiB, when known.
    pub executor_memory_mib: Option<u64>,
    /// Sum over executors of requested memory (GiB) × seconds alive.
    pub memory_gib_seconds: f64,
}

/// A size for a person: `512 KiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0} {}", units[unit])
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

impl RunSummary {
    /// A summary for an attempt whose log could not be read at all.
    pub fn missing(reason: impl Into<String>) -> RunSummary {
        RunSummary {
            status: SummaryStatus::Missing,
            reason: Some(reason.into()),
            ..RunSummary::default()
        }
    }

    /// One line for a person: status, tasks and failures, executors, use of what was allocated,
    /// peak memory and spill.
    pub fn headline(&self) -> String {
        let status = match (&self.status, &self.reason) {
            (SummaryStatus::Complete, _) => "complete".to_string(),
            (SummaryStatus::Partial, Some(reason)) => format!("partial ({reason})"),
            (SummaryStatus::Missing, Some(reason)) => return format!("missing: {reason}"),
            (SummaryStatus::Partial, None) => "partial".to_string(),
            (SummaryStatus::Missing, None) => return "missing".to_string(),
        };
        let mut parts = vec![status, self.task_phrase()];
        parts.push(format!(
            "{} executor{} (at most {} at once)",
            self.executors.added,
            if self.executors.added == 1 { "" } else { "s" },
            self.executors.max_alive
        ));
        if let Some(usage) = self.allocation.core_usage {
            parts.push(format!(
                "{:.0}% of {:.0} core-s used",
                usage * 100.0,
                self.allocation.core_seconds
            ));
        }
        if let Some(heap) = self.memory.executor_jvm_heap {
            parts.push(format!("executor heap peak {}", bytes(heap.max)));
        }
        let spilled = self.io.disk_spilled_bytes;
        if spilled > 0 {
            parts.push(format!("{} spilled to disk", bytes(spilled)));
        }
        parts.join(", ")
    }

    fn task_phrase(&self) -> String {
        let mut phrase = format!("{} stages, {} tasks", self.stages.total, self.tasks.total);
        if self.tasks.failed > 0 {
            let kinds: Vec<String> = self
                .tasks
                .failures
                .iter()
                .take(3)
                .map(|f| format!("{} {}", f.count, f.class_name.as_deref().unwrap_or(&f.kind)))
                .collect();
            phrase.push_str(&format!(
                " ({} failed: {})",
                self.tasks.failed,
                kinds.join(", ")
            ));
        }
        phrase
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_reads_as_a_sentence() {
        assert_eq!(
            RunSummary::missing("no event log for app-1").headline(),
            "missing: no event log for app-1"
        );
        let summary = RunSummary {
            status: SummaryStatus::Partial,
            reason: Some("truncated log".into()),
            executors: ExecutorStats {
                added: 3,
                max_alive: 2,
                ..ExecutorStats::default()
            },
            tasks: TaskStats {
                total: 40,
                failed: 2,
                failures: vec![TaskFailure {
                    kind: "ExceptionFailure".into(),
                    class_name: Some("org.apache.spark.api.python.PythonException".into()),
                    count: 2,
                    ..TaskFailure::default()
                }],
                ..TaskStats::default()
            },
            stages: StageStats {
                total: 4,
                ..StageStats::default()
            },
            allocation: Allocation {
                core_seconds: 100.0,
                core_usage: Some(0.25),
                ..Allocation::default()
            },
            memory: MemoryStats {
                executor_jvm_heap: Some(Peak {
                    max: 512 << 20,
                    p95: 500 << 20,
                }),
                ..MemoryStats::default()
            },
            ..RunSummary::default()
        };
        assert_eq!(
            summary.headline(),
            "partial (truncated log), 4 stages, 40 tasks (2 failed: 2 \
             org.apache.spark.api.python.PythonException), 3 executors (at most 2 at once), \
             25% of 100 core-s used, executor heap peak 512 MiB"
        );
        assert_eq!(bytes(191_598), "187 KiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["status"], "partial");
        assert_eq!(json["executors"]["maxAlive"], 2);
    }
}
