//! Compressed answers: httpbin's `/gzip`, `/deflate` and `/brotli` (and `/zstd`), seeded bytes
//! compressed on the fly (`/bytes-gzip/{n}`, `/bytes-deflate/{n}`), and the faults of compressed
//! bodies (`/fault/gzip-bomb`, `/fault/bad-gzip`, `/fault/gzip-truncated`,
//! `/fault/bad-deflate`). Each coding is there with the client feature of the same name.
//!
//! gzip and deflate use flate2's encoders. `/brotli` is framed by hand as a valid brotli stream
//! of uncompressed meta-blocks (RFC 7932 §9.2), so the server needs no brotli encoder: any
//! decoder reads it, though it is no smaller than the document. `/zstd` is framed by hand the same
//! way, as a zstd frame of raw blocks (RFC 8878 §3.1.1.2), so the server needs no zstd encoder.

#[cfg(any(feature = "gzip", feature = "deflate"))]
use std::io;

#[cfg(any(feature = "gzip", feature = "deflate"))]
use super::conn::{Conn, Next};
use super::json::Json;
use super::request::Request;
#[cfg(any(feature = "gzip", feature = "deflate"))]
use super::response::Framing;
use super::response::Response;

/// The codings the server can compress with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    #[cfg(feature = "gzip")]
    Gzip,
    /// zlib-wrapped deflate, as RFC 9110 defines `deflate`.
    #[cfg(feature = "deflate")]
    Zlib,
    /// Raw deflate, as some servers send `deflate`.
    #[cfg(feature = "deflate")]
    RawDeflate,
    #[cfg(feature = "brotli")]
    Brotli,
    #[cfg(feature = "zstd")]
    Zstd,
}

impl Coding {
    /// The `Content-Encoding` token.
    fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "gzip")]
            Coding::Gzip => "gzip",
            #[cfg(feature = "deflate")]
            Coding::Zlib | Coding::RawDeflate => "deflate",
            #[cfg(feature = "brotli")]
            Coding::Brotli => "br",
            #[cfg(feature = "zstd")]
            Coding::Zstd => "zstd",
        }
    }

    /// The key httpbin's document sets to `true`: `gzipped`, `deflated`, `brotli`.
    fn flag(self) -> &'static str {
        match self {
            #[cfg(feature = "gzip")]
            Coding::Gzip => "gzipped",
            #[cfg(feature = "deflate")]
            Coding::Zlib | Coding::RawDeflate => "deflated",
            #[cfg(feature = "brotli")]
            Coding::Brotli => "brotli",
            #[cfg(feature = "zstd")]
            Coding::Zstd => "zstd",
        }
    }

    /// `data` compressed whole.
    pub(crate) fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            #[cfg(feature = "brotli")]
            Coding::Brotli => brotli_stored(data),
            #[cfg(feature = "zstd")]
            Coding::Zstd => zstd_raw(data),
            #[cfg(any(feature = "gzip", feature = "deflate"))]
            #[allow(unreachable_patterns)]
            flate => {
                let mut encoder = Encoder::new(flate, 6);
                encoder.write(data);
                encoder.finish()
            }
        }
    }
}

/// httpbin's `/gzip`, `/deflate` and `/brotli` (and `/zstd`): the request's headers, method
/// and origin, and `"<flag>": true`, compressed.
pub(crate) fn document(req: &Request, coding: Coding, headers: Json, origin: String) -> Response {
    let doc = Json::object([
        (coding.flag(), Json::Bool(true)),
        ("headers", headers),
        ("method", Json::str(&req.method)),
        ("origin", Json::str(origin)),
    ]);
    let mut response = Response::json(200, &doc).header("Content-Encoding", coding.name());
    response.body = coding.compress(&response.body);
    response
}

/// flate2's streaming encoders, writing to a buffer that is taken as it fills.
#[cfg(any(feature = "gzip", feature = "deflate"))]
pub(crate) enum Encoder {
    #[cfg(feature = "gzip")]
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    #[cfg(feature = "deflate")]
    Zlib(flate2::write::ZlibEncoder<Vec<u8>>),
    #[cfg(feature = "deflate")]
    Raw(flate2::write::DeflateEncoder<Vec<u8>>),
}

