//! Every SparkApplication sk8 renders validates against the Apache operator's CRD schema
//! (`tests/fixtures/crds`, objects closed so typos fail) and matches its golden file in
//! `tests/golden/sparkapplication/`. Regenerate the goldens after an intended change with
//! `SK8_UPDATE_GOLDEN=1 cargo test --test sparkapplication` and review the diff.

mod common;
mod schema;

use serde_json::{Value, json};
use sk8::backend::kubernetes::render::{RenderSettings, connect_server, spark_application};
use sk8::backend::{AttemptRequest, SessionRequest};
use sk8::domain::jobspec::Format;
use sk8::domain::{JobId, JobSpec, SessionId, SessionSpec, SpecDefaults};
use sk8::record::confs::EventLogSettings;

const CRD_DIR: &str = "tests/fixtures/crds/apache-spark-kubernetes-operator";

fn v1_schema() -> Value {
    let path = common::repo_file(&format!(
        "{CRD_DIR}/sparkapplications.spark.apache.org-v1.yaml"
    ));
    schema::crd_schema(&std::fs::read_to_string(path).unwrap(), "v1")
}

/// The JobSpecs the goldens cover: minimal and full Python, a JVM job, mixed dependencies.
fn specs() -> Vec<(&'static str, Value)> {
    vec![
        (
            "python-minimal",
            json!({"team": "feature-eng", "env": "dev", "name": "pi",
                   "mainApplicationFile": "local:///opt/jobs/pi.py"}),
        ),
        (
            "python-full",
            serde_json::from_str(
                &std::fs::read_to_string(common::repo_file("examples/features.json")).unwrap(),
            )
            .unwrap(),
        ),
        (
            "jvm-with-deps",
            json!({"team": "payments", "env": "prod", "name": "ledger-rollup",
                   "sparkVersion": "3.5.3", "image": "registry.example/spark:3.5.3",
                   "mainApplicationFile": "s3a://artifacts/ledger.jar",
                   "mainClass": "com.example.ledger.Rollup", "args": ["--day", "2026-11-25"],
                   "deps": {"jars": ["s3a://artifacts/lib/delta.jar"], "files": ["s3a://cfg/app.conf"]},
                   "executor": {"cores": 4, "memory": "8g", "instances": 10},
                   "sparkConf": {"spark.sql.adaptive.enabled": "true"}}),
        ),
        (
            "python-with-jars-and-pyfiles",
            json!({"team": "search", "env": "staging", "name": "index",
                   "mainApplicationFile": "gs://jobs/index.py",
                   "deps": {"jars": ["gs://libs/connector.jar"], "pyFiles": ["gs://libs/helpers.zip"]},
                   "dynamicAllocation": {"enabled": true, "minExecutors": 0, "maxExecutors": 8,
                                         "initialExecutors": 2},
                   "envVars": {"PYTHONUNBUFFERED": "1"}, "labels": {"cost-center": "cc-42"}}),
        ),
    ]
}

fn defaults() -> SpecDefaults {
    SpecDefaults {
        spark_version: "4.0.1".into(),
        image: "apache/spark:4.0.1".into(),
    }
}

fn settings() -> RenderSettings {
    RenderSettings {
        driver_service_account: "sk8-spark-driver".into(),
        failed_retain_seconds: 3600,
        event_logs: EventLogSettings {
            spark_dir: "s3a://spark-history/events".into(),
        },
    }
}

fn render(body: &Value, attempt: u32) -> Value {
    let spec = JobSpec::parse(body.to_string().as_bytes(), Format::Json, &defaults()).unwrap();
    let request = AttemptRequest {
        job_id: JobId::parse("01kb2r5q3h7m9x4c2d").unwrap(),
        attempt,
        spec,
        traceparent: None,
        avoid: None,
    };
    spark_application(&request, &settings())
}

/// A session's Spark Connect server, with resources, dynamic allocation and a conf of its own.
fn render_session() -> Value {
    let body = json!({"team": "feature-eng", "env": "dev", "name": "exploration",
                      "driver": {"cores": 2, "memory": "4g"},
                      "dynamicAllocation": {"enabled": true, "minExecutors": 0, "maxExecutors": 4},
                      "sparkConf": {"spark.sql.shuffle.partitions": "64"}});
    let spec = SessionSpec::parse(body.to_string().as_bytes(), Format::Json, &defaults()).unwrap();
    let request = SessionRequest {
        session_id: SessionId::parse("01kb2r5q3h7m9x4c2e").unwrap(),
        start: 3,
        spec,
        token: "not-in-the-manifest".into(),
    };
    connect_server(&request, &settings())
}

