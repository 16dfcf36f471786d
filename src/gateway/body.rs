//! The two bodies the proxy streams: requests, rewritten message by message on their way up,
//! and responses, passed down in whole messages ([`Messages`]), counted and watched for their
//! gRPC status. Neither is ever buffered whole. Config responses are also read message by
//! message, to redact the server's token conf should a server ever report it, and so are all
//! responses when the client hop is gzipped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, StreamBody};

use super::activity::Busy;
use super::compression;
use super::messages::Messages;
use super::restore::{self, Tap};
use super::token::TOKEN_CONF;
use super::wire::{self, FrameReader, WireError};
use crate::telemetry::rpc::grpc_code_name;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// What the upstream client sends.
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// How request messages are rewritten on their way up: the caller's identity goes in, and
/// gzipped ones (accepted only when the client hop speaks gzip) are unpacked, since the
/// server hop is never compressed.
#[derive(Clone)]
pub struct Rewriter {
    pub user: Arc<str>,
    /// The request came `grpc-encoding: gzip` and the gateway accepts that.
    pub gunzip: bool,
    pub max_message: usize,
    /// After a restore: the observed server-side id's field, and the current server's id.
    pub observed: Option<(u32, Arc<str>)>,
    /// Sees every request message (to keep an AddArtifacts stream).
    pub tap: Option<Arc<Tap>>,
}

impl Rewriter {
    /// A request frame with the caller's identity in it, uncompressed.
    pub fn rewrite(&self, frame: wire::Frame) -> Result<Bytes, WireError> {
        self.finish(self.unpack(frame)?)
    }

    /// A request frame's message, uncompressed.
    pub fn unpack(&self, frame: wire::Frame) -> Result<Bytes, WireError> {
        match (frame.compressed, self.gunzip) {
            (false, _) => Ok(frame.message),
            (true, true) => compression::gunzip(&frame.message, self.max_message),
            (true, false) => Err(WireError::Compressed),
        }
    }

    /// An uncompressed request message with the caller's identity (and the current server's
    /// id) in it, framed.
    pub fn finish(&self, message: Bytes) -> Result<Bytes, WireError> {
        let mut message = wire::with_user_id(&message, &self.user)?;
        if let Some(observed) = &self.observed {
            message = restore::as_server_knows(message, observed);
        }
        if let Some(tap) = &self.tap {
            tap.message(&message);
        }
        Ok(wire::Frame {
            compressed: false,
            message,
        }
        .encode())
    }

    /// The next whole request message, rewritten and framed.
    fn next_message(&self, reader: &mut FrameReader) -> Result<Option<Frame<Bytes>>, WireError> {
        let Some(frame) = reader.next_frame()? else {
            return Ok(None);
        };
        Ok(Some(Frame::data(self.rewrite(frame)?)))
    }
}

