//! One Kubernetes cluster: its client, the watches that feed its status cache and driver-pod
//! index, and whether its API server answers. The backend routes each attempt to one of these.

use std::sync::Arc;
use std::time::Duration;

use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
};
use tokio_util::sync::CancellationToken;

use super::evidence;
use super::health::{self, Health};
use super::pods::{self, DriverPods};
use super::render::{self, RenderSettings};
use super::status;
use super::watch::{self, StatusCache};
use super::{FIELD_MANAGER, KubeRef};
use crate::backend::{
    AttemptRequest, AttemptStatus, BackendError, Ended, LogStream, Managed, ManagedServer,
    ServerStatus, SessionRequest, StopProgress,
};
use crate::config::ClusterConfig;
use crate::domain::{FailureClass, JobId, SessionId};
use crate::wake::Wake;

/// Where a driver serves its Spark UI (Spark's default `spark.ui.port`; sk8 does not move it).
pub(super) const SPARK_UI_PORT: u16 = 4040;

pub struct Cluster {
    pub name: String,
    client: kube::Client,
    /// For watches and followed logs: no request timeout.
    streams: kube::Client,
    resource: ApiResource,
    settings: RenderSettings,
    cache: Arc<StatusCache>,
    drivers: Arc<DriverPods>,
    pub health: Arc<Health>,
}

impl Cluster {
    /// Connects (kubeconfig or in-cluster) and starts the cluster's watches and health probe,
    /// which run until `stop`.
    pub async fn connect(
        config: &ClusterConfig,
        settings: RenderSettings,
        request_timeout: Duration,
        wake: Arc<Wake>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let mut client_config = client_config(config).await?;
        // kube retries 429/503/504 itself, for up to minutes; here the next reconcile turn is
        // the retry, and a turn must not stall on one request while the API server is down.
        client_config.default_retry = false;
        // Watches and followed logs may be quiet for minutes (kube-runtime's watcher has an
        // idle timeout of its own); every other request must answer within the timeout, or a
        // hung API server would stall a reconcile turn.
        let streams = kube::Client::try_from(client_config.clone())?;
        client_config.read_timeout = Some(request_timeout);
        client_config.write_timeout = Some(request_timeout);
        let client = kube::Client::try_from(client_config)?;
        let resource = ApiResource {
            group: "spark.apache.org".into(),
            version: "v1".into(),
            api_version: render::API_VERSION.into(),
            kind: render::KIND.into(),
            plural: "sparkapplications".into(),
        };
        let cache = Arc::new(StatusCache::default());
        let health = Arc::new(Health::new(&config.name));
        let watched = watch::Watched {
            cluster: config.name.clone(),
            cache: cache.clone(),
            health: health.clone(),
            wake: wake.clone(),
        };
        let all = Api::<DynamicObject>::all_with(streams.clone(), &resource);
        tokio::spawn(watch::run(all, watched, stop.clone()));
        let drivers = Arc::new(DriverPods::default());
        tokio::spawn(pods::run(
            Api::all(streams.clone()),
            drivers.clone(),
            stop.clone(),
        ));
        tokio::spawn(health::probe(
            client.clone(),
            health.clone(),
            wake,
            stop.clone(),
        ));
        Ok(Cluster {
            name: config.name.clone(),
            client,
            streams,
            resource,
            settings,
            cache,
            drivers,
            health,
        })
    }

    /// The cluster's API client for requests (cheap to clone), for namespace provisioning.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The client for watches and log streams, which have no request timeout.
    pub fn streams(&self) -> kube::Client {
        self.streams.clone()
    }

    pub async fn submit(&self, request: &AttemptRequest) -> Result<KubeRef, BackendError> {
        let manifest = render::spark_application(request, &self.settings);
        let (app, _) = self
            .apply(request.spec.namespace(), request.name(), &manifest)
            .await?;
        Ok(app)
    }

