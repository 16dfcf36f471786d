//! Fixture tests: every default rule against evidence as it occurs — pod status JSON as the
//! API server returns it (through the same conversion the Kubernetes backend uses), driver and
//! executor log excerpts as Spark writes them, operator states and messages, Kubernetes Events,
//! event-log task ends, the local driver's exit.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::facts::Facts;
use super::{Class, Remediation, Source, rules};
use crate::domain::FailureClass;
use crate::record::evidence::{KubeEvent, ProcessExit};

fn pod(role: &str, status: Value) -> crate::record::evidence::PodEvidence {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("app-1-{role}"), "labels": {"spark-role": role}},
        "status": status,
    }))
    .expect("a pod");
    crate::backend::kubernetes::evidence::pod_evidence(&pod)
}

fn terminated(name: &str, code: i32, reason: &str) -> Value {
    json!({"phase": "Failed", "containerStatuses": [{
        "name": name, "image": "apache/spark:4.0.1", "imageID": "", "ready": false,
        "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason,
        "startedAt": "2026-12-05T08:00:00Z", "finishedAt": "2026-12-05T08:03:10Z"}}}]})
}

fn waiting(reason: &str, message: &str) -> Value {
    json!({"phase": "Pending", "containerStatuses": [{
        "name": "spark-kubernetes-driver", "image": "registry.example/spark:4.0.1", "imageID": "",
        "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": message}}}]})
}

fn event(object: &str, reason: &str, message: &str) -> KubeEvent {
    KubeEvent {
        object: object.into(),
        kind: "Warning".into(),
        reason: reason.into(),
        message: message.into(),
        count: 1,
    }
}

fn reason(class: FailureClass, reason: &str) -> Facts {
    Facts::from_reason(Some(class), reason)
}

fn driver_log(class: FailureClass, code: i32, log: &str) -> Facts {
    let mut facts = reason(class, &format!("spark-submit exited with status {code}"));
    facts.evidence.process = Some(ProcessExit::from_status(code));
    facts.driver_log = log.into();
    facts
}

/// Each default rule's id, the facts it must decide, and the class it gives.
fn cases() -> Vec<(&'static str, Facts, Class)> {
    let app = FailureClass::Application;
    let mut cases = vec![
        (
            "sk8-timeout",
            reason(
                FailureClass::Timeout,
                "timed out: still running after timeoutSeconds=60",
            ),
            Class::Cancelled,
        ),
        (
            "admission-quota",
            reason(
                FailureClass::Configuration,
                "create SparkApplication: 403 Forbidden: sparkapplications.spark.apache.org \"sk8-j-1-1\" is forbidden: \
             exceeded quota: sjns-payments-prod, requested: count/sparkapplications.spark.apache.org=1, used: 10, limited: 10",
            ),
            Class::Admission,
        ),
        (
            "admission-webhook",
            reason(
                FailureClass::Configuration,
                "create SparkApplication: 400: admission webhook \"validate.kyverno.svc\" denied the request: image registry not allowed",
            ),
            Class::Admission,
        ),
        (
            "admission-rbac",
            reason(
                FailureClass::Configuration,
                "create SparkApplication: 403: sparkapplications.spark.apache.org is forbidden: User \"system:serviceaccount:sk8:sk8\" \
             cannot create resource \"sparkapplications\" in API group \"spark.apache.org\"",
            ),
            Class::Admission,
        ),
        (
            "api-server-error",
            reason(
                FailureClass::Infrastructure,
                "apply SparkApplication: status 503: etcdserver: leader changed",
            ),
            Class::Platform,
        ),
        (
            "driver-ready-timed-out",
            reason(
                FailureClass::Infrastructure,
                "DriverReadyTimedOut: Driver did not become ready in time.",
            ),
            Class::Platform,
        ),
        (
            "lost",
            reason(
                FailureClass::Infrastructure,
                "spark-submit (pid 4242) ended without recording an exit status: it was killed, probably while sk8 was not running",
            ),
            Class::Platform,
        ),
        (
            "unknown",
            reason(app, "Failed: Spark application failed."),
            Class::Platform,
        ),
        (
            "scheduling-failure",
            reason(
                FailureClass::Scheduling,
                "SchedulingFailure: Failed to request driver from scheduler backend.",
            ),
            Class::Unschedulable,
        ),
        (
            "driver-start-timed-out",
            reason(
                FailureClass::Scheduling,
                "DriverStartTimedOut: Driver did not start in time.",
            ),
            Class::Unschedulable,
        ),
        (
            "executors-start-timed-out",
            reason(
                FailureClass::Scheduling,
                "ExecutorsStartTimedOut: Executors did not start in time.",
            ),
            Class::Unschedulable,
        ),
        (
            "driver-evicted",
            reason(
                FailureClass::Infrastructure,
                "DriverEvicted: Driver pod was evicted.",
            ),
            Class::Eviction,
        ),
        (
            "user-configuration",
            reason(
                FailureClass::Configuration,
                "spark-submit not found: set backend.local.sparkHome or SPARK_HOME",
            ),
            Class::UserError,
        ),
    ];
    cases.extend(pod_cases());
    cases.extend(log_cases());
    cases
}

