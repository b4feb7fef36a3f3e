//! [`Error`]: what failed, where, and why, for every request.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use url::Url;

/// The error of an HTTP request: what failed, for which URL, and why.
///
/// Three ways to show it, following the Rust API guidelines (C-GOOD-ERR):
///
/// - `{}` (`to_string()`) is this error's own message, one lowercase line that names what
///   failed, the URL, the proxy, the phase and the setting or limit involved, but never the
///   text of the cause:
///
///   ```text
///   connection failed to http://127.0.0.1:9/
///   timeout reading response head from http://127.0.0.1:8090/stall-head after 1s
///   ```
///
/// - [`source`](StdError::source) is the cause, where there is one (the I/O error, the
///   parse error, the rustls error), and so on down the chain. Error reporters such as
///   `anyhow` and `eyre` walk it, so the cause is printed once, by them.
///
/// - `{:#}` is the one line for a CLI or a log: the message, then every cause along the
///   `source` chain, each after `": "`. A cause whose text is already in the one before it
///   is left out, so nothing is said twice:
///
///   ```text
///   connection failed to http://127.0.0.1:9/: address 127.0.0.1:9: Connection refused (os error 111)
///   ```
///
/// ```
/// let e = volley::Client::new().get("not a url").build().unwrap_err();
/// assert_eq!(e.to_string(), r#"invalid url "not a url""#);
/// assert_eq!(format!("{e:#}"), r#"invalid url "not a url": relative URL without a base"#);
/// let cause = std::error::Error::source(&e).unwrap();
/// assert_eq!(cause.to_string(), "relative URL without a base");
/// ```
///
/// [`kind`](Error::kind) tells the cases apart, and [`phase`](Error::phase) says where the
/// request was.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    url: Option<Url>,
    /// The proxy the request went through (`http://host:port`, no credentials), if any.
    proxy: Option<String>,
    /// Where the request was, for the kinds that do not carry it themselves
    /// ([`Kind::InvalidResponse`], [`Kind::TooLarge`]); see [`Error::phase`].
    phase: Option<Phase>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// The URL could not be parsed; the string is the input.
    InvalidUrl(String),
    /// The URL's scheme is not one this client speaks.
    UnsupportedScheme(String),
    /// The request itself is invalid (a header with CR, LF or NUL, a bad method); says why.
    InvalidRequest(String),
    /// The host name could not be resolved.
    Dns,
    /// No connection could be made to any of the host's addresses.
    Connect,
    /// A deadline passed in this phase.
    Timeout {
        /// Where the request was when the deadline passed.
        phase: Phase,
        /// The setting that ran out.
        after: Duration,
    },
    /// The connection failed in this phase.
    Io(Phase),
    /// The response broke HTTP/1.1; says how.
    InvalidResponse(String),
    /// The body is not valid in its content coding (a corrupt or truncated gzip, deflate,
    /// brotli or zstd stream); says which coding and what is wrong, such as
    /// `invalid gzip body: CRC-32 mismatch`. Only for bodies the client decodes itself. Also
    /// a body that [`Response::json`](crate::Response) could not parse: then it says
    /// `invalid JSON`, and the `serde_json::Error` is the [`source`](StdError::source).
    Decode(String),
    /// The response exceeded a configured size limit.
    TooLarge {
        /// What was too large.
        what: Limit,
        /// The limit, in bytes.
        limit: u64,
    },
    /// More redirects than the policy allows.
    TooManyRedirects(usize),
    /// [`Response::error_for_status`](crate::Response::error_for_status) on a 4xx or 5xx.
    Status(http::StatusCode),
    /// A proxy setting is unusable (not an `http://` proxy, no host, not a URL); says why.
    /// From [`Proxy::http`](crate::Proxy::http) and friends, or, for a proxy taken from an
    /// environment variable, from each request that would use it.
    InvalidProxy(String),
    /// The proxy answered the `CONNECT` that opens a tunnel with 407 Proxy Authentication
    /// Required: credentials are missing or wrong. (Through a forward proxy, a 407 is an
    /// ordinary response instead.)
    ProxyAuth,
    /// The proxy answered the `CONNECT` that opens a tunnel with this status, neither 2xx
    /// nor 407.
    ProxyTunnel(http::StatusCode),
    /// The server's TLS certificate was refused; says why. The [`rustls::Error`] is the
    /// [`source`](StdError::source). (Feature `tls`.)
    ///
    /// [`rustls::Error`]: https://docs.rs/rustls/latest/rustls/enum.Error.html
    Certificate(CertReason),
    /// The TLS handshake failed for a reason other than the certificate: an alert from the
    /// server, no protocol version or cipher suite in common, a malformed message, a host
    /// that is not a valid TLS server name, or a TLS setting of the client that cannot work
    /// (from [`ClientBuilder::try_build`](crate::ClientBuilder::try_build)); says which. The
    /// rustls error, if any, is the [`source`](StdError::source). A close or reset during the
    /// handshake is [`Kind::Io`] of [`Phase::Tls`], and a timeout a [`Kind::Timeout`] of it.
    Tls(String),
    /// The volley loop that was to run the request, for a [`threaded`](crate::threaded) or
    /// [`blocking`](crate::blocking) client, is gone or could not start; says why (a panic
    /// on the loop thread, a thread or runtime that could not be made).
    Runtime(String),
    /// The request's streamed [`Body`](crate::Body) could not be sent whole; says why. The
    /// connection is closed, so the server never takes part of a body for all of it.
    RequestBody(BodyFailure),
    /// A batch gave up on the request because its host asked for a longer pause than the
    /// batch's `max_retry_after` allows: the server answered `status` (429 or 503) with a
    /// `Retry-After` of `wait`. See [`Batch::max_retry_after`](crate::batch::Batch).
    RateLimited {
        /// The status that asked for the pause.
        status: http::StatusCode,
        /// The pause the server asked for (what is left of it, for a request that was
        /// waiting behind it).
        wait: Duration,
        /// The longest pause the batch waits out.
        max: Duration,
    },
    /// A batch did not fetch the request because an earlier request of the same batch was
    /// the same (method, URL and headers); see
    /// [`Batch::duplicates`](crate::batch::Batch::duplicates).
    Duplicate,
    /// A batch that obeys robots.txt ([`Batch::robots`](crate::batch::Batch::robots)) did
    /// not fetch the URL: its origin's robots.txt disallows it.
    DisallowedByRobots,
    /// A batch that obeys robots.txt did not fetch the URL: its origin's robots.txt could
    /// not be had (a 5xx, a 429, no answer), so the origin is deferred (RFC 9309 §2.3.1.4);
    /// says why.
    RobotsUnreachable(String),
}

