//! One typed configuration: read from a YAML file (`--config`), overridden by `SK8_*`
//! environment variables, and validated before any port is bound.
//!
//! With no file and no variables, every field has an embedded default that makes the first run
//! work on a laptop: a SQLite file under the data directory, the local backend, HTTP on
//! 127.0.0.1:8080. `examples/sk8.yaml` is the annotated reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::SpecDefaults;

mod gateway;
mod history;
mod jwt;
mod namespaces;
mod otlp;
pub use gateway::{CompressionConfig, Encoding};
pub use history::HistoryConfig;
pub use jwt::{JwtConfig, JwtIssuer};
pub use namespaces::{NamespacesConfig, NetworkConfig};
pub use otlp::{OtlpConfig, OtlpProtocol};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// Where sk8 keeps its SQLite file and the local backend's logs.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub backend: BackendConfig,
    pub reconciler: ReconcilerConfig,
    pub gateway: GatewayConfig,
    pub auth: AuthConfig,
    pub defaults: DefaultsConfig,
    /// Team namespaces: what sk8 provisions in them and the platform's bounds.
    pub namespaces: NamespacesConfig,
    /// Rate limits, caps and size limits that keep one team from starving the others.
    pub limits: LimitsConfig,
    pub audit: AuditConfig,
    /// Run records: event logs, archived logs, the History Server.
    pub history: HistoryConfig,
    /// What sk8 does about failed attempts: rules (first match wins), budgets, backoff.
    pub remediation: crate::remediation::RemediationConfig,
    /// What submissions do with sizing advice: the default mode and profile, and each team's.
    pub sizing: crate::advice::auto::SizingConfig,
    pub log: LogConfig,
    /// OTLP export of traces and metrics (off without an endpoint).
    pub otlp: OtlpConfig,
}

/// The audit log ([`crate::audit`]).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Rows older than this many days are deleted (hourly); 0 keeps them for ever.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 400,
        }
    }
}

impl AuditConfig {
    pub fn retention(&self) -> Option<std::time::Duration> {
        (self.retention_days > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.retention_days) * 86_400))
    }
}

/// Per-team limits (per replica for the rates: buckets are kept in memory) and request size
/// limits. Zero turns a rate or a cap off.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Job submissions per team (`POST /v1/jobs`; answered 429 with `Retry-After`).
    pub submits: crate::limits::Rate,
    /// Spark Connect RPCs per team through the gateway (RESOURCE_EXHAUSTED).
    pub gateway_rpcs: crate::limits::Rate,
    /// Jobs of one team started on a backend at once; more wait in QUEUED and say why.
    pub max_running_jobs_per_team: u32,
    /// Sessions of one team running (STARTING, READY, STOPPING) at once; more are refused.
    pub max_sessions_per_team: u32,
    /// Largest request header section, in bytes, on both ports (431 / refused stream).
    pub max_header_bytes: usize,
    /// Most request headers on the HTTP port (at most 100, the HTTP server's own bound).
    pub max_headers: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            submits: crate::limits::Rate::default(),
            gateway_rpcs: crate::limits::Rate::default(),
            max_running_jobs_per_team: 0,
            max_sessions_per_team: 0,
            max_header_bytes: 32 << 10,
            max_headers: 100,
        }
    }
}

/// Who may call the API and the gateway ([`crate::auth`]).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `off` (the embedded default: every caller is `gateway.defaultUser`, a platform admin;
    /// refused on non-loopback addresses) or `tokens` (bearer tokens: the static ones below
    /// and JWTs of `jwt.issuers`).
    pub mode: AuthMode,
    /// Lets `mode: off` serve non-loopback addresses anyway (a trusted network only).
    pub allow_unauthenticated: bool,
    /// Static API tokens, as SHA-256 digests with the identity each stands for.
    pub tokens: Vec<crate::auth::TokenEntry>,
    /// More tokens, a YAML list of the same entries, read again whenever it changes.
    pub tokens_file: Option<PathBuf>,
    /// JWT bearer tokens from identity providers.
    pub jwt: JwtConfig,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Off,
    Tokens,
}

