//! Content codings (RFC 9110 §8.4.1): which ones a client asks for with `Accept-Encoding`, and
//! the incremental [`Decoder`] that undoes one on a response body.
//!
//! Sans-IO, like `body.rs`: compressed bytes go into [`Decoder::input`], decoded bytes come out
//! of [`Decoder::decode`], never more than asked for at a time, so that a small compressed
//! body cannot make the client allocate more than it is willing to keep (a decompression
//! bomb). `response.rs` moves bytes between the body decoder and this one, and enforces
//! `max_body_size` on the decoded bytes.
//!
//! | coding | feature | decoder |
//! |---|---|---|
//! | `gzip`, `x-gzip` | `gzip` (default) | flate2's raw inflate (miniz_oxide), with the gzip header and trailer (CRC-32 and length) checked here; concatenated members are read one after another |
//! | `deflate` | `deflate` (default) | flate2: zlib-wrapped (RFC 9110), or raw deflate as some servers send it, told apart by the first two bytes as browsers do |
//! | `br` | `brotli` | brotli-decompressor, standard windows only (at most 16 MiB) |
//! | `zstd` | `zstd` | ruzstd, one block at a time, windows of at most 8 MiB (RFC 9659); ruzstd keeps a window's worth of decoded bytes before it gives any out |

use std::borrow::Cow;
use std::fmt;

use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, RANGE};
use http::{HeaderMap, HeaderValue};

/// A content coding this crate knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    /// In the order they are listed in `Accept-Encoding`.
    const ALL: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

    /// The token of `Accept-Encoding` and `Content-Encoding`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// Whether this build has a decoder for it.
    fn compiled(self) -> bool {
        match self {
            Coding::Gzip => cfg!(feature = "gzip"),
            Coding::Deflate => cfg!(feature = "deflate"),
            Coding::Brotli => cfg!(feature = "brotli"),
            Coding::Zstd => cfg!(feature = "zstd"),
        }
    }

    /// The coding named by a `Content-Encoding` token (any case); `x-gzip` is gzip (RFC 9110
    /// §8.4.1.3).
    fn from_token(token: &str) -> Option<Coding> {
        let known = [
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("deflate", Coding::Deflate),
            ("br", Coding::Brotli),
            ("zstd", Coding::Zstd),
        ];
        known
            .iter()
            .find(|(name, _)| token.eq_ignore_ascii_case(name))
            .map(|&(_, coding)| coding)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of codings: those a client asks for and decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Codings(u8);

impl Codings {
    /// No coding: nothing asked for, nothing decoded.
    pub(crate) const NONE: Codings = Codings(0);

    /// Every coding this build can decode (the features `gzip`, `deflate`, `brotli`, `zstd`).
    pub(crate) fn compiled() -> Codings {
        let mut set = Codings::NONE;
        for coding in Coding::ALL {
            set.set(coding, coding.compiled());
        }
        set
    }

    /// Adds or removes `coding`; a coding this build cannot decode is never added.
    pub(crate) fn set(&mut self, coding: Coding, on: bool) {
        if on && coding.compiled() {
            self.0 |= coding.bit();
        } else {
            self.0 &= !coding.bit();
        }
    }

    pub(crate) fn contains(self, coding: Coding) -> bool {
        self.0 & coding.bit() != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The `Accept-Encoding` value listing the set, such as `gzip, deflate`.
    fn header_value(self) -> Option<HeaderValue> {
        let names: Vec<&str> = Coding::ALL
            .into_iter()
            .filter(|&c| self.contains(c))
            .map(Coding::name)
            .collect();
        match names.is_empty() {
            true => None,
            false => HeaderValue::from_str(&names.join(", ")).ok(),
        }
    }
}

/// When a client is built: adds `Accept-Encoding` for `codings` to its default headers, and
/// returns the codings it will decode. If the default headers already have an
/// `Accept-Encoding`, the user's, that one is sent and nothing is decoded.
pub(crate) fn advertise(defaults: &mut HeaderMap, codings: Codings) -> Codings {
    if defaults.contains_key(ACCEPT_ENCODING) {
        return Codings::NONE;
    }
    if let Some(value) = codings.header_value() {
        defaults.insert(ACCEPT_ENCODING, value);
    }
    codings
}

/// For one request: the codings to decode in its response. None if the request sets its own
/// `Accept-Encoding` (`own_accept_encoding`): that one is sent and the body is left as it
/// comes. None either for a `Range` request, whose client `Accept-Encoding` is then left out,
/// as reqwest does: a range of a compressed representation cannot be decoded on its own.
pub(crate) fn for_request(
    codings: Codings,
    own_accept_encoding: bool,
    headers: &mut Cow<'_, HeaderMap>,
) -> Codings {
    if codings.is_empty() || own_accept_encoding {
        return Codings::NONE;
    }
    if headers.contains_key(RANGE) {
        headers.to_mut().remove(ACCEPT_ENCODING);
        return Codings::NONE;
    }
    codings
}

/// The coding to undo for a response with these headers: its one `Content-Encoding` other
/// than `identity`, if `codings` has it. `None` for no coding, a coding not in `codings`, an
/// unknown one, or several stacked (`gzip, br`): such a body is delivered as it came.
pub(crate) fn response_coding(codings: Codings, headers: &HeaderMap) -> Option<Coding> {
    let mut found = None;
    for value in headers.get_all(CONTENT_ENCODING) {
        for token in value.to_str().ok()?.split(',') {
            let token = token.trim();
            if token.is_empty() || token.eq_ignore_ascii_case("identity") {
                continue;
            }
            if found.is_some() {
                return None;
            }
            found = Some(Coding::from_token(token)?);
        }
    }
    found.filter(|&c| codings.contains(c))
}

/// A body that is not valid in its coding: which coding, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    coding: Coding,
    why: Cow<'static, str>,
}

impl DecodeError {
    fn new(coding: Coding, why: impl Into<Cow<'static, str>>) -> DecodeError {
        DecodeError {
            coding,
            why: why.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} body: {}", self.coding.name(), self.why)
    }
}

/// Decoded bytes are produced in steps of at most this many.
const STEP: usize = 32 * 1024;

/// Compressed bytes held back because they cannot be decoded yet (a gzip header in pieces, a
/// zstd block not complete yet): past this, the body is refused.
const MAX_PENDING: usize = 256 * 1024;

/// One coding's decoder, fed from the front of the pending input.
trait Codec {
    /// Decodes from `input` into `out`: returns how many bytes of `input` it consumed and how
    /// many of `out` it filled. `(0, 0)` means that it cannot go on without more input (or
    /// that the stream is complete and `input` is empty).
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), Cow<'static, str>>;

    /// At the end of the body, with `left` still pending: whether the stream was complete.
    fn finish(&mut self, left: &[u8]) -> Result<(), Cow<'static, str>>;
}

