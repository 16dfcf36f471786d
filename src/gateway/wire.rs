//! Just enough gRPC framing and protobuf wire format to route and rewrite Spark Connect
//! requests without knowing their message types.
//!
//! Every Spark Connect request has `string session_id = 1` and `UserContext user_context = 2`
//! (`UserContext { string user_id = 1; string user_name = 2; … }`), and the operation-scoped
//! ones carry an operation id at a known field. The gateway reads those and rewrites
//! `user_context.user_id`; every other byte of the message passes through untouched, so fields
//! added by newer Spark versions survive the proxy. Of responses, only `ConfigResponse` is
//! ever rewritten: the value of one secret conf is redacted ([`redact_conf`]).

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The gRPC frame header: a compressed flag and a big-endian u32 length.
const FRAME_HEADER: usize = 5;
const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
pub(crate) const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;
/// Spark Connect's `session_id` and `user_context` fields, and `UserContext.user_id`.
const SESSION_ID: u32 = 1;
const USER_CONTEXT: u32 = 2;
const USER_ID: u32 = 1;
/// `ConfigResponse.pairs` and `KeyValue { string key = 1; optional string value = 2; }`.
const CONFIG_PAIRS: u32 = 2;
const PAIR_KEY: u32 = 1;
const PAIR_VALUE: u32 = 2;
/// What a redacted conf value reads.
pub const REDACTED: &str = "*********(redacted by sk8)";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed protobuf message: {0}")]
    Malformed(&'static str),
    #[error("a request message of {0} bytes is over the gateway's limit of {1}")]
    TooLarge(usize, usize),
    #[error("compressed request messages are not supported by the gateway")]
    Compressed,
}

/// One gRPC message as framed on the wire.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub compressed: bool,
    pub message: Bytes,
}

impl Frame {
    /// The frame's bytes: header, then message.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(FRAME_HEADER + self.message.len());
        out.put_u8(u8::from(self.compressed));
        out.put_u32(self.message.len() as u32);
        out.extend_from_slice(&self.message);
        out.freeze()
    }
}

/// Splits a byte stream into gRPC frames, whatever the chunking.
#[derive(Debug)]
pub struct FrameReader {
    buffer: BytesMut,
    max_message: usize,
}

impl FrameReader {
    pub fn new(max_message: usize) -> Self {
        FrameReader {
            buffer: BytesMut::new(),
            max_message,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next whole frame, if buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        if self.buffer.len() < FRAME_HEADER {
            return Ok(None);
        }
        let compressed = self.buffer[0] != 0;
        let len = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]) as usize;
        if len > self.max_message {
            return Err(WireError::TooLarge(len, self.max_message));
        }
        if self.buffer.len() < FRAME_HEADER + len {
            return Ok(None);
        }
        self.buffer.advance(FRAME_HEADER);
        let message = self.buffer.split_to(len).freeze();
        Ok(Some(Frame {
            compressed,
            message,
        }))
    }

    /// Whether bytes of an unfinished frame are left (a stream cut mid-message).
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The bytes of an unfinished frame, taken.
    pub fn take_rest(&mut self) -> Option<Bytes> {
        self.has_partial().then(|| self.buffer.split().freeze())
    }
}

/// One top-level field of a message: its number, wire type, and where it lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub number: u32,
    pub wire_type: u8,
    /// The whole field, tag included.
    pub whole: Range<usize>,
    /// The value; for length-delimited fields, without the length.
    pub value: Range<usize>,
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or(WireError::Malformed("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::Malformed("varint longer than 10 bytes"))
}

fn write_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// The top-level fields of `msg`, in order; an error for anything that is not protobuf.
pub(crate) fn fields(msg: &[u8]) -> Result<Vec<Field>, WireError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < msg.len() {
        let start = pos;
        let tag = read_varint(msg, &mut pos)?;
        let number = u32::try_from(tag >> 3).map_err(|_| WireError::Malformed("field number"))?;
        if number == 0 {
            return Err(WireError::Malformed("field number 0"));
        }
        let wire_type = (tag & 7) as u8;
        let value_start;
        match wire_type {
            WIRE_VARINT => {
                value_start = pos;
                read_varint(msg, &mut pos)?;
            }
            WIRE_I64 => {
                value_start = pos;
                pos += 8;
            }
            WIRE_I32 => {
                value_start = pos;
                pos += 4;
            }
            WIRE_LEN => {
                let len = read_varint(msg, &mut pos)?;
                value_start = pos;
                let len = usize::try_from(len).map_err(|_| WireError::Malformed("length"))?;
                pos = pos.checked_add(len).ok_or(WireError::Malformed("length"))?;
            }
            _ => return Err(WireError::Malformed("unsupported wire type (groups)")),
        }
        if pos > msg.len() {
            return Err(WireError::Malformed("field runs past the end"));
        }
        out.push(Field {
            number,
            wire_type,
            whole: start..pos,
            value: value_start..pos,
        });
    }
    Ok(out)
}

