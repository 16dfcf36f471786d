//! Sizing modes and applying advice to a submission.
//!
//! A job's `sizing` (else its team's, else the server's default) says what its submission does
//! with the advice for its signature: `off` nothing, `advise` records the advice on the job,
//! `auto` also applies it. Applied or not, every recommendation is accounted for on the job
//! ([`Sizing`]): applied, or withheld with the reason — low confidence (the runs vary too much
//! to act on), reverted before (see [`super::probation`]), set explicitly by the spec (which
//! wins unless it says `sizingOverride: true`), or a change the spec cannot take.
//!
//! [`apply`] is pure: the service reads the history and the reverts, this decides.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Advice, AdviceStatus, Level, Profile, Recommendation, Saving};
use crate::domain::JobSpec;
use crate::domain::jobspec::{ConfValue, memory_bytes};

/// What a submission does with its signature's advice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SizingMode {
    /// Nothing: no advice is read at submit.
    Off,
    /// The advice is recorded on the job, nothing is changed.
    #[default]
    Advise,
    /// The advice is applied to the submission, within the rules of [`apply`].
    Auto,
}

impl SizingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SizingMode::Off => "off",
            SizingMode::Advise => "advise",
            SizingMode::Auto => "auto",
        }
    }
}

/// `sizing:` in the config: the default mode and profile, and each team's own.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SizingConfig {
    pub mode: SizingMode,
    pub profile: Profile,
    pub teams: BTreeMap<String, TeamSizing>,
}

/// A team's sizing defaults; what it leaves out is the server's.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TeamSizing {
    pub mode: Option<SizingMode>,
    pub profile: Option<Profile>,
}

impl SizingConfig {
    /// The mode and profile a submission of `spec` gets: the spec's mode, else the team's, else
    /// the default; the team's profile, else the default.
    pub fn resolve(&self, spec: &JobSpec) -> (SizingMode, Profile) {
        let team = self.teams.get(spec.team.as_str());
        let mode = spec
            .sizing
            .or(team.and_then(|t| t.mode))
            .unwrap_or(self.mode);
        let profile = team.and_then(|t| t.profile).unwrap_or(self.profile);
        (mode, profile)
    }
}

/// What sizing did for a job at its submission: shown on the job, kept for the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sizing {
    pub mode: SizingMode,
    pub profile: Profile,
    /// The advice's status at submit.
    pub status: AdviceStatus,
    /// Why there was no advice, when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The runs the advice rests on, newest first.
    #[serde(default)]
    pub runs: Vec<String>,
    /// The recommendations applied to this job's spec (the spec shown is after them).
    #[serde(default)]
    pub applied: Vec<Recommendation>,
    /// The recommendations not applied, each with why.
    #[serde(default)]
    pub withheld: Vec<Withheld>,
    /// Recommendations this submission reverted: the run that tried them failed its probation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverted: Vec<Revert>,
    /// The applied changes are on probation: no run of the signature has succeeded with them
    /// yet. A probation run that fails for memory, or runs over 15 % slower, reverts them.
    #[serde(default)]
    pub probation: bool,
}

impl Sizing {
    /// Recommendations given (applied or withheld).
    pub fn given(&self) -> usize {
        self.applied.len() + self.withheld.len()
    }

    /// Moves every applied recommendation to the withheld ones, for `why`.
    pub fn withhold_applied(&mut self, why: &str) {
        self.probation = false;
        for r in self.applied.drain(..) {
            self.withheld.push(Withheld {
                setting: r.setting,
                new: r.new,
                rule: r.rule,
                why: why.into(),
            });
        }
    }

    /// "sizing applied executor.memory 512m (was 4g), …", when anything was applied.
    pub fn describe(&self) -> Option<String> {
        let applied: Vec<String> = self
            .applied
            .iter()
            .map(|r| format!("{} {} (was {})", r.setting, r.new, r.old))
            .collect();
        (!applied.is_empty()).then(|| {
            let probation = if self.probation { ", on probation" } else { "" };
            format!("sizing applied {}{probation}", applied.join(", "))
        })
    }

    /// The estimated saving per run of what was applied.
    pub fn saving(&self) -> Saving {
        let mut saving = Saving::default();
        for r in &self.applied {
            saving.add(r.saving);
        }
        saving.rounded()
    }
}

/// A recommendation not applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Withheld {
    pub setting: String,
    /// The value advised.
    pub new: String,
    pub rule: String,
    pub why: String,
}

/// An applied recommendation taken back after its probation run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revert {
    pub setting: String,
    pub rule: String,
    /// The configuration before the recommendation.
    pub from: String,
    /// The value that was reverted.
    pub to: String,
    /// The job that ran on probation with it.
    pub job_id: String,
    pub reason: String,
}

