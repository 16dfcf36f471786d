//! An issuer's published signing keys: the JWK Set (RFC 7517) at its `jwksUrl`.
//!
//! The set is fetched when a token first needs it, again every `auth.jwt.jwksRefreshSeconds`
//! (in the background, the keys in hand serving meanwhile), and at once when a token names a
//! key not in it — a key the issuer has just rotated in. Fetches are at least [`MIN_REFETCH`]
//! apart, so a stream of tokens with made-up key ids costs the issuer one request every few
//! seconds, not one per token. A failed fetch keeps the keys fetched before, loudly.
//!
//! Keys sk8 cannot use (encryption keys, other curves and algorithms, malformed ones) are
//! skipped. RS256 keys are verified from their modulus and exponent, ES256 keys as P-256
//! points, both with ring.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ring::signature;
use serde::Deserialize;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::AuthError;
use super::jwt::{Alg, BASE64URL};

/// Fetches of one set are at least this far apart.
const MIN_REFETCH: Duration = Duration::from_secs(5);
/// How long a fetch may take, connecting included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWK Set larger than this is not one.
const MAX_JWKS_BYTES: usize = 1 << 20;

pub(super) type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The client every issuer's keys are fetched with: rustls on ring, the system's roots.
pub(super) fn client() -> anyhow::Result<HttpsClient> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .context("load the system's root certificates (to fetch auth.jwt JWKS over https)")?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// One issuer's keys, as last fetched.
pub(super) struct Jwks {
    issuer: String,
    url: http::Uri,
    client: HttpsClient,
    refresh: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching; when the last fetch began.
    fetching: Arc<Mutex<Option<Instant>>>,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Jwk>,
    /// `None` until a fetch succeeded.
    fetched: Option<Instant>,
}

struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

enum PublicKey {
    /// Big-endian modulus and exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed P-256 point (0x04, x, y).
    EcP256(Vec<u8>),
}

impl PublicKey {
    fn alg(&self) -> Alg {
        match self {
            PublicKey::Rsa { .. } => Alg::Rs256,
            PublicKey::EcP256(_) => Alg::Es256,
        }
    }

    fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            PublicKey::EcP256(point) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

impl KeySet {
    /// The keys a token's signature may be by: its `kid`'s, or any of its algorithm.
    fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Alg,
    ) -> impl Iterator<Item = &'a PublicKey> + 'a {
        self.keys
            .iter()
            .filter(move |jwk| jwk.key.alg() == alg && (kid.is_none() || jwk.kid.as_deref() == kid))
            .map(|jwk| &jwk.key)
    }

    fn stale(&self, refresh: Duration) -> bool {
        self.fetched.is_none_or(|at| at.elapsed() >= refresh)
    }
}

impl Jwks {
    pub(super) fn new(
        issuer: &str,
        url: &str,
        refresh: Duration,
        client: HttpsClient,
    ) -> anyhow::Result<Self> {
        Ok(Jwks {
            issuer: issuer.to_owned(),
            url: url
                .parse()
                .with_context(|| format!("{url:?} is not a URL"))?,
            client,
            refresh,
            keys: RwLock::default(),
            fetching: Arc::default(),
        })
    }

