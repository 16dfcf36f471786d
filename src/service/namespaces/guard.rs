//! The submission guard: a job or session is refused up front when its namespace is not one
//! sk8 provisioned (with `namespaces.requireProvisioned`), or when its pods could never fit the
//! namespace's LimitRange or ResourceQuota, instead of being left pending in the cluster.
//!
//! Pod sizes follow Spark on Kubernetes: a pod requests its cores (or
//! `spark.kubernetes.{driver,executor}.request.cores`) and its memory plus the overhead
//! (`spark.{driver,executor}.memoryOverhead`, else the larger of 384 MiB and the overhead
//! factor times the memory: 0.4 for Python applications, 0.1 for the JVM, unless a
//! `memoryOverheadFactor` conf says otherwise), plus `spark.executor.pyspark.memory`.

use std::collections::BTreeMap;

use crate::domain::jobspec::{
    ConfValue, DriverSpec, DynamicAllocation, ExecutorSpec, memory_bytes,
};
use crate::domain::names::DnsLabel;
use crate::domain::namespace::{NamespaceSpec, Resources};
use crate::domain::quantity::Quantity;
use crate::domain::{JobSpec, SessionSpec};
use crate::error::{Error, Result};
use crate::store::Store;

const MIB: u64 = 1 << 20;
const MIN_OVERHEAD: u64 = 384 * MIB;
const JVM_OVERHEAD_FACTOR: f64 = 0.1;
const PYTHON_OVERHEAD_FACTOR: f64 = 0.4;

/// What a job or session asks of the cluster.
#[derive(Clone, Debug)]
pub struct Footprint {
    pub driver: Pod,
    pub executor: Pod,
    /// Executors at most: `executor.instances`, or `dynamicAllocation.maxExecutors`.
    pub executors: u32,
    /// The field that sets `executors`, for messages.
    pub executors_field: &'static str,
}

/// One pod's requests (and its cpu limit, when Spark is told one).
#[derive(Clone, Debug)]
pub struct Pod {
    pub cpu: Quantity,
    /// `spark.kubernetes.{driver,executor}.limit.cores`.
    pub cpu_limit: Option<Quantity>,
    pub memory: Quantity,
    /// How the memory adds up, for messages (`1g + 384Mi overhead`).
    pub memory_why: String,
}

/// The spec's parts a footprint is computed from (jobs and sessions alike).
struct SparkShape<'a> {
    driver: &'a DriverSpec,
    executor: &'a ExecutorSpec,
    dynamic_allocation: Option<&'a DynamicAllocation>,
    spark_conf: &'a BTreeMap<String, ConfValue>,
    python: bool,
}

impl Footprint {
    pub fn of_job(spec: &JobSpec) -> Self {
        Self::of(&SparkShape {
            driver: &spec.driver,
            executor: &spec.executor,
            dynamic_allocation: spec.dynamic_allocation.as_ref(),
            spark_conf: &spec.spark_conf,
            python: spec.main_application_file.ends_with(".py"),
        })
    }

    /// A session's server is Spark Connect's, a JVM application.
    pub fn of_session(spec: &SessionSpec) -> Self {
        Self::of(&SparkShape {
            driver: &spec.driver,
            executor: &spec.executor,
            dynamic_allocation: spec.dynamic_allocation.as_ref(),
            spark_conf: &spec.spark_conf,
            python: false,
        })
    }

    fn of(shape: &SparkShape<'_>) -> Self {
        let confs = shape.spark_conf;
        let (executors, executors_field) = match shape.dynamic_allocation.filter(|d| d.enabled) {
            Some(dynamic) => (dynamic.max_executors, "dynamicAllocation.maxExecutors"),
            None => (shape.executor.instances, "executor.instances"),
        };
        let pod = |role: &str, cores: u32, memory: &str| {
            let cpu = conf(confs, &format!("spark.kubernetes.{role}.request.cores"))
                .and_then(|c| Quantity::parse(c).ok())
                .unwrap_or_else(|| Quantity::from_count(cores.into()));
            let cpu_limit = conf(confs, &format!("spark.kubernetes.{role}.limit.cores"))
                .and_then(|c| Quantity::parse(c).ok());
            let (memory, memory_why) = pod_memory(role, memory, shape.python, confs);
            Pod {
                cpu,
                cpu_limit,
                memory,
                memory_why,
            }
        };
        Footprint {
            driver: pod("driver", shape.driver.cores, &shape.driver.memory),
            executor: pod("executor", shape.executor.cores, &shape.executor.memory),
            executors,
            executors_field,
        }
    }
}

