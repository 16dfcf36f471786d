//! One gRPC call the gateway makes itself, to replay a session's state on its new server:
//! the request messages go up framed, the whole answer comes back (replays answer with a
//! few small messages), and a status other than OK is an error carrying the server's message.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};

use super::super::body::UpstreamBody;
use super::super::wire::{Frame, FrameReader};
use super::super::{SERVICE, Upstream};

/// How long one replayed call may take (a view's plan is analysed, not run).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest answer a replayed call reads.
const MAX_ANSWER: usize = 64 << 20;

/// Calls `method` on the server at `endpoint` with `messages`; returns the answer's messages.
pub async fn call(
    client: &Upstream,
    endpoint: &str,
    token: &str,
    method: &str,
    messages: &[Bytes],
) -> Result<Vec<Bytes>, String> {
    let mut body = BytesMut::new();
    for message in messages {
        let frame = Frame {
            compressed: false,
            message: message.clone(),
        };
        body.extend_from_slice(&frame.encode());
    }
    let body: UpstreamBody = Full::new(body.freeze())
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = Request::post(format!("http://{endpoint}/{SERVICE}/{method}"))
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .map_err(|e| e.to_string())?;
    let answer = async {
        let response = client.request(request).await.map_err(|e| chain(&e))?;
        let (parts, body) = response.into_parts();
        status_of(&parts.headers)?;
        let collected = body.collect().await.map_err(|e| chain(&e))?;
        if let Some(trailers) = collected.trailers() {
            status_of(trailers)?;
        }
        let mut reader = FrameReader::new(MAX_ANSWER);
        reader.push(&collected.to_bytes());
        let mut out = Vec::new();
        while let Some(frame) = reader.next_frame().map_err(|e| e.to_string())? {
            out.push(frame.message);
        }
        Ok(out)
    };
    tokio::time::timeout(CALL_TIMEOUT, answer)
        .await
        .map_err(|_| format!("no answer within {}s", CALL_TIMEOUT.as_secs()))?
}

/// An error and its sources, as one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An error for a gRPC status other than OK in `headers` (headers or trailers).
fn status_of(headers: &HeaderMap) -> Result<(), String> {
    let Some(code) = headers.get("grpc-status").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    if code == "0" {
        return Ok(());
    }
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decoded)
        .unwrap_or_default();
    Err(format!("gRPC status {code}: {message}"))
}

/// A `grpc-message` as written (percent-encoded).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_other_than_ok_are_errors_with_their_message() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_of(&headers), Ok(()));
        headers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(status_of(&headers), Ok(()));
        headers.insert("grpc-status", "3".parse().unwrap());
        headers.insert("grpc-message", "table%20not%20found: v".parse().unwrap());
        assert_eq!(
            status_of(&headers),
            Err("gRPC status 3: table not found: v".into())
        );
    }
}
