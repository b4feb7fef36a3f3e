//! The response body decoder: a sans-IO state machine over byte slices.
//!
//! It knows the four framings of RFC 9112 §6.3: no body, `Content-Length`, `chunked` (with
//! extensions and trailers), and read-until-close. Feed it whatever bytes arrived with
//! [`BodyDecoder::decode`]; it says how many it consumed and which of them are body data. The
//! data is a range of the input, so nothing is copied. Running out of input is not an error,
//! only a state: call again with more. When the peer closes, [`BodyDecoder::finish`] says
//! whether the body was complete; a body that ends early is always an error.

use std::fmt;
use std::ops::Range;

use http::HeaderMap;

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// Why a body could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// The connection closed before the body was complete.
    Truncated {
        expected: Option<u64>,
        received: u64,
    },
    /// The chunked framing is malformed; the string says where.
    BadChunk(&'static str),
    /// A chunk size does not fit in 64 bits.
    ChunkSizeOverflow,
    /// The trailer section is larger than the limit.
    TrailersTooLarge(usize),
    /// The trailer section is not valid header syntax.
    BadTrailers(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Truncated {
                expected: Some(expected),
                received,
            } => write!(f, "body ended after {received} of {expected} bytes"),
            BodyError::Truncated {
                expected: None,
                received,
            } => write!(
                f,
                "chunked body ended after {received} bytes, before its last chunk"
            ),
            BodyError::BadChunk(what) => write!(f, "malformed chunked body: {what}"),
            BodyError::ChunkSizeOverflow => {
                f.write_str("malformed chunked body: chunk size overflows 64 bits")
            }
            BodyError::TrailersTooLarge(limit) => write!(f, "trailers exceed {limit} bytes"),
            BodyError::BadTrailers(why) => write!(f, "malformed trailers: {why}"),
        }
    }
}

/// What one call to [`BodyDecoder::decode`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Input bytes used up, data and framing alike. The caller drops them from its buffer.
    pub(crate) consumed: usize,
    /// Where in the input the body data of this step lies (empty if none).
    pub(crate) data: Range<usize>,
}

/// Decodes one response body. See the module docs.
#[derive(Debug)]
pub(crate) struct BodyDecoder {
    framing: Framing,
    state: State,
    /// Body bytes produced so far.
    received: u64,
    /// The most trailer bytes accepted.
    max_trailer_size: usize,
    trailers: Option<HeaderMap>,
}

#[derive(Debug)]
enum State {
    /// This many body bytes are left (Content-Length).
    Length(u64),
    /// Chunked, at some point of its grammar.
    Chunked(Chunk),
    /// Until close: everything is body.
    UntilClose,
    /// Complete: more input is not ours.
    Done,
}

/// Where the chunked decoder is.
#[derive(Debug)]
enum Chunk {
    /// Reading the hex size; `digits` so far, `size` their value.
    Size { size: u64, digits: u8 },
    /// After the size, in whitespace that may only lead to an extension or the CR (hyper's
    /// and llhttp's rule: `5 junk` is refused, a leniency that request smuggling relies on);
    /// `len` bytes of the size line after the digits so far.
    SizeWs { size: u64, len: usize },
    /// In an extension (after `;`), skipped up to CR; `len` as above.
    Extension { size: u64, len: usize },
    /// Saw CR after the size line; expecting LF.
    SizeLf { size: u64 },
    /// In a chunk's data, with this many bytes left.
    Data(u64),
    /// After a chunk's data; expecting CR.
    DataCr,
    /// After a chunk's data and CR; expecting LF.
    DataLf,
    /// After the last chunk: the trailer section, buffered until its empty line.
    Trailers(Vec<u8>),
}

/// The most hex digits accepted in a chunk size, leading zeros included.
const MAX_CHUNK_SIZE_DIGITS: usize = 64;

/// The longest chunk extension accepted on one size line.
const MAX_CHUNK_EXTENSION: usize = 4096;

