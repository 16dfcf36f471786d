//! One watch per cluster over every sk8-managed SparkApplication, feeding a cache of their
//! statuses: the reconciler reads attempts from memory instead of polling the API server, and
//! is woken the moment a status changes.
//!
//! kube-runtime's watcher resumes from the last resourceVersion after a disconnect and relists
//! after `410 Gone`; a relist replaces the cache wholesale, so an application deleted while the
//! watch was down does not linger.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::render::{
    LABEL_ATTEMPT, LABEL_JOB_ID, LABEL_MANAGED_BY, LABEL_SESSION_ID, LABEL_SESSION_START,
    MANAGED_BY,
};
use super::status::attempt_status;
use crate::backend::AttemptStatus;
use crate::domain::JobId;
use crate::wake::Wake;

/// (namespace, name) of a SparkApplication.
pub type AppKey = (String, String);

/// What the watch last saw of one application. The status is kept as its JSON text: a third
/// of the memory of a parsed value, which matters with ten thousand applications, and parsed
/// again only when the reconciler looks at that one application.
#[derive(Debug, PartialEq)]
pub struct Seen {
    status: Box<str>,
    /// The application has ended (it only holds its record and logs).
    pub finished: bool,
    /// sk8's labels: which job and attempt the application runs.
    pub job_id: Option<String>,
    pub attempt: Option<u32>,
    /// Or which session's server, and which of its starts.
    pub session_id: Option<String>,
    pub session_start: Option<u32>,
}

/// What the watch has seen, by application.
#[derive(Default)]
pub struct StatusCache {
    apps: RwLock<HashMap<AppKey, Seen>>,
}

impl StatusCache {
    /// The last status seen of an application; `None` if the watch has not seen it (yet).
    pub fn get(&self, key: &AppKey) -> Option<Value> {
        let apps = self.read();
        let status = &apps.get(key)?.status;
        Some(serde_json::from_str(status).unwrap_or(Value::Null))
    }

    /// Every application the watch knows of, as `view` sees it: computed under the lock, so
    /// the statuses (kilobytes each, ten thousand of them) are not copied.
    pub fn view_all<T>(&self, mut view: impl FnMut(&AppKey, &Seen) -> Option<T>) -> Vec<T> {
        self.read()
            .iter()
            .filter_map(|(key, seen)| view(key, seen))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<AppKey, Seen>> {
        self.apps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<AppKey, Seen>> {
        self.apps.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an application; true when its status changed.
    fn apply(&self, object: &DynamicObject) -> bool {
        let Some(key) = key_of(object) else {
            return false;
        };
        let status = object.data.get("status").unwrap_or(&Value::Null);
        let finished = !matches!(
            attempt_status(status),
            AttemptStatus::Pending { .. } | AttemptStatus::Running { .. }
        );
        let seen = Seen {
            status: status.to_string().into_boxed_str(),
            finished,
            job_id: label(object, LABEL_JOB_ID),
            attempt: label(object, LABEL_ATTEMPT).and_then(|a| a.parse().ok()),
            session_id: label(object, LABEL_SESSION_ID),
            session_start: label(object, LABEL_SESSION_START).and_then(|s| s.parse().ok()),
        };
        let mut apps = self.write();
        let changed = apps
            .get(&key)
            .is_none_or(|before| before.status != seen.status);
        apps.insert(key, seen);
        changed
    }

    /// Forgets an application; true when it was known.
    fn delete(&self, object: &DynamicObject) -> bool {
        key_of(object).is_some_and(|key| self.write().remove(&key).is_some())
    }

    /// Drops what a completed relist did not see.
    fn retain(&self, seen: &HashSet<AppKey>) {
        self.write().retain(|key, _| seen.contains(key));
    }
}

fn label(object: &DynamicObject, name: &str) -> Option<String> {
    object.metadata.labels.as_ref()?.get(name).cloned()
}

/// The job an application runs, from sk8's label.
fn job_of(object: &DynamicObject) -> Option<JobId> {
    JobId::parse(&label(object, LABEL_JOB_ID)?)
}

fn key_of(object: &DynamicObject) -> Option<AppKey> {
    Some((
        object.metadata.namespace.clone()?,
        object.metadata.name.clone()?,
    ))
}

/// What the watch feeds.
pub struct Watched {
    /// The cluster watched, for logs and metrics.
    pub cluster: String,
    pub cache: Arc<StatusCache>,
    pub health: Arc<Health>,
    /// Told which job's application changed, or to look at every job after a relist.
    pub wake: Arc<Wake>,
}

/// Runs the watch until `stop`.
pub async fn run(api: Api<DynamicObject>, watched: Watched, stop: CancellationToken) {
    let selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY}");
    let config = watcher::Config::default().labels(&selector);
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut relisted = HashSet::new();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = events.next() => event,
        };
        match event {
            None => break,
            Some(Ok(event)) => {
                if watched.health.mark_up() {
                    watched.wake.all();
                }
                handle(&watched, event, &mut relisted);
            }
            Some(Err(err)) => {
                metrics::counter!("sk8_kube_watch_errors_total", "cluster" => watched.cluster.clone())
                    .increment(1);
                tracing::warn!(cluster = %watched.cluster, error = %err, "SparkApplication watch failed; resuming with backoff");
                watched.health.mark_down(format!("watch: {err}"));
            }
        }
    }
    tracing::info!("SparkApplication watch stopped");
}

/// Updates the cache and names the job of every application whose status changed.
fn handle(watched: &Watched, event: Event<DynamicObject>, relisted: &mut HashSet<AppKey>) {
    let cache = &watched.cache;
    let changed = match event {
        Event::Apply(object) => cache.apply(&object).then_some(object),
        Event::Delete(object) => cache.delete(&object).then_some(object),
        Event::Init => {
            relisted.clear();
            None
        }
        Event::InitApply(object) => {
            relisted.extend(key_of(&object));
            cache.apply(&object);
            None
        }
        Event::InitDone => {
            cache.retain(relisted);
            tracing::info!(
                cluster = %watched.cluster,
                applications = relisted.len(),
                "SparkApplication watch (re)listed"
            );
            // What changed while the watch was away is not named one by one.
            watched.wake.all();
            None
        }
    };
    if let Some(job) = changed.as_ref().and_then(job_of) {
        watched.wake.job(job);
    }
}
