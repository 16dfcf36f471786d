//! From a classification to a decision: whether the job gets another attempt, how (same spec,
//! resized, elsewhere) and after what backoff.
//!
//! Budgets: each class has a number of retries per job (`0` turns it off); counted retries are
//! also capped by the job's `retry.maxAttempts` and `remediation.maxRetries`. Evictions and
//! preemptions are free (they count only against `maxFreeRetries`); user errors and sk8's own
//! stops are never retried. The backoff doubles with each counted retry and is shortened by a
//! jitter fixed per job and attempt.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::Remediation;
use super::taxonomy::{Action, Class, Classification};

/// What was done about a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Remedy {
    Retry,
    RetryResized,
    Reroute,
    Fail,
}

impl Remedy {
    pub fn as_str(self) -> &'static str {
        match self {
            Remedy::Retry => "retry",
            Remedy::RetryResized => "retryResized",
            Remedy::Reroute => "reroute",
            Remedy::Fail => "fail",
        }
    }
}

/// The decision on one failed attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub remedy: Remedy,
    /// Why, in words: the budget that ran out, the fallback taken.
    pub note: String,
    /// Whether the retry used up budget (evictions and preemptions do not).
    pub counted: bool,
    /// The backoff before the next attempt, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_seconds: Option<u64>,
    /// The size the next attempt gets (retryResized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<super::resize::Change>,
}

