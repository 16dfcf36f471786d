//! `/v1/sessions`: create, list, get, delete and events of interactive Spark Connect sessions.
//! Handlers parse, call [`SessionService`](crate::service::sessions::SessionService) and map.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::AppState;
use super::error::ErrorBody;
use super::jobs::{body_error, body_format, list_params, state_param};
use crate::auth::Identity;
use crate::domain::{SessionEvent, SessionSpec, SessionState};
use crate::error::Error;
use crate::service::sessions::{Created, SessionDetail, SessionPage};
use crate::store::SessionFilter;

/// Create a session (a Spark Connect server for a team environment).
///
/// The body is a SessionSpec in JSON or YAML. A session of the same team, env and name that
/// exists is returned instead (200), started again if it had stopped or failed. The answer
/// carries the `sc://` connection string; the session is usable once READY.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions",
    request_body(content(
        (SessionSpec = "application/json"),
        (SessionSpec = "application/yaml"),
    )),
    responses(
        (status = 201, description = "Created", body = SessionDetail),
        (status = 200, description = "The existing session of that name", body = SessionDetail),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let format = body_format(&headers)?;
    let body = body.map_err(body_error)?;
    Ok(match state.sessions.create(&body, format, &caller).await? {
        Created::New(detail) => {
            super::created(format!("/v1/sessions/{}", detail.session.id), detail)
        }
        Created::Existing(detail) => (StatusCode::OK, Json(detail)).into_response(),
    })
}

/// List sessions, newest first.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    params(
        ("team" = Option<String>, Query), ("env" = Option<String>, Query),
        ("state" = Option<SessionState>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1-500, default 50"),
        ("page_token" = Option<String>, Query, description = "`nextPageToken` of the previous page"),
    ),
    responses((status = 200, body = SessionPage), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<SessionPage>, Error> {
    let (filter, token) = list_query(query.as_deref().unwrap_or_default())?;
    Ok(Json(
        state
            .sessions
            .list(filter, token.as_deref(), &caller)
            .await?,
    ))
}

/// Get a session and its connection string.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionDetail), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, Error> {
    Ok(Json(state.sessions.get(&id, &caller).await?))
}

/// Delete a session: its server is stopped and it never resumes. Deleting twice is fine.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionDetail), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, Error> {
    Ok(Json(state.sessions.delete(&id, &caller).await?))
}

/// A session's state changes, oldest first.
#[utoipa::path(get, path = "/v1/sessions/{id}/events", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = Vec<SessionEvent>), (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Json<Vec<SessionEvent>>, Error> {
    Ok(Json(state.sessions.events(&id, &caller).await?))
}

/// Parses `GET /v1/sessions` parameters; unknown ones are rejected.
fn list_query(query: &str) -> Result<(SessionFilter, Option<String>), Error> {
    let mut filter = SessionFilter::default();
    let (limit, token) = list_params(query, "team, env, state", |key, value| {
        match key {
            "team" => filter.team = Some(value),
            "env" => filter.env = Some(value),
            "state" => {
                filter.state = Some(state_param(
                    SessionState::parse(&value),
                    &value,
                    &SessionState::ALL.map(SessionState::as_str),
                )?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    filter.limit = limit.unwrap_or_default();
    Ok((filter, token))
}
