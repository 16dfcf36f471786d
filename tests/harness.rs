//! The harness keeps its promise that every process a test starts dies with the test: when the
//! test ends, when it fails at a deadline of its own, and when the test runner kills it at its
//! timeout (no `Drop` runs then). The victim is this binary's own payload test, run as a child
//! process with [`HANG`] set: it starts a daemon with a running Spark job, writes their pids down
//! and waits for a state the job never reaches.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Engine, Options, TestApp, fake_job};
use serde_json::json;

/// Set to a file path: the payload writes "<daemon pid> <Spark process group>" there, then
/// waits [`HANG_SECONDS`] for the job to succeed (it sleeps ten minutes).
const HANG: &str = "SK8_TEST_HANG_PIDS_FILE";
/// How long the hanging payload waits before it fails at its own deadline.
const HANG_SECONDS: &str = "SK8_TEST_HANG_SECONDS";
const PAYLOAD: &str = "a_daemon_and_its_spark_job_end_with_the_test";
const WAIT: Duration = Duration::from_secs(30);

/// The payload; run alone (no [`HANG`]), it checks that dropping a `TestApp` stops the daemon
/// and its Spark processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_and_its_spark_job_end_with_the_test() {
    let app = TestApp::spawn(Options::new(Engine::Sqlite)).await;
    let mut job = fake_job("t", "endless", "sleep");
    job["envVars"]["FAKE_SPARK_SECONDS"] = json!("600");
    let id = app.submit(&job).await["id"].as_str().unwrap().to_owned();
    let running = app.wait_for(&id, &["RUNNING"], WAIT).await;
    let (daemon, spark) = (app.pid(), common::attempt_pid(&running));
    match std::env::var_os(HANG) {
        Some(file) => {
            std::fs::write(file, format!("{daemon} {spark}")).expect("write the pids file");
            let seconds = std::env::var(HANG_SECONDS).map_or(600, |s| s.parse().unwrap());
            let job = app
                .wait_for(&id, &["SUCCEEDED"], Duration::from_secs(seconds))
                .await;
            panic!("the endless job ended: {job}");
        }
        None => {
            drop(app);
            wait_gone(daemon, spark);
        }
    }
}

#[test]
fn a_test_that_fails_at_its_own_deadline_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pids_file = dir.path().join("pids");
    let mut payload = payload(&pids_file, 3);
    let (daemon, spark) = read_pids(&pids_file, &mut payload);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = payload.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the payload did not fail at its 3 s deadline within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut payload.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the payload failed: {status}\n{stderr}");
    assert!(
        stderr.contains("did not reach [\"SUCCEEDED\"] in 3s"),
        "its failure says what it waited for:\n{stderr}"
    );
    wait_gone(daemon, spark);
}

#[test]
fn a_test_killed_at_its_timeout_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pids_file = dir.path().join("pids");
    let mut payload = payload(&pids_file, 600);
    let (daemon, spark) = read_pids(&pids_file, &mut payload);
    // What the test runner does to a test past its timeout (after its SIGTERM went unheeded).
    payload.kill().unwrap();
    payload.wait().unwrap();
    wait_gone(daemon, spark);
}

/// Starts this binary's payload test in a child process that hangs for `seconds`.
fn payload(pids_file: &Path, seconds: u32) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", PAYLOAD, "--nocapture", "--test-threads=1"])
        .env(HANG, pids_file)
        .env(HANG_SECONDS, seconds.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Its failure (a few KiB: the pipe never fills).
        .stderr(Stdio::piped());
    common::die_with_test(&mut command, libc::SIGKILL);
    command.spawn().expect("start the payload test")
}

/// The daemon's pid and the Spark process group, once the payload has written them.
fn read_pids(file: &Path, payload: &mut std::process::Child) -> (u32, u32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some((daemon, spark)) = text.split_once(' ') {
            return (daemon.parse().unwrap(), spark.parse().unwrap());
        }
        if let Some(status) = payload.try_wait().unwrap() {
            panic!("the payload ended ({status}) before it had a running job");
        }
        assert!(
            Instant::now() < deadline,
            "the payload had no daemon with a running job within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the daemon and the Spark process group are gone; panics after [`WAIT`].
fn wait_gone(daemon: u32, spark: u32) {
    let deadline = Instant::now() + WAIT;
    while process_alive(daemon) || common::group_alive(spark) {
        assert!(
            Instant::now() < deadline,
            "left behind after {WAIT:?}: daemon {daemon} alive: {}, Spark group {spark} alive: {}",
            process_alive(daemon),
            common::group_alive(spark)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `pid` runs (a zombie does not).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let close = stat.rfind(')')?;
            Some(!stat[close + 2..].starts_with('Z'))
        })
        .unwrap_or(false)
}
