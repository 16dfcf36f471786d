//! Request bodies against the URL and the stored object: identity checks and defaults,
//! `generateName`, the apply skeleton, composing a part-wise update, and validation.

use serde_json::{Map, Value, json};

use super::request::Target;
use crate::apply;
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::schema;

/// Checks a body against the URL and fills what the URL implies: `kind`, `apiVersion` (stored
/// at the storage version), `metadata.namespace` and `metadata.name`.
pub(super) fn check_body(target: &Target, body: &mut Value) -> ApiResult<()> {
    let kind = target.kind;
    let expected = kind.api_version(target.version);
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "Object '{}' is missing or the body is not an object",
            kind.kind
        )));
    };
    if let Some(sent) = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| *v != expected)
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({sent}) does not match the expected API version ({expected})"
        )));
    }
    if let Some(sent) = map
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| *k != kind.kind)
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({sent}) does not match the expected kind ({})",
            kind.kind
        )));
    }
    map.insert(
        "apiVersion".into(),
        json!(kind.api_version(kind.storage_version())),
    );
    map.insert("kind".into(), json!(kind.kind));
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else {
        return Err(ApiError::bad_request("metadata must be an object"));
    };
    check_identity(target, meta)
}

fn check_identity(target: &Target, meta: &mut Map<String, Value>) -> ApiResult<()> {
    let sent_ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    match (&target.namespace, sent_ns) {
        (Some(url), Some(sent)) if url != sent => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (Some(url), _) => {
            meta.insert("namespace".into(), json!(url));
        }
        (None, _) => {
            meta.remove("namespace");
        }
    }
    let Some(url_name) = &target.name else {
        return Ok(());
    };
    match meta.get("name").and_then(Value::as_str) {
        Some(sent) if sent != url_name => Err(ApiError::bad_request(format!(
            "the name of the object ({sent}) does not match the name on the URL ({url_name})"
        ))),
        _ => {
            meta.insert("name".into(), json!(url_name));
            Ok(())
        }
    }
}

/// `generateName` becomes a name with the real server's five-character suffix.
pub(super) fn generate_name(object: &mut Value) {
    let meta = &mut object["metadata"];
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if let (false, Some(prefix)) = (has_name, meta.get("generateName").and_then(Value::as_str)) {
        meta["name"] = json!(format!("{prefix}{}", meta::name_suffix()));
    }
}

/// The identity-only object an apply-create starts from.
pub(super) fn skeleton(target: &Target) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), json!(target.name()));
    if let Some(ns) = &target.namespace {
        meta.insert("namespace".into(), json!(ns));
    }
    apply::skeleton(
        &target.kind.api_version(target.kind.storage_version()),
        target.kind.kind,
        meta,
    )
}

/// The object an update of `target`'s part produces from the stored `live` and the `incoming`
/// body: server-owned metadata always comes from `live`; a status write changes only status;
/// a main-resource write keeps the stored status when the kind has a status subresource.
pub(super) fn compose(target: &Target, live: &Value, incoming: Value) -> Value {
    let mut new = if target.status {
        let mut new = live.clone();
        set_or_remove(&mut new, "status", incoming.get("status"));
        new
    } else {
        let mut new = incoming;
        if target.kind.status {
            set_or_remove(&mut new, "status", live.get("status"));
        }
        new
    };
    // managedFields are rewritten from `live` by apply::record_update.
    let server_owned = [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
    ];
    for key in server_owned {
        set_or_remove(&mut new["metadata"], key, live["metadata"].get(key));
    }
    new
}

fn set_or_remove(object: &mut Value, key: &str, value: Option<&Value>) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    match value {
        Some(value) => map.insert(key.to_string(), value.clone()),
        None => map.remove(key),
    };
}

/// Name and label syntax, and the CRD schema: all problems in one 422.
pub(super) fn validate(target: &Target, object: &Value, creating: bool) -> ApiResult<()> {
    let meta = &object["metadata"];
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if let Some(why) = meta::name_problem(target.kind.names, name).filter(|_| creating) {
        causes.push(Cause::invalid("metadata.name", &json!(name), why));
    }
    causes.extend(meta::label_causes(meta));
    causes.extend(schema::validate(target.kind, target.version, object));
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(target.kind, name, causes))
    }
}

pub(super) fn without_meta_and_status(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}
