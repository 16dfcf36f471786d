//! Unit tests of JobSpec parsing: every rejection names its field.

use super::*;

fn defaults() -> SpecDefaults {
    SpecDefaults {
        spark_version: "4.0.1".into(),
        image: "apache/spark:4.0.1".into(),
    }
}

const FULL_YAML: &str = r#"
team: feature-eng
env: prod
name: daily-features
sparkVersion: "4.0.1"
image: registry.example/spark:4.0.1
mainApplicationFile: local:///opt/jobs/features.jar
mainClass: com.example.Features
args: ["--date", "2026-11-24"]
sparkConf: {"spark.sql.shuffle.partitions": "64"}
driver: {cores: 1, memory: 2g}
executor: {cores: 2, memory: 4g, instances: 2}
dynamicAllocation: {enabled: true, minExecutors: 1, maxExecutors: 20}
deps: {jars: [], pyFiles: [], files: []}
envVars: {LOG_LEVEL: info}
labels: {pipeline: features}
timeoutSeconds: 7200
retry: {maxAttempts: 1}
"#;

fn minimal() -> serde_json::Value {
    serde_json::json!({
        "team": "feature-eng",
        "env": "prod",
        "name": "pi",
        "mainApplicationFile": "local:///opt/jobs/pi.py"
    })
}

fn reject(body: serde_json::Value) -> (Option<String>, String) {
    let bytes = serde_json::to_vec(&body).unwrap();
    match JobSpec::parse(&bytes, Format::Json, &defaults()) {
        Ok(spec) => panic!("accepted {spec:?}"),
        Err(Error::InvalidRequest { field, message }) => (field, message),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut body = minimal();
    body[key] = value;
    body
}

#[test]
fn the_documented_yaml_parses_and_equals_its_json_form() {
    let yaml = JobSpec::parse(FULL_YAML.as_bytes(), Format::Yaml, &defaults()).unwrap();
    let json = serde_json::to_vec(&yaml).unwrap();
    let again = JobSpec::parse(&json, Format::Json, &defaults()).unwrap();
    assert_eq!(yaml, again);
    assert_eq!(yaml.namespace(), "sjns-feature-eng-prod");
    assert_eq!(yaml.executor.instances, 2);
    assert_eq!(yaml.digest(), again.digest());
}

#[test]
fn defaults_are_filled_in() {
    let bytes = serde_json::to_vec(&minimal()).unwrap();
    let spec = JobSpec::parse(&bytes, Format::Json, &defaults()).unwrap();
    assert_eq!(spec.spark_version.as_deref(), Some("4.0.1"));
    assert_eq!(spec.image.as_deref(), Some("apache/spark:4.0.1"));
    assert_eq!(spec.driver, DriverSpec::default());
    assert_eq!(spec.retry.max_attempts, 1);
}

#[test]
fn each_bad_input_names_its_field() {
    let mut long_labels = serde_json::Map::new();
    for i in 0..65 {
        long_labels.insert(format!("k{i}"), "v".into());
    }
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (with("colour", "blue".into()), "colour"),
        (with("team", "Feature_Eng".into()), "team"),
        (with("env", "-prod".into()), "env"),
        (with("env", "e".repeat(60).into()), "env"),
        (with("name", "".into()), "name"),
        (
            with("driver", serde_json::json!({"memory": "lots"})),
            "driver.memory",
        ),
        (
            with("executor", serde_json::json!({"memory": "1p"})),
            "executor.memory",
        ),
        (
            with("executor", serde_json::json!({"cores": 0})),
            "executor.cores",
        ),
        (
            with("driver", serde_json::json!({"cores": "2"})),
            "driver.cores",
        ),
        (
            with("driver", serde_json::json!({"gpus": 1})),
            "driver.gpus",
        ),
        (
            with(
                "sparkConf",
                serde_json::json!({"spark.sql.shuffle.partitions": 64}),
            ),
            "sparkConf.spark.sql.shuffle.partitions",
        ),
        (
            with("sparkConf", serde_json::json!({"spark.master": "yarn"})),
            "sparkConf.spark.master",
        ),
        (
            with(
                "mainApplicationFile",
                "local:///opt/../etc/passwd.py".into(),
            ),
            "mainApplicationFile",
        ),
        (
            with("mainApplicationFile", "jobs/pi.py".into()),
            "mainApplicationFile",
        ),
        (
            with("mainApplicationFile", "local:///opt/app.jar".into()),
            "mainClass",
        ),
        (with("labels", long_labels.into()), "labels"),
        (
            with("labels", serde_json::json!({"sk8.dev/job": "x"})),
            "labels.sk8.dev/job",
        ),
        (
            with("labels", serde_json::json!({"owner": "has space"})),
            "labels.owner",
        ),
        (
            with("envVars", serde_json::json!({"1BAD": "x"})),
            "envVars.1BAD",
        ),
        (with("timeoutSeconds", 0.into()), "timeoutSeconds"),
        (
            with("retry", serde_json::json!({"maxAttempts": 11})),
            "retry.maxAttempts",
        ),
        (with("sparkVersion", "four".into()), "sparkVersion"),
        (
            with(
                "dynamicAllocation",
                serde_json::json!({"enabled": true, "minExecutors": 5, "maxExecutors": 2}),
            ),
            "dynamicAllocation.minExecutors",
        ),
        (
            with("deps", serde_json::json!({"pyFiles": ["../x.py"]})),
            "deps.pyFiles[0]",
        ),
        (with("args", serde_json::json!(["ok", 5])), "args[1]"),
    ];
    for (body, field) in cases {
        let (got, message) = reject(body.clone());
        assert_eq!(got.as_deref(), Some(field), "body {body} gave {message}");
        assert!(!message.is_empty());
    }
}