/// Undoes one content coding, incrementally: the compressed body goes in by pieces, the decoded
/// one comes out in steps of bounded size.
pub(crate) struct Decoder {
    coding: Coding,
    codec: Box<dyn Codec>,
    /// Compressed bytes received: `input[pos..]` are not consumed yet.
    input: Vec<u8>,
    pos: usize,
    /// Whether any compressed byte arrived: an empty body is empty in every coding.
    started: bool,
    /// Where each step decodes to, before the bytes are appended to the caller's buffer.
    scratch: Vec<u8>,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("coding", &self.coding)
            .field("pending", &(self.input.len() - self.pos))
            .finish()
    }
}

impl Decoder {
    /// A decoder for `coding`, if this build has one.
    pub(crate) fn new(coding: Coding) -> Option<Decoder> {
        Some(Decoder {
            coding,
            codec: codec(coding)?,
            input: Vec::new(),
            pos: 0,
            started: false,
            scratch: Vec::new(),
        })
    }

    /// The buffer to append compressed bytes to.
    pub(crate) fn input(&mut self) -> &mut Vec<u8> {
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        &mut self.input
    }

    /// Decodes pending input, appending at most `max` bytes to `out`; returns how many. Fewer
    /// than `max` means that more input is needed (or that the stream is complete).
    pub(crate) fn decode(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, DecodeError> {
        let mut produced = 0;
        while produced < max {
            let pending = &self.input[self.pos..];
            self.started |= !pending.is_empty();
            let want = (max - produced).min(STEP);
            if self.scratch.len() < want {
                self.scratch.resize(STEP, 0);
            }
            let (used, made) = self
                .codec
                .step(pending, &mut self.scratch[..want])
                .map_err(|why| DecodeError::new(self.coding, why))?;
            self.pos += used;
            out.extend_from_slice(&self.scratch[..made]);
            produced += made;
            if used == 0 && made == 0 {
                if self.input.len() - self.pos > MAX_PENDING {
                    return Err(DecodeError::new(
                        self.coding,
                        "too much data that cannot be decoded yet",
                    ));
                }
                break;
            }
        }
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        Ok(produced)
    }

    /// At the end of the compressed body, once [`decode`](Self::decode) needs more input:
    /// checks that the stream was complete.
    pub(crate) fn finish(&mut self) -> Result<(), DecodeError> {
        let left = &self.input[self.pos..];
        if !self.started && left.is_empty() {
            return Ok(());
        }
        self.codec
            .finish(left)
            .map_err(|why| DecodeError::new(self.coding, why))
    }
}

/// The decoder of `coding`, if this build has one.
fn codec(coding: Coding) -> Option<Box<dyn Codec>> {
    match coding {
        #[cfg(feature = "gzip")]
        Coding::Gzip => Some(Box::new(gzip::Gzip::new())),
        #[cfg(feature = "deflate")]
        Coding::Deflate => Some(Box::new(deflate::Deflate::new())),
        #[cfg(feature = "brotli")]
        Coding::Brotli => Some(Box::new(brotli::Brotli::new())),
        #[cfg(feature = "zstd")]
        Coding::Zstd => Some(Box::new(zstd::Zstd::new())),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// gzip (RFC 1952): a header, raw deflate data, and a trailer with the CRC-32 and the length
/// of the data; members may follow one another.
#[cfg(feature = "gzip")]
mod gzip {
    use std::borrow::Cow;

    use flate2::{Crc, Decompress, FlushDecompress, Status};

    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    const RESERVED: u8 = 0xe0;

    /// A header longer than this (its extra field, name and comment) is refused.
    const MAX_HEADER: usize = 64 * 1024;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Stage {
        Header,
        Data,
        Trailer,
        /// After a member's trailer: the end, or the next member.
        Between,
    }

    pub(super) struct Gzip {
        inflate: Decompress,
        crc: Crc,
        stage: Stage,
    }

    impl Gzip {
        pub(super) fn new() -> Gzip {
            Gzip {
                inflate: Decompress::new(false),
                crc: Crc::new(),
                stage: Stage::Header,
            }
        }
    }

    impl super::Codec for Gzip {
        fn step(
            &mut self,
            input: &[u8],
            out: &mut [u8],
        ) -> Result<(usize, usize), Cow<'static, str>> {
            match self.stage {
                Stage::Between if input.is_empty() => Ok((0, 0)),
                Stage::Header | Stage::Between => match header_len(input)? {
                    Some(len) => {
                        self.inflate.reset(false);
                        self.crc.reset();
                        self.stage = Stage::Data;
                        Ok((len, 0))
                    }
                    None if input.len() > MAX_HEADER => Err("header too long".into()),
                    None => Ok((0, 0)),
                },
                Stage::Data => {
                    let (in_before, out_before) =
                        (self.inflate.total_in(), self.inflate.total_out());
                    let status = self
                        .inflate
                        .decompress(input, out, FlushDecompress::None)
                        .map_err(|_| "invalid deflate data")?;
                    let used = (self.inflate.total_in() - in_before) as usize;
                    let made = (self.inflate.total_out() - out_before) as usize;
                    self.crc.update(&out[..made]);
                    if status == Status::StreamEnd {
                        self.stage = Stage::Trailer;
                    }
                    Ok((used, made))
                }
                Stage::Trailer => {
                    let Some(trailer) = input.get(..8) else {
                        return Ok((0, 0));
                    };
                    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
                    let len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
                    if crc != self.crc.sum() {
                        return Err("CRC-32 mismatch".into());
                    }
                    if len != self.crc.amount() {
                        return Err("length mismatch in the trailer".into());
                    }
                    self.stage = Stage::Between;
                    Ok((8, 0))
                }
            }
        }

        fn finish(&mut self, left: &[u8]) -> Result<(), Cow<'static, str>> {
            match self.stage {
                Stage::Between if left.is_empty() => Ok(()),
                Stage::Header | Stage::Between => Err("truncated in the header".into()),
                Stage::Data => Err("truncated in the compressed data".into()),
                Stage::Trailer => Err("truncated in the trailer".into()),
            }
        }
    }

    /// The length of the gzip header at the start of `buf`: `None` if it is not complete yet,
    /// an error as soon as the bytes seen cannot start one.
    pub(super) fn header_len(buf: &[u8]) -> Result<Option<usize>, Cow<'static, str>> {
        let fixed = [
            (0, 0x1f, "not gzip (bad magic bytes)"),
            (1, 0x8b, "not gzip (bad magic bytes)"),
            (2, 8, "unknown compression method"),
        ];
        for (at, want, why) in fixed {
            match buf.get(at) {
                Some(&b) if b != want => return Err(why.into()),
                Some(_) => {}
                None => return Ok(None),
            }
        }
        let Some(&flags) = buf.get(3) else {
            return Ok(None);
        };
        if flags & RESERVED != 0 {
            return Err("reserved header flags set".into());
        }
        let mut at = 10;
        if buf.len() < at {
            return Ok(None);
        }
        if flags & FEXTRA != 0 {
            let Some(xlen) = buf.get(at..at + 2) else {
                return Ok(None);
            };
            at += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
            if buf.len() < at {
                return Ok(None);
            }
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                match buf[at..].iter().position(|&b| b == 0) {
                    Some(end) => at += end + 1,
                    None => return Ok(None),
                }
            }
        }
        if flags & FHCRC != 0 {
            let Some(sum) = buf.get(at..at + 2) else {
                return Ok(None);
            };
            let mut crc = Crc::new();
            crc.update(&buf[..at]);
            if crc.sum() as u16 != u16::from_le_bytes([sum[0], sum[1]]) {
                return Err("header CRC mismatch".into());
            }
            at += 2;
        }
        Ok(Some(at))
    }
}

