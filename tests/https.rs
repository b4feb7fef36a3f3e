//! HTTPS through the client, on loopback only: the committed test certificates of
//! `tests/util/pki.rs` (a trusted CA, a good leaf for `localhost` and 127.0.0.1, an expired one, one for another
//! name, one from an untrusted CA), served by a small blocking rustls HTTP server on plain
//! threads (one per connection), whose faults are chosen per path.
#![cfg(feature = "tls")]

#[path = "util/pki.rs"]
mod pki;
mod util;

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use volley::net::tls::rustls;
use volley::{redirect, CertReason, Certificate, Client, ClientBuilder, ErrorKind, Phase, Runtime};
use volley_testserver::{ProxyServer, Server};

use pki::{pki, Leaf};
use util::{local, watchdog, Checksum, Prng};

// ---------------------------------------------------------------------------------------------
// Certificates: `tests/util/pki.rs`

/// A client builder that trusts the test CA only.
fn trusting() -> ClientBuilder {
    let ca = Certificate::from_pem(pki().ca_pem.as_bytes()).unwrap();
    Client::builder()
        .tls_built_in_roots(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(20))
}

// ---------------------------------------------------------------------------------------------
// The server: blocking rustls HTTP/1.1 on threads

/// How the server ends a response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    /// Keeps the connection for the next request.
    KeepAlive,
    /// Sends `close_notify`, then closes.
    CloseNotify,
    /// Closes the TCP connection without `close_notify`.
    Abrupt,
}

/// The server's answers, by path:
///
/// - `/bytes/N?seed=S`: `N` bytes of `Prng::new(S)`, with `Content-Length`.
/// - `/post`: `len=L sum=Checksum(..)` of the request body.
/// - `/head`: the request head as the body.
/// - `/until-close?notify=1`: a body ended by the close; with `close_notify` if `notify=1`,
///   else an abrupt close.
/// - `/redirect?to=URL`: 302 to `URL`.
fn answer(path: &str, head: &str, body: &[u8]) -> (Vec<u8>, End) {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let ok = |body: &[u8]| {
        let mut out =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        out.extend_from_slice(body);
        (out, End::KeepAlive)
    };
    if let Some(n) = route.strip_prefix("/bytes/") {
        let n: usize = n.parse().unwrap();
        let seed: u64 = param("seed").map_or(1, |s| s.parse().unwrap());
        let mut data = vec![0; n];
        Prng::new(seed).fill(&mut data);
        return ok(&data);
    }
    match route {
        "/post" => {
            let mut sum = Checksum::default();
            sum.update(body);
            ok(format!("len={} sum={sum:?}", body.len()).as_bytes())
        }
        "/head" => ok(head.as_bytes()),
        "/until-close" => {
            let end = match param("notify").as_deref() {
                Some("1") => End::CloseNotify,
                _ => End::Abrupt,
            };
            let out = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nthe body ends with the close\n";
            (out.to_vec(), end)
        }
        "/redirect" => {
            let to = param("to").unwrap();
            let out = format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n");
            (out.into_bytes(), End::KeepAlive)
        }
        _ => (
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
            End::KeepAlive,
        ),
    }
}

/// A TLS HTTP server on `127.0.0.1`: connections accepted and heads received, for checks.
struct TlsServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl TlsServer {
    fn start(leaf: &Leaf) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (accepted.clone(), heads.clone());
        // The accept thread outlives the test; the process ends it.
        thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let (config, log) = (config.clone(), log.clone());
                thread::spawn(move || {
                    let _ = serve(tcp, config, log);
                });
            }
        });
        TlsServer {
            addr,
            accepted,
            heads,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Serves one connection: requests in turn, until the client closes or a path ends it.
fn serve(
    tcp: StdStream,
    config: Arc<rustls::ServerConfig>,
    log: Arc<Mutex<Vec<String>>>,
) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_nodelay(true)?;
    let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk)? {
                0 => return Ok(()),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match stream.read(&mut chunk)? {
                0 => return Ok(()),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + length).skip(head_end).collect();
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        log.lock().unwrap().push(head.clone());
        let (reply, end) = answer(&path, &head, &body);
        stream.write_all(&reply)?;
        stream.flush()?;
        match end {
            End::KeepAlive => {}
            End::CloseNotify => {
                stream.conn.send_close_notify();
                stream.flush()?;
                return Ok(());
            }
            // Dropping the stream closes the socket: a FIN with no `close_notify` first.
            End::Abrupt => return Ok(()),
        }
    }
}

