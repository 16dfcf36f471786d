//! Evidence of how an application's pods ended, read before sk8 deletes the (retained)
//! application: the driver pod and every executor pod that ended abnormally (terminated with a
//! non-zero exit, evicted, disrupted, stuck waiting or unschedulable), their Events, and the
//! tail of each failed executor's log. Executors outlive their end because sk8 renders
//! `spark.kubernetes.executor.deleteOnTermination=false`.

use bytes::Bytes;
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::api::{Api, ListParams, LogParams};

use super::pods::APP_NAME_LABEL;
use crate::record::evidence::{Condition, ContainerEvidence, Evidence, KubeEvent, PodEvidence};

/// How much of a failed executor's log is kept: its end, where the error is.
pub const TAIL_BYTES: usize = 64 * 1024;
/// Waiting reasons of a container that is merely on its way up.
const STARTING: [&str; 2] = ["ContainerCreating", "PodInitializing"];

/// What was gathered of an application's pods: the evidence, and the log tails of failed
/// executors by pod name.
pub struct Gathered {
    pub evidence: Evidence,
    pub tails: Vec<(String, Bytes)>,
}

/// Reads the application's pods (driver first), their Events and failed executors' log tails.
/// What cannot be read is noted in the evidence's gaps, never an error.
pub async fn gather(pods: &Api<Pod>, events: &Api<Event>, app: &str) -> Gathered {
    let mut evidence = Evidence::default();
    let mut tails = Vec::new();
    let selector = format!("{APP_NAME_LABEL}={app}");
    let listed = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(err) => {
            evidence
                .gaps
                .push(format!("the pods could not be listed: {err}"));
            return Gathered { evidence, tails };
        }
    };
    let mut kept: Vec<PodEvidence> = listed
        .iter()
        .map(pod_evidence)
        .filter(|pod| pod.role == "driver" || abnormal(pod))
        .collect();
    kept.sort_by_key(|pod| (pod.role != "driver", pod.name.clone()));
    if kept.is_empty() {
        evidence
            .gaps
            .push("no pod of the application was left to read".into());
    }
    for pod in &mut kept {
        evidence
            .events
            .extend(pod_events(events, &pod.name, &mut evidence.gaps).await);
        if pod.role == "executor" && failed(pod) {
            match tail(pods, &pod.name).await {
                Ok(bytes) => tails.push((pod.name.clone(), bytes)),
                Err(err) => evidence
                    .gaps
                    .push(format!("the log of {} could not be read: {err}", pod.name)),
            }
        }
    }
    evidence.pods = kept;
    Gathered { evidence, tails }
}

/// A pod's end state as evidence.
pub fn pod_evidence(pod: &Pod) -> PodEvidence {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let conditions = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            c.type_ == "DisruptionTarget" || (c.type_ == "PodScheduled" && c.status == "False")
        })
        .map(|c| Condition {
            kind: c.type_,
            status: c.status,
            reason: c.reason,
            message: c.message,
        })
        .collect();
    let containers = status
        .container_statuses
        .unwrap_or_default()
        .iter()
        .map(container_evidence)
        .collect();
    PodEvidence {
        name: pod.metadata.name.clone().unwrap_or_default(),
        role: labels
            .get("spark-role")
            .cloned()
            .unwrap_or_else(|| "pod".into()),
        phase: status.phase,
        reason: status.reason,
        message: status.message,
        containers,
        conditions,
        log_tail: None,
    }
}

fn container_evidence(status: &ContainerStatus) -> ContainerEvidence {
    let state = status.state.clone().unwrap_or_default();
    // A restarted container's earlier end is what explains it.
    let terminated = state.terminated.or_else(|| {
        status
            .last_state
            .as_ref()
            .and_then(|last| last.terminated.clone())
    });
    let waiting = state
        .waiting
        .and_then(|w| w.reason)
        .filter(|reason| !STARTING.contains(&reason.as_str()));
    ContainerEvidence {
        name: status.name.clone(),
        exit_code: terminated.as_ref().map(|t| t.exit_code),
        signal: terminated.as_ref().and_then(|t| t.signal),
        reason: terminated.as_ref().and_then(|t| t.reason.clone()),
        message: terminated.and_then(|t| t.message),
        waiting,
        restart_count: status.restart_count,
    }
}

