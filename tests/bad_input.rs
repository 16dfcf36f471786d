//! Bad input against the real daemon, on SQLite and on Postgres: every rejection is a 4xx with
//! the JSON error body, names the field at fault and the rule, stores nothing, and leaves the
//! daemon serving.

mod common;

use common::{Engine, Options, TestApp, both_engines};
use serde_json::{Value, json};

both_engines!(
    every_bad_submission_is_a_4xx_naming_its_field,
    bad_queries_and_routes
);

fn valid() -> Value {
    json!({
        "team": "feature-eng", "env": "prod", "name": "daily",
        "mainApplicationFile": "local:///opt/jobs/features.py",
    })
}

/// `valid()` with `patch` merged in (a `null` leaf removes the key).
fn with(patch: Value) -> Value {
    let mut body = valid();
    common::merge(&mut body, &patch);
    if let Value::Object(map) = &mut body {
        map.retain(|_, v| !v.is_null());
    }
    body
}

/// (what, JSON body, expected field, a word the message must contain).
fn bad_bodies() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    vec![
        (
            "missing team",
            with(json!({"team": null})),
            "team",
            "missing",
        ),
        (
            "team not DNS-1123",
            with(json!({"team": "Feature_Eng"})),
            "team",
            "lowercase",
        ),
        (
            "env not DNS-1123",
            with(json!({"env": "-prod"})),
            "env",
            "letter or digit",
        ),
        (
            "namespace over 63 characters",
            with(json!({"team": "a".repeat(40), "env": "b".repeat(20)})),
            "env",
            "63",
        ),
        (
            "unknown top-level field",
            with(json!({"sparkconf": {}})),
            "sparkconf",
            "unknown field",
        ),
        (
            "unknown nested field",
            with(json!({"driver": {"memroy": "1g"}})),
            "driver.memroy",
            "unknown field",
        ),
        (
            "memory string",
            with(json!({"driver": {"memory": "lots"}})),
            "driver.memory",
            "memory",
        ),
        (
            "memory too large",
            with(json!({"executor": {"memory": "5000t"}})),
            "executor.memory",
            "between 32m and 1t",
        ),
        (
            "sparkConf value not a string",
            with(json!({"sparkConf": {"spark.sql.shuffle.partitions": 64}})),
            "sparkConf.spark.sql.shuffle.partitions",
            "string",
        ),
        (
            "cores out of range",
            with(json!({"executor": {"cores": 0}})),
            "executor.cores",
            "1",
        ),
        (
            "application not .py or .jar",
            with(json!({"mainApplicationFile": "local:///opt/job.txt"})),
            "mainApplicationFile",
            ".py",
        ),
        (
            "jar without mainClass",
            with(json!({"mainApplicationFile": "local:///opt/job.jar"})),
            "mainClass",
            "required",
        ),
        (
            "path traversal in a file reference",
            with(json!({"deps": {"pyFiles": ["local:///opt/../../etc/passwd.py"]}})),
            "deps.pyFiles[0]",
            "..",
        ),
        (
            "retry attempts zero",
            with(json!({"retry": {"maxAttempts": 0}})),
            "retry.maxAttempts",
            "between",
        ),
        (
            "timeout zero",
            with(json!({"timeoutSeconds": 0})),
            "timeoutSeconds",
            "between",
        ),
        (
            "reserved label prefix",
            with(json!({"labels": {"sk8.dev/job": "x"}})),
            "labels.sk8.dev/job",
            "reserved",
        ),
        (
            "name with spaces",
            with(json!({"name": "my job"})),
            "name",
            "letters",
        ),
        (
            "dynamic allocation min over max",
            with(
                json!({"dynamicAllocation": {"enabled": true, "minExecutors": 5, "maxExecutors": 2}}),
            ),
            "dynamicAllocation.minExecutors",
            "maxExecutors",
        ),
        (
            "wrong type",
            with(json!({"args": "--date 2026"})),
            "args",
            "sequence",
        ),
        (
            "reserved spark conf",
            with(json!({"sparkConf": {"spark.master": "yarn"}})),
            "sparkConf.spark.master",
            "sk8",
        ),
        (
            "bad spark version",
            with(json!({"sparkVersion": "latest"})),
            "sparkVersion",
            "version",
        ),
        (
            "a huge label map",
            with(json!({"labels": (0..5000)
                .map(|i| (format!("k{i}"), json!("v")))
                .collect::<serde_json::Map<_, _>>()})),
            "labels",
            "at most 64",
        ),
        (
            "a line break in the name (header or log injection)",
            with(json!({"name": "pi\r\nX-Injected: 1"})),
            "name",
            "letters",
        ),
    ]
}

