//! Where run history lives: a [`Location`] (a `file://`, `s3://`, `gs://` or `az://` URL, the
//! same place Spark writes its event logs to) and [`Objects`], sk8's reads and writes there
//! through the `object_store` crate.
//!
//! Keys are `/`-separated paths relative to the location (`eventlog_v2_app-1/events_1_app-1`,
//! `attempts/<job>/1/driver.log`); a key never climbs out of its location. Every call is async
//! and returns an [`ObjectsError`] that says whether the object was missing, the key was
//! invalid, or the store was in trouble.

use std::path::{Path as FsPath, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::buffered::BufWriter;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWriteExt};

/// A parsed history location URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `file:///abs/dir`: a directory of the local filesystem.
    Local(PathBuf),
    /// `s3://bucket/prefix` (also `s3a://`, as Spark spells it).
    S3 { bucket: String, prefix: String },
    /// `gs://bucket/prefix`.
    Gcs { bucket: String, prefix: String },
    /// `az://container/prefix`, `az://container@account/prefix` or
    /// `abfss://container@account.dfs.core.windows.net/prefix`.
    Azure {
        container: String,
        account: Option<String>,
        prefix: String,
    },
}

impl Location {
    /// Parses a location URL. The error names the rule that was broken.
    pub fn parse(url: &str) -> Result<Location, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a URL: use file:///dir, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"))?;
        match scheme {
            "file" => Self::parse_file(rest),
            "s3" | "s3a" => {
                let (bucket, prefix) = bucket_and_prefix(rest, scheme)?;
                Ok(Location::S3 { bucket, prefix })
            }
            "gs" => {
                let (bucket, prefix) = bucket_and_prefix(rest, scheme)?;
                Ok(Location::Gcs { bucket, prefix })
            }
            "az" | "abfs" | "abfss" => Self::parse_azure(rest, scheme),
            other => Err(format!(
                "unsupported scheme {other:?}: use file, s3, gs or az"
            )),
        }
    }

    fn parse_file(rest: &str) -> Result<Location, String> {
        // file:///dir has an empty authority; file://localhost/dir is the same place.
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err("file:// URLs need an absolute path (file:///dir)".into());
        }
        if path.split('/').any(|segment| segment == "..") {
            return Err("file:// URLs may not contain '..'".into());
        }
        Ok(Location::Local(PathBuf::from(path)))
    }

    fn parse_azure(rest: &str, scheme: &str) -> Result<Location, String> {
        let (authority, prefix) = bucket_and_prefix(rest, scheme)?;
        let (container, account) = match authority.split_once('@') {
            None => (authority, None),
            Some((container, host)) => {
                let account = host.split('.').next().unwrap_or_default().to_string();
                if container.is_empty() || account.is_empty() {
                    return Err(format!(
                        "{scheme}:// URLs name the container and account as container@account"
                    ));
                }
                (container.to_string(), Some(account))
            }
        };
        Ok(Location::Azure {
            container,
            account,
            prefix,
        })
    }

    /// A local directory.
    pub fn local(path: impl Into<PathBuf>) -> Location {
        Location::Local(path.into())
    }

    /// The URL Spark writes to for this location (`spark.eventLog.dir`): Hadoop's `s3a://` for
    /// S3, `gs://`, `abfss://container@account.dfs.core.windows.net/…` for Azure (which needs
    /// the account in the URL).
    pub fn spark_url(&self) -> Result<String, String> {
        Ok(match self {
            Location::Local(path) => format!("file://{}", path.display()),
            Location::S3 { bucket, prefix } => with_prefix(format!("s3a://{bucket}"), prefix),
            Location::Gcs { bucket, prefix } => with_prefix(format!("gs://{bucket}"), prefix),
            Location::Azure {
                container,
                account: Some(account),
                prefix,
            } => with_prefix(
                format!("abfss://{container}@{account}.dfs.core.windows.net"),
                prefix,
            ),
            Location::Azure { account: None, .. } => {
                return Err(
                    "Spark needs the storage account: write az://<container>@<account>/<prefix>"
                        .into(),
                );
            }
        })
    }

    /// The location one level down, at `segment` (which may hold several `/`-separated parts).
    pub fn join(&self, segment: &str) -> Location {
        let segment = segment.trim_matches('/');
        match self {
            Location::Local(path) => Location::Local(path.join(segment)),
            Location::S3 { bucket, prefix } => Location::S3 {
                bucket: bucket.clone(),
                prefix: join_prefix(prefix, segment),
            },
            Location::Gcs { bucket, prefix } => Location::Gcs {
                bucket: bucket.clone(),
                prefix: join_prefix(prefix, segment),
            },
            Location::Azure {
                container,
                account,
                prefix,
            } => Location::Azure {
                container: container.clone(),
                account: account.clone(),
                prefix: join_prefix(prefix, segment),
            },
        }
    }

    /// The directory, when the location is on the local filesystem.
    pub fn local_dir(&self) -> Option<&FsPath> {
        match self {
            Location::Local(path) => Some(path),
            _ => None,
        }
    }

    fn prefix(&self) -> &str {
        match self {
            Location::Local(_) => "",
            Location::S3 { prefix, .. }
            | Location::Gcs { prefix, .. }
            | Location::Azure { prefix, .. } => prefix,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(path) => write!(f, "file://{}", path.display()),
            Location::S3 { bucket, prefix } => {
                f.write_str(&with_prefix(format!("s3://{bucket}"), prefix))
            }
            Location::Gcs { bucket, prefix } => {
                f.write_str(&with_prefix(format!("gs://{bucket}"), prefix))
            }
            Location::Azure {
                container,
                account,
                prefix,
            } => {
                let authority = match account {
                    Some(account) => format!("{container}@{account}"),
                    None => container.clone(),
                };
                f.write_str(&with_prefix(format!("az://{authority}"), prefix))
            }
        }
    }
}

