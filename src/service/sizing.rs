//! Sizing advice on the submit path ([`crate::advice::auto`]): the mode a submission gets, the
//! probation of the signature's last applied changes judged (and reverts recorded), the advice
//! applied within the spec's and the namespace's terms; `POST /v1/jobs?dryRun=true` (the
//! effective spec, nothing stored) and the per-team report (`GET /v1/advice/report`).

use serde::Serialize;
use utoipa::ToSchema;

use super::advice::{HISTORY, same_program};
use super::{JobService, may_act};
use crate::advice::auto::{self, Sizing, SizingMode, Terms};
use crate::advice::report::Report;
use crate::advice::{self, Maxima, probation};
use crate::auth::{Identity, Role};
use crate::domain::JobSpec;
use crate::domain::jobspec::{Format, body_value};
use crate::domain::names::DnsLabel;
use crate::error::{Error, Result};
use crate::remediation::resize::SizedFrom;
use crate::service::namespaces::guard::Footprint;
use crate::store::sizing::Signature;

/// The submitted body: which settings the spec names itself.
#[derive(Clone, Copy)]
pub(super) struct Body<'a> {
    pub bytes: &'a [u8],
    pub format: Format,
}

/// What a submission would run, without running it: the answer to a dry run.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// The spec as it would be stored: remembered sizes and applied advice included.
    pub spec: JobSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sized_from: Option<SizedFrom>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizing: Option<Sizing>,
}

impl JobService {
    /// `spec` with its signature's advice applied as its mode allows, and the record of what
    /// was done. With `commit`, the probation verdict on the last run is stored; a dry run
    /// stores nothing.
    pub(super) async fn sized(
        &self,
        spec: JobSpec,
        body: Body<'_>,
        commit: bool,
    ) -> Result<(JobSpec, Option<Sizing>)> {
        let (mode, profile) = self.sizing.resolve(&spec);
        if mode == SizingMode::Off {
            return Ok((spec, None));
        }
        let (team, env) = (spec.team.as_str(), spec.env.as_str());
        let runs = self
            .store
            .signature_runs(team, env, &spec.name, HISTORY)
            .await?;
        let history = same_program(runs, &spec);
        if history.is_empty() {
            return Ok((spec, None));
        }
        let auto = mode == SizingMode::Auto;
        let main = advice::main_of(&spec);
        let signature = Signature {
            team,
            env,
            name: &spec.name,
            main: &main,
        };
        let judged = self.judge(auto, &history, &signature, commit).await?;
        // What follows is read only when it can matter: most submissions of a signature
        // without enough recorded runs cost one read (the history) and no more.
        let maxima = if advice::enough_runs(&history) {
            self.maxima(&spec.team, &spec.env).await?
        } else {
            Maxima::default()
        };
        let advice = advice::advise(&spec, &history, profile, maxima);
        let (reverts, explicit) = if auto && !advice.recommendations.is_empty() {
            self.holds(&spec, body, &signature, &judged).await?
        } else {
            (Vec::new(), None)
        };
        let terms = Terms {
            mode,
            explicit: explicit.as_ref(),
            reverts: &reverts,
        };
        let (sized, mut record) = auto::apply(&spec, &advice, &terms);
        record.reverted = judged;
        record.probation = probation::on_probation(&record.applied, &history);
        if record.applied.is_empty() || self.fits(&sized).await {
            return Ok((sized, Some(record)));
        }
        record.withhold_applied("the team namespace's guard would refuse the advised spec");
        Ok((spec, Some(record)))
    }

    /// In `auto`, the verdict on the signature's newest run if it was on probation: the
    /// reverts it calls for, stored with `commit`.
    async fn judge(
        &self,
        auto: bool,
        history: &[advice::Run],
        signature: &Signature<'_>,
        commit: bool,
    ) -> Result<Vec<auto::Revert>> {
        if !auto {
            return Ok(Vec::new());
        }
        let judged = probation::judge(history);
        if commit && !judged.is_empty() {
            self.store.sizing_revert_insert(signature, &judged).await?;
        }
        Ok(judged)
    }

    /// What may hold `auto` back: the signature's reverts, with the verdict just reached (a dry
    /// run did not store it, and it holds the rules back all the same), and the settings the
    /// body names itself unless the spec lets advice override them.
    async fn holds(
        &self,
        spec: &JobSpec,
        body: Body<'_>,
        signature: &Signature<'_>,
        judged: &[auto::Revert],
    ) -> Result<(Vec<auto::Revert>, Option<serde_json::Value>)> {
        let mut reverts = self.store.sizing_reverts(signature).await?;
        reverts.extend(judged.iter().cloned());
        let explicit = if spec.sizing_override {
            None
        } else {
            Some(body_value(body.bytes, body.format)?)
        };
        Ok((reverts, explicit))
    }

    /// Whether the namespace guard admits `spec`.
    async fn fits(&self, spec: &JobSpec) -> bool {
        let Some(guard) = &self.guard else {
            return true;
        };
        let footprint = Footprint::of_job(spec);
        guard.admit(&spec.team, &spec.env, &footprint).await.is_ok()
    }

    /// The sizing report of `team`: advice given, applied and reverted, and what it saved.
    pub async fn advice_report(&self, team: &str, caller: &Identity) -> Result<Report> {
        let team = DnsLabel::try_from(team.to_owned()).map_err(|e| Error::invalid("team", e))?;
        may_act(
            caller,
            Role::Viewer,
            team.as_str(),
            "read its sizing report",
        )?;
        let report = self.store.sizing_report(Some(team.as_str())).await?;
        let report = report.into_iter().next().unwrap_or_else(|| Report {
            team: team.to_string(),
            ..Report::default()
        });
        report.record_gauges();
        Ok(report)
    }

    /// Refreshes every team's `sk8_sizing_*` gauges (called when metrics are scraped).
    pub async fn record_sizing_gauges(&self) -> Result<()> {
        for report in self.store.sizing_report(None).await? {
            report.record_gauges();
        }
        Ok(())
    }
}
