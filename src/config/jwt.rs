//! `auth.jwt:` in sk8's config: the identity providers whose JWT bearer tokens sk8 accepts
//! ([`crate::auth::jwt`]), and which claims say who the caller is.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::auth::Role;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JwtConfig {
    /// The issuers trusted; a token whose `iss` is none of them is refused.
    pub issuers: Vec<JwtIssuer>,
    /// How far `exp` and `nbf` may be off, for clocks that disagree a little.
    pub leeway_seconds: u64,
    /// How often an issuer's JWKS is fetched again (besides when a token names a key not in
    /// it, at most every few seconds).
    pub jwks_refresh_seconds: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            issuers: Vec::new(),
            leeway_seconds: 30,
            jwks_refresh_seconds: 300,
        }
    }
}

/// One trusted issuer: how its tokens are signed and what their claims mean.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtIssuer {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` a token must carry (one of them, when it carries a list) to be for sk8.
    pub audience: String,
    /// A file holding the HS256 shared secret (at least 32 bytes; one trailing newline is
    /// ignored). Either this or `jwksUrl`.
    #[serde(default)]
    pub hs256_secret_file: Option<PathBuf>,
    /// Where the issuer publishes its RS256/ES256 public keys (a JWK Set); https, or http to a
    /// loopback address.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The claim naming the user.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim listing the caller's teams (a list of strings, or one string).
    #[serde(default = "default_teams_claim")]
    pub teams_claim: String,
    /// The claim holding the caller's sk8 role: one role name, or a list in which the highest
    /// role named counts (other entries are ignored).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// The role of a token without a role in `roleClaim`.
    #[serde(default = "default_role")]
    pub default_role: Role,
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_teams_claim() -> String {
    "groups".into()
}

fn default_role_claim() -> String {
    "sk8_role".into()
}

fn default_role() -> Role {
    Role::Viewer
}

/// The longest clock skew forgiven: more would keep expired tokens alive.
const MAX_LEEWAY_SECONDS: u64 = 300;

impl JwtConfig {
    /// Rejects issuers that cannot work, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: String, message: &str| ConfigError::Invalid {
            field,
            message: message.into(),
        };
        if self.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(invalid(
                "auth.jwt.leewaySeconds".into(),
                "must be at most 300",
            ));
        }
        if self.jwks_refresh_seconds < 10 {
            return Err(invalid(
                "auth.jwt.jwksRefreshSeconds".into(),
                "must be at least 10",
            ));
        }
        let mut seen = HashSet::new();
        for (i, issuer) in self.issuers.iter().enumerate() {
            let field = |part: &str| format!("auth.jwt.issuers[{i}].{part}");
            issuer.validate(&field)?;
            if !seen.insert(issuer.issuer.as_str()) {
                return Err(invalid(field("issuer"), "is listed twice"));
            }
        }
        Ok(())
    }
}

impl JwtIssuer {
    fn validate(&self, field: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let invalid = |part: &str, message: &str| ConfigError::Invalid {
            field: field(part),
            message: message.into(),
        };
        for (part, value) in [
            ("issuer", &self.issuer),
            ("audience", &self.audience),
            ("userClaim", &self.user_claim),
            ("teamsClaim", &self.teams_claim),
            ("roleClaim", &self.role_claim),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(part, "must not be empty"));
            }
        }
        match (&self.hs256_secret_file, &self.jwks_url) {
            (Some(_), None) => Ok(()),
            (None, Some(url)) if jwks_url_is_safe(url) => Ok(()),
            (None, Some(_)) => Err(invalid(
                "jwksUrl",
                "must be an https:// URL (http:// only to a loopback address): keys fetched \
                 in the clear could be swapped on the way",
            )),
            _ => Err(invalid(
                "hs256SecretFile",
                "set exactly one of hs256SecretFile (HS256) and jwksUrl (RS256/ES256)",
            )),
        }
    }
}

/// https anywhere; http only where nobody can be in the middle.
fn jwks_url_is_safe(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => !host.is_empty(),
        Some("http") => loopback,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(secret: Option<&str>, url: Option<&str>) -> JwtIssuer {
        JwtIssuer {
            issuer: "https://idp.example".into(),
            audience: "sk8".into(),
            hs256_secret_file: secret.map(PathBuf::from),
            jwks_url: url.map(str::to_owned),
            user_claim: default_user_claim(),
            teams_claim: default_teams_claim(),
            role_claim: default_role_claim(),
            default_role: default_role(),
        }
    }

    fn error_of(issuers: Vec<JwtIssuer>) -> Option<String> {
        let config = JwtConfig {
            issuers,
            ..JwtConfig::default()
        };
        config.validate().err().map(|e| e.to_string())
    }

    #[test]
    fn an_issuer_needs_exactly_one_key_source_and_a_safe_url() {
        assert_eq!(error_of(vec![issuer(Some("/s"), None)]), None);
        assert_eq!(
            error_of(vec![issuer(None, Some("https://idp.example/jwks"))]),
            None
        );
        assert_eq!(
            error_of(vec![issuer(None, Some("http://127.0.0.1:8080/jwks"))]),
            None
        );
        let both = error_of(vec![issuer(Some("/s"), Some("https://idp/jwks"))]).unwrap();
        assert!(
            both.contains("auth.jwt.issuers[0].hs256SecretFile"),
            "{both}"
        );
        let clear = error_of(vec![issuer(None, Some("http://idp.example/jwks"))]).unwrap();
        assert!(clear.contains("auth.jwt.issuers[0].jwksUrl"), "{clear}");
        let twice = error_of(vec![issuer(Some("/s"), None), issuer(Some("/t"), None)]).unwrap();
        assert!(twice.contains("auth.jwt.issuers[1].issuer"), "{twice}");
        let mut blank = issuer(Some("/s"), None);
        blank.audience = " ".into();
        let blank = error_of(vec![blank]).unwrap();
        assert!(blank.contains("auth.jwt.issuers[0].audience"), "{blank}");
    }
}
