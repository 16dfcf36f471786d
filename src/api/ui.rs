//! The live Spark UI of a running job, served through sk8 at `/v1/jobs/{id}/ui/` (and of a
//! session's Apache Spark server at `/v1/sessions/{id}/ui/`): a reverse proxy to the driver's
//! UI port, behind sk8's own authentication and authorization (a caller
//! who may not see the job gets its 404). Drivers are reachable from sk8 (the team
//! NetworkPolicy lets sk8 in) but not from a person's browser, and the driver's own address
//! changes with every attempt; the proxy path does not.
//!
//! Spark makes its pages' links absolute under the prefix it is given in the
//! `X-Forwarded-Context` header (`UIUtils.uiRoot`), so pages are passed on as they are; only
//! redirects, which Spark makes absolute to its own address, are turned back into paths under
//! the prefix. Only GET and HEAD are proxied: the UI's kill buttons stay off through sk8 (a
//! job is cancelled with `POST /v1/jobs/{id}/cancel`, audited).

use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Router};

use super::AppState;
use crate::auth::Identity;
use crate::error::Error;

/// Pages are small; a driver that does not answer within this is reported, not waited on.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Response headers passed back from the driver (hop-by-hop and cookie headers are not).
const PASSED_ON: [header::HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CACHE_CONTROL,
    header::LAST_MODIFIED,
    header::ETAG,
];

static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(UPSTREAM_TIMEOUT)
        // Redirects go back to the browser, rewritten under the prefix.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client builds")
});

/// The proxy's routes, for jobs and sessions: `/ui` (redirected to `/ui/`, so relative links
/// resolve), `/ui/` and everything under it.
pub fn routes() -> Router<AppState> {
    use axum::routing::get;
    Router::new()
        .route("/v1/jobs/{id}/ui", get(to_slash))
        .route("/v1/jobs/{id}/ui/", get(root))
        .route("/v1/jobs/{id}/ui/{*path}", get(page))
        .route("/v1/sessions/{id}/ui", get(session_to_slash))
        .route("/v1/sessions/{id}/ui/", get(session_root))
        .route("/v1/sessions/{id}/ui/{*path}", get(session_page))
}

/// Relative to `…/{id}/ui`, `ui/` is `…/{id}/ui/`: no id goes into the header (one with a
/// newline would not fit there), and sk8 behind a path prefix still works.
fn slash() -> Redirect {
    Redirect::permanent("ui/")
}

/// The live Spark UI's start page without its slash: redirected to `/v1/jobs/{id}/ui/`.
#[utoipa::path(get, path = "/v1/jobs/{id}/ui", tag = "jobs", params(("id" = String, Path)),
    responses((status = 308, description = "To /v1/jobs/{id}/ui/")))]
pub async fn to_slash() -> Redirect {
    slash()
}

/// The live Spark UI's start page (`links.sparkUi` of a running job), proxied to its driver
/// behind sk8's authentication. 409 once the job is not running.
#[utoipa::path(get, path = "/v1/jobs/{id}/ui/", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, description = "The Spark UI's page, as the driver serves it"),
              (status = 302, description = "A redirect within the UI"),
              (status = 404, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody, description = "The job is not running"),
              (status = 503, body = super::error::ErrorBody, description = "The driver did not answer")))]
pub async fn root(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    method: Method,
    Path(id): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let upstream = state.jobs.spark_ui_upstream(&id, &caller).await?;
    let to = Upstream::new(&upstream, "jobs", &id, "");
    forward(to, method, query, headers).await
}

/// The live Spark UI of a running job, proxied to its driver behind sk8's authentication
/// (`/v1/jobs/{id}/ui/` is its start page). 409 once the job is not running.
#[utoipa::path(get, path = "/v1/jobs/{id}/ui/{path}", tag = "jobs",
    params(("id" = String, Path), ("path" = String, Path, description = "A page of the Spark UI")),
    responses((status = 200, description = "The Spark UI's page, as the driver serves it"),
              (status = 302, description = "A redirect within the UI"),
              (status = 404, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody, description = "The job is not running"),
              (status = 503, body = super::error::ErrorBody, description = "The driver did not answer")))]
pub async fn page(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    method: Method,
    Path((id, path)): Path<(String, String)>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let upstream = state.jobs.spark_ui_upstream(&id, &caller).await?;
    let to = Upstream::new(&upstream, "jobs", &id, &path);
    forward(to, method, query, headers).await
}

/// A session's Spark UI start page without its slash: redirected to `/v1/sessions/{id}/ui/`.
#[utoipa::path(get, path = "/v1/sessions/{id}/ui", tag = "sessions",
    params(("id" = String, Path)),
    responses((status = 308, description = "To /v1/sessions/{id}/ui/")))]
pub async fn session_to_slash() -> Redirect {
    slash()
}

