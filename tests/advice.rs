//! Sizing advice against the real daemon on both engines: jobs whose (fake) driver leaves a
//! real event log (tests/fixtures/eventlogs, from a real Spark run) are recorded; advice is
//! withheld below three runs, then names what to change, the rule, the runs it rests on and the
//! saving; the CLI prints it; bad queries are 400s naming the parameter. With `sizing: auto`
//! (the team's default here) the advice is applied to the next submission and recorded on the
//! job, explicit spec values win unless `sizingOverride` says otherwise, a dry run creates
//! nothing, and a change whose probation run fails for memory is reverted by the next
//! submission and held back after it; the report and the gauges count it all.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Engine, Options, TestApp, both_engines, fake_job};
use serde_json::Value;

both_engines!(
    advice_follows_the_recorded_runs,
    auto_applies_watches_and_reverts
);

const WAIT: Duration = Duration::from_secs(60);

/// The nightly job as the tests submit it: 4 GiB executors, over-provisioned.
fn nightly(mode: &str) -> Value {
    let mut body = fake_job("growth", "nightly", mode);
    body["executor"] = serde_json::json!({"memory": "4g", "instances": 2});
    body
}

/// Runs one job of the signature to its record; its id.
async fn recorded_run(app: &TestApp) -> String {
    let job = app.submit(&nightly("eventlog")).await;
    recorded(app, &job, "SUCCEEDED").await
}

/// Waits for `job` to end in `state` and for its attempt's run record; its id.
async fn recorded(app: &TestApp, job: &Value, state: &str) -> String {
    let id = job["id"].as_str().unwrap().to_owned();
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], state, "{done}");
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, record) = app.get(&format!("/v1/jobs/{id}/attempts/1")).await;
        if record["record"] == "recorded" {
            if state == "SUCCEEDED" {
                assert_eq!(record["summary"]["status"], "complete", "{record}");
            }
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "attempt 1 of {id} not recorded within {WAIT:?}: {record}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn advice(app: &TestApp, query: &str) -> (u16, Value) {
    app.get(&format!("/v1/advice?{query}")).await
}

async fn advice_follows_the_recorded_runs(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let signature = "team=growth&env=dev&name=nightly";
    let (status, body) = advice(&app, signature).await;
    assert_eq!(status, 404, "no runs yet: {body}");

    let mut ids = vec![recorded_run(&app).await, recorded_run(&app).await];
    let (status, early) = advice(&app, signature).await;
    assert_eq!(status, 200, "{early}");
    assert_eq!(early["status"], "notEnoughRuns", "{early}");
    assert!(early["recommendations"].as_array().unwrap().is_empty());

    ids.push(recorded_run(&app).await);
    let (_, advice_now) = advice(&app, signature).await;
    assert_eq!(advice_now["status"], "advice", "{advice_now}");
    let memory = advice_now["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["setting"] == "executor.memory")
        .unwrap_or_else(|| panic!("an executor memory recommendation: {advice_now}"))
        .clone();
    // The real run peaked at 134 MiB of heap: 134 × 1.3 + 300 MiB reserved, in 256 MiB steps.
    assert_eq!(memory["old"], "4g", "{memory}");
    assert_eq!(memory["new"], "512m", "{memory}");
    assert_eq!(memory["rule"], "executor-heap-p95");
    for id in &ids {
        assert!(
            memory["evidence"].as_str().unwrap().contains(id.as_str()),
            "{memory}"
        );
    }
    assert_eq!(memory["confidence"]["runs"], 3);
    assert!(
        memory["saving"]["gibSeconds"].as_f64().unwrap() > 0.0,
        "{memory}"
    );
    let (_, cost) = advice(&app, &format!("{signature}&profile=cost")).await;
    assert_eq!(cost["profile"], "cost");

    let mut cli = Command::new(env!("CARGO_BIN_EXE_sk8"));
    cli.args(["--server", &app.base, "advise", "growth", "dev", "nightly"]);
    let output = common::output_of(cli, WAIT, "sk8 advise growth dev nightly");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("$ sk8 advise growth dev nightly\n{stdout}");
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("advice from 3 runs"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("executor.memory") && l.contains("512m")),
        "{stdout}"
    );

    for (query, field) in [
        ("team=growth&env=dev", "name"),
        ("team=growth&env=dev&name=nightly&profile=cheap", "profile"),
        ("team=growth&env=dev&name=nightly&limit=3", "limit"),
        ("team=Not_A_Label&env=dev&name=nightly", "team"),
    ] {
        let (status, body) = advice(&app, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
}

/// The recommendation for `setting` in a job's `sizing.<list>` (applied, withheld, reverted).
fn sizing_entry<'a>(job: &'a Value, list: &str, setting: &str) -> Option<&'a Value> {
    job["sizing"][list]
        .as_array()?
        .iter()
        .find(|r| r["setting"] == setting)
}

async fn dry_run(app: &TestApp, body: &Value, query: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(&format!("/v1/jobs?{query}")))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn job_count(app: &TestApp) -> usize {
    let (_, page) = app.get("/v1/jobs?team=growth&limit=500").await;
    page["jobs"].as_array().map_or(0, Vec::len)
}

