//! A fake Apache Spark Kubernetes Operator. It watches SparkApplications (through the store's
//! own watch, like a real controller), and walks each new one through the states the real
//! operator reports, one step per [`OperatorOptions::step`]:
//!
//! `Submitted → DriverRequested → DriverStarted → DriverReady → RunningHealthy → Succeeded →
//! ResourceReleased`, writing `status.currentState` and `status.stateTransitionHistory`
//! (keys "0", "1", …) through the status subresource, and a driver pod `<app>-0-driver`
//! (labels `spark-role=driver`, `spark.operator/spark-app-name=<app>`, owned by the app,
//! `status.podIP` 127.0.0.N) that goes Pending → Running → Ready → Succeeded, with a log.
//!
//! Annotations on the SparkApplication steer it (a label of the same key works too, so a
//! caller that can only set labels can still choose; the annotation wins):
//! - `fake.sk8.dev/outcome`: `Succeeded` (default), `Running` (never finishes; the default
//!   for a `SparkConnectServer` main class), `Failed`, `OOMKilled` (driver container
//!   terminated `OOMKilled`, app `Failed`), `SchedulingFailure`, `DriverStartTimedOut`,
//!   `DriverReadyTimedOut`, `ExecutorsStartTimedOut`, `DriverEvicted`;
//! - `fake.sk8.dev/pod-ip`: the driver's pod IP (so a test can run a real Spark Connect
//!   server on it); `fake.sk8.dev/driver-log`: text the driver logs while running;
//! - `fake.sk8.dev/step-ms`: this app's step delay;
//! - `fake.sk8.dev/executors`: executor pods to create when the driver is ready, a list (split
//!   at `,` or `.`: label values allow no commas) of how each ends: `Completed`, `Error` (exit 1), `OOMKilled` (exit 137), `Evicted` (pod
//!   `reason: Evicted`, a `DisruptionTarget` condition) or `ImagePullBackOff` (left waiting, with
//!   `Failed`/`BackOff` Events), `HeapOOM` (exit 52, a JVM OOM in its log), `ContainerOOM`
//!   (`OOMKilled` 137 without a JVM OOM), `Preempted` (`DisruptionTarget`
//!   `PreemptionByScheduler`), `ImageNotFound` (waiting `ErrImagePull`, the registry says not
//!   found) or `InvalidImageName`. Each is `<app>-exec-<n>` (labels `spark-role=executor`,
//!   `spark.operator/spark-app-name=<app>` and the app's executor labels) with a log;
//! - `fake.sk8.dev/needs-executor-memory`: a size (`6g`): while the application's
//!   `spark.executor.memory` is below it, it fails with one executor ending `HeapOOM` — a job
//!   that needs that much heap.
//!
//! With [`OperatorOptions::connect_server`] set, a `SparkConnectServer` application's driver
//! is a real Spark Connect server process (Sail, say) listening on the driver's pod IP and port
//! 15002, as in a cluster: its pod becomes Ready only once that port accepts connections (the
//! readiness probe sk8 asks for), and the process is killed when the application goes.
//!
//! After a terminal state the app ends `ResourceReleased` (its pods deleted), or
//! `TerminatedWithoutReleaseResources` when `spec.applicationTolerations.resourceRetainPolicy`
//! is `Always`, or `OnFailure` and the app failed. Pods left when the application is deleted
//! are deleted with it, as Kubernetes' garbage collector would (they are owned by it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::meta;
use crate::resources::{ResourceKind, lookup};
use crate::selectors::Selector;
use crate::store::{Patch, Store, Target, WatchStart, WriteOptions};
use crate::watch::{EventType, WatchItem, WatchTiming};

