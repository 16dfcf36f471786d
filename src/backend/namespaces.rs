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
    pending: Mutex<Pending>,
    notify: Notify,
}

#[derive(Default)]
struct Pending {
    namespaces: BTreeSet<String>,
    all: bool,
}

/// What the reconciler is to look at.
#[derive(Debug, PartialEq, Eq)]
pub enum Changed {
    All,
    Namespaces(BTreeSet<String>),
}

impl NamespaceChanges {
    /// Something in `namespace` (`sjns-<team>-<env>`) may differ from its spec.
    pub fn namespace(&self, namespace: String) {
        self.lock().namespaces.insert(namespace);
        self.notify.notify_one();
    }

    /// Any namespace may differ (a platform secret they copy changed).
    pub fn all(&self) {
        self.lock().all = true;
        self.notify.notify_one();
    }

    /// Waits for an announcement.
    pub async fn announced(&self) {
        self.notify.notified().await;
    }

    /// What was announced since the last take.
    pub fn take(&self) -> Changed {
        let pending = std::mem::take(&mut *self.lock());
        if pending.all {
            Changed::All
        } else {
            Changed::Namespaces(pending.namespaces)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
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
