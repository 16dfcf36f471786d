//! Sizing advice from history: what a job's next run should be given, from what its last
//! successful runs used.
//!
//! Runs are grouped by signature — team, env, name and main program (a renamed or rewritten
//! program starts fresh) — and the last [`RUNS`] successful ones with a run summary are read.
//! [`rules`] turns their peaks and usage into recommendations, each with the rule that made it,
//! the evidence (which runs, which metric), a confidence (how many runs, how much they vary)
//! and the estimated saving per run. No advice from fewer than [`MIN_RUNS`] runs, nor while the
//! latest run failed for want of memory (remediation resizes first).
//!
//! [`advise`] is pure: the service reads the history and the namespace's maxima, this decides.

pub mod auto;
pub mod probation;
pub mod report;
pub mod rules;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::jobspec::memory_bytes;
use crate::domain::{FailureClass, JobSpec};
use crate::history::RunSummary;
use rules::Partitions;
pub use rules::Profile;

/// How many recent successful runs advice looks at.
pub const RUNS: usize = 5;
/// The fewest successful runs advice is given from.
pub const MIN_RUNS: usize = 3;
/// Spark's default `spark.sql.shuffle.partitions`.
const DEFAULT_PARTITIONS: u32 = 200;
const MIB: u64 = 1 << 20;

/// One past run of a signature: what it was given and, when recorded, what it did.
#[derive(Clone, Debug)]
pub struct Run {
    pub job_id: String,
    pub spec: JobSpec,
    pub succeeded: bool,
    pub failure_class: Option<FailureClass>,
    /// How remediation classified its last attempt, when it failed.
    pub class: Option<crate::remediation::Class>,
    /// The summary of its last attempt's event log.
    pub summary: Option<RunSummary>,
    /// What sizing did at its submission.
    pub sizing: Option<auto::Sizing>,
}

impl Run {
    /// A run as the store returns it: the job, its last attempt's summary and class.
    pub fn of(
        job: crate::domain::Job,
        summary: Option<RunSummary>,
        class: Option<crate::remediation::Class>,
    ) -> Run {
        Run {
            job_id: job.id.to_string(),
            succeeded: job.state == crate::domain::JobState::Succeeded,
            failure_class: job.failure_class,
            class,
            spec: job.spec,
            summary,
            sizing: job.sizing,
        }
    }
}

/// The namespace's maxima a recommendation stays within (MiB).
#[derive(Clone, Copy, Debug, Default)]
pub struct Maxima {
    pub executor_memory_mib: Option<u64>,
    pub driver_memory_mib: Option<u64>,
}

/// What sk8 advises for a signature.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Advice {
    pub team: String,
    pub env: String,
    pub name: String,
    /// The main program the runs share (`mainApplicationFile`, and `mainClass` if any).
    pub main: String,
    pub profile: Profile,
    pub status: AdviceStatus,
    /// Why there is no advice, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The job ids of the runs the advice is drawn from, newest first.
    pub runs: Vec<String>,
    pub recommendations: Vec<Recommendation>,
    /// What the runs show that no setting here fixes (skew, for one).
    pub notes: Vec<String>,
    /// The estimated saving per run of all the recommendations together.
    pub saving: Saving,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum AdviceStatus {
    /// Recommendations follow.
    Advice,
    /// The runs fit what they are given: nothing to change.
    Fits,
    /// Too few successful runs with a run summary.
    NotEnoughRuns,
    /// The latest run failed for want of memory: remediation resizes it first.
    SizingFailure,
}

/// One setting to change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// Where in a JobSpec: `executor.memory`, `executor.instances`,
    /// `sparkConf.spark.executor.memoryOverhead`, …
    pub setting: String,
    pub old: String,
    pub new: String,
    /// The rule that produced it (docs/sizing.md describes each).
    pub rule: String,
    /// Which metric of which runs.
    pub evidence: String,
    pub confidence: Confidence,
    pub saving: Saving,
}

