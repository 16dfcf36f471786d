//! Sizing advice for a signature (`GET /v1/advice`): reads the signature's recent runs and the
//! namespace's maxima, and lets [`crate::advice::advise`] decide.

use super::JobService;
use crate::advice::{self, Advice, Maxima, Profile, Run};
use crate::auth::Identity;
use crate::domain::NamespaceSpec;
use crate::domain::names::DnsLabel;
use crate::error::{Error, Result};

/// How many of a signature's latest finished runs are read: enough for [`advice::RUNS`]
/// successful ones among a few failures, few enough to stay fast.
pub(super) const HISTORY: u32 = 20;
const MIB: u64 = 1 << 20;

/// Which signature, with which profile.
#[derive(Debug)]
pub struct AdviceQuery {
    pub team: String,
    pub env: String,
    pub name: String,
    pub profile: Profile,
}

impl JobService {
    /// Advice for the next run of team/env/name, from its latest runs of the same main program.
    pub async fn advice(&self, query: &AdviceQuery, caller: &Identity) -> Result<Advice> {
        let team = DnsLabel::try_from(query.team.clone()).map_err(|e| Error::invalid("team", e))?;
        let env = DnsLabel::try_from(query.env.clone()).map_err(|e| Error::invalid("env", e))?;
        if query.name.trim().is_empty() {
            return Err(Error::invalid("name", "must name the job, as in its spec"));
        }
        let none = || {
            Error::NotFound(format!(
                "no finished run of {}/{}/{} that you can see; advice is drawn from a job's \
                 past runs",
                team, env, query.name
            ))
        };
        if !caller.sees(team.as_str()) {
            return Err(none());
        }
        let runs = self
            .store
            .signature_runs(team.as_str(), env.as_str(), &query.name, HISTORY)
            .await?;
        let current = runs.first().map(|r| r.spec.clone()).ok_or_else(none)?;
        let history = same_program(runs, &current);
        let maxima = self.maxima(&team, &env).await?;
        Ok(advice::advise(&current, &history, query.profile, maxima))
    }

    /// The per-container memory maximum of the team's namespace, if it has one.
    pub(super) async fn maxima(&self, team: &DnsLabel, env: &DnsLabel) -> Result<Maxima> {
        let Some(guard) = &self.guard else {
            return Ok(Maxima::default());
        };
        let spec = guard.provisioned(team, env).await?;
        Ok(spec.map_or_else(Maxima::default, |spec| maxima_of(&spec)))
    }
}

/// The runs of `current`'s main program: a renamed or rewritten program starts fresh.
pub(super) fn same_program(runs: Vec<Run>, current: &crate::domain::JobSpec) -> Vec<Run> {
    let main = advice::main_of(current);
    runs.into_iter()
        .filter(|r| advice::main_of(&r.spec) == main)
        .collect()
}

fn maxima_of(spec: &NamespaceSpec) -> Maxima {
    let memory = spec
        .limits
        .max
        .memory
        .as_ref()
        .map(|q| (q.nanos() / 1_000_000_000) as u64 / MIB);
    Maxima {
        executor_memory_mib: memory,
        driver_memory_mib: memory,
    }
}
