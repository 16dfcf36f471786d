//! Event-log summary extraction at scale: sk8's streaming parser (`sk8::history::summarize`)
//! against a real Spark History Server, on the same ~1 GB log.
//!
//! The log is built here, never committed: the body of a real Spark 4.3 event log (the fixture
//! `tests/fixtures/eventlogs/zstd`, made from a real run by its `generate.sh`: jobs, stages,
//! tasks with their metrics, SQL executions, executor metrics) repeated until the log reaches
//! `--mb`, each copy with its job, stage, task, RDD and SQL execution ids moved past the
//! previous copy's, so that it reads as one long application. Written twice, plain and zstd
//! (level 1, as Spark writes it).
//!
//! sk8: each extraction runs in a child process (this binary, `--child`) pinned to one core,
//! on a current-thread runtime; measured are its wall time and CPU time (user + system, from
//! `wait4`: on a busy machine the wall time also counts waiting for the core), as MB/s of
//! uncompressed log, and its peak RSS (`wait4`'s `ru_maxrss`). Plain and zstd alternate for `--rounds` rounds; medians
//! are reported.
//!
//! The History Server (pyspark's, from `SK8_TEST_SPARK_HOME` — what `scripts/setup-spark.sh`
//! prints — or `SPARK_HOME`; 4 GiB heap, not pinned) is started on an empty directory; once it
//! listens, the plain log is moved in and the clock starts: until the application is listed
//! (`/api/v1/applications/<id>`; it rescans every second), and until its executors are served
//! (`/api/v1/applications/<id>/allexecutors`, which needs the whole log replayed), with the CPU
//! time its JVM spent meanwhile (`/proc/<pid>/stat`). Its task count is checked against sk8's.
//!
//! Run: `cargo bench --bench eventlog -- [--mb 1024] [--rounds 3] [--no-history-server]`.
//! Results: docs/benchmarks.md.

use std::io::{BufRead, BufWriter, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use anyhow::{Context, bail};
use common::cpu_seconds;
use serde_json::{Value, json};
use sk8::history::{Location, Objects, StoreOptions, summarize};

const PLAIN_APP: &str = "local-1700000000001";
const ZSTD_APP: &str = "local-1700000000002";
/// Ids of one copy are moved this far past the previous copy's (the fixture's are far below).
const ID_STRIDE: i64 = 100_000;
/// Events that happen once per application: kept from the fixture's head, not repeated.
const ONCE: [&str; 7] = [
    "SparkListenerLogStart",
    "SparkListenerResourceProfileAdded",
    "SparkListenerBlockManagerAdded",
    "SparkListenerEnvironmentUpdate",
    "SparkListenerApplicationStart",
    "SparkListenerExecutorAdded",
    "SparkListenerApplicationEnd",
];
/// Integer fields (or lists of them) that are ids of jobs, stages, tasks, RDDs, executions.
const ID_FIELDS: [&str; 8] = [
    "Job ID",
    "Stage ID",
    "Stage IDs",
    "Task ID",
    "RDD ID",
    "Parent IDs",
    "executionId",
    "rootExecutionId",
];
/// Job properties naming SQL executions.
const ID_PROPERTIES: [&str; 2] = ["spark.sql.execution.id", "spark.sql.execution.root.id"];

struct Args {
    mb: u64,
    rounds: usize,
    history_server: bool,
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if argv.first().map(String::as_str) == Some("--child") {
        return child(&argv[1..]);
    }
    let args = parse_args(&argv)?;
    let work = tempfile::tempdir()?;
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    let started = Instant::now();
    let (plain_bytes, zstd_bytes) = generate(&logs, args.mb << 20)?;
    eprintln!(
        "eventlog: wrote {} MB plain, {} MB zstd in {:.1} s",
        plain_bytes >> 20,
        zstd_bytes >> 20,
        started.elapsed().as_secs_f64()
    );
    let mut plain = Vec::new();
    let mut zstd = Vec::new();
    for round in 0..args.rounds {
        plain.push(extract(&logs, PLAIN_APP)?);
        zstd.push(extract(&logs, ZSTD_APP)?);
        eprintln!(
            "eventlog: round {round}: plain {:.0} MB/s ({:.0} per CPU-s), zstd {:.0} MB/s ({:.0})",
            plain[round].mb_per_s(),
            plain[round].mb_per_cpu_s(),
            zstd[round].mb_per_s(),
            zstd[round].mb_per_cpu_s()
        );
    }
    let mut report = json!({
        "logMiB": plain_bytes >> 20,
        "zstdMiB": zstd_bytes >> 20,
        "sk8Plain": Extraction::median(&plain).report(),
        "sk8Zstd": Extraction::median(&zstd).report(),
    });
    if args.history_server {
        let served = history_server(work.path(), &logs, PLAIN_APP)?;
        report["historyServer"] = served.report(&Extraction::median(&plain));
        let hs_tasks = served.tasks;
        let sk8_tasks = plain[0].tasks;
        if hs_tasks != sk8_tasks {
            bail!("the History Server counts {hs_tasks} tasks, sk8 {sk8_tasks}");
        }
    }
    println!("{report}");
    Ok(())
}

fn parse_args(argv: &[String]) -> anyhow::Result<Args> {
    let mut args = Args {
        mb: 1024,
        rounds: 3,
        history_server: true,
    };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        if flag == "--no-history-server" {
            args.history_server = false;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--mb" => args.mb = value.parse()?,
            "--rounds" => args.rounds = value.parse::<usize>()?.max(1),
            _ => bail!("unknown argument {flag}: use --mb, --rounds, --no-history-server"),
        }
    }
    Ok(args)
}

