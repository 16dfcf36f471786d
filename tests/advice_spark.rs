//! Sizing advice on real PySpark runs on the local backend: under `local[*]` the driver's JVM
//! is the only executor, so the memory it is given is what a run's GiB·s counts; under
//! `local-cluster[…]` executors are JVMs of their own, sized by the spec. An over-provisioned job
//! (a 4 GiB driver whose heap peaks far lower) in `auto` mode gets its driver memory cut on the
//! first submission after three recorded runs, with evidence from those runs; that run uses at
//! least 30 % fewer GiB·s, none fails, and the next run keeps the change (or, on a machine so
//! loaded that the probation run was over 15 % slower, has it reverted for that reason). A job
//! whose runs vary wildly gets advice of low confidence, which `auto` does not apply.

mod common;

use std::time::Duration;

use common::{Engine, Options, Spark, TestApp};
use serde_json::{Value, json};

/// Several JVM runs one after another, on two busy cores.
const RUN_WAIT: Duration = Duration::from_secs(300);

/// The daemon on real Spark under `master`, the team in `auto` mode.
async fn spark_app(master: &str) -> TestApp {
    let mut options = Options::new(Engine::Sqlite);
    options.spark = Spark::Real;
    options.extra = json!({
        "backend": {"local": {"master": master}},
        "sizing": {"teams": {"feature-eng": {"mode": "auto"}}},
    });
    TestApp::spawn(options).await
}

/// A job that collects `rows` rows to a 4 GiB driver; `sizingOverride` lets advice change the
/// driver memory the spec sets.
fn collecting(name: &str, rows: u64) -> Value {
    let file = common::repo_file("tests/fixtures/jobs/driver_heap.py");
    json!({
        "team": "feature-eng", "env": "dev", "name": name,
        "mainApplicationFile": format!("local://{}", file.display()),
        "args": [rows.to_string()],
        "driver": {"memory": "4g"},
        "sizingOverride": true,
    })
}

/// Submits `body`, waits for it to succeed and be recorded; the job as submitted and the
/// record of its attempt.
async fn run(app: &TestApp, body: &Value) -> (Value, Value) {
    let job = app.submit(body).await;
    let id = job["id"].as_str().unwrap();
    let done = app.wait_finished(id, RUN_WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    let record = app.wait_recorded(id, RUN_WAIT).await;
    assert_eq!(record["summary"]["status"], "complete", "{record}");
    (job, record)
}

fn gib_seconds(record: &Value) -> f64 {
    record["summary"]["allocation"]["memoryGibSeconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("no memoryGibSeconds: {record}"))
}

/// The recommendation for `setting` in a job's `sizing.<list>`.
fn sizing_entry<'a>(job: &'a Value, list: &str, setting: &str) -> Option<&'a Value> {
    job["sizing"][list]
        .as_array()?
        .iter()
        .find(|r| r["setting"] == setting)
}

/// Three recorded runs of `body` at 4g of `setting` (`driver.memory`, `executor.memory`) with
/// the executor memory peak advice reads, before advice can act; their GiB·s. Spark samples
/// that peak on a timer: on a busy machine a run can end with no sample, and advice then
/// waits for another run, as this does (two at most).
async fn three_runs_at_4g(app: &TestApp, body: &Value, setting: &str) -> Vec<f64> {
    let mut used = Vec::new();
    for _ in 0..5 {
        let (job, record) = run(app, body).await;
        assert_eq!(
            job["spec"].pointer(&spec_path(setting)),
            Some(&json!("4g")),
            "{job}"
        );
        if record["summary"]["memory"]["executorJvmHeap"].is_null() {
            eprintln!(
                "run {} reported no executor memory peak: another run",
                job["id"]
            );
            continue;
        }
        used.push(gib_seconds(&record));
        if used.len() == 3 {
            return used;
        }
    }
    panic!(
        "five runs of {body} gave {} with an executor memory peak",
        used.len()
    )
}

/// `driver.memory` as a JSON pointer into a job's spec.
fn spec_path(setting: &str) -> String {
    format!("/{}", setting.replace('.', "/"))
}

