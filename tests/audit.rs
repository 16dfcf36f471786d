//! The audit log on the real daemon with static API tokens: changes and refusals become events
//! with who, what, which resource and the outcome; `GET /v1/audit` shows a team admin only
//! their teams' events and a platform admin all of them; no credential is ever logged.

mod common;

use std::time::Duration;

use common::{Engine, Options, TestApp, both_engines, fake_job, grpc, write_tokens};
use serde_json::{Value, json};

/// Long and recognisable, so a leak into the log or the store would be found.
const MEMBER_A: &str = "tok-member-a-5b1f0c7e9d2a";
const VIEWER_A: &str = "tok-viewer-a-8e4d2b6c1f3a";
const ADMIN_A: &str = "tok-admin-a-1c9e7f3b5d0a";
const MEMBER_B: &str = "tok-member-b-6a2c8e0f4b7d";
const ADMIN_B: &str = "tok-admin-b-3f7b1d9a5c2e";
const PLATFORM: &str = "tok-platform-9d5a3c7e1b0f";

/// sk8 with the tests' tokens, and `extra` merged into its config.
async fn sk8(engine: Engine, dir: &std::path::Path, extra: Value) -> TestApp {
    let tokens = dir.join("tokens.yaml");
    write_tokens(
        &tokens,
        &[
            (MEMBER_A, "mia", &["payments"], "member"),
            (VIEWER_A, "vera", &["payments"], "viewer"),
            (ADMIN_A, "ada", &["payments"], "team-admin"),
            (MEMBER_B, "bob", &["risk"], "member"),
            (ADMIN_B, "bea", &["risk"], "team-admin"),
            (PLATFORM, "pat", &[], "platform-admin"),
        ],
    );
    let mut options = Options::new(engine);
    options.extra = json!({"auth": {"mode": "tokens", "tokensFile": tokens}});
    common::merge(&mut options.extra, &extra);
    TestApp::spawn(options).await
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The audit log as `token` may read it, once it holds at least `at_least` events (rows are
/// written in the background).
async fn audit(app: &TestApp, token: &str, query: &str, at_least: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let path = format!("/v1/audit?{query}");
        let (status, page) = send(app, reqwest::Method::GET, &path, Some(token), None).await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap().clone();
        if events.len() >= at_least || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find<'a>(events: &'a [Value], actor: &str, action: &str, outcome: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["actor"] == actor && e["action"] == action && e["outcome"] == outcome)
}

async fn who_did_what_to_which_resource_is_kept_and_shown_by_team(engine: Engine) {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let app = sk8(engine, dir.path(), json!({})).await;
    let job = fake_job("payments", "nightly", "sleep");
    let (status, submitted) = send(&app, Method::POST, "/v1/jobs", Some(MEMBER_A), Some(job)).await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["id"].as_str().unwrap();
    let cancel = format!("/v1/jobs/{id}/cancel");
    // Refusals: another team (not found), a viewer (forbidden), nobody (unauthenticated).
    assert_eq!(
        send(&app, Method::POST, &cancel, Some(MEMBER_B), None)
            .await
            .0,
        404
    );
    assert_eq!(
        send(&app, Method::POST, &cancel, Some(VIEWER_A), None)
            .await
            .0,
        403
    );
    assert_eq!(send(&app, Method::GET, "/v1/jobs", None, None).await.0, 401);
    let bad = json!({"team": "payments", "env": "dev", "name": "Bad Name"});
    assert_eq!(
        send(&app, Method::POST, "/v1/jobs", Some(MEMBER_A), Some(bad))
            .await
            .0,
        400
    );
    assert_eq!(
        send(&app, Method::POST, &cancel, Some(MEMBER_A), None)
            .await
            .0,
        200
    );
    let namespace = json!({"quota": {"cpu": "8", "memory": "32Gi"}});
    let (status, applied) = send(
        &app,
        Method::PUT,
        "/v1/namespaces/payments/dev",
        Some(ADMIN_A),
        Some(namespace),
    )
    .await;
    assert!(status == 200 || status == 201, "{applied}");

    let all = audit(&app, PLATFORM, "", 7).await;
    let submit = find(&all, "mia", "job.submit", "ok").expect("the submit");
    assert_eq!(submit["team"], "payments");
    assert_eq!(submit["resource"], format!("job/{id}"));
    let cancelled = find(&all, "mia", "job.cancel", "ok").expect("the cancel");
    assert_eq!(cancelled["resource"], format!("job/{id}"));
    assert!(
        find(&all, "bob", "job.cancel", "not_found").is_some(),
        "{all:?}"
    );
    let viewer = find(&all, "vera", "http.denied", "forbidden").expect("the viewer's refusal");
    assert_eq!(viewer["resource"], "POST /v1/jobs/{id}/cancel");
    let anonymous = find(&all, "anonymous", "http.denied", "unauthenticated");
    assert!(anonymous.is_some(), "{all:?}");
    let invalid = find(&all, "mia", "job.submit", "invalid_request").expect("the bad manifest");
    assert!(
        invalid["detail"]
            .as_str()
            .unwrap()
            .contains("mainApplicationFile"),
        "{invalid}"
    );
    let applied = find(&all, "ada", "namespace.apply", "ok").expect("the namespace apply");
    assert_eq!(applied["resource"], "namespace/payments/dev");

    // A team admin reads their team's events only; another team's admin none of them.
    let payments = audit(&app, ADMIN_A, "", 3).await;
    assert!(
        payments.iter().all(|e| e["team"] == "payments"),
        "{payments:?}"
    );
    assert!(find(&payments, "mia", "job.submit", "ok").is_some());
    let risk = audit(&app, ADMIN_B, "", 0).await;
    assert!(risk.iter().all(|e| e["team"] == "risk"), "{risk:?}");
    // Members may not read it.
    let (status, _) = send(&app, Method::GET, "/v1/audit", Some(MEMBER_A), None).await;
    assert_eq!(status, 403);

    // Filters and pages, newest first.
    let mine = audit(&app, PLATFORM, "actor=mia&action=job.submit", 2).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    let (_, first) = send(&app, Method::GET, "/v1/audit?limit=1", Some(PLATFORM), None).await;
    let token = first["nextPageToken"].as_str().unwrap();
    let path = format!("/v1/audit?limit=1&page_token={token}");
    let (_, second) = send(&app, Method::GET, &path, Some(PLATFORM), None).await;
    let ids = |page: &Value| page["events"][0]["id"].as_i64().unwrap();
    assert!(ids(&second) < ids(&first), "{first} {second}");

    // The structured log has the events; no credential appears in the log or in the store.
    let logs = app.logs();
    assert!(logs.contains("job.submit") && logs.contains("http.denied"));
    let stored = serde_json::to_string(&all).unwrap();
    for token in [MEMBER_A, VIEWER_A, ADMIN_A, MEMBER_B, ADMIN_B, PLATFORM] {
        assert!(!logs.contains(token), "{token} in the log");
        assert!(!stored.contains(token), "{token} in the audit rows");
    }
}

async fn sessions_and_refused_rpcs_are_audited(engine: Engine) {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let server = grpc::never_ready_server(dir.path());
    let extra = json!({"backend": {"local": {"sparkSubmit": server}}});
    let app = sk8(engine, dir.path(), extra).await;
    let session = json!({"team": "payments", "env": "dev", "name": "notebook"});
    let (status, created) = send(
        &app,
        Method::POST,
        "/v1/sessions",
        Some(MEMBER_A),
        Some(session),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let spark_request = grpc::spark_request(id);
    for token in [None, Some(MEMBER_B), Some(VIEWER_A)] {
        let mut metadata = vec![("x-sk8-session", id.to_owned())];
        if let Some(token) = token {
            metadata.push(("authorization", format!("Bearer {token}")));
        }
        let answer = grpc::call(&app.grpc, "ExecutePlan", &metadata, spark_request.clone()).await;
        assert_ne!(answer.code, 0, "{answer:?}");
    }
    let path = format!("/v1/sessions/{id}");
    assert_eq!(
        send(&app, Method::DELETE, &path, Some(MEMBER_A), None)
            .await
            .0,
        200
    );

    let all = audit(&app, PLATFORM, "", 5).await;
    let resource = json!(format!("session/{id}"));
    let created = find(&all, "mia", "session.create", "ok").expect("the create");
    assert_eq!(
        (&created["team"], &created["resource"]),
        (&json!("payments"), &resource)
    );
    assert!(
        find(&all, "mia", "session.delete", "ok").is_some(),
        "{all:?}"
    );
    let other_team = find(&all, "bob", "connect.denied", "not_found").expect("bob's RPC");
    assert_eq!(other_team["resource"], resource);
    assert!(
        find(&all, "vera", "connect.denied", "forbidden").is_some(),
        "{all:?}"
    );
    let anonymous = find(&all, "anonymous", "connect.denied", "unauthenticated");
    assert_eq!(
        anonymous.expect("the anonymous RPC")["resource"],
        "rpc/ExecutePlan"
    );
}

both_engines!(
    who_did_what_to_which_resource_is_kept_and_shown_by_team,
    sessions_and_refused_rpcs_are_audited,
);