/// deflate (RFC 9110 §8.4.1.2): a zlib stream (RFC 1950), or, as some servers send it and
/// browsers accept, a raw deflate stream (RFC 1951). A zlib header is a compression method of
/// 8 and a check that makes the first two bytes a multiple of 31; a raw stream from a real
/// encoder never starts that way.
#[cfg(feature = "deflate")]
mod deflate {
    use std::borrow::Cow;

    use flate2::{Decompress, FlushDecompress, Status};

    pub(super) struct Deflate {
        /// Made once the first two bytes have told zlib from raw.
        inflate: Option<Decompress>,
        ended: bool,
    }

    impl Deflate {
        pub(super) fn new() -> Deflate {
            Deflate {
                inflate: None,
                ended: false,
            }
        }
    }

    /// Whether a stream starting with `cmf` and `flg` is zlib-wrapped.
    pub(super) fn is_zlib(cmf: u8, flg: u8) -> bool {
        cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
    }

    impl super::Codec for Deflate {
        fn step(
            &mut self,
            input: &[u8],
            out: &mut [u8],
        ) -> Result<(usize, usize), Cow<'static, str>> {
            if self.ended {
                return match input.is_empty() {
                    true => Ok((0, 0)),
                    false => Err("data after the end of the stream".into()),
                };
            }
            let inflate = match &mut self.inflate {
                Some(inflate) => inflate,
                None => match input {
                    [cmf, flg, ..] => self.inflate.insert(Decompress::new(is_zlib(*cmf, *flg))),
                    _ => return Ok((0, 0)),
                },
            };
            let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
            let status = inflate
                .decompress(input, out, FlushDecompress::None)
                .map_err(|_| "invalid deflate data")?;
            self.ended = status == Status::StreamEnd;
            let used = (inflate.total_in() - in_before) as usize;
            let made = (inflate.total_out() - out_before) as usize;
            Ok((used, made))
        }

