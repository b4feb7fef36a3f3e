//! Compressed bodies, end to end: the client asks for gzip and deflate (and br and zstd with
//! those features), decodes what comes by its `Content-Encoding` as the body is read, drops
//! `Content-Encoding` and `Content-Length` from a decoded response, leaves everything else as it
//! came, counts `max_body_size` on decoded bytes, and reports broken streams as decode errors.
//!
//! Servers: the embedded one (`/gzip`, `/deflate`, `/bytes-gzip/{n}`, the compression faults)
//! and plain `std::net` threads that write exactly the bytes under test, in pieces as small as
//! one byte. Every test takes one lock, so that the memory measurement of the bomb test
//! (`VmHWM` of this process) sees one test at a time, and runs under a watchdog.
//!
//! The brotli and zstd streams in `tests/data/` come from real encoders, for the text of
//! [`lines`]: `lines.br` from the `brotli` crate (quality 11, window 22), `lines.zst` from
//! `zstd -19 < lines.txt` (an 8 MiB window, no content size, a checksum), `zeros.br` and
//! `zeros.zst` from 10 MiB of zeros (brotli quality 11; `zstd -3`, 80 RLE blocks), and
//! `window16m.zst` from `zstd --long=24` on 1,000 bytes of the text (a 16 MiB window).
#![cfg(all(feature = "gzip", feature = "deflate"))]

mod util;

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use flate2::Compression;
use serde_json::Value;
use util::{watchdog, with_server};
use volley::{Client, ClientBuilder, Error, ErrorKind, Limit, Phase, Response};
use volley_testserver::{seeded_bytes, Server};

/// The most bytes one `chunk()` of a decoded body may hold.
const MAX_CHUNK: usize = 64 * 1024;

const MIB: usize = 1 << 20;

