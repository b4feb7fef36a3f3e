//! The fault matrix: the client against every `/fault/...` endpoint of the embedded server
//! (and a refused port and an unknown host), each case asserting the error's kind, its phase
//! and how long it took. Deadline cases must fire never early and without hanging (how late
//! a timer fires is a benchmark's figure, `timer_lateness`); every other failure must come
//! well before any configured timeout, so that it is not a timeout in disguise.
//!
//! The tests take one lock, so that the timing cases never share the two cores of a build
//! machine with the 1,000-request batch.

mod util;

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use util::{watchdog, with_server, Checksum};
use volley::{redirect, Client, ClientBuilder, Error, ErrorKind, Limit, Phase};
use volley_testserver::{seeded_bytes, Server};

/// Held by every test of this file: timing cases run alone.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one case: alone, under a watchdog, with a fresh server on a fresh runtime.
fn case<F, Fut>(name: &'static str, f: F)
where
    F: FnOnce(Server) -> Fut,
    Fut: Future<Output = ()>,
{
    let _serial = serial();
    let _dog = watchdog(name, 90);
    with_server(f);
}

/// Non-deadline failures must arrive within this, though every timeout is 5 s or more.
const FAST: Duration = Duration::from_millis(1000);

/// A client whose timeouts are all long (5 s per read, write or connect; 30 s in total), so
/// that a failure arriving within [`FAST`] is not a timeout in disguise.
fn patient() -> ClientBuilder {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
}

/// Asserts that a deadline of `configured` fired after `elapsed`: never early, and not
/// hanging (within twice the deadline plus a second, generous on a loaded 2-core machine).
/// How late a timer fires is measured by `cargo bench -p volley-benches --bench
/// timer_lateness`, not asserted here. Prints the measurement for the record.
fn assert_deadline_fired(what: &str, elapsed: Duration, configured: Duration) {
    eprintln!("{what}: configured {configured:?}, fired after {elapsed:?}");
    assert!(
        elapsed >= configured,
        "{what}: fired early, after {elapsed:?} of {configured:?}"
    );
    let latest = configured * 2 + Duration::from_secs(1);
    assert!(
        elapsed <= latest,
        "{what}: fired late, after {elapsed:?} (at most {latest:?})"
    );
}

/// Asserts that `elapsed` is within [`FAST`].
fn assert_fast(what: &str, elapsed: Duration) {
    assert!(elapsed < FAST, "{what}: took {elapsed:?}, want < {FAST:?}");
}

/// A limit error must come before any of the [`patient`] client's timeouts (5 s) could: it is
/// not a timeout in disguise. That it comes while the first 64 KiB arrive, not after the rest,
/// is proved by what the server had written (`huge_head_is_refused_before_...`), not by time.
const UNDER_ANY_TIMEOUT: Duration = Duration::from_secs(4);

fn timeout(phase: Phase, after: Duration) -> ErrorKind {
    ErrorKind::Timeout { phase, after }
}

/// Reads a response body piece by piece until its end or an error; returns the bytes that
/// arrived and how it ended. Never calls a short body an `Ok`: that is for the client to say.
async fn read_pieces(resp: &mut volley::Response) -> (u64, Result<(), Error>) {
    let mut received = 0;
    for _ in 0..100_000 {
        match resp.chunk().await {
            Ok(Some(piece)) => received += piece.len() as u64,
            Ok(None) => return (received, Ok(())),
            Err(e) => return (received, Err(e)),
        }
    }
    panic!("a body of {received} bytes never ended");
}

// ---------------------------------------------------------------------------------------------
// Deadlines: never early, never hanging.

/// The server reads the request and sends nothing: a timeout in the head phase, after the
/// read timeout.
#[test]
fn stall_before_the_head_times_out_in_the_head_phase() {
    case("stall-head", |server| async move {
        let read = Duration::from_millis(500);
        let client = Client::builder()
            .read_timeout(read)
            .timeout(Duration::from_secs(30))
            .build();
        let started = Instant::now();
        let err = client
            .get(server.url("/fault/stall-head"))
            .send()
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err.kind(), &timeout(Phase::ReadHead, read), "{err:#}");
        assert_eq!(err.phase(), Some(Phase::ReadHead));
        assert!(err.is_timeout() && !err.is_connect());
        assert!(
            err.to_string()
                .starts_with("timeout reading response head from http://127.0.0.1:"),
            "{err:#}"
        );
        assert_deadline_fired("stall before the head", elapsed, read);
    });
}