fn bucket_and_prefix(rest: &str, scheme: &str) -> Result<(String, String), String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!(
            "{scheme}:// URLs name a bucket: {scheme}://<bucket>/<prefix>"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!(
            "{scheme}:// prefixes may not contain '.' or '..' segments"
        ));
    }
    if prefix.contains("//") {
        return Err(format!(
            "{scheme}:// prefixes may not contain empty segments"
        ));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

fn with_prefix(base: String, prefix: &str) -> String {
    if prefix.is_empty() {
        base
    } else {
        format!("{base}/{prefix}")
    }
}

fn join_prefix(prefix: &str, segment: &str) -> String {
    match (prefix.is_empty(), segment.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => segment.to_string(),
        (false, false) => format!("{prefix}/{segment}"),
    }
}

/// How to reach an object store, beside its URL. Credentials come from the environment the way
/// each cloud's SDK reads them (`AWS_*`, `GOOGLE_*`, `AZURE_*`: workload identity, IRSA…), or
/// from `options`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreOptions {
    /// An S3-compatible endpoint (MinIO, Ceph…), or another GCS / Azure endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The S3 region (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Allow plain `http://` endpoints (test servers, in-cluster stores).
    #[serde(default)]
    pub allow_http: bool,
    /// Further `object_store` configuration keys of the location's store, e.g.
    /// `aws_access_key_id`, `google_service_account`, `azure_storage_account_name`.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

/// What went wrong talking to a store.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The object (or every object under a prefix) does not exist.
    #[error("{key}: not found")]
    NotFound { key: String },
    /// The key is not a valid path inside the location.
    #[error("invalid key {key:?}: {rule}")]
    InvalidKey { key: String, rule: String },
    /// The store could not be set up from its location and options.
    #[error("object store configuration: {0}")]
    Config(String),
    /// The store failed or could not be reached.
    #[error("object store: {0}")]
    Store(#[source] object_store::Error),
    /// Reading the data to write failed.
    #[error("reading the upload: {0}")]
    Io(#[from] std::io::Error),
}

impl ObjectsError {
    fn from_store(error: object_store::Error, key: &str) -> ObjectsError {
        match error {
            object_store::Error::NotFound { .. } => ObjectsError::NotFound {
                key: key.to_string(),
            },
            other => ObjectsError::Store(other),
        }
    }

    /// Whether the object was simply not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ObjectsError::NotFound { .. })
    }
}

/// One object: its key relative to the location, size and last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// The objects under a key prefix, one level deep: sub-"directories" and objects.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Keys of the common prefixes (without a trailing `/`).
    pub dirs: Vec<String>,
    pub objects: Vec<Entry>,
}

/// An open object store at a [`Location`].
#[derive(Debug, Clone)]
pub struct Objects {
    location: Location,
    store: Arc<dyn ObjectStore>,
    root: Path,
}

