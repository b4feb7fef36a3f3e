//! The response head parser (httparse) and the framing rules of RFC 9112 §6.3.
//!
//! [`parse_head`] turns the bytes received so far into a [`ResponseHead`], or says it needs
//! more, or fails, never buffering past the size limit. [`framing`] decides from the request
//! method and the head how the body is delimited and whether the connection can be reused.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use super::body::Framing;

/// The most header fields one response head may have.
pub(crate) const MAX_HEADERS: usize = 128;

/// Interim (1xx) responses skipped before the final one, at most.
pub(crate) const MAX_INTERIM_RESPONSES: usize = 32;

/// A parsed status line and header section.
#[derive(Debug, Clone)]
pub(crate) struct ResponseHead {
    pub(crate) version: Version,
    pub(crate) status: StatusCode,
    /// The reason phrase as the server sent it (possibly empty); borrowed when it is the
    /// status code's usual one, as it nearly always is, so that it costs no allocation.
    pub(crate) reason: Cow<'static, str>,
    pub(crate) headers: HeaderMap,
}

/// Why a response head or its framing is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The head is larger than the limit.
    TooLarge(usize),
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// Not an HTTP/1.x status line and header section; the string says what httparse saw.
    Malformed(String),
    /// `Content-Length` is not one non-negative integer.
    BadContentLength(String),
    /// `Transfer-Encoding` is unusable.
    BadTransferEncoding(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge(limit) => write!(f, "response head exceeds {limit} bytes"),
            HeadError::TooManyHeaders => {
                write!(f, "response head has more than {MAX_HEADERS} header fields")
            }
            HeadError::Malformed(why) => write!(f, "malformed response head: {why}"),
            HeadError::BadContentLength(v) => write!(f, "invalid content-length {v:?}"),
            HeadError::BadTransferEncoding(why) => write!(f, "invalid transfer-encoding: {why}"),
        }
    }
}

/// Parses a response head from the start of `buf`.
///
/// Returns the head and its length in bytes, or `None` if `buf` holds only part of it. Once
/// `buf` reaches `max_size` bytes without a complete head, that is an error: the caller never
/// needs to buffer more than `max_size`.
pub(crate) fn parse_head(
    buf: &[u8],
    max_size: usize,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    // Most heads have a handful of fields: try a small array first, which is cheaper to set
    // up on every parse, and the full one only when it overflows.
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match parse_into(buf, max_size, &mut few) {
        Err(HeadError::TooManyHeaders) => {
            parse_into(buf, max_size, &mut [httparse::EMPTY_HEADER; MAX_HEADERS])
        }
        other => other,
    }
}

/// The header slots tried first.
const FEW_HEADERS: usize = 16;

fn parse_into<'b>(
    buf: &'b [u8],
    max_size: usize,
    headers: &mut [httparse::Header<'b>],
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut response = httparse::Response::new(headers);
    let window = &buf[..buf.len().min(max_size)];
    let len = match response.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= max_size => {
            return Err(HeadError::TooLarge(max_size))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code)
        .map_err(|_| HeadError::Malformed(format!("status code {code} out of range")))?;
    let mut map = HeaderMap::with_capacity(response.headers.len());
    // With more than two fields, the values share one copy of the head: two allocations
    // (the copy, and its shared count on the first slice) rather than one per value; a
    // typical server sends eight.
    let block = (response.headers.len() > 2).then(|| Bytes::copy_from_slice(&buf[..len]));
    for header in response.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| HeadError::Malformed(format!("invalid header name {:?}", header.name)))?;
        let value = match &block {
            Some(block) => HeaderValue::from_maybe_shared(share(block, buf, header.value)),
            None => HeaderValue::from_bytes(header.value),
        }
        .map_err(|_| HeadError::Malformed(format!("invalid value in header {name}")))?;
        map.append(name, value);
    }
    Ok(Some((
        ResponseHead {
            version,
            status,
            reason: reason_phrase(status, response.reason.unwrap_or_default()),
            headers: map,
        },
        len,
    )))
}

