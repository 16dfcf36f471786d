//! Object metadata rules: name and label syntax (with kube-apiserver's wording), timestamps,
//! uids and `generateName` suffixes.

use serde_json::Value;

use crate::error::Cause;
use crate::resources::NameRule;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (`first` may narrow the first character).
fn is_dns_label(s: &str, first: fn(char) -> bool) -> bool {
    let ok_inner = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let ok_end = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.chars().next().is_some_and(first)
        && s.chars().last().is_some_and(ok_end)
        && s.chars().all(ok_inner)
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|part| is_dns_label(part, lower_alnum))
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, non-empty.
fn is_qualified_part(s: &str) -> bool {
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(inner)
}

/// Why `name` is not a valid `metadata.name` for a kind, in the real server's words.
pub fn name_problem(rule: NameRule, name: &str) -> Option<String> {
    match rule {
        NameRule::Subdomain if name.len() > 253 => {
            Some("must be no more than 253 characters".into())
        }
        NameRule::Subdomain if !is_subdomain(name) => Some(SUBDOMAIN_MSG.into()),
        NameRule::Label | NameRule::Label1035 if name.len() > 63 => {
            Some("must be no more than 63 characters".into())
        }
        NameRule::Label if !is_dns_label(name, lower_alnum) => Some(LABEL_MSG.into()),
        NameRule::Label1035 if !is_dns_label(name, |c| c.is_ascii_lowercase()) => {
            Some(LABEL_1035_MSG.into())
        }
        NameRule::PathSegment if name == "." || name == ".." => {
            Some(format!("may not be '{name}'"))
        }
        NameRule::PathSegment if name.contains(['/', '%']) => {
            Some("may not contain '/' or '%'".into())
        }
        _ => None,
    }
}

/// Why `key` is not a valid label or annotation key (`[prefix/]name`).
pub fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix.filter(|p| !is_subdomain(p) || p.is_empty()) {
        return Some(format!("prefix part {SUBDOMAIN_MSG} ({prefix:?})"));
    }
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    (!is_qualified_part(name)).then(|| QUALIFIED_NAME_MSG.to_string())
}

/// Why `value` is not a valid label value (empty is valid).
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!value.is_empty() && !is_qualified_part(value)).then(|| LABEL_VALUE_MSG.to_string())
}

/// Problems with `metadata.labels` and `metadata.annotations` keys and label values.
pub fn label_causes(metadata: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (map, check_values) in [("labels", true), ("annotations", false)] {
        let Some(entries) = metadata.get(map).and_then(Value::as_object) else {
            continue;
        };
        for (key, value) in entries {
            let field = format!("metadata.{map}");
            if let Some(why) = label_key_problem(key) {
                causes.push(Cause::invalid(
                    field.clone(),
                    &Value::String(key.clone()),
                    why,
                ));
            }
            let text = value.as_str();
            if text.is_none() {
                causes.push(Cause::invalid(
                    format!("{field}.{key}"),
                    value,
                    "must be a string",
                ));
            } else if let Some(why) = text.filter(|_| check_values).and_then(label_value_problem) {
                causes.push(Cause::invalid(field, value, why));
            }
        }
    }
    causes
}

/// The current time as Kubernetes writes it: RFC 3339, whole seconds, UTC.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes
}

/// A random (version 4) UUID, the form real uids take.
pub fn new_uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The five characters the real server appends to `generateName`.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_the_kind_rule() {
        assert_eq!(name_problem(NameRule::Subdomain, "spark-pi.v1"), None);
        assert!(
            name_problem(NameRule::Subdomain, "Spark_Pi")
                .unwrap()
                .contains("RFC 1123 subdomain")
        );
        assert!(
            name_problem(NameRule::Label, "a.b")
                .unwrap()
                .contains("RFC 1123 label")
        );
        assert!(
            name_problem(NameRule::Label, &"a".repeat(64))
                .unwrap()
                .contains("63")
        );
        assert!(
            name_problem(NameRule::Label1035, "1abc")
                .unwrap()
                .contains("DNS-1035")
        );
        assert_eq!(name_problem(NameRule::PathSegment, "system:spark"), None);
        assert!(name_problem(NameRule::PathSegment, "a/b").is_some());
    }

    #[test]
    fn label_rules() {
        assert_eq!(label_key_problem("spark.operator/spark-app-name"), None);
        assert!(
            label_key_problem("Bad_Prefix/x")
                .unwrap()
                .starts_with("prefix part")
        );
        assert!(label_key_problem("-x").is_some());
        assert_eq!(label_value_problem(""), None);
        assert!(label_value_problem("a b").is_some());
        let causes = label_causes(&json!({"labels": {"ok": "fine", "bad": "-x", "n": 1}}));
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["metadata.labels", "metadata.labels.n"]);
    }

    #[test]
    fn uids_look_like_uuids() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
        assert_eq!(name_suffix().len(), 5);
    }
}
