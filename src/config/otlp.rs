//! `otlp:` in sk8's config: where traces and metrics go over OTLP. The standard `OTEL_*`
//! variables win over the file (as `SK8_*` variables do elsewhere), so the same image is wired
//! to a collector by its deployment alone; with no endpoint at all, nothing is exported.

use serde::{Deserialize, Serialize};

/// OTLP's two transports.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// The collector (`http://collector:4317` for gRPC, `http://collector:4318` for HTTP);
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` overrides it. Unset: no export.
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`; `OTEL_EXPORTER_OTLP_PROTOCOL` overrides it.
    pub protocol: OtlpProtocol,
    /// `service.name` of everything sk8 exports; `OTEL_SERVICE_NAME` overrides it.
    pub service_name: String,
    /// Spans waiting for export at most; past that, new spans are dropped and counted
    /// (`sk8_otel_spans_dropped_total`). `OTEL_BSP_MAX_QUEUE_SIZE` overrides it.
    pub max_queue_size: usize,
    /// How long spans wait to be sent in one batch, in milliseconds;
    /// `OTEL_BSP_SCHEDULE_DELAY` overrides it.
    pub schedule_delay_millis: u64,
    /// How often metrics are exported, in milliseconds; `OTEL_METRIC_EXPORT_INTERVAL`
    /// overrides it.
    pub metric_interval_millis: u64,
    /// How long one export may take before it is given up (and its data counted as dropped),
    /// in milliseconds; `OTEL_EXPORTER_OTLP_TIMEOUT` overrides it.
    pub timeout_millis: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoint: None,
            protocol: OtlpProtocol::Grpc,
            service_name: "sk8".into(),
            max_queue_size: 2048,
            schedule_delay_millis: 5000,
            metric_interval_millis: 60_000,
            timeout_millis: 10_000,
        }
    }
}

impl OtlpConfig {
    /// The file's settings with the `OTEL_*` variables applied; `None` when there is no
    /// endpoint, i.e. export is off.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let mut resolved = self.clone();
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(endpoint) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
            resolved.endpoint = Some(endpoint);
        }
        if let Some(protocol) = set("OTEL_EXPORTER_OTLP_PROTOCOL") {
            resolved.protocol = match protocol.trim() {
                "grpc" => OtlpProtocol::Grpc,
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                other => {
                    return Err(format!(
                        "OTEL_EXPORTER_OTLP_PROTOCOL: {other:?} is not supported (grpc, http/protobuf)"
                    ));
                }
            };
        }
        if let Some(name) = set("OTEL_SERVICE_NAME") {
            resolved.service_name = name;
        }
        let number = |name: &str, into: &mut u64| -> Result<(), String> {
            if let Some(value) = set(name) {
                *into = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}: {value:?} is not a whole number"))?;
            }
            Ok(())
        };
        let mut queue = resolved.max_queue_size as u64;
        number("OTEL_BSP_MAX_QUEUE_SIZE", &mut queue)?;
        resolved.max_queue_size = queue as usize;
        number(
            "OTEL_BSP_SCHEDULE_DELAY",
            &mut resolved.schedule_delay_millis,
        )?;
        number(
            "OTEL_METRIC_EXPORT_INTERVAL",
            &mut resolved.metric_interval_millis,
        )?;
        number("OTEL_EXPORTER_OTLP_TIMEOUT", &mut resolved.timeout_millis)?;
        Ok(resolved.endpoint.is_some().then_some(resolved))
    }

    /// Rules the file must keep (the variables are checked by [`OtlpConfig::resolve`]).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err((
                "otlp.endpoint",
                format!("{endpoint:?} must be an http:// or https:// URL"),
            ));
        }
        if self.max_queue_size == 0 {
            return Err(("otlp.maxQueueSize", "must be at least 1".into()));
        }
        if self.metric_interval_millis < 100 {
            return Err(("otlp.metricIntervalMillis", "must be at least 100".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_an_endpoint_and_variables_win_over_the_file() {
        let file = OtlpConfig::default();
        assert!(file.resolve(|_| None).unwrap().is_none());
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4318".to_owned()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/protobuf".to_owned()),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("200".to_owned()),
            _ => None,
        };
        let on = file.resolve(env).unwrap().unwrap();
        assert_eq!(on.endpoint.as_deref(), Some("http://c:4318"));
        assert_eq!(on.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(on.schedule_delay_millis, 200);
        assert_eq!(on.service_name, "sk8");
    }

    #[test]
    fn bad_variables_are_named() {
        let env = |name: &str| (name == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/json".into());
        let err = OtlpConfig::default().resolve(env).unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{err}");
    }
}
