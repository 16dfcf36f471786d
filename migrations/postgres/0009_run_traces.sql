-- A trace per run (src/telemetry/run_trace.rs): the W3C trace id of the job's run (the
-- submitter's trace when the submit carried a traceparent) and the span it hangs under, in hex.
ALTER TABLE jobs ADD COLUMN trace_id TEXT;
ALTER TABLE jobs ADD COLUMN trace_parent TEXT;
