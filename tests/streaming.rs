//! Streaming both ways: response bodies in large pieces without copies (and, with the
//! `futures-io` feature, as an `AsyncRead`), and request bodies streamed from a reader, a
//! channel or an `AsyncRead`, with their failures typed.

mod util;

use std::io::Read;

use bytes::Bytes;
use volley::{Body, BodyFailure, Client, ErrorKind, Runtime};
use volley_testserver::{seeded_bytes, Server};

/// FNV-1a 64, fed piece by piece: what `/count` answers for the bytes it received.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A reader of `len` bytes of a fixed pattern, made as it is read (nothing held).
struct Pattern {
    left: u64,
    offset: u64,
}

impl Pattern {
    fn new(len: u64) -> Pattern {
        Pattern {
            left: len,
            offset: 0,
        }
    }

    fn byte(i: u64) -> u8 {
        (i % 251) as u8 ^ (i >> 12) as u8
    }

    /// The hash `/count` should report for `len` bytes of the pattern.
    fn hash(len: u64) -> String {
        let mut fnv = Fnv::new();
        let mut reader = Pattern::new(len);
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            fnv.update(&buf[..n]);
        }
        format!("{:016x}", fnv.0)
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = Pattern::byte(self.offset + i as u64);
        }
        self.offset += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The `(length, fnv1a64)` that `/count` answered.
fn counted(json: &str) -> (u64, String) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    (
        v["length"].as_u64().unwrap(),
        v["fnv1a64"].as_str().unwrap().to_owned(),
    )
}

/// Regression (issue 15): `chunk()` gave pieces of one 2 KiB read, each copied into a new
/// `Vec`: 25,600 calls for 50 MiB. The read buffer now grows under a fast sender and pieces
/// are split off it, so the same body takes a few hundred to a few thousand calls.
#[test]
fn a_large_body_comes_in_large_chunks() {
    let _watchdog = util::watchdog("a_large_body_comes_in_large_chunks", 120);
    const SIZE: usize = 50 << 20;
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = Client::new();
        let url = server.url(&format!("/bytes/{SIZE}?seed=7"));
        let mut response = client.get(url).send().await.unwrap();
        let (mut calls, mut total, mut largest) = (0usize, 0usize, 0usize);
        let expected = seeded_bytes(7, 4096);
        while let Some(piece) = response.chunk().await.unwrap() {
            if total < 4096 {
                let end = (4096 - total).min(piece.len());
                assert_eq!(&piece[..end], &expected[total..total + end]);
            }
            calls += 1;
            total += piece.len();
            largest = largest.max(piece.len());
        }
        eprintln!("{calls} chunk() calls for {SIZE} bytes; largest piece {largest} bytes");
        assert_eq!(total, SIZE);
        assert!(calls < 6400, "{calls} chunk() calls for 50 MiB");
        assert!(largest >= 64 * 1024, "the buffer never grew: {largest}");
        // The connection went back to the pool, its grown buffer given back.
        assert_eq!(client.idle_connections(), 1);
    });
}

/// Pieces handed out stay valid while the connection reads on, and a chunked body's pieces
/// are its chunks' data, framing removed.
#[test]
fn held_pieces_stay_intact_and_chunked_framing_is_removed() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = Client::new();
        let size = 3 << 20;
        let url = server.url(&format!("/bytes/{size}?seed=3"));
        let mut response = client.get(url).send().await.unwrap();
        let mut pieces: Vec<Bytes> = Vec::new();
        while let Some(piece) = response.chunk().await.unwrap() {
            pieces.push(piece);
        }
        assert_eq!(pieces.concat(), seeded_bytes(3, size));

        // /stream/{n} is chunked, one JSON line per chunk.
        let mut response = client.get(server.url("/stream/5")).send().await.unwrap();
        let mut lines = 0;
        while let Some(piece) = response.chunk().await.unwrap() {
            let text = std::str::from_utf8(&piece).unwrap();
            assert!(text.starts_with('{') && text.ends_with('\n'), "{text:?}");
            lines += 1;
        }
        assert_eq!(lines, 5);
    });
}

