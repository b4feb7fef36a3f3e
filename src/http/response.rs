//! [`Response`]: the head of a response and a body still to be read from its connection.

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode, Version};
use url::Url;

use super::conn::{body_buffer_limit, Conn, Deadlines};
use super::error::{Error, Kind, Limit, Phase};
use super::pool::{PoolHandle, PoolKey};
use super::proto::body::{BodyDecoder, BodyError, Decoded, Framing};
use super::proto::decode::{response_coding, Codings, DecodeError, Decoder};
use super::proto::head::{BodyPlan, ResponseHead};
use super::timings::{Clock, Timings};
use crate::rt::Sleep;

/// A response whose head has arrived. The body is read on demand with [`chunk`](Self::chunk),
/// [`bytes`](Self::bytes) or [`text`](Self::text).
///
/// Reading the body to the end returns the connection to the client's pool for reuse (unless
/// either side asked to close). Dropping a response before that closes the connection.
///
/// # Compressed bodies
///
/// The client asks for compressed bodies with `Accept-Encoding` (`gzip, deflate` with the
/// default features; `br` and `zstd` with the `brotli` and `zstd` features; each can be
/// switched off on the [`ClientBuilder`](crate::ClientBuilder)), and decodes a body whose
/// `Content-Encoding` is one of those, as it is read: [`chunk`](Self::chunk) gives decoded
/// pieces of at most 64 KiB, and [`bytes`](Self::bytes), [`text`](Self::text) and a batch's
/// results the decoded body. As reqwest does, a decoded response has its `Content-Encoding`
/// and `Content-Length` headers removed, and [`content_length`](Self::content_length) is
/// `None`; `max_body_size` counts decoded bytes, so a small compressed body cannot expand
/// past it (decoding stops as soon as it would). zstd is the exception to "as it is read":
/// its decoder (ruzstd) gives out bytes only once they leave the frame's window, so it holds
/// up to that window (at most 8 MiB; larger ones are refused) before the first piece, or
/// until the frame ends. A stream that is corrupt or cut short is an error of kind
/// [`Kind::Decode`] naming the coding.
///
/// Left as they come, headers included: a body known to be empty (HEAD, 204, 304,
/// `Content-Length: 0`); an unknown coding, or several stacked (`gzip, br`); a coding the
/// client did not ask for; and every response to a request that sets its own
/// `Accept-Encoding` (or has a `Range` header, for which the client sends none).
pub struct Response {
    head: ResponseHead,
    url: Url,
    /// Boxed: a response is moved several times on its way to the caller, and the body's
    /// state (decoder, deadlines, clock, connection) is most of its size.
    body: Box<Body>,
    /// The content decoder, for a body decoded by its `Content-Encoding`.
    decoding: Option<Box<Decoding>>,
    /// The address of the connection that carried the response (a proxy's, through one),
    /// kept after the connection went back to the pool.
    remote_addr: SocketAddr,
    /// What [`AsyncRead::poll_read`](futures_io::AsyncRead::poll_read) took from a chunk and
    /// could not give yet; [`chunk`](Response::chunk) gives it first.
    #[cfg(feature = "futures-io")]
    unread: Bytes,
}

/// The body's source and progress.
struct Body {
    /// `None` once the body is complete (the connection went back to the pool or was closed).
    conn: Option<Conn>,
    decoder: BodyDecoder,
    /// Whether the connection may carry another request after this body.
    reusable: bool,
    /// Where the connection goes back to once the body is complete.
    pool: PoolHandle,
    key: PoolKey,
    deadlines: Deadlines,
    clock: Clock,
    max_body: Option<u64>,
    trailers: Option<HeaderMap>,
    /// The deadline of the read in progress, armed when it first has to wait.
    timer: Option<(Duration, Sleep)>,
}

