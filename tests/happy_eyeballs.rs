//! Happy Eyeballs (RFC 8305) in the client's connect, on loopback only: a host mapped to
//! several addresses with `ClientBuilder::resolve` (repeated), IPv6 and IPv4.
//!
//! IPv6 cases are skipped, with a message, where `::1` cannot be bound.

mod util;
use util::skip;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use util::{block_on_bounded, open_fds, watchdog};
use volley::{Client, Runtime};

const HOST: &str = "dual.test";

/// A listener on `::1`, or `None` (with a message) if IPv6 loopback is not available.
fn bind_v6() -> Option<TcpListener> {
    match TcpListener::bind("[::1]:0") {
        Ok(l) => Some(l),
        Err(e) => {
            skip(
                "happy_eyeballs: IPv6 cases",
                &format!("cannot bind [::1]: {e:#}"),
            );
            None
        }
    }
}

/// A blocking HTTP server on `listener`, answering each request with `name` as the body and
/// counting the requests it served.
struct NamedServer {
    served: Arc<AtomicUsize>,
}

impl NamedServer {
    fn start(listener: TcpListener, name: &'static str) -> NamedServer {
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = conn.write_all(response.as_bytes());
            }
        });
        NamedServer { served }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// A port on `ip` with nothing listening: bound, noted, closed. A connect is refused at once.
fn refused(ip: &str) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// A listener on `::1` whose accept queue is full, so the kernel drops new SYNs: a connect
/// to it hangs in `SYN_SENT` until its timeout. Holds the connections that fill the queue.
struct BlackHole {
    listener: socket2::Socket,
    _held: Vec<std::net::TcpStream>,
}

impl BlackHole {
    fn v6() -> Option<BlackHole> {
        use socket2::{Domain, Socket, Type};
        let addr: SocketAddr = "[::1]:0".parse().unwrap();
        let socket = Socket::new(Domain::IPV6, Type::STREAM, None).ok()?;
        if let Err(e) = socket.bind(&addr.into()) {
            skip(
                "happy_eyeballs: IPv6 cases",
                &format!("cannot bind [::1]: {e:#}"),
            );
            return None;
        }
        socket.listen(0).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let mut held = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        assert!(held.len() < 8, "the backlog did not fill");
        Some(BlackHole {
            listener: socket,
            _held: held,
        })
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap().as_socket().unwrap()
    }
}

/// A client sending `HOST` to `addrs` (the port of each is replaced by the URL's, so all
/// must share one port), with a connect timeout of 5 s.
fn client_for(addrs: &[SocketAddr]) -> Client {
    let mut builder = Client::builder().connect_timeout(Duration::from_secs(5));
    for &addr in addrs {
        builder = builder.resolve(HOST, addr);
    }
    builder.build()
}

/// An IPv4 listener on `port` (taken first on `::1`), or `None` if 127.0.0.1 has it in use:
/// the callers then try another port.
fn same_port_v4(port: u16) -> Option<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).ok()
}

/// (a) `::1` and `127.0.0.1` both listening: the IPv6 one wins, even listed second.
#[test]
fn ipv6_wins_when_both_listen() {
    let _dog = watchdog("ipv6_wins_when_both_listen", 30);
    let Some((v6, v4)) = (0..20).find_map(|_| {
        let v6 = bind_v6()?;
        let v4 = same_port_v4(v6.local_addr().unwrap().port())?;
        Some((v6, v4))
    }) else {
        skip("happy_eyeballs", "no port free on both ::1 and 127.0.0.1");
        return;
    };
    let (a6, a4) = (v6.local_addr().unwrap(), v4.local_addr().unwrap());
    let s6 = NamedServer::start(v6, "six");
    let s4 = NamedServer::start(v4, "four");
    let rt = Runtime::new().unwrap();
    let client = client_for(&[a4, a6]); // IPv4 first: the interleaving still starts with IPv6
    let body = block_on_bounded(&rt, 10, async {
        let url = format!("http://{HOST}:{}/", a6.port());
        client.get(url).send().await.unwrap().text().await.unwrap()
    });
    assert_eq!(body, "six");
    assert_eq!((s6.served(), s4.served()), (1, 0));
}

/// Sets up (b)/(e): a black-holed `::1` port and a working `127.0.0.1` one on the same port.
fn black_hole_and_v4() -> Option<(BlackHole, NamedServer, u16)> {
    (0..20).find_map(|_| {
        let hole = BlackHole::v6()?;
        let port = hole.addr().port();
        let v4 = same_port_v4(port)?;
        Some((hole, NamedServer::start(v4, "four"), port))
    })
}

