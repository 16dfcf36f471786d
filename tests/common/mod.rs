//! The test harness shared by the integration suites: it starts the real `sk8` binary
//! (`sk8 serve` on port 0, a config file of the test's own), finds its address in the JSON
//! startup log, and drives it over HTTP. Postgres tests get a fresh database on the server that
//! `SK8_TEST_DATABASE_URL` or `DATABASE_URL` points at (default: the local one), dropped after.
//!
//! Each suite uses only part of this module, hence the `dead_code` allowance.
#![allow(dead_code, unused_macros)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

pub mod grpc;
pub mod otlp;
pub mod proxy;

/// Runs an async test body once per store engine, as `<name>::sqlite` and `<name>::postgres`.
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::common::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::common::Engine::Postgres).await
            }
        }
    )*};
}
#[allow(unused_imports)] // used by the suites that run on both engines
pub(crate) use both_engines;

pub const TERMINAL: [&str; 3] = ["SUCCEEDED", "FAILED", "CANCELLED"];
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one CLI command may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a request may wait for the daemon's next bytes (a `?follow=true` log included).
const READ_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The Postgres server tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("SK8_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|url| url.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A Postgres database of one test's own, dropped when the value is.
pub struct TestDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin_url = pg_admin_url();
        let name = format!("sk8_test_{}", random_suffix());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach Postgres at {admin_url}: {e}. Start it (scripts/test.sh does) \
                     or point SK8_TEST_DATABASE_URL at one"
                )
            });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let url = with_database(&admin_url, &name);
        TestDb {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs outside any runtime guarantee: use a private one on its own thread.
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for DROP DATABASE");
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

/// `postgres://u@h:5432/admin?x` with the database part replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

pub fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which `spark-submit` the local backend runs.
#[derive(Clone, Debug)]
pub enum Spark {
    /// `tests/fixtures/fake-spark-submit`: instant, scripted by the job's envVars.
    Fake,
    /// A real Spark installation (see [`spark_home`]).
    Real,
    /// No Spark at all: jobs fail with the install hint.
    Missing,
}

/// What happens to the daemon's output once it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Its log (stderr) is read to the end into [`TestApp::logs`]; stdout goes nowhere.
    Read,
    /// The reader of its stderr goes away (`sk8 serve | grep -m1 ready`, but on stderr).
    StderrClosed,
    /// stdout and stderr are one pipe whose reader goes away (`sk8 serve 2>&1 | grep -m1 …`).
    BothClosed,
    /// The reader of its stderr stays but stops reading: the pipe fills up.
    StderrStalled,
}

/// How to start a daemon.
#[derive(Clone, Debug)]
pub struct Options {
    pub engine: Engine,
    pub spark: Spark,
    /// `backend.local.maxRunning`.
    pub max_running: usize,
    /// Merged over the generated config (JSON object, same keys as the YAML config).
    pub extra: Value,
    pub output: Output,
}

impl Options {
    pub fn new(engine: Engine) -> Self {
        Options {
            engine,
            spark: Spark::Fake,
            max_running: 4,
            extra: json!({}),
            output: Output::Read,
        }
    }
}

/// A running `sk8 serve` and what it needs (data dir, database); stopped on drop.
pub struct TestApp {
    pub base: String,
    /// The Spark Connect gateway's `host:port`.
    pub grpc: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    config_path: PathBuf,
    logs: Arc<Mutex<String>>,
    output: Output,
    _db: Option<TestDb>,
}

