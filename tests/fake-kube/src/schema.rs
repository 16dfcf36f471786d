//! Custom resource schemas: the CRDs embedded from the repository's `tests/fixtures/crds/`
//! (upstream files, unmodified), and
//! what kube-apiserver does with a CRD's `openAPIV3Schema` on every write: drop unknown fields
//! (reporting them per `fieldValidation`), drop nulls, then check types, `required` and `enum`.
//!
//! Built-in kinds have no schema here: their bodies are stored as sent (a documented gap).

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Cause};
use crate::resources::ResourceKind;

/// The CRDs the fake serves, as YAML. Adding one: copy the file, add it here and a line to
/// [`crate::resources::KINDS`].
const CRD_YAML: &[&str] = &[include_str!(
    "../../fixtures/crds/apache-spark-kubernetes-operator/sparkapplications.spark.apache.org-v1.yaml"
)];

/// The embedded CRD objects, parsed once.
pub fn crds() -> &'static [Value] {
    static PARSED: OnceLock<Vec<Value>> = OnceLock::new();
    PARSED.get_or_init(|| {
        CRD_YAML
            .iter()
            .map(|yaml| serde_saphyr::from_str(yaml).expect("embedded CRDs are valid YAML"))
            .collect()
    })
}

/// The CRD behind a kind, if it is a custom resource.
pub fn crd_of(kind: &ResourceKind) -> Option<&'static Value> {
    crds().iter().find(|crd| {
        crd.pointer("/spec/group").and_then(Value::as_str) == Some(kind.group)
            && crd.pointer("/spec/names/kind").and_then(Value::as_str) == Some(kind.kind)
    })
}

/// The `openAPIV3Schema` of one served version of a custom resource.
pub fn schema_of(kind: &ResourceKind, version: &str) -> Option<&'static Value> {
    let versions = crd_of(kind)?.pointer("/spec/versions")?.as_array()?;
    let served = versions.iter().find(|v| v["name"] == version)?;
    served.pointer("/schema/openAPIV3Schema")
}

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    Warn,
    /// What kubectl sends by default; the server default is Warn.
    Strict,
    #[default]
    Default,
}

impl FieldValidation {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("") => Ok(FieldValidation::Default),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            ))),
        }
    }
}

/// Drops fields the schema does not declare and nulls. Returns the warnings to send back
/// (`Warn`, the default) or the 400 a `Strict` request gets.
pub fn prune(
    kind: &ResourceKind,
    version: &str,
    object: &mut Value,
    validation: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let Some(schema) = schema_of(kind, version) else {
        return Ok(Vec::new());
    };
    let mut unknown = Vec::new();
    if let Some(root) = object.as_object_mut() {
        for (key, value) in root.iter_mut() {
            if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                let child = schema.pointer(&format!("/properties/{key}"));
                child.inspect(|s| prune_value(s, value, key, &mut unknown));
            }
        }
        root.retain(|key, value| {
            let declared = matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                || schema.pointer(&format!("/properties/{key}")).is_some();
            if !declared {
                unknown.push(key.clone());
            }
            declared && !value.is_null()
        });
    }
    let messages: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    match validation {
        FieldValidation::Strict if !messages.is_empty() => Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            messages.join(", "),
            kind = kind.kind,
        ))),
        FieldValidation::Ignore => Ok(Vec::new()),
        _ => Ok(messages),
    }
}

