//! Per-team limits and request size limits on the real daemon: the submit rate (429 with
//! Retry-After), the gateway's RPC rate (RESOURCE_EXHAUSTED with retry pushback), the cap on
//! running jobs (the rest wait QUEUED and say why), the cap on sessions, and oversized headers
//! on both ports, after which sk8 still serves.

mod common;

use std::time::Duration;

use common::{Engine, Options, TestApp, both_engines, fake_job, grpc};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

async fn sk8(engine: Engine, extra: Value) -> TestApp {
    let mut options = Options::new(engine);
    options.extra = extra;
    TestApp::spawn(options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_over_a_teams_rate_get_429_with_retry_after_and_other_teams_go_on() {
    let app = sk8(
        Engine::Sqlite,
        json!({"limits": {"submits": {"perSecond": 0.5, "burst": 2}}}),
    )
    .await;
    for name in ["one", "two"] {
        let response = app.post_job(&fake_job("payments", name, "ok")).await;
        assert_eq!(response.status(), 201);
    }
    let refused = app.post_job(&fake_job("payments", "three", "ok")).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("team payments") && message.contains("limits.submits"),
        "{message}"
    );
    // Another team has a bucket of its own.
    let other = app.post_job(&fake_job("search", "one", "ok")).await;
    assert_eq!(other.status(), 201);
    // Waiting as told is enough.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = app.post_job(&fake_job("payments", "three", "ok")).await;
    assert_eq!(again.status(), 201);
}

async fn a_team_at_its_running_cap_waits_in_queued_saying_why(engine: Engine) {
    let app = sk8(engine, json!({"limits": {"maxRunningJobsPerTeam": 1}})).await;
    let first = app.submit(&fake_job("payments", "first", "sleep")).await;
    let second = app.submit(&fake_job("payments", "second", "sleep")).await;
    let other = app.submit(&fake_job("search", "other", "sleep")).await;
    let id = |job: &Value| job["id"].as_str().unwrap().to_owned();
    app.wait_for(&id(&first), &["RUNNING"], WAIT).await;
    app.wait_for(&id(&other), &["RUNNING"], WAIT).await;
    // The backend has room (maxRunning 4): only the team's cap holds the second back.
    let waiting = app.job(&id(&second)).await;
    assert_eq!(waiting["state"], "QUEUED", "{waiting}");
    let reason = waiting["waitingReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("team payments has 1 jobs running")
            && reason.contains("limits.maxRunningJobsPerTeam"),
        "{waiting}"
    );
    assert_eq!(app.cancel(&id(&first)).await.0, 200);
    let started = app.wait_for(&id(&second), &["RUNNING"], WAIT).await;
    assert!(started.get("waitingReason").is_none(), "{started}");
    for job in [&second, &other] {
        app.cancel(&id(job)).await;
    }
}

async fn sessions_over_a_teams_cap_are_refused_until_one_is_deleted(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let server = grpc::never_ready_server(dir.path());
    let app = sk8(
        engine,
        json!({
            "backend": {"local": {"sparkSubmit": server}},
            "limits": {"maxSessionsPerTeam": 1},
        }),
    )
    .await;
    let create = |name: &'static str| {
        let body = json!({"team": "payments", "env": "dev", "name": name});
        let app = &app;
        async move { app.post("/v1/sessions", &body).await }
    };
    let (status, first) = create("first").await;
    assert_eq!(status, 201, "{first}");
    let (status, refused) = create("second").await;
    assert_eq!(status, 429, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("limits.maxSessionsPerTeam") && message.contains("sk8 session delete"),
        "{message}"
    );
    // Creating the running one again is not one more.
    assert_eq!(create("first").await.0, 200);
    let id = first["id"].as_str().unwrap();
    let (status, deleted) = app.delete(&format!("/v1/sessions/{id}")).await;
    assert_eq!(status, 200, "{deleted}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = create("second").await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "still refused: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

both_engines!(
    a_team_at_its_running_cap_waits_in_queued_saying_why,
    sessions_over_a_teams_cap_are_refused_until_one_is_deleted,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_rpcs_over_a_teams_rate_are_resource_exhausted_with_retry_pushback() {
    let dir = tempfile::tempdir().unwrap();
    let server = grpc::never_ready_server(dir.path());
    let app = sk8(
        Engine::Sqlite,
        json!({
            "backend": {"local": {"sparkSubmit": server}},
            "gateway": {"resumeTimeoutSeconds": 1},
            "limits": {"gatewayRpcs": {"perSecond": 0.2, "burst": 1}},
        }),
    )
    .await;
    let body = json!({"team": "payments", "env": "dev", "name": "notebook"});
    let (_, created) = app.post("/v1/sessions", &body).await;
    let session = created["id"].as_str().unwrap().to_owned();
    let metadata = [("x-sk8-session", session.clone())];
    let call = || {
        grpc::call(
            &app.grpc,
            "AnalyzePlan",
            &metadata,
            grpc::spark_request(&session),
        )
    };
    // The first passes (and waits for a server that never gets ready).
    let first = call().await;
    assert_eq!(first.code, 14, "{first:?}");
    let limited = call().await;
    assert_eq!(limited.code, 8, "{limited:?}");
    assert!(
        limited.message.contains("limits.gatewayRpcs"),
        "{}",
        limited.message
    );
    let pushback: u64 = limited.metadata["grpc-retry-pushback-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5000).contains(&pushback), "pushback {pushback} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused_on_both_ports_and_sk8_keeps_serving() {
    let app = sk8(
        Engine::Sqlite,
        json!({"limits": {"maxHeaders": 50, "maxHeaderBytes": 8192}}),
    )
    .await;
    let many = (0..60).fold(app.http.get(app.url("/v1/jobs")), |request, i| {
        request.header(format!("x-filler-{i}"), "x")
    });
    let large = app
        .http
        .get(app.url("/v1/jobs"))
        .header("x-filler", "x".repeat(10_000));
    for (what, request) in [("60 headers", many), ("a 10 kB header", large)] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 431, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "headers_too_large", "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("limits.maxHeader"), "{what}: {message}");
    }
    // gRPC: a header section over the limit never reaches the gateway.
    let metadata = [
        ("x-sk8-session", "00000000000000000a".to_owned()),
        ("x-filler", "x".repeat(10_000)),
    ];
    let refused = grpc::call(
        &app.grpc,
        "ExecutePlan",
        &metadata,
        grpc::spark_request("s"),
    )
    .await;
    assert_ne!(refused.code, 0, "{refused:?}");
    // Still serving, on both ports.
    assert_eq!(app.get("/v1/jobs").await.0, 200);
    let metadata = [("x-sk8-session", "00000000000000000a".to_owned())];
    let answer = grpc::call(
        &app.grpc,
        "ExecutePlan",
        &metadata,
        grpc::spark_request("s"),
    )
    .await;
    assert_eq!(answer.code, 5, "{answer:?}");
}