impl TestApp {
    pub async fn spawn(options: Options) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = match options.engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(TestDb::create().await),
        };
        let config = config_for(&options, dir.path(), db.as_ref());
        let config_path = dir.path().join("sk8.yaml");
        std::fs::write(&config_path, config.to_string()).expect("write the config");
        let logs = Arc::new(Mutex::new(String::new()));
        let (child, ready) = start(&config_path, logs.clone(), options.output).await;
        TestApp {
            base: format!("http://{}", ready.http),
            grpc: ready.grpc,
            http: http_client(),
            dir,
            child: Some(child),
            config_path,
            logs,
            output: options.output,
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("sk8 is running").id()
    }

    /// Everything the daemon has logged so far (JSON lines; only up to "ready" when its
    /// [`Output`] is not read).
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Starts the daemon again on the same config, data dir and database (after `kill9` or
    /// `terminate`).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop sk8 before restarting it");
        let (child, ready) = start(&self.config_path, self.logs.clone(), self.output).await;
        self.child = Some(child);
        self.base = format!("http://{}", ready.http);
        self.grpc = ready.grpc;
    }

    /// Runs the `sk8` CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sk8"));
        command.arg("--server").arg(&self.base).args(args);
        output_of(command, CLI_TIMEOUT, &format!("sk8 {args:?}"))
    }

    pub async fn post_job(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/jobs"))
            .json(body)
            .send()
            .await
            .expect("POST /v1/jobs")
    }

    /// PUTs `body` as JSON to `path`; returns the status and the JSON answer (null when the
    /// answer is not JSON).
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// POSTs `body` as JSON to `path`; returns the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// Submits with an `Idempotency-Key`; returns the status and body.
    pub async fn post_job_with_key(&self, body: &Value, key: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/v1/jobs"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("POST /v1/jobs");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// Submits a job that must be accepted; returns it.
    pub async fn submit(&self, body: &Value) -> Value {
        let response = self.post_job(body).await;
        let status = response.status();
        let job: Value = response.json().await.expect("a JSON job");
        assert_eq!(status, 201, "submit failed: {job}");
        job
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// DELETEs `path`; returns the status and the JSON answer (null when there is none).
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .delete(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn job(&self, id: &str) -> Value {
        let (status, job) = self.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "GET job {id}: {job}");
        job
    }

    pub async fn cancel(&self, id: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(&format!("/v1/jobs/{id}/cancel")))
            .send()
            .await
            .expect("POST cancel");
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn text(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Polls a job until its state is one of `states`; panics with its events after `timeout`.
    pub async fn wait_for(&self, id: &str, states: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.job(id).await;
            if states.contains(&job["state"].as_str().unwrap_or_default()) {
                return job;
            }
            if Instant::now() > deadline {
                let (_, events) = self.get(&format!("/v1/jobs/{id}/events")).await;
                panic!(
                    "job {id} did not reach {states:?} in {timeout:?}: {job}\nevents: {events}\n\
                     sk8 log tail:\n{}",
                    tail(&self.logs(), 4000)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_finished(&self, id: &str, timeout: Duration) -> Value {
        self.wait_for(id, &TERMINAL, timeout).await
    }

    /// Polls attempt 1 of `id` until its run record is gathered and returns it; panics with
    /// what it saw after `timeout`.
    pub async fn wait_recorded(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, record) = self.get(&format!("/v1/jobs/{id}/attempts/1")).await;
            if record["record"] == "recorded" {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "attempt 1 of {id} not recorded within {timeout:?}: {record}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A channel to the daemon's gRPC port (the gateway and sk8's own gRPC API).
    pub async fn grpc_channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc))
            .expect("the gRPC address is a URI")
            .connect()
            .await
            .expect("connect to the gRPC port")
    }

    /// The states of a job's events, in order.
    pub async fn event_states(&self, id: &str) -> Vec<String> {
        let (status, events) = self.get(&format!("/v1/jobs/{id}/events")).await;
        assert_eq!(status, 200, "{events}");
        events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["to"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A clean stop, so the local backend kills its Spark processes; and those of a daemon
        // that could not (killed with `kill9` before the test failed).
        self.terminate();
        kill_leftover_groups(self.dir.path());
    }
}

/// SIGKILLs every process group a local attempt or session server under `data_dir` still runs
/// (`<dataDir>/{attempts,sessions}/<id>/<n>/pid`, each the leader of its own group).
fn kill_leftover_groups(data_dir: &Path) {
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default()
    };
    for kind in ["attempts", "sessions"] {
        for owner in subdirs(&data_dir.join(kind)) {
            for run in subdirs(&owner) {
                let pid = std::fs::read_to_string(run.join("pid")).unwrap_or_default();
                if let Ok(pgid) = pid.trim().parse::<u32>()
                    && group_alive(pgid)
                {
                    // SAFETY: kill(2) on a process group this test's daemon started.
                    unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
                }
            }
        }
    }
}

fn config_for(options: &Options, dir: &Path, db: Option<&TestDb>) -> Value {
    let mut local = json!({ "maxRunning": options.max_running, "killGraceSeconds": 3 });
    match &options.spark {
        Spark::Fake => local["sparkSubmit"] = json!(fixture("fake-spark-submit")),
        Spark::Real => local["sparkHome"] = json!(spark_home()),
        Spark::Missing => local["sparkHome"] = json!(dir.join("no-spark-here")),
    }
    let mut config = json!({
        "dataDir": dir,
        "http": { "addr": "127.0.0.1:0", "shutdownGraceSeconds": 5 },
        "gateway": { "addr": "127.0.0.1:0" },
        "store": { "url": db.map(|db| db.url.clone()).unwrap_or_default() },
        "backend": { "kind": "local", "local": local },
        "reconciler": { "intervalMs": 200, "retryBackoffSeconds": 0 },
        "log": { "format": "json" },
    });
    merge(&mut config, &options.extra);
    config
}

/// Deep-merges `patch` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The Spark the real-Spark tests use: `SK8_TEST_SPARK_HOME`, else `SPARK_HOME`.
pub fn spark_home() -> PathBuf {
    std::env::var_os("SK8_TEST_SPARK_HOME")
        .or_else(|| std::env::var_os("SPARK_HOME"))
        .map(PathBuf::from)
        .filter(|home| home.join("bin/spark-submit").is_file())
        .unwrap_or_else(|| {
            panic!(
                "the real-Spark tests need Spark: run scripts/test.sh (it installs pyspark into a \
                 venv), or set SK8_TEST_SPARK_HOME to a Spark home with bin/spark-submit"
            )
        })
}

/// Starts `sk8 serve --config PATH` and waits for its "ready" log line.
async fn start(config: &Path, logs: Arc<Mutex<String>>, output: Output) -> (Child, Ready) {
    let (log, log_end) = std::io::pipe().expect("a pipe for the daemon's log");
    let stdout = match output {
        Output::BothClosed => Stdio::from(log_end.try_clone().expect("share the log pipe")),
        _ => Stdio::null(),
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_sk8"));
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log_end);
    // SIGTERM, not SIGKILL: sk8 stops the Spark process groups it started on its way out.
    die_with_test(&mut command, libc::SIGTERM);
    let mut child = command.spawn().expect("start the sk8 binary");
    // The command holds this side's copy of the pipe's write end: without it, the reader
    // sees the end of the log when sk8 exits.
    drop(command);
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || read_log(log, &logs, &ready_tx, output));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(addr) = ready_rx.try_recv() {
            return (child, addr);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sk8 exited before it was ready ({status})");
        }
        assert!(
            Instant::now() < deadline,
            "sk8 did not log 'sk8 is ready' within {STARTUP_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Collects the daemon's log lines into `logs`, and after "ready" does what `output` says.
fn read_log(
    pipe: std::io::PipeReader,
    logs: &Mutex<String>,
    ready_tx: &mpsc::Sender<Ready>,
    output: Output,
) {
    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
        let ready = ready_addr(&line);
        {
            let mut logs = logs.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
        let Some(addr) = ready else { continue };
        let _ = ready_tx.send(addr);
        match output {
            Output::Read => {}
            // Returning drops the pipe's only read end: sk8's next write meets EPIPE.
            Output::StderrClosed | Output::BothClosed => return,
            // Holds the read end open without reading, until the test process exits.
            Output::StderrStalled => loop {
                std::thread::park();
            },
        }
    }
}

/// The tests' HTTP client: a daemon that stops answering fails the request, with its path,
/// instead of hanging the test.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(READ_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

/// Runs `command` (stdin closed) to its end and returns its output; panics after `timeout`
/// saying `what` did not finish, having killed it.
pub fn output_of(mut command: Command, timeout: Duration, what: &str) -> std::process::Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_test(&mut command, libc::SIGKILL);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let pid = child.id();
    let (done, output) = mpsc::channel();
    // wait_with_output reads both pipes as the process writes them, so neither fills up.
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(timeout) {
        Ok(output) => output.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            panic!("{what} did not finish within {timeout:?}")
        }
    }
}

/// Runs `command` to its end and returns its output; panics after `timeout` saying `what` did
/// not finish. The process is killed then, and dies with the test in any case.
pub async fn output_within(
    command: &mut tokio::process::Command,
    timeout: Duration,
    what: &str,
) -> std::process::Output {
    die_with_test(command.as_std_mut(), libc::SIGKILL);
    let output = command.kill_on_drop(true).output();
    tokio::time::timeout(timeout, output)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {timeout:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

/// Makes the process `command` starts receive `signal` when the thread that starts it ends:
/// when the test ends, however it ends (passed, panicked, or killed at its timeout by the test
/// runner, when no `Drop` runs). Start processes from the test's own thread or a runtime
/// worker (both live as long as the test), never from a short-lived thread.
pub fn die_with_test(command: &mut Command, signal: i32) {
    let test = std::process::id() as i32;
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid, raise).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The test died between fork and prctl: nobody would send the signal any more.
            if libc::getppid() != test {
                libc::raise(signal);
            }
            Ok(())
        })
    };
}