impl Kind {
    /// A short, stable snake_case name of the kind, for logs and machine-readable output:
    /// `invalid_url`, `unsupported_scheme`, `invalid_request`, `dns`, `connect`, `timeout`,
    /// `io`, `invalid_response`, `decode`, `too_large`, `too_many_redirects`, `status`,
    /// `invalid_proxy`, `proxy_auth`, `proxy_tunnel`, `certificate`, `tls`, `runtime`,
    /// `request_body`, `rate_limited`, `duplicate`, `disallowed_by_robots`,
    /// `robots_unreachable`.
    ///
    /// ```
    /// use volley::batch::IntoRequest;
    ///
    /// assert_eq!(volley::ErrorKind::Dns.name(), "dns");
    /// let e = "not a url".into_request().unwrap_err();
    /// assert_eq!(e.kind().name(), "invalid_url");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Kind::InvalidUrl(_) => "invalid_url",
            Kind::UnsupportedScheme(_) => "unsupported_scheme",
            Kind::InvalidRequest(_) => "invalid_request",
            Kind::Dns => "dns",
            Kind::Connect => "connect",
            Kind::Timeout { .. } => "timeout",
            Kind::Io(_) => "io",
            Kind::InvalidResponse(_) => "invalid_response",
            Kind::Decode(_) => "decode",
            Kind::TooLarge { .. } => "too_large",
            Kind::TooManyRedirects(_) => "too_many_redirects",
            Kind::Status(_) => "status",
            Kind::InvalidProxy(_) => "invalid_proxy",
            Kind::ProxyAuth => "proxy_auth",
            Kind::ProxyTunnel(_) => "proxy_tunnel",
            Kind::Certificate(_) => "certificate",
            Kind::Tls(_) => "tls",
            Kind::Runtime(_) => "runtime",
            Kind::RequestBody(_) => "request_body",
            Kind::RateLimited { .. } => "rate_limited",
            Kind::Duplicate => "duplicate",
            Kind::DisallowedByRobots => "disallowed_by_robots",
            Kind::RobotsUnreachable(_) => "robots_unreachable",
        }
    }
}

