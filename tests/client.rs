//! The client against scripted raw responses: every framing rule of RFC 9112 §6.3, good and
//! bad, delivered whole and one byte at a time, plus keep-alive reuse and the stale-connection
//! retry. The server here is a few lines on the same runtime, so each byte is under control.

mod util;
use util::skip;

use std::cell::Cell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use util::text_of;
use volley::{Client, ErrorKind, Phase, Runtime, TcpListener, TcpStream};

/// What the scripted server does with each connection it accepts.
#[derive(Clone)]
struct Script {
    /// Responses to send, one per request read on the connection.
    replies: Vec<&'static [u8]>,
    /// Write this many bytes at a time, yielding between writes (0: all at once).
    piece: usize,
    /// Close after the last reply.
    close: bool,
    /// Wait this long between pieces (instead of just yielding).
    pause: Duration,
}

impl Script {
    /// Replies whole, keeps the connection open, no pauses.
    fn answering(replies: Vec<&'static [u8]>) -> Script {
        Script {
            replies,
            piece: 0,
            close: false,
            pause: Duration::ZERO,
        }
    }
}

/// Lets the loop turn once, so the peer can read what was written.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Reads one request head (and ignores any body: the tests here send none).
async fn read_request(conn: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Serves `script` on every accepted connection; counts connections.
fn serve(script: Script) -> (SocketAddr, Rc<Cell<usize>>) {
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Rc::new(Cell::new(0));
    let counter = accepted.clone();
    let server = volley::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counter.set(counter.get() + 1);
            let script = script.clone();
            let connection = volley::spawn(async move {
                for reply in &script.replies {
                    if !read_request(&mut conn).await {
                        return;
                    }
                    let piece = if script.piece == 0 {
                        reply.len().max(1)
                    } else {
                        script.piece
                    };
                    for bytes in reply.chunks(piece) {
                        if conn.write_all(bytes).await.is_err() {
                            return;
                        }
                        if !script.pause.is_zero() {
                            volley::sleep(script.pause).await;
                        } else if script.piece != 0 {
                            yield_now().await;
                        }
                    }
                }
                if script.close {
                    return; // dropping the stream closes it
                }
                // Keep the connection open until the client goes away.
                let mut buf = [0u8; 64];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
            drop(connection); // detached: it ends with its connection
        }
    });
    drop(server); // detached: it ends with the runtime
    (addr, accepted)
}