#[test]
fn missing_required_field_is_named() {
    let mut body = minimal();
    body.as_object_mut().unwrap().remove("team");
    let (field, message) = reject(body);
    assert_eq!(field.as_deref(), Some("team"));
    assert!(message.contains("missing field"), "{message}");
}

#[test]
fn unquoted_yaml_numbers_in_spark_conf_are_explained() {
    let yaml = "team: a\nenv: b\nname: job\nmainApplicationFile: /x.py\nsparkConf: {spark.x: 64}\n";
    let err = JobSpec::parse(yaml.as_bytes(), Format::Yaml, &defaults()).unwrap_err();
    assert_eq!(err.field(), Some("sparkConf.spark.x"));
    assert!(err.to_string().contains("quote"), "{err}");
}

#[test]
fn hostile_bodies_fail_cleanly() {
    let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(JobSpec::parse(deep_json.as_bytes(), Format::Json, &defaults()).is_err());
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    assert!(JobSpec::parse(bomb.as_bytes(), Format::Yaml, &defaults()).is_err());
    assert!(JobSpec::parse(b"\xff\xfe", Format::Yaml, &defaults()).is_err());
    assert!(JobSpec::parse(b"\xff\xfe", Format::Json, &defaults()).is_err());
    assert!(JobSpec::parse(b"", Format::Json, &defaults()).is_err());
}

#[test]
fn memory_sizes() {
    assert_eq!(memory_bytes("512m"), Some(512 << 20));
    assert_eq!(memory_bytes("2G"), Some(2 << 30));
    assert_eq!(memory_bytes("4gb"), Some(4 << 30));
    assert_eq!(memory_bytes("1048576"), Some(1 << 20));
    for bad in ["", "g", "2x", "-1g", "1.5g", "99999999999999999t"] {
        assert_eq!(memory_bytes(bad), None, "{bad}");
    }
}

#[test]
fn every_mistake_is_reported_with_its_field() {
    let yaml = r#"
team: feature-eng
env: prod
name: pi
mainApplicationFile: local:///opt/jobs/pi.py
executer: {instances: 2}
driver: {memory: lots, cores: many, memroy: 2g}
sparkConf: {spark.master: "local[*]"}
labels: {sk8.dev/job: x}
"#;
    let err = JobSpec::parse(yaml.as_bytes(), Format::Yaml, &defaults()).unwrap_err();
    let fields: Vec<_> = err
        .field_errors()
        .into_iter()
        .map(|e| (e.field.unwrap_or_default(), e.message))
        .collect();
    let named: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        named,
        [
            // Shape errors in the order serde meets them, then the value rules.
            "driver.cores",
            "driver.memroy",
            "executer",
            "sparkConf.spark.master",
            "driver.memory",
            "labels.sk8.dev/job"
        ],
        "{fields:#?}"
    );
    assert!(fields[1].1.contains("did you mean `memory`?"), "{fields:?}");
    assert!(
        fields[2].1.contains("did you mean `executor`?"),
        "{fields:?}"
    );
    assert_eq!(err.field(), Some("driver.cores"));
    assert!(err.to_string().contains("and 5 more errors"), "{err}");
}

#[test]
fn a_missing_field_after_a_mistyped_one_is_not_reported_twice() {
    let err = JobSpec::parse(
        br#"{"team": 5, "env": "prod", "name": "pi", "mainApplicationFile": "/a.py"}"#,
        Format::Json,
        &defaults(),
    )
    .unwrap_err();
    let fields: Vec<_> = err.field_errors().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, [Some("team".to_owned())]);
}
