//! Label and field selectors (`labelSelector=`, `fieldSelector=`) with the real grammar:
//! `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k` for labels, and
//! `path=v`, `path==v`, `path!=v` for the fields a kind supports.

use serde_json::Value;

use crate::meta::{label_key_problem, label_value_problem};
use crate::resources::ResourceKind;

#[derive(Debug, Clone, PartialEq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelRequirement>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_outside_parens(text) {
            let part = part.trim();
            if !part.is_empty() {
                requirements.push(parse_label_requirement(part)?);
            }
        }
        Ok(LabelSelector(requirements))
    }

    /// Whether an object with these `metadata.labels` is selected.
    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelRequirement::Equals(k, v) => get(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas that are not inside `( )`, so `a in (x,y),b` is two requirements.
fn split_outside_parens(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_label_requirement(part: &str) -> Result<LabelRequirement, String> {
    let bad = |why: String| format!("unable to parse requirement: {part:?}: {why}");
    if let Some(key) = part.strip_prefix('!') {
        return Ok(LabelRequirement::NotExists(
            checked_key(key.trim()).map_err(bad)?,
        ));
    }
    let (key, op, rest) = split_operator(part).ok_or_else(|| bad("unknown operator".into()))?;
    let key = checked_key(key).map_err(bad)?;
    Ok(match op {
        "" => LabelRequirement::Exists(key),
        "=" | "==" => LabelRequirement::Equals(key, checked_value(rest).map_err(bad)?),
        "!=" => LabelRequirement::NotEquals(key, checked_value(rest).map_err(bad)?),
        "in" => LabelRequirement::In(key, value_set(rest).map_err(bad)?),
        _ => LabelRequirement::NotIn(key, value_set(rest).map_err(bad)?),
    })
}

/// `key op rest`, where op is one of `=`, `==`, `!=`, `in`, `notin` or empty (existence).
fn split_operator(part: &str) -> Option<(&str, &'static str, &str)> {
    for op in ["!=", "==", "="] {
        if let Some((key, rest)) = part.split_once(op) {
            return Some((key.trim(), op, rest.trim()));
        }
    }
    let Some((key, rest)) = part.split_once(char::is_whitespace) else {
        return Some((part, "", ""));
    };
    let rest = rest.trim_start();
    for op in ["notin", "in"] {
        if let Some(set) = rest
            .strip_prefix(op)
            .filter(|s| s.trim_start().starts_with('('))
        {
            return Some((key, op, set.trim()));
        }
    }
    None
}

fn checked_key(key: &str) -> Result<String, String> {
    match label_key_problem(key) {
        None => Ok(key.to_string()),
        Some(why) => Err(format!("invalid label key {key:?}: {why}")),
    }
}

fn checked_value(value: &str) -> Result<String, String> {
    match label_value_problem(value) {
        None => Ok(value.to_string()),
        Some(why) => Err(format!("invalid label value {value:?}: {why}")),
    }
}

fn value_set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or("expected a parenthesised set of values")?;
    inner.split(',').map(|v| checked_value(v.trim())).collect()
}

/// A parsed `fieldSelector`: every term must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `path=value` terms; paths other than `metadata.name`, `metadata.namespace` and
    /// the kind's own field labels are refused, as the real server does.
    pub fn parse(text: &str, kind: &ResourceKind) -> Result<Self, String> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = part.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (p, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let path = path.trim();
            let supported = ["metadata.name", "metadata.namespace"].contains(&path)
                || kind.field_labels.contains(&path);
            if !supported {
                return Err(format!("field label not supported: {path}"));
            }
            terms.push((path.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let found = path
                .split('.')
                .try_fold(object, |v, key| v.get(key))
                .and_then(Value::as_str)
                .unwrap_or("");
            (found == value) == *equal
        })
    }
}

/// Both selectors of a list or watch request.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selector {
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        self.labels.matches(labels) && self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;
    use serde_json::json;

    fn selects(selector: &str, labels: Value) -> bool {
        LabelSelector::parse(selector)
            .unwrap()
            .matches(labels.as_object())
    }

    #[test]
    fn equality_operators() {
        let labels = json!({"app": "pi", "tier": "batch"});
        assert!(selects("app=pi", labels.clone()));
        assert!(selects("app==pi,tier=batch", labels.clone()));
        assert!(!selects("app=other", labels.clone()));
        assert!(selects("app!=other", labels.clone()));
        assert!(
            selects("missing!=x", labels.clone()),
            "!= selects objects without the key"
        );
        assert!(!selects("app!=pi", labels));
    }

    #[test]
    fn set_operators() {
        let labels = json!({"env": "prod"});
        assert!(selects("env in (dev, prod)", labels.clone()));
        assert!(!selects("env in (dev)", labels.clone()));
        assert!(selects("env notin (dev,qa)", labels.clone()));
        assert!(
            selects("other notin (dev)", labels.clone()),
            "notin selects objects without the key"
        );
        assert!(
            selects("env in (prod),env", labels.clone()),
            "commas inside sets do not split"
        );
    }

    #[test]
    fn existence_operators() {
        let labels = json!({"spark-role": "driver"});
        assert!(selects("spark-role", labels.clone()));
        assert!(selects("!executor", labels.clone()));
        assert!(!selects("!spark-role", labels.clone()));
        assert!(
            selects("", labels.clone()),
            "the empty selector selects everything"
        );
        assert!(!selects("spark-role", Value::Null), "no labels at all");
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in ["app=pi pi", "a b", "env in dev", "-bad=x", "k=v!"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
        assert!(LabelSelector::parse("spark.operator/spark-app-name=pi").is_ok());
    }

    #[test]
    fn field_selectors() {
        let (pods, _) = lookup("", "v1", "pods").unwrap();
        let pod =
            json!({"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}});
        let sel = |s: &str| FieldSelector::parse(s, pods).unwrap().matches(&pod);
        assert!(sel("metadata.name=a"));
        assert!(sel("metadata.name==a,metadata.namespace=ns"));
        assert!(!sel("metadata.name!=a"));
        assert!(sel("status.phase=Running"));
        assert!(
            sel("spec.nodeName="),
            "a missing field compares as the empty string"
        );
        let err = FieldSelector::parse("spec.foo=x", pods).unwrap_err();
        assert_eq!(err, "field label not supported: spec.foo");
    }
}
