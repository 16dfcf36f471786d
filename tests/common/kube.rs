//! A fake Kubernetes cluster for the suites that run sk8's Kubernetes backend: the project's
//! fake API server (optionally with its Spark operator), a kubeconfig for it, raw API calls
//! as another client of the cluster would make them, and the real kubectl pointed at it.
//! Included with `#[path]` by the suites that use it (`tests/kubernetes.rs`,
//! `tests/namespaces.rs`, `tests/connect.rs`), beside `common`.
#![allow(dead_code)] // each suite uses part of it

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sk8_fake_kube::{FakeKube, OperatorOptions};

use crate::common::{self, Engine, Options, TestApp};

pub const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// The fake cluster and the kubeconfig that points at it (deleted with it).
pub struct Cluster {
    pub kube: FakeKube,
    pub kubeconfig: tempfile::TempPath,
    http: reqwest::Client,
}

/// The fake's own controls (outages, the operator) are the cluster's.
impl std::ops::Deref for Cluster {
    type Target = FakeKube;
    fn deref(&self) -> &FakeKube {
        &self.kube
    }
}

impl Cluster {
    /// A fake API server with its operator (100 ms steps), and a kubeconfig for it.
    pub async fn start() -> Cluster {
        Cluster::start_with(OperatorOptions {
            step: Duration::from_millis(100),
            ..Default::default()
        })
        .await
    }

    /// The same with the operator set up as given.
    pub async fn start_with(operator: OperatorOptions) -> Cluster {
        let kube = FakeKube::start_with(sk8_fake_kube::Options {
            operator: Some(operator),
            ..Default::default()
        })
        .await
        .expect("start the fake API server");
        let kubeconfig = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        kube.write_kubeconfig(&kubeconfig).unwrap();
        Cluster {
            kube,
            kubeconfig,
            http: reqwest::Client::new(),
        }
    }

    /// `sk8 serve` on the Kubernetes backend pointed at this cluster, `extra` merged into its
    /// config.
    pub async fn sk8(&self, engine: Engine, extra: Value) -> TestApp {
        let mut options = Options::new(engine);
        options.extra = json!({
            "backend": {"kind": "kubernetes", "kubernetes": {"kubeconfig": &*self.kubeconfig}},
        });
        common::merge(&mut options.extra, &extra);
        TestApp::spawn(options).await
    }

    /// `POST` to a collection, as another client of the cluster; asserts success.
    pub async fn create(&self, collection: &str, body: &Value) {
        let response = self
            .send(self.http.post(self.url(collection)).json(body))
            .await;
        assert!(response.0 < 300, "create in {collection}: {}", response.1);
    }

    /// `GET` an object: status and body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    /// Waits (at most `wait`) until the pod `name` of `namespace` exists: a test's
    /// precondition, such as an executor the operator creates once the driver is ready.
    pub async fn wait_for_pod(&self, namespace: &str, name: &str, wait: Duration) {
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
        let deadline = std::time::Instant::now() + wait;
        while self.get(&path).await.0 != 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "the pod {namespace}/{name} never appeared within {wait:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A JSON merge patch, as `kubectl edit` would change an object; asserts success.
    pub async fn merge_patch(&self, path: &str, patch: &Value) {
        let request = self
            .http
            .patch(self.url(path))
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string());
        let response = self.send(request).await;
        assert!(response.0 < 300, "patch {path}: {}", response.1);
    }

    /// `DELETE` an object; asserts success.
    pub async fn delete(&self, path: &str) {
        let response = self.send(self.http.delete(self.url(path))).await;
        assert!(response.0 < 300, "delete {path}: {}", response.1);
    }

    /// Runs the real kubectl against the fake and parses its JSON output; None (after a loud
    /// message) when kubectl is not installed.
    pub async fn kubectl_json(&self, args: &[&str]) -> Option<Value> {
        if !Path::new(KUBECTL).exists() {
            eprintln!("\n!!!!! {KUBECTL} is missing: kubectl read-back SKIPPED !!!!!\n");
            return None;
        }
        let cache = tempfile::tempdir().unwrap();
        let output = tokio::process::Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&*self.kubeconfig)
            .arg("--cache-dir")
            .arg(cache.path())
            .args(args)
            .args(["-o", "json"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("run kubectl");
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(serde_json::from_slice(&output.stdout).expect("kubectl printed JSON"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.kube.url())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("reach the fake API server");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }
}

/// `/api/v1/namespaces/{namespace}/{plural}/{name}` or, for a group, under `/apis/{group}/v1`.
pub fn object_path(group: &str, namespace: &str, plural: &str, name: &str) -> String {
    let prefix = if group.is_empty() {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{group}/v1")
    };
    format!("{prefix}/namespaces/{namespace}/{plural}/{name}")
}
