//! Remediation: what sk8 does about a failed attempt.
//!
//! - [`taxonomy`]: the classes of failure, the actions, and a [`Classification`] (class,
//!   subclass, the evidence that decided it, the rule that matched);
//! - [`facts`]: what is known of a failed attempt, in the shape rules match on;
//! - [`rules`]: rules as data, first match wins, shipped as defaults (`defaults.yaml`) and
//!   overridable in config (`remediation:`), per team where it makes sense;
//! - [`decide`]: from a classification and the job's past attempts to a decision: retry
//!   (maybe resized or rerouted) after a backoff with jitter, or fail — within per-class
//!   budgets and the job's own cap; evictions and preemptions are free, user errors never
//!   retried.
//!
//! The recorder classifies each failed attempt once its run record is gathered (all the
//! evidence); the reconciler then decides, and writes the decision on the attempt with the
//! event that says it.

pub mod decide;
pub mod facts;
#[cfg(test)]
mod fixtures;
pub mod resize;
pub mod rules;
pub mod taxonomy;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use decide::{Decision, Remedy};
pub use facts::Facts;
pub use rules::{MatchSpec, Rule, RuleError, RuleSpec};
pub use taxonomy::{Action, Class, Classification, Finding, Source};

/// What is stored on a failed attempt: how it was classified and what was decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRemediation {
    pub classification: Classification,
    pub decision: Decision,
    pub decided_at: chrono::DateTime<chrono::Utc>,
    /// From the attempt's end to the decision.
    pub decision_ms: i64,
    /// Whether the run record's evidence was there to decide on (else only the backend's
    /// account: the record was not gathered within `remediation.decisionTimeoutSeconds`, or
    /// the attempt never started).
    pub from_record: bool,
}

/// `remediation:` in sk8's config.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RemediationConfig {
    /// Rules tried before the defaults; one with a default's id replaces that default.
    pub rules: Vec<RuleSpec>,
    /// Per team: rules tried before everyone's, and budgets over everyone's.
    pub teams: BTreeMap<String, TeamRemediation>,
    /// Retries per job and class (`executor_heap_oom: 2`); `0` never retries the class (a kill
    /// switch). Classes not named get [`DEFAULT_BUDGET`].
    pub budgets: BTreeMap<String, u32>,
    /// Counted retries per job at most, whatever the job's `retry.maxAttempts` (which also
    /// caps them); `0` turns every counted retry off.
    pub max_retries: u32,
    /// Free retries (evictions, preemptions) per job at most: they use no budget, but a job
    /// evicted forever must still end.
    pub max_free_retries: u32,
    /// How long a failed attempt waits for its run record before it is decided on the
    /// backend's account alone.
    pub decision_timeout_seconds: u64,
    /// Each backoff is shortened by up to this share, chosen per job and attempt, so jobs that
    /// failed together do not all retry together.
    pub jitter_percent: u32,
}

/// A team's own remediation settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TeamRemediation {
    pub rules: Vec<RuleSpec>,
    pub budgets: BTreeMap<String, u32>,
    /// `off`: the team's jobs are never resized, nor started from a remembered size.
    pub resize: resize::ResizeMode,
}

/// Retries per job for a class no budget names.
pub const DEFAULT_BUDGET: u32 = 3;

impl Default for RemediationConfig {
    fn default() -> Self {
        RemediationConfig {
            rules: Vec::new(),
            teams: BTreeMap::new(),
            budgets: BTreeMap::new(),
            max_retries: 10,
            max_free_retries: 10,
            decision_timeout_seconds: 30,
            jitter_percent: 20,
        }
    }
}

impl RemediationConfig {
    /// Checks every rule and budget, naming the field of the first that is wrong.
    pub fn validate(&self) -> Result<(), RuleError> {
        Remediation::new(self).map(|_| ())
    }
}

