//! The sizing rules: pure functions from what past runs used (their run summaries) and what
//! they were given to what the next run should get. No I/O, no clock: the same history always
//! gives the same advice, and each rule is monotone in its evidence (more peak memory never
//! recommends less memory), floored at Spark's minimums and capped at the namespace's maxima.
//! The property tests below hold them to that.

use serde::Serialize;
use utoipa::ToSchema;

/// Spark's reserved system memory per JVM (`RESERVED_SYSTEM_MEMORY_BYTES`): a heap must hold it
/// on top of what tasks use.
pub const RESERVED_MIB: u64 = 300;
/// The least heap Spark starts an executor or a driver with (1.5 × the reserved memory).
pub const MIN_HEAP_MIB: u64 = 450;
/// The least memory overhead Spark gives a container (`spark.executor.memoryOverhead`).
pub const MIN_OVERHEAD_MIB: u64 = 384;
/// Memory is recommended in whole steps of this, so small wobbles do not change the advice.
pub const STEP_MIB: u64 = 256;
/// Shuffle data per partition the partition rule aims at (Spark's AQE advisory size is 64 MiB;
/// a fixed count is best a little above it).
pub const TARGET_PARTITION_BYTES: u64 = 128 << 20;
/// A stage whose slowest task takes this many times its median is skewed.
pub const SKEW_RATIO: f64 = 5.0;
/// GC above this share of task time means too many tasks share one heap.
pub const GC_SHARE: f64 = 0.10;

/// How much room the advice leaves: more headroom is safer, less is cheaper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Conservative,
    #[default]
    Balanced,
    Cost,
}

impl Profile {
    /// Memory headroom over the observed p95 peak.
    pub fn headroom(self) -> f64 {
        match self {
            Profile::Conservative => 1.5,
            Profile::Balanced => 1.3,
            Profile::Cost => 1.15,
        }
    }

    /// The share of allocated core-seconds that tasks should use before fewer executors are
    /// recommended.
    pub fn target_core_usage(self) -> f64 {
        match self {
            Profile::Conservative => 0.4,
            Profile::Balanced => 0.6,
            Profile::Cost => 0.75,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Conservative => "conservative",
            Profile::Balanced => "balanced",
            Profile::Cost => "cost",
        }
    }

