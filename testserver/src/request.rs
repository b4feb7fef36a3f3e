//! Requests: the head parsed by `httparse` into an owned [`Request`], the body's framing
//! (RFC 9112 section 6.3, server side), keep-alive, and a decoder for chunked request bodies.

use std::net::SocketAddr;

use super::codec::parse_query;

/// Header lines a request may have; more is answered with 431.
pub(crate) const MAX_HEADERS: usize = 128;

/// The longest chunk-size or trailer line accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// The most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// How the request says its body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: ..., chunked`.
    Chunked,
}

/// A parsed request head, and later its body.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The request-target as sent.
    pub(crate) target: String,
    /// The path part of the target, not percent-decoded.
    pub(crate) path: String,
    /// The query part of the target, without the `?`.
    pub(crate) query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor_version: u8,
    /// Header names and values as sent (values decoded lossily as UTF-8).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) framing: BodyFraming,
    /// Whether the connection may carry another request after this one.
    pub(crate) keep_alive: bool,
    /// Filled by the connection once the body is read.
    pub(crate) body: Vec<u8>,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// Why a request head was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Longer than the configured head limit, or more than [`MAX_HEADERS`] lines: 431.
    TooLarge,
    /// Not a valid HTTP/1.x request head, or a body framing that cannot be trusted: 400.
    Invalid(&'static str),
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub(crate) fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The comma-separated tokens of every `name` header, trimmed and lower-cased.
    fn header_tokens(&self, name: &str) -> Vec<String> {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// The query's `(name, value)` pairs, decoded.
    pub(crate) fn args(&self) -> Vec<(String, String)> {
        parse_query(&self.query)
    }

    /// The first value of query argument `name`.
    pub(crate) fn arg(&self, name: &str) -> Option<String> {
        self.args()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// `host:port` the client addressed: the `Host` header, else the local address.
    pub(crate) fn host(&self) -> String {
        match self.header("host") {
            Some(host) if !host.is_empty() => host.to_string(),
            _ => self.local.to_string(),
        }
    }

    /// The absolute URL of the request, as httpbin's `url` field shows it.
    pub(crate) fn url(&self) -> String {
        if self.target.starts_with("http://") || self.target.starts_with("https://") {
            self.target.clone()
        } else {
            format!("http://{}{}", self.host(), self.target)
        }
    }

    /// Whether the client sent `Expect: 100-continue`.
    pub(crate) fn expects_continue(&self) -> bool {
        self.minor_version >= 1
            && self
                .header("expect")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)` if it is not complete yet;
/// otherwise the request (without body) and the length of the head.
pub(crate) fn parse_head(
    buf: &[u8],
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Invalid("malformed request head")),
    };
    let method = parsed.method.unwrap_or("GET").to_string();
    let target = parsed.path.unwrap_or("/").to_string();
    let minor_version = parsed.version.unwrap_or(1);
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let (path, query) = split_target(&target);
    let mut request = Request {
        method,
        path,
        query,
        target,
        minor_version,
        headers,
        framing: BodyFraming::None,
        keep_alive: false,
        body: Vec::new(),
        peer,
        local,
    };
    let connection = request.header_tokens("connection");
    request.keep_alive = if minor_version >= 1 {
        !connection.iter().any(|t| t == "close")
    } else {
        connection.iter().any(|t| t == "keep-alive")
    };
    let (framing, trusted) = body_framing(&request)?;
    request.framing = framing;
    request.keep_alive &= trusted;
    Ok(Some((request, len)))
}

/// The path and query of a request-target in origin form (`/p?q`) or absolute form
/// (`http://host/p?q`). A fragment, which clients should not send, is dropped.
fn split_target(target: &str) -> (String, String) {
    let target = target.split('#').next().unwrap_or("");
    let rest = match target.find("://") {
        Some(i) if !target.starts_with('/') => {
            let after = &target[i + 3..];
            match after.find(['/', '?']) {
                Some(j) => &after[j..],
                None => "",
            }
        }
        _ => target,
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = if path.is_empty() { "/" } else { path };
    (path.to_string(), query.to_string())
}

/// The body framing of a request (RFC 9112 section 6.3) and whether the connection can be
/// trusted with another request afterwards.
///
/// `Transfer-Encoding` wins over `Content-Length`; a message with both is served, then the
/// connection is closed. A transfer coding other than a final `chunked`, or a bad or
/// conflicting `Content-Length`, is refused.
fn body_framing(request: &Request) -> Result<(BodyFraming, bool), HeadError> {
    let codings = request.header_tokens("transfer-encoding");
    let lengths: Vec<&str> = request
        .header_values("content-length")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if !codings.is_empty() {
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(HeadError::Invalid("transfer coding is not chunked"));
        }
        // RFC 9112 section 6.1: with both headers, process as chunked, then close.
        let trusted = lengths.is_empty() && request.minor_version >= 1;
        return Ok((BodyFraming::Chunked, trusted));
    }
    let Some(first) = lengths.first() else {
        return Ok((BodyFraming::None, true));
    };
    if lengths.iter().any(|v| v != first) {
        return Err(HeadError::Invalid("conflicting Content-Length values"));
    }
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::Invalid("invalid Content-Length"));
    }
    let n: u64 = first
        .parse()
        .map_err(|_| HeadError::Invalid("invalid Content-Length"))?;
    Ok((
        if n == 0 {
            BodyFraming::None
        } else {
            BodyFraming::Length(n)
        },
        true,
    ))
}

/// Why a request body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the configured body limit: 413.
    TooLarge,
    /// Malformed chunked coding: 400.
    Invalid,
}