#[test]
fn rendered_applications_validate_and_match_their_goldens() {
    let schema = v1_schema();
    let update = std::env::var_os("SK8_UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    let jobs = specs()
        .into_iter()
        .map(|(name, body)| (name, render(&body, 1)));
    for (name, app) in jobs.chain([("session-connect-server", render_session())]) {
        let errors = schema::validate(&schema, &app);
        assert!(
            errors.is_empty(),
            "{name} violates the CRD schema: {errors:#?}"
        );
        let path = common::repo_file(&format!("tests/golden/sparkapplication/{name}.json"));
        let rendered = serde_json::to_string_pretty(&app).unwrap() + "\n";
        if update {
            std::fs::write(&path, &rendered).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "goldens differ: {stale:?}; run SK8_UPDATE_GOLDEN=1 cargo test --test sparkapplication \
         and review the diff"
    );
}

#[test]
fn the_operator_finds_the_right_primary_resource() {
    let python = render(&specs()[3].1, 2);
    assert_eq!(python["metadata"]["name"], "sk8-01kb2r5q3h7m9x4c2d-2");
    assert_eq!(python["metadata"]["namespace"], "sjns-search-staging");
    // The main file alone in pyFiles; jars empty, or the operator would run a JVM app.
    assert_eq!(python["spec"]["pyFiles"], "gs://jobs/index.py");
    assert!(python["spec"].get("jars").is_none());
    let conf = &python["spec"]["sparkConf"];
    assert_eq!(conf["spark.jars"], "gs://libs/connector.jar");
    assert_eq!(conf["spark.submit.pyFiles"], "gs://libs/helpers.zip");
    assert_eq!(conf["spark.kubernetes.driver.label.sk8.dev/attempt"], "2");
    assert_eq!(conf["spark.kubernetes.executor.label.cost-center"], "cc-42");

    let jvm = render(&specs()[2].1, 1);
    assert_eq!(jvm["spec"]["jars"], "s3a://artifacts/ledger.jar");
    assert_eq!(jvm["spec"]["mainClass"], "com.example.ledger.Rollup");
    let jars = &jvm["spec"]["sparkConf"]["spark.jars"];
    assert_eq!(
        jars,
        "s3a://artifacts/ledger.jar,s3a://artifacts/lib/delta.jar"
    );
    assert_eq!(jvm["spec"]["runtimeVersions"]["sparkVersion"], "3.5.3");
}

#[test]
fn a_session_server_is_ready_only_when_connect_serves_and_keeps_its_token_secret() {
    let app = render_session();
    assert_eq!(app["metadata"]["name"], "sk8-s-01kb2r5q3h7m9x4c2e-3");
    let spec = &app["spec"];
    assert_eq!(
        spec["mainClass"],
        "org.apache.spark.sql.connect.service.SparkConnectServer"
    );
    assert_eq!(
        spec["sparkConf"]["spark.connect.grpc.binding.port"],
        "15002"
    );
    let probe = &spec["driverSpec"]["podTemplateSpec"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["tcpSocket"]["port"], 15002);
    assert_eq!(
        spec["sparkConf"]["spark.kubernetes.driver.secretKeyRef.SPARK_CONNECT_AUTHENTICATE_TOKEN"],
        "sk8-s-01kb2r5q3h7m9x4c2e-3-token:token"
    );
    assert!(!app.to_string().contains("not-in-the-manifest"));
}

#[test]
fn upstream_examples_validate() {
    let schema = v1_schema();
    let dir = common::repo_file(&format!("{CRD_DIR}/examples"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        if doc["kind"] != "SparkApplication" || doc["apiVersion"] != "spark.apache.org/v1" {
            continue;
        }
        let errors = schema::validate(&schema, &doc);
        assert!(
            errors.is_empty(),
            "{}: {errors:#?}",
            doc["metadata"]["name"]
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} v1 examples found");
}

#[test]
fn the_schema_check_catches_mistakes() {
    let schema = v1_schema();
    let good = render(&specs()[0].1, 1);
    let broken = |path: &[&str], value: Value| {
        let mut app = good.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut node = &mut app;
        for key in parents {
            node = &mut node[*key];
        }
        node[*last] = value;
        schema::validate(&schema, &app).join("; ")
    };
    let typo = broken(&["spec", "sparkconf"], json!({}));
    assert!(typo.contains("spec.sparkconf: unknown field"), "{typo}");
    let nested = broken(
        &[
            "spec",
            "applicationTolerations",
            "restartConfig",
            "restrtPolicy",
        ],
        json!("Never"),
    );
    assert!(nested.contains("unknown field"), "{nested}");
    let enum_value = broken(&["spec", "deploymentMode"], json!("LocalMode"));
    assert!(enum_value.contains("is not one of"), "{enum_value}");
    let wrong_type = broken(&["spec", "driverArgs"], json!("--day 1"));
    assert!(wrong_type.contains("must be an array"), "{wrong_type}");
    let conf_type = broken(&["spec", "sparkConf", "spark.executor.instances"], json!(2));
    assert!(conf_type.contains("must be of type string"), "{conf_type}");
    let mut missing = good.clone();
    missing["spec"]["runtimeVersions"] = json!({});
    let errors = schema::validate(&schema, &missing).join("; ");
    assert!(
        errors.contains("runtimeVersions.sparkVersion: is required"),
        "{errors}"
    );
}

/// The driver joins its attempt's trace: `TRACEPARENT` in its environment, unless the job's
/// own envVars set one.
#[test]
fn the_driver_gets_its_attempts_traceparent() {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let driver_env = |env_vars: Value| {
        let body = json!({"team": "t", "env": "dev", "name": "traced",
                          "mainApplicationFile": "s3a://b/job.py", "envVars": env_vars});
        let spec = JobSpec::parse(body.to_string().as_bytes(), Format::Json, &defaults()).unwrap();
        let request = AttemptRequest {
            job_id: JobId::parse("01kb2r5q3h7m9x4c2d").unwrap(),
            attempt: 1,
            spec,
            traceparent: Some(traceparent.into()),
            avoid: None,
        };
        let app = spark_application(&request, &settings());
        app["spec"]["sparkConf"]["spark.kubernetes.driverEnv.TRACEPARENT"].clone()
    };
    assert_eq!(driver_env(json!({})), traceparent);
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    assert_eq!(driver_env(json!({"TRACEPARENT": own})), own);
}
