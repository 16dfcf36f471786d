//! Team namespaces on Kubernetes: the [`Provisioner`] of the Kubernetes backend.
//!
//! A namespace lives on the cluster its team (and env) is routed to. Applying reads the
//! referenced secrets from the platform namespace there, renders every object ([`render`]) and
//! server-side applies each under sk8's field manager, so an unchanged object is not written;
//! copies of secrets the spec no longer lists are deleted. Observing reads each object back
//! and compares the fields sk8 sets (quantities by value: the API server rewrites `1024Mi` as
//! `1Gi`).

pub mod render;
mod watch;

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use self::render::{LABEL_COPIED_SECRET, NamespaceSettings, Rendered, SecretSource};
use super::{FIELD_MANAGER, Routes};
use crate::backend::BackendError;
use crate::backend::namespaces::{
    ClusterNamespace, NamespaceChanges, ObjectState, ObservedObject, ProvisionError, Provisioner,
};
use crate::domain::NamespaceSpec;
use crate::domain::quantity::Quantity;

/// One cluster's client, by name.
#[derive(Clone)]
pub struct ClusterClient {
    pub name: String,
    pub client: kube::Client,
    /// For the watches: no request timeout.
    pub streams: kube::Client,
}

pub struct KubeProvisioner {
    clusters: Vec<ClusterClient>,
    routes: Routes,
    settings: NamespaceSettings,
}

impl KubeProvisioner {
    /// A provisioner on `clusters`, whose watches announce changes to `changes` until `stop`.
    pub(super) fn new(
        clusters: Vec<ClusterClient>,
        routes: Routes,
        settings: NamespaceSettings,
        changes: &Arc<NamespaceChanges>,
        stop: &CancellationToken,
    ) -> Self {
        for cluster in &clusters {
            watch::start(cluster, &settings, changes, stop);
        }
        KubeProvisioner {
            clusters,
            routes,
            settings,
        }
    }

    /// The clusters a team environment may run on: its namespace is provisioned on each.
    fn clusters_of(&self, team: &str, env: &str) -> Vec<&ClusterClient> {
        self.routes
            .clusters_for(team, env)
            .iter()
            .map(|&i| &self.clusters[i])
            .collect()
    }

    async fn apply_on(
        &self,
        cluster: &ClusterClient,
        spec: &NamespaceSpec,
    ) -> Result<(), ProvisionError> {
        let sources = self.read_sources(cluster, spec).await?;
        let objects = render::objects(spec, &self.settings, &sources);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for object in &objects {
            api(&cluster.client, object.kind, Some(&spec.namespace()))
                .patch(&object.name, &params, &Patch::Apply(&object.manifest))
                .await
                .map_err(|e| {
                    kube_error(
                        cluster,
                        &format!("apply {} {}", object.kind, object.name),
                        e,
                    )
                })?;
        }
        self.prune_secrets(cluster, spec).await?;
        tracing::info!(cluster = %cluster.name, namespace = %spec.namespace(), objects = objects.len(), "applied team namespace");
        Ok(())
    }

    /// The referenced secrets as the platform namespace holds them; a missing one is an
    /// unknown reference.
    async fn read_sources(
        &self,
        cluster: &ClusterClient,
        spec: &NamespaceSpec,
    ) -> Result<Vec<SecretSource>, ProvisionError> {
        let platform = &self.settings.namespaces.platform_namespace;
        let secrets = api(&cluster.client, "Secret", Some(platform));
        let mut sources = Vec::new();
        for (index, reference) in spec.secrets.iter().enumerate() {
            let found = secrets.get_opt(&reference.name).await.map_err(|e| {
                kube_error(
                    cluster,
                    &format!("read secret {platform}/{}", reference.name),
                    e,
                )
            })?;
            let Some(found) = found else {
                return Err(ProvisionError::UnknownSecret {
                    index,
                    name: reference.name.clone(),
                    platform_namespace: platform.clone(),
                    cluster: cluster.name.clone(),
                });
            };
            sources.push(SecretSource {
                name: reference.name.clone(),
                type_: found
                    .data
                    .get("type")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                data: found
                    .data
                    .get("data")
                    .and_then(Value::as_object)
                    .map(|m| m.clone().into_iter().collect())
                    .unwrap_or_default(),
            });
        }
        Ok(sources)
    }

