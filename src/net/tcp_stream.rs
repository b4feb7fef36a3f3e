//! [`TcpStream`] and its hand-written futures: [`Connect`], [`Read`], [`Write`], [`WriteAll`]
//! and [`ReadToEnd`].

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::net::io_source::IoSource;
use crate::rt::reactor::Direction;

/// A non-blocking TCP connection driven by the runtime's reactor.
///
/// Reads and writes take `&mut self`: a stream has one reader and one writer slot in the
/// reactor, and exclusive access keeps two tasks from fighting over them. A state machine that
/// reads and writes at once drives both directions through [`poll_read`](Self::poll_read) and
/// [`poll_write`](Self::poll_write) from one `poll`.
///
/// Dropping the stream deregisters it from the reactor and closes the socket.
pub struct TcpStream {
    io: IoSource<mio::net::TcpStream>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl TcpStream {
    /// Opens a connection to `addr`. A refused connection fails with
    /// [`io::ErrorKind::ConnectionRefused`].
    ///
    /// The socket is created on the first poll, so making the future costs nothing.
    pub fn connect(addr: SocketAddr) -> Connect {
        Connect {
            state: ConnectState::Start(addr),
        }
    }

    /// Wraps a connected `std` stream, switching it to non-blocking mode.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from_mio(mio::net::TcpStream::from_std(stream)))
    }

    /// Wraps a connected mio stream. Both directions are assumed ready until an operation says
    /// otherwise: an accepted socket often has its request waiting already.
    pub(crate) fn from_mio(stream: mio::net::TcpStream) -> TcpStream {
        TcpStream {
            io: IoSource::new(stream, &[Direction::Read, Direction::Write]),
        }
    }

    /// Reads into `buf`. `Ok(0)` means the peer closed its side (or `buf` is empty).
    pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Read<'a> {
        Read::new(self, buf)
    }

    /// Writes some prefix of `buf` and returns how much.
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> Write<'a> {
        Write::new(self, buf)
    }

    /// Writes all of `buf`, however many writes that takes.
    pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> WriteAll<'a> {
        WriteAll::new(self, buf)
    }

    /// Reads until the peer closes, appending to `buf`. Returns the number of bytes read.
    pub fn read_to_end<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> ReadToEnd<'a> {
        ReadToEnd::new(self, buf)
    }

    /// Poll-style read, for hand-written state machines.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let wanted = buf.len();
        let polled = self
            .io
            .poll_io(cx, Direction::Read, |mut stream| stream.read(buf));
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 && n < wanted {
                // A short read drained the socket: the next read would only say WouldBlock.
                // New data brings a new event; a close is remembered apart (READ_CLOSED).
                self.io.clear_ready(Direction::Read);
            }
        }
        polled
    }

    /// Poll-style write, for hand-written state machines.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_io(cx, Direction::Write, |mut stream| stream.write(buf))
    }

    /// Poll-style vectored write: several buffers in one `sendmsg`, such as an HTTP head and
    /// a small body (TLS records go out this way too).
    pub fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_io(cx, Direction::Write, |stream| send_vectored(stream, bufs))
    }

    /// Waits until the stream is readable, without reading. A following read may still find
    /// nothing (spurious readiness); call [`clear_read_ready`](Self::clear_read_ready) then.
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(cx, Direction::Read)
    }

    /// Forgets read readiness, after an operation done outside this type saw `WouldBlock`.
    pub fn clear_read_ready(&mut self) {
        self.io.clear_ready(Direction::Read);
    }

    /// Shuts down the read side, the write side or both. It does not block.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Sets `TCP_NODELAY`: send small writes at once instead of waiting to coalesce them.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes dropping the stream send a reset (RST)
    /// instead of an orderly close; `None` restores the default.
    pub fn set_linger(&self, linger: Option<std::time::Duration>) -> io::Result<()> {
        socket2::SockRef::from(self.io.get_ref()).set_linger(linger)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

/// The future of [`TcpStream::connect`], following mio's recipe for a non-blocking connect.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Connect {
    state: ConnectState,
}

