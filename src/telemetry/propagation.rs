//! W3C trace context (`traceparent`/`tracestate`) in and out: an HTTP request that carries one
//! is served under it (its span's parent, while export is on) and a job it submits runs in the
//! caller's trace ([`crate::telemetry::run_trace`]), so a pipeline's trace continues into sk8.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::otel::spans;

tokio::task_local! {
    /// The caller's span while export is off (no request span to hang it on).
    static REMOTE: SpanContext;
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The caller's trace context from `traceparent`/`tracestate`, if valid.
pub fn extract(headers: &http::HeaderMap) -> Option<opentelemetry::Context> {
    if !headers.contains_key("traceparent") {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    cx.span().span_context().is_valid().then_some(cx)
}

/// Writes `cx` as `traceparent`/`tracestate` into `headers`.
pub fn inject(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeadersMut(headers));
}

/// The span context a submit in this task runs under: the request's span while export is on,
/// else the caller's `traceparent`, if any.
pub fn current() -> Option<SpanContext> {
    if spans::enabled() {
        let cx = tracing::Span::current().context();
        let span = cx.span().span_context().clone();
        if span.is_valid() {
            return Some(span);
        }
    }
    REMOTE.try_with(Clone::clone).ok()
}

/// Axum middleware: serves each request under the caller's trace context. While export is on,
/// a server span per request (method, route template, status) whose parent is the caller's.
pub async fn http_layer(request: Request, next: Next) -> Response {
    let remote = extract(request.headers());
    if !spans::enabled() {
        return match remote {
            Some(cx) => {
                let span = cx.span().span_context().clone();
                REMOTE.scope(span, next.run(request)).await
            }
            None => next.run(request).await,
        };
    }
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "http",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(cx) = remote {
        let _ = span.set_parent(cx);
    }
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips() {
        let mut headers = http::HeaderMap::new();
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        headers.insert("traceparent", parent.parse().unwrap());
        let cx = extract(&headers).expect("a valid traceparent");
        let mut out = http::HeaderMap::new();
        inject(&cx, &mut out);
        assert_eq!(out["traceparent"], parent);
    }

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-nothex-b7ad6b7169203331-01".parse().unwrap(),
        );
        assert!(extract(&headers).is_none());
    }
}
