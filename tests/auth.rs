//! Authentication and authorization end to end, on the real daemon with every kind of
//! credential: static API tokens from `auth.tokensFile`, JWTs of an HS256 issuer, and JWTs of
//! a JWKS issuer (RS256 and ES256 keys) served by the test. A matrix of every route (here) and
//! every RPC (`auth/rpc.rs`) × every kind of caller (none, malformed, unknown, expired, wrong
//! issuer, another team's member, viewer, member, team-admin, platform-admin, the in-team
//! roles also by JWT); token rotation without a restart, and JWKS key rotation with the
//! JWT-only checks in `auth/jwt.rs`.

mod common;
#[path = "auth/jwt.rs"]
mod jwt;
#[path = "auth/rpc.rs"]
mod rpc;

use std::collections::HashMap;
use std::path::Path;

use common::{Engine, Options, TestApp, write_tokens};
use jwt::{HS_ISSUER, JWKS_ISSUER, JwksServer, Key, claims};
use reqwest::Method;
use serde_json::{Value, json};

/// The callers of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Caller {
    Anonymous,
    Malformed,
    UnknownToken,
    /// A JWT of the JWKS issuer, expired ten minutes ago.
    Expired,
    /// A well-signed JWT of an issuer sk8 does not trust.
    WrongIssuer,
    OtherTeam,
    Viewer,
    Member,
    TeamAdmin,
    PlatformAdmin,
    /// The same roles of team `payments` by JWT: HS256, RS256 (JWKS), ES256 (JWKS).
    ViewerJwt,
    MemberJwt,
    TeamAdminJwt,
}

impl Caller {
    const ALL: [Caller; 13] = [
        Caller::PlatformAdmin,
        Caller::Anonymous,
        Caller::Malformed,
        Caller::UnknownToken,
        Caller::Expired,
        Caller::WrongIssuer,
        Caller::OtherTeam,
        Caller::Viewer,
        Caller::Member,
        Caller::TeamAdmin,
        Caller::ViewerJwt,
        Caller::MemberJwt,
        Caller::TeamAdminJwt,
    ];

    /// The rank of a caller of team `payments` (None: not one).
    fn rank(self) -> Option<u8> {
        match self {
            Caller::Viewer | Caller::ViewerJwt => Some(0),
            Caller::Member | Caller::MemberJwt => Some(1),
            Caller::TeamAdmin | Caller::TeamAdminJwt => Some(2),
            Caller::PlatformAdmin => Some(3),
            _ => None,
        }
    }

    /// Whether sk8 cannot tell who this caller is.
    fn unauthenticated(self) -> bool {
        matches!(
            self,
            Caller::Anonymous
                | Caller::Malformed
                | Caller::UnknownToken
                | Caller::Expired
                | Caller::WrongIssuer
        )
    }
}

/// A daemon that knows every kind of credential, and each caller's `Authorization` header.
struct Setup {
    app: TestApp,
    headers: HashMap<Caller, String>,
    _idp: JwksServer,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// `extra` is merged over the daemon's config.
    async fn start(extra: Value) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens.yaml");
        write_tokens(&tokens, &TOKENS);
        let (rsa, ec) = (Key::rsa("rsa-1"), Key::ec("ec-1"));
        let idp = JwksServer::start(&[&rsa, &ec]).await;
        let mut options = Options::new(Engine::Sqlite);
        options.extra = json!({"auth": {"mode": "tokens", "tokensFile": tokens,
                                        "jwt": {"issuers": jwt::issuers(dir.path(), &idp.url)}}});
        common::merge(&mut options.extra, &extra);
        let app = TestApp::spawn(options).await;
        let payments = |iss: &str, user: &str, role: &str, ttl: i64| {
            claims(iss, user, &["payments"], role, ttl)
        };
        let bearer = |token: String| format!("Bearer {token}");
        let mut headers: HashMap<Caller, String> = [
            (Caller::Malformed, "Token member-a"),
            (Caller::UnknownToken, "Bearer no-such-token"),
            (Caller::OtherTeam, "Bearer member-b"),
            (Caller::Viewer, "Bearer viewer-a"),
            (Caller::Member, "Bearer member-a"),
            (Caller::TeamAdmin, "Bearer admin-a"),
            (Caller::PlatformAdmin, "Bearer platform"),
        ]
        .map(|(caller, header)| (caller, header.to_owned()))
        .into();
        let hs = Key::hs256(jwt::SECRET);
        let jwts = [
            (
                Caller::Expired,
                rsa.token(&payments(JWKS_ISSUER, "mia", "member", -600)),
            ),
            (
                Caller::WrongIssuer,
                ec.token(&payments("https://stranger.test", "mia", "member", 3600)),
            ),
            (
                Caller::ViewerJwt,
                hs.token(&payments(HS_ISSUER, "vic", "viewer", 3600)),
            ),
            (
                Caller::MemberJwt,
                rsa.token(&payments(JWKS_ISSUER, "max", "member", 3600)),
            ),
            (
                Caller::TeamAdminJwt,
                ec.token(&payments(JWKS_ISSUER, "ann", "team-admin", 3600)),
            ),
        ];
        headers.extend(jwts.map(|(caller, token)| (caller, bearer(token))));
        Setup {
            app,
            headers,
            _idp: idp,
            _dir: dir,
        }
    }

    fn header(&self, caller: Caller) -> Option<&str> {
        self.headers.get(&caller).map(String::as_str)
    }
}

