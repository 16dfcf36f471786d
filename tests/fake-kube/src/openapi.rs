//! OpenAPI v3: the `/openapi/v3` index and one document per group-version, derived from
//! [`crate::resources::KINDS`] and, for custom resources, the CRD's `openAPIV3Schema`.
//!
//! kubectl reads these to decide that the server validates fields itself (a PATCH operation
//! for the kind that lists a `fieldValidation` parameter) and then sends
//! `fieldValidation=Strict` instead of validating client-side. Built-in kinds get an open
//! schema: the fake does not check their fields.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::resources::{ResourceKind, group_versions, kinds_in};
use crate::schema::schema_of;

/// A served document: its JSON text and the hash clients cache it by.
pub struct Document {
    pub json: String,
    pub hash: String,
}

/// `api/v1` or `apis/<group>/<version>`, the index key of a group-version.
fn path_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Every group-version's document, built once (the CRD schema makes them large).
pub fn documents() -> &'static BTreeMap<String, Document> {
    static DOCS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(group, version)| {
                let json = document(group, version).to_string();
                let mut hasher = DefaultHasher::new();
                json.hash(&mut hasher);
                let hash = format!("{:016X}", hasher.finish());
                (path_key(group, version), Document { json, hash })
            })
            .collect()
    })
}

/// `GET /openapi/v3`.
pub fn index() -> Value {
    let paths: Map<String, Value> = documents()
        .iter()
        .map(|(key, doc)| {
            let url = format!("/openapi/v3/{key}?hash={}", doc.hash);
            (key.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn document(group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    for kind in kinds_in(group, version) {
        let name = schema_name(kind, version);
        schemas.insert(name.clone(), kind_schema(kind, version));
        paths.extend(kind_paths(kind, version, &name));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (sk8 fake)", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// `org.apache.spark.v1.SparkApplication` for custom resources (the reversed group, as the
/// real server names them), `io.k8s.api.<group>.<version>.<Kind>` for built-ins.
fn schema_name(kind: &ResourceKind, version: &str) -> String {
    if schema_of(kind, version).is_some() {
        let reversed: Vec<&str> = kind.group.split('.').rev().collect();
        return format!("{}.{version}.{}", reversed.join("."), kind.kind);
    }
    let group = kind
        .group
        .split('.')
        .next()
        .filter(|g| !g.is_empty())
        .unwrap_or("core");
    format!("io.k8s.api.{group}.{version}.{}", kind.kind)
}

fn gvk(kind: &ResourceKind, version: &str) -> Value {
    json!({"group": kind.group, "version": version, "kind": kind.kind})
}

fn kind_schema(kind: &ResourceKind, version: &str) -> Value {
    let mut schema = match schema_of(kind, version) {
        Some(crd_schema) => crd_schema.clone(),
        None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    };
    let properties = schema["properties"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut all = Map::new();
    all.insert("apiVersion".into(), json!({"type": "string"}));
    all.insert("kind".into(), json!({"type": "string"}));
    all.insert(
        "metadata".into(),
        json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}]}),
    );
    all.extend(properties);
    schema["properties"] = Value::Object(all);
    schema["x-kubernetes-group-version-kind"] = json!([gvk(kind, version)]);
    schema
}

fn object_meta_schema() -> Value {
    let string = json!({"type": "string"});
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({
        "type": "object",
        "properties": {
            "name": string, "generateName": string, "namespace": string, "uid": string,
            "resourceVersion": string, "creationTimestamp": string, "deletionTimestamp": string,
            "generation": {"type": "integer"},
            "labels": string_map, "annotations": string_map,
            "finalizers": {"type": "array", "items": string},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        },
    })
}

/// The collection, item and status paths of one kind.
fn kind_paths(kind: &ResourceKind, version: &str, schema: &str) -> Map<String, Value> {
    let prefix = kind.url_prefix(version);
    let scope = if kind.namespaced() {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{prefix}{scope}/{}", kind.plural);
    let item = format!("{collection}/{{name}}");
    let op = |action: &str| operation(kind, version, schema, action);
    let mut paths = Map::new();
    paths.insert(collection, json!({"get": op("list"), "post": op("post")}));
    paths.insert(
        item.clone(),
        json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
    );
    if kind.status {
        paths.insert(
            format!("{item}/status"),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch")}),
        );
    }
    paths
}

fn operation(kind: &ResourceKind, version: &str, schema: &str, action: &str) -> Value {
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let parameters: Vec<Value> = match action {
        "post" | "put" => vec![
            query("dryRun"),
            query("fieldManager"),
            query("fieldValidation"),
        ],
        "patch" => vec![
            query("dryRun"),
            query("fieldManager"),
            query("fieldValidation"),
            query("force"),
        ],
        "list" => [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "watch",
            "timeoutSeconds",
        ]
        .into_iter()
        .map(query)
        .collect(),
        _ => Vec::new(),
    };
    let reference = json!({"$ref": format!("#/components/schemas/{schema}")});
    let mut op = json!({
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(kind, version),
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
    });
    if action == "patch" {
        let mut types = vec![
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ];
        if schema_of(kind, version).is_none() {
            types.push("application/strategic-merge-patch+json");
        }
        let content: Map<String, Value> = types
            .into_iter()
            .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
            .collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_advertise_field_validation() {
        let doc: Value =
            serde_json::from_str(&documents()["apis/spark.apache.org/v1"].json).unwrap();
        let patch = &doc["paths"]["/apis/spark.apache.org/v1/namespaces/{namespace}/sparkapplications/{name}"]
            ["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "SparkApplication"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let schema = &doc["components"]["schemas"]["org.apache.spark.v1.SparkApplication"];
        assert!(schema["properties"]["spec"]["properties"]["mainClass"].is_object());
        assert!(
            index()["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
    }
}
