//! Who is calling, and what they may do: the same for HTTP and for the gateway's gRPC.
//!
//! - Authentication ([`Authenticator`]): `Authorization: Bearer <token>` (on gRPC also
//!   `Authentication: Bearer …`, which older JVM Spark Connect clients send). A token that
//!   looks like a JWT (three base64url parts) is verified against `auth.jwt.issuers`
//!   ([`jwt`]), when there are any; any other is a static API token ([`tokens`]). With
//!   `auth.mode: off` (the embedded default, loopback only) every caller is the configured dev
//!   identity, a platform admin.
//! - [`Authenticator::authenticate`] is async because a JWT may name a signing key sk8 has
//!   not fetched yet: the issuer's JWKS is fetched again right then (at most every few
//!   seconds), so a key rotated in at the issuer works on its first token. Everything else
//!   answers from memory.
//! - Authorization: an [`Identity`] has a [`Role`] and teams. Roles are ordered: `viewer`
//!   reads, `member` also submits, cancels and runs sessions, `team-admin` also manages its
//!   teams' namespaces, `platform-admin` does everything in every team. Other teams' resources
//!   are invisible (not found), so their existence does not leak.

mod jwks;
pub mod jwt;
mod tokens;

use std::collections::BTreeSet;

use serde::Deserialize;

use self::tokens::StaticTokens;
pub use self::tokens::TokenEntry;
use crate::config::{AuthConfig, AuthMode};

/// What a caller may do, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    Member,
    TeamAdmin,
    PlatformAdmin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Viewer,
        Role::Member,
        Role::TeamAdmin,
        Role::PlatformAdmin,
    ];

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::TeamAdmin => "team-admin",
            Role::PlatformAdmin => "platform-admin",
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub teams: BTreeSet<String>,
    pub role: Role,
}

impl Identity {
    /// Whether the caller may see a team's jobs, sessions and namespaces.
    pub fn sees(&self, team: &str) -> bool {
        self.role == Role::PlatformAdmin || self.teams.contains(team)
    }

    /// Whether the caller may act as `role` in `team`.
    pub fn may(&self, role: Role, team: &str) -> bool {
        self.sees(team) && self.role >= role
    }

    /// The teams whose resources the caller may list; `None` for every team.
    pub fn visible_teams(&self) -> Option<Vec<String>> {
        (self.role != Role::PlatformAdmin).then(|| self.teams.iter().cloned().collect())
    }
}

/// Why a caller is not authenticated; the message says what to send instead. Never holds
/// the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("malformed credentials: expected `Authorization: Bearer <token>`")]
    Malformed,
    #[error("unknown or revoked token")]
    Unknown,
    #[error("the bearer token expired {0} s ago: get a fresh one from its issuer")]
    Expired(u64),
    #[error("the bearer token is not valid for another {0} s (nbf)")]
    NotYetValid(u64),
    #[error("the bearer token's issuer {0:?} is not trusted here (auth.jwt.issuers)")]
    WrongIssuer(String),
    #[error("the bearer token is not meant for sk8: its aud must include {0:?}")]
    WrongAudience(String),
    #[error(
        "the bearer token's signing key {0} is not among its issuer's published keys \
         (rotated away, or not published yet)"
    )]
    UnknownKey(String),
    #[error("the bearer token's signature does not verify")]
    BadSignature,
    #[error("invalid bearer token: {0}")]
    Invalid(String),
    /// sk8's problem, not the caller's: the issuer's keys could not be fetched.
    #[error("the signing keys of issuer {0:?} cannot be fetched now; retry in a moment")]
    KeysUnavailable(String),
}

impl From<AuthError> for crate::error::Error {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::KeysUnavailable(_) => crate::error::Error::Unavailable(err.to_string()),
            _ => crate::error::Error::Unauthenticated(err.to_string()),
        }
    }
}

/// Turns credentials into identities.
pub struct Authenticator {
    enabled: bool,
    /// Everyone, when authentication is off.
    dev: Identity,
    tokens: StaticTokens,
    /// `None` without `auth.jwt.issuers`: then every token is a static one.
    jwt: Option<jwt::Issuers>,
}

impl Authenticator {
    /// From `auth`; with authentication off, every caller is `dev_user`, a platform admin.
    pub fn new(config: &AuthConfig, dev_user: &str) -> anyhow::Result<Self> {
        Ok(Authenticator {
            enabled: config.mode == AuthMode::Tokens,
            dev: Identity {
                user: dev_user.to_owned(),
                teams: BTreeSet::new(),
                role: Role::PlatformAdmin,
            },
            tokens: StaticTokens::new(&config.tokens, config.tokens_file.clone())?,
            jwt: jwt::Issuers::new(&config.jwt)?,
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The caller behind an `Authorization` (or `Authentication`) header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Identity, AuthError> {
        if !self.enabled {
            return Ok(self.dev.clone());
        }
        let token = bearer(header)?;
        match &self.jwt {
            Some(issuers) if jwt::looks_like_jwt(token) => issuers.verify(token).await,
            _ => self.tokens.find(token).ok_or(AuthError::Unknown),
        }
    }
}

/// The token of `Bearer <token>` (the scheme in any case).
fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(role: Role, teams: &[&str]) -> Identity {
        Identity {
            user: "u".into(),
            teams: teams.iter().map(|t| t.to_string()).collect(),
            role,
        }
    }

    #[test]
    fn roles_are_ordered_and_teams_scope_them() {
        let member = identity(Role::Member, &["payments"]);
        assert!(member.may(Role::Viewer, "payments"));
        assert!(member.may(Role::Member, "payments"));
        assert!(!member.may(Role::TeamAdmin, "payments"));
        assert!(!member.may(Role::Viewer, "risk"));
        assert_eq!(member.visible_teams(), Some(vec!["payments".to_owned()]));
        let admin = identity(Role::PlatformAdmin, &[]);
        assert!(admin.may(Role::TeamAdmin, "risk"));
        assert_eq!(admin.visible_teams(), None);
    }

    #[test]
    fn role_names_parse_back() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn bearer_takes_the_token_of_a_bearer_header_only() {
        assert_eq!(bearer(Some("Bearer s3cret")), Ok("s3cret"));
        assert_eq!(bearer(Some("bearer  s3cret ")), Ok("s3cret"));
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert_eq!(bearer(Some("s3cret")), Err(AuthError::Malformed));
        assert_eq!(bearer(Some("Basic s3cret")), Err(AuthError::Malformed));
        assert_eq!(bearer(Some("Bearer ")), Err(AuthError::Malformed));
    }

    #[tokio::test]
    async fn with_auth_off_everyone_is_the_dev_platform_admin() {
        let auth = Authenticator::new(&AuthConfig::default(), "dev@sk8").unwrap();
        let who = auth.authenticate(None).await.unwrap();
        assert_eq!(
            (who.user.as_str(), who.role),
            ("dev@sk8", Role::PlatformAdmin)
        );
    }
}
