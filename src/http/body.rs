//! [`Body`]: a request body, buffered or streamed, and [`BodySender`], the sending half of a
//! streamed one.
//!
//! A buffered body ([`Bytes`], `Vec<u8>`, `String`, `&'static str`) is sent with
//! `Content-Length`, joined to the head when small, and can be sent again (a redirect, a
//! retry on a stale connection). A streamed body is pulled piece by piece while the request is
//! written, after its head: from a reader ([`Body::from_reader`], read on a helper thread),
//! from another task or thread ([`Body::channel`]), or, with the `futures-io` feature, from an
//! `AsyncRead` ([`Body::from_async_read`]). It is sent once: with `Content-Length` when its
//! length is known, with `Transfer-Encoding: chunked` otherwise. `exchange.rs` writes it.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::error::{BodyFailure, Error, Kind};

/// The most pieces a streamed body holds between its producer and the connection: the
/// producer waits (`send` is `Pending`, `blocking_send` blocks) while this many are queued.
const CHANNEL_CAPACITY: usize = 4;

/// The size of the pieces a reader is read in.
const READ_CHUNK: usize = 64 * 1024;

/// The body of a request.
///
/// Made from bytes (`Bytes`, `Vec<u8>`, `String`, `&'static str`, `&'static [u8]`), it is
/// buffered: sent with `Content-Length`, and sent again as it is when a 307 or 308 redirect
/// is followed or a stale keep-alive connection is replaced.
///
/// Made from a reader, a channel or (feature `futures-io`) an `AsyncRead`, it is streamed:
/// read while the request is written, never held whole, and sent once. A streamed body of
/// known length ([`sized_reader`](Self::sized_reader), or a `Content-Length` header set on the
/// request) is sent with `Content-Length`, and a source that gives fewer or more bytes than
/// that fails the request with [`BodyFailure::LengthMismatch`] (the connection is closed, so
/// the server never takes a short body for a whole one); one of unknown length is sent with
/// `Transfer-Encoding: chunked`. Because it cannot be sent twice:
///
/// - a 307 or 308 redirect (which would resend the body) is not followed: the redirect
///   response is returned as it is, as reqwest does;
/// - a pooled connection found closed once the body has begun is an error, not retried on a
///   new connection (it is retried if no byte of the body had been taken yet);
/// - [`Request::try_clone`](crate::Request::try_clone) gives `None`, and a batch
///   ([`Client::fetch_all`](crate::Client::fetch_all)), which keeps its requests to send them
///   again, refuses it with [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest).
///
/// The write timeout ([`read_timeout`](crate::ClientBuilder::read_timeout), which bounds any
/// one read or write) applies to each write; the wait for the source's next piece is bounded
/// only by the total timeout.
///
/// `Body` is `Send`: a request can be built on one thread and sent from another.
///
/// ```
/// use volley::{Body, Client};
///
/// # volley::Runtime::new().unwrap().block_on(async {
/// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let client = Client::new();
/// // Buffered: Content-Length, replayable.
/// client.post(server.url("/post")).body("a=1").send().await?;
/// // A reader (a file, say), streamed with its length known.
/// let file = std::io::Cursor::new(vec![b'x'; 1 << 20]);
/// let body = Body::sized_reader(file, 1 << 20);
/// let response = client.put(server.url("/count")).body(body).send().await?;
/// assert!(response.text().await?.contains("\"length\": 1048576"));
/// # Ok::<(), volley::Error>(())
/// # }).unwrap();
/// ```
pub struct Body {
    inner: Inner,
}

enum Inner {
    Bytes(Bytes),
    /// Boxed: rare, and a `Body` then takes no more room than `Bytes` in every request.
    Stream(Box<Streaming>),
}

/// A streamed body: where its pieces come from, and its declared length.
pub(crate) struct Streaming {
    source: Source,
    /// The length promised, if known.
    len: Option<u64>,
    /// True once a piece has been taken: the body can no longer be sent again.
    started: bool,
}

