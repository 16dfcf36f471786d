//! OTLP export of traces and metrics, configured by `otlp:` and the standard `OTEL_*`
//! variables (see [`crate::config::OtlpConfig`]); off without an endpoint. Spans go through
//! [`spans`] (one bounded queue, drops counted), metrics through [`metrics::OtelRecorder`]
//! (the same instruments as `/metrics`) and a periodic reader on the Tokio runtime.

pub mod metrics;
pub mod spans;

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanExporter as _};
use tokio_util::sync::CancellationToken;

use crate::config::{OtlpConfig, OtlpProtocol};

/// How long shutdown waits for the last export.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// Export in progress: the providers and the span queue's task.
pub struct Otel {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    stop: CancellationToken,
    spans: tokio::task::JoinHandle<()>,
    metric_interval: Duration,
}

impl Otel {
    /// Starts export when an endpoint is configured (file or `OTEL_EXPORTER_OTLP_ENDPOINT`).
    /// Needs the Tokio runtime.
    pub fn start(config: &OtlpConfig) -> anyhow::Result<Option<Otel>> {
        let Some(settings) = config
            .resolve(|name| std::env::var(name).ok())
            .map_err(anyhow::Error::msg)?
        else {
            return Ok(None);
        };
        let resource = resource(&settings);
        let mut exporter = span_exporter(&settings)?;
        exporter.set_resource(&resource);
        let stop = CancellationToken::new();
        let batching = spans::Batching {
            queue: settings.max_queue_size,
            delay: Duration::from_millis(settings.schedule_delay_millis),
            timeout: Duration::from_millis(settings.timeout_millis),
        };
        let spans = spans::start(exporter, batching, stop.clone());
        // The sampler comes from OTEL_TRACES_SAMPLER/OTEL_TRACES_SAMPLER_ARG (SDK default:
        // parent-based, always on).
        let tracer = SdkTracerProvider::builder()
            .with_span_processor(spans::QueueProcessor)
            .with_resource(resource.clone())
            .build();
        let metric_interval = Duration::from_millis(settings.metric_interval_millis);
        let reader = PeriodicReader::builder(
            Counted(metric_exporter(&settings)?),
            opentelemetry_sdk::runtime::Tokio,
        )
        .with_interval(metric_interval)
        .build();
        let meter = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        Ok(Some(Otel {
            tracer,
            meter,
            stop,
            spans,
            metric_interval,
        }))
    }

    /// The tracer behind `tracing`'s OpenTelemetry layer.
    /// How often metrics are exported (`OTEL_METRIC_EXPORT_INTERVAL` or the config's).
    pub fn metric_interval(&self) -> Duration {
        self.metric_interval
    }

    pub fn tracer(&self) -> SdkTracer {
        self.tracer.tracer("sk8")
    }

    /// The meter behind [`metrics::OtelRecorder`].
    pub fn meter(&self) -> opentelemetry::metrics::Meter {
        use opentelemetry::metrics::MeterProvider as _;
        self.meter.meter("sk8")
    }

    /// Sends what is queued and the last metrics, within a few seconds.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, self.spans).await;
        let (tracer, meter) = (self.tracer, self.meter);
        // The SDK's shutdowns block their thread until the reader has exported.
        let blocking = tokio::task::spawn_blocking(move || {
            let _ = meter.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            let _ = tracer.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        });
        let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT * 2, blocking).await;
    }
}

/// `service.name` from the settings unless `OTEL_SERVICE_NAME` says otherwise, plus
/// `OTEL_RESOURCE_ATTRIBUTES` (the SDK's environment detectors).
fn resource(settings: &OtlpConfig) -> Resource {
    Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

fn endpoint(settings: &OtlpConfig, signal: &str) -> String {
    let base = settings.endpoint.as_deref().unwrap_or_default();
    match settings.protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        // OTLP/HTTP: the signal's path under the base, as the specification has it.
        OtlpProtocol::HttpProtobuf => format!("{}/v1/{signal}", base.trim_end_matches('/')),
    }
}

fn span_exporter(settings: &OtlpConfig) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let timeout = Duration::from_millis(settings.timeout_millis);
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let built = match settings.protocol {
        OtlpProtocol::Grpc => builder
            .with_tonic()
            .with_endpoint(endpoint(settings, "traces"))
            .with_timeout(timeout)
            .build(),
        OtlpProtocol::HttpProtobuf => builder
            .with_http()
            .with_endpoint(endpoint(settings, "traces"))
            .with_timeout(timeout)
            .build(),
    };
    built.context("OTLP span exporter")
}

fn metric_exporter(settings: &OtlpConfig) -> anyhow::Result<opentelemetry_otlp::MetricExporter> {
    let timeout = Duration::from_millis(settings.timeout_millis);
    let builder = opentelemetry_otlp::MetricExporter::builder();
    let built = match settings.protocol {
        OtlpProtocol::Grpc => builder
            .with_tonic()
            .with_endpoint(endpoint(settings, "metrics"))
            .with_timeout(timeout)
            .build(),
        OtlpProtocol::HttpProtobuf => builder
            .with_http()
            .with_endpoint(endpoint(settings, "metrics"))
            .with_timeout(timeout)
            .build(),
    };
    built.context("OTLP metric exporter")
}

/// The metric exporter, with its failed exports counted (`sk8_otel_metric_exports_failed_total`).
struct Counted<E>(E);

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.0.export(metrics).await;
        if result.is_err() {
            ::metrics::counter!("sk8_otel_metric_exports_failed_total").increment(1);
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.0.temporality()
    }
}
