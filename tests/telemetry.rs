//! OpenTelemetry end to end, against a real OTLP receiver (tests/common/otlp.rs) and the real
//! `sk8` binary: a run's trace under the submitter's `traceparent` (attempt spans in order, the
//! failure class on the failed one, the backend's submit and the run record's steps under each
//! attempt, the context in the driver's environment), RPC spans of the gateway and of sk8's
//! own gRPC API under the caller's `traceparent`, the metrics that arrive (the workload's,
//! sessions', the store-read gauges, resources from run summaries, the reconciler's lag), and
//! export that fails without the API noticing.

mod common;

use std::time::Duration;

use common::otlp::{self, Receiver, attribute, hex};
use common::{Engine, Options, TestApp, fake_job};
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use serde_json::{Value, json};

const FINISH: Duration = Duration::from_secs(30);
const ARRIVE: Duration = Duration::from_secs(20);

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// A daemon exporting to `endpoint`, with batches and metric exports a few times a second.
async fn exporting_to(endpoint: &str, extra: Value) -> TestApp {
    let mut options = Options::new(Engine::Sqlite);
    options.extra = json!({
        "otlp": {
            "endpoint": endpoint,
            "scheduleDelayMillis": 100,
            "metricIntervalMillis": 300,
            "timeoutMillis": 1000,
        }
    });
    common::merge(&mut options.extra, &extra);
    TestApp::spawn(options).await
}

async fn submit_with_traceparent(app: &TestApp, body: &Value) -> Value {
    let response = app
        .http
        .post(app.url("/v1/jobs"))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .json(body)
        .send()
        .await
        .expect("POST /v1/jobs");
    assert_eq!(response.status(), 201);
    response.json().await.expect("the job")
}

/// The spans named `name` directly under `parent`.
fn children<'a>(spans: &'a [Span], parent: &Span, name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.name == name)
        .collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.name == name && hex(&s.trace_id) == TRACE)
        .collect()
}

#[tokio::test]
async fn a_run_is_traced_under_the_submitters_traceparent() {
    let receiver = Receiver::start().await;
    let app = exporting_to(&receiver.endpoint(), json!({})).await;
    // A crashed driver is retried (a Python exception, a user error, would not be).
    let mut body = fake_job("team-a", "traced", "crash");
    body["retry"] = json!({ "maxAttempts": 2, "backoffSeconds": 0 });
    body["envVars"]["FAKE_SPARK_SHOW_TRACEPARENT"] = json!("1");
    let job = submit_with_traceparent(&app, &body).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(
        job["traceId"], TRACE,
        "the run is in the submitter's trace: {job}"
    );
    let done = app.wait_finished(id, FINISH).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    assert_eq!(done["traceId"], TRACE, "GET shows the run's trace: {done}");

    let spans = receiver
        .wait_spans("run span of the failed job", ARRIVE, |s| {
            !named(s, "run").is_empty()
        })
        .await;
    // The request's span hangs under the caller's, the run under the request's.
    let request = named(&spans, "POST /v1/jobs");
    assert_eq!(request.len(), 1, "one span for the submit request");
    assert_eq!(hex(&request[0].parent_span_id), PARENT);
    let run = named(&spans, "run")[0];
    assert_eq!(run.parent_span_id, request[0].span_id);
    assert_eq!(
        attribute(&run.attributes, "sk8.state").as_deref(),
        Some("FAILED")
    );
    assert_eq!(run.status.as_ref().unwrap().code, StatusCode::Error as i32);
    let queued = named(&spans, "queued");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].parent_span_id, run.span_id);

    // Both attempts under the run, in order, each failed with its class.
    let mut attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("attempt ") && hex(&s.trace_id) == TRACE)
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    let names: Vec<&str> = attempts.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["attempt 1", "attempt 2"]);
    assert!(attempts[0].end_time_unix_nano <= attempts[1].start_time_unix_nano);
    for (attempt, ended) in attempts.iter().zip(["RETRYING", "FAILED"]) {
        assert_eq!(attempt.parent_span_id, run.span_id);
        assert_eq!(
            attribute(&attempt.attributes, "sk8.failure_class").as_deref(),
            Some("application"),
            "{attempt:?}"
        );
        assert_eq!(
            attempt.status.as_ref().unwrap().code,
            StatusCode::Error as i32
        );
        let events: Vec<&str> = attempt.events.iter().map(|e| e.name.as_str()).collect();
        // RUNNING only when a turn saw the driver before it failed (timing).
        let ran = events.contains(&"RUNNING");
        // A failed attempt waits RETRYING for remediation's decision, which is a transition
        // of its own (to RETRYING again, or FAILED).
        let expected: &[&str] = if ran {
            &["SUBMITTED", "RUNNING", "RETRYING", ended]
        } else {
            &["SUBMITTED", "RETRYING", ended]
        };
        assert_eq!(events, expected, "the attempt's transitions");
        let mut phases: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id == attempt.span_id)
            .filter(|s| s.name == "submitted" || s.name == "running")
            .collect();
        phases.sort_by_key(|s| s.start_time_unix_nano);
        let phases: Vec<&str> = phases.iter().map(|s| s.name.as_str()).collect();
        let expected: &[&str] = if ran {
            &["submitted", "running"]
        } else {
            &["submitted"]
        };
        assert_eq!(phases, expected, "the attempt's phases");
        let submit = children(&spans, attempt, "backend.submit");
        assert_eq!(
            submit.len(),
            1,
            "the backend's submit under {}",
            attempt.name
        );
    }

    // Once each attempt's record is gathered, its steps hang under a `record` span.
    let spans = receiver
        .wait_spans("both attempts' record spans", ARRIVE, |s| {
            named(s, "record").len() >= 2 && !named(s, "summarize event log").is_empty()
        })
        .await;
    for attempt in &attempts {
        let records = children(&spans, attempt, "record");
        assert_eq!(records.len(), 1, "one record span under {}", attempt.name);
        let mut steps: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id == records[0].span_id)
            .collect();
        steps.sort_by_key(|s| s.start_time_unix_nano);
        let steps: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            steps,
            [
                "backend.ended",
                "archive logs",
                "backend.release",
                "summarize event log"
            ]
        );
    }

    // The driver ran in its attempt's context.
    let (status, log) = app.text(&format!("/v1/jobs/{id}/logs")).await;
    assert_eq!(status, 200);
    let expected = format!("TRACEPARENT=00-{TRACE}-{}-01", hex(&attempts[1].span_id));
    assert!(
        log.contains(&expected),
        "want {expected} in the driver log:\n{log}"
    );
}