/// Where a response's body comes from: the connection and what the request carried along.
pub(crate) struct BodySource {
    pub(crate) conn: Conn,
    /// The client's pool, which the connection goes back to.
    pub(crate) pool: PoolHandle,
    pub(crate) key: PoolKey,
    pub(crate) deadlines: Deadlines,
    pub(crate) clock: Clock,
    /// The settings `max_body_size` and `max_response_header_size` (which bounds trailers).
    pub(crate) max_body: Option<u64>,
    pub(crate) max_head: usize,
}

impl Response {
    pub(crate) fn new(
        head: ResponseHead,
        url: Url,
        plan: BodyPlan,
        source: BodySource,
    ) -> Response {
        let BodySource {
            conn,
            pool,
            key,
            deadlines,
            clock,
            max_body,
            max_head,
        } = source;
        let decoder = BodyDecoder::new(plan.framing, max_head);
        let reusable = plan.reusable;
        let mut response = Response {
            remote_addr: conn.peer,
            head,
            url,
            body: Box::new(Body {
                conn: Some(conn),
                decoder,
                reusable,
                pool,
                key,
                deadlines,
                clock,
                max_body,
                trailers: None,
                timer: None,
            }),
            decoding: None,
            #[cfg(feature = "futures-io")]
            unread: Bytes::new(),
        };
        response.body.finish_if_done();
        response
    }

    /// Decodes the body by its `Content-Encoding` if `codings` has that coding and the body is
    /// not known to be empty; then `Content-Encoding` and `Content-Length` are removed from the
    /// headers, and `max_body_size` applies to the decoded bytes.
    pub(crate) fn decoded(mut self, codings: Codings) -> Response {
        if codings.is_empty() || self.content_length() == Some(0) {
            return self;
        }
        let Some(decoder) = response_coding(codings, &self.head.headers).and_then(Decoder::new)
        else {
            return self;
        };
        self.head.headers.remove(CONTENT_ENCODING);
        self.head.headers.remove(CONTENT_LENGTH);
        self.decoding = Some(Box::new(Decoding {
            decoder,
            decoded: 0,
            limit: self.body.max_body.take(),
            eof: false,
            done: false,
        }));
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.head.status
    }

    /// The HTTP version the server answered with.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The reason phrase as the server sent it, such as `OK` (possibly empty).
    pub fn reason(&self) -> &str {
        &self.head.reason
    }

    /// The reason phrase as kept: a clone of a borrowed usual phrase costs nothing.
    pub(crate) fn reason_kept(&self) -> std::borrow::Cow<'static, str> {
        self.head.reason.clone()
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The final URL, after redirects.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The length of the body this response carries, if it is known in advance: the
    /// `Content-Length` of a body framed by it, and 0 for a response that has no body (a
    /// HEAD, a 204 or a 304), whatever its `Content-Length` header says of the resource, as
    /// reqwest does. `None` for chunked and close-delimited bodies, and for a body the client
    /// decodes (see [Compressed bodies](Self#compressed-bodies)). The header itself is in
    /// [`headers`](Self::headers).
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let client = volley::Client::new();
    /// let resp = client.get(server.url("/bytes/1000")).send().await?;
    /// assert_eq!(resp.content_length(), Some(1000));
    /// let resp = client.head(server.url("/bytes/1000")).send().await?;
    /// assert_eq!(resp.content_length(), Some(0)); // a HEAD response has no body
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn content_length(&self) -> Option<u64> {
        if self.decoding.is_some() {
            return None;
        }
        match self.body.decoder.framing() {
            Framing::Length(n) => Some(n),
            Framing::Empty => Some(0),
            _ => None,
        }
    }