/// The rules and budgets in force, compiled once at startup.
#[derive(Clone, Debug)]
pub struct Remediation {
    everyone: Vec<Rule>,
    teams: HashMap<String, Vec<Rule>>,
    budgets: HashMap<Class, u32>,
    team_budgets: HashMap<String, HashMap<Class, u32>>,
    teams_not_resized: HashSet<String>,
    pub max_retries: u32,
    pub max_free_retries: u32,
    pub decision_timeout: std::time::Duration,
    pub jitter_percent: u32,
}

impl Default for Remediation {
    fn default() -> Self {
        Remediation::new(&RemediationConfig::default()).expect("the defaults compile")
    }
}

impl Remediation {
    pub fn new(config: &RemediationConfig) -> Result<Remediation, RuleError> {
        let configured = compile_all(&config.rules, "remediation.rules")?;
        let everyone = ordered(configured.into_iter().chain(rules::defaults()));
        let mut teams = HashMap::new();
        let mut team_budgets = HashMap::new();
        for (team, own) in &config.teams {
            let at = format!("remediation.teams.{team}");
            let mine = compile_all(&own.rules, &format!("{at}.rules"))?;
            teams.insert(
                team.clone(),
                ordered(mine.into_iter().chain(everyone.clone())),
            );
            team_budgets.insert(
                team.clone(),
                budgets(&own.budgets, &format!("{at}.budgets"))?,
            );
        }
        if !(0..=100).contains(&config.jitter_percent) {
            return Err(RuleError {
                field: "remediation.jitterPercent".into(),
                message: format!("must be between 0 and 100, got {}", config.jitter_percent),
            });
        }
        Ok(Remediation {
            everyone,
            teams,
            budgets: budgets(&config.budgets, "remediation.budgets")?,
            team_budgets,
            teams_not_resized: config
                .teams
                .iter()
                .filter(|(_, t)| t.resize == resize::ResizeMode::Off)
                .map(|(team, _)| team.clone())
                .collect(),
            max_retries: config.max_retries,
            max_free_retries: config.max_free_retries,
            decision_timeout: std::time::Duration::from_secs(config.decision_timeout_seconds),
            jitter_percent: config.jitter_percent,
        })
    }

    /// The rules `team`'s jobs are classified by, in order.
    pub fn rules(&self, team: &str) -> &[Rule] {
        self.teams.get(team).unwrap_or(&self.everyone)
    }

    /// The first rule that matches decides; the catch-all default matches anything (a config
    /// that replaced it falls back to the same).
    pub fn classify(&self, team: &str, facts: &Facts) -> Classification {
        self.rules(team)
            .iter()
            .find_map(|rule| rule.classify(facts))
            .unwrap_or_else(|| Classification {
                class: Class::Platform,
                subclass: Some("unknown".into()),
                rule: "none".into(),
                action: Action::Retry,
                evidence: vec![Finding {
                    source: Source::OperatorStatus,
                    excerpt: facts.reason.clone(),
                }],
            })
    }

    /// Whether a job of `team` with `spec` may be resized (neither opted out).
    pub fn resizes(&self, team: &str, spec: &crate::domain::JobSpec) -> bool {
        spec.resize != Some(resize::ResizeMode::Off) && !self.teams_not_resized.contains(team)
    }

    /// Retries per job of `class` for `team` (0: never).
    pub fn budget(&self, team: &str, class: Class) -> u32 {
        if class.never_retried() {
            return 0;
        }
        self.team_budgets
            .get(team)
            .and_then(|b| b.get(&class))
            .or_else(|| self.budgets.get(&class))
            .copied()
            .unwrap_or(DEFAULT_BUDGET)
    }
}

fn compile_all(specs: &[RuleSpec], at: &str) -> Result<Vec<Rule>, RuleError> {
    let mut seen = HashSet::new();
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let rule = Rule::compile(spec, &format!("{at}[{i}]"))?;
            if !seen.insert(rule.id.clone()) {
                return Err(RuleError {
                    field: format!("{at}[{i}].id"),
                    message: format!("{:?} is the id of an earlier rule", rule.id),
                });
            }
            Ok(rule)
        })
        .collect()
}