/// Ended or stuck in a way worth keeping.
pub fn abnormal(pod: &PodEvidence) -> bool {
    failed(pod) || !pod.conditions.is_empty() || pod.containers.iter().any(|c| c.waiting.is_some())
}

/// Terminated badly: a non-zero exit, an OOM kill, an eviction.
fn failed(pod: &PodEvidence) -> bool {
    pod.reason.as_deref() == Some("Evicted")
        || pod.phase.as_deref() == Some("Failed")
        || pod.containers.iter().any(|c| {
            c.exit_code.is_some_and(|code| code != 0) || c.reason.as_deref() == Some("OOMKilled")
        })
}

async fn pod_events(events: &Api<Event>, pod: &str, gaps: &mut Vec<String>) -> Vec<KubeEvent> {
    let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    match events.list(&params).await {
        Ok(list) => list
            .items
            .into_iter()
            .map(|e| KubeEvent {
                object: pod.to_owned(),
                kind: e.type_.unwrap_or_default(),
                reason: e.reason.unwrap_or_default(),
                message: e.message.unwrap_or_default(),
                count: e.count.unwrap_or(1),
            })
            .collect(),
        Err(err) => {
            gaps.push(format!("the Events of {pod} could not be listed: {err}"));
            Vec::new()
        }
    }
}

/// The last [`TAIL_BYTES`] of a pod's log, read as a stream (a long log is never held whole).
async fn tail(pods: &Api<Pod>, pod: &str) -> Result<Bytes, kube::Error> {
    let mut reader = pods.log_stream(pod, &LogParams::default()).await?;
    let mut kept: Vec<u8> = Vec::with_capacity(TAIL_BYTES);
    loop {
        let chunk = reader.fill_buf().await.map_err(kube::Error::ReadEvents)?;
        if chunk.is_empty() {
            break;
        }
        kept.extend_from_slice(chunk);
        let n = chunk.len();
        reader.consume_unpin(n);
        if kept.len() > 2 * TAIL_BYTES {
            kept.drain(..kept.len() - TAIL_BYTES);
        }
    }
    let start = kept.len().saturating_sub(TAIL_BYTES);
    Ok(Bytes::copy_from_slice(&kept[start..]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(value: serde_json::Value) -> PodEvidence {
        pod_evidence(&serde_json::from_value(value).unwrap())
    }

    #[test]
    fn an_oom_killed_executor_is_abnormal_and_a_completed_one_is_not() {
        let oom = pod(json!({
            "metadata": {"name": "e-1", "labels": {"spark-role": "executor"}},
            "status": {"phase": "Failed", "containerStatuses": [{
                "name": "spark-kubernetes-executor", "image": "spark", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}
        }));
        assert!(abnormal(&oom) && failed(&oom));
        assert_eq!(oom.containers[0].reason.as_deref(), Some("OOMKilled"));
        let done = pod(json!({
            "metadata": {"name": "e-2", "labels": {"spark-role": "executor"}},
            "status": {"phase": "Succeeded", "containerStatuses": [{
                "name": "spark-kubernetes-executor", "image": "spark", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
        }));
        assert!(!abnormal(&done));
    }

    #[test]
    fn waiting_reasons_and_disruptions_are_kept() {
        let pulling = pod(json!({
            "metadata": {"name": "e-3", "labels": {"spark-role": "executor"}},
            "status": {"phase": "Pending",
                "conditions": [{"type": "DisruptionTarget", "status": "True",
                                "reason": "PreemptionByScheduler"}],
                "containerStatuses": [{
                "name": "spark-kubernetes-executor", "image": "spark", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
        }));
        assert!(abnormal(&pulling) && !failed(&pulling));
        assert_eq!(
            pulling.containers[0].waiting.as_deref(),
            Some("ImagePullBackOff")
        );
        assert_eq!(pulling.conditions[0].kind, "DisruptionTarget");
    }
}
