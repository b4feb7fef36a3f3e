//! The driver: one HTTP/1.1 connection and the phases of an exchange on it.
//!
//! It is thin on purpose. [`Conn`] owns a [`Stream`] (a [`TcpStream`], or with the `tls`
//! feature a boxed [`TlsStream`](crate::net::tls::TlsStream) over one) and a [`ReadBuf`]; the
//! phases are short functions that move bytes between them and the sans-IO pieces:
//! [`connect`] (the addresses, raced by Happy Eyeballs), `start_tls` (the handshake, for `https://`),
//! [`send_request`] (one write of head and body, then a flush), and [`read_head`] (read until
//! `parse_head` has a final head). The body is read by [`Response`](crate::Response) through
//! the same buffer. Nothing past `start_tls` knows which kind of stream it has.
//!
//! Every wait goes through [`Deadlines::run`], which applies the total timeout and the phase's
//! own timeout, and names the phase when one runs out.
//!
//! **Happy Eyeballs.** A host with several addresses is connected to as RFC 8305 says
//! ([`connect`]): the addresses are put in order alternating the families, IPv6 first (§4),
//! keeping the resolver's order within a family; the first attempt starts at once and each
//! next one [`CONNECTION_ATTEMPT_DELAY`] (250 ms) after the previous start, or as soon as an
//! attempt fails, while the earlier ones keep running (§5). The first connection made wins
//! and every other attempt is dropped there and then, closing its socket. Each attempt has
//! the connect timeout of its own, from its start; the total timeout bounds the whole race.
//! If all fail, the error is the last failure, saying how many addresses were tried. One
//! address (an IP literal, most names) takes a plain connect with no race and no allocation.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use url::Url;

use super::error::{Error, Kind, Limit, Phase};
use super::proto::head::{parse_head, HeadError, ResponseHead, MAX_INTERIM_RESPONSES};
use super::timings::Clock;
use crate::net::TcpStream;

/// The byte stream under a connection: plain TCP, or TLS over TCP. The driver sees only this.
///
/// The TLS stream is boxed: a rustls session is about a kilobyte, and every plain-TCP
/// connection (and every request future holding one) would otherwise carry that much more.
#[derive(Debug)]
pub(crate) enum Stream {
    /// `http://`, or a tunnel or proxy connection.
    Tcp(TcpStream),
    /// `https://`, after the handshake.
    #[cfg(feature = "tls")]
    Tls(Box<crate::net::tls::TlsStream>),
}

impl Stream {
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(tcp) => tcp.poll_read(cx, buf),
            // A close without `close_notify` is an `UnexpectedEof` error here, never `Ok(0)`:
            // a close-delimited body cut short by an attacker must not read as complete.
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.poll_read(cx, buf),
        }
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(tcp) => tcp.poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.poll_write(cx, buf),
        }
    }

    /// Ready once every byte written is on the wire: at once for TCP, which buffers nothing
    /// of its own; TLS may hold encrypted records.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(_) => {
                let _ = cx;
                Poll::Ready(Ok(()))
            }
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.poll_flush(cx),
        }
    }
}

/// The first size of a connection's read buffer. Small, so that ten thousand connections
/// waiting on slow servers cost little; it doubles when a read fills it.
const INITIAL_BUFFER: usize = 2 * 1024;

/// The largest the buffer grows to for body reads; heads may need up to their own limit.
/// A fast sender fills it in one read, so a body comes in pieces of up to this size.
const MAX_BODY_BUFFER: usize = 64 * 1024;

/// A byte buffer filled from a socket, consumed from the front.
///
/// The bytes live in a [`BytesMut`], so that body data can leave as [`Bytes`] without a copy
/// ([`split_to`](Self::split_to)): the piece shares the allocation, and the buffer gets a new
/// one (or reclaims its own, once every piece handed out is dropped) when it next needs room.
///
/// **Growth.** The buffer holds no heap memory until bytes arrive, then [`INITIAL_BUFFER`].
/// Each read is offered the room up to the buffer's target size; a read that fills all of it
/// means the sender is ahead of us, and the target doubles, up to the `max_size` of the read
/// ([`MAX_BODY_BUFFER`] for bodies, the head limit for heads). A slow or small response never
/// fills it and stays at 2 KiB. [`idle`](Self::idle) (a connection going back to the pool)
/// gives a grown buffer back, so idle connections stay cheap.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    /// The unconsumed bytes (its length); its spare capacity is where the next read lands.
    data: BytesMut,
    /// The size the buffer is kept at: what a read may fill, unconsumed bytes included. 0
    /// while no heap buffer is held (a split-off piece can leave `data` with no capacity,
    /// so that cannot tell).
    size: usize,
}

