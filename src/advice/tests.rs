//! `advise` on made-up histories: an over-provisioned job, too few runs, a sizing failure, a
//! noisy history, skew, and the same history twice.

use serde_json::json;

use super::*;
use crate::domain::SpecDefaults;
use crate::domain::jobspec::Format;
use crate::history::summary::{Peak, StageSkew, SummaryStatus};

const GIB: u64 = 1 << 30;

fn spec(executor_memory: &str, instances: u32) -> JobSpec {
    let body = json!({
        "team": "growth", "env": "prod", "name": "daily",
        "mainApplicationFile": "local:///jobs/daily.py",
        "executor": {"memory": executor_memory, "instances": instances, "cores": 2},
        "driver": {"memory": "2g"},
    });
    let defaults = SpecDefaults {
        spark_version: "4.0.1".into(),
        image: "apache/spark:4.0.1".into(),
    };
    JobSpec::parse(body.to_string().as_bytes(), Format::Json, &defaults).unwrap()
}

/// A run whose executors peaked at `heap` bytes of heap and used `usage` of their cores.
fn run(id: &str, heap: u64, usage: f64) -> Run {
    let mut summary = RunSummary::missing("made up");
    summary.status = SummaryStatus::Complete;
    summary.reason = None;
    summary.start_time = Some(0);
    summary.end_time = Some(600_000);
    summary.tasks.total = 400;
    summary.tasks.task_time_ms = 1_000_000;
    summary.tasks.gc_time_ms = 20_000;
    summary.memory.executor_jvm_heap = Some(Peak {
        max: heap,
        p95: heap,
    });
    summary.memory.executor_process_tree_rss = Some(Peak {
        max: heap + 600 * MIB,
        p95: heap + 600 * MIB,
    });
    summary.memory.driver_jvm_heap = Some(GIB / 2);
    summary.allocation.core_seconds = 4.0 * 2.0 * 600.0;
    summary.allocation.task_seconds = summary.allocation.core_seconds * usage;
    summary.allocation.core_usage = Some(usage);
    summary.allocation.executor_memory_mib = Some(4096 + 410);
    summary.allocation.memory_gib_seconds = 4.0 * 600.0 * (4096.0 + 410.0) / 1024.0;
    Run {
        job_id: id.into(),
        spec: spec("4g", 4),
        succeeded: true,
        failure_class: None,
        class: None,
        summary: Some(summary),
        sizing: None,
    }
}

fn steady(n: usize) -> Vec<Run> {
    (0..n)
        .map(|i| run(&format!("job-{i}"), 700 * MIB + i as u64 * MIB, 0.7))
        .collect()
}

#[test]
fn an_over_provisioned_job_is_advised_less_memory_with_its_evidence() {
    let advice = advise(
        &spec("4g", 4),
        &steady(5),
        Profile::Balanced,
        Maxima::default(),
    );
    assert_eq!(advice.status, AdviceStatus::Advice, "{advice:?}");
    let memory = advice
        .recommendations
        .iter()
        .find(|r| r.setting == "executor.memory")
        .expect("an executor memory recommendation");
    assert_eq!((memory.old.as_str(), memory.new.as_str()), ("4g", "1280m"));
    assert_eq!(memory.rule, "executor-heap-p95");
    assert!(
        memory.evidence.contains("job-0, job-1"),
        "{}",
        memory.evidence
    );
    assert_eq!(memory.confidence.level, Level::High);
    assert!(memory.saving.gib_seconds > 0.0);
    let sum: f64 = advice
        .recommendations
        .iter()
        .map(|r| r.saving.gib_seconds)
        .sum();
    assert!((advice.saving.gib_seconds - sum).abs() < 0.5, "{advice:?}");
    assert_eq!(advice.runs.len(), RUNS);
}

#[test]
fn fewer_than_three_runs_give_no_advice() {
    let advice = advise(
        &spec("4g", 4),
        &steady(2),
        Profile::Balanced,
        Maxima::default(),
    );
    assert_eq!(advice.status, AdviceStatus::NotEnoughRuns);
    assert!(advice.recommendations.is_empty());
    assert!(advice.reason.unwrap().contains("needs 3"));
}

#[test]
fn a_latest_run_that_ran_out_of_memory_holds_advice_back() {
    let mut history = steady(5);
    history.insert(
        0,
        Run {
            job_id: "oom".into(),
            spec: spec("4g", 4),
            succeeded: false,
            failure_class: Some(FailureClass::OutOfMemory),
            class: None,
            summary: None,
            sizing: None,
        },
    );
    let advice = advise(
        &spec("4g", 4),
        &history,
        Profile::Balanced,
        Maxima::default(),
    );
    assert_eq!(advice.status, AdviceStatus::SizingFailure);
    assert!(advice.reason.unwrap().contains("oom"));
}