    /// Deletes the copies of secrets the spec no longer lists.
    async fn prune_secrets(
        &self,
        cluster: &ClusterClient,
        spec: &NamespaceSpec,
    ) -> Result<(), ProvisionError> {
        let secrets = api(&cluster.client, "Secret", Some(&spec.namespace()));
        let selector = format!(
            "{LABEL_COPIED_SECRET}=true,{}={}",
            super::render::LABEL_MANAGED_BY,
            super::render::MANAGED_BY
        );
        let copies = secrets
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| kube_error(cluster, "list copied secrets", e))?;
        for copy in copies.items {
            let name = copy.metadata.name.unwrap_or_default();
            if spec.secrets.iter().any(|s| s.name == name) {
                continue;
            }
            match secrets.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(cluster = %cluster.name, namespace = %spec.namespace(), secret = %name, "deleted a secret copy the spec no longer lists")
                }
                Err(e) if code(&e) == Some(404) => {}
                Err(e) => {
                    return Err(kube_error(cluster, &format!("delete secret {name}"), e).into());
                }
            }
        }
        Ok(())
    }

    async fn observe_on(&self, cluster: &ClusterClient, spec: &NamespaceSpec) -> ClusterNamespace {
        let report = |objects, error| ClusterNamespace {
            cluster: cluster.name.clone(),
            objects,
            error,
        };
        let sources = match self.read_sources(cluster, spec).await {
            Ok(sources) => sources,
            Err(e) => return report(Vec::new(), Some(e.to_string())),
        };
        // Read back concurrently: a GET is a round trip per object, a dozen per namespace.
        let rendered = render::objects(spec, &self.settings, &sources);
        let namespace = spec.namespace();
        let reads = rendered.iter().map(|object| async {
            let found = api(&cluster.client, object.kind, Some(&namespace))
                .get_opt(&object.name)
                .await
                .map_err(|e| {
                    kube_error(cluster, &format!("read {} {}", object.kind, object.name), e)
                })?;
            Ok::<_, BackendError>(compare(object, found))
        });
        match futures::future::try_join_all(reads).await {
            Ok(objects) => report(objects, None),
            Err(error) => report(Vec::new(), Some(error.to_string())),
        }
    }
}

#[async_trait]
impl Provisioner for KubeProvisioner {
    async fn check(&self, spec: &NamespaceSpec) -> Result<(), ProvisionError> {
        for cluster in self.clusters_of(spec.team.as_str(), spec.env.as_str()) {
            self.read_sources(cluster, spec).await?;
        }
        Ok(())
    }

    async fn apply(&self, spec: &NamespaceSpec) -> Result<(), ProvisionError> {
        for cluster in self.clusters_of(spec.team.as_str(), spec.env.as_str()) {
            self.apply_on(cluster, spec).await?;
        }
        Ok(())
    }

    async fn observe(&self, spec: &NamespaceSpec) -> Vec<ClusterNamespace> {
        let mut out = Vec::new();
        for cluster in self.clusters_of(spec.team.as_str(), spec.env.as_str()) {
            out.push(self.observe_on(cluster, spec).await);
        }
        out
    }

    async fn delete(&self, spec: &NamespaceSpec) -> Result<(), BackendError> {
        let name = spec.namespace();
        for cluster in self.clusters_of(spec.team.as_str(), spec.env.as_str()) {
            match api(&cluster.client, "Namespace", None)
                .delete(&name, &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    tracing::info!(cluster = %cluster.name, namespace = %name, "deleted team namespace")
                }
                Err(e) if code(&e) == Some(404) => {}
                Err(e) => return Err(kube_error(cluster, &format!("delete namespace {name}"), e)),
            }
        }
        Ok(())
    }
}

