//! A span per Spark Connect RPC through the gateway, while export is on: method, session,
//! team, user, bytes each way and the outcome (the gRPC status, named as the gateway's metrics
//! name it), from the request until the end of the response stream. Its parent is the client's
//! `traceparent` metadata; the request goes upstream with the RPC span as its `traceparent`,
//! so the Spark Connect server's own spans continue the notebook's trace. While export is off,
//! the client's `traceparent` passes upstream untouched and nothing here costs anything.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use opentelemetry::trace::TraceContextExt as _;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::otel::spans;
use super::propagation;

/// The span of one RPC, under the client's `traceparent`; a disabled span while export is off.
pub fn span(service: &str, method: &str, headers: &HeaderMap) -> Span {
    if !spans::enabled() {
        return Span::none();
    }
    let session = headers
        .get("x-sk8-session")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "rpc",
        otel.name = format!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
        sk8.session = session,
        sk8.team = tracing::field::Empty,
        sk8.user = tracing::field::Empty,
        sk8.outcome = tracing::field::Empty,
        sk8.bytes_in = tracing::field::Empty,
        sk8.bytes_out = tracing::field::Empty,
    );
    if let Some(cx) = propagation::extract(headers) {
        let _ = span.set_parent(cx);
    }
    span
}

/// Records the caller on the current RPC span.
pub fn record_user(user: &str) {
    Span::current().record("sk8.user", user);
}

/// Records the session's team on the current RPC span.
pub fn record_team(team: &str) {
    Span::current().record("sk8.team", team);
}

/// The name of a numeric gRPC status, as metric labels and `sk8.outcome` give it.
pub fn grpc_code_name(code: &str) -> &'static str {
    match code {
        "0" => "ok",
        "1" => "cancelled",
        "2" => "unknown",
        "3" => "invalid_argument",
        "4" => "deadline_exceeded",
        "5" => "not_found",
        "6" => "already_exists",
        "7" => "permission_denied",
        "8" => "resource_exhausted",
        "9" => "failed_precondition",
        "10" => "aborted",
        "11" => "out_of_range",
        "12" => "unimplemented",
        "13" => "internal",
        "14" => "unavailable",
        "15" => "data_loss",
        "16" => "unauthenticated",
        _ => "other",
    }
}

/// Records on an RPC's span how it ended: `code` is its numeric `grpc-status`, none when the
/// client went away (or the upstream broke) before the end.
pub fn record_outcome(span: &Span, code: Option<&str>) {
    let outcome = code.map_or("cancelled", grpc_code_name);
    span.record("sk8.outcome", outcome);
    if let Some(code) = code.and_then(|c| c.parse::<i64>().ok()) {
        span.record("rpc.grpc.status_code", code);
    }
    if outcome != "ok" {
        span.record("otel.status_code", "ERROR");
    }
}

/// The upstream request carries the current RPC span as its `traceparent` (while export is
/// on; else the client's own, copied with its other metadata, stays).
pub fn inject_upstream(headers: &mut HeaderMap) {
    if !spans::enabled() {
        return;
    }
    let cx = Span::current().context();
    if cx.span().span_context().is_valid() {
        propagation::inject(&cx, headers);
    }
}

/// Bytes each way, shared by the request's and the response's body.
#[derive(Default)]
pub struct Tally {
    bytes_in: AtomicU64,
}

/// Counts the request's bytes into the RPC's tally (while export is on).
pub fn count_request<B>(span: &Span, request: Request<B>) -> (Request<Counted<B>>, Arc<Tally>) {
    let tally = Arc::new(Tally::default());
    let active = !span.is_disabled();
    let request = request.map(|body| Counted {
        inner: body,
        tally: active.then(|| tally.clone()),
    });
    (request, tally)
}

/// A request body whose data bytes are counted.
pub struct Counted<B> {
    inner: B,
    tally: Option<Arc<Tally>>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(tally)) = (&polled, &self.tally)
            && let Some(data) = frame.data_ref()
        {
            tally
                .bytes_in
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The response, its stream watched to the end: then the span gets its bytes and outcome and
/// ends. Unchanged while the span is disabled.
pub fn finish<B>(span: Span, tally: Arc<Tally>, response: Response<B>) -> Response<Watched<B>> {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    response.map(|inner| Watched {
        inner,
        end: (!span.is_disabled()).then(|| End {
            span,
            tally,
            code,
            bytes_out: 0,
        }),
    })
}

/// A response body that ends its RPC's span when it is done (or dropped: a client that left).
pub struct Watched<B> {
    inner: B,
    end: Option<End>,
}

struct End {
    span: Span,
    tally: Arc<Tally>,
    code: Option<String>,
    bytes_out: u64,
}

impl Drop for End {
    fn drop(&mut self) {
        let span = &self.span;
        record_outcome(span, self.code.as_deref());
        span.record("sk8.bytes_in", self.tally.bytes_in.load(Ordering::Relaxed));
        span.record("sk8.bytes_out", self.bytes_out);
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Watched<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(end)) = (&polled, self.end.as_mut()) {
            if let Some(data) = frame.data_ref() {
                end.bytes_out += data.len() as u64;
            } else if let Some(code) = frame
                .trailers_ref()
                .and_then(|t| t.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
            {
                end.code = Some(code.to_owned());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Debug)]
    struct Nowhere;

    impl SpanExporter for Nowhere {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Ok(())
        }
    }

    /// The server hears of the gateway's RPC span (in the client's trace), not of the client's
    /// span directly: the server's own spans then hang under the hop they came through.
    #[tokio::test]
    async fn upstream_gets_the_rpc_span_in_the_clients_trace() {
        let batching = spans::Batching {
            queue: 8,
            delay: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(1),
        };
        spans::start(
            Nowhere,
            batching,
            tokio_util::sync::CancellationToken::new(),
        );
        let provider = SdkTracerProvider::builder()
            .with_span_processor(spans::QueueProcessor)
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let mut client = HeaderMap::new();
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        client.insert("traceparent", parent.parse().unwrap());
        let rpc = span("spark.connect.SparkConnectService", "ExecutePlan", &client);
        let mut upstream = HeaderMap::new();
        rpc.in_scope(|| inject_upstream(&mut upstream));
        let sent = upstream["traceparent"].to_str().unwrap();
        assert!(
            sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && !sent.contains("b7ad6b71"),
            "{sent}"
        );
    }
}
