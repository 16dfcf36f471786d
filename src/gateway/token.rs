//! sk8's own credential towards the Spark Connect servers it starts.
//!
//! Every session's server is started with a token (Spark's `spark.connect.authenticate.token`,
//! passed as the `SPARK_CONNECT_AUTHENTICATE_TOKEN` environment variable so that it shows in
//! no command line and no Spark conf), and the gateway sends it upstream as
//! `authorization: Bearer …` in place of the client's credential, which never goes upstream.
//! So an Apache Spark server answers only sk8, whoever else can reach its port (Sail does not
//! check tokens; it ignores the header).
//!
//! A session's token is an HMAC of its id under one key, so every replica derives the same
//! token with nothing stored: the key comes from `gateway.upstreamTokenKeyFile` (mount one
//! Secret into every replica), else from `<dataDir>/gateway-upstream.key`, created at first
//! start.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::domain::SessionId;

/// The environment variable Spark's Connect server reads its token from.
pub const TOKEN_ENV: &str = "SPARK_CONNECT_AUTHENTICATE_TOKEN";
/// The Spark conf that also holds it (never set by sk8, and redacted from Config responses).
pub const TOKEN_CONF: &str = "spark.connect.authenticate.token";
/// The file name of a generated key in the data directory.
const GENERATED_KEY: &str = "gateway-upstream.key";
const KEY_BYTES: usize = 32;

/// Derives each session's upstream token.
pub struct UpstreamTokens {
    key: hmac::Key,
}

impl UpstreamTokens {
    /// The key from `key_file`, else the data directory's generated one (created if absent).
    pub fn load(key_file: Option<&Path>, data_dir: &Path) -> anyhow::Result<Self> {
        let bytes = match key_file {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("read gateway.upstreamTokenKeyFile {}", path.display()))?,
            None => generated_key(&data_dir.join(GENERATED_KEY))?,
        };
        anyhow::ensure!(
            bytes.len() >= 16,
            "the gateway's upstream token key must hold at least 16 bytes"
        );
        Ok(UpstreamTokens::from_key(&bytes))
    }

    pub fn from_key(bytes: &[u8]) -> Self {
        UpstreamTokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// The token of a session's servers (the same for each of its starts).
    pub fn for_session(&self, session: &SessionId) -> String {
        let tag = hmac::sign(&self.key, session.as_str().as_bytes());
        hex(tag.as_ref())
    }
}

/// Lower-case hex of `bytes`, without a formatter call per byte (this runs on every RPC).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// Reads the generated key, or creates it (owner-only) on first start.
fn generated_key(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if let Ok(bytes) = std::fs::read(path) {
        return Ok(bytes);
    }
    let mut key = [0u8; KEY_BYTES];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("no randomness for the gateway's upstream token key"))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(&key)?;
            Ok(key.to_vec())
        }
        // Another process created it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read(path)?),
        Err(err) => {
            Err(err).with_context(|| format!("create the upstream token key {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_by_session_and_key_and_are_stable() {
        let a = SessionId::parse("01kb2r5q3h7m9x4c2d").unwrap();
        let b = SessionId::parse("01kb2r5q3h7m9x4c2e").unwrap();
        let tokens = UpstreamTokens::from_key(b"0123456789abcdef");
        let other = UpstreamTokens::from_key(b"fedcba9876543210");
        assert_eq!(tokens.for_session(&a), tokens.for_session(&a));
        assert_ne!(tokens.for_session(&a), tokens.for_session(&b));
        assert_ne!(tokens.for_session(&a), other.for_session(&a));
        assert_eq!(tokens.for_session(&a).len(), 64);
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn a_generated_key_is_kept_for_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let id = SessionId::parse("01kb2r5q3h7m9x4c2d").unwrap();
        let first = UpstreamTokens::load(None, dir.path()).unwrap();
        let again = UpstreamTokens::load(None, dir.path()).unwrap();
        assert_eq!(first.for_session(&id), again.for_session(&id));
    }
}
