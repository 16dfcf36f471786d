//! Gauges read from the store rather than counted as things happen, because they describe the
//! shared state of every replica: jobs by state, each team's live jobs and sessions by state,
//! and the recorder's backlog. They are refreshed when `/metrics` is scraped and, only while
//! OTLP export is on, by a task of their own as often as metrics are exported (between 1 and
//! 15 s: see [`interval`]).
//!
//! Per-team series use the workload's bounded team/env labels; a series whose team has no live
//! job (or session) any more is set to 0 rather than left at its last value.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::workload;
use crate::domain::JobState;
use crate::store::{Store, StoreError, TeamCount};

/// How often the refresher task reads the store: as often as OTLP exports metrics, but at
/// least every 15 s and at most every second.
pub fn interval(metric_export: Duration) -> Duration {
    metric_export.clamp(Duration::from_secs(1), Duration::from_secs(15))
}

/// Team/env/state label sets.
type Series = HashSet<(String, String, String)>;

/// Refreshes every store-derived gauge.
pub async fn refresh(store: &Store) -> Result<(), StoreError> {
    let by_state = store.job_count_by_state().await?;
    for state in JobState::ALL {
        let n = by_state
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("sk8_jobs", "state" => state.as_str()).set(n as f64);
    }
    let jobs = store.job_count_live_by_team().await?;
    set_per_team("sk8_team_jobs", &jobs, &mut shown(&JOBS_SHOWN));
    let sessions = store.session_count_live_by_team().await?;
    set_per_team("sk8_team_sessions", &sessions, &mut shown(&SESSIONS_SHOWN));
    let backlog = store.record_backlog().await?;
    metrics::gauge!("sk8_record_backlog").set(backlog.pending as f64);
    let age = backlog.oldest.map_or(0.0, |oldest| {
        (Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0
    });
    metrics::gauge!("sk8_record_backlog_age_seconds").set(age);
    Ok(())
}

/// Refreshes the gauges every `every` until `stop` (for OTLP, which no scrape drives).
pub async fn refresh_every(store: Store, every: Duration, stop: CancellationToken) {
    let mut every = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {
                if let Err(err) = refresh(&store).await {
                    tracing::debug!(error = %err, "cannot refresh the workload gauges; the next tick retries");
                }
            }
        }
    }
}

static JOBS_SHOWN: OnceLock<Mutex<Series>> = OnceLock::new();
static SESSIONS_SHOWN: OnceLock<Mutex<Series>> = OnceLock::new();

fn shown(cell: &'static OnceLock<Mutex<Series>>) -> std::sync::MutexGuard<'static, Series> {
    cell.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Sets `name{team, env, state}` from `counts` and zeroes the series `shown` had before that
/// are not in `counts`; `shown` becomes what is set now.
fn set_per_team(name: &'static str, counts: &[TeamCount], shown: &mut Series) {
    let now = totals(counts);
    for key in shown.iter().filter(|key| !now.contains_key(*key)) {
        let (team, env, state) = key.clone();
        metrics::gauge!(name, "team" => team, "env" => env, "state" => state).set(0.0);
    }
    for ((team, env, state), n) in &now {
        metrics::gauge!(name, "team" => team.clone(), "env" => env.clone(), "state" => state.clone())
            .set(*n as f64);
    }
    *shown = now.into_keys().collect();
}

/// Counts by bounded labels: teams past the label budget add up under `other`.
fn totals(counts: &[TeamCount]) -> HashMap<(String, String, String), i64> {
    let mut totals = HashMap::new();
    for count in counts {
        let (team, env) = workload::labels(&count.team, &count.env);
        *totals
            .entry((team, env, count.state.to_lowercase()))
            .or_default() += count.n;
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(team: &str, state: &str, n: i64) -> TeamCount {
        TeamCount {
            team: team.into(),
            env: "dev".into(),
            state: state.into(),
            n,
        }
    }

    #[test]
    fn counts_are_keyed_by_team_env_and_lowercase_state() {
        let totals = totals(&[count("a", "RUNNING", 2), count("a", "QUEUED", 1)]);
        assert_eq!(
            totals.get(&("a".into(), "dev".into(), "running".into())),
            Some(&2)
        );
        assert_eq!(totals.len(), 2);
    }

    #[tokio::test]
    async fn the_gauges_read_an_empty_store() {
        let store = Store::in_memory().await;
        refresh(&store).await.unwrap();
        let backlog = store.record_backlog().await.unwrap();
        assert_eq!(backlog, crate::store::Backlog::default());
    }
}
