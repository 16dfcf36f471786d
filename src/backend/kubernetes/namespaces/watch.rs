//! Watches of what team namespaces are made of, so drift is repaired when it happens rather
//! than at the next resync: one watch per kind over the objects labelled as sk8's (an edit, a
//! delete, or a label removed all show up), and one over the platform namespace's secrets
//! (their copies follow them). Each event announces the namespace (or the secret) it touched;
//! the reconciler compares the namespaces concerned with their specs, so sk8's own applies cost one read-back and no write.

use std::sync::Arc;

use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use super::super::render::{LABEL_MANAGED_BY, MANAGED_BY};
use super::{ClusterClient, KINDS, api, render::NamespaceSettings};
use crate::backend::namespaces::NamespaceChanges;
use crate::domain::names::NAMESPACE_PREFIX;

/// Starts the cluster's watches; they run until `stop`.
pub fn start(
    cluster: &ClusterClient,
    settings: &NamespaceSettings,
    changes: &Arc<NamespaceChanges>,
    stop: &CancellationToken,
) {
    let managed = format!("{LABEL_MANAGED_BY}={MANAGED_BY}");
    for kind in KINDS {
        let api = api(&cluster.streams, kind, None);
        let config = watcher::Config::default().labels(&managed);
        let changes = changes.clone();
        let announce = move |object: &DynamicObject| {
            let namespace = match kind {
                "Namespace" => object.metadata.name.clone(),
                _ => object.metadata.namespace.clone(),
            };
            if let Some(namespace) = namespace.filter(|n| n.starts_with(NAMESPACE_PREFIX)) {
                changes.namespace(namespace);
            }
        };
        tokio::spawn(run(api, config, announce, stop.clone()));
    }
    let platform = &settings.namespaces.platform_namespace;
    let sources = api(&cluster.streams, "Secret", Some(platform));
    let changes = changes.clone();
    let announce = move |secret: &DynamicObject| {
        if let Some(name) = secret.metadata.name.clone() {
            changes.secret(name);
        }
    };
    tokio::spawn(run(
        sources,
        watcher::Config::default(),
        announce,
        stop.clone(),
    ));
}

/// Announces every change the watch sees after its first list, until `stop`; errors are
/// retried with backoff (the resync repairs whatever a broken watch missed).
async fn run(
    api: kube::Api<DynamicObject>,
    config: watcher::Config,
    announce: impl Fn(&DynamicObject) + Send + 'static,
    stop: CancellationToken,
) {
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = events.next() => event,
        };
        match event {
            None => break,
            Some(Ok(Event::Apply(object) | Event::Delete(object))) => announce(&object),
            Some(Ok(Event::Init | Event::InitApply(_) | Event::InitDone)) => {}
            Some(Err(err)) => tracing::debug!(error = %err, "namespace watch failed; resuming"),
        }
    }
}