        fn finish(&mut self, left: &[u8]) -> Result<(), Cow<'static, str>> {
            match self.ended && left.is_empty() {
                true => Ok(()),
                false => Err("truncated".into()),
            }
        }
    }
}

/// br (RFC 7932), with brotli-decompressor. Large windows (a non-standard extension of up to
/// 1 GiB) are refused.
#[cfg(feature = "brotli")]
mod brotli {
    use std::borrow::Cow;

    use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};

    pub(super) struct Brotli {
        state: BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
        ended: bool,
    }

    impl Brotli {
        pub(super) fn new() -> Brotli {
            let mut state = BrotliState::new(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            );
            state.large_window = false;
            Brotli {
                state,
                ended: false,
            }
        }
    }

    impl super::Codec for Brotli {
        fn step(
            &mut self,
            input: &[u8],
            out: &mut [u8],
        ) -> Result<(usize, usize), Cow<'static, str>> {
            if self.ended {
                return match input.is_empty() {
                    true => Ok((0, 0)),
                    false => Err("data after the end of the stream".into()),
                };
            }
            let (mut available_in, mut input_offset) = (input.len(), 0);
            let (mut available_out, mut output_offset) = (out.len(), 0);
            let mut total_out = 0;
            let result = BrotliDecompressStream(
                &mut available_in,
                &mut input_offset,
                input,
                &mut available_out,
                &mut output_offset,
                out,
                &mut total_out,
                &mut self.state,
            );
            match result {
                BrotliResult::ResultFailure => {
                    return Err(format!("{:?}", self.state.error_code).into());
                }
                BrotliResult::ResultSuccess => self.ended = true,
                BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => {}
            }
            Ok((input_offset, output_offset))
        }

        fn finish(&mut self, left: &[u8]) -> Result<(), Cow<'static, str>> {
            match self.ended && left.is_empty() {
                true => Ok(()),
                false => Err("truncated".into()),
            }
        }
    }
}

