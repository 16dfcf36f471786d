//! `/v1/namespaces`: apply, get, list and delete team namespaces. Handlers parse, call
//! [`NamespaceService`](crate::service::namespaces::NamespaceService) and map.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::AppState;
use super::error::ErrorBody;
use super::jobs::{body_error, body_format, bool_param, list_params};
use crate::auth::Identity;
use crate::domain::NamespaceSpec;
use crate::error::Error;
use crate::service::namespaces::{Applied, NamespaceDetail, NamespacePage};
use crate::store::NamespaceFilter;

/// Create or update the namespace `sjns-<team>-<env>`.
///
/// The body is a NamespaceSpec in JSON or YAML (`team` and `env` may be left out; if given they
/// must match the URL). What it leaves out takes the platform's defaults; nothing may exceed the
/// platform's maxima. The spec is stored, then applied with server-side apply on the team's
/// clusters: applying the same spec again writes nothing, and repairs any drift.
#[utoipa::path(put, path = "/v1/namespaces/{team}/{env}", tag = "namespaces",
    params(("team" = String, Path), ("env" = String, Path)),
    request_body(content(
        (NamespaceSpec = "application/json"),
        (NamespaceSpec = "application/yaml"),
    )),
    responses(
        (status = 201, description = "Created", body = NamespaceDetail),
        (status = 200, description = "Updated, or unchanged", body = NamespaceDetail),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn apply(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path((team, env)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let format = body_format(&headers)?;
    let body = body.map_err(body_error)?;
    Ok(
        match state
            .namespaces
            .apply(&team, &env, &body, format, &caller)
            .await?
        {
            Applied::Created(detail) => {
                super::created(format!("/v1/namespaces/{team}/{env}"), detail)
            }
            Applied::Existing(detail) => (StatusCode::OK, Json(detail)).into_response(),
        },
    )
}

/// Get a namespace: its spec, what each cluster holds of it, and whether they differ.
#[utoipa::path(get, path = "/v1/namespaces/{team}/{env}", tag = "namespaces",
    params(("team" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = NamespaceDetail), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path((team, env)): Path<(String, String)>,
) -> Result<Json<NamespaceDetail>, Error> {
    Ok(Json(state.namespaces.get(&team, &env, &caller).await?))
}

/// List namespaces by name (specs only; get one to see its clusters).
#[utoipa::path(get, path = "/v1/namespaces", tag = "namespaces",
    params(
        ("team" = Option<String>, Query), ("env" = Option<String>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1-500, default 50"),
        ("page_token" = Option<String>, Query, description = "`nextPageToken` of the previous page"),
    ),
    responses((status = 200, body = NamespacePage), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<NamespacePage>, Error> {
    let (filter, token) = list_query(query.as_deref().unwrap_or_default())?;
    Ok(Json(
        state
            .namespaces
            .list(filter, token.as_deref(), &caller)
            .await?,
    ))
}

/// Delete a namespace and everything in it from its clusters. Refused (409) while jobs or
/// sessions run in it, unless `force=true`: they are then cancelled (and deleted) first.
#[utoipa::path(delete, path = "/v1/namespaces/{team}/{env}", tag = "namespaces",
    params(("team" = String, Path), ("env" = String, Path), ("force" = Option<bool>, Query)),
    responses(
        (status = 200, body = NamespaceDetail), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path((team, env)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<NamespaceDetail>, Error> {
    let force = bool_param(query.as_deref().unwrap_or_default(), "force")?;
    Ok(Json(
        state.namespaces.delete(&team, &env, force, &caller).await?,
    ))
}

fn list_query(query: &str) -> Result<(NamespaceFilter, Option<String>), Error> {
    let mut filter = NamespaceFilter::default();
    let (limit, token) = list_params(query, "team, env", |key, value| {
        match key {
            "team" => filter.team = Some(value),
            "env" => filter.env = Some(value),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    filter.limit = limit.unwrap_or_default();
    Ok((filter, token))
}
