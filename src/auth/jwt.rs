//! JWT bearer tokens (RFC 7519) from the issuers of `auth.jwt.issuers`.
//!
//! A token is verified in this order, and the first failure is the answer: it parses (three
//! base64url parts, a JSON header and claims, no `crit` extensions); its `iss` is a
//! configured issuer; its `alg` is the one that issuer signs with (HS256 for a shared secret,
//! RS256 or ES256 for keys from a JWKS — never `none`, never a public key used as an HMAC
//! secret); the signature verifies (ring); `exp` (required) and `nbf` hold, give or take
//! `auth.jwt.leewaySeconds`; its `aud` includes the issuer's `audience`. Claims are looked at
//! only once the signature holds.
//!
//! The identity: the user from `userClaim` (default `sub`), the teams from `teamsClaim`
//! (default `groups`: a list of strings, or one), the role from `roleClaim` (default
//! `sk8_role`: one role name, or a list of which the highest role named counts), else the
//! issuer's `defaultRole` (default `viewer`: a token proves membership of its teams, and
//! nothing more unless its issuer says so).
//!
//! Errors say what is wrong with the token, never what it holds.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ring::hmac;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::jwks::{self, Jwks};
use super::{AuthError, Identity, Role};
use crate::config::{JwtConfig, JwtIssuer};

/// base64url, padded or not: JWS forbids padding, but some JWK Sets have it.
pub(super) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The signature algorithms sk8 takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    fn parse(name: &str) -> Result<Alg, AuthError> {
        match name {
            "HS256" => Ok(Alg::Hs256),
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            _ => Err(AuthError::Invalid(format!(
                "alg {name:?} is not taken here (HS256, RS256 or ES256)"
            ))),
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// Whether a bearer token is shaped like a JWT: three non-empty base64url parts.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The trusted issuers.
pub struct Issuers {
    issuers: Vec<Issuer>,
    leeway: u64,
}

struct Issuer {
    config: JwtIssuer,
    key: IssuerKey,
}

enum IssuerKey {
    Hs256(hmac::Key),
    Jwks(Arc<Jwks>),
}

impl Issuers {
    /// The issuers of `auth.jwt`; `None` when there are none. Reads the HS256 secrets now.
    pub fn new(config: &JwtConfig) -> anyhow::Result<Option<Self>> {
        if config.issuers.is_empty() {
            return Ok(None);
        }
        let refresh = Duration::from_secs(config.jwks_refresh_seconds);
        let client = config
            .issuers
            .iter()
            .any(|issuer| issuer.jwks_url.is_some())
            .then(jwks::client)
            .transpose()?;
        let mut issuers = Vec::with_capacity(config.issuers.len());
        for (i, issuer) in config.issuers.iter().enumerate() {
            let key = match (&issuer.hs256_secret_file, &client) {
                (Some(path), _) => IssuerKey::Hs256(
                    read_secret(path)
                        .with_context(|| format!("auth.jwt.issuers[{i}].hs256SecretFile"))?,
                ),
                (None, Some(client)) => {
                    let url = issuer.jwks_url.as_deref().unwrap_or_default();
                    let jwks = Jwks::new(&issuer.issuer, url, refresh, client.clone())
                        .with_context(|| format!("auth.jwt.issuers[{i}].jwksUrl"))?;
                    IssuerKey::Jwks(Arc::new(jwks))
                }
                (None, None) => {
                    anyhow::bail!("auth.jwt.issuers[{i}] needs hs256SecretFile or jwksUrl")
                }
            };
            issuers.push(Issuer {
                config: issuer.clone(),
                key,
            });
        }
        Ok(Some(Issuers {
            issuers,
            leeway: config.leeway_seconds,
        }))
    }

    /// The caller a token stands for, if it is a valid token of a trusted issuer.
    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let token = Token::parse(token)?;
        let iss = token
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Invalid("it has no iss claim".into()))?;
        let issuer = self
            .issuers
            .iter()
            .find(|issuer| issuer.config.issuer == iss)
            .ok_or_else(|| AuthError::WrongIssuer(iss.chars().take(200).collect()))?;
        issuer.check_signature(&token).await?;
        check_times(&token.claims, unix_now(), self.leeway)?;
        issuer.check_audience(&token.claims)?;
        issuer.identity(&token.claims)
    }
}

/// A token taken apart, not yet verified.
struct Token<'a> {
    alg: Alg,
    kid: Option<String>,
    claims: Map<String, Value>,
    /// `header.payload`, what the signature is over.
    signed: &'a [u8],
    signature: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

