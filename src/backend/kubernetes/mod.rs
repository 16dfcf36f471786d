//! The Kubernetes backend: each attempt becomes a `spark.apache.org/v1` SparkApplication for the
//! Apache Spark Kubernetes Operator in the team's namespace `sjns-<team>-<env>`, on the cluster
//! the team is routed to.
//!
//! - routing: `backend.kubernetes.clusters` lists clusters with the teams (or `team/env`) they
//!   serve, `routes` the teams that may run on several, in order of preference; the rest go to
//!   the default cluster ([`Routes`]). New work goes to the first of a team's clusters whose
//!   API answers, and the attempt records why a preferred one was passed over. One cluster is
//!   the usual case;
//! - submit: server-side apply of the rendered manifest ([`render`]) under sk8's field manager,
//!   so submitting the same attempt twice changes nothing;
//! - status: read from a cache fed by one watch per cluster over all sk8-managed applications
//!   ([`watch`]), mapped to sk8's view by [`status`]; an application the watch has not seen yet
//!   is read once;
//! - stop: delete the application; it is gone when the API server no longer has it;
//! - logs: the driver pod's log, found by the operator's labels, streamed from the API server;
//! - sessions: a session's Spark Connect server is an application of its own
//!   ([`render::connect_server`]), READY once the operator reports its driver ready (the
//!   readiness probe on port 15002 passed), at the driver pod's IP; stopping deletes it.
//!
//! No state of its own: the attempt's [`BackendRef`] names the cluster and the application.

mod cluster;
pub mod evidence;
mod health;
pub mod namespaces;
mod pods;
pub mod render;
pub mod status;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use self::cluster::Cluster;
use self::render::RenderSettings;
use super::{
    AttemptRequest, AttemptStatus, Backend, BackendError, BackendRef, Ended, LogStream, Managed,
    ManagedServer, NoCapacity, ServerStatus, SessionRequest, StopProgress, StopReason,
};
use crate::backend::namespaces::{NamespaceChanges, Provisioner};
use crate::config::{KubernetesConfig, NamespacesConfig};
use crate::domain::{FailureClass, JobSpec};
use crate::record::confs::EventLogSettings;
use crate::wake::Wake;

/// The field manager of every object sk8 applies.
pub const FIELD_MANAGER: &str = "sk8";

/// The backend's handle on an attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KubeRef {
    /// Absent in references written before sk8 knew several clusters: the default cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    namespace: String,
    name: String,
    /// Why this cluster was chosen over a preferred one (routing around a cluster that is down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    route: Option<String>,
}

impl KubeRef {
    fn parse(value: &BackendRef) -> Result<Self, BackendError> {
        serde_json::from_value(value.clone())
            .map_err(|e| BackendError::NotFound(format!("not a Kubernetes attempt reference: {e}")))
    }

    fn key(&self) -> watch::AppKey {
        (self.namespace.clone(), self.name.clone())
    }
}

/// Which clusters serve a team (and env), in order of preference.
#[derive(Clone, Debug)]
struct Routes {
    /// `team/env` or `team` → indexes into the clusters.
    by_key: HashMap<String, Vec<usize>>,
    default: usize,
}

impl Routes {
    fn of(config: &KubernetesConfig) -> Self {
        let clusters = config.clusters();
        let index = |name: &String| clusters.iter().position(|c| &c.name == name);
        let mut by_key: HashMap<String, Vec<usize>> = clusters
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.teams.iter().map(move |key| (key.clone(), vec![i])))
            .collect();
        for (key, names) in &config.routes {
            by_key.insert(key.clone(), names.iter().filter_map(index).collect());
        }
        let default = config.default_cluster.as_ref().and_then(index).unwrap_or(0);
        Routes { by_key, default }
    }

    /// The most specific route: `team/env`, then `team`, then the default cluster.
    fn clusters_for(&self, team: &str, env: &str) -> &[usize] {
        let exact = format!("{team}/{env}");
        self.by_key
            .get(&exact)
            .or_else(|| self.by_key.get(team))
            .map_or(std::slice::from_ref(&self.default), Vec::as_slice)
    }
}

