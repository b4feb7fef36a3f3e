//! What a hostile caller input or a hostile server cannot do to the client, end to end:
//! CR, LF or NUL never reach the wire; credentials do not follow a redirect to another
//! origin; a redirect cannot lead to another scheme; heads and bodies are capped; and no
//! response can make the client allocate without bound.
//!
//! Hostile servers are plain `std::net` listeners on threads, writing exactly the bytes under
//! test. Every one of them is bounded: accepts and writes time out, and writing stops at a
//! fixed size or when the client hangs up. The tests take one lock, so that the memory
//! measurements (`VmRSS` of this process) see one test at a time.

mod util;

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{local, watchdog, with_server};
use volley::{Client, ClientBuilder, Error, ErrorKind, Limit, Method, Phase, Runtime};
use volley_testserver::Server;

/// Held by every test of this file: memory is measured with no other test running.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` alone, under a watchdog, on a fresh runtime bounded to 60 s.
fn alone<F: Future<Output = ()>>(name: &'static str, f: F) {
    let _serial = serial();
    let _dog = watchdog(name, 90);
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        volley::timeout(Duration::from_secs(60), f)
            .await
            .expect("test timed out");
    });
}

/// Like [`alone`], with a fresh embedded server.
fn alone_with_server<F, Fut>(name: &'static str, f: F)
where
    F: FnOnce(Server) -> Fut,
    Fut: Future<Output = ()>,
{
    let _serial = serial();
    let _dog = watchdog(name, 90);
    with_server(f);
}

/// Failures that are not timeouts must come within this; every timeout is 5 s or more.
const FAST: Duration = Duration::from_millis(1000);

/// A client with long timeouts (5 s per read, write or connect; 30 s in total), so that an
/// error within [`FAST`] is not a timeout.
fn patient() -> ClientBuilder {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
}

fn is_invalid_input(err: &Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::InvalidRequest(_) | ErrorKind::InvalidUrl(_)
    )
}

// ---------------------------------------------------------------------------------------------
// CR, LF and NUL never reach the wire.

/// A plain listener that records every connection and the bytes that came on it, and answers
/// each with a `204` and a close. It stops when dropped, or after 60 s.
struct WireRecorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl WireRecorder {
    fn start() -> WireRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_seen, thread_stop) = (seen.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !thread_stop.load(Ordering::Acquire) && Instant::now() < deadline {
                let mut stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                let bytes = read_head(&mut stream);
                thread_seen.lock().unwrap().push(bytes);
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            }
        });
        WireRecorder {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What each connection so far carried.
    fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for WireRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads from a blocking `stream` until the end of a request head, EOF, an error, 1 s of
/// silence or 64 KiB; returns what came.
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") && bytes.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    bytes
}

/// The three bytes that must never reach the wire from caller input, alone and as CRLF.
const BAD: [&str; 4] = ["\r", "\n", "\0", "\r\n"];

/// True if `bytes` is a request head in which CR and LF appear only as CRLF line ends and
/// NUL not at all.
fn only_crlf_line_ends(bytes: &[u8]) -> bool {
    !bytes.contains(&0)
        && bytes.iter().enumerate().all(|(i, &b)| match b {
            b'\r' => bytes.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && bytes[i - 1] == b'\r',
            _ => true,
        })
}

