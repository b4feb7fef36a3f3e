//! [`Config`], every setting of a [`Client`](crate::Client) in one struct, and
//! [`ClientBuilder`], the one builder that sets them (ureq's `config.rs` is the model).
//!
//! Nothing here does I/O or knows the client: the modules that use a setting read it from
//! the `Config` (`names.rs`, `exchange.rs`, `policy.rs`) or are given the values they need
//! when the client is built (`pool.rs`, `proxy.rs`, `tls.rs`). Turning a builder into a
//! client is `ClientBuilder::build`, in `client.rs`, so that this module stays below the
//! client and imports nothing above it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use http::header::{ACCEPT, USER_AGENT};
use http::{HeaderMap, HeaderValue};

use super::error::{Error, Kind};
use super::proto::decode::{self, Codings};
use super::proxy::{EnvLookup, Proxy};
use super::redirect::Policy;
#[cfg(feature = "tls")]
use super::tls::Certificate;
use crate::dns::resolve::Resolve;
use crate::dns::resolver::Resolver;
#[cfg(feature = "tls")]
use crate::net::tls::TlsConfig;

/// The settings of a [`Client`](crate::Client), as its [`ClientBuilder`] left them; read
/// them with [`Client::config`](crate::Client::config).
///
/// The defaults and the client's fixed limits are associated consts of this type, the one
/// that holds the values they describe: one page lists every setting with its default.
///
/// ```
/// use std::time::Duration;
/// use volley::{Client, Config};
///
/// let client = Client::builder().timeout(Duration::from_secs(5)).build();
/// assert_eq!(client.config().timeout(), Some(Duration::from_secs(5)));
/// assert_eq!(client.config().max_response_header_size(), Config::DEFAULT_MAX_HEAD);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) redirect: Policy,
    pub(crate) max_response_header_size: usize,
    pub(crate) max_body_size: Option<u64>,
    pub(crate) pool_idle_timeout: Option<Duration>,
    pub(crate) pool_max_idle_per_host: usize,
    /// Sent with every request unless the request sets the same header.
    pub(crate) default_headers: HeaderMap,
    /// Addresses given with `resolve`, by lowercased host: used instead of the resolver.
    pub(crate) fixed_addrs: HashMap<String, Vec<SocketAddr>>,
    /// Asked for every other name (`dns_resolver`; the native resolver by default).
    pub(crate) resolver: Resolver,
    /// Proxies given to the builder, in order; the first that applies is used.
    pub(crate) proxies: Vec<Proxy>,
    /// `no_proxy()` was called: the environment's proxies are not read either.
    pub(crate) no_env_proxy: bool,
    /// Reads the proxy variables (`proxy_env`); `None`: the process environment. Taken
    /// when the client is built, which reads the environment once.
    pub(crate) proxy_env: Option<EnvLookup>,
    /// `proxy_tunnel(true)`: `http://` URLs through a proxy go through `CONNECT` too.
    pub(crate) proxy_tunnel: bool,
    /// The content codings asked for with `Accept-Encoding` and decoded (none once built if
    /// the default headers have the user's own `Accept-Encoding`); see `proto/decode.rs`.
    pub(crate) decoding: Codings,
    /// `cookie_store(true)`: the client keeps a cookie store (feature `cookies`).
    #[cfg(feature = "cookies")]
    pub(crate) cookie_store: bool,
    /// The TLS settings, made into the client's one connector when it is built.
    #[cfg(feature = "tls")]
    pub(crate) tls: TlsConfig,
}

impl Config {
    /// The default `connect_timeout`: per address tried.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default `read_timeout`: the longest wait for any one read or write.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default total `timeout`, from sending the request to the end of its body.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    /// The default `max_response_header_size`.
    pub const DEFAULT_MAX_HEAD: usize = 64 * 1024;
    /// The default `pool_idle_timeout`.
    pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
    /// How long a resolved name is reused, for a resolver that does not cache answers itself
    /// ([`Resolve::caches_answers`]).
    pub const DNS_TTL: Duration = Duration::from_secs(30);
    /// The most names the client's cache of resolved names holds.
    pub const DNS_CACHE_ENTRIES: usize = 1024;