/// `off` or `tokens`; YAML 1.1 readers turn an unquoted `off` into `false`, so that counts too.
impl<'de> Deserialize<'de> for AuthMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Name(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Flag(false) => Ok(AuthMode::Off),
            Raw::Name(name) if name == "off" => Ok(AuthMode::Off),
            Raw::Name(name) if name == "tokens" => Ok(AuthMode::Tokens),
            _ => Err(serde::de::Error::custom("must be off or tokens")),
        }
    }
}

/// The Spark Connect gateway (gRPC) and the sessions behind it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Where notebooks connect (`sc://HOST:PORT/;x-sk8-session=<id>`).
    pub addr: SocketAddr,
    /// The host:port put in connection strings; unset: `addr` (with 127.0.0.1 for 0.0.0.0).
    pub public_address: Option<String>,
    /// The identity written into every request's `user_context.user_id` until authentication
    /// says who is calling.
    pub default_user: String,
    /// How long an RPC for a stopped (auto-resuming) or starting session waits for READY.
    pub resume_timeout_seconds: u64,
    /// How long a session's server may take to start serving before it is FAILED.
    pub start_timeout_seconds: u64,
    /// Largest request message the gateway reads (responses stream through unbounded).
    pub max_request_message_bytes: usize,
    /// TLS on the gateway port. pyspark uses TLS whenever the connection string has a
    /// `token`, for every host but `localhost`.
    pub tls: Option<TlsConfig>,
    /// A file (at least 16 bytes) keying the tokens sk8 starts session servers with and
    /// sends them; every replica must see the same one (mount a Secret). Unset:
    /// `<dataDir>/gateway-upstream.key`, generated at first start.
    pub upstream_token_key_file: Option<PathBuf>,
    /// gRPC message compression on each hop ([`CompressionConfig`]).
    pub compression: CompressionConfig,
    /// How many bytes of artifacts and temp-view plans the gateway keeps per Spark session,
    /// to restore them when the session resumes on a new server (0: keep none).
    pub restore_max_bytes: u64,
}

