//! A blocking client, in the style of `reqwest::blocking` and ureq: [`Client`] with
//! `get(url).send()?`, and a [`Response`] whose body is read with [`text`](Response::text),
//! [`bytes`](Response::bytes), or as a [`std::io::Read`].
//!
//! ```
//! # let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse().unwrap())?;
//! # let url = server.url("/get");
//! let client = volley::blocking::Client::new();
//! let body = client.get(&url).send()?.text()?;
//! assert!(body.contains("/get"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! It is the [`threaded`] client with each call waited for by parking the
//! calling thread until the loop answers: no runtime is made per call, and the loop threads
//! and their pool are shared by every clone, from any number of threads. It can be used from
//! any thread, including a tokio `spawn_blocking` task; calling it from inside an async task
//! blocks that task's thread, as any blocking call does. Dropping it anywhere is fine: unlike
//! `reqwest::blocking`, it owns no runtime that would refuse to be dropped in an async
//! context. When the last handle goes, its loop threads are stopped and joined.

use std::fmt;
use std::io::{self, Read};

use bytes::{Buf, Bytes};
use http::{HeaderMap, Method, StatusCode, Version};
use url::Url;

use crate::batch::{BatchReport, BatchSummary, FetchResult, IntoRequest, Progress};
use crate::http::client::request_methods;
use crate::http::error::Error;
use crate::http::request::{IntoUrl, Request};
use crate::http::timings::Timings;
use crate::sync::block_on;
use crate::threaded;

/// A request being built for the blocking [`Client`]; `send()` sends it.
pub type RequestBuilder = crate::http::client::RequestBuilder<Client>;

/// A blocking HTTP/1.1 client: `Send`, `Sync`, cheap to clone. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Client {
    inner: threaded::Client,
}

impl Client {
    /// A client with the default settings.
    pub fn new() -> Client {
        Client::default()
    }

    /// Starts configuring a client: the settings of a [`threaded::ClientBuilder`]; finish
    /// with [`Client::from`] or `.build().into()`.
    pub fn builder() -> threaded::ClientBuilder {
        threaded::Client::builder()
    }

    request_methods!();

    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        crate::http::client::RequestBuilder::new(self.clone(), method, url)
    }

    /// Sends `request` and waits for the final response head.
    pub fn execute(&self, request: Request) -> Result<Response, Error> {
        block_on(self.inner.execute(request)).map(|inner| Response { inner, piece: None })
    }

    /// Fetches every request of `requests` (URLs or [`Request`]s) as
    /// [`crate::Client::fetch_all`] does, on the client's loop, and returns every result in
    /// input order. `concurrency` bounds the requests in flight.
    ///
    /// ```
    /// # let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse().unwrap())?;
    /// let urls: Vec<String> = (0..50).map(|i| server.url(&format!("/get?i={i}"))).collect();
    /// let report = volley::blocking::Client::new().fetch_all(urls, 10);
    /// assert_eq!(report.summary.ok, 50);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fetch_all<I>(&self, requests: I, concurrency: usize) -> BatchReport
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: IntoRequest,
    {
        block_on(
            self.inner
                .fetch_all(requests)
                .concurrency(concurrency)
                .run(),
        )
    }

    /// The batch of `requests` with all its settings (per host, queue timeout, bodies,
    /// progress): iterate over [`Batch::stream`] for results as they complete, or call
    /// [`Batch::run`].
    pub fn batch<I>(&self, requests: I) -> Batch<I::IntoIter>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: IntoRequest,
    {
        Batch(self.inner.fetch_all(requests))
    }
}

impl From<threaded::Client> for Client {
    /// The blocking face of a threaded client, sharing its loops and pools.
    fn from(inner: threaded::Client) -> Client {
        Client { inner }
    }
}

impl crate::http::client::RequestBuilder<Client> {
    /// Sends the request and waits for the final response head.
    pub fn send(self) -> Result<Response, Error> {
        let request = self.request?;
        self.client.execute(request)
    }
}

/// Applies a setter to the threaded batch inside, for `forward_settings!`.
macro_rules! apply_setting {
    ($batch:ident, $name:ident($($arg:expr),*)) => {
        Batch($batch.0.$name($($arg),*))
    };
}

/// A batch for the blocking client: the settings of [`threaded::Batch`], run by blocking.
#[must_use = "a batch does nothing until .run() or .stream()"]
#[derive(Debug)]
pub struct Batch<I>(threaded::Batch<I>);

impl<I> Batch<I>
where
    I: Iterator + Send + 'static,
    I::Item: IntoRequest,
{
    crate::batch::forward_settings!(apply_setting);

    /// As [`crate::Batch::on_progress`]; `f` runs on the loop thread.
    pub fn on_progress(self, f: impl FnMut(&Progress) + Send + 'static) -> Self {
        Batch(self.0.on_progress(f))
    }

    /// As [`threaded::Batch::robots`].
    pub fn robots(self, user_agent: &str) -> Self {
        Batch(self.0.robots(user_agent))
    }

    /// As [`threaded::Batch::robots_with`].
    pub fn robots_with<F>(self, user_agent: &str, setup: F) -> Self
    where
        F: Fn(crate::robots::RobotsCacheBuilder) -> crate::robots::RobotsCacheBuilder
            + Send
            + Sync
            + 'static,
    {
        Batch(self.0.robots_with(user_agent, setup))
    }

    /// Runs the batch and returns every result in input order, with the summary.
    pub fn run(self) -> BatchReport {
        block_on(self.0.run())
    }

    /// Starts the batch; the iterator yields results as they complete.
    pub fn stream(self) -> BatchIter {
        BatchIter(self.0.stream())
    }
}

