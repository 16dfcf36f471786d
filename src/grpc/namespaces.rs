//! `sk8.v1.NamespaceProvisioning`: the gRPC face of
//! [`NamespaceService`]. A request's spec is turned into the JSON NamespaceSpec the HTTP API
//! takes and parsed by the same code, so both reject the same input naming the same field.
//! Each RPC is a span (while OTLP export is on) under the caller's `traceparent` metadata.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::proto::namespace_provisioning_server::{
    NamespaceProvisioning, NamespaceProvisioningServer,
};
use super::proto::{self as pb};
use crate::auth::{Authenticator, Identity, Role};
use crate::backend::namespaces::ClusterNamespace;
use crate::domain::NamespaceSpec;
use crate::domain::jobspec::Format;
use crate::domain::namespace::Resources;
use crate::error::Error;
use crate::service::MAX_PAGE;
use crate::service::namespaces::{Applied, NamespaceDetail, NamespaceService};
use crate::store::NamespaceFilter;
use crate::telemetry;

/// The least role of each RPC, as `api::auth::ROUTES` for HTTP; a test fails when the proto
/// has an RPC without an entry.
pub const RPCS: &[(&str, Role)] = &[
    ("ApplyNamespace", Role::TeamAdmin),
    ("GetNamespace", Role::Viewer),
    ("ListNamespaces", Role::Viewer),
    ("DeleteNamespace", Role::TeamAdmin),
];

/// The service's name in spans (`rpc.service`), as the proto declares it.
const SERVICE: &str = "sk8.v1.NamespaceProvisioning";

pub struct NamespaceGrpc {
    service: NamespaceService,
    auth: Arc<Authenticator>,
}

impl NamespaceGrpc {
    pub fn server(
        service: NamespaceService,
        auth: Arc<Authenticator>,
    ) -> NamespaceProvisioningServer<Self> {
        NamespaceProvisioningServer::new(NamespaceGrpc { service, auth })
    }

    /// The caller, from `authorization` (or `authentication`) metadata, like on HTTP, with
    /// at least the RPC's role of [`RPCS`].
    async fn caller<T>(&self, request: &Request<T>, rpc: &str) -> Result<Identity, Status> {
        let metadata = request.metadata();
        let credential = metadata
            .get("authorization")
            .or_else(|| metadata.get("authentication"))
            .and_then(|v| v.to_str().ok());
        let identity = self.auth.authenticate(credential).await;
        let identity = identity.map_err(Error::from)?;
        telemetry::rpc::record_user(&identity.user);
        let least = RPCS
            .iter()
            .find(|(name, _)| *name == rpc)
            .map_or(Role::PlatformAdmin, |(_, role)| *role);
        if identity.role < least {
            return Err(Error::Forbidden(format!(
                "{} is a {}; {rpc} takes the {} role",
                identity.user,
                identity.role.as_str(),
                least.as_str()
            ))
            .into());
        }
        Ok(identity)
    }
}

/// Each RPC runs in its span (see [`traced`]).
#[tonic::async_trait]
impl NamespaceProvisioning for NamespaceGrpc {
    async fn apply_namespace(
        &self,
        request: Request<pb::ApplyNamespaceRequest>,
    ) -> Result<Response<pb::ApplyNamespaceResponse>, Status> {
        let span = span_of(&request, "ApplyNamespace");
        traced(span, self.apply(request)).await
    }

    async fn get_namespace(
        &self,
        request: Request<pb::NamespaceRef>,
    ) -> Result<Response<pb::Namespace>, Status> {
        let span = span_of(&request, "GetNamespace");
        traced(span, self.get(request)).await
    }