/// The outcome the table expects.
#[derive(Debug)]
enum Want {
    /// Status, body, and whether the connection went back to the pool.
    Ok(u16, &'static [u8], bool),
    /// An error whose message or cause (`{:#}`) contains this text.
    Err(&'static str),
}

/// (name, method, raw response, close after it, expected outcome)
type Case = (&'static str, &'static str, &'static [u8], bool, Want);

const CASES: &[Case] = &[
    ("content-length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, Want::Ok(200, b"hello", true)),
    ("chunked with extensions and trailers", "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n",
        false, Want::Ok(200, b"hello world", true)),
    ("final coding not chunked reads to close", "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nuntil the end", true, Want::Ok(200, b"until the end", false)),
    ("both headers: chunked wins, no reuse", "GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false,
        Want::Ok(200, b"ok", false)),
    ("no length reads to close", "GET", b"HTTP/1.1 200 OK\r\n\r\nall of it", true, Want::Ok(200, b"all of it", false)),
    ("HEAD has no body", "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", false, Want::Ok(200, b"", true)),
    ("204 has no body", "GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 50\r\n\r\n", false, Want::Ok(204, b"", true)),
    ("304 has no body", "GET", b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, Want::Ok(304, b"", true)),
    ("1xx are skipped", "GET",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        false, Want::Ok(200, b"ok", true)),
    ("101 ends the exchange", "GET", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nother protocol", false,
        Want::Ok(101, b"", false)),
    ("404 is a response", "GET", b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", false, Want::Ok(404, b"nope", true)),
    ("connection close is honoured", "GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false,
        Want::Ok(200, b"ok", false)),
    ("http/1.0 without keep-alive", "GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, Want::Ok(200, b"ok", false)),
    ("short body is an error", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", true, Want::Err("body ended after 5 of 10 bytes")),
    ("truncated chunked body is an error", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", true,
        Want::Err("before its last chunk")),
    ("differing lengths", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", true,
        Want::Err("invalid content-length")),
    ("negative length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", true, Want::Err("invalid content-length")),
    ("overflowing length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", true,
        Want::Err("invalid content-length")),
    ("bad chunk size", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", true, Want::Err("malformed chunked body")),
    ("garbage status line", "GET", b"SSH-2.0-OpenSSH_9.0\r\n\r\n", true, Want::Err("invalid response")),
    ("closed before any byte", "GET", b"", true, Want::Err("connection closed before any response byte")),
    ("closed mid-head", "GET", b"HTTP/1.1 200 OK\r\nContent-Le", true, Want::Err("in the middle of the response head")),
    // No line end follows the bad bytes: the parse at the close still finds them.
    ("malformed, then closed before a line end", "GET", b"HTTX", true, Want::Err("invalid response")),
];

/// 32 interim (1xx) responses are skipped; a 33rd is an invalid response, not a wait for the
/// timeouts.
#[test]
fn interim_responses_are_capped() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        for (interim, ok) in [(32, true), (33, false)] {
            let mut raw = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(interim);
            raw.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let raw: &'static [u8] = Box::leak(raw.into_boxed_slice());
            let (addr, _) = serve(Script::answering(vec![raw]));
            let client = Client::builder().timeout(Duration::from_secs(5)).build();
            let result = client.get(format!("http://{addr}/")).send().await;
            match (result, ok) {
                (Ok(resp), true) => assert_eq!(&resp.bytes().await.unwrap()[..], b"ok"),
                (Err(e), false) => {
                    assert!(matches!(e.kind(), ErrorKind::InvalidResponse(_)), "{e:#}");
                    assert!(e.to_string().contains("more than 32 interim"), "{e:#}");
                }
                (Ok(resp), false) => panic!("{interim} interim: got {}", resp.status()),
                (Err(e), true) => panic!("{interim} interim: {e:#}"),
            }
        }
    });
}

/// Every case of the table, whole and in 1-byte pieces, against a fresh server each.
#[test]
fn framing_table_whole_and_bytewise() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        for (name, method, raw, close, want) in CASES {
            for piece in [0, 1] {
                let (addr, _) = serve(Script {
                    replies: vec![raw],
                    piece,
                    close: *close,
                    pause: Duration::ZERO,
                });
                let client = Client::builder().timeout(Duration::from_secs(5)).build();
                let url = format!("http://{addr}/x");
                let method = volley::Method::from_bytes(method.as_bytes()).unwrap();
                let result = match client.request(method, &url).send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        resp.bytes().await.map(|body| (status, body))
                    }
                    Err(e) => Err(e),
                };
                match (result, want) {
                    (Ok((status, body)), Want::Ok(want_status, want_body, pooled)) => {
                        assert_eq!(status, *want_status, "{name}, pieces of {piece}");
                        assert_eq!(&body[..], *want_body, "{name}, pieces of {piece}");
                        assert_eq!(
                            client.idle_connections(),
                            usize::from(*pooled),
                            "{name}: pooled?"
                        );
                    }
                    (Err(e), Want::Err(text)) => {
                        assert!(
                            format!("{e:#}").contains(text),
                            "{name}, pieces of {piece}: {e:#}"
                        );
                        assert!(
                            e.to_string().contains(&url),
                            "{name}: the error names the url: {e:#}"
                        );
                        assert_eq!(
                            client.idle_connections(),
                            0,
                            "{name}: a failed connection is not pooled"
                        );
                    }
                    (got, want) => panic!(
                        "{name}, pieces of {piece}: got {:?}, want {want:?}",
                        got.map(|(s, b)| (s, b.len()))
                    ),
                }
            }
        }
    });
}

/// Trailers of a chunked body are exposed once the body is read; chunk() streams pieces.
#[test]
fn trailers_and_streaming_chunks() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let raw: &'static [u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nX-Checksum: 42\r\n\r\n";
        let (addr, _) = serve(Script::answering(vec![raw]));
        let client = Client::new();
        let mut resp = client.get(format!("http://{addr}/")).send().await.unwrap();
        assert!(resp.trailers().is_none());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        assert_eq!(body, b"abcdef");
        assert_eq!(resp.trailers().unwrap()["x-checksum"], "42");
        assert_eq!(client.idle_connections(), 1);
    });
}

