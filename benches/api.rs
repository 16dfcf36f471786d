//! End-to-end API benchmark of the real `sk8` daemon (noop backend), over loopback HTTP/1.1.
//!
//! Per store engine it spawns `sk8 serve` on a fresh SQLite file or Postgres database and
//! measures: startup-to-ready time; resident memory idle and after the load; sustained
//! `POST /v1/jobs` throughput and latency with C concurrent clients; how long the reconciler
//! takes to finish the jobs left behind; then, with `--seed-jobs` jobs stored, the latency of
//! `GET /v1/jobs/{id}` (random known ids) and `GET /v1/jobs?team=bench&limit=50`.
//!
//! Run: `cargo bench --bench api -- [--engine sqlite|postgres|both] [--seconds N]
//! [--concurrency C] [--seed-jobs N]` (defaults: sqlite, 20, 16, 100000). For Postgres,
//! `DATABASE_URL` is an admin URL (default `postgres://postgres@127.0.0.1:5432/postgres`); a
//! database `sk8_bench_<random>` is created for the run and dropped after it. Progress goes to
//! stderr; one JSON line per engine and a markdown table go to stdout. See docs/benchmarks.md.
//!
//! `--otlp-ab N` measures what OTLP export costs instead: N rounds of the submit phase (SQLite)
//! with export off and on (to a real OTLP receiver in this process), interleaved and in
//! alternating order, then the mean submits/s and p99 of each side.
//!
//! `--sizing-ab N` measures what `sizing: auto` costs the submit path the same way: N rounds
//! with `sizing.mode: off` and `auto`, interleaved; both sides submit jobs of 50 names, so that
//! each submission of the `auto` side reads its signature's latest runs.

mod common;
#[allow(dead_code)]
#[path = "../tests/common/otlp.rs"]
mod otlp;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use common::{Daemon, ScratchPostgres, cpu_seconds, random_seed, round, rss_mib, send};

const GET_REQUESTS: usize = 20_000;
const LIST_REQUESTS: usize = 2_000;
/// Each read phase also stops after this long, so a slow query cannot stall the run.
const READ_CAP: Duration = Duration::from_secs(30);
/// How long the reconciler may take to finish the backlog before the run is declared stuck.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1800);

struct Args {
    engines: Vec<&'static str>,
    seconds: u64,
    concurrency: usize,
    seed_jobs: usize,
    /// Rounds of the OTLP export A/B (0: the usual benchmark).
    otlp_ab: u64,
    /// Rounds of the sizing off/auto A/B (0: the usual benchmark).
    sizing_ab: u64,
    /// Submitted jobs are named from this many names (0: every job its own name).
    names: usize,
}

/// Job names of the sizing A/B: signatures with a history, as a team's recurring jobs have.
const SIZING_AB_NAMES: usize = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if args.otlp_ab > 0 {
        return otlp_ab(&args).await;
    }
    if args.sizing_ab > 0 {
        let args = Args {
            names: SIZING_AB_NAMES,
            ..args
        };
        return ab(&args, args.sizing_ab, "sizing auto", |auto| {
            let mode = if auto { "auto" } else { "off" };
            json!({ "backend": { "kind": "noop" }, "sizing": { "mode": mode } })
        })
        .await;
    }
    let mut summaries = Vec::new();
    for engine in &args.engines {
        let summary = match *engine {
            "postgres" => bench_postgres(&args).await?,
            _ => bench_engine("sqlite", "", &args).await?,
        };
        let summary = Value::Object(summary);
        println!("{summary}");
        summaries.push(summary);
    }
    print_table(&summaries);
    if summaries.iter().any(|s| s["clean_shutdown"] != true) {
        bail!("sk8 did not shut down cleanly after SIGTERM (see above)");
    }
    Ok(())
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        engines: vec!["sqlite"],
        seconds: 20,
        concurrency: 16,
        seed_jobs: 100_000,
        otlp_ab: 0,
        sizing_ab: 0,
        names: 0,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        // `cargo bench` passes `--bench` to every bench binary, harness or not.
        if flag == "--bench" {
            continue;
        }
        let value = argv
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag} {value:?}"))
        };
        match flag.as_str() {
            "--engine" => {
                args.engines = match value.as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    "both" => vec!["sqlite", "postgres"],
                    _ => bail!("--engine {value:?}: use sqlite, postgres or both"),
                }
            }
            "--seconds" => args.seconds = number()?,
            "--concurrency" => args.concurrency = (number()? as usize).max(1),
            "--seed-jobs" => args.seed_jobs = number()? as usize,
            "--otlp-ab" => args.otlp_ab = number()?,
            "--sizing-ab" => args.sizing_ab = number()?,
            _ => bail!(
                "unknown argument {flag}: use --engine, --seconds, --concurrency, --seed-jobs, \
                 --otlp-ab, --sizing-ab"
            ),
        }
    }
    Ok(args)
}

