//! `cargo bench --bench advice`: sizing advice for a signature with 1,000 runs in its history,
//! on SQLite and Postgres. Times what `GET /v1/advice` does besides HTTP and the namespace
//! lookup: the store read of the signature's latest runs (`Store::signature_runs`) and
//! `advice::advise`. The team also holds 4,000 runs of other jobs, so the read must not scan
//! the team. Every run carries the summary of a real Spark event log
//! (`tests/fixtures/eventlogs/zstd`). Goal: < 20 ms. Results: docs/benchmarks.md.
//!
//! Postgres: `DATABASE_URL` is an admin URL (default the local server); a database is made
//! for the run and dropped after.

mod common;

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use sk8::advice::{self, Maxima, Profile};
use sk8::domain::jobspec::Format;
use sk8::domain::{Attempt, Job, JobSpec, JobState, SpecDefaults};
use sk8::history::{Location, Objects, RunSummary, StoreOptions as HistoryOptions};
use sk8::record::{AttemptRecord, RecordState};
use sk8::store::{InsertOutcome, Store, StoreOptions};

use common::ScratchPostgres;

const RUNS: usize = 1_000;
const OTHER_RUNS: usize = 4_000;
const ROUNDS: usize = 300;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let summary = fixture_summary().await?;
    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}", dir.path().join("sk8.db").display());
    let results = [
        ("sqlite", bench(&sqlite, &summary).await?),
        ("postgres", {
            let db = ScratchPostgres::create().await?;
            let result = bench(&db.url, &summary).await;
            db.drop_it().await?;
            result?
        }),
    ];
    println!("| engine | runs in history | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    for (engine, times) in results {
        println!(
            "| {engine} | {RUNS} (+{OTHER_RUNS} of other jobs) | {:.2} ms | {:.2} ms | {:.2} ms |",
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            times.iter().sum::<f64>() / times.len() as f64
        );
    }
    Ok(())
}

/// The summary of the fixture's real event log, as the recorder builds it.
async fn fixture_summary() -> anyhow::Result<RunSummary> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eventlogs/zstd");
    let objects = Objects::open(&Location::local(dir), &HistoryOptions::default())?;
    let summary = sk8::history::summarize(&objects, "local-1796451683619").await;
    anyhow::ensure!(
        summary.tasks.total > 0,
        "the fixture log gave no summary: {summary:?}"
    );
    Ok(summary)
}

fn spec(name: &str) -> anyhow::Result<JobSpec> {
    let body = serde_json::json!({
        "team": "growth", "env": "prod", "name": name,
        "mainApplicationFile": "local:///jobs/nightly.py",
        "executor": {"memory": "4g", "instances": 4},
    });
    let defaults = SpecDefaults {
        spark_version: "4.0.1".into(),
        image: "apache/spark:4.0.1".into(),
    };
    JobSpec::parse(body.to_string().as_bytes(), Format::Json, &defaults)
        .map_err(|e| anyhow::anyhow!("spec: {e}"))
}

/// Seeds the history, then times `ROUNDS` advice computations (ms each).
async fn bench(url: &str, summary: &RunSummary) -> anyhow::Result<Vec<f64>> {
    let options = StoreOptions {
        url: url.to_owned(),
        max_connections: 8,
        acquire_timeout: Duration::from_secs(30),
    };
    let store = Store::connect(&options).await.context("open the store")?;
    let started = Instant::now();
    for i in 0..RUNS + OTHER_RUNS {
        let name = if i % 5 == 0 { "nightly" } else { "other" };
        let recorded = (name == "nightly").then_some(summary);
        seed_run(&store, spec(name)?, recorded).await?;
    }
    eprintln!(
        "seeded {} runs in {:.1} s",
        RUNS + OTHER_RUNS,
        started.elapsed().as_secs_f64()
    );
    let current = spec("nightly")?;
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS + 20 {
        let start = Instant::now();
        let history = store
            .signature_runs("growth", "prod", "nightly", 20)
            .await?;
        let advice = advice::advise(&current, &history, Profile::Balanced, Maxima::default());
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(!advice.recommendations.is_empty(), "no advice: {advice:?}");
        // The first rounds warm the caches and the pool.
        if round >= 20 {
            times.push(elapsed);
        }
    }
    store.close().await;
    Ok(times)
}

/// One succeeded job with its recorded attempt (a summary only for `recorded`).
async fn seed_run(
    store: &Store,
    spec: JobSpec,
    recorded: Option<&RunSummary>,
) -> anyhow::Result<()> {
    let job = Job::new(spec, None, Utc::now());
    let InsertOutcome::Created(mut job) = store.job_insert(&job, &job.spec.digest()).await? else {
        anyhow::bail!("a fresh job was not created");
    };
    let now = Utc::now();
    let attempt = Attempt {
        job_id: job.id.clone(),
        attempt: 1,
        backend: "local".into(),
        backend_ref: Some(serde_json::json!({"pid": 1})),
        state: JobState::Succeeded,
        created_at: now,
        ended_at: Some(now),
        failure_reason: None,
        failure_class: None,
        remediation: None,
    };
    job.state = JobState::Succeeded;
    job.attempts = 1;
    anyhow::ensure!(
        store.job_save(&mut job, Some(&attempt), None).await?,
        "saved"
    );
    let mut record = AttemptRecord::pending(job.id.clone(), 1, now);
    if let Some(summary) = recorded {
        record.state = RecordState::Recorded;
        record.summary = Some(serde_json::to_value(summary)?);
        record.recorded_at = Some(now);
    }
    store.record_save(&record, RecordState::Pending).await?;
    Ok(())
}

fn percentile(times: &[f64], q: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}
