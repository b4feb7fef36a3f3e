//! TLS on the reactor (`volley::net::tls`), against a tiny blocking rustls server on a plain
//! thread, on loopback only. Certificates are the committed ones of `tests/util/pki.rs`: a CA,
//! a good leaf (`localhost` and IP 127.0.0.1), an expired leaf, a leaf for another name, and
//! a leaf from a CA nobody trusts.
#![cfg(feature = "tls")]

#[path = "util/pki.rs"]
mod pki;
mod util;

use std::future::poll_fn;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::{mpsc, Arc};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use volley::net::tls::{rustls, server_name, TlsConfig, TlsConnector, TlsErrorKind, TlsStream};
use volley::{Runtime, TcpStream};

use pki::{pki, Leaf};
use util::{block_on_bounded, block_on_watched, Checksum, Prng};

// ---------------------------------------------------------------------------------------------
// Certificates: `tests/util/pki.rs`

// ---------------------------------------------------------------------------------------------
// The server: blocking rustls on a plain thread

type ServerStream = rustls::StreamOwned<rustls::ServerConnection, StdStream>;

fn server_config(leaf: &Leaf, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Accepts one connection on a fresh `127.0.0.1` port, completes the TLS handshake, and runs
/// `serve` on the blocking stream. Every socket operation times out after 10 s, so a test
/// gone wrong fails instead of hanging. The handle yields `serve`'s result, or the handshake
/// error (such as the client's alert).
fn tls_server<T, F>(
    config: Arc<rustls::ServerConfig>,
    serve: F,
) -> (SocketAddr, thread::JoinHandle<io::Result<T>>)
where
    F: FnOnce(&mut ServerStream) -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept()?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            if stream.conn.complete_io(&mut stream.sock)? == (0, 0) {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        serve(&mut stream)
    });
    (addr, handle)
}

/// Joins a server thread, failing the test if it panicked.
fn join<T>(handle: thread::JoinHandle<io::Result<T>>) -> io::Result<T> {
    handle.join().expect("server thread panicked")
}

/// The rustls error a server's handshake failed with, if it received an alert.
fn alert_received<T>(result: io::Result<T>) -> Option<rustls::AlertDescription> {
    let err = result.err()?;
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The client

/// A connector that trusts the test CA only (added as PEM).
fn connector() -> TlsConnector {
    TlsConfig::new()
        .built_in_roots(false)
        .add_root_certificates_pem(&pki().ca_pem)
        .build()
        .unwrap()
}

async fn connect(connector: &TlsConnector, addr: SocketAddr, name: &str) -> io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr).await?;
    connector.connect(server_name(name)?, tcp).await
}

/// Connects to a server presenting `leaf` as `name` and returns the client's error, checking
/// that the server was told why with an alert.
fn handshake_error(leaf: &Leaf, name: &str) -> io::Error {
    let (addr, server) = tls_server(server_config(leaf, &[]), |_| Ok(()));
    let rt = Runtime::new().unwrap();
    let err = block_on_bounded(&rt, 20, async {
        connect(&connector(), addr, name)
            .await
            .expect_err("the handshake should fail")
    });
    assert!(
        alert_received(join(server)).is_some(),
        "the server should have received an alert"
    );
    err
}

/// Writes `request` (vectored, in two slices) and reads until the server's `close_notify`.
async fn exchange(tls: &mut TlsStream, head: &[u8], body: &[u8]) -> io::Result<Vec<u8>> {
    let mut offset = 0;
    let total = head.len() + body.len();
    while offset < total {
        let bufs = if offset < head.len() {
            [IoSlice::new(&head[offset..]), IoSlice::new(body)]
        } else {
            [
                IoSlice::new(&body[offset - head.len()..]),
                IoSlice::new(&[]),
            ]
        };
        offset += poll_fn(|cx| tls.poll_write_vectored(cx, &bufs)).await?;
    }
    tls.flush().await?;
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply).await?;
    Ok(reply)
}

