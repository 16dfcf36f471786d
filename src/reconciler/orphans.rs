//! The orphan sweep: attempts and session servers a backend holds that the execution history
//! no longer runs.
//!
//! Every `every`, it lists what the backend manages (for Kubernetes: every SparkApplication with
//! sk8's labels) and compares each with its job in the store. An orphan is an attempt whose job
//! is unknown, whose job has ended, or whose job has moved on to a later attempt. Running
//! orphans are stopped at once under the `delete` policy; finished ones are removed once
//! `keep_finished` has passed since their job ended (the backend keeps a failed driver's log
//! until then). A session server is an orphan when its session is unknown, has started a newer
//! server, or is STOPPED or FAILED (a session deleted while sk8 was down, or a start that
//! crashed before its server was recorded); it is stopped at once. Under `report`, orphans are
//! only logged and counted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backend::{Backend, BackendError, BackendRef, Managed, ManagedServer, StopReason};
use crate::domain::{Job, JobId, JobState, Session, SessionState};
use crate::store::{Store, StoreError};

/// How many held attempts' jobs one store read brings in.
const JOB_READ_BATCH: usize = 500;

/// What to do with an orphan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrphanPolicy {
    Delete,
    Report,
}

#[derive(Clone, Debug)]
pub struct OrphanSettings {
    pub policy: OrphanPolicy,
    pub every: Duration,
    pub keep_finished: Duration,
}

