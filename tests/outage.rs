//! The store going away under load, on real Postgres: sk8 reaches its database through a TCP
//! proxy of the test's own (`common::proxy`), which the test cuts and restores, and the test
//! terminates sk8's server connections the way a Postgres restart does (`terminating
//! connection due to administrator command`, SQLSTATE 57P01). Requests meanwhile get 503 with
//! `Retry-After`, never 500; `/readyz` answers 503 within the readiness probe's timeout; audit
//! events of the outage are written once the store is back; every accepted job finishes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::proxy::{self, TcpProxy};
use common::{Engine, Options, TestApp, TestDb, fake_job};
use serde_json::{Value, json};

/// The readiness probe's `timeoutSeconds` in deploy/.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// sk8 (local backend, fake spark-submit) on a fresh Postgres database reached through a proxy.
async fn sk8_behind_proxy() -> (TestDb, TcpProxy, TestApp) {
    let db = TestDb::create().await;
    let proxy = TcpProxy::start(proxy::postgres_addr(&db.url)).await;
    let proxied = db.url.replacen(
        &proxy::postgres_addr(&db.url).to_string(),
        &proxy.addr.to_string(),
        1,
    );
    let mut options = Options::new(Engine::Sqlite);
    options.max_running = 8;
    options.extra = json!({"store": {"url": proxied, "acquireTimeoutSeconds": 1}});
    let app = TestApp::spawn(options).await;
    (db, proxy, app)
}

/// What the load saw: every status, and the ids of the accepted jobs.
#[derive(Default)]
struct Seen {
    statuses: Vec<u16>,
    without_retry_after: usize,
    accepted: Vec<String>,
}

/// Submits and reads jobs until `stop`, recording every answer.
async fn load(app: Arc<TestApp>, stop: Arc<AtomicBool>, worker: usize) -> Seen {
    let mut seen = Seen::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = fake_job("payments", &format!("load-{worker}-{n}"), "ok");
        let Ok(response) = app.http.post(app.url("/v1/jobs")).json(&body).send().await else {
            continue;
        };
        let status = response.status().as_u16();
        if status == 503 && response.headers().get("retry-after").is_none() {
            seen.without_retry_after += 1;
        }
        seen.statuses.push(status);
        if status == 201 {
            let job: Value = response.json().await.unwrap();
            seen.accepted.push(job["id"].as_str().unwrap().to_owned());
        }
        if let Ok(response) = app.http.get(app.url("/v1/jobs?limit=20")).send().await {
            seen.statuses.push(response.status().as_u16());
        }
    }
    seen
}

/// `/readyz` while the store is cut: a 503 within the probe's timeout.
async fn readyz_during_outage(app: &TestApp) {
    let response = app
        .http
        .get(app.url("/readyz"))
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .expect("/readyz answered within the readiness probe's timeout");
    assert_eq!(response.status(), 503, "/readyz during the outage");
}

/// Waits (up to `timeout`) for `/readyz` to answer 200 again.
async fn ready_again(app: &TestApp, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, _) = app.get("/readyz").await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {status} {timeout:?} after the store came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_and_outage_under_load_give_503s_never_500s() {
    let (db, proxy, app) = sk8_behind_proxy().await;
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(load(app.clone(), stop.clone(), w)))
        .collect();
    // A restart's view from sk8: every connection terminated, twice, under load.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        proxy::terminate_connections(&db).await;
    }
    // An outage: nothing reachable for a few seconds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    readyz_during_outage(&app).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    ready_again(&app, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Seen::default();
    for worker in workers {
        let part = worker.await.unwrap();
        seen.statuses.extend(part.statuses);
        seen.accepted.extend(part.accepted);
        seen.without_retry_after += part.without_retry_after;
    }
    let count = |code: u16| seen.statuses.iter().filter(|s| **s == code).count();
    eprintln!(
        "answers: {} 200, {} 201, {} 503, {} 500 of {}",
        count(200),
        count(201),
        count(503),
        count(500),
        seen.statuses.len()
    );
    let mut unexpected: Vec<u16> = seen
        .statuses
        .iter()
        .copied()
        .filter(|s| !matches!(s, 200 | 201 | 503))
        .collect();
    unexpected.sort_unstable();
    unexpected.dedup();
    assert!(
        unexpected.is_empty(),
        "answers other than 200/201/503: {} of them, statuses {unexpected:?}\nsk8 log tail:\n{}",
        seen.statuses.len() - count(200) - count(201) - count(503),
        common::tail(&app.logs(), 4000)
    );
    assert!(count(503) > 0, "the outage was never seen as a 503");
    assert_eq!(seen.without_retry_after, 0, "503s without Retry-After");
    // Nothing accepted is lost: every job finishes.
    for id in &seen.accepted {
        app.wait_finished(id, Duration::from_secs(60)).await;
    }
    audit_of_the_outage_is_stored(&app).await;
}

/// Submits refused during the outage were audited (outcome `unavailable`); the rows reach the
/// table once the store is back.
async fn audit_of_the_outage_is_stored(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = app.get("/v1/audit?action=job.submit&limit=500").await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        if events.iter().any(|e| e["outcome"] == "unavailable") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no audit row of a submit refused during the outage: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
