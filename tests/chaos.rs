//! The chaos suite: 3 replicas of the real binary on one Postgres (reached through a proxy the
//! test cuts), 2 fake clusters a team may both run on, and a sustained submit load with retries
//! by idempotency key; meanwhile `kill -9` of the jobs lease holder, SIGSTOP of a replica, a
//! Postgres restart (every connection terminated) and stop, one cluster frozen (silent) and
//! one cut off. Checked at the end: every accepted job present exactly once and finished,
//! exactly one SparkApplication per attempt, none deleted before sk8 recorded it, the team cap
//! never exceeded, no HTTP 500.
//!
//! Test-sized by default; `SK8_CHAOS_SECONDS=N` stretches the load (benches/chaos.sh runs it
//! longer and docs/benchmarks.md has its figures).

mod common;
#[path = "common/kube.rs"]
mod kube;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::{self, TcpProxy};
use common::{Engine, TestApp, TestDb};
use kube::Cluster;
use serde_json::{Value, json};
use sqlx::Connection;

const NAMESPACE: &str = "sjns-payments-dev";
const CAP: i64 = 20;
/// Between one client's accepted submits: a sustained load the cap lets drain (16 jobs/s).
const PACE: Duration = Duration::from_millis(250);
/// How long one submit may take before the client retries elsewhere (a paused replica).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);
const FINISH_WAIT: Duration = Duration::from_secs(300);

/// What the clients saw.
#[derive(Default)]
struct Ledger {
    /// Idempotency key → the job id every accepted answer named.
    accepted: HashMap<String, Vec<String>>,
    statuses: HashMap<u16, usize>,
}

struct Fleet {
    db: TestDb,
    proxy: TcpProxy,
    east: Cluster,
    west: Cluster,
    apps: Vec<TestApp>,
}

async fn fleet() -> Fleet {
    let (east, west) = (Cluster::start().await, Cluster::start().await);
    let db = TestDb::create().await;
    let proxy = TcpProxy::start(proxy::postgres_addr(&db.url)).await;
    let url = db.url.replacen(
        &proxy::postgres_addr(&db.url).to_string(),
        &proxy.addr.to_string(),
        1,
    );
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    for cluster in [&east, &west] {
        cluster.create("/api/v1/namespaces", &namespace).await;
    }
    let config = json!({
        "store": {"url": url, "acquireTimeoutSeconds": 1},
        "backend": {"kind": "kubernetes", "kubernetes": {
            "clusters": [
                {"name": "east", "kubeconfig": &*east.kubeconfig},
                {"name": "west", "kubeconfig": &*west.kubeconfig},
            ],
            "routes": {"payments": ["east", "west"]},
            "requestTimeoutSeconds": 3,
        }},
        "limits": {"maxRunningJobsPerTeam": CAP},
        "reconciler": {"orphanSweepSeconds": 2},
    });
    let mut apps = Vec::new();
    let mut config = config;
    for n in 0..3 {
        let mut options = common::Options::new(Engine::Sqlite);
        options.extra = config.clone();
        apps.push(TestApp::spawn(options).await);
        if n == 0 {
            common::merge(&mut config, &common::shared_history(&apps[0]));
        }
    }
    Fleet {
        db,
        proxy,
        east,
        west,
        apps,
    }
}

fn job(n: usize) -> Value {
    json!({
        "team": "payments", "env": "dev", "name": format!("chaos-{n}"),
        "mainApplicationFile": "local:///opt/spark/jobs/ledger.py",
        "labels": {"fake.sk8.dev/outcome": "Succeeded", "fake.sk8.dev/step-ms": "50"},
    })
}