impl ReadBuf {
    pub(crate) fn new() -> ReadBuf {
        ReadBuf {
            data: BytesMut::new(),
            size: 0,
        }
    }

    /// The bytes received and not yet consumed.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Gives the heap buffer back if it holds no unconsumed bytes.
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            self.data = BytesMut::new();
            self.size = 0;
        }
    }

    /// The connection goes idle: a buffer grown past its first size is given back (the next
    /// response starts small again); a small one is kept for the next exchange.
    pub(crate) fn idle(&mut self) {
        if self.size > INITIAL_BUFFER {
            self.release();
        }
    }

    /// True if a heap buffer is held.
    #[cfg(test)]
    pub(crate) fn has_heap(&self) -> bool {
        self.data.capacity() > 0
    }

    /// Appends `bytes` as if read from the socket, growing the buffer to hold them.
    #[cfg(test)]
    pub(crate) fn fill_for_test(&mut self, bytes: &[u8]) {
        self.data.reserve(INITIAL_BUFFER.max(bytes.len()));
        self.data.extend_from_slice(bytes);
        self.size = self
            .size
            .max(INITIAL_BUFFER)
            .max(self.data.len().next_power_of_two());
    }

    /// Drops `n` bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.data.len());
        self.data.advance(n);
    }

    /// Takes `n` bytes from the front, without copying them.
    pub(crate) fn split_to(&mut self, n: usize) -> Bytes {
        self.data.split_to(n).freeze()
    }

    /// Reads once from `stream` into free space, making room first (see the type's docs on
    /// growth). Returns the bytes read; 0 means the peer closed.
    pub(crate) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
        max_size: usize,
    ) -> Poll<io::Result<usize>> {
        let max_size = max_size.max(INITIAL_BUFFER);
        if self.size == 0 {
            // No heap buffer until bytes arrive: ten thousand connections waiting on slow
            // servers then hold none. The first read lands on the stack and is copied once.
            let mut first = [0u8; INITIAL_BUFFER];
            return match stream.poll_read(cx, &mut first) {
                Poll::Ready(Ok(n)) => {
                    if n > 0 {
                        self.size = INITIAL_BUFFER;
                        if n == INITIAL_BUFFER {
                            self.size = (2 * INITIAL_BUFFER).min(max_size);
                        }
                        self.data = BytesMut::with_capacity(self.size);
                        self.data.extend_from_slice(&first[..n]);
                    }
                    Poll::Ready(Ok(n))
                }
                other => other,
            };
        }
        let len = self.data.len();
        if len >= self.size {
            // Full of unconsumed bytes (a head longer than the buffer): grow, to the limit.
            if self.size >= max_size {
                return Poll::Ready(Err(io::Error::other("read buffer full")));
            }
            self.size = (self.size * 2).min(max_size);
        }
        let room = self.size - self.data.len();
        if self.data.capacity() - len < room && !self.data.try_reclaim(room) {
            // Pieces handed out still share the allocation (or it is too small): move the
            // unconsumed bytes to a buffer of the current size.
            let mut fresh = BytesMut::with_capacity(self.size);
            fresh.extend_from_slice(&self.data);
            self.data = fresh;
        }
        // Safe code cannot read into uninitialized capacity: zero the room, read, cut back.
        self.data.resize(len + room, 0);
        let polled = stream.poll_read(cx, &mut self.data[len..]);
        let n = match &polled {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        self.data.truncate(len + n);
        if n == room && self.size < max_size {
            // The sender filled all we offered: it is ahead of us.
            self.size = (self.size * 2).min(max_size);
        }
        polled
    }
}

