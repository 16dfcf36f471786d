//! Resized retries: how much more memory each OOM class gets on its next attempt.
//!
//! - executor heap OOM: `executor.memory` × 1.5;
//! - executor container OOM without a JVM OOM: `spark.executor.memoryOverhead` + max(1 GiB,
//!   50 % of the overhead as Spark computes it);
//! - driver OOM: `driver.memory` × 2.
//!
//! Sizes are written as Spark sizes (`6g`, `1536m`), rounded up to whole MiB.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Class;
use crate::domain::JobSpec;
use crate::domain::jobspec::{ConfValue, memory_bytes};
use crate::service::namespaces::guard::memory_overhead;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const OVERHEAD_CONF: &str = "spark.executor.memoryOverhead";

/// Whether failed attempts may be retried with more memory, and a job start from the size
/// that worked for the same job before: `"resize": "off"` in the spec or the team's config
/// opts out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    #[default]
    On,
    Off,
}

/// One size changed between attempts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The spec's field: `executor.memory`, `driver.memory`,
    /// `sparkConf.spark.executor.memoryOverhead`.
    pub field: String,
    pub from: String,
    pub to: String,
}

impl Change {
    /// "executor.memory 6g (was 4g)".
    pub fn describe(&self) -> String {
        format!("{} {} (was {})", self.field, self.to, self.from)
    }
}

/// `spec` with more memory for `class`, and what changed; none for a class no resize helps.
pub fn resized(spec: &JobSpec, class: Class) -> Option<(JobSpec, Change)> {
    let mut next = spec.clone();
    let change = match class {
        Class::ExecutorHeapOom => {
            let to = scaled(&spec.executor.memory, 3, 2)?;
            next.executor.memory = to.clone();
            change("executor.memory", &spec.executor.memory, to)
        }
        Class::DriverOom => {
            let to = scaled(&spec.driver.memory, 2, 1)?;
            next.driver.memory = to.clone();
            change("driver.memory", &spec.driver.memory, to)
        }
        Class::ExecutorContainerOom => {
            let python = spec.main_application_file.ends_with(".py");
            let now = memory_overhead("executor", &spec.executor.memory, python, &spec.spark_conf);
            let to = size(now + (now / 2).max(GIB));
            next.spark_conf
                .insert(OVERHEAD_CONF.into(), ConfValue(to.clone()));
            change(&format!("sparkConf.{OVERHEAD_CONF}"), &size(now), to)
        }
        _ => return None,
    };
    Some((next, change))
}

/// Applies a change remembered from another job, where it makes `spec` larger.
pub fn apply(spec: &mut JobSpec, change: &Change) -> bool {
    let larger = |now: &str| {
        let bytes = |s: &str| memory_bytes(s).or_else(|| s.parse::<u64>().ok().map(|m| m * MIB));
        bytes(&change.to) > bytes(now)
    };
    match change.field.as_str() {
        "executor.memory" if larger(&spec.executor.memory) => {
            spec.executor.memory = change.to.clone();
        }
        "driver.memory" if larger(&spec.driver.memory) => spec.driver.memory = change.to.clone(),
        field if field == format!("sparkConf.{OVERHEAD_CONF}") => {
            let python = spec.main_application_file.ends_with(".py");
            let now = memory_overhead("executor", &spec.executor.memory, python, &spec.spark_conf);
            if !larger(&size(now)) {
                return false;
            }
            spec.spark_conf
                .insert(OVERHEAD_CONF.into(), ConfValue(change.to.clone()));
        }
        _ => return false,
    }
    true
}

/// Where a job's starting size came from: a resized retry that worked for the same job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SizedFrom {
    pub job_id: String,
    /// The attempt that succeeded at this size.
    pub attempt: u32,
    pub changes: Vec<Change>,
}

impl SizedFrom {
    /// "sized from attempt 2 of job j-…: executor.memory 6g (was 4g)".
    pub fn describe(&self) -> String {
        let changes: Vec<String> = self.changes.iter().map(Change::describe).collect();
        format!(
            "sized from attempt {} of job {}: {}",
            self.attempt,
            self.job_id,
            changes.join(", ")
        )
    }

    /// The changes of a job's resized retries, each field from its first size to its last.
    pub fn merged<'a>(changes: impl Iterator<Item = &'a Change>) -> Vec<Change> {
        let mut merged: Vec<Change> = Vec::new();
        for change in changes {
            match merged.iter_mut().find(|c| c.field == change.field) {
                Some(seen) => seen.to = change.to.clone(),
                None => merged.push(change.clone()),
            }
        }
        merged
    }
}

fn change(field: &str, from: &str, to: String) -> Change {
    Change {
        field: field.into(),
        from: from.into(),
        to,
    }
}

/// `memory` × `num` / `den`, as a Spark size.
fn scaled(memory: &str, num: u64, den: u64) -> Option<String> {
    let bytes = memory_bytes(memory)?;
    Some(size(bytes.checked_mul(num)? / den))
}

/// Bytes as a Spark size: whole GiB as `g`, else MiB (rounded up) as `m`.
fn size(bytes: u64) -> String {
    if bytes.is_multiple_of(GIB) {
        format!("{}g", bytes / GIB)
    } else {
        format!("{}m", bytes.div_ceil(MIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SpecDefaults;
    use crate::domain::jobspec::Format;

    fn spec(extra: &str) -> JobSpec {
        let body = format!(
            r#"{{"team":"t","env":"e","name":"n","mainApplicationFile":"/x.py",
               "executor":{{"memory":"4g"}},"driver":{{"memory":"1536m"}}{extra}}}"#
        );
        let defaults = SpecDefaults {
            spark_version: "4.0.1".into(),
            image: "i".into(),
        };
        JobSpec::parse(body.as_bytes(), Format::Json, &defaults).unwrap()
    }

    #[test]
    fn each_oom_class_gets_its_delta() {
        let (next, change) = resized(&spec(""), Class::ExecutorHeapOom).unwrap();
        assert_eq!(change.describe(), "executor.memory 6g (was 4g)");
        assert_eq!(next.executor.memory, "6g");
        let (next, change) = resized(&spec(""), Class::DriverOom).unwrap();
        assert_eq!(
            (next.driver.memory.as_str(), change.from.as_str()),
            ("3g", "1536m")
        );
        // Python: overhead 0.4 × 4g = 1638m; + max(1g, 819m) = 2662m.
        let (next, change) = resized(&spec(""), Class::ExecutorContainerOom).unwrap();
        assert_eq!(
            (change.from.as_str(), change.to.as_str()),
            ("1638m", "2662m")
        );
        assert_eq!(next.spark_conf[OVERHEAD_CONF].0, "2662m");
        // A set overhead of 4g grows by half.
        let set = spec(r#","sparkConf":{"spark.executor.memoryOverhead":"4g"}"#);
        let (_, change) = resized(&set, Class::ExecutorContainerOom).unwrap();
        assert_eq!(change.to, "6g");
        assert!(resized(&spec(""), Class::UserError).is_none());
    }

    #[test]
    fn a_remembered_change_only_ever_grows_a_spec() {
        let mut small = spec("");
        let six = change("executor.memory", "4g", "6g".into());
        assert!(apply(&mut small, &six));
        assert_eq!(small.executor.memory, "6g");
        let mut big = spec("");
        big.executor.memory = "8g".into();
        assert!(!apply(&mut big, &six));
        assert_eq!(big.executor.memory, "8g");
    }
}
