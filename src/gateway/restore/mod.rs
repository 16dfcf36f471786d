//! Spark sessions that survive their server: when a session stops for idleness and resumes
//! on a new Spark Connect server, an open client carries on as if nothing happened.
//!
//! For each Spark session a client opens through the gateway (the session's id plus the
//! client's `session_id`), the gateway keeps what the client changed on the server: confs set
//! through `Config` (the pairs) or SQL `SET` (the request), artifacts added through
//! `AddArtifacts`, temp views created through `CreateDataFrameViewCommand` (their plans) or
//! SQL, and functions and data sources registered through commands or SQL (the requests that
//! made them), each recorded once its RPC ended OK; a view or function dropped again is
//! forgotten. Artifacts and requests sit in
//! files under `<dataDir>/gateway/restore`, up to `gateway.restoreMaxBytes` per Spark session.
//! The first RPC that reaches a new server (a higher `starts`) first replays all of that
//! there, in the order it happened, confs first.
//!
//! The new server has its own server-side session id; the client keeps the one it saw first
//! (pyspark closes a session whose id changes, and servers refuse a request observing another
//! id with `INVALID_HANDLE.SESSION_CHANGED`): requests get the new server's id, responses the
//! client's.
//!
//! What cannot come back: cached data (recomputed on use), running queries and their results
//! (gone with the server), anything over the cap, and anything the new server refuses. The
//! first RPC after such a restore fails with an error naming what was lost; the session then
//! carries on with the rest. The state lives in this process only: a restarted sk8 restores
//! nothing, and a client reaching another replica is not restored there.

mod call;
mod proto;
mod sql;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tonic::Status;

use self::proto::{Change, ConfChange, Kind, Made};
use super::Upstream;
use super::wire::{self, FrameReader};
use crate::domain::SessionId;

/// At most this many Spark sessions are kept; the least recently used goes first.
const MAX_CLIENTS: usize = 10_000;

/// A Spark session: the sk8 session and the client's `session_id`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    session: SessionId,
    spark_session: String,
}

/// What is kept of every Spark session opened through the gateway.
pub struct Restore {
    dir: PathBuf,
    max_bytes: u64,
    clients: Mutex<HashMap<Key, Arc<Client>>>,
    next_file: AtomicU64,
}

struct Client {
    /// Held while the state is replayed on a new server: the client's other RPCs wait.
    replaying: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The server (`starts`) the state is on.
    starts: u32,
    /// After a restore: the server-side id the client holds, and the current server's.
    ids: Option<(Arc<str>, Arc<str>)>,
    confs: BTreeMap<String, String>,
    /// Artifacts and views, in the order they were made.
    log: Vec<Kept>,
    bytes: u64,
    /// What was not kept (over the cap), named after the next restore.
    unkept: Vec<Unkept>,
    used: Option<Instant>,
}

/// Something not kept: what the error names, and the view, function or conf it made (which a
/// later drop or conf change forgets, so that it is no longer named).
struct Unkept {
    what: String,
    made: Option<Made>,
}

/// One recorded request (or request stream), in a file of gRPC frames.
struct Kept {
    method: &'static str,
    /// What it made, as the error names it: `temp view v`, `artifact pyfiles/m.py`.
    what: String,
    /// A view or function: making it again replaces the earlier one, dropping it forgets it.
    made: Option<Made>,
    file: PathBuf,
    bytes: u64,
}

/// One RPC as the gateway routes it.
pub struct Rpc<'a> {
    pub session: &'a SessionId,
    pub method: &'static str,
    /// The request's first message, as the client sent it.
    pub first: Option<&'a [u8]>,
    /// The identity the gateway writes into requests.
    pub user: &'a str,
}

/// The new server, when the RPC goes to the session's current one.
pub struct Server<'a> {
    pub client: &'a Upstream,
    pub endpoint: &'a str,
    pub token: &'a str,
    pub starts: u32,
}