/// `part` (a slice of `buf`) as a slice of `block`, a copy of `buf`'s start.
fn share(block: &Bytes, buf: &[u8], part: &[u8]) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= block.len() => block.slice(start..end),
        // Not within the head: httparse's slices always are, but a copy is always right.
        _ => Bytes::copy_from_slice(part),
    }
}

/// `reason` as kept in a [`ResponseHead`]: borrowed if it is `status`'s usual phrase.
fn reason_phrase(status: StatusCode, reason: &str) -> Cow<'static, str> {
    match status.canonical_reason() {
        Some(usual) if usual == reason => Cow::Borrowed(usual),
        _ => Cow::Owned(reason.to_owned()),
    }
}

/// How a response's body is delimited, and whether its connection may carry another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyPlan {
    pub(crate) framing: Framing,
    /// False if the server asked to close, the body ends at close, the framing was ambiguous
    /// (both `Content-Length` and `Transfer-Encoding`), or the protocol was switched.
    pub(crate) reusable: bool,
}

/// Applies RFC 9112 §6.3 to the final response `head` of a request with `method`.
pub(crate) fn framing(method: &Method, head: &ResponseHead) -> Result<BodyPlan, HeadError> {
    let headers = &head.headers;
    let keep_alive = match head.version {
        Version::HTTP_10 => has_token(headers, &CONNECTION, "keep-alive"),
        _ => !has_token(headers, &CONNECTION, "close"),
    };
    let status = head.status.as_u16();
    if status == 101 {
        // The connection now speaks another protocol; it is not ours to read or reuse.
        return Ok(BodyPlan {
            framing: Framing::Empty,
            reusable: false,
        });
    }
    if *method == Method::HEAD || head.status.is_informational() || status == 204 || status == 304 {
        return Ok(BodyPlan {
            framing: Framing::Empty,
            reusable: keep_alive,
        });
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let chunked = final_coding_is_chunked(headers)?;
        // With Content-Length too, the message may be a smuggling attempt: trust neither side
        // of it afterwards.
        let ambiguous = headers.contains_key(CONTENT_LENGTH);
        return Ok(if chunked {
            BodyPlan {
                framing: Framing::Chunked,
                reusable: keep_alive && !ambiguous,
            }
        } else {
            BodyPlan {
                framing: Framing::UntilClose,
                reusable: false,
            }
        });
    }
    if let Some(length) = content_length(headers)? {
        return Ok(BodyPlan {
            framing: if length == 0 {
                Framing::Empty
            } else {
                Framing::Length(length)
            },
            reusable: keep_alive,
        });
    }
    Ok(BodyPlan {
        framing: Framing::UntilClose,
        reusable: false,
    })
}

/// True if a comma-separated header holds `token`, case-insensitively.
pub(crate) fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Whether the last transfer coding is `chunked`; chunked anywhere else is an error.
fn final_coding_is_chunked(headers: &HeaderMap) -> Result<bool, HeadError> {
    let mut codings = Vec::new();
    for value in headers.get_all(TRANSFER_ENCODING) {
        let value = value
            .to_str()
            .map_err(|_| HeadError::BadTransferEncoding("not ASCII"))?;
        codings.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_ascii_lowercase),
        );
    }
    let Some((last, before)) = codings.split_last() else {
        return Err(HeadError::BadTransferEncoding("empty"));
    };
    if before.iter().any(|c| c == "chunked") {
        return Err(HeadError::BadTransferEncoding(
            "chunked is not the final coding",
        ));
    }
    Ok(last == "chunked")
}