#[tokio::test]
async fn log_lines_inside_a_span_carry_its_trace() {
    let receiver = Receiver::start().await;
    let app = exporting_to(&receiver.endpoint(), json!({})).await;
    // The job's turns are logged inside the reconciler's spans: those lines name their span.
    let job = submit_with_traceparent(&app, &fake_job("team-a", "logged", "ok")).await;
    app.wait_finished(job["id"].as_str().unwrap(), FINISH).await;
    let logs = app.logs();
    let traced: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.get("trace_id").is_some())
        .collect();
    assert!(
        !traced.is_empty(),
        "some line inside a span has its ids:\n{logs}"
    );
    for line in &traced {
        let span_id = line["span_id"].as_str().unwrap_or_default();
        assert_eq!(span_id.len(), 16, "{line}");
        assert!(
            line.get("span").is_some(),
            "a traced line is inside a span: {line}"
        );
    }
}

#[tokio::test]
async fn metrics_arrive_with_names_units_and_attributes() {
    let receiver = Receiver::start().await;
    let app = exporting_to(&receiver.endpoint(), json!({})).await;
    let job = app.submit(&fake_job("team-a", "counted", "ok")).await;
    app.wait_finished(job["id"].as_str().unwrap(), FINISH).await;
    let submits = receiver.wait_metric("sk8_job_submits_total", ARRIVE).await;
    assert_eq!(submits.unit, "1");
    let latency = receiver
        .wait_metric("sk8_http_request_duration_seconds", ARRIVE)
        .await;
    assert_eq!(latency.unit, "s");
    let services: Vec<String> = receiver.metrics().into_iter().map(|(s, _)| s).collect();
    assert!(
        services.iter().all(|s| s == "sk8"),
        "service.name: {services:?}"
    );
    let (status, text) = app.text("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("sk8_job_submits_total"),
        "Prometheus stays:\n{text}"
    );
}

