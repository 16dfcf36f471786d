//! Row ↔ domain conversions. Rows hold only plain types; parsing them back into domain types
//! turns a hand-edited or corrupt row into a clear error instead of a panic.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::StoreError;
use crate::domain::{
    Attempt, Event, FailureClass, Job, JobId, JobState, Session, SessionEvent, SessionId,
    SessionState,
};

pub const JOB_COLUMNS: &str = "id, team, env, name, namespace, state, spec, attempts, \
    failure_reason, failure_class, spark_ui_url, idempotency_key, created_at, updated_at, \
    started_at, finished_at, next_attempt_at, trace_id, trace_parent, version, sized_from, sizing";

pub const ATTEMPT_COLUMNS: &str = "job_id, attempt, backend, backend_ref, state, created_at, \
    ended_at, failure_reason, failure_class, remediation";

pub const EVENT_COLUMNS: &str = "id, job_id, attempt, from_state, to_state, at, reason, detail";

pub const SESSION_COLUMNS: &str = "id, team, env, name, namespace, state, spec, starts, \
    backend_ref, endpoint, reason, created_at, updated_at, last_active_at, deleted_at, version";

pub const SESSION_EVENT_COLUMNS: &str = "id, session_id, from_state, to_state, at, reason";

pub fn job(row: &AnyRow) -> Result<Job, StoreError> {
    let spec: String = row.try_get("spec")?;
    Ok(Job {
        id: job_id(row.try_get("id")?)?,
        team: row.try_get("team")?,
        env: row.try_get("env")?,
        name: row.try_get("name")?,
        namespace: row.try_get("namespace")?,
        state: state(&row.try_get::<String, _>("state")?)?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("job spec: {e}")))?,
        attempts: count(row.try_get("attempts")?),
        failure_reason: row.try_get("failure_reason")?,
        failure_class: failure_class(row.try_get("failure_class")?)?,
        spark_ui_url: row.try_get("spark_ui_url")?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_at: time(row.try_get("created_at")?),
        updated_at: time(row.try_get("updated_at")?),
        started_at: row.try_get::<Option<i64>, _>("started_at")?.map(time),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(time),
        next_attempt_at: row.try_get::<Option<i64>, _>("next_attempt_at")?.map(time),
        trace_id: row.try_get("trace_id")?,
        trace_parent: row.try_get("trace_parent")?,
        sized_from: row
            .try_get::<Option<String>, _>("sized_from")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("job sized_from: {e}")))?,
        sizing: row
            .try_get::<Option<String>, _>("sizing")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("job sizing: {e}")))?,
        version: row.try_get("version")?,
    })
}

pub fn attempt(row: &AnyRow) -> Result<Attempt, StoreError> {
    let backend_ref: Option<String> = row.try_get("backend_ref")?;
    Ok(Attempt {
        job_id: job_id(row.try_get("job_id")?)?,
        attempt: count(row.try_get("attempt")?),
        backend: row.try_get("backend")?,
        backend_ref: backend_ref
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("attempt backend_ref: {e}")))?,
        state: state(&row.try_get::<String, _>("state")?)?,
        created_at: time(row.try_get("created_at")?),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(time),
        failure_reason: row.try_get("failure_reason")?,
        failure_class: failure_class(row.try_get("failure_class")?)?,
        remediation: row
            .try_get::<Option<String>, _>("remediation")?
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("attempt remediation: {e}")))?,
    })
}

pub fn event(row: &AnyRow) -> Result<Event, StoreError> {
    let from: Option<String> = row.try_get("from_state")?;
    Ok(Event {
        id: row.try_get("id")?,
        job_id: job_id(row.try_get("job_id")?)?,
        attempt: row.try_get::<Option<i64>, _>("attempt")?.map(count),
        from: from.as_deref().map(state).transpose()?,
        to: state(&row.try_get::<String, _>("to_state")?)?,
        at: time(row.try_get("at")?),
        reason: row.try_get("reason")?,
        detail: row.try_get("detail")?,
    })
}

pub fn session(row: &AnyRow) -> Result<Session, StoreError> {
    let spec: String = row.try_get("spec")?;
    let id: String = row.try_get("id")?;
    let backend_ref: Option<String> = row.try_get("backend_ref")?;
    Ok(Session {
        id: session_id(id)?,
        team: row.try_get("team")?,
        env: row.try_get("env")?,
        name: row.try_get("name")?,
        namespace: row.try_get("namespace")?,
        state: session_state(&row.try_get::<String, _>("state")?)?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("session spec: {e}")))?,
        starts: count(row.try_get("starts")?),
        backend_ref: backend_ref
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("session backend_ref: {e}")))?,
        endpoint: row.try_get("endpoint")?,
        reason: row.try_get("reason")?,
        created_at: time(row.try_get("created_at")?),
        updated_at: time(row.try_get("updated_at")?),
        last_active_at: time(row.try_get("last_active_at")?),
        deleted_at: row.try_get::<Option<i64>, _>("deleted_at")?.map(time),
        version: row.try_get("version")?,
    })
}

pub fn session_event(row: &AnyRow) -> Result<SessionEvent, StoreError> {
    let from: Option<String> = row.try_get("from_state")?;
    Ok(SessionEvent {
        id: row.try_get("id")?,
        session_id: session_id(row.try_get("session_id")?)?,
        from: from.as_deref().map(session_state).transpose()?,
        to: session_state(&row.try_get::<String, _>("to_state")?)?,
        at: time(row.try_get("at")?),
        reason: row.try_get("reason")?,
    })
}

fn session_id(raw: String) -> Result<SessionId, StoreError> {
    SessionId::parse(&raw).ok_or_else(|| StoreError::Corrupt(format!("session id {raw:?}")))
}

fn session_state(raw: &str) -> Result<SessionState, StoreError> {
    SessionState::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("session state {raw:?}")))
}

fn job_id(raw: String) -> Result<JobId, StoreError> {
    JobId::parse(&raw).ok_or_else(|| StoreError::Corrupt(format!("job id {raw:?}")))
}

fn state(raw: &str) -> Result<JobState, StoreError> {
    JobState::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("job state {raw:?}")))
}

fn failure_class(raw: Option<String>) -> Result<Option<FailureClass>, StoreError> {
    raw.map(|c| {
        FailureClass::parse(&c).ok_or_else(|| StoreError::Corrupt(format!("failure class {c:?}")))
    })
    .transpose()
}

fn count(raw: i64) -> u32 {
    u32::try_from(raw).unwrap_or(0)
}

pub(super) fn time(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}
