//! One connection: request heads and bodies read into a small buffer that grows on demand, each
//! request handed to the router, keep-alive or close after the response.
//!
//! Memory per connection stays small: the read buffer starts at [`INITIAL_BUF`] bytes, grows only
//! while a request head or a chunked body needs it, and is freed whenever the connection has
//! nothing buffered and the socket has nothing to read, so an idle keep-alive connection, or
//! one waiting in `/delay`, holds no buffer at all.

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::request::{parse_head, BodyError, BodyFraming, ChunkedDecoder, HeadError, Request};
use super::response::{Persistence, Response};
use super::Shared;
use volley::net::TcpStream;
use volley::timeout;

/// How long a TLS client has to complete its handshake.
#[cfg(feature = "tls")]
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's byte stream: plain TCP, or TLS over it when the server serves HTTPS.
#[derive(Debug)]
pub(crate) enum ServerStream {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<volley::net::tls::TlsStream>),
}

impl ServerStream {
    /// The stream for an accepted socket: as it is, or after a TLS handshake if `config` asks
    /// for TLS. `None` if the handshake failed or took too long (the socket is closed).
    pub(crate) async fn start(
        tcp: TcpStream,
        config: &super::ServerConfig,
    ) -> Option<ServerStream> {
        #[cfg(feature = "tls")]
        if let Some(acceptor) = &config.tls {
            return match timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => Some(ServerStream::Tls(Box::new(tls))),
                _ => None,
            };
        }
        let _ = config;
        Some(ServerStream::Tcp(tcp))
    }

    fn poll_read(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            ServerStream::Tcp(tcp) => tcp.poll_read(cx, buf),
            // A client's close without `close_notify` reads as a close, as on TCP.
            #[cfg(feature = "tls")]
            ServerStream::Tls(tls) => match tls.poll_read(cx, buf) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(0))
                }
                other => other,
            },
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            ServerStream::Tcp(tcp) => tcp.write_all(bytes).await,
            // Flushes too: every byte is on the wire when it resolves.
            #[cfg(feature = "tls")]
            ServerStream::Tls(tls) => tls.write_all(bytes).await,
        }
    }

    /// Ends the write side: FIN, after `close_notify` for TLS.
    async fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            ServerStream::Tcp(tcp) => tcp.shutdown(Shutdown::Write),
            #[cfg(feature = "tls")]
            ServerStream::Tls(tls) => tls.shutdown().await,
        }
    }

    /// The TCP socket underneath.
    fn tcp(&self) -> &TcpStream {
        match self {
            ServerStream::Tcp(tcp) => tcp,
            #[cfg(feature = "tls")]
            ServerStream::Tls(tls) => tls.get_ref(),
        }
    }
}

/// The read buffer's first allocation.
pub(crate) const INITIAL_BUF: usize = 1024;

/// The read buffer size used while reading a chunked body or draining.
const BODY_BUF: usize = 16 * 1024;

/// The most a `Content-Length` body read asks the kernel for at once.
const BODY_READ_CHUNK: usize = 256 * 1024;

/// A lingering close waits at most this long for the client's next bytes (or its FIN).
const LINGER_IDLE: Duration = Duration::from_secs(2);

/// A lingering close drains for at most this long in all.
const LINGER_TOTAL: Duration = Duration::from_secs(30);

/// What happens to the connection after a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close gracefully: FIN, then read and discard what the client still sends for a while,
    /// so that the client reads the response rather than a reset.
    Close,
    /// Close abortively (RST), for `/fault/reset-body`.
    Reset,
}

/// Why a request could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Head(HeadError),
    Body(BodyError),
    /// The client closed in the middle of a request.
    Eof,
    /// The connection failed.
    Io,
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> ReadError {
        ReadError::Io
    }
}

/// A connection and its read buffer.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: ServerStream,
    /// Bytes received; those before `start` are consumed.
    buf: Vec<u8>,
    start: usize,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) shared: Rc<Shared>,
    /// True while no request is in progress, so that a graceful shutdown may close it.
    idle: Rc<Cell<bool>>,
    /// Requests read on this connection so far, the current one included.
    pub(crate) requests: u64,
}