/// zstd (RFC 8878, RFC 9659), with ruzstd. ruzstd decodes whole blocks, so the frame and block
/// headers are read here, and a block is handed over once all of it has arrived (at most
/// 128 KiB). Skippable frames are skipped; frames may follow one another.
#[cfg(feature = "zstd")]
mod zstd {
    use std::borrow::Cow;
    use std::io::Read as _;

    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

    const MAGIC: u32 = 0xFD2F_B528;
    /// Skippable frames have magic numbers `0x184D2A50` to `0x184D2A5F`.
    const SKIPPABLE: u32 = 0x184D_2A50;
    /// The largest window accepted: RFC 9659 §3 lets an HTTP decoder refuse more than 8 MiB.
    const MAX_WINDOW: u64 = 8 * 1024 * 1024;
    const MAX_BLOCK: usize = 128 * 1024;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Stage {
        /// A frame's magic number and header come next.
        Frame,
        /// Inside a skippable frame: this many bytes to go.
        Skip(u64),
        /// Inside a frame: the next block comes.
        Blocks,
        /// The last block is decoded; what is left in the window is to be drained.
        Drain,
    }

    pub(super) struct Zstd {
        frame: FrameDecoder,
        stage: Stage,
        checksum: bool,
        frames: u64,
    }

    impl Zstd {
        pub(super) fn new() -> Zstd {
            let mut frame = FrameDecoder::new();
            frame.set_max_window_size(MAX_WINDOW);
            Zstd {
                frame,
                stage: Stage::Frame,
                checksum: false,
                frames: 0,
            }
        }
    }

    /// The length of the frame header (magic number included) starting `buf`, once its
    /// descriptor byte is there.
    fn frame_header_len(descriptor: u8) -> usize {
        let single_segment = descriptor & 0x20 != 0;
        let dictionary_id = [0, 1, 2, 4][usize::from(descriptor & 3)];
        let content_size = match descriptor >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        5 + usize::from(!single_segment) + dictionary_id + content_size
    }

    impl super::Codec for Zstd {
        fn step(
            &mut self,
            input: &[u8],
            out: &mut [u8],
        ) -> Result<(usize, usize), Cow<'static, str>> {
            match self.stage {
                Stage::Frame => {
                    let Some(magic) = input.get(..4) else {
                        return Ok((0, 0));
                    };
                    let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
                    if magic & !0xf == SKIPPABLE {
                        let Some(len) = input.get(4..8) else {
                            return Ok((0, 0));
                        };
                        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
                        self.stage = Stage::Skip(u64::from(len));
                        return Ok((8, 0));
                    }
                    if magic != MAGIC {
                        return Err("not zstd (bad magic number)".into());
                    }
                    let Some(&descriptor) = input.get(4) else {
                        return Ok((0, 0));
                    };
                    let Some(header) = input.get(..frame_header_len(descriptor)) else {
                        return Ok((0, 0));
                    };
                    self.frame
                        .reset(header)
                        .map_err(|e| format!("frame header: {e}"))?;
                    self.checksum = descriptor & 0x04 != 0;
                    self.stage = Stage::Blocks;
                    Ok((header.len(), 0))
                }
                Stage::Skip(0) => {
                    self.stage = Stage::Frame;
                    self.step(input, out)
                }
                Stage::Skip(left) => {
                    let n = left.min(input.len() as u64);
                    self.stage = Stage::Skip(left - n);
                    Ok((n as usize, 0))
                }
                Stage::Blocks => {
                    // Drain what the window need not keep before decoding more.
                    let made = self.frame.read(out).map_err(|e| e.to_string())?;
                    if made > 0 {
                        return Ok((0, made));
                    }
                    let Some(header) = input.get(..3) else {
                        return Ok((0, 0));
                    };
                    let header = u32::from_le_bytes([header[0], header[1], header[2], 0]);
                    let last = header & 1 == 1;
                    let size = (header >> 3) as usize;
                    let body = match (header >> 1) & 3 {
                        1 => 1,
                        3 => return Err("reserved block type".into()),
                        _ => size,
                    };
                    if size > MAX_BLOCK {
                        return Err("block larger than 128 KiB".into());
                    }
                    let len = 3 + body + if last && self.checksum { 4 } else { 0 };
                    let Some(block) = input.get(..len) else {
                        return Ok((0, 0));
                    };
                    self.frame
                        .decode_blocks(block, BlockDecodingStrategy::UptoBlocks(1))
                        .map_err(|e| e.to_string())?;
                    if last {
                        self.stage = Stage::Drain;
                    }
                    Ok((len, 0))
                }
                Stage::Drain => {
                    let made = self.frame.read(out).map_err(|e| e.to_string())?;
                    if made > 0 {
                        return Ok((0, made));
                    }
                    if self.checksum
                        && self.frame.get_checksum_from_data()
                            != self.frame.get_calculated_checksum()
                    {
                        return Err("checksum mismatch".into());
                    }
                    self.frames += 1;
                    self.stage = Stage::Frame;
                    // The next frame, if its bytes are there.
                    self.step(input, out)
                }
            }
        }