/// Why a streamed request body could not be sent, in [`Kind::RequestBody`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyFailure {
    /// Its [`BodySender`](crate::BodySender) called `abort`, or was dropped before `finish`.
    Aborted,
    /// Its source gave another length than the one declared (`sized_reader`, or the
    /// request's `Content-Length` header).
    LengthMismatch {
        /// The length declared.
        declared: u64,
        /// The bytes the source gave: all of them if fewer, or as far as the first piece past
        /// the declared length if more.
        given: u64,
    },
    /// Reading its source failed; the `io::Error` is the [`source`](StdError::source).
    Read,
}

/// Why a server's certificate was refused, in [`Kind::Certificate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertReason {
    /// It, or one in its chain, has expired.
    Expired,
    /// It, or one in its chain, is not valid yet (or the clock is off).
    NotYetValid,
    /// The chain does not lead to a trusted root: self-signed, a private CA that was not
    /// added with [`ClientBuilder::add_root_certificate`](crate::ClientBuilder), or a
    /// missing intermediate.
    UnknownIssuer,
    /// It is valid, but not for the URL's host name or IP address.
    WrongName,
    /// Refused for another reason: revoked, badly signed, malformed, not for TLS servers, or
    /// absent.
    Invalid,
}

impl fmt::Display for CertReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertReason::Expired => "expired",
            CertReason::NotYetValid => "not yet valid",
            CertReason::UnknownIssuer => "unknown issuer",
            CertReason::WrongName => "wrong name",
            CertReason::Invalid => "invalid",
        })
    }
}

/// The phases of a request, for timeouts and I/O errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Resolving the host name.
    Resolve,
    /// Opening the TCP connection (and a proxy's tunnel).
    Connect,
    /// The TLS handshake of an `https://` connection, after connecting. It runs under the
    /// connect timeout, on its own clock.
    Tls,
    /// Writing the request head and body.
    Send,
    /// Waiting for and reading the response head.
    ReadHead,
    /// Reading the response body.
    ReadBody,
    /// Waiting in a batch's queue for an admission slot.
    Queue,
}

/// The size limits a response can exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// The status line and headers (`max_response_header_size`).
    Head,
    /// The body (`max_body_size`).
    Body,
}

impl Phase {
    /// The phase as words that read before "from URL".
    fn doing(self) -> &'static str {
        match self {
            Phase::Resolve => "resolving host for",
            Phase::Connect => "connecting to",
            Phase::Tls => "in the TLS handshake with",
            Phase::Send => "sending request to",
            Phase::ReadHead => "reading response head from",
            Phase::ReadBody => "reading response body from",
            Phase::Queue => "waiting in the queue for",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "TLS handshake",
            Phase::Send => "send",
            Phase::ReadHead => "read head",
            Phase::ReadBody => "read body",
            Phase::Queue => "queue",
        })
    }
}

impl Error {
    /// The error of a failed TLS handshake: a certificate refused, another TLS failure, or
    /// an I/O error in [`Phase::Tls`]. The rustls error, if any, becomes the source.
    #[cfg(feature = "tls")]
    pub(crate) fn from_tls(e: std::io::Error, url: &Url) -> Error {
        use crate::net::tls::TlsErrorKind as T;
        let kind = match T::of(&e) {
            None => {
                return Error::new(Kind::Io(Phase::Tls))
                    .with_url(url)
                    .with_source(e)
            }
            Some(T::CertExpired) => Kind::Certificate(CertReason::Expired),
            Some(T::CertNotYetValid) => Kind::Certificate(CertReason::NotYetValid),
            Some(T::UnknownIssuer) => Kind::Certificate(CertReason::UnknownIssuer),
            Some(T::WrongName) => Kind::Certificate(CertReason::WrongName),
            Some(T::InvalidCert) => Kind::Certificate(CertReason::Invalid),
            Some(other) => Kind::Tls(other.to_string()),
        };
        let error = Error::new(kind).with_url(url);
        match e.into_inner() {
            Some(rustls) => error.with_source(rustls),
            None => error,
        }
    }

