//! The Kubernetes backend end to end: `sk8 serve` as a process, pointed by a kubeconfig at the
//! project's fake API server (with its fake Spark operator), runs jobs to SUCCEEDED, to FAILED
//! in each way the operator reports, to CANCELLED and timed out; serves driver logs (archived
//! once the pods are gone); records the operator's detail in the history and the pods'
//! evidence in the run record; and after `kill -9` adopts its applications without
//! submitting anything twice.

mod common;
#[path = "common/kube.rs"]
mod kube;

use std::time::Duration;

use common::{Engine, Options, TestApp, both_engines};
use kube::Cluster;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const NAMESPACE: &str = "sjns-payments-dev";

both_engines!(job_runs_to_success_as_a_spark_application);

/// A fake cluster with the operator, sk8 pointed at it, and the team namespace created.
async fn cluster_and_sk8(engine: Engine) -> (Cluster, TestApp) {
    let history = json!({"history": {"serverUrl": "http://history.example"}});
    cluster_and_sk8_with(engine, history).await
}

/// The same, with `extra` merged into sk8's config.
async fn cluster_and_sk8_with(engine: Engine, extra: Value) -> (Cluster, TestApp) {
    let cluster = Cluster::start().await;
    let app = cluster.sk8(engine, extra).await;
    create_namespace(&cluster, NAMESPACE).await;
    (cluster, app)
}

async fn create_namespace(kube: &Cluster, name: &str) {
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    kube.create("/api/v1/namespaces", &namespace).await;
}

fn app_path(name: &str) -> String {
    format!("/apis/spark.apache.org/v1/namespaces/{NAMESPACE}/sparkapplications/{name}")
}

/// A job the fake operator runs to `outcome` (a label it reads, like the annotation).
fn job(name: &str, outcome: &str) -> Value {
    json!({
        "team": "payments", "env": "dev", "name": name,
        "mainApplicationFile": "local:///opt/spark/jobs/ledger.py",
        "labels": {"fake.sk8.dev/outcome": outcome},
    })
}

async fn submit(app: &TestApp, body: &Value) -> String {
    app.submit(body).await["id"].as_str().unwrap().to_owned()
}

async fn job_runs_to_success_as_a_spark_application(engine: Engine) {
    let (kube, app) = cluster_and_sk8(engine).await;
    let id = submit(&app, &job("ledger", "Succeeded")).await;
    let name = format!("sk8-{id}-1");
    app.wait_for(&id, &["RUNNING"], WAIT).await;
    // The application is sk8's: labelled, applied by its field manager.
    let (status, object) = kube.get(&app_path(&name)).await;
    assert_eq!(status, 200, "{object}");
    assert_eq!(object["metadata"]["labels"]["sk8.dev/job-id"], id);
    assert_eq!(
        object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sk8"
    );
    let managers: Vec<&str> = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["manager"].as_str())
        .collect();
    assert!(managers.contains(&"sk8"), "{managers:?}");
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    let backend_ref = &done["attempts"][0]["backendRef"];
    assert_eq!(backend_ref["namespace"], NAMESPACE);
    assert_eq!(backend_ref["name"], name);
    assert_eq!(
        done["links"]["historyServer"],
        format!("http://history.example/history/{name}/"),
        "known up front: sk8 sets spark.app.id"
    );

    let (_, events) = app.get(&format!("/v1/jobs/{id}/events")).await;
    let running = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "RUNNING")
        .expect("a RUNNING event");
    let detail = running["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("DriverReady") || detail.starts_with("RunningHealthy"),
        "{running}"
    );
    assert!(
        detail.contains(&format!("(driver pod sk8-{id}-1-0-driver)")),
        "{detail}"
    );
    let ui = done["sparkUiUrl"].as_str().unwrap_or_default();
    assert!(ui.starts_with("http://127.0.0."), "{done}");
    // The operator keeps the pods until sk8 has recorded the run, then sk8 deletes the
    // application (and its pods with it); the driver log is still served, from the archive.
    let record = submitted_once_and_released(&app, &kube, &id).await;
    let pod = format!("/api/v1/namespaces/{NAMESPACE}/pods/{name}-0-driver");
    assert_eq!(kube.get(&pod).await.0, 404, "the driver pod is deleted");
    assert_eq!(record["appId"], name, "{record}");
    assert_eq!(record["driverLog"], format!("sk8/{id}/1/driver.log"));
    assert_eq!(
        record["links"]["historyServer"],
        format!("http://history.example/history/{name}/")
    );
    let driver = &record["evidence"]["pods"][0];
    assert_eq!(driver["role"], "driver", "{record}");
    assert_eq!(driver["containers"][0]["reason"], "Completed", "{record}");
    for path in [
        format!("/v1/jobs/{id}/logs"),
        format!("/v1/jobs/{id}/logs?attempt=1"),
    ] {
        let (status, log) = app.text(&path).await;
        assert_eq!(status, 200, "{path}: {log}");
        assert!(log.contains("Running Spark application"), "{log}");
    }
    let (status, error) = app.get(&format!("/v1/jobs/{id}/logs?attempt=2")).await;
    assert_eq!(status, 404, "{error}");
}