/// Submits job after job, each retried with its key on the next replica until accepted.
async fn load(
    bases: Vec<String>,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    client: usize,
) {
    let http = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap();
    let mut n = 0;
    let mut replica = client;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("chaos-{client}-{n}");
        let body = job(n);
        loop {
            replica = (replica + 1) % bases.len();
            let sent = http
                .post(format!("{}/v1/jobs", bases[replica]))
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await;
            let Ok(response) = sent else {
                continue; // a killed or paused replica: the next one
            };
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or_default();
            let accepted =
                matches!(status, 200 | 201).then(|| answer["id"].as_str().unwrap().to_owned());
            {
                let mut ledger = ledger.lock().unwrap();
                *ledger.statuses.entry(status).or_default() += 1;
                if let Some(id) = &accepted {
                    ledger
                        .accepted
                        .entry(key.clone())
                        .or_default()
                        .push(id.clone());
                }
            }
            if accepted.is_some() {
                tokio::time::sleep(PACE).await;
                break;
            }
            if stop.load(Ordering::Relaxed) && status != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The most of the team's jobs started at once, read from the database in one statement.
async fn watch_cap(url: String, stop: Arc<AtomicBool>) -> i64 {
    let mut most = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(mut db) = sqlx::PgConnection::connect(&url).await {
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM jobs WHERE team = 'payments' \
                     AND state IN ('SUBMITTED', 'RUNNING', 'CANCELLING')",
                )
                .fetch_one(&mut db)
                .await
                else {
                    break;
                };
                most = most.max(n);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    most
}

/// Which live replica holds the jobs lease (`times`-th take in its log), waiting for one.
async fn holder_after(apps: &[TestApp], skip: &[usize], since: Instant) -> (usize, Duration) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (i, app) in apps.iter().enumerate() {
            if skip.contains(&i) {
                continue;
            }
            let logs = app.logs();
            let took = logs
                .lines()
                .any(|l| l.contains("lease taken") && l.contains(r#""lease":"jobs""#));
            if took {
                return (i, since.elapsed());
            }
        }
        assert!(Instant::now() < deadline, "no replica took the jobs lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn seconds() -> u64 {
    std::env::var("SK8_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_loses_nothing_duplicates_nothing_and_answers_no_500() {
    let mut fleet = fleet().await;
    let bases: Vec<String> = fleet.apps.iter().map(|a| a.base.clone()).collect();
    let (first, _) = holder_after(&fleet.apps, &[], Instant::now()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let clients: Vec<_> = (0..4)
        .map(|c| tokio::spawn(load(bases.clone(), stop.clone(), ledger.clone(), c)))
        .collect();
    let cap = tokio::spawn(watch_cap(fleet.db.url.clone(), stop.clone()));
    let phase = Duration::from_secs(seconds() / 8).max(Duration::from_secs(2));

    tokio::time::sleep(phase).await;
    fleet.apps[first].kill9();
    let (second, failover) = holder_after(&fleet.apps, &[first], Instant::now()).await;
    eprintln!(
        "chaos: kill -9 of the holder; replica {second} acting {:.1} s later",
        failover.as_secs_f64()
    );

    tokio::time::sleep(phase).await;
    let paused = fleet.apps[second].pid();
    common::signal(paused, libc::SIGSTOP);
    let others: Vec<usize> = [first, second].into();
    let stopped_at = Instant::now();
    let (third, failover_stop) = holder_after(&fleet.apps, &others, stopped_at).await;
    eprintln!(
        "chaos: SIGSTOP of the holder; replica {third} acting {:.1} s later",
        failover_stop.as_secs_f64()
    );
    tokio::time::sleep(phase).await;
    common::signal(paused, libc::SIGCONT);

    tokio::time::sleep(phase).await;
    proxy::terminate_connections(&fleet.db).await;
    tokio::time::sleep(phase).await;
    fleet.proxy.cut();
    tokio::time::sleep(Duration::from_secs(15).min(phase * 3)).await;
    fleet.proxy.restore();
    eprintln!("chaos: Postgres restarted, then stopped and started again");

    tokio::time::sleep(phase).await;
    fleet.east.set_silent(true);
    tokio::time::sleep(phase * 2).await;
    fleet.east.set_silent(false);
    fleet.west.set_reachable(false);
    tokio::time::sleep(phase * 2).await;
    fleet.west.set_reachable(true);
    eprintln!("chaos: east frozen, then west cut off");
    tokio::time::sleep(phase).await;

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let most_started = cap.await.unwrap();
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    check(&fleet, &ledger, most_started).await;
}

async fn check(fleet: &Fleet, ledger: &Ledger, most_started: i64) {
    let duplicated = ledger
        .accepted
        .values()
        .filter(|ids| ids.iter().any(|id| id != &ids[0]))
        .count();
    all_finished(fleet).await;
    let mut early_deletions = 0;
    let mut apps_not_one_per_attempt = Vec::new();
    for ids in ledger.accepted.values() {
        let id = &ids[0];
        let done = fleet.apps[2].job(id).await;
        let attempts: Vec<u64> = done["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| !a["backendRef"].is_null())
            .filter_map(|a| a["attempt"].as_u64())
            .collect();
        let mut held = attempts_held(&fleet.east, id).await;
        held.extend(attempts_held(&fleet.west, id).await);
        for attempt in &attempts {
            // An ended attempt's application goes once sk8 has recorded it (its driver log
            // archived); gone before that is too early.
            if !held.contains(attempt) && !released_after_recording(fleet, id, *attempt).await {
                early_deletions += 1;
            }
        }
        let duplicated = held.len() > attempts.len() || held.iter().any(|a| !attempts.contains(a));
        if duplicated {
            apps_not_one_per_attempt.push((id.clone(), held, attempts));
        }
    }
    let stored = stored_jobs(&fleet.db).await;
    let five_hundreds = ledger.statuses.get(&500).copied().unwrap_or(0);
    eprintln!(
        "chaos: {} accepted, {stored} stored, {duplicated} duplicated, {early_deletions} deleted early, \
         {} not one application per attempt, most started at once {most_started} (cap {CAP}), \
         answers {:?}",
        ledger.accepted.len(),
        apps_not_one_per_attempt.len(),
        ledger.statuses
    );
    assert_eq!(
        stored,
        ledger.accepted.len() as i64,
        "every accepted job stored once"
    );
    assert_eq!(duplicated, 0);
    assert_eq!(five_hundreds, 0, "HTTP 500s");
    assert!(
        most_started <= CAP,
        "{most_started} started at once, cap {CAP}"
    );
    for (id, _, _) in &apps_not_one_per_attempt {
        let (_, events) = fleet.apps[2].get(&format!("/v1/jobs/{id}/events")).await;
        eprintln!("chaos: job {id} events: {events}");
    }
    assert_eq!(early_deletions, 0, "{apps_not_one_per_attempt:?}");
    assert!(
        apps_not_one_per_attempt.is_empty(),
        "(job, attempts held by applications, attempts submitted): {apps_not_one_per_attempt:?}"
    );
}

/// Waits until no job is live; on timeout, shows the states and each replica's log tail.
async fn all_finished(fleet: &Fleet) {
    let mut conn = sqlx::PgConnection::connect(&fleet.db.url).await.unwrap();
    let deadline = Instant::now() + FINISH_WAIT;
    loop {
        let states: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        if states
            .iter()
            .all(|(s, _)| common::TERMINAL.contains(&s.as_str()))
        {
            return;
        }
        if Instant::now() > deadline {
            for app in &fleet.apps {
                eprintln!(
                    "---- replica log tail:\n{}",
                    common::tail(&app.logs(), 3000)
                );
            }
            panic!("jobs still live {FINISH_WAIT:?} after the load: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The attempt numbers of the SparkApplications a cluster holds for a job (one entry each).
async fn attempts_held(cluster: &Cluster, id: &str) -> Vec<u64> {
    let path =
        format!("/apis/spark.apache.org/v1/sparkapplications?labelSelector=sk8.dev/job-id={id}");
    let (_, list) = cluster.get(&path).await;
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|app| {
            app["metadata"]["labels"]["sk8.dev/attempt"]
                .as_str()?
                .parse()
                .ok()
        })
        .collect()
}

/// Whether attempt `n` of `id` was recorded with its driver log archived, waiting (bounded)
/// for a record still pending: the recorder releases the application after recording.
async fn released_after_recording(fleet: &Fleet, id: &str, n: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, record) = fleet.apps[2]
            .get(&format!("/v1/jobs/{id}/attempts/{n}"))
            .await;
        if record["record"] == "recorded" {
            if record["driverLog"].is_null() {
                let (_, events) = fleet.apps[2].get(&format!("/v1/jobs/{id}/events")).await;
                let said = common::mentions(&fleet.apps, id);
                eprintln!(
                    "chaos: attempt {n} of {id} recorded without its driver log: {record}\n\
                     events: {events}\nreplicas' log lines about it:\n{said}"
                );
            }
            return !record["driverLog"].is_null();
        }
        if Instant::now() > deadline {
            eprintln!("chaos: attempt {n} of {id} not recorded within 60 s: {record}");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stored_jobs(db: &TestDb) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}
