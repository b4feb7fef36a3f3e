//! [`Client`], its [`ClientBuilder`], and [`RequestBuilder`]: from a URL to a [`Response`].
//!
//! A request goes through short phases, one function each, read top-down in
//! [`Client::execute`]: merge headers; then per hop, [`Client::exchange`] checks out a pooled
//! connection or resolves and connects, writes the request, and reads the head; a redirect
//! starts the next hop.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, CONNECTION, LOCATION};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use url::Url;

use super::config::{ClientBuilder, Config};
#[cfg(feature = "tls")]
use super::conn::start_tls;
use super::conn::{connect, read_head, send_request, Deadlines, Sent};
use super::error::{Error, Kind, Phase};
use super::names::{resolve, DnsCache};
use super::pool::PoolHandle;
use super::proto::decode;
use super::proto::encode::{basic_auth_from_url, encode_head};
use super::proto::head::{framing, has_token};
use super::proxy::{open_tunnel, ProxyRoutes};
use super::redirect;
use super::response::{BodySource, Response};
use super::timings::Clock;

/// Bodies up to this size are sent in the same write as the head.
const JOIN_BODY_LIMIT: usize = 16 * 1024;

/// A body this small is read to the end when a redirect is followed, so its connection can be
/// reused; a larger one closes its connection.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// An HTTP/1.1 client: settings, a keep-alive pool and a DNS cache.
///
/// Cloning is cheap and shares the pool. A client belongs to the thread of the runtime it is
/// used on, like everything in volley; make one per runtime.
///
/// Timeouts are on by default, unlike reqwest's and hyper's: connect 10 s per address, 30 s
/// for any one read or write, and 300 s in total. Change them on the [`ClientBuilder`].
#[derive(Clone)]
pub struct Client {
    inner: Rc<ClientInner>,
}