/// What [`answering_server`] read, and the SNI name it saw.
type Answered = (Vec<u8>, Option<String>);

/// A server that reads `len` bytes, answers `reply`, sends `close_notify` and returns what it
/// read and the SNI name it saw.
fn answering_server(
    config: Arc<rustls::ServerConfig>,
    len: usize,
    reply: &'static [u8],
) -> (SocketAddr, thread::JoinHandle<io::Result<Answered>>) {
    tls_server(config, move |stream| {
        let mut got = vec![0; len];
        stream.read_exact(&mut got)?;
        stream.write_all(reply)?;
        stream.conn.send_close_notify();
        stream.flush()?;
        Ok((got, stream.conn.server_name().map(str::to_owned)))
    })
}

// ---------------------------------------------------------------------------------------------
// Tests

/// What [`echo_round_trip`] saw.
struct Echo {
    /// Bytes the server received, and their checksum.
    server_total: usize,
    server_sum: Checksum,
    /// The SNI name the server saw.
    sni: Option<String>,
    /// Bytes that came back, and their checksum.
    received: usize,
    received_sum: Checksum,
    /// Writes that took less than offered.
    partial_writes: usize,
    /// The version the client negotiated.
    version: Option<rustls::ProtocolVersion>,
    /// Sources still registered once the stream is dropped.
    io_sources_after: usize,
}

