//! The Spark Connect gateway: a gRPC server (tonic) that forwards every method of
//! `spark.connect.SparkConnectService` to the Spark Connect server of the session the caller
//! names, streaming both ways without buffering whole streams.
//!
//! - Routing: the `x-sk8-session` metadata names the session (pyspark sends connection-string
//!   parameters as metadata on every call); a READY session's endpoint is cached, a STARTING
//!   one or a STOPPED one that auto-resumes is waited for, anything else is a clear error.
//!   ReattachExecute, ReleaseExecute and Interrupt go to the server that ran the operation.
//! - Callers authenticate like on the HTTP API (`authorization: Bearer …`, or
//!   `authentication: Bearer …` from older JVM clients), and reach only sessions of their
//!   teams (others' are not found), as members at least.
//! - Requests are decoded only as far as routing needs ([`wire`]); every request message gets
//!   the caller's identity as `user_context.user_id`. The client's credentials never go
//!   upstream; sk8's own token for the session's server does ([`token`]).
//! - Compression is the gateway's per hop (`gateway.compression`): servers are never asked to
//!   compress (the client's `grpc-accept-encoding` does not go upstream), and the client hop
//!   is gzipped only when configured.
//! - Unknown methods are forwarded like the others.
//! - A session resumed on a new server gets each open client's Spark session back there
//!   before the client's first RPC: confs, artifacts and temp views, under the server-side
//!   session id the client holds ([`restore`]).
//! - Each server has its own pool of HTTP/2 connections, dropped once its session is found
//!   stopped or moved; each team's RPCs pass `limits.gatewayRpcs`; refusals are audited.

pub mod activity;
mod body;
mod compression;
mod messages;
mod restore;
pub mod token;
pub mod wire;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyStream;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tonic::Status;
use tonic::server::NamedService;

use self::activity::Activity;
use self::body::{ResponseBody, Rewriter, Transform, UpstreamBody};
use self::restore::Restore;
use self::token::UpstreamTokens;
use self::wire::FrameReader;
use crate::audit::{Audit, AuditEvent};
use crate::auth::{Authenticator, Identity, Role};
use crate::config::Encoding;
use crate::domain::{Session, SessionId, SessionState};
use crate::error::Error;
use crate::limits::Limits;
use crate::service::sessions::{self, SessionService};

/// The gRPC service proxied.
pub const SERVICE: &str = "spark.connect.SparkConnectService";
/// The metadata key naming the session.
pub const SESSION_HEADER: &str = "x-sk8-session";
/// How often a waiting RPC looks at its session's state again.
const WAIT_POLL: Duration = Duration::from_millis(200);
/// How long a READY session's endpoint is used without reading the session again.
const ENDPOINT_TTL: Duration = Duration::from_secs(1);
/// At most this many operation ids are remembered (older ones are forgotten wholesale).
const MAX_OPERATIONS: usize = 100_000;

type Upstream = Client<HttpConnector, UpstreamBody>;

/// A client for one server: one HTTP/2 connection multiplexing every RPC, kept between them.
/// Keep-alive pings go only while streams are open: grpc-java servers (Apache Spark's) answer
/// pings on an idle connection with a GOAWAY (`too_many_pings`). An idle connection that died
/// is found out at its next use, and the request is retried on a new one if it was not sent.
fn upstream_client() -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_only(true)
        .http2_adaptive_window(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(300))
        .build(connector)
}

/// A READY session as last read.
struct Cached {
    endpoint: String,
    team: String,
    /// Which server it is (the session's `starts`).
    starts: u32,
    read: Instant,
}

#[derive(Clone, Debug)]
pub struct GatewaySettings {
    pub resume_timeout: Duration,
    pub max_request_message: usize,
    /// The client hop's compression (`gateway.compression.toClient`).
    pub to_client: Encoding,
    /// Where Spark sessions' artifacts and views are kept for a restore, and up to how many
    /// bytes each (`gateway.restoreMaxBytes`).
    pub restore_dir: PathBuf,
    pub restore_max_bytes: u64,
}