struct ClientInner {
    config: Config,
    pool: PoolHandle,
    dns: RefCell<DnsCache>,
    /// The routing table made from the proxy settings (and the environment).
    proxies: ProxyRoutes,
    /// Made once from the settings and shared by every connection, so sessions resume.
    #[cfg(feature = "tls")]
    tls: crate::net::tls::TlsConnector,
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
        self.execute_request(Cow::Owned(request), Clock::start())
    }

    /// The request future, written as a plain function that returns an `async move` block: an
    /// `async fn` keeps each argument twice (the captured one and the local it moves into),
    /// and this future lives in every in-flight request. The block captures `hop` and works
    /// on it in place.
    pub(crate) fn execute_request<'a>(
        &'a self,
        request: Cow<'a, Request>,
        clock: Clock,
    ) -> impl Future<Output = Result<Response, Error>> + 'a {
        let config = &self.inner.config;
        // An owned request gives up its parts; a borrowed one (a batch keeps its requests, to
        // send one again if no descriptor was free) is copied as far as a redirect may change it.
        let (method, url, own_headers, body, timeout) = match request {
            Cow::Owned(r) => (r.method, r.url, Cow::Owned(r.headers), r.body, r.timeout),
            Cow::Borrowed(r) => (
                r.method.clone(),
                r.url.clone(),
                Cow::Borrowed(&r.headers),
                r.body.clone(),
                r.timeout,
            ),
        };
        let own_accept_encoding = own_headers.contains_key(ACCEPT_ENCODING);
        let mut hop = Hop {
            method,
            url,
            headers: merge_headers(&config.default_headers, own_headers),
            body,
            clock,
        };
        let codings = decode::for_request(config.decoding, own_accept_encoding, &mut hop.headers);
        async move {
            let hop = &mut hop;
            // The clocks start when the request is first polled.
            let deadlines = Deadlines::start(
                timeout.or(config.timeout),
                config.connect_timeout,
                config.read_timeout,
            );
            let mut followed = 0;
            loop {
                let response = self
                    .exchange(
                        &hop.method,
                        &hop.url,
                        &hop.headers,
                        hop.body.as_ref(),
                        &deadlines,
                        &mut hop.clock,
                    )
                    .await
                    .map_err(|e| self.inner.proxies.annotate(e, &hop.url))?;
                let status = response.status();
                let max = config.redirect.max();
                let location = response.headers().get(LOCATION);
                if !redirect::is_redirect(status) || location.is_none() || max == 0 {
                    return Ok(response.decoded(codings));
                }
                if followed >= max {
                    return Err(Error::new(Kind::TooManyRedirects(max)).with_url(&hop.url));
                }
                let next = location
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| hop.url.join(l).ok())
                    .ok_or_else(|| {
                        Error::new(Kind::InvalidResponse(
                            "redirect with an invalid location".into(),
                        ))
                        .with_url(&hop.url)
                    })?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(
                        Error::new(Kind::UnsupportedScheme(next.scheme().to_owned()))
                            .with_url(&next),
                    );
                }
                if !redirect::follow(
                    status,
                    &hop.url,
                    &next,
                    &mut hop.method,
                    hop.headers.to_mut(),
                ) {
                    hop.body = None;
                }
                // Boxed: the drain holds a whole response, and inlining it would make every
                // request's future that much larger for the rare redirect.
                Box::pin(response.discard(DRAIN_LIMIT)).await;
                hop.url = next;
                followed += 1;
            }
        }
    }

    /// One hop: a connection, the request written, the final head read. A reused connection
    /// that fails before any response byte is replaced by a fresh one, once, for idempotent
    /// methods: the server closed it while it sat idle.
    async fn exchange(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<&Bytes>,
        deadlines: &Deadlines,
        clock: &mut Clock,
    ) -> Result<Response, Error> {
        let config = &self.inner.config;
        // Decided first, so that an https:// URL refused below still names its proxy.
        let route = self.inner.proxies.route(url)?;
        let https = url.scheme() == "https";
        if url.scheme() != "http" && !(https && cfg!(feature = "tls")) {
            return Err(Error::new(Kind::UnsupportedScheme(url.scheme().to_owned())).with_url(url));
        }
        let mut head = Vec::with_capacity(256 + body.map_or(0, |b| b.len().min(JOIN_BODY_LIMIT)));
        let mut sent_headers = Cow::Borrowed(headers);
        if !headers.contains_key(AUTHORIZATION) {
            if let Some(value) = basic_auth_from_url(url) {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    sent_headers.to_mut().insert(AUTHORIZATION, value);
                }
            }
        }
        route.proxy_headers(&mut sent_headers);
        encode_head(
            &mut head,
            method,
            url,
            route.target_form(),
            &sent_headers,
            body.map(|b| b.len() as u64),
        )
        .map_err(|e| Error::new(Kind::InvalidRequest(e.to_string())).with_url(url))?;
        // A small body joins the head in one write; a large one follows it.
        let parts: [&[u8]; 2] = match body {
            Some(b) if b.len() <= JOIN_BODY_LIMIT => {
                head.extend_from_slice(b);
                [&head, &[]]
            }
            Some(b) => [&head, b],
            None => [&head, &[]],
        };
        let key = route.pool_key(url)?;
        let client_closes = has_token(headers, &CONNECTION, "close");
        let idempotent = is_idempotent(method);
        let mut fresh_only = false;
        loop {
            let pooled = match fresh_only {
                false => self.inner.pool.checkout(&key).await,
                true => None,
            };
            let reused = pooled.is_some();
            #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
            let mut conn = match pooled {
                Some(conn) => conn,
                None => {
                    let started = Instant::now();
                    let (addrs, looked_up) = deadlines
                        .run(
                            Phase::Resolve,
                            url,
                            resolve(config, &self.inner.dns, route.connect_url(url)),
                        )
                        .await?
                        .map_err(|e| e.with_url(url))?;
                    let resolved = Instant::now();
                    if looked_up {
                        clock.timings.dns += resolved - started;
                    }
                    let mut conn = connect(&addrs, deadlines, url).await?;
                    if let Some(proxy) = route.tunnel() {
                        // Boxed: rare, and it would add its size to every request's future.
                        let max_head = config.max_response_header_size;
                        Box::pin(open_tunnel(
                            &mut conn, proxy, url, headers, deadlines, max_head,
                        ))
                        .await?;
                    }
                    clock.timings.connect += resolved.elapsed();
                    conn
                }
            };
            #[cfg(feature = "tls")]
            if https && !reused {
                // Boxed: the handshake future holds a whole TLS session, and inlining it would
                // make every request's future, http:// ones too, that much larger.
                let tls = &mut clock.timings.tls;
                conn = Box::pin(start_tls(conn, &self.inner.tls, deadlines, url, tls)).await?;
            }
            clock.timings.reused = reused;
            let retry = reused && idempotent;
            let sent = match send_request(&mut conn, &parts, deadlines, url).await {
                Ok(sent) => sent,
                Err(_) if retry => {
                    fresh_only = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let head = match read_head(
                &mut conn,
                deadlines,
                url,
                config.max_response_header_size,
                clock,
            )
            .await
            {
                Ok(head) => head,
                Err(failure) if retry && failure.nothing_received => {
                    fresh_only = true;
                    continue;
                }
                Err(failure) => return Err(failure.error),
            };
            let mut plan = framing(method, &head)
                .map_err(|e| Error::new(Kind::InvalidResponse(e.to_string())).with_url(url))?;
            plan.reusable &= !client_closes && sent == Sent::Complete;
            let source = BodySource {
                conn,
                pool: self.inner.pool.clone(),
                key,
                deadlines: *deadlines,
                clock: *clock,
                max_body: config.max_body_size,
                max_head: config.max_response_header_size,
            };
            return Ok(Response::new(head, url.clone(), plan, source));
        }
    }
}

