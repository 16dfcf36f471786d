//! Wiring and lifecycle: builds the store, backend, reconciler and HTTP server from a
//! [`Config`], runs them under one shutdown token, and stops them in order: stop accepting and
//! drain requests (with a deadline), stop the reconciler, stop the backend's processes, close
//! the store. A supervised task that ends on its own ends the daemon, loudly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::serve::ListenerExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::api::{self, AppState};
use crate::audit::Audit;
use crate::auth::Authenticator;
use crate::backend::Backend;
use crate::backend::kubernetes::KubernetesBackend;
use crate::backend::local::LocalBackend;
use crate::backend::namespaces::NamespaceChanges;
use crate::backend::noop::NoopBackend;
use crate::config::{BackendKind, Config, TlsConfig, redact_url};
use crate::gateway::activity::Activity;
use crate::gateway::token::UpstreamTokens;
use crate::gateway::{Gateway, GatewaySettings};
use crate::grpc::namespaces::NamespaceGrpc;
use crate::history::Objects;
use crate::lease::{self, Lease, LeaseSettings};
use crate::limits::Limits;
use crate::reconciler::namespaces::NamespaceReconciler;
use crate::reconciler::sessions::{SessionReconciler, SessionSettings};
use crate::reconciler::{OrphanSettings, Reconciler, ReconcilerSettings};
use crate::record::confs::EventLogSettings;
use crate::record::{History, Recorder, Retention};
use crate::service::JobService;
use crate::service::namespaces::NamespaceService;
use crate::service::namespaces::guard::NamespaceGuard;
use crate::service::sessions::SessionService;
use crate::store::{Store, StoreOptions};
use crate::wake::Wake;

/// The sockets the daemon serves on, bound by the caller (so tests can use port 0).
pub struct Listeners {
    pub http: TcpListener,
    /// The Spark Connect gateway.
    pub grpc: TcpListener,
}

