//! The compression framings Spark writes event logs in, as streaming readers.
//!
//! - `zstd`: standard zstd frames, several per file (Spark flushes a frame at a time).
//! - `lz4`: lz4-java's `LZ4BlockOutputStream` blocks: the magic `LZ4Block`, a token (method in
//!   the high nibble: raw or lz4), compressed and original lengths and a checksum (little
//!   endian), then the block; an empty block ends a stream, and streams may follow each other.
//! - `snappy`: snappy-java's `SnappyOutputStream`: an 8-byte magic and two version ints, then
//!   chunks of a big-endian length and a raw snappy block; a new header may start again.
//!
//! Each block is decompressed into a buffer of its own, so memory is bounded by the block
//! sizes Spark writes (32 KiB by default), not by the log.

use std::io::{self, BufRead, BufReader, Read};

/// A codec Spark names in the log's file suffix (`spark.eventLog.compression.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zstd,
    Lz4,
    Snappy,
}

impl Codec {
    /// The codec a file suffix names (`zstd`, `lz4`, `snappy`); `lzf` is not supported.
    pub fn from_suffix(suffix: &str) -> Option<Codec> {
        match suffix {
            "zstd" => Some(Codec::Zstd),
            "lz4" => Some(Codec::Lz4),
            "snappy" => Some(Codec::Snappy),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
            Codec::Snappy => "snappy",
        }
    }

    /// `raw` decompressed.
    pub fn reader<'a, R: Read + Send + 'a>(self, raw: R) -> io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
            Codec::Lz4 => Box::new(Lz4Blocks::new(raw)),
            Codec::Snappy => Box::new(SnappyChunks::new(raw)),
        })
    }
}

/// A block larger than this is corruption, not something Spark wrote.
const MAX_BLOCK: usize = 64 << 20;

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Fills `buf` entirely, or returns false at a clean end of input before its first byte.
fn read_exact_or_end(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated compressed block",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Serves decompressed blocks one after the other.
struct Blocks {
    compressed: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
}

impl Blocks {
    fn new() -> Blocks {
        Blocks {
            compressed: Vec::new(),
            out: Vec::new(),
            pos: 0,
        }
    }

    fn serve(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    fn drained(&self) -> bool {
        self.pos == self.out.len()
    }

    fn read_compressed(&mut self, reader: &mut impl Read, len: usize) -> io::Result<()> {
        if len > MAX_BLOCK {
            return Err(invalid(format!("compressed block of {len} bytes")));
        }
        self.compressed.resize(len, 0);
        if len > 0 && !read_exact_or_end(reader, &mut self.compressed)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated compressed block",
            ));
        }
        Ok(())
    }
}

const LZ4_MAGIC: &[u8; 8] = b"LZ4Block";
const LZ4_HEADER: usize = 8 + 1 + 4 + 4 + 4;
const LZ4_RAW: u8 = 0x10;
const LZ4_COMPRESSED: u8 = 0x20;

/// lz4-java's block stream.
pub struct Lz4Blocks<R> {
    inner: BufReader<R>,
    blocks: Blocks,
}

impl<R: Read> Lz4Blocks<R> {
    pub fn new(inner: R) -> Self {
        Lz4Blocks {
            inner: BufReader::with_capacity(256 << 10, inner),
            blocks: Blocks::new(),
        }
    }

    /// Decompresses the next block; false at the end of input.
    fn next_block(&mut self) -> io::Result<bool> {
        let mut header = [0u8; LZ4_HEADER];
        if !read_exact_or_end(&mut self.inner, &mut header)? {
            return Ok(false);
        }
        if &header[..8] != LZ4_MAGIC {
            return Err(invalid("lz4: a block without the LZ4Block magic".into()));
        }
        let method = header[8] & 0xF0;
        let compressed = u32::from_le_bytes(header[9..13].try_into().expect("4 bytes")) as usize;
        let original = u32::from_le_bytes(header[13..17].try_into().expect("4 bytes")) as usize;
        if original > MAX_BLOCK {
            return Err(invalid(format!("lz4: block of {original} bytes")));
        }
        self.blocks.read_compressed(&mut self.inner, compressed)?;
        self.blocks.pos = 0;
        match method {
            LZ4_RAW if compressed == original => {
                std::mem::swap(&mut self.blocks.out, &mut self.blocks.compressed);
            }
            LZ4_COMPRESSED => {
                self.blocks.out.resize(original, 0);
                let n =
                    lz4_flex::block::decompress_into(&self.blocks.compressed, &mut self.blocks.out)
                        .map_err(|e| invalid(format!("lz4: {e}")))?;
                if n != original {
                    return Err(invalid(format!(
                        "lz4: block of {n} bytes, {original} announced"
                    )));
                }
            }
            other => return Err(invalid(format!("lz4: unknown block method {other:#x}"))),
        }
        self.blocks.out.truncate(original);
        Ok(true)
    }
}