// ---- the log ------------------------------------------------------------------------------

/// The fixture's events, parsed: the once-per-application ones and the repeatable body.
struct Seed {
    head: Vec<Value>,
    body: Vec<Value>,
    end: Vec<Value>,
}

fn seed() -> anyhow::Result<Seed> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eventlogs/zstd");
    let rolling = std::fs::read_dir(&dir)?
        .next()
        .context("the zstd fixture is empty")??
        .path();
    let part = std::fs::read_dir(&rolling)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "zstd"))
        .context("no events_*.zstd in the fixture")?;
    let reader = std::io::BufReader::new(zstd::stream::read::Decoder::new(std::fs::File::open(
        part,
    )?)?);
    let mut seed = Seed {
        head: Vec::new(),
        body: Vec::new(),
        end: Vec::new(),
    };
    for line in reader.lines() {
        let event: Value = serde_json::from_str(&line?)?;
        match event["Event"].as_str().unwrap_or_default() {
            "SparkListenerApplicationEnd" => seed.end.push(event),
            name if ONCE.contains(&name) => seed.head.push(event),
            _ => seed.body.push(event),
        }
    }
    Ok(seed)
}

/// Writes `<PLAIN_APP>` and `<ZSTD_APP>.zstd` of about `target` bytes each (uncompressed);
/// their sizes on disk.
fn generate(dir: &Path, target: u64) -> anyhow::Result<(u64, u64)> {
    let seed = seed()?;
    let mut plain = BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join(PLAIN_APP))?);
    let zstd_file = std::fs::File::create(dir.join(format!("{ZSTD_APP}.zstd")))?;
    let mut zstd = zstd::stream::write::Encoder::new(BufWriter::new(zstd_file), 1)?;
    let mut written = 0u64;
    let mut line = Vec::with_capacity(1 << 16);
    let mut emit = |event: &Value, written: &mut u64| -> anyhow::Result<()> {
        for (out, app) in [
            (&mut plain as &mut dyn Write, PLAIN_APP),
            (&mut zstd, ZSTD_APP),
        ] {
            line.clear();
            write_event(&mut line, &with_app_id(event, app))?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
        *written += line.len() as u64;
        Ok(())
    };
    for event in &seed.head {
        emit(event, &mut written)?;
    }
    let mut copy = 0;
    while written < target {
        let offset = copy * ID_STRIDE;
        for event in &seed.body {
            let mut event = event.clone();
            shift_ids(&mut event, offset);
            emit(&event, &mut written)?;
        }
        copy += 1;
    }
    for event in &seed.end {
        emit(event, &mut written)?;
    }
    plain.flush()?;
    zstd.finish()?.flush()?;
    let size = |name: &str| std::fs::metadata(dir.join(name)).map(|m| m.len());
    Ok((size(PLAIN_APP)?, size(&format!("{ZSTD_APP}.zstd"))?))
}

