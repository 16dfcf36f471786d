//! The audit log: who did what to which resource, and how it ended.
//!
//! Every change a caller asks for (submit, cancel, session create and delete, namespace apply
//! and delete) and every refusal at the door (an unauthenticated or forbidden request, a
//! gateway RPC for a session the caller may not use) becomes an [`AuditEvent`]: a structured
//! log event (target `sk8::audit`, written at once) and a row in the store's `audit_events`,
//! written in batches by a background task so no request waits on it. Events carry names and
//! ids, never credentials or request bodies. While the store is unreachable, events wait in a
//! bounded backlog and are written when it answers again; beyond the bound rows are dropped
//! (counted in `sk8_audit_dropped_total`) rather than slowing requests; the log still has them.
//! The writer also deletes rows older than `audit.retentionDays`, hourly.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use crate::auth::Identity;
use crate::error::Error;
use crate::service::{DEFAULT_PAGE, MAX_PAGE, decode_page_token, encode_page_token};
use crate::store::{AuditFilter, Store};

/// Events waiting for the writer at most, in its channel and again in its backlog (while the
/// store is down); beyond, rows are dropped (the log keeps them).
const QUEUE: usize = 10_000;
/// The first wait before writing again after the store failed, and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Rows written in one statement at most.
const BATCH: usize = 200;
/// Longest detail kept (an error message).
const MAX_DETAIL: usize = 512;
/// How often rows past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One audited action.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    /// The authenticated user, or `anonymous`.
    pub actor: String,
    /// `job.submit`, `job.cancel`, `session.create`, `session.delete`, `session.resume`,
    /// `namespace.apply`, `namespace.delete`, `http.denied`, `connect.denied`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// `job/<id>`, `session/<id>`, `namespace/<team>/<env>`, or the route refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `ok`, or the error code (`invalid_request`, `forbidden`, `too_many_requests`, …).
    pub outcome: String,
    /// The refusal's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(actor: &str, action: &str) -> Self {
        AuditEvent {
            at: Utc::now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            team: None,
            resource: None,
            outcome: "ok".into(),
            detail: None,
        }
    }

    /// An action of an authenticated caller.
    pub fn by(caller: &Identity, action: &str) -> Self {
        AuditEvent::new(&caller.user, action)
    }

    /// The team concerned, when known (a refused manifest may not name one).
    pub fn team(mut self, team: impl Into<Option<String>>) -> Self {
        self.team = team.into();
        self
    }

    pub fn resource(mut self, resource: impl Into<Option<String>>) -> Self {
        self.resource = resource.into();
        self
    }

    /// How it ended: `ok`, or the error's code and message.
    pub fn outcome<T>(self, result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => self,
            Err(err) => self.failed(err),
        }
    }

    /// Refused or failed with `err`: its code, and its message.
    pub fn failed(mut self, err: &Error) -> Self {
        self.outcome = err.code().into();
        let mut detail = err.to_string();
        if detail.len() > MAX_DETAIL {
            let cut = (0..=MAX_DETAIL)
                .rev()
                .find(|i| detail.is_char_boundary(*i))
                .unwrap_or(0);
            detail.truncate(cut);
        }
        self.detail = Some(detail);
        self
    }
}

/// An event as stored, with its id (newer events have larger ids).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// One page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Where events go, and where they are read back; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    queue: mpsc::Sender<AuditEvent>,
    store: Store,
}

impl Audit {
    /// The audit log and its writer, which ends once every `Audit` is dropped and the queue is
    /// written. Rows older than `retention` are deleted hourly (`None`: kept for ever).
    pub fn start(store: Store, retention: Option<Duration>) -> (Audit, JoinHandle<()>) {
        let (queue, events) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write(store.clone(), events, retention));
        (Audit { queue, store }, writer)
    }

    /// The events `caller` may read, newest first: a team admin's teams' events, or every
    /// event for a platform admin.
    pub async fn list(
        &self,
        mut filter: AuditFilter,
        page_token: Option<&str>,
        caller: &Identity,
    ) -> Result<AuditPage, Error> {
        filter.visible_teams = caller.visible_teams();
        if let Some(token) = page_token {
            filter.before = Some(decode_page_token(token, |s| s.parse().ok())?);
        }
        if filter.limit == 0 {
            filter.limit = DEFAULT_PAGE;
        }
        filter.limit = filter.limit.clamp(1, MAX_PAGE);
        let rows = self.store.audit_list(&filter).await?;
        let next_page_token = (rows.len() == filter.limit as usize)
            .then(|| rows.last().map(|(id, _)| encode_page_token(id)))
            .flatten();
        Ok(AuditPage {
            events: rows
                .into_iter()
                .map(|(id, event)| AuditRecord { id, event })
                .collect(),
            next_page_token,
        })
    }

    pub fn record(&self, event: AuditEvent) {
        tracing::info!(
            target: "sk8::audit",
            actor = %event.actor,
            action = %event.action,
            team = event.team.as_deref(),
            resource = event.resource.as_deref(),
            outcome = %event.outcome,
            detail = event.detail.as_deref(),
            "audit"
        );
        if self.queue.try_send(event).is_err() {
            metrics::counter!("sk8_audit_dropped_total").increment(1);
        }
    }
}

