//! A trace per run. A job is given its trace at submit (the caller's, when the request carried
//! a `traceparent`, else a new one) and keeps it in the store (`trace_id`, `trace_parent`), so
//! whichever replica sees a run change can add to it, after restarts too. The spans are built
//! from the job's own record with their real times and ids derived from the job (the run, its
//! wait in the queue, each attempt and its phases), and exported when they end:
//! `run` ← `queued`, `attempt N` ← `submitted`, `running`. What sk8 did for an attempt hangs
//! under it as well: the backend's submit (`backend.submit`) and, once it ended, the gathering
//! of its run record (`record` ← `backend.ended`, `archive logs`, `backend.release`,
//! `summarize event log`). The driver gets its attempt's context as `TRACEPARENT`, so
//! Spark-side instrumentation joins the same trace.

use std::borrow::Cow;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use opentelemetry::trace::{
    Event as SpanEvent, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use sha2::Digest as _;

use super::otel::spans;
use crate::domain::{Attempt, Event, Job, JobState};

/// The trace a new job's run belongs to: `(trace_id, parent span id)` in W3C hex.
pub fn for_submit() -> (String, Option<String>) {
    match super::propagation::current() {
        Some(caller) => (
            caller.trace_id().to_string(),
            Some(caller.span_id().to_string()),
        ),
        None => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).expect("the OS has randomness");
            (TraceId::from_bytes(bytes).to_string(), None)
        }
    }
}

/// The W3C `traceparent` of `attempt` of `job`, given to its driver as `TRACEPARENT`.
pub fn traceparent(job: &Job, attempt: u32) -> Option<String> {
    let trace = trace_id(job)?;
    let span = span_id(job, &format!("attempt/{attempt}"));
    Some(format!("00-{trace}-{span}-01"))
}

fn trace_id(job: &Job) -> Option<TraceId> {
    let id = TraceId::from_hex(job.trace_id.as_deref()?).ok()?;
    (id != TraceId::INVALID).then_some(id)
}

/// A span id of its own for each part of a run, the same on every replica and after restarts.
fn span_id(job: &Job, part: &str) -> SpanId {
    let digest = sha2::Sha256::digest(format!("{}/{part}", job.id).as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    if bytes == [0; 8] {
        bytes[7] = 1;
    }
    SpanId::from_bytes(bytes)
}

/// Whether transitions need [`attempt_ended`]'s events at all (export is on).
pub fn wanted() -> bool {
    spans::enabled()
}

/// The job's first attempt was submitted: its wait in the queue ends.
pub fn queued_ended(job: &Job, at: DateTime<Utc>) {
    let Some(trace) = trace_id(job) else { return };
    let mut span = span(job, trace, "queued", "run", job.created_at, at);
    span.attributes = run_attributes(job);
    spans::submit(span);
}

/// `attempt` ended: its span (with a span event per transition in `events`, in order) and its
/// phases, `submitted` (until the driver ran or the attempt ended) and `running`.
pub fn attempt_ended(job: &Job, attempt: &Attempt, events: &[Event]) {
    let Some(trace) = trace_id(job) else { return };
    let Some(ended) = attempt.ended_at else {
        return;
    };
    let part = format!("attempt/{}", attempt.attempt);
    let name = format!("attempt {}", attempt.attempt);
    let mut span = span(job, trace, &name, "run", attempt.created_at, ended);
    span.span_context = context(trace, span_id(job, &part));
    span.attributes = attempt_attributes(job, attempt);
    if attempt.state == JobState::Failed {
        let reason = attempt.failure_reason.clone().unwrap_or_default();
        span.status = Status::error(reason);
    }
    let mine: Vec<&Event> = events
        .iter()
        .filter(|e| e.attempt == Some(attempt.attempt))
        .collect();
    span.events.events = mine
        .iter()
        .map(|e| {
            SpanEvent::new(
                e.to.as_str(),
                e.at.into(),
                vec![KeyValue::new("sk8.reason", e.reason.clone())],
                0,
            )
        })
        .collect();
    let running = mine
        .iter()
        .find(|e| e.to == JobState::Running)
        .map(|e| e.at);
    let submitted_until = running.unwrap_or(ended);
    let mut submitted = phase(job, trace, &part, "submitted", attempt.created_at);
    submitted.end_time = submitted_until.into();
    spans::submit(submitted);
    if let Some(running) = running {
        let mut phase = phase(job, trace, &part, "running", running);
        phase.end_time = ended.into();
        spans::submit(phase);
    }
    spans::submit(span);
}

/// One thing sk8 did for an attempt, timed: a span under the attempt (or under `record`).
#[derive(Clone, Debug)]
pub struct Step {
    pub name: &'static str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Step {
    /// A step that started at `start` and ends now.
    pub fn since(name: &'static str, start: DateTime<Utc>, error: Option<String>) -> Self {
        Step {
            name,
            start,
            end: Utc::now(),
            error,
        }
    }
}

/// Steps taken one after another, each timed from the end of the one before.
pub struct Steps {
    taken: Vec<Step>,
    from: DateTime<Utc>,
}

impl Steps {
    /// The first step starts now.
    pub fn start() -> Self {
        Steps {
            taken: Vec::new(),
            from: Utc::now(),
        }
    }

    /// The current step, `name`, is done (failed with `error`); the next one starts now.
    pub fn done(&mut self, name: &'static str, error: Option<String>) {
        let step = Step::since(name, self.from, error);
        self.from = step.end;
        self.taken.push(step);
    }
}

/// `step` was taken for `attempt` of `job`: a span of its own under the attempt's.
pub fn attempt_step(job: &Job, attempt: u32, step: &Step) {
    let Some(trace) = trace_id(job) else { return };
    if wanted() {
        spans::submit(step_span(
            job,
            trace,
            span_id(job, &format!("attempt/{attempt}")),
            step,
        ));
    }
}

/// The run record of `attempt` was gathered in `steps`: a `record` span under the attempt
/// with a span per step under it. Ids are random: a record whose gathering failed is gathered
/// again by a later pass, and each pass is a span of its own.
pub fn recorded(job: &Job, attempt: u32, steps: &Steps) {
    let Some(trace) = trace_id(job) else { return };
    let steps = &steps.taken;
    let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
        return;
    };
    if !wanted() {
        return;
    }
    let record = Step {
        name: "record",
        start: first.start,
        end: last.end,
        error: None,
    };
    let parent = span_id(job, &format!("attempt/{attempt}"));
    let record = step_span(job, trace, parent, &record);
    let under = record.span_context.span_id();
    for step in steps {
        spans::submit(step_span(job, trace, under, step));
    }
    spans::submit(record);
}

