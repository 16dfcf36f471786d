//! `sk8-fake-kube`: an in-memory fake Kubernetes API server for sk8's tests, speaking the real
//! protocol (JSON; protobuf only for the request bodies of kubectl's `create <kind>`
//! generators, see [`protobuf`]) and kept honest by driving it with the real `kubectl` in
//! `tests/kubectl.rs`.
//!
//! It serves the kinds in [`resources::KINDS`] (core namespaces, pods, services, secrets,
//! configmaps, serviceaccounts, resourcequotas, limitranges, events; networkpolicies; roles and
//! rolebindings; `spark.apache.org` SparkApplications at v1 and v1beta1 with a `status`
//! subresource; the embedded CRDs) with create, get, list (label and field selectors,
//! `limit`/`continue`), update (optimistic concurrency), merge/JSON patch, server-side apply
//! with field ownership, delete, watch (history, bookmarks, 410 Expired), discovery (legacy
//! and aggregated), OpenAPI v3, Table output for kubectl, pod logs, and ResourceQuota admission
//! of object counts (`count/<resource>`: 403 "exceeded quota" at create).
//!
//! Known simplifications: lists are atomic for apply; built-in kinds are not schema-checked;
//! deletion is immediate (no finalizers or grace periods); continue tokens page over the
//! current state rather than a snapshot; compute quotas (cpu, memory) are not enforced.
//!
//! With [`Options::operator`] set, a fake Apache Spark operator drives SparkApplications
//! through their states and creates driver pods ([`operator`] documents the annotations that
//! choose failures, pod IPs and logs).
//!
//! The control API, for what a kubelet would produce, is `POST
//! /fake/v1/namespaces/{namespace}/pods/{name}/log` (body: text to append to the pod's log),
//! also available as [`FakeKube::append_log`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let kube = sk8_fake_kube::FakeKube::start().await?;
//! kube.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! println!("API server at {}", kube.url());
//! # Ok(()) }
//! ```

pub mod apply;
pub mod discovery;
pub mod error;
pub mod fields;
mod http;
pub mod kubeconfig;
pub mod meta;
pub mod openapi;
pub mod operator;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod store;
pub mod strategy;
pub mod table;
pub mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
pub use crate::operator::OperatorOptions;
use crate::resources::lookup;
use crate::store::{Store, Target};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events kept for watches that resume from a resourceVersion; older ones get 410.
    pub history_limit: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Runs the fake Spark operator alongside (see [`operator`]); off by default.
    pub operator: Option<OperatorOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(5),
            operator: None,
        }
    }
}

/// Serves the fake API on `listener` until `shutdown` completes, then ends open watches and
/// drains.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = Arc::new(Store::new(options.history_limit));
    let token = CancellationToken::new();
    let outage = Arc::new(http::Outage::new(token.clone()));
    run(listener, store, outage, &options, token, shutdown).await
}

async fn run(
    listener: TcpListener,
    store: Arc<Store>,
    outage: Arc<http::Outage>,
    options: &Options,
    token: CancellationToken,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(operator) = &options.operator {
        tokio::spawn(operator::run(
            store.clone(),
            operator.clone(),
            token.clone(),
        ));
    }
    let state = http::AppState {
        store,
        shutdown: token.clone(),
        bookmark_every: options.bookmark_interval,
        outage,
    };
    let stop = async move {
        shutdown.await;
        token.cancel();
    };
    // Like a real API server (Go sets TCP_NODELAY on every connection): a watch event or a
    // small answer goes out at once instead of waiting for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(stop)
        .await
}

/// A fake API server running in a background task on 127.0.0.1, stopped on drop.
pub struct FakeKube {
    addr: SocketAddr,
    url: String,
    store: Arc<Store>,
    outage: Arc<http::Outage>,
    shutdown: CancellationToken,
    /// Taken by [`FakeKube::stop`]; a dropped handle only cancels.
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl FakeKube {
    /// Starts with default [`Options`] on a free port.
    pub async fn start() -> std::io::Result<FakeKube> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> std::io::Result<FakeKube> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Store::new(options.history_limit));
        let shutdown = CancellationToken::new();
        let outage = Arc::new(http::Outage::new(shutdown.clone()));
        let stop = shutdown.clone();
        let (served, gate) = (store.clone(), outage.clone());
        let task = tokio::spawn(async move {
            let stopped = stop.clone();
            run(listener, served, gate, &options, stop, async move {
                stopped.cancelled().await
            })
            .await
        });
        Ok(FakeKube {
            addr,
            url: format!("http://{addr}"),
            store,
            outage,
            shutdown,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes a kubeconfig pointing at this server (see [`kubeconfig::kubeconfig`]).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, kubeconfig::kubeconfig(&self.url))
    }

    /// Appends text to a pod's log, as its container would have written it.
    pub fn append_log(&self, namespace: &str, pod: &str, text: &str) -> Result<(), ApiError> {
        let (pods, _) = lookup("", "v1", "pods").expect("pods are served");
        self.store
            .append_log(&Target::item(pods, Some(namespace), pod), text)
    }

    /// An object as the fake holds it, read directly (also during an outage); `group` is
    /// empty for core kinds.
    pub fn object(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<serde_json::Value> {
        let (kind, _) = lookup(group, version, plural)?;
        self.store.get(&Target::item(kind, namespace, name)).ok()
    }

    /// Plays an API-server outage: while unreachable, every API request gets 503 and open
    /// watches are cut (the `/fake` control API and the fake operator keep working).
    pub fn set_reachable(&self, reachable: bool) {
        self.outage.set_reachable(reachable);
    }

    /// Plays an API server that takes requests and never answers them, until it speaks again
    /// (then the requests still open get their answers); watches already open go on.
    pub fn set_silent(&self, silent: bool) {
        self.outage.set_silent(silent);
    }

    /// Compacts the watch history, so a watch resuming from an older resourceVersion gets
    /// 410 Gone and must relist.
    pub fn expire_history(&self) {
        self.store.expire_history();
    }

    /// Stops serving and waits for the server task to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