/// The server sends the head and half the body, then nothing: a timeout in the body phase,
/// after the read timeout, with exactly the bytes that came delivered first.
#[test]
fn stall_mid_body_times_out_in_the_body_phase() {
    case("stall-body", |server| async move {
        let read = Duration::from_millis(500);
        let client = Client::builder()
            .read_timeout(read)
            .timeout(Duration::from_secs(30))
            .build();
        let mut resp = client
            .get(server.url("/fault/stall-body?after=1000"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.content_length(), Some(2000));
        let started = Instant::now();
        let (received, end) = read_pieces(&mut resp).await;
        let elapsed = started.elapsed();
        let err = end.unwrap_err();
        assert_eq!(received, 1000, "the bytes sent before the stall arrive");
        assert_eq!(err.kind(), &timeout(Phase::ReadBody, read), "{err:#}");
        assert_eq!(err.phase(), Some(Phase::ReadBody));
        assert_deadline_fired("stall mid-body", elapsed, read);
        assert_eq!(client.idle_connections(), 0);
    });
}

/// A head trickled one byte every 100 ms (slowloris) never trips a 300 ms read timeout,
/// since bytes keep coming; the total timeout ends it, in the head phase, on time.
#[test]
fn trickled_head_trips_the_total_timeout() {
    case("trickle", |server| async move {
        let total = Duration::from_millis(1000);
        // The 39-byte head takes 3.8 s to trickle; each byte comes 100 ms after the last.
        let client = Client::builder()
            .read_timeout(Duration::from_millis(300))
            .timeout(total)
            .build();
        let started = Instant::now();
        let err = client
            .get(server.url("/fault/trickle?interval_ms=100"))
            .send()
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err.kind(), &timeout(Phase::ReadHead, total), "{err:#}");
        assert_eq!(err.phase(), Some(Phase::ReadHead));
        assert!(err.to_string().ends_with("after 1s"), "{err:#}");
        assert_deadline_fired("trickled head, total timeout", elapsed, total);
    });
}

// ---------------------------------------------------------------------------------------------
// Broken connections and broken HTTP: the right error, fast.

/// A reset after 100 of 1,000 body bytes is an I/O error in the body phase, never a short
/// `Ok`, whether the body is read whole or piece by piece.
#[test]
fn reset_mid_body_is_an_io_error() {
    case("reset-body", |server| async move {
        let client = patient().build();
        let url = server.url("/fault/reset-body");

        let started = Instant::now();
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.content_length(), Some(1000));
        let err = resp.bytes().await.unwrap_err();
        assert_fast("reset mid-body", started.elapsed());
        assert_eq!(err.kind(), &ErrorKind::Io(Phase::ReadBody), "{err:#}");
        assert_eq!(err.phase(), Some(Phase::ReadBody));
        assert!(!err.is_timeout());

        let mut resp = client.get(&url).send().await.unwrap();
        let (received, end) = read_pieces(&mut resp).await;
        let err = end.expect_err("a body cut short is never Ok");
        assert!(received <= 100, "{received} bytes");
        assert_eq!(err.kind(), &ErrorKind::Io(Phase::ReadBody), "{err:#}");
        assert_eq!(client.idle_connections(), 0);
    });
}

/// A fresh connection closed before any response byte is an I/O error in the head phase,
/// reported at once and not retried (only reused connections are).
#[test]
fn close_before_any_byte_is_an_io_error() {
    case("close-before-response", |server| async move {
        let client = patient().build();
        let started = Instant::now();
        let err = client
            .get(server.url("/fault/close-before-response"))
            .send()
            .await
            .unwrap_err();
        assert_fast("close before any byte", started.elapsed());
        assert_eq!(err.kind(), &ErrorKind::Io(Phase::ReadHead), "{err:#}");
        assert_eq!(err.phase(), Some(Phase::ReadHead));
        // The message says where; the cause, in `{:#}` and `source()`, says what happened.
        assert_eq!(
            err.to_string(),
            format!(
                "i/o error reading response head from {}",
                server.url("/fault/close-before-response")
            )
        );
        assert!(
            format!("{err:#}").ends_with(": connection closed before any response byte"),
            "{err:#}"
        );
        assert_eq!(server.stats().connections_accepted, 1, "no retry");
    });
}

