//! The request encoder: a request head as bytes, ready for one write.
//!
//! The request line uses the origin form (path and query exactly as the URL has them), or the
//! absolute form (`http://host:port/path?query`, never with userinfo) for a request to a
//! forward proxy; `Host` comes from the URL with the port when it is not the scheme's default,
//! and a body is framed with `Content-Length`, or, when its length is not known in advance,
//! with `Transfer-Encoding: chunked` ([`chunk_prefix`] and [`LAST_CHUNK`] frame its pieces). Header names and values come from the `http` crate, which refuses
//! CR, LF and NUL; the request target is checked here too, so none of them reach the wire.

use std::io::Write as _;

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Method};
use url::Url;

/// Why a request cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EncodeError {
    /// The URL has no host to send to.
    NoHost,
    /// The request target holds a byte that would break the request line.
    BadTarget,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EncodeError::NoHost => "url has no host",
            EncodeError::BadTarget => "request target contains a control character or space",
        })
    }
}

/// The form of a request target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/path?query`: to an origin server, directly or through a tunnel.
    Origin,
    /// `http://host:port/path?query`: to a forward proxy.
    Absolute,
}

/// How a request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLen {
    /// `Content-Length`: exactly this many bytes follow the head.
    Known(u64),
    /// `Transfer-Encoding: chunked`: the length is not known in advance.
    Chunked,
}