/// A connection: a socket plus what has been read from it and not yet used.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    pub(crate) buf: ReadBuf,
    /// The address connected to (a proxy's, through one): known when the connect finished,
    /// kept so that each response can tell it without a `getpeername`.
    pub(crate) peer: SocketAddr,
}

impl Conn {
    /// A connection on `stream`, which is connected to `peer`.
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr) -> Conn {
        Conn {
            stream: Stream::Tcp(stream),
            buf: ReadBuf::new(),
            peer,
        }
    }

    /// Reads more bytes, waiting at most as `deadlines` allow. 0 means the peer closed.
    pub(crate) async fn fill(
        &mut self,
        deadlines: &Deadlines,
        phase: Phase,
        url: &Url,
        max_size: usize,
    ) -> Result<usize, Error> {
        let Conn { stream, buf, .. } = self;
        let read = poll_fn(|cx| buf.poll_fill(cx, stream, max_size));
        deadlines
            .run(phase, url, read)
            .await?
            .map_err(|e| Error::new(Kind::Io(phase)).with_url(url).with_source(e))
    }

    /// Polls for more bytes, as [`fill`](Self::fill) waits for them, for code that is not
    /// `async`: `timer` holds the deadline of the wait in progress (armed when the read first
    /// has to wait, cleared when it completes), so each read still gets the phase's timeout.
    pub(crate) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        timer: &mut Option<(Duration, crate::rt::Sleep)>,
        deadlines: &Deadlines,
        phase: Phase,
        url: &Url,
        max_size: usize,
    ) -> Poll<Result<usize, Error>> {
        match self.buf.poll_fill(cx, &mut self.stream, max_size) {
            Poll::Ready(result) => {
                *timer = None;
                Poll::Ready(
                    result.map_err(|e| Error::new(Kind::Io(phase)).with_url(url).with_source(e)),
                )
            }
            Poll::Pending => {
                if timer.is_none() {
                    *timer = deadlines
                        .earliest(phase, Instant::now())
                        .map(|(after, end)| (after, crate::rt::sleep_until(end)));
                }
                if let Some((after, sleep)) = timer {
                    if Pin::new(sleep).poll(cx).is_ready() {
                        let after = *after;
                        *timer = None;
                        let e = Error::new(Kind::Timeout { phase, after }).with_url(url);
                        return Poll::Ready(Err(e));
                    }
                }
                // The reactor wakes us on READABLE for this token, or the timer when the
                // deadline passes.
                Poll::Pending
            }
        }
    }

    /// True if an idle pooled connection still looks usable: nothing arrived on it while it
    /// sat idle (no close, no stray bytes). Costs no syscall when no event came in.
    pub(crate) fn is_reusable(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        // Pending: still open and quiet. Ready: closed, errored, or spoke out of turn.
        self.stream.poll_read(cx, &mut probe).is_pending()
    }
}

/// The timeouts that apply to one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// The total timeout and the instant it ends.
    pub(crate) total: Option<(Duration, Instant)>,
    pub(crate) connect: Option<Duration>,
    /// The longest wait for any one read.
    pub(crate) read: Option<Duration>,
}

impl Deadlines {
    pub(crate) fn start(
        total: Option<Duration>,
        connect: Option<Duration>,
        read: Option<Duration>,
    ) -> Deadlines {
        let now = Instant::now();
        Deadlines {
            total: total.and_then(|d| now.checked_add(d).map(|end| (d, end))),
            connect,
            read,
        }
    }

    /// Runs `future` under the total deadline and the timeout of `phase`, whichever ends
    /// first; if one ends, the error names `phase` and the setting that ran out.
    pub(crate) async fn run<F: Future>(
        &self,
        phase: Phase,
        url: &Url,
        future: F,
    ) -> Result<F::Output, Error> {
        let Some((after, end)) = self.earliest(phase, Instant::now()) else {
            return Ok(future.await);
        };
        crate::rt::timeout_at(end, future)
            .await
            .map_err(|_| Error::new(Kind::Timeout { phase, after }).with_url(url))
    }