/// A PEM certificate chain and its private key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests before closing them.
    pub shutdown_grace_seconds: u64,
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`; empty means the SQLite file
    /// `<dataDir>/sk8.db`. `DATABASE_URL` overrides it.
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_seconds: u64,
}

/// The URL may hold a password: Debug shows it redacted.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_seconds", &self.acquire_timeout_seconds)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Jobs run as `spark-submit --master local[N]` child processes.
    Local,
    /// Jobs succeed as soon as they are submitted: for benchmarks of sk8 itself.
    Noop,
    /// Jobs run as SparkApplications of the Apache Spark Kubernetes Operator.
    Kubernetes,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BackendConfig {
    pub kind: BackendKind,
    pub local: LocalConfig,
    pub kubernetes: KubernetesConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// A kubeconfig file; unset means in-cluster config, else `KUBECONFIG` / `~/.kube/config`.
    /// For one cluster; several are listed in `clusters` instead.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; unset means its current context.
    pub context: Option<String>,
    /// Several clusters, each serving the teams it lists; replaces `kubeconfig`/`context`.
    pub clusters: Vec<ClusterConfig>,
    /// The cluster of teams no cluster lists; unset means the first.
    pub default_cluster: Option<String>,
    /// Teams (`payments`) or team environments (`payments/prod`) that may run on several
    /// clusters, in order of preference: new work goes to the first whose API answers, and the
    /// team namespace is provisioned on each. An entry here replaces a `teams` entry.
    pub routes: std::collections::BTreeMap<String, Vec<String>>,
    /// The ServiceAccount Spark drivers run as in every team namespace.
    pub driver_service_account: String,
    /// How long the operator keeps a failed application's driver pod (for its log).
    pub failed_retain_seconds: u64,
    /// How long one API request may wait for its answer (watches and log streams excepted:
    /// watches have their own idle timeout, a followed log may be quiet).
    pub request_timeout_seconds: u64,
}

/// One cluster sk8 runs SparkApplications on.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConfig {
    /// A DNS label, recorded on every attempt that runs there.
    pub name: String,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Teams (`payments`) or team environments (`payments/prod`) routed here; a
    /// `team/env` entry beats a `team` entry elsewhere.
    #[serde(default)]
    pub teams: Vec<String>,
}

impl KubernetesConfig {
    /// The clusters to connect to: `clusters`, or the one cluster `kubeconfig`/`context` name.
    pub fn clusters(&self) -> Vec<ClusterConfig> {
        if !self.clusters.is_empty() {
            return self.clusters.clone();
        }
        vec![ClusterConfig {
            name: "default".into(),
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            teams: Vec::new(),
        }]
    }

    /// Each of `routes` a valid team (and env) listed nowhere else, naming clusters that exist,
    /// each once.
    fn validate_routes(
        &self,
        teams: &std::collections::HashMap<&str, &str>,
    ) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid { field, message };
        for (route, clusters) in &self.routes {
            let at = format!("backend.kubernetes.routes.{route}");
            for part in route.splitn(2, '/') {
                crate::domain::names::dns_label_rule(part)
                    .map_err(|m| invalid(at.clone(), format!("must be team or team/env: {m}")))?;
            }
            if let Some(other) = teams.get(route.as_str()) {
                return Err(invalid(at, format!("{route} is routed to {other} already")));
            }
            if clusters.is_empty() {
                return Err(invalid(at, "list at least one cluster".into()));
            }
            for (i, name) in clusters.iter().enumerate() {
                if !self.clusters.iter().any(|c| &c.name == name) {
                    return Err(invalid(
                        format!("{at}[{i}]"),
                        format!("names no cluster in backend.kubernetes.clusters: {name}"),
                    ));
                }
                if clusters[..i].contains(name) {
                    return Err(invalid(
                        format!("{at}[{i}]"),
                        format!("{name} is listed twice"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Cluster names unique DNS labels, every route listed once and naming a valid team (and
    /// env), the default cluster one of them.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid { field, message };
        let field = |i: usize, part: &str| format!("backend.kubernetes.clusters[{i}].{part}");
        if !self.clusters.is_empty() && (self.kubeconfig.is_some() || self.context.is_some()) {
            return Err(invalid(
                "backend.kubernetes.clusters".into(),
                "set either clusters or kubeconfig/context, not both (move them into a cluster entry)"
                    .into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        let mut routes = std::collections::HashMap::new();
        for (i, cluster) in self.clusters.iter().enumerate() {
            crate::domain::names::dns_label_rule(&cluster.name)
                .map_err(|m| invalid(field(i, "name"), m))?;
            if !names.insert(cluster.name.as_str()) {
                return Err(invalid(
                    field(i, "name"),
                    format!("{} is listed twice", cluster.name),
                ));
            }
            for (j, route) in cluster.teams.iter().enumerate() {
                let at = field(i, &format!("teams[{j}]"));
                for part in route.splitn(2, '/') {
                    crate::domain::names::dns_label_rule(part).map_err(|m| {
                        invalid(at.clone(), format!("must be team or team/env: {m}"))
                    })?;
                }
                if let Some(other) = routes.insert(route.as_str(), cluster.name.as_str()) {
                    return Err(invalid(at, format!("{route} is routed to {other} already")));
                }
            }
        }
        self.validate_routes(&routes)?;
        if let Some(default) = &self.default_cluster
            && !self.clusters.iter().any(|c| &c.name == default)
        {
            return Err(invalid(
                "backend.kubernetes.defaultCluster".into(),
                format!("names no cluster in backend.kubernetes.clusters: {default}"),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocalConfig {
    /// A Spark installation; `SPARK_HOME` and a `pyspark` found on PATH are tried when unset.
    pub spark_home: Option<PathBuf>,
    /// The exact `spark-submit` to run, overriding `sparkHome` (tests use a stand-in).
    pub spark_submit: Option<PathBuf>,
    /// The `--master` for every job: `local[…]`, or `local-cluster[WORKERS,CORES,MiB]` for
    /// executors in JVMs of their own, sized by each job's `executor` settings.
    pub master: String,
    /// At most this many jobs run at once; the rest wait QUEUED.
    pub max_running: usize,
    /// How long a cancelled or shut-down job gets after SIGTERM before SIGKILL.
    pub kill_grace_seconds: u64,
    /// Which Spark Connect server a session runs: `spark` (Apache Spark's own, from the Spark
    /// installation jobs use) or `sail` (Sail's `sail spark server`, much faster to start).
    pub connect_server: ConnectServer,
    /// The `sail` command; unset: `sail` on PATH.
    pub sail: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectServer {
    Spark,
    Sail,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReconcilerConfig {
    /// A turn runs at least this often; submits, cancels, process exits and watch events wake
    /// it sooner (for the jobs they name).
    pub interval_ms: u64,
    /// Every live job is read at least this often, announced or not: the safety net for a
    /// change nobody reported.
    pub resync_seconds: u64,
    /// Delay before the second attempt when a job's spec sets none; doubled per attempt.
    pub retry_backoff_seconds: u64,
    pub max_retry_backoff_seconds: u64,
    /// What to do with attempts the backend holds that no job runs any more.
    pub orphan_policy: crate::reconciler::OrphanPolicy,
    /// How often the backend is swept for orphans.
    pub orphan_sweep_seconds: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DefaultsConfig {
    pub spark_version: String,
    pub image: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive; `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            backend: BackendConfig::default(),
            reconciler: ReconcilerConfig::default(),
            gateway: GatewayConfig::default(),
            auth: AuthConfig::default(),
            defaults: DefaultsConfig::default(),
            namespaces: NamespacesConfig::default(),
            limits: LimitsConfig::default(),
            audit: AuditConfig::default(),
            history: HistoryConfig::default(),
            remediation: Default::default(),
            sizing: Default::default(),
            log: LogConfig::default(),
            otlp: OtlpConfig::default(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 15002)),
            public_address: None,
            default_user: "sk8-dev".into(),
            resume_timeout_seconds: 120,
            start_timeout_seconds: 300,
            max_request_message_bytes: 256 << 20,
            tls: None,
            upstream_token_key_file: None,
            compression: CompressionConfig::default(),
            restore_max_bytes: 256 << 20,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1 << 20,
            shutdown_grace_seconds: 30,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: String::new(),
            max_connections: 8,
            acquire_timeout_seconds: 5,
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: BackendKind::Local,
            local: LocalConfig::default(),
            kubernetes: KubernetesConfig::default(),
        }
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            spark_home: None,
            spark_submit: None,
            master: "local[*]".into(),
            max_running: std::thread::available_parallelism().map_or(2, |n| n.get()),
            kill_grace_seconds: 10,
            connect_server: ConnectServer::Spark,
            sail: None,
        }
    }
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            kubeconfig: None,
            context: None,
            clusters: Vec::new(),
            default_cluster: None,
            routes: std::collections::BTreeMap::new(),
            driver_service_account: "sk8-spark-driver".into(),
            failed_retain_seconds: 3600,
            request_timeout_seconds: 30,
        }
    }
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            interval_ms: 1000,
            resync_seconds: 30,
            retry_backoff_seconds: 10,
            max_retry_backoff_seconds: 600,
            orphan_policy: crate::reconciler::OrphanPolicy::Delete,
            orphan_sweep_seconds: 60,
        }
    }
}

