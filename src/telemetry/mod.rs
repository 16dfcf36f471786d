//! Telemetry in one place: tracing (text or JSON, filtered by `RUST_LOG` or the config), the
//! Prometheus recorder behind `/metrics` and, when an endpoint is configured, OTLP export of the
//! same spans and metrics ([`otel`]). Log lines reach stderr through [`writer`], which drops
//! (and counts) what a broken or stalled pipe will not take instead of blocking or panicking;
//! inside a span they carry its `trace_id`/`span_id` ([`logs`]) while export is on.

pub mod gauges;
mod logs;
pub mod otel;
pub mod propagation;
pub mod rpc;
pub mod run_trace;
pub mod workload;
mod writer;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogConfig, LogFormat};
pub use otel::Otel;

/// Latency buckets (seconds) for every `*_seconds` histogram: sub-millisecond store calls up to
/// slow reconcile passes.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Buckets (seconds) of the workload's own durations (`sk8_run_*_seconds`,
/// `sk8_session_*_seconds`): a second up to a day, because runs and their queueing take
/// minutes to hours, and a session's server starts in seconds to minutes.
const RUN_BUCKETS: [f64; 14] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0,
    86400.0,
];

/// Which buckets a histogram gets, by its name.
fn buckets(name: &str) -> &'static [f64] {
    if name.starts_with("sk8_run_") || name.starts_with("sk8_session_") {
        &RUN_BUCKETS
    } else {
        &BUCKETS
    }
}

pub use writer::LogGuard;

/// Installs the global tracing subscriber (with the OpenTelemetry layer while `otel` exports).
/// Call once, before anything logs; keep the guard until the process ends (dropping it flushes
/// the lines still queued).
pub fn init_tracing(config: &LogConfig, otel: Option<&Otel>) -> anyhow::Result<LogGuard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let (writer, guard) = writer::spawn(std::io::stderr())?;
    // Colours only for a person at a terminal, never into a log file or pipe. No internal error
    // reports: they would go to the same broken stderr, with a panic when that fails.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .log_internal_errors(false)
        .with_writer(writer);
    let fmt = match config.format {
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(true);
            fmt.fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(logs::WithTraceIds::new(json, otel.is_some()))
                .boxed()
        }
        LogFormat::Text => fmt.boxed(),
    };
    let otel = otel.map(|otel| tracing_opentelemetry::layer().with_tracer(otel.tracer()));
    // One filter for both layers: the exporter sees only what the log would show (never the
    // HTTP/2 and SQL libraries' own spans, nor the exporter's own calls).
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(guard)
}

/// Brings `sk8_log_lines_dropped_total` up to date; call before rendering `/metrics`.
pub fn record_log_drops() {
    metrics::counter!("sk8_log_lines_dropped_total").absolute(writer::dropped());
}

/// Installs the global metrics recorder and returns the handle that renders `/metrics`; while
/// `otel` exports, the same instruments feed OTLP too.
pub fn init_metrics(otel: Option<&Otel>) -> anyhow::Result<PrometheusHandle> {
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Prefix("sk8_run_".into()), &RUN_BUCKETS)?
        .set_buckets_for_metric(Matcher::Prefix("sk8_session_".into()), &RUN_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)?
        .build_recorder();
    let handle = prometheus.handle();
    match otel {
        Some(otel) => {
            let otlp = otel::metrics::OtelRecorder::new(otel.meter(), buckets);
            let fanout = metrics_util::layers::FanoutBuilder::default()
                .add_recorder(prometheus)
                .add_recorder(otlp)
                .build();
            metrics::set_global_recorder(fanout)
                .map_err(|_| anyhow::anyhow!("a metrics recorder was installed already"))?;
        }
        None => metrics::set_global_recorder(prometheus)?,
    }
    describe();
    workload::describe();
    Ok(handle)
}

