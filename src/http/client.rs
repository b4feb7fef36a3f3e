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
#[cfg(any(feature = "json", feature = "cookies"))]
use url::Url;

use super::body::Body;
use super::config::{ClientBuilder, Config};
use super::context::ClientContext;
use super::error::{Error, Kind};
use super::policy;
use super::proto::encode::basic_auth_value;
use super::request::{IntoUrl, Request, RequestCow};
use super::response::Response;
use super::timings::Clock;

/// The shorthand request methods (`get`, `head`, `post`, `put`, `patch`, `delete`), each a
/// call of the type's own `request`; shared by [`Client`] and the threaded and blocking
/// clients, which differ only in what `send` does.
macro_rules! request_methods {
    () => {
        /// Starts a GET request.
        pub fn get(&self, url: impl $crate::IntoUrl) -> $crate::RequestBuilder<Self> {
            self.request(::http::Method::GET, url)
        }

        /// Starts a HEAD request.
        pub fn head(&self, url: impl $crate::IntoUrl) -> $crate::RequestBuilder<Self> {
            self.request(::http::Method::HEAD, url)
        }

        /// Starts a POST request.
        pub fn post(&self, url: impl $crate::IntoUrl) -> $crate::RequestBuilder<Self> {
            self.request(::http::Method::POST, url)
        }

        /// Starts a PUT request.
        pub fn put(&self, url: impl $crate::IntoUrl) -> $crate::RequestBuilder<Self> {
            self.request(::http::Method::PUT, url)
        }

        /// Starts a PATCH request.
        pub fn patch(&self, url: impl $crate::IntoUrl) -> $crate::RequestBuilder<Self> {
            self.request(::http::Method::PATCH, url)
        }

        /// Starts a DELETE request.
        pub fn delete(&self, url: impl $crate::IntoUrl) -> $crate::RequestBuilder<Self> {
            self.request(::http::Method::DELETE, url)
        }
    };
}
pub(crate) use request_methods;

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

    request_methods!();

    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, url)
    }

    /// Number of idle keep-alive connections in the pool.
    pub fn idle_connections(&self) -> usize {
        self.inner.pool.len()
    }

    /// The client's settings, as built.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The `Cookie` header the client would send to `url` from its cookie store (feature
    /// `cookies`): the matching cookies as `name=value` pairs joined by `; `, or `None` if
    /// none matches or the client has no store (see
    /// [`ClientBuilder::cookie_store`]). Like reqwest's `CookieStore::cookies`.
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let client = volley::Client::builder().cookie_store(true).build();
    /// client.get(server.url("/cookies/set?a=1")).send().await?;
    /// let url = volley::Url::parse(&server.url("/"))?;
    /// assert_eq!(client.cookies(&url).unwrap(), "a=1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cookies")]
    pub fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        self.inner.cookies.header_for(url)
    }

    /// Stores a cookie given as a `Set-Cookie` value (`name=value; Path=/; ...`), as if a
    /// response from `url` had set it, like reqwest's `Jar::add_cookie_str` (feature
    /// `cookies`). Returns whether it was stored: `false` if the client has no store (see
    /// [`ClientBuilder::cookie_store`]), or if the cookie does not parse or `url` may not
    /// set it.
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let client = volley::Client::builder().cookie_store(true).build();
    /// let url = volley::Url::parse(&server.url("/"))?;
    /// assert!(client.add_cookie_str("token=abc; Path=/", &url));
    /// let page = client.get(server.url("/cookies")).send().await?.text().await?;
    /// assert!(page.contains(r#""token": "abc""#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cookies")]
    pub fn add_cookie_str(&self, cookie: &str, url: &Url) -> bool {
        self.inner.cookies.add_str(cookie, url)
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

/// Builds a request step by step; `send` sends it. An invalid URL or header is reported by
/// `send`, before anything goes on the wire.
///
/// One builder for every client: `C` is the client that sends it, [`Client`] (whose `send` is
/// `async`, on volley's runtime), [`threaded::Client`](crate::threaded::Client) (`async`, on
/// any executor) or [`blocking::Client`](crate::blocking::Client) (a plain call). The
/// methods that shape the request are the same for all three.
#[derive(Debug)]
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder<C = Client> {
    pub(crate) client: C,
    pub(crate) request: Result<Request, Error>,
}

impl<C> RequestBuilder<C> {
    /// A builder for a `method` request to `url`, sent by `client`.
    pub(crate) fn new(client: C, method: Method, url: impl IntoUrl) -> RequestBuilder<C> {
        RequestBuilder {
            client,
            request: url.into_url().map(|url| Request::new(method, url)),
        }
    }

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

    /// Sends `Authorization: Basic` with these credentials, reqwest's signature: the user
    /// name and password are written as they display, joined by `:` (with nothing after it
    /// when `password` is `None`), and base64-encoded. The header is marked sensitive
    /// ([`HeaderValue::set_sensitive`]). It replaces the credentials of the URL's userinfo.
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let resp = volley::Client::new()
    ///     .get(server.url("/basic-auth/ann/s3cret"))
    ///     .basic_auth("ann", Some("s3cret"))
    ///     .send()
    ///     .await?;
    /// assert_eq!(resp.status(), 200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn basic_auth<U: fmt::Display, P: fmt::Display>(
        self,
        username: U,
        password: Option<P>,
    ) -> Self {
        let password = password.map(|p| p.to_string()).unwrap_or_default();
        self.header_sensitive(
            AUTHORIZATION,
            basic_auth_value(&username.to_string(), &password),
        )
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
}

impl RequestBuilder<Client> {
    /// Sends the request and waits for the final response head.
    pub async fn send(self) -> Result<Response, Error> {
        let request = self.request?;
        self.client
            .execute_request(RequestCow::Owned(request), Clock::start())
            .await
    }
}

/// reqwest's conveniences, by reqwest's names.
impl<C> RequestBuilder<C> {
    /// Sends `Authorization: Bearer {token}`, marked sensitive
    /// ([`HeaderValue::set_sensitive`]). A token that cannot be a header value (CR, LF, NUL)
    /// makes `send` fail with [`Kind::InvalidRequest`].
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let resp = volley::Client::new()
    ///     .get(server.url("/bearer"))
    ///     .bearer_auth("t0ken")
    ///     .send()
    ///     .await?;
    /// assert_eq!(resp.status(), 200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bearer_auth<T: fmt::Display>(self, token: T) -> Self {
        self.header_sensitive(AUTHORIZATION, format!("Bearer {token}"))
    }

    /// Adds a header whose value is marked sensitive, as [`header`](Self::header) does
    /// otherwise.
    fn header_sensitive(mut self, name: HeaderName, value: String) -> Self {
        if let Ok(request) = &mut self.request {
            match HeaderValue::try_from(value) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request.headers.append(name, value);
                }
                Err(_) => {
                    let why = format!("invalid value for header {name}");
                    let e = Error::new(Kind::InvalidRequest(why)).with_url(&request.url);
                    self.request = Err(e);
                }
            }
        }
        self
    }

    /// Appends `query`, serialized as `application/x-www-form-urlencoded` (serde_urlencoded),
    /// to the URL's query, after the pairs it already has (feature `json`). Anything that
    /// serializes to a sequence of pairs will do: a map, a struct, a slice of pairs. A value
    /// that cannot be serialized so (a nested map, say) makes `send` fail with
    /// [`Kind::InvalidRequest`], which says so. As in reqwest, an empty result leaves a URL
    /// without a query as it was (no trailing `?`).
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let request = volley::Client::new()
    ///     .get(server.url("/get?a=1"))
    ///     .query(&[("b", "2 3"), ("c", "&")])
    ///     .build()?;
    /// assert_eq!(request.url().query(), Some("a=1&b=2+3&c=%26"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn query<T: serde::Serialize + ?Sized>(mut self, query: &T) -> Self {
        if let Ok(request) = &mut self.request {
            let mut url = request.url.clone();
            let serialized = query
                .serialize(serde_urlencoded::Serializer::new(
                    &mut url.query_pairs_mut(),
                ))
                .map(drop);
            match serialized {
                Ok(()) => {
                    if url.query() == Some("") {
                        url.set_query(None);
                    }
                    request.url = url;
                }
                Err(e) => self.request = Err(serialize_error(&request.url, "query", e)),
            }
        }
        self
    }

    /// Sets the body to `form`, serialized as `application/x-www-form-urlencoded`
    /// (serde_urlencoded), and `Content-Type: application/x-www-form-urlencoded` unless the
    /// request has a `Content-Type` already (feature `json`). A value that cannot be
    /// serialized so makes `send` fail with [`Kind::InvalidRequest`].
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let echo: serde_json::Value = volley::Client::new()
    ///     .post(server.url("/post"))
    ///     .form(&[("name", "Ann Lee"), ("lang", "fr")])
    ///     .send()
    ///     .await?
    ///     .json()
    ///     .await?;
    /// assert_eq!(echo["form"]["name"], "Ann Lee");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn form<T: serde::Serialize + ?Sized>(self, form: &T) -> Self {
        let body = serde_urlencoded::to_string(form).map_err(|e| ("form body", e.to_string()));
        self.serialized_body(body, "application/x-www-form-urlencoded")
    }

    /// Sets the body to `json`, serialized with serde_json, and `Content-Type:
    /// application/json` unless the request has a `Content-Type` already (feature `json`). A
    /// value that cannot be serialized (a map with keys that are not strings, say) makes
    /// `send` fail with [`Kind::InvalidRequest`].
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let echo: serde_json::Value = volley::Client::new()
    ///     .post(server.url("/post"))
    ///     .json(&serde_json::json!({ "id": 7, "tags": ["a", "b"] }))
    ///     .send()
    ///     .await?
    ///     .json()
    ///     .await?;
    /// assert_eq!(echo["json"]["id"], 7);
    /// assert_eq!(echo["headers"]["Content-Type"], "application/json");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(self, json: &T) -> Self {
        let body = serde_json::to_vec(json).map_err(|e| ("JSON body", e.to_string()));
        self.serialized_body(body, "application/json")
    }

    /// Sets a serialized body and its `Content-Type` (unless the request has one), or
    /// defers the serializer's error (`what` failed, and why) to `send`.
    #[cfg(feature = "json")]
    fn serialized_body(
        mut self,
        body: Result<impl Into<bytes::Bytes>, (&str, String)>,
        content_type: &'static str,
    ) -> Self {
        let Ok(request) = &mut self.request else {
            return self;
        };
        match body {
            Ok(body) => {
                request
                    .headers
                    .entry(http::header::CONTENT_TYPE)
                    .or_insert(HeaderValue::from_static(content_type));
                self.body(body.into())
            }
            Err((what, e)) => {
                self.request = Err(serialize_error(&request.url, what, e));
                self
            }
        }
    }
}

/// The error of a request part that could not be serialized: says which, and why.
#[cfg(feature = "json")]
fn serialize_error(url: &Url, what: &str, e: impl fmt::Display) -> Error {
    Error::new(Kind::InvalidRequest(format!(
        "cannot serialize the {what}: {e}"
    )))
    .with_url(url)
}