fn step_span(job: &Job, trace: TraceId, parent: SpanId, step: &Step) -> SpanData {
    let mut span = span(job, trace, step.name, "", step.start, step.end);
    span.span_context = context(trace, random_span_id());
    span.parent_span_id = parent;
    span.attributes = vec![KeyValue::new("sk8.job.id", job.id.to_string())];
    if let Some(error) = &step.error {
        span.status = Status::error(error.clone());
    }
    span
}

fn random_span_id() -> SpanId {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    if bytes == [0; 8] {
        bytes[7] = 1;
    }
    SpanId::from_bytes(bytes)
}

/// The job reached its final state: the run's own span, under the submitter's.
pub fn run_ended(job: &Job) {
    let Some(trace) = trace_id(job) else { return };
    let end = job.finished_at.unwrap_or(job.updated_at);
    let mut span = span(job, trace, "run", "", job.created_at, end);
    span.span_context = context(trace, span_id(job, "run"));
    span.parent_span_id = job
        .trace_parent
        .as_deref()
        .and_then(|p| SpanId::from_hex(p).ok())
        .unwrap_or(SpanId::INVALID);
    span.parent_span_is_remote = true;
    span.attributes = run_attributes(job);
    span.attributes
        .push(KeyValue::new("sk8.attempts", i64::from(job.attempts)));
    if job.state == JobState::Failed {
        span.status = Status::error(job.failure_reason.clone().unwrap_or_default());
    }
    spans::submit(span);
}

fn phase(job: &Job, trace: TraceId, attempt: &str, name: &str, start: DateTime<Utc>) -> SpanData {
    let mut span = span(job, trace, name, attempt, start, start);
    span.span_context = context(trace, span_id(job, &format!("{attempt}/{name}")));
    span
}

fn context(trace: TraceId, span: SpanId) -> SpanContext {
    SpanContext::new(trace, span, TraceFlags::SAMPLED, false, TraceState::NONE)
}

/// A span of `job`'s run named `name` under its part `parent` (the root when empty).
fn span(
    job: &Job,
    trace: TraceId,
    name: &str,
    parent: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> SpanData {
    let parent_span_id = if parent.is_empty() {
        SpanId::INVALID
    } else {
        span_id(job, parent)
    };
    SpanData {
        span_context: context(trace, span_id(job, name)),
        parent_span_id,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Owned(name.to_owned()),
        start_time: SystemTime::from(start),
        end_time: SystemTime::from(end),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("sk8").build(),
    }
}

fn run_attributes(job: &Job) -> Vec<KeyValue> {
    vec![
        KeyValue::new("sk8.job.id", job.id.to_string()),
        KeyValue::new("sk8.job.name", job.name.clone()),
        KeyValue::new("sk8.team", job.team.clone()),
        KeyValue::new("sk8.env", job.env.clone()),
        KeyValue::new("sk8.state", job.state.as_str()),
    ]
}

fn attempt_attributes(job: &Job, attempt: &Attempt) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("sk8.job.id", job.id.to_string()),
        KeyValue::new("sk8.attempt", i64::from(attempt.attempt)),
        KeyValue::new("sk8.state", attempt.state.as_str()),
        KeyValue::new("sk8.backend", attempt.backend.clone()),
    ];
    if let Some(class) = attempt.failure_class {
        attributes.push(KeyValue::new("sk8.failure_class", class.as_str()));
    }
    if let Some(reason) = &attempt.failure_reason {
        attributes.push(KeyValue::new("sk8.failure_reason", reason.clone()));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_are_stable_and_distinct_per_part() {
        let body = br#"{"team":"t","env":"e","name":"n","mainApplicationFile":"/x.py"}"#;
        let defaults = crate::domain::SpecDefaults {
            spark_version: "4.0.1".into(),
            image: "i".into(),
        };
        let format = crate::domain::jobspec::Format::Json;
        let spec = crate::domain::JobSpec::parse(body, format, &defaults).unwrap();
        let mut job = Job::new(spec, None, Utc::now());
        assert_eq!(traceparent(&job, 1), None);
        job.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
        let parent = traceparent(&job, 1).unwrap();
        assert!(
            parent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "{parent}"
        );
        assert_eq!(traceparent(&job, 1), Some(parent));
        assert_eq!(span_id(&job, "run"), span_id(&job, "run"));
        assert_ne!(span_id(&job, "run"), span_id(&job, "attempt/1"));
    }
}