    /// Checks a signature over `message` against the issuer's keys, fetching them first when
    /// none fits (none fetched yet, or a key rotated in since).
    pub(super) async fn verify(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Alg,
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), AuthError> {
        let mut keys = self.current();
        if keys.candidates(kid, alg).next().is_none() {
            keys = self.fetch(self.fetching.clone().lock_owned().await).await;
        } else if keys.stale(self.refresh) {
            self.refresh_in_background();
        }
        if keys.fetched.is_none() {
            return Err(AuthError::KeysUnavailable(self.issuer.clone()));
        }
        let mut candidates = keys.candidates(kid, alg).peekable();
        if candidates.peek().is_none() {
            return Err(AuthError::UnknownKey(match kid {
                Some(kid) => format!("{:?}", kid.chars().take(100).collect::<String>()),
                None => format!("(no kid, {})", alg.as_str()),
            }));
        }
        if candidates.any(|key| key.verifies(message, sig)) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts a refresh unless one is running; the caller does not wait for it.
    fn refresh_in_background(self: &Arc<Self>) {
        if let Ok(guard) = self.fetching.clone().try_lock_owned() {
            let jwks = self.clone();
            tokio::spawn(async move {
                jwks.fetch(guard).await;
            });
        }
    }

    /// Fetches the set again, unless the last fetch began less than [`MIN_REFETCH`] ago (as
    /// when many requests found the same key missing); the set as it is after.
    async fn fetch(&self, mut last: OwnedMutexGuard<Option<Instant>>) -> Arc<KeySet> {
        if last.is_some_and(|at| at.elapsed() < MIN_REFETCH) {
            return self.current();
        }
        *last = Some(Instant::now());
        match self.download().await {
            Ok(keys) => {
                tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched the issuer's JWKS");
                let set = Arc::new(KeySet {
                    keys,
                    fetched: Some(Instant::now()),
                });
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = set.clone();
                set
            }
            Err(err) => {
                tracing::warn!(
                    issuer = %self.issuer,
                    url = %self.url,
                    error = format!("{err:#}"),
                    "could not fetch the issuer's JWKS; keeping the keys fetched before"
                );
                self.current()
            }
        }
    }

    async fn download(&self) -> anyhow::Result<Vec<Jwk>> {
        let request = http::Request::get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())?;
        let body = tokio::time::timeout(FETCH_TIMEOUT, async {
            let response = self.client.request(request).await?;
            anyhow::ensure!(
                response.status().is_success(),
                "it answered {}",
                response.status()
            );
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("read the answer: {e}"))?;
            Ok(body.to_bytes())
        })
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {FETCH_TIMEOUT:?}"))??;
        parse(&body)
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The usable keys of a JWK Set.
fn parse(body: &[u8]) -> anyhow::Result<Vec<Jwk>> {
    let set: RawSet =
        serde_json::from_slice(body).context("not a JWK Set (a JSON object with keys)")?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|raw| serde_json::from_value::<RawJwk>(raw).ok()?.usable())
        .collect())
}

impl RawJwk {
    /// The key, if it is a signing key sk8 can verify with.
    fn usable(self) -> Option<Jwk> {
        if self.usage.as_deref().is_some_and(|usage| usage != "sig") {
            return None;
        }
        let bytes = |part: &Option<String>| BASE64URL.decode(part.as_deref()?).ok();
        let key = match (self.kty.as_str(), self.alg.as_deref()) {
            ("RSA", None | Some("RS256")) => PublicKey::Rsa {
                n: bytes(&self.n)?,
                e: bytes(&self.e)?,
            },
            ("EC", None | Some("ES256")) if self.crv.as_deref() == Some("P-256") => {
                let (x, y) = (bytes(&self.x)?, bytes(&self.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                PublicKey::EcP256([&[4u8][..], &x, &y].concat())
            }
            _ => return None,
        };
        Some(Jwk { kid: self.kid, key })
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::prelude::BASE64_URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ec_key() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
    }

    fn ec_jwk(kid: &str, key: &EcdsaKeyPair) -> serde_json::Value {
        let point = key.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
               "x": b64(&point[1..33]), "y": b64(&point[33..])})
    }

    #[test]
    fn usable_keys_are_kept_and_the_rest_skipped() {
        let key = ec_key();
        let set = json!({"keys": [
            ec_jwk("ec-1", &key),
            {"kty": "RSA", "kid": "rsa-1", "n": b64(&[0xc5; 256]), "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "AA"},
            {"kid": "no-kty"},
        ]});
        let keys = parse(set.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["ec-1", "rsa-1"]);
        assert!(parse(b"[]").is_err());
    }

    #[test]
    fn an_ec_key_verifies_its_own_signatures_only() {
        let rng = SystemRandom::new();
        let (key, other) = (ec_key(), ec_key());
        let set = json!({"keys": [ec_jwk("a", &key)]});
        let keys = KeySet {
            keys: parse(set.to_string().as_bytes()).unwrap(),
            fetched: Some(Instant::now()),
        };
        let signed = key.sign(&rng, b"message").unwrap();
        let forged = other.sign(&rng, b"message").unwrap();
        let jwk = keys.candidates(Some("a"), Alg::Es256).next().unwrap();
        assert!(jwk.verifies(b"message", signed.as_ref()));
        assert!(!jwk.verifies(b"message", forged.as_ref()));
        assert!(!jwk.verifies(b"another", signed.as_ref()));
        assert!(keys.candidates(Some("b"), Alg::Es256).next().is_none());
        assert!(keys.candidates(None, Alg::Rs256).next().is_none());
        assert!(keys.candidates(None, Alg::Es256).next().is_some());
    }
}