/// How often histogram samples are folded into their buckets.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every few seconds until `stop`. The
/// recorder otherwise keeps every sample until `/metrics` is scraped: memory that grows with
/// every store call when nobody scrapes.
pub async fn metrics_upkeep(handle: PrometheusHandle, stop: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(METRICS_UPKEEP);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => handle.run_upkeep(),
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("sk8_jobs", "Jobs in the store, by state");
    describe_gauge!(
        "sk8_team_jobs",
        "Live jobs (queued, submitted, running, retrying, cancelling) by team, env and state"
    );
    describe_gauge!(
        "sk8_team_sessions",
        "Sessions starting, ready or stopping, by team, env and state"
    );
    describe_gauge!(
        "sk8_record_backlog",
        "Ended attempts whose run record (logs, summary, evidence) is still to gather"
    );
    describe_gauge!(
        "sk8_record_backlog_age_seconds",
        "How long ago the oldest attempt still to record ended (0 with none)"
    );
    describe_histogram!(
        "sk8_reconcile_lag_seconds",
        "From the first change announced to the reconciler (submit, cancel, watch event, exit) to the end of the turn that looked at it"
    );
    describe_gauge!(
        "sk8_sizing_recommendations",
        "Sizing recommendations per team, by outcome: given, applied, reverted"
    );
    describe_gauge!(
        "sk8_sizing_saved_gib_seconds",
        "Estimated memory saved by applied sizing advice per team (GiB·s, jobs that succeeded)"
    );
    describe_gauge!(
        "sk8_sizing_saved_core_seconds",
        "Estimated cores saved by applied sizing advice per team (core·s, jobs that succeeded)"
    );
    describe_counter!(
        "sk8_job_submits_total",
        "Job submissions accepted, by outcome (created, replayed)"
    );
    describe_counter!(
        "sk8_job_transitions_total",
        "Job state transitions, by target state"
    );
    describe_counter!(
        "sk8_jobs_finished_total",
        "Jobs that reached a final state, by state"
    );
    describe_counter!(
        "sk8_http_requests_total",
        "HTTP requests, by method, route and status"
    );
    describe_histogram!(
        "sk8_http_request_duration_seconds",
        "HTTP request latency, by method and route"
    );
    describe_histogram!(
        "sk8_store_op_seconds",
        "Store operation latency, by operation and outcome"
    );
    describe_histogram!(
        "sk8_reconcile_pass_seconds",
        "Duration of one reconciler turn"
    );
    describe_counter!(
        "sk8_gateway_rpcs_total",
        "Spark Connect RPCs through the gateway, by method and gRPC code"
    );
    describe_counter!(
        "sk8_gateway_bytes_total",
        "Bytes through the gateway: in (requests) and out (responses)"
    );
    describe_gauge!(
        "sk8_gateway_active_streams",
        "RPCs in flight through the gateway"
    );
    describe_histogram!(
        "sk8_gateway_rpc_seconds",
        "Gateway RPC duration, from the request to the end of the response stream"
    );
    describe_histogram!(
        "sk8_gateway_upstream_seconds",
        "Time until a session's server answered the forwarded request (headers)"
    );
    describe_gauge!(
        "sk8_reconcile_live_jobs",
        "Jobs not yet finished, as seen by the last resync"
    );
    describe_gauge!(
        "sk8_orphans",
        "Attempts the backend holds that no job runs any more, as of the last sweep"
    );
    describe_counter!(
        "sk8_orphans_removed_total",
        "Orphaned attempts stopped or removed (policy: delete)"
    );
    describe_gauge!(
        "sk8_kube_api_up",
        "1 while the Kubernetes API answers, 0 while sk8 considers it unavailable"
    );
    describe_counter!(
        "sk8_log_lines_dropped_total",
        "Log lines dropped because stderr was broken or too slow (sk8 never waits on its log)"
    );
    describe_counter!(
        "sk8_otel_spans_dropped_total",
        "Spans not exported over OTLP, by reason (queue_full, export_failed, export_timeout)"
    );
    describe_counter!(
        "sk8_otel_spans_exported_total",
        "Spans the OTLP collector accepted"
    );
    describe_counter!(
        "sk8_otel_metric_exports_failed_total",
        "Metric exports over OTLP that failed"
    );
    describe_counter!(
        "sk8_kube_watch_errors_total",
        "Errors of the SparkApplication watch (it resumes with backoff)"
    );
}