/// The field manager of every write the operator makes.
pub const MANAGER: &str = "spark-kubernetes-operator";
const OUTCOME: &str = "fake.sk8.dev/outcome";
const POD_IP: &str = "fake.sk8.dev/pod-ip";
const DRIVER_LOG: &str = "fake.sk8.dev/driver-log";
const STEP_MS: &str = "fake.sk8.dev/step-ms";
const EXECUTORS: &str = "fake.sk8.dev/executors";
const NEEDS_EXECUTOR_MEMORY: &str = "fake.sk8.dev/needs-executor-memory";

/// How the fake operator behaves.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// Delay before each state transition.
    pub step: Duration,
    /// Namespaces it acts in; None means all. (The real operator watches only the namespaces
    /// it is configured for, `default` unless told otherwise.)
    pub namespaces: Option<Vec<String>>,
    /// The command that runs a Spark Connect server for a `SparkConnectServer` application
    /// (program, then arguments; `{ip}` and `{port}` are replaced by the driver's pod IP and
    /// 15002). None: such applications only pretend to run.
    pub connect_server: Option<Vec<String>>,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        OperatorOptions {
            step: Duration::from_millis(200),
            namespaces: None,
            connect_server: None,
        }
    }
}

/// The port a Spark Connect server listens on in its driver pod.
const CONNECT_PORT: u16 = 15002;
/// How long a driver's Spark Connect server may take to accept connections before the
/// application fails `DriverReadyTimedOut`.
const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(120);

fn spark() -> &'static ResourceKind {
    lookup("spark.apache.org", "v1", "sparkapplications")
        .expect("SparkApplications are served")
        .0
}

fn pods() -> &'static ResourceKind {
    lookup("", "v1", "pods").expect("pods are served").0
}

fn events() -> &'static ResourceKind {
    lookup("", "v1", "events").expect("events are served").0
}

/// Runs until `shutdown`: every SparkApplication that appears without a status gets a task
/// that drives it.
pub async fn run(store: Arc<Store>, options: OperatorOptions, shutdown: CancellationToken) {
    let all = Target::collection(spark(), None);
    let start = WatchStart::Current {
        end_bookmark: false,
    };
    let watch = store.watch(
        &all,
        Selector::default(),
        start,
        &WatchTiming::default(),
        shutdown.clone(),
    );
    let Ok(mut watch) = watch else { return };
    let pod_ips = Arc::new(AtomicU32::new(0));
    while let Some(item) = watch.next().await {
        let WatchItem::Event(EventType::Added, app) = item else {
            continue;
        };
        let namespace = app["metadata"]["namespace"].as_str().unwrap_or_default();
        let watched = options
            .namespaces
            .as_ref()
            .is_none_or(|n| n.iter().any(|n| n == namespace));
        if watched && app.get("status").is_none() {
            let driver = Driver::new(store.clone(), &app, &options, &pod_ips);
            tokio::spawn(driver.run(shutdown.clone()));
        }
    }
}

/// One state change: the summary, its message, and what happens to the driver pod first.
struct Step {
    state: &'static str,
    message: &'static str,
    pod: Option<PodChange>,
}

#[derive(Clone, Copy)]
enum PodChange {
    Create,
    Start,
    Ready,
    Terminate {
        phase: &'static str,
        reason: &'static str,
        exit_code: i32,
    },
}

const fn step(state: &'static str, message: &'static str, pod: Option<PodChange>) -> Step {
    Step {
        state,
        message,
        pod,
    }
}

const SUBMITTED: Step = step(
    "Submitted",
    "Spark application has been created on Kubernetes Cluster.",
    None,
);
const REQUESTED: Step = step(
    "DriverRequested",
    "Requested driver from resource scheduler.",
    Some(PodChange::Create),
);
const STARTED: Step = step(
    "DriverStarted",
    "Driver has started running.",
    Some(PodChange::Start),
);
const READY: Step = step(
    "DriverReady",
    "Driver has reached ready state.",
    Some(PodChange::Ready),
);
const HEALTHY: Step = step("RunningHealthy", "Application is running healthy.", None);

