//! Cancellation safety, proved by counting. A request future dropped in any state (resolving,
//! connecting, writing the request, reading the head on a fresh or a pooled connection,
//! reading the body, draining a redirect), a `Response` dropped mid-body, and a batch stream
//! dropped with requests in all of those states and one still queued leave nothing behind on
//! the client's runtime: no registered I/O source, no timer, no task, no open descriptor, and
//! no half-used connection in the pool. After each, the same client gets exact answers.
//!
//! How the counts are made exact:
//!
//! - The embedded server runs on its own thread and runtime, so `rt.stats()` of the test's
//!   runtime counts the client alone; it is compared exactly, right after the drop.
//! - The server's sockets live in this process too. Descriptors are compared as whole sets
//!   (`/proc/self/fd` numbers and what they point to) against a baseline taken with the server
//!   idle, once the server has closed its side of the cancelled connection (its open
//!   connection count is back to the baseline): equal, not "within some slack".
//! - Each test first checks that the request really reached the state (the resolver was asked,
//!   the socket is in `SYN_SENT`, the send queue is stuck, the server parsed the request, the
//!   body bytes arrived) and that the counts show it (one more source, one more timer, the
//!   expected descriptors), so a drop that came too early would fail the test.
//! - The tests of this binary take a lock, so none opens descriptors while another counts.
//!
//! `tests/batch.rs` drops a batch stream whose requests all wait for a head; the batch test
//! here adds the other states and the descriptor count.

mod util;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::{pending, poll_fn, Future};
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use util::{block_on_watched, local};
use volley::{Client, Method, Resolve, Resolving, Runtime, TcpListener};
use volley_testserver::{seeded_bytes, Server, ServerThread};

/// One test at a time: they count the process's descriptors.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Counting

/// The open descriptors of this process and what each points to (`socket:[inode]`, a path...).
type Fds = BTreeMap<u32, PathBuf>;

fn fds() -> Fds {
    let numbers: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own descriptor is closed by now, so its link no longer reads.
    numbers
        .into_iter()
        .filter_map(|fd| Some((fd, std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?)))
        .collect()
}

/// What changed between two descriptor sets, for a failure message.
fn fd_diff(before: &Fds, after: &Fds) -> String {
    let opened: Vec<_> = after
        .iter()
        .filter(|(fd, target)| before.get(fd) != Some(target))
        .collect();
    let closed: Vec<_> = before
        .iter()
        .filter(|(fd, target)| after.get(fd) != Some(target))
        .collect();
    format!("opened {opened:?}, closed {closed:?}")
}

/// Tasks, registered I/O sources and pending timers of the client's runtime.
fn counts(rt: &Runtime) -> (usize, usize, usize) {
    let s = rt.stats();
    (s.tasks, s.io_sources, s.timers)
}

/// A TCP socket of this network namespace, from `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TcpSock {
    local: u16,
    remote: u16,
    state: u8,
    tx_queue: u64,
    rx_queue: u64,
}

const ESTABLISHED: u8 = 0x01;
const SYN_SENT: u8 = 0x02;

fn tcp_sockets() -> Vec<TcpSock> {
    let mut out = Vec::new();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let parsed = (|| {
                let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
                let (tx, rx) = f.get(4)?.split_once(':')?;
                Some(TcpSock {
                    local: port(f.get(1)?)?,
                    remote: port(f.get(2)?)?,
                    state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                    tx_queue: u64::from_str_radix(tx, 16).ok()?,
                    rx_queue: u64::from_str_radix(rx, 16).ok()?,
                })
            })();
            out.extend(parsed);
        }
    }
    out
}

/// The sockets connected (or connecting) to `port` from elsewhere, and those accepted on it.
fn sockets_to(port: u16) -> (Vec<TcpSock>, Vec<TcpSock>) {
    let all = tcp_sockets();
    let clients = all
        .iter()
        .filter(|s| s.remote == port && s.local != port)
        .copied()
        .collect();
    let servers = all
        .iter()
        .filter(|s| s.local == port && s.state == ESTABLISHED)
        .copied()
        .collect();
    (clients, servers)
}

// ---------------------------------------------------------------------------------------------
// The setting: a server thread, a client with two names for it, and a resolver that may stall