/// Sends `total` pseudo-random bytes to an echo server and reads the echo, both directions
/// at once from one task (`poll_write` and `poll_read` in one `poll`), in writes of varying
/// sizes, some larger than rustls's 64 KiB buffer, and reads of an odd size; then both sides
/// close with `close_notify`.
fn echo_round_trip(config: Arc<rustls::ServerConfig>, total: usize, data: &[u8]) -> Echo {
    let (addr, server) = tls_server(config, |stream| {
        let sni = stream.conn.server_name().map(str::to_owned);
        let mut buf = vec![0; 7001];
        let mut sum = Checksum::default();
        let mut total = 0;
        loop {
            let n = stream.read(&mut buf)?; // Ok(0) only after close_notify
            if n == 0 {
                break;
            }
            sum.update(&buf[..n]);
            total += n;
            stream.write_all(&buf[..n])?;
        }
        stream.conn.send_close_notify();
        stream.flush()?;
        Ok((total, sum, sni))
    });

    let rt = Runtime::new().unwrap();
    let (received, received_sum, partial_writes, version) = block_on_bounded(&rt, 30, async {
        let mut tls = connect(&connector(), addr, "localhost").await.unwrap();
        let version = tls.connection().protocol_version();
        let sizes = [1, 100, 5_000, 70_000, 16_385];
        let (mut sent, mut writes, mut partial_writes, mut shut) = (0, 0, 0, false);
        let (mut received, mut sum) = (0, Checksum::default());
        let mut buf = vec![0; 3001];
        poll_fn(|cx| {
            // Write side: chunks of varying sizes until all is sent, then close_notify.
            loop {
                if sent < total {
                    let end = (sent + sizes[writes % sizes.len()]).min(total);
                    match tls.poll_write(cx, &data[sent..end]) {
                        Poll::Ready(Ok(n)) => {
                            assert!(n > 0);
                            partial_writes += usize::from(sent + n < end);
                            sent += n;
                            writes += 1;
                        }
                        Poll::Ready(Err(e)) => panic!("write failed: {e}"),
                        Poll::Pending => break,
                    }
                } else if !shut {
                    match tls.poll_shutdown(cx) {
                        Poll::Ready(Ok(())) => shut = true,
                        Poll::Ready(Err(e)) => panic!("shutdown failed: {e}"),
                        Poll::Pending => break,
                    }
                } else {
                    break;
                }
            }
            // Read side: everything available, until the server's close_notify.
            loop {
                match tls.poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready((received, sum, partial_writes, version))
                    }
                    Poll::Ready(Ok(n)) => {
                        sum.update(&buf[..n]);
                        received += n;
                    }
                    Poll::Ready(Err(e)) => panic!("read failed after {received} bytes: {e}"),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    });
    let (server_total, server_sum, sni) = join(server).unwrap();
    Echo {
        server_total,
        server_sum,
        sni,
        received,
        received_sum,
        partial_writes,
        version,
        io_sources_after: rt.stats().io_sources,
    }
}

/// A trusted certificate, TLS 1.3: 1 MiB is echoed intact both ways (checksums on both
/// ends), partial writes included, SNI sent, and nothing is left registered.
#[test]
fn good_certificate_echoes_one_mebibyte() {
    const TOTAL: usize = 1 << 20;
    let mut data = vec![0; TOTAL];
    Prng::new(42).fill(&mut data);
    let mut sent_sum = Checksum::default();
    sent_sum.update(&data);

    let echo = echo_round_trip(server_config(&pki().good, &[]), TOTAL, &data);
    assert_eq!(echo.version, Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(echo.server_total, TOTAL, "the server received everything");
    assert_eq!(
        echo.server_sum, sent_sum,
        "the server received the right bytes"
    );
    assert_eq!(echo.received, TOTAL, "the echo came back whole");
    assert_eq!(echo.received_sum, sent_sum, "the echo came back intact");
    assert!(
        echo.partial_writes > 0,
        "some writes should have been partial"
    );
    assert_eq!(
        echo.sni.as_deref(),
        Some("localhost"),
        "SNI is sent for DNS names"
    );
    assert_eq!(echo.io_sources_after, 0);
}

/// The same over TLS 1.2, whose handshake takes one more round trip and ends on the
/// server's Finished: 256 KiB echoed intact.
#[test]
fn tls12_echoes_intact() {
    const TOTAL: usize = 256 << 10;
    let mut data = vec![0; TOTAL];
    Prng::new(12).fill(&mut data);
    let mut sent_sum = Checksum::default();
    sent_sum.update(&data);

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let leaf = &pki().good;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
        .unwrap();
    let echo = echo_round_trip(Arc::new(config), TOTAL, &data);
    assert_eq!(echo.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(echo.server_sum, sent_sum);
    assert_eq!(echo.received, TOTAL);
    assert_eq!(echo.received_sum, sent_sum);
    assert_eq!(echo.io_sources_after, 0);
}

/// A certificate for another name is refused as `WrongName`, and the error says so.
#[test]
fn wrong_hostname_is_wrong_name() {
    let err = handshake_error(&pki().wrong_name, "localhost");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        TlsErrorKind::of(&err),
        Some(TlsErrorKind::WrongName),
        "{err}"
    );
    assert!(
        err.to_string().contains("not valid for name"),
        "the message should say why: {err}"
    );
}

/// An expired certificate is refused as `CertExpired`.
#[test]
fn expired_certificate_is_cert_expired() {
    let err = handshake_error(&pki().expired, "localhost");
    assert_eq!(
        TlsErrorKind::of(&err),
        Some(TlsErrorKind::CertExpired),
        "{err}"
    );
    assert!(err.to_string().contains("expired"), "{err}");
}

/// A certificate from a CA that is not trusted is refused as `UnknownIssuer`; so is every
/// certificate when only Mozilla's roots are trusted.
#[test]
fn unknown_ca_is_unknown_issuer() {
    let err = handshake_error(&pki().unknown_ca, "localhost");
    assert_eq!(
        TlsErrorKind::of(&err),
        Some(TlsErrorKind::UnknownIssuer),
        "{err}"
    );

    let (addr, server) = tls_server(server_config(&pki().good, &[]), |_| Ok(()));
    let rt = Runtime::new().unwrap();
    let err = block_on_bounded(&rt, 20, async {
        connect(&TlsConnector::new().unwrap(), addr, "localhost")
            .await
            .unwrap_err()
    });
    assert_eq!(
        TlsErrorKind::of(&err),
        Some(TlsErrorKind::UnknownIssuer),
        "{err}"
    );
    assert!(join(server).is_err());
}

/// An IP address as server name is checked against the certificate's IP SANs, and no SNI is
/// sent: 127.0.0.1 passes (with a vectored request and a reply), 127.0.0.2 and a
/// certificate without IP SANs fail as `WrongName`.
#[test]
fn ip_address_is_checked_against_ip_sans() {
    let rt = Runtime::new().unwrap();

    let (addr, server) = answering_server(server_config(&pki().good, &[]), 9, b"pong");
    let reply = block_on_bounded(&rt, 20, async {
        let mut tls = connect(&connector(), addr, "127.0.0.1").await.unwrap();
        exchange(&mut tls, b"ping", b" body").await.unwrap()
    });
    assert_eq!(reply, b"pong");
    let (got, sni) = join(server).unwrap();
    assert_eq!(got, b"ping body");
    assert_eq!(sni, None, "no SNI for an IP address");

    for (leaf, name) in [(&pki().good, "127.0.0.2"), (&pki().wrong_name, "127.0.0.1")] {
        let (addr, server) = tls_server(server_config(leaf, &[]), |_| Ok(()));
        let err = block_on_bounded(&rt, 20, async {
            connect(&connector(), addr, name).await.unwrap_err()
        });
        assert_eq!(
            TlsErrorKind::of(&err),
            Some(TlsErrorKind::WrongName),
            "{name}: {err}"
        );
        assert!(join(server).is_err());
    }
}

/// `danger_accept_invalid_certs` accepts a certificate from an unknown CA, an expired one and
/// one for another name, with no root configured at all.
#[test]
fn danger_accept_invalid_certs_accepts_anything() {
    let connector = TlsConfig::new()
        .built_in_roots(false)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let rt = Runtime::new().unwrap();
    for leaf in [&pki().unknown_ca, &pki().expired, &pki().wrong_name] {
        let (addr, server) = answering_server(server_config(leaf, &[]), 4, b"pong");
        let reply = block_on_bounded(&rt, 20, async {
            let mut tls = connect(&connector, addr, "localhost").await.unwrap();
            tls.write_all(b"ping").await.unwrap();
            let mut reply = Vec::new();
            tls.read_to_end(&mut reply).await.unwrap();
            reply
        });
        assert_eq!(reply, b"pong");
        assert_eq!(join(server).unwrap().0, b"ping");
    }
}

/// A server that accepts the TCP connection and then says nothing: the ClientHello goes out,
/// the handshake waits without spinning, `volley::timeout` ends it, and dropping it leaves
/// no registered source, timer or task behind.
#[test]
fn stalled_handshake_times_out_and_leaves_nothing() {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, released) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut hello = [0; 5];
        tcp.read_exact(&mut hello).unwrap();
        // Hold the connection open, silent, until the client has given up.
        let _ = released.recv_timeout(Duration::from_secs(10));
        hello[0]
    });

    let rt = Runtime::new().unwrap();
    let turns_before = rt.stats().turns;
    let (result, waited) = block_on_watched(&rt, 20, async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let handshake = connector().connect(server_name("localhost").unwrap(), tcp);
        let result = volley::timeout(Duration::from_millis(300), handshake).await;
        (result.map(|_| ()), start.elapsed())
    });
    assert!(result.is_err(), "the handshake should have timed out");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let stats = rt.stats();
    assert_eq!(stats.io_sources, 0, "no source left registered");
    assert_eq!(stats.timers, 0, "no timer left");
    assert_eq!(stats.tasks, 0, "no task left");
    assert!(
        stats.turns - turns_before < 20,
        "the handshake waited without spinning: {} turns",
        stats.turns - turns_before
    );
    release.send(()).unwrap();
    assert_eq!(
        server.join().unwrap(),
        0x16,
        "a TLS handshake record came first"
    );
}