pub struct KubernetesBackend {
    clusters: Vec<Cluster>,
    routes: Routes,
    stop_watch: CancellationToken,
    driver_service_account: String,
}

impl KubernetesBackend {
    /// Connects to every configured cluster and starts their watches.
    pub async fn connect(
        config: &KubernetesConfig,
        event_logs: EventLogSettings,
        wake: Arc<Wake>,
    ) -> anyhow::Result<Self> {
        let stop_watch = CancellationToken::new();
        let settings = RenderSettings {
            driver_service_account: config.driver_service_account.clone(),
            failed_retain_seconds: config.failed_retain_seconds,
            event_logs,
        };
        let request_timeout = Duration::from_secs(config.request_timeout_seconds);
        let mut clusters = Vec::new();
        for cluster in config.clusters() {
            clusters.push(
                Cluster::connect(
                    &cluster,
                    settings.clone(),
                    request_timeout,
                    wake.clone(),
                    &stop_watch,
                )
                .await?,
            );
        }
        Ok(KubernetesBackend {
            clusters,
            routes: Routes::of(config),
            stop_watch,
            driver_service_account: config.driver_service_account.clone(),
        })
    }

    /// The cluster an attempt lives on; `None` when its cluster is no longer configured.
    fn cluster_of(&self, app: &KubeRef) -> Option<&Cluster> {
        match &app.cluster {
            None => self.clusters.get(self.routes.default),
            Some(name) => self.clusters.iter().find(|c| &c.name == name),
        }
    }

    /// The cluster for new work of a team environment: the first of its clusters whose API
    /// answers (else the first), and why a preferred one was passed over.
    fn cluster_serving(&self, team: &str, env: &str) -> (&Cluster, Option<String>) {
        self.cluster_avoiding(team, env, None)
    }

    /// As [`Self::cluster_serving`], passing over `avoid` too (the cluster a rerouted attempt
    /// failed on) while another of the team's clusters can take the work.
    fn cluster_avoiding(
        &self,
        team: &str,
        env: &str,
        avoid: Option<&str>,
    ) -> (&Cluster, Option<String>) {
        let candidates = self.routes.clusters_for(team, env);
        let avoided = |i: usize| Some(self.clusters[i].name.as_str()) == avoid;
        let mut passed = Vec::new();
        let mut order: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| !avoided(i))
            .collect();
        if order.is_empty() {
            // The team has no other cluster: the reroute is a retry where it failed.
            order = candidates.to_vec();
            passed.push(format!(
                "no other cluster serves {team}/{env}, so the rerouted attempt stays on cluster {}",
                avoid.unwrap_or_default()
            ));
        } else if let Some(name) = avoid.filter(|_| order.len() < candidates.len()) {
            passed.push(format!(
                "rerouted away from cluster {name}, where the previous attempt failed"
            ));
        }
        for &i in &order {
            let cluster = &self.clusters[i];
            match cluster.health.down() {
                None => return (cluster, (!passed.is_empty()).then(|| passed.join("; "))),
                Some(reason) => passed.push(format!("cluster {} is down ({reason})", cluster.name)),
            }
        }
        (&self.clusters[order[0]], None)
    }

    fn gone_cluster(app: &KubeRef) -> String {
        format!(
            "the SparkApplication {}/{} is on cluster {}, which is no longer in \
             backend.kubernetes.clusters",
            app.namespace,
            app.name,
            app.cluster.as_deref().unwrap_or("?")
        )
    }
}

#[async_trait]
impl Backend for KubernetesBackend {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    /// A job waits while the API servers of all its clusters are unreachable; jobs of other
    /// clusters go on.
    fn capacity(&self, spec: &JobSpec) -> Result<(), NoCapacity> {
        let (cluster, _) = self.cluster_serving(spec.team.as_str(), spec.env.as_str());
        match cluster.health.down() {
            Some(reason) => Err(NoCapacity {
                reason: format!(
                    "the Kubernetes API of cluster {} is unavailable ({reason})",
                    cluster.name
                ),
                everywhere: self.clusters.iter().all(|c| c.health.down().is_some()),
            }),
            None => Ok(()),
        }
    }

