//! [`TcpListener`] and its [`Accept`] future.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rustix::io::Errno;
use socket2::{Domain, Socket, Type};

use crate::net::io_source::IoSource;
use crate::net::tcp_stream::TcpStream;
use crate::rt::reactor::Direction;
use crate::rt::{sleep, Sleep};

/// The listen backlog [`TcpListener::bind`] asks for. The kernel caps it at
/// `net.core.somaxconn` (4096 on current Linux). A burst of thousands of connects needs it:
/// the `std` and mio default of 128 drops SYNs under such a burst.
pub const DEFAULT_BACKLOG: i32 = 4096;

/// How long [`TcpListener::accept`] pauses after running out of descriptors or memory, before
/// it tries again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A TCP socket listening for connections.
///
/// Dropping it deregisters it from the reactor and closes the socket.
pub struct TcpListener {
    io: IoSource<mio::net::TcpListener>,
    /// Set after an accept failed for lack of descriptors or memory: the next accept waits for
    /// it first, so a server loop that retries at once does not spin on the same error.
    backoff: Option<Sleep>,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

impl TcpListener {
    /// Binds to `addr` with `SO_REUSEADDR` and a backlog of [`DEFAULT_BACKLOG`]. Port 0 picks
    /// a free port; [`local_addr`](Self::local_addr) tells which.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(addr, DEFAULT_BACKLOG)
    }

    /// Like [`bind`](Self::bind), with the listen backlog given.
    pub fn bind_with_backlog(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(backlog)?;
        let listener = mio::net::TcpListener::from_std(socket.into());
        Ok(TcpListener::from_mio(listener))
    }

    /// Wraps a bound `std` listener, switching it to non-blocking mode.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener::from_mio(mio::net::TcpListener::from_std(
            listener,
        )))
    }

    fn from_mio(listener: mio::net::TcpListener) -> TcpListener {
        TcpListener {
            // Connections may be queued before the first event: try accepting at once.
            io: IoSource::new(listener, &[Direction::Read]),
            backoff: None,
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Waits for the next connection.
    ///
    /// A connection that was reset before it could be accepted is skipped. When the process or
    /// system is out of file descriptors (`EMFILE`, `ENFILE`) or buffers, the error is
    /// returned, and the next call first waits [`ACCEPT_BACKOFF`]: a loop that logs the error
    /// and calls `accept` again keeps serving once descriptors free up, and does not spin.
    pub fn accept(&mut self) -> Accept<'_> {
        Accept { listener: self }
    }

    /// Poll-style [`accept`](Self::accept).
    pub fn poll_accept(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        if let Some(backoff) = &mut self.backoff {
            if Pin::new(backoff).poll(cx).is_pending() {
                // The timer wakes us when the backoff ends.
                return Poll::Pending;
            }
            self.backoff = None;
            // The refused connections are still queued, and no new event will say so.
            self.io.set_ready(Direction::Read);
        }
        loop {
            match self
                .io
                .poll_io(cx, Direction::Read, |listener| listener.accept())
            {
                Poll::Ready(Ok((stream, addr))) => {
                    return Poll::Ready(Ok((TcpStream::from_mio(stream), addr)))
                }
                Poll::Ready(Err(e)) if is_aborted_connection(&e) => continue,
                Poll::Ready(Err(e)) => {
                    if is_resource_exhaustion(&e) {
                        self.backoff = Some(sleep(ACCEPT_BACKOFF));
                    }
                    return Poll::Ready(Err(e));
                }
                // The reactor wakes us on READABLE for the listener's token.
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A connection that died in the queue: skip it and accept the next.
fn is_aborted_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Out of descriptors or kernel memory: retrying at once would fail the same way.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    Errno::from_io_error(e).is_some_and(|errno| {
        [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&errno)
    })
}

/// The future of [`TcpListener::accept`]. One state: the listener to accept from.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Accept<'a> {
    listener: &'a mut TcpListener,
}

impl Future for Accept<'_> {
    type Output = io::Result<(TcpStream, SocketAddr)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.listener.poll_accept(cx)
    }
}