    /// The deadline for a wait in `phase` starting at `now`: the total one or the phase's
    /// own, whichever ends first, with the setting that ends it.
    fn earliest(&self, phase: Phase, now: Instant) -> Option<(Duration, Instant)> {
        let own = match phase {
            Phase::Connect | Phase::Tls => self.connect,
            Phase::ReadHead | Phase::ReadBody | Phase::Send => self.read,
            Phase::Resolve | Phase::Queue => None,
        };
        let own = own.and_then(|d| now.checked_add(d).map(|end| (d, end)));
        match (self.total, own) {
            (Some(t), Some(o)) => Some(if o.1 < t.1 { o } else { t }),
            (t, o) => t.or(o),
        }
    }

    /// True once the total timeout has run out.
    fn total_passed(&self) -> bool {
        self.total.is_some_and(|(_, end)| Instant::now() >= end)
    }
}

/// RFC 8305's "Connection Attempt Delay": how long an attempt runs alone before the next
/// address is tried too. The RFC recommends 250 ms.
pub(crate) const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Opens a connection to one of `addrs`: with one address, a plain connect; with several,
/// Happy Eyeballs (see the module docs and [`happy_eyeballs`]).
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    deadlines: &Deadlines,
    url: &Url,
) -> Result<Conn, Error> {
    let (stream, peer) = match addrs {
        [] => {
            return Err(Error::new(Kind::Dns)
                .with_url(url)
                .with_source("the host resolved to no addresses"))
        }
        &[addr] => match deadlines
            .run(Phase::Connect, url, TcpStream::connect(addr))
            .await?
        {
            Ok(stream) => (stream, addr),
            Err(e) => return Err(connect_error(url, addr, e, 1)),
        },
        _ => happy_eyeballs(addrs, deadlines, url).await?,
    };
    // Requests go out in one write; don't let Nagle hold it for an ACK.
    stream
        .set_nodelay(true)
        .map_err(|e| Error::new(Kind::Connect).with_url(url).with_source(e))?;
    Ok(Conn::new(stream, peer))
}

fn connect_error(url: &Url, addr: SocketAddr, source: io::Error, tried: usize) -> Error {
    Error::new(Kind::Connect)
        .with_url(url)
        .with_source(ConnectError {
            addr,
            source,
            tried,
        })
}

/// The order RFC 8305 §4 tries addresses in: alternating families, IPv6 first, each family
/// in the order given. An iterator over `addrs` with two cursors, so it allocates nothing.
#[derive(Debug)]
struct Interleave<'a> {
    addrs: &'a [SocketAddr],
    /// The next candidate index of each family: `[IPv6, IPv4]`.
    next: [usize; 2],
    /// The family to take from next, if it has any left: 0 for IPv6, 1 for IPv4.
    turn: usize,
}

impl<'a> Interleave<'a> {
    fn new(addrs: &'a [SocketAddr]) -> Interleave<'a> {
        Interleave {
            addrs,
            next: [0, 0],
            turn: 0,
        }
    }

    /// The next address of `family` (0: IPv6, 1: IPv4), advancing its cursor.
    fn take(&mut self, family: usize) -> Option<SocketAddr> {
        let start = self.next[family];
        let found = self.addrs[start.min(self.addrs.len())..]
            .iter()
            .position(|a| a.is_ipv6() == (family == 0));
        match found {
            Some(offset) => {
                self.next[family] = start + offset + 1;
                Some(self.addrs[start + offset])
            }
            None => {
                self.next[family] = self.addrs.len();
                None
            }
        }
    }
}

impl Iterator for Interleave<'_> {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        let family = self.turn;
        self.turn = 1 - family;
        self.take(family).or_else(|| self.take(1 - family))
    }
}

/// One connection attempt of a race: the connect and its own deadline.
#[derive(Debug)]
struct Attempt {
    addr: SocketAddr,
    connect: crate::net::Connect,
    /// The connect timeout or the total one, whichever ends first, with its setting.
    deadline: Option<(Duration, crate::rt::Sleep)>,
}

