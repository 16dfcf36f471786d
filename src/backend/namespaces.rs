//! The provisioning seam: where team namespaces are made real. The Kubernetes backend
//! implements [`Provisioner`] (server-side apply of the rendered objects on the team's
//! clusters); backends without clusters have none, and sk8 then keeps only the desired spec.

use std::collections::BTreeSet;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use super::BackendError;
use crate::domain::NamespaceSpec;

/// Which team namespaces may have changed: announced by the provisioner's watches (an object
/// of a namespace edited or deleted, a platform secret changed) and by a failed apply or
/// delete; taken by the namespace reconciler, which looks at just those.
#[derive(Default)]
pub struct NamespaceChanges {
    pending: Mutex<Changed>,
    notify: Notify,
}

/// What the reconciler is to look at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Team namespaces (`sjns-<team>-<env>`) by name.
    pub namespaces: BTreeSet<String>,
    /// Platform secrets by name: every namespace that copies one.
    pub secrets: BTreeSet<String>,
    /// Every namespace (the periodic resync).
    pub all: bool,
}

impl Changed {
    /// Everything: what a resync looks at.
    pub fn everything() -> Self {
        Changed {
            all: true,
            ..Changed::default()
        }
    }

    /// Whether a namespace of this spec is among the changed.
    pub fn touches(&self, spec: &NamespaceSpec) -> bool {
        self.all
            || self.namespaces.contains(&spec.namespace())
            || spec.secrets.iter().any(|s| self.secrets.contains(&s.name))
    }
}

impl NamespaceChanges {
    /// Something in `namespace` (`sjns-<team>-<env>`) may differ from its spec.
    pub fn namespace(&self, namespace: String) {
        self.lock().namespaces.insert(namespace);
        self.notify.notify_one();
    }

    /// The platform secret `name` changed: its copies may differ from it.
    pub fn secret(&self, name: String) {
        self.lock().secrets.insert(name);
        self.notify.notify_one();
    }

    /// Waits for an announcement.
    pub async fn announced(&self) {
        self.notify.notified().await;
    }

    /// What was announced since the last take.
    pub fn take(&self) -> Changed {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Changed> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How one managed object compares with what sk8 wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ObjectState {
    InSync,
    /// Someone changed a field sk8 sets.
    Drifted,
    Missing,
}

impl ObjectState {
    /// As the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectState::InSync => "IN_SYNC",
            ObjectState::Drifted => "DRIFTED",
            ObjectState::Missing => "MISSING",
        }
    }
}

/// One object of a team namespace as found in a cluster. Secret values are never part of it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedObject {
    pub kind: String,
    pub name: String,
    pub state: ObjectState,
    /// The fields that differ (JSON paths), for a drifted object.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drifted_fields: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// A team namespace on one cluster.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNamespace {
    pub cluster: String,
    pub objects: Vec<ObservedObject>,
    /// Why the cluster could not be read (its objects are then unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ClusterNamespace {
    pub fn in_sync(&self) -> bool {
        self.error.is_none() && self.objects.iter().all(|o| o.state == ObjectState::InSync)
    }
}

/// Why a namespace cannot be provisioned as asked.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A referenced secret is not in the platform namespace of a cluster.
    #[error(
        "secret {name} is not in the platform namespace {platform_namespace} on cluster {cluster}"
    )]
    UnknownSecret {
        index: usize,
        name: String,
        platform_namespace: String,
        cluster: String,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

#[async_trait]
pub trait Provisioner: Send + Sync + 'static {
    /// Checks what the spec references in the clusters (its secrets) before it is stored.
    async fn check(&self, spec: &NamespaceSpec) -> Result<(), ProvisionError>;

    /// Applies every object of the namespace on each of its clusters (server-side apply:
    /// unchanged objects are not written), and removes copied secrets the spec no longer
    /// lists.
    async fn apply(&self, spec: &NamespaceSpec) -> Result<(), ProvisionError>;

    /// What each cluster holds of the namespace, compared with the spec.
    async fn observe(&self, spec: &NamespaceSpec) -> Vec<ClusterNamespace>;

    /// Deletes the namespace (and so everything in it) from each of its clusters; done when
    /// it returns Ok.
    async fn delete(&self, spec: &NamespaceSpec) -> Result<(), BackendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(team: &str, secrets: &str) -> NamespaceSpec {
        let body = format!(r#"{{"secrets": [{secrets}]}}"#);
        let policy = crate::config::Config::default().namespaces.policy();
        let format = crate::domain::jobspec::Format::Json;
        NamespaceSpec::parse(body.as_bytes(), format, team, "dev", &policy).unwrap()
    }

    #[test]
    fn announcements_name_the_namespaces_to_look_at() {
        let changes = NamespaceChanges::default();
        changes.namespace("sjns-a-dev".into());
        changes.secret("object-store".into());
        let changed = changes.take();
        assert!(changed.touches(&spec("a", "")));
        assert!(changed.touches(&spec("b", r#"{"name": "object-store"}"#)));
        assert!(!changed.touches(&spec("c", r#"{"name": "catalog"}"#)));
        assert_eq!(changes.take(), Changed::default(), "taken once");
        assert!(Changed::everything().touches(&spec("c", "")));
    }
}