/// What the test resolver was asked and has dropped; `answer` switches it from never
/// answering to answering at once.
#[derive(Default)]
struct Dns {
    asked: Cell<usize>,
    dropped: Cell<usize>,
    answer: Cell<Option<SocketAddr>>,
}

/// A [`Resolve`] that stays pending until [`Dns::answer`] is set.
struct Switchable(Rc<Dns>);

/// Counts the drop of a pending lookup.
struct CountDrop(Rc<Dns>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.dropped.set(self.0.dropped.get() + 1);
    }
}

impl Resolve for Switchable {
    fn resolve(&self, _host: &str, port: u16) -> Resolving {
        let dns = self.0.clone();
        dns.asked.set(dns.asked.get() + 1);
        match dns.answer.get() {
            Some(addr) => Box::pin(std::future::ready(Ok(vec![SocketAddr::new(
                addr.ip(),
                port,
            )]))),
            None => Box::pin(async move {
                let _counted = CountDrop(dns);
                pending().await
            }),
        }
    }
}

/// A fresh client runtime, a server on its own thread, and a client that knows the server as
/// `a.test` (one warm keep-alive connection in the pool) and `b.test` (where the cancelled
/// requests go; `c.test` too), with `slow.test` left to the switchable resolver.
struct Env {
    rt: Runtime,
    server: ServerThread,
    client: Client,
    dns: Rc<Dns>,
}

/// The counts before a cancelled request.
struct Baseline {
    counts: (usize, usize, usize),
    fds: Fds,
    idle: usize,
    server_open: usize,
}

impl Env {
    fn new() -> Env {
        let server = Server::spawn_thread(local()).unwrap();
        let addr = server.local_addr();
        let dns = Rc::new(Dns::default());
        let client = Client::builder()
            .resolve("a.test", addr)
            .resolve("b.test", addr)
            .resolve("c.test", addr)
            .dns_resolver(Switchable(dns.clone()))
            .build();
        Env {
            rt: Runtime::new().unwrap(),
            server,
            client,
            dns,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.server.local_addr().port())
    }

    /// Fetches `path` from `host` and checks the body is exactly `/bytes`' for `seed`.
    async fn fetch_exact(&self, host: &str, n: usize, seed: u64) -> volley::Timings {
        let url = self.url(host, &format!("/bytes/{n}?seed={seed}"));
        let resp = self.client.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let timings = resp.timings();
        let body = resp.bytes().await.unwrap();
        assert!(
            body[..] == seeded_bytes(seed, n)[..],
            "{host}: a wrong body of {} bytes",
            body.len()
        );
        timings
    }

    /// One request to `a.test`, so the pool holds a connection that must stay usable, then
    /// the baseline.
    async fn warm_up(&self) -> Baseline {
        self.fetch_exact("a.test", 64, 1).await;
        assert_eq!(self.client.idle_connections(), 1);
        // The server counts a connection open until its task has ended; wait for the count to
        // be the one connection.
        self.wait_server_open(1).await;
        self.baseline()
    }

    fn baseline(&self) -> Baseline {
        Baseline {
            counts: counts(&self.rt),
            fds: fds(),
            idle: self.client.idle_connections(),
            server_open: self.server.stats().open_connections,
        }
    }

    async fn wait_server_open(&self, n: usize) {
        for _ in 0..1000 {
            if self.server.stats().open_connections == n {
                return;
            }
            volley::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "the server still has {} connections open, expected {n}",
            self.server.stats().open_connections
        );
    }

    /// Right after the drop: the runtime holds exactly what it held before, and the pool
    /// did not gain the cancelled connection.
    fn assert_released(&self, base: &Baseline, what: &str) {
        assert_eq!(
            counts(&self.rt),
            base.counts,
            "{what}: (tasks, io sources, timers) after the drop vs before"
        );
        assert_eq!(
            self.client.idle_connections(),
            base.idle,
            "{what}: the cancelled connection went into the pool"
        );
    }