/// A pod's memory request: the Spark memory, its overhead, and (executors) PySpark's.
fn pod_memory(
    role: &str,
    memory: &str,
    python: bool,
    confs: &BTreeMap<String, ConfValue>,
) -> (Quantity, String) {
    let heap = memory_bytes(memory).unwrap_or_default();
    let overhead = memory_overhead(role, memory, python, confs);
    let pyspark = match role {
        "executor" => conf(confs, "spark.executor.pyspark.memory").and_then(mebibytes_by_default),
        _ => None,
    };
    let total = heap + overhead + pyspark.unwrap_or_default();
    let mut why = format!(
        "{role}.memory {memory} + {} overhead",
        Quantity::from_bytes(overhead)
    );
    if let Some(pyspark) = pyspark {
        why.push_str(&format!(" + {} PySpark", Quantity::from_bytes(pyspark)));
    }
    (Quantity::from_bytes(total), why)
}

/// A `role` pod's memory overhead in bytes, as Spark computes it: its `memoryOverhead` conf,
/// else the overhead factor times the memory, at least 384 MiB.
pub fn memory_overhead(
    role: &str,
    memory: &str,
    python: bool,
    confs: &BTreeMap<String, ConfValue>,
) -> u64 {
    let heap = memory_bytes(memory).unwrap_or_default();
    let factor = conf(confs, &format!("spark.{role}.memoryOverheadFactor"))
        .or_else(|| conf(confs, "spark.kubernetes.memoryOverheadFactor"))
        .and_then(|f| f.parse::<f64>().ok())
        .unwrap_or(if python {
            PYTHON_OVERHEAD_FACTOR
        } else {
            JVM_OVERHEAD_FACTOR
        });
    conf(confs, &format!("spark.{role}.memoryOverhead"))
        .and_then(mebibytes_by_default)
        .unwrap_or_else(|| ((heap as f64 * factor) as u64 / MIB * MIB).max(MIN_OVERHEAD))
}

fn conf<'a>(confs: &'a BTreeMap<String, ConfValue>, key: &str) -> Option<&'a str> {
    confs.get(key).map(|v| v.0.as_str())
}

/// A Spark size whose bare numbers mean MiB (as the overhead confs read them).
fn mebibytes_by_default(size: &str) -> Option<u64> {
    if size.bytes().all(|b| b.is_ascii_digit()) {
        size.parse::<u64>().ok()?.checked_mul(MIB)
    } else {
        memory_bytes(size)
    }
}

/// What jobs and sessions pass before they are stored.
#[derive(Clone)]
pub struct NamespaceGuard {
    store: Store,
    require_provisioned: bool,
}

impl NamespaceGuard {
    pub fn new(store: Store, require_provisioned: bool) -> Self {
        NamespaceGuard {
            store,
            require_provisioned,
        }
    }

    /// The spec of `team`/`env`'s namespace, unless there is none or it is being deleted.
    pub async fn provisioned(
        &self,
        team: &DnsLabel,
        env: &DnsLabel,
    ) -> Result<Option<NamespaceSpec>> {
        let found = self
            .store
            .namespace_get(team.as_str(), env.as_str())
            .await?;
        Ok(found.filter(|ns| ns.deleted_at.is_none()).map(|ns| ns.spec))
    }

    /// Admits a job or session for `team`/`env`, or says why it can never run there; the
    /// namespace's spec, whose policy applies to it, when there is one.
    pub async fn admit(
        &self,
        team: &DnsLabel,
        env: &DnsLabel,
        footprint: &Footprint,
    ) -> Result<Option<NamespaceSpec>> {
        match self.provisioned(team, env).await? {
            Some(spec) => fits(&spec, footprint).map(|()| Some(spec)),
            None if self.require_provisioned => Err(Error::invalid(
                "env",
                format!(
                    "sk8 has not provisioned a namespace for team {team} and env {env}: create it \
                     with `sk8 namespace apply FILE` (PUT /v1/namespaces/{team}/{env}) first"
                ),
            )),
            None => Ok(None),
        }
    }
}

/// Each pod within the LimitRange's maximum, and all of them within the quota.
fn fits(spec: &NamespaceSpec, footprint: &Footprint) -> Result<()> {
    let (namespace, max) = (spec.namespace(), &spec.limits.max);
    fits_container(&namespace, max, "driver", &footprint.driver)?;
    fits_container(&namespace, max, "executor", &footprint.executor)?;
    fits_quota(spec, footprint)
}

