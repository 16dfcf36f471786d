//! Sessions as callers see them: create (or find) one, read, list, delete, and what the gateway
//! needs (resume a stopped session). The session reconciler does the rest.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use super::namespaces::guard::{Footprint, NamespaceGuard};
use super::{DEFAULT_PAGE, MAX_PAGE, decode_page_token, encode_page_token, may_act};
use crate::audit::{Audit, AuditEvent};
use crate::auth::{Identity, Role};
use crate::backend::Backend;
use crate::domain::jobspec::Format;
use crate::domain::{Session, SessionEvent, SessionId, SessionSpec, SessionState, SpecDefaults};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::record::confs::apply_team_policy;
use crate::store::{SessionChange, SessionFilter, SessionInsert, Store};

/// How many times a write re-reads a session that changed under it before giving up.
const WRITE_TRIES: usize = 5;

#[derive(Clone)]
pub struct SessionService {
    store: Store,
    /// Where the sessions' servers run (asked where a server's Spark UI is).
    backend: Arc<dyn Backend>,
    defaults: SpecDefaults,
    /// `host:port` of the gateway, for connection strings.
    gateway: String,
    /// Wakes the session reconciler.
    wake: Arc<Notify>,
    /// The submission guard of team namespaces.
    guard: Option<NamespaceGuard>,
    audit: Audit,
    limits: Arc<Limits>,
}

/// A session with how to connect to it: the answer to `GET /v1/sessions/{id}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: Session,
    /// `sc://…` for `SparkSession.builder.remote(…)`.
    pub connection_string: String,
}

/// One page of a session listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionPage {
    pub sessions: Vec<SessionDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// What a create found.
pub enum Created {
    New(SessionDetail),
    /// The session of that team, env and name, (re)started if it was not running.
    Existing(SessionDetail),
}

impl SessionService {
    pub fn new(
        store: Store,
        backend: Arc<dyn Backend>,
        defaults: SpecDefaults,
        gateway: String,
        wake: Arc<Notify>,
        audit: Audit,
        limits: Arc<Limits>,
    ) -> Self {
        SessionService {
            store,
            backend,
            defaults,
            gateway,
            wake,
            guard: None,
            audit,
            limits,
        }
    }