const fn terminate(phase: &'static str, reason: &'static str, exit_code: i32) -> Option<PodChange> {
    Some(PodChange::Terminate {
        phase,
        reason,
        exit_code,
    })
}

/// The states of an outcome before release; None for an unknown outcome.
fn steps(outcome: &str) -> Option<Vec<Step>> {
    let running = || vec![SUBMITTED, REQUESTED, STARTED, READY, HEALTHY];
    let ending = |last: Step| {
        let mut all = running();
        all.push(last);
        all
    };
    Some(match outcome {
        "Succeeded" => ending(step(
            "Succeeded",
            "Spark application completed successfully.",
            terminate("Succeeded", "Completed", 0),
        )),
        "Running" => running(),
        "Failed" => ending(step(
            "Failed",
            "Spark application failed: driver exited with code 1.",
            terminate("Failed", "Error", 1),
        )),
        "OOMKilled" => ending(step(
            "Failed",
            "Driver container terminated with reason OOMKilled.",
            terminate("Failed", "OOMKilled", 137),
        )),
        "DriverEvicted" => ending(step(
            "DriverEvicted",
            "Driver pod was evicted.",
            terminate("Failed", "Evicted", 137),
        )),
        "SchedulingFailure" => vec![
            SUBMITTED,
            step(
                "SchedulingFailure",
                "Failed to request driver from scheduler backend.",
                None,
            ),
        ],
        "DriverStartTimedOut" => vec![
            SUBMITTED,
            REQUESTED,
            step("DriverStartTimedOut", "Driver did not start in time.", None),
        ],
        "DriverReadyTimedOut" => vec![
            SUBMITTED,
            REQUESTED,
            STARTED,
            step(
                "DriverReadyTimedOut",
                "Driver did not become ready in time.",
                None,
            ),
        ],
        "ExecutorsStartTimedOut" => {
            vec![
                SUBMITTED,
                REQUESTED,
                STARTED,
                READY,
                step(
                    "ExecutorsStartTimedOut",
                    "Executors did not start in time.",
                    None,
                ),
            ]
        }
        _ => return None,
    })
}

/// A `fake.sk8.dev/*` setting: the annotation, else the label.
fn setting(app: &Value, key: &str) -> Option<String> {
    ["annotations", "labels"]
        .iter()
        .find_map(|map| app["metadata"][map].get(key).and_then(Value::as_str))
        .map(str::to_string)
}

/// The labels an application asks for on its pods (`spark.kubernetes.<role>.label.<key>`).
fn pod_labels(app: &Value, role: &str) -> serde_json::Map<String, Value> {
    let prefix = format!("spark.kubernetes.{role}.label.");
    app.pointer("/spec/sparkConf")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.strip_prefix(&prefix)?.to_owned(), value.clone())))
        .collect()
}

/// Drives one application.
struct Driver {
    store: Arc<Store>,
    app: Target,
    uid: String,
    name: String,
    driver_log: Option<String>,
    outcome: String,
    retain: String,
    image: String,
    service_account: Option<String>,
    /// `spark.kubernetes.driver.label.*` confs: Spark puts them on the driver pod.
    pod_labels: serde_json::Map<String, Value>,
    /// `spark.kubernetes.executor.label.*` confs, for executor pods.
    executor_labels: serde_json::Map<String, Value>,
    /// How each executor ends (`fake.sk8.dev/executors`).
    executors: Vec<String>,
    /// The application's pods outlive its end (retained): they go when it is deleted.
    retained: bool,
    pod_ip: String,
    step: Duration,
    written: usize,
    /// The Spark Connect server command, for a `SparkConnectServer` application.
    server_command: Option<Vec<String>>,
    /// The running server; killed when the driver task ends (the application is gone).
    server: Option<tokio::process::Child>,
}

