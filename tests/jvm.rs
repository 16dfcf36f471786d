//! The JVM side (issue 18): `clients/java` (the `Sk8` helper, compiled with `javac` against the
//! Spark Connect client jars in the pyspark package) creates a session through sk8's REST API,
//! waits for READY and reaches it through the gateway with the Spark Connect JVM client and
//! with the Spark Connect JDBC driver (`jdbc:sc://…`), with a token (as `authorization` and as
//! the older `authentication` metadata), in plaintext and over TLS. Sessions are served by Sail.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Engine, Options, TestApp};
use serde_json::{Value, json};

/// How long the Java helper's checks may take (a JVM on a loaded two-core machine).
const JAVA_WAIT: Duration = Duration::from_secs(240);
/// How long compiling the helper may take.
const JAVAC_WAIT: Duration = Duration::from_secs(300);
const TOKEN: &str = "token-jvm";
const TRUSTSTORE_PASSWORD: &str = "changeit";

/// The venv with `sail`: `SK8_TEST_CONNECT_VENV` (scripts/test.sh sets it).
fn connect_venv() -> PathBuf {
    std::env::var_os("SK8_TEST_CONNECT_VENV")
        .map(PathBuf::from)
        .filter(|venv| venv.join("bin/sail").is_file())
        .expect("SK8_TEST_CONNECT_VENV: the venv with sail (scripts/test.sh)")
}

/// The Spark Connect client jars of the pyspark package (`SK8_TEST_SPARK_HOME`), then the rest
/// of its jars (Spark's SQL API, Arrow, Scala, Jackson).
fn classpath() -> String {
    let jars = common::spark_home().join("jars");
    let repl = jars.join("connect-repl");
    let client = |prefix: &str| {
        std::fs::read_dir(&repl)
            .unwrap_or_else(|e| panic!("{}: {e}", repl.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| {
                let name = path.file_name().unwrap().to_string_lossy();
                name.starts_with(prefix) && name.ends_with(".jar")
            })
            .unwrap_or_else(|| panic!("no {prefix}*.jar in {}", repl.display()))
    };
    let parts = [
        client("spark-connect-client-jvm_"),
        client("spark-connect-client-jdbc_"),
        jars.join("*"),
    ];
    parts
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The helper's classes, compiled once per change of its sources (and of the jars): cached
/// under target/ by their hash, so each test process reuses what the first one compiled.
fn classes(classpath: &str) -> PathBuf {
    let src = common::repo_file("clients/java/src/sk8");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "java"))
        .collect();
    sources.sort();
    let mut hashed = classpath.as_bytes().to_vec();
    for source in &sources {
        hashed.extend(std::fs::read(source).unwrap());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &hashed);
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sk8-java");
    let out = cache.join(&hex);
    if out.is_dir() {
        return out;
    }
    // Compiled aside and renamed into place: tests running side by side never see half.
    let building = cache.join(format!("{hex}.{}", std::process::id()));
    std::fs::create_dir_all(&building).unwrap();
    let mut javac = std::process::Command::new("javac");
    javac
        .arg("-d")
        .arg(&building)
        .args(["-cp", classpath])
        .args(&sources);
    let output = common::output_of(javac, JAVAC_WAIT, "javac clients/java");
    assert!(
        output.status.success(),
        "javac: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if std::fs::rename(&building, &out).is_err() {
        // Another test got there first.
        let _ = std::fs::remove_dir_all(&building);
    }
    out
}

/// sk8 with token authentication (and `extra` merged), serving sessions with Sail.
async fn sk8_with_tokens(dir: &Path, extra: Value) -> TestApp {
    let tokens = dir.join("tokens.yaml");
    common::write_tokens(&tokens, &[(TOKEN, "jo@payments", &["payments"], "member")]);
    let mut options = Options::new(Engine::Sqlite);
    options.spark = common::Spark::Real;
    options.extra = json!({
        "backend": {"local": {"connectServer": "sail", "sail": connect_venv().join("bin/sail")}},
        "auth": {"mode": "tokens", "tokensFile": tokens},
    });
    common::merge(&mut options.extra, &extra);
    TestApp::spawn(options).await
}

/// Every client form, in one JVM (`sk8.Check`), against one sk8: each must pass. With a
/// `truststore` (the test CA) the clients speak TLS.
async fn every_client_passes(app: &TestApp, truststore: Option<&Path>) {
    let classpath = classpath();
    let classes = classes(&classpath);
    let mut java = tokio::process::Command::new("java");
    // Arrow's memory and Netty reach into java.nio, as Spark's launcher allows them to.
    java.args([
        "--add-opens=java.base/java.nio=ALL-UNNAMED",
        "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
        "-Dio.netty.tryReflectionSetAccessible=true",
    ]);
    if let Some(truststore) = truststore {
        java.arg(format!(
            "-Djavax.net.ssl.trustStore={}",
            truststore.display()
        ))
        .arg(format!(
            "-Djavax.net.ssl.trustStorePassword={TRUSTSTORE_PASSWORD}"
        ))
        .arg("-Djavax.net.ssl.trustStoreType=PKCS12");
    }
    let checks = ["jvm", "jdbc", "jdbc-authentication"];
    java.arg("-cp")
        .arg(format!("{}:{classpath}", classes.display()))
        .args(["sk8.Check", "notebook"])
        .args(checks)
        .env("SK8_SERVER", &app.base)
        .env("SK8_TOKEN", TOKEN)
        .env("SK8_TEAM", "payments")
        .env("SK8_ENV", "dev")
        .env("SK8_TLS", truststore.is_some().to_string())
        .env_remove("SPARK_HOME")
        .stdin(Stdio::null());
    let output = common::output_within(&mut java, JAVA_WAIT, "sk8.Check").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        results.len(),
        checks.len(),
        "one line per check: {stdout}\n{}",
        common::tail(&stderr, 4000)
    );
    for result in results {
        assert_eq!(result["ok"], true, "{result}\n{}", app.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jvm_client_and_jdbc_reach_a_session_with_a_token_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let app = sk8_with_tokens(dir.path(), json!({})).await;
    every_client_passes(&app, None).await;
    // The helper made one session (once, then found it again) for the caller's team.
    let listing = app.http.get(app.url("/v1/sessions")).bearer_auth(TOKEN);
    let listing: Value = listing.send().await.unwrap().json().await.unwrap();
    let sessions = listing["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jvm_client_and_jdbc_reach_a_session_with_a_token_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls::test_certificates(dir.path());
    let truststore = dir.path().join("trust.p12");
    let keytool = std::process::Command::new("keytool")
        .args([
            "-importcert",
            "-noprompt",
            "-alias",
            "sk8-test-ca",
            "-storetype",
            "PKCS12",
        ])
        .arg("-file")
        .arg(&ca)
        .arg("-keystore")
        .arg(&truststore)
        .args(["-storepass", TRUSTSTORE_PASSWORD])
        .output()
        .expect("keytool (from the JDK) is installed");
    assert!(
        keytool.status.success(),
        "{}",
        String::from_utf8_lossy(&keytool.stderr)
    );
    let tls = json!({"gateway": {"tls": {"certFile": cert, "keyFile": key}}});
    let app = sk8_with_tokens(dir.path(), tls).await;
    // (The gateway's port speaks only TLS once `gateway.tls` is set: getting through is proof.)
    every_client_passes(&app, Some(&truststore)).await;
}