    /// The defaults.
    fn new() -> Config {
        let mut default_headers = HeaderMap::new();
        default_headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("volley/", env!("CARGO_PKG_VERSION"))),
        );
        default_headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        Config {
            connect_timeout: Some(Config::DEFAULT_CONNECT_TIMEOUT),
            timeout: Some(Config::DEFAULT_TIMEOUT),
            read_timeout: Some(Config::DEFAULT_READ_TIMEOUT),
            redirect: Policy::default(),
            max_response_header_size: Config::DEFAULT_MAX_HEAD,
            max_body_size: None,
            pool_idle_timeout: Some(Config::DEFAULT_POOL_IDLE_TIMEOUT),
            pool_max_idle_per_host: usize::MAX,
            default_headers,
            fixed_addrs: HashMap::new(),
            resolver: Resolver::default(),
            proxies: Vec::new(),
            no_env_proxy: false,
            proxy_env: None,
            proxy_tunnel: false,
            decoding: Codings::compiled(),
            #[cfg(feature = "cookies")]
            cookie_store: false,
            #[cfg(feature = "tls")]
            tls: TlsConfig::new(),
        }
    }

    /// The longest a TCP connect to one address may take
    /// ([`ClientBuilder::connect_timeout`]).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The longest a whole request may take ([`ClientBuilder::timeout`]).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The longest wait for any one read or write ([`ClientBuilder::read_timeout`]).
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// The redirect policy ([`ClientBuilder::redirect`]).
    pub fn redirect(&self) -> Policy {
        self.redirect
    }

    /// The largest response head accepted, in bytes
    /// ([`ClientBuilder::max_response_header_size`]).
    pub fn max_response_header_size(&self) -> usize {
        self.max_response_header_size
    }

    /// The largest response body accepted, in bytes ([`ClientBuilder::max_body_size`]).
    pub fn max_body_size(&self) -> Option<u64> {
        self.max_body_size
    }

    /// How long an idle keep-alive connection is kept ([`ClientBuilder::pool_idle_timeout`]).
    pub fn pool_idle_timeout(&self) -> Option<Duration> {
        self.pool_idle_timeout
    }

    /// The most idle connections kept per host ([`ClientBuilder::pool_max_idle_per_host`]).
    pub fn pool_max_idle_per_host(&self) -> usize {
        self.pool_max_idle_per_host
    }

    /// The headers sent with every request unless it sets the same name: `User-Agent`,
    /// `Accept`, the `Accept-Encoding` of the codings the client decodes, and those given to
    /// [`ClientBuilder::default_headers`].
    pub fn default_headers(&self) -> &HeaderMap {
        &self.default_headers
    }

    /// Whether the client keeps a cookie store ([`ClientBuilder::cookie_store`]; feature
    /// `cookies`).
    #[cfg(feature = "cookies")]
    pub fn cookie_store(&self) -> bool {
        self.cookie_store
    }
}

/// Configures a [`Client`](crate::Client). Every setting has a default; see each method.
#[derive(Debug)]
#[must_use = "call .build() to get the client"]
pub struct ClientBuilder {
    config: Config,
    /// The first invalid setting, reported by `build`.
    error: Option<String>,
}

impl ClientBuilder {
    /// A builder with the default settings; see [`Client::builder`](crate::Client::builder).
    pub(crate) fn new() -> ClientBuilder {
        ClientBuilder {
            config: Config::new(),
            error: None,
        }
    }

    /// The settings, or the first invalid one; with the `Accept-Encoding` of the codings to
    /// decode added to the default headers (unless they have the user's own).
    pub(crate) fn into_config(self) -> Result<Config, Error> {
        if let Some(why) = self.error {
            return Err(Error::new(Kind::InvalidRequest(why)));
        }
        let mut config = self.config;
        config.decoding = decode::advertise(&mut config.default_headers, config.decoding);
        Ok(config)
    }

