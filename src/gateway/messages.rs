//! Splits an upstream response stream at gRPC message boundaries, so the client hop gets
//! whole messages (a few large writes) instead of one write per upstream HTTP/2 frame
//! (~16 KiB). Bounded: at most one unfinished message is held, and once that holds
//! [`CHUNK`] bytes it goes on in pieces of that size.

use bytes::{Bytes, BytesMut};

/// The largest part of one message held back before it is passed on.
pub const CHUNK: usize = 1 << 20;
/// The gRPC frame header: a compressed flag and a big-endian u32 length.
const HEADER: usize = 5;

#[derive(Debug, Default)]
pub struct Messages {
    pending: BytesMut,
    /// How far into `pending` headers and bodies have been read.
    parsed: usize,
    /// Where in `pending` the last whole message ends.
    whole: usize,
    /// Bytes of the current message's body still to arrive.
    missing: usize,
}

impl Messages {
    /// Takes a chunk of the stream; returns what may go on now: whole messages, or a
    /// [`CHUNK`] of a large one.
    pub fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        if self.pending.is_empty() && self.missing == 0 && whole_messages(&chunk) {
            return (!chunk.is_empty()).then_some(chunk);
        }
        self.pending.extend_from_slice(&chunk);
        self.read_on();
        if self.whole > 0 {
            let out = self.pending.split_to(self.whole).freeze();
            self.parsed -= self.whole;
            self.whole = 0;
            return Some(out);
        }
        (self.pending.len() >= CHUNK).then(|| {
            self.parsed = 0;
            self.pending.split().freeze()
        })
    }

    /// What is left when the stream ends (only a stream cut mid-message leaves anything).
    pub fn rest(&mut self) -> Option<Bytes> {
        self.parsed = 0;
        self.whole = 0;
        self.missing = 0;
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Reads headers and bodies as far as `pending` goes.
    fn read_on(&mut self) {
        loop {
            if self.missing > 0 {
                let here = self.missing.min(self.pending.len() - self.parsed);
                self.parsed += here;
                self.missing -= here;
                if self.missing > 0 {
                    return;
                }
                self.whole = self.parsed;
            }
            let Some(len) = body_len(&self.pending[self.parsed..]) else {
                return;
            };
            self.parsed += HEADER;
            self.missing = len;
            if len == 0 {
                self.whole = self.parsed;
            }
        }
    }
}

/// The body length a frame header at the start of `bytes` declares, once it is all there.
fn body_len(bytes: &[u8]) -> Option<usize> {
    let header: [u8; HEADER] = bytes.get(..HEADER)?.try_into().ok()?;
    Some(u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize)
}

/// Whether `chunk` is a run of whole messages (passed on as it is, without a copy).
fn whole_messages(mut chunk: &[u8]) -> bool {
    while !chunk.is_empty() {
        let Some(len) = body_len(chunk) else {
            return false;
        };
        let Some(rest) = chunk.get(HEADER + len..) else {
            return false;
        };
        chunk = rest;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len));
        out
    }

    /// Feeds `stream` in pieces of `size` and returns what comes out, piece by piece.
    fn split(stream: &[u8], size: usize) -> Vec<Bytes> {
        let mut messages = Messages::default();
        let mut out: Vec<Bytes> = stream
            .chunks(size)
            .filter_map(|c| messages.push(Bytes::copy_from_slice(c)))
            .collect();
        out.extend(messages.rest());
        out
    }

    #[test]
    fn small_messages_come_out_whole_whatever_the_chunking() {
        let stream = [frame(100), frame(0), frame(30_000), frame(5)].concat();
        for size in [1, 3, 5, 16_384, stream.len()] {
            let out = split(&stream, size);
            assert_eq!(out.concat(), stream, "chunks of {size}");
            for piece in &out {
                assert!(
                    whole_messages(piece),
                    "chunks of {size}: {} bytes",
                    piece.len()
                );
            }
        }
        assert_eq!(
            split(&stream, stream.len()).len(),
            1,
            "one write for one read"
        );
        assert_eq!(
            split(&stream, 16_384).len(),
            2,
            "one write per finished run"
        );
    }

    #[test]
    fn a_huge_message_goes_on_in_bounded_pieces() {
        let stream = [frame(3 * CHUNK + 10), frame(4)].concat();
        let out = split(&stream, 16_384);
        assert_eq!(out.concat(), stream);
        assert!(out.len() <= 5, "{} pieces", out.len());
        assert!(out.iter().all(|p| p.len() < CHUNK + 16_384));
    }

    #[test]
    fn a_stream_cut_mid_message_hands_back_its_rest() {
        let stream = frame(100);
        let mut messages = Messages::default();
        assert_eq!(messages.push(Bytes::copy_from_slice(&stream[..50])), None);
        assert_eq!(messages.rest().unwrap(), &stream[..50]);
        assert!(messages.is_empty());
    }
}
