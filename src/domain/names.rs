//! Names with Kubernetes rules: DNS-1123 labels (team, env), the team namespace
//! `sjns-<team>-<env>`, and label keys and values.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The longest Kubernetes object name that is also a DNS label.
pub const DNS_LABEL_MAX: usize = 63;
/// What every team namespace's name starts with.
pub const NAMESPACE_PREFIX: &str = "sjns-";

/// A DNS-1123 label: lowercase alphanumerics and `-`, starting and ending alphanumeric,
/// at most 63 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "feature-eng")]
pub struct DnsLabel(String);

impl DnsLabel {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DnsLabel {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        dns_label_rule(&s)?;
        Ok(DnsLabel(s))
    }
}

impl From<DnsLabel> for String {
    fn from(label: DnsLabel) -> String {
        label.0
    }
}

impl std::fmt::Display for DnsLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the DNS-1123 label rule, saying which part of it `s` breaks.
pub fn dns_label_rule(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty (DNS-1123 label)".into());
    }
    if s.len() > DNS_LABEL_MAX {
        return Err(format!(
            "must be at most {DNS_LABEL_MAX} characters (DNS-1123 label), got {}",
            s.len()
        ));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !s.chars().all(ok_char) {
        return Err(format!(
            "{s:?} must contain only lowercase letters, digits and '-' (DNS-1123 label)"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!(
            "{s:?} must start and end with a letter or digit (DNS-1123 label)"
        ));
    }
    Ok(())
}

/// The namespace of a team's environment, `sjns-<team>-<env>`; rejected, never truncated, when
/// longer than a DNS label.
pub fn team_namespace(team: &DnsLabel, env: &DnsLabel) -> Result<String, String> {
    let name = format!("{NAMESPACE_PREFIX}{team}-{env}");
    if name.len() > DNS_LABEL_MAX {
        return Err(format!(
            "namespace {name:?} would be {} characters; team and env together must leave it at \
             most {DNS_LABEL_MAX} (shorten team or env)",
            name.len()
        ));
    }
    Ok(name)
}

/// Checks a Kubernetes label key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters of alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn label_key_rule(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid_prefix = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| dns_label_rule(part).is_ok());
        if !valid_prefix {
            return Err(format!(
                "label key prefix {prefix:?} must be a DNS subdomain (lowercase, dots, at most 253)"
            ));
        }
    }
    if name.is_empty() {
        return Err("label key name must not be empty".into());
    }
    label_value_rule(name).map_err(|_| {
        format!(
            "label key name {name:?} must be at most 63 characters of letters, digits, '-', '_' \
             or '.', starting and ending with a letter or digit"
        )
    })
}

/// Checks a Kubernetes label value: empty, or at most 63 characters of alphanumerics, `-`, `_`,
/// `.`, starting and ending alphanumeric.
pub fn label_value_rule(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if value.len() > DNS_LABEL_MAX
        || !value.chars().all(ok_char)
        || !ends_ok(value.chars().next())
        || !ends_ok(value.chars().last())
    {
        return Err(format!(
            "label value {value:?} must be at most 63 characters of letters, digits, '-', '_' or \
             '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(s: &str) -> DnsLabel {
        DnsLabel::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn dns_labels() {
        for good in ["a", "feature-eng", "x1", &"a".repeat(63)] {
            assert!(dns_label_rule(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "Team", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(dns_label_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn namespace_is_rejected_not_truncated() {
        assert_eq!(
            team_namespace(&label("feature-eng"), &label("prod")).unwrap(),
            "sjns-feature-eng-prod"
        );
        let err = team_namespace(&label(&"t".repeat(40)), &label(&"e".repeat(20))).unwrap_err();
        assert!(err.contains("66 characters"), "{err}");
    }

    #[test]
    fn label_keys_and_values() {
        assert!(label_key_rule("pipeline").is_ok());
        assert!(label_key_rule("example.com/owner").is_ok());
        assert!(label_key_rule("Example.com/owner").is_err());
        assert!(label_key_rule("a/b/c").is_err());
        assert!(label_value_rule("").is_ok());
        assert!(label_value_rule("v1.2_x").is_ok());
        assert!(label_value_rule("bad value").is_err());
    }
}
