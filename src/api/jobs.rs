//! `/v1/jobs`: submit, list, get, cancel, events and logs. Handlers parse the request into
//! domain types, call [`JobService`](crate::service::JobService) and map the result.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::AppState;
use super::error::ErrorBody;
use crate::auth::Identity;
use crate::domain::jobspec::Format;
use crate::domain::{Event, JobSpec, JobState};
use crate::error::Error;
use crate::service::{AttemptDetail, DEFAULT_PAGE, JobDetail, JobPage, MAX_PAGE, Submitted};
use crate::store::JobFilter;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Submit a job.
///
/// The body is a JobSpec in JSON, or in YAML with `Content-Type: application/yaml`. The job is
/// stored before anything reaches a backend. With an `Idempotency-Key`, a retry with the same
/// body returns the original job (200) and a different body is a 409. With `dryRun=true`,
/// nothing is stored: the answer (200) is the effective spec, with remembered sizes and
/// sizing advice applied, and what sizing did.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body(content(
        (JobSpec = "application/json"),
        (JobSpec = "application/yaml"),
    )),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this submission safe"),
           ("dryRun" = Option<bool>, Query,
            description = "`true`: validate and show the effective spec without creating a job")),
    responses(
        (status = 201, description = "Created", body = crate::domain::Job),
        (status = 200, description = "The job this Idempotency-Key created before", body = crate::domain::Job),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
    ))]
pub async fn submit(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Error> {
    let dry_run = dry_run(query.as_deref().unwrap_or_default())?;
    let format = body_format(&headers)?;
    let key = idempotency_key(&headers)?;
    let body = body.map_err(body_error)?;
    if dry_run {
        let effective = state.jobs.dry_run(&body, format, &caller).await?;
        return Ok((StatusCode::OK, Json(effective)).into_response());
    }
    Ok(
        match state.jobs.submit(&body, format, key, &caller).await? {
            Submitted::Created(job) => super::created(format!("/v1/jobs/{}", job.id), job),
            Submitted::Existing(job) => (StatusCode::OK, Json(job)).into_response(),
        },
    )
}

/// `dryRun` of a submit's query: `true` or `false`; nothing else is a parameter.
fn dry_run(raw: &str) -> Result<bool, Error> {
    let mut dry_run = false;
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match (key.as_ref(), value.as_ref()) {
            ("dryRun", "true") => dry_run = true,
            ("dryRun", "false") => dry_run = false,
            ("dryRun", other) => {
                return Err(Error::invalid(
                    "dryRun",
                    format!("must be true or false, got {other:?}"),
                ));
            }
            (other, _) => {
                return Err(Error::invalid(
                    other,
                    "is not a parameter of a submit; the only one is dryRun",
                ));
            }
        }
    }
    Ok(dry_run)
}

/// List jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(
        ("team" = Option<String>, Query), ("env" = Option<String>, Query),
        ("state" = Option<JobState>, Query), ("name" = Option<String>, Query),
        ("label" = Option<Vec<String>>, Query, description = "`key=value`; repeat to require several"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1-500, default 50"),
        ("page_token" = Option<String>, Query, description = "`nextPageToken` of the previous page"),
    ),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Json<JobPage>, Error> {
    let (filter, token) = list_query(query.as_deref().unwrap_or_default())?;
    Ok(Json(
        state.jobs.list(filter, token.as_deref(), &caller).await?,
    ))
}

/// Get a job with its attempts and links.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobDetail), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, Error> {
    Ok(Json(state.jobs.get(&id, &caller).await?))
}

/// Cancel a queued or running job. Cancelling twice is fine; cancelling a finished job is a 409.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = crate::domain::Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Json<crate::domain::Job>, Error> {
    Ok(Json(state.jobs.cancel(&id, &caller).await?))
}

/// A job's state transitions, oldest first.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Event>), (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Event>>, Error> {
    Ok(Json(state.jobs.events(&id, &caller).await?))
}