/// Runs the daemon until `shutdown` is cancelled, then shuts down in order. `otlp_metrics` is
/// how often OTLP exports metrics, while it does.
pub async fn run(
    config: Config,
    listeners: Listeners,
    metrics: PrometheusHandle,
    otlp_metrics: Option<Duration>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = connect_store(&config).await?;
    let wake = Arc::new(Wake::default());
    let history = open_history(&config)?;
    let backend = build_backend(&config, &history, wake.clone()).await?;
    let guard = NamespaceGuard::new(store.clone(), config.namespaces.require_provisioned);
    let remediation = Arc::new(
        crate::remediation::Remediation::new(&config.remediation)
            .context("compile the remediation rules")?,
    );
    let (audit, audit_writer) = Audit::start(store.clone(), config.audit.retention());
    let limits = Arc::new(Limits::new(&config.limits));
    let jobs = JobService::new(
        store.clone(),
        backend.clone(),
        config.spec_defaults(),
        wake.clone(),
        audit.clone(),
        limits.clone(),
        history.clone(),
    )
    .with_guard(guard.clone())
    .with_remediation(remediation.clone())
    .with_sizing(config.sizing.clone());

    let reconciler_stop = CancellationToken::new();
    let leases = Leases::start(&store);
    let reconciler = Reconciler::new(
        store.clone(),
        backend.clone(),
        reconciler_settings(&config),
        wake.clone(),
    )
    .with_lease(leases.jobs.clone())
    .with_remediation(remediation.clone(), guard.clone())
    .with_history(history.objects.clone());
    let mut reconciler_task = tokio::spawn(reconciler.run(reconciler_stop.clone()));
    let retention_task = history_retention(&config, &store, &history, &leases, &reconciler_stop);
    let recorder = Recorder::new(
        store.clone(),
        backend.clone(),
        history,
        config.history.summary_workers,
        Duration::from_millis(config.reconciler.interval_ms),
    )
    .with_lease(leases.jobs.clone())
    .with_remediation(remediation, wake);
    let recorder_task = tokio::spawn(recorder.run(reconciler_stop.clone()));

    let grpc_addr = listeners
        .grpc
        .local_addr()
        .context("read the gateway listener's address")?;
    let gateway_address = public_gateway_address(&config, grpc_addr);
    let sessions_wake = Arc::new(Notify::new());
    let activity = Arc::new(Activity::default());
    let sessions = SessionService::new(
        store.clone(),
        backend.clone(),
        config.spec_defaults(),
        gateway_address.clone(),
        sessions_wake.clone(),
        audit.clone(),
        limits.clone(),
    )
    .with_guard(guard);
    let work = (jobs.clone(), sessions.clone());
    let (namespaces, namespace_task) = namespace_service(
        &config,
        &store,
        backend.as_ref(),
        &reconciler_stop,
        work,
        audit.clone(),
        &leases.global,
    );
    let auth = Arc::new(
        Authenticator::new(&config.auth, &config.gateway.default_user)
            .context("set up authentication (auth)")?,
    );
    if !auth.enabled() {
        tracing::warn!(
            user = %config.gateway.default_user,
            "authentication is off (auth.mode: off): every caller is this user, a platform admin; \
             keep sk8 on loopback or set auth.mode: tokens"
        );
    }
    let tokens = Arc::new(
        UpstreamTokens::load(
            config.gateway.upstream_token_key_file.as_deref(),
            &config.data_dir,
        )
        .context("load the gateway's upstream token key")?,
    );
    let session_reconciler = SessionReconciler::new(
        store.clone(),
        backend.clone(),
        SessionSettings {
            interval: Duration::from_millis(config.reconciler.interval_ms),
            start_timeout: Duration::from_secs(config.gateway.start_timeout_seconds),
        },
        sessions_wake,
        activity.clone(),
        tokens.clone(),
    )
    .with_lease(leases.global.clone());
    let session_task = tokio::spawn(session_reconciler.run(reconciler_stop.clone()));
    let gateway = Gateway::new(
        sessions.clone(),
        gateway_settings(&config),
        activity,
        tokens,
        auth.clone(),
        audit.clone(),
        limits,
    );
    let grpc_drain = shutdown.clone();
    // A header section beyond the limit resets the stream before any of it reaches sk8.
    let max_header_list = u32::try_from(config.limits.max_header_bytes).unwrap_or(u32::MAX);
    let mut grpc_builder =
        tonic::transport::Server::builder().http2_max_header_list_size(max_header_list);
    if let Some(tls) = &config.gateway.tls {
        grpc_builder = grpc_builder
            .tls_config(gateway_tls(tls)?)
            .context("set up TLS on the gateway")?;
    }
    let mut grpc_server = tokio::spawn(
        grpc_builder
            .add_service(gateway)
            .add_service(NamespaceGrpc::server(namespaces.clone(), auth.clone()))
            .serve_with_incoming_shutdown(
                // Small answers (a tiny query's result, a status) must not wait for the
                // client's delayed ACK: Nagle would add tens of milliseconds to them.
                TcpIncoming::from(listeners.grpc).with_nodelay(Some(true)),
                async move { grpc_drain.cancelled().await },
            ),
    );

    tokio::spawn(crate::telemetry::metrics_upkeep(
        metrics.clone(),
        shutdown.clone(),
    ));
    // A scrape refreshes the store-derived gauges; OTLP export, which no scrape drives, gets
    // a task that does.
    if let Some(every) = otlp_metrics {
        tokio::spawn(crate::telemetry::gauges::refresh_every(
            store.clone(),
            crate::telemetry::gauges::interval(every),
            shutdown.clone(),
        ));
    }
    let state = AppState {
        jobs,
        sessions,
        auth,
        namespaces,
        audit,
        metrics: Arc::new(metrics),
    };
    let router = api::router(
        state,
        api::RequestLimits {
            max_body_bytes: config.http.max_body_bytes,
            max_header_bytes: config.limits.max_header_bytes,
            max_headers: config.limits.max_headers,
        },
    );
    let addr = listeners
        .http
        .local_addr()
        .context("read the HTTP listener's address")?;
    let drain = shutdown.clone();
    let mut server = tokio::spawn(
        axum::serve(
            listeners.http.tap_io(|tcp| {
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %err, "could not set TCP_NODELAY");
                }
            }),
            router,
        )
        .with_graceful_shutdown(async move { drain.cancelled().await })
        .into_future(),
    );
    tracing::info!(
        addr = %addr,
        url = format!("http://{addr}"),
        grpc_addr = %grpc_addr,
        connect = format!("sc://{gateway_address}"),
        tls = config.gateway.tls.is_some(),
        startup_ms = started.elapsed().as_millis() as u64,
        "sk8 is ready: listening for HTTP and for Spark Connect"
    );

    // `biased`: on SIGTERM the server's graceful shutdown ends it too, and that is not the
    // server stopping "unexpectedly".
    let ended = tokio::select! {
        biased;
        _ = shutdown.cancelled() => Ended::Signal,
        result = &mut server => Ended::Server(format!("{result:?}")),
        result = &mut grpc_server => Ended::Gateway(format!("{result:?}")),
        result = &mut reconciler_task => Ended::Reconciler(format!("{result:?}")),
    };
    let outcome = match &ended {
        Ended::Signal => Ok(()),
        Ended::Server(result) => Err(anyhow::anyhow!(
            "the HTTP server stopped unexpectedly: {result}"
        )),
        Ended::Reconciler(result) => Err(anyhow::anyhow!(
            "the reconciler stopped unexpectedly: {result}"
        )),
        Ended::Gateway(result) => Err(anyhow::anyhow!(
            "the Spark Connect gateway stopped unexpectedly: {result}"
        )),
    };
    if let Err(err) = &outcome {
        tracing::error!(error = %err, "shutting down because a core task ended");
    }
    shutdown.cancel();
    // A finished task's handle must not be awaited again.
    if !matches!(ended, Ended::Server(_)) {
        tracing::info!("shutting down: draining HTTP requests");
        if tokio::time::timeout(config.shutdown_grace(), &mut server)
            .await
            .is_err()
        {
            tracing::warn!(
                grace_seconds = config.http.shutdown_grace_seconds,
                "requests still open after the grace period; closing them"
            );
            server.abort();
        }
    }
    if !matches!(ended, Ended::Gateway(_)) {
        // RPC streams end when their upstream does; no longer than the HTTP grace.
        if tokio::time::timeout(config.shutdown_grace(), &mut grpc_server)
            .await
            .is_err()
        {
            grpc_server.abort();
        }
    }
    reconciler_stop.cancel();
    if !matches!(ended, Ended::Reconciler(_)) {
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut reconciler_task).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), session_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), recorder_task).await;
    if let Some(task) = retention_task {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    if let Some(task) = namespace_task {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    // Their work stopped: the leases are given back, for another replica to take at once.
    leases.release().await;
    backend.shutdown().await;
    // Every handle on the audit log is gone with the servers: the writer saves what is queued.
    if tokio::time::timeout(Duration::from_secs(5), audit_writer)
        .await
        .is_err()
    {
        tracing::warn!("audit rows still queued at shutdown were not written; the log has them");
    }
    store.close().await;
    tracing::info!("sk8 stopped");
    outcome
}

/// The namespace service, and the reconciler that repairs namespaces on backends with
/// clusters (until `stop`).
fn namespace_service(
    config: &Config,
    store: &Store,
    backend: &dyn Backend,
    stop: &CancellationToken,
    work: (JobService, SessionService),
    audit: Audit,
    lease: &Arc<Lease>,
) -> (NamespaceService, Option<tokio::task::JoinHandle<()>>) {
    let changes = Arc::new(NamespaceChanges::default());
    let provisioner = backend.provisioner(&config.namespaces, &changes);
    let service = NamespaceService::new(
        store.clone(),
        provisioner.clone(),
        config.namespaces.policy(),
        changes.clone(),
        work,
        audit,
    );
    let task = provisioner.map(|provisioner| {
        let every = Duration::from_secs(config.namespaces.resync_seconds);
        let repair = config.namespaces.repair_drift;
        let reconciler =
            NamespaceReconciler::new(store.clone(), provisioner, every, repair, changes)
                .with_lease(lease.clone());
        tokio::spawn(reconciler.run(stop.clone()))
    });
    (service, task)
}

/// The leases this replica competes for, and the tasks that keep them.
struct Leases {
    jobs: Arc<Lease>,
    global: Arc<Lease>,
    stop: CancellationToken,
    keepers: Vec<tokio::task::JoinHandle<()>>,
}

impl Leases {
    fn start(store: &Store) -> Self {
        let replica = lease::replica_id();
        let settings = LeaseSettings::default();
        let stop = CancellationToken::new();
        let jobs = Arc::new(Lease::new(lease::JOBS, &replica, settings));
        let global = Arc::new(Lease::new(lease::GLOBAL, &replica, settings));
        let keepers = [&jobs, &global]
            .into_iter()
            .map(|l| {
                let (l, store, stop) = (l.clone(), store.clone(), stop.clone());
                tokio::spawn(async move { l.keep(store, stop).await })
            })
            .collect();
        tracing::info!(%replica, "competing for the jobs and global leases");
        Leases {
            jobs,
            global,
            stop,
            keepers,
        }
    }

    async fn release(self) {
        self.stop.cancel();
        for keeper in self.keepers {
            let _ = tokio::time::timeout(Duration::from_secs(5), keeper).await;
        }
    }
}

/// What ended the daemon's main wait.
enum Ended {
    Signal,
    Server(String),
    Reconciler(String),
    Gateway(String),
}

/// The `host:port` notebooks use: `gateway.publicAddress`, else the bound address (loopback
/// for a wildcard bind).
fn public_gateway_address(config: &Config, bound: std::net::SocketAddr) -> String {
    if let Some(public) = &config.gateway.public_address {
        return public.clone();
    }
    if bound.ip().is_unspecified() {
        format!("127.0.0.1:{}", bound.port())
    } else {
        bound.to_string()
    }
}

/// The gateway's certificate and key, read at startup.
fn gateway_tls(tls: &TlsConfig) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| {
            format!(
                "read the gateway's TLS {what} {} (gateway.tls)",
                path.display()
            )
        })
    };
    let identity = tonic::transport::Identity::from_pem(
        read(&tls.cert_file, "certificate")?,
        read(&tls.key_file, "key")?,
    );
    Ok(tonic::transport::ServerTlsConfig::new().identity(identity))
}

