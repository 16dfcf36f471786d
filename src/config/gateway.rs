//! `gateway.compression` in sk8's config: which gRPC message compression each hop of the
//! gateway uses.
//!
//! The hop to a session's server is in-cluster, so the gateway never asks a server to compress
//! (it does not pass the client's `grpc-accept-encoding` on) and never compresses what it sends
//! there. Toward clients, compression is sk8's choice: `off` (the default) for clients on fast
//! links, `gzip` for clients across slow ones — then responses are gzipped for clients that
//! accept gzip, and clients may send gzipped requests.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// The encoding of the client hop, both ways.
    pub to_client: Encoding,
}

/// A gRPC message encoding the gateway speaks with clients: `off` or `gzip` (YAML reads a
/// bare `off` as false, which means off too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Off,
    Gzip,
}

impl<'de> Deserialize<'de> for Encoding {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Name(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Flag(false) => Ok(Encoding::Off),
            Written::Name(name) if name == "off" => Ok(Encoding::Off),
            Written::Name(name) if name == "gzip" => Ok(Encoding::Gzip),
            _ => Err(serde::de::Error::custom("must be off or gzip")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_off_unless_configured_and_unknown_encodings_are_refused() {
        assert_eq!(CompressionConfig::default().to_client, Encoding::Off);
        let gzip: CompressionConfig = serde_saphyr::from_str("toClient: gzip").unwrap();
        assert_eq!(gzip.to_client, Encoding::Gzip);
        let off: CompressionConfig = serde_saphyr::from_str("toClient: off").unwrap();
        assert_eq!(off.to_client, Encoding::Off);
        for bad in ["toClient: zstd", "toClient: true"] {
            let refused = serde_saphyr::from_str::<CompressionConfig>(bad).unwrap_err();
            assert!(
                refused.to_string().contains("must be off or gzip"),
                "{refused}"
            );
        }
    }
}
