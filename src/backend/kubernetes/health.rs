//! Whether a cluster's API server answers. Any outage-like error (no connection, timeout, 5xx,
//! 429) marks the cluster down; while it is down, `capacity()` says why and its jobs wait QUEUED
//! instead of being submitted into the void. A probe (`GET /version`, with backoff) and any successful
//! watch event mark it up again and wake the reconciler.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::wake::Wake;

const PROBE_FIRST: Duration = Duration::from_millis(500);
const PROBE_MAX: Duration = Duration::from_secs(10);

pub struct Health {
    cluster: String,
    down: RwLock<Option<String>>,
    went_down: Notify,
}

impl Health {
    /// A cluster's health, up until an error says otherwise.
    pub fn new(cluster: &str) -> Self {
        metrics::gauge!("sk8_kube_api_up", "cluster" => cluster.to_owned()).set(1.0);
        Health {
            cluster: cluster.to_owned(),
            down: RwLock::default(),
            went_down: Notify::new(),
        }
    }

    /// Why the API server is considered unreachable, if it is.
    pub fn down(&self) -> Option<String> {
        self.down.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn mark_down(&self, reason: String) {
        let mut down = self.down.write().unwrap_or_else(|p| p.into_inner());
        if down.is_none() {
            tracing::warn!(cluster = %self.cluster, %reason, "Kubernetes API unavailable: jobs wait QUEUED until it answers");
            metrics::gauge!("sk8_kube_api_up", "cluster" => self.cluster.clone()).set(0.0);
            self.went_down.notify_one();
        }
        *down = Some(reason);
    }

    /// Marks the API up; true when it was down.
    pub fn mark_up(&self) -> bool {
        let was_down = self
            .down
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some();
        if was_down {
            tracing::info!(cluster = %self.cluster, "Kubernetes API answers again");
            metrics::gauge!("sk8_kube_api_up", "cluster" => self.cluster.clone()).set(1.0);
        }
        was_down
    }
}

/// Whether an error means the API server is unreachable or overloaded, rather than that it
/// refused this request.
/// An error as a person reads it: a request that timed out says so (kube reports it as a
/// bare `client error (SendRequest)`).
pub fn describe(err: &kube::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        let timed_out = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        if timed_out {
            return "no answer within backend.kubernetes.requestTimeoutSeconds (the request \
                    timed out)"
                .into();
        }
        source = cause.source();
    }
    err.to_string()
}

pub fn is_outage(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        _ => true,
    }
}

/// While the API is down, probes it until it answers; then wakes the reconciler.
pub async fn probe(
    client: kube::Client,
    health: Arc<Health>,
    wake: Arc<Wake>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = health.went_down.notified() => {}
        }
        let mut delay = PROBE_FIRST;
        while health.down().is_some() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            match client.apiserver_version().await {
                Ok(_) => {
                    if health.mark_up() {
                        // Whatever waited on the outage may proceed, and whatever changed
                        // meanwhile is read again.
                        wake.all();
                    }
                }
                Err(err) => {
                    health.mark_down(describe(&err));
                    delay = (delay * 2).min(PROBE_MAX);
                }
            }
        }
    }
}