/// A keep-alive connection carries the next request: one connection for three requests.
#[test]
fn keep_alive_reuses_the_connection() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, accepted) = serve(Script::answering(vec![ok, ok, ok]));
        let client = Client::new();
        for _ in 0..3 {
            let body = text_of(client.get(format!("http://{addr}/"))).await;
            assert_eq!(body, "ok");
        }
        assert_eq!(accepted.get(), 1);
    });
}

/// A pooled connection the server closed is noticed, and a GET succeeds on a fresh one.
#[test]
fn stale_pooled_connection_is_replaced() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        // Each connection answers once and closes, without saying so in its headers.
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, accepted) = serve(Script {
            replies: vec![ok],
            piece: 0,
            close: true,
            pause: Duration::ZERO,
        });
        let client = Client::new();
        for round in 0..3 {
            let resp = client.get(format!("http://{addr}/")).send().await;
            let body = resp
                .unwrap_or_else(|e| panic!("round {round}: {e:#}"))
                .text()
                .await
                .unwrap();
            assert_eq!(body, "ok");
            volley::sleep(Duration::from_millis(20)).await; // let the close arrive or not
        }
        assert_eq!(accepted.get(), 3);
    });
}

/// A reused connection that dies before answering is retried once for a GET, even when the
/// close is not yet visible at checkout.
#[test]
fn reused_connection_failing_before_response_is_retried() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        // The first connection answers one request, then reads the next and closes without a byte.
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, accepted) = serve(Script {
            replies: vec![ok, b""],
            piece: 0,
            close: true,
            pause: Duration::ZERO,
        });
        let client = Client::new();
        for _ in 0..2 {
            let body = text_of(client.get(format!("http://{addr}/"))).await;
            assert_eq!(body, "ok");
        }
        assert_eq!(
            accepted.get(),
            2,
            "the second GET went to a fresh connection"
        );
    });
}

/// A POST is not retried on a reused connection that fails: the error is reported.
#[test]
fn post_is_not_retried() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, accepted) = serve(Script {
            replies: vec![ok, b""],
            piece: 0,
            close: true,
            pause: Duration::ZERO,
        });
        let client = Client::new();
        let url = format!("http://{addr}/");
        client.get(&url).send().await.unwrap().text().await.unwrap();
        let err = client.post(&url).body("x").send().await.unwrap_err();
        assert_eq!(err.phase(), Some(Phase::ReadHead), "{err:#}");
        assert_eq!(accepted.get(), 1);
    });
}

/// A server that never answers trips the read timeout, naming the phase.
#[test]
fn stalled_head_times_out_in_its_phase() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (addr, _) = serve(Script::answering(vec![b""]));
        let client = Client::builder()
            .read_timeout(Duration::from_millis(200))
            .build();
        let url = format!("http://{addr}/stall");
        let err = client.get(&url).send().await.unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(
            err.kind(),
            &ErrorKind::Timeout {
                phase: Phase::ReadHead,
                after: Duration::from_millis(200)
            }
        );
        assert_eq!(
            err.to_string(),
            format!("timeout reading response head from {url} after 200ms")
        );
    });
}

/// A refused connection is a connect error that names the URL and the address.
#[test]
fn refused_connection_is_a_connect_error() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            listener.local_addr().unwrap()
        };
        let err = Client::new()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:#}");
        assert!(err.to_string().contains(&addr.to_string()), "{err:#}");
    });
}

/// Header values with CR or LF are refused before anything is sent.
#[test]
fn header_injection_is_refused() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (addr, accepted) = serve(Script {
            replies: vec![],
            piece: 0,
            close: true,
            pause: Duration::ZERO,
        });
        let err = Client::new()
            .get(format!("http://{addr}/"))
            .header("x-evil", "a\r\nInjected: yes")
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::InvalidRequest(_)),
            "{err:#}"
        );
        assert_eq!(accepted.get(), 0, "nothing reached the server");
    });
}

/// An unparsable URL and an unsupported scheme are typed errors.
#[test]
fn bad_urls_are_errors() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::new();
        let err = client.get("not a url").send().await.unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidUrl(_)), "{err:#}");
        let err = client.get("ftp://127.0.0.1/").send().await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::UnsupportedScheme(s) if s == "ftp"),
            "{err:#}"
        );
    });
}

/// A resolver that knows no names, to test DNS failure without asking any real resolver.
struct NoSuchHost;

impl volley::Resolve for NoSuchHost {
    fn resolve(&self, host: &str, _port: u16) -> volley::Resolving {
        let e = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host}: no such host"),
        );
        Box::pin(async move { Err(e) })
    }
}

