//! A validator for the subset of OpenAPI v3 that CRD schemas use (`type`, `properties`,
//! `required`, `additionalProperties`, `items`, `enum`, `anyOf`, `x-kubernetes-int-or-string`,
//! `x-kubernetes-preserve-unknown-fields`), stricter than the API server in one way: an object
//! schema that lists `properties` is closed (as if `additionalProperties: false`), except at the
//! root, so a misspelt field fails instead of being silently pruned.

use serde_json::Value;

/// The `openAPIV3Schema` of one version of a CRD file (YAML).
pub fn crd_schema(crd_yaml: &str, version: &str) -> Value {
    let crd: Value = serde_saphyr::from_str(crd_yaml).expect("the CRD parses");
    crd["spec"]["versions"]
        .as_array()
        .expect("spec.versions")
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("no version {version} in the CRD"))["schema"]["openAPIV3Schema"]
        .clone()
}

/// Every violation, as `path: rule`; empty when `value` is valid.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "", true, &mut errors);
    errors
}

fn check(schema: &Value, value: &Value, path: &str, root: bool, errors: &mut Vec<String>) {
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!("{path}: must be an integer or a string"));
        }
        return;
    }
    if let Some(alternatives) = schema["anyOf"].as_array()
        && !alternatives
            .iter()
            .any(|alt| validate(alt, value).is_empty())
    {
        errors.push(format!("{path}: matches none of anyOf"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    match schema["type"].as_str() {
        Some("object") => check_object(schema, value, path, root, errors),
        Some("array") => check_array(schema, value, path, errors),
        Some(expected) if !has_type(value, expected) => {
            errors.push(format!("{path}: must be of type {expected}, got {value}"));
        }
        _ => {}
    }
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

fn check_object(schema: &Value, value: &Value, path: &str, root: bool, errors: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        errors.push(format!("{path}: must be an object, got {value}"));
        return;
    };
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if !object.contains_key(name) {
            errors.push(format!("{}: is required", join(path, name)));
        }
    }
    let properties = schema["properties"].as_object();
    let open = root || schema["x-kubernetes-preserve-unknown-fields"] == true;
    for (key, child) in object {
        let child_path = join(path, key);
        match (
            properties.and_then(|p| p.get(key)),
            &schema["additionalProperties"],
        ) {
            (Some(property), _) => check(property, child, &child_path, false, errors),
            (None, Value::Object(_)) => check(
                &schema["additionalProperties"],
                child,
                &child_path,
                false,
                errors,
            ),
            (None, Value::Bool(false)) => errors.push(format!("{child_path}: unknown field")),
            (None, _) if properties.is_some() && !open => {
                errors.push(format!("{child_path}: unknown field"))
            }
            (None, _) => {}
        }
    }
}

fn check_array(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(items) = value.as_array() else {
        errors.push(format!("{path}: must be an array, got {value}"));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        check(
            &schema["items"],
            item,
            &format!("{path}[{i}]"),
            false,
            errors,
        );
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
