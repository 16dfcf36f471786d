//! JSON log lines that a log pipeline can join to traces: inside a span, while export is on,
//! each line carries the span's `trace_id` and `span_id` (W3C hex, as the collector has them).

use opentelemetry::trace::TraceContextExt as _;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps the JSON event format; adds the ids of the current span's trace when `enabled`.
pub struct WithTraceIds<F> {
    inner: F,
    enabled: bool,
}

impl<F> WithTraceIds<F> {
    pub fn new(inner: F, enabled: bool) -> Self {
        WithTraceIds { inner, enabled }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if !self.enabled || ctx.lookup_current().is_none() {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let cx = tracing::Span::current().context();
        let span = cx.span();
        let ids = span.span_context();
        // The JSON object ends in `}` and a newline: the ids go in just before the brace.
        match line.rfind('}') {
            Some(end) if ids.is_valid() => {
                let (head, tail) = line.split_at(end);
                writer.write_str(head)?;
                write!(
                    writer,
                    ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                    ids.trace_id(),
                    ids.span_id()
                )?;
                writer.write_str(tail)
            }
            _ => writer.write_str(&line),
        }
    }
}