/// The request body as the server sees it: the first message (already read, for routing),
/// then every further message, rewritten.
pub fn rewritten_request(
    first: Option<Bytes>,
    reader: FrameReader,
    rest: BodyStream<tonic::body::Body>,
    rewriter: Rewriter,
) -> UpstreamBody {
    let first = futures::stream::iter(first.map(|m| Ok(Frame::data(m))));
    let state = (reader, rest, rewriter, false);
    let rest = futures::stream::unfold(state, |(mut reader, mut body, rw, done)| async move {
        if done {
            return None;
        }
        loop {
            match rw.next_message(&mut reader) {
                Ok(Some(frame)) => return Some((Ok(frame), (reader, body, rw, false))),
                Ok(None) => {}
                Err(err) => return Some((Err(err.into()), (reader, body, rw, true))),
            }
            match body.next().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        count_in(data.len());
                        reader.push(&data);
                    }
                }
                Some(Err(err)) => return Some((Err(err.into()), (reader, body, rw, true))),
                None if reader.has_partial() => {
                    let err: BoxError =
                        "the client ended its stream in the middle of a message".into();
                    return Some((Err(err), (reader, body, rw, true)));
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

/// What the gateway does to response messages on their way down.
#[derive(Clone, Debug, Default)]
pub struct Transform {
    /// Config responses: the token conf's value is redacted.
    pub redact: bool,
    /// The client hop is gzipped (`gateway.compression.toClient`, and the client accepts it).
    pub gzip: bool,
    /// After a restore: the server-side id's field, and the id the client holds.
    pub served: Option<(u32, Arc<str>)>,
}

/// The upstream response on its way to the client, passed on in whole messages (or, with a
/// [`Transform`], message by message). When it ends (or the client goes away) it records the
/// RPC's metrics and releases the session's busy mark.
pub struct ResponseBody {
    inner: hyper::body::Incoming,
    method: &'static str,
    started: Instant,
    bytes: u64,
    code: Option<String>,
    messages: Messages,
    /// Set when messages are rewritten: they are read whole.
    transform: Option<(Transform, FrameReader)>,
    /// Trailers that wait for the rest of a cut stream to go first.
    trailers: Option<Frame<Bytes>>,
    /// Runs when the RPC ended OK.
    on_ok: Option<Box<dyn FnOnce() + Send>>,
    _busy: Busy,
}

impl ResponseBody {
    pub fn new(
        inner: hyper::body::Incoming,
        method: &'static str,
        started: Instant,
        busy: Busy,
        code: Option<String>,
        transform: Transform,
    ) -> Self {
        let rewrites = transform.redact || transform.gzip || transform.served.is_some();
        ResponseBody {
            inner,
            method,
            started,
            bytes: 0,
            code,
            messages: Messages::default(),
            // A response message is as large as the server allows; the gateway sets no limit.
            transform: rewrites.then(|| (transform, FrameReader::new(u32::MAX as usize))),
            trailers: None,
            on_ok: None,
            _busy: busy,
        }
    }

    /// Runs `on_ok` once the RPC ended with status OK.
    pub fn on_ok(mut self, on_ok: Option<Box<dyn FnOnce() + Send>>) -> Self {
        self.on_ok = on_ok;
        self
    }

    /// What of `data` may go on now.
    fn pass(&mut self, data: Bytes) -> Option<Bytes> {
        match self.transform.as_mut() {
            Some((transform, reader)) => transformed(transform, reader, &data),
            None => self.messages.push(data),
        }
    }

    /// The rest of a stream that ended mid-message (passed on as it came).
    fn rest(&mut self) -> Option<Bytes> {
        match self.transform.as_mut() {
            Some((_, reader)) => reader.take_rest(),
            None => self.messages.rest(),
        }
    }
}

/// The whole response messages buffered so far, rewritten and framed again; `None` while only
/// part of one has arrived. (The gateway never asks a server to compress; a message that came
/// compressed all the same passes unchanged.)
fn transformed(transform: &Transform, reader: &mut FrameReader, chunk: &[u8]) -> Option<Bytes> {
    reader.push(chunk);
    let mut out = bytes::BytesMut::new();
    while let Ok(Some(frame)) = reader.next_frame() {
        let mut frame = frame;
        if !frame.compressed {
            if transform.redact {
                frame.message =
                    wire::redact_conf(&frame.message, TOKEN_CONF).unwrap_or(frame.message);
            }
            if let Some(served) = &transform.served {
                frame.message = restore::as_client_holds(frame.message, served);
            }
            if transform.gzip {
                frame.message = compression::gzip(&frame.message);
                frame.compressed = true;
            }
        }
        out.extend_from_slice(&frame.encode());
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
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(trailers)));
        }
        loop {
            let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => return Poll::Ready(self.rest().map(|rest| Ok(Frame::data(rest)))),
            };
            let trailers = match frame.into_data() {
                Ok(data) => {
                    self.bytes += data.len() as u64;
                    match self.pass(data) {
                        Some(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        None => continue,
                    }
                }
                Err(trailers) => trailers,
            };
            if let Some(map) = trailers.trailers_ref() {
                self.code = map
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
            }
            let Some(rest) = self.rest() else {
                return Poll::Ready(Some(Ok(trailers)));
            };
            self.trailers = Some(trailers);
            return Poll::Ready(Some(Ok(Frame::data(rest))));
        }
    }

    fn is_end_stream(&self) -> bool {
        let holds = match &self.transform {
            Some((_, reader)) => reader.has_partial(),
            None => !self.messages.is_empty(),
        };
        self.inner.is_end_stream() && self.trailers.is_none() && !holds
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // No status seen: the client went away (or the upstream broke) before the end.
        let code = self.code.as_deref().map_or("cancelled", grpc_code_name);
        if let (Some(on_ok), "ok") = (self.on_ok.take(), code) {
            on_ok();
        }
        metrics::counter!("sk8_gateway_rpcs_total", "method" => self.method, "code" => code)
            .increment(1);
        metrics::counter!("sk8_gateway_bytes_total", "direction" => "out").increment(self.bytes);
        metrics::histogram!("sk8_gateway_rpc_seconds", "method" => self.method)
            .record(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewriter(gunzip: bool) -> Rewriter {
        Rewriter {
            user: "mia".into(),
            gunzip,
            max_message: 1 << 20,
            observed: None,
            tap: None,
        }
    }

    #[test]
    fn gzipped_requests_go_up_unpacked_only_when_the_client_hop_speaks_gzip() {
        let plain = wire::with_user_id(b"\x0a\x02s1", "mallory").unwrap();
        let packed = wire::Frame {
            compressed: true,
            message: compression::gzip(&plain),
        };
        let expected = wire::Frame {
            compressed: false,
            message: wire::with_user_id(&plain, "mia").unwrap(),
        };
        let up = rewriter(true).rewrite(packed).unwrap();
        assert_eq!(up, expected.encode());
        let refused = rewriter(false).rewrite(wire::Frame {
            compressed: true,
            message: compression::gzip(&plain),
        });
        assert_eq!(refused, Err(WireError::Compressed));
    }
}