impl<'a> Token<'a> {
    fn parse(token: &'a str) -> Result<Self, AuthError> {
        let invalid = |what: &str| AuthError::Invalid(what.into());
        let (signed, signature) = token
            .rsplit_once('.')
            .ok_or_else(|| invalid("not three parts"))?;
        let (header, claims) = signed
            .split_once('.')
            .ok_or_else(|| invalid("not three parts"))?;
        let header: Header =
            decode_json(header).ok_or_else(|| invalid("the header is not base64url JSON"))?;
        if header.crit.is_some() {
            return Err(invalid(
                "critical header extensions (crit) are not supported",
            ));
        }
        let claims = decode_json(claims)
            .ok_or_else(|| invalid("the claims are not a base64url JSON object"))?;
        let signature = BASE64URL
            .decode(signature)
            .map_err(|_| invalid("the signature is not base64url"))?;
        Ok(Token {
            alg: Alg::parse(&header.alg)?,
            kid: header.kid,
            claims,
            signed: signed.as_bytes(),
            signature,
        })
    }
}

fn decode_json<T: DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&BASE64URL.decode(part).ok()?).ok()
}

impl Issuer {
    async fn check_signature(&self, token: &Token<'_>) -> Result<(), AuthError> {
        match (&self.key, token.alg) {
            (IssuerKey::Hs256(key), Alg::Hs256) => {
                hmac::verify(key, token.signed, &token.signature)
                    .map_err(|_| AuthError::BadSignature)
            }
            (IssuerKey::Jwks(jwks), Alg::Rs256 | Alg::Es256) => {
                let kid = token.kid.as_deref();
                jwks.verify(kid, token.alg, token.signed, &token.signature)
                    .await
            }
            (_, alg) => Err(AuthError::Invalid(format!(
                "issuer {:?} does not sign with {}",
                self.config.issuer,
                alg.as_str()
            ))),
        }
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let want = self.config.audience.as_str();
        let found = match claims.get("aud") {
            Some(Value::String(aud)) => aud == want,
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(want)),
            _ => false,
        };
        if found {
            Ok(())
        } else {
            Err(AuthError::WrongAudience(want.to_owned()))
        }
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, AuthError> {
        let config = &self.config;
        let user = claims
            .get(&config.user_claim)
            .and_then(Value::as_str)
            .filter(|user| !user.trim().is_empty())
            .ok_or_else(|| {
                AuthError::Invalid(format!(
                    "claim {:?} (the user) is missing or not a string",
                    config.user_claim
                ))
            })?;
        let teams = strings(&config.teams_claim, claims.get(&config.teams_claim))?;
        Ok(Identity {
            user: user.to_owned(),
            teams: teams.into_iter().map(str::to_owned).collect(),
            role: self.role(claims.get(&config.role_claim))?,
        })
    }

    /// One role name must be one; in a list (roles of many applications), the highest role
    /// named counts and the rest is not sk8's business.
    fn role(&self, claim: Option<&Value>) -> Result<Role, AuthError> {
        let name = &self.config.role_claim;
        if let Some(Value::String(role)) = claim {
            return Role::parse(role).ok_or_else(|| {
                AuthError::Invalid(format!(
                    "claim {name:?}: {role:?} is not a role (viewer, member, team-admin, \
                     platform-admin)"
                ))
            });
        }
        let named = strings(name, claim)?;
        Ok(named
            .into_iter()
            .filter_map(Role::parse)
            .max()
            .unwrap_or(self.config.default_role))
    }
}

/// A claim holding a string or a list of strings; absent is none.
fn strings<'a>(name: &str, claim: Option<&'a Value>) -> Result<Vec<&'a str>, AuthError> {
    let not_strings = || {
        AuthError::Invalid(format!(
            "claim {name:?} must be a string or a list of strings"
        ))
    };
    match claim {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.as_str()]),
        Some(Value::Array(list)) => list
            .iter()
            .map(|item| item.as_str().ok_or_else(not_strings))
            .collect(),
        Some(_) => Err(not_strings()),
    }
}