    pub fn parse(text: &str) -> Option<Profile> {
        [Profile::Conservative, Profile::Balanced, Profile::Cost]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// `value` rounded up to a whole number of steps.
fn round_up(value: u64, step: u64) -> u64 {
    value.div_ceil(step) * step
}

/// The heap (MiB) for a JVM whose p95 peak heap use was `peak_mib`: the peak with headroom,
/// plus Spark's reserved memory, in whole steps; at least Spark's minimum, at most `max_mib`.
pub fn heap_mib(peak_mib: u64, profile: Profile, max_mib: Option<u64>) -> u64 {
    let wanted = (peak_mib as f64 * profile.headroom()).ceil() as u64 + RESERVED_MIB;
    let floor = round_up(MIN_HEAP_MIB, STEP_MIB);
    let stepped = round_up(wanted, STEP_MIB).max(floor);
    cap(stepped, max_mib, floor)
}

/// The memory overhead (MiB) for executors whose process trees used `non_heap_mib` beyond
/// their heap at p95 (Python workers, native buffers, metaspace): with headroom, in whole
/// steps, at least Spark's minimum, at most `max_mib`.
pub fn overhead_mib(non_heap_mib: u64, profile: Profile, max_mib: Option<u64>) -> u64 {
    let wanted = (non_heap_mib as f64 * profile.headroom()).ceil() as u64;
    let stepped = round_up(wanted.max(MIN_OVERHEAD_MIB), STEP_MIB);
    cap(stepped, max_mib, MIN_OVERHEAD_MIB)
}

/// Cores per executor: halved (at least 1) when garbage collection took more than
/// [`GC_SHARE`] of task time, since tasks sharing a heap then mostly wait for it.
pub fn executor_cores(cores: u32, gc_share: f64) -> u32 {
    if gc_share > GC_SHARE && cores > 1 {
        cores / 2
    } else {
        cores
    }
}

/// Executors (or dynamic allocation's maximum): when tasks used only `usage` of the allocated
/// core-seconds, as many as would have kept the profile's target busy; never more than today
/// (adding executors is not what idle ones call for), at least 1.
pub fn executor_count(executors: u32, usage: f64, profile: Profile) -> u32 {
    let target = profile.target_core_usage();
    if !(usage.is_finite()) || usage >= target || executors <= 1 {
        return executors;
    }
    let needed = (f64::from(executors) * usage / target).ceil() as u32;
    needed.clamp(1, executors)
}

/// Executors when the runs' widest moment is known: at most `peak_running` tasks ran at once,
/// which `peak_running / cores` executors hold, so more were never all busy at any moment and
/// can go without slowing anything. The cost profile goes further where the core-usage rule
/// (`by_usage`) says so, accepting a slower widest stage; never more than today, at least 1.
pub fn executors_for_peak(
    executors: u32,
    peak_running: u64,
    cores: u32,
    by_usage: u32,
    profile: Profile,
) -> u32 {
    let by_peak = peak_running.div_ceil(u64::from(cores.max(1)));
    let by_peak = u32::try_from(by_peak)
        .unwrap_or(u32::MAX)
        .clamp(1, executors.max(1));
    match profile {
        Profile::Cost => by_peak.min(by_usage.max(1)),
        _ => by_peak,
    }
}

/// What the partition rule says of `spark.sql.shuffle.partitions`.
#[derive(Clone, Debug, PartialEq)]
pub enum Partitions {
    /// Keep the count.
    Keep,
    /// Use this many.
    Set(u32),
    /// Shuffles are skewed: more partitions do not help; AQE's skew-join handling does.
    Skewed { ratio: f64 },
}

/// Partitions for the largest shuffle (`shuffle_bytes`, p95 over runs): doubled when tasks
/// spilled to disk without skew; with skew, AQE instead; else sized to about
/// [`TARGET_PARTITION_BYTES`] each, never fewer than `min` (the cores that run them).
pub fn shuffle_partitions(
    current: u32,
    shuffle_bytes: u64,
    spilled: bool,
    skew_ratio: f64,
    min: u32,
) -> Partitions {
    if skew_ratio >= SKEW_RATIO {
        return Partitions::Skewed { ratio: skew_ratio };
    }
    if spilled {
        return Partitions::Set(current.saturating_mul(2));
    }
    if shuffle_bytes == 0 {
        return Partitions::Keep;
    }
    let sized = shuffle_bytes.div_ceil(TARGET_PARTITION_BYTES);
    let sized = u32::try_from(sized).unwrap_or(u32::MAX).max(min.max(1));
    // Only a change worth making: at least halving or doubling.
    if sized * 2 <= current || sized >= current.saturating_mul(2) {
        Partitions::Set(sized)
    } else {
        Partitions::Keep
    }
}

/// `value` at most `max` (when there is one), never below `floor`.
fn cap(value: u64, max: Option<u64>, floor: u64) -> u64 {
    max.map_or(value, |max| value.min(max)).max(floor)
}

/// The 95th percentile (nearest rank) of `values`; 0 when there are none.
pub fn p95(values: &[u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((sorted.len() as f64) * 0.95).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How much `values` vary: their standard deviation over their mean (0 for fewer than two or
/// a zero mean).
pub fn variation(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return 0.0;
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.sqrt() / mean
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PROFILES: [Profile; 3] = [Profile::Conservative, Profile::Balanced, Profile::Cost];

    fn profile() -> impl Strategy<Value = Profile> {
        (0..3usize).prop_map(|i| PROFILES[i])
    }

    proptest! {
        #[test]
        fn more_peak_heap_never_recommends_less(a in 0u64..200_000, b in 0u64..200_000,
                                                p in profile(), max in proptest::option::of(512u64..1_000_000)) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(heap_mib(lo, p, max) <= heap_mib(hi, p, max));
            prop_assert!(overhead_mib(lo, p, max) <= overhead_mib(hi, p, max));
        }

        #[test]
        fn memory_stays_within_sparks_minimum_and_the_namespace_maximum(
            peak in 0u64..2_000_000, p in profile(), max in proptest::option::of(0u64..1_000_000)) {
            let heap = heap_mib(peak, p, max);
            prop_assert!(heap >= MIN_HEAP_MIB);
            if let Some(max) = max {
                prop_assert!(heap <= max.max(round_up(MIN_HEAP_MIB, STEP_MIB)));
            }
            let overhead = overhead_mib(peak, p, max);
            prop_assert!(overhead >= MIN_OVERHEAD_MIB);
            if let Some(max) = max {
                prop_assert!(overhead <= max.max(MIN_OVERHEAD_MIB));
            }
        }

        #[test]
        fn more_headroom_never_recommends_less(peak in 0u64..200_000) {
            prop_assert!(heap_mib(peak, Profile::Cost, None) <= heap_mib(peak, Profile::Balanced, None));
            prop_assert!(heap_mib(peak, Profile::Balanced, None) <= heap_mib(peak, Profile::Conservative, None));
        }

        #[test]
        fn executors_are_never_added_and_never_below_one(n in 0u32..1000, usage in 0.0f64..2.0, p in profile()) {
            let count = executor_count(n, usage, p);
            prop_assert!(count <= n.max(1));
            prop_assert!(count >= 1 || n == 0);
        }

        #[test]
        fn more_usage_never_recommends_fewer_executors(n in 1u32..1000, a in 0.0f64..1.0, b in 0.0f64..1.0, p in profile()) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(executor_count(n, lo, p) <= executor_count(n, hi, p));
        }

        #[test]
        fn a_wider_peak_never_recommends_fewer_executors(n in 1u32..1000, a in 0u64..10_000,
                b in 0u64..10_000, cores in 1u32..16, usage in 1u32..1000, p in profile()) {
            let (lo, hi) = (a.min(b), a.max(b));
            let by_usage = usage.min(n);
            let fewer = executors_for_peak(n, lo, cores, by_usage, p);
            let more = executors_for_peak(n, hi, cores, by_usage, p);
            prop_assert!(fewer <= more);
            prop_assert!((1..=n).contains(&fewer) && (1..=n).contains(&more));
        }

        #[test]
        fn cores_are_halved_only_under_gc_pressure(cores in 1u32..64, gc in 0.0f64..1.0) {
            let advised = executor_cores(cores, gc);
            prop_assert!(advised >= 1 && advised <= cores);
            if gc <= GC_SHARE { prop_assert_eq!(advised, cores); }
        }

        #[test]
        fn partitions_are_stable_and_at_least_the_minimum(current in 1u32..10_000, bytes in 0u64..(1u64 << 42),
                                                          min in 1u32..512) {
            let first = shuffle_partitions(current, bytes, false, 1.0, min);
            prop_assert_eq!(first.clone(), shuffle_partitions(current, bytes, false, 1.0, min));
            if let Partitions::Set(n) = first { prop_assert!(n >= min); }
        }
    }

    #[test]
    fn an_example_by_hand() {
        // A 4 GiB executor whose heap peaked at 700 MiB: 700 × 1.3 + 300 = 1210 → 1280 MiB.
        assert_eq!(heap_mib(700, Profile::Balanced, None), 1280);
        assert_eq!(heap_mib(700, Profile::Balanced, Some(1024)), 1024);
        assert_eq!(overhead_mib(100, Profile::Balanced, None), 512);
        assert_eq!(executor_cores(4, 0.2), 2);
        assert_eq!(executor_count(10, 0.3, Profile::Balanced), 5);
        assert_eq!(
            shuffle_partitions(200, 1 << 30, false, 1.2, 4),
            Partitions::Set(8)
        );
        assert_eq!(
            shuffle_partitions(200, 1 << 30, true, 1.2, 4),
            Partitions::Set(400)
        );
        assert!(matches!(
            shuffle_partitions(200, 1 << 30, true, 9.0, 4),
            Partitions::Skewed { .. }
        ));
        assert_eq!(p95(&[1, 2, 3, 4, 100]), 100);
        assert_eq!(p95(&[5]), 5);
        assert!(variation(&[10.0, 10.0, 10.0]) < 1e-9);
    }
}
