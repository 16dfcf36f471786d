//! Scale of the Kubernetes backend: `--apps` jobs (default 10,000) submitted to the real
//! `sk8 serve` (release build, SQLite store unless `--store-url`) pointed at the project's fake
//! API server, whose
//! fake operator drives every SparkApplication to Succeeded (`--step-ms` per state, default
//! 100). Measured: submits/s at the API, jobs finished per second end to end, the delay from a
//! status change in the API server to the job's state in the store (p50/p99/max), and sk8's
//! peak RSS.
//!
//! The delay: this bench watches the fake itself and notes when each application's status turns
//! `Succeeded`; sk8 records `finishedAt` (milliseconds) when it stores SUCCEEDED. Both clocks
//! are this machine's.
//!
//! Run: `cargo bench --bench kube_scale -- [--apps N] [--concurrency C] [--step-ms MS]
//! [--store-url postgres://…/an-empty-database]`.
//! Results: docs/benchmarks.md.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use common::{Daemon, round, rss_mib, send};
use serde_json::{Value, json};
use sk8_fake_kube::{FakeKube, OperatorOptions};

const NAMESPACE: &str = "sjns-bench-dev";

struct Args {
    apps: usize,
    concurrency: usize,
    step: Duration,
    /// sk8's `store.url`; empty: the default SQLite file.
    store_url: String,
}

/// When the fake reported each application Succeeded, in Unix milliseconds.
type Seen = Arc<Mutex<HashMap<String, i64>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let kube = start_cluster(&args).await?;
    let kubeconfig = tempfile::NamedTempFile::new()?.into_temp_path();
    kube.write_kubeconfig(&kubeconfig)?;
    let seen: Seen = Arc::default();
    tokio::spawn(watch_succeeded(kube.url().to_owned(), seen.clone()));
    let daemon = Daemon::start(json!({
        "store": { "url": args.store_url },
        "backend": { "kind": "kubernetes", "kubernetes": { "kubeconfig": &*kubeconfig } },
    }))
    .await?;
    let summary = run(&args, &daemon, &seen).await?;
    daemon.stop().await?;
    println!("{}", Value::Object(summary));
    Ok(())
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        apps: 10_000,
        concurrency: 16,
        step: Duration::from_millis(100),
        store_url: String::new(),
    };
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--apps" => args.apps = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--step-ms" => args.step = Duration::from_millis(value.parse()?),
            "--store-url" => args.store_url = value,
            _ => {
                bail!("unknown argument {flag}: use --apps, --concurrency, --step-ms, --store-url")
            }
        }
    }
    Ok(args)
}