#[test]
fn runs_that_vary_wildly_give_low_confidence() {
    let history: Vec<Run> = [300, 2900, 500, 3500, 800]
        .iter()
        .enumerate()
        .map(|(i, mib)| run(&format!("job-{i}"), mib * MIB, 0.7))
        .collect();
    let advice = advise(
        &spec("8g", 4),
        &history,
        Profile::Balanced,
        Maxima::default(),
    );
    let memory = advice
        .recommendations
        .iter()
        .find(|r| r.setting == "executor.memory")
        .unwrap();
    assert_eq!(memory.confidence.level, Level::Low, "{memory:?}");
}

#[test]
fn idle_cores_mean_fewer_executors_and_the_namespace_maximum_caps_memory() {
    let history: Vec<Run> = (0..4)
        .map(|i| run(&format!("j{i}"), 3 * GIB, 0.2))
        .collect();
    let maxima = Maxima {
        executor_memory_mib: Some(3 * 1024),
        driver_memory_mib: None,
    };
    let advice = advise(&spec("2g", 4), &history, Profile::Balanced, maxima);
    let by = |setting: &str| {
        advice
            .recommendations
            .iter()
            .find(|r| r.setting == setting)
            .unwrap_or_else(|| panic!("{setting}: {advice:?}"))
            .new
            .clone()
    };
    assert_eq!(by("executor.instances"), "2");
    // A 3 GiB peak wants a bigger heap, but the overhead the runs need leaves no room under
    // the 3 GiB maximum: no memory change, and a note saying why.
    assert!(
        !advice
            .recommendations
            .iter()
            .any(|r| r.setting == "executor.memory"),
        "{advice:?}"
    );
    assert!(
        advice
            .notes
            .iter()
            .any(|n| n.contains("namespace's maximum of 3g")),
        "{:?}",
        advice.notes
    );
}

/// Runs that never had more than 3 tasks running at once on 4 executors of 2 cores: 2
/// executors hold that, whatever the core usage says; the cost profile goes by the usage too.
#[test]
fn the_widest_moment_of_the_runs_decides_the_executors() {
    let history: Vec<Run> = (0..4)
        .map(|i| {
            let mut run = run(&format!("j{i}"), 700 * MIB, if i == 0 { 0.6 } else { 0.65 });
            let summary = run.summary.as_mut().unwrap();
            summary.tasks.peak_running = 3 - (i as u64 % 2);
            run
        })
        .collect();
    let executors = |profile| {
        let advice = advise(&spec("1g", 4), &history, profile, Maxima::default());
        advice
            .recommendations
            .into_iter()
            .find(|r| r.setting == "executor.instances")
    };
    let balanced = executors(Profile::Balanced).expect("an executor recommendation");
    assert_eq!((balanced.old.as_str(), balanced.new.as_str()), ("4", "2"));
    assert_eq!(balanced.rule, "executors-from-peak-tasks");
    assert!(
        balanced
            .evidence
            .starts_with("at most 3 tasks ran at once (2 cores per executor)"),
        "{}",
        balanced.evidence
    );
    // At 0.6 of its cores busy the usage rule alone would keep all 4 (balanced target).
    assert_eq!(executors(Profile::Cost).unwrap().new, "2");
    // A run that did not count its tasks (a summary from before sk8 did): usage alone decides.
    let mut older = history.clone();
    older[1].summary.as_mut().unwrap().tasks.peak_running = 0;
    let advice = advise(&spec("1g", 4), &older, Profile::Balanced, Maxima::default());
    assert!(
        !advice
            .recommendations
            .iter()
            .any(|r| r.setting == "executor.instances"),
        "{advice:?}"
    );
}

/// Runs whose shuffle grew with their input: compared at the newest run's input, they agree
/// (high confidence), and the partitions are sized for that input.
#[test]
fn shuffles_are_compared_at_the_newest_runs_input() {
    let history: Vec<Run> = (0..4u64)
        .map(|i| {
            let mut run = run(&format!("j{i}"), 700 * MIB, 0.7);
            let summary = run.summary.as_mut().unwrap();
            // The newest run read 40 GiB, the older ones 10, 20 and 30: 1 GiB of shuffle each.
            summary.io.input_bytes = (4 - i) * 10 * GIB;
            summary.stages.largest_shuffle_bytes = (4 - i) * 10 * GIB / 10;
            run
        })
        .collect();
    let advice = advise(
        &spec("1g", 4),
        &history,
        Profile::Balanced,
        Maxima::default(),
    );
    let partitions = advice
        .recommendations
        .iter()
        .find(|r| r.setting == "sparkConf.spark.sql.shuffle.partitions")
        .unwrap_or_else(|| panic!("{advice:?}"));
    // 4 GiB at 128 MiB per partition.
    assert_eq!(partitions.new, "32");
    assert!(
        partitions.evidence.contains(
            "largest stage shuffle 4096 MiB at p95 (scaled to the newest run's input of 40960 MiB)"
        ),
        "{}",
        partitions.evidence
    );
    assert_eq!(partitions.confidence.variation, 0.0, "{partitions:?}");
}

