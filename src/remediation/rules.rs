//! Rules as data: an ordered list, first match wins, in the shape of Kubernetes'
//! `podFailurePolicy` and Armada's retry rules. A rule names its class and action and matches
//! on any of: exit codes, container and waiting reasons, pod reasons and conditions (all on the
//! same pod, optionally of one role), operator states, the backend's class, and regexes over
//! the backend's reason, the driver log, failed executors' logs, Kubernetes Events and the
//! event log's task ends. Every condition a rule gives must hold.
//!
//! [`RuleSpec`] is the config's form (`remediation.rules`, `remediation.teams.<team>.rules`);
//! [`Rule`] is a spec checked and compiled at startup. The defaults ship as data
//! (`defaults.yaml` beside this file).

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::facts::Facts;
use super::taxonomy::{Action, Class, Classification, Finding, Source};
use crate::record::evidence::PodEvidence;

/// The rules sk8 ships, in order.
const DEFAULTS: &str = include_str!("defaults.yaml");

/// The longest excerpt kept of a matching line.
const EXCERPT_CHARS: usize = 400;

/// A rule as configured.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    /// One of the taxonomy's classes (`executor_heap_oom`, …).
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subclass: Option<String>,
    /// `retry`, `retryResized`, `reroute` or `fail`.
    pub action: String,
    #[serde(rename = "match", default)]
    pub when: MatchSpec,
}

/// What a rule matches on; every condition given must hold.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MatchSpec {
    /// Pod conditions apply only to pods of this role: `driver` or `executor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A container's (or the local driver process's) exit code.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exit_codes: Vec<i32>,
    /// A container's termination reason (`OOMKilled`, `Error`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub container_reasons: Vec<String>,
    /// A container's waiting reason (`ErrImagePull`, `InvalidImageName`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_reasons: Vec<String>,
    /// The pod's own reason (`Evicted`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pod_reasons: Vec<String>,
    /// A true pod condition, `Type` or `Type/Reason` (`DisruptionTarget/PreemptionByScheduler`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// The operator's final state (`SchedulingFailure`, `ExecutorsStartTimedOut`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operator_states: Vec<String>,
    /// The backend's coarse class (`timeout`, `configuration`…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backend_classes: Vec<String>,
    /// A regex over the backend's account of the end (an API refusal, an operator message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A regex over the driver log's lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// A regex over failed executors' log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor_log: Option<String>,
    /// A regex over Kubernetes Events, as `Reason: message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
    /// A regex over the event log's task ends (`ExecutorLostFailure exit 52`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_end: Option<String>,
}

/// A rule refused, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: String,
    pub message: String,
}

/// A checked, compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub class: Class,
    pub subclass: Option<String>,
    pub action: Action,
    when: Matcher,
}

#[derive(Clone, Debug, Default)]
struct Matcher {
    role: Option<String>,
    exit_codes: Vec<i32>,
    container_reasons: Vec<String>,
    waiting_reasons: Vec<String>,
    pod_reasons: Vec<String>,
    conditions: Vec<String>,
    operator_states: Vec<String>,
    backend_classes: Vec<String>,
    reason: Option<Regex>,
    log: Option<Regex>,
    executor_log: Option<Regex>,
    events: Option<Regex>,
    task_end: Option<Regex>,
}

/// The default rules, compiled (they are tested to compile).
pub fn defaults() -> Vec<Rule> {
    default_specs()
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            Rule::compile(spec, &format!("defaults[{i}]")).expect("default rules compile")
        })
        .collect()
}

/// The default rules as data.
pub fn default_specs() -> Vec<RuleSpec> {
    serde_saphyr::from_str(DEFAULTS).expect("defaults.yaml parses")
}

impl Rule {
    /// Checks and compiles `spec`; errors name `at` and the field.
    pub fn compile(spec: &RuleSpec, at: &str) -> Result<Rule, RuleError> {
        let err = |field: &str, message: String| RuleError {
            field: format!("{at}.{field}"),
            message,
        };
        if spec.id.trim().is_empty() {
            return Err(err("id", "must not be empty".into()));
        }
        let class = Class::parse(&spec.class).ok_or_else(|| {
            let known: Vec<_> = Class::ALL.iter().map(|c| c.as_str()).collect();
            err(
                "class",
                format!(
                    "unknown class {:?}; one of {}",
                    spec.class,
                    known.join(", ")
                ),
            )
        })?;
        let action = Action::parse(&spec.action).ok_or_else(|| {
            err(
                "action",
                format!(
                    "unknown action {:?}; one of retry, retryResized, reroute, fail",
                    spec.action
                ),
            )
        })?;
        if class.never_retried() && action != Action::Fail {
            return Err(err(
                "action",
                format!("{class} is never retried; the action must be fail"),
            ));
        }
        let when = Matcher::compile(&spec.when, |field, message| {
            err(&format!("match.{field}"), message)
        })?;
        Ok(Rule {
            id: spec.id.clone(),
            class,
            subclass: spec.subclass.clone(),
            action,
            when,
        })
    }