#[derive(Debug)]
enum ConnectState {
    /// Not polled yet: the socket is made and `connect(2)` issued on the first poll.
    Start(SocketAddr),
    /// `connect(2)` is in progress; the reactor reports WRITABLE when it settles.
    Connecting(TcpStream),
    /// The stream or the error was handed out.
    Done,
}

impl Future for Connect {
    type Output = io::Result<TcpStream>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        loop {
            match std::mem::replace(&mut self.state, ConnectState::Done) {
                ConnectState::Start(addr) => {
                    let socket = mio::net::TcpStream::connect(addr)?;
                    // On loopback (and often on a LAN) the handshake is over by the time
                    // `connect` returns: then the request can go out in this poll rather than
                    // after the next turn of the loop. One `getpeername` tells; it is the call
                    // the writable event would have needed anyway.
                    if socket.peer_addr().is_ok() {
                        return Poll::Ready(Ok(TcpStream {
                            io: IoSource::new(socket, &[Direction::Write]),
                        }));
                    }
                    // Nothing is ready until the first event: the connect is still in flight.
                    self.state = ConnectState::Connecting(TcpStream {
                        io: IoSource::new(socket, &[]),
                    });
                }
                ConnectState::Connecting(mut stream) => {
                    match stream.io.poll_ready(cx, Direction::Write) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {
                            self.state = ConnectState::Connecting(stream);
                            // The reactor wakes us on WRITABLE (or an error) for this token.
                            return Poll::Pending;
                        }
                    }
                    // Connected if the peer has an address; if not, `SO_ERROR` says why, and
                    // no error means a spurious event.
                    match stream.peer_addr() {
                        Ok(_) => return Poll::Ready(Ok(stream)),
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                            if let Some(e) = stream.take_error()? {
                                return Poll::Ready(Err(e));
                            }
                            // Still connecting. Wait for the next event.
                            stream.io.clear_ready(Direction::Write);
                            self.state = ConnectState::Connecting(stream);
                        }
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                ConnectState::Done => panic!("Connect polled after completion"),
            }
        }
    }
}

/// `sendmsg` with `MSG_NOSIGNAL`: a write to a connection the peer has reset fails with
/// `EPIPE` instead of raising `SIGPIPE`, which kills a process that has not ignored it (a
/// program embedding volley through FFI, or one that restored the default so that `| head`
/// works). `write` (std's `send`) sets the flag itself; std's `writev` has none.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_vectored(stream: &mio::net::TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let mut control = rustix::net::SendAncillaryBuffer::default();
    rustix::net::sendmsg(stream, bufs, &mut control, rustix::net::SendFlags::NOSIGNAL)
        .map_err(io::Error::from)
}

/// Elsewhere, std's `writev`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_vectored(mut stream: &mio::net::TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    stream.write_vectored(bufs)
}

/// The future of [`TcpStream::read`].
pub type Read<'a> = super::stream_futures::Read<'a, TcpStream>;

/// The future of [`TcpStream::write`].
pub type Write<'a> = super::stream_futures::Write<'a, TcpStream>;

/// The future of [`TcpStream::write_all`].
pub type WriteAll<'a> = super::stream_futures::WriteAll<'a, TcpStream>;

/// The future of [`TcpStream::read_to_end`].
pub type ReadToEnd<'a> = super::stream_futures::ReadToEnd<'a, TcpStream>;

impl super::stream_futures::sealed::PollStream for TcpStream {
    fn poll_read_bytes(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_read(cx, buf)
    }

    fn poll_write_bytes(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write(cx, buf)
    }

    fn poll_flush_bytes(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // writes go straight to the socket; nothing is buffered
    }
}

#[cfg(feature = "futures-io")]
mod futures_io_impls {
    use super::*;

    impl futures_io::AsyncRead for TcpStream {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_read(cx, buf)
        }
    }

    impl futures_io::AsyncWrite for TcpStream {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write(cx, buf)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_vectored(cx, bufs)
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(())) // writes go straight to the socket; nothing is buffered
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(self.shutdown(Shutdown::Write))
        }
    }
}
