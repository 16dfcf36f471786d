//! JobSpec attempt → `spark.apache.org/v1` `SparkApplication` manifest.
//!
//! The Apache operator picks the application's primary resource from `spec.jars` first (a JVM
//! application), else from `spec.pyFiles` (a Python application, the whole field being the main
//! file). So the main file goes alone into one of those fields, and dependencies go into the
//! Spark confs the operator leaves alone when set (`spark.jars`, `spark.submit.pyFiles`,
//! `spark.files`). Everything else in the JobSpec maps to Spark confs too, because that is what
//! the operator passes to `spark-submit` verbatim. Retries belong to sk8 (one SparkApplication
//! per attempt), so the operator is told never to restart.
//!
//! A session's Spark Connect server is a SparkApplication too ([`connect_server`]): main class
//! `SparkConnectServer` on port 15002, with a readiness probe on that port, so that the driver
//! pod is Ready (and the operator reports `DriverReady`) only once Spark Connect serves. Its
//! token (which only the gateway also has) is in a Secret of its own ([`token_secret`]), owned
//! by the application, that the driver reads as an environment variable.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::backend::{AttemptRequest, CONNECT_SERVER_CLASS, SessionRequest};
use crate::domain::jobspec::{ConfValue, DriverSpec, DynamicAllocation, ExecutorSpec};
use crate::domain::{JobSpec, SessionSpec};
use crate::gateway::token::TOKEN_ENV;
use crate::record::confs::{EventLogSettings, app_id, event_log_confs};

pub const API_VERSION: &str = "spark.apache.org/v1";
pub const KIND: &str = "SparkApplication";
/// Labels sk8 puts on every object it owns, and on the driver and executor pods.
pub const LABEL_JOB_ID: &str = "sk8.dev/job-id";
pub const LABEL_ATTEMPT: &str = "sk8.dev/attempt";
pub const LABEL_TEAM: &str = "sk8.dev/team";
pub const LABEL_ENV: &str = "sk8.dev/env";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "sk8";
/// On a session's server: which session, and which of its starts.
pub const LABEL_SESSION_ID: &str = "sk8.dev/session-id";
pub const LABEL_SESSION_START: &str = "sk8.dev/session-start";
/// The port Spark Connect serves on in the driver pod.
pub const CONNECT_PORT: u16 = 15002;
/// The key of the token in its Secret.
const TOKEN_KEY: &str = "token";
/// The container the operator runs the driver in (a pod template merges into it by name).
const DRIVER_CONTAINER: &str = "spark-kubernetes-driver";

/// Cluster-side choices that are not part of a JobSpec.
#[derive(Clone, Debug)]
pub struct RenderSettings {
    /// The ServiceAccount drivers run as (provisioned in every team namespace).
    pub driver_service_account: String,
    /// How long the operator keeps an ended job's pods at most: sk8 deletes the application
    /// as soon as it has archived the driver log and gathered the pods' evidence; this bounds
    /// how long they stay when sk8 cannot.
    pub failed_retain_seconds: u64,
    /// Where event logs go.
    pub event_logs: EventLogSettings,
}

/// The SparkApplication for one attempt, named `sk8-<job-id>-<attempt>` in the job's namespace.
pub fn spark_application(request: &AttemptRequest, settings: &RenderSettings) -> Value {
    let spec = &request.spec;
    let labels = object_labels(request);
    let app = app_spec(request, settings, &labels);
    let name = ("sk8.dev/job-name", spec.name.as_str());
    application(request.name(), spec.namespace(), &labels, name, app)
}

/// A SparkApplication object around `spec`, annotated with the job's or session's own name.
fn application(
    name: String,
    namespace: String,
    labels: &BTreeMap<String, String>,
    (annotation, own_name): (&str, &str),
    spec: Value,
) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": { annotation: own_name },
        },
        "spec": spec,
    })
}

fn app_spec(
    request: &AttemptRequest,
    settings: &RenderSettings,
    labels: &BTreeMap<String, String>,
) -> Value {
    let spec = &request.spec;
    let mut app = json!({
        "deploymentMode": "ClusterMode",
        "runtimeVersions": { "sparkVersion": spec.spark_version.clone().unwrap_or_default() },
        "sparkConf": spark_conf(request, settings, labels),
        "applicationTolerations": tolerations(settings, Retain::UntilRecorded),
    });
    if spec.main_application_file.ends_with(".jar") {
        app["jars"] = json!(spec.main_application_file);
        app["mainClass"] = json!(spec.main_class);
    } else {
        app["pyFiles"] = json!(spec.main_application_file);
    }
    if !spec.args.is_empty() {
        app["driverArgs"] = json!(spec.args);
    }
    app
}