    /// The trailer fields of a chunked body, once the body has been read to the end.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.body.trailers.as_ref()
    }

    /// Where the request's time went: DNS, connect, first byte, and the total so far (up to
    /// the end of the body once it has been read).
    pub fn timings(&self) -> Timings {
        self.body.clock.read()
    }

    /// Turns a 4xx or 5xx response into an error of kind [`Kind::Status`].
    pub fn error_for_status(self) -> Result<Response, Error> {
        let status = self.head.status;
        if status.is_client_error() || status.is_server_error() {
            Err(Error::new(Kind::Status(status)).with_url(&self.url))
        } else {
            Ok(self)
        }
    }

    /// Reads and drops a body of at most `limit` bytes so its connection can be reused;
    /// a larger or unknown-length body just closes the connection.
    pub(crate) async fn discard(mut self, limit: u64) {
        if self.content_length().is_some_and(|n| n <= limit) {
            let mut sink = Vec::new();
            while let Ok(true) = self.read(&mut sink, true).await {
                sink.clear();
            }
        }
    }

    /// The status, version, headers and final URL, moved out (for a batch's result, once
    /// the body has been read).
    pub(crate) fn into_head(self) -> (StatusCode, Version, HeaderMap, Url) {
        let ResponseHead {
            status,
            version,
            headers,
            ..
        } = self.head;
        (status, version, headers, self.url)
    }

    /// Reads the rest of the body; keeps it if `keep`, else only counts it (reusing one
    /// buffer, so a discarded body costs no allocation per read). Returns the body and its
    /// length.
    pub(crate) async fn read_all(&mut self, keep: bool) -> Result<(Vec<u8>, u64), Error> {
        let mut out = Vec::new();
        let mut len = 0;
        if keep {
            if let Some(n) = self.content_length() {
                let cap = self.body.max_body.unwrap_or(u64::MAX).min(n).min(16 << 20);
                out.reserve(cap as usize);
            }
        }
        loop {
            let before = out.len();
            // Bodies not kept are counted and dropped piece by piece (one read, or a decoded
            // piece of at most 64 KiB), so that what is held never grows with the body.
            let more = self.read(&mut out, keep).await?;
            len += (out.len() - before) as u64;
            if !keep {
                out.clear();
            }
            if !more {
                if !keep {
                    // A cleared Vec keeps its capacity, and `Bytes::from` would keep it too.
                    out = Vec::new();
                }
                return Ok((out, len));
            }
        }
    }

    /// The next piece of the body, or `None` at its end. A body that ends early is an error.
    ///
    /// A body sent as it is (no content coding) comes as the connection delivers it, without
    /// a copy: each piece shares the connection's read buffer, which grows to 64 KiB while the
    /// server sends faster than it is read, so a large body arrives in pieces of up to 64 KiB
    /// (a chunked body in pieces of at most one chunk). Holding a piece keeps its buffer
    /// alive; the connection takes a new one. A decoded body comes in pieces of at most
    /// 64 KiB (see [Compressed bodies](Self#compressed-bodies)).
    ///
    /// ```
    /// # volley::Runtime::new().unwrap().block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let client = volley::Client::new();
    /// let mut response = client.get(server.url("/bytes/1000000")).send().await?;
    /// let mut total = 0;
    /// while let Some(piece) = response.chunk().await? {
    ///     total += piece.len();
    /// }
    /// assert_eq!(total, 1_000_000);
    /// # Ok::<(), volley::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// [`chunk`](Self::chunk) as a poll function, for code that implements `Future` or a
    /// stream by hand. `Pending` means the task is woken when more of the body arrives or
    /// the read timeout passes. Like every volley I/O, it must be polled on a volley
    /// [`Runtime`](crate::Runtime).
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        #[cfg(feature = "futures-io")]
        if !self.unread.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.unread))));
        }
        match self.decoding.as_deref_mut() {
            None => self.body.poll_chunk(cx, &self.url),
            Some(decoding) => {
                // Never `Pending` once something was decoded into `out` (see `poll_read_into`),
                // so a fresh buffer per poll loses nothing.
                let mut out = Vec::new();
                ready!(decoding.poll_read_into(cx, &mut self.body, &self.url, &mut out, false))?;
                Poll::Ready(Ok((!out.is_empty()).then(|| Bytes::from(out))))
            }
        }
    }

    /// Appends body data to `out`, decoded if the body is: as [`Body::poll_read_into`].
    async fn read(&mut self, out: &mut Vec<u8>, all: bool) -> Result<bool, Error> {
        poll_fn(|cx| match self.decoding.as_deref_mut() {
            None => self.body.poll_read_into(cx, &self.url, out, all),
            Some(decoding) => decoding.poll_read_into(cx, &mut self.body, &self.url, out, all),
        })
        .await
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        let mut out = Vec::new();
        if let Some(n) = self.content_length() {
            // Trust the declared length only as far as the limit and a sane first guess.
            let cap = self.body.max_body.unwrap_or(u64::MAX).min(n).min(16 << 20);
            out.reserve(cap as usize);
        }
        while self.read(&mut out, true).await? {}
        Ok(Bytes::from(out))
    }

    /// The whole body as text, decoded by the `charset` of `Content-Type` (UTF-8 by
    /// default). Bytes invalid in that charset become U+FFFD.
    pub async fn text(mut self) -> Result<String, Error> {
        let headers = std::mem::take(&mut self.head.headers);
        let bytes = self.bytes().await?;
        Ok(decode_text(&headers, &bytes))
    }

    /// The headers, moved out (for the threaded client, which sends the head across before
    /// the body is read).
    pub(crate) fn take_headers(&mut self) -> HeaderMap {
        std::mem::take(&mut self.head.headers)
    }
}

