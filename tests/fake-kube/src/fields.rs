//! Field paths and field sets: which leaves of an object a request sets, and the `FieldsV1`
//! encoding of `metadata.managedFields`.
//!
//! A leaf is a scalar, a list or an empty map. Lists are atomic, as they are for custom
//! resources without `x-kubernetes-list-type` (the associative lists of core kinds, such as
//! `containers`, are treated atomically too: a documented simplification).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A path of map keys from the object root, e.g. `["spec", "mainClass"]`.
pub type Path = Vec<String>;

/// A set of leaf paths.
pub type FieldSet = BTreeSet<Path>;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource; `status` is excluded when the kind has a status subresource.
    Main { has_status: bool },
    /// The `status` subresource.
    Status,
}

impl Part {
    /// The `subresource` recorded in managedFields entries.
    pub fn subresource(self) -> &'static str {
        match self {
            Part::Main { .. } => "",
            Part::Status => "status",
        }
    }

    /// Whether a top-level key belongs to this part.
    pub fn covers(self, key: &str) -> bool {
        match (self, key) {
            (_, "apiVersion" | "kind") => false,
            (Part::Status, key) => key == "status",
            (Part::Main { has_status }, "status") => !has_status,
            (Part::Main { .. }, _) => true,
        }
    }
}

/// Metadata the server owns: never part of a field set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The leaves an object sets within `part` (null values set nothing).
pub fn leaves(object: &Value, part: Part) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(top) = object.as_object() else {
        return out;
    };
    for (key, value) in top.iter().filter(|(k, _)| part.covers(k)) {
        if key == "metadata" {
            let Some(meta) = value.as_object() else {
                continue;
            };
            for (k, v) in meta
                .iter()
                .filter(|(k, _)| !SERVER_METADATA.contains(&k.as_str()))
            {
                collect(v, vec![key.clone(), k.clone()], &mut out);
            }
        } else {
            collect(value, vec![key.clone()], &mut out);
        }
    }
    out
}

fn collect(value: &Value, path: Path, out: &mut FieldSet) {
    match value {
        Value::Null => {}
        Value::Object(map) if map.values().any(|v| !v.is_null()) => {
            for (k, v) in map {
                let mut child = path.clone();
                child.push(k.clone());
                collect(v, child, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// Whether one path is a prefix of the other: owning either touches the other.
pub fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `.spec.mainClass`, the way conflicts name fields.
pub fn display(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

pub fn get<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

/// Sets a leaf, creating (or replacing non-map) parents. An empty map only makes sure a map
/// is there, so applying `labels: {}` does not wipe labels other managers own.
pub fn set(object: &mut Value, path: &[String], value: &Value) {
    let mut cursor = object;
    for key in path {
        if !cursor.is_object() {
            *cursor = Value::Object(Map::new());
        }
        cursor = cursor
            .as_object_mut()
            .expect("just made an object")
            .entry(key.clone())
            .or_insert(Value::Null);
    }
    let keep_existing_map = value.as_object().is_some_and(Map::is_empty) && cursor.is_object();
    if !keep_existing_map {
        *cursor = value.clone();
    }
}

/// Removes a field, then any map it leaves empty below the top level (and below `metadata`).
pub fn remove(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(parent) = get_mut(object, parents).and_then(Value::as_object_mut) else {
        return;
    };
    parent.remove(last);
    if parent.is_empty() && parents.len() > 1 {
        remove(object, parents);
    }
}

fn get_mut<'a>(object: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(object, |v, k| v.get_mut(k))
}

/// The `FieldsV1` form: `{"f:spec": {"f:mainClass": {}}}`.
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for key in path {
            node = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("field nodes are maps");
        }
    }
    mark_inner_members(&mut root, set, &mut Vec::new());
    Value::Object(root)
}

/// A path that is a member and also has members below it gets a `"."` entry, as in real
/// managedFields; `encode` cannot know that until all paths are inserted.
fn mark_inner_members(node: &mut Map<String, Value>, set: &FieldSet, path: &mut Path) {
    for (key, child) in node.iter_mut() {
        let Some(name) = key.strip_prefix("f:") else {
            continue;
        };
        let Some(child) = child.as_object_mut() else {
            continue;
        };
        path.push(name.to_string());
        if !child.is_empty() && set.contains(path.as_slice()) {
            child.insert(".".into(), Value::Object(Map::new()));
        }
        mark_inner_members(child, set, path);
        path.pop();
    }
}

/// Reads `FieldsV1`. Keys other than `f:` (list items written by a real server) make their
/// parent an atomic member, matching this fake's atomic lists.
pub fn decode(fields: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    decode_into(fields, &mut Vec::new(), &mut out);
    out
}

fn decode_into(node: &Value, path: &mut Path, out: &mut FieldSet) {
    let map = match node.as_object() {
        Some(map) if !map.is_empty() => map,
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
    };
    for (key, child) in map {
        match key.strip_prefix("f:") {
            Some(name) => {
                path.push(name.to_string());
                decode_into(child, path, out);
                path.pop();
            }
            None if !path.is_empty() => {
                out.insert(path.clone());
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Path {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn leaves_skip_server_metadata_and_respect_the_part() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "uid": "u", "labels": {"x": "1"}, "annotations": {}},
            "spec": {"args": ["a"], "empty": {}, "gone": null},
            "status": {"phase": "Running"},
        });
        let main = leaves(&obj, Part::Main { has_status: true });
        let expected: FieldSet = [
            p("metadata.labels.x"),
            p("metadata.annotations"),
            p("spec.args"),
            p("spec.empty"),
        ]
        .into();
        assert_eq!(main, expected);
        assert_eq!(leaves(&obj, Part::Status), [p("status.phase")].into());
        assert!(leaves(&obj, Part::Main { has_status: false }).contains(&p("status.phase")));
    }

    #[test]
    fn fields_v1_round_trips() {
        let set: FieldSet = [p("spec.a"), p("spec.b.c"), p("metadata.labels.x")].into();
        let encoded = encode(&set);
        assert_eq!(
            encoded,
            json!({"f:spec": {"f:a": {}, "f:b": {"f:c": {}}}, "f:metadata": {"f:labels": {"f:x": {}}}})
        );
        assert_eq!(decode(&encoded), set);
        let real = json!({"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}}}}});
        assert_eq!(decode(&real), [p("spec.containers")].into());
    }

    #[test]
    fn set_and_remove_paths() {
        let mut obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {}});
        set(&mut obj, &p("spec.x.y"), &json!(2));
        set(&mut obj, &p("metadata.labels"), &json!({}));
        assert_eq!(
            obj,
            json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": {"y": 2}}})
        );
        remove(&mut obj, &p("spec.x.y"));
        remove(&mut obj, &p("metadata.labels.a"));
        assert_eq!(obj, json!({"metadata": {}, "spec": {}}));
        assert!(overlaps(&p("spec"), &p("spec.x")) && !overlaps(&p("spec.x"), &p("spec.y")));
        assert_eq!(display(&p("spec.mainClass")), ".spec.mainClass");
    }
}
