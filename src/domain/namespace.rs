//! A team namespace as the team asks for it: `sjns-<team>-<env>` with a quota, per-container
//! limits, secrets copied from the platform, and extra egress.
//!
//! [`NamespaceSpec::parse`] turns a request body into a complete spec: fields left out take the
//! platform's defaults, and nothing may exceed the platform's maxima ([`NamespacePolicy`], from
//! sk8's config). Every rejection names its field. Whether a referenced secret exists is a
//! question for the cluster, asked by the service.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::jobspec::{self, Format};
use super::names::{self, DnsLabel};
use super::quantity::Quantity;
use super::violations::Violations;
use crate::error::Error;

const MAX_SECRETS: usize = 32;
const MAX_EGRESS_RULES: usize = 32;
const MAX_PORTS: usize = 16;
/// Quota keys with a field of their own; `other` may not set them a second time.
const QUOTA_OWN_KEYS: [&str; 6] = [
    "cpu",
    "memory",
    "pods",
    "requests.cpu",
    "requests.memory",
    "count/pods",
];

/// What a team asks of its namespace. Omitted quota and limit values take the platform's
/// defaults when the spec is accepted, so a stored spec is always complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    /// May be left out of a request body: the URL names it.
    #[schema(required = false)]
    pub team: DnsLabel,
    /// May be left out of a request body: the URL names it.
    #[schema(required = false)]
    pub env: DnsLabel,
    #[serde(default)]
    pub quota: QuotaSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Secrets of the platform namespace copied into this one (same name), kept in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
    /// Egress allowed beyond the platform's (DNS, the API server, its own extra rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
    /// Whether the team's jobs and sessions write Spark event logs (and so get run summaries
    /// and History Server links) when their spec does not say; on unless turned off here. A
    /// spec's own `spark.eventLog.enabled` wins.
    #[serde(default = "on", skip_serializing_if = "is_on")]
    #[schema(default = true)]
    pub event_log: bool,
}

fn on() -> bool {
    true
}

fn is_on(value: &bool) -> bool {
    *value
}

/// The namespace's ResourceQuota: totals over all its pods' requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct QuotaSpec {
    /// Total cpu requested (`requests.cpu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Total memory requested (`requests.memory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<u32>,
    /// Any other quota resource (`requests.storage`, `requests.nvidia.com/gpu`, `services`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub other: BTreeMap<String, Quantity>,
}

/// The namespace's LimitRange, per container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LimitsSpec {
    /// Requests given to containers that set none.
    pub default_request: Resources,
    /// The most one container may ask for (also its default limit).
    pub max: Resources,
}

/// A cpu and memory pair.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

/// A secret of the platform namespace to copy in (values are never shown by sk8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    #[schema(example = "object-store")]
    pub name: String,
}

/// Egress to a network range, on some TCP ports (all ports when none are listed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    #[schema(example = "10.20.0.0/16")]
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
}

/// A namespace sk8 provisions, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamNamespace {
    pub team: String,
    pub env: String,
    /// `sjns-<team>-<env>`.
    pub namespace: String,
    pub spec: NamespaceSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while the namespace is being deleted from its clusters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub version: i64,
}

/// Quota and limits together: the platform's defaults, or its maxima.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NamespaceResources {
    pub quota: QuotaSpec,
    pub limits: LimitsSpec,
}

/// What the platform allows: defaults for what a spec leaves out, maxima nobody exceeds.
#[derive(Clone, Debug, Default)]
pub struct NamespacePolicy {
    pub defaults: NamespaceResources,
    pub maxima: NamespaceResources,
}

impl NamespaceSpec {
    /// Parses a body for the namespace of `team` and `env` (the body may leave them out, or
    /// must repeat them), validates it, fills in the defaults and checks the maxima.
    pub fn parse(
        body: &[u8],
        format: Format,
        team: &str,
        env: &str,
        policy: &NamespacePolicy,
    ) -> Result<Self, Error> {
        let mut value: serde_json::Value = jobspec::decode(body, format, "NamespaceSpec")?;
        let object = value.as_object_mut().ok_or_else(|| Error::InvalidRequest {
            field: None,
            message: "the body must be an object (a NamespaceSpec)".into(),
        })?;
        for (field, from_path) in [("team", team), ("env", env)] {
            match object.get(field) {
                None => {
                    object.insert(field.into(), from_path.into());
                }
                Some(given) if given == from_path => {}
                Some(given) => {
                    return Err(Error::invalid(
                        field,
                        format!("{given} differs from the {field} in the URL ({from_path:?})"),
                    ));
                }
            }
        }
        // Every unknown or mistyped field at once, each with its did-you-mean.
        let mut problems = Violations::default();
        let spec = jobspec::decode_value_collecting(value, "NamespaceSpec", &mut problems);
        let mut spec: NamespaceSpec = problems.into_result(spec)?;
        spec.fill(&policy.defaults);
        spec.validate(&policy.maxima)?;
        Ok(spec)
    }

    /// `sjns-<team>-<env>`.
    pub fn namespace(&self) -> String {
        names::team_namespace(&self.team, &self.env).expect("validated at parse time")
    }