enum Source {
    /// A blocking reader, moved to a helper thread on the first poll (then `Channel`).
    Reader(Option<Box<dyn Read + Send>>),
    /// The receiving half of a channel.
    Channel(Receiver),
    /// An `AsyncRead`, polled in place.
    #[cfg(feature = "futures-io")]
    AsyncRead(std::pin::Pin<Box<dyn futures_io::AsyncRead + Send>>),
}

impl Body {
    /// A body streamed from `reader`, of unknown length (sent chunked).
    ///
    /// The reader is read on volley's helper threads
    /// ([`spawn_blocking`](crate::spawn_blocking)), in pieces of 64 KiB, a few pieces ahead
    /// of the connection at most, so reading a file or a pipe never blocks the event loop and
    /// the body is never held whole. An error from the reader fails the request with
    /// [`BodyFailure::Read`], the `io::Error` as its source.
    ///
    /// ```
    /// # volley::Runtime::new().unwrap().block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let reader = std::io::Read::take(std::io::repeat(b'x'), 100_000); // a pipe, say
    /// let client = volley::Client::new();
    /// let response = client
    ///     .post(server.url("/count"))
    ///     .body(volley::Body::from_reader(reader))
    ///     .send()
    ///     .await?;
    /// assert!(response.text().await?.contains("\"length\": 100000"));
    /// # Ok::<(), volley::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn from_reader(reader: impl Read + Send + 'static) -> Body {
        Body::stream(Source::Reader(Some(Box::new(reader))), None)
    }

    /// A body streamed from `reader`, which gives exactly `len` bytes: sent with
    /// `Content-Length: len`. A reader that ends before `len` bytes, or has more, fails the
    /// request with [`BodyFailure::LengthMismatch`]. Otherwise as
    /// [`from_reader`](Self::from_reader).
    pub fn sized_reader(reader: impl Read + Send + 'static, len: u64) -> Body {
        Body::stream(Source::Reader(Some(Box::new(reader))), Some(len))
    }

    /// A body streamed from an [`AsyncRead`](futures_io::AsyncRead), of unknown length (sent
    /// chunked); it is polled on the request's task, in pieces of up to 64 KiB. An error
    /// fails the request with [`BodyFailure::Read`]. (Feature `futures-io`.)
    #[cfg(feature = "futures-io")]
    pub fn from_async_read(reader: impl futures_io::AsyncRead + Send + 'static) -> Body {
        Body::stream(Source::AsyncRead(Box::pin(reader)), None)
    }

    /// A body that another task or thread produces: [`BodySender::send`] (from any executor)
    /// or [`BodySender::blocking_send`] (from a thread) gives it pieces, and
    /// [`BodySender::finish`] ends it. Sent chunked, unless the request has a
    /// `Content-Length` header, which the pieces must then add up to.
    ///
    /// The channel holds a few pieces: `send` waits while the connection is behind. A sender
    /// that calls [`abort`](BodySender::abort), or is dropped without `finish`, fails the
    /// request with [`BodyFailure::Aborted`]; the body's end (`0\r\n\r\n`) is never sent, so
    /// the server cannot take what came before for the whole body.
    ///
    /// ```
    /// use volley::{Body, Client};
    ///
    /// # volley::Runtime::new().unwrap().block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let (mut sender, body) = Body::channel();
    /// std::thread::spawn(move || {
    ///     for line in ["one\n", "two\n", "three\n"] {
    ///         if sender.blocking_send(line.into()).is_err() {
    ///             return; // the request is over
    ///         }
    ///     }
    ///     sender.finish();
    /// });
    /// let client = Client::new();
    /// let response = client.post(server.url("/post")).body(body).send().await?;
    /// assert!(response.text().await?.contains("one\\ntwo\\nthree\\n"));
    /// # Ok::<(), volley::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn channel() -> (BodySender, Body) {
        let chan = Arc::new(Chan::default());
        let sender = BodySender {
            chan: chan.clone(),
            done: false,
        };
        let body = Body::stream(Source::Channel(Receiver { chan }), None);
        (sender, body)
    }

    fn stream(source: Source, len: Option<u64>) -> Body {
        Body {
            inner: Inner::Stream(Box::new(Streaming {
                source,
                len,
                started: false,
            })),
        }
    }

    /// The bytes of a buffered body; `None` for a streamed one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Bytes(bytes) => Some(bytes),
            Inner::Stream(_) => None,
        }
    }

    /// The body's length, if known in advance: a buffered body's, or a sized stream's.
    pub fn content_length(&self) -> Option<u64> {
        match &self.inner {
            Inner::Bytes(bytes) => Some(bytes.len() as u64),
            Inner::Stream(stream) => stream.len,
        }
    }

    /// True for a streamed body (which is sent once).
    pub fn is_stream(&self) -> bool {
        matches!(self.inner, Inner::Stream(_))
    }

    /// A copy of a buffered body (cheap: the bytes are shared); `None` for a streamed one.
    pub fn try_clone(&self) -> Option<Body> {
        match &self.inner {
            Inner::Bytes(bytes) => Some(Body::from(bytes.clone())),
            Inner::Stream(_) => None,
        }
    }

    /// The buffered bytes or the stream, to send.
    pub(crate) fn parts_mut(&mut self) -> (Option<&Bytes>, Option<&mut Streaming>) {
        match &mut self.inner {
            Inner::Bytes(bytes) => (Some(&*bytes), None),
            Inner::Stream(stream) => (None, Some(stream)),
        }
    }
}

