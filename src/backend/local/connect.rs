//! Sessions on the local backend: each server is a Spark Connect server process group on a
//! free 127.0.0.1 port, either Apache Spark's own (`spark-submit --class
//! org.apache.spark.sql.connect.service.SparkConnectServer`) or Sail's `sail spark server`.
//!
//! Like attempts, a server's folder `<dataDir>/sessions/<session-id>/<start>/` holds its
//! `server.log`, `pid` and `exit`, so sk8 finds it again after a restart. It is READY once its
//! port accepts connections.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::process::ProcessId;
use super::{LocalBackend, logfile, spark, transient, wrapped};
use crate::backend::{
    BackendError, BackendRef, CONNECT_SERVER_CLASS, ServerStatus, SessionRequest, StopProgress,
};
use crate::config::ConnectServer;
use crate::domain::FailureClass;
use crate::gateway::token::TOKEN_ENV;
use crate::record::confs::{app_id, event_log_confs};

const HOST: &str = "127.0.0.1";
/// How long a readiness probe waits for the port.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The local backend's handle on a session's server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServerRef {
    name: String,
    dir: PathBuf,
    process: ProcessId,
    /// `host:port` it serves on.
    endpoint: String,
}

impl ServerRef {
    fn parse(value: &BackendRef) -> Result<Self, BackendError> {
        serde_json::from_value(value.clone())
            .map_err(|e| BackendError::NotFound(format!("not a local server reference: {e}")))
    }
}

impl LocalBackend {
    fn server_dir(&self, request: &SessionRequest) -> PathBuf {
        self.data_dir
            .join("sessions")
            .join(request.session_id.as_str())
            .join(request.start.to_string())
    }

    pub(super) async fn start_server(
        &self,
        request: &SessionRequest,
    ) -> Result<BackendRef, BackendError> {
        let dir = self.server_dir(request);
        if let Some(found) = adopt(&dir) {
            return Ok(serde_json::to_value(found).expect("a ServerRef serializes"));
        }
        let port = free_port().map_err(|e| transient("find a free port", &dir, e))?;
        let name = request.name();
        let mut command = match self.config.connect_server {
            ConnectServer::Sail => self.sail_command(&dir, &name, port)?,
            ConnectServer::Spark => self.spark_command(&dir, &name, port, request)?,
        };
        command.env("SK8_SESSION_ID", request.session_id.as_str());
        let mut child = command
            .spawn()
            .map_err(|e| transient("start the Spark Connect server", &dir, e))?;
        let pid = child.id().unwrap_or_default();
        let server = ServerRef {
            name: name.clone(),
            dir: dir.clone(),
            process: ProcessId::of(pid).unwrap_or(ProcessId { pid, start_time: 0 }),
            endpoint: format!("{HOST}:{port}"),
        };
        std::fs::write(
            dir.join("server.json"),
            serde_json::to_vec(&server).expect("a ServerRef serializes"),
        )
        .map_err(|e| transient("record the server", &dir, e))?;
        self.servers
            .lock()
            .expect("servers lock")
            .insert(name.clone(), (server.process, dir.clone()));
        // Reap it when it exits (its exit status is in its folder for whoever asks).
        let (servers, reaped) = (self.servers.clone(), name.clone());
        tokio::spawn(async move {
            let _ = child.wait().await;
            servers.lock().expect("servers lock").remove(&reaped);
        });
        tracing::info!(session = %request.session_id, server = %name, pid, port, "started a Spark Connect server");
        Ok(serde_json::to_value(server).expect("a ServerRef serializes"))
    }

    fn sail_command(
        &self,
        dir: &Path,
        name: &str,
        port: u16,
    ) -> Result<tokio::process::Command, BackendError> {
        let sail = self.config.sail.clone().unwrap_or_else(|| "sail".into());
        let mut command = wrapped(dir, name, &sail, "server.log")?;
        command.args(["spark", "server", "--ip", HOST, "--port", &port.to_string()]);
        Ok(command)
    }