        fn finish(&mut self, left: &[u8]) -> Result<(), Cow<'static, str>> {
            match self.stage {
                Stage::Frame if left.is_empty() && self.frames > 0 => Ok(()),
                Stage::Frame if left.is_empty() => Err("no frame".into()),
                _ => Err("truncated".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn all() -> Codings {
        let mut set = Codings::NONE;
        for coding in Coding::ALL {
            set.0 |= coding.bit();
        }
        set
    }

    /// One coding other than identity is decoded; unknown, stacked or unwanted ones are not.
    #[test]
    fn picks_the_one_coding_to_undo() {
        let set = all();
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<Coding>);
        let cases: &[Case<'_>] = &[
            (&[], None),
            (&[("content-encoding", "gzip")], Some(Coding::Gzip)),
            (&[("content-encoding", "X-GZIP")], Some(Coding::Gzip)),
            (&[("content-encoding", " deflate ")], Some(Coding::Deflate)),
            (&[("content-encoding", "br")], Some(Coding::Brotli)),
            (&[("content-encoding", "zstd")], Some(Coding::Zstd)),
            (&[("content-encoding", "identity")], None),
            (
                &[("content-encoding", "identity, gzip")],
                Some(Coding::Gzip),
            ),
            (&[("content-encoding", "compress")], None),
            (&[("content-encoding", "gzip, br")], None),
            (
                &[("content-encoding", "gzip"), ("content-encoding", "gzip")],
                None,
            ),
            (&[("content-encoding", "gzip, compress")], None),
        ];
        for (pairs, want) in cases {
            assert_eq!(response_coding(set, &headers(pairs)), *want, "{pairs:?}");
        }
        let mut no_gzip = set;
        no_gzip.0 &= !Coding::Gzip.bit();
        let gzip = headers(&[("content-encoding", "gzip")]);
        assert_eq!(response_coding(no_gzip, &gzip), None);
    }

    /// Accept-Encoding lists the compiled codings, unless the user set one.
    #[test]
    fn advertises_unless_the_user_set_the_header() {
        let mut defaults = HeaderMap::new();
        let set = advertise(&mut defaults, Codings::compiled());
        assert_eq!(set, Codings::compiled());
        let listed = defaults
            .get(ACCEPT_ENCODING)
            .map(|v| v.to_str().unwrap().to_owned());
        let want: Vec<&str> = Coding::ALL
            .into_iter()
            .filter(|c| c.compiled())
            .map(Coding::name)
            .collect();
        assert_eq!(listed, (!want.is_empty()).then(|| want.join(", ")));

        let mut own = headers(&[("accept-encoding", "identity")]);
        assert_eq!(advertise(&mut own, Codings::compiled()), Codings::NONE);
        assert_eq!(own.get(ACCEPT_ENCODING).unwrap(), "identity");

        let mut none = HeaderMap::new();
        assert_eq!(advertise(&mut none, Codings::NONE), Codings::NONE);
        assert!(none.is_empty());
    }

    /// A request's own Accept-Encoding or a Range turns decoding off.
    #[test]
    fn requests_with_their_own_header_or_a_range_are_not_decoded() {
        let set = all();
        let mut plain = Cow::Owned(headers(&[("accept-encoding", "gzip")]));
        assert_eq!(for_request(set, false, &mut plain), set);
        assert_eq!(for_request(set, true, &mut plain), Codings::NONE);
        assert!(plain.contains_key(ACCEPT_ENCODING));
        let mut range = Cow::Owned(headers(&[
            ("accept-encoding", "gzip"),
            ("range", "bytes=0-1"),
        ]));
        assert_eq!(for_request(set, false, &mut range), Codings::NONE);
        assert!(!range.contains_key(ACCEPT_ENCODING));
    }

    /// Feeds `stream` in pieces of `piece` bytes and takes at most `max` bytes per decode.
    #[cfg(any(
        feature = "gzip",
        feature = "deflate",
        feature = "brotli",
        feature = "zstd"
    ))]
    fn decode_in_pieces(
        coding: Coding,
        stream: &[u8],
        piece: usize,
        max: usize,
    ) -> Result<Vec<u8>, DecodeError> {
        let mut decoder = Decoder::new(coding).unwrap();
        let mut out = Vec::new();
        for part in stream.chunks(piece) {
            decoder.input().extend_from_slice(part);
            loop {
                let before = out.len();
                let n = decoder.decode(&mut out, max)?;
                assert!(n <= max && out.len() - before == n);
                if n < max {
                    break;
                }
            }
        }
        decoder.finish()?;
        Ok(out)
    }

    #[cfg(feature = "gzip")]
    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[cfg(any(feature = "gzip", feature = "deflate"))]
    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * i % 251) as u8 ^ (i / 7) as u8)
            .collect()
    }

    /// Any split of the input and any output bound give the same bytes.
    #[cfg(feature = "gzip")]
    #[test]
    fn gzip_decodes_across_any_split() {
        let data = sample(100_000);
        let stream = gzip(&data, 6);
        for (piece, max) in [
            (1, 7),
            (3, 1000),
            (100, 1),
            (4096, 65_536),
            (stream.len(), 1 << 20),
        ] {
            let out = decode_in_pieces(Coding::Gzip, &stream, piece, max).unwrap();
            assert!(out == data, "piece {piece}, max {max}");
        }
        // Two members, and a header with every optional field.
        let mut two = stream.clone();
        two.extend_from_slice(&gzip(b"tail", 1));
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        assert!(decode_in_pieces(Coding::Gzip, &two, 777, 4096).unwrap() == want);
        // Flags FHCRC | FEXTRA | FNAME | FCOMMENT; an extra field of 3 bytes.
        let mut header = vec![
            0x1f, 0x8b, 8, 0x1e, 0, 0, 0, 0, 0, 255, 3, 0, b'a', b'b', b'c',
        ];
        header.extend_from_slice(b"name\0comment\0");
        let mut crc = flate2::Crc::new();
        crc.update(&header);
        header.extend_from_slice(&(crc.sum() as u16).to_le_bytes());
        assert_eq!(gzip::header_len(&header).unwrap(), Some(header.len()));
        assert_eq!(gzip::header_len(&header[..header.len() - 1]).unwrap(), None);
        let mut bad = header.clone();
        bad[12] ^= 1;
        assert_eq!(gzip::header_len(&bad).unwrap_err(), "header CRC mismatch");
        let plain = gzip(b"fields", 6);
        let mut full = header.clone();
        full.extend_from_slice(&plain[10..]);
        assert_eq!(
            decode_in_pieces(Coding::Gzip, &full, 1, 3).unwrap(),
            b"fields"
        );
    }

    /// Broken gzip streams name what is wrong.
    #[cfg(feature = "gzip")]
    #[test]
    fn gzip_errors_say_what_is_wrong() {
        let stream = gzip(b"hello, hello, hello", 6);
        let n = stream.len();
        let flip = |at: usize| {
            let mut s = stream.clone();
            s[at] ^= 0x01;
            s
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"hello".to_vec(),
                "invalid gzip body: not gzip (bad magic bytes)",
            ),
            (flip(2), "invalid gzip body: unknown compression method"),
            (flip(n - 8), "invalid gzip body: CRC-32 mismatch"),
            (
                flip(n - 4),
                "invalid gzip body: length mismatch in the trailer",
            ),
            (
                stream[..n - 4].to_vec(),
                "invalid gzip body: truncated in the trailer",
            ),
            (
                stream[..n - 8].to_vec(),
                "invalid gzip body: truncated in the trailer",
            ),
            (
                stream[..5].to_vec(),
                "invalid gzip body: truncated in the header",
            ),
            (
                stream[..14].to_vec(),
                "invalid gzip body: truncated in the compressed data",
            ),
            (
                [&stream[..], b"junk"].concat(),
                "invalid gzip body: not gzip (bad magic bytes)",
            ),
            (
                [&stream[..10], &[0xff; 20][..]].concat(),
                "invalid gzip body: invalid deflate data",
            ),
        ];
        for (bytes, want) in cases {
            let err = decode_in_pieces(Coding::Gzip, &bytes, 3, 100).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
        // An empty body is empty.
        assert_eq!(decode_in_pieces(Coding::Gzip, b"", 1, 1).unwrap(), b"");
    }

    /// zlib-wrapped and raw deflate both decode; trailing data and truncation are errors.
    #[cfg(feature = "deflate")]
    #[test]
    fn deflate_takes_zlib_and_raw() {
        use std::io::Write as _;
        let data = sample(50_000);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        zlib.write_all(&data).unwrap();
        let zlib = zlib.finish().unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        raw.write_all(&data).unwrap();
        let raw = raw.finish().unwrap();
        assert!(deflate::is_zlib(zlib[0], zlib[1]));
        assert!(!deflate::is_zlib(raw[0], raw[1]));
        for stream in [&zlib, &raw] {
            for (piece, max) in [(1, 5), (1000, 333), (stream.len(), 1 << 20)] {
                assert!(decode_in_pieces(Coding::Deflate, stream, piece, max).unwrap() == data);
            }
        }
        let err = |bytes: &[u8]| {
            decode_in_pieces(Coding::Deflate, bytes, 7, 100)
                .unwrap_err()
                .to_string()
        };
        let mut bad_adler = zlib.clone();
        let last = bad_adler.len() - 1;
        bad_adler[last] ^= 1;
        assert_eq!(
            err(&bad_adler),
            "invalid deflate body: invalid deflate data"
        );
        assert_eq!(
            err(&zlib[..zlib.len() - 2]),
            "invalid deflate body: truncated"
        );
        assert_eq!(
            err(&raw[..raw.len() / 2]),
            "invalid deflate body: truncated"
        );
        assert_eq!(
            err(&[&zlib[..], b"x"].concat()),
            "invalid deflate body: data after the end of the stream"
        );
        assert_eq!(
            err(&[0xff; 64]),
            "invalid deflate body: invalid deflate data"
        );
    }

    /// The text of `tests/data/lines.br` and `lines.zst` (see `tests/compression.rs`).
    #[cfg(any(feature = "brotli", feature = "zstd"))]
    fn lines() -> Vec<u8> {
        let mut text = String::new();
        for i in 0u64..2000 {
            let n = i * 7 % 101;
            text.push_str(&format!(
                "{i:05} the quick brown fox jumps over the lazy dog {n}\n"
            ));
        }
        text.into_bytes()
    }

    /// A real brotli stream decodes across any split and output bound; a cut one is truncated.
    #[cfg(feature = "brotli")]
    #[test]
    fn brotli_decodes_across_any_split() {
        let stream = include_bytes!("../../../tests/data/lines.br");
        for (piece, max) in [(1, 1), (5, 77), (4096, 65_536)] {
            let out = decode_in_pieces(Coding::Brotli, stream, piece, max).unwrap();
            assert!(out == lines(), "piece {piece}, max {max}");
        }
        let cut = decode_in_pieces(Coding::Brotli, &stream[..stream.len() - 1], 100, 100);
        assert_eq!(cut.unwrap_err().to_string(), "invalid br body: truncated");
        let extra = [&stream[..], b"x"].concat();
        let err = decode_in_pieces(Coding::Brotli, &extra, 100, 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid br body: data after the end of the stream"
        );
    }

    /// A real zstd stream decodes across any split and output bound (the frame and block
    /// headers split everywhere); a cut one is truncated.
    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_decodes_across_any_split() {
        let stream = include_bytes!("../../../tests/data/lines.zst");
        for (piece, max) in [(1, 1), (3, 1000), (4096, 65_536)] {
            let out = decode_in_pieces(Coding::Zstd, stream, piece, max).unwrap();
            assert!(out == lines(), "piece {piece}, max {max}");
        }
        let cut = decode_in_pieces(Coding::Zstd, &stream[..stream.len() - 1], 100, 100);
        assert_eq!(cut.unwrap_err().to_string(), "invalid zstd body: truncated");
        let err = decode_in_pieces(Coding::Zstd, b"not zstd", 3, 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid zstd body: not zstd (bad magic number)"
        );
    }

    /// A bomb comes out in bounded steps: the decoder never produces more than asked.
    #[cfg(feature = "gzip")]
    #[test]
    fn output_is_bounded_by_the_caller() {
        let bomb = gzip(&vec![0; 4 << 20], 9);
        let mut decoder = Decoder::new(Coding::Gzip).unwrap();
        decoder.input().extend_from_slice(&bomb);
        let mut out = Vec::new();
        assert_eq!(decoder.decode(&mut out, 1000).unwrap(), 1000);
        assert_eq!(out.len(), 1000);
        let mut total = out.len();
        loop {
            out.clear();
            let n = decoder.decode(&mut out, 65_536).unwrap();
            assert!(out.capacity() <= 2 * 65_536);
            total += n;
            if n < 65_536 {
                break;
            }
        }
        assert_eq!(total, 4 << 20);
        decoder.finish().unwrap();
    }
}