/// The last value of a string field (protobuf: the last occurrence wins).
pub(crate) fn string_field(
    msg: &[u8],
    fields: &[Field],
    number: u32,
) -> Result<Option<String>, WireError> {
    let Some(field) = fields
        .iter()
        .rev()
        .find(|f| f.number == number && f.wire_type == WIRE_LEN)
    else {
        return Ok(None);
    };
    String::from_utf8(msg[field.value.clone()].to_vec())
        .map(Some)
        .map_err(|_| WireError::Malformed("string field is not UTF-8"))
}

/// What routing reads of a request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routing {
    pub session_id: Option<String>,
    pub operation_id: Option<String>,
}

/// Reads the session id and, when the method has one, the operation id (its field number).
pub fn routing(msg: &[u8], operation_field: Option<u32>) -> Result<Routing, WireError> {
    let fields = fields(msg)?;
    Ok(Routing {
        session_id: string_field(msg, &fields, SESSION_ID)?,
        operation_id: match operation_field {
            Some(number) => string_field(msg, &fields, number)?,
            None => None,
        },
    })
}

/// The message with `user_context.user_id` set to `user`: whatever else the client put in its
/// user context is kept (several occurrences merge, as protobuf parsers do), every other field
/// passes through byte for byte.
pub fn with_user_id(msg: &[u8], user: &str) -> Result<Bytes, WireError> {
    let top = fields(msg)?;
    let mut out = BytesMut::with_capacity(msg.len() + user.len() + 8);
    let mut context = BytesMut::new();
    for field in &top {
        if field.number == USER_CONTEXT && field.wire_type == WIRE_LEN {
            let inner = &msg[field.value.clone()];
            for sub in fields(inner)? {
                if sub.number != USER_ID {
                    context.extend_from_slice(&inner[sub.whole]);
                }
            }
        } else {
            out.extend_from_slice(&msg[field.whole.clone()]);
        }
    }
    put_len_field(&mut context, USER_ID, user.as_bytes());
    put_len_field(&mut out, USER_CONTEXT, &context);
    Ok(out.freeze())
}

/// A `ConfigResponse` with the value of every pair keyed `key` replaced by [`REDACTED`];
/// every other byte passes through.
pub fn redact_conf(msg: &[u8], key: &str) -> Result<Bytes, WireError> {
    let mut out = BytesMut::with_capacity(msg.len());
    for field in fields(msg)? {
        let value = &msg[field.value.clone()];
        if field.number != CONFIG_PAIRS || field.wire_type != WIRE_LEN {
            out.extend_from_slice(&msg[field.whole]);
            continue;
        }
        let pair = fields(value)?;
        if string_field(value, &pair, PAIR_KEY)?.as_deref() != Some(key) {
            out.extend_from_slice(&msg[field.whole]);
            continue;
        }
        let mut redacted = BytesMut::new();
        for sub in pair.iter().filter(|sub| sub.number != PAIR_VALUE) {
            redacted.extend_from_slice(&value[sub.whole.clone()]);
        }
        put_len_field(&mut redacted, PAIR_VALUE, REDACTED.as_bytes());
        put_len_field(&mut out, CONFIG_PAIRS, &redacted);
    }
    Ok(out.freeze())
}