#[cfg(any(feature = "gzip", feature = "deflate"))]
impl Encoder {
    /// An encoder for a gzip or deflate `coding` at `level` (0 to 9).
    ///
    /// # Panics
    ///
    /// For another coding.
    pub(crate) fn new(coding: Coding, level: u32) -> Encoder {
        use flate2::Compression;
        let level = Compression::new(level);
        match coding {
            #[cfg(feature = "gzip")]
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(Vec::new(), level)),
            #[cfg(feature = "deflate")]
            Coding::Zlib => Encoder::Zlib(flate2::write::ZlibEncoder::new(Vec::new(), level)),
            #[cfg(feature = "deflate")]
            Coding::RawDeflate => {
                Encoder::Raw(flate2::write::DeflateEncoder::new(Vec::new(), level))
            }
            #[allow(unreachable_patterns)]
            other => unreachable!("{other:?} is not a flate2 coding"),
        }
    }

    /// Compresses `data` (into memory: it cannot fail).
    pub(crate) fn write(&mut self, data: &[u8]) {
        use std::io::Write as _;
        let done = match self {
            #[cfg(feature = "gzip")]
            Encoder::Gzip(e) => e.write_all(data),
            #[cfg(feature = "deflate")]
            Encoder::Zlib(e) => e.write_all(data),
            #[cfg(feature = "deflate")]
            Encoder::Raw(e) => e.write_all(data),
        };
        done.expect("compressing into memory");
    }

    /// The compressed bytes so far, taken.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(match self {
            #[cfg(feature = "gzip")]
            Encoder::Gzip(e) => e.get_mut(),
            #[cfg(feature = "deflate")]
            Encoder::Zlib(e) => e.get_mut(),
            #[cfg(feature = "deflate")]
            Encoder::Raw(e) => e.get_mut(),
        })
    }

    /// The rest of the compressed bytes: the end of the stream.
    pub(crate) fn finish(self) -> Vec<u8> {
        let done = match self {
            #[cfg(feature = "gzip")]
            Encoder::Gzip(e) => e.finish(),
            #[cfg(feature = "deflate")]
            Encoder::Zlib(e) => e.finish(),
            #[cfg(feature = "deflate")]
            Encoder::Raw(e) => e.finish(),
        };
        done.expect("compressing into memory")
    }
}

/// `/bytes-gzip/{n}` and `/bytes-deflate/{n}`: the `n` bytes of `/bytes/{n}?seed=S`
/// compressed as they are generated (level 1), chunked (until close for an HTTP/1.0 client),
/// in chunks of `piece` bytes at most.
#[cfg(any(feature = "gzip", feature = "deflate"))]
pub(crate) async fn send_bytes(
    conn: &mut Conn,
    req: &Request,
    coding: Coding,
    len: u64,
    seed: u64,
    piece: usize,
) -> io::Result<Next> {
    const BLOCK: u64 = 64 * 1024;
    let chunked = req.minor_version >= 1;
    let (persistence, next) = conn.persistence(req, !chunked);
    let framing = match chunked {
        true => Framing::Chunked,
        false => Framing::UntilClose,
    };
    let head = Response::new(200)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Encoding", coding.name())
        .head(framing, persistence);
    conn.write_all(&head).await?;
    if req.method == "HEAD" {
        return Ok(next);
    }
    let mut rng = super::random::XorShift64Star::new(seed);
    let mut encoder = Encoder::new(coding, 1);
    let mut block = vec![0; BLOCK as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(BLOCK) as usize;
        rng.fill(&mut block[..n]);
        encoder.write(&block[..n]);
        left -= n as u64;
        write_pieces(conn, &encoder.take(), piece, chunked).await?;
    }
    write_pieces(conn, &encoder.finish(), piece, chunked).await?;
    if chunked {
        conn.write_all(b"0\r\n\r\n").await?;
    }
    Ok(next)
}

/// Writes `data` in pieces of at most `piece` bytes, each a chunk if `chunked`.
#[cfg(any(feature = "gzip", feature = "deflate"))]
async fn write_pieces(conn: &mut Conn, data: &[u8], piece: usize, chunked: bool) -> io::Result<()> {
    let mut out = Vec::with_capacity(piece.min(data.len()) + 16);
    for part in data.chunks(piece.max(1)) {
        out.clear();
        if chunked {
            out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        }
        out.extend_from_slice(part);
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        conn.write_all(&out).await?;
    }
    Ok(())
}

/// A gzip stream whose data is `size` zero bytes: about a thousandth of that on the wire.
#[cfg(feature = "gzip")]
pub(crate) fn gzip_bomb(size: u64) -> Vec<u8> {
    let zeros = vec![0; 1 << 20];
    let mut encoder = Encoder::new(Coding::Gzip, 9);
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        encoder.write(&zeros[..n]);
        left -= n as u64;
    }
    encoder.finish()
}

/// The text of the broken gzip bodies, before it is broken.
#[cfg(feature = "gzip")]
pub(crate) const BROKEN_TEXT: &str = "this gzip body is broken on purpose\n";