/// ALPN: `http/1.1` is offered and chosen by a server that also speaks h2; a server without
/// ALPN still connects, with no protocol chosen.
#[test]
fn alpn_negotiates_http11() {
    let rt = Runtime::new().unwrap();
    let (addr, server) = tls_server(
        server_config(&pki().good, &[b"h2", b"http/1.1"]),
        |stream| Ok(stream.conn.alpn_protocol().map(<[u8]>::to_vec)),
    );
    let alpn = block_on_bounded(&rt, 20, async {
        let tls = connect(&connector(), addr, "localhost").await.unwrap();
        tls.alpn_protocol().map(<[u8]>::to_vec)
    });
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(join(server).unwrap().as_deref(), Some(&b"http/1.1"[..]));

    let (addr, server) = tls_server(server_config(&pki().good, &[]), |_| Ok(()));
    let alpn = block_on_bounded(&rt, 20, async {
        let tls = connect(&connector(), addr, "localhost").await.unwrap();
        tls.alpn_protocol().map(<[u8]>::to_vec)
    });
    assert_eq!(alpn, None);
    join(server).unwrap();
}

/// The server's `close_notify` reads as `Ok(0)`, after the data.
#[test]
fn close_notify_reads_as_eof() {
    let (addr, server) = tls_server(server_config(&pki().good, &[]), |stream| {
        stream.write_all(b"hello")?;
        stream.conn.send_close_notify();
        stream.flush()
    });
    let rt = Runtime::new().unwrap();
    let (got, end) = block_on_bounded(&rt, 20, async {
        let mut tls = connect(&connector(), addr, "localhost").await.unwrap();
        let mut got = Vec::new();
        let end = tls.read_to_end(&mut got).await;
        (got, end)
    });
    assert_eq!(got, b"hello");
    assert_eq!(end.unwrap(), 5);
    join(server).unwrap();
}