    /// The classification this rule gives `facts`, if it matches.
    pub fn classify(&self, facts: &Facts) -> Option<Classification> {
        let mut evidence = self.when.matches(facts)?;
        if evidence.is_empty() {
            // The catch-all: what the backend said is all there is.
            evidence.push(finding(Source::OperatorStatus, &facts.reason));
        }
        Some(Classification {
            class: self.class,
            subclass: self.subclass.clone(),
            rule: self.id.clone(),
            action: self.action,
            evidence,
        })
    }
}

impl Matcher {
    fn compile(
        spec: &MatchSpec,
        err: impl Fn(&str, String) -> RuleError,
    ) -> Result<Matcher, RuleError> {
        let regex = |field: &str, pattern: &Option<String>| {
            pattern
                .as_deref()
                .map(|p| Regex::new(p).map_err(|e| err(field, format!("invalid regex: {e}"))))
                .transpose()
        };
        if let Some(role) = spec
            .role
            .as_deref()
            .filter(|r| !matches!(*r, "driver" | "executor"))
        {
            return Err(err(
                "role",
                format!("must be driver or executor, got {role:?}"),
            ));
        }
        for (i, class) in spec.backend_classes.iter().enumerate() {
            if crate::domain::FailureClass::parse(class).is_none() {
                return Err(err(
                    &format!("backendClasses[{i}]"),
                    format!("unknown backend class {class:?}"),
                ));
            }
        }
        let matcher = Matcher {
            role: spec.role.clone(),
            exit_codes: spec.exit_codes.clone(),
            container_reasons: spec.container_reasons.clone(),
            waiting_reasons: spec.waiting_reasons.clone(),
            pod_reasons: spec.pod_reasons.clone(),
            conditions: spec.conditions.clone(),
            operator_states: spec.operator_states.clone(),
            backend_classes: spec.backend_classes.clone(),
            reason: regex("reason", &spec.reason)?,
            log: regex("log", &spec.log)?,
            executor_log: regex("executorLog", &spec.executor_log)?,
            events: regex("events", &spec.events)?,
            task_end: regex("taskEnd", &spec.task_end)?,
        };
        if matcher.is_empty() && spec.role.is_some() {
            return Err(err(
                "role",
                "a role alone matches nothing; add a pod condition".into(),
            ));
        }
        Ok(matcher)
    }

    fn is_empty(&self) -> bool {
        !self.has_pod_conditions()
            && self.operator_states.is_empty()
            && self.backend_classes.is_empty()
            && [
                &self.reason,
                &self.log,
                &self.executor_log,
                &self.events,
                &self.task_end,
            ]
            .iter()
            .all(|r| r.is_none())
    }

    fn has_pod_conditions(&self) -> bool {
        !(self.exit_codes.is_empty()
            && self.container_reasons.is_empty()
            && self.waiting_reasons.is_empty()
            && self.pod_reasons.is_empty()
            && self.conditions.is_empty())
    }

    /// The findings when every condition holds; none otherwise. A matcher with no condition
    /// matches anything (the catch-all).
    fn matches(&self, facts: &Facts) -> Option<Vec<Finding>> {
        let mut found = Vec::new();
        if self.has_pod_conditions() {
            found.push(self.pod_finding(facts)?);
        }
        if !self.operator_states.is_empty() {
            let state = facts.operator_state.as_deref()?;
            self.operator_states
                .iter()
                .any(|s| s == state)
                .then_some(())?;
            found.push(finding(Source::OperatorStatus, &facts.reason));
        }
        if !self.backend_classes.is_empty() {
            let class = facts.backend_class?.as_str();
            self.backend_classes
                .iter()
                .any(|c| c == class)
                .then_some(())?;
            found.push(finding(Source::Sk8, &facts.reason));
        }
        if let Some(re) = &self.reason {
            found.push(finding(
                Source::OperatorStatus,
                line_matching(re, &facts.reason)?,
            ));
        }
        if let Some(re) = &self.log {
            found.push(finding(
                Source::DriverLog,
                line_matching(re, &facts.driver_log)?,
            ));
        }
        if let Some(re) = &self.executor_log {
            let line = facts
                .executor_logs
                .iter()
                .find_map(|(pod, log)| line_matching(re, log).map(|l| format!("{pod}: {l}")))?;
            found.push(finding(Source::ExecutorLog, &line));
        }
        if let Some(re) = &self.events {
            let line = facts.evidence.events.iter().find_map(|e| {
                let text = format!("{}: {}", e.reason, e.message);
                re.is_match(&text).then(|| format!("{} {text}", e.object))
            })?;
            found.push(finding(Source::KubeEvent, &line));
        }
        if let Some(re) = &self.task_end {
            let line = facts.task_ends.iter().find(|t| re.is_match(t))?;
            found.push(finding(Source::EventLog, line));
        }
        Some(found)
    }

