//! The session reconciler: moves sessions along `STARTING → READY → STOPPING → STOPPED |
//! FAILED` by asking the backend about their servers, stops idle ones, and keeps the gateway's
//! activity marks in the store. Sessions are few, so each pass reads every live one. With
//! several replicas, each records its own gateway's activity; only the holder of the `global`
//! lease moves sessions.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendError, ServerStatus, SessionRequest, StopProgress};
use crate::domain::{Session, SessionState};
use crate::gateway::activity::Activity;
use crate::gateway::token::UpstreamTokens;
use crate::lease::Lease;
use crate::store::{SessionChange, Store, StoreError};

#[derive(Clone, Debug)]
pub struct SessionSettings {
    pub interval: Duration,
    /// A server that does not serve within this long after its start is FAILED.
    pub start_timeout: Duration,
}

pub struct SessionReconciler {
    store: Store,
    backend: Arc<dyn Backend>,
    settings: SessionSettings,
    wake: Arc<Notify>,
    activity: Arc<Activity>,
    tokens: Arc<UpstreamTokens>,
    /// The `global` lease: sessions change state only on its holder (none: always).
    lease: Option<Arc<Lease>>,
}

impl SessionReconciler {
    pub fn new(
        store: Store,
        backend: Arc<dyn Backend>,
        settings: SessionSettings,
        wake: Arc<Notify>,
        activity: Arc<Activity>,
        tokens: Arc<UpstreamTokens>,
    ) -> Self {
        SessionReconciler {
            store,
            backend,
            settings,
            wake,
            activity,
            tokens,
            lease: None,
        }
    }

