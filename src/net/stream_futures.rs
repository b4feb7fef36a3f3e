//! The byte-stream futures that [`TcpStream`](super::TcpStream) and `TlsStream` share:
//! `read`, `write`, `write_all` and `read_to_end`, written once over the streams' own
//! `poll_read`, `poll_write` and `poll_flush`. Each stream names them with type aliases
//! (`net::Read<'a>` is `Read<'a, TcpStream>`, `net::tls::Read<'a>` is `Read<'a, TlsStream>`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

pub(crate) mod sealed {
    use std::io;
    use std::task::{Context, Poll};

    /// The poll functions the shared futures drive. Sealed: implemented by volley's streams
    /// only.
    pub trait PollStream {
        /// Reads into `buf`; `Ok(0)` at the end of the stream.
        fn poll_read_bytes(
            &mut self,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>>;
        /// Writes some prefix of `buf`.
        fn poll_write_bytes(&mut self, cx: &mut Context<'_>, buf: &[u8])
            -> Poll<io::Result<usize>>;
        /// Sends whatever the stream buffers itself.
        fn poll_flush_bytes(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    }
}

use sealed::PollStream;

/// The future of `read`. One state: the buffer to fill.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Read<'a, S> {
    stream: &'a mut S,
    buf: &'a mut [u8],
}

impl<'a, S> Read<'a, S> {
    pub(crate) fn new(stream: &'a mut S, buf: &'a mut [u8]) -> Self {
        Read { stream, buf }
    }
}

impl<S: PollStream> Future for Read<'_, S> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.stream.poll_read_bytes(cx, this.buf)
    }
}

/// The future of `write`. One state: the bytes offered.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Write<'a, S> {
    stream: &'a mut S,
    buf: &'a [u8],
}

impl<'a, S> Write<'a, S> {
    pub(crate) fn new(stream: &'a mut S, buf: &'a [u8]) -> Self {
        Write { stream, buf }
    }
}

impl<S: PollStream> Future for Write<'_, S> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.stream.poll_write_bytes(cx, this.buf)
    }
}

/// The future of `write_all`. One state: the bytes not yet written, shrinking with each
/// partial write; once empty, the stream's flush (nothing to do for TCP; for TLS, the
/// encrypted bytes still buffered).
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WriteAll<'a, S> {
    stream: &'a mut S,
    buf: &'a [u8],
}

impl<'a, S> WriteAll<'a, S> {
    pub(crate) fn new(stream: &'a mut S, buf: &'a [u8]) -> Self {
        WriteAll { stream, buf }
    }
}

impl<S: PollStream> Future for WriteAll<'_, S> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while !this.buf.is_empty() {
            let n = match this.stream.poll_write_bytes(cx, this.buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The reactor wakes us on WRITABLE for this socket.
                Poll::Pending => return Poll::Pending,
            };
            this.buf = &this.buf[n..];
        }
        // Pending: the reactor wakes us on WRITABLE for this socket.
        this.stream.poll_flush_bytes(cx)
    }
}

/// How much [`ReadToEnd`] offers the stream per read at most, so a large spare capacity is
/// not zeroed on every call.
const READ_TO_END_CHUNK: usize = 64 * 1024;

/// The future of `read_to_end`. One state: the vector being appended to and the count so far.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ReadToEnd<'a, S> {
    stream: &'a mut S,
    buf: &'a mut Vec<u8>,
    read: usize,
}

impl<'a, S> ReadToEnd<'a, S> {
    pub(crate) fn new(stream: &'a mut S, buf: &'a mut Vec<u8>) -> Self {
        ReadToEnd {
            stream,
            buf,
            read: 0,
        }
    }
}

impl<S: PollStream> Future for ReadToEnd<'_, S> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            let len = this.buf.len();
            let spare = (this.buf.capacity() - len).clamp(4096, READ_TO_END_CHUNK);
            this.buf.resize(len + spare, 0);
            let polled = this.stream.poll_read_bytes(cx, &mut this.buf[len..]);
            let n = match &polled {
                Poll::Ready(Ok(n)) => *n,
                _ => 0,
            };
            this.buf.truncate(len + n);
            match polled {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(this.read)),
                Poll::Ready(Ok(n)) => this.read += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The reactor wakes us on READABLE for this socket.
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