const TOKENS: [(&str, &str, &[&str], &str); 5] = [
    ("viewer-a", "vera", &["payments"], "viewer"),
    ("member-a", "mia", &["payments"], "member"),
    ("admin-a", "ada", &["payments"], "team-admin"),
    ("platform", "pat", &[], "platform-admin"),
    ("member-b", "bob", &["risk"], "member"),
];

async fn sk8_with_tokens(tokens_file: &Path) -> TestApp {
    let mut options = Options::new(Engine::Sqlite);
    options.extra = json!({"auth": {"mode": "tokens", "tokensFile": tokens_file}});
    TestApp::spawn(options).await
}

async fn call(
    setup: &Setup,
    caller: Caller,
    method: &Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let app = &setup.app;
    let mut request = app.http.request(method.clone(), app.url(path));
    if let Some(header) = setup.header(caller) {
        request = request.header("authorization", header);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// One route of the matrix and the least rank of team `payments` it takes (None: public).
struct Route {
    method: Method,
    path: String,
    body: Option<Value>,
    least: Option<u8>,
}

fn route(method: Method, path: &str, body: Option<Value>, least: Option<u8>) -> Route {
    Route {
        method,
        path: path.into(),
        body,
        least,
    }
}

impl Route {
    /// Whether the path names one of team `payments`' resources.
    fn names_a_resource(&self, ids: &[&str]) -> bool {
        ids.iter().any(|id| self.path.contains(id)) || self.path.contains("/payments/")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_kind_of_caller_as_the_table_says() {
    let setup = Setup::start(json!({})).await;
    let job = common::fake_job("payments", "nightly", "succeed");
    let (status, created) = call(
        &setup,
        Caller::PlatformAdmin,
        &Method::POST,
        "/v1/jobs",
        Some(&job),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let session = json!({"team": "payments", "env": "dev", "name": "notebook"});
    let (status, created) = call(
        &setup,
        Caller::PlatformAdmin,
        &Method::POST,
        "/v1/sessions",
        Some(&session),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let sid = created["id"].as_str().unwrap().to_owned();

    let routes = [
        route(Method::POST, "/v1/jobs", Some(job.clone()), Some(1)),
        route(Method::GET, "/v1/jobs", None, Some(0)),
        route(Method::GET, &format!("/v1/jobs/{id}"), None, Some(0)),
        route(Method::GET, &format!("/v1/jobs/{id}/events"), None, Some(0)),
        route(Method::GET, &format!("/v1/jobs/{id}/logs"), None, Some(0)),
        route(
            Method::GET,
            &format!("/v1/jobs/{id}/attempts/1"),
            None,
            Some(0),
        ),
        route(
            Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            None,
            Some(1),
        ),
        route(Method::POST, "/v1/sessions", Some(session.clone()), Some(1)),
        route(Method::GET, "/v1/sessions", None, Some(0)),
        route(Method::GET, &format!("/v1/sessions/{sid}"), None, Some(0)),
        route(
            Method::GET,
            &format!("/v1/sessions/{sid}/events"),
            None,
            Some(0),
        ),
        route(
            Method::DELETE,
            &format!("/v1/sessions/{sid}"),
            None,
            Some(1),
        ),
        route(
            Method::PUT,
            "/v1/namespaces/payments/dev",
            Some(json!({})),
            Some(2),
        ),
        route(Method::GET, "/v1/namespaces/payments/dev", None, Some(0)),
        route(Method::GET, "/v1/namespaces", None, Some(0)),
        route(
            Method::DELETE,
            "/v1/namespaces/payments/dev?force=true",
            None,
            Some(2),
        ),
        route(Method::GET, "/healthz", None, None),
        route(Method::GET, "/readyz", None, None),
        route(Method::GET, "/metrics", None, None),
        route(Method::GET, "/openapi.json", None, None),
    ];
    for route in &routes {
        // What a platform admin gets is what anyone allowed gets (2xx, or the same answer).
        let mut allowed_status = None;
        for caller in Caller::ALL {
            // Deleting a namespace is not idempotent: each caller finds it there again.
            if route.method == Method::DELETE && route.path.starts_with("/v1/namespaces") {
                let (namespace, spec) = ("/v1/namespaces/payments/dev", json!({}));
                let put = call(
                    &setup,
                    Caller::PlatformAdmin,
                    &Method::PUT,
                    namespace,
                    Some(&spec),
                );
                assert!(put.await.0 < 300);
            }
            let (status, body) = call(
                &setup,
                caller,
                &route.method,
                &route.path,
                route.body.as_ref(),
            )
            .await;
            let cell = format!(
                "{} {} as {caller:?}: {status} {body}",
                route.method, route.path
            );
            let expected = match (route.least, caller, caller.rank()) {
                (None, _, _) => 200,
                (Some(_), caller, _) if caller.unauthenticated() => 401,
                // A member elsewhere: a role too small for the route is refused first; then
                // another team's job, session or namespace does not exist for them, a list is
                // empty, and creating in another team is refused.
                (Some(least), Caller::OtherTeam, _) if least > 1 => 403,
                (Some(_), Caller::OtherTeam, _) if route.names_a_resource(&[&id, &sid]) => 404,
                (Some(_), Caller::OtherTeam, _) if route.method == Method::POST => 403,
                (Some(least), _, Some(rank)) if rank < least => 403,
                _ => *allowed_status.get_or_insert(status),
            };
            let same_class = status / 100 == 2 && expected / 100 == 2;
            assert!(
                status == expected || same_class,
                "{cell}; expected {expected}"
            );
            if status == 401 {
                assert_eq!(body["error"]["code"], "unauthenticated", "{cell}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                let says = match caller {
                    Caller::Expired => "expired",
                    Caller::WrongIssuer => "is not trusted",
                    _ => "",
                };
                assert!(message.contains(says), "{cell}");
            }
            if caller == Caller::OtherTeam && route.method == Method::GET && status == 200 {
                let listed = body.to_string();
                assert!(!listed.contains(&id) && !listed.contains(&sid), "{cell}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    write_tokens(&tokens, &[("first", "mia", &["payments"], "member")]);
    let app = sk8_with_tokens(&tokens).await;
    let get = |token: &'static str| {
        let app = &app;
        async move {
            let request = app.http.get(app.url("/v1/jobs")).bearer_auth(token);
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(get("first").await, 200);
    assert_eq!(get("second").await, 401);
    // Rotate: the new token in, the old one out (a later mtime, as a rewrite would have).
    write_tokens(&tokens, &[("second", "mia", &["payments"], "member")]);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&tokens)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get("second").await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the new token never worked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(get("first").await, 401, "the old token is revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_beyond_loopback_without_authentication_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sk8.yaml");
    std::fs::write(
        &config,
        "http: {addr: 0.0.0.0:0}\ngateway: {addr: 127.0.0.1:0}\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sk8"))
        .args(["serve", "--check-config", "--config"])
        .arg(&config)
        .env_remove("SK8_HTTP_ADDR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("auth.mode") && stderr.contains("allowUnauthenticated"),
        "{stderr}"
    );
}