/// A reused keep-alive connection that the server closes on the next request, before any
/// response byte: a GET is retried once on a fresh connection and succeeds; a POST is not
/// retried, and fails in the head phase.
#[test]
fn reused_connection_closed_before_the_response_is_retried_once() {
    case("close-on-reuse", |server| async move {
        let client = patient().build();
        let url = server.url("/fault/close-on-reuse");
        let first = client.get(&url).send().await.unwrap();
        assert!(!first.timings().reused);
        assert_eq!(
            first.text().await.unwrap(),
            "first request on this connection\n"
        );
        assert_eq!(client.idle_connections(), 1);

        // The pooled connection looks alive; the server closes it when the request arrives.
        let started = Instant::now();
        let second = client.get(&url).send().await.unwrap();
        assert_fast("retried GET", started.elapsed());
        assert_eq!(second.status(), 200);
        assert!(
            !second.timings().reused,
            "the answer came on a fresh connection"
        );
        assert_eq!(
            second.text().await.unwrap(),
            "first request on this connection\n"
        );
        let stats = server.stats();
        assert_eq!(
            stats.connections_accepted, 2,
            "one retry, on one new connection"
        );
        assert_eq!(stats.requests, 3, "the dead connection saw the GET once");

        let started = Instant::now();
        let err = client.post(&url).body("once").send().await.unwrap_err();
        assert_fast("POST on a dying connection", started.elapsed());
        assert_eq!(err.kind(), &ErrorKind::Io(Phase::ReadHead), "{err:#}");
        assert_eq!(
            server.stats().connections_accepted,
            2,
            "a POST is not retried"
        );
        assert_eq!(server.stats().requests, 4);
    });
}

/// Bytes that are not a status line: an invalid-response error of the head phase, at once.
#[test]
fn garbage_instead_of_a_status_line_is_an_invalid_response() {
    case("garbage", |server| async move {
        let started = Instant::now();
        let err = patient()
            .build()
            .get(server.url("/fault/garbage"))
            .send()
            .await
            .unwrap_err();
        assert_fast("garbage", started.elapsed());
        assert!(
            matches!(err.kind(), ErrorKind::InvalidResponse(_)),
            "{err:#}"
        );
        assert_eq!(err.phase(), Some(Phase::ReadHead), "{err:#}");
        assert!(err.to_string().contains("invalid response from"), "{err:#}");
    });
}

/// A 1 MiB head against the default 64 KiB limit: a limit error, fast.
#[test]
fn huge_head_is_a_limit_error_fast() {
    case("huge-head", |server| async move {
        let started = Instant::now();
        let err = patient()
            .build()
            .get(server.url("/fault/huge-head"))
            .send()
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        eprintln!("1 MiB head refused after {elapsed:?}");
        assert!(elapsed < UNDER_ANY_TIMEOUT, "{elapsed:?}");
        let want = ErrorKind::TooLarge {
            what: Limit::Head,
            limit: volley::Config::DEFAULT_MAX_HEAD as u64,
        };
        assert_eq!(err.kind(), &want, "{err:#}");
        assert_eq!(err.phase(), Some(Phase::ReadHead), "{err:#}");
    });
}

/// What a [`huge_head_writer`] managed before its client went away.
#[derive(Debug)]
struct Written {
    bytes: u64,
    /// How the writing stopped: `None` if every byte was written.
    error: Option<std::io::ErrorKind>,
}

/// A plain-thread server for one connection that answers with a head whose one header is
/// `size` bytes long, written in 16 KiB pieces, and reports how much of it the socket took
/// before the client closed. Bounded: it gives up after 10 s without a client, and each
/// write times out after 5 s.
fn huge_head_writer(size: u64) -> (SocketAddr, mpsc::Receiver<Written>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
                Err(_) => return,
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let mut written = Written {
            bytes: 0,
            error: None,
        };
        if let Err(e) = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Huge: ") {
            written.error = Some(e.kind());
        }
        let piece = [b'a'; 16 * 1024];
        while written.error.is_none() && written.bytes < size {
            let n = (size - written.bytes).min(piece.len() as u64) as usize;
            match stream.write(&piece[..n]) {
                Ok(n) => written.bytes += n as u64,
                Err(e) => written.error = Some(e.kind()),
            }
        }
        let _ = tx.send(written);
    });
    (addr, rx)
}

