//! The client side of sk8 against the real daemon: the `sk8` Python package's own tests
//! (`clients/python/tests`, pytest) with the client configured by environment alone, as in a
//! notebook. Sessions are served by Sail; jobs run on the fake spark-submit. The venv (pytest,
//! the package, Sail, pyspark-client) comes from `scripts/setup-clients.sh`
//! (`SK8_TEST_CLIENTS_VENV`). schemathesis checks the live `/openapi.json` against the daemon
//! (`tests/clients/schemathesis.toml`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Engine, Options, TestApp};
use serde_json::json;

/// How long the package's whole pytest run may take (sessions start Sail servers; on a loaded
/// two-core machine each takes seconds).
const PYTEST_WAIT: Duration = Duration::from_secs(480);
/// The caller the package's tests are, and one of another team.
const TOKEN: &str = "clients-payments-token";
const OTHER_TOKEN: &str = "clients-risk-token";

/// The venv of scripts/setup-clients.sh: `SK8_TEST_CLIENTS_VENV`.
fn clients_venv() -> PathBuf {
    std::env::var_os("SK8_TEST_CLIENTS_VENV")
        .map(PathBuf::from)
        .filter(|venv| venv.join("bin/pytest").is_file() && venv.join("bin/sail").is_file())
        .unwrap_or_else(|| {
            panic!(
                "the client tests need the sk8 package's venv: run scripts/test.sh (it runs \
                 scripts/setup-clients.sh), or set SK8_TEST_CLIENTS_VENV to that venv"
            )
        })
}

/// sk8 with Sail sessions, fake jobs and token authentication (`payments` and `risk` members).
async fn sk8_for_clients(dir: &Path) -> TestApp {
    let tokens = dir.join("tokens.yaml");
    common::write_tokens(
        &tokens,
        &[
            (TOKEN, "ana@payments", &["payments"], "member"),
            (OTHER_TOKEN, "bo@risk", &["risk"], "member"),
        ],
    );
    let mut options = Options::new(Engine::Sqlite);
    options.extra = json!({
        "backend": {"local": {"connectServer": "sail", "sail": clients_venv().join("bin/sail")}},
        "gateway": {"resumeTimeoutSeconds": 90},
        "auth": {"mode": "tokens", "tokensFile": tokens},
    });
    TestApp::spawn(options).await
}

/// Runs pytest on `tests` (relative to the repository) with `env`, within the deadline, and
/// fails with its output unless every test passed.
async fn pytest(tests: &str, env: &[(&str, &str)], wait: Duration) {
    let venv = clients_venv();
    let mut command = tokio::process::Command::new(venv.join("bin/pytest"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-q", "-p", "no:cacheprovider", "--tb=short", tests])
        // Only what the test gives: no settings from the machine's environment or home.
        .env_remove("SPARK_HOME")
        .env("SK8_CONFIG", "/nonexistent/sk8-config.yaml")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let output = common::output_within(&mut command, wait, &format!("pytest {tests}")).await;
    assert!(
        output.status.success(),
        "pytest {tests} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_package_works_against_the_daemon_from_environment_alone() {
    let dir = tempfile::tempdir().unwrap();
    let app = sk8_for_clients(dir.path()).await;
    pytest(
        "clients/python/tests",
        &[
            ("SK8_SERVER", &app.base),
            ("SK8_TOKEN", TOKEN),
            ("SK8_TEAM", "payments"),
            ("SK8_ENV", "dev"),
            ("SK8_TEST_OTHER_TOKEN", OTHER_TOKEN),
        ],
        PYTEST_WAIT,
    )
    .await;
}

/// How long the schemathesis run may take: its own budget (`--max-time`) plus start-up.
const SCHEMATHESIS_BUDGET_SECONDS: u64 = 60;
const SCHEMATHESIS_WAIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_rejected_valid_request_and_no_undocumented_status() {
    let mut options = Options::new(Engine::Sqlite);
    // Sessions it creates fail to start at once (no Sail here): the API is what is tested.
    options.extra = json!({"backend": {"local": {"connectServer": "sail", "sail": "/bin/false"}}});
    let app = TestApp::spawn(options).await;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut command = tokio::process::Command::new(clients_venv().join("bin/schemathesis"));
    command
        .current_dir(repo.join("tests/clients"))
        .arg("--config-file")
        .arg(repo.join("tests/clients/schemathesis.toml"))
        .args([
            "run",
            &app.url("/openapi.json"),
            "--no-color",
            "--workers",
            "2",
        ])
        .args(["--seed", "1", "--max-time"])
        .arg(SCHEMATHESIS_BUDGET_SECONDS.to_string())
        .stdin(Stdio::null());
    let output = common::output_within(&mut command, SCHEMATHESIS_WAIT, "schemathesis").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Stateful"),
        "the stateful phase ran: {stdout}"
    );
}

/// How long the examples may take together: two real Spark jobs (JVMs), Sail sessions, a
/// Jupyter kernel, a Metaflow run and a throwaway sk8 of the CI example.
const EXAMPLES_WAIT: Duration = Duration::from_secs(900);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run_to_completion_against_real_spark() {
    let mut options = Options::new(Engine::Sqlite);
    options.spark = common::Spark::Real;
    options.extra = json!({
        "backend": {"local": {"connectServer": "sail", "sail": clients_venv().join("bin/sail")}},
        "gateway": {"resumeTimeoutSeconds": 90},
    });
    let app = TestApp::spawn(options).await;
    pytest(
        "tests/clients/test_examples.py",
        &[
            ("SK8_SERVER", &app.base),
            ("SK8_TEAM", "feature-eng"),
            ("SK8_ENV", "dev"),
            ("SK8_BIN", env!("CARGO_BIN_EXE_sk8")),
        ],
        EXAMPLES_WAIT,
    )
    .await;
}