/// Waits until attempt `n` of a job has its run record; the record.
async fn recorded(app: &TestApp, id: &str, n: u32) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, text) = app.text(&format!("/v1/jobs/{id}/attempts/{n}")).await;
        let record: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status == 200 && record["record"] == "recorded" {
            return record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "attempt {n} of {id} never recorded: {status} {record}\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One attempt, recorded, after which sk8 deleted its application; the record.
async fn submitted_once_and_released(app: &TestApp, kube: &Cluster, id: &str) -> Value {
    let record = recorded(app, id, 1).await;
    assert_eq!(app.job(id).await["attemptCount"], 1, "submitted once");
    let deadline = std::time::Instant::now() + WAIT;
    while applications_of(kube, id).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{id}'s application was never deleted after its run was recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_that_ended_abnormally_are_recorded_as_evidence() {
    let (kube, app) = cluster_and_sk8(Engine::Sqlite).await;
    let mut body = job("lossy", "Failed");
    body["labels"]["fake.sk8.dev/executors"] =
        json!("Completed.OOMKilled.Evicted.ImagePullBackOff");
    let id = submit(&app, &body).await;
    assert_eq!(app.wait_finished(&id, WAIT).await["state"], "FAILED");
    let record = submitted_once_and_released(&app, &kube, &id).await;
    let evidence = &record["evidence"];
    let pods = evidence["pods"].as_array().expect("pods");
    let names: Vec<&str> = pods.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let app_name = format!("sk8-{id}-1");
    let exec = |n: u32| format!("{app_name}-exec-{n}");
    assert_eq!(
        names,
        [format!("{app_name}-0-driver"), exec(2), exec(3), exec(4)],
        "the driver and the three abnormal executors, not the completed one: {evidence}"
    );
    assert_eq!(pods[0]["containers"][0]["exitCode"], 1, "{evidence}");
    let oom = &pods[1];
    assert_eq!(oom["containers"][0]["reason"], "OOMKilled", "{evidence}");
    assert_eq!(oom["containers"][0]["exitCode"], 137);
    let evicted = &pods[2];
    assert_eq!(evicted["reason"], "Evicted", "{evidence}");
    assert_eq!(evicted["conditions"][0]["type"], "DisruptionTarget");
    let pulling = &pods[3];
    assert_eq!(pulling["containers"][0]["waiting"], "ImagePullBackOff");
    let reasons: Vec<(&str, &str)> = evidence["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["object"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    for expected in [
        (exec(3), "Evicted"),
        (exec(4), "Failed"),
        (exec(4), "BackOff"),
    ] {
        assert!(
            reasons.contains(&(expected.0.as_str(), expected.1)),
            "{expected:?} in {reasons:?}"
        );
    }
    // The failed executors' log tails are archived beside the driver log.
    let tail = oom["logTail"].as_str().expect("an archived tail");
    let archived = std::fs::read_to_string(app.dir.path().join("history").join(tail)).unwrap();
    assert!(archived.contains("OutOfMemoryError"), "{archived}");
    assert!(pulling.get("logTail").is_none() || pulling["logTail"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operator_failure_is_a_truthful_failure() {
    // An eviction is retried for free (tests/remediation.rs): here it must end at once.
    let no_free = json!({"remediation": {"maxFreeRetries": 0}});
    let (_kube, app) = cluster_and_sk8_with(Engine::Sqlite, no_free).await;
    let cases = [
        ("Failed", "application", "Failed"),
        ("SchedulingFailure", "scheduling", "SchedulingFailure"),
        ("DriverStartTimedOut", "scheduling", "DriverStartTimedOut"),
        ("DriverEvicted", "infrastructure", "DriverEvicted"),
        ("OOMKilled", "out_of_memory", "OOMKilled"),
    ];
    let mut ids = Vec::new();
    for (outcome, _, _) in cases {
        ids.push(submit(&app, &job(&outcome.to_lowercase(), outcome)).await);
    }
    for ((outcome, class, word), id) in cases.iter().zip(&ids) {
        let done = app.wait_finished(id, WAIT).await;
        assert_eq!(done["state"], "FAILED", "{outcome}: {done}");
        assert_eq!(done["failureClass"], *class, "{outcome}: {done}");
        let reason = done["failureReason"].as_str().unwrap();
        assert!(reason.contains(word), "{outcome}: {reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_timeout_delete_the_application_and_keep_its_driver_log() {
    let (kube, app) = cluster_and_sk8(Engine::Sqlite).await;
    // An executor that never pulls its image: what a user would want to see after cancelling.
    let mut stuck = job("cancel-me", "Running");
    stuck["labels"]["fake.sk8.dev/executors"] = json!("ImagePullBackOff");
    let cancelled = submit(&app, &stuck).await;
    let mut slow = job("too-slow", "Running");
    slow["timeoutSeconds"] = json!(2);
    let timed_out = submit(&app, &slow).await;
    app.wait_for(&cancelled, &["RUNNING"], WAIT).await;
    let executor = format!("sk8-{cancelled}-1-exec-1");
    kube.wait_for_pod(NAMESPACE, &executor, WAIT).await;

    let (status, _) = app.cancel(&cancelled).await;
    assert_eq!(status, 200);
    let done = app.wait_finished(&cancelled, WAIT).await;
    assert_eq!(done["state"], "CANCELLED", "{done}");
    let (status, _) = kube.get(&app_path(&format!("sk8-{cancelled}-1"))).await;
    assert_eq!(status, 404, "CANCELLED only once the application is gone");

    let done = app.wait_finished(&timed_out, WAIT).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    assert_eq!(done["failureClass"], "timeout");
    let (status, _) = kube.get(&app_path(&format!("sk8-{timed_out}-1"))).await;
    assert_eq!(status, 404);

    // What the driver logged until it was stopped is kept: read before the deletion.
    for id in [&cancelled, &timed_out] {
        let record = recorded(&app, id, 1).await;
        assert_eq!(
            record["driverLog"],
            format!("sk8/{id}/1/driver.log"),
            "{record}"
        );
        let (status, log) = app.text(&format!("/v1/jobs/{id}/logs")).await;
        assert_eq!(status, 200, "{log}");
        assert!(!log.is_empty(), "the archived driver log of {id} is empty");
    }
    // So is how its pods were: gathered before the stop deleted them.
    let evidence = &recorded(&app, &cancelled, 1).await["evidence"];
    assert_eq!(evidence["beforeStop"], "cancelled by request", "{evidence}");
    let pods = evidence["pods"].as_array().expect("pods");
    assert_eq!(pods[0]["name"], format!("sk8-{cancelled}-1-0-driver"));
    let pulling = pods.iter().find(|p| p["name"] == executor.as_str());
    let pulling = pulling.unwrap_or_else(|| panic!("{executor} in {evidence}"));
    assert_eq!(pulling["containers"][0]["waiting"], "ImagePullBackOff");
    let events = evidence["events"].to_string();
    assert!(events.contains("BackOff"), "{evidence}");
    let evidence = &recorded(&app, &timed_out, 1).await["evidence"];
    assert_eq!(
        evidence["beforeStop"], "stopped after timeoutSeconds",
        "{evidence}"
    );
    assert_eq!(
        evidence["pods"][0]["name"],
        format!("sk8-{timed_out}-1-0-driver")
    );
}

/// A cancel that arrives while the application is being created: the submit sees it and
/// deletes what it created (the orphan sweep only reports here, so it cannot be what cleans up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_the_submit_leaves_no_application_running() {
    let config = json!({
        "backend": {"kubernetes": {"requestTimeoutSeconds": 20}},
        "reconciler": {"orphanPolicy": "report"},
    });
    let (kube, app) = cluster_and_sk8_with(Engine::Sqlite, config).await;
    kube.set_silent(true);
    let id = submit(&app, &job("cancelled-in-flight", "Running")).await;
    // SUBMITTED is saved before the apply, which now waits on the silent API server.
    app.wait_for(&id, &["SUBMITTED"], WAIT).await;
    let (status, cancelling) = app.cancel(&id).await;
    assert_eq!(status, 200, "{cancelling}");
    assert_eq!(cancelling["state"], "CANCELLING", "{cancelling}");
    kube.set_silent(false);
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "CANCELLED", "{done}");
    let deadline = std::time::Instant::now() + WAIT;
    while applications_of(&kube, &id).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the application of cancelled job {id} is still there\n{}",
            common::tail(&app.logs(), 4000)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_logs_stream_from_the_api_server() {
    let (kube, app) = cluster_and_sk8(Engine::Sqlite).await;
    let id = submit(&app, &job("chatty", "Running")).await;
    app.wait_for(&id, &["RUNNING"], WAIT).await;
    let pod = format!("sk8-{id}-1-0-driver");
    kube.append_log(NAMESPACE, &pod, "pi is roughly 3.14159\n")
        .unwrap();
    let (status, log) = app.text(&format!("/v1/jobs/{id}/logs")).await;
    assert_eq!(status, 200, "{log}");
    assert!(log.contains("pi is roughly 3.14159"), "{log}");
    app.cancel(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_fails_with_what_to_do() {
    let (_kube, app) = cluster_and_sk8(Engine::Sqlite).await;
    let mut body = job("lost", "Succeeded");
    body["env"] = json!("nowhere");
    let id = submit(&app, &body).await;
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    assert_eq!(done["failureClass"], "configuration");
    let reason = done["failureReason"].as_str().unwrap();
    assert!(
        reason.contains("sjns-payments-nowhere does not exist"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_run_adopts_the_application() {
    let (kube, mut app) = cluster_and_sk8(Engine::Sqlite).await;
    let id = submit(&app, &job("survivor", "Running")).await;
    app.wait_for(&id, &["RUNNING"], WAIT).await;
    app.kill9();
    app.restart().await;
    let job = app.wait_for(&id, &["RUNNING"], WAIT).await;
    assert_eq!(job["attemptCount"], 1, "adopted, not submitted again");
    let selector = format!("sk8.dev/job-id={id}");
    let (_, list) = kube
        .get(&format!(
            "/apis/spark.apache.org/v1/sparkapplications?labelSelector={selector}"
        ))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    app.cancel(&id).await;
    assert_eq!(app.wait_finished(&id, WAIT).await["state"], "CANCELLED");
}

/// The orphans planted: a job's attempt and a session's server sk8 never had.
const ORPHAN_ATTEMPT: &str = "sk8-01kb2r5q3h7m9x4c2d-1";
const ORPHAN_SERVER: &str = "sk8-s-01kb2r5q3h7m9x4c2e-1";

/// SparkApplications with sk8's labels for a job and a session sk8 never had, as a crashed or
/// restored deployment could leave behind.
async fn plant_orphans(kube: &Cluster) {
    let attempt = json!({"sk8.dev/job-id": "01kb2r5q3h7m9x4c2d", "sk8.dev/attempt": "1"});
    plant_orphan(kube, ORPHAN_ATTEMPT, attempt).await;
    let server = json!({"sk8.dev/session-id": "01kb2r5q3h7m9x4c2e", "sk8.dev/session-start": "1"});
    plant_orphan(kube, ORPHAN_SERVER, server).await;
}

async fn plant_orphan(kube: &Cluster, name: &str, mut labels: Value) {
    common::merge(
        &mut labels,
        &json!({"app.kubernetes.io/managed-by": "sk8", "fake.sk8.dev/outcome": "Running"}),
    );
    let orphan = json!({
        "apiVersion": "spark.apache.org/v1", "kind": "SparkApplication",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {"pyFiles": "local:///x.py", "runtimeVersions": {"sparkVersion": "4.0.1"}},
    });
    let collection = format!("/apis/spark.apache.org/v1/namespaces/{NAMESPACE}/sparkapplications");
    kube.create(&collection, &orphan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_deleted_or_reported_by_policy() {
    let sweep_often = json!({"reconciler": {"orphanSweepSeconds": 1}});
    let (kube, app) = cluster_and_sk8_with(Engine::Sqlite, sweep_often.clone()).await;
    plant_orphans(&kube).await;
    // A job of sk8's own, running all the while, is left alone.
    let mine = submit(&app, &job("mine", "Running")).await;
    let deadline = std::time::Instant::now() + WAIT;
    for orphan in [ORPHAN_ATTEMPT, ORPHAN_SERVER] {
        while kube.get(&app_path(orphan)).await.0 != 404 {
            assert!(
                std::time::Instant::now() < deadline,
                "the orphan {orphan} was never deleted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(app.job(&mine).await["state"], "RUNNING");
    let logs = app.logs();
    assert!(logs.contains("its job is not in the execution history"));
    assert!(logs.contains("its session is not in the store"));

    let mut report = sweep_often;
    report["reconciler"]["orphanPolicy"] = json!("report");
    let (kube, app) = cluster_and_sk8_with(Engine::Sqlite, report).await;
    plant_orphans(&kube).await;
    let deadline = std::time::Instant::now() + WAIT;
    while app.logs().matches("orphan (policy: report)").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphan was never reported"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for orphan in [ORPHAN_ATTEMPT, ORPHAN_SERVER] {
        let (status, _) = kube.get(&app_path(orphan)).await;
        assert_eq!(status, 200, "{orphan} reported, not deleted");
    }
}

/// How many SparkApplications the cluster holds for a job.
async fn applications_of(kube: &Cluster, id: &str) -> usize {
    let path =
        format!("/apis/spark.apache.org/v1/sparkapplications?labelSelector=sk8.dev/job-id={id}");
    let (_, list) = kube.get(&path).await;
    list["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_a_silent_api_server_time_out_and_jobs_wait_until_it_answers() {
    let timeout = json!({"backend": {"kubernetes": {"requestTimeoutSeconds": 1}}});
    let (kube, app) = cluster_and_sk8_with(Engine::Sqlite, timeout).await;
    kube.set_silent(true);
    let id = submit(&app, &job("during-silence", "Succeeded")).await;
    // The job waits and says why; sk8 itself keeps answering at once.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let asked = std::time::Instant::now();
        let job = app.job(&id).await;
        // Generous for a loaded machine, yet far below the hang this guards against (a GET
        // waiting on the silent API server, which never answers).
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "sk8 stalled: a job GET took {:?} while the API server was silent",
            asked.elapsed()
        );
        let reason = job["waitingReason"].as_str().unwrap_or_default();
        if reason.contains("Kubernetes API of cluster default is unavailable") {
            assert!(
                reason.contains("timed out") || reason.contains("timeout"),
                "{job}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not waiting: {job}\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kube.set_silent(false);
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    submitted_once_and_released(&app, &kube, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_wait_out_an_api_outage_and_run_once_it_ends() {
    let (kube, app) = cluster_and_sk8(Engine::Sqlite).await;
    kube.set_reachable(false);
    let first = submit(&app, &job("during-outage-1", "Succeeded")).await;
    let second = submit(&app, &job("during-outage-2", "Succeeded")).await;
    // Both wait QUEUED, and say why.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (a, b) = (app.job(&first).await, app.job(&second).await);
        let waiting = |j: &Value| {
            j["state"] == "QUEUED"
                && j["waitingReason"]
                    .as_str()
                    .is_some_and(|r| r.contains("Kubernetes API of cluster default is unavailable"))
        };
        if waiting(&a) && waiting(&b) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not waiting: {a}\n{b}\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kube.set_reachable(true);
    let logs = app.logs();
    assert!(
        logs.contains("Kubernetes API unavailable"),
        "reported once, at WARN"
    );
    assert!(
        !logs.contains(r#""level":"ERROR""#),
        "an outage is not an ERROR for sk8: {logs}"
    );
    for id in [&first, &second] {
        let done = app.wait_finished(id, WAIT).await;
        assert_eq!(done["state"], "SUCCEEDED", "{done}");
        submitted_once_and_released(&app, &kube, id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_watch_and_410_gone_lose_no_transition() {
    let (kube, app) = cluster_and_sk8(Engine::Sqlite).await;
    let mut body = job("through-the-gap", "Succeeded");
    body["labels"]["fake.sk8.dev/step-ms"] = json!("400");
    let id = submit(&app, &body).await;
    app.wait_for(&id, &["RUNNING"], WAIT).await;
    // The watch is cut; the application finishes meanwhile; its events are compacted away,
    // so sk8's watch can only catch up by relisting after a 410.
    kube.set_reachable(false);
    let name = format!("sk8-{id}-1");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let app = kube.object(
            "spark.apache.org",
            "v1",
            "sparkapplications",
            Some(NAMESPACE),
            &name,
        );
        if app.is_some_and(|a| {
            a["status"]["currentState"]["currentStateSummary"]
                == "TerminatedWithoutReleaseResources"
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the operator never finished {name}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kube.expire_history();
    assert_eq!(
        app.job(&id).await["state"],
        "RUNNING",
        "sk8 cannot know yet"
    );
    kube.set_reachable(true);
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    let logs = app.logs();
    assert!(
        logs.contains("SparkApplication watch (re)listed"),
        "relisted after 410"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_are_routed_to_their_clusters_and_one_outage_holds_up_only_its_own() {
    let (east, west) = (Cluster::start().await, Cluster::start().await);
    let mut options = Options::new(Engine::Sqlite);
    options.extra = json!({"backend": {"kind": "kubernetes", "kubernetes": {
        "clusters": [
            {"name": "east", "kubeconfig": &*east.kubeconfig, "teams": ["payments"]},
            {"name": "west", "kubeconfig": &*west.kubeconfig, "teams": ["payments/prod"]},
        ],
        "defaultCluster": "west",
    }}});
    let app = TestApp::spawn(options).await;
    for (cluster, namespace) in [
        (&east, NAMESPACE),
        (&west, "sjns-payments-prod"),
        (&west, "sjns-growth-dev"),
    ] {
        create_namespace(cluster, namespace).await;
    }
    let team_job = |team: &str, env: &str, name: &str| {
        let mut body = job(name, "Succeeded");
        body["team"] = json!(team);
        body["env"] = json!(env);
        body
    };
    // payments/dev → east (team route); payments/prod → west (team/env route beats it);
    // growth → west (the default).
    let routed = [
        ("payments", "dev", &east, "east"),
        ("payments", "prod", &west, "west"),
        ("growth", "dev", &west, "west"),
    ];
    for (team, env, cluster, name) in routed {
        let id = submit(&app, &team_job(team, env, "routed")).await;
        let done = app.wait_finished(&id, WAIT).await;
        assert_eq!(done["state"], "SUCCEEDED", "{done}");
        assert_eq!(done["attempts"][0]["backendRef"]["cluster"], name, "{done}");
        submitted_once_and_released(&app, cluster, &id).await;
    }

    // East goes down: its job waits and says which cluster; west's jobs go on meanwhile.
    east.set_reachable(false);
    let held = submit(&app, &team_job("payments", "dev", "held")).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let job = app.job(&held).await;
        let reason = job["waitingReason"].as_str().unwrap_or_default();
        if job["state"] == "QUEUED" && reason.contains("cluster east is unavailable") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not waiting on east: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let meanwhile = submit(&app, &team_job("growth", "dev", "meanwhile")).await;
    let done = app.wait_finished(&meanwhile, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    assert_eq!(app.job(&held).await["state"], "QUEUED");
    east.set_reachable(true);
    let done = app.wait_finished(&held, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    submitted_once_and_released(&app, &east, &held).await;
    let (_, metrics) = app.text("/metrics").await;
    for cluster in ["east", "west"] {
        assert!(
            metrics.contains(&format!("sk8_kube_api_up{{cluster=\"{cluster}\"}} 1")),
            "{metrics}"
        );
    }
}

/// Clusters east and west, sk8 routing teams to them by `routes`, and each routed team's `dev`
/// namespace provisioned on its clusters.
async fn east_and_west(routes: Value) -> (Cluster, Cluster, TestApp) {
    let (east, west) = (Cluster::start().await, Cluster::start().await);
    let mut options = Options::new(Engine::Sqlite);
    options.extra = json!({"backend": {"kind": "kubernetes", "kubernetes": {
        "clusters": [
            {"name": "east", "kubeconfig": &*east.kubeconfig},
            {"name": "west", "kubeconfig": &*west.kubeconfig},
        ],
        "routes": routes,
    }}});
    let app = TestApp::spawn(options).await;
    for team in routes.as_object().expect("routes by team").keys() {
        let (status, applied) = app
            .put(&format!("/v1/namespaces/{team}/dev"), &json!({}))
            .await;
        assert!((200..300).contains(&status), "{status} {applied}");
    }
    (east, west, app)
}

/// A team that may run on two clusters: its namespace is provisioned on both; new jobs go to
/// the preferred one while it answers, and to the other (saying why) while it is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_with_two_clusters_runs_on_the_other_while_one_is_down() {
    let (east, west, app) = east_and_west(json!({"payments": ["east", "west"]})).await;
    for cluster in [&east, &west] {
        let (status, namespace) = cluster
            .get(&format!("/api/v1/namespaces/{NAMESPACE}"))
            .await;
        assert_eq!(
            status, 200,
            "provisioned on every cluster of the route: {namespace}"
        );
    }
    let id = submit(&app, &job("preferred", "Succeeded")).await;
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(
        done["attempts"][0]["backendRef"]["cluster"], "east",
        "{done}"
    );

    east.set_reachable(false);
    let submitted = std::time::Instant::now();
    let id = submit(&app, &job("rerouted", "Succeeded")).await;
    let running = app.wait_for(&id, &["RUNNING", "SUCCEEDED"], WAIT).await;
    eprintln!(
        "with east down, the new job was {} on west {:.1} s after its submit",
        running["state"],
        submitted.elapsed().as_secs_f64()
    );
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
    let attempt = done["attempts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(attempt["backendRef"]["cluster"], "west", "{done}");
    let route = attempt["backendRef"]["route"].as_str().unwrap_or_default();
    assert!(route.contains("cluster east is down"), "{done}");
    // Once recorded, sk8 releases a succeeded application, so west holds it at most once;
    // east, reachable again, must never have had it.
    assert!(applications_of(&west, &id).await <= 1);
    east.set_reachable(true);
    assert_eq!(
        applications_of(&east, &id).await,
        0,
        "the job ran on west only"
    );
}

/// Remediation's `reroute` (a driver the operator could not schedule): the retry goes to the
/// team's other cluster, and the attempt says why; a team with one cluster retries in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerouted_retry_runs_on_the_teams_other_cluster() {
    let routes = json!({"payments": ["east", "west"], "fraud": ["west"]});
    let (_east, _west, app) = east_and_west(routes).await;
    let unschedulable = |team: &str| {
        let mut body = job("unplaceable", "SchedulingFailure");
        body["team"] = json!(team);
        body["retry"] = json!({"maxAttempts": 2, "backoffSeconds": 0});
        body
    };
    let two = submit(&app, &unschedulable("payments")).await;
    let one = submit(&app, &unschedulable("fraud")).await;

    let done = app.wait_finished(&two, WAIT).await;
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{done}");
    let decision = &attempts[0]["remediation"]["decision"];
    assert_eq!(decision["remedy"], "reroute", "{done}");
    assert_eq!(attempts[0]["backendRef"]["cluster"], "east", "{done}");
    assert_eq!(attempts[1]["backendRef"]["cluster"], "west", "{done}");
    let route = attempts[1]["backendRef"]["route"]
        .as_str()
        .unwrap_or_default();
    assert!(
        route.contains("rerouted away from cluster east, where the previous attempt failed"),
        "{done}"
    );

    let done = app.wait_finished(&one, WAIT).await;
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{done}");
    assert_eq!(attempts[1]["backendRef"]["cluster"], "west", "{done}");
    let route = attempts[1]["backendRef"]["route"]
        .as_str()
        .unwrap_or_default();
    assert!(
        route.contains("no other cluster serves fraud/dev"),
        "{done}"
    );
}