/// Runs `future` on a fresh runtime, under a watchdog and a 60 s bound.
fn run<F: std::future::Future<Output = ()>>(name: &'static str, future: F) {
    let _dog = watchdog(name, 90);
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        volley::timeout(Duration::from_secs(60), future)
            .await
            .expect("test timed out")
    });
}

/// The body of a `/bytes/N?seed=S` answer.
fn seeded(n: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0; n];
    Prng::new(seed).fill(&mut data);
    data
}

// ---------------------------------------------------------------------------------------------
// Tests

/// A good certificate: GET and POST with checksummed bodies, by name (`localhost`, pinned to
/// the server with `resolve`) and by IP (127.0.0.1, an IP SAN). The handshake has its own
/// timing, and the connect timing does not include it.
#[test]
fn good_certificate_get_and_post() {
    let server = TlsServer::start(&pki().good);
    run("good_certificate_get_and_post", async {
        // A port no one listens on for localhost: `resolve` pins it to the server's address.
        let client = trusting().resolve("localhost", server.addr).build();
        for host in ["localhost", "127.0.0.1"] {
            let n = 1 << 20;
            let response = client
                .get(server.url(host, &format!("/bytes/{n}?seed=7")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.url().scheme(), "https");
            let timings = response.timings();
            assert!(timings.tls > Duration::ZERO, "{timings:?}");
            assert!(!timings.reused);
            let body = response.bytes().await.unwrap();
            assert_eq!(body.len(), n);
            assert!(body[..] == seeded(n, 7)[..], "{host}: body differs");

            let sent = seeded(3 << 19, 11);
            let mut sum = Checksum::default();
            sum.update(&sent);
            let text = client
                .post(server.url(host, "/post"))
                .body(sent.clone())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert_eq!(text, format!("len={} sum={sum:?}", sent.len()), "{host}");
        }
    });
}

/// Each certificate failure is a `Certificate` error saying why, naming the URL, with the
/// rustls error as its source; no request went out.
#[test]
fn certificate_errors_say_why() {
    let cases = [
        (&pki().wrong_name, CertReason::WrongName, "wrong name"),
        (&pki().expired, CertReason::Expired, "expired"),
        (
            &pki().unknown_ca,
            CertReason::UnknownIssuer,
            "unknown issuer",
        ),
    ];
    for (leaf, reason, words) in cases {
        let server = TlsServer::start(leaf);
        run("certificate_errors_say_why", async {
            let url = server.url("localhost", "/head");
            let client = trusting().resolve("localhost", server.addr).build();
            let e = client.get(&url).send().await.unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::Certificate(reason), "{e:#}");
            assert!(e.is_certificate() && e.is_tls() && !e.is_timeout(), "{e:#}");
            assert_eq!(e.phase(), Some(Phase::Tls));
            assert_eq!(e.url().map(|u| u.as_str()), Some(&*url));
            let message = e.to_string();
            assert!(message.contains(words), "{message}");
            assert!(message.contains(&url), "{message}");
            let source = std::error::Error::source(&e).expect("a source");
            assert!(
                source.downcast_ref::<rustls::Error>().is_some(),
                "{source:?}"
            );
        });
        assert!(server.heads().is_empty());
    }
}

