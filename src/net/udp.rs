//! [`UdpSocket`]: non-blocking UDP on the runtime's reactor, with hand-written futures:
//! [`UdpSend`], [`UdpRecv`], [`UdpSendTo`] and [`UdpRecvFrom`].
//!
//! It is what a DNS stub resolver needs: [`UdpSocket::bind`] to port 0 takes a random source
//! port from the kernel, and [`UdpSocket::connect`] makes the kernel drop datagrams from any
//! other address, so a reply can only come from the server asked.
//!
//! ```no_run
//! use volley::{Runtime, UdpSocket};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let mut socket = UdpSocket::bind("0.0.0.0:0".parse().unwrap())?;
//!     socket.connect("192.0.2.53:53".parse().unwrap())?;
//!     socket.send(b"query").await?;
//!     let mut buf = [0u8; 1232];
//!     let n = socket.recv(&mut buf).await?;
//!     println!("{n} bytes back");
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Readiness
//!
//! Every operation goes through the same loop as TCP's: try the syscall; on `WouldBlock`,
//! clear the readiness and wait for the reactor's next edge. Two things differ from a stream:
//!
//! - A received datagram says nothing about the ones behind it, whatever its size, so a
//!   successful `recv` keeps the socket readable: only `WouldBlock` clears it. (A TCP read
//!   that comes back short has drained the socket; a datagram read has not.)
//! - An error is not final. A connected socket whose peer answers with ICMP "port
//!   unreachable" gets one `ConnectionRefused` from its next `recv` (or `send`), and the one
//!   after may block as usual. So `WouldBlock` also clears what the error event set, and the
//!   socket waits for a new event instead of retrying.
//!
//! Operations take `&mut self`: the socket has one reader and one writer slot in the reactor.
//! Dropping it (or never polling it) leaves nothing registered; it is registered on first use.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::net::io_source::IoSource;
use crate::rt::reactor::Direction;

/// A non-blocking UDP socket driven by the runtime's reactor.
///
/// Made with [`bind`](Self::bind) (outside the runtime too: it registers with the reactor on
/// its first operation). Dropping it deregisters it and closes the socket.
pub struct UdpSocket {
    io: IoSource<mio::net::UdpSocket>,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl UdpSocket {
    /// Binds a socket to `addr`. Port 0 takes a free port chosen by the kernel (a random
    /// one on Linux), which is what a DNS client wants for its source port.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        Ok(UdpSocket::from_mio(mio::net::UdpSocket::bind(addr)?))
    }

    /// Wraps a bound `std` socket, switching it to non-blocking mode.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket::from_mio(mio::net::UdpSocket::from_std(socket)))
    }

    /// Both directions are assumed ready until an operation says otherwise: a datagram may be
    /// queued already, and a fresh socket can send. Trying costs one syscall.
    fn from_mio(socket: mio::net::UdpSocket) -> UdpSocket {
        UdpSocket {
            io: IoSource::new(socket, &[Direction::Read, Direction::Write]),
        }
    }

    /// Sets the socket's default peer: [`send`](Self::send) goes there, and the kernel drops
    /// datagrams that come from any other address. It does not block and sends nothing.
    ///
    /// Datagrams from other addresses queued *before* the call stay queued; a client that
    /// must not see them connects before sending its first datagram.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.io.get_ref().connect(addr)
    }

    /// The local address; after binding to port 0, the port the kernel picked.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The address given to [`connect`](Self::connect); `NotConnected` before it.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Sends `buf` as one datagram to the connected peer. Returns the bytes sent.
    pub fn send<'a>(&'a mut self, buf: &'a [u8]) -> UdpSend<'a> {
        UdpSend { socket: self, buf }
    }

    /// Receives one datagram from the connected peer into `buf`. A datagram longer than `buf`
    /// is cut to its length; the rest is lost.
    pub fn recv<'a>(&'a mut self, buf: &'a mut [u8]) -> UdpRecv<'a> {
        UdpRecv { socket: self, buf }
    }

    /// Sends `buf` as one datagram to `target`.
    pub fn send_to<'a>(&'a mut self, buf: &'a [u8], target: SocketAddr) -> UdpSendTo<'a> {
        UdpSendTo {
            socket: self,
            buf,
            target,
        }
    }

    /// Receives one datagram into `buf`, with the address it came from.
    pub fn recv_from<'a>(&'a mut self, buf: &'a mut [u8]) -> UdpRecvFrom<'a> {
        UdpRecvFrom { socket: self, buf }
    }

    /// Poll-style [`send`](Self::send), for hand-written state machines.
    pub fn poll_send(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_datagram_io(cx, Direction::Write, |socket| socket.send(buf))
    }

    /// Poll-style [`recv`](Self::recv). A success leaves the socket readable: more datagrams
    /// may be queued, and only `WouldBlock` says there are none.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_datagram_io(cx, Direction::Read, |socket| socket.recv(buf))
    }

    /// Poll-style [`send_to`](Self::send_to).
    pub fn poll_send_to(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_datagram_io(cx, Direction::Write, |socket| socket.send_to(buf, target))
    }

    /// Poll-style [`recv_from`](Self::recv_from).
    pub fn poll_recv_from(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io
            .poll_datagram_io(cx, Direction::Read, |socket| socket.recv_from(buf))
    }
}

/// The future of [`UdpSocket::send`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct UdpSend<'a> {
    socket: &'a mut UdpSocket,
    buf: &'a [u8],
}

impl Future for UdpSend<'_> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.socket.poll_send(cx, this.buf)
    }
}

/// The future of [`UdpSocket::recv`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct UdpRecv<'a> {
    socket: &'a mut UdpSocket,
    buf: &'a mut [u8],
}

impl Future for UdpRecv<'_> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.socket.poll_recv(cx, this.buf)
    }
}

/// The future of [`UdpSocket::send_to`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct UdpSendTo<'a> {
    socket: &'a mut UdpSocket,
    buf: &'a [u8],
    target: SocketAddr,
}

impl Future for UdpSendTo<'_> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.socket.poll_send_to(cx, this.buf, this.target)
    }
}

/// The future of [`UdpSocket::recv_from`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct UdpRecvFrom<'a> {
    socket: &'a mut UdpSocket,
    buf: &'a mut [u8],
}

impl Future for UdpRecvFrom<'_> {
    type Output = io::Result<(usize, SocketAddr)>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let this = &mut *self;
        this.socket.poll_recv_from(cx, this.buf)
    }
}
