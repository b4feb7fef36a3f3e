//! [`Client`], the handle requests start from, and [`RequestBuilder`]: from a URL to a
//! [`Response`].
//!
//! A request goes through short phases, one function each, read top-down from
//! [`Client::execute`]: `policy::execute` merges the headers, then per hop
//! `exchange::attempt` checks out a pooled connection or resolves and connects, writes the
//! request and reads the head, while `policy.rs` decides on retrying a stale connection and
//! on following a redirect.

use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use url::Url;

use super::body::Body;
use super::config::{ClientBuilder, Config};
use super::context::ClientContext;
use super::error::{Error, Kind};
use super::policy;
use super::proto::encode::basic_auth_from_url;
use super::request::{IntoUrl, Request, RequestCow};
use super::response::Response;
use super::timings::Clock;

/// An HTTP/1.1 client: settings, a keep-alive pool and a DNS cache.
///
/// Cloning is cheap and shares the pool. A client belongs to the thread of the runtime it is
/// used on, like everything in volley; make one per runtime.
///
/// Timeouts are on by default, unlike reqwest's and hyper's: connect 10 s per address, 30 s
/// for any one read or write, and 300 s in total. Change them on the [`ClientBuilder`].
#[derive(Clone)]
pub struct Client {
    inner: Rc<ClientContext>,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("idle_connections", &self.idle_connections())
            .finish()
    }
}

impl Client {
    /// A client with the default settings.
    pub fn new() -> Client {
        Client::builder().build()
    }

    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Starts a GET request.
    pub fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// Starts a HEAD request.
    pub fn head(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// Starts a POST request.
    pub fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// Starts a PUT request.
    pub fn put(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    /// Starts a PATCH request.
    pub fn patch(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::PATCH, url)
    }

    /// Starts a DELETE request.
    pub fn delete(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            request: url.into_url().map(|url| Request::new(method, url)),
        }
    }

    /// Number of idle keep-alive connections in the pool.
    pub fn idle_connections(&self) -> usize {
        self.inner.pool.len()
    }

    /// The client's settings, as built.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Sends `request`, follows redirects per the policy, and returns the final response once
    /// its head has arrived.
    pub fn execute(&self, request: Request) -> impl Future<Output = Result<Response, Error>> + '_ {
        self.execute_request(RequestCow::Owned(request), Clock::start())
    }

    /// The request future: [`policy::execute`], which the batch calls too, with a borrowed
    /// request and a clock started when it was queued.
    pub(crate) fn execute_request<'a>(
        &'a self,
        request: RequestCow<'a>,
        clock: Clock,
    ) -> impl Future<Output = Result<Response, Error>> + 'a {
        policy::execute(&self.inner, request, clock)
    }
}

impl ClientBuilder {
    /// Builds the client.
    ///
    /// # Panics
    ///
    /// Panics if a setting was invalid (a user agent or default header with CR, LF or NUL),
    /// naming it. Use [`try_build`](Self::try_build) to get an error instead.
    pub fn build(self) -> Client {
        match self.try_build() {
            Ok(client) => client,
            Err(e) => panic!("{e}"),
        }
    }

    /// Builds the client, or says which setting was invalid.
    pub fn try_build(self) -> Result<Client, Error> {
        let config = self.into_config()?;
        Ok(Client {
            inner: Rc::new(ClientContext::new(config)?),
        })
    }
}

/// Builds a request step by step; [`send`](Self::send) sends it. An invalid URL or header
/// is reported by `send`, before anything goes on the wire.
#[derive(Debug)]
#[must_use = "a request does nothing until .send().await"]
pub struct RequestBuilder {
    client: Client,
    request: Result<Request, Error>,
}

impl RequestBuilder {
    /// Adds a header. A name or value that is not valid HTTP (including one with CR, LF or
    /// NUL) makes `send` fail with [`Kind::InvalidRequest`].
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        if let Ok(request) = &mut self.request {
            let name = HeaderName::try_from(name);
            let value = HeaderValue::try_from(value);
            match (name, value) {
                (Ok(name), Ok(value)) => {
                    request.headers.append(name, value);
                }
                (Err(_), _) => {
                    let e = Error::new(Kind::InvalidRequest("invalid header name".into()))
                        .with_url(&request.url);
                    self.request = Err(e);
                }
                (Ok(name), Err(_)) => {
                    let why = format!("invalid value for header {name}");
                    let e = Error::new(Kind::InvalidRequest(why)).with_url(&request.url);
                    self.request = Err(e);
                }
            }
        }
        self
    }

    /// Adds every header of `headers`.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        if let Ok(request) = &mut self.request {
            request.headers.extend(headers);
        }
        self
    }

    /// Sets the body: bytes (`Bytes`, `Vec<u8>`, `String`, `&'static str`), sent with
    /// `Content-Length`, or a streamed [`Body`] (from a reader, a channel or an `AsyncRead`),
    /// sent as it is produced. See [`Body`].
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        if let Ok(request) = &mut self.request {
            request.body = Some(body.into());
        }
        self
    }

    /// Sends `Authorization: Basic` with these credentials.
    pub fn basic_auth(self, user: &str, password: Option<&str>) -> Self {
        let mut url = Url::parse("http://h/").expect("static url parses");
        let _ = url.set_username(user);
        let _ = url.set_password(password);
        match basic_auth_from_url(&url) {
            Some(value) => self.header(AUTHORIZATION, value),
            None => self,
        }
    }

    /// The total timeout for this request, overriding the client's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let Ok(request) = &mut self.request {
            request.timeout = Some(timeout);
        }
        self
    }

    /// The request as built so far.
    pub fn build(self) -> Result<Request, Error> {
        self.request
    }

    /// Sends the request and waits for the final response head.
    pub async fn send(self) -> Result<Response, Error> {
        let request = self.request?;
        self.client
            .execute_request(RequestCow::Owned(request), Clock::start())
            .await
    }
}