/// A 64 MiB upload streamed from a reader arrives whole, with its length known
/// (`Content-Length`) and unknown (chunked).
#[test]
fn uploads_from_a_reader_arrive_whole() {
    let _watchdog = util::watchdog("uploads_from_a_reader_arrive_whole", 300);
    const SIZE: u64 = 64 << 20;
    let hash = Pattern::hash(SIZE);
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = Client::new();
        for body in [
            Body::sized_reader(Pattern::new(SIZE), SIZE),
            Body::from_reader(Pattern::new(SIZE)),
        ] {
            let sized = body.content_length().is_some();
            let response = client
                .post(server.url("/count"))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let (len, got) = counted(&response.text().await.unwrap());
            assert_eq!((len, got.as_str()), (SIZE, hash.as_str()), "sized: {sized}");
        }
    });
}

/// A chunked body echoes back exactly (`/anything` sees the decoded body), and a request's
/// own `Content-Length` makes a channel body's length known.
#[test]
fn streamed_bodies_echo_back_exactly() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = Client::new();
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();

        let (mut sender, body) = Body::channel();
        let pieces: Vec<Bytes> = text
            .as_bytes()
            .chunks(10_000)
            .map(Bytes::copy_from_slice)
            .collect();
        // Fed by another task of the same loop, awaiting room.
        let feeder = volley::spawn(async move {
            for piece in pieces {
                sender.send(piece).await.unwrap();
            }
            sender.finish();
        });
        let response = client
            .put(server.url("/anything"))
            .body(body)
            .send()
            .await
            .unwrap();
        feeder.await.unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(json["data"].as_str().unwrap(), text);
        assert_eq!(json["headers"]["Transfer-Encoding"], "chunked");

        let (mut sender, body) = Body::channel();
        let thread = std::thread::spawn(move || {
            sender.blocking_send(Bytes::from_static(b"hello ")).unwrap();
            sender.blocking_send(Bytes::from_static(b"world")).unwrap();
            sender.finish();
        });
        let response = client
            .post(server.url("/anything"))
            .header("content-length", "11")
            .body(body)
            .send()
            .await
            .unwrap();
        thread.join().unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(json["data"], "hello world");
        assert_eq!(json["headers"]["Content-Length"], "11");
    });
}

/// A sender that aborts, or is dropped before `finish`, fails the request with a typed
/// error: the body is never sent short as if whole.
#[test]
fn an_aborted_body_fails_the_request() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = Client::new();
        for drop_it in [false, true] {
            let (mut sender, body) = Body::channel();
            let thread = std::thread::spawn(move || {
                sender
                    .blocking_send(Bytes::from_static(b"partial"))
                    .unwrap();
                if drop_it {
                    drop(sender);
                } else {
                    sender.abort();
                }
            });
            let error = client
                .post(server.url("/count"))
                .body(body)
                .send()
                .await
                .unwrap_err();
            thread.join().unwrap();
            assert_eq!(error.kind(), &ErrorKind::RequestBody(BodyFailure::Aborted));
            assert!(error.to_string().contains("aborted"), "{error}");
        }
        // The server saw no complete request: nothing was counted.
        let response = client.post(server.url("/count")).body("x").send().await;
        assert_eq!(response.unwrap().status(), 200);
    });
}

/// A sized reader that gives fewer or more bytes than it declared fails the request.
#[test]
fn a_length_mismatch_fails_the_request() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = Client::new();
        for (actual, declared) in [(10u64, 20u64), (300_000, 200_000)] {
            let body = Body::sized_reader(Pattern::new(actual), declared);
            let error = client
                .post(server.url("/count"))
                .body(body)
                .send()
                .await
                .unwrap_err();
            match error.kind() {
                ErrorKind::RequestBody(BodyFailure::LengthMismatch { declared: d, given }) => {
                    assert_eq!(*d, declared);
                    if actual < declared {
                        assert_eq!(*given, actual);
                    } else {
                        assert!(*given > declared);
                    }
                }
                other => panic!("{other:?}: {error}"),
            }
        }
    });
}

/// A reader's error fails the request, the `io::Error` as the source.
#[test]
fn a_reader_error_fails_the_request() {
    struct Failing(bool);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                return Err(std::io::Error::other("disk on fire"));
            }
            buf[..3].copy_from_slice(b"abc");
            Ok(3)
        }
    }
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let error = Client::new()
            .post(server.url("/count"))
            .body(Body::from_reader(Failing(false)))
            .send()
            .await
            .unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::RequestBody(BodyFailure::Read));
        assert!(format!("{error:#}").contains("disk on fire"), "{error:#}");
    });
}

