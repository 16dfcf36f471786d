//! Failures classified with evidence and remediated, end to end: `sk8 serve` against the fake
//! cluster, whose operator plays each fault (executor and driver OOMs, exit 52, evictions,
//! preemption, image pulls, scheduling timeouts, errors in the driver log), and an API outage
//! at submit. Each job must end with the right class, rule and action on its attempt, the
//! evidence that decided it, and a decision made from the attempt's record (its delay after
//! the attempt's end is printed, not asserted: a loaded machine would make it flaky); user
//! errors are never retried. Then the resize loop: an executor-OOM job fails on attempt 1,
//! succeeds resized on attempt 2, the next submission starts at the remembered size, and a
//! resize past the namespace's LimitRange maximum fails naming the limit. Last, a bad rule is
//! refused at startup naming its field.

mod common;
#[path = "common/kube.rs"]
mod kube;

use std::time::Duration;

use common::{Engine, TestApp};
use kube::Cluster;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(40);
const NAMESPACE: &str = "sjns-payments-dev";
const PLATFORM: &str = "sk8-platform";

/// A fake cluster with the platform namespace, sk8 on it with `extra` config, and the team
/// namespace provisioned by sk8 (so the submission guard knows its limits) with `limits`.
async fn cluster_and_sk8(extra: Value, limits: Value) -> (Cluster, TestApp) {
    let cluster = Cluster::start().await;
    let platform = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLATFORM}});
    cluster.create("/api/v1/namespaces", &platform).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "object-store", "namespace": PLATFORM},
        "type": "Opaque", "data": {"access-key": "a2V5"}});
    cluster
        .create(&format!("/api/v1/namespaces/{PLATFORM}/secrets"), &secret)
        .await;
    let app = cluster.sk8(Engine::Sqlite, extra).await;
    let (status, applied) = app.put("/v1/namespaces/payments/dev", &limits).await;
    assert!(
        (200..300).contains(&status),
        "PUT namespace: {status} {applied}"
    );
    (cluster, app)
}

/// A job the fake operator plays: `labels` steer it.
fn job(name: &str, labels: Value) -> Value {
    json!({
        "team": "payments", "env": "dev", "name": name,
        "mainApplicationFile": "local:///opt/spark/jobs/ledger.py",
        "labels": labels,
    })
}

/// One fault, and what sk8 must make of it.
struct Fault {
    name: &'static str,
    labels: Value,
    annotations_log: Option<&'static str>,
    class: &'static str,
    rule: &'static str,
    source: &'static str,
}

