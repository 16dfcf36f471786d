//! `history:` in sk8's config: where every attempt's run record lives (Spark's event logs, the
//! archived driver and executor logs), the History Server that reads the same event logs, how
//! long archived logs are kept and how many summaries are built at once.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::history::{Location, StoreOptions};

#[derive(Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Where Spark writes event logs and sk8 archives logs: `file:///path` (default:
    /// `file://<dataDir>/history`), `s3://bucket/prefix`, `gs://bucket/prefix` or
    /// `az://container/prefix`. Spark is given the same place (`s3a://` for `s3://`, …).
    pub event_log_dir: Option<String>,
    /// How to reach the object store: `endpoint`, `region`, `allowHttp`, and further
    /// `options` as the `object_store` crate names them (`aws_access_key_id`,
    /// `google_service_account`, `azure_storage_account_name`, …); credentials otherwise come
    /// from the environment.
    pub store: StoreOptions,
    /// The Spark History Server reading `eventLogDir` (`https://history.example.com`); each
    /// attempt links to `<serverUrl>/history/<appId>`. Unset: no History Server link.
    pub server_url: Option<String>,
    /// How long archived logs and event logs are kept after their attempt ended, in days (0:
    /// for ever); checked at startup and hourly. Summaries and evidence stay with their job.
    pub retention_days: u32,
    /// How many attempts are recorded (logs archived, event log summarized) at once, off the
    /// reconciler's path.
    pub summary_workers: usize,
}

/// The store options may hold credentials: Debug shows their names only.
impl std::fmt::Debug for HistoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryConfig")
            .field("event_log_dir", &self.event_log_dir)
            .field("store.endpoint", &self.store.endpoint)
            .field(
                "store.options",
                &self.store.options.keys().collect::<Vec<_>>(),
            )
            .field("server_url", &self.server_url)
            .field("retention_days", &self.retention_days)
            .field("summary_workers", &self.summary_workers)
            .finish()
    }
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            event_log_dir: None,
            store: StoreOptions::default(),
            server_url: None,
            retention_days: 30,
            summary_workers: 2,
        }
    }
}

impl HistoryConfig {
    /// The event log location in force: the configured one, or `<dataDir>/history`.
    pub fn event_log_dir(&self, data_dir: &Path) -> String {
        match &self.event_log_dir {
            Some(url) => url.clone(),
            None => {
                let dir = std::path::absolute(data_dir.join("history"))
                    .unwrap_or_else(|_| data_dir.join("history"));
                format!("file://{}", dir.display())
            }
        }
    }

    /// How long archived logs are kept; `None`: for ever.
    pub fn retention(&self) -> Option<std::time::Duration> {
        (self.retention_days > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.retention_days) * 86_400))
    }

    /// The event log location, parsed.
    pub fn location(&self, data_dir: &Path) -> Result<Location, ConfigError> {
        let url = self.event_log_dir(data_dir);
        let location = Location::parse(&url).map_err(|message| ConfigError::Invalid {
            field: "history.eventLogDir".into(),
            message,
        })?;
        // Spark must be able to write there too (an Azure location needs its account).
        location
            .spark_url()
            .map_err(|message| ConfigError::Invalid {
                field: "history.eventLogDir".into(),
                message,
            })?;
        Ok(location)
    }

    /// A location sk8 and Spark can both use, a History Server URL that is http(s), a sane
    /// number of workers.
    pub fn validate(&self, data_dir: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            field: format!("history.{field}"),
            message,
        };
        self.location(data_dir)?;
        if let Some(server) = &self.server_url {
            let ok = (server.starts_with("http://") || server.starts_with("https://"))
                && !server.contains(char::is_whitespace);
            if !ok {
                return Err(invalid(
                    "serverUrl",
                    format!("must be an http:// or https:// URL, got {server:?}"),
                ));
            }
        }
        if !(1..=64).contains(&self.summary_workers) {
            return Err(invalid(
                "summaryWorkers",
                format!("must be between 1 and 64, got {}", self.summary_workers),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(value: serde_json::Value) -> Result<(), String> {
        let config: HistoryConfig = serde_json::from_value(value).unwrap();
        config
            .validate(Path::new("/var/lib/sk8"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_location_is_under_the_data_dir() {
        let config = HistoryConfig::default();
        config.validate(Path::new("/var/lib/sk8")).unwrap();
        assert_eq!(
            config.event_log_dir(Path::new("/var/lib/sk8")),
            "file:///var/lib/sk8/history"
        );
    }

    #[test]
    fn each_bad_value_names_its_field() {
        assert!(check(json!({"eventLogDir": "s3://bucket/events"})).is_ok());
        assert!(check(json!({"serverUrl": "https://hs.example.com"})).is_ok());
        let cases = [
            (json!({"eventLogDir": "hdfs://x/y"}), "history.eventLogDir"),
            (json!({"eventLogDir": "s3://"}), "history.eventLogDir"),
            (json!({"serverUrl": "hs.example.com"}), "history.serverUrl"),
            (json!({"summaryWorkers": 0}), "history.summaryWorkers"),
        ];
        for (value, expected) in cases {
            let err = check(value.clone()).expect_err(&value.to_string());
            assert!(err.contains(expected), "{err} (expected {expected})");
        }
    }

    #[test]
    fn debug_hides_store_option_values() {
        let config: HistoryConfig = serde_json::from_value(
            json!({"store": {"options": {"aws_secret_access_key": "s3cr3t"}}}),
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("aws_secret_access_key") && !shown.contains("s3cr3t"));
    }
}