impl Revert {
    /// Whether this revert still holds `r` back: until the runs call for a more cautious value
    /// than the one reverted (the evidence changed), the rule is not applied again.
    pub fn blocks(&self, r: &Recommendation) -> bool {
        if r.rule != self.rule || r.setting != self.setting {
            return false;
        }
        let (Some(from), Some(to), Some(new)) =
            (amount(&self.from), amount(&self.to), amount(&r.new))
        else {
            return true;
        };
        // More cautious: strictly between the reverted value and where it came from.
        let cautious = if to < from { new > to } else { new < to };
        !cautious
    }
}

/// A setting's value as a number to compare: bytes for sizes, else the integer.
fn amount(value: &str) -> Option<f64> {
    memory_bytes(value)
        .map(|b| b as f64)
        .or_else(|| value.trim().parse::<f64>().ok())
}

/// How the submission may be changed.
pub struct Terms<'a> {
    pub mode: SizingMode,
    /// The submitted body as a JSON value: settings it names are the spec's own. `None` when
    /// the spec lets advice override them (`sizingOverride: true`).
    pub explicit: Option<&'a Value>,
    /// Reverts recorded for the signature.
    pub reverts: &'a [Revert],
}

/// `spec` with what `advice` may change of it under `terms`, and the record of it.
pub fn apply(spec: &JobSpec, advice: &Advice, terms: &Terms) -> (JobSpec, Sizing) {
    let mut sized = spec.clone();
    let mut record = Sizing {
        mode: terms.mode,
        profile: advice.profile,
        status: advice.status,
        reason: advice.reason.clone(),
        runs: advice.runs.clone(),
        applied: Vec::new(),
        withheld: Vec::new(),
        reverted: Vec::new(),
        probation: false,
    };
    for r in &advice.recommendations {
        match withhold(&mut sized, r, terms) {
            Some(why) => record.withheld.push(Withheld {
                setting: r.setting.clone(),
                new: r.new.clone(),
                rule: r.rule.clone(),
                why,
            }),
            None => record.applied.push(r.clone()),
        }
    }
    (sized, record)
}

/// Applies `r` to `spec`, or says why not (leaving `spec` as it was).
fn withhold(spec: &mut JobSpec, r: &Recommendation, terms: &Terms) -> Option<String> {
    if terms.mode != SizingMode::Auto {
        return Some("sizing is advise: shown, not applied (sizing: auto applies it)".into());
    }
    if r.confidence.level == Level::Low {
        return Some(format!(
            "low confidence: the runs vary by {:.0}% (standard deviation over mean); sk8 does \
             not act on it",
            r.confidence.variation * 100.0
        ));
    }
    if let Some(revert) = terms.reverts.iter().find(|v| v.blocks(r)) {
        return Some(format!(
            "reverted after job {} ({}); applied again once the runs call for a more cautious \
             value than {}",
            revert.job_id, revert.reason, revert.to
        ));
    }
    if terms.explicit.is_some_and(|body| sets(body, &r.setting)) {
        return Some("the spec sets it (sizingOverride: true lets advice change it)".into());
    }
    let before = spec.clone();
    if !set(spec, &r.setting, &r.new) {
        return Some("the spec has no such setting to change".into());
    }
    if let Err(err) = spec.validate() {
        *spec = before;
        return Some(format!("it would make the spec invalid: {err}"));
    }
    None
}

/// Whether a submitted body names `setting` (`executor.memory`, `sparkConf.<key>`).
pub fn sets(body: &Value, setting: &str) -> bool {
    if let Some(key) = setting.strip_prefix("sparkConf.") {
        return body
            .get("sparkConf")
            .and_then(|conf| conf.get(key))
            .is_some();
    }
    let mut at = body;
    for part in setting.split('.') {
        match at.get(part) {
            Some(next) => at = next,
            None => return false,
        }
    }
    true
}

/// Sets one advised setting; false when the spec has no such setting.
fn set(spec: &mut JobSpec, setting: &str, value: &str) -> bool {
    let count = || value.parse::<u32>().ok();
    match setting {
        "executor.memory" => spec.executor.memory = value.into(),
        "driver.memory" => spec.driver.memory = value.into(),
        "executor.cores" => match count() {
            Some(n) => spec.executor.cores = n,
            None => return false,
        },
        "executor.instances" => match count() {
            Some(n) => spec.executor.instances = n,
            None => return false,
        },
        "dynamicAllocation.maxExecutors" => match (spec.dynamic_allocation.as_mut(), count()) {
            (Some(dynamic), Some(n)) => dynamic.max_executors = n,
            _ => return false,
        },
        other => match other.strip_prefix("sparkConf.") {
            Some(key) => {
                spec.spark_conf.insert(key.into(), ConfValue(value.into()));
            }
            None => return false,
        },
    }
    true
}