    /// Once the server has closed its side: the same descriptors as before, exactly.
    async fn assert_fds_settled(&self, base: &Baseline, what: &str) {
        let mut now = fds();
        for _ in 0..1000 {
            if self.server.stats().open_connections == base.server_open && now == base.fds {
                return;
            }
            volley::sleep(Duration::from_millis(5)).await;
            now = fds();
        }
        assert_eq!(
            self.server.stats().open_connections,
            base.server_open,
            "{what}: the server still holds the cancelled connection (was it closed?)"
        );
        panic!("{what}: descriptors leaked: {}", fd_diff(&base.fds, &now));
    }

    /// After a cancellation, the same client gets exact answers: a fresh connection to
    /// `b.test` (nothing of the cancelled one was pooled) and the warm one to `a.test`.
    async fn assert_follow_up_works(&self, seed: u64) {
        let idle = self.client.idle_connections();
        let t = self.fetch_exact("b.test", 3000, seed).await;
        assert!(!t.reused, "b.test had no idle connection to reuse");
        let t = self.fetch_exact("a.test", 100, seed + 1).await;
        assert!(t.reused, "the warm a.test connection was lost");
        assert_eq!(
            self.client.idle_connections(),
            idle + 1,
            "b.test's joined a.test's"
        );
    }
}

/// Polls `fut` (never letting it finish) until `reached` says it is in the state under test;
/// panics after 10 s.
async fn drive_until<F: Future + ?Sized>(
    mut fut: Pin<&mut F>,
    what: &str,
    mut reached: impl FnMut() -> bool,
) {
    for _ in 0..2000 {
        let done = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_ready())).await;
        assert!(
            !done,
            "{what}: the request finished before reaching the state"
        );
        if reached() {
            return;
        }
        volley::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}: the state was not reached within 10 s");
}

/// A blocking loopback server on its own thread: it accepts connections and, given a reply,
/// reads each request head and writes the reply; then it holds every connection without
/// reading until dropped.
struct RawServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    replied: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RawServer {
    fn start(reply: Option<&'static [u8]>) -> RawServer {
        let listener = std::net::TcpListener::bind(local()).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let replied = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, rep, st) = (accepted.clone(), replied.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !st.load(Ordering::Acquire) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        if let Some(reply) = reply {
                            let mut head = Vec::new();
                            let mut buf = [0u8; 1024];
                            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                                let n = conn.read(&mut buf).unwrap();
                                assert!(n > 0, "the client closed before its request head");
                                head.extend_from_slice(&buf[..n]);
                            }
                            conn.write_all(reply).unwrap();
                            rep.fetch_add(1, Ordering::AcqRel);
                        }
                        held.push(conn);
                        acc.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("raw server accept: {e}"),
                }
            }
        });
        RawServer {
            addr,
            accepted,
            replied,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let joined = thread.join();
            if !thread::panicking() {
                joined.expect("raw server thread");
            }
        }
    }
}

/// A listener whose accept queue is full, so the kernel drops new SYNs: a connect to it stays
/// in `SYN_SENT`. Holds the connections that fill the queue.
struct FullBacklog {
    listener: TcpListener,
    _held: Vec<std::net::TcpStream>,
}

