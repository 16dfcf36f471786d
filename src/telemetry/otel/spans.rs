//! The span pipeline: ended spans (from `tracing` through the SDK, and the hand-built spans of
//! [`crate::telemetry::run_trace`]) go into one bounded queue; one task sends them in batches.
//! Nothing on a request's path ever waits: a span that finds the queue full is dropped and
//! counted, and so is every span of a batch the collector did not take in time
//! (`sk8_otel_spans_dropped_total{reason}`).

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Spans sent in one export at most (the SDK's default batch size).
const MAX_BATCH: usize = 512;

/// The queue's sending side, once export is on.
static QUEUE: OnceLock<mpsc::Sender<SpanData>> = OnceLock::new();

/// Whether spans are exported at all (an endpoint is configured).
pub fn enabled() -> bool {
    QUEUE.get().is_some()
}

/// Queues one ended span for export; drops (and counts) it when the queue is full. A no-op
/// while export is off.
pub fn submit(span: SpanData) {
    let Some(queue) = QUEUE.get() else { return };
    if queue.try_send(span).is_err() {
        dropped("queue_full", 1);
    }
}

fn dropped(reason: &'static str, spans: usize) {
    metrics::counter!("sk8_otel_spans_dropped_total", "reason" => reason).increment(spans as u64);
}

/// The SDK's end of the queue: `tracing` spans arrive here when they end.
#[derive(Debug)]
pub struct QueueProcessor;

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            submit(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// How the export task batches and how long one export may take.
pub struct Batching {
    pub queue: usize,
    pub delay: Duration,
    pub timeout: Duration,
}

/// Opens the queue and starts the task that drains it into `exporter` until `stop`, when what
/// is still queued is sent once more. Call once.
pub fn start<E: SpanExporter + 'static>(
    exporter: E,
    batching: Batching,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (tx, rx) = mpsc::channel(batching.queue);
    if QUEUE.set(tx).is_err() {
        tracing::warn!("the span queue was opened twice; keeping the first");
    }
    tokio::spawn(drain(exporter, rx, batching, stop))
}

async fn drain<E: SpanExporter>(
    exporter: E,
    mut rx: mpsc::Receiver<SpanData>,
    batching: Batching,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while !stop.is_cancelled() {
        // A batch starts with its first span and goes out when full or `delay` later.
        tokio::select! {
            _ = stop.cancelled() => break,
            n = rx.recv_many(&mut batch, MAX_BATCH) => if n == 0 { return },
        }
        let deadline = tokio::time::Instant::now() + batching.delay;
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
            }
        }
        send(&exporter, std::mem::take(&mut batch), batching.timeout).await;
    }
    // Stopping: what is queued now goes out once, within the timeout.
    while rx.try_recv().map(|span| batch.push(span)).is_ok() {}
    for chunk in batch.chunks(MAX_BATCH) {
        send(&exporter, chunk.to_vec(), batching.timeout).await;
    }
}

async fn send<E: SpanExporter>(exporter: &E, batch: Vec<SpanData>, timeout: Duration) {
    let spans = batch.len();
    match tokio::time::timeout(timeout, exporter.export(batch)).await {
        Ok(Ok(())) => {
            metrics::counter!("sk8_otel_spans_exported_total").increment(spans as u64);
        }
        Ok(Err(err)) => {
            dropped("export_failed", spans);
            tracing::debug!(error = %err, spans, "span export failed; spans dropped");
        }
        Err(_) => {
            dropped("export_timeout", spans);
            tracing::debug!(spans, "span export timed out; spans dropped");
        }
    }
}