impl BodyDecoder {
    pub(crate) fn new(framing: Framing, max_trailer_size: usize) -> BodyDecoder {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunk::Size { size: 0, digits: 0 }),
            Framing::UntilClose => State::UntilClose,
        };
        BodyDecoder {
            framing,
            state,
            received: 0,
            max_trailer_size,
            trailers: None,
        }
    }

    /// The framing this decoder was made for.
    pub(crate) fn framing(&self) -> Framing {
        self.framing
    }

    /// True once the whole body has been decoded.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Body bytes produced so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// The trailers of a chunked body, once it is done (`None` if there were none).
    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    /// The peer closed the connection: fine only if the body is complete or delimited by
    /// the close.
    pub(crate) fn finish(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(left) => Err(BodyError::Truncated {
                expected: Some(self.received + left),
                received: self.received,
            }),
            State::Chunked(_) => Err(BodyError::Truncated {
                expected: None,
                received: self.received,
            }),
        }
    }

    /// Decodes from `input`: consumes framing and returns at most one contiguous run of body
    /// data. Call again with the rest of the input until it consumes nothing or the body is
    /// done.
    pub(crate) fn decode(&mut self, input: &[u8]) -> Result<Decoded, BodyError> {
        let mut pos = 0;
        loop {
            match &mut self.state {
                State::Done => {
                    return Ok(Decoded {
                        consumed: pos,
                        data: pos..pos,
                    })
                }
                State::UntilClose => {
                    self.received += input.len() as u64;
                    return Ok(Decoded {
                        consumed: input.len(),
                        data: 0..input.len(),
                    });
                }
                State::Length(left) => {
                    let n = take(*left, input.len());
                    *left -= n as u64;
                    self.received += n as u64;
                    if *left == 0 {
                        self.state = State::Done;
                    }
                    return Ok(Decoded {
                        consumed: n,
                        data: 0..n,
                    });
                }
                State::Chunked(chunk) => {
                    if pos == input.len() {
                        return Ok(Decoded {
                            consumed: pos,
                            data: pos..pos,
                        });
                    }
                    if let Chunk::Data(left) = chunk {
                        let n = take(*left, input.len() - pos);
                        *left -= n as u64;
                        self.received += n as u64;
                        if *left == 0 {
                            *chunk = Chunk::DataCr;
                        }
                        return Ok(Decoded {
                            consumed: pos + n,
                            data: pos..pos + n,
                        });
                    }
                    let byte = input[pos];
                    pos += 1;
                    if let Some(next) = self.step(byte)? {
                        self.state = next;
                    }
                }
            }
        }
    }

    /// Advances the chunked grammar by one framing byte. Returns a new top-level state when
    /// the body ends.
    fn step(&mut self, byte: u8) -> Result<Option<State>, BodyError> {
        let max_trailer_size = self.max_trailer_size;
        let State::Chunked(chunk) = &mut self.state else {
            return Ok(None);
        };
        match chunk {
            Chunk::Size { size, digits } => match hex_value(byte) {
                Some(v) => {
                    if *size > u64::MAX >> 4 {
                        return Err(BodyError::ChunkSizeOverflow);
                    }
                    if usize::from(*digits) >= MAX_CHUNK_SIZE_DIGITS {
                        // Leading zeros without end: the value never overflows.
                        return Err(BodyError::BadChunk("chunk size has too many digits"));
                    }
                    *size = (*size << 4) | u64::from(v);
                    *digits = digits.saturating_add(1);
                }
                None if *digits == 0 => return Err(BodyError::BadChunk("chunk size is not hex")),
                None => {
                    let size = *size;
                    *chunk = match byte {
                        b'\r' => Chunk::SizeLf { size },
                        b';' => Chunk::Extension { size, len: 1 },
                        b' ' | b'\t' => Chunk::SizeWs { size, len: 1 },
                        _ => return Err(BodyError::BadChunk("invalid byte after chunk size")),
                    };
                }
            },
            Chunk::SizeWs { size, len } => match byte {
                b'\r' => *chunk = Chunk::SizeLf { size: *size },
                b';' => {
                    *chunk = Chunk::Extension {
                        size: *size,
                        len: *len + 1,
                    }
                }
                _ if *len >= MAX_CHUNK_EXTENSION => {
                    return Err(BodyError::BadChunk("chunk extension too long"))
                }
                b' ' | b'\t' => *len += 1,
                _ => return Err(BodyError::BadChunk("invalid byte after chunk size")),
            },
            Chunk::Extension { size, len } => match byte {
                b'\r' => *chunk = Chunk::SizeLf { size: *size },
                b'\n' => return Err(BodyError::BadChunk("bare LF in chunk size line")),
                _ if *len >= MAX_CHUNK_EXTENSION => {
                    return Err(BodyError::BadChunk("chunk extension too long"))
                }
                _ => *len += 1,
            },
            Chunk::SizeLf { size } => {
                if byte != b'\n' {
                    return Err(BodyError::BadChunk("expected LF after chunk size line"));
                }
                *chunk = if *size == 0 {
                    Chunk::Trailers(Vec::new())
                } else {
                    Chunk::Data(*size)
                };
            }
            // `decode` hands data to the caller before it steps any byte.
            Chunk::Data(_) => {}
            Chunk::DataCr => {
                if byte != b'\r' {
                    return Err(BodyError::BadChunk("chunk data longer than its size"));
                }
                *chunk = Chunk::DataLf;
            }
            Chunk::DataLf => {
                if byte != b'\n' {
                    return Err(BodyError::BadChunk("expected LF after chunk data"));
                }
                *chunk = Chunk::Size { size: 0, digits: 0 };
            }
            Chunk::Trailers(buf) => {
                buf.push(byte);
                if buf.len() > max_trailer_size {
                    return Err(BodyError::TrailersTooLarge(max_trailer_size));
                }
                if buf == b"\r\n" {
                    return Ok(Some(State::Done));
                }
                if buf.ends_with(b"\r\n\r\n") {
                    self.trailers = Some(parse_trailers(buf)?);
                    return Ok(Some(State::Done));
                }
            }
        }
        Ok(None)
    }
}

