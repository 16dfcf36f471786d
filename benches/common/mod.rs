//! What the benchmarks share: the real `sk8 serve` as a child process (its address from the
//! JSON "ready" log line), its resident memory and CPU time, and small helpers.
#![allow(dead_code)] // each bench uses part of it

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

/// Extra environment for the daemon under test, for experiments (an allocator setting such
/// as `MALLOC_ARENA_MAX=2`): `SK8_BENCH_DAEMON_ENV="KEY=VALUE,KEY=VALUE"`.
fn daemon_env() -> Vec<(String, String)> {
    std::env::var("SK8_BENCH_DAEMON_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The daemon's command line: the sk8 binary, or `SK8_BENCH_WRAPPER` (a profiler such as
/// `heaptrack`) running it.
fn daemon_command() -> Command {
    match std::env::var("SK8_BENCH_WRAPPER") {
        Ok(wrapper) if !wrapper.is_empty() => {
            let mut command = Command::new(wrapper);
            command.arg(env!("CARGO_BIN_EXE_sk8"));
            command
        }
        _ => Command::new(env!("CARGO_BIN_EXE_sk8")),
    }
}

/// A running `sk8 serve`; its temporary data directory goes away with it.
pub struct Daemon {
    child: Child,
    pub pid: u32,
    pub base: String,
    /// The gateway's `host:port`.
    pub grpc: String,
    pub ready_ms: f64,
    pub startup_ms: u64,
    _data: tempfile::TempDir,
}

impl Daemon {
    /// Starts `sk8 serve` with `settings` (config keys such as `store` and `backend`) on a
    /// fresh data directory and a loopback port.
    pub async fn start(settings: Value) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let config = data.path().join("sk8.yaml");
        // JSON is YAML; it also quotes the paths and URL correctly.
        let mut text = json!({
            "dataDir": data.path(),
            "http": { "addr": "127.0.0.1:0" },
            "gateway": { "addr": "127.0.0.1:0" },
        });
        if let (Value::Object(text), Value::Object(settings)) = (&mut text, settings) {
            text.extend(settings);
        }
        std::fs::write(&config, serde_json::to_string_pretty(&text)?)?;
        let spawned = Instant::now();
        let mut child = daemon_command()
            .arg("serve")
            .arg("--config")
            .arg(&config)
            // Only what is set here: a developer's DATABASE_URL or SK8_* must not redirect it.
            .env_clear()
            .envs(daemon_env())
            .env("SK8_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,sk8=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn sk8 serve")?;
        let pid = child.id().context("sk8 exited at once")?;
        let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), wait_ready(&mut lines))
            .await
            .context("sk8 was not ready within 60 s")??;
        let ready_ms = spawned.elapsed().as_secs_f64() * 1e3;
        // Keep draining stderr so the daemon never blocks on a full pipe.
        tokio::spawn(forward_problems(lines));
        Ok(Daemon {
            child,
            pid,
            base: format!("http://{}", ready.addr),
            grpc: ready.grpc,
            ready_ms,
            startup_ms: ready.startup_ms,
            _data: data,
        })
    }

    /// SIGTERM, as a service manager would, then wait for the graceful shutdown.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("run kill")?;
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("sk8 still running 60 s after SIGTERM")??;
        if !status.success() {
            bail!("sk8 exited with {status}");
        }
        Ok(())
    }
}

/// What the ready line says.
struct Ready {
    addr: String,
    grpc: String,
    startup_ms: u64,
}

/// Reads log lines until the ready line.
async fn wait_ready(lines: &mut Lines<BufReader<ChildStderr>>) -> anyhow::Result<Ready> {
    while let Some(line) = lines.next_line().await? {
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            eprintln!("   sk8| {line}");
            continue;
        };
        let message = event["message"].as_str().unwrap_or_default();
        if message.contains("sk8 is ready") {
            let field = |name: &str| {
                event[name]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("the ready line has no {name}"))
            };
            return Ok(Ready {
                addr: field("addr")?,
                grpc: field("grpc_addr")?,
                startup_ms: event["startup_ms"].as_u64().unwrap_or_default(),
            });
        }
        eprintln!("   sk8| {line}");
    }
    bail!("sk8 exited before it was ready")
}

/// Drains the daemon's log, echoing only warnings and errors (the info lines are expected).
async fn forward_problems(mut lines: Lines<BufReader<ChildStderr>>) {
    while let Ok(Some(line)) = lines.next_line().await {
        if !line.contains(r#""level":"INFO""#) {
            eprintln!("   sk8| {line}");
        }
    }
}

/// Resident memory of the process, from /proc, in MiB.
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"));
    let kib: f64 = line
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(round(kib / 1024.0))
}

/// CPU time (user + system) the process has used so far, in seconds, from /proc.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/pid/stat")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / hz)
}

/// Sends the request and reads the whole body; any status but `expected` is an error.
pub async fn send(request: reqwest::RequestBuilder, expected: u16) -> anyhow::Result<Vec<u8>> {
    let response = request.send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if status.as_u16() != expected {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body.to_vec())
}

/// Rounds to two decimals, for reports.
pub fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A Postgres database made for one benchmark run (on the server `DATABASE_URL` names, an
/// admin URL, default the local one); [`ScratchPostgres::drop_it`] removes it.
pub struct ScratchPostgres {
    pub url: String,
    admin: sqlx::postgres::PgConnection,
    name: String,
}

impl ScratchPostgres {
    pub async fn create() -> anyhow::Result<Self> {
        use sqlx::Connection;
        let admin_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let mut admin = sqlx::postgres::PgConnection::connect(&admin_url)
            .await
            .context("connect to Postgres (set DATABASE_URL to an admin URL)")?;
        let name = format!("sk8_bench_{:x}", random_seed());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        Ok(ScratchPostgres {
            url: with_database(&admin_url, &name)?,
            admin,
            name,
        })
    }

    pub async fn drop_it(mut self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let sql = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut self.admin)
            .await?;
        self.admin.close().await?;
        Ok(())
    }
}

/// The URL with its database (the path) replaced, keeping credentials, host and parameters.
fn with_database(url: &str, db: &str) -> anyhow::Result<String> {
    let authority_start = url.find("://").context("DATABASE_URL has no scheme")? + 3;
    let rest = &url[authority_start..];
    let authority_end = authority_start + rest.find(['/', '?']).unwrap_or(rest.len());
    let params = url[authority_end..]
        .find('?')
        .map_or("", |i| &url[authority_end + i..]);
    Ok(format!("{}/{db}{params}", &url[..authority_end]))
}

/// A seed that differs between runs and processes.
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 32)
}