/// `otlp.protocol: http/protobuf` exports the same spans and metrics to a collector's HTTP
/// receiver (`/v1/traces`, `/v1/metrics` under the endpoint).
#[tokio::test]
async fn http_protobuf_export_reaches_an_http_receiver() {
    let receiver = Receiver::start_http().await;
    let app = exporting_to(
        &receiver.endpoint(),
        json!({"otlp": {"protocol": "http/protobuf"}}),
    )
    .await;
    let job = submit_with_traceparent(&app, &fake_job("team-a", "over-http", "ok")).await;
    app.wait_finished(job["id"].as_str().unwrap(), FINISH).await;
    let spans = receiver
        .wait_spans("the run's span over HTTP", ARRIVE, |s| {
            !named(s, "run").is_empty()
        })
        .await;
    assert_eq!(named(&spans, "POST /v1/jobs").len(), 1);
    let submits = receiver.wait_metric("sk8_job_submits_total", ARRIVE).await;
    assert_eq!(submits.unit, "1");
}

/// Submits `n` jobs; every one must be accepted.
async fn submit_many(app: &TestApp, n: usize) {
    for i in 0..n {
        let (status, body) = app
            .post("/v1/jobs", &fake_job("team-a", &format!("j{i}"), "ok"))
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

/// `sk8_otel_spans_dropped_total`, summed over its reasons, from `/metrics`.
async fn spans_dropped(app: &TestApp) -> f64 {
    let (_, text) = app.text("/metrics").await;
    text.lines()
        .filter(|l| l.starts_with("sk8_otel_spans_dropped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_dropped(app: &TestApp) -> f64 {
    let deadline = std::time::Instant::now() + ARRIVE;
    loop {
        let dropped = spans_dropped(app).await;
        if dropped > 0.0 {
            return dropped;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no span counted as dropped within {ARRIVE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_black_holed_receiver_costs_spans_not_requests() {
    let (addr, _hole) = otlp::black_hole().await;
    let app = exporting_to(
        &format!("http://{addr}"),
        json!({ "otlp": { "maxQueueSize": 8, "timeoutMillis": 300 } }),
    )
    .await;
    submit_many(&app, 40).await;
    let (status, _) = app.get("/v1/jobs?limit=5").await;
    assert_eq!(status, 200);
    assert!(wait_dropped(&app).await > 0.0);
}

#[tokio::test]
async fn a_receiver_that_is_down_costs_spans_not_requests() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = exporting_to(&format!("http://127.0.0.1:{port}"), json!({})).await;
    submit_many(&app, 20).await;
    assert!(wait_dropped(&app).await > 0.0);
    let (_, text) = app.text("/metrics").await;
    assert!(text.contains("reason=\"export_failed\""), "{text}");
}

const NOTEBOOK_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const NOTEBOOK_SPAN: &str = "b7ad6b7169203331";

/// The venv with `sail` and `pyspark-client` (scripts/setup-connect.sh; scripts/test.sh sets it).
fn connect_venv() -> std::path::PathBuf {
    std::env::var_os("SK8_TEST_CONNECT_VENV")
        .map(std::path::PathBuf::from)
        .filter(|venv| venv.join("bin/sail").is_file())
        .expect(
            "SK8_TEST_CONNECT_VENV: the venv of scripts/setup-connect.sh (Sail, pyspark-client)",
        )
}

async fn ready_session(app: &TestApp) -> Value {
    let body = json!({"team": "payments", "env": "dev", "name": "notebook"});
    let (status, created) = app.post("/v1/sessions", &body).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/v1/sessions/{}", created["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        let (_, found) = app.get(&path).await;
        if found["state"] == "READY" {
            return found;
        }
        assert!(found["state"] != "FAILED", "the session failed: {found}");
        assert!(
            std::time::Instant::now() < deadline,
            "session never READY: {found}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A notebook query through the gateway: the RPC's span hangs under the notebook's own
/// `traceparent` (pyspark sends connection-string parameters as metadata) and says who, where,
/// how much and how it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notebook_query_is_traced_under_the_clients_traceparent() {
    let receiver = Receiver::start().await;
    let venv = connect_venv();
    let app = exporting_to(
        &receiver.endpoint(),
        json!({
            "backend": {"local": {"connectServer": "sail", "sail": venv.join("bin/sail")}},
            "gateway": {"defaultUser": "notebook-user@sk8"},
        }),
    )
    .await;
    let session = ready_session(&app).await;
    let url = format!(
        "{};traceparent=00-{NOTEBOOK_TRACE}-{NOTEBOOK_SPAN}-01",
        session["connectionString"].as_str().unwrap()
    );
    let script = common::repo_file("tests/connect/checks.py");
    let mut python = tokio::process::Command::new(venv.join("bin/python"));
    python
        .arg(script)
        .arg(&url)
        .arg("range_count")
        .env_remove("SPARK_HOME")
        .stdin(std::process::Stdio::null());
    let output = common::output_within(&mut python, Duration::from_secs(300), "checks.py").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let execute = "spark.connect.SparkConnectService/ExecutePlan";
    let spans = receiver
        .wait_spans("the ExecutePlan RPC's span", ARRIVE, |spans| {
            spans
                .iter()
                .any(|s| s.name == execute && hex(&s.trace_id) == NOTEBOOK_TRACE)
        })
        .await;
    let rpc = spans
        .iter()
        .find(|s| s.name == execute && hex(&s.trace_id) == NOTEBOOK_TRACE)
        .unwrap();
    assert_eq!(
        hex(&rpc.parent_span_id),
        NOTEBOOK_SPAN,
        "the notebook's span is the parent"
    );
    let attr = |key: &str| attribute(&rpc.attributes, key);
    assert_eq!(attr("sk8.session").as_deref(), session["id"].as_str());
    assert_eq!(attr("sk8.team").as_deref(), Some("payments"));
    assert_eq!(attr("sk8.user").as_deref(), Some("notebook-user@sk8"));
    assert_eq!(attr("rpc.method").as_deref(), Some("ExecutePlan"));
    assert_eq!(attr("sk8.outcome").as_deref(), Some("ok"));
    let bytes_out: u64 = attr("sk8.bytes_out").unwrap().parse().unwrap();
    let bytes_in: u64 = attr("sk8.bytes_in").unwrap().parse().unwrap();
    assert!(
        bytes_in > 0 && bytes_out > 0,
        "{bytes_in} in, {bytes_out} out"
    );

    // The session's start was timed, and that reaches the collector and /metrics alike.
    let started = receiver
        .wait_metric("sk8_session_start_seconds", ARRIVE)
        .await;
    assert_eq!(started.unit, "s");
    let (_, text) = app.text("/metrics").await;
    let count = sample(
        &text,
        "sk8_session_start_seconds_count",
        &["kind=\"start\"", "team=\"payments\""],
    );
    assert_eq!(count, Some(1.0), "one timed start:\n{text}");
    let ready = sample(
        &text,
        "sk8_team_sessions",
        &["state=\"ready\"", "team=\"payments\""],
    );
    assert_eq!(ready, Some(1.0), "one READY session:\n{text}");
}

/// The value of the first `/metrics` sample of `name` whose labels include every one of
/// `labels` (`key="value"`).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The workload's gauges come from the store (each team's live jobs, the recorder's backlog),
/// the resources of a recorded attempt from its run summary, and the reconciler's lag from its
/// announcements; each reaches `/metrics` and the collector.
#[tokio::test]
async fn the_workloads_gauges_resources_and_lag_arrive() {
    let receiver = Receiver::start().await;
    let app = exporting_to(&receiver.endpoint(), json!({})).await;
    let lasting = app.submit(&fake_job("team-a", "lasting", "sleep")).await;
    let lasting = lasting["id"].as_str().unwrap().to_owned();
    let recorded = app
        .submit(&fake_job("team-a", "recorded", "eventlog"))
        .await;
    let recorded = recorded["id"].as_str().unwrap().to_owned();
    app.wait_for(&lasting, &["RUNNING"], FINISH).await;
    app.wait_finished(&recorded, FINISH).await;
    app.wait_recorded(&recorded, FINISH).await;

    let (_, text) = app.text("/metrics").await;
    let running = sample(
        &text,
        "sk8_team_jobs",
        &["state=\"running\"", "team=\"team-a\""],
    );
    assert_eq!(running, Some(1.0), "one running job of team-a:\n{text}");
    assert_eq!(
        sample(&text, "sk8_record_backlog", &[]),
        Some(0.0),
        "{text}"
    );
    let allocated = sample(
        &text,
        "sk8_resource_core_seconds_total",
        &["kind=\"allocated\""],
    );
    assert!(
        allocated.is_some_and(|v| v >= 1.0),
        "core-seconds allocated:\n{text}"
    );
    let lag = sample(&text, "sk8_reconcile_lag_seconds_count", &[]);
    assert!(
        lag.is_some_and(|n| n >= 1.0),
        "the reconciler's lag:\n{text}"
    );

    for name in [
        "sk8_team_jobs",
        "sk8_record_backlog",
        "sk8_reconcile_lag_seconds",
    ] {
        receiver.wait_metric(name, ARRIVE).await;
    }
    let cores = receiver
        .wait_metric("sk8_resource_core_seconds_total", ARRIVE)
        .await;
    assert_eq!(cores.unit, "{core}.s");
    app.post(&format!("/v1/jobs/{lasting}/cancel"), &json!({}))
        .await;
}

/// sk8's own gRPC API continues the caller's trace too: a NamespaceProvisioning RPC is a span
/// under the `traceparent` metadata, with its method, caller and gRPC status.
#[tokio::test]
async fn a_namespace_rpc_is_traced_under_the_callers_traceparent() {
    use sk8::grpc::proto::NamespaceRef;
    use sk8::grpc::proto::namespace_provisioning_client::NamespaceProvisioningClient;
    let receiver = Receiver::start().await;
    let app = exporting_to(&receiver.endpoint(), json!({})).await;
    let mut grpc = NamespaceProvisioningClient::new(app.grpc_channel().await);
    let mut request = tonic::Request::new(NamespaceRef {
        team: "payments".into(),
        env: "dev".into(),
    });
    let traceparent = format!("00-{NOTEBOOK_TRACE}-{NOTEBOOK_SPAN}-01");
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let status = grpc
        .get_namespace(request)
        .await
        .expect_err("never applied");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    let name = "sk8.v1.NamespaceProvisioning/GetNamespace";
    let spans = receiver
        .wait_spans("the GetNamespace RPC's span", ARRIVE, |spans| {
            spans.iter().any(|s| s.name == name)
        })
        .await;
    let rpc = spans.iter().find(|s| s.name == name).unwrap();
    assert_eq!(hex(&rpc.trace_id), NOTEBOOK_TRACE);
    assert_eq!(hex(&rpc.parent_span_id), NOTEBOOK_SPAN);
    let attr = |key: &str| attribute(&rpc.attributes, key);
    assert_eq!(attr("rpc.method").as_deref(), Some("GetNamespace"));
    assert_eq!(attr("sk8.user").as_deref(), Some("sk8-dev"));
    assert_eq!(attr("rpc.grpc.status_code").as_deref(), Some("5"));
    assert_eq!(attr("sk8.outcome").as_deref(), Some("not_found"));
    assert_eq!(rpc.status.as_ref().unwrap().code, StatusCode::Error as i32);
}

/// 1,000 jobs of distinct names leave the workload's series as few as their team/env/state
/// labels: names and ids are never labels, in `/metrics` or in what reaches the collector.
#[tokio::test]
async fn a_thousand_job_names_keep_the_label_sets_bounded() {
    let receiver = Receiver::start().await;
    let app = exporting_to(
        &receiver.endpoint(),
        json!({"backend": {"kind": "noop"}, "limits": {"submits": {"perSecond": 100000.0}}}),
    )
    .await;
    const JOBS: usize = 1000;
    for i in 0..JOBS {
        let team = ["team-a", "team-b"][i % 2];
        let body = fake_job(team, &format!("job-name-{i}"), "ok");
        let (status, answer) = app.post("/v1/jobs", &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let text = loop {
        let (_, text) = app.text("/metrics").await;
        let ended: f64 = text
            .lines()
            .filter(|l| l.starts_with("sk8_runs_ended_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if ended >= JOBS as f64 {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ended} of {JOBS} runs counted as ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("sk8_run"))
        .filter(|l| !l.contains("_bucket{"))
        .collect();
    assert!(
        series.iter().all(|l| !l.contains("job-name-")),
        "a job name became a label"
    );
    // started + ended + duration (sum, count) + submit-to-running (sum, count) per team/env.
    assert!(
        series.len() <= 2 * 6,
        "{} series:\n{}",
        series.len(),
        series.join("\n")
    );
    let ended = receiver.wait_metric("sk8_runs_ended_total", ARRIVE).await;
    assert!(!format!("{ended:?}").contains("job-name-"));
    assert_eq!(ended.unit, "1");
}

/// The Grafana dashboard in deploy/ is valid JSON and reads only metrics docs/operating.md
/// documents (a renamed metric would leave a panel empty).
#[test]
fn the_dashboard_reads_documented_metrics() {
    let text = std::fs::read_to_string(common::repo_file("deploy/grafana/sk8.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let docs = std::fs::read_to_string(common::repo_file("docs/operating.md")).unwrap();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for target in panels.iter().flat_map(|p| p["targets"].as_array().unwrap()) {
        let expr = target["expr"].as_str().unwrap();
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(name) = word.strip_prefix("sk8_") {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name);
                assert!(
                    docs.contains(&format!("sk8_{base}")),
                    "sk8_{base} in {expr}"
                );
            }
        }
    }
}
