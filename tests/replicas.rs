//! Several replicas of the real binary on one Postgres database and one fake cluster: the
//! background work is done by the holder of its lease while every replica serves the API;
//! when the holder is killed (`kill -9`) or paused (SIGSTOP) another takes over within the
//! lease's TTL, a resumed ex-holder neither overwrites its successor's writes nor deletes
//! anything, and `maxRunningJobsPerTeam` holds exactly across replicas.

mod common;
#[path = "common/kube.rs"]
mod kube;

use std::time::{Duration, Instant};

use common::{Engine, TestApp, TestDb};
use kube::Cluster;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(45);
const NAMESPACE: &str = "sjns-payments-dev";
/// What the log line of a replica that takes the jobs lease says.
const TOOK_JOBS: &str = r#""lease":"jobs""#;

/// `n` replicas on one fresh database, pointed at `cluster`, with `extra` config, sharing one
/// history location (the first replica's).
async fn replicas(cluster: &Cluster, db: &TestDb, n: usize, extra: Value) -> Vec<TestApp> {
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    cluster.create("/api/v1/namespaces", &namespace).await;
    let mut config = json!({"store": {"url": db.url}});
    common::merge(&mut config, &extra);
    let mut apps = vec![cluster.sk8(Engine::Sqlite, config.clone()).await];
    common::merge(&mut config, &common::shared_history(&apps[0]));
    for _ in 1..n {
        apps.push(cluster.sk8(Engine::Sqlite, config.clone()).await);
    }
    apps
}

fn job(name: &str, outcome: &str) -> Value {
    json!({
        "team": "payments", "env": "dev", "name": name,
        "mainApplicationFile": "local:///opt/spark/jobs/ledger.py",
        "labels": {"fake.sk8.dev/outcome": outcome},
    })
}

/// Whether a replica's log says it took the jobs lease (`times` times at least).
fn took_jobs_lease(app: &TestApp, times: usize) -> bool {
    app.logs()
        .lines()
        .filter(|l| l.contains("lease taken") && l.contains(TOOK_JOBS))
        .count()
        >= times
}

