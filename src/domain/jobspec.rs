//! The JobSpec: what a pipeline asks sk8 to run, the same shape in JSON and YAML (camelCase).
//!
//! [`JobSpec::parse`] turns a request body into a valid spec or an error naming every field
//! and the rule it breaks ([`Error::InvalidRequest`] for one, [`Error::InvalidFields`] for
//! several). Shape errors (unknown fields, with the known name they are closest to, and wrong
//! types) come from serde with the field's path; value rules are checked in
//! [`JobSpec::validate`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use serde_path_to_error::Segment;

use super::names::{self, DnsLabel};
use super::violations::{self, Violations};
use crate::error::Error;

const MAX_ARGS: usize = 256;
const MAX_ARG_LEN: usize = 4096;
const MAX_CONF_ENTRIES: usize = 512;
const MAX_CONF_KEY_LEN: usize = 256;
const MAX_CONF_VALUE_LEN: usize = 8192;
const MAX_ENV_VARS: usize = 256;
const MAX_ENV_VALUE_LEN: usize = 32 * 1024;
const MAX_LABELS: usize = 64;
const MAX_DEPS: usize = 256;
const MAX_URI_LEN: usize = 2048;
const MAX_CORES: u32 = 64;
const MAX_INSTANCES: u32 = 1000;
const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;
const MAX_ATTEMPTS: u32 = 10;
const MAX_BACKOFF_SECONDS: u64 = 3600;
const MIN_MEMORY_BYTES: u64 = 32 << 20;
const MAX_MEMORY_BYTES: u64 = 1 << 40;
/// Label keys under this prefix are sk8's own (job id, attempt) and cannot be set by users.
pub const RESERVED_LABEL_PREFIX: &str = "sk8.dev/";
/// Confs sk8 sets itself from the spec (or, for the Connect token, keeps to itself); accepting
/// them would make the spec lie.
const RESERVED_CONFS: [&str; 9] = [
    "spark.master",
    "spark.submit.deployMode",
    "spark.app.name",
    "spark.kubernetes.namespace",
    "spark.kubernetes.container.image",
    "spark.kubernetes.driver.pod.name",
    "spark.connect.authenticate.token",
    // Where the event log goes and the id it is found by are the run record's (crate::record).
    "spark.eventLog.dir",
    "spark.app.id",
];
const APP_FILE_SCHEMES: [&str; 9] = [
    "local://", "file://", "s3a://", "s3://", "gs://", "abfss://", "hdfs://", "https://", "http://",
];

/// A batch Spark job. Defaults (`sparkVersion`, `image`) are filled in from the server's config
/// when the job is accepted, so a stored spec is always complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    /// The owning team, a DNS-1123 label.
    pub team: DnsLabel,
    /// The team's environment, a DNS-1123 label; the namespace is `sjns-<team>-<env>`.
    pub env: DnsLabel,
    /// A human name for the job, not necessarily unique.
    #[schema(example = "daily-features")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "4.0.1")]
    pub spark_version: Option<String>,
    /// The container image (Kubernetes backend only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The application: a `.py` file, or a `.jar` together with `mainClass`.
    #[schema(example = "local:///opt/jobs/features.py")]
    pub main_application_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_class: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Spark configuration; every value must be a string.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub spark_conf: BTreeMap<String, ConfValue>,
    #[serde(default)]
    pub driver: DriverSpec,
    #[serde(default)]
    pub executor: ExecutorSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_allocation: Option<DynamicAllocation>,
    #[serde(default, skip_serializing_if = "Deps::is_empty")]
    pub deps: Deps,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_vars: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Wall-clock limit from the first attempt's start; past it the job is stopped and FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 604_800)]
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// `off`: a failed attempt is never retried with more memory, and the job does not start
    /// from a size remembered from an earlier run of the same job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<crate::remediation::resize::ResizeMode>,
    /// What the submission does with sizing advice from the job's past runs: `off`, `advise`
    /// (record it on the job) or `auto` (apply it). Left out: the team's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<crate::advice::auto::SizingMode>,
    /// With `sizing: auto`: advice may change settings this spec sets itself (by default the
    /// spec's own values win).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sizing_override: bool,
}