/// An unknown CA is refused by default and accepted with `danger_accept_invalid_certs`;
/// so is a wrong name. The built-in roots alone do not trust the test CA.
#[test]
fn danger_accept_invalid_certs_accepts_them() {
    let unknown = TlsServer::start(&pki().unknown_ca);
    let wrong = TlsServer::start(&pki().wrong_name);
    run("danger_accept_invalid_certs_accepts_them", async {
        let strict = Client::builder().resolve("localhost", unknown.addr).build();
        let e = strict
            .get(unknown.url("localhost", "/head"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Certificate(CertReason::UnknownIssuer));
        let lax = Client::builder().danger_accept_invalid_certs(true).build();
        for server in [&unknown, &wrong] {
            let text = lax
                .get(server.url("127.0.0.1", "/head"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(text.starts_with("GET /head HTTP/1.1\r\n"), "{text}");
        }
    });
}

/// A server that accepts and never answers the ClientHello: the handshake times out in the
/// TLS phase, after the connect timeout (which bounds it on its own clock), within bounds.
#[test]
fn stalled_handshake_times_out_in_the_tls_phase() {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    run("stalled_handshake_times_out_in_the_tls_phase", async {
        let client = trusting()
            .connect_timeout(Duration::from_millis(300))
            .build();
        let started = Instant::now();
        let e = client
            .get(format!("https://127.0.0.1:{}/", addr.port()))
            .send()
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::Timeout {
                    phase: Phase::Tls,
                    ..
                }
            ),
            "{e:#}"
        );
        assert!(e.is_tls() && e.is_timeout(), "{e:#}");
        assert!(e.to_string().contains("TLS handshake"), "{e:#}");
        assert_eq!(Phase::Tls.to_string(), "TLS handshake");
        assert!(
            took >= Duration::from_millis(280) && took < Duration::from_secs(2),
            "{took:?}"
        );
    });
    holder.join().unwrap();
}

/// The second request reuses the TLS connection: `reused`, no handshake time, one TCP
/// connection at the server.
#[test]
fn keep_alive_reuses_the_tls_connection() {
    let server = TlsServer::start(&pki().good);
    run("keep_alive_reuses_the_tls_connection", async {
        let client = trusting().build();
        for i in 0..3u64 {
            let response = client
                .get(server.url("127.0.0.1", &format!("/bytes/4096?seed={i}")))
                .send()
                .await
                .unwrap();
            let timings = response.timings();
            assert_eq!(timings.reused, i > 0, "{i}: {timings:?}");
            assert_eq!(timings.tls == Duration::ZERO, i > 0, "{i}: {timings:?}");
            assert!(response.bytes().await.unwrap()[..] == seeded(4096, i)[..]);
        }
        assert_eq!(server.accepted(), 1);
        assert_eq!(client.idle_connections(), 1);
    });
}

/// A body delimited by the close: a close without `close_notify` is an error (it could be a
/// truncation), one with it a clean end.
#[test]
fn close_delimited_body_needs_close_notify() {
    let server = TlsServer::start(&pki().good);
    run("close_delimited_body_needs_close_notify", async {
        let client = trusting().build();
        let text = client
            .get(server.url("127.0.0.1", "/until-close?notify=1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, "the body ends with the close\n");

        let response = client
            .get(server.url("127.0.0.1", "/until-close?notify=0"))
            .send()
            .await
            .unwrap();
        let e = response.bytes().await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Io(Phase::ReadBody), "{e:#}");
        let source = std::error::Error::source(&e).unwrap();
        let io = source.downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof, "{io}");
    });
}

/// https redirects are followed; a change of scheme is a change of origin, so credentials
/// (`Authorization`, `Cookie`) are dropped both ways (https → http and http → https on the
/// same host), and kept on a same-origin https redirect.
#[test]
fn redirects_follow_https_and_drop_credentials_across_schemes() {
    let tls = TlsServer::start(&pki().good);
    run("redirects_follow_https_and_drop_credentials", async {
        let plain = Server::bind(local()).unwrap();
        let client = trusting()
            .resolve("localhost", tls.addr)
            .redirect(redirect::Policy::limited(5))
            .build();
        let send = |url: String| {
            client
                .get(url)
                .header("authorization", "Bearer secret")
                .header("cookie", "session=1")
                .send()
        };
        let secret = |head: &str| head.to_ascii_lowercase().contains("bearer secret");
        // https → https, same origin: followed, credentials kept.
        let to = tls.url("localhost", "/head");
        let response = send(tls.url("localhost", &format!("/redirect?to={to}")))
            .await
            .unwrap();
        assert_eq!(response.url().as_str(), to);
        let text = response.text().await.unwrap();
        assert!(secret(&text), "{text}");

        // https → http, same host: credentials dropped.
        let to = format!("http://127.0.0.1:{}/headers", plain.local_addr().port());
        let response = send(tls.url("127.0.0.1", &format!("/redirect?to={to}")))
            .await
            .unwrap();
        assert_eq!(response.url().as_str(), to);
        let text = response.text().await.unwrap();
        assert!(text.contains("volley/"), "{text}");
        assert!(!secret(&text) && !text.contains("session=1"), "{text}");

        // http → https, same host: credentials dropped.
        let before = tls.heads().len();
        let target = tls.url("127.0.0.1", "/head");
        let url = format!(
            "http://127.0.0.1:{}/redirect-to?url={}",
            plain.local_addr().port(),
            target
        );
        let response = send(url).await.unwrap();
        assert_eq!(response.url().as_str(), target);
        let text = response.text().await.unwrap();
        assert!(text.starts_with("GET /head HTTP/1.1"), "{text}");
        assert!(!secret(&text) && !text.contains("session=1"), "{text}");
        assert_eq!(tls.heads().len(), before + 1);
    });
}

/// https through the test proxy: a `CONNECT` tunnel, then TLS to the origin over it; the
/// proxy sees the tunnel only, and the tunnel is reused for a second request.
#[test]
fn https_through_a_connect_proxy() {
    let server = TlsServer::start(&pki().good);
    run("https_through_a_connect_proxy", async {
        let proxy = ProxyServer::builder()
            .resolve("localhost", "127.0.0.1".parse().unwrap())
            .bind(local())
            .unwrap();
        let client = trusting()
            .proxy(volley::Proxy::https(&proxy.url()).unwrap())
            .build();
        for i in 0..2u64 {
            let response = client
                .get(server.url("localhost", &format!("/bytes/65536?seed={i}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.timings().reused, i > 0);
            let body = response.bytes().await.unwrap();
            assert!(body[..] == seeded(65536, i)[..]);
        }
        let log = proxy.log();
        assert_eq!(log.len(), 1, "{log:?}");
        let entry = format!("{:?}", log[0]);
        assert!(entry.contains("CONNECT"), "{entry}");
        assert!(
            entry.contains(&format!("localhost:{}", server.addr.port())),
            "{entry}"
        );
        assert_eq!(server.accepted(), 1);
    });
}

/// `http://h:P` and `https://h:P` never share a connection, even on the same port.
#[test]
fn http_and_https_on_one_port_do_not_share_connections() {
    let server = TlsServer::start(&pki().good);
    run("http_and_https_on_one_port", async {
        let client = trusting().build();
        let ok = client
            .get(server.url("127.0.0.1", "/head"))
            .send()
            .await
            .unwrap();
        ok.bytes().await.unwrap();
        assert_eq!(client.idle_connections(), 1);
        // Plain HTTP to the TLS port: a fresh connection (the server rejects it), never the
        // pooled TLS one.
        let plain = format!("http://127.0.0.1:{}/head", server.addr.port());
        let _ = client.get(&plain).send().await;
        assert_eq!(server.accepted(), 2);
        let again = client
            .get(server.url("127.0.0.1", "/head"))
            .send()
            .await
            .unwrap();
        assert!(again.timings().reused);
    });
}

/// A batch of 200 https URLs on one client: all succeed, over few connections.
#[test]
fn batch_of_200_https_urls() {
    let server = TlsServer::start(&pki().good);
    run("batch_of_200_https_urls", async {
        let client = trusting().build();
        let urls: Vec<String> = (0..200u64)
            .map(|i| server.url("127.0.0.1", &format!("/bytes/1024?seed={i}")))
            .collect();
        let report = client.fetch_all(&urls).concurrency(20).run().await;
        assert_eq!((report.summary.ok, report.summary.failed), (200, 0));
        for (i, result) in report.results.iter().enumerate() {
            let fetched = result.outcome.as_ref().unwrap();
            assert!(fetched.body[..] == seeded(1024, i as u64)[..], "{i}");
        }
        assert!(server.accepted() <= 20, "{}", server.accepted());
    });
}

/// Certificates from PEM and DER; a PEM without one is an error; a client with no root at
/// all fails to build with a TLS error.
#[test]
fn certificates_and_settings() {
    let ca = Certificate::from_pem(pki().ca_pem.as_bytes()).unwrap();
    let again = Certificate::from_der(ca.as_der()).unwrap();
    assert_eq!(ca.as_der(), again.as_der());
    let e = Certificate::from_pem(b"nothing here").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Tls(_)), "{e:#}");
    assert!(Certificate::from_der(b"nope").is_err());
    let e = Client::builder()
        .tls_built_in_roots(false)
        .try_build()
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Tls(_)), "{e:#}");
    assert!(
        e.to_string().starts_with("unusable TLS settings: "),
        "{e:#}"
    );
    Client::builder()
        .tls_built_in_roots(false)
        .add_root_certificate(again)
        .build();
}