fn faults() -> Vec<Fault> {
    let failed_with = |executors: &str| json!({"fake.sk8.dev/outcome": "Failed", "fake.sk8.dev/executors": executors});
    let outcome = |o: &str| json!({"fake.sk8.dev/outcome": o});
    let fault = |name, labels, class, rule, source| Fault {
        name,
        labels,
        annotations_log: None,
        class,
        rule,
        source,
    };
    let logged = |name, log, class, rule| Fault {
        name,
        labels: json!({"fake.sk8.dev/outcome": "Failed", "fake.sk8.dev/step-ms": "500"}),
        annotations_log: Some(log),
        class,
        rule,
        source: "driverLog",
    };
    vec![
        fault(
            "heap-oom",
            failed_with("Completed.HeapOOM"),
            "executor_heap_oom",
            "oom-exit-52",
            "podStatus",
        ),
        fault(
            "container-oom",
            failed_with("ContainerOOM"),
            "executor_container_oom",
            "executor-container-oom",
            "podStatus",
        ),
        fault(
            "oom-with-jvm-oom",
            failed_with("OOMKilled"),
            "executor_heap_oom",
            "executor-oom-log",
            "executorLog",
        ),
        fault(
            "driver-oom",
            outcome("OOMKilled"),
            "driver_oom",
            "driver-oom-killed",
            "podStatus",
        ),
        fault(
            "evicted",
            failed_with("Evicted"),
            "eviction",
            "evicted",
            "podStatus",
        ),
        fault(
            "driver-evicted",
            outcome("DriverEvicted"),
            "eviction",
            "evicted",
            "podStatus",
        ),
        fault(
            "preempted",
            failed_with("Preempted"),
            "preemption",
            "preempted",
            "podStatus",
        ),
        fault(
            "image-missing",
            failed_with("ImageNotFound"),
            "image_pull",
            "image-not-found",
            "kubeEvent",
        ),
        fault(
            "image-invalid",
            failed_with("InvalidImageName"),
            "image_pull",
            "image-invalid-name",
            "podStatus",
        ),
        fault(
            "image-registry",
            failed_with("ImagePullBackOff"),
            "image_pull",
            "image-pull-registry",
            "podStatus",
        ),
        fault(
            "unschedulable",
            outcome("SchedulingFailure"),
            "unschedulable",
            "scheduling-failure",
            "operatorStatus",
        ),
        fault(
            "driver-start",
            outcome("DriverStartTimedOut"),
            "unschedulable",
            "driver-start-timed-out",
            "operatorStatus",
        ),
        fault(
            "executors-start",
            outcome("ExecutorsStartTimedOut"),
            "unschedulable",
            "executors-start-timed-out",
            "operatorStatus",
        ),
        fault(
            "driver-ready",
            outcome("DriverReadyTimedOut"),
            "platform",
            "driver-ready-timed-out",
            "operatorStatus",
        ),
        fault(
            "user-exit-1",
            outcome("Failed"),
            "user_error",
            "user-exit-1",
            "podStatus",
        ),
        logged(
            "analysis",
            "pyspark.errors.exceptions.captured.AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `sales` cannot be found.\n",
            "user_error",
            "user-analysis-exception",
        ),
        logged(
            "fetch-failed",
            "WARN TaskSetManager: Lost task 0.0 in stage 3.0 (TID 40): FetchFailed(BlockManagerId(1, 10.0.0.4, 7337, None), shuffleId=0)\n",
            "shuffle_fetch",
            "shuffle-fetch-failed-log",
        ),
        logged(
            "slow-down",
            "Caused by: AmazonS3Exception: Please reduce your request rate. (Service: Amazon S3; Status Code: 503; Error Code: SlowDown)\n",
            "object_store_throttling",
            "object-store-slowdown",
        ),
    ]
}

/// Every fault ends in its class, rule and evidence; user errors are never retried; every
/// decision is made from the attempt's record (how soon after its end is printed). Budgets
/// allow retries, but none is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_is_classified_with_its_evidence_and_decided() {
    let config = json!({"remediation": {"maxFreeRetries": 0}});
    let (kube, app) = cluster_and_sk8(config, json!({})).await;
    let cases = faults();
    let mut ids = Vec::new();
    for case in &cases {
        let mut body = job(case.name, case.labels.clone());
        // One attempt counted: the decision is visible on attempt 1 either way.
        body["retry"] = json!({"maxAttempts": 1});
        let id = app.submit(&body).await["id"].as_str().unwrap().to_owned();
        if let Some(log) = case.annotations_log {
            // The driver's log, as Spark would have written it, before the application fails
            // (these run at 500 ms a step).
            let pod = format!("sk8-{id}-1-0-driver");
            kube.wait_for_pod(NAMESPACE, &pod, WAIT).await;
            kube.append_log(NAMESPACE, &pod, log).unwrap();
        }
        ids.push(id);
    }
    let mut right = 0;
    let mut report = Vec::new();
    let mut slowest = 0;
    for (case, id) in cases.iter().zip(&ids) {
        let done = app.wait_finished(id, WAIT).await;
        let attempt = &done["attempts"][0];
        let remediation = &attempt["remediation"];
        let classification = &remediation["classification"];
        let got = (
            classification["class"].as_str().unwrap_or("-"),
            classification["rule"].as_str().unwrap_or("-"),
            classification["evidence"][0]["source"]
                .as_str()
                .unwrap_or("-"),
        );
        if got == (case.class, case.rule, case.source) {
            right += 1;
        }
        report.push(format!(
            "{}: {got:?} (wanted {:?})",
            case.name,
            (case.class, case.rule, case.source)
        ));
        assert_eq!(done["state"], "FAILED", "{}: {done}", case.name);
        assert_eq!(done["attemptCount"], 1, "{}: {done}", case.name);
        assert_eq!(remediation["fromRecord"], true, "{}: {done}", case.name);
        // How soon the decision followed the end is reported, not asserted: on a loaded
        // machine it measures the machine (the recorder's own bound is its deadline).
        slowest = slowest.max(remediation["decisionMs"].as_i64().unwrap());
        assert!(
            classification["evidence"][0]["excerpt"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{}: {done}",
            case.name
        );
    }
    eprintln!(
        "classified correctly: {right} of {} ({}%); slowest decision {slowest} ms\n{}",
        cases.len(),
        right * 100 / cases.len(),
        report.join("\n")
    );
    assert!(right * 100 >= cases.len() * 95, "{}", report.join("\n"));
    let metrics = app.text("/metrics").await.1;
    assert!(
        metrics.contains(
            "sk8_remediation_decisions_total{class=\"executor_heap_oom\",action=\"fail\"}"
        ),
        "{metrics}"
    );
}