    fn fill(&mut self, defaults: &NamespaceResources) {
        let quota = &defaults.quota;
        fill(&mut self.quota.cpu, &quota.cpu);
        fill(&mut self.quota.memory, &quota.memory);
        fill(&mut self.quota.pods, &quota.pods);
        for (key, value) in &quota.other {
            self.quota
                .other
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
        let limits = &defaults.limits;
        fill(&mut self.limits.max.cpu, &limits.max.cpu);
        fill(&mut self.limits.max.memory, &limits.max.memory);
        fill(
            &mut self.limits.default_request.cpu,
            &limits.default_request.cpu,
        );
        fill(
            &mut self.limits.default_request.memory,
            &limits.default_request.memory,
        );
    }

    fn validate(&self, maxima: &NamespaceResources) -> Result<(), Error> {
        names::team_namespace(&self.team, &self.env).map_err(|m| Error::invalid("env", m))?;
        self.check_quota(&maxima.quota)?;
        self.check_limits(&maxima.limits.max)?;
        check_secrets(&self.secrets)?;
        check_egress(&self.egress)
    }

    fn check_quota(&self, maxima: &QuotaSpec) -> Result<(), Error> {
        at_most("quota.cpu", self.quota.cpu.as_ref(), maxima.cpu.as_ref())?;
        at_most(
            "quota.memory",
            self.quota.memory.as_ref(),
            maxima.memory.as_ref(),
        )?;
        let pods = self.quota.pods.map(|n| Quantity::from_count(n.into()));
        let max_pods = maxima.pods.map(|n| Quantity::from_count(n.into()));
        at_most("quota.pods", pods.as_ref(), max_pods.as_ref())?;
        for (key, value) in &self.quota.other {
            let field = format!("quota.other.{key}");
            names::label_key_rule(key)
                .map_err(|m| Error::invalid(&field, format!("is not a resource name: {m}")))?;
            if QUOTA_OWN_KEYS.contains(&key.as_str()) {
                return Err(Error::invalid(
                    field,
                    "is set by quota.cpu, quota.memory or quota.pods; use those",
                ));
            }
            at_most(&field, Some(value), maxima.other.get(key))?;
        }
        Ok(())
    }

    fn check_limits(&self, maxima: &Resources) -> Result<(), Error> {
        let (max, request) = (&self.limits.max, &self.limits.default_request);
        at_most("limits.max.cpu", max.cpu.as_ref(), maxima.cpu.as_ref())?;
        at_most(
            "limits.max.memory",
            max.memory.as_ref(),
            maxima.memory.as_ref(),
        )?;
        let over =
            |field: &str, what: Option<&Quantity>, bound: Option<&Quantity>| match (what, bound) {
                (Some(what), Some(bound)) if what > bound => Err(Error::invalid(
                    field,
                    format!("{what} is above the namespace's per-container maximum {bound}"),
                )),
                _ => Ok(()),
            };
        over(
            "limits.defaultRequest.cpu",
            request.cpu.as_ref(),
            max.cpu.as_ref(),
        )?;
        over(
            "limits.defaultRequest.memory",
            request.memory.as_ref(),
            max.memory.as_ref(),
        )
    }
}

fn fill<T: Clone>(value: &mut Option<T>, default: &Option<T>) {
    if value.is_none() {
        value.clone_from(default);
    }
}

/// `value` may not exceed the platform's `maximum` (when it has one).
fn at_most(field: &str, value: Option<&Quantity>, maximum: Option<&Quantity>) -> Result<(), Error> {
    match (value, maximum) {
        (Some(value), Some(maximum)) if value > maximum => Err(Error::invalid(
            field,
            format!(
                "{value} is above the platform maximum {maximum} (namespaces.maxima in sk8's config)"
            ),
        )),
        _ => Ok(()),
    }
}

fn check_secrets(secrets: &[SecretRef]) -> Result<(), Error> {
    if secrets.len() > MAX_SECRETS {
        return Err(Error::invalid(
            "secrets",
            format!("at most {MAX_SECRETS} secrets, got {}", secrets.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, secret) in secrets.iter().enumerate() {
        let field = format!("secrets[{i}].name");
        names::dns_label_rule(&secret.name).map_err(|m| Error::invalid(&field, m))?;
        if !seen.insert(secret.name.as_str()) {
            return Err(Error::invalid(
                field,
                format!("{} is listed twice", secret.name),
            ));
        }
    }
    Ok(())
}

fn check_egress(rules: &[EgressRule]) -> Result<(), Error> {
    if rules.len() > MAX_EGRESS_RULES {
        return Err(Error::invalid(
            "egress",
            format!("at most {MAX_EGRESS_RULES} rules, got {}", rules.len()),
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        check_cidr(&rule.cidr).map_err(|m| Error::invalid(format!("egress[{i}].cidr"), m))?;
        if rule.ports.len() > MAX_PORTS {
            return Err(Error::invalid(
                format!("egress[{i}].ports"),
                format!("at most {MAX_PORTS} ports, got {}", rule.ports.len()),
            ));
        }
        if let Some(j) = rule.ports.iter().position(|p| *p == 0) {
            return Err(Error::invalid(
                format!("egress[{i}].ports[{j}]"),
                "must be a port from 1 to 65535",
            ));
        }
    }
    Ok(())
}

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`).
pub fn check_cidr(cidr: &str) -> Result<(), String> {
    let invalid = || format!("{cidr:?} is not a CIDR like 10.0.0.0/8 or fd00::/8");
    let (address, prefix) = cidr.split_once('/').ok_or_else(invalid)?;
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    if prefix > bits {
        return Err(invalid());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