/// Held by every test of this file: memory is measured with no other test running.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` alone, under a watchdog, on a fresh runtime with a fresh embedded server, bounded
/// to 60 s.
fn run<F, Fut>(name: &'static str, f: F)
where
    F: FnOnce(Server) -> Fut,
    Fut: Future<Output = ()>,
{
    let _serial = serial();
    let _dog = watchdog(name, 90);
    with_server(f);
}

/// A client whose every wait is bounded, so that a hang fails fast.
fn builder() -> ClientBuilder {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
}

/// The `Accept-Encoding` the default client sends, by the features compiled in.
fn default_accept_encoding() -> String {
    let mut codings = vec!["gzip", "deflate"];
    if cfg!(feature = "brotli") {
        codings.push("br");
    }
    if cfg!(feature = "zstd") {
        codings.push("zstd");
    }
    codings.join(", ")
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e:#}): {}", String::from_utf8_lossy(bytes)))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The text of the brotli and zstd test streams: 2,000 numbered lines, 105,821 bytes.
fn lines() -> Vec<u8> {
    let mut text = String::new();
    for i in 0u64..2000 {
        text.push_str(&format!(
            "{i:05} the quick brown fox jumps over the lazy dog {}\n",
            i * 7 % 101
        ));
    }
    text.into_bytes()
}

/// Reads the whole body with `chunk()`, checking that no piece is empty or over
/// [`MAX_CHUNK`]; returns the body and the number of pieces.
async fn read_chunks(resp: &mut Response) -> Result<(Vec<u8>, usize), Error> {
    let mut body = Vec::new();
    let mut pieces = 0;
    while let Some(chunk) = resp.chunk().await? {
        assert!(
            !chunk.is_empty() && chunk.len() <= MAX_CHUNK,
            "{}",
            chunk.len()
        );
        body.extend_from_slice(&chunk);
        pieces += 1;
    }
    Ok((body, pieces))
}

/// Asserts that `err` is a decode error whose message names `coding` and says `why`.
fn assert_decode_error(err: &Error, coding: &str, why: &str) {
    let ErrorKind::Decode(message) = err.kind() else {
        panic!("not a decode error: {err:#}");
    };
    assert!(err.is_decode());
    assert_eq!(err.phase(), Some(Phase::ReadBody));
    assert!(
        message.starts_with(&format!("invalid {coding} body: ")) && message.contains(why),
        "{err:#}"
    );
    assert!(
        err.to_string()
            .starts_with("cannot decode response body from http://"),
        "{err:#}"
    );
}

// Plain-thread servers.

/// What a raw server does with one connection, after reading the request head.
type Reply = Box<dyn FnOnce(&mut TcpStream) + Send>;

/// A plain-thread server for `replies.len()` connections, one after another: for each, it
/// reads the request head, sends it on the returned channel, and hands the stream to the
/// reply, then closes it. It gives up waiting for a connection after 10 s; writes time out
/// after 5 s.
fn raw_server(replies: Vec<Reply>) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (heads, seen) = mpsc::channel();
    thread::spawn(move || {
        for reply in replies {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
                    Err(_) => return,
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_nodelay(true).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream
                .set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let _ = heads.send(read_head(&mut stream));
            reply(&mut stream);
        }
    });
    (addr, seen)
}

/// Reads a request head (up to 64 KiB), byte by byte.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A 200 with `headers` (lines ending in CRLF), `body` framed by `Content-Length`, and a close.
fn response(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A reply that writes `bytes` in pieces of 1, 2, 3, ... 7, 1, 2, ... bytes, pausing 1 ms
/// after each of the first `slow` pieces so that they arrive in reads of their own.
fn in_pieces(bytes: Vec<u8>, slow: usize) -> Reply {
    Box::new(move |s: &mut TcpStream| {
        let mut at = 0;
        let mut size = 1;
        let mut piece = 0;
        while at < bytes.len() {
            let end = (at + size).min(bytes.len());
            if s.write_all(&bytes[at..end]).is_err() {
                return;
            }
            at = end;
            size = size % 7 + 1;
            piece += 1;
            if piece < slow {
                thread::sleep(Duration::from_millis(1));
            }
        }
    })
}

/// A reply that writes `bytes` at once.
fn whole(bytes: Vec<u8>) -> Reply {
    Box::new(move |s: &mut TcpStream| {
        let _ = s.write_all(&bytes);
    })
}

// Memory, as tests/security.rs measures it.

/// Resets the peak resident set size (`VmHWM`) to the current one; false if the kernel
/// refused.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

// The tests.

/// `/gzip` and `/deflate` arrive decoded, as httpbin's JSON, without `Content-Encoding` and
/// `Content-Length`; the request carried the default `Accept-Encoding`. A redirect to `/gzip`
/// ends decoded too, and a HEAD of `/gzip` keeps its headers.
#[test]
fn gzip_and_deflate_documents_arrive_decoded_without_their_length() {
    run("documents", |server| async move {
        let client = builder().build();
        for (path, flag) in [
            ("/gzip", "gzipped"),
            ("/deflate", "deflated"),
            ("/redirect-to?url=/gzip", "gzipped"),
        ] {
            let resp = client.get(server.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let headers = resp.headers();
            assert!(
                headers.get("content-encoding").is_none(),
                "{path}: {headers:?}"
            );
            assert!(
                headers.get("content-length").is_none(),
                "{path}: {headers:?}"
            );
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(resp.content_length(), None, "{path}");
            let body = json(&resp.bytes().await.unwrap());
            assert_eq!(body[flag], true, "{path}: {body}");
            assert_eq!(body["method"], "GET");
            assert_eq!(body["origin"], "127.0.0.1");
            assert_eq!(
                body["headers"]["Accept-Encoding"],
                default_accept_encoding(),
                "{body}"
            );
        }
        // The JSON of text() is the same document.
        let text = client
            .get(server.url("/gzip"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(json(text.as_bytes())["gzipped"], true);
        // HEAD: no body, nothing decoded, the headers as sent.
        let head = client.head(server.url("/gzip")).send().await.unwrap();
        assert_eq!(head.headers()["content-encoding"], "gzip");
        let length: u64 = head.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(length > 20, "{length}");
        assert_eq!(head.content_length(), Some(0));
        assert!(head.bytes().await.unwrap().is_empty());
        assert_eq!(client.idle_connections(), 1);
    });
}

/// Seeded bytes (incompressible) through gzip, zlib and raw deflate come back exactly, read
/// whole or with `chunk()`, in one piece per 64 KiB or in chunks of a few bytes.
#[test]
fn seeded_bytes_round_trip_through_gzip_and_deflate() {
    run("round trips", |server| async move {
        let client = builder().build();
        for (path, len, piece) in [
            ("/bytes-gzip", 1_000_000, 65_536),
            ("/bytes-deflate", 1_000_000, 65_536),
            ("/bytes-deflate", 1_000_000, 10_000),
            ("/bytes-gzip", 30_000, 1),
            ("/bytes-deflate", 30_000, 3),
        ] {
            for raw in [false, true] {
                if raw && path == "/bytes-gzip" {
                    continue;
                }
                let seed = len as u64 + piece as u64;
                let url = server.url(&format!("{path}/{len}?seed={seed}&piece={piece}&raw={raw}"));
                let want = seeded_bytes(seed, len);
                let whole = client.get(&url).send().await.unwrap();
                assert!(whole.headers().get("content-encoding").is_none());
                let body = whole.bytes().await.unwrap();
                assert!(body == want, "{url}: {} bytes", body.len());
                let mut resp = client.get(&url).send().await.unwrap();
                let (body, pieces) = read_chunks(&mut resp).await.unwrap();
                assert!(body == want, "{url} by chunks: {} bytes", body.len());
                assert!(pieces >= len / MAX_CHUNK, "{url}: {pieces} pieces");
            }
        }
        // Every response was read to its end: the connection is back in the pool.
        assert_eq!(client.idle_connections(), 1);
    });
}

/// gzip, zlib and raw deflate bodies written one to seven bytes at a time, the first 60
/// pieces in reads of their own (the gzip header, zlib header and first block split
/// everywhere), decode to the same bytes; so do two gzip members one after the other.
#[test]
fn streams_written_in_tiny_pieces_decode_exactly() {
    run("tiny pieces", |_server| async move {
        let data: Vec<u8> = lines().into_iter().take(40_000).collect();
        let mut two_members = gzip(&data[..1000]);
        two_members.extend_from_slice(&gzip(&data[1000..]));
        let cases = [
            ("gzip", gzip(&data)),
            ("x-gzip", gzip(&data)),
            ("deflate", zlib(&data)),
            ("deflate", raw_deflate(&data)),
            ("gzip", two_members),
        ];
        let replies = cases
            .iter()
            .map(|(coding, stream)| {
                let head = format!("Content-Encoding: {coding}\r\n");
                in_pieces(response(&head, stream), 60)
            })
            .collect();
        let (addr, _) = raw_server(replies);
        let client = builder().build();
        for (coding, stream) in &cases {
            let mut resp = client.get(format!("http://{addr}/")).send().await.unwrap();
            let (body, _) = read_chunks(&mut resp).await.unwrap();
            assert!(
                body == data,
                "{coding}, {} bytes on the wire: {} bytes decoded",
                stream.len(),
                body.len()
            );
        }
    });
}

/// A request that sets its own `Accept-Encoding`, or a client whose default headers do, sends
/// that one and gets the body as it came, headers and all. A `Range` request sends none.
#[test]
fn own_accept_encoding_turns_decoding_off() {
    run("own accept-encoding", |server| async move {
        let raw_gzip = |resp: &Response| {
            assert_eq!(resp.headers()["content-encoding"], "gzip");
            resp.content_length().expect("a content-length")
        };
        let client = builder().build();
        let resp = client
            .get(server.url("/gzip"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        let length = raw_gzip(&resp);
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len() as u64, length);
        assert_eq!(&body[..2], b"\x1f\x8b", "the gzip bytes themselves");

        let mut defaults = volley::HeaderMap::new();
        defaults.insert("accept-encoding", "gzip;q=1, identity".parse().unwrap());
        let own = builder().default_headers(defaults).build();
        let resp = own.get(server.url("/gzip")).send().await.unwrap();
        raw_gzip(&resp);
        let body = resp.bytes().await.unwrap();
        assert_eq!(&body[..2], b"\x1f\x8b");

        // What the server saw.
        let seen = |client: Client, range: bool| {
            let url = server.url("/headers");
            async move {
                let mut request = client.get(url);
                if range {
                    request = request.header("range", "bytes=0-");
                }
                let body = request.send().await.unwrap().bytes().await.unwrap();
                json(&body)["headers"]["Accept-Encoding"].clone()
            }
        };
        assert_eq!(seen(client.clone(), false).await, default_accept_encoding());
        assert_eq!(seen(own.clone(), false).await, "gzip;q=1, identity");
        assert_eq!(seen(client.clone(), true).await, Value::Null);
        assert_eq!(seen(own, true).await, "gzip;q=1, identity");
    });
}

/// `gzip(false)` and `deflate(false)` take each coding out of `Accept-Encoding` and out of
/// decoding; with both off there is no `Accept-Encoding` at all and a gzip body stays gzip.
#[test]
fn builder_switches_turn_each_coding_off() {
    run("switches", |server| async move {
        let accept = |client: Client| {
            let url = server.url("/headers");
            async move {
                let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
                json(&body)["headers"]["Accept-Encoding"].clone()
            }
        };
        let no_gzip = builder().gzip(false).build();
        let no_deflate = builder().deflate(false).build();
        let neither = builder().gzip(false).deflate(false);
        #[cfg(feature = "brotli")]
        let neither = neither.brotli(false);
        #[cfg(feature = "zstd")]
        let neither = neither.zstd(false);
        let neither = neither.build();
        let without = |coding: &str| {
            default_accept_encoding()
                .split(", ")
                .filter(|c| *c != coding)
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert_eq!(accept(no_gzip.clone()).await, without("gzip"));
        assert_eq!(accept(no_deflate.clone()).await, without("deflate"));
        assert_eq!(accept(neither.clone()).await, Value::Null);
        // A coding switched off is not decoded even if the server sends it anyway.
        for (client, path, coding, decoded) in [
            (&no_gzip, "/gzip", "gzip", false),
            (&no_gzip, "/deflate", "deflate", true),
            (&no_deflate, "/deflate", "deflate", false),
            (&neither, "/gzip", "gzip", false),
        ] {
            let resp = client.get(server.url(path)).send().await.unwrap();
            let encoding = resp.headers().get("content-encoding").cloned();
            let body = resp.bytes().await.unwrap();
            match decoded {
                true => {
                    assert_eq!(encoding, None);
                    assert_eq!(body[0], b'{');
                }
                false => {
                    assert_eq!(encoding.unwrap(), coding);
                    assert_ne!(body[0], b'{');
                }
            }
        }
    });
}

/// HEAD, 204, 304 and a `Content-Length: 0` body are not decoded: their headers stay as sent
/// and the body is empty, though each says `Content-Encoding: gzip`. An empty chunked body
/// labelled gzip is an empty body.
#[test]
fn bodiless_and_empty_responses_are_left_alone() {
    run("bodiless", |_server| async move {
        let (addr, _) = raw_server(vec![
            whole(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 1234\r\n\r\n".to_vec()),
            whole(b"HTTP/1.1 204 No Content\r\nContent-Encoding: gzip\r\n\r\n".to_vec()),
            whole(
                b"HTTP/1.1 304 Not Modified\r\nContent-Encoding: gzip\r\nContent-Length: 1234\r\n\r\n"
                    .to_vec(),
            ),
            whole(response("Content-Encoding: gzip\r\n", b"")),
            whole(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    .to_vec(),
            ),
        ]);
        let client = builder().build();
        let url = format!("http://{addr}/");
        let head = client.head(&url).send().await.unwrap();
        let no_content = client.get(&url).send().await.unwrap();
        assert_eq!(no_content.status(), 204);
        let not_modified = client.get(&url).send().await.unwrap();
        assert_eq!(not_modified.status(), 304);
        let empty = client.get(&url).send().await.unwrap();
        for (what, resp, length) in [
            ("HEAD", head, Some("1234")),
            ("204", no_content, None),
            ("304", not_modified, Some("1234")),
            ("Content-Length: 0", empty, Some("0")),
        ] {
            assert_eq!(resp.headers()["content-encoding"], "gzip", "{what}");
            let sent = resp
                .headers()
                .get("content-length")
                .map(|v| v.to_str().unwrap());
            assert_eq!(sent, length, "{what}");
            assert_eq!(resp.content_length(), Some(0), "{what}");
            assert!(resp.bytes().await.unwrap().is_empty(), "{what}");
        }
        let chunked = client.get(&url).send().await.unwrap();
        assert!(chunked.bytes().await.unwrap().is_empty());
    });
}

/// Codings the client does not decode pass through with their headers: an unknown one
/// (`compress`), two stacked (`gzip, br`), and `identity`.
#[test]
fn unknown_and_stacked_codings_pass_through() {
    run("pass through", |server| async move {
        let client = builder().build();
        for coding in ["compress", "gzip, br", "identity"] {
            let path = format!(
                "/response-headers?Content-Encoding={}",
                coding.replace(", ", "%2C%20")
            );
            let resp = client.get(server.url(&path)).send().await.unwrap();
            assert_eq!(resp.headers()["content-encoding"], coding);
            let length = resp.content_length().expect("the content-length is kept");
            assert!(resp.headers().contains_key("content-length"));
            let body = resp.bytes().await.unwrap();
            assert_eq!(body.len() as u64, length);
            assert_eq!(json(&body)["Content-Encoding"], coding, "{coding}");
        }
        // Without the brotli feature, br is a coding like any unknown one.
        #[cfg(not(feature = "brotli"))]
        {
            let (addr, seen) = raw_server(vec![whole(response(
                "Content-Encoding: br\r\n",
                b"\x0b\x02\x80hello\x03",
            ))]);
            let resp = client.get(format!("http://{addr}/")).send().await.unwrap();
            assert!(!seen.recv().unwrap().to_ascii_lowercase().contains(", br"));
            assert_eq!(resp.headers()["content-encoding"], "br");
            assert_eq!(&resp.bytes().await.unwrap()[..], b"\x0b\x02\x80hello\x03");
        }
    });
}

/// Corrupt and truncated streams are decode errors naming the coding and the flaw, whether
/// read whole or by chunks, and never a short `Ok`.
#[test]
fn corrupt_and_truncated_streams_are_decode_errors() {
    run("corrupt", |server| async move {
        let client = builder().build();
        for (path, coding, why) in [
            (
                "/fault/bad-gzip?flaw=header",
                "gzip",
                "not gzip (bad magic bytes)",
            ),
            ("/fault/bad-gzip?flaw=crc", "gzip", "CRC-32 mismatch"),
            (
                "/fault/bad-gzip?flaw=size",
                "gzip",
                "length mismatch in the trailer",
            ),
            ("/fault/bad-gzip?flaw=data", "gzip", "invalid deflate data"),
            ("/fault/gzip-truncated", "gzip", "truncated in the trailer"),
            (
                "/fault/gzip-truncated?cut=8",
                "gzip",
                "truncated in the trailer",
            ),
            (
                "/fault/gzip-truncated?cut=15",
                "gzip",
                "truncated in the compressed data",
            ),
            ("/fault/bad-deflate", "deflate", "invalid deflate data"),
        ] {
            let err = client
                .get(server.url(path))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap_err();
            assert_decode_error(&err, coding, why);
            assert!(err.to_string().contains(path), "{err:#}");
            let mut resp = client.get(server.url(path)).send().await.unwrap();
            let err = read_chunks(&mut resp).await.unwrap_err();
            assert_decode_error(&err, coding, why);
            // Once failed, the body stays ended.
            assert!(resp.chunk().await.unwrap().is_none());
        }
        // A gzip body that a raw server cuts short inside its trailer, and one with a chunked
        // body that ends right after its header.
        let stream = gzip(b"cut short");
        let mut chunked = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\
                            Transfer-Encoding: chunked\r\n\r\na\r\n"
            .to_vec();
        chunked.extend_from_slice(&stream[..10]);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let (addr, _) = raw_server(vec![
            whole(response(
                "Content-Encoding: gzip\r\n",
                &stream[..stream.len() - 3],
            )),
            whole(chunked),
        ]);
        for why in [
            "truncated in the trailer",
            "truncated in the compressed data",
        ] {
            let err = client
                .get(format!("http://{addr}/"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap_err();
            assert_decode_error(&err, "gzip", why);
        }
    });
}

/// A gzip bomb (64 MiB of zeros in 64 KB) read with `max_body_size` 1 MiB fails with the body
/// limit, whole or by chunks, after at most 1 MiB of decoded data, and the process's peak
/// resident memory grows by a few MiB at most, not 64. The embedded `/fault/gzip-bomb` gives
/// the same error.
#[test]
fn a_gzip_bomb_stops_at_max_body_size_in_bounded_memory() {
    run("bomb", |server| async move {
        const LIMIT: u64 = MIB as u64;
        const BOMB: usize = 64 * MIB;
        let bomb = {
            let zeros = vec![0; MIB];
            let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::new(9));
            for _ in 0..BOMB / MIB {
                e.write_all(&zeros).unwrap();
            }
            e.finish().unwrap()
        };
        assert!(bomb.len() < BOMB / 500, "{} bytes", bomb.len());
        let wire = response("Content-Encoding: gzip\r\n", &bomb);
        drop(bomb);
        let (addr, _) = raw_server(vec![
            whole(response("", b"warm")),
            whole(wire.clone()),
            whole(wire),
        ]);
        let client = builder().max_body_size(LIMIT).build();
        let url = format!("http://{addr}/");
        // Warm up, so that the runtime's and the allocator's first buffers are not counted.
        let warm = client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&warm[..], b"warm");

        let before = util::status_bytes("VmRSS:");
        let hwm = reset_peak_rss();
        if !hwm {
            util::skip(
                "compression: peak memory of a bomb",
                "/proc/self/clear_refs is not writable: the peak is sampled, not the kernel's high-water mark",
            );
        }
        let started = Instant::now();
        let err = client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap_err();
        let took = started.elapsed();
        let mut peak = util::status_bytes("VmRSS:");
        let expected = ErrorKind::TooLarge {
            what: Limit::Body,
            limit: LIMIT,
        };
        if hwm {
            peak = peak.max(util::status_bytes("VmHWM:"));
        }
        let grown = peak.saturating_sub(before);
        eprintln!(
            "gzip bomb of {BOMB} bytes, limit {LIMIT}: {err:#} after {took:?}; VmRSS {} KiB \
             before, {} KiB at the peak{}: +{} KiB",
            before / 1024,
            peak / 1024,
            if hwm { " (VmHWM)" } else { " (sampled)" },
            grown / 1024
        );
        assert!(
            grown < 8 * MIB as u64,
            "resident memory grew by {grown} bytes"
        );
        assert_eq!(err.kind(), &expected, "{err:#}");

        let mut resp = client.get(&url).send().await.unwrap();
        let mut delivered = 0;
        let err = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    assert!(chunk.len() <= MAX_CHUNK);
                    assert!(chunk.iter().all(|&b| b == 0));
                    delivered += chunk.len() as u64;
                }
                Ok(None) => panic!("the bomb ended after {delivered} bytes"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), &expected, "{err:#}");
        assert!(delivered <= LIMIT, "{delivered}");

        let err = client
            .get(server.url("/fault/gzip-bomb"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &expected, "{err:#}");
        // Exactly at the limit is allowed.
        let exact = client
            .get(server.url(&format!("/fault/gzip-bomb?size={LIMIT}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(exact.len() as u64, LIMIT);
    });
}

/// `chunk()` decodes as the body arrives: 8 MiB of gzip in many network reads comes out in
/// pieces of at most 64 KiB, and so does an 8 MiB gzip bomb, whose few compressed reads each
/// expand to megabytes.
#[test]
fn chunk_yields_decoded_pieces_of_at_most_64_kib() {
    run("chunks", |server| async move {
        let client = builder().build();
        let len = 8 * MIB;
        let url = server.url(&format!("/bytes-gzip/{len}?seed=99"));
        let mut resp = client.get(&url).send().await.unwrap();
        let (body, pieces) = read_chunks(&mut resp).await.unwrap();
        assert!(body == seeded_bytes(99, len), "{} bytes", body.len());
        assert!(pieces >= len / MAX_CHUNK, "{pieces} pieces");
        let url = server.url(&format!("/fault/gzip-bomb?size={len}"));
        let mut resp = client.get(&url).send().await.unwrap();
        let (body, pieces) = read_chunks(&mut resp).await.unwrap();
        assert_eq!(body.len(), len);
        assert!(body.iter().all(|&b| b == 0));
        assert!(pieces >= len / MAX_CHUNK, "{pieces} pieces");
    });
}

/// The first half of a gzip stream is decoded and delivered before the server sends the
/// second: nothing waits for the whole compressed body.
#[test]
fn chunk_delivers_before_the_stream_ends() {
    run("incremental", |_server| async move {
        let first = seeded_bytes(1, 300_000);
        let second = seeded_bytes(2, 300_000);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        encoder.write_all(&first).unwrap();
        encoder.flush().unwrap(); // a sync flush: all of `first` can be decoded
        let head_part = std::mem::take(encoder.get_mut());
        encoder.write_all(&second).unwrap();
        let tail_part = encoder.finish().unwrap();
        let (go, gate) = mpsc::channel::<()>();
        let reply: Reply = Box::new(move |s: &mut TcpStream| {
            let chunk = |data: &[u8]| {
                let mut out = format!("{:x}\r\n", data.len()).into_bytes();
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
                out
            };
            let head = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\
                        Transfer-Encoding: chunked\r\n\r\n";
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&chunk(&head_part));
            // The rest only once the client has decoded the first half (or after 10 s).
            let _ = gate.recv_timeout(Duration::from_secs(10));
            let _ = s.write_all(&chunk(&tail_part));
            let _ = s.write_all(b"0\r\n\r\n");
        });
        let (addr, _) = raw_server(vec![reply]);
        let client = builder().build();
        let mut resp = client.get(format!("http://{addr}/")).send().await.unwrap();
        let mut body = Vec::new();
        let early = volley::timeout(Duration::from_secs(5), async {
            while body.len() < first.len() {
                let chunk = resp.chunk().await.unwrap().expect("more of the body");
                body.extend_from_slice(&chunk);
            }
        })
        .await;
        assert!(
            early.is_ok(),
            "only {} decoded bytes before the rest of the stream was sent",
            body.len()
        );
        assert!(body == first);
        go.send(()).unwrap();
        let (rest, _) = read_chunks(&mut resp).await.unwrap();
        assert!(rest == second);
    });
}

/// A batch's results carry decoded bodies, and `body_len` is the decoded length, kept or not;
/// the body limit of a batch's client counts decoded bytes too.
#[test]
fn batches_get_decoded_bodies() {
    run("batch", |server| async move {
        let urls = vec![
            server.url("/gzip"),
            server.url("/deflate"),
            server.url("/bytes-gzip/200000?seed=5"),
            server.url("/bytes-deflate/200000?seed=6&raw=true"),
        ];
        let client = builder().max_body_size(MIB as u64).build();
        for keep in [true, false] {
            let report = client.fetch_all(urls.clone()).keep_bodies(keep).run().await;
            assert_eq!(report.summary.ok, 4, "{:?}", report.summary);
            for result in &report.results {
                let fetched = result.outcome.as_ref().unwrap();
                assert!(fetched.headers.get("content-encoding").is_none());
                let want = match result.index {
                    2 => seeded_bytes(5, 200_000),
                    3 => seeded_bytes(6, 200_000),
                    _ => Vec::new(),
                };
                if result.index >= 2 {
                    assert_eq!(fetched.body_len, 200_000);
                    if keep {
                        assert!(fetched.body == want);
                    }
                } else {
                    assert!(fetched.body_len > 100);
                    if keep {
                        assert_eq!(fetched.body.len() as u64, fetched.body_len);
                        assert_eq!(fetched.body[0], b'{');
                    }
                }
                if !keep {
                    assert!(fetched.body.is_empty());
                }
            }
        }
        let report = client
            .fetch_all(vec![server.url("/fault/gzip-bomb")])
            .run()
            .await;
        let err = report.results[0].outcome.as_ref().unwrap_err();
        let limit = MIB as u64;
        let expected = ErrorKind::TooLarge {
            what: Limit::Body,
            limit,
        };
        assert_eq!(err.kind(), &expected);
    });
}

/// br: the embedded `/brotli`, and a real brotli stream in tiny pieces, decode; a brotli bomb
/// stops at the limit; truncated and corrupt streams are decode errors.
#[cfg(feature = "brotli")]
#[test]
fn brotli_bodies_decode() {
    run("brotli", |server| async move {
        let client = builder().build();
        let resp = client.get(server.url("/brotli")).send().await.unwrap();
        assert!(resp.headers().get("content-encoding").is_none());
        let body = json(&resp.bytes().await.unwrap());
        assert_eq!(body["brotli"], true);
        assert_eq!(
            body["headers"]["Accept-Encoding"],
            default_accept_encoding()
        );

        let text = include_bytes!("data/lines.br");
        let bomb = include_bytes!("data/zeros.br");
        let mut corrupt = text.to_vec();
        corrupt[100] ^= 0x55;
        let br = "Content-Encoding: br\r\n";
        let (addr, _) = raw_server(vec![
            in_pieces(response(br, text), 100),
            whole(response(br, bomb)),
            whole(response(br, &text[..text.len() - 10])),
            whole(response(br, &corrupt)),
        ]);
        let url = format!("http://{addr}/");
        let mut resp = client.get(&url).send().await.unwrap();
        let (body, _) = read_chunks(&mut resp).await.unwrap();
        assert!(body == lines());
        let limited = builder().max_body_size(MIB as u64).build();
        let err = limited.get(&url).send().await.unwrap().bytes().await;
        let err = err.unwrap_err();
        let expected = ErrorKind::TooLarge {
            what: Limit::Body,
            limit: MIB as u64,
        };
        assert_eq!(err.kind(), &expected, "{err:#}");
        let err = client.get(&url).send().await.unwrap().bytes().await;
        assert_decode_error(&err.unwrap_err(), "br", "truncated");
        let err = client.get(&url).send().await.unwrap().bytes().await;
        assert_decode_error(&err.unwrap_err(), "br", "");
    });
}

/// zstd: the embedded `/zstd`, libzstd's streams in tiny pieces, several frames with a
/// skippable one between, and a bomb of RLE blocks decode or stop at the limit; a window over
/// 8 MiB, a wrong checksum and truncation are decode errors.
#[cfg(feature = "zstd")]
#[test]
fn zstd_bodies_decode() {
    run("zstd", |server| async move {
        let client = builder().build();
        let resp = client.get(server.url("/zstd")).send().await.unwrap();
        assert!(resp.headers().get("content-encoding").is_none());
        let body = json(&resp.bytes().await.unwrap());
        assert_eq!(body["zstd"], true);

        let text = include_bytes!("data/lines.zst");
        let bomb = include_bytes!("data/zeros.zst");
        let big_window = include_bytes!("data/window16m.zst");
        let mut frames = text.to_vec();
        frames.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        frames.extend_from_slice(text);
        let mut bad_checksum = text.to_vec();
        let last = bad_checksum.len() - 1;
        bad_checksum[last] ^= 1;
        let zstd = "Content-Encoding: zstd\r\n";
        let (addr, _) = raw_server(vec![
            in_pieces(response(zstd, text), 100),
            whole(response(zstd, &frames)),
            whole(response(zstd, bomb)),
            whole(response(zstd, bomb)),
            whole(response(zstd, big_window)),
            whole(response(zstd, &bad_checksum)),
            whole(response(zstd, &text[..text.len() - 10])),
        ]);
        let url = format!("http://{addr}/");
        let mut resp = client.get(&url).send().await.unwrap();
        let (body, _) = read_chunks(&mut resp).await.unwrap();
        assert!(body == lines());
        let body = client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(body == [lines(), lines()].concat());
        let mut resp = client.get(&url).send().await.unwrap();
        let (body, pieces) = read_chunks(&mut resp).await.unwrap();
        assert_eq!(body.len(), 10 * MIB);
        assert!(pieces >= 10 * MIB / MAX_CHUNK);
        let limited = builder().max_body_size(MIB as u64).build();
        let err = limited.get(&url).send().await.unwrap().bytes().await;
        let expected = ErrorKind::TooLarge {
            what: Limit::Body,
            limit: MIB as u64,
        };
        assert_eq!(err.unwrap_err().kind(), &expected);
        for why in ["window", "checksum mismatch", "truncated"] {
            let err = client.get(&url).send().await.unwrap().bytes().await;
            assert_decode_error(&err.unwrap_err(), "zstd", why);
        }
    });
}
