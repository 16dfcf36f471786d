//! Non-apply patches: JSON merge patch (RFC 7386) and JSON patch (RFC 6902). Strategic merge
//! patch is served as a merge patch for built-in kinds (lists are replaced, not merged by key).

use serde_json::Value;

/// RFC 7386: maps merge recursively, `null` deletes, everything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let map = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// RFC 6902 on a copy of `target`; the error says which operation failed.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    let mut doc = target.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_op(&mut doc, op).map_err(|e| format!("operation {i}: {e}"))?;
    }
    Ok(doc)
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let text = |key: &str| {
        op.get(key)
            .and_then(Value::as_str)
            .ok_or(format!("missing {key:?}"))
    };
    let path = text("path")?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or("missing \"value\"".to_string())
    };
    match text("op")? {
        "add" => add(doc, path, value()?),
        "remove" => take(doc, path).map(drop),
        "replace" => {
            let slot = doc
                .pointer_mut(path)
                .ok_or(format!("path {path:?} not found"))?;
            *slot = value()?;
            Ok(())
        }
        "test" => match doc.pointer(path) {
            Some(found) if *found == value()? => Ok(()),
            _ => Err(format!("test failed at {path:?}")),
        },
        "move" => {
            let moved = take(doc, text("from")?)?;
            add(doc, path, moved)
        }
        "copy" => {
            let from = text("from")?;
            let copied = doc
                .pointer(from)
                .cloned()
                .ok_or(format!("path {from:?} not found"))?;
            add(doc, path, copied)
        }
        other => Err(format!("unknown operation {other:?}")),
    }
}

/// Splits `/a/b` into the parent pointer and the unescaped last token.
fn split(path: &str) -> Result<(&str, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or(format!("invalid path {path:?}"))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let index = if key == "-" {
                items.len()
            } else {
                index(&key, items.len() + 1)?
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("parent of {path:?} not found")),
    }
}

fn take(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, key) = split(path)?;
    let missing = || format!("path {path:?} not found");
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&key).ok_or_else(missing),
        Some(Value::Array(items)) => Ok(items.remove(index(&key, items.len())?)),
        _ => Err(missing()),
    }
}

fn index(token: &str, bound: usize) -> Result<usize, String> {
    token
        .parse::<usize>()
        .ok()
        .filter(|i| *i < bound)
        .ok_or(format!("bad array index {token:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge(&mut doc, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(doc, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"metadata": {"labels": {"a/b": "1"}}, "list": [1, 3]});
        let ops = json!([
            {"op": "add", "path": "/list/1", "value": 2},
            {"op": "add", "path": "/list/-", "value": 4},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
            {"op": "test", "path": "/list/0", "value": 1},
            {"op": "copy", "from": "/list", "path": "/copy"},
            {"op": "move", "from": "/copy", "path": "/moved"},
            {"op": "remove", "path": "/list/0"},
        ]);
        let out = json_patch(&doc, &ops).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"a/b": "2"}}, "list": [2, 3, 4], "moved": [1, 2, 3, 4]})
        );
        let failed = json_patch(
            &doc,
            &json!([{"op": "test", "path": "/list/0", "value": 9}]),
        );
        assert_eq!(
            failed.unwrap_err(),
            "operation 0: test failed at \"/list/0\""
        );
    }
}