async fn auto_applies_watches_and_reverts(engine: Engine) {
    let mut options = Options::new(engine);
    options.extra = serde_json::json!({"sizing": {"teams": {"growth": {"mode": "auto"}}}});
    let app = TestApp::spawn(options).await;
    for _ in 0..2 {
        recorded_run(&app).await;
    }
    // Two runs: no advice, nothing applied.
    let early = app.submit(&nightly("eventlog")).await;
    assert_eq!(early["sizing"]["status"], "notEnoughRuns", "{early}");
    assert_eq!(early["spec"]["executor"]["memory"], "4g");
    recorded(&app, &early, "SUCCEEDED").await;

    // The spec sets executor.memory itself: it wins; what it left out (the overhead, the
    // driver) is applied, recorded on the job, on probation; its run passes.
    let own = app.submit(&nightly("eventlog")).await;
    assert_eq!(own["spec"]["executor"]["memory"], "4g", "{own}");
    let kept = sizing_entry(&own, "withheld", "executor.memory").expect("withheld");
    assert!(
        kept["why"].as_str().unwrap().contains("the spec sets it"),
        "{own}"
    );
    let driver = sizing_entry(&own, "applied", "driver.memory").expect("driver applied");
    assert_eq!(
        (&driver["old"], &driver["new"]),
        (&Value::from("1g"), &Value::from("512m"))
    );
    assert_eq!(own["spec"]["driver"]["memory"], "512m", "{own}");
    assert_eq!(own["sizing"]["probation"], true, "{own}");
    let own_id = recorded(&app, &own, "SUCCEEDED").await;
    assert_eq!(app.job(&own_id).await["sizing"], own["sizing"]);
    let described = app.cli(&["describe", &own_id]);
    let text = String::from_utf8_lossy(&described.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("applied") && l.contains("512m (was 1g)")),
        "{text}"
    );

    // A dry run shows the effective spec and creates nothing.
    let mut mine = nightly("oom");
    mine["sizingOverride"] = true.into();
    let before = job_count(&app).await;
    let (status, effective) = dry_run(&app, &mine, "dryRun=true").await;
    assert_eq!(status, 200, "{effective}");
    assert_eq!(
        effective["spec"]["executor"]["memory"], "512m",
        "{effective}"
    );
    assert!(effective.get("id").is_none(), "{effective}");
    assert_eq!(job_count(&app).await, before, "a dry run created a job");
    let (status, bad) = dry_run(&app, &mine, "dryRun=maybe").await;
    assert_eq!(
        (status, &bad["error"]["field"]),
        (400, &Value::from("dryRun")),
        "{bad}"
    );
    let mut contradiction = mine.clone();
    contradiction["sizing"] = "advise".into();
    let (status, bad) = dry_run(&app, &contradiction, "dryRun=true").await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["field"], "sizingOverride", "{bad}");

    // sizingOverride: the advice replaces the spec's 4g, on probation; that run runs out of
    // memory (the fake driver's OOM)...
    let probe = app.submit(&mine).await;
    assert_eq!(probe["spec"]["executor"]["memory"], "512m", "{probe}");
    let memory = sizing_entry(&probe, "applied", "executor.memory").expect("applied");
    assert_eq!(memory["rule"], "executor-heap-p95");
    assert_eq!(probe["sizing"]["probation"], true, "{probe}");
    let probe_id = recorded(&app, &probe, "FAILED").await;

    // ... so the next submission reverts it, and runs as the spec was.
    mine["envVars"]["FAKE_SPARK_MODE"] = "eventlog".into();
    let reverting = app.submit(&mine).await;
    let reverted = sizing_entry(&reverting, "reverted", "executor.memory")
        .unwrap_or_else(|| panic!("executor.memory reverted: {reverting}"));
    assert_eq!(reverted["jobId"], probe_id.as_str());
    assert!(
        reverted["reason"].as_str().unwrap().contains("OOM"),
        "{reverted}"
    );
    assert_eq!(reverting["spec"]["executor"]["memory"], "4g", "{reverting}");
    recorded(&app, &reverting, "SUCCEEDED").await;
    // The rule stays back while the runs call for the same value.
    let after = app.submit(&mine).await;
    assert_eq!(after["spec"]["executor"]["memory"], "4g", "{after}");
    let held = sizing_entry(&after, "withheld", "executor.memory").expect("withheld");
    assert!(
        held["why"].as_str().unwrap().contains("reverted after job"),
        "{held}"
    );
    app.cancel(after["id"].as_str().unwrap()).await;

    let (status, report) = app.get("/v1/advice/report?team=growth").await;
    assert_eq!(status, 200, "{report}");
    assert!(report["applied"].as_u64().unwrap() >= 3, "{report}");
    assert!(report["reverted"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["given"].as_u64() >= report["applied"].as_u64(),
        "{report}"
    );
    assert!(
        report["saved"]["gibSeconds"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let (_, metrics) = app.text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sk8_sizing_recommendations")
                && l.contains("team=\"growth\"")
                && l.contains("outcome=\"reverted\"")),
        "{metrics}"
    );
    for query in ["", "team=Not_A_Label", "team=growth&env=dev"] {
        let (status, body) = app.get(&format!("/v1/advice/report?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
}