/// The SparkApplication running server number `start` of a session, named
/// `sk8-s-<session-id>-<start>` in the session's namespace.
pub fn connect_server(request: &SessionRequest, settings: &RenderSettings) -> Value {
    let spec = &request.spec;
    let labels = sk8_labels(
        spec.team.as_str(),
        spec.env.as_str(),
        [
            (LABEL_SESSION_ID, request.session_id.to_string()),
            (LABEL_SESSION_START, request.start.to_string()),
        ],
    );
    let mut conf = shared_conf(&Shape::of_session(spec), settings, &labels, &request.name());
    conf.insert(
        "spark.connect.grpc.binding.port".into(),
        CONNECT_PORT.to_string(),
    );
    conf.insert(
        format!("spark.kubernetes.driver.secretKeyRef.{TOKEN_ENV}"),
        format!("{}:{TOKEN_KEY}", token_secret_name(request)),
    );
    let app = json!({
        "deploymentMode": "ClusterMode",
        "mainClass": CONNECT_SERVER_CLASS,
        "runtimeVersions": { "sparkVersion": spec.spark_version.clone().unwrap_or_default() },
        "sparkConf": conf,
        "applicationTolerations": tolerations(settings, Retain::OnFailure),
        "driverSpec": { "podTemplateSpec": { "spec": { "containers": [{
            "name": DRIVER_CONTAINER,
            "ports": [{ "name": "spark-connect", "containerPort": CONNECT_PORT }],
            "readinessProbe": {
                "tcpSocket": { "port": CONNECT_PORT },
                "periodSeconds": 2,
                "failureThreshold": 3,
            },
        }]}}},
    });
    let name = ("sk8.dev/session-name", spec.name.as_str());
    application(request.name(), spec.namespace(), &labels, name, app)
}

/// The Secret with a session server's token, owned by (and so deleted with) its application.
pub fn token_secret(request: &SessionRequest, owner_uid: &str) -> Value {
    use base64::Engine;
    let spec = &request.spec;
    let token = base64::engine::general_purpose::STANDARD.encode(&request.token);
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": token_secret_name(request),
            "namespace": spec.namespace(),
            "labels": sk8_labels(
                spec.team.as_str(),
                spec.env.as_str(),
                [(LABEL_SESSION_ID, request.session_id.to_string())],
            ),
            "ownerReferences": [{
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": request.name(),
                "uid": owner_uid,
            }],
        },
        "type": "Opaque",
        "data": { TOKEN_KEY: token },
    })
}

pub fn token_secret_name(request: &SessionRequest) -> String {
    format!("{}-token", request.name())
}

/// How long the operator keeps an ended application's pods.
enum Retain {
    /// A job attempt's: until sk8 has recorded the run and deletes the application (bounded by
    /// `failed_retain_seconds`).
    UntilRecorded,
    /// A session server's: failed ones for their log.
    OnFailure,
}

/// sk8 restarts attempts and sessions itself, so the operator never does.
fn tolerations(settings: &RenderSettings, retain: Retain) -> Value {
    let policy = match retain {
        Retain::UntilRecorded => "Always",
        Retain::OnFailure => "OnFailure",
    };
    json!({
        "restartConfig": { "restartPolicy": "Never" },
        "resourceRetainPolicy": policy,
        "resourceRetainDurationMillis": settings.failed_retain_seconds * 1000,
    })
}

/// sk8's labels plus the job's own: on the SparkApplication and on its pods.
fn object_labels(request: &AttemptRequest) -> BTreeMap<String, String> {
    let spec = &request.spec;
    let mut labels = spec.labels.clone();
    labels.extend(sk8_labels(
        spec.team.as_str(),
        spec.env.as_str(),
        [
            (LABEL_JOB_ID, request.job_id.to_string()),
            (LABEL_ATTEMPT, request.attempt.to_string()),
        ],
    ));
    labels
}

/// The labels sk8 puts on everything it owns: `own` (which job or session), team, env and
/// managed-by.
fn sk8_labels<const N: usize>(
    team: &str,
    env: &str,
    own: [(&str, String); N],
) -> BTreeMap<String, String> {
    own.into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .chain([
            (LABEL_TEAM.to_owned(), team.to_owned()),
            (LABEL_ENV.to_owned(), env.to_owned()),
            (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        ])
        .collect()
}

/// What jobs and sessions have in common, as far as Spark confs go.
struct Shape<'a> {
    name: &'a str,
    image: Option<&'a String>,
    driver: &'a DriverSpec,
    executor: &'a ExecutorSpec,
    dynamic_allocation: Option<&'a DynamicAllocation>,
    spark_conf: &'a BTreeMap<String, ConfValue>,
}

impl<'a> Shape<'a> {
    fn of_job(spec: &'a JobSpec) -> Self {
        Shape {
            name: &spec.name,
            image: spec.image.as_ref(),
            driver: &spec.driver,
            executor: &spec.executor,
            dynamic_allocation: spec.dynamic_allocation.as_ref(),
            spark_conf: &spec.spark_conf,
        }
    }

