//! Continue tokens for paged lists: the list's resourceVersion and the last key returned,
//! base64 JSON like the real server's. A token older than the watch history expires (410).

use base64::Engine;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

pub(super) fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let token = json!({"rv": rv, "start": [namespace, name]});
    base64::engine::general_purpose::STANDARD.encode(token.to_string())
}

/// A continue token: the list's resourceVersion and the last key returned.
pub(super) fn decode_continue(
    token: &str,
    compacted: u64,
) -> ApiResult<(u64, Option<(String, String)>)> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let token: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let rv = token["rv"].as_u64().ok_or_else(invalid)?;
    let start = (token["start"][0].as_str(), token["start"][1].as_str());
    let (Some(namespace), Some(name)) = start else {
        return Err(invalid());
    };
    if rv < compacted {
        return Err(ApiError::expired(
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter.",
        ));
    }
    Ok((rv, Some((namespace.to_string(), name.to_string()))))
}
