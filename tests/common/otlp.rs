//! A real OTLP receiver for the telemetry tests: the collector's gRPC trace and metrics
//! services (from the `opentelemetry-proto` definitions) on a port of its own, recording every
//! span and metric it receives and the `traceparent` of the calls; or the same over
//! HTTP/protobuf (`POST /v1/traces`, `/v1/metrics`), as a collector's `otlphttp` receiver. Also a black hole (accepts
//! connections, never answers) and a dead port, for the tests of export that fails.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;

#[derive(Default)]
struct Recorded {
    spans: Vec<Span>,
    /// Each metric as it arrived, with its resource's `service.name`.
    metrics: Vec<(String, Metric)>,
    exports: usize,
}

#[derive(Clone, Default)]
struct Services(Arc<Mutex<Recorded>>);

impl Services {
    fn record_spans(&self, request: ExportTraceServiceRequest) {
        let mut recorded = self.0.lock().unwrap();
        recorded.exports += 1;
        for resource in request.resource_spans {
            for scope in resource.scope_spans {
                recorded.spans.extend(scope.spans);
            }
        }
    }

    fn record_metrics(&self, request: ExportMetricsServiceRequest) {
        let mut recorded = self.0.lock().unwrap();
        recorded.exports += 1;
        for resource in request.resource_metrics {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource.scope_metrics {
                for metric in scope.metrics {
                    recorded.metrics.push((service.clone(), metric));
                }
            }
        }
    }
}

/// An HTTP/protobuf export's answer: its (empty) response message, or 400 for a body that is
/// not the request message.
fn http_answer<M: prost::Message>(
    decoded: Result<(), prost::DecodeError>,
    answer: M,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match decoded {
        Ok(()) => (
            [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
            answer.encode_to_vec(),
        )
            .into_response(),
        Err(err) => (axum::http::StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    }
}

#[tonic::async_trait]
impl TraceService for Services {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record_spans(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Services {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.record_metrics(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A running receiver; stops with the test's runtime.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    recorded: Services,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorded = Services::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(recorded.clone()))
            .add_service(MetricsServiceServer::new(recorded.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        Receiver { addr, recorded }
    }

    /// The same receiver over HTTP/protobuf: `POST /v1/traces` and `/v1/metrics` with the
    /// export request messages as bodies.
    pub async fn start_http() -> Self {
        use axum::routing::post;
        use prost::Message as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorded = Services::default();
        let (traces, metrics) = (recorded.clone(), recorded.clone());
        let router = axum::Router::new()
            .route(
                "/v1/traces",
                post(move |body: axum::body::Bytes| async move {
                    let decoded = ExportTraceServiceRequest::decode(body)
                        .map(|request| traces.record_spans(request));
                    http_answer(decoded, ExportTraceServiceResponse::default())
                }),
            )
            .route(
                "/v1/metrics",
                post(move |body: axum::body::Bytes| async move {
                    let decoded = ExportMetricsServiceRequest::decode(body)
                        .map(|request| metrics.record_metrics(request));
                    http_answer(decoded, ExportMetricsServiceResponse::default())
                }),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { addr, recorded }
    }

    /// What sk8's `OTEL_EXPORTER_OTLP_ENDPOINT` should be.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.recorded.0.lock().unwrap().spans.clone()
    }

    /// Every metric data point set received so far, with the sender's `service.name`.
    pub fn metrics(&self) -> Vec<(String, Metric)> {
        self.recorded.0.lock().unwrap().metrics.clone()
    }

    /// Waits until spans satisfying `done` have arrived; panics with `what` at the deadline.
    pub async fn wait_spans(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Span]) -> bool,
    ) -> Vec<Span> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}; received {} spans: {:?}",
                spans.len(),
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until a metric named `name` has arrived; panics at the deadline.
    pub async fn wait_metric(&self, name: &str, timeout: Duration) -> Metric {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, metric)) = self
                .metrics()
                .into_iter()
                .rev()
                .find(|(_, m)| m.name == name)
            {
                return metric;
            }
            assert!(
                Instant::now() < deadline,
                "no metric {name} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A port that accepts connections and never answers: an export to it can only time out.
pub async fn black_hole() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

/// A string attribute's value.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Hex of an id as the W3C headers write it.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