/// What the decision needs to know of the job.
#[derive(Clone, Debug)]
pub struct JobHistory<'a> {
    pub job_id: &'a str,
    pub team: &'a str,
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// The job's `retry.maxAttempts`: counted attempts at most.
    pub max_attempts: u32,
    /// Classes of the job's earlier failed attempts, oldest first.
    pub earlier: Vec<Class>,
    /// The backoff before the first counted retry, and the most any backoff may be.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Remediation {
    /// Decides what follows `classification` of the attempt `job.attempt`.
    pub fn decide(&self, classification: &Classification, job: &JobHistory<'_>) -> Decision {
        let class = classification.class;
        let fail = |note: String| Decision {
            remedy: Remedy::Fail,
            note,
            counted: false,
            backoff_seconds: None,
            resize: None,
        };
        if classification.action == Action::Fail {
            return fail(format!("rule {} says fail", classification.rule));
        }
        let budget = self.budget(job.team, class);
        let of_class = 1 + job.earlier.iter().filter(|c| **c == class).count() as u32;
        if budget == 0 {
            return fail(format!("retries of {class} are off (budget 0)"));
        }
        if of_class > budget {
            return fail(format!("the {class} budget of {budget} retries is used up"));
        }
        let free = class.is_free();
        let (n, counted) = if free {
            let free_so_far = 1 + job.earlier.iter().filter(|c| c.is_free()).count() as u32;
            if free_so_far > self.max_free_retries {
                return fail(format!(
                    "{free_so_far} evictions or preemptions: maxFreeRetries {} is reached",
                    self.max_free_retries
                ));
            }
            (free_so_far, false)
        } else {
            let counted = 1 + job.earlier.iter().filter(|c| !c.is_free()).count() as u32;
            if counted >= job.max_attempts {
                return fail(format!(
                    "{counted} of retry.maxAttempts {} attempts are used",
                    job.max_attempts
                ));
            }
            if counted > self.max_retries {
                return fail(format!(
                    "remediation.maxRetries {} is reached",
                    self.max_retries
                ));
            }
            (counted, true)
        };
        let delay = self.backoff(job, n);
        let remedy = match classification.action {
            Action::RetryResized => Remedy::RetryResized,
            Action::Reroute => Remedy::Reroute,
            _ => Remedy::Retry,
        };
        let note = if free {
            format!("a free retry ({class} uses no budget)")
        } else {
            format!("retry {of_class} of {budget} for {class}")
        };
        Decision {
            remedy,
            note,
            counted,
            backoff_seconds: Some(delay.as_secs()),
            resize: None,
        }
    }

    /// `base × 2^(n-1)`, capped, less a jitter of up to `jitterPercent` fixed by job and attempt.
    fn backoff(&self, job: &JobHistory<'_>, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        let delay = job.base_backoff.saturating_mul(factor).min(job.max_backoff);
        let digest = Sha256::digest(format!("{}/{}", job.job_id, job.attempt));
        let unit = f64::from(u16::from_be_bytes([digest[0], digest[1]])) / f64::from(u16::MAX);
        let cut = unit * f64::from(self.jitter_percent) / 100.0;
        delay.mul_f64(1.0 - cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::{Finding, RemediationConfig, Source};

    fn classified(class: Class, action: Action) -> Classification {
        Classification {
            class,
            subclass: None,
            rule: "r".into(),
            action,
            evidence: vec![Finding {
                source: Source::Sk8,
                excerpt: String::new(),
            }],
        }
    }

    fn job(earlier: Vec<Class>, max_attempts: u32) -> JobHistory<'static> {
        JobHistory {
            job_id: "j-1",
            team: "t",
            attempt: earlier.len() as u32 + 1,
            max_attempts,
            earlier,
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(600),
        }
    }

    #[test]
    fn user_errors_fail_and_oom_retries_resized() {
        let r = Remediation::default();
        let user = r.decide(&classified(Class::UserError, Action::Fail), &job(vec![], 5));
        assert_eq!(user.remedy, Remedy::Fail);
        let oom = r.decide(
            &classified(Class::ExecutorHeapOom, Action::RetryResized),
            &job(vec![], 5),
        );
        assert_eq!(oom.remedy, Remedy::RetryResized);
        assert!(oom.counted);
        let secs = oom.backoff_seconds.unwrap();
        assert!((8..=10).contains(&secs), "{secs}");
    }

    #[test]
    fn class_budgets_and_the_kill_switch() {
        let mut config = RemediationConfig::default();
        config.budgets.insert("shuffle_fetch".into(), 1);
        config.budgets.insert("platform".into(), 0);
        let r = Remediation::new(&config).unwrap();
        let fetch = classified(Class::ShuffleFetch, Action::Retry);
        assert_eq!(r.decide(&fetch, &job(vec![], 5)).remedy, Remedy::Retry);
        let second = r.decide(&fetch, &job(vec![Class::ShuffleFetch], 5));
        assert_eq!(second.remedy, Remedy::Fail);
        assert!(second.note.contains("budget of 1"), "{}", second.note);
        let off = r.decide(&classified(Class::Platform, Action::Retry), &job(vec![], 5));
        assert_eq!(off.remedy, Remedy::Fail);
        assert!(off.note.contains("budget 0"), "{}", off.note);
    }

    #[test]
    fn evictions_are_free_but_bounded() {
        let r = Remediation::default();
        let evicted = classified(Class::Eviction, Action::Retry);
        // maxAttempts 1: no counted retry, yet an eviction is retried, uncounted.
        let d = r.decide(&evicted, &job(vec![Class::Preemption], 1));
        assert_eq!((d.remedy, d.counted), (Remedy::Retry, false));
        let oom = classified(Class::DriverOom, Action::RetryResized);
        assert_eq!(
            r.decide(&oom, &job(vec![Class::Eviction], 2)).remedy,
            Remedy::RetryResized
        );
        assert_eq!(
            r.decide(&oom, &job(vec![Class::DriverOom], 2)).remedy,
            Remedy::Fail
        );
        let many = vec![Class::Eviction; 10];
        assert_eq!(r.decide(&evicted, &job(many, 1)).remedy, Remedy::Fail);
    }

    #[test]
    fn backoff_doubles_and_jitter_stays_within_its_share() {
        let r = Remediation::default();
        let platform = classified(Class::Platform, Action::Retry);
        let third = r.decide(&platform, &job(vec![Class::Platform, Class::Platform], 9));
        let secs = third.backoff_seconds.unwrap();
        assert!((32..=40).contains(&secs), "{secs}");
    }
}
