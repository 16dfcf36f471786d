//! JWTs for the auth suite: signing keys (HS256 secrets, the RSA key of
//! `tests/fixtures/jwt`, ECDSA P-256 keys generated per run), tokens signed with them, and a
//! JWKS server on 127.0.0.1 whose published keys a test changes at will. Beside them, the
//! tests of what only JWTs do: key rotation at the issuer without a restart, and a clear
//! refusal for every way a token can be wrong.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use super::common::{self, Engine as Store, Options, TestApp};

/// The issuer sk8 trusts with an HS256 secret, the one it trusts with a JWKS, and the
/// audience both put in their tokens.
pub const HS_ISSUER: &str = "https://hs.idp.test";
pub const JWKS_ISSUER: &str = "https://jwks.idp.test";
pub const AUDIENCE: &str = "sk8";
/// The HS256 secret (32 bytes, as sk8 requires).
pub const SECRET: &[u8] = b"a shared secret of 32 bytes, ok!";

enum Signer {
    Hs256(Vec<u8>),
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
}

/// A signing key and its key id.
pub struct Key {
    kid: String,
    signer: Signer,
}

impl Key {
    pub fn hs256(secret: &[u8]) -> Key {
        Key {
            kid: "hs".into(),
            signer: Signer::Hs256(secret.to_vec()),
        }
    }

    /// The RSA key of `tests/fixtures/jwt/rsa-2048.pem`.
    pub fn rsa(kid: &str) -> Key {
        let pem = std::fs::read_to_string(common::fixture("jwt/rsa-2048.pem")).unwrap();
        let base64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::prelude::BASE64_STANDARD.decode(base64).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Rs256(RsaKeyPair::from_pkcs8(&der).unwrap()),
        }
    }

    /// A new ECDSA P-256 key.
    pub fn ec(kid: &str) -> Key {
        let (alg, rng) = (
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            SystemRandom::new(),
        );
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Es256(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()),
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rs256(key) => {
                let public: ring::rsa::PublicKeyComponents<Vec<u8>> = key.public().into();
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                       "n": B64.encode(&public.n), "e": B64.encode(&public.e)})
            }
            Signer::Es256(key) => {
                let point = key.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
                       "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])})
            }
            Signer::Hs256(_) => panic!("a shared secret is not published"),
        }
    }

    /// A JWT of these claims, signed with this key.
    pub fn token(&self, claims: &Value) -> String {
        let alg = match self.signer {
            Signer::Hs256(_) => "HS256",
            Signer::Rs256(_) => "RS256",
            Signer::Es256(_) => "ES256",
        };
        let header = json!({"alg": alg, "typ": "JWT", "kid": self.kid});
        let signed = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        format!("{signed}.{}", B64.encode(self.sign(signed.as_bytes())))
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Hs256(secret) => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
                ring::hmac::sign(&key, message).as_ref().to_vec()
            }
            Signer::Rs256(key) => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .unwrap();
                out
            }
            Signer::Es256(key) => key.sign(&rng, message).unwrap().as_ref().to_vec(),
        }
    }
}

/// The claims of a token of `iss` for `user`, expiring `ttl` seconds from now (negative:
/// expired already).
pub fn claims(iss: &str, user: &str, teams: &[&str], role: &str, ttl: i64) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({"iss": iss, "aud": AUDIENCE, "sub": user, "groups": teams, "sk8_role": role,
           "iat": now, "exp": now + ttl})
}