    pub(crate) fn new(kind: Kind) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                url: None,
                proxy: None,
                phase: None,
                source: None,
            }),
        }
    }

    /// A copy for a request that shared this one's attempt: the same kind, URL, proxy and
    /// phase, and the cause's text as its cause.
    pub(crate) fn shared_copy(&self) -> Error {
        let mut copy = Error::new(self.inner.kind.clone());
        copy.inner.url = self.inner.url.clone();
        copy.inner.proxy = self.inner.proxy.clone();
        copy.inner.phase = self.inner.phase;
        if let Some(source) = &self.inner.source {
            copy.inner.source = Some(source.to_string().into());
        }
        copy
    }

    pub(crate) fn with_url(mut self, url: &Url) -> Error {
        self.inner.url = Some(url.clone());
        self
    }

    /// Names the proxy the request went through (`http://host:port`, no credentials).
    pub(crate) fn with_proxy(mut self, proxy: &str) -> Error {
        self.inner.proxy = Some(proxy.to_owned());
        self
    }

    /// Records the phase the request was in, for the kinds that do not carry one
    /// ([`Kind::InvalidResponse`], [`Kind::TooLarge`]).
    pub(crate) fn with_phase(mut self, phase: Phase) -> Error {
        self.inner.phase = Some(phase);
        self
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Error {
        self.inner.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> &Kind {
        &self.inner.kind
    }

    /// The URL of the request that failed, when known.
    pub fn url(&self) -> Option<&Url> {
        self.inner.url.as_ref()
    }

    /// The proxy the request was going through when it failed, as `http://host:port` (never
    /// with credentials); `None` for a direct request.
    pub fn proxy(&self) -> Option<&str> {
        self.inner.proxy.as_deref()
    }

    /// True if the body could not be decoded from its content coding ([`Kind::Decode`]).
    pub fn is_decode(&self) -> bool {
        matches!(self.inner.kind, Kind::Decode(_))
    }

    /// True if the server's certificate was refused ([`Kind::Certificate`]).
    pub fn is_certificate(&self) -> bool {
        matches!(self.inner.kind, Kind::Certificate(_))
    }

    /// True if TLS failed: a certificate refused ([`Kind::Certificate`]), another handshake
    /// failure ([`Kind::Tls`]), or an I/O error or timeout during the handshake
    /// ([`Phase::Tls`]).
    pub fn is_tls(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::Certificate(_)
                | Kind::Tls(_)
                | Kind::Io(Phase::Tls)
                | Kind::Timeout {
                    phase: Phase::Tls,
                    ..
                }
        )
    }

    /// True if a deadline passed: connect, read or total.
    pub fn is_timeout(&self) -> bool {
        matches!(self.inner.kind, Kind::Timeout { .. })
    }

    /// True if no connection could be made (refused, unreachable, or a connect timeout),
    /// including a proxy tunnel that the proxy refused to open.
    pub fn is_connect(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::Connect
                | Kind::ProxyAuth
                | Kind::ProxyTunnel(_)
                | Kind::Timeout {
                    phase: Phase::Connect,
                    ..
                }
        )
    }

    /// The OS error code underneath, if a system call failed (found along the `source` chain).
    pub fn os_error(&self) -> Option<i32> {
        let mut source = self.source();
        while let Some(e) = source {
            if let Some(code) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|e| e.raw_os_error())
            {
                return Some(code);
            }
            source = e.source();
        }
        None
    }

    /// The phase the request was in when it failed, for every error that happened during a
    /// request:
    ///
    /// - the phase they carry, for [`Kind::Timeout`] and [`Kind::Io`];
    /// - [`Phase::Resolve`] for [`Kind::Dns`];
    /// - [`Phase::Connect`] for [`Kind::Connect`], [`Kind::ProxyAuth`] and
    ///   [`Kind::ProxyTunnel`];
    /// - [`Phase::Tls`] for [`Kind::Certificate`] and a [`Kind::Tls`] of a request;
    /// - for [`Kind::InvalidResponse`], [`Phase::ReadHead`] for a bad status line, header,
    ///   framing (`Content-Length`, `Transfer-Encoding`) or redirect `Location`,
    ///   [`Phase::ReadBody`] for a bad chunk or trailer, [`Phase::Tls`] for bytes that came
    ///   before the handshake;
    /// - for [`Kind::TooLarge`], [`Phase::ReadHead`] for the head and [`Phase::ReadBody`] for
    ///   the body and for trailers (which count against the head's limit);
    /// - [`Phase::ReadBody`] for [`Kind::Decode`].
    ///
    /// `None` for the kinds that are not a failure of a phase: a request refused before it
    /// started ([`Kind::InvalidUrl`], [`Kind::UnsupportedScheme`], [`Kind::InvalidRequest`],
    /// [`Kind::InvalidProxy`], a [`Kind::Tls`] setting refused by
    /// [`ClientBuilder::try_build`](crate::ClientBuilder::try_build)), and a verdict on a
    /// response that arrived whole ([`Kind::TooManyRedirects`], [`Kind::Status`]), and a
    /// request no loop ran ([`Kind::Runtime`]).
    pub fn phase(&self) -> Option<Phase> {
        match self.inner.kind {
            Kind::Timeout { phase, .. } | Kind::Io(phase) => Some(phase),
            Kind::Decode(_) => Some(Phase::ReadBody),
            Kind::Dns => Some(Phase::Resolve),
            Kind::Connect | Kind::ProxyAuth | Kind::ProxyTunnel(_) => Some(Phase::Connect),
            Kind::Certificate(_) => Some(Phase::Tls),
            // A setting refused by `try_build` has no URL: no request, no phase.
            Kind::Tls(_) => self.inner.url.as_ref().map(|_| Phase::Tls),
            Kind::InvalidResponse(_) | Kind::TooLarge { .. } => self.inner.phase,
            Kind::RequestBody(_) => Some(Phase::Send),
            Kind::InvalidUrl(_)
            | Kind::UnsupportedScheme(_)
            | Kind::InvalidRequest(_)
            | Kind::InvalidProxy(_)
            | Kind::TooManyRedirects(_)
            | Kind::Status(_)
            | Kind::RateLimited { .. }
            | Kind::Duplicate
            | Kind::DisallowedByRobots
            | Kind::RobotsUnreachable(_)
            | Kind::Runtime(_) => None,
        }
    }
}

