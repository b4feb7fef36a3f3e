//! cargo run --release --example echo_server [-- ADDR]
//!
//! The seed's `select()` echo server (seeds/002), redone with tasks.
//!
//! ```text
//! cargo run --release --example echo_server                      # serve on 127.0.0.1:8070
//! cargo run --release --example echo_server -- 127.0.0.1:9000    # serve on ADDR
//! cargo run --release --example echo_server -- --self-test 2000  # server + 2000 clients, then exit
//! ```
//!
//! The seed's `select()` version keeps one list of sockets and, on every turn of its loop, asks
//! the kernel which of them are readable, then does one buffer's worth of work for each. The
//! bookkeeping (who is ready, what to do next for whom) is all in that one loop.
//!
//! Here the same bookkeeping lives in volley's loop instead, and our code reads like the seed's
//! first, *blocking* server: an accept loop, and for each connection "read, echo, until EOF".
//! The difference is that every `.await` hands the thread back to the runtime while a socket
//! is not ready, so one task per connection costs a few hundred bytes, not a thread, and one
//! thread serves thousands of clients at once.
//!
//! `--self-test N` starts the server on a free port and N clients on the same runtime, holds all
//! N connections open at the same moment, checks every echo byte for byte, and exits non-zero on
//! any mismatch: a check CI can run without a second process.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use rustix::process::{getrlimit, Resource};
use volley::net::ACCEPT_BACKOFF;
use volley::{Runtime, TcpListener, TcpStream};

/// Where the server listens when no ADDR is given.
const DEFAULT_ADDR: &str = "127.0.0.1:8070";

/// How many clients `--self-test` runs when no count is given.
const DEFAULT_CLIENTS: usize = 2000;

/// How much one read takes at most. The seed reads 16 bytes at a time to show the interleaving;
/// any size echoes the same bytes, a bigger one just needs fewer system calls.
const BUF_SIZE: usize = 4096;

/// Descriptors the process needs besides the sockets: stdio, the epoll fd, the eventfd that
/// wakes it, the listener, and some slack.
const RESERVED_FDS: u64 = 32;

/// How long the self-test may take before it is declared stuck.
const SELF_TEST_TIMEOUT: Duration = Duration::from_secs(60);