/// A TCP close without `close_notify` is `UnexpectedEof`, after the data: a truncation is
/// never mistaken for the end.
#[test]
fn abrupt_close_is_unexpected_eof() {
    let (addr, server) = tls_server(server_config(&pki().good, &[]), |stream| {
        stream.write_all(b"hello")?;
        stream.flush()?;
        stream.sock.shutdown(Shutdown::Write) // a FIN, and no close_notify
    });
    let rt = Runtime::new().unwrap();
    let (got, end) = block_on_bounded(&rt, 20, async {
        let mut tls = connect(&connector(), addr, "localhost").await.unwrap();
        let mut got = Vec::new();
        let end = tls.read_to_end(&mut got).await;
        (got, end)
    });
    assert_eq!(got, b"hello", "the data before the close is delivered");
    let err = end.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    assert_eq!(TlsErrorKind::of(&err), None);
    join(server).unwrap();
}

/// `shutdown` sends `close_notify`: the server reads the data and then a clean end (its
/// blocking reader would say `UnexpectedEof` without it), and writing afterwards fails.
#[test]
fn shutdown_sends_close_notify() {
    let (addr, server) = tls_server(server_config(&pki().good, &[]), |stream| {
        let mut got = Vec::new();
        stream.read_to_end(&mut got)?; // Ok only after close_notify
        stream.write_all(b"bye")?;
        stream.conn.send_close_notify();
        stream.flush()?;
        Ok(got)
    });
    let rt = Runtime::new().unwrap();
    let (reply, late_write) = block_on_bounded(&rt, 20, async {
        let mut tls = connect(&connector(), addr, "localhost").await.unwrap();
        tls.write_all(b"last words").await.unwrap();
        tls.shutdown().await.unwrap();
        let late_write = tls.write(b"more").await;
        // Reading still works after our shutdown: the server's reply and its close_notify.
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply).await.unwrap();
        (reply, late_write)
    });
    assert_eq!(join(server).unwrap(), b"last words");
    assert_eq!(reply, b"bye");
    assert_eq!(late_write.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
}

