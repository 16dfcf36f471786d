//! Discovery documents, all derived from [`crate::resources::KINDS`]: `/version`, the legacy
//! `/api`, `/apis`, `/api/v1` and `/apis/<group>/<version>` lists (kube-rs), and the aggregated
//! `apidiscovery.k8s.io/v2` form that kubectl 1.33 asks for first.

use serde_json::{Value, json};

use crate::resources::{ResourceKind, group_versions, kinds_in};

/// The Content-Type of aggregated discovery responses; clients check it before decoding.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an Accept header asks for aggregated (v2) discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=APIGroupDiscoveryList") && params.contains(&"v=v2")
    })
}

/// The version a kubectl 1.33 client expects to talk to.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-sk8-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api` (legacy form).
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis` (legacy form): every group but the core one.
pub fn group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .filter(|g| !g.0.is_empty())
        .map(|(name, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Groups in table order with their versions, preferred first.
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (group, version) in group_versions() {
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) => versions.push(version),
            None => out.push((group, vec![version])),
        }
    }
    out
}

const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// `GET /api/v1` or `/apis/<group>/<version>`: None when the group-version is not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for kind in kinds_in(group, version) {
        resources.push(json!({
            "name": kind.plural,
            "singularName": kind.singular(),
            "namespaced": kind.namespaced(),
            "kind": kind.kind,
            "verbs": VERBS,
            "shortNames": kind.short_names,
            "categories": kind.categories,
        }));
        for (sub, verbs) in subresources(kind) {
            resources.push(json!({
                "name": format!("{}/{sub}", kind.plural),
                "singularName": "",
                "namespaced": kind.namespaced(),
                "kind": kind.kind,
                "verbs": verbs,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    (!resources.is_empty()).then(|| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
    })
}

fn subresources(kind: &ResourceKind) -> Vec<(&'static str, &'static [&'static str])> {
    let mut out = Vec::new();
    if kind.status {
        out.push(("status", STATUS_VERBS));
    }
    if kind.log {
        out.push(("log", &["get"][..]));
    }
    out
}

/// `GET /api` or `/apis` as an `APIGroupDiscoveryList` (core group only, or all the others).
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = groups()
        .into_iter()
        .filter(|(group, _)| group.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = kinds_in(group, v)
                        .map(|k| aggregated_resource(k, v))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let metadata = if core {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": group, "creationTimestamp": null})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

fn aggregated_resource(kind: &ResourceKind, version: &str) -> Value {
    let response_kind = json!({"group": kind.group, "version": version, "kind": kind.kind});
    let subresources: Vec<Value> = subresources(kind)
        .into_iter()
        .map(|(sub, verbs)| json!({"subresource": sub, "responseKind": response_kind, "verbs": verbs}))
        .collect();
    json!({
        "resource": kind.plural,
        "responseKind": response_kind,
        "scope": if kind.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": kind.singular(),
        "verbs": VERBS,
        "shortNames": kind.short_names,
        "categories": kind.categories,
        "subresources": subresources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::KINDS;

    #[test]
    fn aggregated_accept_header_is_recognised() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json, */*"));
    }

    #[test]
    fn every_kind_is_discoverable() {
        for kind in KINDS {
            for version in kind.versions {
                let list = resource_list(kind.group, version).unwrap();
                let names: Vec<&str> = list["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|r| r["name"].as_str())
                    .collect();
                assert!(names.contains(&kind.plural), "{}", kind.plural);
            }
        }
        let spark = aggregated(false)["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "spark.apache.org")
            .cloned()
            .unwrap();
        assert_eq!(spark["versions"][0]["version"], "v1");
        assert_eq!(
            spark["versions"][0]["resources"][0]["subresources"][0]["subresource"],
            "status"
        );
        assert!(resource_list("spark.apache.org", "v9").is_none());
    }
}