/// CR, LF or NUL in a header value, a header name or the URL make the request an error
/// before anything is sent: the listener sees no connection at all. A method cannot even be
/// made with them. A request whose Basic credentials hold them (encoded, so harmless) does
/// reach the listener, which proves it was listening, with only CRLF line ends on the wire.
#[test]
fn cr_lf_and_nul_never_reach_the_wire() {
    alone("cr-lf-nul", async {
        let wire = WireRecorder::start();
        let client = patient().build();
        let mut refused = 0;
        let mut check = |what: String, result: Result<volley::Response, Error>, took: Duration| {
            let err = match result {
                Ok(resp) => panic!("{what}: sent, status {}", resp.status()),
                Err(err) => err,
            };
            assert!(is_invalid_input(&err), "{what}: {err:#}");
            assert!(took < FAST, "{what}: took {took:?}");
            refused += 1;
        };
        for bad in BAD {
            let value = format!("a{bad}Injected: yes");
            let started = Instant::now();
            let result = client
                .get(wire.url("/"))
                .header("x-test", value.as_str())
                .send()
                .await;
            check(format!("value {value:?}"), result, started.elapsed());
            let started = Instant::now();
            let result = client
                .get(wire.url("/"))
                .header("x-test", value.as_bytes())
                .send()
                .await;
            check(format!("value bytes {value:?}"), result, started.elapsed());

            let name = format!("x-a{bad}b");
            let started = Instant::now();
            let result = client
                .get(wire.url("/"))
                .header(name.as_str(), "v")
                .send()
                .await;
            check(format!("name {name:?}"), result, started.elapsed());
            let started = Instant::now();
            let result = client
                .get(wire.url("/"))
                .header(name.as_bytes(), "v")
                .send()
                .await;
            check(format!("name bytes {name:?}"), result, started.elapsed());

            for url in [
                wire.url(&format!("/path{bad}Injected: yes")),
                wire.url(&format!("/path?q=a{bad}Injected: yes")),
                wire.url(&format!("/path#a{bad}b")),
                format!("http://us{bad}er:pw@{}/", wire.addr),
                format!("http://127.0.0.1{bad}:{}/", wire.addr.port()),
            ] {
                let started = Instant::now();
                let result = client.get(url.as_str()).send().await;
                check(format!("url {url:?}"), result, started.elapsed());
            }

            for method in [
                format!("GET{bad}"),
                format!("G{bad}ET"),
                format!("GET{bad}X: y"),
            ] {
                assert!(
                    Method::from_bytes(method.as_bytes()).is_err(),
                    "method {method:?} can be made"
                );
            }

            let err = Client::builder()
                .user_agent(&format!("agent{bad}Injected: yes"))
                .try_build()
                .unwrap_err();
            assert!(is_invalid_input(&err), "{err:#}");
        }
        // The same URLs through a batch.
        let urls: Vec<String> = BAD
            .iter()
            .map(|bad| wire.url(&format!("/batch{bad}Injected: yes")))
            .collect();
        let report = client.fetch_all(urls).run().await;
        assert_eq!(report.summary.failed, 4);
        for result in &report.results {
            let err = result.outcome.as_ref().unwrap_err();
            assert!(is_invalid_input(err), "{err:#}");
        }

        assert_eq!(refused, 4 * 9);
        // Anything sent would have arrived by now; give a connect a moment anyway.
        volley::sleep(Duration::from_millis(100)).await;
        assert_eq!(wire.seen(), Vec::<Vec<u8>>::new(), "bytes reached the wire");

        // The control: credentials with CR, LF and NUL go out base64-encoded, so the request
        // is sent, and the listener records it.
        let resp = client
            .get(wire.url("/control"))
            .basic_auth("us\r\ner", Some("p\0w\nd"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        let seen = wire.seen();
        assert_eq!(seen.len(), 1, "the listener was listening");
        assert!(seen[0].starts_with(b"GET /control HTTP/1.1\r\n"));
        assert!(seen[0].ends_with(b"\r\n\r\n"));
        assert!(
            only_crlf_line_ends(&seen[0]),
            "{:?}",
            String::from_utf8_lossy(&seen[0])
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Credentials and redirects.

/// Percent-encodes everything but unreserved characters, for a URL inside a query.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/redirect-to` on `server` with `status`, to `target`.
fn redirect_to(server: &Server, status: u16, target: &str) -> String {
    server.url(&format!(
        "/redirect-to?status_code={status}&url={}",
        encode(target)
    ))
}

/// One credential: how to attach it, and the header it must (or must not) arrive as.
struct Credential {
    name: &'static str,
    /// The `/headers` key and the value the same origin must see.
    header: &'static str,
    value: &'static str,
}

const CREDENTIALS: [Credential; 4] = [
    Credential {
        name: "Authorization",
        header: "Authorization",
        value: "Bearer s3cret-auth",
    },
    Credential {
        name: "Cookie",
        header: "Cookie",
        value: "session=s3cret-cookie",
    },
    Credential {
        name: "Proxy-Authorization",
        header: "Proxy-Authorization",
        value: "Basic s3cret-proxy",
    },
    Credential {
        name: "userinfo",
        header: "Authorization",
        // base64("alice:s3cret-pass")
        value: "Basic YWxpY2U6czNjcmV0LXBhc3M=",
    },
];

/// Sends a GET of `url` carrying `credential` and returns the final URL and the `headers`
/// object of the `/headers` document it ends at.
async fn headers_seen(
    client: &Client,
    credential: &Credential,
    url: &str,
) -> (String, serde_json::Map<String, Value>) {
    let request = match credential.name {
        "userinfo" => client.get(url.replacen("http://", "http://alice:s3cret-pass@", 1)),
        header => client.get(url).header(header, credential.value),
    };
    let resp = request.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let final_url = resp.url().to_string();
    let json: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let headers = json["headers"]
        .as_object()
        .expect("a headers object")
        .clone();
    (final_url, headers)
}

/// `Authorization`, `Cookie`, `Proxy-Authorization` and URL userinfo (sent as Basic auth) go
/// along a same-origin redirect and are dropped on one to another origin (another port,
/// another host name on the same port), for every redirect status, and do not come back when
/// a later redirect returns to the first origin.
#[test]
fn credentials_are_dropped_on_cross_origin_redirects() {
    alone_with_server("credentials", |a| async move {
        let b = Server::bind(local()).unwrap();
        // Two names for one loopback address: another host on the same port is another origin.
        let client = patient()
            .resolve("one.test", a.local_addr())
            .resolve("two.test", a.local_addr())
            .build();
        let port = a.local_addr().port();
        for credential in &CREDENTIALS {
            for status in [301, 302, 303, 307, 308] {
                let what = format!("{} via {status}", credential.name);
                // Same origin: kept.
                let url = redirect_to(&a, status, "/headers");
                let (_, seen) = headers_seen(&client, credential, &url).await;
                assert_eq!(
                    seen.get(credential.header).and_then(Value::as_str),
                    Some(credential.value),
                    "{what}, same origin: {seen:?}"
                );

                // Another port.
                let before = b.stats().requests;
                let url = redirect_to(&a, status, &b.url("/headers"));
                let (final_url, seen) = headers_seen(&client, credential, &url).await;
                assert_eq!(final_url, b.url("/headers"), "{what}");
                assert_eq!(b.stats().requests, before + 1, "{what}");
                assert!(
                    !seen.contains_key(credential.header),
                    "{what}, other port: {seen:?}"
                );

                // Another host name, same address and port.
                let from = format!("http://one.test:{port}/redirect-to?status_code={status}&url=");
                let to = format!("http://two.test:{port}/headers");
                let url = format!("{from}{}", encode(&to));
                let (final_url, seen) = headers_seen(&client, credential, &url).await;
                assert_eq!(final_url, to, "{what}");
                assert!(
                    !seen.contains_key(credential.header),
                    "{what}, other host: {seen:?}"
                );
                // The control: one.test to one.test keeps a header. (Userinfo belongs to its
                // URL: an absolute target without one carries none, even to the same origin.)
                if credential.name != "userinfo" {
                    let to = format!("http://one.test:{port}/headers");
                    let url = format!("{from}{}", encode(&to));
                    let (_, seen) = headers_seen(&client, credential, &url).await;
                    assert_eq!(
                        seen.get(credential.header).and_then(Value::as_str),
                        Some(credential.value),
                        "{what}, one.test to itself: {seen:?}"
                    );
                }
            }
            // Out to another origin and back: the credential stays dropped.
            let back = redirect_to(&b, 302, &a.url("/headers"));
            let url = redirect_to(&a, 302, &back);
            let (final_url, seen) = headers_seen(&client, credential, &url).await;
            assert_eq!(final_url, a.url("/headers"));
            assert!(
                !seen.contains_key(credential.header),
                "{}, there and back: {seen:?}",
                credential.name
            );
        }
    });
}

/// A redirect to a scheme other than http is refused with an error naming the scheme and
/// the target, without following it.
#[test]
fn redirects_to_other_schemes_are_refused() {
    alone_with_server("schemes", |server| async move {
        let client = patient().build();
        for (target, scheme) in [
            ("ftp://127.0.0.1/pub/file", "ftp"),
            ("file:///etc/passwd", "file"),
            ("data:text/plain,hello", "data"),
            ("javascript:alert(1)", "javascript"),
            ("gopher://127.0.0.1:70/", "gopher"),
        ] {
            let before = server.stats().requests;
            let started = Instant::now();
            let err = client
                .get(redirect_to(&server, 302, target))
                .send()
                .await
                .unwrap_err();
            assert!(started.elapsed() < FAST, "{target}");
            assert_eq!(
                err.kind(),
                &ErrorKind::UnsupportedScheme(scheme.to_owned()),
                "{target}: {err:#}"
            );
            assert_eq!(err.url().map(|u| u.as_str()), Some(target), "{err:#}");
            assert!(
                err.to_string()
                    .starts_with(&format!("unsupported url scheme \"{scheme}\" in {target}")),
                "{err:#}"
            );
            assert_eq!(server.stats().requests, before + 1, "{target}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Hostile servers.

/// A plain-thread server for `conns` connections, one after another: for each, it reads the
/// request head and hands the stream to `reply`, then closes it. It gives up waiting for a
/// connection after 10 s; writes time out after 5 s.
fn hostile<F>(conns: usize, reply: F) -> SocketAddr
where
    F: Fn(&mut TcpStream) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for _ in 0..conns {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
                    Err(_) => return,
                }
            };
            read_head(&mut stream);
            reply(&mut stream);
        }
    });
    addr
}

/// Writes `len` copies of `byte` in 16 KiB pieces; stops quietly when the client goes away.
fn write_repeated(stream: &mut TcpStream, byte: u8, len: usize) -> std::io::Result<()> {
    let piece = [byte; 16 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(piece.len());
        stream.write_all(&piece[..n])?;
        left -= n;
    }
    Ok(())
}

/// Writes `line` again and again, `count` times, in writes of about 16 KiB.
fn write_lines(stream: &mut TcpStream, line: &[u8], count: usize) -> std::io::Result<()> {
    let per_write = (16 * 1024 / line.len()).max(1);
    let block = line.repeat(per_write);
    let mut left = count;
    while left > 0 {
        let n = left.min(per_write);
        stream.write_all(&block[..n * line.len()])?;
        left -= n;
    }
    Ok(())
}

/// This process's resident set size now (`VmRSS`).
fn rss() -> u64 {
    util::status_bytes("VmRSS:")
}

/// Resets the peak resident set size (`VmHWM`) to the current one; false if the kernel
/// refused.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak resident set size since the last reset (`VmHWM`).
fn peak_rss() -> u64 {
    util::status_bytes("VmHWM:")
}

/// `GET /` of `addr` with `client`, read to the end of the body: the error, and how long it
/// took to come.
async fn fetch_err(client: &Client, addr: SocketAddr) -> (Error, Duration) {
    let started = Instant::now();
    let result = match client.get(format!("http://{addr}/")).send().await {
        Ok(resp) => resp.bytes().await.map(|b| b.len()),
        Err(e) => Err(e),
    };
    match result {
        Ok(len) => panic!("a {len}-byte body from a hostile server was accepted"),
        Err(e) => (e, started.elapsed()),
    }
}

/// A response head exactly `len` bytes long (with `Content-Length: 2`), and its body `ok`.
fn head_of(len: usize) -> Vec<u8> {
    let bare = "HTTP/1.1 200 OK\r\nX-Pad: \r\nContent-Length: 2\r\n\r\n".len();
    assert!(len > bare);
    let head = format!(
        "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: 2\r\n\r\nok",
        "p".repeat(len - bare)
    );
    assert_eq!(head.len(), len + 2);
    head.into_bytes()
}

/// The head limit is configurable and exact: a head of exactly the limit passes, one byte
/// more fails with a limit error naming the limit; below the 2 KiB first buffer, at the
/// 64 KiB default, and above it.
#[test]
fn head_cap_is_configurable_and_exact() {
    alone("head cap", async {
        for (limit, configured) in [(1000, true), (65_536, false), (200_000, true)] {
            let under = hostile(1, move |s| {
                let _ = s.write_all(&head_of(limit));
            });
            let over = hostile(1, move |s| {
                let _ = s.write_all(&head_of(limit + 1));
            });
            let mut builder = patient();
            if configured {
                builder = builder.max_response_header_size(limit);
            }
            let client = builder.build();
            let resp = client.get(format!("http://{under}/")).send().await;
            let resp = resp.unwrap_or_else(|e| panic!("a {limit}-byte head, limit {limit}: {e:#}"));
            assert_eq!(resp.text().await.unwrap(), "ok");
            let started = Instant::now();
            let err = client
                .get(format!("http://{over}/"))
                .send()
                .await
                .unwrap_err();
            assert!(started.elapsed() < FAST);
            assert_eq!(
                err.kind(),
                &ErrorKind::TooLarge {
                    what: Limit::Head,
                    limit: limit as u64
                },
                "a {}-byte head, limit {limit}: {err:#}",
                limit + 1
            );
        }
    });
}

/// The body limit is configurable and exact, for `Content-Length` and chunked bodies: a body
/// of exactly the limit passes, one byte more fails with a limit error naming the limit.
#[test]
fn body_cap_is_configurable_and_exact() {
    alone("body cap", async {
        let limit = 300_000usize;
        let sized = |len: usize| {
            hostile(1, move |s| {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                let _ = s.write_all(head.as_bytes());
                let _ = write_repeated(s, b'x', len);
            })
        };
        let chunked = |len: usize| {
            hostile(1, move |s| {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                // 1000-byte chunks, then the rest, then the last chunk.
                let mut left = len;
                while left > 0 {
                    let n = left.min(1000);
                    let chunk = format!("{n:x}\r\n{}\r\n", "x".repeat(n));
                    if s.write_all(chunk.as_bytes()).is_err() {
                        return;
                    }
                    left -= n;
                }
                let _ = s.write_all(b"0\r\n\r\n");
            })
        };
        let client = patient().max_body_size(limit as u64).build();
        for (framing, serve) in [
            ("content-length", &sized as &dyn Fn(usize) -> SocketAddr),
            ("chunked", &chunked),
        ] {
            let ok = serve(limit);
            let body = client
                .get(format!("http://{ok}/"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{framing}, {limit} bytes: {e:#}"));
            assert_eq!(body.len(), limit, "{framing}");
            let over = serve(limit + 1);
            let (err, took) = fetch_err(&client, over).await;
            assert!(took < FAST, "{framing}: {took:?}");
            assert_eq!(
                err.kind(),
                &ErrorKind::TooLarge {
                    what: Limit::Body,
                    limit: limit as u64
                },
                "{framing}: {err:#}"
            );
        }
    });
}

/// What a hostile response must end in.
enum Want {
    Invalid(&'static str),
    TooLarge(Limit, u64),
    Io(Phase, &'static str),
}

/// Responses built to make a client allocate without bound: each ends in a clear error, fast,
/// and the process's resident memory grows by less than 16 MiB over all of them (the servers
/// send up to 8 MiB each, from a 16 KiB buffer; a body the client keeps is at most 1 MiB).
#[test]
fn hostile_responses_cannot_make_the_client_allocate_without_bound() {
    alone("allocation", async {
        const MIB: usize = 1 << 20;
        type Reply = Box<dyn Fn(&mut TcpStream) + Send>;
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let cases: Vec<(&str, Reply, Want)> = vec![
            (
                "a chunk size of 1 and 1 MiB of zeros",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(chunked);
                    let _ = s.write_all(b"1");
                    let _ = write_repeated(s, b'0', MIB);
                    let _ = s.write_all(b"\r\n");
                }),
                Want::Invalid("chunk size overflows 64 bits"),
            ),
            (
                "1 MiB of chunk extension",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(chunked);
                    let _ = s.write_all(b"1;ext=");
                    let _ = write_repeated(s, b'e', MIB);
                    let _ = s.write_all(b"\r\nx\r\n0\r\n\r\n");
                }),
                Want::Invalid("chunk extension too long"),
            ),
            (
                "1 MiB of whitespace after a chunk size",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(chunked);
                    let _ = s.write_all(b"1");
                    let _ = write_repeated(s, b' ', MIB);
                    let _ = s.write_all(b"\r\nx\r\n0\r\n\r\n");
                }),
                Want::Invalid("chunk extension too long"),
            ),
            (
                "1 MiB of leading zeros in a chunk size",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(chunked);
                    let _ = write_repeated(s, b'0', MIB);
                }),
                Want::Invalid("chunk size has too many digits"),
            ),
            (
                "a chunk size of 2^64 - 1 and 1 MiB of data, then the close",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(chunked);
                    let _ = s.write_all(b"ffffffffffffffff\r\n");
                    let _ = write_repeated(s, b'd', MIB);
                }),
                Want::Io(Phase::ReadBody, "chunked body ended after 1048576 bytes"),
            ),
            (
                "a chunk size of 2^68 - 1",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(chunked);
                    let _ = s.write_all(b"fffffffffffffffff\r\n");
                    let _ = write_repeated(s, b'd', MIB);
                }),
                Want::Invalid("chunk size overflows 64 bits"),
            ),
            (
                "8 MiB of trailer fields",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(chunked);
                    let _ = s.write_all(b"2\r\nok\r\n0\r\n");
                    let _ = write_lines(s, b"X-Trailer: aaaaaaaaaaaaaaaaaaaaaa\r\n", 8 * MIB / 34);
                    let _ = s.write_all(b"\r\n");
                }),
                Want::TooLarge(Limit::Head, volley::Config::DEFAULT_MAX_HEAD as u64),
            ),
            (
                "one 8 MiB trailer line",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(chunked);
                    let _ = s.write_all(b"0\r\nX-Trailer: ");
                    let _ = write_repeated(s, b'a', 8 * MIB);
                    let _ = s.write_all(b"\r\n\r\n");
                }),
                Want::TooLarge(Limit::Head, volley::Config::DEFAULT_MAX_HEAD as u64),
            ),
            (
                "Content-Length: 2^64 - 1 and 1 MiB of body, then the close",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
                    );
                    let _ = write_repeated(s, b'b', MIB);
                }),
                Want::Io(
                    Phase::ReadBody,
                    "body ended after 1048576 of 18446744073709551615 bytes",
                ),
            ),
            (
                "Content-Length: 2^64",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
                    );
                    let _ = write_repeated(s, b'b', MIB);
                }),
                Want::Invalid("invalid content-length"),
            ),
            (
                "129 header fields",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
                    let _ = write_lines(s, b"X-Many: 1\r\n", 129);
                    let _ = s.write_all(b"Content-Length: 2\r\n\r\nok");
                }),
                Want::Invalid("more than 128 header fields"),
            ),
            (
                "one 8 MiB header line",
                Box::new(move |s: &mut TcpStream| {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
                    let _ = write_repeated(s, b'h', 8 * MIB);
                }),
                Want::TooLarge(Limit::Head, volley::Config::DEFAULT_MAX_HEAD as u64),
            ),
        ];
        let client = patient().build();
        // Warm up, so that the runtime's and the allocator's first buffers are not counted.
        let warm = hostile(1, |s| {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        });
        let resp = client.get(format!("http://{warm}/")).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), "ok");
        let before = rss();
        let hwm = reset_peak_rss();
        if !hwm {
            util::skip(
                "security: peak memory of hostile framing",
                "/proc/self/clear_refs is not writable: the peak is sampled, not the kernel's high-water mark",
            );
        }
        let mut peak = before;
        for (what, reply, want) in cases {
            let addr = hostile(1, reply);
            let (err, took) = fetch_err(&client, addr).await;
            peak = peak.max(rss());
            eprintln!("{what}: {took:?}: {err:#}");
            assert!(took < FAST, "{what}: took {took:?}");
            // The why is the message's (an invalid response) or its cause's (an I/O error).
            let message = format!("{err:#}");
            match want {
                Want::Invalid(why) => {
                    assert!(
                        matches!(err.kind(), ErrorKind::InvalidResponse(_)),
                        "{what}: {err:#}"
                    );
                    assert!(message.contains(why), "{what}: {err:#}");
                }
                Want::TooLarge(what_limit, limit) => assert_eq!(
                    err.kind(),
                    &ErrorKind::TooLarge {
                        what: what_limit,
                        limit
                    },
                    "{what}: {err:#}"
                ),
                Want::Io(phase, why) => {
                    assert_eq!(err.kind(), &ErrorKind::Io(phase), "{what}: {err:#}");
                    assert!(message.contains(why), "{what}: {err:#}");
                }
            }
        }
        if hwm {
            // The kernel's high-water mark also sees what came and went between samples.
            peak = peak.max(peak_rss());
        }
        let grown = peak.saturating_sub(before);
        eprintln!(
            "VmRSS {} KiB before, {} KiB at the peak{}: +{} KiB",
            before / 1024,
            peak / 1024,
            if hwm { " (VmHWM)" } else { " (sampled)" },
            grown / 1024
        );
        assert!(grown < 16 << 20, "resident memory grew by {grown} bytes");
        assert_eq!(client.idle_connections(), 0);
    });
}