/// The fake cluster, with history enough that no watch of this run is ever told 410.
async fn start_cluster(args: &Args) -> anyhow::Result<FakeKube> {
    let kube = FakeKube::start_with(sk8_fake_kube::Options {
        history_limit: 50 * args.apps.max(1000),
        operator: Some(OperatorOptions {
            step: args.step,
            namespaces: None,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await?;
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    let request = reqwest::Client::new()
        .post(format!("{}/api/v1/namespaces", kube.url()))
        .json(&namespace);
    send(request, 201).await?;
    Ok(kube)
}

/// Notes the moment each sk8 application's status first says Succeeded.
/// Watches the fake until the bench ends. A watch the fake cuts off (this process falls behind
/// its broadcast buffer on a loaded machine) resumes from the last resourceVersion seen, which
/// the fake's history still holds, so no transition is missed.
async fn watch_succeeded(url: String, seen: Seen) -> anyhow::Result<()> {
    let mut last_version = String::new();
    loop {
        let mut watch = format!(
            "{url}/apis/spark.apache.org/v1/sparkapplications?watch=true&labelSelector=app.kubernetes.io/managed-by%3Dsk8"
        );
        if !last_version.is_empty() {
            watch.push_str(&format!("&resourceVersion={last_version}"));
        }
        let mut response = reqwest::get(watch).await?;
        let mut pending = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let now = unix_ms();
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let app = &event["object"];
                if event["type"] == "ERROR" {
                    break;
                }
                if let Some(version) = app["metadata"]["resourceVersion"].as_str() {
                    last_version = version.to_owned();
                }
                if app["status"]["currentState"]["currentStateSummary"] == "Succeeded"
                    && let Some(name) = app["metadata"]["name"].as_str()
                {
                    seen.lock().unwrap().entry(name.to_owned()).or_insert(now);
                }
            }
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn run(
    args: &Args,
    daemon: &Daemon,
    seen: &Seen,
) -> anyhow::Result<serde_json::Map<String, Value>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();
    eprintln!("== submitting {} jobs", args.apps);
    let (ids, latencies) = submit_all(&client, &daemon.base, args).await?;
    let submit_elapsed = started.elapsed();
    eprintln!("== waiting for every job to succeed");
    let peak_rss = wait_all_succeeded(&client, &daemon.base, daemon.pid, ids.len()).await?;
    let total = started.elapsed();
    let delays = status_delays(&client, &daemon.base, &ids, seen).await?;
    let mut summary = serde_json::Map::new();
    summary.insert("apps".into(), json!(ids.len()));
    summary.insert(
        "submits_per_second".into(),
        json!(round(ids.len() as f64 / submit_elapsed.as_secs_f64())),
    );
    summary.insert(
        "submit_ms".into(),
        percentiles(latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect()),
    );
    summary.insert(
        "finished_per_second".into(),
        json!(round(ids.len() as f64 / total.as_secs_f64())),
    );
    summary.insert("total_s".into(), json!(round(total.as_secs_f64())));
    summary.insert("status_delay_ms".into(), percentiles(delays));
    summary.insert("peak_rss_mib".into(), json!(peak_rss));
    Ok(summary)
}

/// Submits every job from `--concurrency` workers; returns the ids and the latencies.
async fn submit_all(
    client: &reqwest::Client,
    base: &str,
    args: &Args,
) -> anyhow::Result<(Vec<String>, Vec<Duration>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, base, next, apps) =
                (client.clone(), base.to_owned(), next.clone(), args.apps);
            tokio::spawn(async move {
                let mut done = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < apps {
                    let body = json!({"team": "bench", "env": "dev", "name": "scale",
                                      "mainApplicationFile": "local:///opt/x.py"});
                    let start = Instant::now();
                    let created =
                        send(client.post(format!("{base}/v1/jobs")).json(&body), 201).await?;
                    let job: Value = serde_json::from_slice(&created)?;
                    let id = job["id"].as_str().context("a job id")?.to_owned();
                    done.push((id, start.elapsed()));
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    Ok(all.into_iter().unzip())
}

/// Polls sk8's job gauge until `expected` jobs succeeded, sampling sk8's RSS; returns the peak.
async fn wait_all_succeeded(
    client: &reqwest::Client,
    base: &str,
    pid: u32,
    expected: usize,
) -> anyhow::Result<f64> {
    let mut peak: f64 = 0.0;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        peak = peak.max(rss_mib(pid)?);
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let succeeded = gauge(&metrics, r#"sk8_jobs{state="SUCCEEDED"}"#);
        let failed = gauge(&metrics, r#"sk8_jobs{state="FAILED"}"#);
        if failed > 0 {
            bail!("{failed} jobs failed");
        }
        if succeeded >= expected {
            return Ok(peak);
        }
        if Instant::now() > deadline {
            bail!("only {succeeded} of {expected} jobs succeeded in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn gauge(metrics: &str, series: &str) -> usize {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as usize)
}

/// For every job: its `finishedAt` minus the moment the fake reported its application
/// Succeeded, in milliseconds.
async fn status_delays(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
    seen: &Seen,
) -> anyhow::Result<Vec<f64>> {
    let seen = seen.lock().unwrap().clone();
    let mut delays = Vec::with_capacity(ids.len());
    for id in ids {
        let body = send(client.get(format!("{base}/v1/jobs/{id}")), 200).await?;
        let job: Value = serde_json::from_slice(&body)?;
        let finished = job["finishedAt"].as_str().context("finishedAt")?;
        let finished = chrono::DateTime::parse_from_rfc3339(finished)?.timestamp_millis();
        let Some(reported) = seen.get(&format!("sk8-{id}-1")) else {
            bail!("the watch never saw job {id}'s application succeed");
        };
        delays.push((finished - reported).max(0) as f64);
    }
    Ok(delays)
}

fn percentiles(mut samples: Vec<f64>) -> Value {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let index = (samples.len().saturating_sub(1) as f64 * q).round() as usize;
        samples.get(index).copied().map(round)
    };
    json!({"p50": at(0.5), "p99": at(0.99), "max": at(1.0), "n": samples.len()})
}