    /// Starting is a server-side apply each, and the API server takes many at once.
    fn start_concurrency(&self) -> usize {
        16
    }

    /// The watch names the job of every application whose status changes.
    fn announces_changes(&self) -> bool {
        true
    }

    async fn submit(&self, request: &AttemptRequest) -> Result<BackendRef, BackendError> {
        let spec = &request.spec;
        let avoid = request.avoid.as_ref().and_then(|r| KubeRef::parse(r).ok());
        let avoid = avoid.as_ref().and_then(|app| self.cluster_of(app));
        let avoid = avoid.map(|cluster| cluster.name.as_str());
        let (cluster, route) = self.cluster_avoiding(spec.team.as_str(), spec.env.as_str(), avoid);
        let mut app = cluster.submit(request).await?;
        if let Some(route) = &route {
            tracing::info!(job_id = %request.job_id, cluster = %cluster.name, %route, "routed around a preferred cluster");
        }
        app.route = route;
        Ok(serde_json::to_value(app).expect("a KubeRef serializes"))
    }

    async fn status(&self, attempt: &BackendRef) -> Result<AttemptStatus, BackendError> {
        let app = KubeRef::parse(attempt)?;
        match self.cluster_of(&app) {
            Some(cluster) => cluster.status(&app).await,
            None => Ok(AttemptStatus::Failed {
                class: FailureClass::Infrastructure,
                reason: Self::gone_cluster(&app),
            }),
        }
    }

    async fn stop(
        &self,
        attempt: &BackendRef,
        why: StopReason,
    ) -> Result<StopProgress, BackendError> {
        let app = KubeRef::parse(attempt)?;
        match self.cluster_of(&app) {
            Some(cluster) => cluster.stop(&app, why.as_str()).await,
            // Nothing sk8 can reach is left running.
            None => Ok(StopProgress::Gone),
        }
    }

    async fn server_start(&self, request: &SessionRequest) -> Result<BackendRef, BackendError> {
        let spec = &request.spec;
        let (cluster, route) = self.cluster_serving(spec.team.as_str(), spec.env.as_str());
        if let Some(reason) = cluster.health.down() {
            return Err(BackendError::Transient(format!(
                "the Kubernetes API of cluster {} is unavailable ({reason})",
                cluster.name
            )));
        }
        let mut app = cluster.server_start(request).await?;
        app.route = route;
        Ok(serde_json::to_value(app).expect("a KubeRef serializes"))
    }

    async fn server_status(&self, server: &BackendRef) -> Result<ServerStatus, BackendError> {
        let app = KubeRef::parse(server)?;
        match self.cluster_of(&app) {
            Some(cluster) => cluster.server_status(&app).await,
            None => Ok(ServerStatus::Ended {
                reason: Self::gone_cluster(&app),
                stopped_by_sk8: false,
            }),
        }
    }

    /// Session servers are Apache Spark drivers: their UI is on the driver pod, beside the
    /// Connect port.
    async fn server_ui(&self, _server: &BackendRef, endpoint: &str) -> Option<String> {
        let (ip, _) = endpoint.rsplit_once(':')?;
        Some(format!("http://{ip}:{}", cluster::SPARK_UI_PORT))
    }

    async fn server_stop(&self, server: &BackendRef) -> Result<StopProgress, BackendError> {
        let app = KubeRef::parse(server)?;
        match self.cluster_of(&app) {
            Some(cluster) => cluster.stop(&app, "the session stopped").await,
            None => Ok(StopProgress::Gone),
        }
    }

