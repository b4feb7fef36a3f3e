//! Non-blocking TCP: [`TcpStream`] and [`TcpListener`], and UDP: [`UdpSocket`] (see
//! [`udp`]), with hand-written futures; and, with the `tls` feature, TLS over TCP:
//! [`tls::TlsStream`] (rustls on our reactor).
//!
//! Every operation goes through one loop (in `io_source.rs`): try the syscall; on
//! `WouldBlock`, clear the readiness and wait for the reactor to report it again.
//!
//! `fdlimit.rs` raises the descriptor limit ([`raise_fd_limit`](crate::raise_fd_limit)) and
//! tells how many descriptors are left, for the batch layer's admission.

pub(crate) mod fdlimit;
mod io_source;
mod stream_futures;
mod tcp_listener;
mod tcp_stream;
#[cfg(feature = "tls")]
pub mod tls;
pub mod udp;

pub use tcp_listener::{Accept, TcpListener, ACCEPT_BACKOFF, DEFAULT_BACKLOG};
pub use tcp_stream::{Connect, Read, ReadToEnd, TcpStream, Write, WriteAll};
#[cfg(feature = "tls")]
pub use tls::{Handshake, TlsAcceptor, TlsConfig, TlsConnector, TlsErrorKind, TlsStream};
pub use udp::{UdpRecv, UdpRecvFrom, UdpSend, UdpSendTo, UdpSocket};
