//! The backend seam: where attempts actually run.
//!
//! The reconciler drives every backend through [`Backend`]: start an attempt, observe it, stop
//! it, read its driver log. `local` runs `spark-submit` child processes; `noop` succeeds
//! immediately (to measure sk8 itself); the Kubernetes backend implements the same trait.
//! Backends keep no durable state of their own: everything needed to find an attempt again
//! after a restart is in its [`BackendRef`], which the store keeps.

pub mod kubernetes;
pub mod local;
pub mod namespaces;
pub mod noop;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::domain::{FailureClass, JobId, JobSpec, SessionId, SessionSpec};

/// The main class of Spark's own Spark Connect server.
pub const CONNECT_SERVER_CLASS: &str = "org.apache.spark.sql.connect.service.SparkConnectServer";

/// A backend's own handle on an attempt (process id, or cluster/namespace/name), stored as JSON.
pub type BackendRef = serde_json::Value;

/// A driver log as it is read.
pub type LogStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Everything a backend needs to start one attempt.
#[derive(Clone, Debug)]
pub struct AttemptRequest {
    pub job_id: JobId,
    pub attempt: u32,
    pub spec: JobSpec,
    /// The attempt's W3C trace context, given to the driver as `TRACEPARENT` (the job's
    /// envVars may set their own).
    pub traceparent: Option<String>,
    /// Where not to run it: the previous attempt, when remediation decided to reroute. A
    /// backend with one place to run ignores it.
    pub avoid: Option<BackendRef>,
}

impl AttemptRequest {
    /// The deterministic name of the attempt's backend object (`sk8-<job-id>-<attempt>`), so that
    /// submitting the same attempt twice finds the first instead of starting a second.
    pub fn name(&self) -> String {
        format!("sk8-{}-{}", self.job_id, self.attempt)
    }
}

/// Everything a backend needs to start a session's Spark Connect server.
#[derive(Clone, Debug)]
pub struct SessionRequest {
    pub session_id: SessionId,
    /// 1 for the first server, then one more per resume.
    pub start: u32,
    pub spec: SessionSpec,
    /// What the server must demand of its clients as `authorization: Bearer …` (only the
    /// gateway has it): [`crate::gateway::token`].
    pub token: String,
}

impl SessionRequest {
    /// The deterministic name of the server's backend object (`sk8-s-<session-id>-<start>`).
    pub fn name(&self) -> String {
        format!("sk8-s-{}-{}", self.session_id, self.start)
    }
}

/// What a backend observes of a session's server.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerStatus {
    /// Started, not serving Spark Connect yet.
    Starting { detail: String },
    /// Serving Spark Connect at `endpoint` (`host:port`).
    Ready { endpoint: String },
    /// Not running any more; `stopped_by_sk8` when sk8 stopped it (at shutdown, say) rather
    /// than it exiting or being killed on its own.
    Ended {
        reason: String,
        stopped_by_sk8: bool,
    },
}

/// What a backend observes of an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptStatus {
    /// Accepted but not running yet.
    Pending {
        detail: String,
    },
    Running {
        spark_ui_url: Option<String>,
        detail: String,
    },
    Succeeded {
        detail: String,
    },
    Failed {
        class: FailureClass,
        reason: String,
    },
}

/// An attempt a backend holds, as found in the backend itself (not in the store): what the
/// orphan sweep compares with the execution history.
#[derive(Clone, Debug)]
pub struct Managed {
    pub job_id: JobId,
    pub attempt: u32,
    pub backend_ref: BackendRef,
    /// The attempt has ended in the backend (it only holds its record and logs).
    pub finished: bool,
}

/// A session's server a backend holds, as found in the backend: what the session orphan sweep
/// compares with the store.
#[derive(Clone, Debug)]
pub struct ManagedServer {
    pub session_id: SessionId,
    /// Which of the session's starts it serves.
    pub start: u32,
    pub backend_ref: BackendRef,
}

/// What a backend knows of an ended attempt, read before it cleans up ([`Backend::ended`]).
#[derive(Clone, Debug, Default)]
pub struct Ended {
    /// The Spark application id, when the backend knows it (a deterministic one, or read from
    /// the driver log).
    pub app_id: Option<String>,
    pub evidence: crate::record::Evidence,
    /// The last bytes of each failed executor's log, by pod name.
    pub executor_tails: Vec<(String, Bytes)>,
}

/// Why an attempt cannot start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoCapacity {
    pub reason: String,
    /// No other attempt can start either (the whole backend is full or unreachable), so the
    /// reconciler stops trying for this turn; otherwise it goes on with other jobs.
    pub everywhere: bool,
}

/// Why sk8 stops an attempt; recorded beside it so the outcome can be explained later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    TimedOut,
    Shutdown,
    Orphaned,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Cancelled => "cancelled by request",
            StopReason::TimedOut => "stopped after timeoutSeconds",
            StopReason::Shutdown => "stopped because sk8 shut down",
            StopReason::Orphaned => "stopped as an orphan: its job no longer runs this attempt",
        }
    }
}