    /// The longest a TCP connect to one address may take (default 10 s; `None`: no limit).
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.connect_timeout = timeout.into();
        self
    }

    /// The longest a whole request may take, from sending it to the end of the response body
    /// (default 300 s; `None`: no limit).
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.timeout = timeout.into();
        self
    }

    /// The longest wait for any one read or write (default 30 s; `None`: no limit).
    pub fn read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.read_timeout = timeout.into();
        self
    }

    /// The redirect policy (default: follow up to 10).
    pub fn redirect(mut self, policy: Policy) -> Self {
        self.config.redirect = policy;
        self
    }

    /// The largest response head accepted, in bytes (default 64 KiB).
    pub fn max_response_header_size(mut self, bytes: usize) -> Self {
        self.config.max_response_header_size = bytes;
        self
    }

    /// The largest response body accepted, in bytes (default: no limit).
    pub fn max_body_size(mut self, bytes: impl Into<Option<u64>>) -> Self {
        self.config.max_body_size = bytes.into();
        self
    }

    /// How long an idle keep-alive connection is kept (default 90 s; `None`: forever).
    pub fn pool_idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.pool_idle_timeout = timeout.into();
        self
    }

    /// The most idle connections kept per host (default: no limit; 0 disables keep-alive
    /// reuse).
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.config.pool_max_idle_per_host = max;
        self
    }

    /// The `User-Agent` header (default `volley/<version>`).
    pub fn user_agent(mut self, value: &str) -> Self {
        match HeaderValue::from_str(value) {
            Ok(v) => {
                self.config.default_headers.insert(USER_AGENT, v);
            }
            Err(_) => self.error = Some(format!("invalid user agent {value:?}")),
        }
        self
    }

    /// Sends requests for `host` to `addr` (its port is replaced by the URL's), like curl's
    /// `--resolve`. Repeat to give several addresses: they are raced by Happy Eyeballs
    /// (RFC 8305), IPv6 first, alternating families, each family in the order given.
    pub fn resolve(mut self, host: &str, addr: SocketAddr) -> Self {
        self.config
            .fixed_addrs
            .entry(host.to_ascii_lowercase())
            .or_default()
            .push(addr);
        self
    }

    /// Resolves names with `resolver` instead of the default, a
    /// [`NativeResolver`](crate::NativeResolver) configured from the system's files
    /// ([`Resolver::native`]). [`Resolver::system`] is `getaddrinfo` on a helper thread, for
    /// set-ups that need NSS; any [`Resolve`] implementation works.
    pub fn dns_resolver(mut self, resolver: impl Resolve + 'static) -> Self {
        self.config.resolver = Resolver::custom(resolver);
        self
    }

    /// Headers sent with every request, unless a request sets the same name. They replace
    /// the defaults of the same name (`user-agent`, `accept: */*`). An `accept-encoding`
    /// among them replaces the client's and turns automatic decoding off (see
    /// [Compressed bodies](crate::Response#compressed-bodies)).
    pub fn default_headers(mut self, headers: HeaderMap) -> Self {
        for name in headers.keys() {
            self.config.default_headers.remove(name);
        }
        self.config.default_headers.extend(headers);
        self
    }
}

/// Cookies (feature `cookies`).
#[cfg(feature = "cookies")]
impl ClientBuilder {
    /// Whether the client keeps a cookie store (default `false`), as reqwest's
    /// `cookie_store`. The store is the client's, shared by its clones, and starts empty:
    /// every response's `Set-Cookie` fields are stored, each hop of a redirect chain
    /// included, and every request (each hop too) sends the cookies that match its URL
    /// (RFC 6265's domain, path, expiry and `Secure` rules, by the `cookie_store` crate) in
    /// a `Cookie` header. A request that sets its own `Cookie` header, or a client whose
    /// [`default_headers`](Self::default_headers) has one, sends that one instead, and then
    /// no stored cookie on any of its hops. No public-suffix list is loaded (as in reqwest),
    /// so a server may set a cookie for a whole top-level domain such as `Domain=com`.
    /// [`Client::cookies`](crate::Client::cookies) reads the store, and
    /// [`Client::add_cookie_str`](crate::Client::add_cookie_str) adds to it.
    ///
    /// ```
    /// # volley::Runtime::new()?.block_on(async {
    /// # let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    /// let client = volley::Client::builder().cookie_store(true).build();
    /// // Sets the cookie, then redirects to /cookies, which shows the Cookie header it got.
    /// let page = client.get(server.url("/cookies/set?session=42")).send().await?;
    /// assert!(page.text().await?.contains(r#""session": "42""#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cookie_store(mut self, enable: bool) -> Self {
        self.config.cookie_store = enable;
        self
    }
}

/// The content codings, one switch each (reqwest's names). A coding switched off is neither
/// listed in `Accept-Encoding` nor decoded if a server sends it anyway. An `Accept-Encoding`
/// of your own, in [`default_headers`](ClientBuilder::default_headers) or on a request, is
/// sent instead, and then no body is decoded. See
/// [Compressed bodies](crate::Response#compressed-bodies).
impl ClientBuilder {
    /// Whether to ask for `gzip` bodies and decode them, `x-gzip` too (default: on; feature
    /// `gzip`).
    #[cfg(feature = "gzip")]
    pub fn gzip(mut self, enable: bool) -> Self {
        self.config.decoding.set(decode::Coding::Gzip, enable);
        self
    }