impl Objects {
    /// Opens the store of `location`. A local directory is created if missing (Spark refuses
    /// to start when its event log directory does not exist).
    pub fn open(location: &Location, options: &StoreOptions) -> Result<Objects, ObjectsError> {
        let store: Arc<dyn ObjectStore> = match location {
            Location::Local(dir) => {
                std::fs::create_dir_all(dir)?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| ObjectsError::Config(e.to_string()))?
                    .with_automatic_cleanup(true);
                Arc::new(store)
            }
            Location::S3 { bucket, .. } => Arc::new(s3(bucket, options)?),
            Location::Gcs { bucket, .. } => Arc::new(gcs(bucket, options)?),
            Location::Azure {
                container, account, ..
            } => Arc::new(azure(container, account.as_deref(), options)?),
        };
        let root =
            Path::parse(location.prefix()).map_err(|e| ObjectsError::Config(e.to_string()))?;
        Ok(Objects {
            location: location.clone(),
            store,
            root,
        })
    }

    /// Where this store is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The file behind `key` when the location is local: readers take it directly, which is
    /// several times faster than going through the store's async reads.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        let dir = self.location.local_dir()?;
        let path = self.path(key).ok()?;
        Some(
            path.parts()
                .fold(dir.to_path_buf(), |acc, part| acc.join(part.as_ref())),
        )
    }

    fn path(&self, key: &str) -> Result<Path, ObjectsError> {
        let invalid = |rule: &str| ObjectsError::InvalidKey {
            key: key.to_string(),
            rule: rule.to_string(),
        };
        let key = key.trim_matches('/');
        if key
            .split('/')
            .any(|segment| segment == "." || segment == "..")
        {
            return Err(invalid("no '.' or '..' segments"));
        }
        let relative = Path::parse(key).map_err(|e| invalid(&e.to_string()))?;
        Ok(relative
            .parts()
            .fold(self.root.clone(), |acc, part| acc.join(part)))
    }

    fn key_of(&self, path: &Path) -> String {
        let parts: Vec<_> = match path.prefix_match(&self.root) {
            Some(rest) => rest.map(|part| part.as_ref().to_string()).collect(),
            None => path.parts().map(|part| part.as_ref().to_string()).collect(),
        };
        parts.join("/")
    }

    fn entry(&self, meta: ObjectMeta) -> Entry {
        Entry {
            key: self.key_of(&meta.location),
            size: meta.size,
            modified: meta.last_modified,
        }
    }

    /// Writes `bytes` at `key` in one request (small objects).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectsError> {
        let path = self.path(key)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| ObjectsError::from_store(e, key))
    }

    /// Streams `reader` to `key`, as a multipart upload once it outgrows one part, so a log of
    /// any size is written without being held in memory. Returns the bytes written.
    pub async fn put_reader<R: AsyncRead + Unpin>(
        &self,
        key: &str,
        mut reader: R,
    ) -> Result<u64, ObjectsError> {
        let path = self.path(key)?;
        let mut writer = BufWriter::new(Arc::clone(&self.store), path);
        let copied = tokio::io::copy(&mut reader, &mut writer).await;
        let finished = match copied {
            Ok(n) => writer.shutdown().await.map(|()| n),
            Err(e) => Err(e),
        };
        match finished {
            Ok(n) => Ok(n),
            Err(e) => {
                // Best effort: an unfinished multipart upload would be billed until it expires.
                let _ = writer.abort().await;
                Err(ObjectsError::Io(e))
            }
        }
    }

    /// The object at `key` as a stream of chunks.
    pub async fn get(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectsError>>, ObjectsError> {
        let path = self.path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| ObjectsError::from_store(e, key))?;
        let key = key.to_string();
        Ok(result
            .into_stream()
            .map_err(move |e| ObjectsError::from_store(e, &key))
            .boxed())
    }

    /// The whole object at `key` (small objects only).
    pub async fn get_bytes(&self, key: &str) -> Result<Bytes, ObjectsError> {
        let chunks: Vec<Bytes> = self.get(key).await?.try_collect().await?;
        Ok(chunks.concat().into())
    }

    /// Size and last change of the object at `key`.
    pub async fn head(&self, key: &str) -> Result<Entry, ObjectsError> {
        let path = self.path(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| ObjectsError::from_store(e, key))?;
        Ok(self.entry(meta))
    }

    /// Every object under `prefix` (whole path segments; `""` for all), at any depth.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry, ObjectsError>> {
        let path = match self.path(prefix) {
            Ok(path) => path,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let this = self.clone();
        let key = prefix.to_string();
        self.store
            .list(Some(&path))
            .map(move |item| {
                item.map(|meta| this.entry(meta))
                    .map_err(|e| ObjectsError::from_store(e, &key))
            })
            .boxed()
    }

    /// The directories and objects directly under `prefix`.
    pub async fn list_dir(&self, prefix: &str) -> Result<Listing, ObjectsError> {
        let path = self.path(prefix)?;
        let result = self
            .store
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|e| ObjectsError::from_store(e, prefix))?;
        Ok(Listing {
            dirs: result
                .common_prefixes
                .iter()
                .map(|p| self.key_of(p))
                .collect(),
            objects: result.objects.into_iter().map(|m| self.entry(m)).collect(),
        })
    }

    /// Deletes the object at `key`; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectsError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ObjectsError::Store(e)),
        }
    }

    /// Deletes every object under `prefix` (retention); returns how many were deleted.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, ObjectsError> {
        let root = self.path(prefix)?;
        if root == self.root {
            return Err(ObjectsError::InvalidKey {
                key: prefix.to_string(),
                rule: "deleting the whole location is refused".into(),
            });
        }
        let locations = self
            .store
            .list(Some(&root))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = 0;
        let mut results = self.store.delete_stream(locations);
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(ObjectsError::from_store(e, prefix)),
            }
        }
        Ok(deleted)
    }
}

