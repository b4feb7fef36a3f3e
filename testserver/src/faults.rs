//! The `/fault/...` endpoints: responses that break HTTP or TCP in one deterministic way each,
//! for testing a client's error handling. The crate docs list them.

use std::io;
use std::time::Duration;

#[cfg(any(feature = "gzip", feature = "deflate"))]
use super::compress;
use super::conn::{Conn, Next};
use super::request::Request;
use super::response::{Framing, Persistence, Response};
use volley::sleep;

/// What `/fault/garbage` sends instead of a status line, before closing: bytes that no HTTP parser
/// accepts (they start with a NUL).
pub const GARBAGE: &[u8] =
    b"\x00\x01\x02\xff\xfe GARBAGE, NOT HTTP \xde\xad\xbe\xef\r\n\r\n\x00\x00\x00\x00\x00\x00";

/// The body of `/fault/chunked-trailers`, whose FNV-1a 64 checksum is its `X-Checksum` trailer.
pub(crate) const TRAILERS_BODY: &str = "chunked body with trailers\n";

/// `/fault/stall-body` sends at most this many bytes before stalling.
const MAX_STALL_AFTER: u64 = 1024 * 1024;

/// `/fault/huge-head` sends at most this many header bytes.
const MAX_HUGE_HEAD: u64 = 256 * 1024 * 1024;

/// `/fault/trickle` waits at most this long between bytes.
const MAX_TRICKLE_MS: u64 = 10_000;

/// `/fault/gzip-bomb` expands to at most this many bytes.
#[cfg(feature = "gzip")]
const MAX_BOMB: u64 = 1024 * 1024 * 1024;

/// Carries out the fault named by `segs` (the path after `/fault/`).
pub(crate) async fn dispatch(conn: &mut Conn, mut req: Request, segs: &[&str]) -> io::Result<Next> {
    let [name] = segs else {
        return conn
            .send(&req, Response::text(404, "no such fault\n"))
            .await;
    };
    if *name == "early-response" {
        // Answers without reading the body, then drains it during the lingering close.
        let code = match req.arg("code").map(|c| c.parse::<u16>()) {
            None => 413,
            Some(Ok(code @ 200..=599)) => code,
            Some(_) => 400,
        };
        let response = Response::text(code, "answered before reading the request body\n");
        return conn.send(&req, response.closing()).await;
    }
    if let Err(e) = conn.read_body(&mut req).await {
        return Ok(conn.refuse(Some(&req), e).await);
    }
    match *name {
        "stall-head" => {
            conn.discard_until_close().await;
            Ok(Next::Close)
        }
        "stall-body" => {
            let after = req
                .arg("after")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(10)
                .min(MAX_STALL_AFTER);
            let mut out = Response::new(200)
                .header("Content-Type", "application/octet-stream")
                .head(Framing::Length(2 * after), Persistence::Default);
            out.resize(out.len() + after as usize, b'*');
            conn.write_all(&out).await?;
            conn.discard_until_close().await;
            Ok(Next::Close)
        }
        "reset-body" => {
            let mut out = Response::new(200)
                .header("Content-Type", "application/octet-stream")
                .head(Framing::Length(1000), Persistence::Default);
            out.resize(out.len() + 100, b'*');
            conn.write_all(&out).await?;
            Ok(Next::Reset)
        }
        "close-before-response" => Ok(Next::Close),
        "close-on-reuse" if conn.requests > 1 => Ok(Next::Close),
        "close-on-reuse" => {
            let response = Response::text(200, "first request on this connection\n");
            conn.send(&req, response).await
        }
        "redirect-loop" => {
            let response = Response::new(302).header("Location", "/fault/redirect-loop");
            conn.send(&req, response).await
        }
        "trickle" => trickle(conn, &req).await,
        "huge-head" => {
            let size = req
                .arg("size")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1024 * 1024)
                .min(MAX_HUGE_HEAD);
            huge_head(conn, size).await?;
            Ok(Next::Close)
        }
        "garbage" => {
            conn.write_all(GARBAGE).await?;
            Ok(Next::Close)
        }
        "keep-alive-then-close" => {
            let persistence = match req.minor_version {
                0 => Persistence::KeepAlive,
                _ => Persistence::Default,
            };
            let response = Response::text(200, "the server closes this connection now\n");
            conn.write_all(&response.encode(req.method == "HEAD", persistence))
                .await?;
            Ok(Next::Close)
        }
        "bad-length" => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ten\r\n\
                  Connection: close\r\n\r\n0123456789",
            )
            .await?;
            Ok(Next::Close)
        }
        "bad-chunk" => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
                  Connection: close\r\n\r\n5\r\nhello\r\nZZ\r\nnot hex\r\n0\r\n\r\n",
            )
            .await?;
            Ok(Next::Close)
        }
        "short-body" => {
            let mut out = Response::new(200)
                .header("Content-Type", "text/plain")
                .head(Framing::Length(100), Persistence::Default);
            out.resize(out.len() + 50, b'*');
            conn.write_all(&out).await?;
            Ok(Next::Close)
        }
        "chunked-trailers" => {
            let (persistence, next) = conn.persistence(&req, false);
            let mut out = Response::new(200)
                .header("Content-Type", "text/plain")
                .header("Trailer", "X-Checksum")
                .head(Framing::Chunked, persistence);
            if req.method != "HEAD" {
                out.extend_from_slice(chunked_trailers_body().as_bytes());
            }
            conn.write_all(&out).await?;
            Ok(next)
        }
        "te-and-cl" => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
                  Content-Length: 5\r\nConnection: close\r\n\r\n\
                  6\r\nhello \r\n6\r\nworld\n\r\n0\r\n\r\n",
            )
            .await?;
            Ok(Next::Close)
        }
        "until-close" => {
            let head = Response::new(200)
                .header("Content-Type", "text/plain")
                .head(Framing::UntilClose, Persistence::Close);
            conn.write_all(&head).await?;
            conn.write_all(b"this body has no length;\n").await?;
            conn.write_all(b"it ends when the server closes the connection.\n")
                .await?;
            Ok(Next::Close)
        }
        "1xx" => {
            conn.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\n\
                  HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n",
            )
            .await?;
            let response = Response::text(200, "the final response, after 100 and 103\n");
            conn.send(&req, response).await
        }
        #[cfg(feature = "gzip")]
        "gzip-bomb" => {
            let size = req
                .arg("size")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(10 * 1024 * 1024)
                .min(MAX_BOMB);
            compress::send_encoded(conn, &req, "gzip", compress::gzip_bomb(size)).await
        }
        #[cfg(feature = "gzip")]
        "bad-gzip" => {
            let flaw = req.arg("flaw").unwrap_or_else(|| "header".to_string());
            match compress::bad_gzip(&flaw) {
                Some(body) => compress::send_encoded(conn, &req, "gzip", body).await,
                None => {
                    let why = "flaw is one of header, crc, size, data\n";
                    conn.send(&req, Response::text(400, why)).await
                }
            }
        }
        #[cfg(feature = "gzip")]
        "gzip-truncated" => {
            let mut body = compress::Coding::Gzip.compress(compress::BROKEN_TEXT.as_bytes());
            let cut = req
                .arg("cut")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(4)
                .min(body.len());
            body.truncate(body.len() - cut);
            compress::send_encoded(conn, &req, "gzip", body).await
        }
        #[cfg(feature = "deflate")]
        "bad-deflate" => {
            let body = b"\xff\xfe these bytes are not deflate data\n".to_vec();
            compress::send_encoded(conn, &req, "deflate", body).await
        }
        _ => {
            conn.send(&req, Response::text(404, "no such fault\n"))
                .await
        }
    }
}

