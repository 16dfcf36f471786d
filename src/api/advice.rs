//! `GET /v1/advice`: sizing advice for a job signature (team, env, name); `GET
//! /v1/advice/report`: what advice did for a team.

use axum::extract::{RawQuery, State};
use axum::{Extension, Json};

use super::AppState;
use super::error::ErrorBody;
use crate::advice::report::Report;
use crate::advice::{Advice, Profile};
use crate::auth::Identity;
use crate::error::Error;
use crate::service::advice::AdviceQuery;

/// Sizing advice for the next run of a job: from its last successful runs' summaries, each
/// recommendation with its rule, evidence, confidence and estimated saving per run.
#[utoipa::path(get, path = "/v1/advice", tag = "advice",
    params(("team" = String, Query), ("env" = String, Query),
           ("name" = String, Query, description = "The job's name, as in its spec"),
           ("profile" = Option<Profile>, Query,
            description = "conservative, balanced (default) or cost: how much headroom")),
    responses((status = 200, body = Advice), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<Advice>, Error> {
    let query = advice_query(query.as_deref().unwrap_or_default())?;
    Ok(Json(state.jobs.advice(&query, &caller).await?))
}

/// What sizing advice did for a team: recommendations given, applied and reverted, and the
/// GiB·s and core·s the applied ones saved (estimated per run, over the jobs that succeeded).
#[utoipa::path(get, path = "/v1/advice/report", tag = "advice",
    params(("team" = String, Query)),
    responses((status = 200, body = Report), (status = 400, body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<Report>, Error> {
    let team = report_query(query.as_deref().unwrap_or_default())?;
    Ok(Json(state.jobs.advice_report(&team, &caller).await?))
}

fn report_query(raw: &str) -> Result<String, Error> {
    let mut team = None;
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match key.as_ref() {
            "team" => team = Some(value.into_owned()),
            other => {
                return Err(Error::invalid(
                    other,
                    "is not a parameter; the report takes team",
                ));
            }
        }
    }
    team.ok_or_else(|| Error::invalid("team", "is required: the report is per team"))
}

fn advice_query(raw: &str) -> Result<AdviceQuery, Error> {
    let (mut team, mut env, mut name, mut profile) = (None, None, None, Profile::default());
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "team" => team = Some(value),
            "env" => env = Some(value),
            "name" => name = Some(value),
            "profile" => {
                profile = Profile::parse(&value).ok_or_else(|| {
                    Error::invalid(
                        "profile",
                        format!("must be conservative, balanced or cost, got {value:?}"),
                    )
                })?;
            }
            other => {
                return Err(Error::invalid(
                    other,
                    "is not a parameter; use team, env, name and profile",
                ));
            }
        }
    }
    let required = |value: Option<String>, field: &str| {
        value.ok_or_else(|| Error::invalid(field, "is required: advice is per team, env and name"))
    };
    Ok(AdviceQuery {
        team: required(team, "team")?,
        env: required(env, "env")?,
        name: required(name, "name")?,
        profile,
    })
}
