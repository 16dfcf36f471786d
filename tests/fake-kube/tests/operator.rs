//! The fake Spark operator seen through the API, as sk8 will see it: server-side apply a
//! SparkApplication, watch its status move, find the driver pod by labels, read its log.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sk8_fake_kube::{FakeKube, OperatorOptions, Options};

const APPS: &str = "/apis/spark.apache.org/v1/namespaces/jobs/sparkapplications";
const PODS: &str = "/api/v1/namespaces/jobs/pods";
const TERMINAL: &[&str] = &["ResourceReleased", "TerminatedWithoutReleaseResources"];

struct Api {
    kube: FakeKube,
    http: reqwest::Client,
}

impl Api {
    /// A fake with the operator (20 ms steps, or only in `namespaces`) and namespace `jobs`.
    async fn start(namespaces: Option<Vec<String>>) -> Api {
        let operator = OperatorOptions {
            step: Duration::from_millis(20),
            namespaces,
            ..Default::default()
        };
        let kube = FakeKube::start_with(Options {
            operator: Some(operator),
            ..Options::default()
        })
        .await
        .unwrap();
        let api = Api {
            kube,
            http: reqwest::Client::new(),
        };
        let (status, _) = api
            .send(
                api.http
                    .post(api.url("/api/v1/namespaces"))
                    .json(&json!({"metadata": {"name": "jobs"}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        api
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.kube.url())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Server-side applies a SparkApplication the way sk8 will.
    async fn apply_app(&self, name: &str, annotations: Value, tolerations: Value) {
        let app = json!({
            "apiVersion": "spark.apache.org/v1", "kind": "SparkApplication",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"mainClass": "org.apache.spark.examples.SparkPi", "runtimeVersions": {"sparkVersion": "4.0.0"},
                     "sparkConf": {"spark.kubernetes.container.image": "apache/spark:4.0.0"},
                     "applicationTolerations": tolerations},
        });
        let url = self.url(&format!("{APPS}/{name}?fieldManager=sk8&force=true"));
        let request = self
            .http
            .patch(url)
            .header("content-type", "application/apply-patch+yaml")
            .body(app.to_string());
        let (status, body) = self.send(request).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    /// Watches `collection` (from the current state) until `done` holds for an object.
    async fn watch_until(
        &self,
        collection: &str,
        query: &str,
        done: impl Fn(&str, &Value) -> bool,
    ) -> Vec<(String, Value)> {
        let url = self.url(&format!(
            "{collection}?watch=true&timeoutSeconds=20&{query}"
        ));
        let mut response = self.http.get(url).send().await.unwrap();
        let (mut buffer, mut events) = (Vec::new(), Vec::new());
        while let Some(chunk) = response.chunk().await.unwrap() {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line).unwrap();
                let event_type = event["type"].as_str().unwrap().to_string();
                let finished = done(&event_type, &event["object"]);
                events.push((event_type, event["object"].clone()));
                if finished {
                    return events;
                }
            }
        }
        panic!("the watch of {collection} ended before the condition held: {events:?}");
    }

    /// Waits for the app's terminal summary; returns its history in order.
    async fn history_when_terminal(&self, name: &str) -> Vec<String> {
        let query = format!("fieldSelector=metadata.name%3D{name}");
        let events = self
            .watch_until(APPS, &query, |_, app| TERMINAL.contains(&summary(app)))
            .await;
        history(&events.last().unwrap().1)
    }
}

fn summary(app: &Value) -> &str {
    app.pointer("/status/currentState/currentStateSummary")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `status.stateTransitionHistory` in numeric key order.
fn history(app: &Value) -> Vec<String> {
    let entries = app["status"]["stateTransitionHistory"].as_object().unwrap();
    let mut keyed: Vec<(u64, String)> = entries
        .iter()
        .map(|(k, v)| {
            (
                k.parse().unwrap(),
                v["currentStateSummary"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, s)| s).collect()
}

const RUNNING: [&str; 5] = [
    "Submitted",
    "DriverRequested",
    "DriverStarted",
    "DriverReady",
    "RunningHealthy",
];

fn expect(prefix: &[&str], tail: &[&str]) -> Vec<String> {
    prefix.iter().chain(tail).map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_successful_app_walks_every_state_with_a_labelled_driver_pod() {
    let api = Api::start(None).await;
    let selector = "labelSelector=spark-role%3Ddriver,spark.operator/spark-app-name%3Dpi";
    let pods = api.watch_until(PODS, selector, |event_type, _| event_type == "DELETED");
    let (pod_events, ()) = tokio::join!(
        pods,
        api.apply_app(
            "pi",
            // Slower steps: the pod watch must be open before the pod is released.
            json!({"fake.sk8.dev/step-ms": "100"}),
            json!({})
        )
    );
    let phases: Vec<&str> = pod_events
        .iter()
        .map(|(_, pod)| pod["status"]["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases.first(), Some(&"Pending"));
    assert!(
        phases.contains(&"Running") && phases.contains(&"Succeeded"),
        "{phases:?}"
    );
    let running = pod_events
        .iter()
        .find(|(_, p)| p["status"]["phase"] == "Running")
        .unwrap();
    assert_eq!(running.1["metadata"]["name"], "pi-0-driver");
    assert!(
        running.1["status"]["podIP"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.")
    );
    assert_eq!(
        running.1["metadata"]["ownerReferences"][0]["kind"],
        "SparkApplication"
    );

    let history = api.history_when_terminal("pi").await;
    assert_eq!(
        history,
        expect(&RUNNING, &["Succeeded", "ResourceReleased"])
    );
    let (status, _) = api.get(&format!("{PODS}/pi-0-driver")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "released resources include the driver pod"
    );
}

#[tokio::test]
async fn failure_outcomes_end_like_the_real_operator() {
    let api = Api::start(None).await;
    let cases: [(&str, &[&str]); 7] = [
        ("Failed", &["RunningHealthy", "Failed"]),
        ("OOMKilled", &["RunningHealthy", "Failed"]),
        ("DriverEvicted", &["RunningHealthy", "DriverEvicted"]),
        ("SchedulingFailure", &["Submitted", "SchedulingFailure"]),
        (
            "DriverStartTimedOut",
            &["DriverRequested", "DriverStartTimedOut"],
        ),
        (
            "DriverReadyTimedOut",
            &["DriverStarted", "DriverReadyTimedOut"],
        ),
        (
            "ExecutorsStartTimedOut",
            &["DriverReady", "ExecutorsStartTimedOut"],
        ),
    ];
    for (outcome, _) in cases {
        let name = outcome.to_lowercase();
        api.apply_app(&name, json!({"fake.sk8.dev/outcome": outcome}), json!({}))
            .await;
    }
    for (outcome, ending) in cases {
        let history = api.history_when_terminal(&outcome.to_lowercase()).await;
        assert_eq!(history[0], "Submitted", "{outcome}");
        let tail = &history[history.len() - 3..];
        assert_eq!(
            tail[..2],
            ending.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..],
            "{outcome}: {history:?}"
        );
        assert_eq!(tail[2], "ResourceReleased", "{outcome}");
    }
}

#[tokio::test]
async fn oom_killed_driver_is_kept_when_resources_are_retained() {
    let api = Api::start(None).await;
    let annotations = json!({"fake.sk8.dev/outcome": "OOMKilled", "fake.sk8.dev/driver-log": "Pi is roughly 3.14\n"});
    api.apply_app(
        "oom",
        annotations,
        json!({"resourceRetainPolicy": "OnFailure"}),
    )
    .await;
    let history = api.history_when_terminal("oom").await;
    assert_eq!(
        history,
        expect(&RUNNING, &["Failed", "TerminatedWithoutReleaseResources"])
    );
    let (_, pod) = api.get(&format!("{PODS}/oom-0-driver")).await;
    assert_eq!(pod["status"]["phase"], "Failed");
    let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (
            terminated["reason"].as_str(),
            terminated["exitCode"].as_i64()
        ),
        (Some("OOMKilled"), Some(137))
    );
    let log = api
        .http
        .get(api.url(&format!("{PODS}/oom-0-driver/log")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        log.contains("Pi is roughly 3.14") && log.contains("OOMKilled"),
        "{log}"
    );
}

#[tokio::test]
async fn a_connect_server_keeps_running_on_its_pod_ip_until_deleted() {
    let api = Api::start(None).await;
    let app = json!({
        "apiVersion": "spark.apache.org/v1", "kind": "SparkApplication",
        "metadata": {"name": "session", "annotations": {"fake.sk8.dev/pod-ip": "127.0.0.42"}},
        "spec": {"mainClass": "org.apache.spark.sql.connect.service.SparkConnectServer",
                 "runtimeVersions": {"sparkVersion": "4.0.0"}},
    });
    let (status, _) = api.send(api.http.post(api.url(APPS)).json(&app)).await;
    assert_eq!(status, StatusCode::CREATED);
    let ready = |_: &str, pod: &Value| pod["status"]["conditions"][0]["status"] == "True";
    let events = api
        .watch_until(
            PODS,
            "labelSelector=spark.operator/spark-app-name%3Dsession",
            ready,
        )
        .await;
    assert_eq!(events.last().unwrap().1["status"]["podIP"], "127.0.0.42");
    let healthy = api
        .watch_until(APPS, "", |_, app| summary(app) == "RunningHealthy")
        .await;
    assert_eq!(history(&healthy.last().unwrap().1), expect(&RUNNING, &[]));

    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, app) = api.get(&format!("{APPS}/session")).await;
    assert_eq!(
        summary(&app),
        "RunningHealthy",
        "a Connect server does not finish by itself"
    );
    let (status, _) = api
        .send(api.http.delete(api.url(&format!("{APPS}/session"))))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.get(&format!("{PODS}/session-0-driver")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the driver pod is owned by the app"
    );
}

#[tokio::test]
async fn apps_outside_the_watched_namespaces_are_left_alone() {
    let api = Api::start(Some(vec!["default".into()])).await;
    api.apply_app("ignored", json!({}), json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, app) = api.get(&format!("{APPS}/ignored")).await;
    assert!(app.get("status").is_none(), "{app}");
}