/// A 307 keeps the body: with a buffered body it is followed, with a streamed one (sent once,
/// gone) the redirect itself is the response.
#[test]
fn a_307_is_followed_with_a_buffered_body_and_returned_with_a_streamed_one() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = Client::new();
        let url = server.url("/redirect-to?url=/anything&status_code=307");
        let followed = client.post(&url).body("abc").send().await.unwrap();
        assert_eq!(followed.status(), 200);
        let json: serde_json::Value =
            serde_json::from_str(&followed.text().await.unwrap()).unwrap();
        assert_eq!(json["data"], "abc");

        let body = Body::from_reader(std::io::Cursor::new(b"abc".to_vec()));
        let returned = client.post(&url).body(body).send().await.unwrap();
        assert_eq!(returned.status(), 307);

        // 303 drops the body, so even a streamed one follows it.
        let url = server.url("/redirect-to?url=/get&status_code=303");
        let body = Body::from_reader(std::io::Cursor::new(b"abc".to_vec()));
        let followed = client.post(&url).body(body).send().await.unwrap();
        assert_eq!(followed.status(), 200);
    });
}

/// A request with a streamed body cannot be cloned, nor sent by a batch (which keeps its
/// requests to send them again); a buffered one can.
#[test]
fn streamed_requests_do_not_clone_and_batches_refuse_them() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = Client::new();
        let buffered = client.post(server.url("/post")).body("a").build().unwrap();
        assert_eq!(
            buffered.try_clone().unwrap().body().unwrap().as_bytes(),
            Some(&b"a"[..])
        );
        let streamed = client
            .post(server.url("/post"))
            .body(Body::from_reader(std::io::empty()))
            .build()
            .unwrap();
        assert!(streamed.try_clone().is_none());
        let report = client.fetch_all([buffered, streamed]).run().await;
        assert!(report.results[0].outcome.is_ok());
        let error = report.results[1].outcome.as_ref().unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::InvalidRequest(_)),
            "{error}"
        );
    });
}

#[cfg(feature = "futures-io")]
mod futures_io_tests {
    use super::*;
    use std::future::poll_fn;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_io::AsyncRead;

    /// Reads `reader` to its end with a small buffer, as `futures::io::copy` would.
    async fn read_to_end(reader: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 5000];
        loop {
            let n = poll_fn(|cx| Pin::new(&mut *reader).poll_read(cx, &mut buf)).await?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// A response reads as an `AsyncRead`, plain or decoded, to exactly its body.
    #[test]
    fn a_response_is_an_async_read() {
        let rt = Runtime::new().unwrap();
        rt.block_on(async {
            let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let client = Client::new();
            let size = 1 << 20;
            for path in [
                format!("/bytes/{size}?seed=9"),
                format!("/bytes-gzip/{size}?seed=9"),
            ] {
                let mut response = client.get(server.url(&path)).send().await.unwrap();
                let body = read_to_end(&mut response).await.unwrap();
                assert!(body == seeded_bytes(9, size), "{path}");
            }
        });
    }

    /// A body that breaks is an `io::Error` whose inner error is the volley `Error`.
    #[test]
    fn async_read_errors_carry_the_volley_error() {
        let rt = Runtime::new().unwrap();
        rt.block_on(async {
            let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let url = server.url("/fault/reset-body");
            let mut response = Client::new().get(url).send().await.unwrap();
            let error = read_to_end(&mut response).await.unwrap_err();
            let inner = error.get_ref().unwrap();
            let volley = inner.downcast_ref::<volley::Error>().unwrap();
            assert_eq!(volley.phase(), Some(volley::Phase::ReadBody));
        });
    }

    /// An `AsyncRead` of our own, giving `len` bytes of the pattern, at most 1000 at a time
    /// and `Pending` every other poll (waking itself), as a slow source would.
    struct SlowPattern {
        inner: Pattern,
        ready: bool,
    }

    impl AsyncRead for SlowPattern {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            let ready = self.ready;
            self.ready = !ready;
            if !ready {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(1000);
            Poll::Ready(self.inner.read(&mut buf[..n]))
        }
    }

    /// A body from an `AsyncRead` is sent chunked and arrives whole.
    #[test]
    fn a_body_from_an_async_read_arrives_whole() {
        let rt = Runtime::new().unwrap();
        rt.block_on(async {
            let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let len = 300_000;
            let reader = SlowPattern {
                inner: Pattern::new(len),
                ready: false,
            };
            let response = Client::new()
                .post(server.url("/count"))
                .body(Body::from_async_read(reader))
                .send()
                .await
                .unwrap();
            let (got_len, hash) = counted(&response.text().await.unwrap());
            assert_eq!((got_len, hash), (len, Pattern::hash(len)));
        });
    }
}
