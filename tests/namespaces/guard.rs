//! The submission guard: jobs and sessions refused up front when their namespace is not
//! provisioned or they could never fit its LimitRange and quota.

use serde_json::{Value, json};

use super::common::{self, Engine, TestApp};
use super::{WAIT, put, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_guarded_by_the_namespace() {
    let (_cluster, app) = setup(
        Engine::Sqlite,
        json!({"namespaces": {"requireProvisioned": true}}),
    )
    .await;
    let job = |patch: Value| {
        let mut body = json!({
            "team": "payments", "env": "dev", "name": "guarded",
            "mainApplicationFile": "local:///opt/job.py",
            "labels": {"fake.sk8.dev/outcome": "Succeeded"},
        });
        common::merge(&mut body, &patch);
        body
    };
    let response = app.post_job(&job(json!({}))).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["field"], "env", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("sk8 namespace apply"), "{message}");

    let small = json!({"quota": {"cpu": "4", "memory": "8Gi", "pods": 5},
                       "limits": {"max": {"cpu": "2", "memory": "4Gi"}}});
    assert_eq!(put(&app, "payments", "dev", &small).await.0, 201);
    let cases = [
        (
            json!({"executor": {"memory": "4g"}}),
            "executor.memory",
            "5734Mi memory (executor.memory 4g + 1638Mi overhead), above the per-container maximum 4Gi",
        ),
        (
            json!({"driver": {"cores": 3}}),
            "driver.cores",
            "3 cpu, above the per-container maximum 2",
        ),
        (
            json!({"executor": {"instances": 5}}),
            "executor.instances",
            "6 pods in all, above the quota",
        ),
        (
            json!({"executor": {"instances": 3, "cores": 2}}),
            "executor.instances",
            "7 cpu in all, above the quota of sjns-payments-dev (4, quota.cpu)",
        ),
        (
            json!({"sparkConf": {"spark.kubernetes.executor.limit.cores": "3"}}),
            "sparkConf.spark.kubernetes.executor.limit.cores",
            "cpu limit 3 is above the per-container maximum 2",
        ),
        (
            json!({"dynamicAllocation": {"enabled": true, "maxExecutors": 20}}),
            "dynamicAllocation.maxExecutors",
            "1 driver and 20 executors",
        ),
    ];
    for (patch, field, words) in cases {
        let response = app.post_job(&job(patch.clone())).await;
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], field, "{patch}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{patch}: {message}");
    }
    let fits = app
        .submit(&job(json!({"executor": {"instances": 2}})))
        .await;
    let done = app.wait_finished(fits["id"].as_str().unwrap(), WAIT).await;
    assert_eq!(done["state"], "SUCCEEDED", "{done}");
}

/// Without clusters (the local backend) sk8 keeps the spec, and the guard works the same:
/// here for a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_backend_keeps_the_spec_and_guards_sessions() {
    let mut options = common::Options::new(Engine::Sqlite);
    options.extra = json!({"namespaces": {"requireProvisioned": true}});
    let app = TestApp::spawn(options).await;
    let session = json!({"team": "payments", "env": "dev", "name": "explore"});
    let create = async |body: &Value| {
        let response = app
            .http
            .post(app.url("/v1/sessions"))
            .json(body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    let (status, refused) = create(&session).await;
    assert_eq!(
        (status, &refused["error"]["field"]),
        (400, &json!("env")),
        "{refused}"
    );
    let (status, created) = put(
        &app,
        "payments",
        "dev",
        &json!({"limits": {"max": {"memory": "2Gi"}}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["clusters"], json!([]));
    let mut big = session.clone();
    big["driver"] = json!({"memory": "2g"});
    let (status, refused) = create(&big).await;
    assert_eq!(
        (status, &refused["error"]["field"]),
        (400, &json!("driver.memory")),
        "{refused}"
    );
    let (status, accepted) = create(&session).await;
    assert_eq!(status, 201, "{accepted}");
}