/// What ends a chunked body: the last chunk and an empty trailer section.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `n` in decimal, written into `buf`: what `write!(out, "{n}")` writes, without the
/// formatting machinery (a port and a length go into every request head and pool key).
pub(crate) fn decimal(n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

/// Writes the framing before a chunk of `len` (non-zero) bytes into `out` (cleared first):
/// the CRLF that ends the previous chunk's data unless this is the `first`, then the size line.
pub(crate) fn chunk_prefix(out: &mut Vec<u8>, len: usize, first: bool) {
    debug_assert!(len > 0, "an empty chunk would end the body");
    out.clear();
    if !first {
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "{len:x}\r\n");
}

/// Appends the head of a `method` request for `url` to `out`, with the request target in
/// `form`.
///
/// `headers` are written as given, after `Host` (unless `headers` has one). `body_len` adds
/// `Content-Length` unless `headers` has one, or `Transfer-Encoding: chunked` unless `headers`
/// has a `Transfer-Encoding`; methods that usually carry a body get `Content-Length: 0` when
/// they have none, as curl and hyper send.
pub(crate) fn encode_head(
    out: &mut Vec<u8>,
    method: &Method,
    url: &Url,
    form: Target,
    headers: &HeaderMap,
    body_len: Option<BodyLen>,
) -> Result<(), EncodeError> {
    let host = url.host_str().ok_or(EncodeError::NoHost)?;
    let start = out.len();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target_start = out.len();
    if form == Target::Absolute {
        // Scheme, host and port only: userinfo never goes on the wire (RFC 9110 §4.2.4).
        out.extend_from_slice(url.scheme().as_bytes());
        out.extend_from_slice(b"://");
        out.extend_from_slice(host.as_bytes());
        if let Some(port) = url.port() {
            out.push(b':');
            out.extend_from_slice(decimal(port.into(), &mut [0; 20]).as_bytes());
        }
    }
    out.extend_from_slice(url.path().as_bytes());
    if let Some(query) = url.query() {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    if out[target_start..].iter().any(|&b| b <= b' ' || b == 0x7f) {
        out.truncate(start);
        return Err(EncodeError::BadTarget);
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        if let Some(port) = url.port() {
            out.push(b':');
            out.extend_from_slice(decimal(port.into(), &mut [0; 20]).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if body_len == Some(BodyLen::Chunked) {
        if !headers.contains_key(TRANSFER_ENCODING) {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
    } else if !headers.contains_key(CONTENT_LENGTH) {
        let expects_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        match body_len {
            Some(BodyLen::Known(n)) if n > 0 || expects_body => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(decimal(n, &mut [0; 20]).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            None if expects_body => out.extend_from_slice(b"content-length: 0\r\n"),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The value of an `Authorization: Basic` header for the URL's userinfo, if it has any.
/// The user name and password are percent-decoded first, as curl does.
pub(crate) fn basic_auth_from_url(url: &Url) -> Option<String> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let user = percent_decode(url.username());
    let password = url.password().map(percent_decode).unwrap_or_default();
    let mut credentials = user;
    credentials.push(b':');
    credentials.extend_from_slice(&password);
    Some(format!("Basic {}", base64(&credentials)))
}

/// The value of an `Authorization: Basic` (or `Proxy-Authorization`) header for `user` and
/// `password`, taken as they are.
pub(crate) fn basic_auth_value(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn encode(
        method: &Method,
        url: &str,
        headers: &[(&'static str, &str)],
        body: Option<u64>,
    ) -> String {
        let url = Url::parse(url).unwrap();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        let mut out = Vec::new();
        let body = body.map(BodyLen::Known);
        encode_head(&mut out, method, &url, Target::Origin, &map, body).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// `decimal` writes what `{}` formatting writes, at the edges of `u64` too.
    #[test]
    fn decimal_is_display() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            8080,
            65535,
            1 << 32,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string());
        }
    }

    /// The absolute form for a forward proxy: scheme, host, a port only when not the default,
    /// path and query exactly, and never userinfo or a fragment. `Host` stays the origin's.
    #[test]
    fn encodes_absolute_form() {
        let cases = [
            (
                "http://u:p@127.0.0.1:8080/get?a=1&b=%20#frag",
                "GET http://127.0.0.1:8080/get?a=1&b=%20 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n",
            ),
            (
                "http://example.com:80",
                "GET http://example.com/ HTTP/1.1\r\nhost: example.com\r\n\r\n",
            ),
            (
                "http://[::1]:81/a%2Fb",
                "GET http://[::1]:81/a%2Fb HTTP/1.1\r\nhost: [::1]:81\r\n\r\n",
            ),
        ];
        for (url, want) in cases {
            let url = Url::parse(url).unwrap();
            let mut out = Vec::new();
            encode_head(
                &mut out,
                &Method::GET,
                &url,
                Target::Absolute,
                &HeaderMap::new(),
                None,
            )
            .unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), want, "{url}");
        }
        assert_eq!(
            basic_auth_value("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    /// Request lines, Host and Content-Length, case by case.
    #[test]
    fn encodes_heads() {
        let get = &Method::GET;
        let cases: &[(&str, &Method, &str, Option<u64>, &str)] = &[
            (
                "root",
                get,
                "http://example.com",
                None,
                "GET / HTTP/1.1\r\nhost: example.com\r\n\r\n",
            ),
            (
                "default port omitted",
                get,
                "http://example.com:80/a",
                None,
                "GET /a HTTP/1.1\r\nhost: example.com\r\n\r\n",
            ),
            (
                "other port kept",
                get,
                "http://127.0.0.1:8080/get",
                None,
                "GET /get HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n",
            ),
            (
                "ipv6 literal",
                get,
                "http://[::1]:8080/",
                None,
                "GET / HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n",
            ),
            (
                "query kept exactly",
                get,
                "http://h/p?a=1&b=%20x&c",
                None,
                "GET /p?a=1&b=%20x&c HTTP/1.1\r\nhost: h\r\n\r\n",
            ),
            (
                "empty query kept",
                get,
                "http://h/p?",
                None,
                "GET /p? HTTP/1.1\r\nhost: h\r\n\r\n",
            ),
            (
                "encoded path kept",
                get,
                "http://h/a%2Fb/%7e",
                None,
                "GET /a%2Fb/%7e HTTP/1.1\r\nhost: h\r\n\r\n",
            ),
            (
                "fragment dropped",
                get,
                "http://h/p#frag",
                None,
                "GET /p HTTP/1.1\r\nhost: h\r\n\r\n",
            ),
            (
                "userinfo not sent in host",
                get,
                "http://u:p@h/",
                None,
                "GET / HTTP/1.1\r\nhost: h\r\n\r\n",
            ),
            (
                "body length",
                &Method::POST,
                "http://h/post",
                Some(5),
                "POST /post HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\n",
            ),
            (
                "empty post says 0",
                &Method::POST,
                "http://h/post",
                None,
                "POST /post HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n",
            ),
            (
                "get with empty body says nothing",
                get,
                "http://h/",
                Some(0),
                "GET / HTTP/1.1\r\nhost: h\r\n\r\n",
            ),
            (
                "custom method",
                &Method::from_bytes(b"PURGE").unwrap(),
                "http://h/x",
                None,
                "PURGE /x HTTP/1.1\r\nhost: h\r\n\r\n",
            ),
        ];
        for (name, method, url, body, want) in cases {
            assert_eq!(encode(method, url, &[], *body), *want, "case {name:?}");
        }
        let with_headers = encode(
            get,
            "http://h/",
            &[("accept", "*/*"), ("x-a", "1"), ("x-a", "2")],
            None,
        );
        assert_eq!(
            with_headers,
            "GET / HTTP/1.1\r\nhost: h\r\naccept: */*\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
        let own_host = encode(get, "http://h/", &[("host", "other")], None);
        assert_eq!(own_host, "GET / HTTP/1.1\r\nhost: other\r\n\r\n");
    }

    /// A body of unknown length is chunked: `Transfer-Encoding: chunked` and no
    /// `Content-Length`, unless the request set its own `Transfer-Encoding`; each chunk's
    /// size line follows the previous chunk's CRLF.
    #[test]
    fn encodes_chunked_framing() {
        let url = Url::parse("http://h/up").unwrap();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[],
                "PUT /up HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
            (
                &[("transfer-encoding", "chunked")],
                "PUT /up HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
        ];
        for (headers, want) in cases {
            let mut map = HeaderMap::new();
            for (k, v) in *headers {
                map.append(*k, HeaderValue::from_str(v).unwrap());
            }
            let mut out = Vec::new();
            let chunked = Some(BodyLen::Chunked);
            encode_head(&mut out, &Method::PUT, &url, Target::Origin, &map, chunked).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), *want);
        }
        let mut prefix = Vec::new();
        chunk_prefix(&mut prefix, 0x1a, true);
        assert_eq!(prefix, b"1a\r\n");
        chunk_prefix(&mut prefix, 65536, false);
        assert_eq!(prefix, b"\r\n10000\r\n");
    }

    /// CR, LF and NUL never reach the wire: the URL parser strips or escapes them, and the
    /// http crate refuses them in headers.
    #[test]
    fn injection_is_impossible() {
        let url = Url::parse("http://h/a\r\nX-Injected: 1\0").unwrap();
        let line = encode(&Method::GET, url.as_str(), &[], None);
        assert!(!line.contains("\r\nX-Injected"), "{line:?}");
        assert!(!line.contains('\0'));
        assert!(HeaderValue::from_str("a\r\nb").is_err());
        assert!(HeaderValue::from_bytes(b"a\0b").is_err());
        assert!(http::HeaderName::from_bytes(b"x\r\ny").is_err());
        assert!(Method::from_bytes(b"GET /evil HTTP/1.1\r\n").is_err());
    }

    /// Userinfo becomes Basic credentials, percent-decoded.
    #[test]
    fn basic_auth() {
        let url = Url::parse("http://user:pa%20ss@h/").unwrap();
        assert_eq!(
            basic_auth_from_url(&url).unwrap(),
            format!("Basic {}", base64(b"user:pa ss"))
        );
        assert_eq!(basic_auth_from_url(&Url::parse("http://h/").unwrap()), None);
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