/// Writes queued events in batches, and prunes what is past its retention. While the store
/// does not take them, events wait in the [`Backlog`] and are written when it does again.
async fn write(store: Store, mut events: mpsc::Receiver<AuditEvent>, retention: Option<Duration>) {
    let mut backlog = Backlog::default();
    let mut incoming = Vec::with_capacity(BATCH);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        let retry_at = backlog.retry_at;
        tokio::select! {
            received = events.recv_many(&mut incoming, BATCH) => {
                if received == 0 {
                    break;
                }
                backlog.push(incoming.drain(..));
            }
            _ = tokio::time::sleep_until(retry_at), if !backlog.is_empty() => {}
            _ = prune.tick(), if retention.is_some() => {
                if let Some(retention) = retention {
                    prune_older(&store, retention).await;
                }
            }
        }
        if tokio::time::Instant::now() >= backlog.retry_at {
            backlog.flush(&store).await;
        }
    }
    // Shutting down: a last few tries, then what is left is counted as dropped.
    for _ in 0..3 {
        if backlog.is_empty() {
            return;
        }
        backlog.flush(&store).await;
    }
    backlog.drop_all();
}

/// Events the store has not taken yet, oldest first, at most [`QUEUE`]; beyond that new events
/// are dropped (counted in `sk8_audit_dropped_total`; the log has them).
struct Backlog {
    events: VecDeque<AuditEvent>,
    /// When the next write may be tried: later and later while the store fails.
    retry_at: tokio::time::Instant,
    backoff: Duration,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog {
            events: VecDeque::new(),
            retry_at: tokio::time::Instant::now(),
            backoff: RETRY_FIRST,
        }
    }
}

impl Backlog {
    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn push(&mut self, events: impl Iterator<Item = AuditEvent>) {
        let mut dropped = 0u64;
        for event in events {
            if self.events.len() < QUEUE {
                self.events.push_back(event);
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            metrics::counter!("sk8_audit_dropped_total").increment(dropped);
        }
    }

    /// Writes batches until the backlog is empty or the store fails; after a failure the next
    /// try waits (doubling, up to [`RETRY_MAX`]).
    async fn flush(&mut self, store: &Store) {
        while !self.events.is_empty() {
            let n = self.events.len().min(BATCH);
            let batch = &self.events.make_contiguous()[..n];
            if let Err(err) = store.audit_insert(batch).await {
                if self.backoff == RETRY_FIRST {
                    tracing::warn!(error = %err, waiting = self.events.len(),
                        "audit rows not written yet; kept and retried (the log has them)");
                }
                self.retry_at = tokio::time::Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(RETRY_MAX);
                return;
            }
            self.events.drain(..n);
        }
        if self.backoff != RETRY_FIRST {
            tracing::info!("audit rows written again after a store outage");
        }
        self.backoff = RETRY_FIRST;
    }

    fn drop_all(&mut self) {
        tracing::warn!(
            rows = self.events.len(),
            "audit rows not written at shutdown; the log has them"
        );
        metrics::counter!("sk8_audit_dropped_total").increment(self.events.len() as u64);
        self.events.clear();
    }
}

async fn prune_older(store: &Store, retention: Duration) {
    let Ok(age) = chrono::Duration::from_std(retention) else {
        return;
    };
    match store.audit_prune(Utc::now() - age).await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "audit rows past audit.retentionDays deleted"),
        Err(err) => {
            tracing::warn!(error = %err, "pruning the audit log failed; the next hour retries")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_code_and_a_bounded_message() {
        let long = "é".repeat(600);
        let result: Result<(), Error> = Err(Error::Forbidden(long));
        let event = AuditEvent::new("ann", "job.cancel").outcome(&result);
        assert_eq!(event.outcome, "forbidden");
        let detail = event.detail.unwrap();
        assert!(detail.len() <= MAX_DETAIL && detail.starts_with('é'));
    }

    #[test]
    fn success_is_ok_without_detail() {
        let event = AuditEvent::new("ann", "job.submit").outcome(&Ok::<_, Error>(()));
        assert_eq!((event.outcome.as_str(), event.detail), ("ok", None));
    }
}