    /// Whether to ask for `deflate` bodies and decode them, zlib-wrapped or raw (default:
    /// on; feature `deflate`).
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, enable: bool) -> Self {
        self.config.decoding.set(decode::Coding::Deflate, enable);
        self
    }

    /// Whether to ask for `br` bodies and decode them (default: on; feature `brotli`).
    #[cfg(feature = "brotli")]
    pub fn brotli(mut self, enable: bool) -> Self {
        self.config.decoding.set(decode::Coding::Brotli, enable);
        self
    }

    /// Whether to ask for `zstd` bodies and decode them (default: on; feature `zstd`).
    /// Windows over 8 MiB are refused, as RFC 9659 allows.
    #[cfg(feature = "zstd")]
    pub fn zstd(mut self, enable: bool) -> Self {
        self.config.decoding.set(decode::Coding::Zstd, enable);
        self
    }
}

/// Proxies: see [`Proxy`] for how requests go through one, and for the environment
/// variables read when none is given.
impl ClientBuilder {
    /// Sends requests through `proxy` (see [`Proxy`]). Call it again to add more: the first
    /// whose scheme matches and whose [`no_proxy`](Proxy::no_proxy) list does not exclude
    /// the host is used, and a request none applies to goes direct. Giving any proxy turns
    /// off the environment's (`HTTP_PROXY` and friends).
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.config.proxies.push(proxy);
        self
    }

    /// No proxy at all: forgets the proxies given so far and does not read `HTTP_PROXY` and
    /// friends from the environment.
    pub fn no_proxy(mut self) -> Self {
        self.config.proxies.clear();
        self.config.no_env_proxy = true;
        self
    }

    /// Sends `http://` URLs that go through a proxy through a `CONNECT` tunnel too, like
    /// curl's `--proxytunnel`, instead of asking the proxy for them in absolute form (default
    /// `false`). `https://` URLs always use a tunnel.
    pub fn proxy_tunnel(mut self, tunnel: bool) -> Self {
        self.config.proxy_tunnel = tunnel;
        self
    }

    /// Reads the proxy variables (`http_proxy`, `NO_PROXY`, `REQUEST_METHOD`, ...; see
    /// [`Proxy`]) through `lookup` instead of from the process environment, when the client
    /// is built. For tests, or settings kept elsewhere. `lookup` returns `None` for a
    /// variable that is not set.
    pub fn proxy_env(mut self, lookup: impl Fn(&str) -> Option<String> + 'static) -> Self {
        self.config.proxy_env = Some(EnvLookup::new(lookup));
        self
    }
}

/// The TLS settings of `https://` requests (feature `tls`, on by default). The client trusts
/// Mozilla's root certificates (built in, from `webpki-roots`), offers ALPN `http/1.1`, and
/// speaks TLS 1.2 and 1.3 through rustls with its *ring* provider.
#[cfg(feature = "tls")]
impl ClientBuilder {
    /// Trusts one more root certificate, such as a private CA (repeat for more). Checked when
    /// the client is built: [`try_build`](Self::try_build) fails with [`Kind::Tls`] if it is
    /// not a usable certificate.
    pub fn add_root_certificate(mut self, cert: Certificate) -> Self {
        self.config.tls = self
            .config
            .tls
            .add_root_certificate_der(cert.as_der().to_vec());
        self
    }

    /// Whether to trust Mozilla's root certificates, built in (default `true`). Turn off to
    /// trust only the certificates added with [`add_root_certificate`](Self::add_root_certificate)
    /// (a client with no root at all fails to build).
    pub fn tls_built_in_roots(mut self, enabled: bool) -> Self {
        self.config.tls = self.config.tls.built_in_roots(enabled);
        self
    }

    /// Whether to trust the platform's root certificates too (default `false`; feature
    /// `native-roots`). They are loaded when the client is built.
    #[cfg(feature = "native-roots")]
    pub fn tls_native_roots(mut self, enabled: bool) -> Self {
        self.config.tls = self.config.tls.native_roots(enabled);
        self
    }

    /// **Dangerous.** Accepts any server certificate: expired, self-signed, issued for another
    /// name or by an unknown CA (default `false`). Anyone on the path can then read and change
    /// the traffic, credentials included. For tests against throwaway certificates only.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.config.tls = self.config.tls.danger_accept_invalid_certs(accept);
        self
    }
}
