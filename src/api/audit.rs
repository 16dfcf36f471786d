//! `/v1/audit`: the audit log, newest first, for team admins (their teams' events) and
//! platform admins (every event). The handler parses the query and calls [`Audit::list`].
//!
//! [`Audit::list`]: crate::audit::Audit::list

use axum::extract::{RawQuery, State};
use axum::{Extension, Json};

use super::AppState;
use super::error::ErrorBody;
use super::jobs::list_params;
use crate::audit::AuditPage;
use crate::auth::Identity;
use crate::error::Error;
use crate::store::AuditFilter;

/// Read the audit log: who did what to which resource, and how it ended.
///
/// Team admins see their teams' events; platform admins see every event, including refusals
/// of unauthenticated callers (which name no team).
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(
        ("team" = Option<String>, Query), ("actor" = Option<String>, Query),
        ("action" = Option<String>, Query, description = "`job.submit`, `session.delete`, `http.denied`, …"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1-500, default 50"),
        ("page_token" = Option<String>, Query, description = "`nextPageToken` of the previous page"),
    ),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditPage>, Error> {
    let (filter, token) = list_query(query.as_deref().unwrap_or_default())?;
    Ok(Json(
        state.audit.list(filter, token.as_deref(), &caller).await?,
    ))
}

fn list_query(query: &str) -> Result<(AuditFilter, Option<String>), Error> {
    let mut filter = AuditFilter::default();
    let (limit, token) = list_params(query, "team, actor, action", |key, value| {
        match key {
            "team" => filter.team = Some(value),
            "actor" => filter.actor = Some(value),
            "action" => filter.action = Some(value),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    filter.limit = limit.unwrap_or_default();
    Ok((filter, token))
}
