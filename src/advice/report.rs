//! The per-team report of sizing advice (`GET /v1/advice/report`, and the `sk8_sizing_*`
//! gauges): recommendations given, applied and reverted, and the GiB·s and core·s saved.

use serde::Serialize;
use utoipa::ToSchema;

use super::Saving;

/// What sizing advice did for one team, over every submission the store remembers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub team: String,
    /// Submissions that were given at least one recommendation.
    pub jobs: u64,
    /// Recommendations given (applied or not).
    pub given: u64,
    /// Recommendations applied to a submission (`sizing: auto`).
    pub applied: u64,
    /// Applied recommendations taken back after their probation run.
    pub reverted: u64,
    /// The estimated saving of the applied recommendations, summed over the jobs that ran
    /// with them and succeeded.
    pub saved: Saving,
}

impl Report {
    /// Sets the team's `sk8_sizing_*` gauges.
    pub fn record_gauges(&self) {
        let team = self.team.clone();
        for (outcome, n) in [
            ("given", self.given),
            ("applied", self.applied),
            ("reverted", self.reverted),
        ] {
            metrics::gauge!("sk8_sizing_recommendations", "team" => team.clone(), "outcome" => outcome)
                .set(n as f64);
        }
        metrics::gauge!("sk8_sizing_saved_gib_seconds", "team" => team.clone())
            .set(self.saved.gib_seconds);
        metrics::gauge!("sk8_sizing_saved_core_seconds", "team" => team)
            .set(self.saved.core_seconds);
    }
}