impl Conn {
    pub(crate) fn new(
        stream: ServerStream,
        peer: SocketAddr,
        local: SocketAddr,
        shared: Rc<Shared>,
        idle: Rc<Cell<bool>>,
    ) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            start: 0,
            peer,
            local,
            shared,
            idle,
            requests: 0,
        }
    }

    /// Bytes received and not consumed yet.
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads more bytes into the buffer, growing it to at least `min_capacity` if it is full.
    /// Returns how many arrived; 0 means the client closed its side.
    ///
    /// Cancellation-safe: the buffer is only resized within a single poll.
    async fn fill(&mut self, min_capacity: usize) -> io::Result<usize> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.buf.len() == self.buf.capacity() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let (stream, buf) = (&mut self.stream, &mut self.buf);
        poll_fn(|cx| {
            let len = buf.len();
            if len == buf.capacity() || buf.capacity() < min_capacity {
                let target = (len * 2).max(min_capacity).max(INITIAL_BUF);
                buf.reserve_exact(target - len);
            }
            buf.resize(buf.capacity(), 0);
            let polled = stream.poll_read(cx, &mut buf[len..]);
            let n = match polled {
                Poll::Ready(Ok(n)) => n,
                _ => 0,
            };
            buf.truncate(len + n);
            if polled.is_pending() && buf.is_empty() {
                // Nothing buffered and nothing to read: hold no memory while waiting.
                *buf = Vec::new();
            }
            polled
        })
        .await
    }

    /// Frees the buffer if everything in it has been consumed.
    fn release_if_empty(&mut self) {
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Reads the next request head. `Ok(None)` if the client closed between requests.
    async fn read_head(&mut self) -> Result<Option<Request>, ReadError> {
        let max = self.shared.config.max_head_size;
        loop {
            if !self.pending().is_empty() {
                self.idle.set(false);
                match parse_head(self.pending(), self.peer, self.local) {
                    Ok(Some((request, len))) => {
                        if len > max {
                            return Err(ReadError::Head(HeadError::TooLarge));
                        }
                        self.start += len;
                        return Ok(Some(request));
                    }
                    Ok(None) if self.pending().len() >= max => {
                        return Err(ReadError::Head(HeadError::TooLarge));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(ReadError::Head(e)),
                }
            }
            if self.fill(INITIAL_BUF).await? == 0 {
                return match self.pending().is_empty() {
                    true => Ok(None),
                    false => Err(ReadError::Eof),
                };
            }
        }
    }

    /// Reads the request's body into `request.body`, as its framing says, within the
    /// configured limit. Sends `100 Continue` first if the client waits for it.
    pub(crate) async fn read_body(&mut self, request: &mut Request) -> Result<(), ReadError> {
        let max = self.shared.config.max_body_size;
        match request.framing {
            BodyFraming::None => {}
            BodyFraming::Length(n) => {
                if n > max as u64 {
                    return Err(ReadError::Body(BodyError::TooLarge));
                }
                self.send_continue(request).await?;
                let n = n as usize;
                let mut body = Vec::with_capacity(n.min(BODY_READ_CHUNK));
                let take = n.min(self.pending().len());
                body.extend_from_slice(&self.pending()[..take]);
                self.start += take;
                while body.len() < n {
                    let len = body.len();
                    let want = (n - len).min(BODY_READ_CHUNK);
                    body.reserve(want);
                    let stream = &mut self.stream;
                    let got = poll_fn(|cx| {
                        body.resize(len + want, 0);
                        let polled = stream.poll_read(cx, &mut body[len..]);
                        let got = match polled {
                            Poll::Ready(Ok(got)) => got,
                            _ => 0,
                        };
                        body.truncate(len + got);
                        polled
                    })
                    .await?;
                    if got == 0 {
                        return Err(ReadError::Eof);
                    }
                }
                request.body = body;
            }
            BodyFraming::Chunked => {
                self.send_continue(request).await?;
                let mut decoder = ChunkedDecoder::new();
                let mut body = Vec::new();
                loop {
                    let (used, done) = decoder
                        .decode(&self.buf[self.start..], &mut body, max)
                        .map_err(ReadError::Body)?;
                    self.start += used;
                    if done {
                        break;
                    }
                    if self.fill(BODY_BUF).await? == 0 {
                        return Err(ReadError::Eof);
                    }
                }
                request.body = body;
            }
        }
        self.release_if_empty();
        Ok(())
    }

    /// Reads the request's body as [`read_body`](Self::read_body) does, but keeps none of
    /// it, and without a size limit: returns its length and its FNV-1a 64 hash (for
    /// `/count`, which takes uploads larger than the server would hold).
    pub(crate) async fn count_body(&mut self, request: &Request) -> Result<(u64, u64), ReadError> {
        let mut len = 0u64;
        let mut hash = Fnv::default();
        match request.framing {
            BodyFraming::None => {}
            BodyFraming::Length(n) => {
                self.send_continue(request).await?;
                let take = n.min(self.pending().len() as u64) as usize;
                hash.update(&self.pending()[..take]);
                self.start += take;
                len += take as u64;
                let mut scratch = vec![0u8; BODY_READ_CHUNK];
                while len < n {
                    let want = (n - len).min(BODY_READ_CHUNK as u64) as usize;
                    let stream = &mut self.stream;
                    let got = poll_fn(|cx| stream.poll_read(cx, &mut scratch[..want])).await?;
                    if got == 0 {
                        return Err(ReadError::Eof);
                    }
                    hash.update(&scratch[..got]);
                    len += got as u64;
                }
            }
            BodyFraming::Chunked => {
                self.send_continue(request).await?;
                let mut decoder = ChunkedDecoder::new();
                let mut body = Vec::new();
                loop {
                    let (used, done) = decoder
                        .decode(&self.buf[self.start..], &mut body, usize::MAX)
                        .map_err(ReadError::Body)?;
                    self.start += used;
                    hash.update(&body);
                    len += body.len() as u64;
                    body.clear();
                    if done {
                        break;
                    }
                    if self.fill(BODY_BUF).await? == 0 {
                        return Err(ReadError::Eof);
                    }
                }
            }
        }
        self.release_if_empty();
        Ok((len, hash.0))
    }

    /// Sends `100 Continue` if the client asked for it and has not started its body yet.
    async fn send_continue(&mut self, request: &Request) -> io::Result<()> {
        if request.expects_continue() && self.pending().is_empty() {
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        Ok(())
    }

    /// Answers a request whose head or body could not be read: 400, 413 or 431 with
    /// `Connection: close`, or nothing if the connection broke.
    pub(crate) async fn refuse(&mut self, request: Option<&Request>, error: ReadError) -> Next {
        let response = match error {
            ReadError::Head(HeadError::TooLarge) => Response::text(431, "request head too large\n"),
            ReadError::Head(HeadError::Invalid(why)) => Response::text(400, &format!("{why}\n")),
            ReadError::Body(BodyError::TooLarge) => Response::text(413, "request body too large\n"),
            ReadError::Body(BodyError::Invalid) => {
                Response::text(400, "malformed chunked request body\n")
            }
            ReadError::Eof | ReadError::Io => return Next::Close,
        };
        let head_only = request.is_some_and(|r| r.method == "HEAD");
        let bytes = response.encode(head_only, Persistence::Close);
        let _ = self.write_all(&bytes).await;
        Next::Close
    }

    /// Whether the connection stays open after answering `request`, and what its
    /// `Connection` header says.
    pub(crate) fn persistence(&self, request: &Request, close: bool) -> (Persistence, Next) {
        if close || !request.keep_alive || self.shared.draining.get() {
            (Persistence::Close, Next::Close)
        } else if request.minor_version == 0 {
            (Persistence::KeepAlive, Next::KeepAlive)
        } else {
            (Persistence::Default, Next::KeepAlive)
        }
    }

    /// Sends `response` to `request` in one write.
    pub(crate) async fn send(&mut self, request: &Request, response: Response) -> io::Result<Next> {
        let (persistence, next) = self.persistence(request, response.close);
        let bytes = response.encode(request.method == "HEAD", persistence);
        self.write_all(&bytes).await?;
        Ok(next)
    }

    /// Writes all of `bytes`.
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads and discards until the client closes or the connection fails.
    pub(crate) async fn discard_until_close(&mut self) {
        while let Ok(n) = self.fill(INITIAL_BUF).await {
            if n == 0 {
                return;
            }
            self.start = self.buf.len();
        }
    }

    /// Graceful close: FIN, then discard what the client still sends until it closes too, it
    /// pauses for [`LINGER_IDLE`], or [`LINGER_TOTAL`] has passed. Closing a socket with unread
    /// data would send RST, which can destroy the response before the client reads it.
    pub(crate) async fn linger_close(mut self) {
        let _ = timeout(LINGER_IDLE, self.stream.shutdown_write()).await;
        let started = Instant::now();
        while started.elapsed() < LINGER_TOTAL {
            match timeout(LINGER_IDLE, self.fill(BODY_BUF)).await {
                Ok(Ok(n)) if n > 0 => self.start = self.buf.len(),
                _ => break,
            }
        }
    }

    /// Resets the connection (for `/fault/reset-body`): `SO_LINGER` of zero, then close.
    pub(crate) fn reset(self) {
        // If the option cannot be set, the close is orderly and the client sees a short body.
        let _ = self.stream.tcp().set_linger(Some(Duration::ZERO));
    }

    /// Waits for the next request head (for at most the idle timeout) and counts it; `Err`
    /// says how the connection ends instead: a close when the server drains, the client goes
    /// quiet or closes, or the refusal of a malformed head.
    pub(crate) async fn next_request(&mut self) -> Result<Request, Next> {
        if self.shared.draining.get() {
            return Err(Next::Close);
        }
        self.idle.set(self.pending().is_empty());
        let head = match self.shared.config.idle_timeout {
            Some(limit) => match timeout(limit, self.read_head()).await {
                Ok(head) => head,
                Err(_) => return Err(Next::Close),
            },
            None => self.read_head().await,
        };
        self.idle.set(false);
        let request = match head {
            Ok(Some(request)) => request,
            Ok(None) => return Err(Next::Close),
            Err(e) => return Err(self.refuse(None, e).await),
        };
        self.shared.count_request();
        self.requests += 1;
        Ok(request)
    }
}

/// FNV-1a, 64 bits: a hash of the bytes `/count` received, to compare with the client's.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The FNV-1a 64 hash of `bytes`, as `/count` computes it.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = Fnv::default();
    hash.update(bytes);
    hash.0
}
