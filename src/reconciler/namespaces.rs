//! The namespace reconciler: every `namespaces.resyncSeconds` (or when woken) it compares each
//! provisioned namespace with what its clusters hold and applies the spec again where an object
//! was edited or deleted behind sk8's back, or where an apply failed; it finishes deletions a
//! cluster did not complete. Secret copies follow their sources the same way: a changed source
//! is a drifted copy. A pass never retries in place: the next pass is the retry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backend::namespaces::{ClusterNamespace, Provisioner};
use crate::domain::namespace::TeamNamespace;
use crate::store::{Store, StoreError};

pub struct NamespaceReconciler {
    store: Store,
    provisioner: Arc<dyn Provisioner>,
    every: Duration,
    wake: Arc<Notify>,
}

impl NamespaceReconciler {
    pub fn new(
        store: Store,
        provisioner: Arc<dyn Provisioner>,
        every: Duration,
        wake: Arc<Notify>,
    ) -> Self {
        NamespaceReconciler {
            store,
            provisioner,
            every,
            wake,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.every) => {}
            }
            if let Err(err) = self.pass().await {
                tracing::warn!(error = %err, "namespace pass failed; the next pass retries");
            }
        }
        tracing::info!("namespace reconciler stopped");
    }

    async fn pass(&self) -> Result<(), StoreError> {
        for namespace in self.store.namespace_list_all().await? {
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