impl FullBacklog {
    fn new() -> FullBacklog {
        // Never polled, so never registered with the runtime's reactor.
        let listener = TcpListener::bind_with_backlog(local(), 0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        assert!(
            !held.is_empty() && held.len() < 8,
            "the backlog did not fill"
        );
        FullBacklog {
            listener,
            _held: held,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// True once a connect to it is stuck in `SYN_SENT`.
    fn has_syn_sent(&self) -> bool {
        let (clients, _) = sockets_to(self.addr().port());
        clients.iter().any(|s| s.state == SYN_SENT)
    }
}

/// True when a connection to `port` is stuck sending: the sender's queue and the receiver's
/// (unread) queue are both non-empty and did not move since the previous call.
fn send_stuck(port: u16, previous: &mut Option<(u64, u64)>) -> bool {
    let (clients, servers) = sockets_to(port);
    let (Some(c), Some(s)) = (clients.first(), servers.first()) else {
        return false;
    };
    let now = (c.tx_queue, s.rx_queue);
    let stuck = now.0 > 0 && now.1 > 0 && *previous == Some(now);
    *previous = Some(now);
    stuck
}

/// True when every byte the server side of the connections on `port` sent has been read by
/// the client application. Two snapshots, in this order: first no server socket has unacked
/// bytes (so all were in the client's kernel or already read), then no client socket has
/// unread bytes. Nothing polls the client between the two, so the bytes were read before.
fn all_read_by_client(port: u16) -> bool {
    let (_, servers) = sockets_to(port);
    if servers.is_empty() || servers.iter().any(|s| s.tx_queue != 0) {
        return false;
    }
    let (clients, _) = sockets_to(port);
    clients.iter().all(|c| c.rx_queue == 0)
}

/// A body larger than any loopback socket buffer pair.
fn big_body() -> Bytes {
    Bytes::from(vec![b'x'; 32 << 20])
}

// ---------------------------------------------------------------------------------------------
// The cases

/// Dropped while the resolver has not answered: the lookup future is dropped, the total
/// timeout's timer goes, nothing is cached, and the next lookup of the name asks again.
#[test]
fn drop_while_resolving() {
    let _serial = serial();
    let env = Env::new();
    block_on_watched(&env.rt, 60, async {
        let base = env.warm_up().await;
        let url = env.url("slow.test", "/bytes/10?seed=3");
        let mut fut = Box::pin(env.client.get(&url).send());
        drive_until(fut.as_mut(), "resolving", || env.dns.asked.get() == 1).await;
        let during = counts(&env.rt);
        assert_eq!(
            during,
            (base.counts.0, base.counts.1, base.counts.2 + 1),
            "resolving: one timer (the total timeout), no socket"
        );
        assert_eq!(fds(), base.fds, "resolving opens no descriptor");
        assert_eq!(env.dns.dropped.get(), 0);
        drop(fut);
        assert_eq!(
            env.dns.dropped.get(),
            1,
            "the pending lookup was not dropped"
        );
        env.assert_released(&base, "resolving");
        env.assert_fds_settled(&base, "resolving").await;

        // Nothing was cached: the name is looked up again, and now it answers.
        env.dns.answer.set(Some(env.server.local_addr()));
        let body = env.client.get(&url).send().await.unwrap().bytes().await;
        assert_eq!(body.unwrap()[..], seeded_bytes(3, 10)[..]);
        assert_eq!(env.dns.asked.get(), 2);
        env.assert_follow_up_works(40).await;
    });
}

/// Dropped while the SYN goes unanswered: the connecting socket is closed and deregistered,
/// the connect timeout's timer goes.
#[test]
fn drop_while_connecting() {
    let _serial = serial();
    let env = Env::new();
    block_on_watched(&env.rt, 60, async {
        let base = env.warm_up().await;
        let backlog = FullBacklog::new();
        let setup = fds();
        let mut fut = Box::pin(env.client.get(format!("http://{}/", backlog.addr())).send());
        drive_until(fut.as_mut(), "connecting", || backlog.has_syn_sent()).await;
        assert_eq!(
            counts(&env.rt),
            (base.counts.0, base.counts.1 + 1, base.counts.2 + 1),
            "connecting: the socket waits for writability under one timer"
        );
        assert_eq!(fds().len(), setup.len() + 1, "connecting: one socket");
        drop(fut);
        env.assert_released(&base, "connecting");
        assert!(
            !backlog.has_syn_sent(),
            "the connecting socket is still there"
        );
        assert_eq!(fds(), setup, "connecting: {}", fd_diff(&setup, &fds()));
        drop(backlog);
        env.assert_fds_settled(&base, "connecting").await;
        env.assert_follow_up_works(50).await;
    });
}

/// Dropped while writing a request body that the server does not read: the socket whose
/// send buffer is full is closed and deregistered, the read timeout's timer goes.
#[test]
fn drop_while_writing_the_request() {
    let _serial = serial();
    let env = Env::new();
    block_on_watched(&env.rt, 60, async {
        let base = env.warm_up().await;
        let raw = RawServer::start(None);
        let port = raw.addr.port();
        let setup = fds();
        let request = env
            .client
            .post(format!("http://{}/upload", raw.addr))
            .body(big_body());
        let mut fut = Box::pin(request.send());
        let mut previous = None;
        drive_until(fut.as_mut(), "writing", || {
            raw.accepted.load(Ordering::Acquire) == 1 && send_stuck(port, &mut previous)
        })
        .await;
        assert_eq!(
            counts(&env.rt),
            (base.counts.0, base.counts.1 + 1, base.counts.2 + 1),
            "writing: one socket waiting to write, one timer"
        );
        assert_eq!(
            fds().len(),
            setup.len() + 2,
            "writing: the client's socket and the one accepted"
        );
        drop(fut);
        env.assert_released(&base, "writing");
        let (clients, _) = sockets_to(port);
        assert!(
            clients.iter().all(|s| s.state != ESTABLISHED),
            "the client's socket is still established: {clients:?}"
        );
        drop(raw);
        env.assert_fds_settled(&base, "writing").await;
        env.assert_follow_up_works(60).await;
    });
}

/// Dropped while waiting for a head that never comes (`/fault/stall-head`, after the server
/// has read the request).
#[test]
fn drop_while_reading_the_head() {
    let _serial = serial();
    let env = Env::new();
    block_on_watched(&env.rt, 60, async {
        let base = env.warm_up().await;
        let requests = env.server.stats().requests;
        let mut fut = Box::pin(
            env.client
                .get(env.url("b.test", "/fault/stall-head"))
                .send(),
        );
        drive_until(fut.as_mut(), "reading the head", || {
            env.server.stats().requests == requests + 1
        })
        .await;
        assert_eq!(
            counts(&env.rt),
            (base.counts.0, base.counts.1 + 1, base.counts.2 + 1),
            "reading the head: one socket, one timer"
        );
        assert_eq!(
            fds().len(),
            base.fds.len() + 2,
            "reading the head: the client's socket and the server's"
        );
        drop(fut);
        env.assert_released(&base, "reading the head");
        env.assert_fds_settled(&base, "reading the head").await;
        env.assert_follow_up_works(70).await;

        // The same on a connection taken from the pool (the warm one to a.test): it is
        // closed, not put back.
        let base = env.baseline();
        let requests = env.server.stats().requests;
        let mut fut = Box::pin(
            env.client
                .get(env.url("a.test", "/fault/stall-head"))
                .send(),
        );
        drive_until(fut.as_mut(), "reading the head (reused)", || {
            env.server.stats().requests == requests + 1
        })
        .await;
        assert_eq!(env.client.idle_connections(), base.idle - 1, "checked out");
        assert_eq!(
            counts(&env.rt),
            (base.counts.0, base.counts.1, base.counts.2 + 1),
            "reading the head (reused): the pooled socket, now with a timer"
        );
        assert_eq!(fds(), base.fds, "a reused connection opens nothing");
        drop(fut);
        assert_eq!(
            counts(&env.rt),
            (base.counts.0, base.counts.1 - 1, base.counts.2),
            "reading the head (reused): the socket is closed"
        );
        assert_eq!(env.client.idle_connections(), base.idle - 1, "not put back");
        env.wait_server_open(base.server_open - 1).await;
        let now = fds();
        assert!(
            now.len() == base.fds.len() - 2
                && now
                    .iter()
                    .all(|(fd, target)| base.fds.get(fd) == Some(target)),
            "reading the head (reused): {}",
            fd_diff(&base.fds, &now)
        );
        let t = env.fetch_exact("a.test", 300, 75).await;
        assert!(!t.reused, "a.test had no idle connection left");
    });
}

/// Dropped while waiting for the rest of a body (`/fault/stall-body`), after its first part
/// arrived: the request and body read are one future, as in `get(..).send().await?.bytes()`.
#[test]
fn drop_while_reading_the_body() {
    let _serial = serial();
    let env = Env::new();
    block_on_watched(&env.rt, 60, async {
        let base = env.warm_up().await;
        let received = Rc::new(Cell::new(0usize));
        let url = env.url("b.test", "/fault/stall-body?after=1000");
        let got = received.clone();
        let client = &env.client;
        let mut fut = Box::pin(async move {
            let mut resp = client.get(url).send().await.unwrap();
            assert_eq!(resp.content_length(), Some(2000));
            while let Some(chunk) = resp.chunk().await.unwrap() {
                assert!(chunk.iter().all(|&b| b == b'*'));
                got.set(got.get() + chunk.len());
            }
            unreachable!("the body stalls at 1000 of 2000 bytes");
        });
        drive_until(fut.as_mut(), "reading the body", || received.get() == 1000).await;
        assert_eq!(
            counts(&env.rt),
            (base.counts.0, base.counts.1 + 1, base.counts.2 + 1),
            "reading the body: one socket, one timer"
        );
        assert_eq!(fds().len(), base.fds.len() + 2);
        drop(fut);
        env.assert_released(&base, "reading the body");
        env.assert_fds_settled(&base, "reading the body").await;
        env.assert_follow_up_works(80).await;
    });
}

/// A `Response` dropped mid-body on a keep-alive connection, with more of the body on the
/// way: the connection is closed, not pooled, and the next request to the same host gets its
/// own body, not the rest of this one. Also a response whose whole body has arrived but was
/// not read: dropping it closes the connection too.
#[test]
fn drop_response_mid_body() {
    let _serial = serial();
    let env = Env::new();
    block_on_watched(&env.rt, 60, async {
        let base = env.warm_up().await;
        const N: usize = 4 << 20;
        let url = env.url("b.test", &format!("/bytes/{N}?seed=9"));
        let mut resp = env.client.get(url).send().await.unwrap();
        assert_eq!(resp.content_length(), Some(N as u64));
        assert!(resp.headers().get("connection").is_none(), "keep-alive");
        let first = resp.chunk().await.unwrap().unwrap();
        assert!(first.len() < N);
        assert_eq!(first[..], seeded_bytes(9, N)[..first.len()]);
        assert_eq!(
            counts(&env.rt),
            (base.counts.0, base.counts.1 + 1, base.counts.2),
            "mid-body: one socket, no read pending so no timer"
        );
        assert_eq!(fds().len(), base.fds.len() + 2);
        drop(resp);
        env.assert_released(&base, "response dropped mid-body");
        env.assert_fds_settled(&base, "response dropped mid-body")
            .await;
        env.assert_follow_up_works(90).await;

        // A small body that arrived with the head, never read: dropped with its connection.
        let base = env.baseline();
        let resp = env
            .client
            .get(env.url("a.test", "/bytes/100?seed=10"))
            .send()
            .await
            .unwrap();
        assert!(resp.timings().reused);
        assert_eq!(env.client.idle_connections(), base.idle - 1);
        drop(resp);
        assert_eq!(
            counts(&env.rt),
            (base.counts.0, base.counts.1 - 1, base.counts.2)
        );
        assert_eq!(env.client.idle_connections(), base.idle - 1);
        // Two descriptors fewer than before (the client's and the server's of a.test's
        // connection), once the server has closed its side.
        env.wait_server_open(base.server_open - 1).await;
        let mut now = fds();
        for _ in 0..1000 {
            if now.len() == base.fds.len() - 2 {
                break;
            }
            volley::sleep(Duration::from_millis(5)).await;
            now = fds();
        }
        assert!(
            now.len() == base.fds.len() - 2
                && now
                    .iter()
                    .all(|(fd, target)| base.fds.get(fd) == Some(target)),
            "unread body: {}",
            fd_diff(&base.fds, &now)
        );
        let t = env.fetch_exact("a.test", 200, 11).await;
        assert!(!t.reused, "the dropped response's connection was pooled");
    });
}

/// Dropped while a redirect's body is being read so that its connection can be reused (the
/// body stalls): the drain's socket and timer go, and nothing is pooled.
#[test]
fn drop_while_draining_a_redirect() {
    let _serial = serial();
    let env = Env::new();
    block_on_watched(&env.rt, 60, async {
        let base = env.warm_up().await;
        let raw = RawServer::start(Some(
            b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 1000\r\n\r\n0123456789",
        ));
        let port = raw.addr.port();
        let setup = fds();
        let mut fut = Box::pin(env.client.get(format!("http://{}/", raw.addr)).send());
        drive_until(fut.as_mut(), "draining a redirect", || {
            // The reply was written and the client has read all of it: it parsed the 302 and
            // waits for the rest of its body.
            raw.replied.load(Ordering::Acquire) == 1 && all_read_by_client(port)
        })
        .await;
        assert_eq!(
            counts(&env.rt),
            (base.counts.0, base.counts.1 + 1, base.counts.2 + 1),
            "draining: one socket, one timer"
        );
        assert_eq!(fds().len(), setup.len() + 2);
        drop(fut);
        env.assert_released(&base, "draining a redirect");
        drop(raw);
        env.assert_fds_settled(&base, "draining a redirect").await;
        env.assert_follow_up_works(100).await;
    });
}

/// A batch stream dropped with requests in every state at once: one done (on the warm pooled
/// connection, which goes back to the pool), one resolving, one connecting, one writing, one
/// waiting for a head, one waiting for the rest of a body, one queued for its host (under a
/// queue timeout). Its tasks, sockets and timers all go; descriptors come back to the
/// baseline; the pool keeps only the warm connection.
#[test]
fn drop_batch_stream_with_requests_in_every_state() {
    let _serial = serial();
    let env = Env::new();
    block_on_watched(&env.rt, 60, async {
        let base = env.warm_up().await;
        let backlog = FullBacklog::new();
        let raw = RawServer::start(None);
        let setup = fds();
        let requests_before = env.server.stats().requests;
        let request = |method: Method, url: String| env.client.request(method, url);
        let batch = vec![
            request(Method::GET, env.url("a.test", "/bytes/500?seed=5")),
            request(Method::GET, env.url("slow.test", "/get")),
            request(Method::GET, format!("http://{}/", backlog.addr())),
            request(Method::POST, format!("http://{}/upload", raw.addr)).body(big_body()),
            request(Method::GET, env.url("b.test", "/fault/stall-head")),
            request(
                Method::GET,
                env.url("c.test", "/fault/stall-body?after=100"),
            ),
            // Queued behind the stalled head: one request per host at a time.
            request(Method::GET, env.url("b.test", "/bytes/10?seed=6")),
        ];
        let batch: Vec<_> = batch.into_iter().map(|r| r.build().unwrap()).collect();
        let mut stream = env
            .client
            .fetch_all(batch)
            .concurrency(10)
            .per_host(1)
            .queue_timeout(Duration::from_secs(60))
            .stream();
        let mut results = Vec::new();
        let mut previous = None;
        let mut reached = false;
        for _ in 0..2000 {
            while let Poll::Ready(result) = poll_fn(|cx| Poll::Ready(stream.poll_next(cx))).await {
                results.push(result.expect("the batch ended early"));
            }
            reached = results.len() == 1
                && env.dns.asked.get() == 1
                && backlog.has_syn_sent()
                && raw.accepted.load(Ordering::Acquire) == 1
                && send_stuck(raw.addr.port(), &mut previous)
                && env.server.stats().requests == requests_before + 3
                // The stalled body's head and first bytes were read: it waits for the rest.
                && all_read_by_client(env.server.local_addr().port());
            if reached {
                break;
            }
            volley::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            reached,
            "the batch's requests did not all reach their states"
        );
        assert_eq!(results.len(), 1, "only the first request finishes");
        let first = results[0].outcome.as_ref().unwrap();
        assert_eq!(first.body[..], seeded_bytes(5, 500)[..]);
        assert!(results[0].timings.reused);
        assert!(backlog.has_syn_sent() && env.dns.asked.get() == 1);
        // Six lanes (tasks): five with a request, each under one timer, four of them with a
        // socket, and the one that ran the first request, waiting for another; the queue
        // timeout's timer.
        assert_eq!(
            counts(&env.rt),
            (base.counts.0 + 6, base.counts.1 + 4, base.counts.2 + 5 + 1),
            "the batch in flight"
        );
        // Four client sockets; the server's for the two stalls and the raw server's one.
        assert_eq!(fds().len(), setup.len() + 4 + 2 + 1);
        assert_eq!(env.client.idle_connections(), base.idle);

        drop(stream);
        // Aborted tasks are dropped when the loop next runs them.
        for _ in 0..100 {
            if counts(&env.rt).0 == base.counts.0 {
                break;
            }
            util::yield_now().await;
        }
        env.assert_released(&base, "batch stream");
        assert_eq!(
            env.dns.dropped.get(),
            1,
            "the pending lookup was not dropped"
        );
        assert!(!backlog.has_syn_sent());
        drop((backlog, raw));
        env.assert_fds_settled(&base, "batch stream").await;
        env.assert_follow_up_works(110).await;
    });
}
