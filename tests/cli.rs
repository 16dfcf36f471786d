//! The `sk8` client subcommands against a real daemon: submit (with `--wait` progress and exit
//! codes), status, list, events, logs, cancel, JSON output, and the messages a user sees when
//! the daemon is unreachable or a manifest is wrong.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Engine, Options, TestApp, fake_job};
use serde_json::Value;

fn sk8(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sk8"))
        .arg("--server")
        .arg(&app.base)
        .args(args)
        .output()
        .expect("run sk8")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn manifest(dir: &Path, name: &str, body: &Value) -> String {
    let path = dir.join(format!("{name}.yaml"));
    // JSON is YAML: the CLI reads either.
    std::fs::write(&path, body.to_string()).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_shows_progress_and_exits_by_outcome() {
    let app = TestApp::spawn(Options::new(Engine::Sqlite)).await;
    let ok = manifest(app.dir.path(), "ok", &fake_job("cli", "good", "ok"));
    let output = sk8(&app, &["submit", &ok, "--wait"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("waiting for it to finish"), "{stderr}");
    assert!(
        stderr.contains("SUCCEEDED") && stderr.contains("s]"),
        "elapsed time: {stderr}"
    );
    assert!(stdout.contains("SUCCEEDED"), "{stdout}");

    let failing = manifest(app.dir.path(), "fail", &fake_job("cli", "bad", "fail"));
    let output = sk8(&app, &["submit", &failing, "--wait"]);
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("ValueError"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sk8 logs"),
        "says where to look next: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_list_events_logs_and_cancel() {
    let app = TestApp::spawn(Options::new(Engine::Sqlite)).await;
    let file = manifest(app.dir.path(), "sleep", &fake_job("cli", "sleepy", "sleep"));
    let output = sk8(&app, &["-o", "json", "submit", &file]);
    let job: Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    let id = job["id"].as_str().unwrap().to_owned();
    app.wait_for(&id, &["RUNNING"], std::time::Duration::from_secs(20))
        .await;

    let (stdout, _) = text(&sk8(&app, &["status", &id]));
    assert!(
        stdout.contains("RUNNING") && stdout.contains("sjns-cli-dev"),
        "{stdout}"
    );
    let (stdout, _) = text(&sk8(&app, &["list", "--team", "cli", "--state", "running"]));
    assert!(stdout.contains(&id) && stdout.starts_with("ID"), "{stdout}");
    let (stdout, _) = text(&sk8(&app, &["list", "--team", "nobody"]));
    assert!(!stdout.contains(&id));
    let (stdout, _) = text(&sk8(&app, &["logs", &id]));
    assert!(stdout.contains("sleeping 60s"), "{stdout}");

    let output = sk8(&app, &["cancel", &id]);
    assert!(output.status.success());
    app.wait_finished(&id, std::time::Duration::from_secs(20))
        .await;
    let (stdout, _) = text(&sk8(&app, &["events", &id]));
    assert!(
        stdout.starts_with("AT") && stdout.contains("QUEUED") && stdout.contains(" CANCELLED "),
        "{stdout}"
    );
    let output = sk8(&app, &["cancel", &id]);
    assert!(output.status.success(), "cancelling twice is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_tell_the_user_what_to_do() {
    let app = TestApp::spawn(Options::new(Engine::Sqlite)).await;
    let mut bad = fake_job("cli", "bad", "ok");
    bad["driver"] = serde_json::json!({"memory": "lots"});
    let file = manifest(app.dir.path(), "bad", &bad);
    let (_, stderr) = text(&sk8(&app, &["submit", &file]));
    assert!(
        stderr.contains("bad.yaml:1:") && stderr.contains(": driver.memory: "),
        "at its line, naming its field: {stderr}"
    );

    let (_, stderr) = text(&sk8(&app, &["submit", "/nonexistent/job.yaml"]));
    assert!(
        stderr.contains("read the manifest /nonexistent/job.yaml"),
        "{stderr}"
    );

    let (_, stderr) = text(&sk8(&app, &["status", "j-missing"]));
    assert!(stderr.contains("sk8 list"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_sk8"))
        .args(["--server", "http://127.0.0.1:9", "list"])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("Is `sk8 serve` running?"), "{stderr}");
}