/// `exp` is required: a token that never expires cannot be revoked.
fn check_times(claims: &Map<String, Value>, now: u64, leeway: u64) -> Result<(), AuthError> {
    let time = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(|t| Some(t as u64))
            .ok_or_else(|| AuthError::Invalid(format!("{name} is not a NumericDate"))),
    };
    let exp = time("exp")?.ok_or_else(|| {
        AuthError::Invalid("it has no exp claim: sk8 takes only tokens that expire".into())
    })?;
    if now > exp.saturating_add(leeway) {
        return Err(AuthError::Expired(now - exp));
    }
    if let Some(nbf) = time("nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(AuthError::NotYetValid(nbf - now));
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An HS256 secret from its file; one trailing newline (as `echo` leaves) is not part of it.
fn read_secret(path: &Path) -> anyhow::Result<hmac::Key> {
    let mut secret = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    if secret.ends_with(b"\n") {
        secret.pop();
        if secret.ends_with(b"\r") {
            secret.pop();
        }
    }
    anyhow::ensure!(
        secret.len() >= 32,
        "{} holds {} bytes; an HS256 secret needs at least 32",
        path.display(),
        secret.len()
    );
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const ISS: &str = "https://idp.example";

    fn issuers(dir: &Path) -> Issuers {
        let secret = dir.join("secret");
        std::fs::write(&secret, [SECRET, b"\n"].concat()).unwrap();
        let config: JwtConfig = serde_json::from_value(json!({
            "issuers": [{"issuer": ISS, "audience": "sk8", "hs256SecretFile": secret}],
        }))
        .unwrap();
        Issuers::new(&config).unwrap().unwrap()
    }

    fn sign(header: Value, claims: Value, secret: &[u8]) -> String {
        let part = |v: Value| base64::prelude::BASE64_URL_SAFE_NO_PAD.encode(v.to_string());
        let signed = format!("{}.{}", part(header), part(claims));
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let signature = hmac::sign(&key, signed.as_bytes());
        let signature = base64::prelude::BASE64_URL_SAFE_NO_PAD.encode(signature.as_ref());
        format!("{signed}.{signature}")
    }

    /// A valid token's claims, with `changes` merged over them (null removes a claim).
    fn claims(changes: Value) -> Value {
        let mut claims = json!({
            "iss": ISS, "aud": "sk8", "sub": "ana", "groups": ["payments"],
            "sk8_role": "member", "exp": unix_now() + 60,
        });
        for (key, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => claims.as_object_mut().unwrap().remove(key),
                _ => claims
                    .as_object_mut()
                    .unwrap()
                    .insert(key.clone(), value.clone()),
            };
        }
        claims
    }

    fn hs256(changes: Value) -> String {
        sign(json!({"alg": "HS256"}), claims(changes), SECRET)
    }

    async fn verify(token: &str) -> Result<Identity, AuthError> {
        let dir = tempfile::tempdir().unwrap();
        issuers(dir.path()).verify(token).await
    }

    #[tokio::test]
    async fn a_valid_token_names_its_user_teams_and_role() {
        let who = verify(&hs256(json!({}))).await.unwrap();
        assert_eq!(who.user, "ana");
        assert_eq!(who.teams, ["payments".to_owned()].into());
        assert_eq!(who.role, Role::Member);
        let listed = json!({"aud": ["other", "sk8"], "groups": "risk",
                            "sk8_role": ["offline_access", "viewer", "team-admin"]});
        let who = verify(&hs256(listed)).await.unwrap();
        assert_eq!((who.teams.len(), who.role), (1, Role::TeamAdmin));
        let plain = verify(&hs256(json!({"sk8_role": null, "groups": null})))
            .await
            .unwrap();
        assert_eq!((plain.teams.len(), plain.role), (0, Role::Viewer));
    }

    #[tokio::test]
    async fn every_failure_says_what_is_wrong() {
        let now = unix_now();
        let cases = [
            (hs256(json!({"exp": now - 100})), "expired 100 s ago"),
            (hs256(json!({"exp": null})), "no exp claim"),
            (
                hs256(json!({"nbf": now + 100})),
                "not valid for another 100 s",
            ),
            (
                hs256(json!({"iss": "https://evil"})),
                "\"https://evil\" is not trusted",
            ),
            (hs256(json!({"aud": "other"})), "aud must include \"sk8\""),
            (hs256(json!({"sub": 7})), "claim \"sub\" (the user)"),
            (
                hs256(json!({"groups": {"a": 1}})),
                "claim \"groups\" must be",
            ),
            (
                hs256(json!({"sk8_role": "admin"})),
                "\"admin\" is not a role",
            ),
            (
                sign(
                    json!({"alg": "HS256"}),
                    claims(json!({})),
                    b"another secret of 32 bytes!!!!!!",
                ),
                "signature does not verify",
            ),
            (
                sign(json!({"alg": "none"}), claims(json!({})), SECRET),
                "alg \"none\" is not taken",
            ),
            (
                sign(json!({"alg": "RS256"}), claims(json!({})), SECRET),
                "does not sign with RS256",
            ),
            (
                sign(
                    json!({"alg": "HS256", "crit": ["b64"]}),
                    claims(json!({})),
                    SECRET,
                ),
                "crit",
            ),
            (
                format!("{}.!!", hs256(json!({})).rsplit_once('.').unwrap().0),
                "signature is not base64url",
            ),
        ];
        for (token, says) in cases {
            let err = verify(&token).await.unwrap_err().to_string();
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[tokio::test]
    async fn the_leeway_forgives_a_little_clock_skew() {
        let now = unix_now();
        assert!(verify(&hs256(json!({"exp": now - 10}))).await.is_ok());
        assert!(verify(&hs256(json!({"nbf": now + 10}))).await.is_ok());
    }

    #[test]
    fn only_three_base64url_parts_look_like_a_jwt() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(!looks_like_jwt("static-api-token"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a.b+/.c"));
    }

    #[test]
    fn a_short_secret_is_refused_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "short\n").unwrap();
        let err = read_secret(&path).err().unwrap().to_string();
        assert!(err.contains("holds 5 bytes"), "{err}");
    }
}
