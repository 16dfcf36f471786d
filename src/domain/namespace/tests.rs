use serde_json::json;

use super::*;

fn q(text: &str) -> Option<Quantity> {
    Some(Quantity::parse(text).unwrap())
}

fn policy() -> NamespacePolicy {
    NamespacePolicy {
        defaults: NamespaceResources {
            quota: QuotaSpec {
                cpu: q("8"),
                memory: q("32Gi"),
                pods: Some(50),
                other: BTreeMap::new(),
            },
            limits: LimitsSpec {
                default_request: Resources {
                    cpu: q("500m"),
                    memory: q("1Gi"),
                },
                max: Resources {
                    cpu: q("4"),
                    memory: q("16Gi"),
                },
            },
        },
        maxima: NamespaceResources {
            quota: QuotaSpec {
                cpu: q("64"),
                memory: q("256Gi"),
                pods: Some(500),
                other: BTreeMap::from([("requests.nvidia.com/gpu".into(), q("4").unwrap())]),
            },
            limits: LimitsSpec {
                default_request: Resources::default(),
                max: Resources {
                    cpu: q("16"),
                    memory: q("64Gi"),
                },
            },
        },
    }
}

fn parse(body: serde_json::Value) -> Result<NamespaceSpec, Error> {
    NamespaceSpec::parse(
        body.to_string().as_bytes(),
        Format::Json,
        "payments",
        "dev",
        &policy(),
    )
}

/// The field and message of the rejection of `body`.
fn rejection(body: serde_json::Value) -> (String, String) {
    match parse(body.clone()) {
        Err(Error::InvalidRequest { field, message }) => (
            field.unwrap_or_else(|| panic!("no field in {message}")),
            message,
        ),
        other => panic!("{body} was not rejected: {other:?}"),
    }
}

#[test]
fn an_empty_body_gets_every_default() {
    let spec = parse(json!({})).unwrap();
    assert_eq!(spec.namespace(), "sjns-payments-dev");
    assert_eq!(spec.quota.cpu, q("8"));
    assert_eq!(spec.quota.pods, Some(50));
    assert_eq!(spec.limits.max.memory, q("16Gi"));
    assert_eq!(spec.limits.default_request.cpu, q("500m"));
}

#[test]
fn given_values_are_kept_as_written() {
    let spec = parse(json!({
        "team": "payments",
        "quota": {"memory": "200Gi", "other": {"requests.nvidia.com/gpu": "2"}},
        "secrets": [{"name": "object-store"}],
        "egress": [{"cidr": "10.20.0.0/16", "ports": [443]}],
    }))
    .unwrap();
    assert_eq!(spec.quota.memory.unwrap().as_str(), "200Gi");
    assert_eq!(spec.quota.other["requests.nvidia.com/gpu"].as_str(), "2");
    assert_eq!(spec.secrets[0].name, "object-store");
}

#[test]
fn each_rule_names_its_field() {
    let cases = [
        (json!({"team": "other"}), "team: \"other\" differs"),
        (json!({"quota": {"cpu": "lots"}}), "quota.cpu: "),
        (
            json!({"quota": {"cpu": "65"}}),
            "quota.cpu: 65 is above the platform maximum 64",
        ),
        (json!({"quota": {"pods": 501}}), "quota.pods: 501 is above"),
        (
            json!({"quota": {"other": {"requests.nvidia.com/gpu": "5"}}}),
            "quota.other.requests.nvidia.com/gpu: 5 is above",
        ),
        (
            json!({"quota": {"other": {"Bad Key": "1"}}}),
            "quota.other.Bad Key: is not a resource name",
        ),
        (
            json!({"quota": {"other": {"requests.cpu": "1"}}}),
            "quota.other.requests.cpu: is set by quota.cpu",
        ),
        (
            json!({"limits": {"max": {"memory": "1Ti"}}}),
            "limits.max.memory: 1Ti is above",
        ),
        (
            json!({"limits": {"defaultRequest": {"cpu": "5"}}}),
            "limits.defaultRequest.cpu: 5 is above the namespace's per-container maximum 4",
        ),
        (
            json!({"limits": {"max": {"gpu": "1"}}}),
            "limits.max.gpu: unknown field",
        ),
        (json!({"secrets": [{"name": "Nope"}]}), "secrets[0].name"),
        (
            json!({"secrets": [{"name": "a"}, {"name": "a"}]}),
            "secrets[1].name: a is listed twice",
        ),
        (
            json!({"egress": [{"cidr": "10.0.0.0/33"}]}),
            "egress[0].cidr",
        ),
        (
            json!({"egress": [{"cidr": "10.0.0.0/8", "ports": [443, 0]}]}),
            "egress[0].ports[1]",
        ),
        (json!({"color": "blue"}), "color: unknown field"),
    ];
    for (body, expected) in cases {
        let (field, message) = rejection(body.clone());
        let (want_field, words) = expected.split_once(": ").unwrap_or((expected, ""));
        assert_eq!(field, want_field, "{body}: {message}");
        assert!(
            message.contains(words),
            "{body}: {message} (expected {words})"
        );
    }
}

#[test]
fn a_namespace_name_over_63_characters_is_rejected() {
    let body = json!({});
    let err = NamespaceSpec::parse(
        body.to_string().as_bytes(),
        Format::Json,
        &"t".repeat(40),
        &"e".repeat(20),
        &policy(),
    )
    .unwrap_err();
    assert_eq!(err.field(), Some("env"));
    assert!(err.to_string().contains("66 characters"), "{err}");
}

#[test]
fn cidrs() {
    for good in ["10.0.0.0/8", "0.0.0.0/0", "fd00::/8", "10.1.2.3/32"] {
        assert!(check_cidr(good).is_ok(), "{good}");
    }
    for bad in ["10.0.0.0", "10.0.0/8", "fd00::/129", "x/1", "10.0.0.0/-1"] {
        assert!(check_cidr(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_example_parses_within_the_default_policy() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/namespace.yaml");
    let body = std::fs::read(path).unwrap();
    let policy = crate::config::Config::default().namespaces.policy();
    let spec = NamespaceSpec::parse(&body, Format::Yaml, "payments", "dev", &policy).unwrap();
    assert_eq!(spec.quota.other["requests.storage"].as_str(), "500Gi");
}
