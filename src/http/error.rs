//! [`Error`]: what failed, where, and why, for every request.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use url::Url;

/// The error of an HTTP request: one line that names what failed, for which URL, and why.
///
/// ```text
/// timeout reading response head from http://127.0.0.1:8090/stall-head after 1s
/// ```
///
/// [`kind`](Error::kind) tells the cases apart; [`source`](StdError::source) gives the
/// underlying I/O or parse error where there is one.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    url: Option<Url>,
    /// The proxy the request went through (`http://host:port`, no credentials), if any.
    proxy: Option<String>,
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
    /// `invalid gzip body: CRC-32 mismatch`. Only for bodies the client decodes itself.
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
    /// The request's streamed [`Body`](crate::Body) could not be sent whole; says why. The
    /// connection is closed, so the server never takes part of a body for all of it.
    RequestBody(BodyFailure),
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
                source: None,
            }),
        }
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

    /// The phase the request was in, for timeouts and I/O errors.
    pub fn phase(&self) -> Option<Phase> {
        match self.inner.kind {
            Kind::Timeout { phase, .. } | Kind::Io(phase) => Some(phase),
            Kind::Decode(_) => Some(Phase::ReadBody),
            Kind::Dns => Some(Phase::Resolve),
            Kind::Connect | Kind::ProxyAuth | Kind::ProxyTunnel(_) => Some(Phase::Connect),
            Kind::Certificate(_) | Kind::Tls(_) => Some(Phase::Tls),
            Kind::RequestBody(_) => Some(Phase::Send),
            _ => None,
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match (&self.inner.url, &self.inner.kind) {
            (Some(url), _) => url.as_str(),
            (None, Kind::InvalidProxy(why)) => {
                // A setting refused by `Proxy::http` and friends, before any request.
                write!(f, "invalid proxy: {why}")?;
                return fmt_source(f, self.inner.source.as_deref());
            }
            (None, Kind::Tls(why)) => {
                // A TLS setting refused by `ClientBuilder::try_build`, before any request.
                write!(f, "unusable TLS settings: {why}")?;
                return fmt_source(f, self.inner.source.as_deref());
            }
            (None, _) => "(no url)",
        };
        if let Some(proxy) = &self.inner.proxy {
            // Through a proxy, the client resolves and connects to the proxy, not the origin.
            match &self.inner.kind {
                Kind::Dns => write!(f, "dns lookup failed for proxy {proxy} (requesting {url})")?,
                Kind::Connect => {
                    write!(f, "connection failed to proxy {proxy} (requesting {url})")?
                }
                Kind::ProxyAuth => write!(
                    f,
                    "proxy {proxy} requires authentication (407) to open a tunnel for {url}"
                )?,
                Kind::ProxyTunnel(status) => write!(
                    f,
                    "proxy {proxy} refused to open a tunnel for {url}: status {status}"
                )?,
                _ => {
                    let url = format!("{url} via proxy {proxy}");
                    return fmt_kind(f, &self.inner.kind, &url, self.inner.source.as_deref());
                }
            }
            return fmt_source(f, self.inner.source.as_deref());
        }
        fmt_kind(f, &self.inner.kind, url, self.inner.source.as_deref())
    }
}

type Source<'a> = Option<&'a (dyn StdError + Send + Sync + 'static)>;

fn fmt_source(f: &mut fmt::Formatter<'_>, source: Source<'_>) -> fmt::Result {
    if let Some(source) = source {
        write!(f, ": {source}")?;
    }
    Ok(())
}

/// The message of `kind` for the request to `url`, then `: source`.
fn fmt_kind(f: &mut fmt::Formatter<'_>, kind: &Kind, url: &str, source: Source<'_>) -> fmt::Result {
    match kind {
        Kind::InvalidUrl(input) => write!(f, "invalid url {input:?}")?,
        Kind::UnsupportedScheme(scheme) => write!(f, "unsupported url scheme {scheme:?} in {url}")?,
        Kind::InvalidRequest(why) => write!(f, "invalid request to {url}: {why}")?,
        Kind::Dns => write!(f, "dns lookup failed for {url}")?,
        Kind::Connect => write!(f, "connection failed to {url}")?,
        Kind::Timeout { phase, after } => {
            write!(f, "timeout {} {url} after {}", phase.doing(), Human(*after))?
        }
        Kind::Io(phase) => write!(f, "i/o error {} {url}", phase.doing())?,
        Kind::InvalidResponse(why) => write!(f, "invalid response from {url}: {why}")?,
        Kind::Decode(why) => write!(f, "cannot decode response body from {url}: {why}")?,
        Kind::TooLarge { what, limit } => {
            let what = match what {
                Limit::Head => "response head",
                Limit::Body => "response body",
            };
            write!(f, "{what} from {url} exceeds the limit of {limit} bytes")?
        }
        Kind::RequestBody(BodyFailure::Aborted) => {
            write!(f, "request body to {url} was aborted by its sender")?
        }
        Kind::RequestBody(BodyFailure::LengthMismatch { declared, given }) if given > declared => {
            write!(
                f,
                "request body to {url} is longer than its declared {declared} bytes"
            )?
        }
        Kind::RequestBody(BodyFailure::LengthMismatch { declared, given }) => write!(
            f,
            "request body to {url} ended after {given} of its declared {declared} bytes"
        )?,
        Kind::RequestBody(BodyFailure::Read) => {
            write!(f, "cannot read the request body for {url}")?
        }
        Kind::TooManyRedirects(limit) => {
            write!(f, "too many redirects (more than {limit}) from {url}")?
        }
        Kind::Status(status) => write!(f, "http status {status} from {url}")?,
        Kind::InvalidProxy(why) => write!(f, "invalid proxy for {url}: {why}")?,
        Kind::ProxyAuth => write!(
            f,
            "proxy requires authentication (407) to open a tunnel for {url}"
        )?,
        Kind::ProxyTunnel(status) => write!(
            f,
            "proxy refused to open a tunnel for {url}: status {status}"
        )?,
        Kind::Certificate(reason) => write!(f, "certificate of {url} refused ({reason})")?,
        Kind::Tls(why) => write!(f, "TLS handshake with {url} failed: {why}")?,
    }
    fmt_source(f, source)
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.inner.kind)
            .field("url", &self.inner.url.as_ref().map(Url::as_str))
            .field("proxy", &self.inner.proxy)
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
        assert!(e
            .to_string()
            .starts_with("connection failed to http://127.0.0.1:8090/stall-head: "));
        assert!(e.source().is_some());
        assert_eq!(Human(Duration::from_millis(250)).to_string(), "250ms");
        assert_eq!(Human(Duration::from_millis(1500)).to_string(), "1.5s");
    }
}