    /// Changes sessions only while this replica holds `lease`; every replica still records the
    /// activity its gateway saw.
    pub fn with_lease(mut self, lease: Arc<Lease>) -> Self {
        self.lease = Some(lease);
        self
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(err) = self.pass().await {
                tracing::warn!(error = %err, "session pass failed; the next pass retries");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.interval) => {}
            }
        }
        tracing::info!("session reconciler stopped");
    }

    async fn pass(&self) -> Result<(), StoreError> {
        // RPCs through this gateway since the last pass, and those still in flight (one long
        // query is one RPC), count as activity.
        for (session, at) in self.activity.take_used() {
            self.store.session_touch(&session, at).await?;
        }
        if self.lease.as_ref().is_some_and(|l| l.current().is_none()) {
            return Ok(());
        }
        for session in self.store.session_list_live().await? {
            let id = session.id.clone();
            if let Err(err) = self.reconcile(session).await {
                tracing::warn!(session = %id, error = %err, "session step failed; retrying next pass");
            }
        }
        Ok(())
    }

    async fn reconcile(&self, session: Session) -> Result<(), StepError> {
        match (session.state, session.backend_ref.clone()) {
            (SessionState::Starting, None) => self.start(session).await,
            (SessionState::Starting, Some(server)) => {
                let status = self.backend.server_status(&server).await?;
                self.starting(session, status).await
            }
            (SessionState::Ready, Some(server)) => {
                let status = self.backend.server_status(&server).await?;
                self.ready(session, status).await
            }
            (SessionState::Stopping, Some(server)) => {
                if self.backend.server_stop(&server).await? == StopProgress::Gone {
                    let reason = session.reason.clone().unwrap_or_else(|| "stopped".into());
                    self.save(session, SessionState::Stopped, reason).await?;
                }
                Ok(())
            }
            (SessionState::Stopping | SessionState::Ready, None) => {
                let reason = session.reason.clone().unwrap_or_else(|| "stopped".into());
                self.save(session, SessionState::Stopped, reason).await
            }
            _ => Ok(()),
        }
    }

    /// Has the backend start server number `starts` (counted when the session was created or
    /// resumed): a start repeated after a crash finds the server by its name instead of
    /// starting a second one.
    async fn start(&self, mut session: Session) -> Result<(), StepError> {
        let request = SessionRequest {
            session_id: session.id.clone(),
            start: session.starts,
            spec: session.spec.clone(),
            token: self.tokens.for_session(&session.id),
        };
        match self.backend.server_start(&request).await {
            Ok(server) => {
                session.backend_ref = Some(server);
                session.last_active_at = Utc::now();
                self.store.session_save(&mut session, None).await?;
                self.wake.notify_one();
                Ok(())
            }
            Err(BackendError::Rejected { reason, .. }) => {
                self.save(session, SessionState::Failed, reason).await
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn starting(&self, session: Session, status: ServerStatus) -> Result<(), StepError> {
        match status {
            ServerStatus::Ready { endpoint } => {
                let mut session = session;
                let (now, resumed) = (Utc::now(), session.starts > 1);
                // A first start is waited for from the create; a resume from its new start.
                let waited = now
                    - if resumed {
                        session.last_active_at
                    } else {
                        session.created_at
                    };
                let (team, env) = (session.team.clone(), session.env.clone());
                session.endpoint = Some(endpoint.clone());
                session.last_active_at = now;
                let reason = format!("serving Spark Connect at {endpoint}");
                if self.saved(session, SessionState::Ready, reason).await? {
                    crate::telemetry::workload::session_ready(&team, &env, resumed, waited);
                }
                Ok(())
            }
            ServerStatus::Ended { reason, .. } => {
                self.save(session, SessionState::Failed, reason).await
            }
            ServerStatus::Starting { detail } => {
                let waited = (Utc::now() - session.last_active_at)
                    .to_std()
                    .unwrap_or_default();
                if waited < self.settings.start_timeout {
                    return Ok(());
                }
                let reason = format!(
                    "did not serve within gateway.startTimeoutSeconds ({}s): {detail}",
                    self.settings.start_timeout.as_secs()
                );
                self.save(session, SessionState::Stopping, reason).await
            }
        }
    }

    async fn ready(&self, session: Session, status: ServerStatus) -> Result<(), StepError> {
        if let ServerStatus::Ended {
            reason,
            stopped_by_sk8,
        } = status
        {
            // A READY server sk8 stopped went with sk8's shutdown: resumable like an idle
            // stop. Anything else is a failure.
            let to = if stopped_by_sk8 {
                SessionState::Stopped
            } else {
                SessionState::Failed
            };
            let mut session = session;
            session.endpoint = None;
            return self.save(session, to, reason).await;
        }
        let idle = (Utc::now() - session.last_active_at)
            .to_std()
            .unwrap_or_default();
        let limit = Duration::from_secs(session.spec.idle_timeout_seconds);
        if idle >= limit && !self.activity.busy(&session.id) {
            let reason = format!("idle for {}s (idleTimeoutSeconds)", limit.as_secs());
            let mut session = session;
            session.endpoint = None;
            return self.save(session, SessionState::Stopping, reason).await;
        }
        Ok(())
    }

    async fn save(
        &self,
        session: Session,
        to: SessionState,
        reason: String,
    ) -> Result<(), StepError> {
        self.saved(session, to, reason).await.map(drop)
    }

    /// [`Self::save`], telling whether this replica's save won (another may have moved the
    /// session first).
    async fn saved(
        &self,
        mut session: Session,
        to: SessionState,
        reason: String,
    ) -> Result<bool, StepError> {
        let change = SessionChange {
            from: session.state,
            to,
            reason: reason.clone(),
        };
        tracing::info!(session = %session.id, from = %session.state, to = %to, %reason, "session state");
        session.state = to;
        session.reason = (to != SessionState::Ready).then_some(reason);
        let saved = self.store.session_save(&mut session, Some(&change)).await?;
        // The next step (stop a STOPPING server) need not wait for the interval.
        if saved && to == SessionState::Stopping {
            self.wake.notify_one();
        }
        Ok(saved)
    }
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}