/// The gateway service; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: SessionService,
    settings: GatewaySettings,
    /// One client, and so one pool of HTTP/2 connections, per server: a stopped session's
    /// connections go with its pool.
    pools: RwLock<HashMap<String, Upstream>>,
    activity: Arc<Activity>,
    tokens: Arc<UpstreamTokens>,
    auth: Arc<Authenticator>,
    audit: Audit,
    limits: Arc<Limits>,
    /// READY sessions' endpoints and teams, as read at that time.
    endpoints: RwLock<HashMap<SessionId, Cached>>,
    /// Operation id → the endpoint of the server that runs it.
    operations: RwLock<HashMap<String, String>>,
    /// Spark sessions' state, for when their session resumes on a new server.
    restore: Arc<Restore>,
}

impl Gateway {
    pub fn new(
        sessions: SessionService,
        settings: GatewaySettings,
        activity: Arc<Activity>,
        tokens: Arc<UpstreamTokens>,
        auth: Arc<Authenticator>,
        audit: Audit,
        limits: Arc<Limits>,
    ) -> Self {
        let restore = Restore::new(settings.restore_dir.clone(), settings.restore_max_bytes);
        Gateway {
            inner: Arc::new(Inner {
                sessions,
                restore: Arc::new(restore),
                settings,
                pools: RwLock::default(),
                activity,
                tokens,
                auth,
                audit,
                limits,
                endpoints: RwLock::default(),
                operations: RwLock::default(),
            }),
        }
    }

    async fn proxy(
        &self,
        request: Request<tonic::body::Body>,
    ) -> Result<Response<tonic::body::Body>, Status> {
        let started = Instant::now();
        let method = method_of(request.uri().path());
        let (parts, body) = request.into_parts();
        let caller = self.caller(&parts.headers, method).await?;
        crate::telemetry::rpc::record_user(&caller.user);
        let gzip = self.inner.settings.to_client == Encoding::Gzip;
        let mut rewriter = Rewriter {
            user: caller.user.as_str().into(),
            gunzip: gzip && compression::names_gzip(&parts.headers, "grpc-encoding"),
            max_message: self.inner.settings.max_request_message,
            observed: None,
            tap: None,
        };
        let session = session_of(&parts.headers)?;
        let mut reader = FrameReader::new(self.inner.settings.max_request_message);
        let mut rest = BodyStream::new(body);
        let first = first_message(&mut reader, &mut rest)
            .await?
            .map(|frame| rewriter.unpack(frame))
            .transpose()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // A message that is not protobuf is refused here, before its session is looked up:
        // the answer is about the request, whichever session it names.
        let operation = match &first {
            Some(message) => {
                wire::routing(message, operation_field(method))
                    .map_err(|e| Status::invalid_argument(e.to_string()))?
                    .operation_id
            }
            None => None,
        };
        let endpoint = self
            .endpoint(&session, method, operation.as_deref(), &caller)
            .await?;
        if let (Some(operation), "ExecutePlan") = (&operation, method) {
            self.remember(operation, &endpoint);
        }
        // Busy from here: a restore replaying state keeps the session from idling out.
        let busy = self.inner.activity.begin(&session);
        let token = self.inner.tokens.for_session(&session);
        let pool = self.pool(&endpoint);
        let server = self
            .starts(&session, &endpoint)
            .map(|starts| restore::Server {
                client: &pool,
                endpoint: &endpoint,
                token: &token,
                starts,
            });
        let rpc = restore::Rpc {
            session: &session,
            method,
            first: first.as_deref(),
            user: &caller.user,
        };
        let plan = self.inner.restore.prepare(&rpc, server.as_ref()).await?;
        rewriter.observed = plan.observed;
        rewriter.tap = plan.tap;
        let first = first
            .map(|message| rewriter.finish(message))
            .transpose()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut upstream = upstream_request(
            &parts,
            &endpoint,
            &token,
            body::rewritten_request(first, reader, rest, rewriter),
        )?;
        crate::telemetry::rpc::inject_upstream(upstream.headers_mut());
        let connect = Instant::now();
        let response = pool.request(upstream).await.map_err(|err| {
            self.forget(&session);
            self.drop_pool(&endpoint);
            Status::unavailable(format!(
                "the Spark Connect server of session {session} at {endpoint} did not answer: {err}; \
                 the session may be restarting, retry in a moment"
            ))
        })?;
        metrics::histogram!("sk8_gateway_upstream_seconds").record(connect.elapsed().as_secs_f64());
        let (mut response, incoming) = response.into_parts();
        let trailers_only = response
            .headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let transform = Transform {
            redact: method == "Config",
            gzip: gzip && compression::names_gzip(&parts.headers, "grpc-accept-encoding"),
            served: plan.served,
        };
        client_hop_encoding(&mut response.headers, gzip, transform.gzip);
        let body = ResponseBody::new(incoming, method, started, busy, trailers_only, transform)
            .on_ok(plan.on_ok);
        Ok(Response::from_parts(response, tonic::body::Body::new(body)))
    }

