//! Telemetry in one place: tracing (text or JSON, filtered by `RUST_LOG` or the config) and the
//! Prometheus recorder behind `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Latency buckets (seconds) for every `*_seconds` histogram: sub-millisecond store calls up to
/// slow reconcile passes.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Installs the global tracing subscriber. Call once, before anything logs.
pub fn init_tracing(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    // Colours only for a person at a terminal, never into a log file or pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

/// Installs the global metrics recorder and returns the handle that renders `/metrics`.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)?
        .install_recorder()?;
    describe();
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
        "sk8_kube_watch_errors_total",
        "Errors of the SparkApplication watch (it resumes with backoff)"
    );
}