/// The smaller of `left` and `available`, as a `usize`.
fn take(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |left| left.min(available))
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Parses a complete trailer section (header lines and the final empty line).
fn parse_trailers(buf: &[u8]) -> Result<HeaderMap, BodyError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let parsed = match httparse::parse_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        Ok(httparse::Status::Partial) => {
            return Err(BodyError::BadTrailers("incomplete section".into()))
        }
        Err(e) => return Err(BodyError::BadTrailers(e.to_string())),
    };
    let mut map = HeaderMap::with_capacity(parsed.len());
    for h in parsed {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|e| BodyError::BadTrailers(e.to_string()))?;
        let value = http::HeaderValue::from_bytes(h.value)
            .map_err(|e| BodyError::BadTrailers(e.to_string()))?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What decoding a whole input should give.
    #[derive(Debug)]
    enum Want {
        /// This body, complete; trailers as `name: value` pairs; bytes left after the body.
        Body(
            &'static [u8],
            &'static [(&'static str, &'static str)],
            usize,
        ),
        /// This error, at some point.
        Fail(BodyError),
    }

    /// What decoding gave.
    #[derive(Debug, PartialEq)]
    enum Got {
        Body(Vec<u8>, Vec<(String, String)>, usize),
        Fail(BodyError),
    }

    impl From<&Want> for Got {
        fn from(want: &Want) -> Got {
            match want {
                Want::Body(body, trailers, left) => Got::Body(
                    body.to_vec(),
                    trailers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    *left,
                ),
                Want::Fail(e) => Got::Fail(e.clone()),
            }
        }
    }

    /// Feeds `input` in pieces of `step` bytes (the whole when 0), then reports EOF if `eof`.
    fn run(framing: Framing, input: &[u8], step: usize, eof: bool) -> Got {
        let mut decoder = BodyDecoder::new(framing, 1024);
        let mut body = Vec::new();
        let mut buffer = Vec::new();
        let step = if step == 0 { input.len().max(1) } else { step };
        for piece in input.chunks(step) {
            buffer.extend_from_slice(piece);
            loop {
                match decoder.decode(&buffer) {
                    Ok(d) => {
                        body.extend_from_slice(&buffer[d.data.clone()]);
                        buffer.drain(..d.consumed);
                        if d.consumed == 0 || decoder.is_done() {
                            break;
                        }
                    }
                    Err(e) => return Got::Fail(e),
                }
            }
        }
        if eof {
            if let Err(e) = decoder.finish() {
                return Got::Fail(e);
            }
        }
        assert!(decoder.is_done(), "decoder not done and no EOF given");
        assert_eq!(decoder.received(), body.len() as u64);
        let trailers = decoder.take_trailers().unwrap_or_default();
        let trailers = trailers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        Got::Body(body, trailers, buffer.len())
    }

    /// Every framing, good and bad, whole and byte by byte, gives the same outcome.
    #[test]
    fn framing_table() {
        use BodyError::*;
        use Framing::*;
        let cases: &[(&str, Framing, &[u8], bool, Want)] = &[
            (
                "empty ignores bytes",
                Empty,
                b"junk",
                false,
                Want::Body(b"", &[], 4),
            ),
            (
                "length exact",
                Length(5),
                b"hello",
                false,
                Want::Body(b"hello", &[], 0),
            ),
            (
                "length leaves the rest",
                Length(5),
                b"helloHTTP/1.1",
                false,
                Want::Body(b"hello", &[], 8),
            ),
            ("length zero", Length(0), b"", true, Want::Body(b"", &[], 0)),
            (
                "length short is an error",
                Length(10),
                b"hello",
                true,
                Want::Fail(Truncated {
                    expected: Some(10),
                    received: 5,
                }),
            ),
            (
                "until close",
                UntilClose,
                b"all of it",
                true,
                Want::Body(b"all of it", &[], 0),
            ),
            (
                "until close empty",
                UntilClose,
                b"",
                true,
                Want::Body(b"", &[], 0),
            ),
            (
                "chunked simple",
                Chunked,
                b"5\r\nhello\r\n0\r\n\r\n",
                false,
                Want::Body(b"hello", &[], 0),
            ),
            (
                "chunked two chunks",
                Chunked,
                b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
                false,
                Want::Body(b"hello", &[], 0),
            ),
            (
                "chunked hex sizes",
                Chunked,
                b"A\r\n0123456789\r\n0\r\n\r\n",
                false,
                Want::Body(b"0123456789", &[], 0),
            ),
            (
                "chunked lowercase hex",
                Chunked,
                b"a\r\n0123456789\r\n0\r\n\r\n",
                false,
                Want::Body(b"0123456789", &[], 0),
            ),
            (
                "chunked leading zeros",
                Chunked,
                b"0005\r\nhello\r\n000\r\n\r\n",
                false,
                Want::Body(b"hello", &[], 0),
            ),
            (
                "chunked extensions",
                Chunked,
                b"5;name=value;x\r\nhello\r\n0;last\r\n\r\n",
                false,
                Want::Body(b"hello", &[], 0),
            ),
            (
                "chunked whitespace before extension",
                Chunked,
                b"5 ;a=b\r\nhello\r\n0\r\n\r\n",
                false,
                Want::Body(b"hello", &[], 0),
            ),
            (
                "chunked trailers",
                Chunked,
                b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum: 42\r\n\r\n",
                false,
                Want::Body(b"hello", &[("expires", "never"), ("x-sum", "42")], 0),
            ),
            (
                "chunked leaves the next response",
                Chunked,
                b"0\r\n\r\nHTTP/1.1",
                false,
                Want::Body(b"", &[], 8),
            ),
            (
                "chunked truncated in data",
                Chunked,
                b"5\r\nhel",
                true,
                Want::Fail(Truncated {
                    expected: None,
                    received: 3,
                }),
            ),
            (
                "chunked truncated before last chunk",
                Chunked,
                b"5\r\nhello\r\n",
                true,
                Want::Fail(Truncated {
                    expected: None,
                    received: 5,
                }),
            ),
            (
                "chunked truncated in trailers",
                Chunked,
                b"0\r\nX: y\r\n",
                true,
                Want::Fail(Truncated {
                    expected: None,
                    received: 0,
                }),
            ),
            (
                "chunked size not hex",
                Chunked,
                b"zz\r\n",
                false,
                Want::Fail(BadChunk("chunk size is not hex")),
            ),
            (
                "chunked negative size",
                Chunked,
                b"-5\r\nhello\r\n",
                false,
                Want::Fail(BadChunk("chunk size is not hex")),
            ),
            (
                "chunked empty size line",
                Chunked,
                b"\r\n",
                false,
                Want::Fail(BadChunk("chunk size is not hex")),
            ),
            (
                "chunked size overflow",
                Chunked,
                b"1ffffffffffffffff\r\n",
                false,
                Want::Fail(ChunkSizeOverflow),
            ),
            (
                "chunked whitespace before CR",
                Chunked,
                b"5 \t\r\nhello\r\n0\r\n\r\n",
                false,
                Want::Body(b"hello", &[], 0),
            ),
            (
                "chunked text after size and space (regression: was skipped as an extension)",
                Chunked,
                b"2 erfrferferf\r\nok\r\n0\r\n\r\n",
                false,
                Want::Fail(BadChunk("invalid byte after chunk size")),
            ),
            (
                "chunked text after whitespace on the last chunk",
                Chunked,
                b"0 x\r\n\r\n",
                false,
                Want::Fail(BadChunk("invalid byte after chunk size")),
            ),
            (
                "chunked bare LF after size",
                Chunked,
                b"5\nhello",
                false,
                Want::Fail(BadChunk("invalid byte after chunk size")),
            ),
            (
                "chunked data too long",
                Chunked,
                b"3\r\nhello\r\n",
                false,
                Want::Fail(BadChunk("chunk data longer than its size")),
            ),
            (
                "chunked CR without LF",
                Chunked,
                b"5\r\nhello\rX",
                false,
                Want::Fail(BadChunk("expected LF after chunk data")),
            ),
            (
                "chunked bad trailer",
                Chunked,
                b"0\r\nno colon here\r\n\r\n",
                false,
                Want::Fail(BadTrailers("invalid header name".into())),
            ),
        ];
        for (name, framing, input, eof, want) in cases {
            for step in [0, 1, 2, 3, 7] {
                let got = run(*framing, input, step, *eof);
                assert_eq!(got, Got::from(want), "case {name:?}, pieces of {step}");
            }
        }
    }

    /// Trailers larger than the limit are refused rather than buffered without end.
    #[test]
    fn trailers_are_capped() {
        let mut input = b"0\r\n".to_vec();
        for i in 0..100 {
            input.extend_from_slice(format!("X-Header-{i}: some value here\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            run(Framing::Chunked, &input, 0, false),
            Got::Fail(BodyError::TrailersTooLarge(1024))
        );
    }

    /// Endless leading zeros in a chunk size are refused (they never overflow), while a
    /// size of 64 digits is still read.
    #[test]
    fn chunk_size_digits_are_capped() {
        let mut ok = b"0".repeat(MAX_CHUNK_SIZE_DIGITS - 1);
        ok.extend_from_slice(b"2\r\nok\r\n0\r\n\r\n");
        assert_eq!(
            run(Framing::Chunked, &ok, 0, false),
            run(Framing::Chunked, b"2\r\nok\r\n0\r\n\r\n", 0, false)
        );
        let endless = b"0".repeat(MAX_CHUNK_SIZE_DIGITS + 1);
        assert_eq!(
            run(Framing::Chunked, &endless, 0, false),
            Got::Fail(BodyError::BadChunk("chunk size has too many digits"))
        );
    }

    /// An endless chunk extension is refused.
    #[test]
    fn chunk_extension_is_capped() {
        let mut input = b"5;".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_CHUNK_EXTENSION + 10));
        assert_eq!(
            run(Framing::Chunked, &input, 0, false),
            Got::Fail(BodyError::BadChunk("chunk extension too long"))
        );
    }

    /// A body of 2^64-1 declared bytes is accepted as a length and fails as truncated.
    #[test]
    fn huge_length_truncates_cleanly() {
        assert_eq!(
            run(Framing::Length(u64::MAX), b"abc", 0, true),
            Got::Fail(BodyError::Truncated {
                expected: Some(u64::MAX),
                received: 3
            })
        );
    }
}