impl Default for DefaultsConfig {
    fn default() -> Self {
        DefaultsConfig {
            spark_version: "4.0.1".into(),
            image: "apache/spark:4.0.1".into(),
        }
    }
}

/// Everything at info, except kube-client's HTTP trace layer: it logs every failed request to
/// the API server at ERROR, which during an outage floods the log with what sk8 already reports
/// once, at WARN, as "Kubernetes API unavailable".
pub const DEFAULT_LOG_FILTER: &str = "info,kube_client::client::builder=off";

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            filter: DEFAULT_LOG_FILTER.into(),
        }
    }
}

/// `$XDG_DATA_HOME/sk8`, else `~/.local/share/sk8`, else `./.sk8`.
fn default_data_dir() -> PathBuf {
    let from_env = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("XDG_DATA_HOME")
        .map(|d| d.join("sk8"))
        .or_else(|| from_env("HOME").map(|h| h.join(".local/share/sk8")))
        .unwrap_or_else(|| PathBuf::from(".sk8"))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("invalid config: {field}: {message}")]
    Invalid { field: String, message: String },
}

impl Config {
    /// Loads the file (if any), applies the environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
        serde_path_to_error::deserialize(value)
            .map_err(|e| parse_error(format!("{}: {}", e.path(), e.inner())))
    }

    /// Applies `SK8_*` overrides (and `DATABASE_URL`, `SPARK_HOME`); `lookup` is the
    /// environment, a parameter so tests need not mutate the process's own.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let get = |var: &'static str| lookup(var).filter(|v| !v.is_empty()).map(|v| (var, v));
        if let Some((_, v)) = get("SK8_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some((var, v)) = get("SK8_HTTP_ADDR") {
            self.http.addr = parse_env(var, &v)?;
        }
        if let Some((var, v)) = get("SK8_GATEWAY_ADDR") {
            self.gateway.addr = parse_env(var, &v)?;
        }
        if let Some((_, v)) = get("SK8_DATABASE_URL").or_else(|| get("DATABASE_URL")) {
            self.store.url = v;
        }
        if let Some((var, v)) = get("SK8_BACKEND") {
            self.backend.kind = match v.as_str() {
                "local" => BackendKind::Local,
                "noop" => BackendKind::Noop,
                "kubernetes" => BackendKind::Kubernetes,
                _ => return Err(env_error(var, &v, "must be local, noop or kubernetes")),
            };
        }
        if let Some((_, v)) = get("SK8_SPARK_HOME").or_else(|| get("SPARK_HOME")) {
            self.backend.local.spark_home.get_or_insert(v.into());
        }
        if let Some((_, v)) = get("SK8_KUBECONFIG") {
            self.backend.kubernetes.kubeconfig = Some(v.into());
        }
        if let Some((_, v)) = get("SK8_KUBE_CONTEXT") {
            self.backend.kubernetes.context = Some(v);
        }
        if let Some((_, v)) = get("SK8_SPARK_SUBMIT") {
            self.backend.local.spark_submit = Some(v.into());
        }
        if let Some((var, v)) = get("SK8_LOCAL_MAX_RUNNING") {
            self.backend.local.max_running = parse_env(var, &v)?;
        }
        if let Some((var, v)) = get("SK8_RECONCILE_INTERVAL_MS") {
            self.reconciler.interval_ms = parse_env(var, &v)?;
        }
        if let Some((_, v)) = get("SK8_EVENT_LOG_DIR") {
            self.history.event_log_dir = Some(v);
        }
        if let Some((_, v)) = get("SK8_HISTORY_SERVER_URL") {
            self.history.server_url = Some(v);
        }
        if let Some((var, v)) = get("SK8_LOG_FORMAT") {
            self.log.format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(env_error(var, &v, "must be text or json")),
            };
        }
        if let Some((_, v)) = get("SK8_LOG") {
            self.log.filter = v;
        }
        Ok(())
    }

    /// Rates are finite and not negative, bursts at least 1, size limits not absurdly small.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: &str| ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        };
        for (field, rate) in [
            ("limits.submits", self.limits.submits),
            ("limits.gatewayRpcs", self.limits.gateway_rpcs),
        ] {
            if !rate.per_second.is_finite() || rate.per_second < 0.0 {
                return Err(invalid(
                    &format!("{field}.perSecond"),
                    "must be a number of at least 0 (0: unlimited)",
                ));
            }
            if rate.burst == Some(0) {
                return Err(invalid(&format!("{field}.burst"), "must be at least 1"));
            }
        }
        if self.limits.max_header_bytes < 1024 {
            return Err(invalid("limits.maxHeaderBytes", "must be at least 1024"));
        }
        // Beyond 100, hyper itself answers a bare 431 before sk8 sees the request.
        if !(8..=100).contains(&self.limits.max_headers) {
            return Err(invalid("limits.maxHeaders", "must be between 8 and 100"));
        }
        Ok(())
    }

    /// Authentication may be off only where nobody else can connect, unless told otherwise;
    /// `tokens` needs tokens or issuers.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        self.auth.jwt.validate()?;
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            field: field.into(),
            message,
        };
        match self.auth.mode {
            AuthMode::Off if !self.auth.allow_unauthenticated => {
                let exposed = [self.http.addr, self.gateway.addr]
                    .into_iter()
                    .find(|addr| !addr.ip().is_loopback());
                match exposed {
                    Some(addr) => Err(invalid(
                        "auth.mode",
                        format!(
                            "sk8 would serve {addr} to anyone, without authentication: set \
                             auth.mode: tokens (docs/operating.md), or \
                             auth.allowUnauthenticated: true on a trusted network"
                        ),
                    )),
                    None => Ok(()),
                }
            }
            AuthMode::Tokens
                if self.auth.tokens.is_empty()
                    && self.auth.tokens_file.is_none()
                    && self.auth.jwt.issuers.is_empty() =>
            {
                Err(invalid(
                    "auth.tokens",
                    "auth.mode tokens needs auth.tokens, auth.tokensFile or auth.jwt.issuers"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Rejects settings that cannot work, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: &str| ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        };
        if !self.store.url.is_empty() && crate::store::Engine::from_url(&self.store.url).is_none() {
            return Err(invalid(
                "store.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if let Err((field, message)) = self.otlp.validate() {
            return Err(invalid(field, &message));
        }
        if self.store.max_connections == 0 {
            return Err(invalid("store.maxConnections", "must be at least 1"));
        }
        if self.http.max_body_bytes < 1024 {
            return Err(invalid("http.maxBodyBytes", "must be at least 1024"));
        }
        if self.gateway.max_request_message_bytes < 1024 {
            return Err(invalid(
                "gateway.maxRequestMessageBytes",
                "must be at least 1024",
            ));
        }
        for (field, value) in [
            (
                "gateway.resumeTimeoutSeconds",
                self.gateway.resume_timeout_seconds,
            ),
            (
                "gateway.startTimeoutSeconds",
                self.gateway.start_timeout_seconds,
            ),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be at least 1"));
            }
        }
        if self.gateway.default_user.trim().is_empty() {
            return Err(invalid("gateway.defaultUser", "must not be empty"));
        }
        self.validate_auth()?;
        self.validate_limits()?;
        self.remediation
            .validate()
            .map_err(|e| invalid(&e.field, &e.message))?;
        if self.reconciler.orphan_sweep_seconds == 0 {
            return Err(invalid(
                "reconciler.orphanSweepSeconds",
                "must be at least 1",
            ));
        }
        if self.reconciler.interval_ms == 0 {
            return Err(invalid("reconciler.intervalMs", "must be at least 1"));
        }
        if self.reconciler.resync_seconds == 0 {
            return Err(invalid("reconciler.resyncSeconds", "must be at least 1"));
        }
        if self.backend.local.max_running == 0 {
            return Err(invalid("backend.local.maxRunning", "must be at least 1"));
        }
        if !self.backend.local.master.starts_with("local") {
            return Err(invalid(
                "backend.local.master",
                "must be local, local[N], local[*] (Spark in one process) or \
                 local-cluster[WORKERS,CORES,MiB] (executors as processes of their own, sized by \
                 each job's executor settings)",
            ));
        }
        let master = &self.backend.local.master;
        if master.starts_with("local-cluster")
            && crate::backend::local::local_cluster_worker(master).is_none()
        {
            return Err(invalid(
                "backend.local.master",
                "a local-cluster master is local-cluster[WORKERS,CORES,MiB], three whole numbers",
            ));
        }
        if self.backend.kubernetes.request_timeout_seconds == 0 {
            return Err(invalid(
                "backend.kubernetes.requestTimeoutSeconds",
                "must be at least 1",
            ));
        }
        crate::domain::names::dns_label_rule(&self.backend.kubernetes.driver_service_account)
            .map_err(|m| invalid("backend.kubernetes.driverServiceAccount", &m))?;
        self.backend.kubernetes.validate()?;
        self.namespaces.validate()?;
        self.history.validate(&self.data_dir)?;
        let defaults = self.spec_defaults();
        let probe = serde_json::json!({
            "team": "t", "env": "e", "name": "n", "mainApplicationFile": "/x.py",
            "sparkVersion": defaults.spark_version, "image": defaults.image,
        });
        crate::domain::JobSpec::parse(
            probe.to_string().as_bytes(),
            crate::domain::jobspec::Format::Json,
            &defaults,
        )
        .map_err(|e| invalid("defaults", &e.to_string()))?;
        Ok(())
    }

    /// The store URL in force: the configured one, or the SQLite file in the data directory.
    pub fn store_url(&self) -> String {
        if self.store.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("sk8.db").display())
        } else {
            self.store.url.clone()
        }
    }

    pub fn spec_defaults(&self) -> SpecDefaults {
        SpecDefaults {
            spark_version: self.defaults.spark_version.clone(),
            image: self.defaults.image.clone(),
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.http.shutdown_grace_seconds)
    }
}

