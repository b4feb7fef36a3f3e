//! Shared helpers for the integration tests: loopback addresses, descriptor counting, a
//! watchdog against hangs, an in-process echo server and a pseudo-random byte stream.

// Each test binary includes this module with `mod util;` and uses only some of the helpers.
#![allow(dead_code)]

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use volley::{Runtime, TcpListener, TcpStream};

pub mod example;

/// A loopback port nobody listens on (one the kernel just gave and took back): connecting
/// to it is refused.
pub fn refused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
pub mod redis_server;
mod skip;
#[allow(unused_imports)] // each test file uses what it needs
pub use skip::{skip, under_ci};

/// A field of `/proc/self/status` given in kB, in bytes.
pub fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("a {field} line"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a size in kB");
    kib * 1024
}

/// `127.0.0.1:0`: loopback, any free port.
pub fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The number of open file descriptors of this process (entries in `/proc/self/fd`).
///
/// The directory handle used to list them is counted too, so compare two counts rather than
/// reading one as exact.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
}

/// The open descriptor numbers of this process, without the one used to list them.
pub fn open_fd_numbers() -> Vec<u64> {
    let entries: Vec<u64> = std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The directory handle itself was open while listing; it no longer is.
    entries
        .into_iter()
        .filter(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok())
        .collect()
}

/// Aborts the whole test process if it is still alive after its deadline, so that a hung
/// event loop fails the run instead of stalling it. Dropping it disarms it.
#[must_use = "the watchdog is disarmed as soon as it is dropped"]
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

/// Arms a [`Watchdog`] that aborts the process after `secs` seconds, naming `what`.
pub fn watchdog(what: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    thread::Builder::new()
        .name(format!("watchdog: {what}"))
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs))
            {
                // Straight to the process's stderr: the test harness's capture of `eprintln!`
                // would be lost with the abort.
                let _ = writeln!(
                    std::io::stderr(),
                    "watchdog: `{what}` still running after {secs} s; aborting"
                );
                std::process::abort();
            }
        })
        .expect("spawn watchdog thread");
    Watchdog { _disarm: tx }
}

/// Runs `future` on `rt` under a watchdog of `secs` seconds and a runtime timeout of the same
/// length, panicking (not hanging) if it does not finish.
pub fn block_on_bounded<F: Future>(rt: &Runtime, secs: u64, future: F) -> F::Output {
    let _dog = watchdog("block_on_bounded", secs + 10);
    rt.block_on(volley::timeout(Duration::from_secs(secs), future))
        .unwrap_or_else(|_| panic!("test future did not finish within {secs} s"))
}

/// Runs `future` on `rt` under a watchdog of `secs` seconds only, so that no timer of the
/// harness shows in `stats().timers` (or wakes the loop) while it runs.
pub fn block_on_watched<F: Future>(rt: &Runtime, secs: u64, future: F) -> F::Output {
    let _dog = watchdog("block_on_watched", secs);
    rt.block_on(future)
}

/// Starts an echo server task on `127.0.0.1:0` and returns its address. Each connection is
/// served by its own task, which writes back whatever it reads until EOF. Call it inside
/// `block_on`; the server runs until the runtime is dropped.
pub fn spawn_echo_server() -> SocketAddr {
    spawn_echo_server_with_buffer(4096)
}

/// Like [`spawn_echo_server`], reading at most `buf_len` bytes at a time and echoing with
/// single `write` calls (so partial writes are handled by hand).
pub fn spawn_echo_server_with_buffer(buf_len: usize) -> SocketAddr {
    let mut listener = TcpListener::bind(local()).expect("bind echo server");
    let addr = listener.local_addr().expect("echo server address");
    let _server = volley::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    let _conn = volley::spawn(echo(conn, buf_len));
                }
                Err(e) => panic!("echo server accept failed: {e}"),
            }
        }
    });
    addr
}

/// Echoes `conn` until EOF, then closes its write side.
pub async fn echo(mut conn: TcpStream, buf_len: usize) -> std::io::Result<u64> {
    // No Nagle: lock-step clients would otherwise wait for delayed ACKs on every exchange.
    conn.set_nodelay(true)?;
    let mut buf = vec![0; buf_len];
    let mut total = 0u64;
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            conn.shutdown(std::net::Shutdown::Write)?;
            return Ok(total);
        }
        let mut written = 0;
        while written < n {
            let m = conn.write(&buf[written..n]).await?;
            assert!(m > 0, "write returned 0");
            written += m;
        }
        total += n as u64;
    }
}

/// A deterministic pseudo-random byte stream (xorshift64*), for payloads checked on arrival.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    /// A stream from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Prng {
        Prng(seed | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fills `buf` with the next bytes of the stream. `buf.len()` must be a multiple of 8 for
    /// the stream to be the same however it is chunked.
    pub fn fill(&mut self, buf: &mut [u8]) {
        assert_eq!(buf.len() % 8, 0, "Prng::fill takes whole words");
        for chunk in buf.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
    }
}

/// A streaming FNV-1a 64 checksum: the result depends only on the bytes, not on how they
/// were split across calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A waker that does nothing, for polling a future by hand outside any runtime.
pub fn noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}

/// Sets its flag when dropped: proves that a future (or whatever owns it) was dropped.
#[derive(Debug)]
pub struct DropFlag(pub std::rc::Rc<std::cell::Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A fresh flag and a [`DropFlag`] that sets it.
pub fn drop_flag() -> (std::rc::Rc<std::cell::Cell<bool>>, DropFlag) {
    let flag = std::rc::Rc::new(std::cell::Cell::new(false));
    (flag.clone(), DropFlag(flag))
}

/// Returns `Pending` once, waking itself first, so other tasks get a turn.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Makes sure the soft `RLIMIT_NOFILE` is at least `wanted`, for tests that hold thousands of
/// sockets: [`volley::raise_fd_limit`] lifts it to the hard limit. Panics with a clear message
/// if that is still lower.
pub fn raise_fd_limit(wanted: u64) {
    use rustix::process::{getrlimit, Resource};
    // `None`: unlimited. If raising fails, what is in force may still be enough.
    let limit = match volley::raise_fd_limit() {
        Ok(limit) => limit,
        Err(_) => getrlimit(Resource::Nofile).current,
    };
    let limit = limit.unwrap_or(u64::MAX);
    assert!(
        limit >= wanted,
        "this test needs {wanted} file descriptors; the hard RLIMIT_NOFILE is {limit}"
    );
}

/// Runs `f` on a fresh runtime with a fresh embedded server, bounded to 60 s so that a hang
/// fails the test instead of stalling the suite.
pub fn with_server<F, Fut>(f: F)
where
    F: FnOnce(volley_testserver::Server) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = volley_testserver::Server::bind(local()).unwrap();
        volley::timeout(Duration::from_secs(60), f(server))
            .await
            .expect("test timed out");
    });
}

/// Sends `request` and returns the body as text, failing the test on any error.
pub async fn text_of(request: volley::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}