impl<R: Read> Read for Lz4Blocks<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.blocks.drained() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        Ok(self.blocks.serve(buf))
    }
}

const SNAPPY_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const SNAPPY_HEADER: usize = 8 + 4 + 4;

/// snappy-java's chunk stream.
pub struct SnappyChunks<R> {
    inner: BufReader<R>,
    blocks: Blocks,
    decoder: snap::raw::Decoder,
}

impl<R: Read> SnappyChunks<R> {
    pub fn new(inner: R) -> Self {
        SnappyChunks {
            inner: BufReader::with_capacity(256 << 10, inner),
            blocks: Blocks::new(),
            decoder: snap::raw::Decoder::new(),
        }
    }

    /// Skips a stream header if one starts here; false at the end of input.
    fn skip_header(&mut self) -> io::Result<bool> {
        let available = self.inner.fill_buf()?;
        if available.is_empty() {
            return Ok(false);
        }
        if available.len() >= 8 && &available[..8] == SNAPPY_MAGIC {
            let mut header = [0u8; SNAPPY_HEADER];
            self.inner.read_exact(&mut header)?;
        } else if available[0] == SNAPPY_MAGIC[0] && available.len() < 8 {
            return Err(invalid(
                "snappy: a stream header split by the reader".into(),
            ));
        }
        Ok(true)
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        if !self.skip_header()? {
            return Ok(false);
        }
        let mut length = [0u8; 4];
        if !read_exact_or_end(&mut self.inner, &mut length)? {
            return Ok(false);
        }
        let compressed = u32::from_be_bytes(length) as usize;
        self.blocks.read_compressed(&mut self.inner, compressed)?;
        let original = snap::raw::decompress_len(&self.blocks.compressed)
            .map_err(|e| invalid(format!("snappy: {e}")))?;
        if original > MAX_BLOCK {
            return Err(invalid(format!("snappy: block of {original} bytes")));
        }
        self.blocks.out.resize(original, 0);
        self.blocks.pos = 0;
        let n = self
            .decoder
            .decompress(&self.blocks.compressed, &mut self.blocks.out)
            .map_err(|e| invalid(format!("snappy: {e}")))?;
        self.blocks.out.truncate(n);
        Ok(true)
    }
}

impl<R: Read> Read for SnappyChunks<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.blocks.drained() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        Ok(self.blocks.serve(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut reader: impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    fn lz4_block(data: &[u8]) -> Vec<u8> {
        let compressed = lz4_flex::block::compress(data);
        let mut block = LZ4_MAGIC.to_vec();
        block.push(LZ4_COMPRESSED | 0x0A);
        block.extend((compressed.len() as u32).to_le_bytes());
        block.extend((data.len() as u32).to_le_bytes());
        block.extend(0u32.to_le_bytes());
        block.extend(compressed);
        block
    }

    fn lz4_end() -> Vec<u8> {
        let mut block = LZ4_MAGIC.to_vec();
        block.push(LZ4_RAW);
        block.extend([0u8; 12]);
        block
    }

    #[test]
    fn lz4_blocks_and_concatenated_streams() {
        let mut stream = lz4_block(b"{\"a\":1}\n");
        stream.extend(lz4_block(b"{\"b\":2}\n"));
        stream.extend(lz4_end());
        stream.extend(lz4_block(b"{\"c\":3}\n"));
        stream.extend(lz4_end());
        assert_eq!(
            read_all(Lz4Blocks::new(&stream[..])).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
        );

        let truncated = &stream[..stream.len() - 30];
        let error = read_all(Lz4Blocks::new(truncated)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
        let error = read_all(Lz4Blocks::new(&b"garbage that is no lz4 block"[..])).unwrap_err();
        assert!(error.to_string().contains("magic"), "{error}");
    }

    #[test]
    fn snappy_chunks_after_headers() {
        let mut stream = Vec::new();
        for data in [&b"line one\n"[..], b"line two\n"] {
            stream.extend(SNAPPY_MAGIC);
            stream.extend(1u32.to_be_bytes());
            stream.extend(1u32.to_be_bytes());
            let compressed = snap::raw::Encoder::new().compress_vec(data).unwrap();
            stream.extend((compressed.len() as u32).to_be_bytes());
            stream.extend(compressed);
        }
        assert_eq!(
            read_all(SnappyChunks::new(&stream[..])).unwrap(),
            b"line one\nline two\n"
        );
        let error = read_all(SnappyChunks::new(&stream[..stream.len() - 3])).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
    }
}
