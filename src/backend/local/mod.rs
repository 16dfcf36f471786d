//! The local backend: each attempt is a `spark-submit --master local[N]` process group.
//!
//! Every attempt gets a folder `<dataDir>/attempts/<job-id>/<attempt>/` holding `driver.log`
//! (stdout and stderr), `pid` (written by the wrapper shell before Spark starts), `exit`
//! (written by the wrapper when Spark exits) and `stop` (why sk8 stopped it). Those files, not
//! memory, are the truth: after a restart (even `kill -9`) sk8 finds each attempt again by its
//! folder, adopts processes that still run, and reads the outcome of those that ended.

mod connect;
mod logfile;
mod process;
mod spark;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use self::process::ProcessId;
use super::{
    AttemptRequest, AttemptStatus, Backend, BackendError, BackendRef, Ended, LogStream, NoCapacity,
    ServerStatus, SessionRequest, StopProgress, StopReason,
};
use crate::config::LocalConfig;
use crate::domain::{FailureClass, JobSpec};
use crate::record::confs::{EventLogSettings, app_id, event_log_confs};
use crate::record::evidence::ProcessExit;
use crate::wake::Wake;

/// Runs Spark, records its pid, then records its exit status atomically. `$0` is the attempt's
/// name, so `/proc/<pid>/cmdline` tells sk8's wrapper apart from a process that reused the pid.
const WRAPPER: &str = r#"echo $$ > "$SK8_ATTEMPT_DIR/pid"
"$@"
code=$?
echo $code > "$SK8_ATTEMPT_DIR/exit.tmp" && mv "$SK8_ATTEMPT_DIR/exit.tmp" "$SK8_ATTEMPT_DIR/exit"
exit $code"#;

/// The local backend's handle on an attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocalRef {
    name: String,
    dir: PathBuf,
    process: ProcessId,
}

impl LocalRef {
    fn parse(value: &BackendRef) -> Result<Self, BackendError> {
        serde_json::from_value(value.clone())
            .map_err(|e| BackendError::NotFound(format!("not a local attempt reference: {e}")))
    }

    fn log(&self) -> PathBuf {
        self.dir.join("driver.log")
    }
}

pub struct LocalBackend {
    config: LocalConfig,
    event_logs: EventLogSettings,
    data_dir: PathBuf,
    root: PathBuf,
    /// Told whenever a process exits, so the reconciler records it without waiting a tick.
    wake: Arc<Wake>,
    /// Processes running now, by attempt name: for the capacity limit and for shutdown.
    live: Arc<Mutex<HashMap<String, LocalRef>>>,
    /// Session servers started by this process, by name: stopped at shutdown too.
    servers: Arc<Mutex<HashMap<String, (ProcessId, PathBuf)>>>,
}

impl LocalBackend {
    pub fn new(
        config: LocalConfig,
        event_logs: EventLogSettings,
        data_dir: &Path,
        wake: Arc<Wake>,
    ) -> Self {
        LocalBackend {
            config,
            event_logs,
            data_dir: data_dir.to_owned(),
            root: data_dir.join("attempts"),
            wake,
            live: Arc::default(),
            servers: Arc::default(),
        }
    }

    /// The Spark this backend would use now, for the startup log.
    pub fn describe_spark(&self) -> String {
        match spark::find(&self.config) {
            Ok(install) => format!("spark-submit at {}", install.spark_submit.display()),
            Err(why) => format!("jobs will fail until Spark is installed: {why}"),
        }
    }

    fn attempt_dir(&self, request: &AttemptRequest) -> PathBuf {
        self.root
            .join(request.job_id.as_str())
            .join(request.attempt.to_string())
    }