async fn every_bad_submission_is_a_4xx_naming_its_field(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    let cases = bad_bodies();
    assert!(cases.len() >= 15);
    let mut wrong = Vec::new();
    for (what, body, field, word) in cases {
        let response = app.post_job(&body).await;
        let status = response.status().as_u16();
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap_or_default();
        let ok = status == 400
            && error["error"]["code"] == "invalid_request"
            && error["error"]["field"] == field
            && message.contains(word);
        if !ok {
            wrong.push(format!(
                "{what} (want field {field:?}, {word:?}): {status} {error}"
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong rejections:\n{}", wrong.join("\n"));
    every_mistake_of_one_body_is_listed(&app).await;
    let (_, page) = app.get("/v1/jobs").await;
    assert_eq!(page["jobs"], json!([]), "a rejected job must not be stored");
    assert_eq!(app.get("/healthz").await.0, 200);
}

/// A body with three mistakes gets all three in `errors`, the first also in `field`/`message`.
async fn every_mistake_of_one_body_is_listed(app: &TestApp) {
    let body = with(json!({
        "executer": {"instances": 2},
        "driver": {"memory": "lots"},
        "sparkConf": {"spark.master": "local[*]"},
    }));
    let (status, error) = app.post("/v1/jobs", &body).await;
    assert_eq!(status, 400, "{error}");
    let errors = error["error"]["errors"]
        .as_array()
        .expect("an errors array");
    let fields: Vec<&str> = errors.iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(
        fields,
        ["executer", "sparkConf.spark.master", "driver.memory"],
        "{error}"
    );
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did you mean `executor`?")),
        "{error}"
    );
    assert_eq!(error["error"]["field"], "executer");
}

/// A raw request with its expected status and error field.
struct Raw {
    what: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    header: Option<(&'static str, &'static str)>,
    status: u16,
    field: Option<&'static str>,
}

fn raw_cases() -> Vec<Raw> {
    let raw = |what, content_type, body: &[u8], status, field| Raw {
        what,
        content_type,
        body: body.to_vec(),
        header: None,
        status,
        field,
    };
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    vec![
        raw(
            "malformed JSON",
            "application/json",
            b"{\"team\": ",
            400,
            None,
        ),
        raw(
            "YAML anchor bomb",
            "application/yaml",
            bomb.as_bytes(),
            400,
            None,
        ),
        raw(
            "deeply nested JSON",
            "application/json",
            deep.as_bytes(),
            400,
            None,
        ),
        raw(
            "invalid UTF-8 JSON",
            "application/json",
            b"{\"team\": \"\xff\xfe\"}",
            400,
            None,
        ),
        raw(
            "invalid UTF-8 YAML",
            "application/yaml",
            b"team: \xff\xfe\n",
            400,
            None,
        ),
        raw("unsupported media type", "text/csv", b"team,env", 415, None),
        Raw {
            header: Some(("Idempotency-Key", "has spaces in it")),
            ..raw(
                "bad idempotency key",
                "application/json",
                b"{}",
                400,
                Some("Idempotency-Key"),
            )
        },
    ]
}

async fn bad_queries_and_routes(engine: Engine) {
    let app = TestApp::spawn(Options::new(engine)).await;
    for case in raw_cases() {
        let mut request = app
            .http
            .post(app.url("/v1/jobs"))
            .header("content-type", case.content_type)
            .body(case.body);
        if let Some((name, value)) = case.header {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", case.what));
        let status = response.status().as_u16();
        let error: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, case.status, "{}: {error}", case.what);
        assert!(
            error["error"]["message"].is_string(),
            "{}: {error}",
            case.what
        );
        if let Some(field) = case.field {
            assert_eq!(error["error"]["field"], field, "{}: {error}", case.what);
        }
    }
    for (query, field) in [
        ("state=BOGUS", "state"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("colour=blue", "colour"),
        ("label=novalue", "label"),
        ("page_token=forged", "page_token"),
    ] {
        let (status, error) = app.get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert_eq!(error["error"]["field"], field, "{query}: {error}");
    }
    for (path, status) in [
        ("/v1/jobs/j-nosuchjob", 404),
        ("/v1/jobs/..%2F..%2Fetc%2Fpasswd", 404),
        ("/v1/jobs/j-nosuchjob/events", 404),
        ("/v1/nothing-here", 404),
        // The UI's redirect to its slash is relative: an id no header could carry still gets
        // its 404, not a 500.
        ("/v1/jobs/%C2%BD%0A/ui", 404),
        ("/v1/jobs/j-nosuchjob/ui/jobs/", 404),
        ("/v1/advice?team=&env=dev&name=x", 400),
    ] {
        let (got, error) = app.get(path).await;
        assert_eq!(got, status, "{path}: {error}");
        assert!(error["error"]["message"].is_string(), "{path}: {error}");
    }
    oversized_body_is_refused_before_upload(&app).await;
    let response = app.http.delete(app.url("/v1/jobs")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let (status, _) = app.get("/v1/jobs/j-nosuchjob/logs?follow=maybe").await;
    assert_eq!(status, 400);
    assert_eq!(app.get("/healthz").await.0, 200, "still serving");
}

/// A body declared larger than `http.maxBodyBytes` gets its 413 before a byte of it is sent.
/// (A raw socket, because an HTTP client still uploading when the server answers and closes
/// sees a reset instead of the answer.)
async fn oversized_body_is_refused_before_upload(app: &TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        2 << 20
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let read = socket.read_to_string(&mut answer);
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("maxBodyBytes"), "{answer}");
}