/// The wire form of `/fault/chunked-trailers`' body: [`TRAILERS_BODY`] in three chunks with
/// extensions, a last chunk with an extension, and the `X-Checksum` trailer.
fn chunked_trailers_body() -> String {
    let (a, rest) = TRAILERS_BODY.split_at(8);
    let (b, c) = rest.split_at(5);
    format!(
        "{:x};name=value\r\n{a}\r\n{:x};quoted=\"a;b\"\r\n{b}\r\n{:x}\r\n{c}\r\n\
         0;last\r\nX-Checksum: fnv1a64={:016x}\r\n\r\n",
        a.len(),
        b.len(),
        c.len(),
        fnv1a64(TRAILERS_BODY.as_bytes())
    )
}

/// FNV-1a, 64-bit.
pub(crate) fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `/fault/trickle`: a short response whose head is written one byte per interval; the body
/// follows in one write.
async fn trickle(conn: &mut Conn, req: &Request) -> io::Result<Next> {
    let interval_ms = req
        .arg("interval_ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(100)
        .min(MAX_TRICKLE_MS);
    let interval = Duration::from_millis(interval_ms);
    let (persistence, next) = conn.persistence(req, false);
    let connection = match persistence {
        Persistence::Close => "Connection: close\r\n",
        Persistence::KeepAlive => "Connection: keep-alive\r\n",
        Persistence::Default => "",
    };
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n{connection}\r\n");
    for (i, byte) in head.bytes().enumerate() {
        if i > 0 {
            sleep(interval).await;
        }
        conn.write_all(&[byte]).await?;
    }
    if req.method != "HEAD" {
        conn.write_all(b"trickle\n").await?;
    }
    Ok(next)
}

/// `/fault/huge-head`: a 200 whose `X-Huge` header value is `size` bytes of `a`, written in
/// 16 KiB pieces, then `Content-Length: 2`, `Connection: close` and the body `ok`.
async fn huge_head(conn: &mut Conn, size: u64) -> io::Result<()> {
    const PIECE: usize = 16 * 1024;
    conn.write_all(b"HTTP/1.1 200 OK\r\nServer: volley-httpbin\r\nX-Huge: ")
        .await?;
    let piece = vec![b'a'; PIECE];
    let mut left = size;
    while left > 0 {
        let n = left.min(PIECE as u64) as usize;
        conn.write_all(&piece[..n]).await?;
        left -= n as u64;
    }
    conn.write_all(b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn trailers_body_decodes() {
        use crate::request::ChunkedDecoder;
        let wire = chunked_trailers_body();
        let mut body = Vec::new();
        let (used, done) = ChunkedDecoder::new()
            .decode(wire.as_bytes(), &mut body, 1000)
            .unwrap();
        assert!(done);
        assert_eq!(used, wire.len());
        assert_eq!(body, TRAILERS_BODY.as_bytes());
    }

    #[test]
    fn garbage_is_not_http() {
        assert!(!GARBAGE.starts_with(b"HTTP/"));
        let mut headers = [httparse::EMPTY_HEADER; 4];
        assert!(httparse::Response::new(&mut headers)
            .parse(GARBAGE)
            .is_err());
    }
}
