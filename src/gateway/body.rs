//! The two bodies the proxy streams: requests, rewritten message by message on their way up,
//! and responses, passed down frame by frame as they arrive, counted and watched for their
//! gRPC status. Neither is ever buffered whole. Config responses are also read message by
//! message, to redact the server's token conf should a server ever report it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, StreamBody};

use super::activity::Busy;
use super::token::TOKEN_CONF;
use super::wire::{self, FrameReader, WireError};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// What the upstream client sends.
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// The request body as the server sees it: the first message (already read, for routing),
/// then every further message, each with `user_context.user_id` set to `user`.
pub fn rewritten_request(
    first: Option<Bytes>,
    reader: FrameReader,
    rest: BodyStream<tonic::body::Body>,
    user: Arc<str>,
) -> UpstreamBody {
    let first = futures::stream::iter(first.map(|m| Ok(Frame::data(m))));
    let state = (reader, rest, user, false);
    let rest = futures::stream::unfold(state, |(mut reader, mut body, user, done)| async move {
        if done {
            return None;
        }
        loop {
            match next_message(&mut reader, &user) {
                Ok(Some(frame)) => return Some((Ok(frame), (reader, body, user, false))),
                Ok(None) => {}
                Err(err) => return Some((Err(err.into()), (reader, body, user, true))),
            }
            match body.next().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        count_in(data.len());
                        reader.push(&data);
                    }
                }
                Some(Err(err)) => return Some((Err(err.into()), (reader, body, user, true))),
                None if reader.has_partial() => {
                    let err: BoxError =
                        "the client ended its stream in the middle of a message".into();
                    return Some((Err(err), (reader, body, user, true)));
                }
                None => return None,
            }
        }
    });
    StreamBody::new(first.chain(rest)).boxed_unsync()
}

/// Request bytes received from clients.
pub fn count_in(bytes: usize) {
    metrics::counter!("sk8_gateway_bytes_total", "direction" => "in").increment(bytes as u64);
}

/// The next whole request message, rewritten and framed.
fn next_message(reader: &mut FrameReader, user: &str) -> Result<Option<Frame<Bytes>>, WireError> {
    let Some(frame) = reader.next_frame()? else {
        return Ok(None);
    };
    Ok(Some(Frame::data(rewrite(frame, user)?)))
}

/// A request frame with the caller's identity in it.
pub fn rewrite(frame: wire::Frame, user: &str) -> Result<Bytes, WireError> {
    if frame.compressed {
        return Err(WireError::Compressed);
    }
    let message = wire::with_user_id(&frame.message, user)?;
    Ok(wire::Frame {
        compressed: false,
        message,
    }
    .encode())
}

/// The upstream response on its way to the client. When it ends (or the client goes away) it
/// records the RPC's metrics and releases the session's busy mark.
pub struct ResponseBody {
    inner: hyper::body::Incoming,
    method: &'static str,
    started: Instant,
    bytes: u64,
    code: Option<String>,
    /// For Config: the messages read so far, to redact.
    redact: Option<FrameReader>,
    _busy: Busy,
}

impl ResponseBody {
    pub fn new(
        inner: hyper::body::Incoming,
        method: &'static str,
        started: Instant,
        busy: Busy,
        code: Option<String>,
    ) -> Self {
        ResponseBody {
            inner,
            method,
            started,
            bytes: 0,
            code,
            // A response message is as large as the server allows; the gateway sets no limit.
            redact: (method == "Config").then(|| FrameReader::new(u32::MAX as usize)),
            _busy: busy,
        }
    }
}

/// The whole Config response messages buffered so far, redacted and framed again; `None`
/// while only part of one has arrived. (The gateway asks for Config responses uncompressed; a
/// message that still cannot be read passes unchanged.)
fn redacted(reader: &mut FrameReader, chunk: &[u8]) -> Option<Bytes> {
    reader.push(chunk);
    let mut out = bytes::BytesMut::new();
    while let Ok(Some(frame)) = reader.next_frame() {
        let message = match frame.compressed {
            true => frame.message,
            false => wire::redact_conf(&frame.message, TOKEN_CONF).unwrap_or(frame.message),
        };
        out.extend_from_slice(
            &wire::Frame {
                compressed: frame.compressed,
                message,
            }
            .encode(),
        );
    }
    (!out.is_empty()).then(|| out.freeze())
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        loop {
            let polled = Pin::new(&mut self.inner).poll_frame(cx);
            if let Poll::Ready(Some(Ok(frame))) = &polled {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                } else if let Some(trailers) = frame.trailers_ref() {
                    self.code = trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                }
            }
            let Some(reader) = self.redact.as_mut() else {
                return polled;
            };
            match polled {
                Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                    let data = frame.into_data().unwrap_or_default();
                    if let Some(out) = redacted(reader, &data) {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // No status seen: the client went away (or the upstream broke) before the end.
        let code = self.code.as_deref().map_or("cancelled", grpc_code_name);
        metrics::counter!("sk8_gateway_rpcs_total", "method" => self.method, "code" => code)
            .increment(1);
        metrics::counter!("sk8_gateway_bytes_total", "direction" => "out").increment(self.bytes);
        metrics::histogram!("sk8_gateway_rpc_seconds", "method" => self.method)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// The name of a numeric gRPC status, for metric labels.
pub fn grpc_code_name(code: &str) -> &'static str {
    match code {
        "0" => "ok",
        "1" => "cancelled",
        "2" => "unknown",
        "3" => "invalid_argument",
        "4" => "deadline_exceeded",
        "5" => "not_found",
        "6" => "already_exists",
        "7" => "permission_denied",
        "8" => "resource_exhausted",
        "9" => "failed_precondition",
        "10" => "aborted",
        "11" => "out_of_range",
        "12" => "unimplemented",
        "13" => "internal",
        "14" => "unavailable",
        "15" => "data_loss",
        "16" => "unauthenticated",
        _ => "other",
    }
}