/// The submit phase with OTLP export off and on, to a receiver in this process.
async fn otlp_ab(args: &Args) -> anyhow::Result<()> {
    let receiver = otlp::Receiver::start().await;
    let endpoint = receiver.endpoint();
    ab(args, args.otlp_ab, "export", |export| {
        let mut settings = json!({ "backend": { "kind": "noop" } });
        if export {
            settings["otlp"] = json!({ "endpoint": endpoint, "metricIntervalMillis": 5000 });
        }
        settings
    })
    .await?;
    println!("spans received: {}", receiver.spans().len());
    Ok(())
}

/// `rounds` of the submit phase (SQLite) with `what` off and on (the daemon's settings from
/// `settings`), interleaved (the order flips every round so drift on a shared machine falls
/// on both sides); prints each run and the means.
async fn ab(
    args: &Args,
    rounds: u64,
    what: &str,
    settings: impl Fn(bool) -> Value,
) -> anyhow::Result<()> {
    let mut runs: Vec<(bool, Value)> = Vec::new();
    for turn in 0..rounds {
        let order = if turn % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for on in order {
            let daemon = Daemon::start(settings(on)).await?;
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?;
            let seconds = Duration::from_secs(args.seconds);
            let cpu_before = cpu_seconds(daemon.pid)?;
            let (submit, elapsed) =
                drive(&client, &daemon.base, Op::Submit, usize::MAX, seconds, args).await?;
            let cpu = cpu_seconds(daemon.pid)? - cpu_before;
            let mut submit = stats(submit, elapsed);
            // The daemon's own CPU per submission: what it costs, whoever else shares the
            // cores (the bench client, an in-process receiver).
            let ok = submit["ok"].as_f64().unwrap_or_default().max(1.0);
            submit["daemon_cpu_ms_per_submit"] = json!(round(cpu * 1000.0 / ok));
            println!("{}", json!({ "round": turn, what: on, "submit": submit }));
            runs.push((on, submit));
            daemon.stop().await?;
        }
    }
    let mean = |on: bool, key: &str| {
        let values: Vec<f64> = runs
            .iter()
            .filter(|(o, _)| *o == on)
            .filter_map(|(_, s)| s[key].as_f64())
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    let (off_rate, on_rate) = (mean(false, "per_second"), mean(true, "per_second"));
    let (off_p99, on_p99) = (mean(false, "p99_ms"), mean(true, "p99_ms"));
    let key = "daemon_cpu_ms_per_submit";
    let (off_cpu, on_cpu) = (mean(false, key), mean(true, key));
    println!(
        "| {what} | submits/s | submit p99 ms | daemon CPU ms per submit |\n|---|---|---|---|"
    );
    println!(
        "| off | {} | {} | {} |",
        round(off_rate),
        round(off_p99),
        round(off_cpu)
    );
    println!(
        "| on | {} | {} | {} |",
        round(on_rate),
        round(on_p99),
        round(on_cpu)
    );
    println!(
        "| on vs off | {:+.1} % | {:+.1} % | {:+.1} % |",
        (on_rate / off_rate - 1.0) * 100.0,
        (on_p99 / off_p99 - 1.0) * 100.0,
        (on_cpu / off_cpu - 1.0) * 100.0
    );
    Ok(())
}

/// Runs the benchmark against a database created for it, and drops that database after.
async fn bench_postgres(args: &Args) -> anyhow::Result<Summary> {
    let db = ScratchPostgres::create().await?;
    let result = bench_engine("postgres", &db.url, args).await;
    db.drop_it().await?;
    result
}

/// The summary of one engine's run, printed as a JSON line and a table row.
type Summary = Map<String, Value>;

async fn bench_engine(engine: &str, store_url: &str, args: &Args) -> anyhow::Result<Summary> {
    eprintln!("== {engine}: starting sk8");
    let settings = json!({ "store": { "url": store_url }, "backend": { "kind": "noop" } });
    let daemon = Daemon::start(settings).await?;
    // Idle memory is read after startup's one-off allocations (migrations, pools) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut summary = Summary::new();
    summary.insert("engine".into(), json!(engine));
    summary.insert("ready_ms".into(), json!(round(daemon.ready_ms)));
    summary.insert("startup_ms".into(), json!(daemon.startup_ms));
    summary.insert("idle_rss_mib".into(), json!(rss_mib(daemon.pid)?));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let ids = measure_writes(&client, &daemon.base, args, &mut summary).await?;
    eprintln!("== {engine}: reads with {} jobs stored", ids.len());
    summary.insert("stored_jobs".into(), json!(ids.len()));
    let ids = Arc::new(ids);
    let get = Op::Get(ids);
    let (get, elapsed) = drive(&client, &daemon.base, get, GET_REQUESTS, READ_CAP, args).await?;
    summary.insert("get".into(), stats(get, elapsed));
    let list = Op::List;
    let (list, elapsed) = drive(&client, &daemon.base, list, LIST_REQUESTS, READ_CAP, args).await?;
    summary.insert("list".into(), stats(list, elapsed));
    summary.insert("loaded_rss_mib".into(), json!(rss_mib(daemon.pid)?));
    // A failed shutdown does not invalidate the measurements: record it, fail at the end.
    let stopped = daemon.stop().await;
    if let Err(err) = &stopped {
        eprintln!("   sk8 did not shut down cleanly: {err:#}");
    }
    summary.insert("clean_shutdown".into(), json!(stopped.is_ok()));
    Ok(summary)
}

/// The sustained submit phase, then the top-up to `--seed-jobs`, each followed by a wait for
/// the reconciler to finish every job; returns the ids of all jobs created.
async fn measure_writes(
    client: &reqwest::Client,
    base: &str,
    args: &Args,
    summary: &mut Summary,
) -> anyhow::Result<Vec<String>> {
    eprintln!(
        "   {} s of POST /v1/jobs, {} clients",
        args.seconds, args.concurrency
    );
    let seconds = Duration::from_secs(args.seconds);
    let (mut submit, elapsed) = drive(client, base, Op::Submit, usize::MAX, seconds, args).await?;
    let mut ids = std::mem::take(&mut submit.ids);
    summary.insert("submit".into(), stats(submit, elapsed));
    let drain = wait_idle(client, base).await?;
    summary.insert("submit_drain_s".into(), json!(round(drain.as_secs_f64())));
    // The reconciler's own rate: every job submitted, finished in the load plus the drain.
    let reconciled = ids.len() as f64 / (elapsed + drain).as_secs_f64();
    summary.insert("reconciled_per_second".into(), json!(round(reconciled)));

    let top_up = args.seed_jobs.saturating_sub(ids.len());
    eprintln!("   storing {top_up} more jobs, to {}", args.seed_jobs);
    let (mut seeded, elapsed) = drive(client, base, Op::Submit, top_up, IDLE_TIMEOUT, args).await?;
    ids.append(&mut seeded.ids);
    summary.insert("seed".into(), stats(seeded, elapsed));
    let drain = wait_idle(client, base).await?;
    summary.insert("seed_drain_s".into(), json!(round(drain.as_secs_f64())));
    Ok(ids)
}

/// Polls until no job is left for the reconciler; returns how long that took.
async fn wait_idle(client: &reqwest::Client, base: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let mut busy = false;
        for state in ["QUEUED", "SUBMITTED", "RUNNING"] {
            let url = format!("{base}/v1/jobs?state={state}&limit=1");
            let page: Value = client
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            busy |= page["jobs"].as_array().is_some_and(|jobs| !jobs.is_empty());
        }
        if !busy {
            return Ok(started.elapsed());
        }
        if started.elapsed() > IDLE_TIMEOUT {
            bail!("the reconciler still had live jobs after {IDLE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

enum Op {
    Submit,
    /// Get random jobs among these ids.
    Get(Arc<Vec<String>>),
    List,
}

/// What the workers share: the operation, a counter of requests started and when to stop.
struct Plan {
    op: Op,
    next: AtomicUsize,
    limit: usize,
    deadline: Instant,
    /// Jobs are named from this many names (0: each its own).
    names: usize,
}

#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    /// Ids of the jobs created (submits only).
    ids: Vec<String>,
    errors: usize,
}

/// Runs `op` from `--concurrency` workers sharing one client until `limit` requests are sent
/// or `duration` has passed; returns the merged samples and the wall time.
async fn drive(
    client: &reqwest::Client,
    base: &str,
    op: Op,
    limit: usize,
    duration: Duration,
    args: &Args,
) -> anyhow::Result<(Samples, Duration)> {
    let deadline = Instant::now() + duration;
    let next = AtomicUsize::new(0);
    let plan = Arc::new(Plan {
        op,
        next,
        limit,
        deadline,
        names: args.names,
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency as u64)
        .map(|w| tokio::spawn(worker(client.clone(), base.to_owned(), plan.clone(), w)))
        .collect();
    let mut all = Samples::default();
    for worker in workers {
        let mut samples = worker.await?;
        all.latencies.append(&mut samples.latencies);
        all.ids.append(&mut samples.ids);
        all.errors += samples.errors;
    }
    Ok((all, started.elapsed()))
}

async fn worker(client: reqwest::Client, base: String, plan: Arc<Plan>, seed: u64) -> Samples {
    let mut samples = Samples::default();
    // Never zero: xorshift would stay at zero.
    let mut rng = (random_seed() ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    loop {
        let i = plan.next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.limit || Instant::now() >= plan.deadline {
            return samples;
        }
        let (request, expected) = match &plan.op {
            Op::Submit => {
                if i > 0 && i.is_multiple_of(10_000) {
                    eprintln!("   {i} submitted");
                }
                let post = client.post(format!("{base}/v1/jobs"));
                (
                    post.header("content-type", "application/json")
                        .body(job_spec(i, plan.names)),
                    201,
                )
            }
            Op::Get(ids) => {
                let id = &ids[(xorshift(&mut rng) % ids.len() as u64) as usize];
                (client.get(format!("{base}/v1/jobs/{id}")), 200)
            }
            Op::List => (
                client.get(format!("{base}/v1/jobs?team=bench&limit=50")),
                200,
            ),
        };
        let start = Instant::now();
        match send(request, expected).await {
            Ok(body) => {
                samples.latencies.push(start.elapsed());
                if let Op::Submit = plan.op {
                    samples.ids.extend(created_id(&body));
                }
            }
            Err(err) => {
                if samples.errors == 0 {
                    eprintln!("   first error of a worker: {err:#}");
                }
                samples.errors += 1;
            }
        }
    }
}

/// The `i`th job: its own name, or one of `names` names.
fn job_spec(i: usize, names: usize) -> String {
    let name = format!("bench-{}", if names > 0 { i % names } else { i });
    json!({ "team": "bench", "env": "dev", "name": name, "mainApplicationFile": "local:///opt/x.py" })
        .to_string()
}

fn created_id(body: &[u8]) -> Option<String> {
    let job: Value = serde_json::from_slice(body).ok()?;
    job["id"].as_str().map(str::to_owned)
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Successes per second and latency percentiles in milliseconds (sorting every sample).
fn stats(mut samples: Samples, elapsed: Duration) -> Value {
    let sorted = &mut samples.latencies;
    sorted.sort_unstable();
    let at = |q: f64| {
        let index = (sorted.len().saturating_sub(1) as f64 * q).round() as usize;
        sorted.get(index).map(|d| round(d.as_secs_f64() * 1e3))
    };
    let rate = sorted.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    json!({
        "ok": sorted.len(), "errors": samples.errors, "per_second": round(rate),
        "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0),
    })
}

/// The table's columns: a header and where its value is in the summary (a JSON pointer).
const COLUMNS: [(&str, &str); 17] = [
    ("engine", "/engine"),
    ("submits/s", "/submit/per_second"),
    ("submit p50 ms", "/submit/p50_ms"),
    ("submit p99 ms", "/submit/p99_ms"),
    ("submit max ms", "/submit/max_ms"),
    ("submit errors", "/submit/errors"),
    ("drain s", "/submit_drain_s"),
    ("reconciled/s", "/reconciled_per_second"),
    ("jobs stored", "/stored_jobs"),
    ("GET p50 ms", "/get/p50_ms"),
    ("GET p99 ms", "/get/p99_ms"),
    ("GET/s", "/get/per_second"),
    ("list p50 ms", "/list/p50_ms"),
    ("list p99 ms", "/list/p99_ms"),
    ("idle RSS MiB", "/idle_rss_mib"),
    ("RSS after MiB", "/loaded_rss_mib"),
    ("ready ms", "/ready_ms"),
];

fn print_table(summaries: &[Value]) {
    let headers: Vec<_> = COLUMNS.iter().map(|(header, _)| *header).collect();
    println!("\n| {} |", headers.join(" | "));
    println!("|{}", "---|".repeat(COLUMNS.len()));
    for summary in summaries {
        let cells: Vec<_> = COLUMNS
            .iter()
            .map(|(_, pointer)| match summary.pointer(pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(value) => value.to_string(),
                None => "-".into(),
            })
            .collect();
        println!("| {} |", cells.join(" | "));
    }
}
