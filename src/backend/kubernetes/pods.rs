//! Driver pods of sk8's applications, by application, from one watch over the pods that carry
//! sk8's labels (the renderer puts them on drivers): the driver pod's name without a list call
//! per status check, for the job's history and for its log.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use super::render::{LABEL_MANAGED_BY, MANAGED_BY};
use super::watch::AppKey;

/// The label the operator puts on an application's pods.
pub const APP_NAME_LABEL: &str = "spark.operator/spark-app-name";

/// Driver pod names by (namespace, application).
#[derive(Default)]
pub struct DriverPods {
    names: RwLock<HashMap<AppKey, String>>,
}

impl DriverPods {
    pub fn get(&self, app: &AppKey) -> Option<String> {
        self.names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
            .cloned()
    }

    fn update(&self, pod: &Pod, present: bool) {
        let Some(key) = app_of(pod) else { return };
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        match (present, pod.metadata.name.clone()) {
            (true, Some(name)) => names.insert(key, name),
            _ => names.remove(&key),
        };
    }
}

fn app_of(pod: &Pod) -> Option<AppKey> {
    let app = pod.metadata.labels.as_ref()?.get(APP_NAME_LABEL)?;
    Some((pod.metadata.namespace.clone()?, app.clone()))
}

/// Keeps `pods` current until `stop`; errors are retried with backoff (the application watch
/// reports API health, so they are only logged at debug level here).
pub async fn run(api: Api<Pod>, pods: Arc<DriverPods>, stop: CancellationToken) {
    let selector = format!("spark-role=driver,{LABEL_MANAGED_BY}={MANAGED_BY}");
    let config = watcher::Config::default().labels(&selector);
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = events.next() => event,
        };
        match event {
            None => break,
            Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => pods.update(&pod, true),
            Some(Ok(Event::Delete(pod))) => pods.update(&pod, false),
            Some(Ok(Event::Init | Event::InitDone)) => {}
            Some(Err(err)) => tracing::debug!(error = %err, "driver pod watch failed; resuming"),
        }
    }
}