#[test]
fn skew_is_named_instead_of_more_partitions() {
    let mut history = steady(3);
    for r in &mut history {
        let summary = r.summary.as_mut().unwrap();
        summary.io.disk_spilled_bytes = GIB;
        summary.stages.worst = Some(StageSkew {
            stage_id: 7,
            attempt_id: 0,
            tasks: 200,
            task_time_ms: 100_000,
            max_task_ms: 60_000,
            median_task_ms: 2_000,
        });
    }
    let advice = advise(
        &spec("4g", 4),
        &history,
        Profile::Balanced,
        Maxima::default(),
    );
    assert!(
        !advice
            .recommendations
            .iter()
            .any(|r| r.setting.contains("partitions")),
        "{advice:?}"
    );
    assert!(
        advice.notes[0].contains("stage 7 is skewed"),
        "{:?}",
        advice.notes
    );
}

#[test]
fn the_same_history_gives_the_same_advice() {
    let first = advise(&spec("4g", 4), &steady(5), Profile::Cost, Maxima::default());
    let second = advise(&spec("4g", 4), &steady(5), Profile::Cost, Maxima::default());
    assert_eq!(
        serde_json::to_value(&first).unwrap(),
        serde_json::to_value(&second).unwrap()
    );
}

// Applying advice (auto.rs) and judging probation runs (probation.rs).

fn auto_terms<'a>(
    explicit: Option<&'a serde_json::Value>,
    reverts: &'a [auto::Revert],
) -> auto::Terms<'a> {
    auto::Terms {
        mode: auto::SizingMode::Auto,
        explicit,
        reverts,
    }
}

fn applied_memory(record: &auto::Sizing) -> Option<&Recommendation> {
    record
        .applied
        .iter()
        .find(|r| r.setting == "executor.memory")
}

#[test]
fn auto_applies_the_advice_and_records_what_and_why() {
    let advice = advise(
        &spec("4g", 4),
        &steady(5),
        Profile::Balanced,
        Maxima::default(),
    );
    let (sized, record) = auto::apply(&spec("4g", 4), &advice, &auto_terms(None, &[]));
    assert_eq!(sized.executor.memory, "1280m");
    let memory = applied_memory(&record).expect("executor memory applied");
    assert_eq!(
        (memory.old.as_str(), memory.rule.as_str()),
        ("4g", "executor-heap-p95")
    );
    assert_eq!(record.given(), advice.recommendations.len());
    assert!(
        record
            .describe()
            .unwrap()
            .contains("executor.memory 1280m (was 4g)")
    );
    // advise: the same advice recorded, nothing changed.
    let terms = auto::Terms {
        mode: auto::SizingMode::Advise,
        ..auto_terms(None, &[])
    };
    let (same, record) = auto::apply(&spec("4g", 4), &advice, &terms);
    assert_eq!(same, spec("4g", 4));
    assert!(record.applied.is_empty());
    assert_eq!(record.withheld.len(), advice.recommendations.len());
}

#[test]
fn explicit_spec_values_win_unless_the_spec_lets_advice_override_them() {
    let advice = advise(
        &spec("4g", 4),
        &steady(5),
        Profile::Balanced,
        Maxima::default(),
    );
    let body = json!({"executor": {"memory": "4g", "instances": 4}});
    let (sized, record) = auto::apply(&spec("4g", 4), &advice, &auto_terms(Some(&body), &[]));
    assert_eq!(sized.executor.memory, "4g");
    assert!(applied_memory(&record).is_none());
    let withheld = record
        .withheld
        .iter()
        .find(|w| w.setting == "executor.memory")
        .unwrap();
    assert!(withheld.why.contains("the spec sets it"), "{withheld:?}");
    // The overhead was not in the body: advice sets it.
    assert!(
        record
            .applied
            .iter()
            .any(|r| r.setting == "sparkConf.spark.executor.memoryOverhead"),
        "{record:?}"
    );
    assert!(auto::sets(&body, "executor.memory"));
    assert!(!auto::sets(&body, "driver.memory"));
    assert!(!auto::sets(&body, "sparkConf.spark.sql.shuffle.partitions"));
}