fn client_options(options: &StoreOptions) -> ClientOptions {
    ClientOptions::new().with_allow_http(options.allow_http)
}

/// A store in trouble is retried for at most half a minute: history is read and written off
/// the jobs' path, and a later turn tries again.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    }
}

fn connector(options: &StoreOptions) -> super::http::Connector {
    super::http::Connector {
        allow_http: options.allow_http,
    }
}

fn config_key<K: FromStr>(store: &str, key: &str) -> Result<K, ObjectsError> {
    K::from_str(key).map_err(|_| ObjectsError::Config(format!("unknown {store} option {key:?}")))
}

fn s3(bucket: &str, options: &StoreOptions) -> Result<object_store::aws::AmazonS3, ObjectsError> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(options.region.as_deref().unwrap_or("us-east-1"))
        .with_client_options(client_options(options))
        .with_retry(retry())
        .with_http_connector(connector(options));
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    for (key, value) in &options.options {
        builder = builder.with_config(config_key::<AmazonS3ConfigKey>("s3", key)?, value);
    }
    builder
        .build()
        .map_err(|e| ObjectsError::Config(e.to_string()))
}

fn gcs(
    bucket: &str,
    options: &StoreOptions,
) -> Result<object_store::gcp::GoogleCloudStorage, ObjectsError> {
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(client_options(options))
        .with_retry(retry())
        .with_http_connector(connector(options));
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_config(GoogleConfigKey::BaseUrl, endpoint);
    }
    for (key, value) in &options.options {
        builder = builder.with_config(config_key::<GoogleConfigKey>("gcs", key)?, value);
    }
    builder
        .build()
        .map_err(|e| ObjectsError::Config(e.to_string()))
}