    /// Who is calling, from `authorization` (or `authentication`) metadata; a refusal is
    /// audited.
    async fn caller(&self, headers: &HeaderMap, method: &str) -> Result<Identity, Status> {
        let credential = headers
            .get("authorization")
            .or_else(|| headers.get("authentication"))
            .and_then(|v| v.to_str().ok());
        let identity = self.inner.auth.authenticate(credential).await;
        identity.map_err(|err| {
            let err = Error::from(err);
            self.inner.audit.record(
                AuditEvent::new("anonymous", "connect.denied")
                    .resource(format!("rpc/{method}"))
                    .failed(&err),
            );
            Status::from(err)
        })
    }

    /// Whether `caller` may send this RPC to a session of `team`; a refusal is audited.
    fn authorize(&self, caller: &Identity, session: &SessionId, team: &str) -> Result<(), Status> {
        crate::telemetry::rpc::record_team(team);
        may_use(caller, session, team).map_err(|err| {
            self.inner.audit.record(
                AuditEvent::by(caller, "connect.denied")
                    .team(team.to_owned())
                    .resource(format!("session/{session}"))
                    .failed(&err),
            );
            Status::from(err)
        })
    }

    /// A token of the team's RPC rate (`limits.gatewayRpcs`).
    fn admit(&self, team: &str) -> Result<(), Status> {
        Ok(self.inner.limits.gateway_rpcs.admit(team)?)
    }

