//! The Spark confs that make an attempt (or a session's server) leave an event log sk8 can
//! summarize and a History Server can replay, under an application id known before it starts.

use std::collections::BTreeMap;

use crate::domain::jobspec::ConfValue;

/// Turning this off in a spec's `sparkConf` (`"false"`) turns event logging off for that job.
pub const EVENT_LOG_ENABLED: &str = "spark.eventLog.enabled";
pub const EVENT_LOG_DIR: &str = "spark.eventLog.dir";
pub const APP_ID: &str = "spark.app.id";

/// Where every attempt's event log goes, as Spark names it (`s3a://…` for `s3://…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLogSettings {
    pub spark_dir: String,
}

/// The Spark application id sk8 gives an attempt or a session's server: its deterministic
/// backend name (`sk8-<job-id>-<attempt>`), a valid Kubernetes label value. Spark's local mode
/// ignores it and names the application `local-<millis>` (read back from the driver log).
pub fn app_id(name: &str) -> String {
    name.to_owned()
}

/// Whether a spec leaves event logging on.
pub fn event_log_enabled(spark_conf: &BTreeMap<String, ConfValue>) -> bool {
    spark_conf
        .get(EVENT_LOG_ENABLED)
        .is_none_or(|value| !value.0.trim().eq_ignore_ascii_case("false"))
}

/// A team whose namespace turns event logs off (`eventLog: false`) has them off in every spec
/// that does not say otherwise: written into the spec, so the stored spec shows why a run has
/// no summary.
pub fn apply_team_policy(spark_conf: &mut BTreeMap<String, ConfValue>, event_log: bool) {
    if !event_log {
        spark_conf
            .entry(EVENT_LOG_ENABLED.to_owned())
            .or_insert_with(|| ConfValue("false".to_owned()));
    }
}

/// What sizing advice needs of executor memory metrics: per-stage peaks in the event log and
/// the process tree's memory (Python workers, native memory). Spark samples them at each
/// heartbeat (10 s) unless `spark.executor.metrics.pollingInterval` says otherwise; sk8 leaves
/// that to the job (see docs/sizing.md).
const METRIC_DEFAULTS: [(&str, &str); 2] = [
    ("spark.eventLog.logStageExecutorMetrics", "true"),
    ("spark.executor.processTreeMetrics.enabled", "true"),
];

/// The confs sk8 adds: the application id always; the event log (with per-stage executor peaks
/// and process-tree memory) unless the spec turns it off. A spec's own value of one of the
/// metric switches wins; the location is sk8's (a reserved conf).
pub fn event_log_confs(
    spark_conf: &BTreeMap<String, ConfValue>,
    settings: &EventLogSettings,
    app_id: &str,
) -> Vec<(String, String)> {
    let mut confs = vec![(APP_ID.to_owned(), app_id.to_owned())];
    if !event_log_enabled(spark_conf) {
        return confs;
    }
    confs.push((EVENT_LOG_ENABLED.to_owned(), "true".to_owned()));
    confs.push((EVENT_LOG_DIR.to_owned(), settings.spark_dir.clone()));
    for (key, value) in METRIC_DEFAULTS {
        if !spark_conf.contains_key(key) {
            confs.push((key.to_owned(), value.to_owned()));
        }
    }
    confs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(pairs: &[(&str, &str)]) -> BTreeMap<String, ConfValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ConfValue(v.to_string())))
            .collect()
    }

    fn settings() -> EventLogSettings {
        EventLogSettings {
            spark_dir: "s3a://logs/events".into(),
        }
    }

    #[test]
    fn on_by_default_with_metrics_and_the_app_id() {
        let confs: BTreeMap<String, String> = event_log_confs(&conf(&[]), &settings(), "sk8-x-1")
            .into_iter()
            .collect();
        assert_eq!(confs[APP_ID], "sk8-x-1");
        assert_eq!(confs[EVENT_LOG_ENABLED], "true");
        assert_eq!(confs[EVENT_LOG_DIR], "s3a://logs/events");
        assert_eq!(confs["spark.eventLog.logStageExecutorMetrics"], "true");
        assert_eq!(confs["spark.executor.processTreeMetrics.enabled"], "true");
    }

    #[test]
    fn a_spec_may_turn_it_off_or_keep_its_own_metric_switches() {
        let off = event_log_confs(&conf(&[(EVENT_LOG_ENABLED, "FALSE")]), &settings(), "a");
        assert_eq!(off, vec![(APP_ID.to_owned(), "a".to_owned())]);
        let own = conf(&[("spark.executor.processTreeMetrics.enabled", "false")]);
        let confs = event_log_confs(&own, &settings(), "a");
        assert!(
            !confs
                .iter()
                .any(|(k, _)| k == "spark.executor.processTreeMetrics.enabled")
        );
    }
}