/// How far to trust a recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Confidence {
    pub level: Level,
    /// How many runs it rests on.
    pub runs: usize,
    /// How much the metric varied across them (standard deviation over mean).
    pub variation: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    High,
    Medium,
    Low,
}

impl Confidence {
    fn of(runs: usize, values: &[f64]) -> Confidence {
        let variation = rules::variation(values);
        let level = if runs >= RUNS && variation <= 0.15 {
            Level::High
        } else if variation <= 0.35 {
            Level::Medium
        } else {
            Level::Low
        };
        Confidence {
            level,
            runs,
            variation: (variation * 1000.0).round() / 1000.0,
        }
    }
}

/// Per run, estimated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Saving {
    pub gib_seconds: f64,
    pub core_seconds: f64,
}

impl Saving {
    fn add(&mut self, other: Saving) {
        self.gib_seconds += other.gib_seconds;
        self.core_seconds += other.core_seconds;
    }

    fn rounded(self) -> Saving {
        Saving {
            gib_seconds: (self.gib_seconds * 10.0).round() / 10.0,
            core_seconds: (self.core_seconds * 10.0).round() / 10.0,
        }
    }
}

/// What a spec gives a run, in the units the rules use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Given {
    pub executor_heap_mib: u64,
    pub executor_overhead_mib: u64,
    pub executor_cores: u32,
    /// Fixed instances, or dynamic allocation's maximum.
    pub executors: u32,
    pub dynamic: bool,
    pub driver_heap_mib: u64,
    pub shuffle_partitions: u32,
}

impl Given {
    pub fn of(spec: &JobSpec) -> Given {
        let mib = |size: &str| memory_bytes(size).map_or(1024, |b| b / MIB);
        let conf = |key: &str| spec.spark_conf.get(key).map(|v| v.0.trim().to_string());
        let executor_heap_mib = mib(&spec.executor.memory);
        let default_overhead = (executor_heap_mib / 10).max(rules::MIN_OVERHEAD_MIB);
        let dynamic = spec.dynamic_allocation.as_ref().filter(|d| d.enabled);
        Given {
            executor_heap_mib,
            executor_overhead_mib: conf("spark.executor.memoryOverhead")
                .and_then(|v| memory_bytes(&v).map(|b| b / MIB).or(v.parse().ok()))
                .unwrap_or(default_overhead),
            executor_cores: spec.executor.cores.max(1),
            executors: dynamic.map_or(spec.executor.instances, |d| d.max_executors),
            dynamic: dynamic.is_some(),
            driver_heap_mib: mib(&spec.driver.memory),
            shuffle_partitions: conf("spark.sql.shuffle.partitions")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_PARTITIONS),
        }
    }
}

/// The signature's main program, as advice names it.
pub fn main_of(spec: &JobSpec) -> String {
    match &spec.main_class {
        Some(class) => format!("{} ({class})", spec.main_application_file),
        None => spec.main_application_file.clone(),
    }
}