fn pod_cases() -> Vec<(&'static str, Facts, Class)> {
    let with_pod = |role: &str, status: Value| {
        let mut facts = reason(
            FailureClass::Application,
            "Failed: Spark application failed.",
        );
        facts.evidence.pods.push(pod(role, status));
        facts
    };
    let with_event = |pod_status: Value, reason_: &str, message: &str| {
        let mut facts = with_pod("driver", pod_status);
        facts
            .evidence
            .events
            .push(event("app-1-driver", reason_, message));
        facts
    };
    let disrupted = |reason_: &str| {
        let mut status = terminated("spark-kubernetes-executor", 143, "Error");
        status["conditions"] = json!([{"type": "DisruptionTarget", "status": "True", "reason": reason_,
            "message": "disrupted", "lastTransitionTime": "2026-12-05T08:03:09Z"}]);
        with_pod("executor", status)
    };
    let mut evicted = terminated("spark-kubernetes-executor", 137, "Error");
    evicted["reason"] = json!("Evicted");
    evicted["message"] =
        json!("The node was low on resource: memory. Threshold quantity: 100Mi, available: 91Mi.");
    vec![
        (
            "image-invalid-name",
            with_pod(
                "driver",
                waiting(
                    "InvalidImageName",
                    "Failed to apply default image tag \"registry.example/Spark:4\": couldn't parse image reference",
                ),
            ),
            Class::ImagePull,
        ),
        (
            "image-not-found",
            with_event(
                waiting("ErrImagePull", "rpc error"),
                "Failed",
                "Failed to pull image \"registry.example/spark:4.9\": rpc error: code = NotFound desc = \
             failed to resolve reference: registry.example/spark:4.9: not found",
            ),
            Class::ImagePull,
        ),
        (
            "image-pull-registry",
            with_event(
                waiting("ImagePullBackOff", "Back-off pulling image"),
                "Failed",
                "Failed to pull image \"registry.example/spark:4.0.1\": dial tcp 10.0.0.7:443: i/o timeout",
            ),
            Class::ImagePull,
        ),
        ("evicted", with_pod("executor", evicted), Class::Eviction),
        (
            "evicted-by-kubelet",
            disrupted("TerminationByKubelet"),
            Class::Eviction,
        ),
        (
            "preempted",
            disrupted("PreemptionByScheduler"),
            Class::Preemption,
        ),
        (
            "disrupted",
            disrupted("EvictionByEvictionAPI"),
            Class::Preemption,
        ),
        (
            "node-shutdown",
            {
                let mut facts = with_pod(
                    "executor",
                    terminated("spark-kubernetes-executor", 143, "Error"),
                );
                facts.evidence.events.push(event(
                    "app-1-executor",
                    "NodeShutdown",
                    "Node ip-10-0-3-7 is shutting down: spot interruption notice",
                ));
                facts
            },
            Class::Preemption,
        ),
        (
            "oom-exit-52",
            with_pod(
                "executor",
                terminated("spark-kubernetes-executor", 52, "Error"),
            ),
            Class::ExecutorHeapOom,
        ),
        (
            "executor-container-oom",
            with_pod(
                "executor",
                terminated("spark-kubernetes-executor", 137, "OOMKilled"),
            ),
            Class::ExecutorContainerOom,
        ),
        (
            "executor-oom-log",
            {
                let mut facts = with_pod(
                    "executor",
                    terminated("spark-kubernetes-executor", 137, "OOMKilled"),
                );
                facts.executor_logs.push(("app-1-exec-2".into(),
                "26/12/05 08:03:09 ERROR Executor: Exception in task 3.0 in stage 1.0 (TID 7)\n\
                 java.lang.OutOfMemoryError: Java heap space\n\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n".into()));
                facts
            },
            Class::ExecutorHeapOom,
        ),
        (
            "driver-oom-killed",
            with_pod(
                "driver",
                terminated("spark-kubernetes-driver", 137, "OOMKilled"),
            ),
            Class::DriverOom,
        ),
        (
            "driver-oom-exit-52",
            with_pod("driver", terminated("spark-kubernetes-driver", 52, "Error")),
            Class::DriverOom,
        ),
        (
            "user-exit-1",
            with_pod("driver", terminated("spark-kubernetes-driver", 1, "Error")),
            Class::UserError,
        ),
        (
            "failed-scheduling",
            with_event(
                json!({"phase": "Pending"}),
                "FailedScheduling",
                "0/12 nodes are available: 12 Insufficient memory. preemption: 0/12 nodes are available: \
             12 No preemption victims found for incoming pod.",
            ),
            Class::Unschedulable,
        ),
    ]
}

