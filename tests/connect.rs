//! Sessions and the Spark Connect gateway end to end: `sk8 serve` starts real Spark Connect
//! servers (Sail, and Apache Spark's own) for sessions, and the real `pyspark-client` reaches
//! them only through sk8's gateway (`tests/connect/checks.py` runs the workload). On the
//! Kubernetes backend, the fake API server's operator runs a real Sail server for each
//! session's driver, on its own 127.0.0.N "pod IP".

mod common;
#[path = "common/kube.rs"]
mod kube;
#[path = "common/tls.rs"]
mod tls;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Engine, Options, TestApp, grpc};
use kube::Cluster;
use serde_json::{Value, json};
use sk8_fake_kube::{FakeKube, OperatorOptions};

/// How long a session may take to be READY: an Apache Spark server is a JVM, and on a loaded
/// two-core machine (CI runs suites side by side) it has taken more than a minute to listen.
/// sk8 itself gives it `gateway.startTimeoutSeconds` (300).
const READY_WAIT: Duration = Duration::from_secs(240);
/// How long one run of a Python client may take.
const PYTHON_WAIT: Duration = Duration::from_secs(420);
/// The identity the gateway writes into every request (auth off: `gateway.defaultUser`).
const GATEWAY_USER: &str = "gateway-user@sk8";

/// The venv with `sail` and `pyspark-client`: `SK8_TEST_CONNECT_VENV` (scripts/test.sh sets it).
fn connect_venv() -> PathBuf {
    std::env::var_os("SK8_TEST_CONNECT_VENV")
        .map(PathBuf::from)
        .filter(|venv| venv.join("bin/sail").is_file() && venv.join("bin/python").is_file())
        .unwrap_or_else(|| {
            panic!(
                "the Spark Connect tests need Sail and pyspark-client: run scripts/test.sh (it \
                 runs scripts/setup-connect.sh), or set SK8_TEST_CONNECT_VENV to that venv"
            )
        })
}

/// sk8 with sessions served by `server` (`sail` or `spark`).
async fn sk8_with(server: &str) -> TestApp {
    sk8_with_extra(server, json!({})).await
}

/// The same, with `extra` merged into the config.
async fn sk8_with_extra(server: &str, extra: Value) -> TestApp {
    let mut options = Options::new(Engine::Sqlite);
    options.spark = common::Spark::Real;
    options.extra = json!({
        "backend": {"local": {
            "connectServer": server,
            "sail": connect_venv().join("bin/sail"),
        }},
        "gateway": {"defaultUser": GATEWAY_USER, "resumeTimeoutSeconds": 90},
    });
    common::merge(&mut options.extra, &extra);
    TestApp::spawn(options).await
}