/// A Spark conf value. Only strings are accepted, so `64` and `true` must be quoted: the
/// operator's CRD and `spark-submit --conf` both take strings, and silently converting numbers
/// would hide YAML surprises such as `4.10` becoming `4.1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct ConfValue(pub String);

impl<'de> Deserialize<'de> for ConfValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StringOnly;
        impl serde::de::Visitor<'_> for StringOnly {
            type Value = ConfValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a string (sparkConf values must be strings: quote numbers and booleans)",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ConfValue, E> {
                Ok(ConfValue(v.to_owned()))
            }
        }
        d.deserialize_str(StringOnly)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DriverSpec {
    pub cores: u32,
    /// A Spark size such as `512m` or `2g`.
    #[schema(example = "2g")]
    pub memory: String,
}

impl Default for DriverSpec {
    fn default() -> Self {
        DriverSpec {
            cores: 1,
            memory: "1g".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExecutorSpec {
    pub cores: u32,
    #[schema(example = "4g")]
    pub memory: String,
    pub instances: u32,
}

impl Default for ExecutorSpec {
    fn default() -> Self {
        ExecutorSpec {
            cores: 1,
            memory: "1g".into(),
            instances: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynamicAllocation {
    pub enabled: bool,
    #[serde(default)]
    pub min_executors: u32,
    pub max_executors: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_executors: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Deps {
    pub jars: Vec<String>,
    pub py_files: Vec<String>,
    pub files: Vec<String>,
}

impl Deps {
    pub fn is_empty(&self) -> bool {
        self.jars.is_empty() && self.py_files.is_empty() && self.files.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each further one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_seconds: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff_seconds: None,
        }
    }
}

/// The server-side defaults a spec may leave out.
#[derive(Clone, Debug)]
pub struct SpecDefaults {
    pub spark_version: String,
    pub image: String,
}

impl SpecDefaults {
    /// Fills in what a spec (job or session) left out.
    pub fn fill(&self, spark_version: &mut Option<String>, image: &mut Option<String>) {
        spark_version.get_or_insert_with(|| self.spark_version.clone());
        image.get_or_insert_with(|| self.image.clone());
    }
}

/// How a request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl JobSpec {
    /// Parses and validates a body, then fills in the defaults. Refused with every broken
    /// rule at once (each with its field), not only the first.
    pub fn parse(body: &[u8], format: Format, defaults: &SpecDefaults) -> Result<Self, Error> {
        let mut problems = Violations::default();
        let spec: Option<JobSpec> = decode_collecting(body, format, "JobSpec", &mut problems)?;
        if let Some(spec) = &spec {
            spec.check(&mut problems);
        }
        let mut spec = problems.into_result(spec)?;
        defaults.fill(&mut spec.spark_version, &mut spec.image);
        Ok(spec)
    }

    /// The namespace this job runs in.
    pub fn namespace(&self) -> String {
        names::team_namespace(&self.team, &self.env).expect("validated at parse time")
    }

    /// A stable digest of the spec, used to tell a retried submission from a different one.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let canonical = serde_json::to_vec(self).expect("a JobSpec always serializes");
        let hash = sha2::Sha256::digest(&canonical);
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks every value rule, returning every broken one with its field.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Violations::default();
        self.check(&mut problems);
        problems.finish()
    }

    /// Records every broken value rule.
    fn check(&self, problems: &mut Violations) {
        problems.check(
            names::team_namespace(&self.team, &self.env)
                .map(drop)
                .map_err(|m| Error::invalid("env", m)),
        );
        problems.check(check_name(&self.name));
        if let Some(v) = &self.spark_version {
            problems.check(check_spark_version(v));
        }
        if let Some(image) = &self.image {
            problems.check(check_image(image));
        }
        self.check_application(problems);
        check_args(&self.args, problems);
        check_spark_conf(&self.spark_conf, problems);
        check_resources(
            &self.driver,
            &self.executor,
            self.dynamic_allocation.as_ref(),
            problems,
        );
        check_deps(&self.deps, problems);
        check_env_vars(&self.env_vars, problems);
        check_labels(&self.labels, problems);
        self.check_policies(problems);
    }

    fn check_application(&self, problems: &mut Violations) {
        let file = &self.main_application_file;
        problems.check(check_uri("mainApplicationFile", file));
        let is_jar = file.ends_with(".jar");
        if !is_jar && !file.ends_with(".py") {
            problems.push(
                "mainApplicationFile",
                "must be a .py file, or a .jar together with mainClass",
            );
            return;
        }
        match (&self.main_class, is_jar) {
            (None, true) => problems.push(
                "mainClass",
                "is required when mainApplicationFile is a .jar",
            ),
            (Some(_), false) => problems.push(
                "mainClass",
                "applies only to .jar applications; remove it for a .py file",
            ),
            (Some(class), true) if !is_java_class_name(class) => problems.push(
                "mainClass",
                format!("{class:?} is not a Java class name like com.example.Main"),
            ),
            _ => {}
        }
    }

    fn check_policies(&self, problems: &mut Violations) {
        use crate::advice::auto::SizingMode;
        if self.sizing_override && matches!(self.sizing, Some(SizingMode::Off | SizingMode::Advise))
        {
            problems.push(
                "sizingOverride",
                "applies only with sizing: auto; remove it or set sizing: auto",
            );
        }
        if let Some(timeout) = self.timeout_seconds {
            problems.check(check_between(
                "timeoutSeconds",
                timeout,
                1,
                MAX_TIMEOUT_SECONDS,
            ));
        }
        problems.check(check_between(
            "retry.maxAttempts",
            u64::from(self.retry.max_attempts),
            1,
            u64::from(MAX_ATTEMPTS),
        ));
        if let Some(backoff) = self.retry.backoff_seconds {
            problems.check(check_between(
                "retry.backoffSeconds",
                backoff,
                0,
                MAX_BACKOFF_SECONDS,
            ));
        }
    }
}

/// Driver and executor sizes, and dynamic allocation bounds (jobs and sessions alike).
pub(crate) fn check_resources(
    driver: &DriverSpec,
    executor: &ExecutorSpec,
    dynamic: Option<&DynamicAllocation>,
    problems: &mut Violations,
) {
    problems.check(check_cores("driver.cores", driver.cores));
    problems.check(check_memory("driver.memory", &driver.memory));
    problems.check(check_cores("executor.cores", executor.cores));
    problems.check(check_memory("executor.memory", &executor.memory));
    problems.check(check_at_most(
        "executor.instances",
        executor.instances,
        MAX_INSTANCES,
    ));
    if let Some(dynamic) = dynamic {
        problems.check(check_dynamic_allocation(dynamic));
    }
}

fn check_dynamic_allocation(dynamic: &DynamicAllocation) -> Result<(), Error> {
    check_at_most(
        "dynamicAllocation.maxExecutors",
        dynamic.max_executors,
        MAX_INSTANCES,
    )?;
    if dynamic.min_executors > dynamic.max_executors {
        return Err(Error::invalid(
            "dynamicAllocation.minExecutors",
            format!(
                "must not exceed maxExecutors ({} > {})",
                dynamic.min_executors, dynamic.max_executors
            ),
        ));
    }
    match dynamic.initial_executors {
        Some(n) if n < dynamic.min_executors || n > dynamic.max_executors => Err(Error::invalid(
            "dynamicAllocation.initialExecutors",
            format!(
                "must be between minExecutors and maxExecutors ({}..={}), got {n}",
                dynamic.min_executors, dynamic.max_executors
            ),
        )),
        _ => Ok(()),
    }
}

/// Decodes a body into a spec's shape (`kind` names it in messages), naming the field on
/// failure.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    body: &[u8],
    format: Format,
    kind: &str,
) -> Result<T, Error> {
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(body);
            serde_path_to_error::deserialize(&mut de)
                .map_err(|e| shape_error(e, &format!("JSON {kind}")))
        }
        Format::Yaml => decode_value(yaml_value(body)?, &format!("YAML {kind}")),
    }
}

/// Decodes a body into a spec's shape, getting past every unknown field (each reported with
/// the known name it is closest to) and every mistyped field, so that one answer lists them
/// all. `None` when the shape could not be decoded; every reason is in `problems`. A body that
/// is not JSON or YAML at all is an error of its own.
pub(crate) fn decode_collecting<T: serde::de::DeserializeOwned>(
    body: &[u8],
    format: Format,
    kind: &str,
    problems: &mut Violations,
) -> Result<Option<T>, Error> {
    let (value, kind) = match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(body);
            let value = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| shape_error(e, &format!("JSON {kind}")))?;
            (value, format!("JSON {kind}"))
        }
        Format::Yaml => (yaml_value(body)?, format!("YAML {kind}")),
    };
    Ok(decode_value_collecting(value, &kind, problems))
}