fn parse_env<T: std::str::FromStr>(var: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| env_error(var, value, &e.to_string()))
}

fn env_error(var: &'static str, value: &str, message: &str) -> ConfigError {
    ConfigError::Env {
        var,
        value: value.to_owned(),
        message: message.to_owned(),
    }
}

/// A database URL fit for logs: the password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_validate() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8080");
        assert!(config.store_url().starts_with("sqlite://"));
    }

    #[test]
    fn a_local_cluster_master_must_say_its_workers() {
        let check = |master: &str| {
            let mut config = Config::default();
            config.backend.local.master = master.into();
            config.validate().map_err(|e| e.to_string())
        };
        check("local-cluster[2,1,1024]").unwrap();
        let err = check("local-cluster[2]").unwrap_err();
        assert!(
            err.contains("backend.local.master") && err.contains("WORKERS,CORES,MiB"),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_file_values() {
        let mut config = Config::default();
        let env = |name: &str| match name {
            "SK8_HTTP_ADDR" => Some("0.0.0.0:9000".to_string()),
            "DATABASE_URL" => Some("postgres://u:secret@db/sk8".to_string()),
            "SK8_BACKEND" => Some("noop".to_string()),
            _ => None,
        };
        config.apply_env(env).unwrap();
        assert_eq!(config.http.addr.port(), 9000);
        assert_eq!(config.backend.kind, BackendKind::Noop);
        assert!(!format!("{:?}", config.store).contains("secret"));
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let mut config = Config::default();
        let err = config
            .apply_env(|n| (n == "SK8_HTTP_ADDR").then(|| "nope".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("SK8_HTTP_ADDR"), "{err}");
    }

    #[test]
    fn cluster_lists_are_checked_field_by_field() {
        let check = |clusters: serde_json::Value| {
            let mut config = Config::default();
            config.backend.kubernetes = serde_json::from_value(clusters).unwrap();
            config.validate().map_err(|e| e.to_string())
        };
        let east = |teams: serde_json::Value| json!({"name": "east", "teams": teams});
        assert!(check(json!({"clusters": [east(json!(["a", "b/prod"]))]})).is_ok());
        let cases = [
            (
                json!({"clusters": [east(json!([]))], "kubeconfig": "/k"}),
                "backend.kubernetes.clusters: set either",
            ),
            (
                json!({"clusters": [{"name": "East_1"}]}),
                "backend.kubernetes.clusters[0].name",
            ),
            (
                json!({"clusters": [east(json!([])), east(json!([]))]}),
                "clusters[1].name: east is listed twice",
            ),
            (
                json!({"clusters": [east(json!(["a/b/c"]))]}),
                "clusters[0].teams[0]: must be team or team/env",
            ),
            (
                json!({"clusters": [east(json!(["a"])), {"name": "west", "teams": ["a"]}]}),
                "clusters[1].teams[0]: a is routed to east already",
            ),
            (
                json!({"clusters": [east(json!([]))], "defaultCluster": "west"}),
                "backend.kubernetes.defaultCluster: names no cluster",
            ),
            (
                json!({"clusters": [east(json!([]))], "routes": {"a": ["east", "west"]}}),
                "backend.kubernetes.routes.a[1]: names no cluster",
            ),
            (
                json!({"clusters": [east(json!(["a"]))], "routes": {"a": ["east"]}}),
                "backend.kubernetes.routes.a: a is routed to east already",
            ),
            (
                json!({"clusters": [east(json!([]))], "routes": {"a": ["east", "east"]}}),
                "backend.kubernetes.routes.a[1]: east is listed twice",
            ),
        ];
        for (clusters, expected) in cases {
            let err = check(clusters.clone()).expect_err(&clusters.to_string());
            assert!(err.contains(expected), "{err} (expected {expected})");
        }
    }

    #[test]
    fn the_annotated_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sk8.yaml");
        let config = Config::from_file(&path).unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn unknown_keys_in_the_file_are_rejected_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sk8.yaml");
        std::fs::write(&path, "http:\n  adress: 127.0.0.1:1\n").unwrap();
        let err = Config::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("http") && err.contains("adress"), "{err}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(redact_url("sqlite:///x.db"), "sqlite:///x.db");
    }
}
