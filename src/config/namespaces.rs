//! `namespaces:` in sk8's config: what every team namespace gets from the platform (labels,
//! network rules, the secrets' source) and the bounds teams work within (defaults, maxima).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::domain::namespace::{
    EgressRule, LimitsSpec, NamespacePolicy, NamespaceResources, QuotaSpec, Resources,
};
use crate::domain::quantity::Quantity;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NamespacesConfig {
    /// Jobs and sessions are accepted only for namespaces sk8 has provisioned.
    pub require_provisioned: bool,
    /// The namespace holding the secrets teams may reference (copied into their namespaces).
    pub platform_namespace: String,
    /// Labels put on every team namespace besides sk8's own: the one the Spark operator's
    /// namespace selector matches, Pod Security labels, and so on.
    pub labels: BTreeMap<String, String>,
    /// How often every provisioned namespace is compared with its spec and repaired (besides
    /// when a watch sees one of its objects change).
    pub resync_seconds: u64,
    /// Apply the spec again where a namespace drifted; false only reports drift (in GET and
    /// the log).
    pub repair_drift: bool,
    /// What a NamespaceSpec gets for what it leaves out.
    pub defaults: NamespaceResources,
    /// What no NamespaceSpec may exceed.
    pub maxima: NamespaceResources,
    pub network: NetworkConfig,
}

/// The NetworkPolicies' view of the platform.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// sk8's own namespace and pod labels: the only pods that reach a driver's port 15002.
    pub sk8_namespace: String,
    pub sk8_pod_labels: BTreeMap<String, String>,
    /// Where cluster DNS runs.
    pub dns_namespace: String,
    pub dns_pod_labels: BTreeMap<String, String>,
    /// The Kubernetes API server's addresses and ports (drivers create their executors).
    pub api_server_cidrs: Vec<String>,
    pub api_server_ports: Vec<u16>,
    /// Egress every team namespace gets, besides the rules its spec adds.
    pub extra_egress: Vec<EgressRule>,
}

impl Default for NamespacesConfig {
    fn default() -> Self {
        NamespacesConfig {
            require_provisioned: false,
            platform_namespace: "sk8-platform".into(),
            labels: BTreeMap::from([("sk8.dev/spark-operator".into(), "watched".into())]),
            resync_seconds: 30,
            repair_drift: true,
            defaults: NamespaceResources {
                quota: quota("8", "32Gi", 100),
                limits: LimitsSpec {
                    default_request: resources("500m", "1Gi"),
                    max: resources("8", "32Gi"),
                },
            },
            maxima: NamespaceResources {
                quota: quota("256", "1Ti", 2000),
                limits: LimitsSpec {
                    default_request: Resources::default(),
                    max: resources("32", "256Gi"),
                },
            },
            network: NetworkConfig::default(),
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            sk8_namespace: "sk8-system".into(),
            sk8_pod_labels: BTreeMap::from([("app.kubernetes.io/name".into(), "sk8".into())]),
            dns_namespace: "kube-system".into(),
            dns_pod_labels: BTreeMap::from([("k8s-app".into(), "kube-dns".into())]),
            // Any address: the API server's endpoints differ per cluster; narrow this in
            // production (docs/operating.md).
            api_server_cidrs: vec!["0.0.0.0/0".into()],
            api_server_ports: vec![443, 6443],
            extra_egress: Vec::new(),
        }
    }
}

fn quantity(text: &str) -> Option<Quantity> {
    Some(Quantity::parse(text).expect("a built-in default quantity"))
}

fn quota(cpu: &str, memory: &str, pods: u32) -> QuotaSpec {
    QuotaSpec {
        cpu: quantity(cpu),
        memory: quantity(memory),
        pods: Some(pods),
        other: BTreeMap::new(),
    }
}

fn resources(cpu: &str, memory: &str) -> Resources {
    Resources {
        cpu: quantity(cpu),
        memory: quantity(memory),
    }
}

impl NamespacesConfig {
    pub fn policy(&self) -> NamespacePolicy {
        NamespacePolicy {
            defaults: self.defaults.clone(),
            maxima: self.maxima.clone(),
        }
    }