/// (b) and (e): the IPv6 address black-holes; the IPv4 attempt starts after the 250 ms
/// Connection Attempt Delay and wins, long before the 5 s connect timeout. Afterwards no
/// descriptor is left open: the losing IPv6 attempt was closed.
#[test]
fn black_holed_ipv6_falls_back_after_the_attempt_delay() {
    let _dog = watchdog("black_holed_ipv6", 60);
    let Some((hole, server, port)) = black_hole_and_v4() else {
        skip("happy_eyeballs", "IPv6 black hole not available");
        return;
    };
    let a6 = SocketAddr::new("::1".parse().unwrap(), port);
    let a4 = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    let rt = Runtime::new().unwrap();
    let client = client_for(&[a6, a4]);
    let url = format!("http://{HOST}:{port}/");
    // Warm-up outside the count: the runtime's and the client's own descriptors.
    let fds_before = open_fds();
    let (body, took) = block_on_bounded(&rt, 10, async {
        let started = Instant::now();
        let resp = client.get(&url).send().await.unwrap();
        let took = started.elapsed();
        (resp.text().await.unwrap(), took)
    });
    assert_eq!(body, "four");
    assert_eq!(server.served(), 1);
    assert!(
        took >= Duration::from_millis(240) && took < Duration::from_millis(1500),
        "took {took:?}: expected about 250 ms"
    );
    // The response said `Connection: close`, so nothing is pooled; the losing attempt must
    // be gone too.
    assert_eq!(rt.stats().io_sources, 0, "a socket is still registered");
    assert_eq!(open_fds(), fds_before, "a descriptor was left open");
    drop(hole);
}

/// (c) the IPv6 port refuses: the IPv4 attempt starts at once, not after 250 ms.
#[test]
fn refused_ipv6_falls_back_at_once() {
    let _dog = watchdog("refused_ipv6", 30);
    let Some((a6, v4)) = (0..20).find_map(|_| {
        let v6 = bind_v6()?;
        let a6 = v6.local_addr().unwrap();
        let v4 = same_port_v4(a6.port())?;
        drop(v6); // now refused
        Some((a6, v4))
    }) else {
        skip("happy_eyeballs", "IPv6 not available");
        return;
    };
    let a4 = v4.local_addr().unwrap();
    let server = NamedServer::start(v4, "four");
    let rt = Runtime::new().unwrap();
    let client = client_for(&[a6, a4]);
    let (body, took) = block_on_bounded(&rt, 10, async {
        let started = Instant::now();
        let resp = client
            .get(format!("http://{HOST}:{}/", a4.port()))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        (resp.text().await.unwrap(), took)
    });
    assert_eq!(body, "four");
    assert_eq!(server.served(), 1);
    // Below the 250 ms Connection Attempt Delay: the IPv4 attempt did not wait for it. (How
    // much below is a benchmark's question, not a test's, on a loaded machine.)
    assert!(took < Duration::from_millis(240), "took {took:?}");
}

/// (d) every address refuses: a connect error that says all were tried, with the OS error.
#[test]
fn all_refused_is_a_connect_error() {
    let _dog = watchdog("all_refused", 30);
    // Two IPv4 addresses (and an IPv6 one where available) on one refused port.
    let port = refused("127.0.0.1").port();
    let mut addrs = vec![
        SocketAddr::new("127.0.0.1".parse().unwrap(), port),
        SocketAddr::new("127.0.0.2".parse().unwrap(), port),
    ];
    if bind_v6().is_some() {
        addrs.push(SocketAddr::new("::1".parse().unwrap(), port));
    }
    let rt = Runtime::new().unwrap();
    let client = client_for(&addrs);
    let started = Instant::now();
    let err = block_on_bounded(&rt, 10, async {
        client
            .get(format!("http://{HOST}:{port}/"))
            .send()
            .await
            .unwrap_err()
    });
    assert!(err.is_connect(), "{err:#}");
    assert_eq!(err.os_error(), Some(111), "ECONNREFUSED kept: {err:#}");
    // The cause says how many were tried, and the OS error once.
    let line = format!("{err:#}");
    assert!(
        line.contains(&format!("all {} addresses failed, the last ", addrs.len())),
        "{line}"
    );
    assert_eq!(line.matches("Connection refused").count(), 1, "{line}");
    // Each refusal started the next attempt at once: all of them took less than one
    // Connection Attempt Delay (250 ms).
    assert!(started.elapsed() < Duration::from_millis(240), "{err:#}");
    assert_eq!(rt.stats().io_sources, 0);
}
