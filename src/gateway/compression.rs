//! gzip of single gRPC messages, for the client hop when `gateway.compression.toClient` is
//! `gzip` (the server hop is never compressed: see [`crate::config::CompressionConfig`]).

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use http::HeaderMap;

use super::wire::WireError;

/// The gRPC name of the only compressed encoding the gateway speaks.
pub const GZIP: &str = "gzip";

/// A message gzipped at the fast level (a proxy pays for compression on every byte).
pub fn gzip(message: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(message.len() / 2 + 64),
        Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    encoder.write_all(message).expect("gzip into memory");
    encoder.finish().expect("gzip into memory").into()
}

/// A gzipped message, refused when its plain form is over `max` bytes.
pub fn gunzip(message: &[u8], max: usize) -> Result<Bytes, WireError> {
    let mut plain = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    GzDecoder::new(message)
        .take(limit)
        .read_to_end(&mut plain)
        .map_err(|_| WireError::Malformed("not a gzip message"))?;
    if plain.len() > max {
        return Err(WireError::TooLarge(plain.len(), max));
    }
    Ok(plain.into())
}

/// Whether a peer's `grpc-accept-encoding` (or a request's `grpc-encoding`) names gzip.
pub fn names_gzip(headers: &HeaderMap, key: &str) -> bool {
    headers
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|encoding| encoding.trim() == GZIP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_oversized_or_garbage_ones_are_refused() {
        let message = b"spark ".repeat(1000);
        let packed = gzip(&message);
        assert!(packed.len() < message.len() / 10, "{}", packed.len());
        assert_eq!(gunzip(&packed, message.len()).unwrap(), &message[..]);
        assert_eq!(
            gunzip(&packed, 100),
            Err(WireError::TooLarge(101, 100)),
            "decoding stops past the limit"
        );
        assert!(matches!(
            gunzip(b"\x0a\x01a", 100),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn gzip_is_found_in_a_list_of_encodings() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "grpc-accept-encoding",
            "identity, deflate, gzip".parse().unwrap(),
        );
        assert!(names_gzip(&headers, "grpc-accept-encoding"));
        headers.insert("grpc-accept-encoding", "identity,deflate".parse().unwrap());
        assert!(!names_gzip(&headers, "grpc-accept-encoding"));
        assert!(!names_gzip(&headers, "grpc-encoding"));
    }
}