#[test]
fn low_confidence_advice_is_never_applied() {
    let history: Vec<Run> = [300, 2900, 500, 3500, 800]
        .iter()
        .enumerate()
        .map(|(i, mib)| run(&format!("job-{i}"), mib * MIB, 0.7))
        .collect();
    let advice = advise(
        &spec("8g", 4),
        &history,
        Profile::Balanced,
        Maxima::default(),
    );
    let (sized, record) = auto::apply(&spec("8g", 4), &advice, &auto_terms(None, &[]));
    assert_eq!(sized.executor.memory, "8g");
    let withheld = record
        .withheld
        .iter()
        .find(|w| w.setting == "executor.memory")
        .unwrap();
    assert!(withheld.why.starts_with("low confidence"), "{withheld:?}");
}

fn revert(from: &str, to: &str) -> auto::Revert {
    auto::Revert {
        setting: "executor.memory".into(),
        rule: "executor-heap-p95".into(),
        from: from.into(),
        to: to.into(),
        job_id: "probe".into(),
        reason: "its probation run probe failed: executor heap OOM".into(),
    }
}

#[test]
fn a_reverted_rule_waits_for_a_more_cautious_value() {
    let advice = advise(
        &spec("4g", 4),
        &steady(5),
        Profile::Balanced,
        Maxima::default(),
    );
    let memory = applied_memory(&auto::apply(&spec("4g", 4), &advice, &auto_terms(None, &[])).1)
        .unwrap()
        .clone();
    let same = revert("4g", "1280m");
    assert!(same.blocks(&memory));
    let (sized, record) = auto::apply(&spec("4g", 4), &advice, &auto_terms(None, &[same]));
    assert_eq!(sized.executor.memory, "4g");
    let withheld = record
        .withheld
        .iter()
        .find(|w| w.setting == "executor.memory")
        .unwrap();
    assert!(
        withheld.why.contains("reverted after job probe"),
        "{withheld:?}"
    );
    // Reverted at a smaller size, 1280m is more cautious: the evidence changed.
    assert!(!revert("4g", "1g").blocks(&memory));
    assert!(revert("4g", "1536m").blocks(&memory));
}

/// A run of the signature that ran with `applied` on probation.
fn probation_run(id: &str, succeeded: bool, class: Option<crate::remediation::Class>) -> Run {
    let advice = advise(
        &spec("4g", 4),
        &steady(5),
        Profile::Balanced,
        Maxima::default(),
    );
    let (sized, mut record) = auto::apply(&spec("4g", 4), &advice, &auto_terms(None, &[]));
    record.probation = true;
    let mut run = run(id, 700 * MIB, 0.7);
    run.spec = sized;
    run.succeeded = succeeded;
    run.class = class;
    if !succeeded {
        run.summary = None;
    }
    run.sizing = Some(record);
    run
}

#[test]
fn a_probation_run_that_fails_for_memory_or_runs_slower_is_reverted() {
    use crate::remediation::Class;
    let mut history = steady(5);
    history.insert(
        0,
        probation_run("probe", false, Some(Class::ExecutorHeapOom)),
    );
    let reverts = probation::judge(&history);
    assert!(!reverts.is_empty());
    assert!(reverts.iter().all(|r| r.job_id == "probe"));
    assert!(
        reverts[0].reason.contains("executor heap OOM"),
        "{reverts:?}"
    );
    // A user error says nothing about the size.
    history[0] = probation_run("probe", false, Some(Class::UserError));
    assert!(probation::judge(&history).is_empty());
    // As fast as its peers: passed.
    history[0] = probation_run("probe", true, None);
    assert!(probation::judge(&history).is_empty());
    // 20 % slower at the same input: reverted.
    let summary = history[0].summary.as_mut().unwrap();
    summary.end_time = Some(720_000);
    let reverts = probation::judge(&history);
    assert!(reverts[0].reason.contains("20% longer"), "{reverts:?}");
    // ... but not against runs of a very different input size.
    for run in &mut history[1..] {
        run.summary.as_mut().unwrap().io.input_bytes = 10 * GIB;
    }
    assert!(probation::judge(&history).is_empty());
}

#[test]
fn changes_a_successful_run_already_made_are_not_on_probation() {
    let history = vec![probation_run("probe", true, None)];
    let applied = history[0].sizing.as_ref().unwrap().applied.clone();
    assert!(!probation::on_probation(&applied, &history));
    assert!(probation::on_probation(&applied, &steady(3)));
    assert!(!probation::on_probation(&[], &steady(3)));
}