/// A `role` pod's requests and cpu limit within the per-container maximum.
fn fits_container(namespace: &str, max: &Resources, role: &str, pod: &Pod) -> Result<()> {
    if let Some(limit) = max.cpu.as_ref().filter(|limit| pod.cpu > **limit) {
        return Err(Error::invalid(
            format!("{role}.cores"),
            format!(
                "the {role} pod would request {} cpu, above the per-container maximum {limit} \
                 of {namespace} (limits.max.cpu)",
                pod.cpu
            ),
        ));
    }
    if let (Some(limit), Some(cpu_limit)) = (&max.cpu, &pod.cpu_limit)
        && cpu_limit > limit
    {
        return Err(Error::invalid(
            format!("sparkConf.spark.kubernetes.{role}.limit.cores"),
            format!(
                "the {role} pod's cpu limit {cpu_limit} is above the per-container maximum \
                 {limit} of {namespace} (limits.max.cpu)"
            ),
        ));
    }
    if let Some(limit) = max.memory.as_ref().filter(|limit| pod.memory > **limit) {
        return Err(Error::invalid(
            format!("{role}.memory"),
            format!(
                "the {role} pod would request {} memory ({}), above the per-container maximum \
                 {limit} of {namespace} (limits.max.memory)",
                pod.memory, pod.memory_why
            ),
        ));
    }
    Ok(())
}

fn fits_quota(spec: &NamespaceSpec, footprint: &Footprint) -> Result<()> {
    let n = u128::from(footprint.executors);
    let total = |driver: &Quantity, executor: &Quantity| driver.nanos() + n * executor.nanos();
    let pods = 1 + u128::from(footprint.executors);
    let needs = [
        (
            "pods",
            pods * Quantity::from_count(1).nanos(),
            spec.quota.pods.map(|p| Quantity::from_count(p.into())),
        ),
        (
            "cpu",
            total(&footprint.driver.cpu, &footprint.executor.cpu),
            spec.quota.cpu.clone(),
        ),
        (
            "memory",
            total(&footprint.driver.memory, &footprint.executor.memory),
            spec.quota.memory.clone(),
        ),
    ];
    for (resource, need, quota) in needs {
        let Some(quota) = quota.filter(|q| need > q.nanos()) else {
            continue;
        };
        let shown = match resource {
            "memory" => {
                Quantity::from_bytes(u64::try_from(need / 1_000_000_000).unwrap_or(u64::MAX))
            }
            _ => Quantity::from_millis(u64::try_from(need / 1_000_000).unwrap_or(u64::MAX)),
        };
        return Err(Error::invalid(
            footprint.executors_field,
            format!(
                "1 driver and {} executors would request {shown} {resource} in all, above the \
                 quota of {} ({quota}, quota.{resource})",
                footprint.executors,
                spec.namespace()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(conf: &[(&str, &str)], python: bool) -> Footprint {
        let spark_conf = conf
            .iter()
            .map(|(k, v)| (k.to_string(), ConfValue(v.to_string())))
            .collect();
        let driver = DriverSpec {
            cores: 1,
            memory: "1g".into(),
        };
        let executor = ExecutorSpec {
            cores: 2,
            memory: "4g".into(),
            instances: 3,
        };
        Footprint::of(&SparkShape {
            driver: &driver,
            executor: &executor,
            dynamic_allocation: None,
            spark_conf: &spark_conf,
            python,
        })
    }

    #[test]
    fn pod_memory_adds_sparks_overhead() {
        let jvm = shape_of(&[], false);
        assert_eq!(
            jvm.driver.memory.as_str(),
            "1408Mi",
            "1g + the 384Mi minimum"
        );
        assert_eq!(jvm.executor.memory, Quantity::parse("4505Mi").unwrap());
        let python = shape_of(&[], true);
        assert_eq!(python.executor.memory, Quantity::parse("5734Mi").unwrap());
        let set = shape_of(
            &[
                ("spark.driver.memoryOverhead", "512"),
                ("spark.executor.pyspark.memory", "1g"),
                ("spark.kubernetes.executor.request.cores", "500m"),
            ],
            true,
        );
        assert_eq!(set.driver.memory.as_str(), "1536Mi");
        assert_eq!(set.executor.memory, Quantity::parse("6758Mi").unwrap());
        assert_eq!(set.executor.cpu.as_str(), "500m");
    }
}
