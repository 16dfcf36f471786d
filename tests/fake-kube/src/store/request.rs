//! What callers hand the store and get back: the [`Target`] of a request, write options,
//! patches, list pages and watch starting points.

use serde_json::Value;

use crate::fields::Part;
use crate::resources::{ResourceKind, index_of};
use crate::schema::FieldValidation;

/// What a request addresses: a kind at a served version, maybe a namespace, maybe one object,
/// maybe its status subresource.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: &'static ResourceKind,
    pub version: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub status: bool,
}

impl Target {
    /// A collection at the storage version (all namespaces when `namespace` is None).
    pub fn collection(kind: &'static ResourceKind, namespace: Option<&str>) -> Self {
        let namespace = namespace.filter(|_| kind.namespaced()).map(str::to_string);
        Target {
            kind,
            version: kind.storage_version(),
            namespace,
            name: None,
            status: false,
        }
    }

    /// One object at the storage version.
    pub fn item(kind: &'static ResourceKind, namespace: Option<&str>, name: &str) -> Self {
        Target {
            name: Some(name.to_string()),
            ..Self::collection(kind, namespace)
        }
    }

    /// The same object's status subresource.
    pub fn status(mut self) -> Self {
        self.status = true;
        self
    }

    pub(super) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// `apiVersion` as the request spells it.
    pub fn api_version(&self) -> String {
        self.kind.api_version(self.version)
    }

    pub(super) fn part(&self) -> Part {
        if self.status {
            Part::Status
        } else {
            Part::Main {
                has_status: self.kind.status,
            }
        }
    }

    pub(super) fn key(&self) -> Key {
        key(
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name(),
        )
    }
}

/// (kind index, namespace or "", name): objects sort by kind, then namespace, then name.
pub(super) type Key = (usize, String, String);

pub(super) fn key(kind: &ResourceKind, namespace: &str, name: &str) -> Key {
    (index_of(kind), namespace.to_string(), name.to_string())
}

/// How a write is recorded and checked.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub manager: String,
    pub dry_run: bool,
    pub validation: FieldValidation,
}

impl WriteOptions {
    pub fn new(manager: &str) -> Self {
        WriteOptions {
            manager: manager.to_string(),
            dry_run: false,
            validation: FieldValidation::Default,
        }
    }
}

/// A patch body by type; strategic merge patches arrive here as `Merge`.
#[derive(Debug, Clone)]
pub enum Patch {
    Merge(Value),
    Json(Value),
    Apply { config: Value, force: bool },
}

/// A successful write: the stored object, warnings for the `Warning` header, and whether
/// the write created the object (201 rather than 200).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// `limit` and `continue` of a list request.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub rv: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// `DeleteOptions.preconditions`.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum WatchStart {
    /// Synthetic ADDED events for what exists now (`resourceVersion` unset or "0", or
    /// `sendInitialEvents`), then changes; `end_bookmark` closes the initial events with the
    /// `k8s.io/initial-events-end` bookmark.
    Current { end_bookmark: bool },
    /// Changes after this resourceVersion, from the history.
    After(u64),
}