/// A 256 MiB head is refused as soon as the limit is reached, not after reading it all: the
/// error comes fast, and the client closes its connection while the server has written only
/// the few MiB that socket buffers hold.
#[test]
fn huge_head_is_refused_before_the_server_has_written_it() {
    case("huge-head-writer", |_server| async move {
        let size = 256 << 20;
        let (addr, written) = huge_head_writer(size);
        let started = Instant::now();
        let err = patient()
            .build()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        eprintln!("256 MiB head refused after {elapsed:?}");
        assert!(elapsed < UNDER_ANY_TIMEOUT, "{elapsed:?}");
        let want = ErrorKind::TooLarge {
            what: Limit::Head,
            limit: volley::Config::DEFAULT_MAX_HEAD as u64,
        };
        assert_eq!(err.kind(), &want, "{err:#}");
        let written = written
            .recv_timeout(Duration::from_secs(20))
            .expect("the writer reports");
        eprintln!(
            "the server wrote {} bytes of a {size}-byte header",
            written.bytes
        );
        // The client hung up on the writer (a reset or a broken pipe, not a write timeout)...
        assert!(
            matches!(
                written.error,
                Some(std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
            ),
            "{written:?}"
        );
        // ...long before the end: socket buffers on loopback hold a few MiB (4 MiB here).
        assert!(written.bytes < size / 4, "{written:?}");
    });
}

/// A body over `max_body_size` is a limit error and its connection is not kept; a body of
/// exactly the limit is fine.
#[test]
fn body_over_max_body_size_is_a_limit_error() {
    case("max-body-size", |server| async move {
        let limit = 100_000;
        let client = patient().max_body_size(limit).build();
        let started = Instant::now();
        let resp = client
            .get(server.url(&format!("/bytes/{}?seed=7", limit + 1)))
            .send()
            .await
            .unwrap();
        let err = resp.bytes().await.unwrap_err();
        assert_fast("body over the limit", started.elapsed());
        assert_eq!(
            err.kind(),
            &ErrorKind::TooLarge {
                what: Limit::Body,
                limit
            },
            "{err:#}"
        );
        assert_eq!(err.phase(), Some(Phase::ReadBody), "{err:#}");
        assert_eq!(client.idle_connections(), 0);

        let body = client
            .get(server.url(&format!("/bytes/{limit}?seed=7")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(body[..] == seeded_bytes(7, limit as usize)[..]);
    });
}

/// A redirect to itself: too many redirects once the policy's limit is passed, having sent
/// exactly one request more than the limit, over one keep-alive connection.
#[test]
fn redirect_loop_is_too_many_redirects() {
    case("redirect-loop", |server| async move {
        let url = server.url("/fault/redirect-loop");
        let started = Instant::now();
        let err = patient().build().get(&url).send().await.unwrap_err();
        assert_fast("redirect loop", started.elapsed());
        assert_eq!(err.kind(), &ErrorKind::TooManyRedirects(10), "{err:#}");
        assert_eq!(err.phase(), None);
        assert!(
            err.to_string()
                .contains("too many redirects (more than 10)"),
            "{err:#}"
        );
        assert_eq!(server.stats().requests, 11);
        assert_eq!(server.stats().connections_accepted, 1);

        let client = patient().redirect(redirect::Policy::limited(3)).build();
        let err = client.get(&url).send().await.unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::TooManyRedirects(3), "{err:#}");
        assert_eq!(server.stats().requests, 11 + 4);
    });
}

/// A resolver that finds no name and records what it was asked, so the unknown-host case
/// never reaches a real resolver (or the network).
#[derive(Clone, Default)]
struct NoSuchHost {
    asked: Rc<std::cell::RefCell<Vec<String>>>,
}

impl volley::Resolve for NoSuchHost {
    fn resolve(&self, host: &str, _port: u16) -> volley::Resolving {
        self.asked.borrow_mut().push(host.to_owned());
        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no such host");
        Box::pin(async move { Err(e) })
    }
}

/// A refused port: a connect error with ECONNREFUSED underneath, at once.
#[test]
fn refused_port_is_a_connect_error_fast() {
    case("refused", |_server| async move {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let started = Instant::now();
        let err = patient()
            .build()
            .get(format!("http://{addr}/get"))
            .send()
            .await
            .unwrap_err();
        assert_fast("refused port", started.elapsed());
        assert_eq!(err.kind(), &ErrorKind::Connect, "{err:#}");
        assert_eq!(err.phase(), Some(Phase::Connect));
        assert!(err.is_connect() && !err.is_timeout());
        assert_eq!(err.os_error(), Some(111), "ECONNREFUSED: {err:#}");
    });
}

/// A refused port reads well through an error reporter: the message names the URL and no
/// OS error, `{:#}` says "Connection refused" exactly once, and the `source()` chain leads
/// to the `io::Error` itself.
#[test]
fn refused_port_says_the_os_error_once() {
    case("refused, said once", |_server| async move {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let url = format!("http://{addr}/get");
        let err = patient().build().get(&url).send().await.unwrap_err();
        let message = err.to_string();
        let line = format!("{err:#}");
        eprintln!("{{}}:  {message}\n{{:#}}: {line}");
        assert_eq!(message, format!("connection failed to {url}"));
        assert!(!message.contains("os error"), "{message}");
        assert_eq!(line.matches("Connection refused").count(), 1, "{line}");
        assert_eq!(line.matches("os error 111").count(), 1, "{line}");
        assert!(line.starts_with(&format!("{message}: ")), "{line}");
        assert!(line.contains(&addr.to_string()), "{line}");
        // Each level of the chain says its own thing; the last is the OS error.
        let mut texts = Vec::new();
        let mut io = None;
        let mut cause = std::error::Error::source(&err);
        while let Some(e) = cause {
            texts.push(e.to_string());
            io = e.downcast_ref::<std::io::Error>().or(io);
            cause = e.source();
        }
        let io = io.expect("an io::Error along the chain");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io.raw_os_error(), Some(111));
        assert_eq!(texts.last(), Some(&io.to_string()), "{texts:?}");
        for pair in texts.windows(2) {
            assert!(!pair[0].contains(&pair[1]), "said twice: {texts:?}");
        }
        // As anyhow prints `{:#}`: the message, then each cause once.
        assert_eq!(line, format!("{message}: {}", texts.join(": ")));
    });
}

/// Where a broken or oversized response failed: `phase()` is the head for a head over
/// `max_response_header_size`, garbage or a bad `Content-Length`, and the body for a bad
/// chunk size or a body over `max_body_size`.
#[test]
fn invalid_and_too_large_responses_name_their_phase() {
    case("phases of invalid responses", |server| async move {
        let client = patient()
            .max_response_header_size(1024)
            .max_body_size(50)
            .build();
        let head_limit = ErrorKind::TooLarge {
            what: Limit::Head,
            limit: 1024,
        };
        let body_limit = ErrorKind::TooLarge {
            what: Limit::Body,
            limit: 50,
        };
        let invalid = ErrorKind::InvalidResponse(String::new());
        let cases = [
            ("/fault/huge-head?size=4096", &head_limit, Phase::ReadHead),
            ("/fault/garbage", &invalid, Phase::ReadHead),
            ("/fault/bad-length", &invalid, Phase::ReadHead),
            ("/fault/bad-chunk", &invalid, Phase::ReadBody),
            ("/bytes/51", &body_limit, Phase::ReadBody),
        ];
        for (path, kind, phase) in cases {
            let url = server.url(path);
            let err = match client.get(&url).send().await {
                Ok(resp) => resp.bytes().await.unwrap_err(),
                Err(e) => e,
            };
            let same = match (kind, err.kind()) {
                (ErrorKind::InvalidResponse(_), ErrorKind::InvalidResponse(_)) => true,
                (want, got) => want == got,
            };
            eprintln!("{path}: {err:#}");
            assert!(same, "{path}: want {kind:?}, got {err:#}");
            assert_eq!(err.phase(), Some(phase), "{path}: {err:#}");
            assert!(err.to_string().contains(&url), "{err:#}");
        }
    });
}

/// An unknown host (under `.invalid`, through a resolver that knows no names): a DNS error in
/// the resolve phase, at once, with one question asked.
#[test]
fn unknown_host_is_a_dns_error_fast() {
    case("unknown host", |_server| async move {
        let resolver = NoSuchHost::default();
        let client = patient().dns_resolver(resolver.clone()).build();
        let started = Instant::now();
        let err = client
            .get("http://nosuchhost.invalid/get")
            .send()
            .await
            .unwrap_err();
        assert_fast("unknown host", started.elapsed());
        assert_eq!(err.kind(), &ErrorKind::Dns, "{err:#}");
        assert_eq!(err.phase(), Some(Phase::Resolve));
        assert!(!err.is_connect() && !err.is_timeout());
        assert_eq!(*resolver.asked.borrow(), ["nosuchhost.invalid"]);
    });
}

/// A keep-alive response, then the server closes: the next request to that host succeeds,
/// whether it comes at once (the close may not have arrived: the stale connection is retried)
/// or after the close has arrived (checkout notices it). Each lands on a new connection.
#[test]
fn keep_alive_then_server_close_next_request_succeeds() {
    case("keep-alive-then-close", |server| async move {
        let client = patient().build();
        let url = server.url("/fault/keep-alive-then-close");
        for round in 0..6u64 {
            let started = Instant::now();
            let resp = client.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(
                resp.text().await.unwrap(),
                "the server closes this connection now\n"
            );
            assert_fast("keep-alive then close", started.elapsed());
            assert_eq!(server.stats().connections_accepted, round + 1);
            if round % 2 == 1 {
                volley::sleep(Duration::from_millis(50)).await;
            }
        }
        let resp = client.get(server.url("/get")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        assert_eq!(server.stats().connections_accepted, 7);
        assert_eq!(client.idle_connections(), 1);
    });
}

/// A server that answers a 32 MiB POST before reading its body: no deadlock; the client
/// stops sending, reads the answer, and the connection is not reused.
#[test]
fn early_response_to_a_large_body_does_not_deadlock() {
    case("early-response", |server| async move {
        let client = patient().build();
        let body = vec![b'x'; 32 << 20];
        let started = Instant::now();
        let resp = client
            .post(server.url("/fault/early-response"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
        assert_eq!(
            resp.text().await.unwrap(),
            "answered before reading the request body\n"
        );
        let elapsed = started.elapsed();
        eprintln!("early response to a 32 MiB body after {elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert_eq!(client.idle_connections(), 0);
        let resp = client.get(server.url("/get")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    });
}

// ---------------------------------------------------------------------------------------------
// A mixed batch.

/// What one URL of the mixed batch must end with.
#[derive(Debug, Clone)]
enum Expect {
    /// `/bytes/{n}?seed={seed}`: status 200 and exactly these bytes.
    Bytes { n: usize, seed: u64 },
    /// A 200 with this body.
    Text(&'static str),
    /// An error of this kind.
    Fails(ErrorKind),
}

/// 1,000 good URLs with a fault after every 20th (garbage, resets, cut bodies, bad framing,
/// a huge head, stalls, a redirect loop, a refused port, an unknown host, a server close
/// after a keep-alive response): every good one is `Ok` with its exact bytes, every fault an
/// error of its own kind, and none disturbs the others.
#[test]
fn mixed_batch_good_urls_ok_and_faults_fail_each_in_its_own_way() {
    case("mixed batch", |server| async move {
        let read = Duration::from_millis(500);
        let dead = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let head_limit = ErrorKind::TooLarge {
            what: Limit::Head,
            limit: volley::Config::DEFAULT_MAX_HEAD as u64,
        };
        let faults: Vec<(String, Expect)> = vec![
            (
                server.url("/fault/garbage"),
                Expect::Fails(ErrorKind::InvalidResponse(String::new())),
            ),
            (
                server.url("/fault/close-before-response"),
                Expect::Fails(ErrorKind::Io(Phase::ReadHead)),
            ),
            (
                server.url("/fault/reset-body"),
                Expect::Fails(ErrorKind::Io(Phase::ReadBody)),
            ),
            (
                server.url("/fault/short-body"),
                Expect::Fails(ErrorKind::Io(Phase::ReadBody)),
            ),
            (
                server.url("/fault/bad-chunk"),
                Expect::Fails(ErrorKind::InvalidResponse(String::new())),
            ),
            (
                server.url("/fault/bad-length"),
                Expect::Fails(ErrorKind::InvalidResponse(String::new())),
            ),
            (server.url("/fault/huge-head"), Expect::Fails(head_limit)),
            (
                server.url("/fault/stall-head"),
                Expect::Fails(timeout(Phase::ReadHead, read)),
            ),
            (
                server.url("/fault/stall-body?after=100"),
                Expect::Fails(timeout(Phase::ReadBody, read)),
            ),
            (
                server.url("/fault/redirect-loop"),
                Expect::Fails(ErrorKind::TooManyRedirects(10)),
            ),
            (
                format!("http://{dead}/bytes/10"),
                Expect::Fails(ErrorKind::Connect),
            ),
            (
                "http://nosuchhost.invalid/bytes/10".to_owned(),
                Expect::Fails(ErrorKind::Dns),
            ),
            (
                server.url("/fault/keep-alive-then-close"),
                Expect::Text("the server closes this connection now\n"),
            ),
        ];
        let mut faults = faults.into_iter().cycle();
        let mut plan: Vec<(String, Expect)> = Vec::new();
        for i in 0..1000u64 {
            // Sizes from empty to 48 KiB, odd ones too, so that lengths that are not whole
            // words of the generator are checked.
            let n = match i % 10 {
                0 => 0,
                1 => 1,
                _ => ((i * 7919) % 49_152) as usize,
            };
            let seed = 1000 + i;
            plan.push((
                server.url(&format!("/bytes/{n}?seed={seed}")),
                Expect::Bytes { n, seed },
            ));
            if i % 20 == 19 {
                plan.push(faults.next().unwrap());
            }
        }
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(read)
            .timeout(Duration::from_secs(30))
            .dns_resolver(NoSuchHost::default())
            .build();
        let urls: Vec<String> = plan.iter().map(|(url, _)| url.clone()).collect();
        let started = Instant::now();
        // Each fault is planned many times, and each attempt's outcome is what is checked.
        let report = client
            .fetch_all(urls)
            .keep_bodies(true)
            .duplicates(volley::batch::Duplicates::Fetch)
            .retry(volley::RetryPolicy::never())
            .run()
            .await;
        let elapsed = started.elapsed();
        eprintln!("mixed batch of {} in {elapsed:?}", plan.len());
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");

        assert_eq!(report.results.len(), plan.len());
        let mut good = 0;
        let mut failed = 0;
        for (result, (url, expect)) in report.results.iter().zip(&plan) {
            assert_eq!(result.url.as_ref().map(|u| u.as_str()), Some(url.as_str()));
            match expect {
                Expect::Bytes { n, seed } => {
                    let fetched = match &result.outcome {
                        Ok(fetched) => fetched,
                        Err(e) => panic!("{url}: {e:#}"),
                    };
                    assert_eq!(fetched.status, 200, "{url}");
                    assert_eq!(fetched.body_len, *n as u64, "{url}");
                    assert_eq!(fetched.body.len(), *n, "{url}");
                    let mut got = Checksum::default();
                    got.update(&fetched.body);
                    let mut want = Checksum::default();
                    want.update(&seeded_bytes(*seed, *n));
                    assert_eq!(got, want, "{url}: body differs");
                    good += 1;
                }
                Expect::Text(text) => {
                    let fetched = match &result.outcome {
                        Ok(fetched) => fetched,
                        Err(e) => panic!("{url}: {e:#}"),
                    };
                    assert_eq!(fetched.body, text.as_bytes(), "{url}");
                    good += 1;
                }
                Expect::Fails(kind) => {
                    let err = match &result.outcome {
                        Ok(fetched) => panic!("{url}: Ok {}, want {kind:?}", fetched.status),
                        Err(e) => e,
                    };
                    let same = match (kind, err.kind()) {
                        (ErrorKind::InvalidResponse(_), ErrorKind::InvalidResponse(_)) => true,
                        (want, got) => want == got,
                    };
                    assert!(same, "{url}: want {kind:?}, got {err:#}");
                    failed += 1;
                }
            }
        }
        let faulty = plan
            .iter()
            .filter(|(_, e)| matches!(e, Expect::Fails(_)))
            .count() as u64;
        assert_eq!(plan.len(), 1050);
        assert_eq!(good + failed, 1050);
        assert_eq!(failed, faulty);
        assert!(faulty >= 45, "{faulty} faults");
        assert_eq!(report.summary.ok, good);
        assert_eq!(report.summary.failed, failed);
    });
}