    /// The endpoint to send the RPC to, waiting for the session when it is starting; only
    /// for a caller who may use the session.
    async fn endpoint(
        &self,
        session: &SessionId,
        method: &str,
        operation: Option<&str>,
        caller: &Identity,
    ) -> Result<String, Status> {
        let follows_operation =
            matches!(method, "ReattachExecute" | "ReleaseExecute" | "Interrupt");
        let owner = operation
            .filter(|_| follows_operation)
            .and_then(|op| self.operation(op));
        if let Some((endpoint, team)) = self.cached(session) {
            self.authorize(caller, session, &team)?;
            self.admit(&team)?;
            return Ok(owner.unwrap_or(endpoint));
        }
        let deadline = Instant::now() + self.inner.settings.resume_timeout;
        let mut admitted = false;
        loop {
            let found = self
                .inner
                .sessions
                .find(session.as_str())
                .await
                .map_err(Status::from)?;
            self.authorize(caller, session, &found.team)?;
            self.retire_stale(&found);
            if !admitted {
                self.admit(&found.team)?;
                admitted = true;
            }
            if let Some(endpoint) = owner.clone() {
                return Ok(endpoint);
            }
            if let Some(endpoint) = self.ready_endpoint(&found, caller).await? {
                return Ok(endpoint);
            }
            if Instant::now() >= deadline {
                return Err(Status::unavailable(format!(
                    "session {session} is {} and did not become READY within \
                     gateway.resumeTimeoutSeconds; retry, or see `sk8 session get {session}`",
                    found.state
                )));
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// A READY session's endpoint; `None` while it is worth waiting (starting, or resumed
    /// now); an error when it will not serve.
    async fn ready_endpoint(
        &self,
        session: &Session,
        caller: &Identity,
    ) -> Result<Option<String>, Status> {
        match session.state {
            SessionState::Ready => {
                let endpoint = session.endpoint.clone().ok_or_else(|| {
                    Status::unavailable(format!("session {} has no endpoint yet", session.id))
                })?;
                let cached = Cached {
                    endpoint: endpoint.clone(),
                    team: session.team.clone(),
                    starts: session.starts,
                    read: Instant::now(),
                };
                self.inner
                    .endpoints
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(session.id.clone(), cached);
                Ok(Some(endpoint))
            }
            SessionState::Starting => Ok(None),
            // Stopping for idleness just as a query arrives: wait, then resume it.
            SessionState::Stopping if session.deleted_at.is_none() && session.spec.auto_resume => {
                Ok(None)
            }
            SessionState::Stopped if session.resumable() => {
                tracing::info!(session = %session.id, "resuming a stopped session for an RPC");
                self.inner
                    .sessions
                    .resume(&session.id, caller)
                    .await
                    .map_err(Status::from)?;
                Ok(None)
            }
            state => Err(not_serving(session, state)),
        }
    }

    /// A READY session's endpoint and team read less than [`ENDPOINT_TTL`] ago: a session
    /// stopped for idleness is noticed (and resumed) by the next RPC after that.
    fn cached(&self, session: &SessionId) -> Option<(String, String)> {
        let endpoints = self
            .inner
            .endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let cached = endpoints.get(session)?;
        (cached.read.elapsed() < ENDPOINT_TTL)
            .then(|| (cached.endpoint.clone(), cached.team.clone()))
    }

    /// Which server (`starts`) serves the session at `endpoint`, if that is its current one.
    fn starts(&self, session: &SessionId, endpoint: &str) -> Option<u32> {
        let endpoints = self
            .inner
            .endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let cached = endpoints.get(session)?;
        (cached.endpoint == endpoint).then_some(cached.starts)
    }

    /// Forgets a session's endpoint (it stopped, or did not answer).
    fn forget(&self, session: &SessionId) {
        let mut endpoints = self
            .inner
            .endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner());
        endpoints.remove(session);
    }

    /// The client of a server's pool, made on first use.
    fn pool(&self, endpoint: &str) -> Upstream {
        let pools = self.inner.pools.read().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = pools.get(endpoint) {
            return client.clone();
        }
        drop(pools);
        let mut pools = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
        let client = pools
            .entry(endpoint.to_owned())
            .or_insert_with(upstream_client)
            .clone();
        metrics::gauge!("sk8_gateway_upstream_pools").set(pools.len() as f64);
        client
    }

    /// Drops a server's pool: its idle connections close now, busy ones when their streams end.
    fn drop_pool(&self, endpoint: &str) {
        let mut pools = self.inner.pools.write().unwrap_or_else(|p| p.into_inner());
        if pools.remove(endpoint).is_some() {
            metrics::gauge!("sk8_gateway_upstream_pools").set(pools.len() as f64);
        }
    }

    /// Forgets what was cached of a session that no longer serves where it did (stopped,
    /// starting again, or moved), and drops the pool of its former server.
    fn retire_stale(&self, session: &Session) {
        let former = {
            let endpoints = self
                .inner
                .endpoints
                .read()
                .unwrap_or_else(|p| p.into_inner());
            endpoints.get(&session.id).map(|c| c.endpoint.clone())
        };
        let Some(former) = former else { return };
        if session.state != SessionState::Ready || session.endpoint.as_deref() != Some(&former) {
            self.forget(&session.id);
            self.drop_pool(&former);
        }
    }

    fn operation(&self, operation: &str) -> Option<String> {
        let operations = self
            .inner
            .operations
            .read()
            .unwrap_or_else(|p| p.into_inner());
        operations.get(operation).cloned()
    }

    fn remember(&self, operation: &str, endpoint: &str) {
        let mut operations = self
            .inner
            .operations
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if operations.len() >= MAX_OPERATIONS {
            operations.clear();
        }
        operations.insert(operation.to_owned(), endpoint.to_owned());
    }
}

impl NamedService for Gateway {
    const NAME: &'static str = SERVICE;
}

impl tower::Service<Request<tonic::body::Body>> for Gateway {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let gateway = self.clone();
        Box::pin(async move {
            let method = method_of(request.uri().path());
            let refused = move |status: Status| {
                metrics::counter!(
                    "sk8_gateway_rpcs_total",
                    "method" => method,
                    "code" => crate::telemetry::rpc::grpc_code_name(&(status.code() as i32).to_string())
                )
                .increment(1);
                status.into_http()
            };
            // While OTLP export is on, the RPC's span (telemetry::rpc) wraps it to the end.
            let span = crate::telemetry::rpc::span(SERVICE, method, request.headers());
            if span.is_disabled() {
                return Ok(gateway.proxy(request).await.unwrap_or_else(refused));
            }
            let (request, tally) = crate::telemetry::rpc::count_request(&span, request);
            let request = request.map(tonic::body::Body::new);
            let proxied = tracing::Instrument::instrument(gateway.proxy(request), span.clone());
            let response = proxied.await.unwrap_or_else(refused);
            let response = crate::telemetry::rpc::finish(span, tally, response);
            Ok(response.map(tonic::body::Body::new))
        })
    }
}

/// The methods of `spark.connect.SparkConnectService` sk8 knows by name (others are forwarded
/// all the same, counted as `other`).
pub const METHODS: [&str; 12] = [
    "ExecutePlan",
    "AnalyzePlan",
    "Config",
    "AddArtifacts",
    "ArtifactStatus",
    "Interrupt",
    "ReattachExecute",
    "ReleaseExecute",
    "ReleaseSession",
    "FetchErrorDetails",
    "CloneSession",
    "GetStatus",
];

/// The method name, as a static label for the known ones.
fn method_of(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or_default();
    METHODS
        .into_iter()
        .find(|known| *known == name)
        .unwrap_or("other")
}

/// The field holding the operation id, for the methods that name one.
fn operation_field(method: &str) -> Option<u32> {
    match method {
        "ExecutePlan" | "Interrupt" => Some(6),
        "ReattachExecute" | "ReleaseExecute" => Some(3),
        _ => None,
    }
}

fn session_of(headers: &HeaderMap) -> Result<SessionId, Status> {
    let value = headers.get(SESSION_HEADER).ok_or_else(|| {
        Status::not_found(format!(
            "no session named: connect with sc://<sk8>:15002/;{SESSION_HEADER}=<id> \
             (`sk8 session connect NAME` prints it; `sk8 session list` shows your sessions)"
        ))
    })?;
    let text = value.to_str().unwrap_or_default();
    SessionId::parse(text).ok_or_else(|| {
        Status::not_found(format!(
            "session {text:?} not found; `sk8 session list` shows the sessions you can see"
        ))
    })
}

/// Reads the request's first message (every Spark Connect RPC sends one at once).
async fn first_message(
    reader: &mut FrameReader,
    body: &mut BodyStream<tonic::body::Body>,
) -> Result<Option<wire::Frame>, Status> {
    use futures::StreamExt;
    loop {
        if let Some(frame) = reader
            .next_frame()
            .map_err(|e| Status::invalid_argument(e.to_string()))?
        {
            return Ok(Some(frame));
        }
        match body.next().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    body::count_in(data.len());
                    reader.push(&data);
                }
            }
            Some(Err(err)) => {
                return Err(Status::cancelled(format!("the client went away: {err}")));
            }
            None if reader.has_partial() => {
                return Err(Status::invalid_argument(
                    "the request ended in the middle of a message",
                ));
            }
            None => return Ok(None),
        }
    }
}

