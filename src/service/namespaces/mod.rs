//! Team namespaces as callers see them: apply (create or update) a NamespaceSpec, read it with
//! what the clusters hold and any drift, list, delete; and the submission guard jobs and
//! sessions pass through ([`guard`]). REST and gRPC call these same functions.
//!
//! The desired spec is stored first, then applied; a failed apply is retried by the namespace
//! reconciler, which also repairs drift. A forced delete cancels the namespace's jobs and
//! deletes its sessions first. Secret values never pass through here: the
//! provisioner copies them cluster-side and reports only names and states.

pub mod guard;

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::{DEFAULT_PAGE, MAX_PAGE, decode_page_token, encode_page_token, may_act};
use crate::audit::{Audit, AuditEvent};
use crate::auth::{Identity, Role};
use crate::backend::BackendError;
use crate::backend::namespaces::{ClusterNamespace, NamespaceChanges, ProvisionError, Provisioner};
use crate::domain::jobspec::Format;
use crate::domain::namespace::TeamNamespace;
use crate::domain::{NamespacePolicy, NamespaceSpec};
use crate::error::{Error, Result};
use crate::service::JobService;
use crate::service::sessions::SessionService;
use crate::store::{ActiveWork, NamespaceFilter, NamespaceWrite, Store};

#[derive(Clone)]
pub struct NamespaceService {
    store: Store,
    /// None on backends without clusters: the spec is kept, nothing is applied.
    provisioner: Option<Arc<dyn Provisioner>>,
    policy: NamespacePolicy,
    /// Wakes the namespace reconciler (a delete to finish, an apply to retry).
    changes: Arc<NamespaceChanges>,
    /// What a forced delete cancels.
    jobs: JobService,
    sessions: SessionService,
    audit: Audit,
}

/// A namespace with what its clusters hold: the answer to `GET /v1/namespaces/{team}/{env}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceDetail {
    #[serde(flatten)]
    pub namespace: TeamNamespace,
    /// Each cluster's copy of the namespace, object by object (empty without clusters).
    pub clusters: Vec<ClusterNamespace>,
    /// Some object is missing or differs from the spec, or a cluster could not be read.
    pub drift: bool,
}

/// One page of a namespace listing, by name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacePage {
    pub namespaces: Vec<TeamNamespace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// What an apply did to the stored spec.
pub enum Applied {
    Created(NamespaceDetail),
    /// Updated, or the same spec again (applied again all the same).
    Existing(NamespaceDetail),
}

impl NamespaceService {
    pub fn new(
        store: Store,
        provisioner: Option<Arc<dyn Provisioner>>,
        policy: NamespacePolicy,
        changes: Arc<NamespaceChanges>,
        work: (JobService, SessionService),
        audit: Audit,
    ) -> Self {
        let (jobs, sessions) = work;
        NamespaceService {
            store,
            provisioner,
            policy,
            changes,
            jobs,
            sessions,
            audit,
        }
    }

    fn record<T>(
        &self,
        caller: &Identity,
        action: &str,
        team: &str,
        env: &str,
        result: &Result<T>,
    ) {
        self.audit.record(
            AuditEvent::by(caller, action)
                .team(team.to_owned())
                .resource(format!("namespace/{team}/{env}"))
                .outcome(result),
        );
    }

    /// Validates, stores and applies a spec for `team`/`env`. Applying an unchanged spec
    /// writes nothing to the clusters (server-side apply) but repairs what drifted. Audited.
    pub async fn apply(
        &self,
        team: &str,
        env: &str,
        body: &[u8],
        format: Format,
        caller: &Identity,
    ) -> Result<Applied> {
        let result = self.apply_spec(team, env, body, format, caller).await;
        self.record(caller, "namespace.apply", team, env, &result);
        result
    }

    async fn apply_spec(
        &self,
        team: &str,
        env: &str,
        body: &[u8],
        format: Format,
        caller: &Identity,
    ) -> Result<Applied> {
        let spec = NamespaceSpec::parse(body, format, team, env, &self.policy)?;
        may_act(caller, Role::TeamAdmin, team, "provision namespaces")?;
        if let Some(provisioner) = &self.provisioner {
            provisioner.check(&spec).await.map_err(provision_error)?;
        }
        let write = self.store.namespace_put(&spec).await?;
        let (created, stored) = match write {
            NamespaceWrite::Created(ns) => (true, ns),
            NamespaceWrite::Updated(ns) | NamespaceWrite::Unchanged(ns) => (false, ns),
        };
        tracing::info!(namespace = %stored.namespace, created, "namespace spec stored");
        if let Some(provisioner) = &self.provisioner
            && let Err(err) = provisioner.apply(&spec).await
        {
            self.changes.namespace(stored.namespace.clone());
            return Err(Error::Unavailable(format!(
                "the spec of {} is saved, but applying it failed ({}); sk8 retries on its own, \
                 or apply again",
                stored.namespace,
                provision_error(err)
            )));
        }
        let detail = self.detail(stored).await;
        Ok(if created {
            Applied::Created(detail)
        } else {
            Applied::Existing(detail)
        })
    }

    /// The spec, what each cluster holds, and whether they differ.
    pub async fn get(&self, team: &str, env: &str, caller: &Identity) -> Result<NamespaceDetail> {
        let stored = self.find_for(team, env, caller).await?;
        Ok(self.detail(stored).await)
    }

