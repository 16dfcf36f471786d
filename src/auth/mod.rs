//! Who is calling, and what they may do: the same for HTTP and for the gateway's gRPC.
//!
//! - Authentication ([`Authenticator`]): `Authorization: Bearer <token>` (on gRPC also
//!   `Authentication: Bearer …`, which older JVM Spark Connect clients send). Static API tokens
//!   come from `auth.tokens` and `auth.tokensFile`, kept only as SHA-256 digests and compared
//!   in constant time; the file is read again when it changes, so tokens rotate without a
//!   restart. With `auth.mode: off` (the embedded default, loopback only) every caller is the
//!   configured dev identity, a platform admin.
//! - Authorization: an [`Identity`] has a [`Role`] and teams. Roles are ordered: `viewer`
//!   reads, `member` also submits, cancels and runs sessions, `team-admin` also manages its
//!   teams' namespaces, `platform-admin` does everything in every team. Other teams' resources
//!   are invisible (not found), so their existence does not leak.

mod tokens;

use std::collections::BTreeSet;

use serde::Deserialize;

pub use self::tokens::{Authenticator, TokenEntry};

/// What a caller may do, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    Member,
    TeamAdmin,
    PlatformAdmin,
}

impl Role {
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

/// Why a caller is not authenticated; the message says what to send instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("malformed credentials: expected `Authorization: Bearer <token>`")]
    Malformed,
    #[error("unknown or revoked token")]
    Unknown,
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
}
