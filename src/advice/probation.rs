//! Canary and revert: an applied recommendation is on probation for its first run.
//!
//! When the newest finished run of a signature ran with changes on probation, the next
//! submission judges it ([`judge`]): a run that failed with a memory class (remediation's
//! executor heap, executor container or driver OOM, or the backend's out-of-memory) or that
//! succeeded over [`SLOWER`] slower than the signature's runs at a similar input size reverts
//! every change it was trying. The reverts are recorded per signature and hold their rules back
//! ([`super::auto::Revert::blocks`]) until the runs call for a more cautious value.

use super::Run;
use super::auto::Revert;
use crate::domain::FailureClass;

/// How much slower than its peers a probation run may be (15 %).
pub const SLOWER: f64 = 1.15;
/// Inputs within this share of each other count as similar.
const SIMILAR_INPUT: f64 = 0.25;

/// The reverts the newest run of `history` (newest first) calls for, if it was on probation
/// and failed it.
pub fn judge(history: &[Run]) -> Vec<Revert> {
    let Some(latest) = history.first() else {
        return Vec::new();
    };
    let Some(sizing) = latest.sizing.as_ref().filter(|s| s.probation) else {
        return Vec::new();
    };
    let Some(reason) = failed_probation(latest, &history[1..]) else {
        return Vec::new();
    };
    sizing
        .applied
        .iter()
        .map(|r| Revert {
            setting: r.setting.clone(),
            rule: r.rule.clone(),
            from: r.old.clone(),
            to: r.new.clone(),
            job_id: latest.job_id.clone(),
            reason: reason.clone(),
        })
        .collect()
}

/// Whether a run's changes would be on probation: no successful run of `history` ran with
/// every one of them.
pub fn on_probation(applied: &[super::Recommendation], history: &[Run]) -> bool {
    !applied.is_empty()
        && !history.iter().filter(|r| r.succeeded).any(|r| {
            r.sizing.as_ref().is_some_and(|s| {
                applied.iter().all(|a| {
                    s.applied
                        .iter()
                        .any(|b| b.setting == a.setting && b.new == a.new)
                })
            })
        })
}

/// Why `run` failed its probation, compared with the `earlier` runs; none if it passed.
fn failed_probation(run: &Run, earlier: &[Run]) -> Option<String> {
    if !run.succeeded {
        return memory_failure(run).then(|| {
            let class = run
                .class
                .map_or("out of memory", crate::remediation::Class::describe);
            format!("its probation run {} failed: {class}", run.job_id)
        });
    }
    let (duration, input) = shape(run)?;
    let mut peers: Vec<u64> = earlier
        .iter()
        .filter(|r| r.succeeded)
        .filter_map(shape)
        .filter(|(_, i)| similar(*i, input))
        .map(|(d, _)| d)
        .collect();
    if peers.is_empty() {
        return None;
    }
    peers.sort_unstable();
    let median = peers[peers.len() / 2];
    let ratio = duration as f64 / median.max(1) as f64;
    (ratio > SLOWER).then(|| {
        format!(
            "its probation run {} took {:.0}% longer than the median of {} earlier runs at a \
             similar input size",
            run.job_id,
            (ratio - 1.0) * 100.0,
            peers.len()
        )
    })
}

/// A failure that more memory would have prevented: remediation's memory classes, or the
/// backend's out-of-memory.
pub fn memory_failure(run: &Run) -> bool {
    !run.succeeded
        && (run.failure_class == Some(FailureClass::OutOfMemory)
            || run.class.is_some_and(crate::remediation::Class::is_memory))
}

/// A run's duration (ms) and input bytes, from its summary.
fn shape(run: &Run) -> Option<(u64, u64)> {
    let summary = run.summary.as_ref()?;
    let (start, end) = (summary.start_time?, summary.end_time?);
    (end > start).then(|| ((end - start) as u64, summary.io.input_bytes))
}

fn similar(a: u64, b: u64) -> bool {
    let (low, high) = (a.min(b) as f64, a.max(b) as f64);
    high == 0.0 || (high - low) / high <= SIMILAR_INPUT
}