/// What the proxy does for one RPC.
#[derive(Default)]
pub struct Plan {
    /// Request messages: this field's value (the observed server-side id) becomes this.
    pub observed: Option<(u32, Arc<str>)>,
    /// Response messages: this field's value (the server-side id) becomes this.
    pub served: Option<(u32, Arc<str>)>,
    /// Each request message, rewritten (AddArtifacts streams are recorded whole).
    pub tap: Option<Arc<Tap>>,
    /// Records the state change once the RPC ended OK.
    pub on_ok: Option<Box<dyn FnOnce() + Send>>,
}

/// The messages of an AddArtifacts stream, up to the cap.
#[derive(Default)]
pub struct Tap {
    upload: Mutex<Upload>,
    max_bytes: u64,
}

#[derive(Default)]
struct Upload {
    messages: Vec<Bytes>,
    names: Vec<String>,
    bytes: u64,
    over: bool,
}

impl Tap {
    pub fn message(&self, message: &Bytes) {
        let mut upload = self.upload.lock().unwrap_or_else(|p| p.into_inner());
        upload
            .names
            .extend(proto::artifact_names(message).unwrap_or_default());
        upload.bytes += message.len() as u64;
        if upload.bytes > self.max_bytes {
            upload.over = true;
            upload.messages.clear();
        } else {
            upload.messages.push(message.clone());
        }
    }
}

