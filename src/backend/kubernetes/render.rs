//! JobSpec attempt → `spark.apache.org/v1` `SparkApplication` manifest.
//!
//! The Apache operator picks the application's primary resource from `spec.jars` first (a JVM
//! application), else from `spec.pyFiles` (a Python application, the whole field being the main
//! file). So the main file goes alone into one of those fields, and dependencies go into the
//! Spark confs the operator leaves alone when set (`spark.jars`, `spark.submit.pyFiles`,
//! `spark.files`). Everything else in the JobSpec maps to Spark confs too, because that is what
//! the operator passes to `spark-submit` verbatim. Retries belong to sk8 (one SparkApplication
//! per attempt), so the operator is told never to restart.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::backend::AttemptRequest;
use crate::domain::JobSpec;

pub const API_VERSION: &str = "spark.apache.org/v1";
pub const KIND: &str = "SparkApplication";
/// Labels sk8 puts on every object it owns, and on the driver and executor pods.
pub const LABEL_JOB_ID: &str = "sk8.dev/job-id";
pub const LABEL_ATTEMPT: &str = "sk8.dev/attempt";
pub const LABEL_TEAM: &str = "sk8.dev/team";
pub const LABEL_ENV: &str = "sk8.dev/env";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "sk8";

/// Cluster-side choices that are not part of a JobSpec.
#[derive(Clone, Debug)]
pub struct RenderSettings {
    /// The ServiceAccount drivers run as (provisioned in every team namespace).
    pub driver_service_account: String,
    /// How long the operator keeps a failed application's pods, so its driver log can still
    /// be read; successful ones are released at once.
    pub failed_retain_seconds: u64,
}

/// The SparkApplication for one attempt, named `sk8-<job-id>-<attempt>` in the job's namespace.
pub fn spark_application(request: &AttemptRequest, settings: &RenderSettings) -> Value {
    let spec = &request.spec;
    let labels = object_labels(request);
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": request.name(),
            "namespace": spec.namespace(),
            "labels": labels,
            "annotations": { "sk8.dev/job-name": spec.name },
        },
        "spec": app_spec(request, settings, &labels),
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
        "sparkConf": spark_conf(spec, settings, labels),
        "applicationTolerations": {
            "restartConfig": { "restartPolicy": "Never" },
            "resourceRetainPolicy": "OnFailure",
            "resourceRetainDurationMillis": settings.failed_retain_seconds * 1000,
        },
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

/// sk8's labels plus the job's own: on the SparkApplication and on its pods.
fn object_labels(request: &AttemptRequest) -> BTreeMap<String, String> {
    let spec = &request.spec;
    let mut labels = spec.labels.clone();
    labels.extend([
        (LABEL_JOB_ID.to_owned(), request.job_id.to_string()),
        (LABEL_ATTEMPT.to_owned(), request.attempt.to_string()),
        (LABEL_TEAM.to_owned(), spec.team.to_string()),
        (LABEL_ENV.to_owned(), spec.env.to_string()),
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
    ]);
    labels
}

/// The job's own confs, then everything sk8 derives from the spec (which wins: the spec's
/// structured fields are the source of truth, and reserved confs were rejected at parse time).
fn spark_conf(
    spec: &JobSpec,
    settings: &RenderSettings,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut conf: BTreeMap<String, String> = spec
        .spark_conf
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    let mut set = |key: &str, value: String| {
        conf.insert(key.to_owned(), value);
    };
    set(
        "spark.kubernetes.container.image",
        spec.image.clone().unwrap_or_default(),
    );
    set(
        "spark.kubernetes.authenticate.driver.serviceAccountName",
        settings.driver_service_account.clone(),
    );
    set("spark.app.name", spec.name.clone());
    for (key, value) in resource_confs(spec)
        .into_iter()
        .chain(dependency_confs(spec))
    {
        set(&key, value);
    }
    for (name, value) in &spec.env_vars {
        set(&format!("spark.kubernetes.driverEnv.{name}"), value.clone());
        set(&format!("spark.executorEnv.{name}"), value.clone());
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

fn resource_confs(spec: &JobSpec) -> Vec<(String, String)> {
    let mut confs = vec![
        ("spark.driver.cores", spec.driver.cores.to_string()),
        ("spark.driver.memory", spec.driver.memory.clone()),
        ("spark.executor.cores", spec.executor.cores.to_string()),
        ("spark.executor.memory", spec.executor.memory.clone()),
        (
            "spark.executor.instances",
            spec.executor.instances.to_string(),
        ),
    ];
    if let Some(dynamic) = spec.dynamic_allocation.as_ref().filter(|d| d.enabled) {
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