/// Durations as people write them: `1s`, `250ms`, `1.5s`.
struct Human(Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d < Duration::from_secs(1) && d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{:?}", d)
        }
    }
}

/// `{}`: the message alone. `{:#}`: the message, then the causes along the `source` chain,
/// each after `": "`, leaving out one whose text the one before it already says.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return self.fmt_message(f);
        }
        let mut said = Message(self).to_string();
        f.write_str(&said)?;
        let mut cause = self.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !text.is_empty() && !said.contains(&text) {
                write!(f, ": {text}")?;
                said = text;
            }
            cause = e.source();
        }
        Ok(())
    }
}

/// An error's own message, as `{}` shows it.
struct Message<'a>(&'a Error);

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_message(f)
    }
}

impl Error {
    /// This error's own message, without its cause's.
    fn fmt_message(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match (&self.inner.url, &self.inner.kind) {
            (Some(url), _) => url.as_str(),
            // A setting refused by `Proxy::http` and friends, before any request.
            (None, Kind::InvalidProxy(why)) => return write!(f, "invalid proxy: {why}"),
            // A TLS setting refused by `ClientBuilder::try_build`, before any request.
            (None, Kind::Tls(why)) => return write!(f, "unusable TLS settings: {why}"),
            (None, _) => "(no url)",
        };
        let Some(proxy) = &self.inner.proxy else {
            return fmt_kind(f, &self.inner.kind, url);
        };
        // Through a proxy, the client resolves and connects to the proxy, not the origin.
        match &self.inner.kind {
            Kind::Dns => write!(f, "dns lookup failed for proxy {proxy} (requesting {url})"),
            Kind::Connect => write!(f, "connection failed to proxy {proxy} (requesting {url})"),
            Kind::ProxyAuth => write!(
                f,
                "proxy {proxy} requires authentication (407) to open a tunnel for {url}"
            ),
            Kind::ProxyTunnel(status) => write!(
                f,
                "proxy {proxy} refused to open a tunnel for {url}: status {status}"
            ),
            kind => fmt_kind(f, kind, &format!("{url} via proxy {proxy}")),
        }
    }
}