impl Streaming {
    /// The length promised, if known.
    pub(crate) fn len(&self) -> Option<u64> {
        self.len
    }

    /// True once a piece has been taken: the body cannot be sent again.
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// The next piece of the body, `None` at its end. An empty piece may come; skip it.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        self.started = true;
        match &mut self.source {
            Source::Reader(reader) => {
                let reader = reader.take().expect("a reader source is started once");
                let (sender, receiver) = {
                    let chan = Arc::new(Chan::default());
                    let sender = BodySender {
                        chan: chan.clone(),
                        done: false,
                    };
                    (sender, Receiver { chan })
                };
                // Dropping the task does not stop it: it stops when the receiver is dropped
                // (its next `blocking_send` fails) or the reader ends.
                drop(crate::rt::spawn_blocking(move || pump(reader, sender)));
                self.source = Source::Channel(receiver);
                self.poll_next(cx)
            }
            Source::Channel(receiver) => receiver.poll_recv(cx),
            #[cfg(feature = "futures-io")]
            Source::AsyncRead(reader) => {
                let mut buf = bytes::BytesMut::zeroed(READ_CHUNK);
                match reader.as_mut().poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(0)) => Poll::Ready(Ok(None)),
                    Poll::Ready(Ok(n)) => {
                        buf.truncate(n);
                        Poll::Ready(Ok(Some(buf.freeze())))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(read_error(e))),
                    // The reader's own source wakes us.
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// Reads `reader` into `sender` in pieces of [`READ_CHUNK`], on a helper thread.
fn pump(mut reader: Box<dyn Read + Send>, mut sender: BodySender) {
    loop {
        let mut buf = vec![0u8; READ_CHUNK];
        let n = match reader.read(&mut buf) {
            Ok(0) => return sender.finish(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return sender.end(End::Failed(e)),
        };
        buf.truncate(n);
        if sender.blocking_send(Bytes::from(buf)).is_err() {
            return; // the request is over
        }
    }
}

fn read_error(e: io::Error) -> Error {
    Error::new(Kind::RequestBody(BodyFailure::Read)).with_source(e)
}

/// The sending half of [`Body::channel`]. `Send`, and usable from any executor or thread.
///
/// Dropping it without [`finish`](Self::finish) aborts the body, as
/// [`abort`](Self::abort) does.
pub struct BodySender {
    chan: Arc<Chan>,
    /// `finish` or `abort` was called.
    done: bool,
}

/// The error of [`BodySender::send`]: the request no longer takes its body (it ended, failed,
/// was dropped, or the server answered before reading all of it). The piece comes back.
#[derive(Debug)]
pub struct BodySendError(pub Bytes);

impl fmt::Display for BodySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request no longer takes its body")
    }
}

impl std::error::Error for BodySendError {}

impl BodySender {
    /// Gives the body its next piece, waiting while the channel is full. Works when awaited
    /// on any executor (the request's task is woken from wherever this runs).
    pub async fn send(&mut self, piece: Bytes) -> Result<(), BodySendError> {
        let mut piece = Some(piece);
        poll_fn(|cx| {
            let mut state = self.chan.lock();
            if state.receiver_gone {
                return Poll::Ready(Err(BodySendError(piece.take().unwrap_or_default())));
            }
            if state.queue.len() < CHANNEL_CAPACITY {
                state.queue.push_back(piece.take().unwrap_or_default());
                state.wake_receiver();
                return Poll::Ready(Ok(()));
            }
            // The receiver wakes us when it takes a piece, or is dropped.
            state.sender_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Gives the body its next piece, blocking the thread while the channel is full. Do not
    /// call it on the thread of the runtime that sends the request: it would wait for itself.
    pub fn blocking_send(&mut self, piece: Bytes) -> Result<(), BodySendError> {
        let mut state = self.chan.lock();
        loop {
            if state.receiver_gone {
                return Err(BodySendError(piece));
            }
            if state.queue.len() < CHANNEL_CAPACITY {
                state.queue.push_back(piece);
                state.wake_receiver();
                return Ok(());
            }
            state = self
                .chan
                .room
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Ends the body: what was sent is all of it.
    pub fn finish(mut self) {
        self.end(End::Finished);
    }

    /// Ends the body as incomplete: the request fails with [`BodyFailure::Aborted`] and its
    /// connection is closed.
    pub fn abort(mut self) {
        self.end(End::Aborted);
    }

    fn end(&mut self, end: End) {
        self.done = true;
        let mut state = self.chan.lock();
        state.end.get_or_insert(end);
        state.wake_receiver();
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        if !self.done {
            self.end(End::Aborted);
        }
    }
}

impl fmt::Debug for BodySender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodySender").finish_non_exhaustive()
    }
}

/// What a channel body's two halves share.
#[derive(Default)]
struct Chan {
    state: Mutex<ChanState>,
    /// Signalled when a piece is taken or the receiver goes: `blocking_send` waits on it.
    room: Condvar,
}

impl Chan {
    fn lock(&self) -> MutexGuard<'_, ChanState> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct ChanState {
    /// Pieces sent and not yet taken, at most [`CHANNEL_CAPACITY`].
    queue: VecDeque<Bytes>,
    /// How the sender ended the body, once it has.
    end: Option<End>,
    /// The body was dropped (the request is over): sending fails.
    receiver_gone: bool,
    /// The request's task, waiting for a piece.
    receiver_waker: Option<Waker>,
    /// A sender's task, waiting for room.
    sender_waker: Option<Waker>,
}

impl ChanState {
    fn wake_receiver(&mut self) {
        if let Some(waker) = self.receiver_waker.take() {
            waker.wake();
        }
    }
}

/// How a sender ended the body.
enum End {
    Finished,
    Aborted,
    /// The reader of [`Body::from_reader`] failed.
    Failed(io::Error),
}

/// The receiving half of a channel body.
struct Receiver {
    chan: Arc<Chan>,
}

impl Receiver {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        let mut state = self.chan.lock();
        if let Some(piece) = state.queue.pop_front() {
            if let Some(waker) = state.sender_waker.take() {
                waker.wake();
            }
            drop(state);
            self.chan.room.notify_all();
            return Poll::Ready(Ok(Some(piece)));
        }
        match state.end.take() {
            Some(End::Finished) => {
                state.end = Some(End::Finished);
                Poll::Ready(Ok(None))
            }
            Some(End::Aborted) => {
                state.end = Some(End::Aborted);
                Poll::Ready(Err(Error::new(Kind::RequestBody(BodyFailure::Aborted))))
            }
            Some(End::Failed(e)) => {
                state.end = Some(End::Aborted);
                Poll::Ready(Err(read_error(e)))
            }
            None => {
                // A sender wakes us when it sends a piece or ends the body.
                state.receiver_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.chan.lock();
        state.receiver_gone = true;
        state.queue.clear();
        if let Some(waker) = state.sender_waker.take() {
            waker.wake();
        }
        drop(state);
        self.chan.room.notify_all();
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body {
            inner: Inner::Bytes(bytes),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::from(Bytes::from(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::from(Bytes::from(text))
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Body {
        Body::from(Bytes::from_static(text.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Body {
        Body::from(Bytes::from_static(bytes))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Bytes(bytes) => f.debug_tuple("Body").field(bytes).finish(),
            Inner::Stream(stream) => f
                .debug_struct("Body")
                .field("stream", &true)
                .field("len", &stream.len)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Body` and `BodySender` may cross threads (the `Send` client moves requests).
    #[test]
    fn body_and_sender_are_send() {
        fn send<T: Send>() {}
        send::<Body>();
        send::<BodySender>();
    }

    /// Buffered bodies clone and know their length; streamed ones do neither (unless sized).
    #[test]
    fn buffered_bodies_clone_streams_do_not() {
        let body = Body::from("hello");
        assert_eq!(body.try_clone().unwrap().as_bytes(), Some(&b"hello"[..]));
        assert_eq!(body.content_length(), Some(5));
        let stream = Body::from_reader(std::io::empty());
        assert!(stream.try_clone().is_none() && stream.is_stream());
        assert_eq!(stream.content_length(), None);
        assert_eq!(Body::sized_reader(&b"abc"[..], 3).content_length(), Some(3));
    }

    /// A channel body gives what was sent, in order, then its end; a sender dropped early is
    /// an abort, and sending to a dropped body fails and gives the piece back.
    #[test]
    fn channel_ends_finish_abort_and_drop() {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let (mut sender, mut body) = Body::channel();
        sender.blocking_send(Bytes::from_static(b"a")).unwrap();
        sender.finish();
        let (_, stream) = body.parts_mut();
        let stream = stream.unwrap();
        assert_eq!(
            stream.poll_next(&mut cx).map(|r| r.unwrap()),
            Poll::Ready(Some(Bytes::from_static(b"a")))
        );
        assert_eq!(
            stream.poll_next(&mut cx).map(|r| r.unwrap()),
            Poll::Ready(None)
        );

        let (sender, mut body) = Body::channel();
        let (_, stream) = body.parts_mut();
        let stream = stream.unwrap();
        assert!(stream.poll_next(&mut cx).is_pending());
        drop(sender);
        match stream.poll_next(&mut cx) {
            Poll::Ready(Err(e)) => {
                assert_eq!(e.kind(), &Kind::RequestBody(BodyFailure::Aborted))
            }
            other => panic!("{other:?}"),
        }

        let (mut sender, body) = Body::channel();
        drop(body);
        let err = sender.blocking_send(Bytes::from_static(b"x")).unwrap_err();
        assert_eq!(err.0, Bytes::from_static(b"x"));
    }

    /// `blocking_send` waits while the channel holds its capacity of pieces.
    #[test]
    fn blocking_send_waits_for_room() {
        let (mut sender, mut body) = Body::channel();
        let producer = std::thread::spawn(move || {
            for i in 0..CHANNEL_CAPACITY as u8 + 3 {
                sender.blocking_send(Bytes::from(vec![i])).unwrap();
            }
            sender.finish();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let (_, stream) = body.parts_mut();
        let stream = stream.unwrap();
        let mut got = Vec::new();
        loop {
            match stream.poll_next(&mut cx) {
                Poll::Ready(Ok(Some(piece))) => got.extend_from_slice(&piece),
                Poll::Ready(Ok(None)) => break,
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (0..CHANNEL_CAPACITY as u8 + 3).collect::<Vec<_>>());
    }
}