fn prune_value(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true)) {
        return;
    }
    match value {
        Value::Object(map) => prune_map(schema, map, path, unknown),
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            for (i, item) in items.iter_mut().enumerate() {
                prune_value(item_schema, item, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

fn prune_map(schema: &Value, map: &mut Map<String, Value>, path: &str, unknown: &mut Vec<String>) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    map.retain(|key, value| {
        let child = properties
            .and_then(|p| p.get(key))
            .or(additional.filter(|a| a.is_object()));
        match child {
            Some(child) => {
                prune_value(child, value, &format!("{path}.{key}"), unknown);
                !value.is_null() || child.get("nullable") == Some(&json!(true))
            }
            None if additional == Some(&json!(true)) => true,
            None => {
                unknown.push(format!("{path}.{key}"));
                false
            }
        }
    });
}

/// Problems with types, `required` and `enum` against the schema (for a 422 Invalid).
pub fn validate(kind: &ResourceKind, version: &str, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(schema) = schema_of(kind, version) else {
        return causes;
    };
    let mut root = object.clone();
    if let Some(map) = root.as_object_mut() {
        map.retain(|k, _| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
    }
    check(schema, &root, "", &mut causes);
    causes
}

fn check(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !has_type(value, expected, schema)
    {
        let actual = type_name(value);
        let why = format!("{path} in body must be of type {expected}: {actual:?}");
        causes.push(Cause::invalid(path, &json!(actual), why));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        causes.push(Cause::unsupported(path, value, allowed));
    }
    match value {
        Value::Object(map) => check_map(schema, map, path, causes),
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            for (i, item) in items.iter().enumerate() {
                check(item_schema, item, &format!("{path}[{i}]"), causes);
            }
        }
        _ => {}
    }
}

fn check_map(schema: &Value, map: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(key) = required.as_str().filter(|k| !map.contains_key(*k)) {
            causes.push(Cause::required(join(key), ""));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, value) in map {
        if let Some(child) = properties.and_then(|p| p.get(key)).or(additional) {
            check(child, value, &join(key), causes);
        }
    }
}

fn has_type(value: &Value, expected: &str, schema: &Value) -> bool {
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&json!(true));
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string() || (int_or_string && value.is_i64()),
        "integer" => value.is_i64() || value.is_u64() || (int_or_string && value.is_string()),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;

    fn spark() -> &'static ResourceKind {
        lookup("spark.apache.org", "v1", "sparkapplications")
            .unwrap()
            .0
    }

    fn app(spec: Value) -> Value {
        json!({"apiVersion": "spark.apache.org/v1", "kind": "SparkApplication",
               "metadata": {"name": "pi"}, "spec": spec})
    }

    #[test]
    fn the_embedded_crd_has_both_versions() {
        assert!(schema_of(spark(), "v1").is_some());
        assert!(schema_of(spark(), "v1beta1").is_some());
        assert!(schema_of(lookup("", "v1", "pods").unwrap().0, "v1").is_none());
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported_per_field_validation() {
        let spec = json!({"runtimeVersions": {"sparkVersion": "4.0.0"}, "mainClas": "typo",
                          "sparkConf": {"any.key": "v"}, "jars": null});
        let mut object = app(spec.clone());
        object["extra"] = json!(1);
        let warnings = prune(spark(), "v1", &mut object, FieldValidation::Warn).unwrap();
        assert_eq!(
            warnings,
            ["unknown field \"spec.mainClas\"", "unknown field \"extra\""]
        );
        assert_eq!(
            object["spec"],
            json!({"runtimeVersions": {"sparkVersion": "4.0.0"},
                                          "sparkConf": {"any.key": "v"}})
        );
        let err = prune(spark(), "v1", &mut app(spec), FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .ends_with("strict decoding error: unknown field \"spec.mainClas\"")
        );
    }

    fn invalid(spec: Value) -> ApiError {
        ApiError::invalid(spark(), "pi", validate(spark(), "v1", &app(spec)))
    }

    #[test]
    fn types_required_and_enums_are_checked() {
        assert!(
            validate(
                spark(),
                "v1",
                &app(json!({"runtimeVersions": {"sparkVersion": "4"}}))
            )
            .is_empty()
        );
        let err = invalid(json!({"runtimeVersions": {"sparkVersion": 4}}));
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "SparkApplication.spark.apache.org \"pi\" is invalid: spec.runtimeVersions.sparkVersion: \
             Invalid value: \"integer\": spec.runtimeVersions.sparkVersion in body must be of type string: \"integer\""
        );
        let err = invalid(json!({}));
        assert!(
            err.message
                .ends_with("spec.runtimeVersions: Required value"),
            "{}",
            err.message
        );
        let policy = json!({"runtimeVersions": {"sparkVersion": "4"},
                            "applicationTolerations": {"resourceRetainPolicy": "Sometimes"}});
        let err = invalid(policy);
        assert!(
            err.message.contains("Unsupported value: \"Sometimes\""),
            "{}",
            err.message
        );
    }
}
