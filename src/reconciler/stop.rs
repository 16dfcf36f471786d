//! Stopping an attempt sk8 ends itself (a cancel, a timeout) without losing what it did: its
//! driver log, and what the backend knows of its pods (states, waiting reasons, Events, failed
//! executors' log tails), are copied into the history location first, since on Kubernetes the
//! stop deletes the application and its pods with it. The recorder keeps those copies when the
//! backend no longer has the log or the pods.

use std::time::Duration;

use super::Reconciler;
use crate::backend::{BackendError, BackendRef, StopProgress, StopReason};
use crate::domain::Attempt;
use crate::history::Objects;
use crate::record::archive;

/// The longest a stop waits for the copies: a cancel must not hang on a slow log reader, API
/// server or history location.
const COPY_BEFORE_STOP: Duration = Duration::from_secs(30);

impl Reconciler {
    /// Copies the driver log and the evidence of `attempt` (each once: a later pass of the
    /// same stop finds the copy), then asks the backend to stop it.
    pub(super) async fn stop_keeping_log(
        &self,
        attempt: &Attempt,
        backend_ref: &BackendRef,
        reason: StopReason,
    ) -> Result<StopProgress, BackendError> {
        if let Some(objects) = &self.history {
            let keep = async {
                self.keep_driver_log(objects, attempt, backend_ref).await;
                let at = (&attempt.job_id, attempt.attempt);
                let backend = self.backend.as_ref();
                if let Err(why) =
                    archive::keep_before_stop(backend, objects, backend_ref, at, reason).await
                {
                    tracing::info!(%why, "stopping without the attempt's evidence");
                }
            };
            if tokio::time::timeout(COPY_BEFORE_STOP, keep).await.is_err() {
                tracing::warn!(
                    "the driver log and evidence were not kept within {COPY_BEFORE_STOP:?}; stopping anyway"
                );
            }
        }
        self.backend.stop(backend_ref, reason).await
    }

    async fn keep_driver_log(
        &self,
        objects: &Objects,
        attempt: &Attempt,
        backend_ref: &BackendRef,
    ) {
        let key = archive::driver_log_key(&attempt.job_id, attempt.attempt);
        if objects.head(&key).await.is_ok() {
            return;
        }
        let copy = archive::copy_driver_log(self.backend.as_ref(), objects, backend_ref, &key);
        if let Err(why) = copy.await {
            tracing::info!(%why, "stopping without a copy of the driver log");
        }
    }
}