/// `bytes` as text, decoded by the `charset` of the `Content-Type` in `headers` (UTF-8 by
/// default); bytes invalid in that charset become U+FFFD.
pub(crate) fn decode_text(headers: &HeaderMap, bytes: &[u8]) -> String {
    let encoding = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(charset)
        .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    let (text, _, _) = encoding.decode(bytes);
    text.into_owned()
}

/// reqwest's conveniences, by reqwest's names.
impl Response {
    /// Like [`error_for_status`](Self::error_for_status), without giving the response up: an
    /// error of kind [`Kind::Status`] naming the URL for a 4xx or 5xx, else the response.
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let resp = volley::Client::new().get(server.url("/status/404")).send().await?;
    /// let err = resp.error_for_status_ref().unwrap_err();
    /// assert_eq!(err.kind(), &volley::ErrorKind::Status(volley::StatusCode::NOT_FOUND));
    /// assert_eq!(resp.status(), 404); // still there, body and all
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn error_for_status_ref(&self) -> Result<&Response, Error> {
        let status = self.head.status;
        if status.is_client_error() || status.is_server_error() {
            Err(Error::new(Kind::Status(status)).with_url(&self.url))
        } else {
            Ok(self)
        }
    }

    /// The address at the other end of the connection that carried this response: the
    /// server's, or, through an HTTP proxy (forward or `CONNECT` tunnel), the proxy's. It is
    /// taken when the connection is made, so a response on a pooled connection has it too,
    /// and it stays after the body is read. Always `Some` in volley; an `Option` to keep
    /// reqwest's signature.
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let resp = volley::Client::new().get(server.url("/get")).send().await?;
    /// assert_eq!(resp.remote_addr(), Some(server.local_addr()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.remote_addr)
    }

    /// The whole body, parsed as JSON into a `T` (feature `json`). The `Content-Type` is not
    /// looked at, as in reqwest.
    ///
    /// A body that is not valid JSON for `T` is an error of kind [`Kind::Decode`] naming the
    /// URL, with the `serde_json::Error` as its [`source`](std::error::Error::source), so
    /// that [`Error::is_decode`] is true as reqwest's is; its message says
    /// `invalid JSON: ...` where a content-coding failure names its coding. (`Kind::Decode`
    /// rather than a kind of its own: both are "the body arrived but could not be turned into
    /// what was asked", and code ported from reqwest checks `is_decode`.) An error while
    /// reading the body is returned as [`bytes`](Self::bytes) returns it.
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let client = volley::Client::new();
    /// let doc: serde_json::Value = client.get(server.url("/json")).send().await?.json().await?;
    /// assert!(doc.is_object());
    ///
    /// let err = client.get(server.url("/html")).send().await?.json::<serde_json::Value>().await;
    /// assert!(err.unwrap_err().is_decode());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "json")]
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let url = self.url.clone();
        let body = self.bytes().await?;
        parse_json(&body, &url)
    }
}