/// The response headers as the client hop has them: the encodings the gateway (not the
/// server) accepts, and gzip named when the gateway compresses this response.
fn client_hop_encoding(headers: &mut HeaderMap, accepts_gzip: bool, gzipped: bool) {
    headers.remove("grpc-accept-encoding");
    headers.remove("grpc-encoding");
    let gzip = http::HeaderValue::from_static(compression::GZIP);
    if accepts_gzip {
        headers.insert("grpc-accept-encoding", gzip.clone());
    }
    if gzipped {
        headers.insert("grpc-encoding", gzip);
    }
}

/// The request to the session's server: the client's metadata minus its credentials, sk8's
/// own routing keys and its encodings (the server hop is never compressed: no offer of
/// compressed responses goes up, and requests go up unpacked), plus sk8's token for that
/// server.
fn upstream_request(
    parts: &http::request::Parts,
    endpoint: &str,
    token: &str,
    body: UpstreamBody,
) -> Result<Request<UpstreamBody>, Status> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: http::Uri = format!("http://{endpoint}{path}")
        .parse()
        .map_err(|e| Status::internal(format!("bad upstream address {endpoint}: {e}")))?;
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(http::Version::HTTP_2)
        .body(body)
        .map_err(|e| Status::internal(e.to_string()))?;
    let headers = request.headers_mut();
    for (name, value) in &parts.headers {
        let key = name.as_str();
        let private = key == "authorization"
            || key == "authentication"
            || key.starts_with("x-sk8-")
            || key == "host"
            || key == "content-length"
            || key == "grpc-accept-encoding"
            || key == "grpc-encoding";
        if !private {
            headers.append(name.clone(), value.clone());
        }
    }
    let bearer = http::HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|e| Status::internal(e.to_string()))?;
    headers.insert(http::header::AUTHORIZATION, bearer);
    Ok(request)
}