    /// Sessions pass the namespace guard before they are stored.
    pub fn with_guard(mut self, guard: NamespaceGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Creates a session, or returns the one of that team, env and name (starting it again
    /// when it was stopped or had failed); audited.
    pub async fn create(&self, body: &[u8], format: Format, caller: &Identity) -> Result<Created> {
        let parsed = SessionSpec::parse(body, format, &self.defaults);
        let team = parsed.as_ref().ok().map(|spec| spec.team.to_string());
        let result = match parsed {
            Ok(spec) => self.admit(spec, caller).await,
            Err(err) => Err(err),
        };
        let resource = result.as_ref().ok().map(|created| {
            let (Created::New(detail) | Created::Existing(detail)) = created;
            format!("session/{}", detail.session.id)
        });
        self.audit.record(
            AuditEvent::by(caller, "session.create")
                .team(team)
                .resource(resource)
                .outcome(&result),
        );
        result
    }

    async fn admit(&self, spec: SessionSpec, caller: &Identity) -> Result<Created> {
        may_act(caller, Role::Member, spec.team.as_str(), "start sessions")?;
        let mut spec = spec;
        if let Some(guard) = &self.guard {
            let footprint = Footprint::of_session(&spec);
            if let Some(team) = guard.admit(&spec.team, &spec.env, &footprint).await? {
                apply_team_policy(&mut spec.spark_conf, team.event_log);
            }
        }
        let existing = self
            .store
            .session_by_name(spec.team.as_str(), spec.env.as_str(), spec.name.as_str())
            .await?;
        if let Some(existing) = existing {
            let session = self.start_again(existing, "created again").await?;
            return Ok(Created::Existing(self.detail(session)));
        }
        self.check_session_cap(spec.team.as_str()).await?;
        match self
            .store
            .session_insert(&Session::new(spec, crate::domain::now()))
            .await?
        {
            SessionInsert::Created(session) => {
                tracing::info!(session = %session.id, team = %session.team, name = %session.name, "session created");
                self.wake.notify_one();
                Ok(Created::New(self.detail(session)))
            }
            // Created by another request meanwhile.
            SessionInsert::Existing(existing) => {
                let session = self.start_again(existing, "created again").await?;
                Ok(Created::Existing(self.detail(session)))
            }
        }
    }

    /// Refuses to start one more of `team`'s sessions at `limits.maxSessionsPerTeam`.
    async fn check_session_cap(&self, team: &str) -> Result<()> {
        let cap = self.limits.max_sessions_per_team;
        if cap == 0 {
            return Ok(());
        }
        let running = self.store.session_count_running(team).await?;
        if running < i64::from(cap) {
            return Ok(());
        }
        Err(Error::TooManyRequests {
            message: format!(
                "team {team} has {running} sessions running, its limit \
                 (limits.maxSessionsPerTeam: {cap}); delete one with `sk8 session delete ID` \
                 (`sk8 session list --team {team}` shows them)"
            ),
            retry_after: None,
        })
    }

    pub async fn get(&self, id: &str, caller: &Identity) -> Result<SessionDetail> {
        Ok(self.detail(self.find_for(id, caller).await?))
    }

    pub async fn list(
        &self,
        mut filter: SessionFilter,
        page_token: Option<&str>,
        caller: &Identity,
    ) -> Result<SessionPage> {
        filter.visible_teams = caller.visible_teams();
        if let Some(token) = page_token {
            filter.before = Some(decode_page_token(token, SessionId::parse)?);
        }
        if filter.limit == 0 {
            filter.limit = DEFAULT_PAGE;
        }
        filter.limit = filter.limit.clamp(1, MAX_PAGE);
        let sessions = self.store.session_list(&filter).await?;
        let next_page_token = (sessions.len() == filter.limit as usize)
            .then(|| sessions.last().map(|s| encode_page_token(&s.id)))
            .flatten();
        Ok(SessionPage {
            sessions: sessions.into_iter().map(|s| self.detail(s)).collect(),
            next_page_token,
        })
    }

    pub async fn events(&self, id: &str, caller: &Identity) -> Result<Vec<SessionEvent>> {
        let session = self.find_for(id, caller).await?;
        Ok(self.store.session_event_list(&session.id).await?)
    }

    /// Deletes a session: its server is stopped and it never resumes. Deleting twice is a
    /// no-op. Audited.
    pub async fn delete(&self, id: &str, caller: &Identity) -> Result<SessionDetail> {
        let result = self.delete_tries(id, caller).await;
        self.audit.record(
            AuditEvent::by(caller, "session.delete")
                .team(result.as_ref().ok().map(|d| d.session.team.clone()))
                .resource(format!("session/{id}"))
                .outcome(&result),
        );
        result
    }

    async fn delete_tries(&self, id: &str, caller: &Identity) -> Result<SessionDetail> {
        for _ in 0..WRITE_TRIES {
            let mut session = self.find_for(id, caller).await?;
            may_act(caller, Role::Member, &session.team, "delete sessions")?;
            if session.deleted_at.is_some() {
                return Ok(self.detail(session));
            }
            let from = session.state;
            let to = match from {
                SessionState::Starting | SessionState::Ready | SessionState::Stopping => {
                    SessionState::Stopping
                }
                SessionState::Stopped | SessionState::Failed => from,
            };
            session.state = to;
            session.deleted_at = Some(crate::domain::now());
            session.reason = Some("deleted".into());
            let change = SessionChange {
                from,
                to,
                reason: "deleted".into(),
            };
            if self.store.session_save(&mut session, Some(&change)).await? {
                self.wake.notify_one();
                return Ok(self.detail(session));
            }
        }
        Err(Error::Unavailable(format!(
            "session {id} is changing state rapidly; retry the delete"
        )))
    }

    /// Asks for a stopped session to be started again (the gateway, on `caller`'s RPC for
    /// it); audited.
    pub async fn resume(&self, id: &SessionId, caller: &Identity) -> Result<Session> {
        let session = self.find(id.as_str()).await?;
        if !session.resumable() {
            return Ok(session);
        }
        let team = session.team.clone();
        let result = self
            .start_again(session, "resumed by an RPC through the gateway")
            .await;
        self.audit.record(
            AuditEvent::by(caller, "session.resume")
                .team(team)
                .resource(format!("session/{id}"))
                .outcome(&result),
        );
        result
    }

    /// Any session, whoever asks (the gateway checks the caller itself).
    pub async fn find(&self, id: &str) -> Result<Session> {
        let id = SessionId::parse(id).ok_or_else(|| not_found(id))?;
        self.store
            .session_get(&id)
            .await?
            .ok_or_else(|| not_found(id.as_str()))
    }

    /// A session the caller may see; another team's is not found, like one that never was.
    pub async fn find_for(&self, id: &str, caller: &Identity) -> Result<Session> {
        let session = self.find(id).await?;
        if !caller.sees(&session.team) {
            return Err(not_found(id));
        }
        Ok(session)
    }

    /// Where the live Spark UI of a READY session's server is, for the caller's proxy
    /// (`/v1/sessions/{id}/ui/`): 409 while the session is not serving, 404 on a server
    /// without a UI (Sail's).
    pub async fn spark_ui_upstream(&self, id: &str, caller: &Identity) -> Result<String> {
        let session = self.find_for(id, caller).await?;
        let (SessionState::Ready, Some(server), Some(endpoint)) =
            (session.state, &session.backend_ref, &session.endpoint)
        else {
            return Err(Error::Conflict(format!(
                "session {id} is {}: its Spark UI lives only while its server serves; the \
                 next query resumes it",
                session.state.as_str()
            )));
        };
        self.backend
            .server_ui(server, endpoint)
            .await
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "the server of session {id} has no Spark UI, or has not announced it yet \
                     (Sail's servers have none; Apache Spark's announce it as they start)"
                ))
            })
    }

    /// STARTING again for a stopped or failed (not deleted) session; as it is otherwise.
    async fn start_again(&self, mut session: Session, why: &str) -> Result<Session> {
        for _ in 0..WRITE_TRIES {
            if session.deleted_at.is_some()
                || !matches!(session.state, SessionState::Stopped | SessionState::Failed)
            {
                return Ok(session);
            }
            self.check_session_cap(&session.team).await?;
            let change = SessionChange {
                from: session.state,
                to: SessionState::Starting,
                reason: why.into(),
            };
            session.state = SessionState::Starting;
            session.starts += 1;
            session.reason = None;
            session.backend_ref = None;
            session.endpoint = None;
            session.last_active_at = crate::domain::now();
            if self.store.session_save(&mut session, Some(&change)).await? {
                self.wake.notify_one();
                return Ok(session);
            }
            session = self.find(session.id.as_str()).await?;
        }
        Err(Error::Unavailable(format!(
            "session {} is changing state rapidly; retry",
            session.id
        )))
    }

    fn detail(&self, session: Session) -> SessionDetail {
        SessionDetail {
            connection_string: format!("sc://{}/;x-sk8-session={}", self.gateway, session.id),
            session,
        }
    }
}

/// What a caller hears of a session that does not exist or is not theirs.
pub(crate) fn not_found(id: &str) -> Error {
    Error::NotFound(format!(
        "session {id:?} not found; `sk8 session list` shows the sessions you can see"
    ))
}
