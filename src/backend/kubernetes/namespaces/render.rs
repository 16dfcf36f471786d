//! NamespaceSpec → the Kubernetes objects of a team namespace, as sk8 applies them.
//!
//! Pure: the copied secrets' contents are read by the caller and passed in. Every object is
//! labelled as sk8's and with the team and env, and named so a second apply finds the first.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::render::{LABEL_ENV, LABEL_MANAGED_BY, LABEL_TEAM, MANAGED_BY};
use crate::config::{NamespacesConfig, NetworkConfig};
use crate::domain::NamespaceSpec;

/// The label that marks a secret as a copy sk8 keeps (so a copy the spec no longer lists can
/// be found and deleted).
pub const LABEL_COPIED_SECRET: &str = "sk8.dev/copied-secret";
/// The annotation naming a copy's source, `<namespace>/<name>` (too long for a label value).
const ANNOTATION_COPIED_FROM: &str = "sk8.dev/copied-from";
/// The Role drivers get; sk8's RBAC may bind only this one (deploy/base/rbac.yaml).
pub const DRIVER_ROLE: &str = "sk8-spark-driver";
pub const QUOTA: &str = "sk8-quota";
pub const LIMITS: &str = "sk8-limits";
const SPARK_CONNECT_PORT: u16 = 15002;
const DNS_PORT: u16 = 53;
/// What a Spark driver does with the Kubernetes API: create, watch and delete its executor
/// pods, their headless service, its config maps and on-demand volume claims.
const DRIVER_RESOURCES: [&str; 4] = ["pods", "services", "configmaps", "persistentvolumeclaims"];
const DRIVER_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Cluster-side choices that are not part of a NamespaceSpec.
#[derive(Clone, Debug)]
pub struct NamespaceSettings {
    pub namespaces: NamespacesConfig,
    pub driver_service_account: String,
}

/// A source secret's contents, as read from the platform namespace.
#[derive(Clone, Debug)]
pub struct SecretSource {
    pub name: String,
    pub type_: Option<String>,
    /// Base64 values, as the API server serves them.
    pub data: BTreeMap<String, Value>,
}

/// One object to apply: its kind (the provisioner maps it to an API) and its manifest.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub kind: &'static str,
    pub name: String,
    pub manifest: Value,
}

/// Every object of the namespace, the Namespace first (the others live in it).
pub fn objects(
    spec: &NamespaceSpec,
    settings: &NamespaceSettings,
    secrets: &[SecretSource],
) -> Vec<Rendered> {
    let namespace = spec.namespace();
    let labels = labels(spec);
    let meta = |name: &str| json!({"name": name, "namespace": namespace, "labels": labels});
    let mut objects = vec![namespace_object(spec, settings, &labels)];
    objects.push(quota(spec, meta(QUOTA)));
    objects.push(limit_range(spec, meta(LIMITS)));
    objects.extend(network_policies(spec, &settings.namespaces.network, &meta));
    objects.extend(driver_rbac(&settings.driver_service_account, &meta));
    for secret in secrets {
        let mut metadata = meta(&secret.name);
        metadata["labels"][LABEL_COPIED_SECRET] = json!("true");
        let source = format!("{}/{}", settings.namespaces.platform_namespace, secret.name);
        metadata["annotations"] = json!({ ANNOTATION_COPIED_FROM: source });
        let mut manifest = object("v1", "Secret", metadata);
        manifest["data"] = json!(secret.data);
        if let Some(type_) = &secret.type_ {
            manifest["type"] = json!(type_);
        }
        objects.push(rendered("Secret", &secret.name, manifest));
    }
    objects
}

/// sk8's labels on every object of the namespace.
pub fn labels(spec: &NamespaceSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (LABEL_TEAM.to_owned(), spec.team.to_string()),
        (LABEL_ENV.to_owned(), spec.env.to_string()),
    ])
}

fn object(api_version: &str, kind: &str, metadata: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata})
}

fn rendered(kind: &'static str, name: &str, manifest: Value) -> Rendered {
    Rendered {
        kind,
        name: name.to_owned(),
        manifest,
    }
}

/// The Namespace, with the platform's labels (the Spark operator's selector) under sk8's.
fn namespace_object(
    spec: &NamespaceSpec,
    settings: &NamespaceSettings,
    labels: &BTreeMap<String, String>,
) -> Rendered {
    let name = spec.namespace();
    let mut all = settings.namespaces.labels.clone();
    all.extend(labels.clone());
    let manifest = object("v1", "Namespace", json!({"name": name, "labels": all}));
    rendered("Namespace", &name, manifest)
}

fn quota(spec: &NamespaceSpec, metadata: Value) -> Rendered {
    let quota = &spec.quota;
    let mut hard = BTreeMap::new();
    let mut set = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            hard.insert(key.to_owned(), value);
        }
    };
    set("requests.cpu", quota.cpu.as_ref().map(|q| q.to_string()));
    set(
        "requests.memory",
        quota.memory.as_ref().map(|q| q.to_string()),
    );
    set("pods", quota.pods.map(|n| n.to_string()));
    for (key, value) in &quota.other {
        set(key, Some(value.to_string()));
    }
    let mut manifest = object("v1", "ResourceQuota", metadata);
    manifest["spec"] = json!({ "hard": hard });
    rendered("ResourceQuota", QUOTA, manifest)
}