    async fn list_namespaces(
        &self,
        request: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::ListNamespacesResponse>, Status> {
        let span = span_of(&request, "ListNamespaces");
        traced(span, self.list(request)).await
    }

    async fn delete_namespace(
        &self,
        request: Request<pb::DeleteNamespaceRequest>,
    ) -> Result<Response<pb::Namespace>, Status> {
        let span = span_of(&request, "DeleteNamespace");
        traced(span, self.delete(request)).await
    }
}

/// The span of an RPC, under the caller's `traceparent` metadata (disabled while export is off).
fn span_of<T>(request: &Request<T>, rpc: &str) -> tracing::Span {
    telemetry::rpc::span(SERVICE, rpc, request.metadata().as_ref())
}

/// Runs `handler` in `span` and records on it how the RPC ended.
async fn traced<R>(
    span: tracing::Span,
    handler: impl Future<Output = Result<R, Status>>,
) -> Result<R, Status> {
    let answer = handler.instrument(span.clone()).await;
    let code = answer.as_ref().err().map_or(tonic::Code::Ok, Status::code);
    telemetry::rpc::record_outcome(&span, Some(&(code as i32).to_string()));
    answer
}

impl NamespaceGrpc {
    async fn apply(
        &self,
        request: Request<pb::ApplyNamespaceRequest>,
    ) -> Result<Response<pb::ApplyNamespaceResponse>, Status> {
        let caller = self.caller(&request, "ApplyNamespace").await?;
        let spec = request.into_inner().spec.unwrap_or_default();
        let (team, env) = (spec.team.clone(), spec.env.clone());
        let body = spec_json(spec).to_string();
        let applied = self
            .service
            .apply(&team, &env, body.as_bytes(), Format::Json, &caller)
            .await?;
        let (created, detail) = match applied {
            Applied::Created(detail) => (true, detail),
            Applied::Existing(detail) => (false, detail),
        };
        Ok(Response::new(pb::ApplyNamespaceResponse {
            created,
            namespace: Some(namespace(detail)),
        }))
    }

    async fn get(
        &self,
        request: Request<pb::NamespaceRef>,
    ) -> Result<Response<pb::Namespace>, Status> {
        let caller = self.caller(&request, "GetNamespace").await?;
        let at = request.into_inner();
        let detail = self.service.get(&at.team, &at.env, &caller).await?;
        Ok(Response::new(namespace(detail)))
    }