/// Only members of a session's team may use it; to anyone else it does not exist.
fn may_use(caller: &Identity, session: &SessionId, team: &str) -> Result<(), Error> {
    if !caller.sees(team) {
        return Err(sessions::not_found(session.as_str()));
    }
    if caller.role < Role::Member {
        return Err(Error::Forbidden(format!(
            "{} is a {} of team {team}; running queries takes the member role",
            caller.user,
            caller.role.as_str()
        )));
    }
    Ok(())
}

fn not_serving(session: &Session, state: SessionState) -> Status {
    let id = &session.id;
    let why = session.reason.as_deref().unwrap_or("no reason recorded");
    if session.deleted_at.is_some() {
        return Status::not_found(format!(
            "session {id} was deleted; create a new one with `sk8 session create`"
        ));
    }
    Status::failed_precondition(format!(
        "session {id} is {state} ({why}); start it again with `sk8 session create` using the \
         same team, env and name"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use http_body_util::BodyExt;

    use super::*;
    use crate::config::{AuthConfig, LimitsConfig};
    use crate::domain::SpecDefaults;
    use crate::domain::jobspec::Format;
    use crate::store::Store;

    const SERVING: &str = "10.0.0.2:15002";

    /// A gateway over an in-memory store holding one READY session served at [`SERVING`].
    async fn gateway_with_a_ready_session() -> (Gateway, SessionId, Identity) {
        let store = Store::in_memory().await;
        let defaults = SpecDefaults {
            spark_version: "4.0.1".into(),
            image: "i".into(),
        };
        let body = br#"{"team":"payments","env":"dev","name":"notebook"}"#;
        let mut session = Session::new(
            crate::domain::SessionSpec::parse(body, Format::Json, &defaults).unwrap(),
            chrono::Utc::now(),
        );
        store.session_insert(&session).await.unwrap();
        session.state = SessionState::Ready;
        session.endpoint = Some(SERVING.into());
        assert!(store.session_save(&mut session, None).await.unwrap());
        let (audit, _writer) = crate::audit::Audit::start(store.clone(), None);
        let limits = Arc::new(Limits::new(&LimitsConfig::default()));
        let sessions = SessionService::new(
            store,
            Arc::new(crate::backend::noop::NoopBackend),
            defaults,
            "sk8:15002".into(),
            Arc::default(),
            audit.clone(),
            limits.clone(),
        );
        let settings = GatewaySettings {
            resume_timeout: Duration::from_secs(1),
            max_request_message: 1 << 20,
            to_client: Encoding::Off,
            restore_dir: std::env::temp_dir()
                .join(format!("sk8-restore-{}", SessionId::generate())),
            restore_max_bytes: 1 << 20,
        };
        let gateway = Gateway::new(
            sessions,
            settings,
            Arc::default(),
            Arc::new(UpstreamTokens::from_key(b"0123456789abcdef")),
            Arc::new(Authenticator::new(&AuthConfig::default(), "dev").unwrap()),
            audit,
            limits,
        );
        let caller = Identity {
            user: "mia".into(),
            teams: BTreeSet::from(["payments".to_owned()]),
            role: Role::Member,
        };
        (gateway, session.id, caller)
    }

    #[test]
    fn servers_are_never_asked_to_compress_and_never_see_the_clients_credentials() {
        let client = Request::builder()
            .uri("http://sk8:15002/spark.connect.SparkConnectService/ExecutePlan")
            .header("authorization", "Bearer client-secret")
            .header(SESSION_HEADER, "01kb2r5q3h7m9x4c2d")
            .header("grpc-accept-encoding", "identity, deflate, gzip")
            .header("grpc-encoding", "gzip")
            .header("te", "trailers")
            .header("user-agent", "grpc-python")
            .body(())
            .unwrap();
        let (parts, ()) = client.into_parts();
        let empty = http_body_util::Empty::new().map_err(|never| match never {});
        let up = upstream_request(&parts, SERVING, "t0k", empty.boxed_unsync()).unwrap();
        let names: BTreeSet<_> = up.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, BTreeSet::from(["authorization", "te", "user-agent"]));
        assert_eq!(up.headers()["authorization"], "Bearer t0k");
        assert_eq!(
            up.uri(),
            "http://10.0.0.2:15002/spark.connect.SparkConnectService/ExecutePlan"
        );
    }

    #[test]
    fn the_client_hop_names_the_gateways_encodings_not_the_servers() {
        let server = || {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-accept-encoding", "gzip,deflate".parse().unwrap());
            headers
        };
        let mut off = server();
        client_hop_encoding(&mut off, false, false);
        assert!(off.is_empty(), "{off:?}");
        let mut gzip = server();
        client_hop_encoding(&mut gzip, true, true);
        assert_eq!(gzip["grpc-accept-encoding"], "gzip");
        assert_eq!(gzip["grpc-encoding"], "gzip");
    }

    #[tokio::test]
    async fn operations_go_back_to_the_server_that_runs_them() {
        let (gateway, session, caller) = gateway_with_a_ready_session().await;
        // The operation started on a server the session has since moved away from.
        gateway.remember("op-1", "10.0.0.1:15002");
        for method in ["ReattachExecute", "ReleaseExecute", "Interrupt"] {
            let to = gateway.endpoint(&session, method, Some("op-1"), &caller);
            assert_eq!(to.await.unwrap(), "10.0.0.1:15002", "{method}");
        }
        // Other methods, and operations sk8 never saw, go to the session's server.
        let execute = gateway.endpoint(&session, "ExecutePlan", Some("op-1"), &caller);
        assert_eq!(execute.await.unwrap(), SERVING);
        let unknown = gateway.endpoint(&session, "ReattachExecute", Some("op-2"), &caller);
        assert_eq!(unknown.await.unwrap(), SERVING);
        let analyze = gateway.endpoint(&session, "AnalyzePlan", None, &caller);
        assert_eq!(analyze.await.unwrap(), SERVING);
    }

    #[tokio::test]
    async fn another_teams_caller_cannot_follow_an_operation_into_a_session() {
        let (gateway, session, _) = gateway_with_a_ready_session().await;
        gateway.remember("op-1", "10.0.0.1:15002");
        let stranger = Identity {
            user: "bob".into(),
            teams: BTreeSet::from(["risk".to_owned()]),
            role: Role::Member,
        };
        let refused = gateway.endpoint(&session, "ReattachExecute", Some("op-1"), &stranger);
        assert_eq!(refused.await.unwrap_err().code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn a_session_that_moved_or_stopped_takes_its_former_servers_pool_with_it() {
        let (gateway, id, caller) = gateway_with_a_ready_session().await;
        let mut session = gateway.inner.sessions.find(id.as_str()).await.unwrap();
        gateway
            .endpoint(&id, "ExecutePlan", None, &caller)
            .await
            .unwrap();
        gateway.pool(SERVING);
        let pools = |gateway: &Gateway| gateway.inner.pools.read().unwrap().len();
        // Still READY where it was: kept.
        gateway.retire_stale(&session);
        assert_eq!((pools(&gateway), gateway.cached(&id).is_some()), (1, true));
        // READY somewhere else (resumed on a new driver): the former server's pool goes.
        session.endpoint = Some("10.0.0.3:15002".into());
        gateway.retire_stale(&session);
        assert_eq!((pools(&gateway), gateway.cached(&id).is_some()), (0, false));
        // Stopped: likewise.
        gateway
            .endpoint(&id, "ExecutePlan", None, &caller)
            .await
            .unwrap();
        gateway.pool(SERVING);
        session.endpoint = None;
        session.state = SessionState::Stopped;
        gateway.retire_stale(&session);
        assert_eq!(pools(&gateway), 0);
    }
}