/// `body` as JSON of type `T`; an error of kind [`Kind::Decode`] naming `url` if it is not.
#[cfg(feature = "json")]
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    url: &Url,
) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| {
        Error::new(Kind::Decode("invalid JSON".into()))
            .with_url(url)
            .with_source(e)
    })
}

/// The `charset` parameter of a media type.
fn charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

impl Body {
    /// Polls the connection for more bytes, under the read timeout. 0 means the peer closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>, url: &Url) -> Poll<Result<usize, Error>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let polled = conn.poll_fill(
            cx,
            &mut self.timer,
            &self.deadlines,
            Phase::ReadBody,
            url,
            body_buffer_limit(),
        );
        if let Poll::Ready(Err(_)) = polled {
            self.conn = None;
        }
        polled
    }

    /// Decodes the framing of what is buffered, once: the data's range and the bytes used up.
    /// A malformed body, or one past `max_body_size`, ends the body (and its connection).
    fn decode_buffered(&mut self, url: &Url) -> Result<Decoded, Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Decoded::default());
        };
        let decoded = match self.decoder.decode(conn.buf.filled()) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.conn = None;
                return Err(body_error(e, url));
            }
        };
        if let Some(limit) = self.max_body {
            if self.decoder.received() > limit {
                self.conn = None;
                return Err(Error::new(Kind::TooLarge {
                    what: Limit::Body,
                    limit,
                })
                .with_url(url)
                .with_phase(Phase::ReadBody));
            }
        }
        Ok(decoded)
    }

    /// The peer closed: fine if the body is complete or delimited by the close.
    fn closed(&mut self, url: &Url) -> Result<(), Error> {
        if let Err(e) = self.decoder.finish() {
            self.conn = None;
            return Err(body_error(e, url));
        }
        self.reusable = false;
        self.finish_if_done();
        Ok(())
    }

    /// The next run of body data, split off the read buffer without a copy; `None` at the
    /// end of the body.
    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
        url: &Url,
    ) -> Poll<Result<Option<Bytes>, Error>> {
        loop {
            let Some(conn) = self.conn.as_ref() else {
                return Poll::Ready(Ok(None));
            };
            if !conn.buf.is_empty() && !self.decoder.is_done() {
                let decoded = self.decode_buffered(url)?;
                let Some(conn) = self.conn.as_mut() else {
                    return Poll::Ready(Ok(None));
                };
                let data = decoded.data;
                conn.buf.consume(data.start);
                let piece = match data.is_empty() {
                    // Splitting nothing off would still share the buffer.
                    true => Bytes::new(),
                    false => conn.buf.split_to(data.len()),
                };
                conn.buf.consume(decoded.consumed - data.end);
                self.finish_if_done();
                if !piece.is_empty() {
                    return Poll::Ready(Ok(Some(piece)));
                }
                if decoded.consumed > 0 {
                    continue;
                }
            }
            if self.decoder.is_done() {
                self.finish_if_done();
                return Poll::Ready(Ok(None));
            }
            // The reactor or the read timer wakes us.
            if ready!(self.poll_fill(cx, url))? == 0 {
                self.closed(url)?;
            }
        }
    }

    /// Appends body data to `out` (a copy, for callers that gather the body or feed a
    /// decoder). With `all`, keeps reading to the end of the body; otherwise returns after
    /// the first data. Returns `false` at the end of the body (data may have been appended on
    /// the way). `Pending` may come after data was appended: poll again with the same `out`.
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        url: &Url,
        out: &mut Vec<u8>,
        all: bool,
    ) -> Poll<Result<bool, Error>> {
        loop {
            let mut got = false;
            // Decode what is buffered.
            while self.conn.as_ref().is_some_and(|c| !c.buf.is_empty()) && !self.decoder.is_done() {
                let decoded = self.decode_buffered(url)?;
                let Some(conn) = self.conn.as_mut() else {
                    break;
                };
                out.extend_from_slice(&conn.buf.filled()[decoded.data.clone()]);
                got |= !decoded.data.is_empty();
                conn.buf.consume(decoded.consumed);
                if decoded.consumed == 0 {
                    break;
                }
            }
            if self.conn.is_none() {
                return Poll::Ready(Ok(false));
            }
            if self.decoder.is_done() {
                self.finish_if_done();
                return Poll::Ready(Ok(false));
            }
            if got && !all {
                return Poll::Ready(Ok(true));
            }
            // The reactor or the read timer wakes us.
            if ready!(self.poll_fill(cx, url))? == 0 {
                self.closed(url)?;
                return Poll::Ready(Ok(false));
            }
        }
    }

    /// Once the body is complete: keep the trailers, and return the connection to the pool
    /// if it can carry another request.
    fn finish_if_done(&mut self) {
        if !self.decoder.is_done() {
            return;
        }
        self.trailers = self.decoder.take_trailers();
        self.clock.done.get_or_insert_with(std::time::Instant::now);
        if let Some(conn) = self.conn.take() {
            // Bytes after the body mean the server is out of step with us: don't reuse.
            if self.reusable && conn.buf.is_empty() {
                self.pool.put(std::mem::take(&mut self.key), conn);
            }
        }
        self.timer = None;
    }
}