impl Driver {
    fn new(store: Arc<Store>, app: &Value, options: &OperatorOptions, pod_ips: &AtomicU32) -> Self {
        let text = |pointer: &str| {
            app.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let note = |key: &str| setting(app, key);
        let connect_server =
            text("/spec/mainClass").is_some_and(|c| c.ends_with("SparkConnectServer"));
        let default_outcome = if connect_server {
            "Running"
        } else {
            "Succeeded"
        };
        let name = text("/metadata/name").unwrap_or_default();
        let conf = |key: &str| {
            app.pointer("/spec/sparkConf")
                .and_then(|c| c.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        // 127.0.0.2 … 127.0.0.254, then around again.
        let next_ip = || {
            format!(
                "127.0.0.{}",
                2 + pod_ips.fetch_add(1, Ordering::Relaxed) % 253
            )
        };
        let server_command = options.connect_server.clone().filter(|_| connect_server);
        let starved = note(NEEDS_EXECUTOR_MEMORY).is_some_and(|needed| {
            let has = conf("spark.executor.memory").unwrap_or_else(|| "1g".into());
            mebibytes(&has) < mebibytes(&needed)
        });
        // A real server needs its port free on the pod IP (other fakes may run beside this one).
        let pod_ip = note(POD_IP).unwrap_or_else(|| match server_command {
            Some(_) => (0..253)
                .map(|_| next_ip())
                .find(|ip| std::net::TcpListener::bind((ip.as_str(), CONNECT_PORT)).is_ok())
                .unwrap_or_else(next_ip),
            None => next_ip(),
        });
        Driver {
            app: Target::item(spark(), text("/metadata/namespace").as_deref(), &name),
            uid: text("/metadata/uid").unwrap_or_default(),
            outcome: match starved {
                true => "Failed".into(),
                false => note(OUTCOME).unwrap_or_else(|| default_outcome.to_string()),
            },
            retain: text("/spec/applicationTolerations/resourceRetainPolicy")
                .unwrap_or_else(|| "Never".into()),
            image: conf("spark.kubernetes.container.image")
                .unwrap_or_else(|| "apache/spark".into()),
            service_account: conf("spark.kubernetes.authenticate.driver.serviceAccountName"),
            pod_labels: pod_labels(app, "driver"),
            executor_labels: pod_labels(app, "executor"),
            executors: match starved {
                true => vec!["HeapOOM".into()],
                false => note(EXECUTORS)
                    .map(|list| {
                        list.split([',', '.'])
                            .map(|e| e.trim().to_owned())
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            retained: false,
            pod_ip,
            step: note(STEP_MS)
                .and_then(|ms| ms.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or(options.step),
            driver_log: note(DRIVER_LOG),
            name,
            store,
            written: 0,
            server_command,
            server: None,
        }
    }

    fn pod(&self) -> Target {
        Target::item(
            pods(),
            self.app.namespace.as_deref(),
            &format!("{}-0-driver", self.name),
        )
    }

    async fn run(mut self, shutdown: CancellationToken) {
        let Some(steps) = steps(&self.outcome) else {
            // A typo in a test's annotation: fail the app visibly, and still end it.
            if self.wait(&shutdown).await {
                self.transition("Failed", &format!("unknown {OUTCOME} {:?}", self.outcome));
            }
            if self.wait(&shutdown).await {
                self.release(true);
            }
            return;
        };
        let failed = steps
            .last()
            .is_some_and(|s| !matches!(s.state, "Succeeded" | "RunningHealthy"));
        let finishes = self.outcome != "Running";
        // A running application's pods stay until it is deleted.
        self.retained = !finishes;
        for step in &steps {
            if !self.wait(&shutdown).await {
                return;
            }
            match step.pod {
                Some(PodChange::Start) => self.start_server(),
                Some(PodChange::Ready) if !self.server_ready(&shutdown).await => {
                    self.transition(
                        "DriverReadyTimedOut",
                        "Driver did not become ready in time.",
                    );
                    if self.wait(&shutdown).await {
                        self.release(true);
                    }
                    return;
                }
                _ => {}
            }
            if let Some(change) = step.pod {
                self.change_pod(change);
            }
            if matches!(step.pod, Some(PodChange::Ready)) {
                self.create_executors();
            }
            self.transition(step.state, step.message);
        }
        if finishes && self.wait(&shutdown).await {
            self.release(failed);
        }
        // A real server runs until its application is deleted (dropping it kills it), and
        // retained pods stay as long.
        while (self.server.is_some() || self.retained) && self.wait(&shutdown).await {}
        if !shutdown.is_cancelled() {
            self.collect_pods();
        }
    }

    /// Deletes the pods of a deleted application (what the garbage collector does for pods
    /// owned by it); none are left after a release.
    fn collect_pods(&self) {
        let _ = self.store.delete(&self.pod(), &Default::default(), false);
        for n in 1..=self.executors.len() {
            let _ = self
                .store
                .delete(&self.executor(n), &Default::default(), false);
        }
    }

    fn executor(&self, n: usize) -> Target {
        Target::item(
            pods(),
            self.app.namespace.as_deref(),
            &format!("{}-exec-{n}", self.name),
        )
    }

    /// Creates the executor pods `fake.sk8.dev/executors` asks for, each in its end state.
    fn create_executors(&self) {
        for (i, outcome) in self.executors.iter().enumerate() {
            let target = self.executor(i + 1);
            let name = format!("{}-exec-{}", self.name, i + 1);
            let mut labels = self.executor_labels.clone();
            labels.insert("spark-role".into(), json!("executor"));
            labels.insert("spark.operator/spark-app-name".into(), json!(self.name));
            let body = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"name": "spark-kubernetes-executor", "image": self.image}],
                         "restartPolicy": "Never"},
            });
            let created = self.store.create(
                &Target {
                    name: None,
                    ..target.clone()
                },
                body,
                &WriteOptions::new(MANAGER),
            );
            if let Err(error) = created {
                tracing::warn!(%error, app = %self.name, "fake operator could not create an executor");
                continue;
            }
            let (status, log, events) = executor_end(outcome, &self.image);
            self.write(&target.clone().status(), json!({"status": status}));
            let _ = self.store.append_log(&target, &log);
            for (n, (reason, message)) in events.into_iter().enumerate() {
                self.event(&name, n, reason, &message);
            }
        }
    }

    /// A Warning Event about one of the application's pods.
    fn event(&self, pod: &str, n: usize, reason: &str, message: &str) {
        let body = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{pod}.{n}")},
            "involvedObject": {"kind": "Pod", "name": pod,
                               "namespace": self.app.namespace.clone().unwrap_or_default()},
            "reason": reason, "message": message, "type": "Warning", "count": 3,
            "source": {"component": "kubelet"},
        });
        let target = Target::collection(events(), self.app.namespace.as_deref());
        if let Err(error) = self
            .store
            .create(&target, body, &WriteOptions::new(MANAGER))
        {
            tracing::warn!(%error, app = %self.name, "fake operator could not record an Event");
        }
    }

