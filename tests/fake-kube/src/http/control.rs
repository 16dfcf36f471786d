//! The fake's own control API, for tests that drive what a real cluster would produce:
//!
//! - `POST /fake/v1/namespaces/{namespace}/pods/{name}/log` appends the request body (text)
//!   to the pod's log, served by `GET .../pods/{name}/log`. 204 No Content, or a 404 Status
//!   when the pod does not exist.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::resources::lookup;
use crate::store::Target;

pub async fn append_log(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
    body: String,
) -> Response {
    let (pods, _) = lookup("", "v1", "pods").expect("pods are served");
    match state
        .store
        .append_log(&Target::item(pods, Some(&namespace), &name), &body)
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}
