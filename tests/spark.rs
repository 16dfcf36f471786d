//! Real PySpark jobs on the local backend (`spark-submit --master local[*]` from the pyspark
//! that `scripts/test.sh` installs): the sample job to SUCCEEDED through the CLI, a failing job
//! to FAILED with its Python exception as the reason, a cancelled job to CANCELLED with no
//! process left behind, and a missing Spark explained.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Engine, Options, Spark, TestApp};
use serde_json::{Value, json};

/// A JVM start plus the job, on two busy cores.
const SPARK_WAIT: Duration = Duration::from_secs(240);

async fn spark_app() -> TestApp {
    let mut options = Options::new(Engine::Sqlite);
    options.spark = Spark::Real;
    TestApp::spawn(options).await
}

fn example_job(name: &str, script: &str, args: &[&str]) -> Value {
    let file = common::repo_file(&format!("examples/jobs/{script}"));
    json!({
        "team": "feature-eng", "env": "dev", "name": name,
        "mainApplicationFile": format!("local://{}", file.display()),
        "args": args,
        "driver": {"memory": "1g"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_job_succeeds_through_the_cli() {
    let app = spark_app().await;
    let output = Command::new(env!("CARGO_BIN_EXE_sk8"))
        .args(["--server", &app.base, "submit", "--wait"])
        .arg(common::repo_file("examples/pi.yaml"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("RUNNING") && stderr.contains("SUCCEEDED"),
        "{stderr}"
    );
    let id = stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("`job <id> SUCCEEDED` expected: {stdout}"));

    let job = app.job(id).await;
    assert_eq!(job["state"], "SUCCEEDED");
    assert!(
        job["links"]["sparkUi"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "the Spark UI link comes from the driver log: {job}"
    );
    let (_, log) = app.text(&format!("/v1/jobs/{id}/logs")).await;
    assert!(log.contains("pi is roughly 3.1"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_job_reports_its_python_exception() {
    let app = spark_app().await;
    let job = app
        .submit(&example_job("always-fails", "fail.py", &[]))
        .await;
    let id = job["id"].as_str().unwrap();
    let done = app.wait_finished(id, SPARK_WAIT).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    let reason = done["failureReason"].as_str().unwrap();
    assert!(
        reason.contains("ValueError: input check failed: expected 11 rows, found 10"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_job_leaves_no_process_behind() {
    let app = spark_app().await;
    let job = app
        .submit(&example_job("sleeper", "sleep.py", &["600"]))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    wait_for_log(&app, &id, "sleeping 600s").await;
    assert!(
        !job_processes(&id).is_empty(),
        "the JVM and Python driver run"
    );

    let (status, _) = app.cancel(&id).await;
    assert_eq!(status, 200);
    let done = app.wait_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "CANCELLED", "{done}");
    assert_eq!(
        job_processes(&id),
        Vec::<u32>::new(),
        "processes left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_spark_fails_the_job_with_install_advice() {
    let mut options = Options::new(Engine::Sqlite);
    options.spark = Spark::Missing;
    let app = TestApp::spawn(options).await;
    let job = app.submit(&example_job("no-spark", "pi.py", &[])).await;
    let done = app
        .wait_finished(job["id"].as_str().unwrap(), SPARK_WAIT)
        .await;
    assert_eq!(done["state"], "FAILED");
    assert_eq!(done["failureClass"], "configuration");
    let reason = done["failureReason"].as_str().unwrap();
    assert!(reason.contains("pip install pyspark"), "{reason}");
}

async fn wait_for_log(app: &TestApp, id: &str, needle: &str) {
    let deadline = std::time::Instant::now() + SPARK_WAIT;
    loop {
        let (status, log) = app.text(&format!("/v1/jobs/{id}/logs")).await;
        if status == 200 && log.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in: {log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every live process that belongs to the job: the local backend exports `SK8_JOB_ID` to
/// spark-submit, and the JVM and Python workers inherit it whatever their process group.
fn job_processes(id: &str) -> Vec<u32> {
    let marker = format!("SK8_JOB_ID={id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'));
            !zombie && environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
        })
        .collect()
}