/// A failed lookup is a DNS error naming the URL and the resolver's reason.
#[test]
fn dns_failure_is_a_dns_error() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::builder().dns_resolver(NoSuchHost).build();
        let err = client.get("http://nowhere.test/").send().await.unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Dns);
        assert_eq!(err.phase(), Some(Phase::Resolve));
        assert_eq!(
            err.to_string(),
            "dns lookup failed for http://nowhere.test/"
        );
        assert_eq!(
            format!("{err:#}"),
            "dns lookup failed for http://nowhere.test/: nowhere.test: no such host"
        );
    });
}

/// Fixed mappings (curl's --resolve) send a named host to a loopback address, with the
/// name in Host; `localhost` goes through the default (native) resolver, which reads
/// /etc/hosts, and through `Resolver::system()`, getaddrinfo on a helper thread.
#[test]
fn fixed_mappings_and_localhost_resolve() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, _) = serve(Script::answering(vec![ok, ok, ok]));
        let client = Client::builder()
            .resolve("volley.test", "127.0.0.1:1".parse().unwrap())
            .build();
        let url = format!("http://volley.test:{}/", addr.port());
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.url().as_str(), url);
        assert_eq!(resp.text().await.unwrap(), "ok");
        let url = format!("http://localhost:{}/", addr.port());
        let resp = Client::new().get(&url).send().await;
        assert_eq!(resp.unwrap().text().await.unwrap(), "ok");
        let system = Client::builder()
            .dns_resolver(volley::Resolver::system())
            .build();
        let resp = system.get(&url).send().await;
        assert_eq!(resp.unwrap().text().await.unwrap(), "ok");
    });
}

/// Serves one scripted reply per connection with a pause between pieces.
fn serve_slowly(reply: &'static [u8], piece: usize, pause: Duration) -> SocketAddr {
    serve(Script {
        replies: vec![reply],
        piece,
        close: false,
        pause,
    })
    .0
}

/// A body over `max_body_size` is a limit error naming the limit, for both framings.
#[test]
fn body_over_the_limit_is_refused() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let long: &'static [u8] = Box::leak(
            [&b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"[..], &[b'x'; 1000][..]].concat().into_boxed_slice(),
        );
        let chunked: &'static [u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n60\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n60\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n";
        for reply in [long, chunked] {
            let (addr, _) = serve(Script::answering(vec![reply]));
            let client = Client::builder().max_body_size(100).build();
            let err = client.get(format!("http://{addr}/")).send().await.unwrap().bytes().await.unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::TooLarge { what: volley::Limit::Body, limit: 100 }, "{err:#}");
            assert_eq!(client.idle_connections(), 0);
        }
    });
}

/// A head larger than `max_response_header_size` is refused once the limit is reached,
/// without waiting for the rest of it.
#[test]
fn head_over_the_limit_is_refused_early() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        // 8 KiB of header, then the server stalls: the client must not wait for the end.
        let big: &'static [u8] = Box::leak(
            [&b"HTTP/1.1 200 OK\r\nX-Big: "[..], &[b'a'; 8192][..]]
                .concat()
                .into_boxed_slice(),
        );
        let (addr, _) = serve(Script::answering(vec![big]));
        let client = Client::builder()
            .max_response_header_size(4096)
            .read_timeout(Duration::from_secs(10))
            .build();
        let err = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::TooLarge {
                what: volley::Limit::Head,
                limit: 4096
            },
            "{err:#}"
        );
    });
}

/// A head trickled one byte at a time trips the total timeout (the read timeout never does,
/// since bytes keep coming).
#[test]
fn slowloris_head_trips_the_total_timeout() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let head: &'static [u8] = b"HTTP/1.1 200 OK\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let addr = serve_slowly(head, 1, Duration::from_millis(20));
        let client = Client::builder()
            .timeout(Duration::from_millis(300))
            .read_timeout(Duration::from_secs(5))
            .build();
        let started = std::time::Instant::now();
        let err = client.get(format!("http://{addr}/")).send().await.unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Timeout { phase: Phase::ReadHead, after: Duration::from_millis(300) }, "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(3), "bounded by the total timeout");
    });
}