fn log_cases() -> Vec<(&'static str, Facts, Class)> {
    let app = FailureClass::Application;
    let task_ends = |lines: &[&str]| {
        let mut facts = reason(app, "Failed: Spark application failed.");
        facts.task_ends = lines.iter().map(|l| (*l).to_owned()).collect();
        facts
    };
    vec![
        (
            "driver-max-result-size",
            driver_log(
                app,
                1,
                "py4j.protocol.Py4JJavaError: An error occurred while calling o45.collectToPython.\n\
             : org.apache.spark.SparkException: Job aborted due to stage failure: Total size of serialized \
             results of 9 tasks (1100.3 MiB) is bigger than spark.driver.maxResultSize (1024.0 MiB)\n",
            ),
            Class::DriverOom,
        ),
        (
            "executor-oom-task-end",
            task_ends(&["ExecutorLostFailure exit 52", "TaskKilled"]),
            Class::ExecutorHeapOom,
        ),
        (
            "executor-oom-driver-log",
            driver_log(
                app,
                1,
                "26/12/05 08:03:11 WARN TaskSetManager: Lost task 1.0 in stage 0.0 (TID 1) (10.0.0.5 executor 1): \
             ExecutorLostFailure (executor 1 exited caused by one of the running tasks) Reason: Command exited with code 52\n",
            ),
            Class::ExecutorHeapOom,
        ),
        (
            "executor-container-oom-driver-log",
            driver_log(
                app,
                1,
                "26/12/05 08:03:11 ERROR TaskSchedulerImpl: Lost executor 3 on 10.0.0.9: The executor with id 3 exited \
             with exit code 137(SIGKILL, possible container OOM).\n",
            ),
            Class::ExecutorContainerOom,
        ),
        (
            "driver-oom-log",
            driver_log(
                app,
                1,
                "26/12/05 08:03:11 ERROR Utils: Uncaught exception in thread task-result-getter-0\n\
             java.lang.OutOfMemoryError: Java heap space\n",
            ),
            Class::DriverOom,
        ),
        (
            "shuffle-fetch-failed",
            task_ends(&["FetchFailed"]),
            Class::ShuffleFetch,
        ),
        (
            "shuffle-fetch-failed-log",
            driver_log(
                app,
                1,
                "26/12/05 08:03:11 WARN TaskSetManager: Lost task 0.0 in stage 3.0 (TID 40) (10.0.0.5 executor 2): \
             FetchFailed(BlockManagerId(1, 10.0.0.4, 7337, None), shuffleId=0, mapIndex=3, mapId=3, reduceId=0, \
             message=\norg.apache.spark.shuffle.FetchFailedException: Connection reset by peer\n",
            ),
            Class::ShuffleFetch,
        ),
        (
            "object-store-slowdown",
            driver_log(
                app,
                1,
                "Caused by: com.amazonaws.services.s3.model.AmazonS3Exception: Please reduce your request rate. \
             (Service: Amazon S3; Status Code: 503; Error Code: SlowDown; Request ID: 7Q0S)\n",
            ),
            Class::ObjectStoreThrottling,
        ),
        (
            "user-analysis-exception",
            driver_log(
                app,
                1,
                "pyspark.errors.exceptions.captured.AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view \
             `sales` cannot be found. SQLSTATE: 42P01; line 1 pos 14;\n",
            ),
            Class::UserError,
        ),
        (
            "user-python-traceback",
            driver_log(
                app,
                1,
                "Traceback (most recent call last):\n  File \"/opt/jobs/etl.py\", line 12, in <module>\n    \
             raise ValueError(\"bad input\")\nValueError: bad input\n",
            ),
            Class::UserError,
        ),
        (
            "user-jvm-exception",
            driver_log(
                app,
                1,
                "Exception in thread \"main\" java.lang.IllegalArgumentException: requirement failed: no input paths\n",
            ),
            Class::UserError,
        ),
    ]
}