/// At most this many shape errors are collected from one body (each costs one more decode).
const MAX_SHAPE_ERRORS: usize = 32;

/// [`decode_collecting`] of a value already parsed: decode, and at each shape error record it,
/// remove the culprit and decode again, until the value decodes or an error cannot be got past
/// (a missing field, a mistyped list element).
pub(crate) fn decode_value_collecting<T: serde::de::DeserializeOwned>(
    mut value: serde_json::Value,
    kind: &str,
    problems: &mut Violations,
) -> Option<T> {
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_SHAPE_ERRORS {
        let err = match serde_path_to_error::deserialize(&value) {
            Ok(spec) => return Some(spec),
            Err(err) => err,
        };
        let inner = err.inner().to_string();
        let mut path: Vec<Segment> = err.path().iter().cloned().collect();
        if let Some((name, known)) = unknown_field(&inner) {
            // serde reports an unknown field at its parent, or (nested) at itself.
            if matches!(path.last(), Some(Segment::Map { key }) if key == name) {
                path.pop();
            }
            path.push(Segment::Map { key: name.into() });
            problems.push(dotted(&path), unknown_field_message(name, &known, &inner));
        } else {
            let shape = shape_error(err, kind);
            let missing_after_removal = inner.starts_with("missing field")
                && shape
                    .field()
                    .is_some_and(|f| removed.iter().any(|r| r == f));
            if !missing_after_removal {
                problems.push_error(shape);
            }
            if inner.starts_with("missing field")
                || !matches!(path.last(), Some(Segment::Map { .. }))
            {
                return None;
            }
        }
        if !remove_at(&mut value, &path) {
            return None;
        }
        removed.push(dotted(&path));
    }
    None
}

