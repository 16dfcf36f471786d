//! The namespace reconciler: it compares provisioned namespaces with what their clusters hold
//! and applies the spec again where an object was edited or deleted behind sk8's back, or where
//! an apply failed; it finishes deletions a cluster did not complete. Secret copies follow their
//! sources the same way: a changed source is a drifted copy.
//!
//! A pass looks at the namespaces announced in [`NamespaceChanges`] (by the provisioner's
//! watches, or a failed apply), and at every namespace each `namespaces.resyncSeconds`: the
//! safety net for what no watch saw. A pass never retries in place: the next pass is the retry.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::namespaces::{Changed, ClusterNamespace, NamespaceChanges, Provisioner};
use crate::domain::namespace::TeamNamespace;
use crate::lease::Lease;
use crate::store::{Store, StoreError};

pub struct NamespaceReconciler {
    store: Store,
    provisioner: Arc<dyn Provisioner>,
    every: Duration,
    /// Apply the spec again on drift (else only report it).
    repair: bool,
    changes: Arc<NamespaceChanges>,
    /// The `global` lease: repairs run only on its holder (none: always).
    lease: Option<Arc<Lease>>,
}

impl NamespaceReconciler {
    pub fn new(
        store: Store,
        provisioner: Arc<dyn Provisioner>,
        every: Duration,
        repair: bool,
        changes: Arc<NamespaceChanges>,
    ) -> Self {
        NamespaceReconciler {
            store,
            provisioner,
            every,
            repair,
            changes,
            lease: None,
        }
    }

    /// Repairs only while this replica holds `lease`; a replica that takes it over looks at
    /// every namespace first.
    pub fn with_lease(mut self, lease: Arc<Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Whether this replica may repair now (it holds the lease, or there is none).
    fn acting(&self) -> bool {
        self.lease.as_ref().is_none_or(|l| l.current().is_some())
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut resync_at = Instant::now() + self.every;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.changes.announced() => {}
                _ = tokio::time::sleep_until(resync_at) => {}
            }
            let mut changed = self.changes.take();
            if let Some(lease) = self.lease.as_ref().filter(|_| !self.acting()) {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = lease.changed() => {}
                }
                // Whoever takes the lease over starts with a full look.
                resync_at = Instant::now();
                continue;
            }
            if Instant::now() >= resync_at {
                resync_at = Instant::now() + self.every;
                changed = Changed::everything();
            }
            if let Err(err) = self.pass(&changed).await {
                tracing::warn!(error = %err, "namespace pass failed; the next pass retries");
            }
        }
        tracing::info!("namespace reconciler stopped");
    }

    async fn pass(&self, changed: &Changed) -> Result<(), StoreError> {
        for namespace in self.store.namespace_list_all().await? {
            if !changed.touches(&namespace.spec) {
                continue;
            }
            if namespace.deleted_at.is_some() {
                self.finish_delete(&namespace).await?;
            } else {
                self.repair(&namespace).await;
            }
        }
        Ok(())
    }

    async fn finish_delete(&self, namespace: &TeamNamespace) -> Result<(), StoreError> {
        match self.provisioner.delete(&namespace.spec).await {
            Ok(()) => {
                self.store
                    .namespace_remove(&namespace.team, &namespace.env)
                    .await
            }
            Err(err) => {
                tracing::warn!(namespace = %namespace.namespace, error = %err, "deleting namespace failed; retrying next pass");
                Ok(())
            }
        }
    }

    /// Applies the spec again when any object is missing or differs from it.
    async fn repair(&self, namespace: &TeamNamespace) {
        let observed = self.provisioner.observe(&namespace.spec).await;
        let drifted: Vec<String> = observed.iter().flat_map(drifted_objects).collect();
        let unreadable = observed.iter().any(|c| c.error.is_some());
        if drifted.is_empty() && !unreadable {
            return;
        }
        if !self.repair {
            tracing::info!(namespace = %namespace.namespace, objects = ?drifted, "namespace drifted; not repaired (namespaces.repairDrift is false)");
            return;
        }
        match self.provisioner.apply(&namespace.spec).await {
            Ok(()) => {
                metrics::counter!("sk8_namespace_repairs_total").increment(1);
                tracing::info!(namespace = %namespace.namespace, objects = ?drifted, "repaired drift: applied the namespace's spec again");
            }
            Err(err) => {
                tracing::warn!(namespace = %namespace.namespace, error = %err, "repairing namespace failed; retrying next pass");
            }
        }
    }
}

/// `Kind/name` of each object of a cluster that is missing or differs from the spec.
fn drifted_objects(cluster: &ClusterNamespace) -> Vec<String> {
    cluster
        .objects
        .iter()
        .filter(|o| o.state != crate::backend::namespaces::ObjectState::InSync)
        .map(|o| format!("{}/{} on {}", o.kind, o.name, cluster.cluster))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::backend::BackendError;
    use crate::backend::namespaces::{ObjectState, ObservedObject, ProvisionError};
    use crate::domain::NamespaceSpec;

    /// A cluster where the namespace's quota is always missing; counts the applies.
    #[derive(Default)]
    struct AlwaysMissing {
        applies: AtomicUsize,
    }

    #[async_trait]
    impl Provisioner for AlwaysMissing {
        async fn check(&self, _: &NamespaceSpec) -> Result<(), ProvisionError> {
            Ok(())
        }
        async fn apply(&self, _: &NamespaceSpec) -> Result<(), ProvisionError> {
            self.applies.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn observe(&self, _: &NamespaceSpec) -> Vec<ClusterNamespace> {
            let quota = ObservedObject {
                kind: "ResourceQuota".into(),
                name: "sk8-quota".into(),
                state: ObjectState::Missing,
                drifted_fields: Vec::new(),
                resource_version: None,
            };
            vec![ClusterNamespace {
                cluster: "default".into(),
                objects: vec![quota],
                error: None,
            }]
        }
        async fn delete(&self, _: &NamespaceSpec) -> Result<(), BackendError> {
            Ok(())
        }
    }

    /// With no watch announcing anything, the resync alone finds the drift and repairs it.
    #[tokio::test]
    async fn the_resync_repairs_what_no_watch_announced() {
        let store = Store::in_memory().await;
        let policy = crate::config::Config::default().namespaces.policy();
        let spec = NamespaceSpec::parse(
            b"{}",
            crate::domain::jobspec::Format::Json,
            "t",
            "e",
            &policy,
        )
        .unwrap();
        store.namespace_put(&spec).await.unwrap();
        let cluster = Arc::new(AlwaysMissing::default());
        let changes = Arc::new(NamespaceChanges::default());
        let every = Duration::from_millis(50);
        let reconciler = NamespaceReconciler::new(store, cluster.clone(), every, true, changes);
        let stop = CancellationToken::new();
        let task = tokio::spawn(reconciler.run(stop.clone()));
        tokio::time::timeout(Duration::from_secs(10), async {
            while cluster.applies.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("two resyncs applied the spec again");
        stop.cancel();
        task.await.unwrap();
    }
}