/// Advice for the next run of `current`'s signature from `history` (newest first, the
/// signature's runs only), within `maxima`.
pub fn advise(current: &JobSpec, history: &[Run], profile: Profile, maxima: Maxima) -> Advice {
    let mut advice = Advice {
        team: current.team.to_string(),
        env: current.env.to_string(),
        name: current.name.clone(),
        main: main_of(current),
        profile,
        status: AdviceStatus::Advice,
        reason: None,
        runs: Vec::new(),
        recommendations: Vec::new(),
        notes: Vec::new(),
        saving: Saving::default(),
    };
    if let Some(latest) = history.first().filter(|r| sizing_failure(r)) {
        advice.status = AdviceStatus::SizingFailure;
        advice.reason = Some(format!(
            "the latest run ({}) failed for want of memory; sk8 advises again once a run \
             succeeds",
            latest.job_id
        ));
        return advice;
    }
    let runs = evidence_runs(history);
    advice.runs = runs.iter().map(|(r, _)| r.job_id.clone()).collect();
    if runs.len() < MIN_RUNS {
        advice.status = AdviceStatus::NotEnoughRuns;
        advice.reason = Some(format!(
            "{} successful run{} with a run summary; advice needs {MIN_RUNS}",
            runs.len(),
            if runs.len() == 1 { "" } else { "s" }
        ));
        return advice;
    }
    let given = Given::of(current);
    let evidence = Evidence::of(&runs);
    let mut recommendations = Vec::new();
    // Heap and overhead share the container's limit: the heap's cap leaves room for the
    // overhead as recommended.
    let overhead = memory_overhead(&given, &evidence, profile, maxima);
    let overhead_mib = overhead
        .as_ref()
        .and_then(|r| memory_bytes(&r.new))
        .map_or(given.executor_overhead_mib, |b| b / MIB);
    recommendations.extend(executor_memory(
        &given,
        &evidence,
        profile,
        maxima,
        overhead_mib,
    ));
    recommendations.extend(overhead);
    advice
        .notes
        .extend(capped_note(&evidence, profile, maxima, overhead_mib));
    recommendations.extend(executor_cores(&given, &evidence));
    recommendations.extend(executors(&given, &evidence, profile));
    recommendations.extend(driver_memory(&given, &evidence, profile, maxima));
    let (partitions, notes) = shuffle_partitions(&given, &evidence);
    recommendations.extend(partitions);
    advice.notes.extend(notes);
    for r in &recommendations {
        advice.saving.add(r.saving);
    }
    advice.saving = advice.saving.rounded();
    if recommendations.is_empty() {
        advice.status = AdviceStatus::Fits;
    }
    advice.recommendations = recommendations;
    advice
}

/// The runs advice is drawn from: the last [`RUNS`] successful ones with a usable summary.
fn evidence_runs(history: &[Run]) -> Vec<(&Run, &RunSummary)> {
    history
        .iter()
        .filter(|r| r.succeeded)
        .filter_map(|r| Some((r, r.summary.as_ref().filter(|s| usable(s))?)))
        .take(RUNS)
        .collect()
}

/// Whether `history` holds enough runs for advice (what the namespace's maxima matter to):
/// the submit path reads no more when it does not.
pub fn enough_runs(history: &[Run]) -> bool {
    history
        .iter()
        .filter(|r| r.succeeded && r.summary.as_ref().is_some_and(usable))
        .nth(MIN_RUNS - 1)
        .is_some()
}

/// A failure that more memory would have prevented.
fn sizing_failure(run: &Run) -> bool {
    probation::memory_failure(run)
}

/// A summary with the metrics the rules read.
fn usable(summary: &RunSummary) -> bool {
    summary.memory.executor_jvm_heap.is_some() && summary.tasks.total > 0
}

/// The runs' metrics, one value per run, newest first.
struct Evidence {
    runs: usize,
    ids: String,
    heap_peak_mib: Vec<u64>,
    non_heap_mib: Vec<u64>,
    driver_heap_mib: Vec<u64>,
    gc_share: f64,
    core_usage: Vec<f64>,
    /// The most tasks running at once, per run that counted them.
    peak_running: Vec<u64>,
    executor_seconds: f64,
    core_seconds: f64,
    gib_seconds: f64,
    driver_seconds: f64,
    /// Per run, scaled to the newest run's input when every run read some (`scaled_to`).
    shuffle_bytes: Vec<u64>,
    scaled_to: Option<u64>,
    spilled: bool,
    skew: Option<(i64, f64)>,
}

