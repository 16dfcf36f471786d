//! The runner API over HTTP against the real daemon, on SQLite and on Postgres: submit (JSON,
//! YAML), idempotency, get, list with filters and pagination, cancel in every state, events,
//! logs, and the health, metrics and OpenAPI endpoints. Jobs run on the local backend with
//! `tests/fixtures/fake-spark-submit` so the suite is fast; `tests/spark.rs` runs real Spark.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Engine, Options, TestApp, both_engines, fake_job};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

both_engines!(
    submit_json_runs_to_success_with_history,
    submit_yaml_is_the_same_spec,
    idempotency_key_returns_one_job_under_concurrent_retries,
    list_filters_and_paginates_newest_first,
    cancel_a_queued_job,
    cancel_a_running_job_stops_its_processes,
    cancel_a_finished_job_is_a_conflict,
    failing_job_retries_then_fails_with_its_reason,
    timeout_stops_the_job,
    logs_follow_streams_until_the_end,
    health_metrics_and_openapi,
);

async fn submit_json_runs_to_success_with_history(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let response = app.post_job(&fake_job("feature-eng", "daily", "ok")).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = response.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(job["namespace"], "sjns-feature-eng-dev");
    // Defaults from the config are filled in and stored with the spec.
    assert_eq!(job["spec"]["sparkVersion"], "4.0.1");

    let done = app.wait_finished(id, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["createdAt"], job["createdAt"],
        "the submit's answer and a later read agree to the character"
    );
    assert_eq!(done["attemptCount"], 1);
    assert_eq!(done["attempts"][0]["state"], "SUCCEEDED");
    assert_eq!(done["attempts"][0]["backend"], "local");
    assert_eq!(done["links"]["events"], format!("/v1/jobs/{id}/events"));
    assert!(done["startedAt"].is_string() && done["finishedAt"].is_string());
    let states = app.event_states(id).await;
    assert_eq!(states.first().unwrap(), "QUEUED");
    assert_eq!(states[1], "SUBMITTED");
    assert_eq!(states.last().unwrap(), "SUCCEEDED");

    let (status, log) = app.text(&format!("/v1/jobs/{id}/logs")).await;
    assert_eq!(status, 200);
    assert!(log.contains("pi is roughly"), "{log}");
    assert!(
        log.contains("--master local[*]"),
        "spark-submit args: {log}"
    );
}

async fn submit_yaml_is_the_same_spec(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let yaml = "team: feature-eng\nenv: prod\nname: daily-features\n\
                mainApplicationFile: s3a://bucket/features.py\nargs: [\"--date\", \"2026-11-24\"]\n\
                sparkConf: {spark.sql.shuffle.partitions: \"64\"}\n\
                executor: {cores: 2, memory: 4g, instances: 2}\nlabels: {pipeline: features}\n";
    let response = app
        .http
        .post(app.url("/v1/jobs"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let from_yaml: Value = response.json().await.unwrap();
    let as_json = json!({
        "team": "feature-eng", "env": "prod", "name": "daily-features",
        "mainApplicationFile": "s3a://bucket/features.py", "args": ["--date", "2026-11-24"],
        "sparkConf": {"spark.sql.shuffle.partitions": "64"},
        "executor": {"cores": 2, "memory": "4g", "instances": 2},
        "labels": {"pipeline": "features"},
    });
    let from_json = app.submit(&as_json).await;
    assert_eq!(from_yaml["spec"], from_json["spec"]);
    assert_eq!(from_yaml["namespace"], "sjns-feature-eng-prod");
}

async fn idempotency_key_returns_one_job_under_concurrent_retries(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let body = fake_job("pipelines", "nightly", "ok");
    let results = futures::future::join_all(
        (0..20).map(|_| app.post_job_with_key(&body, "nightly-2026-11-26")),
    )
    .await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let replayed = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, replayed), (1, 19), "{results:?}");
    let ids: HashSet<&str> = results
        .iter()
        .map(|(_, j)| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "every retry must see the same job");
    let (_, page) = app.get("/v1/jobs?team=pipelines").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);

    // The same key with a different body is a conflict that names the original job.
    let mut other = body.clone();
    other["name"] = json!("something-else");
    let (status, error) = app.post_job_with_key(&other, "nightly-2026-11-26").await;
    assert_eq!(status, 409, "{error}");
    let original = ids.into_iter().next().unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains(original)
    );

    // Keys are per team: another team may use the same one.
    let other_team = fake_job("other-team", "nightly", "ok");
    let (status, _) = app
        .post_job_with_key(&other_team, "nightly-2026-11-26")
        .await;
    assert_eq!(status, 201);
    // Without a key, every POST creates a job.
    let a = app.submit(&body).await;
    let b = app.submit(&body).await;
    assert_ne!(a["id"], b["id"]);
}