fn gateway_settings(config: &Config) -> GatewaySettings {
    GatewaySettings {
        resume_timeout: Duration::from_secs(config.gateway.resume_timeout_seconds),
        max_request_message: config.gateway.max_request_message_bytes,
        to_client: config.gateway.compression.to_client,
        restore_dir: config.data_dir.join("gateway").join("restore"),
        restore_max_bytes: config.gateway.restore_max_bytes,
    }
}

async fn connect_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.store_url();
    let options = StoreOptions {
        url: url.clone(),
        max_connections: config.store.max_connections,
        acquire_timeout: Duration::from_secs(config.store.acquire_timeout_seconds),
    };
    let store = Store::connect(&options)
        .await
        .with_context(|| format!("open the execution-history store at {}", redact_url(&url)))?;
    let origin = if config.store.url.is_empty() {
        " (embedded default)"
    } else {
        ""
    };
    tracing::info!(engine = store.engine().as_str(), url = %redact_url(&url), "store: {} ready{origin}", store.engine().as_str());
    Ok(store)
}

/// How often retention looks for expired archived logs (the first pass runs at startup).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Deletes archived logs past `history.retentionDays` (none when it is 0), on the replica
/// holding the global lease.
fn history_retention(
    config: &Config,
    store: &Store,
    history: &History,
    leases: &Leases,
    stop: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let keep = config.history.retention()?;
    let retention = Retention::new(
        store.clone(),
        history.objects.clone(),
        keep,
        RETENTION_EVERY,
    )
    .with_lease(leases.global.clone());
    Some(tokio::spawn(retention.run(stop.clone())))
}