/// The embedded server in HTTPS mode, with the committed TEST-ONLY certificate: GET and POST
/// through the client, keep-alive over one TLS connection, a close-delimited body ended with
/// `close_notify`, and the reset fault still a reset.
#[test]
fn embedded_server_serves_https() {
    use volley_testserver::{testcert, ServerConfig};
    run("embedded_server_serves_https", async {
        let config = ServerConfig::default()
            .tls(testcert::CERT_PEM, testcert::KEY_PEM)
            .unwrap();
        let server = Server::bind_with(local(), config).unwrap();
        assert!(server.url("/get").starts_with("https://127.0.0.1:"));
        let ca = Certificate::from_pem(testcert::CA_PEM).unwrap();
        let client = Client::builder()
            .add_root_certificate(ca)
            .resolve("localhost", server.local_addr())
            .build();
        let port = server.local_addr().port();
        for (i, host) in ["127.0.0.1", "localhost", "localhost"].iter().enumerate() {
            let response = client
                .get(format!("https://{host}:{port}/bytes/100000?seed=5"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.timings().reused, i == 2, "{i}");
            let body = response.bytes().await.unwrap();
            assert!(
                body == volley_testserver::seeded_bytes(5, 100_000),
                "{i}: body differs"
            );
        }
        let sent = seeded(1 << 20, 3);
        let text = client
            .post(server.url("/anything"))
            .body(sent.clone())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("\"method\": \"POST\""), "{}", &text[..200]);
        // Two hosts (127.0.0.1 and localhost): two connections, each reused.
        assert_eq!(server.stats().connections_accepted, 2);
        let text = client
            .get(server.url("/fault/until-close"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.is_empty());
        let e = async {
            client
                .get(server.url("/fault/reset-body"))
                .send()
                .await?
                .bytes()
                .await
        }
        .await
        .unwrap_err();
        assert_eq!(e.phase(), Some(Phase::ReadBody), "{e:#}");
        // A plain-HTTP client on the HTTPS port gets nothing it can read as HTTP.
        let plain = format!("http://127.0.0.1:{port}/get");
        assert!(Client::new().get(&plain).send().await.is_err());
    });
}