    pub async fn list(
        &self,
        mut filter: NamespaceFilter,
        page_token: Option<&str>,
        caller: &Identity,
    ) -> Result<NamespacePage> {
        filter.visible_teams = caller.visible_teams();
        if let Some(token) = page_token {
            filter.after = Some(decode_page_token(token, |s| Some(s.to_owned()))?);
        }
        if filter.limit == 0 {
            filter.limit = DEFAULT_PAGE;
        }
        filter.limit = filter.limit.clamp(1, MAX_PAGE);
        let namespaces = self.store.namespace_list(&filter).await?;
        let next_page_token = (namespaces.len() == filter.limit as usize)
            .then(|| namespaces.last().map(|n| encode_page_token(&n.namespace)))
            .flatten();
        Ok(NamespacePage {
            namespaces,
            next_page_token,
        })
    }

    /// Deletes a namespace from its clusters, and then from sk8. Refused while jobs or
    /// sessions run in it, unless `force`: they are cancelled (and deleted) first. Audited.
    pub async fn delete(
        &self,
        team: &str,
        env: &str,
        force: bool,
        caller: &Identity,
    ) -> Result<NamespaceDetail> {
        let result = self.delete_namespace(team, env, force, caller).await;
        self.record(caller, "namespace.delete", team, env, &result);
        result
    }

    async fn delete_namespace(
        &self,
        team: &str,
        env: &str,
        force: bool,
        caller: &Identity,
    ) -> Result<NamespaceDetail> {
        let mut stored = self.find_for(team, env, caller).await?;
        may_act(caller, Role::TeamAdmin, team, "delete namespaces")?;
        let active = self.store.namespace_active_work(team, env).await?;
        if !force && !active.is_empty() {
            return Err(Error::Conflict(format!(
                "{} has {} unfinished job(s) and {} running session(s); cancel them, or delete \
                 with force=true to cancel them and delete everything in it",
                stored.namespace,
                active.jobs.len(),
                active.sessions.len()
            )));
        }
        self.stop_work(&stored.namespace, &active, caller).await?;
        // From here on the reconciler no longer repairs it, and finishes the delete if the
        // clusters cannot be reached now.
        self.store.namespace_mark_deleted(team, env).await?;
        stored.deleted_at = Some(crate::domain::now());
        if let Some(provisioner) = &self.provisioner
            && let Err(err) = provisioner.delete(&stored.spec).await
        {
            self.changes.namespace(stored.namespace.clone());
            return Err(Error::Unavailable(format!(
                "{} is marked for deletion, but deleting it failed ({err}); sk8 retries on its own",
                stored.namespace
            )));
        }
        self.store.namespace_remove(team, env).await?;
        tracing::info!(namespace = %stored.namespace, force, "namespace deleted");
        Ok(NamespaceDetail {
            namespace: stored,
            clusters: Vec::new(),
            drift: false,
        })
    }

    /// Cancels the jobs and deletes the sessions of a namespace being deleted; one that
    /// finished meanwhile is fine.
    async fn stop_work(
        &self,
        namespace: &str,
        active: &ActiveWork,
        caller: &Identity,
    ) -> Result<()> {
        let reason = format!("cancelled: its namespace {namespace} was deleted");
        for job in &active.jobs {
            match self
                .jobs
                .cancel_because(job.as_str(), &reason, caller)
                .await
            {
                Ok(_) | Err(Error::Conflict(_) | Error::NotFound(_)) => {}
                Err(other) => return Err(other),
            }
        }
        for session in &active.sessions {
            self.sessions.delete(session.as_str(), caller).await?;
        }
        Ok(())
    }

    /// A namespace the caller may see; another team's is not found, like one that never was.
    async fn find_for(&self, team: &str, env: &str, caller: &Identity) -> Result<TeamNamespace> {
        let found = self.find(team, env).await;
        match found {
            Ok(_) if !caller.sees(team) => Err(not_found(team, env)),
            other => other,
        }
    }

    /// A namespace that exists and is not being deleted.
    async fn find(&self, team: &str, env: &str) -> Result<TeamNamespace> {
        self.store
            .namespace_get(team, env)
            .await?
            .filter(|ns| ns.deleted_at.is_none())
            .ok_or_else(|| not_found(team, env))
    }

    async fn detail(&self, namespace: TeamNamespace) -> NamespaceDetail {
        let clusters = match &self.provisioner {
            Some(provisioner) => provisioner.observe(&namespace.spec).await,
            None => Vec::new(),
        };
        let drift = !clusters.iter().all(ClusterNamespace::in_sync);
        NamespaceDetail {
            namespace,
            clusters,
            drift,
        }
    }
}

/// An unknown secret is the caller's mistake, naming the reference; the rest is the cluster's.
fn provision_error(err: ProvisionError) -> Error {
    match err {
        ProvisionError::UnknownSecret { index, .. } => {
            Error::invalid(format!("secrets[{index}].name"), err)
        }
        ProvisionError::Backend(BackendError::Transient(message)) => Error::Unavailable(message),
        ProvisionError::Backend(other) => Error::Unavailable(other.to_string()),
    }
}
fn not_found(team: &str, env: &str) -> Error {
    Error::NotFound(format!(
        "no namespace for team {team:?} and env {env:?}; `sk8 namespace list` shows the \
         namespaces you can see"
    ))
}
