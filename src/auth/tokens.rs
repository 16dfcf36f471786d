//! Static API tokens, each bound to an identity. sk8 keeps only their SHA-256 digests (config
//! and file hold `sha256`, never the token) and compares a presented token's digest with every
//! known one in constant time. `auth.tokensFile` is read again when its modification time
//! changes (looked at no more than once a second), so adding, rotating and revoking tokens
//! needs no restart; a file that no longer parses keeps the previous tokens, loudly.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use ring::digest;
use serde::Deserialize;

use super::{Identity, Role};

/// How often the tokens file's modification time is looked at, at most.
const FILE_CHECK: Duration = Duration::from_secs(1);

/// One token, as configured.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenEntry {
    pub user: String,
    #[serde(default)]
    pub teams: BTreeSet<String>,
    pub role: Role,
    /// The token's SHA-256, in hex (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: String,
}

struct Known {
    digest: Vec<u8>,
    identity: Identity,
}

impl Known {
    fn of(entry: &TokenEntry) -> anyhow::Result<Self> {
        let digest = hex_bytes(&entry.sha256)
            .filter(|d| d.len() == 32)
            .with_context(|| {
                format!(
                    "the token of user {:?}: sha256 must be 64 hex digits",
                    entry.user
                )
            })?;
        Ok(Known {
            digest,
            identity: Identity {
                user: entry.user.clone(),
                teams: entry.teams.clone(),
                role: entry.role,
            },
        })
    }
}

struct FileTokens {
    modified: Option<SystemTime>,
    checked: Instant,
    tokens: Vec<Known>,
}

/// The static tokens of `auth.tokens` and `auth.tokensFile`.
pub(super) struct StaticTokens {
    configured: Vec<Known>,
    file: Option<PathBuf>,
    from_file: RwLock<FileTokens>,
}

impl StaticTokens {
    pub(super) fn new(entries: &[TokenEntry], file: Option<PathBuf>) -> anyhow::Result<Self> {
        let configured = entries
            .iter()
            .map(Known::of)
            .collect::<anyhow::Result<_>>()?;
        let tokens = StaticTokens {
            configured,
            file,
            from_file: RwLock::new(FileTokens {
                modified: None,
                checked: Instant::now(),
                tokens: Vec::new(),
            }),
        };
        if let Some(path) = &tokens.file {
            let (modified, from_file) = read_file(path)?;
            *tokens.write_file_tokens() = FileTokens {
                modified,
                checked: Instant::now(),
                tokens: from_file,
            };
        }
        Ok(tokens)
    }

    /// The identity a token stands for, if it is a known one.
    pub(super) fn find(&self, token: &str) -> Option<Identity> {
        let presented = digest::digest(&digest::SHA256, token.as_bytes());
        self.refresh_file();
        let file = self.from_file.read().unwrap_or_else(|p| p.into_inner());
        // Every known digest is compared, whatever matches, in constant time each.
        let mut found = None;
        for known in self.configured.iter().chain(&file.tokens) {
            if constant_time_eq(&known.digest, presented.as_ref()) {
                found = Some(known.identity.clone());
            }
        }
        found
    }

    /// Reads the tokens file again if it changed since it was last read.
    fn refresh_file(&self) {
        let Some(path) = &self.file else { return };
        {
            let file = self.from_file.read().unwrap_or_else(|p| p.into_inner());
            if file.checked.elapsed() < FILE_CHECK {
                return;
            }
        }
        let mut file = self.write_file_tokens();
        file.checked = Instant::now();
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified == file.modified {
            return;
        }
        match read_file(path) {
            Ok((modified, tokens)) => {
                tracing::info!(file = %path.display(), tokens = tokens.len(), "auth.tokensFile reloaded");
                file.modified = modified;
                file.tokens = tokens;
            }
            Err(err) => {
                tracing::error!(file = %path.display(), error = format!("{err:#}"), "auth.tokensFile is invalid; keeping the tokens read before");
            }
        }
    }

    fn write_file_tokens(&self) -> std::sync::RwLockWriteGuard<'_, FileTokens> {
        self.from_file.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The file's tokens (a YAML list of entries) and its modification time.
fn read_file(path: &PathBuf) -> anyhow::Result<(Option<SystemTime>, Vec<Known>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read auth.tokensFile {}", path.display()))?;
    let entries: Vec<TokenEntry> = serde_saphyr::from_str(&text)
        .with_context(|| format!("parse auth.tokensFile {}", path.display()))?;
    let tokens = entries
        .iter()
        .map(Known::of)
        .collect::<anyhow::Result<_>>()?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((modified, tokens))
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Equal lengths compared without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(token: &str) -> String {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn entry(user: &str, token: &str) -> TokenEntry {
        TokenEntry {
            user: user.into(),
            teams: ["payments".to_owned()].into(),
            role: Role::Member,
            sha256: sha256_hex(token),
        }
    }

    fn user_of(tokens: &StaticTokens, token: &str) -> Option<String> {
        tokens.find(token).map(|who| who.user)
    }

    #[test]
    fn tokens_map_to_their_identity() {
        let tokens = StaticTokens::new(&[entry("ana", "s3cret")], None).unwrap();
        assert_eq!(user_of(&tokens, "s3cret").as_deref(), Some("ana"));
        assert_eq!(user_of(&tokens, "nope"), None);
    }

    #[test]
    fn a_bad_digest_is_refused_at_startup() {
        let mut bad = entry("ana", "x");
        bad.sha256 = "not-hex".into();
        let err = StaticTokens::new(&[bad], None).err().unwrap();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }

    #[test]
    fn the_tokens_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        let write = |user: &str, token: &str| {
            let text = format!(
                "- {{user: {user}, teams: [payments], role: member, sha256: {}}}\n",
                sha256_hex(token)
            );
            std::fs::write(&path, text).unwrap();
        };
        write("ana", "first");
        let tokens = StaticTokens::new(&[], Some(path.clone())).unwrap();
        assert_eq!(user_of(&tokens, "first").as_deref(), Some("ana"));
        // A later modification time, as a rotation a second later would have.
        write("ana", "second");
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        std::thread::sleep(FILE_CHECK + Duration::from_millis(50));
        assert_eq!(user_of(&tokens, "first"), None);
        assert_eq!(user_of(&tokens, "second").as_deref(), Some("ana"));
    }
}