impl Restore {
    /// Keeps state under `dir`, emptied now (state from an earlier run restores nothing). A
    /// directory that cannot be made is logged; what is then not kept is named at restore.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(err) = std::fs::create_dir_all(&dir) {
            tracing::warn!(%err, dir = %dir.display(), "cannot make the gateway's restore dir");
        }
        Restore {
            dir,
            max_bytes,
            clients: Mutex::default(),
            next_file: AtomicU64::new(0),
        }
    }

    /// Prepares an RPC: restores the Spark session's state first when `server` is new to it,
    /// and says how to rewrite and what to record. An error names what could not be restored.
    /// `server` is `None` for RPCs following an operation to the server that ran it.
    pub async fn prepare(
        self: &Arc<Self>,
        rpc: &Rpc<'_>,
        server: Option<&Server<'_>>,
    ) -> Result<Plan, Status> {
        let (Some(first), Some(server)) = (rpc.first, server) else {
            return Ok(Plan::default());
        };
        let Ok(Some(spark_session)) = proto::session_id(first) else {
            return Ok(Plan::default());
        };
        let key = Key {
            session: rpc.session.clone(),
            spark_session,
        };
        let client = self.client(&key, server.starts);
        if client.state().starts != server.starts {
            let _replaying = client.replaying.lock().await;
            if client.state().starts != server.starts {
                self.restore(&key, &client, rpc, first, server).await?;
            }
        }
        Ok(self.plan(&key, &client, rpc, first))
    }

    /// The kept state of a Spark session, made (on `starts`) at its first RPC.
    fn client(&self, key: &Key, starts: u32) -> Arc<Client> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if !clients.contains_key(key) && clients.len() >= MAX_CLIENTS {
            let oldest = clients
                .iter()
                .min_by_key(|(_, c)| c.state().used)
                .map(|(k, _)| k.clone());
            if let Some(client) = oldest.and_then(|k| clients.remove(&k)) {
                remove_files(client.state().log.drain(..).map(|k| k.file).collect());
            }
        }
        let client = clients.entry(key.clone()).or_insert_with(|| {
            Arc::new(Client {
                replaying: tokio::sync::Mutex::new(()),
                state: Mutex::new(State {
                    starts,
                    ..State::default()
                }),
            })
        });
        client.state().used = Some(Instant::now());
        client.clone()
    }

    fn plan(
        self: &Arc<Self>,
        key: &Key,
        client: &Arc<Client>,
        rpc: &Rpc<'_>,
        first: &[u8],
    ) -> Plan {
        let ids = client.state().ids.clone();
        let mut plan = Plan {
            observed: ids.as_ref().and_then(|(_, current)| {
                Some((proto::observed_field(rpc.method)?, current.clone()))
            }),
            served: ids
                .as_ref()
                .and_then(|(held, _)| Some((proto::server_side_field(rpc.method)?, held.clone()))),
            ..Plan::default()
        };
        let restore = self.clone();
        let client = client.clone();
        match rpc.method {
            "Config" => {
                if let Ok(Some(change)) = proto::conf_change(first) {
                    plan.on_ok = Some(Box::new(move || {
                        remove_files(client.state().change_confs(change));
                    }));
                }
            }
            "ExecutePlan" => match proto::execute_change(first) {
                Ok(Some(Change::Make(made))) => {
                    let message = Bytes::copy_from_slice(first);
                    plan.on_ok = Some(Box::new(move || restore.keep_made(client, made, message)));
                }
                Ok(Some(Change::Drop(made))) => {
                    plan.on_ok = Some(Box::new(move || {
                        remove_files(client.state().forget(&made).into_iter().collect());
                    }));
                }
                Ok(Some(Change::Confs(change))) => {
                    plan.on_ok = Some(Box::new(move || {
                        remove_files(client.state().change_confs(change));
                    }));
                }
                _ => {}
            },
            "AddArtifacts" => {
                let tap = Arc::new(Tap {
                    upload: Mutex::default(),
                    max_bytes: self.max_bytes,
                });
                plan.tap = Some(tap.clone());
                plan.on_ok = Some(Box::new(move || restore.keep_upload(client, &tap)));
            }
            "ReleaseSession" => {
                let key = key.clone();
                plan.on_ok = Some(Box::new(move || restore.forget(&key)));
            }
            _ => {}
        }
        plan
    }

    /// Replays the state on the new server and maps the server-side ids; an error names what
    /// was lost (the state is on the new server all the same, so the next RPC goes on).
    async fn restore(
        &self,
        key: &Key,
        client: &Client,
        rpc: &Rpc<'_>,
        first: &[u8],
        server: &Server<'_>,
    ) -> Result<(), Status> {
        let (confs, log, held, unkept) = {
            let mut state = client.state();
            let confs: Vec<(String, String)> = state.confs.clone().into_iter().collect();
            let log: Vec<(&'static str, String, PathBuf)> = state
                .log
                .iter()
                .map(|k| (k.method, k.what.clone(), k.file.clone()))
                .collect();
            let held = state.ids.as_ref().map(|(held, _)| held.clone());
            (confs, log, held, std::mem::take(&mut state.unkept))
        };
        let observed = proto::observed_field(rpc.method)
            .and_then(|field| proto::string_at(first, field).ok().flatten());
        let held = observed.map(Arc::from).or(held);
        tracing::info!(
            session = %key.session, spark_session = %key.spark_session, starts = server.starts,
            confs = confs.len(), kept = log.len(), "restoring a Spark session on its new server"
        );
        let mut lost: Vec<String> = unkept
            .into_iter()
            .map(|unkept| format!("{} (over gateway.restoreMaxBytes)", unkept.what))
            .collect();
        let replay = Replay {
            server,
            spark_session: &key.spark_session,
            user: rpc.user,
        };
        let current = match replay.confs(&confs).await {
            Ok(current) => Ok(current),
            // A conf the new server refuses: the rest still comes back.
            Err(err) if !confs.is_empty() => {
                lost.push(format!("confs {} ({err})", names(&confs)));
                replay.confs(&[]).await
            }
            Err(err) => Err(err),
        };
        let current = match current {
            Ok(current) => {
                for (method, what, file) in &log {
                    if let Err(err) = replay.file(method, file).await {
                        lost.push(format!("{what} ({err})"));
                    }
                }
                current
            }
            Err(err) => {
                let why = format!("the new server did not take it: {err}");
                lost.extend(log.iter().map(|(_, what, _)| format!("{what} ({why})")));
                None
            }
        };
        {
            let mut state = client.state();
            state.starts = server.starts;
            state.ids = match (held, current) {
                (Some(held), Some(current)) if *held != *current => Some((held, current.into())),
                _ => None,
            };
        }
        if lost.is_empty() {
            return Ok(());
        }
        tracing::warn!(session = %key.session, ?lost, "a Spark session was restored in part");
        Err(Status::failed_precondition(format!(
            "session {} stopped and resumed on a new Spark Connect server, and sk8 could not \
             restore all of this Spark session there; lost: {}. Everything else came back (the \
             confs, artifacts, temp views and functions sk8 kept; cached data is recomputed, \
             queries that were running are gone). Re-run what made the lost items, then carry on.",
            key.session,
            lost.join("; ")
        )))
    }

    /// Keeps the request that made a view or function, in place of an earlier one of its name.
    fn keep_made(&self, client: Arc<Client>, made: Made, message: Bytes) {
        let file = self.file();
        let bytes = message.len() as u64;
        let framed = wire::Frame {
            compressed: false,
            message,
        }
        .encode();
        let max_bytes = self.max_bytes;
        tokio::task::spawn_blocking(move || {
            let what = made.to_string();
            let mut state = client.state();
            let replaced = state.take(&made).map(RemoveOnDrop);
            let unkept = |what, made| Unkept {
                what,
                made: Some(made),
            };
            if state.bytes + bytes > max_bytes {
                state.unkept.push(unkept(what, made));
                return;
            }
            if let Err(err) = std::fs::write(&file, &framed) {
                tracing::warn!(%err, file = %file.display(), "cannot keep a view's or function's request");
                state.unkept.push(unkept(what, made));
                return;
            }
            drop(replaced);
            state.push(Kept {
                method: "ExecutePlan",
                what,
                made: Some(made),
                file,
                bytes,
            });
        });
    }

    fn keep_upload(&self, client: Arc<Client>, tap: &Tap) {
        let upload = std::mem::take(&mut *tap.upload.lock().unwrap_or_else(|p| p.into_inner()));
        if upload.names.is_empty() {
            return;
        }
        let file = self.file();
        let max_bytes = self.max_bytes;
        tokio::task::spawn_blocking(move || {
            let what = format!("artifact {}", upload.names.join(", "));
            let mut state = client.state();
            if upload.over || state.bytes + upload.bytes > max_bytes {
                state.unkept.push(Unkept { what, made: None });
                return;
            }
            let mut framed = Vec::with_capacity(upload.bytes as usize + 5 * upload.messages.len());
            for message in upload.messages {
                framed.extend_from_slice(
                    &wire::Frame {
                        compressed: false,
                        message,
                    }
                    .encode(),
                );
            }
            if let Err(err) = std::fs::write(&file, &framed) {
                tracing::warn!(%err, file = %file.display(), "cannot keep an artifact");
                state.unkept.push(Unkept { what, made: None });
                return;
            }
            state.push(Kept {
                method: "AddArtifacts",
                what,
                made: None,
                file,
                bytes: upload.bytes,
            });
        });
    }

    /// Drops a released Spark session's state.
    fn forget(&self, key: &Key) {
        let client = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if let Some(client) = client {
            remove_files(client.state().log.drain(..).map(|k| k.file).collect());
        }
    }

    fn file(&self) -> PathBuf {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{n}.grpc"))
    }
}