/// An issuer's JWKS endpoint, serving whichever keys the test published last.
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(keys: &[&Key]) -> Self {
        use axum::extract::State;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let published = Arc::new(Mutex::new(jwk_set(keys)));
        let serve = |State(keys): State<Arc<Mutex<Value>>>| async move {
            axum::Json(keys.lock().unwrap().clone())
        };
        let router = axum::Router::new()
            .route("/jwks.json", axum::routing::get(serve))
            .with_state(published.clone());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        JwksServer {
            url,
            keys: published,
            task,
        }
    }

    /// From now on, only these keys are published.
    pub fn publish(&self, keys: &[&Key]) {
        *self.keys.lock().unwrap() = jwk_set(keys);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn jwk_set(keys: &[&Key]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// `auth.jwt.issuers` entries: the HS256 issuer (its secret written under `dir`) and the
/// JWKS issuer at `jwks_url`.
pub fn issuers(dir: &std::path::Path, jwks_url: &str) -> Value {
    let secret = dir.join("hs256.secret");
    std::fs::write(&secret, SECRET).unwrap();
    json!([
        {"issuer": HS_ISSUER, "audience": AUDIENCE, "hs256SecretFile": secret},
        {"issuer": JWKS_ISSUER, "audience": AUDIENCE, "jwksUrl": jwks_url},
    ])
}

async fn sk8_with_issuers(issuers: Value) -> TestApp {
    let mut options = Options::new(Store::Sqlite);
    options.extra = json!({"auth": {"mode": "tokens", "jwt": {"issuers": issuers}}});
    TestApp::spawn(options).await
}

/// `GET /v1/jobs` with a bearer token: the status and the error message, if any.
async fn list_jobs(app: &TestApp, token: &str) -> (u16, String) {
    let request = app.http.get(app.url("/v1/jobs")).bearer_auth(token);
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    (status, message.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_rotate_at_the_issuer_without_a_restart() {
    let (old, new) = (Key::ec("key-1"), Key::ec("key-2"));
    let idp = JwksServer::start(&[&old]).await;
    let dir = tempfile::tempdir().unwrap();
    let app = sk8_with_issuers(issuers(dir.path(), &idp.url)).await;
    let member = claims(JWKS_ISSUER, "mia", &["payments"], "member", 3600);
    let (by_old, by_new) = (old.token(&member), new.token(&member));
    assert_eq!(list_jobs(&app, &by_old).await.0, 200);
    // Not published yet: refused, naming the key.
    let (status, message) = list_jobs(&app, &by_new).await;
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("\"key-2\" is not among"), "{message}");
    // The issuer rotates: the new key in, the old one out. sk8 looks again when a token
    // names a key it does not know (at most every few seconds).
    idp.publish(&[&new]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, message) = list_jobs(&app, &by_new).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new key never worked: {message}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, message) = list_jobs(&app, &by_old).await;
    assert_eq!(status, 401, "the old key is rotated away: {message}");
    assert!(message.contains("\"key-1\" is not among"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_refused_saying_why_and_never_logged() {
    let (key, stranger) = (Key::ec("key-1"), Key::ec("key-1"));
    let idp = JwksServer::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut issuers = issuers(dir.path(), &idp.url);
    // An issuer whose keys cannot be fetched: sk8's problem, not the caller's.
    let down = "https://down.idp.test";
    issuers
        .as_array_mut()
        .unwrap()
        .push(json!({"issuer": down, "audience": AUDIENCE, "jwksUrl": "http://127.0.0.1:1/jwks"}));
    let app = sk8_with_issuers(issuers).await;
    let member = |iss: &str, ttl: i64| claims(iss, "mia", &["payments"], "member", ttl);
    let mut wrong_audience = member(JWKS_ISSUER, 60);
    wrong_audience["aud"] = json!("another-service");
    let mut no_exp = member(HS_ISSUER, 60);
    no_exp.as_object_mut().unwrap().remove("exp");
    let cases = [
        (
            key.token(&member(JWKS_ISSUER, -600)),
            401,
            "expired 600 s ago",
        ),
        (
            key.token(&member("https://other.idp.test", 60)),
            401,
            "\"https://other.idp.test\" is not trusted",
        ),
        (key.token(&wrong_audience), 401, "aud must include \"sk8\""),
        (
            stranger.token(&member(JWKS_ISSUER, 60)),
            401,
            "signature does not verify",
        ),
        (
            Key::ec("key-9").token(&member(JWKS_ISSUER, 60)),
            401,
            "\"key-9\" is not among",
        ),
        (Key::hs256(SECRET).token(&no_exp), 401, "no exp claim"),
        (
            Key::hs256(b"not the secret sk8 has, 32 bytes").token(&member(HS_ISSUER, 60)),
            401,
            "signature does not verify",
        ),
        (key.token(&member(down, 60)), 503, "cannot be fetched now"),
    ];
    let mut tokens = Vec::new();
    for (token, status, says) in cases {
        let (got, message) = list_jobs(&app, &token).await;
        assert_eq!(got, status, "{says}: {message}");
        assert!(message.contains(says), "{says}: {message}");
        tokens.push(token);
    }
    let good = Key::hs256(SECRET).token(&member(HS_ISSUER, 60));
    assert_eq!(list_jobs(&app, &good).await.0, 200);
    tokens.push(good);
    let logs = app.logs();
    for token in tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token is in the log");
    }
}