/// The name and the expected names of serde's "unknown field `x`, expected one of `a`, `b`".
fn unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, expected) = rest.split_once('`')?;
    let known = expected.split('`').skip(1).step_by(2).collect();
    Some((name, known))
}

fn unknown_field_message(name: &str, known: &[&str], serde_message: &str) -> String {
    match violations::did_you_mean(name, known.iter().copied()) {
        Some(meant) => format!("unknown field `{name}`; did you mean `{meant}`?"),
        None => serde_message.to_owned(),
    }
}

/// A path as the API names fields: `driver.memory`, `args[0]`, `sparkConf.spark.master`.
fn dotted(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

/// Removes the object entry at `path`; false when there is none to remove.
fn remove_at(value: &mut serde_json::Value, path: &[Segment]) -> bool {
    let Some((Segment::Map { key }, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => node.get_mut(key.as_str()),
            Segment::Seq { index } => node.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else { return false };
        node = next;
    }
    node.as_object_mut()
        .is_some_and(|object| object.remove(key).is_some())
}

/// Decodes a value already parsed into a spec's shape, naming the field on failure.
pub(crate) fn decode_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    kind: &str,
) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| shape_error(e, kind))
}

/// Parses a YAML body into a JSON value with limits on aliases and size, so that anchor bombs
/// fail fast instead of expanding.
/// A body already accepted by [`JobSpec::parse`], as a JSON value: which fields it names.
pub(crate) fn body_value(body: &[u8], format: Format) -> Result<serde_json::Value, Error> {
    match format {
        Format::Json => serde_json::from_slice(body).map_err(|e| Error::InvalidRequest {
            field: None,
            message: format!("the JSON body is not valid JSON: {e}"),
        }),
        Format::Yaml => yaml_value(body),
    }
}

fn yaml_value(body: &[u8]) -> Result<serde_json::Value, Error> {
    let text = std::str::from_utf8(body).map_err(|e| Error::InvalidRequest {
        field: None,
        message: format!("the YAML body is not valid UTF-8: {e}"),
    })?;
    let options = serde_saphyr::options! {
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 100,
        },
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| Error::InvalidRequest {
        field: None,
        message: format!("the body is not valid YAML: {e}"),
    })
}