/// A response message with its server-side id (`field`) set to the one the client holds.
pub fn as_client_holds(message: Bytes, (field, held): &(u32, Arc<str>)) -> Bytes {
    proto::replace_string(&message, *field, Some(held)).unwrap_or(message)
}

/// A request message with its observed server-side id (`field`) set to the current server's.
pub fn as_server_knows(message: Bytes, (field, current): &(u32, Arc<str>)) -> Bytes {
    proto::replace_string(&message, *field, Some(current)).unwrap_or(message)
}

impl Client {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Applies a conf change; a key it sets or unsets forgets the SQL `SET` of that key kept
    /// earlier (the later change wins). Returns the files no longer needed.
    fn change_confs(&mut self, change: ConfChange) -> Vec<PathBuf> {
        let keys: Vec<String> = match change {
            ConfChange::Set(pairs) => pairs
                .into_iter()
                .map(|(key, value)| {
                    self.bytes += (key.len() + value.len()) as u64;
                    self.confs.insert(key.clone(), value);
                    key
                })
                .collect(),
            ConfChange::Unset(keys) => {
                for key in &keys {
                    self.confs.remove(key);
                }
                keys
            }
            ConfChange::Reset => {
                self.confs.clear();
                self.unkept
                    .retain(|u| u.made.as_ref().is_none_or(|m| m.kind != Kind::Conf));
                self.log
                    .iter()
                    .filter_map(|k| k.made.as_ref())
                    .filter(|made| made.kind == Kind::Conf)
                    .map(|made| made.name.clone())
                    .collect()
            }
        };
        keys.into_iter()
            .filter_map(|name| {
                self.forget(&Made {
                    kind: Kind::Conf,
                    name,
                })
            })
            .collect()
    }