    fn of_session(spec: &'a SessionSpec) -> Self {
        Shape {
            name: &spec.name,
            image: spec.image.as_ref(),
            driver: &spec.driver,
            executor: &spec.executor,
            dynamic_allocation: spec.dynamic_allocation.as_ref(),
            spark_conf: &spec.spark_conf,
        }
    }
}

/// The job's own confs, then everything sk8 derives from the spec (which wins: the spec's
/// structured fields are the source of truth, and reserved confs were rejected at parse time).
/// Ended executors are kept (deleted with the application) so sk8 can read why they failed.
fn spark_conf(
    request: &AttemptRequest,
    settings: &RenderSettings,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let spec = &request.spec;
    let mut conf = shared_conf(&Shape::of_job(spec), settings, labels, &request.name());
    conf.entry("spark.kubernetes.executor.deleteOnTermination".into())
        .or_insert_with(|| "false".into());
    conf.extend(dependency_confs(spec));
    if let Some(traceparent) = &request.traceparent {
        conf.insert(
            "spark.kubernetes.driverEnv.TRACEPARENT".into(),
            traceparent.clone(),
        );
    }
    for (name, value) in &spec.env_vars {
        conf.insert(format!("spark.kubernetes.driverEnv.{name}"), value.clone());
        conf.insert(format!("spark.executorEnv.{name}"), value.clone());
    }
    conf
}

/// The spec's own confs, then image, service account, name, application id and event log,
/// resources and pod labels.
fn shared_conf(
    shape: &Shape,
    settings: &RenderSettings,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> BTreeMap<String, String> {
    let mut conf: BTreeMap<String, String> = shape
        .spark_conf
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    let mut set = |key: &str, value: String| {
        conf.insert(key.to_owned(), value);
    };
    set(
        "spark.kubernetes.container.image",
        shape.image.cloned().unwrap_or_default(),
    );
    set(
        "spark.kubernetes.authenticate.driver.serviceAccountName",
        settings.driver_service_account.clone(),
    );
    set("spark.app.name", shape.name.to_owned());
    for (key, value) in event_log_confs(shape.spark_conf, &settings.event_logs, &app_id(name)) {
        set(&key, value);
    }
    for (key, value) in resource_confs(shape) {
        set(&key, value);
    }
    for (key, value) in labels {
        set(
            &format!("spark.kubernetes.driver.label.{key}"),
            value.clone(),
        );
        set(
            &format!("spark.kubernetes.executor.label.{key}"),
            value.clone(),
        );
    }
    conf
}

fn resource_confs(shape: &Shape) -> Vec<(String, String)> {
    let mut confs = vec![
        ("spark.driver.cores", shape.driver.cores.to_string()),
        ("spark.driver.memory", shape.driver.memory.clone()),
        ("spark.executor.cores", shape.executor.cores.to_string()),
        ("spark.executor.memory", shape.executor.memory.clone()),
        (
            "spark.executor.instances",
            shape.executor.instances.to_string(),
        ),
    ];
    if let Some(dynamic) = shape.dynamic_allocation.filter(|d| d.enabled) {
        confs.extend([
            ("spark.dynamicAllocation.enabled", "true".to_owned()),
            // No external shuffle service on Kubernetes: executors track their own shuffle data.
            (
                "spark.dynamicAllocation.shuffleTracking.enabled",
                "true".to_owned(),
            ),
            (
                "spark.dynamicAllocation.minExecutors",
                dynamic.min_executors.to_string(),
            ),
            (
                "spark.dynamicAllocation.maxExecutors",
                dynamic.max_executors.to_string(),
            ),
        ]);
        if let Some(initial) = dynamic.initial_executors {
            confs.push((
                "spark.dynamicAllocation.initialExecutors",
                initial.to_string(),
            ));
        }
    }
    confs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Dependencies as the confs `spark-submit` would set from `--jars`, `--py-files`, `--files`.
/// A JVM application's main jar leads `spark.jars`, as the operator itself would put it.
fn dependency_confs(spec: &JobSpec) -> Vec<(String, String)> {
    let main_jar = spec
        .main_application_file
        .ends_with(".jar")
        .then_some(&spec.main_application_file);
    let jars: Vec<&String> = main_jar.into_iter().chain(&spec.deps.jars).collect();
    [
        ("spark.jars", jars),
        ("spark.submit.pyFiles", spec.deps.py_files.iter().collect()),
        ("spark.files", spec.deps.files.iter().collect()),
    ]
    .into_iter()
    .filter(|(_, list)| !list.is_empty())
    .map(|(key, list)| {
        let joined: Vec<&str> = list.iter().map(|s| s.as_str()).collect();
        (key.to_owned(), joined.join(","))
    })
    .collect()
}