/// How an attempt ended, when it did not connect.
enum Failed {
    /// The OS said no, or its own connect timeout ran out: try the others.
    Attempt(Error),
    /// The total timeout ran out: the request is over.
    Total(Error),
}

impl Attempt {
    fn start(addr: SocketAddr, deadlines: &Deadlines) -> Attempt {
        let deadline = deadlines
            .earliest(Phase::Connect, Instant::now())
            .map(|(after, end)| (after, crate::rt::sleep_until(end)));
        Attempt {
            addr,
            connect: TcpStream::connect(addr),
            deadline,
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        deadlines: &Deadlines,
        url: &Url,
        tried: usize,
    ) -> Poll<Result<TcpStream, Failed>> {
        match Pin::new(&mut self.connect).poll(cx) {
            Poll::Ready(Ok(stream)) => return Poll::Ready(Ok(stream)),
            Poll::Ready(Err(e)) => {
                let error = connect_error(url, self.addr, e, tried);
                return Poll::Ready(Err(Failed::Attempt(error)));
            }
            Poll::Pending => {}
        }
        let Some((after, sleep)) = &mut self.deadline else {
            return Poll::Pending;
        };
        if Pin::new(sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let phase = Phase::Connect;
        let error = Error::new(Kind::Timeout {
            phase,
            after: *after,
        })
        .with_url(url);
        if deadlines.total_passed() {
            return Poll::Ready(Err(Failed::Total(error)));
        }
        // Say which address, and (if it is the last failure) that all failed.
        let source = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        Poll::Ready(Err(Failed::Attempt(error.with_source(ConnectError {
            addr: self.addr,
            source,
            tried,
        }))))
    }
}

/// Races connection attempts to `addrs` (two or more) as RFC 8305 §5 says: in
/// [`Interleave`] order, the next one [`CONNECTION_ATTEMPT_DELAY`] after the last start or at
/// once when one fails, earlier ones kept running. The first to connect wins (its stream and
/// address are returned); returning drops the others, which closes their sockets and takes
/// them out of the reactor.
async fn happy_eyeballs(
    addrs: &[SocketAddr],
    deadlines: &Deadlines,
    url: &Url,
) -> Result<(TcpStream, SocketAddr), Error> {
    let mut order = Interleave::new(addrs);
    let mut pending = order.next();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut tried = 0;
    let mut next_start = crate::rt::sleep_until(Instant::now());
    let mut last: Option<Error> = None;
    poll_fn(|cx| loop {
        // Start the next attempt if it is due: the first one, the delay passed, or nothing is
        // in flight any more because the earlier ones failed.
        if let Some(addr) = pending {
            if attempts.is_empty() || Pin::new(&mut next_start).poll(cx).is_ready() {
                attempts.push(Attempt::start(addr, deadlines));
                tried += 1;
                pending = order.next();
                next_start.reset(Instant::now() + CONNECTION_ATTEMPT_DELAY);
                if pending.is_some() {
                    // Registers the timer (and the waker) for the next start.
                    let _ = Pin::new(&mut next_start).poll(cx);
                }
            }
        }
        let mut failed = false;
        let mut i = 0;
        while i < attempts.len() {
            match attempts[i].poll(cx, deadlines, url, tried) {
                Poll::Pending => i += 1,
                Poll::Ready(Ok(stream)) => {
                    let addr = attempts[i].addr;
                    attempts.clear(); // the losers: closed now, not when the future goes
                    return Poll::Ready(Ok((stream, addr)));
                }
                Poll::Ready(Err(Failed::Total(e))) => {
                    attempts.clear();
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Err(Failed::Attempt(e))) => {
                    drop(attempts.swap_remove(i));
                    last = Some(e);
                    failed = true;
                }
            }
        }
        match (pending, attempts.is_empty()) {
            // All tried, all failed.
            (None, true) => {
                return Poll::Ready(Err(last
                    .take()
                    .unwrap_or_else(|| Error::new(Kind::Connect).with_url(url))))
            }
            // One failed: the next starts at once, without waiting for the delay (§5).
            (Some(addr), _) if failed => {
                attempts.push(Attempt::start(addr, deadlines));
                tried += 1;
                pending = order.next();
                next_start.reset(Instant::now() + CONNECTION_ATTEMPT_DELAY);
                if pending.is_some() {
                    let _ = Pin::new(&mut next_start).poll(cx);
                }
                // Poll the new attempt (and the others) again: a loopback connect may be
                // done at once, or refused at once.
            }
            // The reactor wakes us when an attempt's socket settles, or a timer (an
            // attempt's deadline, or the next start) fires.
            _ => return Poll::Pending,
        }
    })
    .await
}

/// Which address a connect failed on: the [`Error`]'s source, the OS error its own.
///
/// It says only the address (and, after a race, how many were tried), so that a report of
/// the chain reads `connection failed to URL: address 127.0.0.1:9: Connection refused`, or
/// after a race `...: all 3 addresses failed, the last [::1]:9: Connection refused`.
#[derive(Debug)]
struct ConnectError {
    addr: SocketAddr,
    source: io::Error,
    /// How many addresses were tried in all; more than one when Happy Eyeballs raced them.
    tried: usize,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tried {
            0 | 1 => write!(f, "address {}", self.addr),
            n => write!(f, "all {n} addresses failed, the last {}", self.addr),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// How sending a request ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Every byte was written.
    Complete,
    /// The server answered (or closed) before taking the whole request; read its response.
    /// The connection cannot be reused.
    Interrupted,
}

/// Writes `request` (head and body, already joined when small) and flushes it, while watching
/// for a server that answers before it has read it all.
pub(crate) async fn send_request(
    conn: &mut Conn,
    request: &[&[u8]],
    deadlines: &Deadlines,
    url: &Url,
) -> Result<Sent, Error> {
    let mut part = 0;
    let mut offset = 0;
    let Conn { stream, buf, .. } = conn;
    let write = poll_fn(|cx| loop {
        let polled = match request.get(part) {
            Some(bytes) if offset == bytes.len() => {
                part += 1;
                offset = 0;
                continue;
            }
            Some(bytes) => stream.poll_write(cx, &bytes[offset..]),
            // Every byte taken: flush what the stream holds (nothing for TCP; TLS records).
            None => match stream.poll_flush(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(Sent::Complete)),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        };
        match polled {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero)))
            }
            Poll::Ready(Ok(n)) => offset += n,
            // A server that already answered may have reset: its answer still counts.
            Poll::Ready(Err(_)) if !buf.is_empty() => return Poll::Ready(Ok(Sent::Interrupted)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                // The socket is full. If the server is talking instead of reading, stop
                // sending and go read what it says; otherwise wait for either side.
                return match buf.poll_fill(cx, stream, MAX_BODY_BUFFER) {
                    Poll::Ready(Ok(_)) => Poll::Ready(Ok(Sent::Interrupted)),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    // The reactor wakes us on WRITABLE or READABLE for this token.
                    Poll::Pending => Poll::Pending,
                };
            }
        }
    });
    match deadlines.run(Phase::Send, url, write).await? {
        Ok(sent) => Ok(sent),
        Err(e) => Err(Error::new(Kind::Io(Phase::Send))
            .with_url(url)
            .with_source(e)),
    }
}

