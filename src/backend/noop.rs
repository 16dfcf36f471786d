//! The noop backend: every attempt succeeds the moment it is submitted. It exists to measure
//! sk8's own overhead (API, store, reconciler) without Spark in the way.

use async_trait::async_trait;

use super::{
    AttemptRequest, AttemptStatus, Backend, BackendError, BackendRef, LogStream, StopProgress,
    StopReason,
};

#[derive(Debug, Default)]
pub struct NoopBackend;

#[async_trait]
impl Backend for NoopBackend {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn start_concurrency(&self) -> usize {
        16
    }

    /// An attempt ends the moment it is submitted, and the reconciler looks right after.
    fn announces_changes(&self) -> bool {
        true
    }

    async fn submit(&self, request: &AttemptRequest) -> Result<BackendRef, BackendError> {
        Ok(serde_json::json!({ "name": request.name() }))
    }

    async fn status(&self, _attempt: &BackendRef) -> Result<AttemptStatus, BackendError> {
        Ok(AttemptStatus::Succeeded {
            detail: "the noop backend succeeds every attempt".into(),
        })
    }

    async fn stop(
        &self,
        _attempt: &BackendRef,
        _why: StopReason,
    ) -> Result<StopProgress, BackendError> {
        Ok(StopProgress::Gone)
    }

    async fn logs(&self, _attempt: &BackendRef, _follow: bool) -> Result<LogStream, BackendError> {
        let line =
            bytes::Bytes::from_static(b"the noop backend runs nothing and keeps no driver log\n");
        Ok(Box::pin(futures::stream::once(async move { Ok(line) })))
    }

    async fn shutdown(&self) {}
}