/// Writes `event` as Spark's `JsonProtocol` does, `"Event"` first. It matters: the History
/// Server lists an application from the few events it picks out by how their line starts
/// (`{"Event":"SparkListenerApplicationStart"`), and `serde_json` would sort `"App ID"` first.
fn write_event(line: &mut Vec<u8>, event: &Value) -> serde_json::Result<()> {
    let Value::Object(fields) = event else {
        return serde_json::to_writer(line, event);
    };
    line.extend_from_slice(b"{\"Event\":");
    serde_json::to_writer(&mut *line, &event["Event"])?;
    for (key, value) in fields.iter().filter(|(key, _)| *key != "Event") {
        line.push(b',');
        serde_json::to_writer(&mut *line, key)?;
        line.push(b':');
        serde_json::to_writer(&mut *line, value)?;
    }
    line.push(b'}');
    Ok(())
}

/// The application start names the application of the file it is written to.
fn with_app_id<'a>(event: &'a Value, app: &str) -> std::borrow::Cow<'a, Value> {
    if event["Event"] != "SparkListenerApplicationStart" {
        return std::borrow::Cow::Borrowed(event);
    }
    let mut event = event.clone();
    event["App ID"] = json!(app);
    std::borrow::Cow::Owned(event)
}

/// Moves every id in `value` (ID_FIELDS, ID_PROPERTIES) by `offset`.
fn shift_ids(value: &mut Value, offset: i64) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if ID_FIELDS.contains(&key.as_str()) {
                    shift_numbers(field, offset);
                } else if ID_PROPERTIES.contains(&key.as_str()) {
                    if let Some(id) = field.as_str().and_then(|s| s.parse::<i64>().ok()) {
                        *field = json!((id + offset).to_string());
                    }
                } else {
                    shift_ids(field, offset);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| shift_ids(item, offset)),
        _ => {}
    }
}

fn shift_numbers(value: &mut Value, offset: i64) {
    match value {
        Value::Number(n) => {
            if let Some(id) = n.as_i64() {
                *value = json!(id + offset);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| shift_numbers(v, offset)),
        _ => {}
    }
}

// ---- sk8's extraction, in a child process --------------------------------------------------

/// One extraction, as the child reported it, with its peak RSS.
#[derive(Clone, Copy)]
struct Extraction {
    seconds: f64,
    cpu_seconds: f64,
    bytes: u64,
    tasks: u64,
    max_rss_kib: i64,
}

impl Extraction {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }

    fn mb_per_cpu_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.cpu_seconds
    }

    /// The round with the median time.
    fn median(rounds: &[Extraction]) -> Extraction {
        let mut sorted = rounds.to_vec();
        sorted.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        sorted[sorted.len() / 2]
    }

    fn report(&self) -> Value {
        json!({
            "seconds": round2(self.seconds),
            "cpuSeconds": round2(self.cpu_seconds),
            "mbPerS": self.mb_per_s().round(),
            "mbPerCpuS": self.mb_per_cpu_s().round(),
            "peakRssMiB": round2(self.max_rss_kib as f64 / 1024.0),
            "tasks": self.tasks,
        })
    }
}

/// Runs `--child DIR APP` and waits for it with `wait4`, for its peak RSS.
fn extract(dir: &Path, app: &str) -> anyhow::Result<Extraction> {
    let child = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(dir)
        .arg(app)
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let mut out = String::new();
    child
        .stdout
        .context("the child's stdout")?
        .read_to_string(&mut out)?;
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("the extraction of {app} failed ({status}): {out}");
    }
    let report: Value = serde_json::from_str(out.trim())?;
    Ok(Extraction {
        seconds: report["seconds"].as_f64().context("seconds")?,
        cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        bytes: report["bytes"].as_u64().context("bytes")?,
        tasks: report["tasks"].as_u64().context("tasks")?,
        max_rss_kib: usage.ru_maxrss,
    })
}

fn seconds(time: libc::timeval) -> f64 {
    time.tv_sec as f64 + time.tv_usec as f64 / 1e6
}

/// The child: on one core, a current-thread runtime, one `summarize`.
fn child(argv: &[String]) -> anyhow::Result<()> {
    let [dir, app] = argv else {
        bail!("--child DIR APP");
    };
    pin_to_one_core()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let objects = Objects::open(&Location::local(Path::new(dir)), &StoreOptions::default())?;
    let started = Instant::now();
    let summary = runtime.block_on(summarize(&objects, app));
    let seconds = started.elapsed().as_secs_f64();
    if summary.reason.is_some() {
        bail!("the summary of {app} is not complete: {:?}", summary.reason);
    }
    println!(
        "{}",
        json!({"seconds": seconds, "bytes": summary.log.bytes, "tasks": summary.tasks.total})
    );
    Ok(())
}