    async fn logs(&self, attempt: &BackendRef, follow: bool) -> Result<LogStream, BackendError> {
        let app = KubeRef::parse(attempt)?;
        match self.cluster_of(&app) {
            Some(cluster) => cluster.logs(&app, follow).await,
            None => Err(BackendError::NotFound(Self::gone_cluster(&app))),
        }
    }

    /// sk8 sets `spark.app.id` to the application's name.
    fn app_id(&self, attempt: &BackendRef) -> Option<String> {
        let app = KubeRef::parse(attempt).ok()?;
        Some(crate::record::confs::app_id(&app.name))
    }

    async fn ended(&self, attempt: &BackendRef) -> Ended {
        let Ok(app) = KubeRef::parse(attempt) else {
            return Ended::default();
        };
        match self.cluster_of(&app) {
            Some(cluster) => cluster.ended(&app).await,
            None => {
                let mut ended = Ended::default();
                ended.evidence.gaps.push(Self::gone_cluster(&app));
                ended
            }
        }
    }

    async fn release(&self, attempt: &BackendRef) -> Result<StopProgress, BackendError> {
        let app = KubeRef::parse(attempt)?;
        match self.cluster_of(&app) {
            Some(cluster) => cluster.stop(&app, "its run is recorded").await,
            None => Ok(StopProgress::Gone),
        }
    }

    async fn managed(&self) -> Result<Vec<Managed>, BackendError> {
        Ok(self.clusters.iter().flat_map(Cluster::managed).collect())
    }

    async fn managed_servers(&self) -> Result<Vec<ManagedServer>, BackendError> {
        Ok(self
            .clusters
            .iter()
            .flat_map(Cluster::managed_servers)
            .collect())
    }

    fn provisioner(
        &self,
        config: &NamespacesConfig,
        changes: &Arc<NamespaceChanges>,
    ) -> Option<Arc<dyn Provisioner>> {
        let clusters = self
            .clusters
            .iter()
            .map(|c| namespaces::ClusterClient {
                name: c.name.clone(),
                client: c.client(),
                streams: c.streams(),
            })
            .collect();
        let settings = namespaces::render::NamespaceSettings {
            namespaces: config.clone(),
            driver_service_account: self.driver_service_account.clone(),
        };
        Some(Arc::new(namespaces::KubeProvisioner::new(
            clusters,
            self.routes.clone(),
            settings,
            changes,
            &self.stop_watch,
        )))
    }

    async fn shutdown(&self) {
        self.stop_watch.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_prefer_team_env_then_team_then_the_default() {
        let config: KubernetesConfig = serde_json::from_value(serde_json::json!({
            "clusters": [
                {"name": "east", "kubeconfig": "/k/east", "teams": ["payments"]},
                {"name": "west", "kubeconfig": "/k/west", "teams": ["payments/prod", "risk"]},
                {"name": "central", "kubeconfig": "/k/central"},
            ],
            "defaultCluster": "central",
        }))
        .expect("a config");
        let routes = Routes::of(&config);
        let name = |team, env| {
            config.clusters()[routes.clusters_for(team, env)[0]]
                .name
                .clone()
        };
        assert_eq!(name("payments", "dev"), "east");
        assert_eq!(name("payments", "prod"), "west");
        assert_eq!(name("risk", "dev"), "west");
        assert_eq!(name("growth", "dev"), "central");
    }

    #[test]
    fn a_route_lists_its_clusters_in_order_of_preference() {
        let config: KubernetesConfig = serde_json::from_value(serde_json::json!({
            "clusters": [
                {"name": "east", "kubeconfig": "/k/east"},
                {"name": "west", "kubeconfig": "/k/west", "teams": ["risk"]},
            ],
            "routes": {"payments": ["west", "east"]},
        }))
        .expect("a config");
        let routes = Routes::of(&config);
        assert_eq!(routes.clusters_for("payments", "dev"), &[1, 0]);
        assert_eq!(routes.clusters_for("risk", "dev"), &[1]);
        assert_eq!(routes.clusters_for("growth", "dev"), &[0]);
    }
}
