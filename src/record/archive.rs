//! Copying an attempt's driver log into the history location (`sk8/<job>/<attempt>/driver.log`),
//! streamed, never held whole; the end of it is kept for failure classification. Failed
//! executors' log tails go beside it (`executors/<pod>.log`).
//!
//! The recorder does this after an attempt ended. The reconciler does it too, just before it
//! stops a cancelled or timed-out attempt: on Kubernetes, stopping deletes the application and
//! with it the driver pod, its log and the executors' pods, and the recorder that comes after
//! would find nothing. So before a stop it also keeps what the backend knows of the attempt
//! then (`evidence.json`: the pods' states, their Events, the application id). A copy made
//! before the stop is the one the recorder keeps when the backend no longer has the log or the
//! pods.

use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::io::StreamReader;

use super::{Evidence, archive_prefix};
use crate::backend::{Backend, BackendRef, Ended, StopReason};
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

/// Archives failed executors' log tails under `prefix` and points their pods' evidence at
/// them; what cannot be archived is a gap in the evidence.
pub async fn keep_tails(objects: &Objects, prefix: &str, ended: &mut Ended) {
    for (pod, tail) in std::mem::take(&mut ended.executor_tails) {
        let key = format!("{prefix}/executors/{pod}.log");
        match objects.put(&key, tail).await {
            Ok(()) => {
                if let Some(evidence) = ended.evidence.pods.iter_mut().find(|p| p.name == pod) {
                    evidence.log_tail = Some(key);
                }
            }
            Err(err) => ended.evidence.gaps.push(format!(
                "the log tail of {pod} could not be archived: {err}"
            )),
        }
    }
}

/// What the backend knew of an attempt just before sk8 stopped it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeforeStop {
    pub app_id: Option<String>,
    pub evidence: Evidence,
}

fn before_stop_key(job_id: &JobId, attempt: u32) -> String {
    format!("{}/evidence.json", archive_prefix(job_id, attempt))
}

/// Keeps what the backend knows of an attempt sk8 is about to stop (once: a later pass of the
/// same stop finds it kept), its executors' log tails with it.
pub async fn keep_before_stop(
    backend: &dyn Backend,
    objects: &Objects,
    backend_ref: &BackendRef,
    (job_id, attempt): (&JobId, u32),
    reason: StopReason,
) -> Result<(), String> {
    let key = before_stop_key(job_id, attempt);
    if objects.head(&key).await.is_ok() {
        return Ok(());
    }
    let mut ended = backend.ended(backend_ref).await;
    keep_tails(objects, &archive_prefix(job_id, attempt), &mut ended).await;
    ended.evidence.before_stop = Some(reason.as_str().to_owned());
    let kept = BeforeStop {
        app_id: ended.app_id,
        evidence: ended.evidence,
    };
    let json = serde_json::to_vec(&kept).expect("evidence serializes");
    objects
        .put(&key, json.into())
        .await
        .map_err(|err| format!("the evidence could not be archived: {err}"))
}

/// What was kept just before sk8 stopped the attempt, if anything was.
pub async fn kept_before_stop(
    objects: &Objects,
    job_id: &JobId,
    attempt: u32,
) -> Option<BeforeStop> {
    let bytes = objects
        .get_bytes(&before_stop_key(job_id, attempt))
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
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