impl Evidence {
    fn of(runs: &[(&Run, &RunSummary)]) -> Evidence {
        let summaries: Vec<&RunSummary> = runs.iter().map(|(_, s)| *s).collect();
        let scaled_to = summaries
            .iter()
            .all(|s| s.io.input_bytes > 0)
            .then(|| summaries[0].io.input_bytes);
        let n = summaries.len() as f64;
        let mean = |f: &dyn Fn(&RunSummary) -> f64| summaries.iter().map(|s| f(s)).sum::<f64>() / n;
        let heap = |s: &RunSummary| s.memory.executor_jvm_heap.map_or(0, |p| p.max);
        let task_ms: u64 = summaries.iter().map(|s| s.tasks.task_time_ms).sum();
        let gc_ms: u64 = summaries.iter().map(|s| s.tasks.gc_time_ms).sum();
        Evidence {
            runs: runs.len(),
            ids: runs
                .iter()
                .map(|(r, _)| r.job_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            heap_peak_mib: summaries.iter().map(|s| heap(s).div_ceil(MIB)).collect(),
            non_heap_mib: summaries
                .iter()
                .filter_map(|s| {
                    let rss = s.memory.executor_process_tree_rss?.max;
                    Some(rss.saturating_sub(heap(s)).div_ceil(MIB))
                })
                .collect(),
            driver_heap_mib: summaries
                .iter()
                .filter_map(|s| s.memory.driver_jvm_heap.map(|b| b.div_ceil(MIB)))
                .collect(),
            gc_share: if task_ms == 0 {
                0.0
            } else {
                gc_ms as f64 / task_ms as f64
            },
            core_usage: summaries
                .iter()
                .filter_map(|s| s.allocation.core_usage)
                .collect(),
            peak_running: summaries
                .iter()
                .map(|s| s.tasks.peak_running)
                .filter(|peak| *peak > 0)
                .collect(),
            executor_seconds: mean(&|s| {
                let mib = s.allocation.executor_memory_mib.unwrap_or(0) as f64;
                if mib > 0.0 {
                    s.allocation.memory_gib_seconds * 1024.0 / mib
                } else {
                    0.0
                }
            }),
            core_seconds: mean(&|s| s.allocation.core_seconds),
            gib_seconds: mean(&|s| s.allocation.memory_gib_seconds),
            driver_seconds: mean(&|s| match (s.start_time, s.end_time) {
                (Some(start), Some(end)) if end > start => (end - start) as f64 / 1000.0,
                _ => 0.0,
            }),
            shuffle_bytes: summaries
                .iter()
                .map(|s| largest_shuffle(s, scaled_to))
                .collect(),
            scaled_to,
            spilled: summaries.iter().any(|s| s.io.disk_spilled_bytes > 0),
            skew: summaries[0].stages.worst.as_ref().and_then(|w| {
                (w.median_task_ms > 0)
                    .then(|| (w.stage_id, w.max_task_ms as f64 / w.median_task_ms as f64))
            }),
        }
    }
}

/// The largest stage's shuffle of a run (a summary from before sk8 kept it: the run's total),
/// scaled to `input` bytes read when given: a shuffle grows with what the run read, so runs of
/// different inputs are compared, and the next one sized, at the newest run's input. Memory
/// peaks are not scaled: a task's heap follows its partition, not the run's input.
fn largest_shuffle(s: &RunSummary, input: Option<u64>) -> u64 {
    let bytes = match s.stages.largest_shuffle_bytes {
        0 => s.io.shuffle_write_bytes,
        largest => largest,
    };
    match input {
        Some(input) if s.io.input_bytes > 0 => {
            (bytes as f64 * input as f64 / s.io.input_bytes as f64).round() as u64
        }
        _ => bytes,
    }
}

fn floats(values: &[u64]) -> Vec<f64> {
    values.iter().map(|v| *v as f64).collect()
}

fn mib_text(mib: u64) -> String {
    if mib.is_multiple_of(1024) {
        format!("{}g", mib / 1024)
    } else {
        format!("{mib}m")
    }
}

fn recommendation(
    setting: &str,
    old: String,
    new: String,
    rule: &str,
    evidence: String,
    confidence: Confidence,
    saving: Saving,
) -> Recommendation {
    Recommendation {
        setting: setting.into(),
        old,
        new,
        rule: rule.into(),
        evidence,
        confidence,
        saving: saving.rounded(),
    }
}

fn executor_memory(
    given: &Given,
    e: &Evidence,
    profile: Profile,
    maxima: Maxima,
    overhead_mib: u64,
) -> Option<Recommendation> {
    let peak = rules::p95(&e.heap_peak_mib);
    let max_heap = maxima
        .executor_memory_mib
        .map(|m| m.saturating_sub(overhead_mib));
    let new = rules::heap_mib(peak, profile, max_heap);
    if new == given.executor_heap_mib {
        return None;
    }
    let saved_gib = (given.executor_heap_mib as f64 - new as f64) / 1024.0;
    Some(recommendation(
        "executor.memory",
        mib_text(given.executor_heap_mib),
        mib_text(new),
        "executor-heap-p95",
        format!(
            "peak executor JVM heap {} MiB at p95 over runs {} (× {} headroom + {} MiB reserved)",
            peak,
            e.ids,
            profile.headroom(),
            rules::RESERVED_MIB
        ),
        Confidence::of(e.runs, &floats(&e.heap_peak_mib)),
        Saving {
            gib_seconds: e.executor_seconds * saved_gib,
            core_seconds: 0.0,
        },
    ))
}

/// Says so when the namespace's maximum holds executor memory below what the runs call for.
fn capped_note(
    e: &Evidence,
    profile: Profile,
    maxima: Maxima,
    overhead_mib: u64,
) -> Option<String> {
    let max = maxima.executor_memory_mib?;
    let wanted = rules::heap_mib(rules::p95(&e.heap_peak_mib), profile, None);
    (wanted + overhead_mib > max).then(|| {
        format!(
            "the runs call for {} of executor heap plus {} of overhead, more than the \
             namespace's maximum of {} per executor: raise the maximum or give the job fewer \
             cores per executor",
            mib_text(wanted),
            mib_text(overhead_mib),
            mib_text(max)
        )
    })
}

fn memory_overhead(
    given: &Given,
    e: &Evidence,
    profile: Profile,
    maxima: Maxima,
) -> Option<Recommendation> {
    if e.non_heap_mib.len() < MIN_RUNS {
        return None;
    }
    let non_heap = rules::p95(&e.non_heap_mib);
    let new = rules::overhead_mib(non_heap, profile, maxima.executor_memory_mib);
    if new == given.executor_overhead_mib {
        return None;
    }
    let saved_gib = (given.executor_overhead_mib as f64 - new as f64) / 1024.0;
    Some(recommendation(
        "sparkConf.spark.executor.memoryOverhead",
        mib_text(given.executor_overhead_mib),
        mib_text(new),
        "overhead-from-process-rss",
        format!(
            "executor process-tree RSS beyond the heap {non_heap} MiB at p95 over runs {} \
             (Python workers, native memory)",
            e.ids
        ),
        Confidence::of(e.non_heap_mib.len(), &floats(&e.non_heap_mib)),
        Saving {
            gib_seconds: e.executor_seconds * saved_gib,
            core_seconds: 0.0,
        },
    ))
}

fn executor_cores(given: &Given, e: &Evidence) -> Option<Recommendation> {
    let new = rules::executor_cores(given.executor_cores, e.gc_share);
    (new != given.executor_cores).then(|| {
        recommendation(
            "executor.cores",
            given.executor_cores.to_string(),
            new.to_string(),
            "cores-under-gc-pressure",
            format!(
                "garbage collection took {:.0}% of task time over runs {} (over {:.0}%: fewer \
                 tasks per heap)",
                e.gc_share * 100.0,
                e.ids,
                rules::GC_SHARE * 100.0
            ),
            Confidence::of(e.runs, &[]),
            Saving::default(),
        )
    })
}

fn executors(given: &Given, e: &Evidence, profile: Profile) -> Option<Recommendation> {
    if e.core_usage.len() < MIN_RUNS {
        return None;
    }
    let usage = e.core_usage.iter().sum::<f64>() / e.core_usage.len() as f64;
    let by_usage = rules::executor_count(given.executors, usage, profile);
    let used = format!(
        "tasks used {:.0}% of the allocated core-seconds on average over runs {} (target {:.0}%)",
        usage * 100.0,
        e.ids,
        profile.target_core_usage() * 100.0
    );
    // The widest run: every run must have counted its tasks, or the peak may be too low.
    let counted = e.peak_running.len() == e.runs;
    let peak = e.peak_running.iter().max().copied().filter(|_| counted);
    let (new, rule, evidence, spread) = match peak {
        Some(peak) => (
            rules::executors_for_peak(
                given.executors,
                peak,
                given.executor_cores,
                by_usage,
                profile,
            ),
            "executors-from-peak-tasks",
            format!(
                "at most {peak} tasks ran at once ({} cores per executor); {used}",
                given.executor_cores
            ),
            floats(&e.peak_running),
        ),
        None => (
            by_usage,
            "executors-from-core-usage",
            used,
            e.core_usage.clone(),
        ),
    };
    if new == given.executors {
        return None;
    }
    let share = 1.0 - f64::from(new) / f64::from(given.executors);
    let setting = if given.dynamic {
        "dynamicAllocation.maxExecutors"
    } else {
        "executor.instances"
    };
    Some(recommendation(
        setting,
        given.executors.to_string(),
        new.to_string(),
        rule,
        evidence,
        Confidence::of(spread.len(), &spread),
        Saving {
            gib_seconds: e.gib_seconds * share,
            core_seconds: e.core_seconds * share,
        },
    ))
}

fn driver_memory(
    given: &Given,
    e: &Evidence,
    profile: Profile,
    maxima: Maxima,
) -> Option<Recommendation> {
    if e.driver_heap_mib.len() < MIN_RUNS {
        return None;
    }
    let peak = rules::p95(&e.driver_heap_mib);
    let new = rules::heap_mib(peak, profile, maxima.driver_memory_mib);
    if new == given.driver_heap_mib {
        return None;
    }
    Some(recommendation(
        "driver.memory",
        mib_text(given.driver_heap_mib),
        mib_text(new),
        "driver-heap-p95",
        format!("peak driver JVM heap {peak} MiB at p95 over runs {}", e.ids),
        Confidence::of(e.driver_heap_mib.len(), &floats(&e.driver_heap_mib)),
        Saving {
            gib_seconds: e.driver_seconds * (given.driver_heap_mib as f64 - new as f64) / 1024.0,
            core_seconds: 0.0,
        },
    ))
}

fn shuffle_partitions(given: &Given, e: &Evidence) -> (Option<Recommendation>, Vec<String>) {
    let shuffle = rules::p95(&e.shuffle_bytes);
    let skew = e.skew.map_or(1.0, |(_, ratio)| ratio);
    let min = given.executors.max(1) * given.executor_cores;
    match rules::shuffle_partitions(given.shuffle_partitions, shuffle, e.spilled, skew, min) {
        Partitions::Keep => (None, Vec::new()),
        Partitions::Skewed { ratio } => {
            let stage = e.skew.map_or(-1, |(stage, _)| stage);
            let note = format!(
                "stage {stage} is skewed (slowest task {ratio:.0}× the median): more memory or \
                 partitions will not fix it; keep spark.sql.adaptive.enabled and \
                 spark.sql.adaptive.skewJoin.enabled on (AQE splits skewed join partitions), \
                 or salt the skewed key"
            );
            (None, vec![note])
        }
        Partitions::Set(new) => {
            let why = if e.spilled {
                "tasks spilled to disk without skew: twice the partitions".to_string()
            } else {
                let scaled = e.scaled_to.map_or(String::new(), |input| {
                    format!(" (scaled to the newest run's input of {} MiB)", input / MIB)
                });
                format!(
                    "largest stage shuffle {} MiB at p95{scaled}: about {} MiB per partition",
                    shuffle / MIB,
                    rules::TARGET_PARTITION_BYTES / MIB
                )
            };
            let rec = recommendation(
                "sparkConf.spark.sql.shuffle.partitions",
                given.shuffle_partitions.to_string(),
                new.to_string(),
                "partitions-from-shuffle-size",
                format!("{why}, over runs {}", e.ids),
                Confidence::of(e.runs, &floats(&e.shuffle_bytes)),
                Saving::default(),
            );
            (Some(rec), Vec::new())
        }
    }
}

#[cfg(test)]
mod tests;
