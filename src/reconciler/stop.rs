//! Stopping an attempt sk8 ends itself (a cancel, a timeout) without losing what its driver
//! logged: the log is copied into the history location first, since on Kubernetes the stop
//! deletes the application and its driver pod with it. The recorder keeps that copy when the
//! backend no longer has the log.

use std::time::Duration;

use super::Reconciler;
use crate::backend::{BackendError, BackendRef, StopProgress, StopReason};
use crate::domain::Attempt;
use crate::record::archive;

/// The longest a stop waits for the driver log to be copied: a cancel must not hang on a slow
/// log reader or history location.
const COPY_BEFORE_STOP: Duration = Duration::from_secs(30);

impl Reconciler {
    /// Copies the driver log of `attempt` (once: a later pass of the same stop finds the copy),
    /// then asks the backend to stop it.
    pub(super) async fn stop_keeping_log(
        &self,
        attempt: &Attempt,
        backend_ref: &BackendRef,
        reason: StopReason,
    ) -> Result<StopProgress, BackendError> {
        if let Some(objects) = &self.history {
            let key = archive::driver_log_key(&attempt.job_id, attempt.attempt);
            if objects.head(&key).await.is_err() {
                let copy =
                    archive::copy_driver_log(self.backend.as_ref(), objects, backend_ref, &key);
                match tokio::time::timeout(COPY_BEFORE_STOP, copy).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(why)) => {
                        tracing::info!(%why, "stopping without a copy of the driver log")
                    }
                    Err(_) => tracing::warn!(
                        "the driver log was not copied within {COPY_BEFORE_STOP:?}; stopping anyway"
                    ),
                }
            }
        }
        self.backend.stop(backend_ref, reason).await
    }
}