/// Every kind a team namespace is made of.
const KINDS: [&str; 8] = [
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Secret",
];

/// The API of one kind: in `namespace`, or across all (Namespaces are never in one).
fn api(client: &kube::Client, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let client = client.clone();
    let resource = match kind {
        "Namespace" => return Api::all_with(client, &ApiResource::erase::<Namespace>(&())),
        "ResourceQuota" => ApiResource::erase::<ResourceQuota>(&()),
        "LimitRange" => ApiResource::erase::<LimitRange>(&()),
        "NetworkPolicy" => ApiResource::erase::<NetworkPolicy>(&()),
        "ServiceAccount" => ApiResource::erase::<ServiceAccount>(&()),
        "Role" => ApiResource::erase::<Role>(&()),
        "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
        "Secret" => ApiResource::erase::<Secret>(&()),
        other => unreachable!("a team namespace has no {other}"),
    };
    match namespace {
        Some(namespace) => Api::namespaced_with(client, namespace, &resource),
        None => Api::all_with(client, &resource),
    }
}

/// An observed object against the rendered one.
fn compare(desired: &Rendered, found: Option<DynamicObject>) -> ObservedObject {
    let mut observed = ObservedObject {
        kind: desired.kind.to_owned(),
        name: desired.name.clone(),
        state: ObjectState::Missing,
        drifted_fields: Vec::new(),
        resource_version: None,
    };
    let Some(found) = found else {
        return observed;
    };
    observed.resource_version = found.metadata.resource_version.clone();
    let found = serde_json::to_value(&found).expect("an object serializes");
    diff(&desired.manifest, &found, "", &mut observed.drifted_fields);
    observed.state = if observed.drifted_fields.is_empty() {
        ObjectState::InSync
    } else {
        ObjectState::Drifted
    };
    observed
}

/// The paths where `found` does not hold what `desired` sets. Fields others add are not drift;
/// lists must match item by item.
pub(crate) fn diff(desired: &Value, found: &Value, path: &str, out: &mut Vec<String>) {
    let at = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (desired, found) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                diff(value, have.get(key).unwrap_or(&Value::Null), &at(key), out);
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                diff(w, h, &format!("{path}[{i}]"), out);
            }
        }
        (want, have) if same_scalar(want, have) => {}
        _ => out.push(path.to_owned()),
    }
}

/// Equal, or the same quantity written differently.
fn same_scalar(want: &Value, have: &Value) -> bool {
    if want == have {
        return true;
    }
    match (want, have) {
        (Value::String(w), Value::String(h)) => {
            matches!((Quantity::parse(w), Quantity::parse(h)), (Ok(w), Ok(h)) if w == h)
        }
        _ => false,
    }
}

fn code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A cluster's refusal names what sk8 tried; unreachable or refusing, the next turn retries.
fn kube_error(cluster: &ClusterClient, what: &str, err: kube::Error) -> BackendError {
    BackendError::Transient(format!("{what} on cluster {}: {err}", cluster.name))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::diff;

    #[test]
    fn drift_is_what_differs_in_fields_sk8_sets() {
        let desired =
            json!({"spec": {"hard": {"requests.memory": "1024Mi", "pods": "10"}}, "l": [1, 2]});
        let mut out = Vec::new();
        let same = json!({"spec": {"hard": {"requests.memory": "1Gi", "pods": "10", "x": "1"}}, "l": [1, 2], "extra": true});
        diff(&desired, &same, "", &mut out);
        assert!(out.is_empty(), "{out:?}");
        let edited = json!({"spec": {"hard": {"requests.memory": "2Gi"}}, "l": [1]});
        diff(&desired, &edited, "", &mut out);
        assert_eq!(out, ["l", "spec.hard.pods", "spec.hard.requests.memory"]);
    }
}