/// A peer that closes during the handshake is `UnexpectedEof`; one that answers in plain
/// HTTP is a `Protocol` error. Neither leaves a source registered.
#[test]
fn handshake_with_a_peer_that_is_not_tls() {
    let rt = Runtime::new().unwrap();
    for answer in [
        &b""[..],
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        // A well-formed record of the wrong type (application data) for a ServerHello.
        b"\x17\x03\x03\x00\x05hello",
    ] {
        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut hello = [0; 5];
            tcp.read_exact(&mut hello).unwrap();
            tcp.write_all(answer).unwrap();
            // Drain what the client sends until it closes, so the close is a FIN, not a reset.
            let _ = tcp.shutdown(Shutdown::Write);
            let _ = io::copy(&mut tcp, &mut io::sink());
        });
        let err = block_on_bounded(&rt, 20, async {
            connect(&connector(), addr, "localhost").await.unwrap_err()
        });
        if answer.is_empty() {
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        } else {
            assert_eq!(
                TlsErrorKind::of(&err),
                Some(TlsErrorKind::Protocol),
                "{err}"
            );
        }
        server.join().unwrap();
        assert_eq!(rt.stats().io_sources, 0);
    }
}

/// A read that waits for a slow server waits on the reactor: a handful of polls (the
/// server's session tickets may wake it) while 300 ms pass, not a loop.
#[test]
fn waiting_read_does_not_spin() {
    let (addr, server) = tls_server(server_config(&pki().good, &[]), |stream| {
        thread::sleep(Duration::from_millis(300));
        stream.write_all(b"late")?;
        stream.conn.send_close_notify();
        stream.flush()
    });
    let rt = Runtime::new().unwrap();
    let (got, polls, waited) = block_on_watched(&rt, 20, async {
        let mut tls = connect(&connector(), addr, "localhost").await.unwrap();
        let start = Instant::now();
        let mut polls = 0;
        let mut buf = [0; 16];
        let n = poll_fn(|cx| {
            polls += 1;
            tls.poll_read(cx, &mut buf)
        })
        .await
        .unwrap();
        (buf[..n].to_vec(), polls, start.elapsed())
    });
    assert_eq!(got, b"late");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(
        polls <= 10,
        "the read was polled {polls} times while waiting"
    );
    join(server).unwrap();
}

/// A record that does not decrypt, arriving in the same segment as good data: the good data
/// is read first, then the error, and the error again on every later read, at once (rustls
/// must not be fed more ciphertext after an error, so waiting for more would hang).
#[test]
fn bad_record_after_data_gives_the_data_then_the_error_every_time() {
    let (addr, server) = tls_server(server_config(&pki().good, &[]), |stream| {
        stream.conn.writer().write_all(b"complete response")?;
        let mut wire = Vec::new();
        while stream.conn.wants_write() {
            stream.conn.write_tls(&mut wire)?;
        }
        // An application-data record of 32 bytes that no key decrypts.
        wire.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x20]);
        wire.extend_from_slice(&[0xa5; 32]);
        stream.sock.write_all(&wire)?;
        // Keep the connection open past the client's checks: no EOF to end a wait.
        thread::sleep(Duration::from_secs(2));
        Ok(())
    });
    let rt = Runtime::new().unwrap();
    let reads = block_on_bounded(&rt, 20, async {
        let mut tls = connect(&connector(), addr, "localhost").await.unwrap();
        let mut reads = Vec::new();
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let read = volley::timeout(Duration::from_millis(500), tls.read(&mut buf)).await;
            reads.push(match read {
                Err(_) => "still pending after 500 ms".to_owned(),
                Ok(Ok(n)) => format!("Ok({:?})", String::from_utf8_lossy(&buf[..n])),
                Ok(Err(e)) => format!("Err({:?})", e.kind()),
            });
        }
        reads
    });
    assert_eq!(
        reads,
        [
            r#"Ok("complete response")"#,
            "Err(InvalidData)",
            "Err(InvalidData)"
        ]
    );
    join(server).unwrap();
}
