//! The HTTP surface: the router, discovery and OpenAPI endpoints; resource verbs live in
//! [`resources`], pod logs in [`logs`], the fake's control API in [`control`].

mod control;
mod logs;
mod params;
mod resources;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::discovery;
use crate::error::ApiError;
use crate::openapi;
use crate::store::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    /// Cancelled on shutdown: ends watches and log follows so the server can drain.
    pub shutdown: CancellationToken,
    pub bookmark_every: Duration,
    pub outage: Arc<Outage>,
}

/// A test's control over the fake's availability: while unreachable, every API request gets
/// 503; cutting ends every open watch (as a dropped connection or an API server restart would).
pub struct Outage {
    reachable: AtomicBool,
    /// Requests are taken and not answered (until it speaks again).
    silent: AtomicBool,
    spoke: tokio::sync::Notify,
    /// The token open watches end on; replaced by a fresh one at every cut.
    watches: Mutex<CancellationToken>,
    shutdown: CancellationToken,
}

impl Outage {
    pub fn new(shutdown: CancellationToken) -> Self {
        Outage {
            reachable: AtomicBool::new(true),
            silent: AtomicBool::new(false),
            spoke: tokio::sync::Notify::new(),
            watches: Mutex::new(shutdown.child_token()),
            shutdown,
        }
    }

    pub fn set_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::SeqCst);
        if !reachable {
            self.cut_watches();
        }
    }

    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
        if !silent {
            self.spoke.notify_waiters();
        }
    }

    /// Holds a request while the server plays silent (or until it shuts down).
    async fn hold_while_silent(&self) {
        loop {
            let spoke = self.spoke.notified();
            if !self.silent.load(Ordering::SeqCst) {
                return;
            }
            tokio::select! {
                _ = spoke => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    fn cut_watches(&self) {
        let mut token = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        token.cancel();
        *token = self.shutdown.child_token();
    }

    /// What a new watch ends on: shutdown or the next cut.
    pub fn watch_token(&self) -> CancellationToken {
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// 503 for the API while the test's outage lasts; the `/fake` control API stays up.
async fn gate(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let control = request.uri().path().starts_with("/fake/");
    if !control {
        state.outage.hold_while_silent().await;
    }
    if control || state.outage.reachable.load(Ordering::SeqCst) {
        next.run(request).await
    } else {
        ApiError::unavailable().into_response()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async { axum::Json(discovery::version()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/api", get(core_discovery))
        .route("/apis", get(group_discovery))
        .route("/api/v1", get(|| async { group_version("", "v1") }))
        .route("/apis/{group}", get(group))
        .route(
            "/apis/{group}/{version}",
            get(|Path((g, v)): Path<(String, String)>| async move { group_version(&g, &v) }),
        )
        .route("/api/v1/{*rest}", any(resources::core))
        .route("/apis/{group}/{version}/{*rest}", any(resources::grouped))
        .route(
            "/openapi/v3",
            get(|| async { axum::Json(openapi::index()) }),
        )
        .route("/openapi/v3/{*path}", get(openapi_document))
        .route(
            "/fake/v1/namespaces/{namespace}/pods/{name}/log",
            post(control::append_log),
        )
        .fallback(|| async { ApiError::no_route() })
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One debug line per request (`RUST_LOG=sk8_fake_kube=debug`): what a client asked and got.
async fn log_request(request: Request, next: Next) -> Response {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let response = next.run(request).await;
    tracing::debug!(%method, %uri, status = response.status().as_u16(), "request");
    response
}

fn json_with_type(body: &Value, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn accepts_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(discovery::wants_aggregated)
}

async fn core_discovery(headers: HeaderMap) -> Response {
    if accepts_aggregated(&headers) {
        return json_with_type(
            &discovery::aggregated(true),
            discovery::AGGREGATED_CONTENT_TYPE,
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    axum::Json(discovery::core_versions(host)).into_response()
}

async fn group_discovery(headers: HeaderMap) -> Response {
    if accepts_aggregated(&headers) {
        return json_with_type(
            &discovery::aggregated(false),
            discovery::AGGREGATED_CONTENT_TYPE,
        );
    }
    axum::Json(discovery::group_list()).into_response()
}

async fn group(Path(name): Path<String>) -> Response {
    let groups = discovery::group_list();
    let found = groups["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == name.as_str()));
    match found {
        Some(group) => {
            let mut group = group.clone();
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            axum::Json(group).into_response()
        }
        None => ApiError::no_route().into_response(),
    }
}

fn group_version(group: &str, version: &str) -> Response {
    match discovery::resource_list(group, version) {
        Some(list) => axum::Json(list).into_response(),
        None => ApiError::no_route().into_response(),
    }
}

async fn openapi_document(Path(path): Path<String>) -> Response {
    match openapi::documents().get(path.trim_matches('/')) {
        Some(doc) => {
            let mut response = (StatusCode::OK, doc.json.clone()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // Documents never change while the server runs; the hash in the URL is the key.
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, immutable"),
            );
            response
        }
        None => ApiError::no_route().into_response(),
    }
}
