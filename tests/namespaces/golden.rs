//! The rendered objects of a representative team namespace against their golden files.

use serde_json::json;

use super::common;
use super::{b64, spec};

/// The objects of a representative namespace, one golden file each in
/// `tests/golden/namespace/` (validated against the Kubernetes schemas offline by
/// `scripts/validate-deploy.sh`). Regenerate after an intended change with
/// `SK8_UPDATE_GOLDEN=1 cargo test --test namespaces rendered` and review the diff.
#[test]
fn rendered_objects_match_their_goldens() {
    use sk8::backend::kubernetes::namespaces::render::{self, NamespaceSettings, SecretSource};
    let mut config = sk8::config::NamespacesConfig::default();
    config.network.extra_egress = serde_json::from_value(json!([{"cidr": "10.0.0.0/8"}])).unwrap();
    let spec = sk8::domain::NamespaceSpec::parse(
        spec().to_string().as_bytes(),
        sk8::domain::jobspec::Format::Json,
        "payments",
        "dev",
        &config.policy(),
    )
    .unwrap();
    let settings = NamespaceSettings {
        namespaces: config,
        driver_service_account: "sk8-spark-driver".into(),
    };
    let source = SecretSource {
        name: "object-store".into(),
        type_: Some("Opaque".into()),
        data: [("access-key".to_owned(), json!(b64("example")))].into(),
    };
    let update = std::env::var_os("SK8_UPDATE_GOLDEN").is_some();
    let dir = common::repo_file("tests/golden/namespace");
    let mut stale = Vec::new();
    for object in render::objects(&spec, &settings, &[source]) {
        let file = format!("{}-{}.json", object.kind.to_lowercase(), object.name);
        let rendered = serde_json::to_string_pretty(&object.manifest).unwrap() + "\n";
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(&file), &rendered).unwrap();
        } else if std::fs::read_to_string(dir.join(&file)).ok().as_deref() != Some(&rendered) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "goldens differ: {stale:?}; run SK8_UPDATE_GOLDEN=1 cargo test --test namespaces \
         rendered and review the diff"
    );
}
