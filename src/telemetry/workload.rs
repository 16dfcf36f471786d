//! The workload's own numbers, by team and env: runs started and ended (by state and failure
//! class), how long runs take and how long they wait from submit to a running driver (buckets
//! up to a day), how long sessions take to start and resume, and the resources recorded
//! attempts were allocated and used (from their run summaries). Labels are bounded: never a job's name or id, and at most
//! [`MAX_TEAM_ENVS`] distinct team/env pairs, later ones counted as `other`, so a platform with
//! many teams cannot grow the series without bound. The same instruments feed `/metrics` and
//! OTLP (see [`super::otel::metrics`]).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};

use crate::domain::{Attempt, Job, JobState, NewEvent};
use crate::history::summary::{Allocation, MemoryStats};

/// Distinct team/env pairs labelled by name; later pairs are `other`/`other`.
pub const MAX_TEAM_ENVS: usize = 500;

/// The team/env labels of a job: its own while within the budget, else `other`.
pub(super) fn labels(team: &str, env: &str) -> (String, String) {
    static SEEN: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Mutex::default);
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    admit(&mut seen, team, env, MAX_TEAM_ENVS)
}

fn admit(
    seen: &mut HashSet<(String, String)>,
    team: &str,
    env: &str,
    max: usize,
) -> (String, String) {
    let pair = (team.to_owned(), env.to_owned());
    if seen.contains(&pair) || seen.len() < max {
        seen.insert(pair.clone());
        pair
    } else {
        ("other".into(), "other".into())
    }
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

/// Counts a saved transition of `job` (with the attempt it wrote).
pub fn transition(job: &Job, attempt: Option<&Attempt>, event: &NewEvent, now: DateTime<Utc>) {
    let first = attempt.is_some_and(|a| a.attempt == 1);
    // The job's very first start: a start the backend refused for now (given back, QUEUED) is
    // tried again as attempt 1 later, at a new time.
    let very_first = attempt.is_some_and(|a| first && job.started_at == Some(a.created_at));
    let (team, env) = labels(&job.team, &job.env);
    match event.to {
        JobState::Submitted if very_first && event.from == Some(JobState::Queued) => {
            metrics::counter!("sk8_runs_started_total", "team" => team, "env" => env).increment(1);
        }
        JobState::Running if first && event.from == Some(JobState::Submitted) => {
            metrics::histogram!("sk8_run_submit_to_running_seconds", "team" => team, "env" => env)
                .record(seconds(job.created_at, now));
        }
        to if to.is_terminal() => ended(job, team, env, now),
        _ => {}
    }
}

/// A run's end: counted by state and failure class, its duration from submit to end.
pub fn ended(job: &Job, team: String, env: String, now: DateTime<Utc>) {
    let state = job.state.as_str();
    let class = job.failure_class.map_or("none", |c| c.as_str());
    metrics::counter!(
        "sk8_runs_ended_total",
        "team" => team.clone(), "env" => env.clone(), "state" => state, "failure_class" => class
    )
    .increment(1);
    let end = job.finished_at.unwrap_or(now);
    metrics::histogram!("sk8_run_duration_seconds", "team" => team, "env" => env, "state" => state)
        .record(seconds(job.created_at, end));
}

/// A job cancelled before it started (the API ends it, not the reconciler).
pub fn cancelled(job: &Job) {
    let (team, env) = labels(&job.team, &job.env);
    ended(job, team, env, Utc::now());
}

/// A session's server became READY `waited` after it was asked for: its creation (`start`) or
/// its resume (`resume`).
pub fn session_ready(team: &str, env: &str, resumed: bool, waited: chrono::Duration) {
    let (team, env) = labels(team, env);
    let kind = if resumed { "resume" } else { "start" };
    let seconds = waited.num_milliseconds().max(0) as f64 / 1000.0;
    metrics::histogram!("sk8_session_start_seconds", "team" => team, "env" => env, "kind" => kind)
        .record(seconds);
}

/// An attempt's resources from its run summary: core-seconds allocated to executors and used
/// by tasks, and executor memory GiB-seconds allocated and at peak (as if every executor had
/// held the run's highest peak all its life: an upper bound of what was used).
pub fn resources(team: &str, env: &str, allocation: &Allocation, memory: &MemoryStats) {
    let (team, env) = labels(team, env);
    let cores = |kind: &'static str, value: f64| {
        metrics::counter!("sk8_resource_core_seconds_total", "team" => team.clone(), "env" => env.clone(), "kind" => kind)
            .increment(value.round() as u64);
    };
    cores("allocated", allocation.core_seconds);
    cores("used", allocation.task_seconds);
    let memory_gib = |kind: &'static str, value: f64| {
        metrics::counter!("sk8_resource_memory_gib_seconds_total", "team" => team.clone(), "env" => env.clone(), "kind" => kind)
            .increment(value.round() as u64);
    };
    memory_gib("allocated", allocation.memory_gib_seconds);
    if let Some(share) = peak_share(allocation, memory) {
        memory_gib("peak", allocation.memory_gib_seconds * share);
    }
}

/// The executors' highest memory peak as a share of their request, when both are known.
fn peak_share(allocation: &Allocation, memory: &MemoryStats) -> Option<f64> {
    let requested = allocation.executor_memory_mib? as f64 * 1024.0 * 1024.0;
    let heap = memory.executor_jvm_heap.as_ref().map_or(0, |p| p.max);
    let off_heap = memory.executor_jvm_off_heap.as_ref().map_or(0, |p| p.max);
    let rss = memory
        .executor_process_tree_rss
        .as_ref()
        .map_or(0, |p| p.max);
    let peak = rss.max(heap + off_heap);
    (requested > 0.0 && peak > 0).then(|| (peak as f64 / requested).min(1.0))
}

/// What the dashboards read, described once.
pub fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "sk8_runs_started_total",
        "Runs whose first attempt was submitted, by team and env"
    );
    describe_counter!(
        "sk8_runs_ended_total",
        "Runs that reached a final state, by team, env, state and failure class"
    );
    describe_histogram!(
        "sk8_run_duration_seconds",
        "From submit to the run's final state, by team, env and state"
    );
    describe_histogram!(
        "sk8_run_submit_to_running_seconds",
        "From submit to the first attempt's driver running, by team and env"
    );
    describe_histogram!(
        "sk8_session_start_seconds",
        "From a session's start (kind=start) or resume (kind=resume) to its server READY, by team and env"
    );
    describe_counter!(
        "sk8_resource_core_seconds_total",
        "Executor core-seconds of recorded attempts, by team, env and kind: allocated, used (task time)"
    );
    describe_counter!(
        "sk8_resource_memory_gib_seconds_total",
        "Executor memory GiB-seconds of recorded attempts, by team, env and kind: allocated, peak"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_env_pairs_past_the_budget_are_other() {
        let mut seen = HashSet::new();
        assert_eq!(admit(&mut seen, "a", "dev", 2), ("a".into(), "dev".into()));
        assert_eq!(admit(&mut seen, "b", "dev", 2), ("b".into(), "dev".into()));
        assert_eq!(
            admit(&mut seen, "c", "dev", 2),
            ("other".into(), "other".into())
        );
        assert_eq!(admit(&mut seen, "a", "dev", 2), ("a".into(), "dev".into()));
        assert_eq!(seen.len(), 2);
    }
}
