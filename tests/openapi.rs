//! `docs/openapi.json` is generated from the code (utoipa) and committed; this fails when the
//! two drift apart. Regenerate with `SK8_UPDATE_OPENAPI=1 cargo test --test openapi` (or
//! `sk8 openapi > docs/openapi.json`) and commit the result.

#[test]
fn committed_openapi_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let generated = sk8::api::openapi_json();
    if std::env::var_os("SK8_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run `SK8_UPDATE_OPENAPI=1 cargo test --test openapi` and \
         commit it"
    );
}