/// The most decoded bytes one [`Response::chunk`] returns.
pub(crate) const MAX_DECODED_CHUNK: usize = 64 * 1024;

/// A body decoded by its `Content-Encoding`: the decoder and how far it got.
struct Decoding {
    decoder: Decoder,
    /// Decoded bytes so far.
    decoded: u64,
    /// `max_body_size`, on the decoded bytes.
    limit: Option<u64>,
    /// The compressed body has ended.
    eof: bool,
    /// The decoded body has ended, or failed.
    done: bool,
}

impl Decoding {
    /// Appends decoded body data to `out`. With `all`, keeps going to the end of the body;
    /// otherwise returns as soon as there is data and the decoder needs more input, or
    /// [`MAX_DECODED_CHUNK`] bytes are there. Returns `false` at the end of the body (data may
    /// have been appended on the way). Without `all`, it is never `Pending` after appending
    /// data.
    ///
    /// The decoder never gives more than is asked for, and is asked for no more than one
    /// byte past `max_body_size`: a bomb is stopped after at most that many bytes.
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut Body,
        url: &Url,
        out: &mut Vec<u8>,
        all: bool,
    ) -> Poll<Result<bool, Error>> {
        let before = out.len();
        loop {
            if self.done {
                return Poll::Ready(Ok(false));
            }
            let mut room = match all {
                true => MAX_DECODED_CHUNK,
                false => MAX_DECODED_CHUNK - (out.len() - before),
            };
            if let Some(limit) = self.limit {
                let left = limit.saturating_sub(self.decoded).saturating_add(1);
                room = room.min(usize::try_from(left).unwrap_or(usize::MAX));
            }
            let n = match self.decoder.decode(out, room) {
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(self.fail(body, decode_error(e, url)))),
            };
            self.decoded += n as u64;
            if let Some(limit) = self.limit.filter(|&limit| self.decoded > limit) {
                let e = Error::new(Kind::TooLarge {
                    what: Limit::Body,
                    limit,
                });
                return Poll::Ready(Err(
                    self.fail(body, e.with_url(url).with_phase(Phase::ReadBody))
                ));
            }
            if n == room {
                // More may be ready without waiting for input.
                if !all && out.len() - before >= MAX_DECODED_CHUNK {
                    return Poll::Ready(Ok(true));
                }
                continue;
            }
            // The decoder needs more input: give what there is first.
            if !all && out.len() > before {
                return Poll::Ready(Ok(true));
            }
            if self.eof {
                if let Err(e) = self.decoder.finish() {
                    return Poll::Ready(Err(self.fail(body, decode_error(e, url))));
                }
                self.done = true;
                return Poll::Ready(Ok(false));
            }
            // The body's reader wakes us when more compressed bytes arrive.
            if !ready!(body.poll_read_into(cx, url, self.decoder.input(), false))? {
                self.eof = true;
            }
        }
    }

    /// Ends the body with `e`, closing its connection if the compressed body was not read to
    /// its end.
    fn fail(&mut self, body: &mut Body, e: Error) -> Error {
        self.done = true;
        body.conn = None;
        e
    }
}