/// What a request carries from hop to hop while redirects are followed.
struct Hop<'a> {
    method: Method,
    url: Url,
    /// The client's default headers, borrowed while the request adds none of its own.
    headers: Cow<'a, HeaderMap>,
    body: Option<Bytes>,
    clock: Clock,
}

/// The client's default headers with the request's own on top: a request's header replaces
/// every default of that name. Borrows the defaults when the request has no headers.
fn merge_headers<'a>(defaults: &'a HeaderMap, own: Cow<'_, HeaderMap>) -> Cow<'a, HeaderMap> {
    if own.is_empty() {
        return Cow::Borrowed(defaults);
    }
    let mut headers = defaults.clone();
    for name in own.keys() {
        headers.remove(name);
    }
    match own {
        Cow::Owned(own) => headers.extend(own),
        Cow::Borrowed(own) => {
            for (name, value) in own {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    Cow::Owned(headers)
}

/// GET, HEAD, PUT, DELETE, OPTIONS and TRACE may be sent twice (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
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
        let mut config = self.into_config()?;
        let proxies = ProxyRoutes::new(
            &config.proxies,
            config.no_env_proxy,
            config.proxy_env.take(),
            config.proxy_tunnel,
        );
        #[cfg(feature = "tls")]
        let tls = super::tls::connector(&config.tls)?;
        Ok(Client {
            inner: Rc::new(ClientInner {
                pool: PoolHandle::new(config.pool_idle_timeout, config.pool_max_idle_per_host),
                dns: RefCell::new(DnsCache::default()),
                proxies,
                #[cfg(feature = "tls")]
                tls,
                config,
            }),
        })
    }
}

/// A request ready to send: method, URL, headers, optional body and timeout.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Bytes>,
    timeout: Option<Duration>,
}

impl Request {
    /// A request with no headers of its own and no body.
    pub fn new(method: Method, url: Url) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The request's own headers (the client's defaults are added when sent).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The body, if any.
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// The URL, taking the request apart.
    pub(crate) fn into_url(self) -> Url {
        self.url
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

    /// Sets the body, sent with `Content-Length`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
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
            .execute_request(Cow::Owned(request), Clock::start())
            .await
    }
}

/// Something that can be a request URL: `&str`, `String`, or a parsed `Url`. A string with
/// CR, LF or NUL in it is an [`Kind::InvalidUrl`], though the URL parser would accept it.
pub trait IntoUrl: sealed::Sealed {
    /// Parses into a URL, or says why not.
    fn into_url(self) -> Result<Url, Error>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
    impl Sealed for url::Url {}
    impl Sealed for &url::Url {}
}

impl IntoUrl for &str {
    fn into_url(self) -> Result<Url, Error> {
        // The URL parser would drop CR and LF silently and percent-encode NUL, sending another
        // request than the one asked for: refuse them instead.
        if self.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(Error::new(Kind::InvalidUrl(self.to_owned()))
                .with_source("the url contains CR, LF or NUL"));
        }
        Url::parse(self).map_err(|e| Error::new(Kind::InvalidUrl(self.to_owned())).with_source(e))
    }
}

impl IntoUrl for String {
    fn into_url(self) -> Result<Url, Error> {
        self.as_str().into_url()
    }
}

impl IntoUrl for &String {
    fn into_url(self) -> Result<Url, Error> {
        self.as_str().into_url()
    }
}

impl IntoUrl for Url {
    fn into_url(self) -> Result<Url, Error> {
        Ok(self)
    }
}

impl IntoUrl for &Url {
    fn into_url(self) -> Result<Url, Error> {
        Ok(self.clone())
    }
}