    /// Finds an attempt started before (by this process or one before a restart).
    fn adopt(&self, name: &str, dir: &Path) -> Option<LocalRef> {
        let pid: u32 = std::fs::read_to_string(dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let process = ProcessId::of(pid)
            .filter(|_| cmdline_names(pid, name))
            .unwrap_or(ProcessId { pid, start_time: 0 });
        Some(LocalRef {
            name: name.to_owned(),
            dir: dir.to_owned(),
            process,
        })
    }

    fn running_count(&self) -> usize {
        let mut live = self.live.lock().expect("live map lock");
        live.retain(|_, local| local.process.is_alive());
        live.len()
    }

    async fn spawn(&self, request: &AttemptRequest, dir: &Path) -> Result<LocalRef, BackendError> {
        let install = spark::find(&self.config).map_err(|reason| BackendError::Rejected {
            class: FailureClass::Configuration,
            reason,
        })?;
        let app = local_file(&request.spec.main_application_file)?;
        fits_local_cluster(&request.spec, &self.config.master)?;
        let name = request.name();
        let mut command = wrapped(dir, &name, &install.spark_submit, "driver.log")?;
        command
            .args(submit_args(
                request,
                &self.config.master,
                &app,
                event_log_confs(&request.spec.spark_conf, &self.event_logs, &app_id(&name)),
            ))
            .env("SK8_JOB_ID", request.job_id.as_str())
            .env("SK8_ATTEMPT", request.attempt.to_string());
        install.export(&mut command);
        if let Some(traceparent) = &request.traceparent {
            command.env("TRACEPARENT", traceparent);
        }
        command.envs(&request.spec.env_vars);
        let mut child = command
            .spawn()
            .map_err(|e| transient("start spark-submit", &install.spark_submit, e))?;
        let pid = child.id().unwrap_or_default();
        let process = ProcessId::of(pid).unwrap_or(ProcessId { pid, start_time: 0 });
        let local = LocalRef {
            name: name.clone(),
            dir: dir.to_owned(),
            process,
        };
        self.live
            .lock()
            .expect("live map lock")
            .insert(name.clone(), local.clone());
        let (live, wake, reaped) = (self.live.clone(), self.wake.clone(), name.clone());
        let job_id = request.job_id.clone();
        tokio::spawn(async move {
            let _ = child.wait().await;
            live.lock().expect("live map lock").remove(&reaped);
            // The job has an outcome now, and its slot may start a waiting one.
            wake.job(job_id);
            wake.queue();
        });
        tracing::info!(attempt = %name, pid, "started spark-submit");
        Ok(local)
    }

    fn terminate(&self, local: &LocalRef, why: StopReason) {
        self.terminate_group(local.process, &local.dir, why.as_str());
    }

    /// Records why in `dir/stop`, signals the group, and makes sure it is killed if it
    /// ignores SIGTERM.
    fn terminate_group(&self, process: ProcessId, dir: &Path, why: &str) {
        let marker = dir.join("stop");
        if !marker.exists() {
            let _ = std::fs::write(&marker, why);
        }
        process.signal_group(libc::SIGTERM);
        let grace = Duration::from_secs(self.config.kill_grace_seconds);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            process.signal_group(libc::SIGKILL);
        });
    }

    fn outcome(&self, local: &LocalRef) -> Option<AttemptStatus> {
        let code: i32 = std::fs::read_to_string(local.dir.join("exit"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(if code == 0 {
            AttemptStatus::Succeeded {
                detail: "spark-submit exited with status 0".into(),
            }
        } else {
            let error = logfile::failure_line(&local.log())
                .map(|line| format!(": {line}"))
                .unwrap_or_default();
            AttemptStatus::Failed {
                class: FailureClass::Application,
                reason: format!("spark-submit exited with status {code}{error}"),
            }
        })
    }

    fn vanished(&self, local: &LocalRef) -> AttemptStatus {
        let reason = match std::fs::read_to_string(local.dir.join("stop")) {
            Ok(why) => format!("the attempt was {}", why.trim()),
            Err(_) => format!(
                "spark-submit (pid {}) ended without recording an exit status: it was killed, \
                 probably while sk8 was not running",
                local.process.pid
            ),
        };
        AttemptStatus::Failed {
            class: FailureClass::Infrastructure,
            reason,
        }
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn capacity(&self, _spec: &JobSpec) -> Result<(), NoCapacity> {
        if self.running_count() < self.config.max_running {
            Ok(())
        } else {
            Err(NoCapacity {
                reason: format!(
                    "{} local jobs are running (backend.local.maxRunning)",
                    self.config.max_running
                ),
                everywhere: true,
            })
        }
    }

    async fn submit(&self, request: &AttemptRequest) -> Result<BackendRef, BackendError> {
        let dir = self.attempt_dir(request);
        let local = match self.adopt(&request.name(), &dir) {
            Some(found) => found,
            None => {
                self.capacity(&request.spec)
                    .map_err(|full| BackendError::AtCapacity(full.reason))?;
                self.spawn(request, &dir).await?
            }
        };
        Ok(serde_json::to_value(local).expect("a LocalRef serializes"))
    }

    async fn status(&self, attempt: &BackendRef) -> Result<AttemptStatus, BackendError> {
        let local = LocalRef::parse(attempt)?;
        if let Some(outcome) = self.outcome(&local) {
            return Ok(outcome);
        }
        if local.process.is_alive() {
            self.live
                .lock()
                .expect("live map lock")
                .insert(local.name.clone(), local.clone());
            let host = std::env::var("SPARK_LOCAL_IP").unwrap_or_else(|_| "127.0.0.1".into());
            return Ok(AttemptStatus::Running {
                spark_ui_url: logfile::spark_ui_url(&local.log(), &host),
                detail: format!("spark-submit running as pid {}", local.process.pid),
            });
        }
        // The exit file may have landed between the two checks.
        Ok(self
            .outcome(&local)
            .unwrap_or_else(|| self.vanished(&local)))
    }

    async fn stop(
        &self,
        attempt: &BackendRef,
        why: StopReason,
    ) -> Result<StopProgress, BackendError> {
        let local = LocalRef::parse(attempt)?;
        if !local.process.is_alive() && !local.process.group_alive() {
            return Ok(StopProgress::Gone);
        }
        self.terminate(&local, why);
        Ok(StopProgress::Stopping)
    }

    async fn logs(&self, attempt: &BackendRef, follow: bool) -> Result<LogStream, BackendError> {
        let local = LocalRef::parse(attempt)?;
        let path = local.log();
        if !path.exists() {
            return Err(BackendError::NotFound(format!(
                "the driver log {} is gone (the data directory was cleaned)",
                path.display()
            )));
        }
        let process = local.process;
        Ok(logfile::stream(path, follow, move || process.is_alive()))
    }

    /// Local mode names the application itself; the driver log says what.
    fn app_id(&self, attempt: &BackendRef) -> Option<String> {
        logfile::app_id(&LocalRef::parse(attempt).ok()?.log())
    }

    /// The exit status (or signal) from the attempt's folder, why sk8 stopped it, and the
    /// application id Spark announced in the driver log.
    async fn ended(&self, attempt: &BackendRef) -> Ended {
        let mut ended = Ended::default();
        let Ok(local) = LocalRef::parse(attempt) else {
            return ended;
        };
        let code = std::fs::read_to_string(local.dir.join("exit"))
            .ok()
            .and_then(|c| c.trim().parse().ok());
        let mut exit = match code {
            Some(code) => ProcessExit::from_status(code),
            None => ProcessExit {
                exit_code: None,
                signal: None,
                stopped_by_sk8: None,
            },
        };
        exit.stopped_by_sk8 = std::fs::read_to_string(local.dir.join("stop"))
            .ok()
            .map(|why| why.trim().to_owned());
        if code.is_none() && exit.stopped_by_sk8.is_none() {
            ended
                .evidence
                .gaps
                .push("the process left no exit status (killed while sk8 was down?)".into());
        }
        ended.evidence.process = Some(exit);
        ended.app_id = logfile::app_id(&local.log());
        ended
    }

    async fn server_start(&self, request: &SessionRequest) -> Result<BackendRef, BackendError> {
        self.start_server(request).await
    }

    async fn server_status(&self, server: &BackendRef) -> Result<ServerStatus, BackendError> {
        self.server_status_of(server).await
    }

    async fn server_ui(&self, server: &BackendRef, _endpoint: &str) -> Option<String> {
        self.server_ui_of(server)
    }

    async fn server_stop(&self, server: &BackendRef) -> Result<StopProgress, BackendError> {
        self.stop_server(server).await
    }

    async fn shutdown(&self) {
        let mut running: Vec<(ProcessId, PathBuf)> = self
            .live
            .lock()
            .expect("live map lock")
            .values()
            .map(|local| (local.process, local.dir.clone()))
            .collect();
        running.extend(self.servers.lock().expect("servers lock").values().cloned());
        if running.is_empty() {
            return;
        }
        tracing::info!(
            count = running.len(),
            "stopping local Spark jobs and servers"
        );
        for (process, dir) in &running {
            self.terminate_group(*process, dir, StopReason::Shutdown.as_str());
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.config.kill_grace_seconds);
        let any_alive = || running.iter().any(|(process, _)| process.group_alive());
        while any_alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (process, _) in &running {
            process.signal_group(libc::SIGKILL);
        }
    }
}

/// A command that runs `program` under [`WRAPPER`] in its own process group, with its output
/// in `dir/<log>`: its pid and exit status land in `dir`, so it can be found after a restart.
fn wrapped(
    dir: &Path,
    name: &str,
    program: &Path,
    log: &str,
) -> Result<tokio::process::Command, BackendError> {
    std::fs::create_dir_all(dir).map_err(|e| transient("create folder", dir, e))?;
    let out = std::fs::File::create(dir.join(log)).map_err(|e| transient("create log", dir, e))?;
    let err = out.try_clone().map_err(|e| transient("open log", dir, e))?;
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(WRAPPER)
        .arg(name)
        .arg(program)
        .env("SK8_ATTEMPT_DIR", dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a cancel can stop the whole tree (JVM, Python workers), and
        // a signal to sk8 is not delivered to it.
        .process_group(0);
    if std::env::var_os("SPARK_LOCAL_IP").is_none() {
        command.env("SPARK_LOCAL_IP", "127.0.0.1");
    }
    Ok(command)
}

/// The arguments after `spark-submit`; `sk8_confs` (event logging, the app id) go with the
/// spec's confs, before the application file: after it they would be the application's own
/// arguments.
fn submit_args(
    request: &AttemptRequest,
    master: &str,
    app: &str,
    sk8_confs: Vec<(String, String)>,
) -> Vec<String> {
    let spec = &request.spec;
    let mut args = vec![
        "--master".to_string(),
        master.to_string(),
        "--deploy-mode".into(),
        "client".into(),
        "--name".into(),
        spec.name.clone(),
        "--driver-memory".into(),
        spec.driver.memory.clone(),
    ];
    if !spec.spark_conf.contains_key("spark.ui.showConsoleProgress") {
        // Progress bars are carriage-return animations: noise in a log file.
        args.extend(["--conf".into(), "spark.ui.showConsoleProgress=false".into()]);
    }
    for (key, value) in &spec.spark_conf {
        args.extend(["--conf".into(), format!("{key}={}", value.0)]);
    }
    args.extend(conf_args(executor_confs(spec, master)));
    args.extend(conf_args(sk8_confs));
    if let Some(class) = &spec.main_class {
        args.extend(["--class".into(), class.clone()]);
    }
    for (flag, list) in [
        ("--jars", &spec.deps.jars),
        ("--py-files", &spec.deps.py_files),
        ("--files", &spec.deps.files),
    ] {
        if !list.is_empty() {
            let joined: Vec<String> = list.iter().map(|u| strip_local(u).to_owned()).collect();
            args.extend([flag.into(), joined.join(",")]);
        }
    }
    args.push(app.to_owned());
    args.extend(spec.args.iter().cloned());
    args
}

/// The spec's executors, for a `local-cluster[W,C,M]` master: its executors are JVMs of their
/// own (as on a cluster), sized by the spec. A standalone cluster has no executor count; it
/// starts executors of `executor.cores` until `spark.cores.max` is reached. Under `local[N]`
/// the driver's JVM runs the tasks and there are no executors to size. What the spec's
/// `sparkConf` sets itself wins.
fn executor_confs(spec: &JobSpec, master: &str) -> Vec<(String, String)> {
    if local_cluster_worker(master).is_none() {
        return Vec::new();
    }
    let executor = &spec.executor;
    [
        ("spark.executor.memory", executor.memory.clone()),
        ("spark.executor.cores", executor.cores.to_string()),
        (
            "spark.cores.max",
            (executor.cores * executor.instances).to_string(),
        ),
    ]
    .into_iter()
    .filter(|(key, _)| !spec.spark_conf.contains_key(*key))
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// A `local-cluster[WORKERS,CORES,MiB]` master's worker: its cores and MiB (none for any
/// other master; the config check refuses a `local-cluster` master this cannot read).
pub(crate) fn local_cluster_worker(master: &str) -> Option<(u32, u64)> {
    let inner = master.strip_prefix("local-cluster[")?.strip_suffix(']')?;
    let mut parts = inner.split(',').map(str::trim);
    let (_workers, cores, mib) = (parts.next()?, parts.next()?, parts.next()?);
    Some((cores.parse().ok()?, mib.parse().ok()?))
}

/// An executor bigger than a `local-cluster` worker would never start: the job would wait
/// for resources forever. Refused at submit instead, naming both sizes.
fn fits_local_cluster(spec: &JobSpec, master: &str) -> Result<(), BackendError> {
    let Some((cores, mib)) = local_cluster_worker(master) else {
        return Ok(());
    };
    let memory = crate::domain::jobspec::memory_bytes(&spec.executor.memory).unwrap_or(0) >> 20;
    let reason = if memory > mib {
        format!(
            "executor.memory {} is more than a worker of backend.local.master {master} has \
             ({mib} MiB): lower it or give the workers more",
            spec.executor.memory
        )
    } else if spec.executor.cores > cores {
        format!(
            "executor.cores {} is more than a worker of backend.local.master {master} has \
             ({cores})",
            spec.executor.cores
        )
    } else {
        return Ok(());
    };
    Err(BackendError::Rejected {
        class: FailureClass::Configuration,
        reason,
    })
}

/// `--conf key=value` for each conf.
fn conf_args(confs: Vec<(String, String)>) -> Vec<String> {
    confs
        .into_iter()
        .flat_map(|(key, value)| ["--conf".to_owned(), format!("{key}={value}")])
        .collect()
}

/// `local:///x` means "already on the machine that runs the driver": here, this machine.
fn strip_local(uri: &str) -> &str {
    uri.strip_prefix("local://").unwrap_or(uri)
}

/// The application file as spark-submit takes it, checked to exist when it is on this machine.
fn local_file(uri: &str) -> Result<String, BackendError> {
    let path = strip_local(uri);
    let on_disk = path.strip_prefix("file://").unwrap_or(path);
    if on_disk.starts_with('/') && !Path::new(on_disk).is_file() {
        return Err(BackendError::Rejected {
            class: FailureClass::Configuration,
            reason: format!(
                "mainApplicationFile {uri} does not exist on the machine running sk8's local \
                 backend"
            ),
        });
    }
    Ok(path.to_owned())
}

fn cmdline_names(pid: u32, name: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmd| cmd.split(|b| *b == 0).any(|arg| arg == name.as_bytes()))
        .unwrap_or(false)
}

fn transient(action: &str, path: &Path, err: std::io::Error) -> BackendError {
    BackendError::Transient(format!("{action} {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::SpecDefaults;
    use crate::domain::jobspec::Format;

    fn spec(executor: Value, spark_conf: Value) -> JobSpec {
        let body = json!({
            "team": "t", "env": "e", "name": "n", "mainApplicationFile": "/x.py",
            "executor": executor, "sparkConf": spark_conf,
        });
        let defaults = SpecDefaults {
            spark_version: "4.0.1".into(),
            image: "i".into(),
        };
        JobSpec::parse(body.to_string().as_bytes(), Format::Json, &defaults).unwrap()
    }

    fn executors(memory: &str, cores: u32) -> JobSpec {
        spec(
            json!({"memory": memory, "cores": cores, "instances": 3}),
            json!({}),
        )
    }

    #[test]
    fn only_a_local_cluster_sizes_executors_and_the_spec_conf_wins() {
        assert!(executor_confs(&executors("2g", 2), "local[*]").is_empty());
        let confs = executor_confs(&executors("2g", 2), "local-cluster[2,2,4096]");
        let expected = [
            ("spark.executor.memory", "2g"),
            ("spark.executor.cores", "2"),
            ("spark.cores.max", "6"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(confs, expected);
        let own = spec(json!({"cores": 2}), json!({"spark.cores.max": "4"}));
        let confs = executor_confs(&own, "local-cluster[2,2,4096]");
        assert!(confs.iter().all(|(key, _)| key != "spark.cores.max"));
    }

    #[test]
    fn an_executor_bigger_than_a_worker_is_refused_naming_both() {
        let master = "local-cluster[1, 2, 1024]";
        assert_eq!(local_cluster_worker(master), Some((2, 1024)));
        assert_eq!(local_cluster_worker("local[4]"), None);
        let refused = fits_local_cluster(&executors("2g", 1), master)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("executor.memory 2g") && refused.contains("1024 MiB"),
            "{refused}"
        );
        let refused = fits_local_cluster(&executors("1g", 4), master)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("executor.cores 4"), "{refused}");
        assert!(fits_local_cluster(&executors("1g", 1), master).is_ok());
        assert!(fits_local_cluster(&executors("8g", 8), "local[*]").is_ok());
    }
}