    fn spark_command(
        &self,
        dir: &Path,
        name: &str,
        port: u16,
        request: &SessionRequest,
    ) -> Result<tokio::process::Command, BackendError> {
        let install = spark::find(&self.config).map_err(|reason| BackendError::Rejected {
            class: FailureClass::Configuration,
            reason,
        })?;
        let mut command = wrapped(dir, name, &install.spark_submit, "server.log")?;
        let spec = &request.spec;
        command.args([
            "--class",
            CONNECT_SERVER_CLASS,
            "--name",
            &spec.name,
            "--master",
            &self.config.master,
            "--driver-memory",
            &spec.driver.memory,
        ]);
        let mut conf = vec![
            format!("spark.connect.grpc.binding.address={HOST}"),
            format!("spark.connect.grpc.binding.port={port}"),
            "spark.ui.showConsoleProgress=false".into(),
        ];
        conf.extend(spec.spark_conf.iter().map(|(k, v)| format!("{k}={}", v.0)));
        let recorded = event_log_confs(&spec.spark_conf, &self.event_logs, &app_id(name));
        conf.extend(recorded.into_iter().map(|(k, v)| format!("{k}={v}")));
        for c in conf {
            command.args(["--conf", &c]);
        }
        install.export(&mut command);
        // The server demands it of every client (the gateway sends it); as an environment
        // variable it shows in neither `ps` nor the server's confs.
        command.env(TOKEN_ENV, &request.token);
        Ok(command)
    }

    /// The UI an Apache Spark server announced in its log (Sail's announce none).
    pub(super) fn server_ui_of(&self, server: &BackendRef) -> Option<String> {
        let server = ServerRef::parse(server).ok()?;
        logfile::spark_ui_url(&server.dir.join("server.log"), HOST)
    }

    pub(super) async fn server_status_of(
        &self,
        server: &BackendRef,
    ) -> Result<ServerStatus, BackendError> {
        let server = ServerRef::parse(server)?;
        if !server.process.is_alive() {
            let stop = std::fs::read_to_string(server.dir.join("stop")).ok();
            return Ok(ServerStatus::Ended {
                stopped_by_sk8: stop.is_some(),
                reason: ended_reason(&server, stop.as_deref()),
            });
        }
        // A server started before a restart is stopped at shutdown like the others.
        self.servers
            .lock()
            .expect("servers lock")
            .insert(server.name.clone(), (server.process, server.dir.clone()));
        let probe = tokio::net::TcpStream::connect(&server.endpoint);
        Ok(match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(_)) => ServerStatus::Ready {
                endpoint: server.endpoint,
            },
            _ => ServerStatus::Starting {
                detail: format!(
                    "the server (pid {}) is not accepting connections on {} yet",
                    server.process.pid, server.endpoint
                ),
            },
        })
    }

    pub(super) async fn stop_server(
        &self,
        server: &BackendRef,
    ) -> Result<StopProgress, BackendError> {
        let server = ServerRef::parse(server)?;
        if !server.process.is_alive() && !server.process.group_alive() {
            return Ok(StopProgress::Gone);
        }
        self.terminate_group(server.process, &server.dir, "stopped by sk8");
        Ok(StopProgress::Stopping)
    }
}

/// A server started before, found again by its folder.
fn adopt(dir: &Path) -> Option<ServerRef> {
    let recorded = std::fs::read(dir.join("server.json")).ok()?;
    serde_json::from_slice(&recorded).ok()
}

/// Why a server is not running, from its folder: its exit status and the last error it logged.
/// (`stop` is what sk8 recorded when it stopped the server, if it did.)
fn ended_reason(server: &ServerRef, stop: Option<&str>) -> String {
    if let Some(why) = stop {
        return format!("the server was {}", why.trim());
    }
    let log = server.dir.join("server.log");
    let error = logfile::failure_line(&log)
        .map(|line| format!(": {line}"))
        .unwrap_or_default();
    match std::fs::read_to_string(server.dir.join("exit")) {
        Ok(code) => format!("the server exited with status {}{error}", code.trim()),
        Err(_) => format!(
            "the server (pid {}) ended without an exit status: it was killed{error}",
            server.process.pid
        ),
    }
}

/// A port free now on 127.0.0.1 (the server binds it a moment later; a clash fails the start,
/// and the session is started again).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((HOST, 0))?.local_addr()?.port())
}