fn decode_error(e: DecodeError, url: &Url) -> Error {
    Error::new(Kind::Decode(e.to_string())).with_url(url)
}

fn body_error(e: BodyError, url: &Url) -> Error {
    match e {
        BodyError::Truncated { .. } => Error::new(Kind::Io(Phase::ReadBody))
            .with_url(url)
            .with_source(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                e.to_string(),
            )),
        // Trailers count against the head's limit, but arrive while the body is read.
        BodyError::TrailersTooLarge(limit) => Error::new(Kind::TooLarge {
            what: Limit::Head,
            limit: limit as u64,
        })
        .with_url(url)
        .with_phase(Phase::ReadBody),
        other => Error::new(Kind::InvalidResponse(other.to_string()))
            .with_url(url)
            .with_phase(Phase::ReadBody),
    }
}

/// The body as a byte stream, for `futures::io::copy`, decoders and files (feature
/// `futures-io`). It reads what [`Response::chunk`] gives (decoded, if the body is), copying
/// each piece into the caller's buffer; `Ok(0)` is the end of the body. An error of the body
/// is an [`io::Error`](std::io::Error) whose [`get_ref`](std::io::Error::get_ref) is the
/// volley [`Error`] (kind [`Other`](std::io::ErrorKind::Other)). Like every volley I/O, it
/// must be polled on a volley [`Runtime`](crate::Runtime).
///
/// ```
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use futures_io::AsyncRead;
///
/// # volley::Runtime::new().unwrap().block_on(async {
/// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let client = volley::Client::new();
/// let mut response = client.get(server.url("/bytes/100000")).send().await?;
/// let mut buf = [0u8; 8192];
/// let mut total = 0;
/// loop {
///     let n = poll_fn(|cx| Pin::new(&mut response).poll_read(cx, &mut buf)).await?;
///     if n == 0 {
///         break;
///     }
///     total += n;
/// }
/// assert_eq!(total, 100_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "futures-io")]
impl futures_io::AsyncRead for Response {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        use bytes::Buf as _;
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.unread.is_empty() {
            // `poll_chunk` is woken by the reactor or the read timer.
            match ready!(this.poll_chunk(cx)) {
                Ok(Some(piece)) => this.unread = piece,
                Ok(None) => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(std::io::Error::other(e))),
            }
        }
        let n = buf.len().min(this.unread.len());
        buf[..n].copy_from_slice(&this.unread[..n]);
        this.unread.advance(n);
        Poll::Ready(Ok(n))
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("url", &self.url.as_str())
            .field("status", &self.head.status)
            .field("version", &self.head.version)
            .field("headers", &self.head.headers)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::charset;

    /// The charset parameter is found in any case, quoted or not.
    #[test]
    fn finds_charset() {
        assert_eq!(charset("text/html; charset=ISO-8859-1"), Some("ISO-8859-1"));
        assert_eq!(charset("text/html;Charset=\"utf-8\""), Some("utf-8"));
        assert_eq!(charset("text/html"), None);
        assert_eq!(charset("text/html; q=1"), None);
    }
}