    async fn list(
        &self,
        request: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::ListNamespacesResponse>, Status> {
        let caller = self.caller(&request, "ListNamespaces").await?;
        let request = request.into_inner();
        if request.limit > MAX_PAGE {
            return Err(
                Error::invalid("limit", format!("must be a number from 1 to {MAX_PAGE}")).into(),
            );
        }
        let filter = NamespaceFilter {
            team: Some(request.team).filter(|t| !t.is_empty()),
            env: Some(request.env).filter(|e| !e.is_empty()),
            after: None,
            limit: request.limit,
            visible_teams: None,
        };
        let token = Some(request.page_token).filter(|t| !t.is_empty());
        let page = self.service.list(filter, token.as_deref(), &caller).await?;
        Ok(Response::new(pb::ListNamespacesResponse {
            namespaces: page
                .namespaces
                .into_iter()
                .map(|ns| {
                    namespace(NamespaceDetail {
                        namespace: ns,
                        clusters: Vec::new(),
                        drift: false,
                    })
                })
                .collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteNamespaceRequest>,
    ) -> Result<Response<pb::Namespace>, Status> {
        let caller = self.caller(&request, "DeleteNamespace").await?;
        let request = request.into_inner();
        let detail = self
            .service
            .delete(&request.team, &request.env, request.force, &caller)
            .await?;
        Ok(Response::new(namespace(detail)))
    }
}

/// The JSON NamespaceSpec a request's spec stands for: empty strings and absent messages are
/// fields left out.
fn spec_json(spec: pb::NamespaceSpec) -> Value {
    let mut out = json!({ "team": spec.team, "env": spec.env });
    if let Some(quota) = spec.quota {
        let mut json = serde_json::Map::new();
        put(&mut json, "cpu", quota.cpu);
        put(&mut json, "memory", quota.memory);
        if let Some(pods) = quota.pods {
            json.insert("pods".into(), json!(pods));
        }
        if !quota.other.is_empty() {
            json.insert("other".into(), json!(quota.other));
        }
        out["quota"] = Value::Object(json);
    }
    if let Some(limits) = spec.limits {
        out["limits"] = json!({
            "defaultRequest": resources_json(limits.default_request),
            "max": resources_json(limits.max),
        });
    }
    out["secrets"] = spec
        .secrets
        .iter()
        .map(|s| json!({"name": s.name}))
        .collect();
    out["egress"] = spec
        .egress
        .iter()
        .map(|e| json!({"cidr": e.cidr, "ports": e.ports}))
        .collect();
    out
}

fn resources_json(resources: Option<pb::Resources>) -> Value {
    let resources = resources.unwrap_or_default();
    let mut json = serde_json::Map::new();
    put(&mut json, "cpu", resources.cpu);
    put(&mut json, "memory", resources.memory);
    Value::Object(json)
}

fn put(json: &mut serde_json::Map<String, Value>, key: &str, value: String) {
    if !value.is_empty() {
        json.insert(key.into(), json!(value));
    }
}

fn namespace(detail: NamespaceDetail) -> pb::Namespace {
    let ns = detail.namespace;
    pb::Namespace {
        spec: Some(spec_message(&ns.spec)),
        team: ns.team,
        env: ns.env,
        namespace: ns.namespace,
        created_at: time(ns.created_at),
        updated_at: time(ns.updated_at),
        deleted_at: ns.deleted_at.map(time).unwrap_or_default(),
        clusters: detail.clusters.into_iter().map(cluster).collect(),
        drift: detail.drift,
    }
}

/// As the HTTP API writes timestamps.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn spec_message(spec: &NamespaceSpec) -> pb::NamespaceSpec {
    let text = |q: &Option<crate::domain::quantity::Quantity>| {
        q.as_ref().map(|q| q.to_string()).unwrap_or_default()
    };
    let resources = |r: &Resources| pb::Resources {
        cpu: text(&r.cpu),
        memory: text(&r.memory),
    };
    pb::NamespaceSpec {
        team: spec.team.to_string(),
        env: spec.env.to_string(),
        quota: Some(pb::Quota {
            cpu: text(&spec.quota.cpu),
            memory: text(&spec.quota.memory),
            pods: spec.quota.pods,
            other: spec
                .quota
                .other
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        }),
        limits: Some(pb::Limits {
            default_request: Some(resources(&spec.limits.default_request)),
            max: Some(resources(&spec.limits.max)),
        }),
        secrets: spec
            .secrets
            .iter()
            .map(|s| pb::SecretRef {
                name: s.name.clone(),
            })
            .collect(),
        egress: spec
            .egress
            .iter()
            .map(|e| pb::EgressRule {
                cidr: e.cidr.clone(),
                ports: e.ports.iter().map(|p| u32::from(*p)).collect(),
            })
            .collect(),
    }
}

fn cluster(cluster: ClusterNamespace) -> pb::ClusterNamespace {
    pb::ClusterNamespace {
        cluster: cluster.cluster,
        error: cluster.error.unwrap_or_default(),
        objects: cluster
            .objects
            .into_iter()
            .map(|o| pb::ObservedObject {
                kind: o.kind,
                name: o.name,
                state: o.state.as_str().into(),
                drifted_fields: o.drifted_fields,
                resource_version: o.resource_version.unwrap_or_default(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_proto_has_an_entry_and_every_entry_an_rpc() {
        let proto = include_str!("../../proto/sk8/v1/namespaces.proto");
        let declared: Vec<&str> = proto
            .lines()
            .filter_map(|line| line.trim().strip_prefix("rpc "))
            .filter_map(|rest| rest.split('(').next())
            .map(str::trim)
            .collect();
        assert!(!declared.is_empty());
        for rpc in &declared {
            assert!(
                RPCS.iter().any(|(name, _)| name == rpc),
                "{rpc} has no entry in grpc::namespaces::RPCS"
            );
        }
        for (name, _) in RPCS {
            assert!(
                declared.contains(name),
                "{name} is in RPCS but not in the proto"
            );
        }
    }
}