    /// Starts the application's Spark Connect server on its pod IP, if it runs one.
    fn start_server(&mut self) {
        let Some(command) = &self.server_command else {
            return;
        };
        let port = CONNECT_PORT.to_string();
        let args: Vec<String> = command
            .iter()
            .map(|arg| arg.replace("{ip}", &self.pod_ip).replace("{port}", &port))
            .collect();
        let mut server = tokio::process::Command::new(&args[0]);
        server
            .args(&args[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        // Dropping kills it, but nothing is dropped when the fake's process is killed (a test
        // at its timeout): then the kernel does it. The thread that spawns it is a runtime
        // worker, which lives as long as the fake.
        // SAFETY: prctl is async-signal-safe; the closure runs in the child before exec.
        unsafe {
            server.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let spawned = server.spawn();
        match spawned {
            Ok(child) => self.server = Some(child),
            Err(error) => {
                tracing::warn!(%error, app = %self.name, "fake operator could not start the Spark Connect server")
            }
        }
    }

    /// The readiness probe: true once the server accepts connections on its port (at once for
    /// an application without a real server).
    async fn server_ready(&self, shutdown: &CancellationToken) -> bool {
        if self.server_command.is_none() {
            return true;
        }
        let deadline = Instant::now() + SERVER_READY_TIMEOUT;
        while Instant::now() < deadline && !shutdown.is_cancelled() {
            let address = (self.pod_ip.as_str(), CONNECT_PORT);
            if tokio::net::TcpStream::connect(address).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Sleeps one step; false when shutting down or the application is gone (or replaced).
    async fn wait(&self, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(self.step) => {}
        }
        let current = self.store.get(&self.app).ok();
        current.is_some_and(|app| app["metadata"]["uid"] == self.uid.as_str())
    }

    fn release(&mut self, failed: bool) {
        let retain = self.retain == "Always" || (self.retain == "OnFailure" && failed);
        self.retained = retain;
        if retain {
            self.transition(
                "TerminatedWithoutReleaseResources",
                "Spark application terminated; resources retained.",
            );
        } else {
            // The pods may never have existed (scheduling failures).
            self.collect_pods();
            self.transition(
                "ResourceReleased",
                "Resources for Spark application have been released.",
            );
        }
    }

    /// Writes the new state through the status subresource, appending to the history. Like the
    /// real operator, a state carries the driver pod's status as last observed (that is where
    /// an `OOMKilled` termination shows).
    fn transition(&mut self, state: &str, message: &str) {
        let mut entry = json!({"currentStateSummary": state, "lastTransitionTime": meta::now(), "message": message});
        if let Ok(pod) = self.store.get(&self.pod())
            && let Some(status) = pod.get("status")
        {
            entry["lastObservedDriverStatus"] = status.clone();
        }
        let patch = json!({"status": {
            "currentState": entry,
            "stateTransitionHistory": {self.written.to_string(): entry},
            "currentAttemptSummary": {"attemptInfo": {"id": 0}},
        }});
        self.written += 1;
        self.write(&self.app.clone().status(), patch);
    }

    fn write(&self, target: &Target, patch: Value) {
        if let Err(error) =
            self.store
                .patch(target, Patch::Merge(patch), &WriteOptions::new(MANAGER))
        {
            tracing::warn!(%error, app = %self.name, "fake operator write failed");
        }
    }

    fn change_pod(&self, change: PodChange) {
        let now = meta::now();
        let container = json!({"name": "spark-kubernetes-driver", "image": self.image});
        let status = match change {
            PodChange::Create => return self.create_pod(container),
            PodChange::Start => {
                self.log(&format!(
                    "INFO SparkContext: Running Spark application {}\n",
                    self.name
                ));
                json!({"phase": "Running", "podIP": self.pod_ip, "podIPs": [{"ip": self.pod_ip}], "hostIP": "127.0.0.1",
                       "startTime": now, "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [{"name": "spark-kubernetes-driver", "image": self.image, "ready": false,
                                               "restartCount": 0, "state": {"running": {"startedAt": now}}}]})
            }
            PodChange::Ready => {
                if let Some(text) = &self.driver_log {
                    self.log(text);
                }
                json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                       "containerStatuses": [{"name": "spark-kubernetes-driver", "image": self.image, "ready": true,
                                               "restartCount": 0, "state": {"running": {"startedAt": now}}}]})
            }
            PodChange::Terminate {
                phase,
                reason,
                exit_code,
            } => {
                self.log(&format!(
                    "INFO SparkContext: Driver finished: {reason} (exit code {exit_code})\n"
                ));
                let terminated =
                    json!({"exitCode": exit_code, "reason": reason, "finishedAt": now});
                let mut status = json!({"phase": phase, "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [{"name": "spark-kubernetes-driver", "image": self.image, "ready": false,
                                            "restartCount": 0, "state": {"terminated": terminated}}]});
                if reason == "Evicted" {
                    status["reason"] = json!("Evicted");
                    status["message"] = json!("The node was low on resource: memory.");
                }
                status
            }
        };
        self.write(&self.pod().status(), json!({"status": status}));
    }

    fn create_pod(&self, container: Value) {
        let pod = self.pod();
        let mut spec = json!({"containers": [container], "restartPolicy": "Never"});
        if let Some(account) = &self.service_account {
            spec["serviceAccountName"] = json!(account);
        }
        let mut labels = self.pod_labels.clone();
        labels.insert("spark-role".into(), json!("driver"));
        labels.insert("spark.operator/spark-app-name".into(), json!(self.name));
        let body = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": pod.name,
                "labels": labels,
                "ownerReferences": [{"apiVersion": "spark.apache.org/v1", "kind": "SparkApplication",
                                     "name": self.name, "uid": self.uid, "controller": true}],
            },
            "spec": spec,
        });
        if let Err(error) = self.store.create(
            &Target { name: None, ..pod },
            body,
            &WriteOptions::new(MANAGER),
        ) {
            tracing::warn!(%error, app = %self.name, "fake operator could not create the driver pod");
        }
    }

    fn log(&self, text: &str) {
        // The pod can be gone already (the app was deleted); its log goes with it.
        let _ = self.store.append_log(&self.pod(), text);
    }
}