/// The index of the replica that holds the jobs lease, once one does.
async fn jobs_holder(apps: &[TestApp], skip: Option<usize>) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let holder = (0..apps.len())
            .filter(|i| Some(*i) != skip)
            .find(|i| took_jobs_lease(&apps[*i], 1));
        if let Some(holder) = holder {
            return holder;
        }
        assert!(Instant::now() < deadline, "no replica took the jobs lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many SparkApplications the cluster holds for a job.
async fn applications_of(cluster: &Cluster, id: &str) -> usize {
    let path =
        format!("/apis/spark.apache.org/v1/sparkapplications?labelSelector=sk8.dev/job-id={id}");
    let (_, list) = cluster.get(&path).await;
    list["items"].as_array().map_or(0, Vec::len)
}

async fn submit(app: &TestApp, body: &Value) -> String {
    app.submit(body).await["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_holder_does_the_work_and_another_takes_over_when_it_dies() {
    let cluster = Cluster::start().await;
    let db = TestDb::create().await;
    let mut apps = replicas(&cluster, &db, 2, json!({})).await;
    let holder = jobs_holder(&apps, None).await;
    let other = 1 - holder;
    // Submitted through the replica without the lease: its holder runs it.
    let id = submit(&apps[other], &job("via-the-other", "Succeeded")).await;
    let done = apps[other].wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    assert!(
        !took_jobs_lease(&apps[other], 1),
        "only one replica holds the jobs lease"
    );

    apps[holder].kill9();
    let killed = Instant::now();
    let id = submit(&apps[other], &job("after-the-kill", "Succeeded")).await;
    let deadline = Instant::now() + WAIT;
    while !took_jobs_lease(&apps[other], 1) {
        assert!(Instant::now() < deadline, "the lease was never taken over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "failover: the survivor took the jobs lease {:.1} s after kill -9 of the holder",
        killed.elapsed().as_secs_f64()
    );
    let done = apps[other].wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    // Applied once; once its record is gathered sk8 releases it, so at most one is left.
    assert!(applications_of(&cluster, &id).await <= 1);
    let record = apps[other].wait_recorded(&id, WAIT).await;
    assert!(record["driverLog"].as_str().is_some(), "{record}");
}

/// A paused holder loses its lease to another replica; once resumed it stops acting (its
/// renewal is too old), its writes under the old term are refused, and it deletes nothing:
/// every finished job's application is still there (kept `failedRetainSeconds`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_ex_holder_neither_overwrites_nor_deletes() {
    let cluster = Cluster::start().await;
    let db = TestDb::create().await;
    let extra = json!({"reconciler": {"orphanSweepSeconds": 1}});
    let apps = replicas(&cluster, &db, 2, extra).await;
    let holder = jobs_holder(&apps, None).await;
    let other = 1 - holder;
    let running = submit(&apps[other], &job("long", "Running")).await;
    apps[other].wait_for(&running, &["RUNNING"], WAIT).await;

    common::signal(apps[holder].pid(), libc::SIGSTOP);
    let paused = Instant::now();
    let deadline = Instant::now() + WAIT;
    while !took_jobs_lease(&apps[other], 1) {
        assert!(Instant::now() < deadline, "the lease was never taken over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "failover: taken over {:.1} s after SIGSTOP of the holder",
        paused.elapsed().as_secs_f64()
    );
    let mut finished = Vec::new();
    for n in 0..4 {
        let id = submit(
            &apps[other],
            &job(&format!("under-the-successor-{n}"), "Succeeded"),
        )
        .await;
        finished.push(id);
    }
    for id in &finished {
        let done = apps[other].wait_finished(id, WAIT).await;
        assert_eq!(done["state"], "SUCCEEDED", "{done}");
    }
    common::signal(apps[holder].pid(), libc::SIGCONT);
    let (status, cancelling) = apps[holder].cancel(&running).await;
    assert_eq!(
        status, 200,
        "the resumed replica still serves the API: {cancelling}"
    );
    let done = apps[other].wait_finished(&running, WAIT).await;
    assert_eq!(done["state"], "CANCELLED", "{done}");
    // A few of its own sweeps' worth of time (1 s each), had it kept sweeping.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // An ended attempt's application is kept until its record is gathered, then released by
    // sk8: one deleted early shows as a record without the archived driver log.
    for id in &finished {
        let record = apps[other].wait_recorded(id, WAIT).await;
        assert!(
            record["driverLog"].as_str().is_some(),
            "the application of finished job {id} was deleted before it was recorded: {record}\n\
             what the replicas logged of it:\n{}",
            common::mentions(&apps, id)
        );
    }
    let ex = apps[holder].logs();
    assert!(
        !ex.contains("removing orphan"),
        "the ex-holder removed something:\n{}",
        common::tail(&ex, 4000)
    );
}

/// Jobs submitted through three replicas at once never run more than the team's cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_cap_holds_exactly_across_replicas() {
    const CAP: usize = 2;
    let cluster = Cluster::start().await;
    let db = TestDb::create().await;
    let extra = json!({"limits": {"maxRunningJobsPerTeam": CAP}});
    let apps = replicas(&cluster, &db, 3, extra).await;
    let mut ids = Vec::new();
    for n in 0..9 {
        let mut body = job(&format!("capped-{n}"), "Succeeded");
        body["labels"]["fake.sk8.dev/step-ms"] = json!("300");
        ids.push(submit(&apps[n % 3], &body).await);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut most = 0;
    loop {
        let (_, page) = apps[0].get("/v1/jobs?team=payments&limit=50").await;
        let jobs = page["jobs"].as_array().unwrap();
        let started = jobs
            .iter()
            .filter(|j| {
                matches!(
                    j["state"].as_str(),
                    Some("SUBMITTED" | "RUNNING" | "CANCELLING")
                )
            })
            .count();
        most = most.max(started);
        assert!(
            started <= CAP,
            "{started} started at once, cap {CAP}: {page}"
        );
        if jobs
            .iter()
            .all(|j| common::TERMINAL.contains(&j["state"].as_str().unwrap()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "jobs not finished: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("at most {most} of the team's jobs were started at once (cap {CAP})");
}