/// The events of a user-error job with retries to spare: one attempt, FAILED, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_errors_are_never_retried_and_evictions_are_free() {
    let config = json!({"reconciler": {"retryBackoffSeconds": 1}});
    let (_kube, app) = cluster_and_sk8(config, json!({})).await;
    let mut user = job("broken", json!({"fake.sk8.dev/outcome": "Failed"}));
    user["retry"] = json!({"maxAttempts": 5, "backoffSeconds": 1});
    let user = app.submit(&user).await["id"].as_str().unwrap().to_owned();
    let done = app.wait_finished(&user, WAIT).await;
    assert_eq!(
        (&done["state"], &done["attemptCount"]),
        (&json!("FAILED"), &json!(1)),
        "{done}"
    );
    let (_, events) = app.get(&format!("/v1/jobs/{user}/events")).await;
    let last = events.as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        last.contains("attempt 1 failed: user code error, rule user-exit-1; not retried"),
        "{last}"
    );

    // Evicted on every attempt: retried although maxAttempts is 1, until maxFreeRetries (10).
    let mut evicted = job(
        "evicted",
        json!({"fake.sk8.dev/outcome": "DriverEvicted", "fake.sk8.dev/step-ms": "20"}),
    );
    evicted["retry"] = json!({"maxAttempts": 1, "backoffSeconds": 0});
    let id = app.submit(&evicted).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let job = app.job(&id).await;
        if job["attemptCount"].as_u64().unwrap_or(0) >= 2 {
            let first = &job["attempts"][0]["remediation"]["decision"];
            assert_eq!(
                (&first["remedy"], &first["counted"]),
                (&json!("retry"), &json!(false)),
                "{job}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an evicted job was not retried: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.cancel(&id).await;
}

/// Executor heap OOM: attempt 1 fails, attempt 2 runs with executor memory × 1.5 and succeeds,
/// the next submission of the same job starts at 6g; a job whose resize would pass the
/// namespace's per-container maximum fails saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_job_succeeds_resized_and_the_next_run_starts_at_that_size() {
    let config = json!({"reconciler": {"retryBackoffSeconds": 1}});
    let limits = json!({"limits": {"max": {"memory": "12Gi"}}});
    let (_kube, app) = cluster_and_sk8(config, limits).await;
    let needs_6g = || {
        let mut body = job(
            "features",
            json!({"fake.sk8.dev/needs-executor-memory": "6g"}),
        );
        body["executor"] = json!({"memory": "4g"});
        body["sparkConf"] = json!({"spark.executor.memoryOverhead": "1g"});
        body["retry"] = json!({"maxAttempts": 2, "backoffSeconds": 1});
        body
    };
    let id = app.submit(&needs_6g()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(
        (&done["state"], &done["attemptCount"]),
        (&json!("SUCCEEDED"), &json!(2)),
        "{done}"
    );
    let decision = &done["attempts"][0]["remediation"]["decision"];
    assert_eq!(decision["remedy"], "retryResized", "{done}");
    assert_eq!(
        decision["resize"],
        json!({"field": "executor.memory", "from": "4g", "to": "6g"})
    );
    assert_eq!(done["spec"]["executor"]["memory"], "6g", "{done}");
    let (_, events) = app.get(&format!("/v1/jobs/{id}/events")).await;
    let said = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .any(|r| {
            r.contains("executor heap OOM, rule oom-exit-52; retrying resized in")
                && r.contains("with executor.memory 6g (was 4g)")
        });
    assert!(said, "{events}");

    // The next run of the same job starts at 6g, and says where that came from.
    let next = app.submit(&needs_6g()).await;
    assert_eq!(next["spec"]["executor"]["memory"], "6g", "{next}");
    assert_eq!(next["sizedFrom"]["jobId"], id.as_str(), "{next}");
    assert_eq!(next["sizedFrom"]["attempt"], 2, "{next}");
    let next_id = next["id"].as_str().unwrap().to_owned();
    let done = app.wait_finished(&next_id, WAIT).await;
    assert_eq!(
        (&done["state"], &done["attemptCount"]),
        (&json!("SUCCEEDED"), &json!(1)),
        "{done}"
    );
    let (_, events) = app.get(&format!("/v1/jobs/{next_id}/events")).await;
    let accepted = events[0]["reason"].as_str().unwrap();
    assert!(
        accepted.contains(&format!("sized from attempt 2 of job {id}")),
        "{accepted}"
    );

    // resize: off in the spec: no remembered size, and a plain retry.
    let mut off = needs_6g();
    off["resize"] = json!("off");
    let off = app.submit(&off).await;
    assert!(off.get("sizedFrom").is_none(), "{off}");
    let off_id = off["id"].as_str().unwrap().to_owned();
    let done = app.wait_finished(&off_id, WAIT).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    assert_eq!(
        done["attempts"][0]["remediation"]["decision"]["remedy"], "retry",
        "{done}"
    );

    // 8g × 1.5 = 12g, + 1g overhead: above the 12Gi per-container maximum.
    let mut big = job("big", json!({"fake.sk8.dev/needs-executor-memory": "16g"}));
    big["executor"] = json!({"memory": "8g"});
    big["sparkConf"] = json!({"spark.executor.memoryOverhead": "1g"});
    big["retry"] = json!({"maxAttempts": 3});
    let big = app.submit(&big).await["id"].as_str().unwrap().to_owned();
    let done = app.wait_finished(&big, WAIT).await;
    assert_eq!(
        (&done["state"], &done["attemptCount"]),
        (&json!("FAILED"), &json!(1)),
        "{done}"
    );
    let note = done["attempts"][0]["remediation"]["decision"]["note"]
        .as_str()
        .unwrap();
    assert!(
        note.contains("the resize to executor.memory 12g (was 8g) would not fit")
            && note.contains(
                "above the per-container maximum 12Gi of sjns-payments-dev (limits.max.memory)"
            ),
        "{note}"
    );
}

/// An outage of the API server at submit: the attempt is given back, not failed, and the job
/// runs once the API answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_outage_at_submit_fails_no_attempt() {
    let (kube, app) = cluster_and_sk8(json!({}), json!({})).await;
    kube.set_reachable(false);
    let id = app.submit(&job("outage", json!({}))).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    while !app.event_states(&id).await.iter().any(|s| s == "QUEUED")
        || app.job(&id).await["state"] != "QUEUED"
    {
        assert!(std::time::Instant::now() < deadline, "the job never waited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kube.set_reachable(true);
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(
        (&done["state"], &done["attemptCount"]),
        (&json!("SUCCEEDED"), &json!(1)),
        "{done}"
    );
}

/// A bad rule stops sk8 before it serves, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_at_startup_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "remediation:\n  rules:\n    - {id: r, class: oom, action: retry, match: {log: x}}\n",
            "remediation.rules[0].class: unknown class \"oom\"",
        ),
        (
            "remediation:\n  teams:\n    payments:\n      rules:\n        - {id: r, class: driver_oom, action: retry, match: {log: 'OutOfMemory('}}\n",
            "remediation.teams.payments.rules[0].match.log: invalid regex",
        ),
    ];
    for (yaml, expected) in cases {
        let path = dir.path().join("sk8.yaml");
        std::fs::write(&path, yaml).unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sk8"));
        command
            .args(["serve", "--check-config", "--config"])
            .arg(&path);
        let output = common::output_within(&mut command, WAIT, "sk8 serve --check-config").await;
        assert!(!output.status.success(), "{yaml}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
}

/// A ResourceQuota that counts SparkApplications refuses the create (403 "exceeded quota"):
/// an admission refusal of subclass quota, retried, and the retry runs once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_refusal_at_create_is_retried_and_runs_once_there_is_room() {
    let (kube, app) = cluster_and_sk8(json!({}), json!({})).await;
    let quotas = format!("/api/v1/namespaces/{NAMESPACE}/resourcequotas");
    let full = json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "applications", "namespace": NAMESPACE},
        "spec": {"hard": {"count/sparkapplications.spark.apache.org": "0"}}});
    kube.create(&quotas, &full).await;
    let mut body = job("counted", json!({"fake.sk8.dev/outcome": "Succeeded"}));
    // Long enough for the test to make room before the retry, on a busy machine too.
    body["retry"] = json!({"maxAttempts": 2, "backoffSeconds": 8});
    let id = app.submit(&body).await["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    let refused = loop {
        let job = app.job(&id).await;
        if job["attempts"][0]["remediation"].is_object() {
            break job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "attempt 1 of {id} was never decided: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let remediation = &refused["attempts"][0]["remediation"];
    let classification = &remediation["classification"];
    assert_eq!(
        (&classification["class"], &classification["subclass"]),
        (&json!("admission"), &json!("quota")),
        "{refused}"
    );
    assert_eq!(classification["rule"], "admission-quota", "{refused}");
    assert_eq!(remediation["decision"]["remedy"], "retry", "{refused}");
    let reason = refused["attempts"][0]["failureReason"].as_str().unwrap();
    assert!(
        reason.contains("a ResourceQuota of sjns-payments-dev")
            && reason.contains("exceeded quota"),
        "{reason}"
    );

    kube.delete(&format!("{quotas}/applications")).await;
    let done = app.wait_finished(&id, WAIT).await;
    assert_eq!(
        (&done["state"], &done["attemptCount"]),
        (&json!("SUCCEEDED"), &json!(2)),
        "{done}"
    );
}

/// Real Spark through the local backend: a Python exception is a user error, never retried; a
/// big collect on a 512m driver (Spark's smallest) is a driver heap OOM, wherever in the
/// driver's JVM it strikes (the collect, or a local-mode task). Both jobs run at once (each is
/// a JVM on a shared 2-core machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_spark_failures_are_classified_from_their_driver_logs() {
    let mut options = common::Options::new(Engine::Sqlite);
    options.spark = common::Spark::Real;
    let app = TestApp::spawn(options).await;
    let job = |name: &str, file: &str, memory: &str, attempts: u32| {
        json!({
            "team": "feature-eng", "env": "dev", "name": name,
            "mainApplicationFile": format!("local://{}", common::repo_file(file).display()),
            "driver": {"memory": memory},
            "retry": {"maxAttempts": attempts, "backoffSeconds": 0},
        })
    };
    let failing = job("fails", "examples/jobs/fail.py", "1g", 3);
    let failing = app.submit(&failing).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let oom = job("collects", "tests/fixtures/jobs/big_collect.py", "512m", 1);
    let oom = app.submit(&oom).await["id"].as_str().unwrap().to_owned();
    let spark_wait = Duration::from_secs(300);

    let done = app.wait_finished(&failing, spark_wait).await;
    assert_eq!(
        (&done["state"], &done["attemptCount"]),
        (&json!("FAILED"), &json!(1)),
        "{done}"
    );
    let classification = &done["attempts"][0]["remediation"]["classification"];
    assert_eq!(classification["class"], "user_error", "{done}");
    assert_eq!(classification["rule"], "user-python-traceback", "{done}");
    assert_eq!(
        classification["evidence"][0]["source"], "driverLog",
        "{done}"
    );

    let done = app.wait_finished(&oom, spark_wait).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    let remediation = &done["attempts"][0]["remediation"];
    assert_eq!(
        remediation["classification"]["class"], "driver_oom",
        "{done}"
    );
    assert_eq!(
        remediation["classification"]["action"], "retryResized",
        "{done}"
    );
    let excerpt = remediation["classification"]["evidence"][0]["excerpt"]
        .as_str()
        .unwrap();
    eprintln!(
        "driver OOM: rule {}, evidence {excerpt:?}, decided {} ms after the end",
        remediation["classification"]["rule"], remediation["decisionMs"]
    );
    // Decided from the record, not by remediation.decisionTimeoutSeconds (30) running out:
    // how fast is measured (printed above), not asserted on a loaded machine.
    assert_eq!(remediation["fromRecord"], true, "{done}");
}

