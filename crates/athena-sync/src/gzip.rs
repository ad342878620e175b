//! Gzip for sync streams without a compressor per stream.
//!
//! A deflate compressor holds a few hundred KiB of state; ten thousand mostly idle streams cannot
//! each keep one. Instead every line is deflated on its own by a pooled compressor and ends with a
//! sync flush: the output is byte-aligned and no block refers back to an earlier line, so the pieces
//! chain into one valid gzip member that a client can decode line by line as it arrives. A stream
//! keeps only the running CRC and length it needs for the trailer.

use std::sync::Mutex;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

/// Compressors kept for reuse; more are made when needed and dropped when the pool is full.
const POOL_SIZE: usize = 8;

static POOL: Mutex<Vec<Compress>> = Mutex::new(Vec::new());

/// Gzip header: deflate, no name or time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final block with fixed codes, after a sync flush has aligned the stream to a byte.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not with `q=0`).
pub fn accepted(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|header| {
        header.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let q = parts.find_map(|p| p.strip_prefix("q=")).map_or(Some(1.0), |q| q.trim().parse::<f32>().ok());
            (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip")) && q.is_some_and(|q| q > 0.0)
        })
    })
}

/// The gzip framing of one response body.
#[derive(Default)]
pub struct GzipStream {
    crc: crc32fast::Hasher,
    len: u32,
    started: bool,
}

impl GzipStream {
    /// The compressed form of `line`, decodable as soon as it arrives (the header precedes the first).
    pub fn line(&mut self, line: &[u8]) -> Bytes {
        let mut compressor = POOL.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_else(new_compressor);
        let mut out = Vec::with_capacity(line.len() / 2 + 64 + HEADER.len());
        if !self.started {
            out.extend_from_slice(&HEADER);
            self.started = true;
        }
        let start = out.len();
        let ok = deflate_flushed(&mut compressor, line, &mut out);
        compressor.reset();
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_SIZE {
            pool.push(compressor);
        }
        drop(pool);
        // Deflating into a growing Vec cannot fail; should it, the line goes out stored.
        if !ok {
            out.truncate(start);
            stored_blocks(line, &mut out);
        }
        self.crc.update(line);
        self.len = self.len.wrapping_add(line.len() as u32);
        Bytes::from(out)
    }

    /// The end of the member: the final block and the trailer (CRC-32 and length, little-endian).
    pub fn finish(self) -> Bytes {
        let mut out = Vec::with_capacity(HEADER.len() + 10);
        if !self.started {
            out.extend_from_slice(&HEADER);
        }
        out.extend_from_slice(&FINAL_BLOCK);
        out.extend_from_slice(&self.crc.finalize().to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        Bytes::from(out)
    }
}

fn new_compressor() -> Compress {
    // Raw deflate (the gzip framing is ours); fast level: the stream is CPU-bound, not link-bound.
    Compress::new(Compression::fast(), false)
}

/// Deflates all of `input` into `out` and sync-flushes. False on a compressor error.
fn deflate_flushed(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> bool {
    let start_in = c.total_in();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = (c.total_in() - start_in) as usize;
        if c.compress_vec(&input[consumed..], out, FlushCompress::Sync).is_err() {
            return false;
        }
        let consumed = (c.total_in() - start_in) as usize;
        // Done when all input is in and the flush did not run out of room.
        if consumed == input.len() && out.capacity() - out.len() >= 64 {
            return true;
        }
    }
}

/// Stored (uncompressed) non-final blocks: always valid deflate.
fn stored_blocks(input: &[u8], out: &mut Vec<u8>) {
    for chunk in input.chunks(u16::MAX as usize) {
        let len = chunk.len() as u16;
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("a valid gzip member");
        out
    }

    #[test]
    fn lines_chain_into_one_member() {
        let lines: Vec<Vec<u8>> = vec![
            b"{\"checkpoint\":{\"last_op_id\":\"3\"}}\n".to_vec(),
            "诗经 ".repeat(50_000).into_bytes(),
            (0..200_000u32).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect(),
            Vec::new(),
            b"{\"token_expires_in\":20}\n".to_vec(),
        ];
        let mut gz = GzipStream::default();
        let mut body = Vec::new();
        for line in &lines {
            body.extend_from_slice(&gz.line(line));
        }
        body.extend_from_slice(&gz.finish());
        assert_eq!(gunzip(&body), lines.concat());
        // The repetitive text compresses; the whole thing is far smaller than the input.
        assert!(body.len() < lines.concat().len() * 3 / 4, "{} bytes", body.len());
    }

    #[test]
    fn each_line_decodes_as_soon_as_it_arrives() {
        let mut gz = GzipStream::default();
        let mut decoder = flate2::Decompress::new(false);
        let mut received = Vec::new();
        let mut decoded = Vec::with_capacity(1 << 20);
        for i in 0..50 {
            let line = format!("{{\"data\":{{\"n\":{i},\"text\":\"{}\"}}}}\n", "x".repeat(i * 100));
            received.extend_from_slice(&gz.line(line.as_bytes()));
            // Skip the header, then feed whatever has arrived: the line must be complete.
            let body = &received[HEADER.len()..];
            let fed = decoder.total_in() as usize;
            decoder.decompress_vec(&body[fed..], &mut decoded, flate2::FlushDecompress::Sync).unwrap();
            assert!(decoded.ends_with(line.as_bytes()), "line {i} not complete after its own bytes");
        }
    }

    #[test]
    fn an_empty_stream_is_still_valid() {
        assert!(gunzip(&GzipStream::default().finish()).is_empty());
    }

    #[test]
    fn accept_encoding() {
        assert!(accepted(Some("gzip, deflate")));
        assert!(accepted(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepted(Some("gzip;q=0")));
        assert!(!accepted(Some("identity")));
        assert!(!accepted(Some("deflate, br")));
        assert!(!accepted(None));
    }
}
