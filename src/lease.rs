//! Leases: how several replicas on one Postgres share the background work instead of each
//! doing all of it.
//!
//! Two leases, each a row in the store (`leases`): `jobs` (the job reconciler's turns and the
//! orphan sweep) and `global` (the session reconciler's state changes and namespace repair).
//! Every replica tries to take each lease; the one that holds it does that work, renewing it
//! every [`LeaseSettings::renew`], and gives it back at shutdown. When the holder dies or
//! hangs, its lease expires after [`LeaseSettings::ttl`] and another replica takes it with the
//! next term. Every job write the reconciler makes carries the term it acts under
//! ([`Fence`]): once a successor holds a newer term, a paused ex-holder's writes are refused
//! (`Store::job_save_fenced`). The API, the gateway and the session activity every replica
//! sees stay on every replica.
//!
//! A holder also stops acting on its own as soon as it cannot renew within the TTL (a database
//! outage, a long pause): [`Lease::current`] is `None` once the last renewal is older than the
//! TTL less a safety margin, before any successor could have taken over.
//!
//! On SQLite (one process per file, see `store::writer`) the single replica takes both leases
//! at startup and keeps them.

use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::{Fence, Store};

/// The lease of the job reconciler and the orphan sweep.
pub const JOBS: &str = "jobs";
/// The lease of the session reconciler and namespace repair.
pub const GLOBAL: &str = "global";

#[derive(Clone, Copy, Debug)]
pub struct LeaseSettings {
    /// How long a lease lasts without renewal: the longest a dead holder's work waits.
    pub ttl: Duration,
    /// How often the holder renews (and a non-holder tries to take it).
    pub renew: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            ttl: Duration::from_secs(10),
            renew: Duration::from_secs(2),
        }
    }
}

/// One lease as this replica sees it; shared by the task that keeps it and the work it guards.
pub struct Lease {
    name: &'static str,
    holder: String,
    settings: LeaseSettings,
    /// The term held and when it was last renewed (`None`: not held).
    held: Mutex<Option<(Fence, Instant)>>,
    /// Bumped at every change of `held`, for those waiting to start their work.
    changed: watch::Sender<u64>,
}

impl Lease {
    pub fn new(name: &'static str, holder: &str, settings: LeaseSettings) -> Self {
        Lease {
            name,
            holder: holder.to_owned(),
            settings,
            held: Mutex::new(None),
            changed: watch::channel(0).0,
        }
    }

    /// The term this replica holds, while its last renewal is recent enough that no other
    /// replica can have taken the lease (the TTL less a margin for clock skew and pauses).
    pub fn current(&self) -> Option<Fence> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (fence, renewed) = held.as_ref()?;
        let safe = self.settings.ttl.saturating_sub(self.settings.renew);
        (renewed.elapsed() < safe).then(|| fence.clone())
    }

    /// Waits until the lease may have changed hands (or `renew` passed, as a safety net).
    pub async fn changed(&self) {
        let mut changes = self.changed.subscribe();
        let _ = tokio::time::timeout(self.settings.renew, changes.changed()).await;
    }

    /// Takes and renews the lease until `shutdown`, then gives it back.
    pub async fn keep(&self, store: Store, shutdown: CancellationToken) {
        loop {
            self.step(&store).await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.settings.renew) => {}
            }
        }
        if let Some(fence) = self.set(None)
            && let Err(err) = store.lease_release(&fence, &self.holder).await
        {
            tracing::warn!(lease = self.name, error = %err, "could not give the lease back; it expires on its own");
        }
    }

    /// One renewal (when held) or one try to take it (when not).
    async fn step(&self, store: &Store) {
        let asked = Instant::now();
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(self.settings.ttl).unwrap_or_default();
        let held = self.held_fence();
        let result = match &held {
            Some(fence) => store
                .lease_renew(fence, &self.holder, until)
                .await
                .map(|kept| kept.then(|| fence.clone())),
            None => store
                .lease_take(self.name, &self.holder, now, until)
                .await
                .map(|term| {
                    term.map(|term| Fence {
                        lease: self.name.into(),
                        term,
                    })
                }),
        };
        match (held, result) {
            (_, Ok(Some(fence))) => {
                if self.set(Some((fence.clone(), asked))).as_ref() != Some(&fence) {
                    tracing::info!(lease = self.name, term = fence.term, holder = %self.holder, "lease taken: this replica does its work");
                }
            }
            (Some(fence), Ok(None)) => {
                self.set(None);
                tracing::warn!(
                    lease = self.name,
                    term = fence.term,
                    "lease lost to another replica; its work stops here"
                );
            }
            (None, Ok(None)) => {}
            // Not renewed: `current()` turns `None` by itself once the renewal is too old.
            (_, Err(err)) => {
                tracing::warn!(lease = self.name, error = %err, "cannot reach the store to keep the lease")
            }
        }
    }

    fn held_fence(&self) -> Option<Fence> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.as_ref().map(|(fence, _)| fence.clone())
    }

    /// Records what is held; returns the fence held before.
    fn set(&self, value: Option<(Fence, Instant)>) -> Option<Fence> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let before = held.take().map(|(fence, _)| fence);
        let changed = before.as_ref() != value.as_ref().map(|(fence, _)| fence);
        *held = value;
        drop(held);
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
        before
    }
}

/// This replica's name in lease rows: host name and process id, plus random bits so a
/// restarted process (same pid in a fresh container) is never mistaken for its predecessor.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sk8".into());
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    let random: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}/{}/{random}", std::process::id())
}