fn azure(
    container: &str,
    account: Option<&str>,
    options: &StoreOptions,
) -> Result<object_store::azure::MicrosoftAzure, ObjectsError> {
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_client_options(client_options(options))
        .with_retry(retry())
        .with_http_connector(connector(options));
    if let Some(account) = account {
        builder = builder.with_account(account);
    }
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    for (key, value) in &options.options {
        builder = builder.with_config(config_key::<AzureConfigKey>("azure", key)?, value);
    }
    builder
        .build()
        .map_err(|e| ObjectsError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme_and_gives_sparks_url() {
        let local = Location::parse("file:///var/sk8/history").unwrap();
        assert_eq!(local, Location::local("/var/sk8/history"));
        assert_eq!(local.spark_url().unwrap(), "file:///var/sk8/history");

        let s3 = Location::parse("s3://logs/spark/events/").unwrap();
        assert_eq!(
            s3,
            Location::S3 {
                bucket: "logs".into(),
                prefix: "spark/events".into()
            }
        );
        assert_eq!(s3.spark_url().unwrap(), "s3a://logs/spark/events");
        assert_eq!(s3.to_string(), "s3://logs/spark/events");
        assert_eq!(
            Location::parse("s3a://logs").unwrap().spark_url().unwrap(),
            "s3a://logs"
        );

        let gs = Location::parse("gs://b/p").unwrap();
        assert_eq!(gs.spark_url().unwrap(), "gs://b/p");

        let az = Location::parse("az://events@acct/spark").unwrap();
        assert_eq!(
            az.spark_url().unwrap(),
            "abfss://events@acct.dfs.core.windows.net/spark"
        );
        let abfss = Location::parse("abfss://events@acct.dfs.core.windows.net/spark").unwrap();
        assert_eq!(abfss, az);
        let no_account = Location::parse("az://events/spark").unwrap();
        assert!(no_account.spark_url().unwrap_err().contains("account"));
    }

    #[test]
    fn rejects_with_the_rule() {
        let cases = [
            ("history", "not a URL"),
            ("file://relative/dir", "absolute path"),
            ("file:///a/../b", "'..'"),
            ("s3:///prefix", "name a bucket"),
            ("gs://b/a/../c", "'..'"),
            ("s3://b/a//c", "empty segments"),
            ("hdfs://nn/x", "unsupported scheme"),
            ("az://@acct/x", "container@account"),
        ];
        for (url, rule) in cases {
            let error = Location::parse(url).unwrap_err();
            assert!(error.contains(rule), "{url}: {error}");
        }
    }

    #[test]
    fn join_adds_segments() {
        let s3 = Location::parse("s3://b").unwrap().join("attempts/j1/");
        assert_eq!(s3.to_string(), "s3://b/attempts/j1");
        assert_eq!(s3.join("2").to_string(), "s3://b/attempts/j1/2");
        let local = Location::local("/tmp/x").join("y");
        assert_eq!(local, Location::local("/tmp/x/y"));
    }

    #[test]
    fn store_options_are_camel_case() {
        let options: StoreOptions = serde_json::from_value(serde_json::json!({
            "endpoint": "http://127.0.0.1:9000", "allowHttp": true,
            "options": {"aws_access_key_id": "k"}
        }))
        .unwrap();
        assert!(options.allow_http);
        assert!(
            serde_json::from_value::<StoreOptions>(serde_json::json!({"allow_http": true}))
                .is_err()
        );
        let bad = StoreOptions {
            options: [("no_such_option".to_string(), "x".to_string())].into(),
            ..StoreOptions::default()
        };
        let error = Objects::open(&Location::parse("s3://b").unwrap(), &bad).unwrap_err();
        assert!(error.to_string().contains("no_such_option"), "{error}");
    }

    #[tokio::test]
    async fn local_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::local(dir.path().join("history"));
        let objects = Objects::open(&location, &StoreOptions::default()).unwrap();

        objects
            .put("a/b/one.txt", Bytes::from_static(b"one"))
            .await
            .unwrap();
        let big = vec![7u8; 11 * 1024 * 1024];
        let written = objects.put_reader("a/big.bin", &big[..]).await.unwrap();
        assert_eq!(written, big.len() as u64);
        assert_eq!(
            objects.get_bytes("a/big.bin").await.unwrap().len(),
            big.len()
        );
        assert_eq!(&objects.get_bytes("a/b/one.txt").await.unwrap()[..], b"one");
        assert_eq!(objects.head("a/b/one.txt").await.unwrap().size, 3);
        assert_eq!(
            objects.local_path("a/b/one.txt").unwrap(),
            dir.path().join("history/a/b/one.txt")
        );

        let listing = objects.list_dir("a").await.unwrap();
        assert_eq!(listing.dirs, vec!["a/b".to_string()]);
        assert_eq!(listing.objects[0].key, "a/big.bin");
        let mut keys: Vec<_> = objects
            .list("")
            .map_ok(|e| e.key)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        keys.sort();
        assert_eq!(keys, ["a/b/one.txt", "a/big.bin"]);

        assert!(
            objects
                .get("missing")
                .await
                .is_err_and(|e| e.is_not_found())
        );
        assert!(objects.head("a/missing").await.unwrap_err().is_not_found());
        assert!(matches!(
            objects.put("../escape", Bytes::new()).await,
            Err(ObjectsError::InvalidKey { .. })
        ));
        assert!(objects.delete_prefix("").await.is_err());
        assert_eq!(objects.delete_prefix("a").await.unwrap(), 2);
        objects.delete("a/b/one.txt").await.unwrap();
        assert_eq!(objects.list("").count().await, 0);
    }
}
