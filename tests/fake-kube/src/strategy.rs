//! The per-kind rules kube-apiserver's registry strategies apply on writes, where clients can
//! observe them: status reset on create, namespace defaults and its name label, and Secret
//! `stringData` folded into base64 `data`.

use base64::Engine;
use serde_json::{Value, json};

use crate::resources::ResourceKind;

/// On create: a kind with a status subresource starts without status (a pod starts Pending);
/// a namespace starts Active with the `kubernetes` finalizer.
pub fn prepare_create(kind: &ResourceKind, object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if kind.status {
        map.remove("status");
    }
    match (kind.group, kind.kind) {
        ("", "Pod") => {
            map.insert("status".into(), json!({"phase": "Pending"}));
        }
        ("", "Namespace") => {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if spec.get("finalizers").is_none() {
                spec["finalizers"] = json!(["kubernetes"]);
            }
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        _ => {}
    }
}

/// On every write of the main resource.
pub fn normalize(kind: &ResourceKind, object: &mut Value) {
    match (kind.group, kind.kind) {
        ("", "Namespace") => {
            let name = object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            let meta = &mut object["metadata"];
            if !meta["labels"].is_object() {
                meta["labels"] = json!({});
            }
            meta["labels"]["kubernetes.io/metadata.name"] = name;
        }
        ("", "Secret") => fold_string_data(object),
        _ => {}
    }
}

fn fold_string_data(secret: &mut Value) {
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        for (key, value) in string_data {
            let text = value.as_str().unwrap_or_default();
            data[key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    map.entry("type").or_insert_with(|| json!("Opaque"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    #[test]
    fn secrets_fold_string_data() {
        let (secrets, _) = lookup("", "v1", "secrets").unwrap();
        let mut secret =
            json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "y"}});
        normalize(secrets, &mut secret);
        assert_eq!(
            secret,
            json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eQ=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn pods_start_pending_and_namespaces_active() {
        let (pods, _) = lookup("", "v1", "pods").unwrap();
        let mut pod = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
        prepare_create(pods, &mut pod);
        assert_eq!(pod["status"], json!({"phase": "Pending"}));
        let (namespaces, _) = lookup("", "v1", "namespaces").unwrap();
        let mut ns = json!({"metadata": {"name": "team"}});
        prepare_create(namespaces, &mut ns);
        normalize(namespaces, &mut ns);
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
    }
}