/// Per container: the maximum, which is also the default limit (what the API server would
/// default it to; a lower default cpu limit would fall below Spark's cpu requests), and the
/// default request.
fn limit_range(spec: &NamespaceSpec, metadata: Value) -> Rendered {
    let pair = |r: &crate::domain::namespace::Resources| {
        let mut out = serde_json::Map::new();
        if let Some(cpu) = &r.cpu {
            out.insert("cpu".into(), json!(cpu.to_string()));
        }
        if let Some(memory) = &r.memory {
            out.insert("memory".into(), json!(memory.to_string()));
        }
        Value::Object(out)
    };
    let limits = &spec.limits;
    let mut item = json!({"type": "Container"});
    for (key, value) in [
        ("max", pair(&limits.max)),
        ("default", pair(&limits.max)),
        ("defaultRequest", pair(&limits.default_request)),
    ] {
        if value.as_object().is_some_and(|o| !o.is_empty()) {
            item[key] = value;
        }
    }
    let mut manifest = object("v1", "LimitRange", metadata);
    manifest["spec"] = json!({ "limits": [item] });
    rendered("LimitRange", LIMITS, manifest)
}

/// Spark's pods of the namespace: drivers and executors (the labels Spark gives them).
fn spark_pods() -> Value {
    json!({"matchExpressions": [
        {"key": "spark-role", "operator": "In", "values": ["driver", "executor"]},
    ]})
}

/// Deny all ingress; let drivers and executors talk to each other; let only sk8's pods reach
/// a driver's Spark Connect port; allow egress to DNS, the API server and configured ranges.
fn network_policies(
    spec: &NamespaceSpec,
    network: &NetworkConfig,
    meta: &dyn Fn(&str) -> Value,
) -> Vec<Rendered> {
    let policy = |name: &str, body: Value| {
        let mut manifest = object("networking.k8s.io/v1", "NetworkPolicy", meta(name));
        manifest["spec"] = body;
        rendered("NetworkPolicy", name, manifest)
    };
    let sk8 = json!({
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": network.sk8_namespace}},
        "podSelector": {"matchLabels": network.sk8_pod_labels},
    });
    vec![
        policy(
            "sk8-deny-ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        policy(
            "sk8-spark-internal",
            json!({
                "podSelector": spark_pods(),
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": spark_pods()}]}],
                "egress": [{"to": [{"podSelector": spark_pods()}]}],
            }),
        ),
        policy(
            "sk8-connect-from-sk8",
            json!({
                "podSelector": {"matchLabels": {"spark-role": "driver"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [sk8], "ports": [tcp(SPARK_CONNECT_PORT)]}],
            }),
        ),
        policy(
            "sk8-egress",
            json!({
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": egress_rules(spec, network),
            }),
        ),
    ]
}

fn tcp(port: u16) -> Value {
    json!({"protocol": "TCP", "port": port})
}

fn egress_rules(spec: &NamespaceSpec, network: &NetworkConfig) -> Vec<Value> {
    let dns = json!({
        "to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": network.dns_namespace}},
            "podSelector": {"matchLabels": network.dns_pod_labels},
        }],
        "ports": [{"protocol": "UDP", "port": DNS_PORT}, tcp(DNS_PORT)],
    });
    let api_server = json!({
        "to": network.api_server_cidrs.iter().map(|cidr| json!({"ipBlock": {"cidr": cidr}})).collect::<Vec<_>>(),
        "ports": network.api_server_ports.iter().map(|p| tcp(*p)).collect::<Vec<_>>(),
    });
    let extra = network.extra_egress.iter().chain(&spec.egress).map(|rule| {
        let mut out = json!({"to": [{"ipBlock": {"cidr": rule.cidr}}]});
        if !rule.ports.is_empty() {
            out["ports"] = json!(rule.ports.iter().map(|p| tcp(*p)).collect::<Vec<_>>());
        }
        out
    });
    [dns, api_server].into_iter().chain(extra).collect()
}

/// The drivers' ServiceAccount, the Role with exactly what a driver does, and the binding.
fn driver_rbac(service_account: &str, meta: &dyn Fn(&str) -> Value) -> Vec<Rendered> {
    let rbac = "rbac.authorization.k8s.io/v1";
    let account = object("v1", "ServiceAccount", meta(service_account));
    let mut role = object(rbac, "Role", meta(DRIVER_ROLE));
    role["rules"] = json!([{
        "apiGroups": [""],
        "resources": DRIVER_RESOURCES,
        "verbs": DRIVER_VERBS,
    }]);
    let mut binding = object(rbac, "RoleBinding", meta(DRIVER_ROLE));
    let namespace = &binding["metadata"]["namespace"].clone();
    binding["roleRef"] =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": DRIVER_ROLE});
    binding["subjects"] =
        json!([{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]);
    vec![
        rendered("ServiceAccount", service_account, account),
        rendered("Role", DRIVER_ROLE, role),
        rendered("RoleBinding", DRIVER_ROLE, binding),
    ]
}