    /// Starts a session's Spark Connect server as its own SparkApplication, then the Secret
    /// with its token, owned by the application (the driver waits for the Secret to start).
    pub async fn server_start(&self, request: &SessionRequest) -> Result<KubeRef, BackendError> {
        let namespace = request.spec.namespace();
        let manifest = render::connect_server(request, &self.settings);
        let (app, uid) = self
            .apply(namespace.clone(), request.name(), &manifest)
            .await?;
        let secret = render::token_secret(request, &uid);
        let secrets: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &namespace,
            &ApiResource::erase::<Secret>(&()),
        );
        let params = PatchParams::apply(FIELD_MANAGER).force();
        secrets
            .patch(
                &render::token_secret_name(request),
                &params,
                &Patch::Apply(&secret),
            )
            .await
            .map_err(|err| self.submit_error(err, &namespace))?;
        Ok(app)
    }

    /// Server-side applies an application under sk8's field manager (applying the same one
    /// twice changes nothing); its reference and uid.
    async fn apply(
        &self,
        namespace: String,
        name: String,
        manifest: &serde_json::Value,
    ) -> Result<(KubeRef, String), BackendError> {
        let app = KubeRef {
            cluster: Some(self.name.clone()),
            namespace,
            name,
            route: None,
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = self
            .apps(&app.namespace)
            .patch(&app.name, &params, &Patch::Apply(manifest))
            .await
            .map_err(|err| self.submit_error(err, &app.namespace))?;
        tracing::info!(cluster = %self.name, namespace = %app.namespace, name = %app.name, "applied SparkApplication");
        Ok((app, applied.metadata.uid.unwrap_or_default()))
    }

    /// A session's server: the application's status, or ended when it is gone.
    pub async fn server_status(&self, app: &KubeRef) -> Result<ServerStatus, BackendError> {
        Ok(match self.current_status(app).await? {
            Some(status) => status::server_status(&status),
            None => ServerStatus::Ended {
                reason: format!(
                    "the SparkApplication {}/{} was deleted outside sk8",
                    app.namespace, app.name
                ),
                stopped_by_sk8: false,
            },
        })
    }

    pub async fn status(&self, app: &KubeRef) -> Result<AttemptStatus, BackendError> {
        let Some(status) = self.current_status(app).await? else {
            return Ok(AttemptStatus::Failed {
                class: FailureClass::Infrastructure,
                reason: format!(
                    "the SparkApplication {}/{} was deleted outside sk8",
                    app.namespace, app.name
                ),
            });
        };
        Ok(self.with_driver(status::attempt_status(&status), &status, app))
    }

    /// Deletes an application (`why` is logged); gone once the API server no longer has it.
    pub async fn stop(&self, app: &KubeRef, why: &str) -> Result<StopProgress, BackendError> {
        let apps = self.apps(&app.namespace);
        match apps
            .get_opt(&app.name)
            .await
            .map_err(|e| self.transient(e))?
        {
            None => Ok(StopProgress::Gone),
            Some(object) if object.metadata.deletion_timestamp.is_some() => {
                Ok(StopProgress::Stopping)
            }
            Some(_) => {
                tracing::info!(cluster = %self.name, namespace = %app.namespace, name = %app.name, why, "deleting SparkApplication");
                match apps.delete(&app.name, &DeleteParams::background()).await {
                    Ok(_) => Ok(StopProgress::Stopping),
                    Err(err) if api_code(&err) == Some(404) => Ok(StopProgress::Gone),
                    Err(err) => Err(self.transient(err)),
                }
            }
        }
    }

    pub async fn logs(&self, app: &KubeRef, follow: bool) -> Result<LogStream, BackendError> {
        let pods: Api<Pod> = Api::namespaced(self.streams.clone(), &app.namespace);
        let Some(pod) = self.driver_pod(&pods, app).await? else {
            return Err(BackendError::NotFound(format!(
                "the driver pod of {}/{} is gone: the operator removes it once the application \
                 ends (failed ones are kept for backend.kubernetes.failedRetainSeconds)",
                app.namespace, app.name
            )));
        };
        let params = LogParams {
            follow,
            ..LogParams::default()
        };
        let reader = pods
            .log_stream(&pod, &params)
            .await
            .map_err(|e| self.transient(e))?;
        Ok(bytes_of(reader))
    }

    /// Evidence of an ended application's pods and its failed executors' log tails, read while
    /// the operator retains them; the application id is sk8's deterministic one.
    pub async fn ended(&self, app: &KubeRef) -> Ended {
        let pods: Api<Pod> = Api::namespaced(self.streams.clone(), &app.namespace);
        let events: Api<Event> = Api::namespaced(self.client.clone(), &app.namespace);
        let gathered = evidence::gather(&pods, &events, &app.name).await;
        Ended {
            app_id: Some(crate::record::confs::app_id(&app.name)),
            evidence: gathered.evidence,
            executor_tails: gathered.tails,
        }
    }

    /// Every sk8 application the watch knows of in this cluster.
    pub fn managed(&self) -> Vec<Managed> {
        self.cache.view_all(|(namespace, name), seen| {
            let job_id = JobId::parse(seen.job_id.as_deref()?)?;
            let app = KubeRef {
                cluster: Some(self.name.clone()),
                namespace: namespace.clone(),
                name: name.clone(),
                route: None,
            };
            Some(Managed {
                job_id,
                attempt: seen.attempt?,
                backend_ref: serde_json::to_value(app).expect("a KubeRef serializes"),
                finished: seen.finished,
            })
        })
    }

    /// Every session server the watch has seen on this cluster.
    pub fn managed_servers(&self) -> Vec<ManagedServer> {
        self.cache.view_all(|(namespace, name), seen| {
            let app = KubeRef {
                cluster: Some(self.name.clone()),
                namespace: namespace.clone(),
                name: name.clone(),
                route: None,
            };
            Some(ManagedServer {
                session_id: SessionId::parse(seen.session_id.as_deref()?)?,
                start: seen.session_start?,
                backend_ref: serde_json::to_value(app).expect("a KubeRef serializes"),
            })
        })
    }

    /// Submission failures the job can do nothing about fail the attempt; the rest are retried
    /// by the next reconcile turn.
    fn submit_error(&self, err: kube::Error, namespace: &str) -> BackendError {
        let rejected = |reason: String| BackendError::Rejected {
            class: FailureClass::Configuration,
            reason,
        };
        let cluster = &self.name;
        match api_code(&err) {
            Some(404) => rejected(format!(
                "namespace {namespace} does not exist on cluster {cluster}: a platform admin must \
                 create it (with its Spark driver ServiceAccount) and have the Spark operator watch it"
            )),
            Some(403) if err.to_string().contains("exceeded quota") => rejected(format!(
                "a ResourceQuota of {namespace} on cluster {cluster} refused the \
                 SparkApplication ({err}); it fits again once the namespace's other applications \
                 end or the quota is raised"
            )),
            Some(403) => rejected(format!(
                "sk8 may not create SparkApplications in {namespace} on cluster {cluster}: check \
                 its RBAC ({err})"
            )),
            Some(400 | 409 | 415 | 422) => rejected(format!(
                "the API server of cluster {cluster} rejected the SparkApplication: {err}"
            )),
            _ => self.transient(err),
        }
    }

    /// A running attempt's Spark UI (once the operator reports the driver's IP) and its driver
    /// pod's name (once the pod watch has seen it), in what the history records.
    fn with_driver(
        &self,
        observed: AttemptStatus,
        status: &serde_json::Value,
        app: &KubeRef,
    ) -> AttemptStatus {
        let AttemptStatus::Running { detail, .. } = observed else {
            return observed;
        };
        let ip = status::driver_ip(status);
        let detail = match self.drivers.get(&app.key()) {
            Some(pod) => format!("{detail} (driver pod {pod})"),
            None => detail,
        };
        AttemptStatus::Running {
            spark_ui_url: ip.map(|ip| format!("http://{ip}:{SPARK_UI_PORT}")),
            detail,
        }
    }

    /// An application's driver pod: from the pod watch, else found once by the operator's
    /// labels (the watch may not have seen a brand-new pod yet).
    async fn driver_pod(
        &self,
        pods: &Api<Pod>,
        app: &KubeRef,
    ) -> Result<Option<String>, BackendError> {
        if let Some(name) = self.drivers.get(&app.key()) {
            return Ok(Some(name));
        }
        let selector = format!("spark-role=driver,{}={}", pods::APP_NAME_LABEL, app.name);
        let found = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.transient(e))?;
        Ok(found
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .next_back())
    }

    /// A failure the next turn retries; an outage also marks the cluster's API down.
    fn transient(&self, err: kube::Error) -> BackendError {
        let why = health::describe(&err);
        if health::is_outage(&err) {
            self.health.mark_down(why.clone());
        }
        BackendError::Transient(format!("Kubernetes API of cluster {}: {why}", self.name))
    }

    fn apps(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &self.resource)
    }

    /// The application's status from the watch, or read once when the watch has not seen it.
    async fn current_status(
        &self,
        app: &KubeRef,
    ) -> Result<Option<serde_json::Value>, BackendError> {
        if let Some(status) = self.cache.get(&app.key()) {
            return Ok(Some(status));
        }
        let found = self
            .apps(&app.namespace)
            .get_opt(&app.name)
            .await
            .map_err(|e| self.transient(e))?;
        Ok(found.map(|object| object.data.get("status").cloned().unwrap_or_default()))
    }
}

async fn client_config(config: &ClusterConfig) -> anyhow::Result<kube::Config> {
    use anyhow::Context;
    let options = kube::config::KubeConfigOptions {
        context: config.context.clone(),
        ..Default::default()
    };
    let cluster = &config.name;
    match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).with_context(|| {
                format!("cluster {cluster}: read kubeconfig {}", path.display())
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("cluster {cluster}: use kubeconfig {}", path.display()))
        }
        None if config.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .with_context(|| format!("cluster {cluster}: use the default kubeconfig")),
        None => kube::Config::infer()
            .await
            .with_context(|| format!("cluster {cluster}: no in-cluster config and no kubeconfig")),
    }
}

/// A byte stream over a buffered reader, chunk by chunk as the API server sends them.
fn bytes_of(reader: impl futures::AsyncBufRead + Send + Unpin + 'static) -> LogStream {
    Box::pin(futures::stream::unfold(reader, |mut reader| async move {
        match reader.fill_buf().await {
            Ok([]) => None,
            Ok(chunk) => {
                let bytes = bytes::Bytes::copy_from_slice(chunk);
                reader.consume_unpin(bytes.len());
                Some((Ok(bytes), reader))
            }
            Err(err) => Some((Err(err), reader)),
        }
    }))
}

fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