/// One attempt's whole run record: summary of its event log, evidence of how it ended,
/// archived logs and links.
#[utoipa::path(get, path = "/v1/jobs/{id}/attempts/{attempt}", tag = "jobs",
    params(("id" = String, Path), ("attempt" = u32, Path)),
    responses((status = 200, body = AttemptDetail), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn attempt(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path((id, attempt)): Path<(String, String)>,
) -> Result<Json<AttemptDetail>, Error> {
    Ok(Json(state.jobs.attempt(&id, &attempt, &caller).await?))
}

/// The driver log of an attempt (`attempt=N`, else the latest that started): live from the
/// backend while it runs, archived after. `follow=true` streams until the attempt ends.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", tag = "jobs",
    params(("id" = String, Path), ("follow" = Option<bool>, Query),
           ("attempt" = Option<u32>, Query, description = "Which attempt; default the latest")),
    responses((status = 200, content_type = "text/plain"), (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let (follow, attempt) = log_params(query.as_deref().unwrap_or_default())?;
    let stream = state
        .jobs
        .logs(&id, attempt.as_deref(), follow, &caller)
        .await?;
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    Ok((headers, Body::from_stream(stream)).into_response())
}

pub(super) fn body_format(headers: &HeaderMap) -> Result<Format, Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Format::Json);
    };
    let media = value.to_str().unwrap_or_default();
    let media = media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => Ok(Format::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Ok(Format::Yaml),
        other => Err(Error::UnsupportedMediaType(format!(
            "Content-Type {other:?} is not supported: send application/json or application/yaml"
        ))),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Error> {
    headers
        .get(IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| Error::invalid("Idempotency-Key", "must be printable ASCII"))
        })
        .transpose()
}

pub(super) fn body_error(rejection: BytesRejection) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge("the request body is larger than http.maxBodyBytes allows".into())
    } else {
        Error::InvalidRequest {
            field: None,
            message: format!("cannot read the request body: {rejection}"),
        }
    }
}

/// Parses `GET /v1/jobs` parameters; unknown ones are rejected so typos don't silently list
/// everything.
fn list_query(query: &str) -> Result<(JobFilter, Option<String>), Error> {
    let mut filter = JobFilter::default();
    let filters = "team, env, state, name, label";
    let (limit, token) = list_params(query, filters, |key, value| {
        match key {
            "team" => filter.team = Some(value),
            "env" => filter.env = Some(value),
            "name" => filter.name = Some(value),
            "state" => {
                filter.state = Some(state_param(
                    JobState::parse(&value),
                    &value,
                    &JobState::ALL.map(JobState::as_str),
                )?)
            }
            "label" => {
                let (k, v) = value.split_once('=').ok_or_else(|| {
                    Error::invalid("label", format!("{value:?} must be key=value"))
                })?;
                filter.labels.push((k.to_owned(), v.to_owned()));
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    filter.limit = limit.unwrap_or(DEFAULT_PAGE);
    Ok((filter, token))
}

/// A `state` filter's value, or a refusal listing the states.
pub(super) fn state_param<T>(parsed: Option<T>, value: &str, states: &[&str]) -> Result<T, Error> {
    parsed.ok_or_else(|| {
        Error::invalid(
            "state",
            format!("{value:?} is not one of {}", states.join(", ")),
        )
    })
}

/// A list's query string: `limit` and `page_token` (returned) for every list, each other key
/// to `filter`, which takes it (true) or does not know it (false); an unknown key is refused,
/// naming the list's `filters`.
pub(super) fn list_params(
    query: &str,
    filters: &str,
    mut filter: impl FnMut(&str, String) -> Result<bool, Error>,
) -> Result<(Option<u32>, Option<String>), Error> {
    let (mut limit, mut token) = (None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "limit" => limit = Some(limit_param(&value)?),
            "page_token" => token = Some(value),
            other if filter(other, value)? => {}
            other => {
                return Err(Error::invalid(
                    other,
                    format!("is not a filter; use {filters}, limit or page_token"),
                ));
            }
        }
    }
    Ok((limit, token))
}

/// A page size: 1 to [`MAX_PAGE`].
pub(super) fn limit_param(value: &str) -> Result<u32, Error> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| Error::invalid("limit", format!("must be a number from 1 to {MAX_PAGE}")))
}

/// The only parameter of a query: a boolean flag named `name` (false when absent).
/// `follow` and `attempt` of the logs endpoint.
fn log_params(query: &str) -> Result<(bool, Option<String>), Error> {
    let mut follow = String::new();
    let mut attempt = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "follow" => follow = format!("follow={value}"),
            "attempt" => attempt = Some(value.into_owned()),
            other => {
                return Err(Error::invalid(
                    other,
                    "is not a parameter; use follow or attempt",
                ));
            }
        }
    }
    Ok((bool_param(&follow, "follow")?, attempt))
}

pub(super) fn bool_param(query: &str, name: &str) -> Result<bool, Error> {
    let mut flag = false;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match (key.as_ref() == name, value.as_ref()) {
            (true, "true" | "1") => flag = true,
            (true, "false" | "0") => flag = false,
            (true, _) => return Err(Error::invalid(name, "must be true or false")),
            (false, _) => {
                return Err(Error::invalid(
                    key.as_ref(),
                    format!("is not a parameter; use {name}"),
                ));
            }
        }
    }
    Ok(flag)
}