/// Progress of a stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopProgress {
    /// Signalled, still exiting: ask again on the next pass.
    Stopping,
    /// Nothing of the attempt is left running.
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot take another attempt now; the job waits QUEUED.
    #[error("at capacity: {0}")]
    AtCapacity(String),
    /// The attempt cannot run as specified; it fails with this class and reason.
    #[error("{reason}")]
    Rejected { class: FailureClass, reason: String },
    /// A temporary failure talking to the backend; the next pass tries again.
    #[error("backend unavailable: {0}")]
    Transient(String),
    /// The attempt is not known to the backend (for logs).
    #[error("{0}")]
    NotFound(String),
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Short name recorded on attempts (`local`, `noop`, `kubernetes`).
    fn name(&self) -> &'static str;

    /// Whether an attempt of this spec could start now; while it cannot, the job waits QUEUED
    /// and the error says why (shown on waiting jobs).
    fn capacity(&self, _spec: &JobSpec) -> Result<(), NoCapacity> {
        Ok(())
    }

    /// Whether every change of an attempt is announced through [`crate::wake::Wake`] (a watch
    /// event, an exit). When not, the reconciler reads every live attempt each interval.
    fn announces_changes(&self) -> bool {
        false
    }

    /// How many attempts the reconciler may start at once. One where capacity is handed out
    /// in order (a slot count checked before each start).
    fn start_concurrency(&self) -> usize {
        1
    }

    /// Starts an attempt, or finds it already started under its deterministic name.
    async fn submit(&self, request: &AttemptRequest) -> Result<BackendRef, BackendError>;

    /// Observes an attempt.
    async fn status(&self, attempt: &BackendRef) -> Result<AttemptStatus, BackendError>;

    /// Stops an attempt; call again until it reports [`StopProgress::Gone`].
    async fn stop(
        &self,
        attempt: &BackendRef,
        why: StopReason,
    ) -> Result<StopProgress, BackendError>;

    /// The driver log; with `follow`, the stream ends only when the attempt has ended.
    async fn logs(&self, attempt: &BackendRef, follow: bool) -> Result<LogStream, BackendError>;

    /// The attempt's Spark application id, when already known (sk8 set it, or the driver
    /// announced it); the History Server link is built from it.
    fn app_id(&self, _attempt: &BackendRef) -> Option<String> {
        None
    }

    /// What is left to learn of an ended attempt: its application id, evidence of how it ended,
    /// failed executors' log tails. Read before [`Backend::release`]; never fails (what cannot
    /// be read is a gap in the evidence).
    async fn ended(&self, _attempt: &BackendRef) -> Ended {
        Ended::default()
    }

    /// Lets go of an ended attempt whose run record is gathered (on Kubernetes: deletes the
    /// application the operator retained for it). Call again until [`StopProgress::Gone`].
    async fn release(&self, _attempt: &BackendRef) -> Result<StopProgress, BackendError> {
        Ok(StopProgress::Gone)
    }

    /// Starts a session's Spark Connect server, or finds it started under its name.
    async fn server_start(&self, _request: &SessionRequest) -> Result<BackendRef, BackendError> {
        Err(BackendError::Rejected {
            class: FailureClass::Configuration,
            reason: format!(
                "the {} backend does not run sessions; use backend.kind local or kubernetes",
                self.name()
            ),
        })
    }

    /// Observes a session's server.
    async fn server_status(&self, _server: &BackendRef) -> Result<ServerStatus, BackendError> {
        Ok(ServerStatus::Ended {
            reason: format!("the {} backend does not run sessions", self.name()),
            stopped_by_sk8: false,
        })
    }

    /// Where a READY session's server (serving Spark Connect at `endpoint`) serves its Spark
    /// UI (`http://host:port`), when it has one: Apache Spark's servers do, Sail's do not.
    async fn server_ui(&self, _server: &BackendRef, _endpoint: &str) -> Option<String> {
        None
    }

    /// Stops a session's server; call again until it reports [`StopProgress::Gone`].
    async fn server_stop(&self, _server: &BackendRef) -> Result<StopProgress, BackendError> {
        Ok(StopProgress::Gone)
    }

    /// Every attempt this backend holds, for the orphan sweep. Backends whose attempts cannot
    /// outlive their record (local processes are adopted from the data directory) hold none.
    async fn managed(&self) -> Result<Vec<Managed>, BackendError> {
        Ok(Vec::new())
    }

    /// Every session server this backend holds, for the session orphan sweep; none on
    /// backends that do not list their servers (the local one finds each by its folder).
    async fn managed_servers(&self) -> Result<Vec<ManagedServer>, BackendError> {
        Ok(Vec::new())
    }

    /// Who provisions team namespaces on this backend's clusters (announcing what changes
    /// there to `changes`); none without clusters.
    fn provisioner(
        &self,
        _config: &crate::config::NamespacesConfig,
        _changes: &std::sync::Arc<namespaces::NamespaceChanges>,
    ) -> Option<std::sync::Arc<dyn namespaces::Provisioner>> {
        None
    }

    /// Stops whatever this backend runs in-process (sk8 is shutting down).
    async fn shutdown(&self);
}
