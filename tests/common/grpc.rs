//! Raw gRPC calls to the gateway over h2c, so a test can send what no Spark client would
//! (any metadata, a broken frame) and read the status, message and metadata it gets back.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// What a call ended with.
#[derive(Debug)]
pub struct Answer {
    /// `grpc-status`; -1 when there was none.
    pub code: i32,
    /// `grpc-message`, percent-decoded.
    pub message: String,
    /// Headers and trailers together.
    pub metadata: http::HeaderMap,
}

/// Calls `spark.connect.SparkConnectService/<method>` on `addr` with `metadata` and the raw
/// request `body` (already framed).
pub async fn call(addr: &str, method: &str, metadata: &[(&str, String)], body: Bytes) -> Answer {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let uri = format!("http://{addr}/spark.connect.SparkConnectService/{method}");
    let mut request = http::Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in metadata {
        request = request.header(*name, value);
    }
    let request = request.body(Full::new(body)).unwrap();
    let response = client.request(request).await.expect("the gateway answers");
    let (parts, body) = response.into_parts();
    let mut metadata = parts.headers;
    if let Some(trailers) = body.collect().await.expect("a whole answer").trailers() {
        metadata.extend(trailers.clone());
    }
    let text = |name: &str| {
        metadata
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    Answer {
        code: text("grpc-status").parse().unwrap_or(-1),
        message: percent_decoded(&text("grpc-message")),
        metadata,
    }
}

/// A gRPC frame around `message`, with the compressed flag and the length as given.
pub fn frame(compressed: bool, declared_len: u32, message: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(compressed)];
    out.extend_from_slice(&declared_len.to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// A framed request message every Spark Connect method reads: `session_id = 1` and
/// `user_context = 2` (`user_id = 1`, "mallory").
pub fn spark_request(session: &str) -> Bytes {
    let user = [&[0x0a, 7][..], b"mallory"].concat();
    let message = [
        &[0x0a, session.len() as u8][..],
        session.as_bytes(),
        &[0x12, user.len() as u8],
        &user,
    ]
    .concat();
    frame(false, message.len() as u32, &message).into()
}

/// grpc-message is percent-encoded on the wire.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
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

/// A Spark Connect server command that never listens: sessions stay STARTING, so RPCs that
/// get past authorization wait out `gateway.resumeTimeoutSeconds`.
pub fn never_ready_server(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("never-ready");
    std::fs::write(&path, "#!/bin/sh\nexec sleep 120\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