/// The Spark UI of a READY session's server (Apache Spark's; Sail's servers have none),
/// proxied behind sk8's authentication. 409 while the session is not serving.
#[utoipa::path(get, path = "/v1/sessions/{id}/ui/", tag = "sessions",
    params(("id" = String, Path)),
    responses((status = 200, description = "The Spark UI's page, as the server serves it"),
              (status = 302, description = "A redirect within the UI"),
              (status = 404, body = super::error::ErrorBody, description = "No such session, or its server has no UI"),
              (status = 409, body = super::error::ErrorBody, description = "The session is not serving"),
              (status = 503, body = super::error::ErrorBody, description = "The server did not answer")))]
pub async fn session_root(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    method: Method,
    Path(id): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let upstream = state.sessions.spark_ui_upstream(&id, &caller).await?;
    let to = Upstream::new(&upstream, "sessions", &id, "");
    forward(to, method, query, headers).await
}

/// A page of a READY session's Spark UI (`/v1/sessions/{id}/ui/` is its start page).
#[utoipa::path(get, path = "/v1/sessions/{id}/ui/{path}", tag = "sessions",
    params(("id" = String, Path), ("path" = String, Path, description = "A page of the Spark UI")),
    responses((status = 200, description = "The Spark UI's page, as the server serves it"),
              (status = 302, description = "A redirect within the UI"),
              (status = 404, body = super::error::ErrorBody, description = "No such session, or its server has no UI"),
              (status = 409, body = super::error::ErrorBody, description = "The session is not serving"),
              (status = 503, body = super::error::ErrorBody, description = "The server did not answer")))]
pub async fn session_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Identity>,
    method: Method,
    Path((id, path)): Path<(String, String)>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let upstream = state.sessions.spark_ui_upstream(&id, &caller).await?;
    let to = Upstream::new(&upstream, "sessions", &id, &path);
    forward(to, method, query, headers).await
}

/// One proxied request's target: the UI's base URL, the page under it, and the path prefix
/// the UI is served under through sk8.
struct Upstream {
    base: String,
    page: String,
    prefix: String,
    /// For messages: `job J` or `session S`.
    owner: String,
}

impl Upstream {
    fn new(base: &str, kind: &str, id: &str, page: &str) -> Self {
        let owner = format!("{} {id}", kind.trim_end_matches('s'));
        Upstream {
            base: base.trim_end_matches('/').to_owned(),
            page: page.to_owned(),
            prefix: format!("/v1/{kind}/{id}/ui"),
            owner,
        }
    }
}

async fn forward(
    to: Upstream,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let Upstream {
        base,
        page,
        prefix,
        owner,
    } = to;
    let mut url = format!("{base}/{page}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(&query);
    }
    let mut request = CLIENT
        .request(method, &url)
        .header("X-Forwarded-Context", &prefix);
    if let Some(accept) = headers.get(header::ACCEPT) {
        request = request.header(header::ACCEPT, accept);
    }
    let answer = request.send().await.map_err(|err| {
        Error::Unavailable(format!(
            "the Spark UI of {owner} did not answer at {base}: {err}; the driver may be \
             busy or just ended, try again"
        ))
    })?;
    Ok(respond(answer, &base, &prefix))
}

/// The driver's answer, streamed back with its status and content headers; a redirect's
/// target made a path under the prefix.
fn respond(answer: reqwest::Response, base: &str, prefix: &str) -> Response {
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for name in PASSED_ON {
        let value = answer.headers().get(name.as_str());
        if let Some(Ok(value)) = value.map(|v| HeaderValue::from_bytes(v.as_bytes())) {
            headers.insert(name, value);
        }
    }
    let location = answer
        .headers()
        .get(header::LOCATION.as_str())
        .and_then(|l| l.to_str().ok())
        .map(|l| local_location(l, base, prefix));
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    (status, headers, Body::from_stream(answer.bytes_stream())).into_response()
}

/// A redirect target as the browser must follow it: Spark's absolute URL to itself becomes
/// a path, and a path Spark did not put under the prefix is put there.
fn local_location(location: &str, base: &str, prefix: &str) -> String {
    let path = match location.strip_prefix(base) {
        Some(rest) => rest,
        None if location.contains("://") => {
            // Another host: keep only its path (sk8 proxies no one else).
            let after_scheme = location.split_once("://").map_or("", |(_, rest)| rest);
            after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
        }
        None => location,
    };
    if path.starts_with(prefix) {
        path.to_string()
    } else {
        format!("{prefix}{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::local_location;

    const BASE: &str = "http://10.0.0.7:4040";
    const PREFIX: &str = "/v1/jobs/J1/ui";

    #[test]
    fn redirects_stay_under_the_prefix() {
        assert_eq!(
            local_location("http://10.0.0.7:4040/v1/jobs/J1/ui/jobs/", BASE, PREFIX),
            "/v1/jobs/J1/ui/jobs/"
        );
        assert_eq!(
            local_location("http://10.0.0.7:4040/jobs/", BASE, PREFIX),
            "/v1/jobs/J1/ui/jobs/"
        );
        assert_eq!(
            local_location("/jobs/", BASE, PREFIX),
            "/v1/jobs/J1/ui/jobs/"
        );
        assert_eq!(
            local_location("http://driver-svc:4040/stages/", BASE, PREFIX),
            "/v1/jobs/J1/ui/stages/"
        );
    }
}
