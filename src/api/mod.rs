//! The HTTP API (axum): routes, shared state, request metrics and the OpenAPI document.

mod advice;
mod audit;
mod auth;
pub mod error;
mod health;
mod jobs;
mod namespaces;
mod openapi;
mod sessions;
mod ui;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;

use crate::audit::Audit;
use crate::auth::Authenticator;
use crate::error::Error;
use crate::service::JobService;
use crate::service::namespaces::NamespaceService;
use crate::service::sessions::SessionService;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub jobs: JobService,
    pub sessions: SessionService,
    pub namespaces: NamespaceService,
    pub metrics: Arc<PrometheusHandle>,
    pub auth: Arc<Authenticator>,
    pub audit: Audit,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "sk8", description = "Control plane for running Apache Spark on Kubernetes."),
    paths(
        jobs::submit, jobs::list, jobs::get, jobs::cancel, jobs::events, jobs::logs,
        jobs::attempt,
        advice::get, advice::report,
        ui::to_slash,
        ui::root,
        ui::page,
        ui::session_to_slash,
        ui::session_root,
        ui::session_page,
        sessions::create, sessions::list, sessions::get, sessions::delete, sessions::events,
        namespaces::apply, namespaces::list, namespaces::get, namespaces::delete,
        audit::list,
        health::healthz, health::readyz, health::metrics, health::openapi,
    ),
    components(schemas(crate::service::sizing::DryRun)),
    tags(
        (name = "jobs", description = "Batch Spark jobs and their history"),
        (name = "advice", description = "Sizing advice from a job's past runs"),
        (name = "sessions", description = "Interactive Spark Connect sessions behind the gateway"),
        (name = "namespaces", description = "Team namespaces sjns-<team>-<env> and their guard rails"),
        (name = "audit", description = "Who did what to which resource, and how it ended"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// The size limits of a request.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    pub max_body_bytes: usize,
    /// The header section: names and values together.
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// The router with every route, limit and middleware.
pub fn router(state: AppState, limits: RequestLimits) -> Router {
    let max_body_bytes = limits.max_body_bytes;
    Router::new()
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/jobs/{id}/logs", get(jobs::logs))
        .route("/v1/jobs/{id}/attempts/{attempt}", get(jobs::attempt))
        .merge(ui::routes())
        .route("/v1/advice", get(advice::get))
        .route("/v1/advice/report", get(advice::report))
        .route("/v1/sessions", post(sessions::create).get(sessions::list))
        .route(
            "/v1/sessions/{id}",
            get(sessions::get).delete(sessions::delete),
        )
        .route("/v1/sessions/{id}/events", get(sessions::events))
        .route("/v1/namespaces", get(namespaces::list))
        .route(
            "/v1/namespaces/{team}/{env}",
            get(namespaces::get)
                .put(namespaces::apply)
                .delete(namespaces::delete),
        )
        .route("/v1/audit", get(audit::list))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(move |request, next| {
            reject_declared_oversize(max_body_bytes, request, next)
        }))
        .layer(middleware::from_fn(move |request, next| {
            reject_large_headers(limits, request, next)
        }))
        .layer(middleware::from_fn(record_request))
        .layer(middleware::from_fn(
            crate::telemetry::propagation::http_layer,
        ))
        .with_state(state)
}

/// 201 Created with the new resource's location and its JSON.
fn created(location: String, body: impl serde::Serialize) -> Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response()
}

async fn not_found() -> Error {
    Error::NotFound("no such route; GET /openapi.json lists the API".into())
}

async fn method_not_allowed() -> Response {
    use axum::response::IntoResponse;
    let body = error::ErrorBody {
        error: error::ErrorDetail {
            code: "method_not_allowed",
            message: "this route does not accept that method; GET /openapi.json lists the API"
                .into(),
            field: None,
            errors: Vec::new(),
        },
    };
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Answers 413 at once when `Content-Length` already says the body is too large, instead of
/// reading it first (the body limit alone only trips once that much has been uploaded).
async fn reject_declared_oversize(max_body_bytes: usize, request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(len) if len > max_body_bytes as u64 => Error::PayloadTooLarge(format!(
            "the request body ({len} bytes) is larger than http.maxBodyBytes ({max_body_bytes})"
        ))
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Answers 431 to a request with too many or too large headers, before any handler (or the
/// authentication) reads them.
async fn reject_large_headers(limits: RequestLimits, request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let message = if headers.len() > limits.max_headers {
        format!(
            "the request has {} headers, more than limits.maxHeaders ({})",
            headers.len(),
            limits.max_headers
        )
    } else if bytes > limits.max_header_bytes {
        format!(
            "the request's headers take {bytes} bytes, more than limits.maxHeaderBytes ({})",
            limits.max_header_bytes
        )
    } else {
        return next.run(request).await;
    };
    let body = error::ErrorBody {
        error: error::ErrorDetail {
            code: "headers_too_large",
            message,
            field: None,
            errors: Vec::new(),
        },
    };
    (
        axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        axum::Json(body),
    )
        .into_response()
}

/// Counts requests and records their latency by route template (never the raw path, which
/// would make one series per job id).
async fn record_request(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("sk8_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("sk8_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// The OpenAPI document as committed in `docs/openapi.json`.
pub fn openapi_json() -> String {
    let mut json = serde_json::to_string_pretty(&openapi::document())
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}