const USAGE: &str = "usage: echo_server [ADDR] | echo_server --self-test [N]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (None, ..) => serve(DEFAULT_ADDR.parse().expect("DEFAULT_ADDR is an address")),
        (Some("-h" | "--help"), None, _) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        (Some("--self-test"), None, _) => self_test(DEFAULT_CLIENTS),
        (Some("--self-test"), Some(n), None) => match n.parse() {
            Ok(n) if n > 0 => self_test(n),
            _ => usage_error(&format!("--self-test wants a positive count, not {n:?}")),
        },
        (Some(addr), None, _) => match addr.parse() {
            Ok(addr) => serve(addr),
            Err(_) => usage_error(&format!("not an IP:PORT address: {addr:?}")),
        },
        _ => usage_error("too many arguments"),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("echo_server: {message}\n{USAGE}");
    ExitCode::from(2)
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// Serves `addr` until the process is killed (Ctrl-C).
///
/// The seed stops its `select()` loop when a line arrives on stdin. We simply let Ctrl-C end
/// the process: the kernel closes every socket we hold.
fn serve(addr: SocketAddr) -> ExitCode {
    // Each client costs one descriptor; the usual soft limit of 1024 would stop us near 1,000
    // clients, so take everything the hard limit allows.
    let fd_limit = raise_fd_limit();
    let run = || -> io::Result<()> {
        let rt = Runtime::new()?;
        rt.block_on(async {
            let listener = TcpListener::bind(addr)?;
            println!(
                "echo server listening on {} (open-file limit {fd_limit}, one per client); \
                 Ctrl-C stops it",
                listener.local_addr()?,
            );
            accept_loop(listener, Rc::default(), true).await;
            Ok(())
        })
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_server: cannot serve on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Counts the server keeps about its connections, for the log and for the self-test.
#[derive(Debug, Default)]
struct Tally {
    /// Connections accepted and not yet closed.
    open: Cell<usize>,
    /// The most connections that were open at the same moment.
    peak: Cell<usize>,
    /// Bytes echoed back, over all connections.
    echoed: Cell<u64>,
}

/// The accept loop: wait for a connection, give it a task of its own, and go straight back to
/// waiting. It never returns.
///
/// `listener.accept().await` suspends this task until the reactor reports the listening socket
/// readable, which is the seed's `if readable is server_socket` branch. Nothing here waits for
/// a client: each one runs in its own task, so a slow client delays nobody.
async fn accept_loop(mut listener: TcpListener, tally: Rc<Tally>, log: bool) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Most often EMFILE: out of file descriptors. Report it and keep serving: the
                // clients already connected finish and free theirs, and the listener waits
                // ACCEPT_BACKOFF before its next try, so this loop does not spin meanwhile.
                eprintln!("accept failed: {e}; retrying in {ACCEPT_BACKOFF:?}");
                continue;
            }
        };
        tally.open.set(tally.open.get() + 1);
        tally.peak.set(tally.peak.get().max(tally.open.get()));
        if log {
            println!("[{peer}] connected ({} open)", tally.open.get());
        }

        // One task per connection. `spawn` only queues the task: it first runs on the next
        // turn of the loop, after this one has gone back to `accept`.
        let tally = tally.clone();
        let connection = volley::spawn(async move {
            let result = echo(stream).await;
            tally.open.set(tally.open.get() - 1);
            match result {
                Ok(bytes) => {
                    tally.echoed.set(tally.echoed.get() + bytes);
                    if log {
                        println!(
                            "[{peer}] closed after echoing {bytes} bytes ({} open)",
                            tally.open.get()
                        );
                    }
                }
                Err(e) => eprintln!("[{peer}] connection failed: {e}"),
            }
        });
        // Dropping the handle detaches the task: it runs to the end without anyone awaiting it.
        drop(connection);
    }
}

/// Echoes everything the client sends, byte for byte, until the client closes its side.
/// Returns how many bytes went back.
///
/// This is the seed's gevent handler, line for line. Each `.await` is a point where the task
/// may be suspended: `read` waits until the kernel has bytes for us (or the client's FIN), and
/// `write_all` waits while the client's receive window is full.
async fn echo(mut stream: TcpStream) -> io::Result<u64> {
    let mut buf = [0; BUF_SIZE];
    let mut echoed = 0;
    loop {
        // Read until EOF. A read returns whatever has arrived, from 1 byte up to BUF_SIZE;
        // 0 means the client has shut down its sending side and nothing more will come.
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        // Echo exactly those bytes. `write_all` keeps writing until all of them are out.
        stream.write_all(&buf[..n]).await?;
        echoed += n as u64;
    }
    // Shut down, as the seed does: the FIN tells the client the echo is complete. It may fail
    // if the client has already gone (reset); there is nothing left to tell it then. Dropping
    // the stream at the end of this function closes the socket and removes it from the reactor.
    let _ = stream.shutdown(Shutdown::Both);
    Ok(echoed)
}