/// A Spark size (`4g`, `4096m`, `4096`: MiB) in MiB; 0 when unreadable.
fn mebibytes(size: &str) -> u64 {
    let lower = size.trim().to_ascii_lowercase();
    let (digits, factor) = match lower.chars().last() {
        Some('g') => (&lower[..lower.len() - 1], 1024),
        Some('m') => (&lower[..lower.len() - 1], 1),
        _ => (lower.as_str(), 1),
    };
    digits.parse::<u64>().map_or(0, |n| n * factor)
}

/// An executor's end state for `outcome`: its pod status, its log, and the Events about it.
fn executor_end(outcome: &str, image: &str) -> (Value, String, Vec<(&'static str, String)>) {
    let container = |state: Value| {
        json!([{"name": "spark-kubernetes-executor", "image": image, "ready": false,
                "restartCount": 0, "state": state}])
    };
    let terminated = |code: i32, reason: &str| {
        container(
            json!({"terminated": {"exitCode": code, "reason": reason, "finishedAt": meta::now()}}),
        )
    };
    match outcome {
        "OOMKilled" => (
            json!({"phase": "Failed", "containerStatuses": terminated(137, "OOMKilled")}),
            "INFO Executor: Running task 3.0 in stage 1.0\n\
             ERROR Executor: java.lang.OutOfMemoryError: Java heap space\n"
                .into(),
            Vec::new(),
        ),
        "Evicted" => (
            json!({"phase": "Failed", "reason": "Evicted",
                   "message": "The node was low on resource: memory.",
                   "conditions": [{"type": "DisruptionTarget", "status": "True",
                                   "reason": "TerminationByKubelet",
                                   "message": "The node was low on resource: memory."}],
                   "containerStatuses": terminated(137, "Error")}),
            "INFO Executor: Running task 1.0 in stage 0.0\nERROR CoarseGrainedExecutorBackend: \
             RECEIVED SIGNAL TERM\n"
                .into(),
            vec![("Evicted", "The node was low on resource: memory.".into())],
        ),
        "ImagePullBackOff" => (
            json!({"phase": "Pending", "containerStatuses": container(json!({"waiting": {
                "reason": "ImagePullBackOff",
                "message": format!("Back-off pulling image \"{image}\"")}}))}),
            String::new(),
            vec![
                (
                    "Failed",
                    format!("Failed to pull image \"{image}\": ErrImagePull"),
                ),
                ("BackOff", format!("Back-off pulling image \"{image}\"")),
            ],
        ),
        "HeapOOM" => (
            json!({"phase": "Failed", "containerStatuses": terminated(52, "Error")}),
            "INFO Executor: Running task 3.0 in stage 1.0\n\
             ERROR Executor: Exception in task 3.0 in stage 1.0 (TID 7)\n\
             java.lang.OutOfMemoryError: Java heap space\n"
                .into(),
            Vec::new(),
        ),
        "ContainerOOM" => (
            json!({"phase": "Failed", "containerStatuses": terminated(137, "OOMKilled")}),
            "INFO Executor: Running task 2.0 in stage 1.0\nINFO PythonRunner: Times: total = 812\n"
                .into(),
            Vec::new(),
        ),
        "Preempted" => (
            json!({"phase": "Failed",
                   "conditions": [{"type": "DisruptionTarget", "status": "True",
                                   "reason": "PreemptionByScheduler",
                                   "message": "Preempted in order to admit critical pod"}],
                   "containerStatuses": terminated(143, "Error")}),
            "ERROR CoarseGrainedExecutorBackend: RECEIVED SIGNAL TERM\n".into(),
            vec![(
                "Preempted",
                "Preempted in order to admit critical pod".into(),
            )],
        ),
        "ImageNotFound" => (
            json!({"phase": "Pending", "containerStatuses": container(json!({"waiting": {
                "reason": "ErrImagePull", "message": "rpc error: code = NotFound"}}))}),
            String::new(),
            vec![(
                "Failed",
                format!(
                    "Failed to pull image \"{image}\": rpc error: code = NotFound desc = \
                         failed to resolve reference \"{image}\": not found"
                ),
            )],
        ),
        "InvalidImageName" => (
            json!({"phase": "Pending", "containerStatuses": container(json!({"waiting": {
                "reason": "InvalidImageName",
                "message": format!("Failed to apply default image tag \"{image}\": couldn't parse image reference")}}))}),
            String::new(),
            vec![(
                "InspectFailed",
                format!("Failed to apply default image tag \"{image}\""),
            )],
        ),
        "Error" => (
            json!({"phase": "Failed", "containerStatuses": terminated(1, "Error")}),
            "ERROR Executor: Exception in task 0.0\n".into(),
            Vec::new(),
        ),
        _ => (
            json!({"phase": "Succeeded", "containerStatuses": terminated(0, "Completed")}),
            "INFO Executor: Finished task 0.0\n".into(),
            Vec::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_starts_submitted_and_ends_in_its_summary() {
        let cases = [
            ("Succeeded", "Succeeded"),
            ("Running", "RunningHealthy"),
            ("Failed", "Failed"),
            ("OOMKilled", "Failed"),
            ("DriverEvicted", "DriverEvicted"),
            ("SchedulingFailure", "SchedulingFailure"),
            ("DriverStartTimedOut", "DriverStartTimedOut"),
            ("DriverReadyTimedOut", "DriverReadyTimedOut"),
            ("ExecutorsStartTimedOut", "ExecutorsStartTimedOut"),
        ];
        for (outcome, last) in cases {
            let steps = steps(outcome).unwrap();
            assert_eq!(steps[0].state, "Submitted", "{outcome}");
            assert_eq!(steps.last().unwrap().state, last, "{outcome}");
        }
        assert!(steps("Exploded").is_none());
    }

    #[test]
    fn settings_come_from_annotations_then_labels() {
        let app = json!({"metadata": {
            "annotations": {"fake.sk8.dev/outcome": "Failed"},
            "labels": {"fake.sk8.dev/outcome": "OOMKilled", "fake.sk8.dev/pod-ip": "127.0.0.9"},
        }});
        assert_eq!(setting(&app, OUTCOME).as_deref(), Some("Failed"));
        assert_eq!(setting(&app, POD_IP).as_deref(), Some("127.0.0.9"));
        assert_eq!(setting(&app, STEP_MS), None);
    }
}
