//! Restart safety, on SQLite and on Postgres: `kill -9` the daemon while jobs are queued and
//! running (and during a burst of submits); after a restart every accepted job is still there,
//! none is duplicated, and each ends in a truthful state. A graceful SIGTERM stops the local
//! Spark processes and says so in the job's history. A daemon whose log reader goes away or
//! stalls (`sk8 serve 2>&1 | grep -m1 ready`) keeps serving and still stops on SIGTERM.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Engine, Options, Output, TestApp, both_engines, fake_job};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const BURST: usize = 300;

both_engines!(
    sigterm_always_exits_cleanly,
    kill9_with_queued_and_running_jobs,
    kill9_during_a_submit_burst_loses_no_accepted_job,
    sigterm_stops_running_jobs_and_records_why,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_and_stops_after_the_reader_of_its_stderr_is_gone() {
    outlives_its_log_reader(Output::StderrClosed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_and_stops_after_the_reader_of_its_stdout_and_stderr_is_gone() {
    outlives_its_log_reader(Output::BothClosed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_and_stops_while_the_reader_of_its_stderr_stalls() {
    outlives_its_log_reader(Output::StderrStalled).await;
}

/// Jobs are submitted until sk8 has dropped log lines (the pipe refused them or is full);
/// each is accepted, one runs to the end and its log is read; then SIGTERM exits 0.
async fn outlives_its_log_reader(output: Output) {
    let mut options = Options::new(Engine::Sqlite);
    options.output = output;
    // Debug logs fill a stalled pipe's 64 KiB after a few requests.
    options.extra = json!({ "log": { "filter": "debug" } });
    let mut app = TestApp::spawn(options).await;
    let deadline = std::time::Instant::now() + WAIT;
    let mut submitted = 0;
    while log_lines_dropped(&app).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "sk8 dropped no log line in {WAIT:?} ({submitted} jobs submitted, {output:?})"
        );
        submit_id(&app, &fake_job("t", &format!("job-{submitted}"), "ok")).await;
        submitted += 1;
    }
    let id = submit_id(&app, &fake_job("t", "after-the-drops", "ok")).await;
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    let (status, log) = app.text(&format!("/v1/jobs/{id}/logs")).await;
    assert_eq!(status, 200, "{log}");
    let started = std::time::Instant::now();
    let status = app.terminate().expect("sk8 was running");
    assert!(
        status.success(),
        "SIGTERM after {submitted} jobs ({output:?}): {status} after {:?}",
        started.elapsed()
    );
}

/// `sk8_log_lines_dropped_total` from `/metrics`.
async fn log_lines_dropped(app: &TestApp) -> u64 {
    let (status, metrics) = app.text("/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("sk8_log_lines_dropped_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sk8_log_lines_dropped_total in /metrics:\n{metrics}"))
}

fn sleeper(name: &str, seconds: u32) -> Value {
    let mut job = fake_job("t", name, "sleep");
    job["envVars"]["FAKE_SPARK_SECONDS"] = json!(seconds.to_string());
    job
}

async fn submit_id(app: &TestApp, body: &Value) -> String {
    app.submit(body).await["id"].as_str().unwrap().to_owned()
}

/// SIGTERM ends the server and the shutdown wait at once; whichever sk8 notices first, the
/// exit is clean (it once exited 101 about one time in seven).
async fn sigterm_always_exits_cleanly(engine: Engine) {
    let mut app = TestApp::spawn(Options::new(engine)).await;
    for round in 0..10 {
        let status = app.terminate().expect("sk8 was running");
        assert!(status.success(), "round {round}: {status}\n{}", app.logs());
        app.restart().await;
    }
}

async fn kill9_with_queued_and_running_jobs(engine: Engine) {
    let mut options = Options::new(engine);
    options.max_running = 3;
    let mut app = TestApp::spawn(options).await;
    // Two finish on their own while sk8 is down; one is killed behind its back.
    let finishes_a = submit_id(&app, &sleeper("finishes-a", 3)).await;
    let finishes_b = submit_id(&app, &sleeper("finishes-b", 3)).await;
    let killed = submit_id(&app, &sleeper("killed", 60)).await;
    for id in [&finishes_a, &finishes_b, &killed] {
        app.wait_for(id, &["RUNNING"], WAIT).await;
    }
    let mut queued = Vec::new();
    for i in 0..3 {
        queued.push(submit_id(&app, &fake_job("t", &format!("queued-{i}"), "ok")).await);
    }
    let killed_pid = common::attempt_pid(&app.job(&killed).await);
    let running_pid = common::attempt_pid(&app.job(&finishes_a).await);

    app.kill9();
    assert!(
        common::group_alive(running_pid),
        "jobs outlive the daemon: they are in their own process groups"
    );
    kill_group(killed_pid);
    // Until both have finished while sk8 is down (their wrapper writes `exit`), however slow
    // the machine: a fixed sleep would test adoption of running jobs instead, under load.
    for id in [&finishes_a, &finishes_b] {
        let exit = app.dir.path().join(format!("attempts/{id}/1/exit"));
        let deadline = std::time::Instant::now() + WAIT;
        while !exit.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} was not written within {WAIT:?}",
                exit.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    app.restart().await;

    let (_, page) = app.get("/v1/jobs?limit=100").await;
    let listed: HashSet<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    let mut all: Vec<&String> = vec![&finishes_a, &finishes_b, &killed];
    all.extend(&queued);
    assert_eq!(listed.len(), all.len(), "no job lost, none duplicated");
    assert!(all.iter().all(|id| listed.contains(id.as_str())));

    for id in [&finishes_a, &finishes_b].into_iter().chain(&queued) {
        let done = app.wait_finished(id, WAIT).await;
        assert_eq!(done["state"], "SUCCEEDED", "{done}");
        assert_eq!(
            done["attemptCount"], 1,
            "adopted, not started again: {done}"
        );
    }
    let done = app.wait_finished(&killed, WAIT).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    assert_eq!(done["failureClass"], "infrastructure");
    let reason = done["failureReason"].as_str().unwrap();
    assert!(
        reason.contains("without recording an exit status"),
        "{reason}"
    );
}

/// SIGKILL to a whole process group.
fn kill_group(pgid: u32) {
    // SAFETY: a negative pid addresses the group the local backend created for the attempt.
    unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
}

async fn kill9_during_a_submit_burst_loses_no_accepted_job(engine: Engine) {
    let mut app = TestApp::spawn(Options::new(engine)).await;
    let keyed = fake_job("t", "keyed", "ok");
    let (status, first) = app.post_job_with_key(&keyed, "before-the-crash").await;
    assert_eq!(status, 201);

    // Kill once ten submissions are acknowledged, with many more in flight.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let burst: Vec<_> = (0..BURST)
        .map(|i| {
            let request = app.http.post(app.url("/v1/jobs")).json(&fake_job(
                "t",
                &format!("burst-{i}"),
                "ok",
            ));
            let acked = acked_tx.clone();
            tokio::spawn(async move {
                let response = request.send().await.ok()?;
                (response.status() == 201).then_some(())?;
                let id = response.json::<Value>().await.ok()?["id"]
                    .as_str()?
                    .to_owned();
                let _ = acked.send(());
                Some(id)
            })
        })
        .collect();
    for _ in 0..10 {
        acked_rx.recv().await.expect("submissions are acknowledged");
    }
    app.kill9();
    let mut acknowledged = Vec::new();
    for task in burst {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(
        acknowledged.len() < BURST,
        "the kill must cut the burst short"
    );
    app.restart().await;

    for id in &acknowledged {
        let done = app.wait_finished(id, WAIT).await;
        assert_eq!(done["state"], "SUCCEEDED", "{done}");
        assert_eq!(done["attemptCount"], 1, "{done}");
    }
    let (_, page) = app.get("/v1/jobs?limit=500").await;
    let stored = page["jobs"].as_array().unwrap().len();
    assert!(
        stored > acknowledged.len() && stored <= BURST + 1,
        "{} acknowledged, {stored} stored",
        acknowledged.len()
    );
    // The idempotency key still points at the job it created before the crash.
    let (status, again) = app.post_job_with_key(&keyed, "before-the-crash").await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], first["id"]);
}

async fn sigterm_stops_running_jobs_and_records_why(engine: Engine) {
    let mut app = TestApp::spawn(Options::new(engine)).await;
    let id = submit_id(&app, &sleeper("interrupted", 60)).await;
    app.wait_for(&id, &["RUNNING"], WAIT).await;
    let pid = common::attempt_pid(&app.job(&id).await);

    let status = app.terminate().expect("sk8 was running");
    assert!(status.success(), "a clean shutdown exits 0: {status}");
    assert!(
        !common::group_alive(pid),
        "shutdown stops local Spark processes"
    );
    let logs = app.logs();
    assert!(logs.contains("stopping local Spark jobs") && logs.contains("sk8 stopped"));

    app.restart().await;
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    let reason = done["failureReason"].as_str().unwrap();
    assert!(reason.contains("sk8 shut down"), "{reason}");
}

/// SQLite serves one sk8 process: a second one on the same file is refused at startup, naming
/// the first; once the first is gone (even by `kill -9`) the file is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_sqlite_file_is_refused() {
    let mut app = TestApp::spawn(Options::new(Engine::Sqlite)).await;
    let first = app.pid();
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_sk8"))
        .arg("serve")
        .arg("--config")
        .arg(app.dir.path().join("sk8.yaml"))
        .env_remove("DATABASE_URL")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, second)
        .await
        .expect("the second sk8 exits at startup")
        .expect("run sk8");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("in use by another sk8 process (pid {first}")),
        "{stderr}"
    );
    assert!(stderr.contains("use Postgres"), "{stderr}");
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, 200, "the first one serves on");
    app.kill9();
    app.restart().await;
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, 200, "restarted on the freed file");
}