/// Pins this process (and the threads it starts) to the first core it may run on.
fn pin_to_one_core() -> anyhow::Result<()> {
    // SAFETY: cpu_set_t is plain data; the libc macros only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
        }
        let first = (0..libc::CPU_SETSIZE as usize)
            .find(|cpu| libc::CPU_ISSET(*cpu, &set))
            .context("no allowed core")?;
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(first, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

// ---- the History Server --------------------------------------------------------------------

struct Served {
    listed: f64,
    served: f64,
    cpu_seconds: f64,
    tasks: u64,
}

impl Served {
    /// With how many times longer it took than sk8, in wall and in CPU time.
    fn report(&self, sk8: &Extraction) -> Value {
        json!({
            "listedSeconds": round2(self.listed),
            "servedSeconds": round2(self.served),
            "cpuSeconds": round2(self.cpu_seconds),
            "timesSk8Wall": round2(self.served / sk8.seconds),
            "timesSk8Cpu": round2(self.cpu_seconds / sk8.cpu_seconds),
            "tasks": self.tasks,
        })
    }
}

/// The History Server's time to list `app` and to serve its executors once its log appears.
fn history_server(work: &Path, logs: &Path, app: &str) -> anyhow::Result<Served> {
    let home = spark_home().context(
        "no Spark for the History Server: set SK8_TEST_SPARK_HOME (scripts/setup-spark.sh) or \
         pass --no-history-server",
    )?;
    let watched = work.join("watched");
    std::fs::create_dir_all(&watched)?;
    let properties = work.join("history-server.conf");
    std::fs::write(
        &properties,
        format!(
            "spark.history.fs.logDirectory=file://{}\n\
             spark.history.fs.update.interval=1s\n\
             spark.history.ui.port=0\n",
            watched.display()
        ),
    )?;
    let log = work.join("history-server.log");
    let out = std::fs::File::create(&log)?;
    let mut command = Command::new(home.join("bin/spark-class"));
    command
        .arg("org.apache.spark.deploy.history.HistoryServer")
        .arg("--properties-file")
        .arg(&properties)
        .env("SPARK_HOME", &home)
        .env("SPARK_DAEMON_MEMORY", "4g")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0);
    let mut server = KillOnDrop(command.spawn()?);
    let port = wait_for_port(&log, &mut server)?;
    let base = format!("http://127.0.0.1:{port}/api/v1/applications/{app}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()?;
    let jvm = server.0.id();
    let cpu_before = cpu_seconds(jvm)?;
    std::fs::rename(logs.join(app), watched.join(app))?;
    let started = Instant::now();
    runtime.block_on(async {
        loop {
            if http.get(&base).send().await?.status().is_success() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let listed = started.elapsed().as_secs_f64();
        let executors: Value = http
            .get(format!("{base}/allexecutors"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let served = started.elapsed().as_secs_f64();
        let tasks = executors
            .as_array()
            .context("allexecutors: a list")?
            .iter()
            .map(|e| e["totalTasks"].as_u64().unwrap_or(0))
            .sum();
        Ok(Served {
            listed,
            served,
            cpu_seconds: cpu_seconds(jvm)? - cpu_before,
            tasks,
        })
    })
}

/// User + system CPU time of a process so far (`spark-class` execs the JVM: the child's pid).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // The whole group: spark-class's launcher and the JVM.
        // SAFETY: kill(2) with the group id of our own child.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn wait_for_port(log: &Path, server: &mut KillOnDrop) -> anyhow::Result<u16> {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let port = text
            .lines()
            .find_map(|line| line.split_once("Bound HistoryServer to "))
            .and_then(|(_, rest)| rest.rsplit(':').next())
            .and_then(|port| port.trim().parse().ok());
        if let Some(port) = port {
            return Ok(port);
        }
        if let Some(status) = server.0.try_wait()? {
            bail!(
                "the History Server exited ({status}): see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "the History Server did not listen within 180 s: see {}",
        log.display()
    )
}

/// `SK8_TEST_SPARK_HOME` (what `scripts/setup-spark.sh` prints), else `SPARK_HOME`.
fn spark_home() -> Option<PathBuf> {
    std::env::var_os("SK8_TEST_SPARK_HOME")
        .or_else(|| std::env::var_os("SPARK_HOME"))
        .map(PathBuf::from)
        .filter(|home| home.join("bin/spark-class").is_file())
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
