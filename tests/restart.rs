//! Restart safety, on SQLite and on Postgres: `kill -9` the daemon while jobs are queued and
//! running (and during a burst of submits); after a restart every accepted job is still there,
//! none is duplicated, and each ends in a truthful state. A graceful SIGTERM stops the local
//! Spark processes and says so in the job's history.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Engine, Options, TestApp, both_engines, fake_job};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const BURST: usize = 300;

both_engines!(
    sigterm_always_exits_cleanly,
    kill9_with_queued_and_running_jobs,
    kill9_during_a_submit_burst_loses_no_accepted_job,
    sigterm_stops_running_jobs_and_records_why,
);

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
    tokio::time::sleep(Duration::from_secs(4)).await;
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