    /// Names and labels valid for Kubernetes, network ranges parsed, and the defaults within
    /// the maxima (else no spec could be accepted).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            field: format!("namespaces.{field}"),
            message,
        };
        use crate::domain::names::{dns_label_rule, label_key_rule, label_value_rule};
        if self.resync_seconds == 0 {
            return Err(invalid("resyncSeconds", "must be at least 1".into()));
        }
        let network = &self.network;
        for (field, name) in [
            ("platformNamespace", &self.platform_namespace),
            ("network.sk8Namespace", &network.sk8_namespace),
            ("network.dnsNamespace", &network.dns_namespace),
        ] {
            dns_label_rule(name).map_err(|m| invalid(field, m))?;
        }
        for (field, labels) in [
            ("labels", &self.labels),
            ("network.sk8PodLabels", &network.sk8_pod_labels),
            ("network.dnsPodLabels", &network.dns_pod_labels),
        ] {
            for (key, value) in labels {
                label_key_rule(key)
                    .and_then(|()| label_value_rule(value))
                    .map_err(|m| invalid(&format!("{field}.{key}"), m))?;
            }
        }
        for (i, cidr) in network.api_server_cidrs.iter().enumerate() {
            crate::domain::namespace::check_cidr(cidr)
                .map_err(|m| invalid(&format!("network.apiServerCidrs[{i}]"), m))?;
        }
        if self.maxima.limits.default_request != Resources::default() {
            return Err(invalid(
                "maxima.limits.defaultRequest",
                "is not a maximum: requests are bounded by limits.max".into(),
            ));
        }
        self.check_defaults_fit()
    }

    /// A spec that asks for nothing must pass: the defaults (and the network rules) are
    /// checked the way a team's spec is.
    fn check_defaults_fit(&self) -> Result<(), ConfigError> {
        let mut probe = serde_json::json!({ "team": "t", "env": "e" });
        probe["egress"] =
            serde_json::to_value(&self.network.extra_egress).expect("egress rules serialize");
        crate::domain::NamespaceSpec::parse(
            probe.to_string().as_bytes(),
            crate::domain::jobspec::Format::Json,
            "t",
            "e",
            &self.policy(),
        )
        .map(|_| ())
        .map_err(|e| {
            let field = e.field().unwrap_or_default();
            let field = match field.strip_prefix("egress") {
                Some(rest) => format!("namespaces.network.extraEgress{rest}"),
                None => format!("namespaces.defaults.{field}"),
            };
            ConfigError::Invalid {
                field,
                message: e.to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(namespaces: serde_json::Value) -> Result<(), String> {
        let config: NamespacesConfig =
            serde_json::from_value(namespaces).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_validate() {
        NamespacesConfig::default().validate().unwrap();
    }

    #[test]
    fn each_mistake_names_its_key() {
        let cases = [
            (json!({"resyncSeconds": 0}), "namespaces.resyncSeconds"),
            (
                json!({"platformNamespace": "Platform"}),
                "namespaces.platformNamespace",
            ),
            (
                json!({"labels": {"bad key": "x"}}),
                "namespaces.labels.bad key",
            ),
            (
                json!({"network": {"apiServerCidrs": ["10.0.0.1"]}}),
                "namespaces.network.apiServerCidrs[0]",
            ),
            (
                json!({"network": {"extraEgress": [{"cidr": "10.0.0.0/8", "ports": [0]}]}}),
                "namespaces.network.extraEgress[0].ports[0]",
            ),
            (
                json!({"defaults": {"quota": {"cpu": "1000"}}}),
                "namespaces.defaults.quota.cpu",
            ),
            (
                json!({"maxima": {"limits": {"defaultRequest": {"cpu": "1"}}}}),
                "namespaces.maxima.limits.defaultRequest",
            ),
        ];
        for (namespaces, key) in cases {
            let err = check(namespaces.clone()).expect_err(&namespaces.to_string());
            assert!(err.contains(&format!("{key}:")), "{err} (expected {key})");
        }
    }
}
