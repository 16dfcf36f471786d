//! Interactive sessions: a long-running Spark Connect server owned by sk8, one per
//! (team, env, name), reached through the gateway.
//!
//! `STARTING → READY → STOPPING → STOPPED | FAILED`. A session idle for `idleTimeoutSeconds` is
//! stopped; with `autoResume` the next RPC for it starts it again (the same session, a new
//! server). A deleted session never resumes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::SessionId;
use super::jobspec::{
    self, ConfValue, DriverSpec, DynamicAllocation, ExecutorSpec, Format, SpecDefaults,
};
use super::names::{self, DnsLabel};
use super::violations::Violations;
use crate::error::Error;

/// The longest idle timeout: a week.
const MAX_IDLE_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;

/// What a session runs. Defaults (`sparkVersion`, `image`) are filled in when it is created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionSpec {
    pub team: DnsLabel,
    pub env: DnsLabel,
    /// Unique among the team environment's sessions that are not deleted.
    #[schema(example = "exploration")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub driver: DriverSpec,
    #[serde(default)]
    pub executor: ExecutorSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_allocation: Option<DynamicAllocation>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub spark_conf: BTreeMap<String, ConfValue>,
    /// Stopped after this long with no RPC in flight and none arriving.
    #[serde(default = "default_idle_timeout")]
    #[schema(minimum = 1, maximum = 604_800)]
    pub idle_timeout_seconds: u64,
    /// The next RPC for a session stopped for idleness starts it again and waits for it.
    #[serde(default = "default_auto_resume")]
    pub auto_resume: bool,
}

fn default_idle_timeout() -> u64 {
    3600
}

fn default_auto_resume() -> bool {
    true
}

impl SessionSpec {
    /// Parses and validates a body, then fills in the defaults; refused with every broken
    /// rule at once.
    pub fn parse(body: &[u8], format: Format, defaults: &SpecDefaults) -> Result<Self, Error> {
        let mut problems = Violations::default();
        let spec: Option<SessionSpec> =
            jobspec::decode_collecting(body, format, "SessionSpec", &mut problems)?;
        if let Some(spec) = &spec {
            spec.check(&mut problems);
        }
        let mut spec = problems.into_result(spec)?;
        defaults.fill(&mut spec.spark_version, &mut spec.image);
        Ok(spec)
    }

    pub fn namespace(&self) -> String {
        names::team_namespace(&self.team, &self.env).expect("validated at parse time")
    }

    fn check(&self, problems: &mut Violations) {
        problems.check(
            names::team_namespace(&self.team, &self.env)
                .map(drop)
                .map_err(|m| Error::invalid("env", m)),
        );
        problems.check(names::dns_label_rule(&self.name).map_err(|m| Error::invalid("name", m)));
        if let Some(version) = &self.spark_version {
            problems.check(jobspec::check_spark_version(version));
        }
        if let Some(image) = &self.image {
            problems.check(jobspec::check_image(image));
        }
        jobspec::check_spark_conf(&self.spark_conf, problems);
        jobspec::check_resources(
            &self.driver,
            &self.executor,
            self.dynamic_allocation.as_ref(),
            problems,
        );
        problems.check(jobspec::check_between(
            "idleTimeoutSeconds",
            self.idle_timeout_seconds,
            1,
            MAX_IDLE_TIMEOUT_SECONDS,
        ));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionState {
    Starting,
    Ready,
    Stopping,
    Stopped,
    Failed,
}

impl SessionState {
    pub const ALL: [SessionState; 5] = [
        SessionState::Starting,
        SessionState::Ready,
        SessionState::Stopping,
        SessionState::Stopped,
        SessionState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Starting => "STARTING",
            SessionState::Ready => "READY",
            SessionState::Stopping => "STOPPING",
            SessionState::Stopped => "STOPPED",
            SessionState::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
    }

    /// A server runs, or is being started or stopped.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            SessionState::Starting | SessionState::Ready | SessionState::Stopping
        )
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: SessionId,
    pub team: String,
    pub env: String,
    pub name: String,
    pub namespace: String,
    pub state: SessionState,
    pub spec: SessionSpec,
    /// Which server it is on: 1, then one more per resume.
    pub starts: u32,
    /// The backend's handle on the current server.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub backend_ref: Option<serde_json::Value>,
    /// Where the gateway sends the session's RPCs (`host:port`), while READY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Why it stopped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The last RPC through the gateway (or the last start).
    pub last_active_at: DateTime<Utc>,
    /// Set by DELETE: the session is stopped and never resumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub version: i64,
}

impl Session {
    pub fn new(spec: SessionSpec, now: DateTime<Utc>) -> Self {
        Session {
            id: SessionId::generate(),
            team: spec.team.to_string(),
            env: spec.env.to_string(),
            name: spec.name.clone(),
            namespace: spec.namespace(),
            state: SessionState::Starting,
            spec,
            starts: 1,
            backend_ref: None,
            endpoint: None,
            reason: None,
            created_at: now,
            updated_at: now,
            last_active_at: now,
            deleted_at: None,
            version: 0,
        }
    }

    /// Whether the gateway may start it again.
    pub fn resumable(&self) -> bool {
        self.spec.auto_resume && self.deleted_at.is_none() && self.state == SessionState::Stopped
    }
}

/// One state change of a session, as the history records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionEvent {
    pub id: i64,
    pub session_id: SessionId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<SessionState>,
    pub to: SessionState,
    pub at: DateTime<Utc>,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> SpecDefaults {
        SpecDefaults {
            spark_version: "4.0.1".into(),
            image: "apache/spark:4.0.1".into(),
        }
    }

    fn parse(body: &str) -> Result<SessionSpec, Error> {
        SessionSpec::parse(body.as_bytes(), Format::Json, &defaults())
    }

    fn field_of(err: Error) -> Option<String> {
        match err {
            Error::InvalidRequest { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_minimal_session_gets_defaults() {
        let spec = parse(r#"{"team": "payments", "env": "dev", "name": "explore"}"#).unwrap();
        assert_eq!(spec.namespace(), "sjns-payments-dev");
        assert_eq!(spec.spark_version.as_deref(), Some("4.0.1"));
        assert_eq!(spec.idle_timeout_seconds, 3600);
        assert!(spec.auto_resume);
    }

    #[test]
    fn each_rule_names_its_field() {
        let base = r#""team": "payments", "env": "dev""#;
        let cases = [
            (format!(r#"{{{base}, "name": "Not A Label"}}"#), "name"),
            (
                format!(r#"{{{base}, "name": "x", "idleTimeoutSeconds": 0}}"#),
                "idleTimeoutSeconds",
            ),
            (
                format!(r#"{{{base}, "name": "x", "driver": {{"memory": "lots"}}}}"#),
                "driver.memory",
            ),
            (
                format!(r#"{{{base}, "name": "x", "sparkConf": {{"spark.master": "yarn"}}}}"#),
                "sparkConf.spark.master",
            ),
            (
                format!(r#"{{{base}, "name": "x", "mainClass": "A"}}"#),
                "mainClass",
            ),
        ];
        for (body, field) in cases {
            let err = parse(&body).expect_err(&body);
            assert_eq!(field_of(err).as_deref(), Some(field), "{body}");
        }
    }
}