/// `/fault/bad-gzip?flaw=F`: a gzip body of [`BROKEN_TEXT`] with one flaw: `header` (the
/// first magic byte is wrong; the default), `crc` (the trailer's CRC-32), `size` (the
/// trailer's length), or `data` (the deflate data replaced by `0xff` bytes). `None` for an
/// unknown flaw.
#[cfg(feature = "gzip")]
pub(crate) fn bad_gzip(flaw: &str) -> Option<Vec<u8>> {
    let mut body = Coding::Gzip.compress(BROKEN_TEXT.as_bytes());
    let n = body.len();
    match flaw {
        "header" => body[0] ^= 0x01,
        "crc" => body[n - 8] ^= 0x01,
        "size" => body[n - 4] ^= 0x01,
        "data" => body[10..n - 8].fill(0xff),
        _ => return None,
    }
    Some(body)
}

/// A brotli stream of `data` in uncompressed meta-blocks (RFC 7932 §9.2): a window of 64 KiB
/// (`WBITS` 16), meta-blocks of at most 32 KiB, then an empty last meta-block.
#[cfg(feature = "brotli")]
pub(crate) fn brotli_stored(data: &[u8]) -> Vec<u8> {
    /// Bits, least significant first, as brotli packs them.
    struct Bits {
        out: Vec<u8>,
        bit: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, count: u32) {
            for i in 0..count {
                if self.bit == 0 {
                    self.out.push(0);
                }
                let last = self.out.len() - 1;
                self.out[last] |= (((value >> i) & 1) as u8) << self.bit;
                self.bit = (self.bit + 1) % 8;
            }
        }
        /// Pads with zero bits to the next byte boundary.
        fn align(&mut self) {
            self.bit = 0;
        }
    }
    let mut bits = Bits {
        out: Vec::with_capacity(data.len() + data.len() / 10_000 * 3 + 8),
        bit: 0,
    };
    bits.put(0, 1); // WBITS = 16
    for block in data.chunks(32 * 1024) {
        bits.put(0, 1); // ISLAST
        bits.put(0, 2); // MNIBBLES = 4
        bits.put(block.len() as u32 - 1, 16); // MLEN - 1
        bits.put(1, 1); // ISUNCOMPRESSED
        bits.align();
        bits.out.extend_from_slice(block);
    }
    bits.put(1, 1); // ISLAST
    bits.put(1, 1); // ISLASTEMPTY
    bits.out
}

/// A zstd frame of `data` in raw (uncompressed) blocks (RFC 8878 §3.1.1): a single-segment
/// frame with an 8-byte content size and no checksum, blocks of at most 128 KiB, the last one
/// flagged (an empty `data` is one empty last block).
#[cfg(feature = "zstd")]
pub(crate) fn zstd_raw(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 128 * 1024;
    let mut out = Vec::with_capacity(data.len() + data.len() / BLOCK * 3 + 20);
    out.extend_from_slice(&0xFD2F_B528u32.to_le_bytes()); // magic number
    out.push(0b1110_0000); // FCS_Field_Size 8 bytes, Single_Segment, no checksum, no dictionary
    out.extend_from_slice(&(data.len() as u64).to_le_bytes()); // Frame_Content_Size
    let mut blocks = data.chunks(BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0]); // Last_Block, Raw_Block, Block_Size 0
    }
    while let Some(block) = blocks.next() {
        let last = u32::from(blocks.peek().is_none());
        // Last_Block (bit 0), Block_Type 0 = raw (bits 1-2), Block_Size (bits 3-23), LE.
        let header = last | (block.len() as u32) << 3;
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(block);
    }
    out
}

/// Sends `body` with `Content-Encoding: coding` as an ordinary response.
#[cfg(any(feature = "gzip", feature = "deflate"))]
pub(crate) async fn send_encoded(
    conn: &mut Conn,
    req: &Request,
    coding: &str,
    body: Vec<u8>,
) -> io::Result<Next> {
    let mut response = Response::new(200)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Encoding", coding.to_string());
    response.body = body;
    conn.send(req, response).await
}

#[cfg(test)]
mod tests {
    /// The hand-framed zstd stream decodes, with ruzstd, to what went in.
    #[cfg(feature = "zstd")]
    #[test]
    fn raw_zstd_decodes() {
        use std::io::Read as _;
        for len in [0, 1, 100, 128 * 1024, 128 * 1024 + 1, 300_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let stream = super::zstd_raw(&data);
            let mut back = Vec::new();
            ruzstd::decoding::StreamingDecoder::new(&stream[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{len} bytes");
        }
    }

    #[cfg(feature = "brotli")]
    #[test]
    fn stored_brotli_decodes() {
        use std::io::Read as _;
        for len in [0, 1, 100, 32 * 1024, 32 * 1024 + 1, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let stream = super::brotli_stored(&data);
            let mut back = Vec::new();
            brotli_decompressor::Decompressor::new(&stream[..], 4096)
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{len} bytes");
        }
    }
}
