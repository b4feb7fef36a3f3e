//! The threaded client's [`Response`]: a head that crossed from the loop, and a body that
//! came with it or streams after it.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, Version};
use url::Url;

use super::worker::{BodyFrom, Head, Piece, Worker};
use crate::http::error::{Error, Kind};
use crate::http::response::decode_text;
use crate::http::timings::Timings;

/// A response whose head has arrived, from a threaded [`Client`](super::Client). The same
/// methods as [`crate::Response`]; the body is read with [`chunk`](Self::chunk),
/// [`bytes`](Self::bytes) or [`text`](Self::text), from any executor.
///
/// It keeps its loop thread alive until it is dropped. Dropping it before the end of the body
/// stops the read on the loop and closes the connection.
pub struct Response {
    head: Head,
    body: Body,
    worker: Arc<Worker>,
    /// What [`AsyncRead`](futures_io::AsyncRead) took from a piece and could not give yet;
    /// [`chunk`](Response::chunk) gives it first.
    #[cfg(feature = "futures-io")]
    unread: Bytes,
}

enum Body {
    /// The whole body, not yet handed out.
    Ready(Option<Bytes>),
    Stream(crate::sync::mpsc::Receiver<Piece>),
    /// Read to the end.
    Done,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("threaded::Response")
            .field("url", &self.head.url.as_str())
            .field("status", &self.head.status)
            .field("version", &self.head.version)
            .field("headers", &self.head.headers)
            .finish_non_exhaustive()
    }
}

impl Response {
    pub(crate) fn new(mut head: Head, worker: Arc<Worker>) -> Response {
        let body = match std::mem::replace(&mut head.body, BodyFrom::Done(Bytes::new(), None)) {
            BodyFrom::Done(bytes, trailers) => {
                head.body = BodyFrom::Done(Bytes::new(), trailers);
                Body::Ready((!bytes.is_empty()).then_some(bytes))
            }
            BodyFrom::Stream(rx) => Body::Stream(rx),
        };
        Response {
            head,
            body,
            worker,
            #[cfg(feature = "futures-io")]
            unread: Bytes::new(),
        }
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

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The final URL, after redirects.
    pub fn url(&self) -> &Url {
        &self.head.url
    }

    /// The length of the body, if known in advance: as [`crate::Response::content_length`].
    pub fn content_length(&self) -> Option<u64> {
        self.head.content_length
    }

    /// The address of the server (or proxy) the response came from: as
    /// [`crate::Response::remote_addr`].
    pub fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.head.remote_addr
    }

    /// The trailer fields of a chunked body, once the body has been read to the end.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        match &self.head.body {
            BodyFrom::Done(_, trailers) => trailers.as_ref(),
            BodyFrom::Stream(_) => None,
        }
    }

    /// Where the request's time went, as measured on the loop: up to the head, or to the end
    /// of the body once it has been read.
    pub fn timings(&self) -> Timings {
        self.head.timings
    }

    /// Turns a 4xx or 5xx response into an error of kind [`Kind::Status`].
    pub fn error_for_status(self) -> Result<Response, Error> {
        self.status_error().map_or(Ok(self), Err)
    }

    /// Like [`error_for_status`](Self::error_for_status), keeping the response.
    pub fn error_for_status_ref(&self) -> Result<&Response, Error> {
        self.status_error().map_or(Ok(self), Err)
    }

    fn status_error(&self) -> Option<Error> {
        let status = self.head.status;
        (status.is_client_error() || status.is_server_error())
            .then(|| Error::new(Kind::Status(status)).with_url(&self.head.url))
    }

    /// Poll-style [`chunk`](Self::chunk).
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        #[cfg(feature = "futures-io")]
        if !self.unread.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.unread))));
        }
        match &mut self.body {
            Body::Ready(bytes) => {
                let bytes = bytes.take();
                if bytes.is_none() {
                    self.body = Body::Done;
                }
                Poll::Ready(Ok(bytes))
            }
            Body::Done => Poll::Ready(Ok(None)),
            Body::Stream(rx) => {
                let piece = std::task::ready!(rx.poll_recv(cx));
                let piece = piece.ok_or_else(|| self.worker.stopped_error(Some(&self.head.url)));
                match piece {
                    Ok(Piece::Data(data)) => Poll::Ready(Ok(Some(data))),
                    Ok(Piece::End(trailers, timings)) => {
                        self.head.timings = timings;
                        self.head.body = BodyFrom::Done(Bytes::new(), trailers);
                        self.body = Body::Done;
                        Poll::Ready(Ok(None))
                    }
                    Ok(Piece::Failed(e)) | Err(e) => {
                        self.body = Body::Done;
                        Poll::Ready(Err(e))
                    }
                }
            }
        }
    }

    /// The next piece of the body, or `None` at its end. A body that ends early is an error.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        let first = match self.chunk().await? {
            None => return Ok(Bytes::new()),
            Some(first) => first,
        };
        let Some(second) = self.chunk().await? else {
            return Ok(first); // the common case: one piece, no copy
        };
        let mut all = BytesMut::with_capacity(first.len() + second.len());
        all.extend_from_slice(&first);
        all.extend_from_slice(&second);
        while let Some(piece) = self.chunk().await? {
            all.extend_from_slice(&piece);
        }
        Ok(all.freeze())
    }

    /// The whole body as text, decoded by the `charset` of `Content-Type` (UTF-8 by
    /// default). Bytes invalid in that charset become U+FFFD.
    pub async fn text(mut self) -> Result<String, Error> {
        let headers = std::mem::take(&mut self.head.headers);
        let bytes = self.bytes().await?;
        Ok(decode_text(&headers, &bytes))
    }

    /// The whole body, parsed as JSON: as [`crate::Response::json`]. (Feature `json`.)
    #[cfg(feature = "json")]
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let url = self.head.url.clone();
        let body = self.bytes().await?;
        crate::http::response::parse_json(&body, &url)
    }
}

/// Reads the body as it arrives, from any executor (feature `futures-io`): for
/// `futures::io::copy`, decoders, or tokio through `tokio_util::compat`. An error of the
/// body is an `io::Error` whose inner error is the volley [`Error`].
#[cfg(feature = "futures-io")]
impl futures_io::AsyncRead for Response {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut piece = match std::task::ready!(self.poll_chunk(cx)) {
            Ok(Some(piece)) => piece,
            Ok(None) => return Poll::Ready(Ok(0)),
            Err(e) => return Poll::Ready(Err(std::io::Error::other(e))),
        };
        let n = piece.len().min(buf.len());
        buf[..n].copy_from_slice(&piece.split_to(n));
        self.unread = piece;
        Poll::Ready(Ok(n))
    }
}