/// The `Content-Length`, if present. Every value, across repeated fields and comma lists,
/// must be the same non-negative decimal integer that fits in 64 bits.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| {
            HeadError::BadContentLength(String::from_utf8_lossy(value.as_bytes()).into())
        })?;
        for part in text.split(',') {
            let part = part.trim();
            let bad = || HeadError::BadContentLength(text.to_owned());
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u64 = part.parse().map_err(|_| bad())?;
            match length {
                Some(previous) if previous != n => return Err(bad()),
                _ => length = Some(n),
            }
        }
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> ResponseHead {
        let (head, len) = parse_head(raw.as_bytes(), 64 * 1024)
            .expect("parses")
            .expect("complete");
        assert_eq!(len, raw.len());
        head
    }

    /// With more than two fields the values are slices of one copy of the head: each is the
    /// bytes sent (empty and non-ASCII ones too), and outlives the buffer parsed.
    #[test]
    fn values_of_a_longer_head_are_its_own_bytes() {
        let mut raw = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nX-Empty:\r\nX-Obs: caf\xe9\r\n\
                        Content-Length: 13\r\nX-Two: a\r\nX-Two: b\r\n\r\n"
            .to_vec();
        let (head, len) = parse_head(&raw, 64 * 1024).unwrap().unwrap();
        assert_eq!(len, raw.len());
        raw.fill(b'#'); // the values must not borrow the buffer
        let value = |name: &str| head.headers.get(name).map(|v| v.as_bytes().to_vec());
        assert_eq!(value("server").as_deref(), Some(&b"nginx"[..]));
        assert_eq!(value("x-empty").as_deref(), Some(&b""[..]));
        assert_eq!(value("x-obs").as_deref(), Some(&b"caf\xe9"[..]));
        assert_eq!(value("content-length").as_deref(), Some(&b"13"[..]));
        let two: Vec<_> = head.headers.get_all("x-two").iter().collect();
        assert_eq!(two, ["a", "b"]);
        assert!(matches!(head.reason, Cow::Borrowed("OK")));
    }

    /// A reason phrase is kept as sent: borrowed when it is the usual one, else owned.
    #[test]
    fn reason_phrases_are_kept_as_sent() {
        assert!(matches!(
            head("HTTP/1.1 404 Not Found\r\n\r\n").reason,
            Cow::Borrowed("Not Found")
        ));
        let custom = head("HTTP/1.1 404 Nope\r\n\r\n").reason;
        assert!(matches!(&custom, Cow::Owned(r) if r == "Nope"));
        assert_eq!(head("HTTP/1.1 200 ok\r\n\r\n").reason, "ok");
    }

    /// Status lines and headers parse, whole, and say Partial for every strict prefix.
    #[test]
    fn parses_heads_and_waits_for_the_rest() {
        let raw = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\n";
        let h = head(raw);
        assert_eq!(h.status, StatusCode::NOT_FOUND);
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.reason, "Not Found");
        assert_eq!(h.headers.get_all("x-a").iter().count(), 2);
        for end in 0..raw.len() {
            assert!(
                matches!(parse_head(&raw.as_bytes()[..end], 1024), Ok(None)),
                "prefix {end}"
            );
        }
        let h10 = head("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(h10.version, Version::HTTP_10);
        assert_eq!(head("HTTP/1.1 200 \r\n\r\n").reason, "");
    }

    /// Garbage, oversized heads and too many fields are errors, found without unbounded input.
    #[test]
    fn rejects_bad_heads() {
        assert!(matches!(
            parse_head(b"garbage\r\n\r\n", 1024),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 2000 OK\r\n\r\n", 1024),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/2 200 OK\r\n\r\n", 1024),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", 1024),
            Err(HeadError::Malformed(_))
        ));
        let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(
            parse_head(big.as_bytes(), 1024).unwrap_err(),
            HeadError::TooLarge(1024)
        );
        // A partial head at the limit is refused without waiting for its end.
        assert_eq!(
            parse_head(&big.as_bytes()[..1024], 1024).unwrap_err(),
            HeadError::TooLarge(1024)
        );
        // More than the first small array holds, fewer than the limit: parsed in full.
        let mut fifty = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..50 {
            fifty.push_str(&format!("X-{i}: v\r\n"));
        }
        fifty.push_str("\r\n");
        assert_eq!(head(&fifty).headers.len(), 50);
        let mut many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            parse_head(many.as_bytes(), 1 << 20).unwrap_err(),
            HeadError::TooManyHeaders
        );
    }

    /// A framing case: name, request method, raw head, and the framing with reuse, or the
    /// start of the error message.
    type FramingCase = (
        &'static str,
        &'static Method,
        &'static str,
        Result<(Framing, bool), &'static str>,
    );

    /// RFC 9112 §6.3, case by case.
    #[test]
    fn framing_table() {
        use Framing::*;
        let get = &Method::GET;
        let cases: &[FramingCase] = &[
            (
                "length",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Ok((Length(5), true)),
            ),
            (
                "length zero",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                Ok((Empty, true)),
            ),
            (
                "chunked",
                get,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok((Chunked, true)),
            ),
            (
                "chunked any case",
                get,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
                Ok((Chunked, true)),
            ),
            (
                "gzip then chunked",
                get,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Ok((Chunked, true)),
            ),
            (
                "codings over two fields",
                get,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok((Chunked, true)),
            ),
            (
                "final coding not chunked",
                get,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Ok((UntilClose, false)),
            ),
            (
                "chunked not final",
                get,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                Err("invalid transfer-encoding"),
            ),
            (
                "chunked twice",
                get,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                Err("invalid transfer-encoding"),
            ),
            (
                "empty transfer-encoding",
                get,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
                Err("invalid transfer-encoding"),
            ),
            (
                "te wins over cl, no reuse",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok((Chunked, false)),
            ),
            (
                "no length: until close",
                get,
                "HTTP/1.1 200 OK\r\n\r\n",
                Ok((UntilClose, false)),
            ),
            (
                "HEAD has no body",
                &Method::HEAD,
                "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
                Ok((Empty, true)),
            ),
            (
                "204 has no body",
                get,
                "HTTP/1.1 204 No Content\r\nContent-Length: 50\r\n\r\n",
                Ok((Empty, true)),
            ),
            (
                "304 has no body",
                get,
                "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok((Empty, true)),
            ),
            (
                "1xx has no body",
                get,
                "HTTP/1.1 100 Continue\r\n\r\n",
                Ok((Empty, true)),
            ),
            (
                "101 ends the exchange",
                get,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                Ok((Empty, false)),
            ),
            (
                "connection close",
                get,
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                Ok((Length(1), false)),
            ),
            (
                "connection close among tokens",
                get,
                "HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\nContent-Length: 1\r\n\r\n",
                Ok((Length(1), false)),
            ),
            (
                "http/1.0 closes by default",
                get,
                "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                Ok((Length(1), false)),
            ),
            (
                "http/1.0 keep-alive",
                get,
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                Ok((Length(1), true)),
            ),
            (
                "same length twice",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                Ok((Length(5), true)),
            ),
            (
                "same length in a list",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
                Ok((Length(5), true)),
            ),
            (
                "differing lengths",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Err("invalid content-length"),
            ),
            (
                "differing lengths in a list",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
                Err("invalid content-length"),
            ),
            (
                "negative length",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                Err("invalid content-length"),
            ),
            (
                "plus sign",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
                Err("invalid content-length"),
            ),
            (
                "garbage length",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n",
                Err("invalid content-length"),
            ),
            (
                "empty length",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
                Err("invalid content-length"),
            ),
            (
                "overflowing length",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
                Err("invalid content-length"),
            ),
            (
                "max length",
                get,
                "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
                Ok((Length(u64::MAX), true)),
            ),
        ];
        for (name, method, raw, want) in cases {
            let got = framing(method, &head(raw));
            match (got, want) {
                (Ok(plan), Ok((framing, reusable))) => {
                    assert_eq!(
                        (plan.framing, plan.reusable),
                        (*framing, *reusable),
                        "case {name:?}"
                    )
                }
                (Err(e), Err(prefix)) => {
                    assert!(e.to_string().starts_with(prefix), "case {name:?}: {e}")
                }
                (got, want) => panic!("case {name:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