    /// Takes out what made `made` earlier, returning its file (the caller removes it).
    fn take(&mut self, made: &Made) -> Option<PathBuf> {
        let at = self
            .log
            .iter()
            .position(|k| k.made.as_ref() == Some(made))?;
        let kept = self.log.remove(at);
        self.bytes -= kept.bytes;
        Some(kept.file)
    }

    /// A view or function dropped: neither replayed nor named as lost any more.
    fn forget(&mut self, made: &Made) -> Option<PathBuf> {
        self.unkept.retain(|u| u.made.as_ref() != Some(made));
        self.take(made)
    }

    fn push(&mut self, kept: Kept) {
        self.bytes += kept.bytes;
        self.log.push(kept);
    }
}

/// A kept file that is no longer needed.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn remove_files(files: Vec<PathBuf>) {
    if files.is_empty() {
        return;
    }
    tokio::task::spawn_blocking(move || {
        for file in files {
            let _ = std::fs::remove_file(file);
        }
    });
}

fn names(confs: &[(String, String)]) -> String {
    confs
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Replays kept requests on the new server, as the client's Spark session and user.
struct Replay<'a> {
    server: &'a Server<'a>,
    spark_session: &'a str,
    user: &'a str,
}

impl Replay<'_> {
    /// Sets the confs (or, with none, reads none); returns the new server's server-side id.
    async fn confs(&self, confs: &[(String, String)]) -> Result<Option<String>, String> {
        let request = proto::config_request(self.spark_session, confs);
        let answer = self.call("Config", vec![request]).await?;
        let field = proto::server_side_field("Config").unwrap_or_default();
        Ok(answer
            .first()
            .and_then(|m| proto::string_at(m, field).ok().flatten())
            .filter(|id| !id.is_empty()))
    }

    /// Replays the request messages of a kept file.
    async fn file(&self, method: &'static str, file: &Path) -> Result<(), String> {
        let bytes = tokio::fs::read(file)
            .await
            .map_err(|e| format!("cannot read what sk8 kept: {e}"))?;
        let mut reader = FrameReader::new(usize::MAX);
        reader.push(&bytes);
        let mut messages = Vec::new();
        while let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
            messages.push(proto::for_replay(method, &frame.message).map_err(|e| e.to_string())?);
        }
        self.call(method, messages).await.map(drop)
    }

    async fn call(&self, method: &str, messages: Vec<Bytes>) -> Result<Vec<Bytes>, String> {
        let messages = messages
            .iter()
            .map(|m| wire::with_user_id(m, self.user))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let server = self.server;
        call::call(
            server.client,
            server.endpoint,
            server.token,
            method,
            &messages,
        )
        .await
    }
}