#[test]
fn every_default_rule_decides_its_fixture() {
    let remediation = Remediation::default();
    for (id, facts, class) in cases() {
        let got = remediation.classify("t", &facts);
        assert_eq!(
            (got.rule.as_str(), got.class),
            (id, class),
            "fixture {id}: {got:?}"
        );
        assert!(!got.evidence.is_empty(), "fixture {id} has no evidence");
    }
}

/// Local mode: the task ran in the driver's JVM (executor `driver`), so a task's heap OOM is
/// the driver's, whatever the event log's task end and the driver log's "Lost task" line say.
#[test]
fn a_local_mode_task_oom_is_the_drivers() {
    use crate::history::RunSummary;
    use crate::history::summary::{TaskFailure, TaskStats};
    let summary = RunSummary {
        tasks: TaskStats {
            total: 1,
            failed: 1,
            failures: vec![TaskFailure {
                kind: "ExceptionFailure".into(),
                class_name: Some("java.lang.OutOfMemoryError".into()),
                on_driver: true,
                count: 1,
                ..TaskFailure::default()
            }],
            ..TaskStats::default()
        },
        ..RunSummary::default()
    };
    let facts = driver_log(
        FailureClass::Application,
        52,
        "26/12/05 22:09:50 WARN TaskSetManager: Lost task 0.0 in stage 0.0 (TID 0) \
         (192.0.2.2 executor driver): java.lang.OutOfMemoryError: Java heap space\n",
    )
    .with_summary(&summary);
    assert!(facts.task_ends.is_empty(), "{:?}", facts.task_ends);
    let got = Remediation::default().classify("t", &facts);
    assert_eq!(got.class, Class::DriverOom, "{got:?}");
}

#[test]
fn every_default_rule_has_a_fixture() {
    let tested: BTreeSet<_> = cases().into_iter().map(|(id, ..)| id).collect();
    for rule in rules::defaults() {
        assert!(
            tested.contains(rule.id.as_str()),
            "default rule {} has no fixture",
            rule.id
        );
    }
}

#[test]
fn evidence_names_its_source_and_excerpt() {
    let remediation = Remediation::default();
    let (_, facts, _) = cases()
        .into_iter()
        .find(|(id, ..)| *id == "oom-exit-52")
        .unwrap();
    let got = remediation.classify("t", &facts);
    assert_eq!(got.evidence[0].source, Source::PodStatus);
    assert_eq!(
        got.evidence[0].excerpt,
        "executor pod app-1-executor: container spark-kubernetes-executor terminated Error exit code 52"
    );
    let (_, facts, _) = cases()
        .into_iter()
        .find(|(id, ..)| *id == "user-python-traceback")
        .unwrap();
    let got = remediation.classify("t", &facts);
    assert_eq!(got.evidence[0].source, Source::DriverLog);
    assert_eq!(
        got.evidence[0].excerpt,
        "Traceback (most recent call last):"
    );
}