/// Where a [`ChunkedDecoder`] is in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a `size[;ext]` line.
    Size,
    /// Inside a chunk, with this many data bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

/// An incremental decoder of a chunked body (RFC 9112 section 7.1). Chunk extensions and
/// trailer fields are accepted and ignored; a bare LF is accepted where CRLF belongs.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size,
            trailer_bytes: 0,
        }
    }

    /// Decodes what it can of `input`, appending chunk data to `body` (at most `max` bytes in
    /// all). Returns how many bytes of `input` it used and whether the body is complete; the
    /// caller keeps the rest of `input` and calls again with more.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
        max: usize,
    ) -> Result<(usize, bool), BodyError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                ChunkState::Done => return Ok((pos, true)),
                ChunkState::Size => {
                    let Some(line) = take_line(rest)? else {
                        return Ok((pos, false));
                    };
                    pos += line.len();
                    let size = parse_chunk_size(trim_eol(line))?;
                    if (body.len() as u64).saturating_add(size) > max as u64 {
                        return Err(BodyError::TooLarge);
                    }
                    self.state = match size {
                        0 => ChunkState::Trailers,
                        n => ChunkState::Data(n),
                    };
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        return Ok((pos, false));
                    }
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    body.extend_from_slice(&rest[..take]);
                    pos += take;
                    self.state = match left - take as u64 {
                        0 => ChunkState::DataEnd,
                        n => ChunkState::Data(n),
                    };
                }
                ChunkState::DataEnd => {
                    if rest.starts_with(b"\r\n") {
                        pos += 2;
                    } else if rest.starts_with(b"\n") {
                        pos += 1;
                    } else if rest.is_empty() || rest == b"\r" {
                        return Ok((pos, false));
                    } else {
                        return Err(BodyError::Invalid);
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(rest)? else {
                        return Ok((pos, false));
                    };
                    pos += line.len();
                    self.trailer_bytes += line.len();
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(BodyError::Invalid);
                    }
                    if trim_eol(line).is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

/// The first line of `input` with its LF, `None` if no LF has arrived yet.
fn take_line(input: &[u8]) -> Result<Option<&[u8]>, BodyError> {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) if i < MAX_CHUNK_LINE => Ok(Some(&input[..=i])),
        Some(_) => Err(BodyError::Invalid),
        None if input.len() >= MAX_CHUNK_LINE => Err(BodyError::Invalid),
        None => Ok(None),
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The hex size at the start of a chunk-size line, before optional whitespace and extensions.
fn parse_chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(BodyError::Invalid);
    }
    let after = &line[digits..];
    let after = after
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&[][..], |i| &after[i..]);
    if !after.is_empty() && after[0] != b';' {
        return Err(BodyError::Invalid);
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| BodyError::Invalid)?;
    u64::from_str_radix(text, 16).map_err(|_| BodyError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 80))
    }

    fn head(text: &str) -> Result<Option<(Request, usize)>, HeadError> {
        parse_head(text.as_bytes(), addr(), addr())
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("/a/b?x=1"), ("/a/b".into(), "x=1".into()));
        assert_eq!(split_target("http://h:1/p?q#f"), ("/p".into(), "q".into()));
        assert_eq!(split_target("http://h:1"), ("/".into(), "".into()));
        assert_eq!(split_target("http://h?q"), ("/".into(), "q".into()));
    }

    #[test]
    fn framing_and_keep_alive() {
        let (r, len) = head("GET / HTTP/1.1\r\nHost: x\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.framing, r.keep_alive, len),
            (BodyFraming::None, true, 27)
        );
        let (r, _) = head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!r.keep_alive);
        let (r, _) = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.keep_alive);
        let (r, _) = head("POST / HTTP/1.1\r\nConnection: foo, close\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((r.framing, r.keep_alive), (BodyFraming::Length(5), false));
        let (r, _) = head(
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.framing, r.keep_alive), (BodyFraming::Chunked, false));
        assert!(head("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        for bad in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "GET\x01 / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(head(bad), Err(HeadError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn chunked_in_pieces() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let mut d = ChunkedDecoder::new();
            let mut body = Vec::new();
            let (used, done) = d.decode(&wire[..split], &mut body, 100).unwrap();
            assert!(!done || split >= wire.len() - 4);
            let mut rest = wire[used..].to_vec();
            let (used2, done) = d.decode(&rest, &mut body, 100).unwrap();
            assert!(done, "split {split}");
            rest.drain(..used2);
            assert_eq!(rest, b"NEXT");
            assert_eq!(body, b"hello world");
        }
    }

    #[test]
    fn chunked_errors() {
        let mut body = Vec::new();
        assert_eq!(
            ChunkedDecoder::new().decode(b"zz\r\n", &mut body, 100),
            Err(BodyError::Invalid)
        );
        assert_eq!(
            ChunkedDecoder::new().decode(b"65\r\n", &mut body, 100),
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            ChunkedDecoder::new().decode(b"1\r\nab\r\n", &mut body, 100),
            Err(BodyError::Invalid)
        );
    }
}
