//! The Kubernetes backend: each attempt becomes a `spark.apache.org/v1` SparkApplication for the
//! Apache Spark Kubernetes Operator in the team's namespace `sjns-<team>-<env>`.
//!
//! Built in steps: what exists so far is the manifest rendering ([`render`], validated against
//! the operator's CRD schema by `tests/sparkapplication.rs`) and the mapping of the operator's
//! status to sk8's ([`status`]). The client, the status watcher and the `Backend`
//! implementation come next (see the Kubernetes backend issue).

pub mod render;
pub mod status;