/// The message of `kind` for the request to `url`.
fn fmt_kind(f: &mut fmt::Formatter<'_>, kind: &Kind, url: &str) -> fmt::Result {
    match kind {
        Kind::InvalidUrl(input) => write!(f, "invalid url {input:?}"),
        Kind::UnsupportedScheme(scheme) => write!(f, "unsupported url scheme {scheme:?} in {url}"),
        Kind::InvalidRequest(why) => write!(f, "invalid request to {url}: {why}"),
        Kind::Dns => write!(f, "dns lookup failed for {url}"),
        Kind::Connect => write!(f, "connection failed to {url}"),
        Kind::Timeout { phase, after } => {
            write!(f, "timeout {} {url} after {}", phase.doing(), Human(*after))
        }
        Kind::Io(phase) => write!(f, "i/o error {} {url}", phase.doing()),
        Kind::InvalidResponse(why) => write!(f, "invalid response from {url}: {why}"),
        Kind::Decode(why) => write!(f, "cannot decode response body from {url}: {why}"),
        Kind::TooLarge { what, limit } => {
            let what = match what {
                Limit::Head => "response head",
                Limit::Body => "response body",
            };
            write!(f, "{what} from {url} exceeds the limit of {limit} bytes")
        }
        Kind::RequestBody(BodyFailure::Aborted) => {
            write!(f, "request body to {url} was aborted by its sender")
        }
        Kind::RequestBody(BodyFailure::LengthMismatch { declared, given }) if given > declared => {
            write!(
                f,
                "request body to {url} is longer than its declared {declared} bytes"
            )
        }
        Kind::RequestBody(BodyFailure::LengthMismatch { declared, given }) => write!(
            f,
            "request body to {url} ended after {given} of its declared {declared} bytes"
        ),
        Kind::RequestBody(BodyFailure::Read) => {
            write!(f, "cannot read the request body for {url}")
        }
        Kind::TooManyRedirects(limit) => {
            write!(f, "too many redirects (more than {limit}) from {url}")
        }
        Kind::Status(status) => write!(f, "http status {status} from {url}"),
        Kind::InvalidProxy(why) => write!(f, "invalid proxy for {url}: {why}"),
        Kind::ProxyAuth => write!(
            f,
            "proxy requires authentication (407) to open a tunnel for {url}"
        ),
        Kind::ProxyTunnel(status) => write!(
            f,
            "proxy refused to open a tunnel for {url}: status {status}"
        ),
        Kind::Certificate(reason) => write!(f, "certificate of {url} refused ({reason})"),
        Kind::Tls(why) => write!(f, "TLS handshake with {url} failed: {why}"),
        Kind::Runtime(why) => write!(f, "request to {url} not run: {why}"),
        Kind::RateLimited { status, wait, max } => write!(
            f,
            "{url} asked for a pause of {} (status {}), longer than max_retry_after ({})",
            Human(*wait),
            status.as_u16(),
            Human(*max)
        ),
        Kind::Duplicate => write!(
            f,
            "{url} not fetched: a duplicate of an earlier request of the batch"
        ),
        Kind::DisallowedByRobots => write!(f, "{url} not fetched: robots.txt disallows it"),
        Kind::RobotsUnreachable(why) => write!(
            f,
            "{url} not fetched: its robots.txt is unreachable ({why}), so the site is deferred"
        ),
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("url", &self.inner.url.as_ref().map(Url::as_str))
            .field("proxy", &self.inner.proxy)
            .field("phase", &self.inner.phase)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each message is one lowercase line naming the phase, the URL and the setting.
    #[test]
    fn messages_read_as_one_line() {
        let url = Url::parse("http://127.0.0.1:8090/stall-head").unwrap();
        let e = Error::new(Kind::Timeout {
            phase: Phase::ReadHead,
            after: Duration::from_secs(1),
        })
        .with_url(&url);
        assert_eq!(
            e.to_string(),
            "timeout reading response head from http://127.0.0.1:8090/stall-head after 1s"
        );
        assert!(e.is_timeout());
        assert!(!e.is_connect());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = Error::new(Kind::Connect)
            .with_url(&url)
            .with_source(refused);
        assert!(e.is_connect());
        assert_eq!(
            e.to_string(),
            "connection failed to http://127.0.0.1:8090/stall-head"
        );
        assert_eq!(
            format!("{e:#}"),
            "connection failed to http://127.0.0.1:8090/stall-head: connection refused"
        );
        assert!(e.source().is_some());
        assert_eq!(Human(Duration::from_millis(250)).to_string(), "250ms");
        assert_eq!(Human(Duration::from_millis(1500)).to_string(), "1.5s");
    }

    /// A cause that says its own cause again.
    #[derive(Debug)]
    struct Wrapper {
        text: &'static str,
        source: Option<Box<dyn StdError + Send + Sync>>,
    }

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.text)
        }
    }

    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.source
                .as_deref()
                .map(|e| e as &(dyn StdError + 'static))
        }
    }

    /// `{:#}` joins the chain with ": " and leaves out a cause the one before already said;
    /// `{}` is the message alone.
    #[test]
    fn alternate_form_says_each_cause_once() {
        let url = Url::parse("http://example.test/").unwrap();
        let cases: [(&[&'static str], &str); 5] = [
            (&[], ""),
            (&["refused"], ": refused"),
            // Identical, and contained: left out; the next one still comes.
            (&["refused", "refused", "x"], ": refused: x"),
            (
                &["a: refused (os error 111)", "refused (os error 111)"],
                ": a: refused (os error 111)",
            ),
            // Empty texts add nothing.
            (&["", "late"], ": late"),
        ];
        for (chain, tail) in cases {
            let mut source: Option<Box<dyn StdError + Send + Sync>> = None;
            for text in chain.iter().rev() {
                source = Some(Box::new(Wrapper { text, source }));
            }
            let mut e = Error::new(Kind::Io(Phase::Send)).with_url(&url);
            if let Some(source) = source {
                e = e.with_source(source);
            }
            let message = "i/o error sending request to http://example.test/";
            assert_eq!(e.to_string(), message, "{chain:?}");
            assert_eq!(format!("{e:#}"), format!("{message}{tail}"), "{chain:?}");
        }
    }

    /// Every kind's message leaves the cause to `source()`.
    #[test]
    fn plain_form_never_shows_the_source() {
        let url = Url::parse("http://example.test/").unwrap();
        let kinds = [
            Kind::InvalidUrl("x".into()),
            Kind::InvalidRequest("bad header".into()),
            Kind::Dns,
            Kind::Connect,
            Kind::Io(Phase::ReadBody),
            Kind::InvalidResponse("bad chunk size".into()),
            Kind::Tls("TLS protocol error".into()),
            Kind::Certificate(CertReason::Expired),
            Kind::InvalidProxy("not a URL".into()),
        ];
        for kind in kinds {
            for proxy in [None, Some("http://127.0.0.1:3128")] {
                let mut e = Error::new(kind.clone())
                    .with_url(&url)
                    .with_source("SECRET CAUSE");
                if let Some(proxy) = proxy {
                    e = e.with_proxy(proxy);
                }
                assert!(!e.to_string().contains("SECRET"), "{e}");
                assert!(format!("{e:#}").ends_with(": SECRET CAUSE"), "{e:#}");
            }
        }
        // Settings refused before any request have no URL.
        let e = Error::new(Kind::InvalidProxy("no host".into())).with_source("SECRET");
        assert_eq!(e.to_string(), "invalid proxy: no host");
        assert_eq!(format!("{e:#}"), "invalid proxy: no host: SECRET");
        assert_eq!(e.phase(), None);
    }

    /// The phase of a limit or a protocol error is the one it was recorded with.
    #[test]
    fn recorded_phase_is_reported() {
        let url = Url::parse("http://example.test/").unwrap();
        let head = Error::new(Kind::TooLarge {
            what: Limit::Head,
            limit: 1024,
        })
        .with_url(&url)
        .with_phase(Phase::ReadHead);
        assert_eq!(head.phase(), Some(Phase::ReadHead));
        let chunk = Error::new(Kind::InvalidResponse("bad chunk size".into()))
            .with_url(&url)
            .with_phase(Phase::ReadBody);
        assert_eq!(chunk.phase(), Some(Phase::ReadBody));
        assert_eq!(
            Error::new(Kind::Status(http::StatusCode::NOT_FOUND)).phase(),
            None
        );
        let tls_setting = Error::new(Kind::Tls("no roots".into()));
        assert_eq!(tls_setting.phase(), None);
        assert_eq!(tls_setting.with_url(&url).phase(), Some(Phase::Tls));
    }
}