/// Why reading a head failed in a way the caller may want to retry.
pub(crate) struct HeadFailure {
    pub(crate) error: Error,
    /// No byte of a response arrived: on a reused connection, the server had closed it.
    pub(crate) nothing_received: bool,
}

/// Reads the final response head, skipping 1xx interim responses (but not 101), at most
/// [`MAX_INTERIM_RESPONSES`] of them.
pub(crate) async fn read_head(
    conn: &mut Conn,
    deadlines: &Deadlines,
    url: &Url,
    max_head: usize,
    clock: &mut Clock,
) -> Result<ResponseHead, HeadFailure> {
    let mut received_any = !conn.buf.is_empty();
    if received_any {
        clock.first_byte();
    }
    // Parse only when it can give a new answer: at first, when a line ended, or at the limit.
    // A server trickling its head byte by byte then costs a parse per line, not per byte.
    let mut parse = true;
    let mut interim = 0;
    let invalid = |e: HeadError| {
        let kind = match e {
            HeadError::TooLarge(limit) => Kind::TooLarge {
                what: Limit::Head,
                limit: limit as u64,
            },
            other => Kind::InvalidResponse(other.to_string()),
        };
        HeadFailure {
            error: Error::new(kind).with_url(url).with_phase(Phase::ReadHead),
            nothing_received: false,
        }
    };
    loop {
        // The parse's outcome is matched in place, so that it is not kept in the future's
        // state across the read below (136 bytes in every request waiting for its head).
        if parse && !conn.buf.is_empty() {
            match parse_head(conn.buf.filled(), max_head) {
                Ok(Some((head, len))) => {
                    conn.buf.consume(len);
                    if head.status.is_informational() && head.status.as_u16() != 101 {
                        // 100 Continue, 103 Early Hints: the final response follows. A server
                        // that sends nothing else is stopped here rather than by the timeouts.
                        interim += 1;
                        if interim > MAX_INTERIM_RESPONSES {
                            return Err(invalid(HeadError::Malformed(format!(
                                "more than {MAX_INTERIM_RESPONSES} interim (1xx) responses"
                            ))));
                        }
                        continue;
                    }
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => return Err(invalid(e)),
            }
        }
        let n = match conn.fill(deadlines, Phase::ReadHead, url, max_head).await {
            Ok(n) => n,
            Err(error) => {
                return Err(HeadFailure {
                    nothing_received: !received_any && !error.is_timeout(),
                    error,
                })
            }
        };
        if n == 0 {
            // Bytes that came after the last parse may already be malformed: say so rather
            // than blame the close.
            if received_any {
                if let Err(e) = parse_head(conn.buf.filled(), max_head) {
                    return Err(invalid(e));
                }
            }
            let why = if received_any {
                "connection closed in the middle of the response head"
            } else {
                "connection closed before any response byte"
            };
            return Err(HeadFailure {
                error: Error::new(Kind::Io(Phase::ReadHead))
                    .with_url(url)
                    .with_source(io::Error::new(io::ErrorKind::UnexpectedEof, why)),
                nothing_received: !received_any,
            });
        }
        let filled = conn.buf.filled();
        if !received_any {
            clock.first_byte();
        }
        parse = !received_any
            || filled[filled.len() - n..].contains(&b'\n')
            || filled.len() >= max_head;
        received_any = true;
    }
}

/// The most a body read grows the buffer to.
pub(crate) fn body_buffer_limit() -> usize {
    MAX_BODY_BUFFER
}

/// Runs the TLS handshake on a fresh connection (direct, or a tunnel just opened), under the
/// connect timeout and the total one; a timeout or an I/O error names [`Phase::Tls`]. Adds
/// the handshake's time to `spent`.
///
/// The buffer must be empty: nothing may come before the server's first TLS record (a proxy
/// that sent bytes after its `CONNECT` answer is out of step).
#[cfg(feature = "tls")]
pub(crate) async fn start_tls(
    conn: Conn,
    connector: &crate::net::tls::TlsConnector,
    deadlines: &Deadlines,
    url: &Url,
    spent: &mut Duration,
) -> Result<Conn, Error> {
    let started = Instant::now();
    let Conn { stream, buf, peer } = conn;
    let tcp = match stream {
        Stream::Tcp(tcp) if buf.is_empty() => tcp,
        _ => {
            return Err(Error::new(Kind::InvalidResponse(
                "bytes arrived before the TLS handshake began".into(),
            ))
            .with_url(url)
            .with_phase(Phase::Tls))
        }
    };
    let name = crate::net::tls::server_name(url.host_str().unwrap_or(""))
        .map_err(|e| Error::new(Kind::Tls(e.to_string())).with_url(url))?;
    let tls = deadlines
        .run(Phase::Tls, url, connector.connect(name, tcp))
        .await?
        .map_err(|e| Error::from_tls(e, url))?;
    *spent += started.elapsed();
    Ok(Conn {
        stream: Stream::Tls(Box::new(tls)),
        buf,
        peer,
    })
}