/// Remembers what was reported, so a `report` policy logs each orphan once, not every sweep.
pub struct OrphanSweep {
    settings: OrphanSettings,
    reported: HashSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl OrphanSweep {
    pub fn new(settings: OrphanSettings) -> Self {
        OrphanSweep {
            settings,
            reported: HashSet::new(),
        }
    }

    pub fn every(&self) -> Duration {
        self.settings.every
    }

    /// One sweep; returns how many orphans it found. Nothing is removed once `still_held`
    /// says the lease this sweep runs under was lost: the view it compared may be stale.
    pub async fn run(
        &mut self,
        store: &Store,
        backend: &Arc<dyn Backend>,
        still_held: &(dyn Fn() -> bool + Sync),
    ) -> Result<usize, SweepError> {
        let now = Utc::now();
        let mut found = 0;
        let held = backend.managed().await?;
        for chunk in held.chunks(JOB_READ_BATCH) {
            let ids: Vec<JobId> = chunk.iter().map(|h| h.job_id.clone()).collect();
            let jobs: HashMap<JobId, Job> = store
                .job_get_many(&ids)
                .await?
                .into_iter()
                .map(|job| (job.id.clone(), job))
                .collect();
            for held in chunk {
                let job = jobs.get(&held.job_id);
                let Some(why) = orphan_reason(held, job, self.settings.keep_finished, now) else {
                    continue;
                };
                found += 1;
                let name = format!("job {}, attempt {}", held.job_id, held.attempt);
                if !still_held() {
                    return Ok(found);
                }
                if self.should_remove(&name, &held.backend_ref, &why) {
                    backend
                        .stop(&held.backend_ref, StopReason::Orphaned)
                        .await?;
                }
            }
        }
        found += self.sweep_servers(store, backend, still_held).await?;
        metrics::gauge!("sk8_orphans").set(found as f64);
        Ok(found)
    }

    /// Stops the session servers no session runs; returns how many there were.
    async fn sweep_servers(
        &mut self,
        store: &Store,
        backend: &Arc<dyn Backend>,
        still_held: &(dyn Fn() -> bool + Sync),
    ) -> Result<usize, SweepError> {
        let mut found = 0;
        for held in backend.managed_servers().await? {
            let session = store.session_get(&held.session_id).await?;
            let Some(why) = server_orphan_reason(&held, session.as_ref()) else {
                continue;
            };
            if !still_held() {
                return Ok(found);
            }
            found += 1;
            let name = format!("session {}, start {}", held.session_id, held.start);
            if self.should_remove(&name, &held.backend_ref, &why) {
                backend.server_stop(&held.backend_ref).await?;
            }
        }
        Ok(found)
    }

    /// Logs an orphan (once under `report`); true when the policy is to remove it.
    fn should_remove(&mut self, name: &str, backend_ref: &BackendRef, why: &str) -> bool {
        match self.settings.policy {
            OrphanPolicy::Report => {
                if self.reported.insert(name.to_owned()) {
                    tracing::warn!(orphan = name, %backend_ref, "orphan (policy: report): {why}");
                }
                false
            }
            OrphanPolicy::Delete => {
                tracing::info!(orphan = name, %backend_ref, "removing orphan: {why}");
                metrics::counter!("sk8_orphans_removed_total").increment(1);
                true
            }
        }
    }
}

/// Why a held session server is an orphan, or `None` while its session needs it.
fn server_orphan_reason(held: &ManagedServer, session: Option<&Session>) -> Option<String> {
    let Some(session) = session else {
        return Some("its session is not in the store".into());
    };
    if held.start < session.starts {
        return Some(format!(
            "start {} was followed by start {}",
            held.start, session.starts
        ));
    }
    matches!(session.state, SessionState::Stopped | SessionState::Failed)
        .then(|| format!("its session is {}", session.state))
}

/// Why a held attempt is an orphan, or `None` while its job still needs it.
fn orphan_reason(
    held: &Managed,
    job: Option<&Job>,
    keep_finished: Duration,
    now: DateTime<Utc>,
) -> Option<String> {
    let Some(job) = job else {
        return Some("its job is not in the execution history".into());
    };
    if held.attempt > job.attempts {
        return Some(format!(
            "attempt {} was never recorded (the job has {})",
            held.attempt, job.attempts
        ));
    }
    let ended = job.state.is_terminal() || held.attempt < job.attempts;
    if !ended {
        return None;
    }
    // A job that SUCCEEDED or FAILED on this very attempt ended because the attempt did: a
    // view that still sees it running is behind (a watch that lags or relists), not the truth,
    // and the attempt is kept for its retention like any finished one.
    let ended_by_itself =
        held.attempt == job.attempts && matches!(job.state, JobState::Succeeded | JobState::Failed);
    if !held.finished && !ended_by_itself {
        return Some(format!(
            "attempt {} still runs, but its job is {} on attempt {}",
            held.attempt, job.state, job.attempts
        ));
    }
    let finished_at = job.finished_at?;
    let keep = chrono::Duration::from_std(keep_finished).unwrap_or(chrono::Duration::MAX);
    (finished_at + keep < now).then(|| {
        format!(
            "kept {}s after its job ended {}",
            keep_finished.as_secs(),
            job.state
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::jobspec::Format;
    use crate::domain::{JobId, JobSpec, JobState, SessionSpec, SpecDefaults};

    fn job(state: JobState, attempts: u32, finished_ago: Option<i64>) -> Job {
        let body = br#"{"team":"t","env":"e","name":"n","mainApplicationFile":"/x.py"}"#;
        let defaults = SpecDefaults {
            spark_version: "4.0.1".into(),
            image: "i".into(),
        };
        let spec = JobSpec::parse(body, Format::Json, &defaults).unwrap();
        let mut job = Job::new(spec, None, Utc::now());
        job.state = state;
        job.attempts = attempts;
        job.finished_at = finished_ago.map(|s| Utc::now() - chrono::Duration::seconds(s));
        job
    }

    fn held(attempt: u32, finished: bool) -> Managed {
        Managed {
            job_id: JobId::generate(),
            attempt,
            backend_ref: serde_json::json!({}),
            finished,
        }
    }

    const KEEP: Duration = Duration::from_secs(600);

    #[test]
    fn the_current_attempt_of_a_live_job_is_kept() {
        let running = job(JobState::Running, 1, None);
        assert_eq!(
            orphan_reason(&held(1, false), Some(&running), KEEP, Utc::now()),
            None
        );
    }

    #[test]
    fn unknown_jobs_ended_jobs_and_old_attempts_are_orphans() {
        let now = Utc::now();
        assert!(orphan_reason(&held(1, false), None, KEEP, now).is_some());
        let cancelled = job(JobState::Cancelled, 1, Some(5));
        let why = orphan_reason(&held(1, false), Some(&cancelled), KEEP, now).unwrap();
        assert!(why.contains("still runs"), "{why}");
        let retrying = job(JobState::Running, 2, None);
        assert!(orphan_reason(&held(1, false), Some(&retrying), KEEP, now).is_some());
        let ghost = orphan_reason(&held(3, false), Some(&retrying), KEEP, now).unwrap();
        assert!(ghost.contains("never recorded"), "{ghost}");
    }

    /// A lagging view (the watch has not seen the end yet) of an attempt whose job ended on it:
    /// kept for the retention, not deleted at once.
    #[test]
    fn a_stale_view_of_a_just_ended_attempt_keeps_it_for_its_retention() {
        let now = Utc::now();
        for state in [JobState::Succeeded, JobState::Failed] {
            let just_ended = job(state, 1, Some(1));
            assert_eq!(
                orphan_reason(&held(1, false), Some(&just_ended), KEEP, now),
                None,
                "{state}"
            );
            let long_ended = job(state, 1, Some(3600));
            assert!(orphan_reason(&held(1, false), Some(&long_ended), KEEP, now).is_some());
        }
    }

    #[test]
    fn finished_attempts_are_kept_for_their_logs_then_removed() {
        let now = Utc::now();
        let recent = job(JobState::Failed, 1, Some(60));
        assert_eq!(
            orphan_reason(&held(1, true), Some(&recent), KEEP, now),
            None
        );
        let old = job(JobState::Failed, 1, Some(3600));
        assert!(orphan_reason(&held(1, true), Some(&old), KEEP, now).is_some());
    }

    fn session(state: SessionState, starts: u32) -> Session {
        let body = br#"{"team":"t","env":"e","name":"n"}"#;
        let defaults = SpecDefaults {
            spark_version: "4.0.1".into(),
            image: "i".into(),
        };
        let spec = SessionSpec::parse(body, Format::Json, &defaults).unwrap();
        let mut session = Session::new(spec, Utc::now());
        session.state = state;
        session.starts = starts;
        session
    }

    fn server(session: &Session, start: u32) -> ManagedServer {
        ManagedServer {
            session_id: session.id.clone(),
            start,
            backend_ref: serde_json::json!({}),
        }
    }

    #[test]
    fn a_sessions_current_server_is_kept_while_it_runs() {
        for state in [
            SessionState::Starting,
            SessionState::Ready,
            SessionState::Stopping,
        ] {
            let live = session(state, 2);
            assert_eq!(server_orphan_reason(&server(&live, 2), Some(&live)), None);
        }
    }

    #[test]
    fn servers_of_unknown_stopped_or_restarted_sessions_are_orphans() {
        let ready = session(SessionState::Ready, 2);
        assert!(server_orphan_reason(&server(&ready, 2), None).is_some());
        let older = server_orphan_reason(&server(&ready, 1), Some(&ready)).unwrap();
        assert!(older.contains("followed by start 2"), "{older}");
        for state in [SessionState::Stopped, SessionState::Failed] {
            let ended = session(state, 1);
            assert!(server_orphan_reason(&server(&ended, 1), Some(&ended)).is_some());
        }
    }
}