/// Real executor JVMs (a `local-cluster` master, one 1 GiB worker): a task that needs more heap
/// than its 512m executor has kills the executor (exit 52). That is an executor heap OOM, the
/// retry at 1.5× the heap succeeds, and the next submission of the job starts at that size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_executor_heap_oom_succeeds_resized_on_a_local_cluster() {
    let mut options = common::Options::new(Engine::Sqlite);
    options.spark = common::Spark::Real;
    options.extra = json!({"backend": {"local": {"master": "local-cluster[1,1,1024]"}}});
    let app = TestApp::spawn(options).await;
    let file = common::repo_file("tests/fixtures/jobs/executor_heap.py");
    let body = json!({
        "team": "feature-eng", "env": "dev", "name": "wide-strings",
        "mainApplicationFile": format!("local://{}", file.display()),
        "executor": {"memory": "512m", "cores": 1, "instances": 1},
        // The first lost task ends the attempt: three more OOMs would only take longer.
        "sparkConf": {"spark.task.maxFailures": "1"},
        "retry": {"maxAttempts": 2, "backoffSeconds": 0},
    });
    let id = app.submit(&body).await["id"].as_str().unwrap().to_owned();
    let done = app.wait_finished(&id, Duration::from_secs(300)).await;
    assert_eq!(
        (&done["state"], &done["attemptCount"]),
        (&json!("SUCCEEDED"), &json!(2)),
        "{done}"
    );
    let remediation = &done["attempts"][0]["remediation"];
    let classification = &remediation["classification"];
    assert_eq!(classification["class"], "executor_heap_oom", "{done}");
    assert_eq!(remediation["decision"]["remedy"], "retryResized", "{done}");
    assert_eq!(
        remediation["decision"]["resize"],
        json!({"field": "executor.memory", "from": "512m", "to": "768m"}),
        "{done}"
    );
    assert_eq!(done["spec"]["executor"]["memory"], "768m", "{done}");
    eprintln!(
        "executor heap OOM: rule {}, evidence {}",
        classification["rule"], classification["evidence"]
    );

    // The next submission starts at 768m (a dry run: nothing more to run).
    let (status, next) = app.post("/v1/jobs?dryRun=true", &body).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["spec"]["executor"]["memory"], "768m", "{next}");
    assert_eq!(next["sizedFrom"]["jobId"], id.as_str(), "{next}");
}