/// Maps a serde error to an InvalidRequest whose field is the full path of the culprit:
/// serde reports unknown and missing fields at their parent, so the name is appended.
fn shape_error<E: std::fmt::Display>(err: serde_path_to_error::Error<E>, what: &str) -> Error {
    let parent = err.path().to_string();
    let message = err.inner().to_string();
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let field = match (parent.as_str(), named) {
        (".", Some(name)) => Some(name.to_owned()),
        (".", None) => None,
        // serde_path_to_error already ends the path with an unknown field's own name.
        (_, Some(name)) if parent == name || parent.ends_with(&format!(".{name}")) => {
            Some(parent.clone())
        }
        (_, Some(name)) => Some(format!("{parent}.{name}")),
        (_, None) => Some(parent.clone()),
    };
    let message = match &field {
        Some(field) => format!("{field}: {message}"),
        None => format!("the body is not a valid {what}: {message}"),
    };
    Error::InvalidRequest { field, message }
}

pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(ok_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "must be 1-128 characters of letters, digits, '-', '_' or '.', starting with a \
             letter or digit",
        ))
    }
}

pub(crate) fn check_spark_version(version: &str) -> Result<(), Error> {
    let mut parts = version.splitn(2, '-');
    let numbers = parts.next().unwrap_or_default();
    let dotted: Vec<&str> = numbers.split('.').collect();
    let valid = (2..=3).contains(&dotted.len())
        && dotted
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_none_or(|suffix| {
            suffix.len() <= 32 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "sparkVersion",
            format!("{version:?} is not a Spark version like \"4.0.1\" (quote it in YAML)"),
        ))
    }
}

pub(crate) fn check_image(image: &str) -> Result<(), Error> {
    let valid =
        !image.is_empty() && image.len() <= 512 && image.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "image",
            "must be a container image reference (1-512 printable characters, no spaces)",
        ))
    }
}

/// A file reference: a URI with a known scheme or an absolute path, never walking up with `..`.
fn check_uri(field: &str, uri: &str) -> Result<(), Error> {
    if uri.is_empty() || uri.len() > MAX_URI_LEN {
        return Err(Error::invalid(
            field,
            format!("must be 1-{MAX_URI_LEN} characters"),
        ));
    }
    if uri.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    let path = APP_FILE_SCHEMES
        .iter()
        .find_map(|scheme| uri.strip_prefix(scheme));
    let path = match path {
        Some(rest) => rest,
        None if uri.starts_with('/') => uri,
        None => {
            return Err(Error::invalid(
                field,
                format!(
                    "{uri:?} must be an absolute path or a URI with one of the schemes {}",
                    APP_FILE_SCHEMES.join(", ")
                ),
            ));
        }
    };
    if path.split('/').any(|segment| segment == "..") {
        return Err(Error::invalid(field, "must not contain '..' path segments"));
    }
    Ok(())
}

fn is_java_class_name(name: &str) -> bool {
    let ident = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    name.len() <= 256 && name.split('.').all(ident)
}

fn check_args(args: &[String], problems: &mut Violations) {
    if args.len() > MAX_ARGS {
        problems.push(
            "args",
            format!("at most {MAX_ARGS} arguments, got {}", args.len()),
        );
        return;
    }
    for (i, arg) in args.iter().enumerate() {
        if arg.len() > MAX_ARG_LEN || arg.contains('\0') {
            problems.push(
                format!("args[{i}]"),
                format!("must be at most {MAX_ARG_LEN} bytes with no NUL characters"),
            );
        }
    }
}

pub(crate) fn check_spark_conf(conf: &BTreeMap<String, ConfValue>, problems: &mut Violations) {
    if conf.len() > MAX_CONF_ENTRIES {
        problems.push(
            "sparkConf",
            format!("at most {MAX_CONF_ENTRIES} entries, got {}", conf.len()),
        );
        return;
    }
    for (key, value) in conf {
        problems.check(check_conf_entry(key, value));
    }
}

fn check_conf_entry(key: &str, ConfValue(value): &ConfValue) -> Result<(), Error> {
    let field = format!("sparkConf.{key}");
    let key_ok = key.starts_with("spark.")
        && key.len() <= MAX_CONF_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !key_ok {
        return Err(Error::invalid(
            field,
            format!(
                "keys must start with \"spark.\" and be at most {MAX_CONF_KEY_LEN} letters, \
                 digits, '.', '-' or '_'"
            ),
        ));
    }
    if RESERVED_CONFS.contains(&key) {
        return Err(Error::invalid(
            field,
            "is set by sk8 (from team/env, name and image, its event log location and application id, \
             or its own Connect token); remove it",
        ));
    }
    if value.len() > MAX_CONF_VALUE_LEN || value.contains('\0') {
        return Err(Error::invalid(
            field,
            format!("values must be at most {MAX_CONF_VALUE_LEN} bytes with no NUL"),
        ));
    }
    Ok(())
}