/// The history location (`history.eventLogDir`), opened (a local folder is created: Spark
/// refuses to start without it).
fn open_history(config: &Config) -> anyhow::Result<History> {
    let location = config.history.location(&config.data_dir)?;
    let objects = Objects::open(&location, &config.history.store)
        .with_context(|| format!("open history.eventLogDir {location}"))?;
    tracing::info!(event_log_dir = %location, "history: run records and event logs");
    Ok(History {
        objects,
        server_url: config.history.server_url.clone(),
    })
}

async fn build_backend(
    config: &Config,
    history: &History,
    wake: Arc<Wake>,
) -> anyhow::Result<Arc<dyn Backend>> {
    let spark_dir = history
        .objects
        .location()
        .spark_url()
        .map_err(|e| anyhow::anyhow!("history.eventLogDir: {e}"))?;
    let event_logs = EventLogSettings { spark_dir };
    Ok(match config.backend.kind {
        BackendKind::Local => {
            let local = LocalBackend::new(
                config.backend.local.clone(),
                event_logs,
                &config.data_dir,
                wake,
            );
            tracing::info!(
                master = %config.backend.local.master,
                max_running = config.backend.local.max_running,
                data_dir = %config.data_dir.display(),
                "backend: local ({})",
                local.describe_spark()
            );
            Arc::new(local)
        }
        BackendKind::Noop => {
            tracing::warn!("backend: noop (jobs succeed without running anything; for benchmarks)");
            Arc::new(NoopBackend)
        }
        BackendKind::Kubernetes => {
            let kube = &config.backend.kubernetes;
            let backend = KubernetesBackend::connect(kube, event_logs, wake)
                .await
                .context("connect the Kubernetes backend (backend.kubernetes in the config)")?;
            tracing::info!(
                kubeconfig = kube.kubeconfig.as_ref().map(|p| p.display().to_string()),
                context = kube.context.as_deref(),
                driver_service_account = %kube.driver_service_account,
                "backend: kubernetes (SparkApplications, spark.apache.org/v1)"
            );
            Arc::new(backend)
        }
    })
}

fn reconciler_settings(config: &Config) -> ReconcilerSettings {
    ReconcilerSettings {
        interval: Duration::from_millis(config.reconciler.interval_ms),
        resync: Duration::from_secs(config.reconciler.resync_seconds),
        retry_backoff: Duration::from_secs(config.reconciler.retry_backoff_seconds),
        max_retry_backoff: Duration::from_secs(config.reconciler.max_retry_backoff_seconds),
        orphans: OrphanSettings {
            policy: config.reconciler.orphan_policy,
            every: Duration::from_secs(config.reconciler.orphan_sweep_seconds),
            // A finished application is kept as long as the operator keeps its driver's log.
            keep_finished: Duration::from_secs(config.backend.kubernetes.failed_retain_seconds),
        },
        max_running_per_team: config.limits.max_running_jobs_per_team,
    }
}