async fn create_session(app: &TestApp, team: &str, extra: Value) -> Value {
    let mut body = json!({"team": team, "env": "dev", "name": "notebook"});
    common::merge(&mut body, &extra);
    let (status, created) = app.post("/v1/sessions", &body).await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn session(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/sessions/{id}")).await.1
}

async fn wait_state(app: &TestApp, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + READY_WAIT;
    loop {
        let found = session(app, id).await;
        if found["state"] == state {
            return found;
        }
        // FAILED is final: waiting out the deadline would only hide why.
        assert!(
            found["state"] != "FAILED",
            "session FAILED while waiting for {state}: {found}\n{}",
            app.logs()
        );
        assert!(
            Instant::now() < deadline,
            "session never {state}: {found}\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs checks.py against `url`; returns each check's JSON line by name.
async fn run_checks(url: &str, checks: &[&str]) -> serde_json::Map<String, Value> {
    run_checks_with(url, checks, &[]).await
}

/// The same, with extra environment for the client.
async fn run_checks_with(
    url: &str,
    checks: &[&str],
    env: &[(&str, &std::path::Path)],
) -> serde_json::Map<String, Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/connect/checks.py");
    let mut python = tokio::process::Command::new(connect_venv().join("bin/python"));
    python
        .arg(script)
        .arg(url)
        .args(checks)
        .envs(env.iter().copied())
        .env_remove("SPARK_HOME")
        .stdin(Stdio::null());
    // Generous: a JVM Spark server on a loaded two-core machine (CI runs two suites at once).
    let what = format!("checks.py {checks:?}");
    let output = common::output_within(&mut python, PYTHON_WAIT, &what).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results: serde_json::Map<String, Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|r| Some((r["check"].as_str()?.to_owned(), r)))
        .collect();
    assert_eq!(
        results.len(),
        checks.len(),
        "one line per check; stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    results
}

fn assert_passed(results: &serde_json::Map<String, Value>) {
    for (name, result) in results {
        assert_eq!(result["ok"], true, "{name}: {result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_teams_reach_their_own_sail_servers_through_the_gateway() {
    let app = sk8_with("sail").await;
    let payments = create_session(&app, "payments", json!({})).await;
    let risk = create_session(&app, "risk", json!({})).await;
    let ids = [&payments, &risk].map(|s| s["id"].as_str().unwrap().to_owned());
    let ready = [
        wait_state(&app, &ids[0], "READY").await,
        wait_state(&app, &ids[1], "READY").await,
    ];
    assert_ne!(
        ready[0]["endpoint"], ready[1]["endpoint"],
        "one server each"
    );
    // The client claims to be someone else: the server must see the gateway's identity.
    let url = |s: &Value| {
        format!(
            "{};user_id=mallory",
            s["connectionString"].as_str().unwrap()
        )
    };
    let workload = [
        "range_count",
        "sql",
        "pandas_roundtrip",
        "arrow_1m",
        "pandas_1m",
        "udf",
        "failing_query",
        "whoami",
    ];
    let (url_a, url_b) = (url(&payments), url(&risk));
    let (a, b) = tokio::join!(
        run_checks(&url_a, &workload),
        run_checks(&url_b, &["range_count", "sql", "whoami"]),
    );
    assert_passed(&a);
    assert_passed(&b);
    for results in [&a, &b] {
        assert_eq!(
            results["whoami"]["detail"]["user"], GATEWAY_USER,
            "{results:?}"
        );
    }
    let failing = a["failing_query"]["detail"]["first_line"].as_str().unwrap();
    assert!(
        failing.contains("sk8_no_such_column"),
        "the server's error reaches the client: {failing}"
    );
    let (_, metrics) = app.text("/metrics").await;
    assert!(
        metrics.contains(r#"sk8_gateway_rpcs_total{method="ExecutePlan",code="ok"}"#),
        "{metrics}"
    );
    // The example script works as documented.
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/notebook.py");
    let mut python = tokio::process::Command::new(connect_venv().join("bin/python"));
    python
        .arg(example)
        .arg(payments["connectionString"].as_str().unwrap())
        .env_remove("SPARK_HOME");
    let output = common::output_within(&mut python, PYTHON_WAIT, "examples/notebook.py").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("rows in a generated range: 142858"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // So does the notebook: its code cells, run in order against the session.
    let notebook = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/notebook.ipynb");
    let runner = format!(
        "import json\nnb = json.load(open({notebook:?}))\n\
         for cell in nb['cells']:\n    if cell['cell_type'] == 'code':\n        \
         exec(''.join(cell['source']).replace('sc://127.0.0.1:15002/;x-sk8-session=REPLACE-WITH-YOUR-SESSION-ID', {url:?}), globals())\n\
         print('notebook rows', table.num_rows)\n",
        url = payments["connectionString"].as_str().unwrap(),
    );
    let script = app.dir.path().join("run_notebook.py");
    std::fs::write(&script, runner).unwrap();
    let mut python = tokio::process::Command::new(connect_venv().join("bin/python"));
    python.arg(&script).env_remove("SPARK_HOME");
    let output = common::output_within(&mut python, PYTHON_WAIT, "examples/notebook.ipynb").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("notebook rows 1000000"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_stops_and_the_next_query_resumes_it() {
    let app = sk8_with("sail").await;
    let created = create_session(&app, "payments", json!({"idleTimeoutSeconds": 2})).await;
    let id = created["id"].as_str().unwrap();
    wait_state(&app, id, "READY").await;
    let stopped = wait_state(&app, id, "STOPPED").await;
    assert!(
        stopped["reason"].as_str().unwrap().contains("idle for 2s"),
        "{stopped}"
    );
    let url = created["connectionString"].as_str().unwrap();
    assert_passed(&run_checks(url, &["range_count"]).await);
    // Resumed at least once (a loaded machine may leave the client idle for 2s between two
    // RPCs, and the session then idles out and resumes again, correctly).
    let resumed = session(&app, id).await;
    assert!(resumed["starts"].as_u64().unwrap() >= 2, "{resumed}");
    // The stopped server's connections went with it: one pool left, the new server's.
    let (_, metrics) = app.text("/metrics").await;
    assert!(
        metrics.contains("sk8_gateway_upstream_pools 1\n"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("upstream_pools"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (_, events) = app.get(&format!("/v1/sessions/{id}/events")).await;
    let path: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path[..6],
        [
            "STARTING", "READY", "STOPPING", "STOPPED", "STARTING", "READY"
        ],
        "{events}"
    );
}

/// A fake cluster whose operator runs a real Sail server as each Spark Connect driver, with
/// namespace `sjns-payments-dev`.
async fn cluster_running_sail() -> Cluster {
    let sail = connect_venv().join("bin/sail").display().to_string();
    let command = [&sail, "spark", "server", "--ip", "{ip}", "--port", "{port}"];
    let cluster = Cluster::start_with(OperatorOptions {
        step: Duration::from_millis(100),
        connect_server: Some(command.map(str::to_owned).to_vec()),
        ..Default::default()
    })
    .await;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "sjns-payments-dev"}});
    cluster.create("/api/v1/namespaces", &namespace).await;
    cluster
}

/// The session's server application, as the fake cluster holds it.
fn server_app(kube: &FakeKube, name: &str) -> Option<Value> {
    let namespace = Some("sjns-payments-dev");
    kube.object(
        "spark.apache.org",
        "v1",
        "sparkapplications",
        namespace,
        name,
    )
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + READY_WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_sessions_are_served_from_the_driver_pod_ip_and_resume_on_a_new_driver() {
    let cluster = cluster_running_sail().await;
    let kube = &cluster.kube;
    let kubeconfig = &*cluster.kubeconfig;
    let backend =
        json!({"backend": {"kind": "kubernetes", "kubernetes": {"kubeconfig": kubeconfig}}});
    let app = sk8_with_extra("sail", backend).await;
    let created = create_session(&app, "payments", json!({"idleTimeoutSeconds": 3})).await;
    let id = created["id"].as_str().unwrap();
    let ready = wait_state(&app, id, "READY").await;
    let endpoint = ready["endpoint"].as_str().unwrap().to_owned();
    assert!(
        endpoint.starts_with("127.0.0.") && endpoint.ends_with(":15002"),
        "the driver pod's IP and the Connect port: {ready}"
    );
    // The server is the session's own SparkConnectServer application (its manifest is
    // checked in tests/sparkapplication.rs).
    let first = format!("sk8-s-{id}-1");
    let manifest = server_app(kube, &first).expect("the server's SparkApplication");
    assert_eq!(manifest["metadata"]["labels"]["sk8.dev/session-id"], id);

    let url = created["connectionString"].as_str().unwrap();
    let results = run_checks(url, &["range_count", "sql", "whoami", "token_redacted"]).await;
    assert_passed(&results);
    assert_eq!(
        results["token_redacted"]["detail"]["value"], "*********(redacted by sk8)",
        "the token conf never reaches a client"
    );

    // Idle: the application (and with it the server) is deleted; the next query starts
    // server 2 on a new driver and succeeds.
    wait_state(&app, id, "STOPPED").await;
    wait_until("the first server's application is deleted", || {
        server_app(kube, &first).is_none()
    })
    .await;
    wait_until("the first server stops listening", || {
        std::net::TcpStream::connect(&endpoint).is_err()
    })
    .await;
    assert_passed(&run_checks(url, &["range_count"]).await);
    // (At least) server 2; more when a loaded machine idles the client out between RPCs.
    let resumed = session(&app, id).await;
    let starts = resumed["starts"].as_u64().unwrap();
    assert!(starts >= 2, "{resumed}");
    let current = format!("sk8-s-{id}-{starts}");
    assert!(server_app(kube, &current).is_some(), "{resumed}");

    let (status, deleted) = app.delete(&format!("/v1/sessions/{id}")).await;
    assert!((200..300).contains(&status), "{deleted}");
    wait_until("the deleted session's application is gone", || {
        server_app(kube, &current).is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_kill9_and_resume_after_a_clean_restart() {
    let mut app = sk8_with("sail").await;
    let created = create_session(&app, "payments", json!({})).await;
    let id = created["id"].as_str().unwrap();
    wait_state(&app, id, "READY").await;
    // kill -9: the server outlives sk8, which finds it again and keeps serving it.
    app.kill9();
    app.restart().await;
    let adopted = wait_state(&app, id, "READY").await;
    assert_passed(
        &run_checks(
            adopted["connectionString"].as_str().unwrap(),
            &["range_count"],
        )
        .await,
    );
    assert_eq!(session(&app, id).await["starts"], 1, "the same server");
    // A clean stop takes the (adopted) server along; the session waits STOPPED, resumable.
    app.terminate();
    app.restart().await;
    let stopped = wait_state(&app, id, "STOPPED").await;
    assert!(
        stopped["reason"]
            .as_str()
            .unwrap()
            .contains("sk8 shut down"),
        "{stopped}"
    );
    let url = stopped["connectionString"].as_str().unwrap();
    assert_passed(&run_checks(url, &["range_count"]).await);
    assert_eq!(
        session(&app, id).await["starts"],
        2,
        "resumed on a new server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_spark_sessions_demand_sk8s_token_and_take_artifacts_and_interrupts() {
    let app = sk8_with("spark").await;
    let created = create_session(&app, "payments", json!({})).await;
    let id = created["id"].as_str().unwrap();
    let ready = wait_state(&app, id, "READY").await;
    let url = created["connectionString"].as_str().unwrap();
    // (Apache Spark's current_user() is the server's OS user, not the request's user_id: the
    // Sail test above shows the overwrite.)
    let checks = ["range_count", "udf", "artifact", "interrupt", "token_conf"];
    let ui = spark_ui(&app, id).await;
    let env = [("SK8_CHECKS_SPARK_UI", std::path::Path::new(&ui))];
    let results = run_checks_with(url, &checks, &env).await;
    assert_passed(&results);
    assert_eq!(
        results["token_conf"]["detail"]["value"], "*********(redacted by sk8)",
        "no answer about the token conf reaches a client"
    );
    // The server's Spark UI through sk8, its links under the session's prefix.
    let prefix = format!("/v1/sessions/{id}/ui/");
    let page = app.http.get(app.url(&prefix)).send().await.unwrap();
    assert_eq!(page.status(), 200, "{prefix} through sk8");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("{prefix}jobs")),
        "the UI's links are under {prefix}: {html:.400}"
    );
    // Only sk8 has the server's token: a client going around the gateway is turned away.
    let direct = format!("sc://{}", ready["endpoint"].as_str().unwrap());
    let results = run_checks(&direct, &["range_count"]).await;
    let refused = results["range_count"].to_string();
    assert!(
        results["range_count"]["ok"] == false && refused.to_lowercase().contains("unauthenticated"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_deleted_and_unnamed_sessions_get_clear_grpc_errors() {
    let app = sk8_with("sail").await;
    let unknown = format!("sc://{}/;x-sk8-session=00000000000000000a", app.grpc);
    let results = run_checks(&unknown, &["range_count"]).await;
    let message = results["range_count"].to_string();
    assert!(
        message.contains("not found") && message.contains("sk8 session list"),
        "{message}"
    );
    let unnamed = format!("sc://{}", app.grpc);
    let message = run_checks(&unnamed, &["range_count"]).await["range_count"].to_string();
    assert!(message.contains("x-sk8-session"), "{message}");

    let created = create_session(&app, "payments", json!({})).await;
    let id = created["id"].as_str().unwrap();
    wait_state(&app, id, "READY").await;
    let ui = format!("/v1/sessions/{id}/ui/");
    let (status, error) = app.get(&ui).await;
    assert_eq!(status, 404, "a Sail server has no Spark UI: {error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no Spark UI"),
        "{error}"
    );
    let (status, deleted) = app.delete(&format!("/v1/sessions/{id}")).await;
    assert_eq!(status, 200, "{deleted}");
    let stopped = wait_state(&app, id, "STOPPED").await;
    assert!(stopped["deletedAt"].is_string(), "{stopped}");
    let (status, error) = app.get(&ui).await;
    assert_eq!(status, 409, "no UI once stopped: {error}");
    let url = created["connectionString"].as_str().unwrap();
    let message = run_checks(url, &["range_count"]).await["range_count"].to_string();
    assert!(message.contains("was deleted"), "not resumed: {message}");
    assert_eq!(session(&app, id).await["starts"], 1);
}

/// The Spark UI of session `id`'s Apache Spark server, from the line its log has for it.
async fn spark_ui(app: &TestApp, id: &str) -> String {
    let marker = "Successfully started service 'SparkUI' on port ";
    let starts = app.dir.path().join("sessions").join(id);
    let deadline = Instant::now() + READY_WAIT;
    loop {
        let logs = std::fs::read_dir(&starts).into_iter().flatten().flatten();
        let port = logs
            .filter_map(|start| std::fs::read_to_string(start.path().join("server.log")).ok())
            .find_map(|log| {
                Some(
                    log.split_once(marker)?
                        .1
                        .split('.')
                        .next()?
                        .trim()
                        .to_owned(),
                )
            });
        if let Some(port) = port {
            return format!("http://127.0.0.1:{port}");
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} line in {}/*/server.log within {READY_WAIT:?}",
            starts.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A session created and READY, as the holder of `token`; its id.
async fn ready_session_as(app: &TestApp, token: &str, team: &str) -> String {
    let body = json!({"team": team, "env": "dev", "name": "notebook"});
    let response = app
        .http
        .post(app.url("/v1/sessions"))
        .bearer_auth(token)
        .json(&body);
    let created: Value = response.send().await.unwrap().json().await.unwrap();
    let id = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let deadline = Instant::now() + READY_WAIT;
    loop {
        let request = app
            .http
            .get(app.url(&format!("/v1/sessions/{id}")))
            .bearer_auth(token);
        let found: Value = request.send().await.unwrap().json().await.unwrap();
        if found["state"] == "READY" {
            return id;
        }
        assert!(Instant::now() < deadline, "never READY: {found}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_callers_reach_only_their_teams_sessions_and_run_as_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    common::write_tokens(
        &tokens,
        &[
            ("token-a", "ana@payments", &["payments"], "member"),
            ("token-b", "bo@risk", &["risk"], "member"),
            ("viewer-a", "vi@payments", &["payments"], "viewer"),
        ],
    );
    let auth = json!({"auth": {"mode": "tokens", "tokensFile": tokens}});
    let app = sk8_with_extra("sail", auth).await;
    let (a, b) = tokio::join!(
        ready_session_as(&app, "token-a", "payments"),
        ready_session_as(&app, "token-b", "risk"),
    );
    // pyspark sends `token` as `authorization: Bearer`, over plaintext only to "localhost".
    let port = app.grpc.rsplit(':').next().unwrap();
    let url = |token: &str, session: &str| {
        format!("sc://localhost:{port}/;token={token};x-sk8-session={session};user_id=mallory")
    };
    let own = run_checks(&url("token-a", &a), &["range_count", "whoami"]).await;
    assert_passed(&own);
    assert_eq!(own["whoami"]["detail"]["user"], "ana@payments", "{own:?}");
    let refusals = [
        (url("token-a", &b), "not found"),
        (url("viewer-a", &a), "member role"),
        (url("wrong-token", &a), "unknown or revoked token"),
        (
            format!("sc://localhost:{port}/;x-sk8-session={a}"),
            "authentication required",
        ),
    ];
    for (url, says) in refusals {
        let results = run_checks(&url, &["range_count"]).await;
        let refused = results["range_count"].to_string();
        assert!(
            results["range_count"]["ok"] == false && refused.contains(says),
            "{url}: {refused}"
        );
    }
    // The CLI's notebook snippet takes the token from SK8_TOKEN and never prints it.
    let mut connect = std::process::Command::new(env!("CARGO_BIN_EXE_sk8"));
    connect
        .args(["--server", &app.base, "session", "connect", &a])
        .env("SK8_TOKEN", "token-a");
    let output = common::output_of(connect, Duration::from_secs(60), "sk8 session connect");
    let snippet = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{snippet}");
    assert!(
        snippet.contains(r#";token=" + os.environ["SK8_TOKEN"]"#) && !snippet.contains("token-a"),
        "{snippet}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_grpc_requests_are_refused_cleanly_and_the_gateway_keeps_serving() {
    let limits = json!({"gateway": {"maxRequestMessageBytes": 65536}});
    let app = sk8_with_extra("sail", limits).await;
    let some_session = "00000000000000000a";
    let garbage = b"\x0a\xff\xff\xff\xff\x0f";
    let cases: [(&str, String, Vec<u8>, i32, &str); 5] = [
        (
            "not protobuf",
            some_session.into(),
            grpc::frame(false, 6, garbage),
            3,
            "malformed",
        ),
        (
            "a message over maxRequestMessageBytes",
            some_session.into(),
            grpc::frame(false, 1 << 20, b"\x0a\x01a"),
            3,
            "limit",
        ),
        (
            "a compressed message",
            some_session.into(),
            grpc::frame(true, 3, b"\x0a\x01a"),
            3,
            "compressed",
        ),
        (
            "cut in the middle of a message",
            some_session.into(),
            grpc::frame(false, 100, b"\x0a"),
            3,
            "middle",
        ),
        (
            "a session id of 4 KiB",
            "a".repeat(4096),
            grpc::frame(false, 0, b""),
            5,
            "not found",
        ),
    ];
    for (what, session, body, code, says) in cases {
        let metadata = [("x-sk8-session", session)];
        let answer = grpc::call(&app.grpc, "ExecutePlan", &metadata, body.into()).await;
        assert_eq!(answer.code, code, "{what}: {}", answer.message);
        assert!(answer.message.contains(says), "{what}: {}", answer.message);
    }
    // Still serving, to a real client.
    let created = create_session(&app, "payments", json!({})).await;
    wait_state(&app, created["id"].as_str().unwrap(), "READY").await;
    let url = created["connectionString"].as_str().unwrap();
    assert_passed(&run_checks(url, &["range_count"]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_requests_are_validated_field_by_field() {
    let app = sk8_with("sail").await;
    let cases = [
        (
            json!({"team": "payments", "env": "dev", "name": "Not_A_Label"}),
            "name",
        ),
        (
            json!({"team": "payments", "env": "dev", "name": "x", "idleTimeoutSeconds": 0}),
            "idleTimeoutSeconds",
        ),
        (
            json!({"team": "payments", "env": "dev", "name": "x", "executor": {"memory": "1 TB"}}),
            "executor.memory",
        ),
        (
            json!({"team": "payments", "env": "dev", "name": "x", "autoResume": "yes"}),
            "autoResume",
        ),
        (json!({"team": "payments", "env": "dev"}), "name"),
    ];
    for (body, field) in cases {
        let response = app
            .http
            .post(app.url("/v1/sessions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let (status, _) = app.get("/v1/sessions/nope").await;
    assert_eq!(status, 404);
    let (status, error) = app.get("/v1/sessions?state=SLEEPING").await;
    assert_eq!(status, 400, "{error}");
    // The same team, env and name twice: one session.
    let first = create_session(&app, "growth", json!({})).await;
    let again = app
        .http
        .post(app.url("/v1/sessions"))
        .json(&json!({"team": "growth", "env": "dev", "name": "notebook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let (_, listed) = app.get("/v1/sessions?team=growth").await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "{listed}");
}

/// Runs the `sk8` CLI against the daemon; returns (success, stdout, stderr).
fn sk8_cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let output = app.cli(args);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cli_creates_waits_connects_lists_and_deletes() {
    let app = sk8_with("sail").await;
    let spec = app.dir.path().join("session.yaml");
    std::fs::write(&spec, "team: payments\nenv: dev\nname: cli-notebook\n").unwrap();
    let (ok, stdout, stderr) = sk8_cli(
        &app,
        &["session", "create", spec.to_str().unwrap(), "--wait"],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("is STARTING") && stderr.contains("is READY"),
        "progress: {stderr}"
    );
    assert!(
        stdout.contains("is READY") && stdout.contains("sc://"),
        "{stdout}"
    );
    let id = stdout.split_whitespace().nth(1).unwrap().to_owned();

    let (ok, stdout, _) = sk8_cli(&app, &["session", "connect", &id]);
    assert!(ok);
    let url = stdout.lines().next().unwrap().to_owned();
    assert_eq!(url, format!("sc://{}/;x-sk8-session={id}", app.grpc));
    assert!(
        stdout.contains(&format!("SparkSession.builder.remote(\"{url}\")")),
        "{stdout}"
    );
    assert_passed(&run_checks(&url, &["range_count"]).await);

    let (ok, stdout, _) = sk8_cli(&app, &["session", "list", "--team", "payments"]);
    assert!(
        ok && stdout.contains(&id) && stdout.contains("READY"),
        "{stdout}"
    );
    let (ok, stdout, _) = sk8_cli(&app, &["-o", "json", "session", "get", &id]);
    assert!(ok);
    let got: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(got["state"], "READY");
    let (ok, stdout, _) = sk8_cli(&app, &["session", "delete", &id]);
    assert!(ok && stdout.contains("STOPPING"), "{stdout}");
    wait_state(&app, &id, "STOPPED").await;
    let (ok, _, stderr) = sk8_cli(&app, &["session", "get", "nope"]);
    assert!(!ok && stderr.contains("sk8 session list"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyspark_with_a_token_reaches_the_gateway_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls::test_certificates(certs.path());
    let app = sk8_with_extra(
        "sail",
        json!({"gateway": {"tls": {"certFile": cert, "keyFile": key}}}),
    )
    .await;
    let created = create_session(&app, "payments", json!({})).await;
    let id = created["id"].as_str().unwrap();
    wait_state(&app, id, "READY").await;
    // A token makes pyspark use TLS (the host is not `localhost`); it trusts the test CA.
    let url = format!("sc://{}/;token=not-forwarded;x-sk8-session={id}", app.grpc);
    let roots = [("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca.as_path())];
    let results = run_checks_with(&url, &["range_count", "whoami"], &roots).await;
    assert_passed(&results);
    assert_eq!(results["whoami"]["detail"]["user"], GATEWAY_USER);
    // The port speaks TLS with the configured certificate (and pyspark above could only get
    // through it over TLS: a token forces TLS for this host).
    let handshake = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &app.grpc, "-CAfile"])
        .arg(&ca)
        .arg("-brief")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&handshake.stderr);
    assert!(
        report.contains("Verification: OK") && report.contains("Peer certificate: CN = 127.0.0.1"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_hop_is_gzipped_only_when_configured_and_the_token_stays_redacted() {
    for to_client in ["off", "gzip"] {
        let compression = json!({"gateway": {"compression": {"toClient": to_client}}});
        let app = sk8_with_extra("sail", compression).await;
        let created = create_session(&app, "payments", json!({})).await;
        let id = created["id"].as_str().unwrap();
        wait_state(&app, id, "READY").await;
        let url = created["connectionString"].as_str().unwrap();
        let results = run_checks(url, &["range_count", "arrow_1m", "token_redacted"]).await;
        assert_passed(&results);
        assert_eq!(
            results["token_redacted"]["detail"]["value"], "*********(redacted by sk8)",
            "{to_client}: the token conf never reaches a client"
        );
        // What the client hop is told: the gateway's encodings, never the server's.
        let offer = [
            ("x-sk8-session", id.to_owned()),
            ("grpc-accept-encoding", "identity, deflate, gzip".to_owned()),
        ];
        let answer = grpc::call(&app.grpc, "Config", &offer, grpc::spark_request(id)).await;
        let header = |name: &str| answer.metadata.get(name).map(|v| v.to_str().unwrap());
        let expected = (to_client == "gzip").then_some("gzip");
        assert_eq!(header("grpc-encoding"), expected, "{to_client}: {answer:?}");
        assert_eq!(header("grpc-accept-encoding"), expected, "{to_client}");
    }
}