/// Where a started daemon listens.
struct Ready {
    http: String,
    grpc: String,
}

fn ready_addr(line: &str) -> Option<Ready> {
    let event: Value = serde_json::from_str(line).ok()?;
    if !event["message"].as_str()?.starts_with("sk8 is ready") {
        return None;
    }
    Some(Ready {
        http: event["addr"].as_str()?.to_owned(),
        grpc: event["grpc_addr"].as_str()?.to_owned(),
    })
}

pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a pid this test started.
    unsafe { libc::kill(pid as i32, signal) };
}

/// Whether any process is left in the process group `pgid` (zombies excluded).
pub fn group_alive(pgid: u32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            fields.get(2) == Some(&pgid.to_string().as_str()) && fields[0] != "Z"
        })
}

/// The process id recorded in a local attempt's backend ref.
pub fn attempt_pid(job: &Value) -> u32 {
    let attempt = job["attempts"]
        .as_array()
        .and_then(|a| a.last())
        .expect("the job has an attempt");
    attempt["backendRef"]["process"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no pid in {attempt}")) as u32
}

/// Config pointing a replica at `first`'s history location, so that replicas share one as they
/// share one object store in a deployment: a replica that takes an attempt over finds the
/// driver log another archived before it deleted the application.
pub fn shared_history(first: &TestApp) -> Value {
    let dir = first.dir.path().join("history");
    json!({"history": {"eventLogDir": format!("file://{}", dir.display())}})
}

/// Every log line of the replicas `apps` that mentions `needle`, each after its replica's index.
pub fn mentions(apps: &[TestApp], needle: &str) -> String {
    let mut out = String::new();
    for (n, app) in apps.iter().enumerate() {
        for line in app.logs().lines().filter(|l| l.contains(needle)) {
            out.push_str(&format!("[{n}] {line}\n"));
        }
    }
    out
}

pub fn tail(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    &text[start..]
}

/// Writes an `auth.tokensFile`: (token, user, teams, role) per entry, as SHA-256 digests.
pub fn write_tokens(path: &Path, tokens: &[(&str, &str, &[&str], &str)]) {
    let sha256_hex = |token: &str| {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let entries: Vec<Value> = tokens
        .iter()
        .map(|(token, user, teams, role)| {
            json!({"user": user, "teams": teams, "role": role, "sha256": sha256_hex(token)})
        })
        .collect();
    // JSON is YAML.
    std::fs::write(path, Value::Array(entries).to_string()).unwrap();
}

/// A minimal valid JobSpec for the fake backend; `mode` is FAKE_SPARK_MODE.
pub fn fake_job(team: &str, name: &str, mode: &str) -> Value {
    json!({
        "team": team,
        "env": "dev",
        "name": name,
        "mainApplicationFile": "s3a://bucket/jobs/job.py",
        "envVars": { "FAKE_SPARK_MODE": mode, "FAKE_SPARK_SECONDS": "60" },
    })
}
