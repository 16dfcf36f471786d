//! Protocol edges kubectl does not reach, over plain HTTP: watch history and 410, initial
//! events and bookmarks, paging, patch types, and the error codes of refused requests.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sk8_fake_kube::{FakeKube, Options};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

struct Api {
    kube: FakeKube,
    http: reqwest::Client,
}

impl Api {
    async fn start(options: Options) -> Api {
        Api {
            kube: FakeKube::start_with(options).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let request = self
            .http
            .request(method, format!("{}{path}", self.kube.url()));
        let request = if body.is_null() {
            request
        } else {
            request
                .header("content-type", content_type)
                .body(body.to_string())
        };
        let response = request.send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn create(&self, name: &str) -> Value {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}});
        let (status, object) = self
            .call(Method::POST, CONFIGMAPS, "application/json", body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{object}");
        object
    }

    /// The lines of a watch that ends by itself (timeoutSeconds), or the first `max` lines.
    async fn watch_lines(&self, query: &str, max: usize) -> Vec<Value> {
        let url = format!("{}{CONFIGMAPS}?watch=1&{query}", self.kube.url());
        let mut response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let (mut buffer, mut lines) = (Vec::new(), Vec::new());
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .unwrap()
            .unwrap()
        {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                lines.push(serde_json::from_slice(&line).unwrap());
                if lines.len() == max {
                    return lines;
                }
            }
        }
        lines
    }
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn types(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn watches_resume_from_history_and_report_410_when_it_is_gone() {
    let api = Api::start(Options {
        history_limit: 4,
        ..Options::default()
    })
    .await;
    let first = api.create("a").await;
    api.create("b").await;
    let resumed = api
        .watch_lines(
            &format!("resourceVersion={}&timeoutSeconds=1", rv(&first)),
            10,
        )
        .await;
    assert_eq!(types(&resumed), ["ADDED"]);
    assert_eq!(resumed[0]["object"]["metadata"]["name"], "b");

    for name in ["c", "d", "e", "f"] {
        api.create(name).await;
    }
    let gone = api
        .watch_lines(&format!("resourceVersion={}", rv(&first)), 10)
        .await;
    assert_eq!(types(&gone), ["ERROR"]);
    let status = &gone[0]["object"];
    assert_eq!(
        (
            status["kind"].as_str(),
            status["code"].as_u64(),
            status["reason"].as_str()
        ),
        (Some("Status"), Some(410), Some("Expired"))
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version")
    );
}

#[tokio::test]
async fn initial_events_end_with_a_bookmark_and_bookmarks_keep_coming() {
    let options = Options {
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    };
    let api = Api::start(options).await;
    api.create("a").await;
    let lines = api
        .watch_lines(
            "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
            3,
        )
        .await;
    assert_eq!(types(&lines), ["ADDED", "BOOKMARK", "BOOKMARK"]);
    assert_eq!(
        lines[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(lines[1]["object"]["kind"], "ConfigMap");
    assert!(lines[2]["object"]["metadata"].get("annotations").is_none());
}

#[tokio::test]
async fn lists_page_and_carry_a_resource_version() {
    let api = Api::start(Options::default()).await;
    for name in ["a", "b", "c"] {
        api.create(name).await;
    }
    let (_, page) = api
        .call(
            Method::GET,
            &format!("{CONFIGMAPS}?limit=2"),
            "",
            Value::Null,
        )
        .await;
    assert_eq!(
        (
            page["kind"].as_str(),
            page["items"].as_array().unwrap().len()
        ),
        (Some("ConfigMapList"), 2)
    );
    assert_eq!(page["metadata"]["remainingItemCount"], 1);
    let token = page["metadata"]["continue"].as_str().unwrap();
    let (_, rest) = api
        .call(
            Method::GET,
            &format!("{CONFIGMAPS}?limit=2&continue={token}"),
            "",
            Value::Null,
        )
        .await;
    assert_eq!(rest["items"][0]["metadata"]["name"], "c");
    assert!(rest["metadata"].get("continue").is_none());
    assert_eq!(
        rest["metadata"]["resourceVersion"],
        page["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn patch_types_and_optimistic_concurrency() {
    let api = Api::start(Options::default()).await;
    let created = api.create("a").await;
    let item = format!("{CONFIGMAPS}/a");
    let merge = json!({"data": {"k": null, "n": "1"}});
    let (status, merged) = api
        .call(Method::PATCH, &item, "application/merge-patch+json", merge)
        .await;
    assert_eq!(
        (status, &merged["data"]),
        (StatusCode::OK, &json!({"n": "1"}))
    );
    let ops = json!([{"op": "add", "path": "/data/m", "value": "2"}, {"op": "remove", "path": "/data/n"}]);
    let (_, patched) = api
        .call(Method::PATCH, &item, "application/json-patch+json", ops)
        .await;
    assert_eq!(patched["data"], json!({"m": "2"}));

    let (status, conflict) = api
        .call(Method::PUT, &item, "application/json", created)
        .await;
    assert_eq!(
        (status, conflict["reason"].as_str()),
        (StatusCode::CONFLICT, Some("Conflict"))
    );
    let mut current = patched.clone();
    current["data"]["m"] = json!("3");
    let (status, updated) = api
        .call(Method::PUT, &item, "application/json", current)
        .await;
    assert_eq!(
        (status, rv(&updated) > rv(&patched)),
        (StatusCode::OK, true)
    );
}

#[tokio::test]
async fn refused_requests_get_status_objects_with_the_right_codes() {
    let api = Api::start(Options::default()).await;
    api.create("a").await;
    let item = format!("{CONFIGMAPS}/a");
    let cases: Vec<(Method, String, &str, Value, u16, &str)> = vec![
        (
            Method::GET,
            format!("{CONFIGMAPS}/missing"),
            "",
            Value::Null,
            404,
            "NotFound",
        ),
        (
            Method::PATCH,
            item.clone(),
            "text/plain",
            json!({}),
            415,
            "UnsupportedMediaType",
        ),
        (
            Method::PATCH,
            item.clone(),
            "application/apply-patch+yaml",
            json!({}),
            400,
            "BadRequest",
        ),
        (
            Method::POST,
            CONFIGMAPS.into(),
            "application/json",
            json!({"metadata": {}}),
            422,
            "Invalid",
        ),
        (
            Method::POST,
            CONFIGMAPS.into(),
            "application/json",
            json!({"metadata": {"name": "a"}}),
            409,
            "AlreadyExists",
        ),
        (
            Method::POST,
            "/api/v1/configmaps".into(),
            "application/json",
            json!({}),
            405,
            "MethodNotAllowed",
        ),
        (
            Method::GET,
            format!("{CONFIGMAPS}?labelSelector=a%20b"),
            "",
            Value::Null,
            400,
            "BadRequest",
        ),
        (
            Method::GET,
            "/api/v1/widgets".into(),
            "",
            Value::Null,
            404,
            "NotFound",
        ),
        (
            Method::PATCH,
            "/apis/spark.apache.org/v1/namespaces/default/sparkapplications/x".into(),
            "application/strategic-merge-patch+json",
            json!({}),
            415,
            "UnsupportedMediaType",
        ),
    ];
    for (method, path, content_type, body, code, reason) in cases {
        let (status, status_object) = api.call(method.clone(), &path, content_type, body).await;
        assert_eq!(status.as_u16(), code, "{method} {path}: {status_object}");
        assert_eq!(
            (
                status_object["kind"].as_str(),
                status_object["reason"].as_str()
            ),
            (Some("Status"), Some(reason)),
            "{path}"
        );
        assert_eq!(status_object["code"], code);
    }
}

#[tokio::test]
async fn kubectl_tables_and_aggregated_discovery() {
    let api = Api::start(Options::default()).await;
    api.create("a").await;
    let url = format!("{}{CONFIGMAPS}", api.kube.url());
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let table: Value = api
        .http
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"][0]["cells"][0], "a");
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let response = api
        .http
        .get(format!("{}/apis", api.kube.url()))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        content_type,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let groups: Value = response.json().await.unwrap();
    assert!(
        groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["metadata"]["name"] == "spark.apache.org")
    );
}