/// Raises the soft limit on open files to the hard limit with [`volley::raise_fd_limit`], says
/// so, and returns the soft limit now in force (`u64::MAX`: unlimited).
///
/// A process may raise its own soft limit up to its hard limit without privileges.
fn raise_fd_limit() -> u64 {
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    match volley::raise_fd_limit() {
        Ok(limit) => {
            let limit = limit.unwrap_or(u64::MAX);
            if limit != soft {
                println!("raised the open-file limit from {soft} to {limit}");
            }
            limit
        }
        Err(e) => {
            eprintln!("could not raise the open-file limit from {soft}: {e}");
            soft
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The self-test: the server and its clients on one runtime
// ---------------------------------------------------------------------------------------------

/// Runs the server and `requested` clients on one runtime and checks every echo.
fn self_test(requested: usize) -> ExitCode {
    // Every client holds two descriptors: its own socket and the server's side of it.
    let fd_limit = raise_fd_limit();
    let fit = usize::try_from(fd_limit.saturating_sub(RESERVED_FDS) / 2).unwrap_or(usize::MAX);
    let clients = requested.min(fit);
    if clients < requested {
        println!(
            "note: the open-file limit is {fd_limit} and cannot be raised, so the self-test runs \
             {clients} clients instead of {requested} (each needs 2 descriptors)"
        );
    }
    if clients == 0 {
        eprintln!("echo_server: no room for even one client under the open-file limit");
        return ExitCode::FAILURE;
    }

    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo_server: cannot create the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_self_test(clients)) {
        Ok(report) => report.print_and_judge(clients),
        Err(e) => {
            eprintln!("echo_server: self-test failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the self-test saw.
#[derive(Debug, Default)]
struct Report {
    /// Clients whose echo matched.
    passed: usize,
    /// One line per client that failed.
    failures: Vec<String>,
    /// Bytes the clients sent (and, for those that passed, got back).
    bytes: u64,
    /// Time from spawning the first client to the last one finishing.
    elapsed: Duration,
    /// The server's counts.
    tally: Rc<Tally>,
}

impl Report {
    fn print_and_judge(&self, clients: usize) -> ExitCode {
        let secs = self.elapsed.as_secs_f64();
        println!("self-test: {clients} concurrent clients against one echo server, one thread");
        println!("  passed:          {} / {clients}", self.passed);
        println!(
            "  bytes:           {} sent, {} echoed by the server",
            self.bytes,
            self.tally.echoed.get()
        );
        println!(
            "  elapsed:         {:.3} s ({:.0} clients/s)",
            secs,
            clients as f64 / secs
        );
        println!(
            "  peak open:       {} server connections at once",
            self.tally.peak.get()
        );
        for failure in self.failures.iter().take(10) {
            println!("  FAILED: {failure}");
        }
        if self.failures.len() > 10 {
            println!("  ... and {} more failures", self.failures.len() - 10);
        }
        if self.passed == clients {
            println!("ok: every echo matched byte for byte");
            ExitCode::SUCCESS
        } else {
            println!("FAILED: {} of {clients} clients", clients - self.passed);
            ExitCode::FAILURE
        }
    }
}

/// Starts the server on a free port, runs `clients` clients against it, and gathers the results.
async fn run_self_test(clients: usize) -> io::Result<Report> {
    // Port 0: the kernel picks a free port, so the test never collides with a running server.
    let listener = TcpListener::bind("127.0.0.1:0".parse().expect("a valid address"))?;
    let addr = listener.local_addr()?;
    let tally = Rc::new(Tally::default());
    let server = volley::spawn(accept_loop(listener, tally.clone(), false));

    let gate = Rc::new(Gate::new(clients));
    let start = Instant::now();
    // Spawn every client first, then await them: they all run at once. Awaiting each one right
    // after spawning it would run them one after another.
    let handles: Vec<_> = (0..clients)
        .map(|id| volley::spawn(client(id, clients, addr, gate.clone())))
        .collect();

    let mut report = Report {
        tally,
        ..Report::default()
    };
    let gather = async {
        for handle in handles {
            match handle.await {
                Ok(Ok(bytes)) => {
                    report.passed += 1;
                    report.bytes += bytes as u64;
                }
                Ok(Err(failure)) => report.failures.push(failure),
                Err(e) => report.failures.push(format!("client task: {e}")),
            }
        }
    };
    if volley::timeout(SELF_TEST_TIMEOUT, gather).await.is_err() {
        let message = format!("not done after {SELF_TEST_TIMEOUT:?}");
        return Err(io::Error::new(io::ErrorKind::TimedOut, message));
    }
    report.elapsed = start.elapsed();
    // The accept loop never ends by itself. Cancel it: its listener closes.
    server.abort();
    Ok(report)
}

/// One client: connect, send the first half of its message and read its echo, wait at the gate
/// until every client has got that far, then send the second half, shut down its sending side,
/// and read the echo to the end. Returns the message length, or what went wrong.
///
/// The gate makes the test honest about "thousands at once": no client finishes before every
/// client is connected and has been echoed to, so the server really holds them all together.
async fn client(
    id: usize,
    clients: usize,
    addr: SocketAddr,
    gate: Rc<Gate>,
) -> Result<usize, String> {
    let message = message_for(id, clients);
    let (first, second) = message.split_at(message.len() / 2);

    let connected = async {
        let mut stream = TcpStream::connect(addr).await?;
        // Send small writes at once rather than wait to coalesce them (Nagle's algorithm).
        stream.set_nodelay(true)?;
        stream.write_all(first).await?;
        let mut echo = vec![0; first.len()];
        read_exact(&mut stream, &mut echo).await?;
        Ok::<_, io::Error>((stream, echo))
    }
    .await;
    // Arrive at the gate even after a failure, so that the others are not kept waiting forever.
    gate.arrive_and_wait().await;
    let (mut stream, mut echo) = connected.map_err(|e| format!("client {id}: first half: {e}"))?;

    let finished = async {
        stream.write_all(second).await?;
        // Our EOF: the server's read returns 0, it shuts down, and our read_to_end ends.
        stream.shutdown(Shutdown::Write)?;
        stream.read_to_end(&mut echo).await
    }
    .await;
    finished.map_err(|e| format!("client {id}: second half: {e}"))?;

    if echo == message {
        return Ok(message.len());
    }
    match message
        .iter()
        .zip(&echo)
        .position(|(sent, got)| sent != got)
    {
        Some(at) => Err(format!("client {id}: echo differs at byte {at}")),
        None => Err(format!(
            "client {id}: sent {} bytes, got {} back",
            message.len(),
            echo.len()
        )),
    }
}

/// Reads exactly `buf.len()` bytes. The peer closing early is an `UnexpectedEof` error.
async fn read_exact(stream: &mut TcpStream, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.read(buf).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

/// Client `id`'s message: a readable header, then 0 to 8 KiB of bytes of every value from a
/// generator seeded with `id`. No two clients send the same bytes, so an echo delivered to the
/// wrong client, reordered or cut short is caught by the comparison.
fn message_for(id: usize, clients: usize) -> Vec<u8> {
    let mut message = format!("client {id} of {clients}\n").into_bytes();
    let len = id * 7919 % 8192;
    // xorshift64: tiny and good enough to scramble bytes; its state must not be zero.
    let mut state = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    message.extend((0..len).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }));
    message
}

/// A countdown latch: `arrive_and_wait` returns once `n` tasks have called it.
///
/// No lock is needed: every task runs on this one thread, and between two `.await` points a
/// task runs alone, so reading and updating the count cannot interleave with another task.
#[derive(Debug)]
struct Gate {
    /// Tasks still to arrive.
    remaining: Cell<usize>,
    /// The tasks waiting for the last one.
    waiting: RefCell<Vec<Waker>>,
}

impl Gate {
    fn new(n: usize) -> Gate {
        Gate {
            remaining: Cell::new(n),
            waiting: RefCell::new(Vec::with_capacity(n)),
        }
    }

    async fn arrive_and_wait(&self) {
        self.remaining.set(self.remaining.get() - 1);
        if self.remaining.get() == 0 {
            // The last to arrive lets everyone through.
            for waker in self.waiting.take() {
                waker.wake();
            }
        }
        poll_fn(|cx| {
            if self.remaining.get() == 0 {
                Poll::Ready(())
            } else {
                self.waiting.borrow_mut().push(cx.waker().clone());
                // The last task to arrive wakes us.
                Poll::Pending
            }
        })
        .await
    }
}