async fn list_filters_and_paginates_newest_first(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let mut ids = Vec::new();
    for (i, (team, env)) in [("alpha", "dev"), ("alpha", "prod"), ("beta", "dev")]
        .iter()
        .cycle()
        .take(9)
        .enumerate()
    {
        let mut job = fake_job(team, &format!("job-{}", i % 2), "ok");
        job["env"] = json!(env);
        job["labels"] = json!({ "pipeline": if i % 3 == 0 { "features" } else { "reports" } });
        ids.push(app.submit(&job).await["id"].as_str().unwrap().to_owned());
    }
    let count = |query: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app.get(&format!("/v1/jobs?{query}")).await;
            assert_eq!(status, 200, "{query}: {page}");
            page["jobs"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("team=alpha").await, 6);
    assert_eq!(count("team=alpha&env=prod").await, 3);
    assert_eq!(count("name=job-0").await, 5);
    assert_eq!(count("label=pipeline%3Dfeatures").await, 3);
    assert_eq!(count("label=pipeline%3Dfeatures&team=alpha").await, 3);
    assert_eq!(count("label=pipeline%3Dnone").await, 0);

    // Page through everything two at a time: newest first, no gaps, no repeats.
    let mut seen = Vec::new();
    let mut query = "/v1/jobs?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&query).await;
        assert_eq!(status, 200, "{page}");
        for job in page["jobs"].as_array().unwrap() {
            seen.push(job["id"].as_str().unwrap().to_owned());
        }
        match page["nextPageToken"].as_str() {
            Some(token) => query = format!("/v1/jobs?limit=2&page_token={token}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);

    // State filter, once every job has finished.
    for id in &ids {
        app.wait_finished(id, WAIT).await;
    }
    assert_eq!(count("state=SUCCEEDED").await, 9);
    assert_eq!(count("state=succeeded&team=beta").await, 3);
    assert_eq!(count("state=QUEUED").await, 0);
}

/// One running sleeper fills `maxRunning: 1`, so the next job waits QUEUED.
async fn app_with_one_slot(engine: Engine) -> (TestApp, String) {
    let mut options = Options::new(engine);
    options.max_running = 1;
    let app = TestApp::spawn(options).await;
    let sleeper = app.submit(&fake_job("t", "sleeper", "sleep")).await;
    let id = sleeper["id"].as_str().unwrap().to_owned();
    app.wait_for(&id, &["RUNNING"], WAIT).await;
    (app, id)
}

async fn cancel_a_queued_job(engine: Engine) {
    let (app, sleeper) = app_with_one_slot(engine).await;
    let queued = app.submit(&fake_job("t", "waiting", "ok")).await;
    let id = queued["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.job(id).await["state"], "QUEUED", "no slot is free");

    let (status, job) = app.cancel(id).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(
        job["state"], "CANCELLED",
        "nothing ran, so the cancel is immediate"
    );
    assert_eq!(app.job(id).await["attemptCount"], 0);
    // Cancelling twice is fine.
    let (status, again) = app.cancel(id).await;
    assert_eq!((status, again["state"].as_str()), (200, Some("CANCELLED")));
    assert_eq!(app.event_states(id).await, ["QUEUED", "CANCELLED"]);
    app.cancel(&sleeper).await;
}

async fn cancel_a_running_job_stops_its_processes(engine: Engine) {
    let (app, id) = app_with_one_slot(engine).await;
    let pid = common::attempt_pid(&app.job(&id).await);
    assert!(common::group_alive(pid));

    let (status, job) = app.cancel(&id).await;
    assert_eq!(status, 200, "{job}");
    assert!(
        ["CANCELLING", "CANCELLED"].contains(&job["state"].as_str().unwrap()),
        "{job}"
    );
    let (status, again) = app.cancel(&id).await;
    assert_eq!(status, 200, "a second cancel is not an error: {again}");
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "CANCELLED", "{done}");
    assert!(
        !common::group_alive(pid),
        "the sleep child must be gone too"
    );
    let states = app.event_states(&id).await;
    assert_eq!(&states[states.len() - 2..], ["CANCELLING", "CANCELLED"]);
}

async fn cancel_a_finished_job_is_a_conflict(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let job = app.submit(&fake_job("t", "quick", "ok")).await;
    let id = job["id"].as_str().unwrap();
    app.wait_finished(id, WAIT).await;
    let (status, error) = app.cancel(id).await;
    assert_eq!(status, 409, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("already finished as SUCCEEDED"),
        "{message}"
    );
    let (status, _) = app.cancel("j-doesnotexist").await;
    assert_eq!(status, 404);
}

async fn failing_job_retries_then_fails_with_its_reason(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let mut body = fake_job("t", "flaky", "crash");
    body["retry"] = json!({ "maxAttempts": 2, "backoffSeconds": 0 });
    let id = app.submit(&body).await["id"].as_str().unwrap().to_owned();
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    assert_eq!(done["attemptCount"], 2);
    assert_eq!(done["failureClass"], "application");
    let reason = done["failureReason"].as_str().unwrap();
    assert!(reason.contains("exited with status 137"), "{reason}");
    assert!(app.event_states(&id).await.contains(&"RETRYING".to_owned()));
    assert_eq!(done["attempts"][0]["state"], "FAILED");
    let remediation = &done["attempts"][0]["remediation"];
    assert_eq!(remediation["classification"]["class"], "platform", "{done}");
    assert_eq!(remediation["decision"]["remedy"], "retry", "{done}");

    // A Python exception is the job's own error: never retried, whatever maxAttempts says.
    let mut body = fake_job("t", "broken", "fail");
    body["retry"] = json!({ "maxAttempts": 3, "backoffSeconds": 0 });
    let id = app.submit(&body).await["id"].as_str().unwrap().to_owned();
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(
        (&done["state"], &done["attemptCount"]),
        (&json!("FAILED"), &json!(1)),
        "{done}"
    );
    let classification = &done["attempts"][0]["remediation"]["classification"];
    assert_eq!(classification["class"], "user_error", "{done}");
    assert_eq!(classification["rule"], "user-python-traceback", "{done}");
}

async fn timeout_stops_the_job(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let mut body = fake_job("t", "too-slow", "sleep");
    body["timeoutSeconds"] = json!(1);
    let job = app.submit(&body).await;
    let id = job["id"].as_str().unwrap();
    let done = app.wait_finished(id, WAIT).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    assert_eq!(done["failureClass"], "timeout");
    assert!(!common::group_alive(common::attempt_pid(&done)));
}

async fn logs_follow_streams_until_the_end(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let mut body = fake_job("t", "chatty", "sleep");
    body["envVars"]["FAKE_SPARK_SECONDS"] = json!("2");
    let id = app.submit(&body).await["id"].as_str().unwrap().to_owned();
    // Asked while the job may still be queued: follow waits for the attempt, then streams.
    let (status, log) = app.text(&format!("/v1/jobs/{id}/logs?follow=true")).await;
    assert_eq!(status, 200);
    assert!(
        log.contains("sleeping 2s") && log.contains("done sleeping"),
        "{log}"
    );
    assert_eq!(app.wait_finished(&id, WAIT).await["state"], "SUCCEEDED");
}

async fn health_metrics_and_openapi(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    assert_eq!(app.get("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(app.get("/readyz").await, (200, json!({"status": "ready"})));
    let id = app.submit(&fake_job("t", "counted", "ok")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_finished(&id, WAIT).await;
    let (status, metrics) = app.text("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "sk8_jobs{state=\"SUCCEEDED\"} 1",
        "sk8_job_submits_total{outcome=\"created\"} 1",
        "sk8_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/jobs\"",
        "sk8_store_op_seconds",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in:\n{metrics}");
    }
    let (status, doc) = app.text("/openapi.json").await;
    assert_eq!(status, 200);
    let served: Value = serde_json::from_str(&doc).unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_file("docs/openapi.json")).unwrap(),
    )
    .unwrap();
    assert!(
        served == committed,
        "the served document differs from docs/openapi.json: run \
         SK8_UPDATE_OPENAPI=1 cargo test --test openapi"
    );
}