/// A body that stops mid-way trips the read timeout in the body phase.
#[test]
fn stalled_body_times_out_in_its_phase() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let partial: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly some";
        let (addr, _) = serve(Script::answering(vec![partial]));
        let client = Client::builder()
            .read_timeout(Duration::from_millis(200))
            .build();
        let resp = client.get(format!("http://{addr}/")).send().await.unwrap();
        let err = resp.bytes().await.unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Timeout {
                phase: Phase::ReadBody,
                after: Duration::from_millis(200)
            },
            "{err:#}"
        );
    });
}

/// A listener whose accept queue is full drops SYNs: the connect times out in its phase.
#[test]
fn connect_timeout_names_its_phase() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind_with_backlog("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Fill the queue with connections nobody accepts (bounded; the kernel stops at a few).
        let mut held = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        let client = Client::builder()
            .connect_timeout(Duration::from_millis(200))
            .build();
        let err = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Timeout {
                phase: Phase::Connect,
                after: Duration::from_millis(200)
            },
            "{err:#}"
        );
        assert!(err.is_connect() && err.is_timeout());
        drop(listener);
    });
}

/// text() decodes by the charset of Content-Type: Latin-1 bytes become the right characters.
#[test]
fn text_uses_the_declared_charset() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let latin1: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Length: 5\r\n\r\ncaf\xe9!";
        let (addr, _) = serve(Script::answering(vec![latin1]));
        let text = Client::new().get(format!("http://{addr}/")).send().await.unwrap().text().await.unwrap();
        assert_eq!(text, "café!");
    });
}

/// An IPv6 literal URL reaches a server on ::1, with the bracketed host in Host.
#[test]
fn ipv6_literal_urls_work() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let Ok(mut listener) = TcpListener::bind("[::1]:0".parse().unwrap()) else {
            skip(
                "client::ipv6_literal_urls_work",
                "this machine has no IPv6 loopback",
            );
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let server = volley::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                head.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let url = format!("http://[::1]:{port}/six?x=1");
        let body = Client::new()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "v6");
        let head = server.await.unwrap();
        assert!(head.starts_with("GET /six?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("host: [::1]:{port}\r\n")), "{head}");
    });
}

/// An idle connection older than pool_idle_timeout is not reused.
#[test]
fn idle_connections_expire() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, accepted) = serve(Script::answering(vec![ok, ok]));
        let client = Client::builder()
            .pool_idle_timeout(Duration::from_millis(50))
            .build();
        let url = format!("http://{addr}/");
        client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(client.idle_connections(), 1);
        volley::sleep(Duration::from_millis(120)).await;
        client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(accepted.get(), 2, "the expired connection was not reused");
    });
}

/// When the first address refuses, the next one is tried.
#[test]
fn next_address_is_tried_after_a_refusal() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, _) = serve(Script::answering(vec![ok]));
        // Nothing listens on 127.0.0.2 at this port: the server bound 127.0.0.1 only.
        let client = Client::builder()
            .resolve("two.test", "127.0.0.2:0".parse().unwrap())
            .resolve("two.test", "127.0.0.1:0".parse().unwrap())
            .build();
        let resp = client
            .get(format!("http://two.test:{}/", addr.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), "ok");
    });
}

/// Timings: a fresh connection has connect time; a reused one has none; first byte comes
/// after the server's pause and before the total.
#[test]
fn timings_record_each_phase() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, _) = serve(Script {
            replies: vec![ok, ok],
            piece: 1,
            close: false,
            pause: Duration::from_millis(5),
        });
        let client = Client::new();
        let url = format!("http://{addr}/");
        let mut resp = client.get(&url).send().await.unwrap();
        while resp.chunk().await.unwrap().is_some() {}
        let first = resp.timings();
        assert!(!first.reused);
        assert!(first.connect > Duration::ZERO);
        assert_eq!(first.dns, Duration::ZERO, "an IP literal is not resolved");
        assert!(first.first_byte >= first.connect, "{first:?}");
        // 2 + 35 + 2 bytes each after a 5 ms pause: the body ends well after the first byte.
        assert!(
            first.total >= first.first_byte + Duration::from_millis(100),
            "{first:?}"
        );
        let mut resp = client.get(&url).send().await.unwrap();
        while resp.chunk().await.unwrap().is_some() {}
        let second = resp.timings();
        assert!(second.reused);
        assert_eq!(second.connect, Duration::ZERO);
        assert_eq!(resp.timings(), second, "frozen once the body has ended");
    });
}
