//! Copying an attempt's driver log into the history location (`sk8/<job>/<attempt>/driver.log`),
//! streamed, never held whole; the end of it is kept for failure classification.
//!
//! The recorder does this after an attempt ended. The reconciler does it too, just before it
//! stops a cancelled or timed-out attempt: on Kubernetes, stopping deletes the application and
//! with it the driver pod and its log, and the recorder that comes after would find nothing.
//! A copy made before the stop is the one the recorder keeps when the backend no longer has
//! the log.

use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use tokio_util::io::StreamReader;

use super::archive_prefix;
use crate::backend::{Backend, BackendRef};
use crate::domain::JobId;
use crate::history::Objects;
use crate::remediation::facts;

/// Where an attempt's driver log is archived.
pub fn driver_log_key(job_id: &JobId, attempt: u32) -> String {
    format!("{}/driver.log", archive_prefix(job_id, attempt))
}

/// Copies the backend's driver log of `backend_ref` to `key`; the end of it, or why it could
/// not be copied.
pub async fn copy_driver_log(
    backend: &dyn Backend,
    objects: &Objects,
    backend_ref: &BackendRef,
    key: &str,
) -> Result<String, String> {
    let stream = backend
        .logs(backend_ref, false)
        .await
        .map_err(|err| format!("the driver log could not be read: {err}"))?;
    let kept = Arc::new(Mutex::new(Vec::new()));
    let tee = kept.clone();
    let reader = StreamReader::new(stream.inspect_ok(move |chunk| keep_end(&tee, chunk)));
    objects
        .put_reader(key, reader)
        .await
        .map_err(|err| format!("the driver log could not be archived: {err}"))?;
    let end = kept.lock().unwrap_or_else(|p| p.into_inner());
    Ok(facts::tail(&end))
}

/// The end of an archived log (empty when it cannot be read).
pub async fn archived_end(objects: &Objects, key: &str) -> String {
    let kept = Mutex::new(Vec::new());
    if let Ok(stream) = objects.get(key).await {
        let _ = stream
            .try_for_each(|chunk| {
                keep_end(&kept, &chunk);
                futures::future::ready(Ok(()))
            })
            .await;
    }
    let end = kept.lock().unwrap_or_else(|p| p.into_inner());
    facts::tail(&end)
}

/// Appends `chunk` to `kept`, keeping only the last [`facts::LOG_TAIL_BYTES`] or so.
fn keep_end(kept: &Mutex<Vec<u8>>, chunk: &[u8]) {
    let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
    kept.extend_from_slice(chunk);
    if kept.len() > 2 * facts::LOG_TAIL_BYTES {
        let cut = kept.len() - facts::LOG_TAIL_BYTES;
        kept.drain(..cut);
    }
}