/// The change to `setting` applied to `job`, which was 4g, resting on `evidence`.
fn applied_from_4g<'a>(job: &'a Value, setting: &str, evidence: &str) -> &'a Value {
    let applied = sizing_entry(job, "applied", setting)
        .unwrap_or_else(|| panic!("{setting} not applied: {}", job["sizing"]));
    assert_eq!(applied["old"], "4g", "{applied}");
    assert!(
        applied["evidence"]
            .as_str()
            .unwrap_or_default()
            .contains(evidence),
        "the advice names its evidence: {applied}"
    );
    assert_eq!(
        job["spec"].pointer(&spec_path(setting)),
        Some(&applied["new"]),
        "{job}"
    );
    applied
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// A 4 GiB driver that collects 20,000 rows: cut on the 4th submission, kept on the 5th.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_sizing_cuts_an_over_provisioned_real_job() {
    let app = spark_app("local[*]").await;
    let steady = collecting("steady", 20_000);
    let before = three_runs_at_4g(&app, &steady, "driver.memory").await;
    let mean_before = mean(&before);

    let (sized, record) = run(&app, &steady).await;
    let applied = applied_from_4g(&sized, "driver.memory", "driver JVM heap");
    let first = gib_seconds(&record);
    eprintln!(
        "GiB·s per run: {before:.1?} at 4g, then {first:.1} at {} ({:.0} % fewer than the mean \
         before)",
        applied["new"],
        100.0 * (1.0 - first / mean_before),
    );
    assert!(
        first <= 0.7 * mean_before,
        "{first:.1} GiB·s is not 30 % below {mean_before:.1}"
    );
    // The next submission keeps the change once its probation run passed. On a loaded machine
    // that run may be over 15 % slower than the earlier ones for reasons of the machine's own:
    // then it is reverted for being slower (the design), never for memory.
    let (after, record) = run(&app, &steady).await;
    match sizing_entry(&after, "reverted", "driver.memory") {
        None => {
            assert_eq!(after["spec"]["driver"]["memory"], applied["new"], "{after}");
            let second = gib_seconds(&record);
            eprintln!("and {second:.1} GiB·s on the run after probation");
            assert!(
                second <= 0.7 * mean_before,
                "{second:.1} GiB·s after probation"
            );
        }
        Some(revert) => {
            eprintln!("the probation run was reverted: {}", revert["reason"]);
            assert!(
                revert["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("longer than"),
                "{revert}"
            );
        }
    }
}

/// Heaps that swing from a few MiB of results to a few hundred: advice, not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_job_whose_runs_vary_wildly_gets_low_confidence_and_no_change() {
    let app = spark_app("local[*]").await;
    for rows in [10_000, 3_000_000, 10_000] {
        run(&app, &collecting("swings", rows)).await;
    }
    let (varying, _) = run(&app, &collecting("swings", 10_000)).await;
    assert_eq!(varying["spec"]["driver"]["memory"], "4g", "{varying}");
    let withheld = sizing_entry(&varying, "withheld", "driver.memory")
        .unwrap_or_else(|| panic!("driver.memory not withheld: {}", varying["sizing"]));
    eprintln!("the varying job's advice: {}", withheld["why"]);
    assert!(
        withheld["why"]
            .as_str()
            .unwrap_or_default()
            .contains("low confidence"),
        "{withheld}"
    );
}

/// On a `local-cluster` master the executors are JVMs of their own, sized by the spec: one
/// 4 GiB executor running the sample pi job is cut on the first submission after three
/// recorded runs, and that run uses at least 30 % fewer GiB·s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_sizing_cuts_over_provisioned_executors_on_a_local_cluster() {
    let app = spark_app("local-cluster[1,1,4608]").await;
    let file = common::repo_file("examples/jobs/pi.py");
    let pi = json!({
        "team": "feature-eng", "env": "dev", "name": "pi",
        "mainApplicationFile": format!("local://{}", file.display()),
        "args": ["2", "500000"],
        "executor": {"memory": "4g", "cores": 1, "instances": 1},
        // Its tasks end before the first executor heartbeat (10 s) would sample their memory.
        "sparkConf": {"spark.executor.metrics.pollingInterval": "1s"},
        "sizingOverride": true,
    });
    let before = three_runs_at_4g(&app, &pi, "executor.memory").await;
    let mean_before = mean(&before);
    let (sized, record) = run(&app, &pi).await;
    let applied = applied_from_4g(&sized, "executor.memory", "executor JVM heap");
    let used = gib_seconds(&record);
    eprintln!(
        "local-cluster GiB·s per run: {before:.1?} with 4g executors, then {used:.1} with {} \
         ({:.0} % fewer); all applied: {}",
        applied["new"],
        100.0 * (1.0 - used / mean_before),
        sized["sizing"]["applied"]
    );
    assert!(
        used <= 0.7 * mean_before,
        "{used:.1} GiB·s is not 30 % below {mean_before:.1}"
    );
}