pub(crate) fn put_len_field(out: &mut BytesMut, number: u32, value: &[u8]) {
    write_varint(out, (u64::from(number) << 3) | u64::from(WIRE_LEN));
    write_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `session_id`, a user context with user_id and user_name, an operation id at field 6,
    /// and an unknown field the gateway must keep.
    fn request(session: &str, user: &str, operation: &str) -> Bytes {
        let mut context = BytesMut::new();
        put_len_field(&mut context, 1, user.as_bytes());
        put_len_field(&mut context, 2, b"Laptop User");
        let mut msg = BytesMut::new();
        put_len_field(&mut msg, 1, session.as_bytes());
        put_len_field(&mut msg, 2, &context);
        put_len_field(&mut msg, 6, operation.as_bytes());
        write_varint(&mut msg, (77 << 3) | u64::from(WIRE_VARINT));
        write_varint(&mut msg, 300);
        msg.freeze()
    }

    #[test]
    fn routing_reads_session_and_operation() {
        let msg = request("s-1", "mallory", "op-9");
        let routing = routing(&msg, Some(6)).unwrap();
        assert_eq!(routing.session_id.as_deref(), Some("s-1"));
        assert_eq!(routing.operation_id.as_deref(), Some("op-9"));
        assert_eq!(super::routing(&msg, None).unwrap().operation_id, None);
    }

    #[test]
    fn user_id_is_overwritten_and_everything_else_kept() {
        let msg = request("s-1", "mallory", "op-9");
        let rewritten = with_user_id(&msg, "alice@payments").unwrap();
        let top = fields(&rewritten).unwrap();
        let numbers: Vec<u32> = top.iter().map(|f| f.number).collect();
        assert_eq!(numbers, [1, 6, 77, 2], "one user context, at the end");
        let context = &rewritten[top[3].value.clone()];
        let inner = fields(context).unwrap();
        assert_eq!(
            string_field(context, &inner, 1).unwrap().as_deref(),
            Some("alice@payments")
        );
        assert_eq!(
            string_field(context, &inner, 2).unwrap().as_deref(),
            Some("Laptop User")
        );
        assert_eq!(inner.iter().filter(|f| f.number == 1).count(), 1);
        // A message without a user context gets one.
        let bare = with_user_id(b"", "alice").unwrap();
        assert_eq!(&bare[..], b"\x12\x07\x0a\x05alice");
    }

    #[test]
    fn config_responses_lose_only_the_secret_value() {
        let pair = |key: &str, value: &str| {
            let mut pair = BytesMut::new();
            put_len_field(&mut pair, PAIR_KEY, key.as_bytes());
            put_len_field(&mut pair, PAIR_VALUE, value.as_bytes());
            pair
        };
        let mut msg = BytesMut::new();
        put_len_field(&mut msg, 1, b"session");
        put_len_field(
            &mut msg,
            CONFIG_PAIRS,
            &pair("spark.sql.ansi.enabled", "true"),
        );
        put_len_field(
            &mut msg,
            CONFIG_PAIRS,
            &pair("spark.secret.token", "hunter2"),
        );
        put_len_field(&mut msg, 4, b"server-side");
        let redacted = redact_conf(&msg, "spark.secret.token").unwrap();
        let mut expected = BytesMut::new();
        put_len_field(&mut expected, 1, b"session");
        put_len_field(
            &mut expected,
            CONFIG_PAIRS,
            &pair("spark.sql.ansi.enabled", "true"),
        );
        put_len_field(
            &mut expected,
            CONFIG_PAIRS,
            &pair("spark.secret.token", REDACTED),
        );
        put_len_field(&mut expected, 4, b"server-side");
        assert_eq!(redacted, expected.freeze());
        // Nothing to redact: the same bytes.
        assert_eq!(redact_conf(&msg, "spark.other").unwrap(), msg.freeze());
    }

    #[test]
    fn frames_split_across_chunks_come_out_whole() {
        let one = Frame {
            compressed: false,
            message: request("s", "u", "o"),
        };
        let two = Frame {
            compressed: false,
            message: Bytes::new(),
        };
        let stream = [one.encode(), two.encode()].concat();
        let mut reader = FrameReader::new(1 << 20);
        let mut out = Vec::new();
        for chunk in stream.chunks(3) {
            reader.push(chunk);
            while let Some(frame) = reader.next_frame().unwrap() {
                out.push(frame);
            }
        }
        assert_eq!(out, [one, two]);
        assert!(!reader.has_partial());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"\x0a\xff\xff\xff\xff\x0f"[..], // length past the end
            b"\x0a",                          // truncated length
            b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", // over-long varint
            b"\x0b",                          // group wire type
            b"\x00",                          // field 0
            b"\x0a\x02\xff\xfe",              // session id not UTF-8
        ] {
            assert!(routing(bad, Some(6)).is_err(), "{bad:?}");
        }
        let mut reader = FrameReader::new(16);
        reader.push(&[0, 0, 0, 1, 0]);
        assert_eq!(reader.next_frame(), Err(WireError::TooLarge(256, 16)));
    }
}