/// Rules in order, each id once: the first (the most specific source) wins.
fn ordered(rules: impl Iterator<Item = Rule>) -> Vec<Rule> {
    let mut seen = HashSet::new();
    rules.filter(|r| seen.insert(r.id.clone())).collect()
}

fn budgets(raw: &BTreeMap<String, u32>, at: &str) -> Result<HashMap<Class, u32>, RuleError> {
    raw.iter()
        .map(|(name, n)| {
            let class = Class::parse(name).ok_or_else(|| RuleError {
                field: format!("{at}.{name}"),
                message: format!("unknown class {name:?}"),
            })?;
            if class.never_retried() && *n > 0 {
                return Err(RuleError {
                    field: format!("{at}.{name}"),
                    message: format!("{class} is never retried; its budget must be 0"),
                });
            }
            Ok((class, *n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, class: &str, action: &str, when: MatchSpec) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            class: class.into(),
            subclass: None,
            action: action.into(),
            when,
        }
    }

    fn refused(config: &RemediationConfig) -> RuleError {
        config.validate().expect_err("the config is refused")
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        let mut config = RemediationConfig {
            rules: vec![rule("r", "oom", "retry", MatchSpec::default())],
            ..Default::default()
        };
        let err = refused(&config);
        assert_eq!(err.field, "remediation.rules[0].class");
        assert!(err.message.contains("unknown class \"oom\""), "{err}");

        let when = MatchSpec {
            log: Some("OutOfMemory(".into()),
            ..Default::default()
        };
        config.rules = vec![];
        config.teams.insert(
            "payments".into(),
            TeamRemediation {
                rules: vec![rule("r", "driver_oom", "retry", when)],
                ..Default::default()
            },
        );
        let err = refused(&config);
        assert_eq!(err.field, "remediation.teams.payments.rules[0].match.log");
        assert!(err.message.starts_with("invalid regex"), "{err}");

        config.teams.clear();
        config.rules = vec![rule("r", "user_error", "retry", MatchSpec::default())];
        assert_eq!(refused(&config).field, "remediation.rules[0].action");
        config.rules.clear();
        config.budgets.insert("evictions".into(), 1);
        assert_eq!(refused(&config).field, "remediation.budgets.evictions");
    }

    #[test]
    fn a_team_rule_overrides_a_default_for_that_team_only() {
        let when = MatchSpec {
            role: Some("executor".into()),
            exit_codes: vec![52],
            ..Default::default()
        };
        let mut config = RemediationConfig::default();
        config.teams.insert(
            "payments".into(),
            TeamRemediation {
                rules: vec![rule("oom-exit-52", "executor_heap_oom", "fail", when)],
                ..Default::default()
            },
        );
        let remediation = Remediation::new(&config).unwrap();
        let ids = |team: &str| {
            remediation
                .rules(team)
                .iter()
                .filter(|r| r.id == "oom-exit-52")
                .count()
        };
        assert_eq!((ids("payments"), ids("other")), (1, 1));
        let mut facts = Facts::from_reason(None, "Failed: Spark application failed.");
        facts
            .evidence
            .pods
            .push(crate::record::evidence::PodEvidence {
                name: "app-exec-1".into(),
                role: "executor".into(),
                containers: vec![crate::record::evidence::ContainerEvidence {
                    name: "spark-kubernetes-executor".into(),
                    exit_code: Some(52),
                    ..Default::default()
                }],
                ..Default::default()
            });
        assert_eq!(
            remediation.classify("payments", &facts).action,
            Action::Fail
        );
        assert_eq!(
            remediation.classify("other", &facts).action,
            Action::RetryResized
        );
    }
}
