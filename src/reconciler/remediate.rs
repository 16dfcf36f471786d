//! The reconciler's side of remediation ([`crate::remediation`]): what happens between an
//! attempt's failure and the job's next step.
//!
//! An attempt that ran waits for its classification, which the recorder makes from the run
//! record (pods, Events, logs, the event log): the job stays RETRYING with no time set for a
//! next attempt, and each turn looks at it again (it is among the waiting jobs). Once the
//! record is classified, or `remediation.decisionTimeoutSeconds` after the end without one,
//! the decision is made and written with the attempt and the event that says it, in one save.
//! An attempt that never started (refused at submit) or that sk8 stopped (timeout, cancel) is
//! decided at once on the backend's account.

use chrono::Utc;

use super::{PassError, Reconciler, event};
use crate::domain::{Attempt, FailureClass, Job, JobSpec, JobState};
use crate::remediation::decide::JobHistory;
use crate::remediation::resize::{self, SizedFrom};
use crate::remediation::{AttemptRemediation, Class, Classification, Decision, Facts, Remedy};
use crate::service::namespaces::guard::Footprint;

impl Reconciler {
    /// Ends `attempt` as failed: decided now when no run record will say more, else left to
    /// wait for its classification.
    pub(super) async fn fail_attempt(
        &self,
        mut job: Job,
        mut attempt: Attempt,
        class: FailureClass,
        reason: String,
        detail: Option<String>,
    ) -> Result<(), PassError> {
        attempt.state = JobState::Failed;
        attempt.ended_at = Some(Utc::now());
        attempt.failure_reason = Some(reason.clone());
        attempt.failure_class = Some(class);
        job.failure_reason = Some(reason.clone());
        job.failure_class = Some(class);
        let at_once = attempt.backend_ref.is_none()
            || class == FailureClass::Timeout
            || job.state == JobState::Cancelling;
        if at_once {
            let facts = Facts::from_reason(Some(class), &reason);
            let classification = self.remediation.classify(&job.team, &facts);
            return self
                .conclude(job, attempt, classification, false, detail)
                .await;
        }
        let from = job.state;
        job.state = JobState::Retrying;
        job.next_attempt_at = None;
        let n = attempt.attempt;
        let mut e = event(
            Some(n),
            from,
            JobState::Retrying,
            format!("attempt {n} failed; classifying it from its run record: {reason}"),
        );
        e.detail = detail;
        self.save(&mut job, Some(&attempt), Some(&e)).await
    }

    /// A RETRYING job with no time set: its failed attempt is decided once classified.
    pub(super) async fn decide_pending(
        &self,
        job: Job,
        attempt: Option<Attempt>,
    ) -> Result<(), PassError> {
        let undecided = attempt.filter(|a| a.state == JobState::Failed && a.remediation.is_none());
        let Some(attempt) = undecided else {
            // Set RETRYING without a time by an sk8 before remediation: start at once.
            return self.start_attempt(job).await;
        };
        let record = self.store.record_get(&job.id, attempt.attempt).await?;
        if let Some(classification) = record.and_then(|r| r.classification) {
            return self
                .conclude(job, attempt, classification, true, None)
                .await;
        }
        let ended = attempt.ended_at.unwrap_or(job.updated_at);
        let wait = chrono::Duration::from_std(self.remediation.decision_timeout)
            .unwrap_or(chrono::Duration::MAX);
        if ended + wait > Utc::now() {
            return Err(PassError::Undecided);
        }
        tracing::warn!(
            attempt = attempt.attempt,
            "the run record was not classified within remediation.decisionTimeoutSeconds; \
             deciding on the backend's account"
        );
        let facts = Facts::from_reason(
            attempt.failure_class,
            attempt.failure_reason.as_deref().unwrap_or_default(),
        );
        let classification = self.remediation.classify(&job.team, &facts);
        self.conclude(job, attempt, classification, false, None)
            .await
    }

    /// Decides what follows the classified failure and writes it: RETRYING with a time, or
    /// FAILED.
    async fn conclude(
        &self,
        mut job: Job,
        mut attempt: Attempt,
        classification: Classification,
        from_record: bool,
        detail: Option<String>,
    ) -> Result<(), PassError> {
        let (decision, resized) = self.decision(&job, &attempt, &classification).await?;
        if let Some(spec) = resized {
            job.spec = spec;
        }
        let now = Utc::now();
        let n = attempt.attempt;
        let what = classification.describe();
        let from = job.state;
        let summary = match decision.backoff_seconds {
            Some(seconds) if decision.remedy != Remedy::Fail => {
                job.state = JobState::Retrying;
                job.next_attempt_at = Some(now + chrono::Duration::seconds(seconds as i64));
                let with = match &decision.resize {
                    Some(change) => format!(" with {}", change.describe()),
                    None => String::new(),
                };
                format!(
                    "attempt {n} failed: {what}; {} in {seconds}s{with} ({})",
                    retrying(decision.remedy),
                    decision.note
                )
            }
            _ => {
                job.state = JobState::Failed;
                job.finished_at = Some(now);
                format!("attempt {n} failed: {what}; not retried: {}", decision.note)
            }
        };
        let ended = attempt.ended_at.unwrap_or(now);
        let (class, remedy) = (classification.class.as_str(), decision.remedy.as_str());
        attempt.remediation = Some(AttemptRemediation {
            classification,
            decision,
            decided_at: now,
            decision_ms: (now - ended).num_milliseconds().max(0),
            from_record,
        });
        let mut e = event(Some(n), from, job.state, summary);
        e.detail = detail;
        self.save(&mut job, Some(&attempt), Some(&e)).await?;
        metrics::counter!("sk8_remediation_decisions_total", "class" => class, "action" => remedy)
            .increment(1);
        metrics::histogram!("sk8_remediation_decision_seconds")
            .record((now - ended).num_milliseconds().max(0) as f64 / 1000.0);
        Ok(())
    }