    /// The first pod (or the local driver process) that meets every pod condition.
    fn pod_finding(&self, facts: &Facts) -> Option<Finding> {
        let role_ok = |role: &str| self.role.as_deref().is_none_or(|r| r == role);
        let pod = facts
            .evidence
            .pods
            .iter()
            .filter(|p| role_ok(&p.role))
            .find_map(|p| self.pod_matches(p));
        if pod.is_some() {
            return pod.map(|excerpt| finding(Source::PodStatus, &excerpt));
        }
        // The local driver process: only exit codes apply to it.
        let process = facts.evidence.process.as_ref()?;
        let only_exit_codes = self.container_reasons.is_empty()
            && self.waiting_reasons.is_empty()
            && self.pod_reasons.is_empty()
            && self.conditions.is_empty();
        let code = process.exit_code?;
        (only_exit_codes && role_ok("driver") && self.exit_codes.contains(&code)).then(|| {
            finding(
                Source::ProcessExit,
                &format!("the driver process exited {code}"),
            )
        })
    }

    /// What of `pod` meets every pod condition, for the excerpt.
    fn pod_matches(&self, pod: &PodEvidence) -> Option<String> {
        let mut facts = Vec::new();
        if !self.pod_reasons.is_empty() {
            let reason = pod.reason.as_deref()?;
            self.pod_reasons.iter().any(|r| r == reason).then_some(())?;
            facts.push(format!("reason {reason}"));
        }
        if !self.conditions.is_empty() {
            let condition = pod.conditions.iter().find(|c| {
                c.status == "True"
                    && self
                        .conditions
                        .iter()
                        .any(|want| match want.split_once('/') {
                            Some((kind, reason)) => {
                                c.kind == kind && c.reason.as_deref() == Some(reason)
                            }
                            None => c.kind == *want,
                        })
            })?;
            let why = condition.reason.as_deref().unwrap_or("");
            facts.push(format!(
                "condition {}={} {why}",
                condition.kind, condition.status
            ));
        }
        let container_conditions = !(self.exit_codes.is_empty()
            && self.container_reasons.is_empty()
            && self.waiting_reasons.is_empty());
        if container_conditions {
            let container = pod.containers.iter().find_map(|c| {
                let code_ok = self.exit_codes.is_empty()
                    || c.exit_code.is_some_and(|e| self.exit_codes.contains(&e));
                let reason_ok = self.container_reasons.is_empty()
                    || c.reason
                        .as_ref()
                        .is_some_and(|r| self.container_reasons.contains(r));
                let waiting_ok = self.waiting_reasons.is_empty()
                    || c.waiting
                        .as_ref()
                        .is_some_and(|w| self.waiting_reasons.contains(w));
                (code_ok && reason_ok && waiting_ok).then(|| describe_container(c))
            })?;
            facts.push(container);
        }
        Some(format!(
            "{} pod {}: {}",
            pod.role,
            pod.name,
            facts.join(", ")
        ))
    }
}

fn describe_container(c: &crate::record::evidence::ContainerEvidence) -> String {
    let mut parts = vec![format!("container {}", c.name)];
    if let Some(waiting) = &c.waiting {
        parts.push(format!("waiting {waiting}"));
    }
    if let Some(reason) = &c.reason {
        parts.push(format!("terminated {reason}"));
    }
    if let Some(code) = c.exit_code {
        parts.push(format!("exit code {code}"));
    }
    parts.join(" ")
}

/// The first line of `text` that `re` matches.
fn line_matching<'a>(re: &Regex, text: &'a str) -> Option<&'a str> {
    text.lines().find(|line| re.is_match(line))
}

fn finding(source: Source, excerpt: &str) -> Finding {
    let excerpt = excerpt.trim();
    let excerpt = match excerpt.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &excerpt[..cut]),
        None => excerpt.to_owned(),
    };
    Finding { source, excerpt }
}