/// The results of a blocking batch in completion order, as an iterator; dropping it cancels
/// the requests still in flight.
#[derive(Debug)]
pub struct BatchIter(threaded::BatchStream);

impl BatchIter {
    /// The totals so far.
    pub fn summary(&self) -> &BatchSummary {
        self.0.summary()
    }
}

impl Iterator for BatchIter {
    type Item = FetchResult;

    fn next(&mut self) -> Option<FetchResult> {
        block_on(self.0.next())
    }
}

/// A response of the blocking [`Client`]: the head, and a body read by blocking, whole
/// ([`bytes`](Self::bytes), [`text`](Self::text)) or through [`Read`].
pub struct Response {
    inner: threaded::Response,
    /// What [`Read`] has not handed out yet of the last piece.
    piece: Option<Bytes>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Response")
            .field(&self.inner)
            .finish()
    }
}

impl Response {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The HTTP version the server answered with.
    pub fn version(&self) -> Version {
        self.inner.version()
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The final URL, after redirects.
    pub fn url(&self) -> &Url {
        self.inner.url()
    }

    /// The length of the body, if known in advance: as [`crate::Response::content_length`].
    pub fn content_length(&self) -> Option<u64> {
        self.inner.content_length()
    }

    /// The address of the server (or proxy) the response came from: as
    /// [`crate::Response::remote_addr`].
    pub fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.remote_addr()
    }

    /// The trailer fields of a chunked body, once the body has been read to the end.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.inner.trailers()
    }

    /// Where the request's time went.
    pub fn timings(&self) -> Timings {
        self.inner.timings()
    }

    /// Turns a 4xx or 5xx response into an error of kind
    /// [`Kind::Status`](crate::ErrorKind::Status).
    pub fn error_for_status(self) -> Result<Response, Error> {
        self.inner.error_for_status_ref()?;
        Ok(self)
    }

    /// Like [`error_for_status`](Self::error_for_status), keeping the response.
    pub fn error_for_status_ref(&self) -> Result<&Response, Error> {
        self.inner.error_for_status_ref()?;
        Ok(self)
    }

    /// The next piece of the body, or `None` at its end.
    pub fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if let Some(piece) = self.piece.take() {
            return Ok(Some(piece));
        }
        block_on(self.inner.chunk())
    }

    /// The whole body (what [`Read`] has not read yet of it).
    pub fn bytes(mut self) -> Result<Bytes, Error> {
        match self.piece.take() {
            None => block_on(self.inner.bytes()),
            Some(piece) => {
                let mut all = piece.to_vec();
                while let Some(more) = block_on(self.inner.chunk())? {
                    all.extend_from_slice(&more);
                }
                Ok(Bytes::from(all))
            }
        }
    }

    /// The whole body as text, decoded by the `charset` of `Content-Type` (UTF-8 by
    /// default).
    pub fn text(self) -> Result<String, Error> {
        let headers = self.inner.headers().clone();
        let bytes = self.bytes()?;
        Ok(crate::http::response::decode_text(&headers, &bytes))
    }

    /// The whole body, parsed as JSON: as [`crate::Response::json`]. (Feature `json`.)
    ///
    /// ```
    /// # let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse().unwrap())?;
    /// let client = volley::blocking::Client::new();
    /// let echo: serde_json::Value = client
    ///     .post(server.url("/anything"))
    ///     .json(&serde_json::json!({"n": 1}))
    ///     .send()?
    ///     .json()?;
    /// assert_eq!(echo["json"]["n"], 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let url = self.inner.url().clone();
        let bytes = self.bytes()?;
        crate::http::response::parse_json(&bytes, &url)
    }
}

/// Reads the body as it arrives. An error of the body (a reset, a timeout, a bad chunk) is an
/// [`io::Error`] whose inner error is the volley [`Error`].
///
/// ```
/// # let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse().unwrap())?;
/// use std::io::Read;
///
/// let mut resp = volley::blocking::Client::new().get(server.url("/bytes/100000")).send()?;
/// let mut body = Vec::new();
/// resp.read_to_end(&mut body)?;
/// assert_eq!(body.len(), 100_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(piece) = &mut self.piece {
                let n = piece.len().min(buf.len());
                buf[..n].copy_from_slice(&piece[..n]);
                piece.advance(n);
                if piece.is_empty() {
                    self.piece = None;
                }
                return Ok(n);
            }
            match block_on(self.inner.chunk()) {
                Ok(Some(piece)) => self.piece = Some(piece),
                Ok(None) => return Ok(0),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
}