    /// The decision on `attempt`, from its classification and the job's earlier failures,
    /// and the resized spec for the next attempt.
    async fn decision(
        &self,
        job: &Job,
        attempt: &Attempt,
        classification: &Classification,
    ) -> Result<(Decision, Option<JobSpec>), PassError> {
        if job.state == JobState::Cancelling {
            let decision = Decision {
                remedy: Remedy::Fail,
                note: "the job is being cancelled".into(),
                counted: false,
                backoff_seconds: None,
                resize: None,
            };
            return Ok((decision, None));
        }
        let earlier = self.earlier_classes(job, attempt.attempt).await?;
        let base = job
            .spec
            .retry
            .backoff_seconds
            .map(std::time::Duration::from_secs)
            .unwrap_or(self.settings.retry_backoff);
        let history = JobHistory {
            job_id: job.id.as_str(),
            team: &job.team,
            attempt: attempt.attempt,
            max_attempts: job.max_attempts(),
            earlier,
            base_backoff: base,
            max_backoff: self.settings.max_retry_backoff,
        };
        let decision = self.remediation.decide(classification, &history);
        if decision.remedy == Remedy::RetryResized {
            return Ok(self.resize(job, classification.class, decision).await);
        }
        Ok((decision, None))
    }

    /// A resized retry: more memory for the class, within the team namespace's LimitRange
    /// maximum and quota (the submission guard's check); a plain retry when the job or team
    /// opted out or no resize helps the class; FAILED, naming the limit, when it would not fit.
    async fn resize(
        &self,
        job: &Job,
        class: Class,
        mut decision: Decision,
    ) -> (Decision, Option<JobSpec>) {
        let plain = |mut decision: Decision, why: &str| {
            decision.remedy = Remedy::Retry;
            decision.note = format!("{}; {why}", decision.note);
            (decision, None)
        };
        if !self.remediation.resizes(&job.team, &job.spec) {
            return plain(
                decision,
                "resize is off for this job, retrying at the same size",
            );
        }
        let Some((spec, change)) = resize::resized(&job.spec, class) else {
            return plain(
                decision,
                "no resize is known to help, retrying at the same size",
            );
        };
        if let Some(guard) = &self.guard {
            let footprint = Footprint::of_job(&spec);
            if let Err(err) = guard.admit(&spec.team, &spec.env, &footprint).await {
                let why = match err {
                    crate::error::Error::InvalidRequest { message, .. } => message,
                    other => other.to_string(),
                };
                decision.remedy = Remedy::Fail;
                decision.backoff_seconds = None;
                decision.counted = false;
                decision.note = format!("the resize to {} would not fit: {why}", change.describe());
                return (decision, None);
            }
        }
        decision.resize = Some(change);
        (decision, Some(spec))
    }

    /// After a success on `attempt`: the sizes its resized retries found, remembered for the
    /// job's next submission. Best effort: a size not remembered only costs the next run a retry.
    pub(super) async fn remember_size(&self, job: &Job, attempt: u32) {
        if !self.remediation.resizes(&job.team, &job.spec) {
            return;
        }
        let remembered = async {
            let attempts = self.store.attempt_list(&job.id).await?;
            let changes = SizedFrom::merged(
                attempts
                    .iter()
                    .filter_map(|a| a.remediation.as_ref()?.decision.resize.as_ref()),
            );
            if changes.is_empty() {
                return Ok::<_, crate::store::StoreError>(());
            }
            let sized = SizedFrom {
                job_id: job.id.to_string(),
                attempt,
                changes,
            };
            self.store
                .size_remember(&job.team, &job.env, &job.name, &sized)
                .await
        };
        if let Err(err) = remembered.await {
            tracing::warn!(error = %err, "the size that worked could not be remembered");
        }
    }

    /// Where attempt `number` must not run: its predecessor's place, when remediation decided
    /// to reroute it ([`crate::backend::AttemptRequest::avoid`]).
    pub(super) async fn rerouted_from(
        &self,
        job: &Job,
        number: u32,
    ) -> Result<Option<crate::backend::BackendRef>, PassError> {
        if number < 2 {
            return Ok(None);
        }
        let attempts = self.store.attempt_list(&job.id).await?;
        Ok(attempts
            .into_iter()
            .find(|a| a.attempt == number - 1)
            .filter(|a| {
                a.remediation
                    .as_ref()
                    .is_some_and(|r| r.decision.remedy == Remedy::Reroute)
            })
            .and_then(|a| a.backend_ref))
    }

    /// The classes of the job's failed attempts before `attempt`.
    async fn earlier_classes(&self, job: &Job, attempt: u32) -> Result<Vec<Class>, PassError> {
        let attempts = self.store.attempt_list(&job.id).await?;
        Ok(attempts
            .into_iter()
            .filter(|a| a.attempt < attempt)
            .filter_map(|a| a.remediation.map(|r| r.classification.class))
            .collect())
    }
}

fn retrying(remedy: Remedy) -> &'static str {
    match remedy {
        Remedy::RetryResized => "retrying resized",
        Remedy::Reroute => "rerouting",
        _ => "retrying",
    }
}