fn check_cores(field: &str, cores: u32) -> Result<(), Error> {
    check_between(field, u64::from(cores), 1, u64::from(MAX_CORES))
}

fn check_at_most(field: &str, value: u32, max: u32) -> Result<(), Error> {
    check_between(field, u64::from(value), 0, u64::from(max))
}

pub(crate) fn check_between(field: &str, value: u64, min: u64, max: u64) -> Result<(), Error> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ))
    }
}

/// Parses a Spark memory size (`512m`, `2g`, `1024k`, `1t`, optional trailing `b`, any case)
/// into bytes.
pub fn memory_bytes(size: &str) -> Option<u64> {
    let lower = size.to_ascii_lowercase();
    let trimmed = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, shift) = match trimmed.char_indices().last()? {
        (i, 'k') => (&trimmed[..i], 10),
        (i, 'm') => (&trimmed[..i], 20),
        (i, 'g') => (&trimmed[..i], 30),
        (i, 't') => (&trimmed[..i], 40),
        _ => (trimmed, 0),
    };
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn check_memory(field: &str, size: &str) -> Result<(), Error> {
    match memory_bytes(size) {
        Some(bytes) if (MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&bytes) => Ok(()),
        Some(_) => Err(Error::invalid(
            field,
            format!("{size:?} is out of range: between 32m and 1t"),
        )),
        None => Err(Error::invalid(
            field,
            format!("{size:?} is not a Spark memory size like 512m or 4g"),
        )),
    }
}

fn check_deps(deps: &Deps, problems: &mut Violations) {
    for (field, list) in [
        ("deps.jars", &deps.jars),
        ("deps.pyFiles", &deps.py_files),
        ("deps.files", &deps.files),
    ] {
        if list.len() > MAX_DEPS {
            problems.push(
                field,
                format!("at most {MAX_DEPS} entries, got {}", list.len()),
            );
            continue;
        }
        for (i, uri) in list.iter().enumerate() {
            problems.check(check_uri(&format!("{field}[{i}]"), uri));
        }
    }
}

fn check_env_vars(vars: &BTreeMap<String, String>, problems: &mut Violations) {
    if vars.len() > MAX_ENV_VARS {
        problems.push(
            "envVars",
            format!("at most {MAX_ENV_VARS} variables, got {}", vars.len()),
        );
        return;
    }
    for (name, value) in vars {
        problems.check(check_env_var(name, value));
    }
}

fn check_env_var(name: &str, value: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let name_ok = name.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !name_ok {
        return Err(Error::invalid(
            format!("envVars.{name}"),
            "names must be letters, digits and '_', not starting with a digit (at most 128)",
        ));
    }
    if value.len() > MAX_ENV_VALUE_LEN || value.contains('\0') {
        return Err(Error::invalid(
            format!("envVars.{name}"),
            format!("values must be at most {MAX_ENV_VALUE_LEN} bytes with no NUL"),
        ));
    }
    Ok(())
}

pub(crate) fn check_labels(labels: &BTreeMap<String, String>, problems: &mut Violations) {
    if labels.len() > MAX_LABELS {
        problems.push(
            "labels",
            format!("at most {MAX_LABELS} labels, got {}", labels.len()),
        );
        return;
    }
    for (key, value) in labels {
        problems.check(check_label(key, value));
    }
}

fn check_label(key: &str, value: &str) -> Result<(), Error> {
    let field = format!("labels.{key}");
    if key.starts_with(RESERVED_LABEL_PREFIX) {
        return Err(Error::invalid(
            field,
            format!("keys under {RESERVED_LABEL_PREFIX} are reserved for sk8"),
        ));
    }
    names::label_key_rule(key).map_err(|m| Error::invalid(field.clone(), m))?;
    names::label_value_rule(value).map_err(|m| Error::invalid(field, m))
}

#[cfg(test)]
mod tests;
