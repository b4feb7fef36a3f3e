//! volley's test server: an httpbin-like HTTP/1.1 server with fault endpoints, a forward
//! proxy and a DNS server, on volley's own runtime. Not published: volley's tests, examples
//! and benchmarks use it as a dev-dependency (as tokio's tests use `tokio-test`), and it uses
//! only volley's public API.
//!
//! It answers the common [httpbin](https://httpbin.org) endpoints with httpbin's JSON shapes,
//! the seed's tornado endpoint `/add`, and a set of `/fault/...` endpoints that each break the
//! protocol in one deterministic way. It exists to test volley's client, its examples and its
//! benchmarks on loopback, without a network.
//!
//! # Running it
//!
//! In-process, on the runtime running on this thread:
//!
//! ```
//! use volley_testserver::Server;
//! use volley::{Runtime, TcpStream};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let server = Server::bind("127.0.0.1:0".parse().unwrap())?; // port 0: any free port
//!     assert!(server.url("/get").starts_with("http://127.0.0.1:"));
//!
//!     let mut conn = TcpStream::connect(server.local_addr()).await?;
//!     conn.write_all(b"GET /status/418 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
//!     let mut response = Vec::new();
//!     conn.read_to_end(&mut response).await?;
//!     assert!(response.starts_with(b"HTTP/1.1 418 I'm a teapot\r\n"));
//!     assert_eq!(server.stats().requests, 1);
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! On a thread of its own, with its own runtime, for blocking clients, benchmarks, or a client
//! on another runtime: [`Server::spawn_thread`] returns a [`ServerThread`] that stops the server
//! when dropped. From the command line: `cargo run --release --example httpbin -- --port 8080`.
//!
//! [`ProxyServer`] is a separate minimal forward proxy (absolute-form requests and `CONNECT`
//! tunnels, to loopback targets only, with optional Basic credentials and refusals, counted
//! and logged), for testing proxy support.
//!
//! [`DnsServer`] is a separate small DNS server (UDP and TCP on one port, address records,
//! exact names and wildcards, NXDOMAIN and NODATA with an SOA, an optional delay per answer
//! and forced truncation, counted), for testing and benchmarking
//! [`NativeResolver`](volley::NativeResolver) and the client on loopback with names of their
//! own.
//!
//! # Behaviour
//!
//! - HTTP/1.1 keep-alive; `Connection: close` from the client is honoured; an HTTP/1.0 client
//!   keeps the connection only if it sends `Connection: keep-alive`. Pipelined requests are
//!   answered in order, one at a time.
//! - Request heads are parsed by `httparse`: at most [`ServerConfig::max_head_size`] bytes
//!   (else 431) and 128 header lines (else 431); a malformed head gets 400.
//! - Request bodies framed by `Content-Length` or chunked transfer coding (extensions and
//!   trailers accepted and ignored), at most [`ServerConfig::max_body_size`] bytes (else 413).
//!   `Expect: 100-continue` is answered with `100 Continue`. A transfer coding other than a
//!   final `chunked`, or conflicting `Content-Length`s, get 400; a request with both
//!   `Transfer-Encoding` and `Content-Length` is read as chunked, then the connection closes.
//! - Every response has `Server: volley-httpbin`, a `Date`, and a `Content-Length` or chunked
//!   coding (except the faults below that break exactly that). A small response leaves in one
//!   write. `HEAD` is answered like `GET`, without the body.
//! - A connection is closed gracefully: FIN, then whatever the client still sends is read and
//!   discarded for up to 2 s of silence, so that it reads the response instead of a reset.
//! - A connection idle for [`ServerConfig::idle_timeout`] between requests is closed.
//! - Accepted sockets get `TCP_NODELAY`. Accept errors such as `EMFILE` are printed to stderr
//!   at most once a second and the loop goes on (the listener backs off by itself).
//! - Per-connection memory is small: the read buffer starts at 1 KiB, grows only while a
//!   request needs it, and is freed while the connection waits, so 10,000 connections each
//!   waiting in `/delay` cost little more than their sockets.
//!
//! # Endpoints
//!
//! [`ENDPOINTS`] lists them all, and `/` serves that list as HTML. JSON documents have
//! httpbin's shape: `args` (a repeated key gives an array), `headers` (Title-Case names, sorted,
//! repeated headers joined by `,`), `origin` (the client's IP) and `url`; the body methods add
//! `data` (UTF-8 text, or a base64 `data:` URL), `files` (always `{}`), `form` (for
//! `application/x-www-form-urlencoded`) and `json` (the body parsed as JSON, else `null`).
//!
//! | path | answer |
//! |---|---|
//! | `/get`, `/headers`, `/ip`, `/user-agent` | the request as JSON |
//! | `/post`, `/put`, `/patch`, `/delete` | the request and its body as JSON; 405 for another method |
//! | `/anything`, `/anything/...` | any method: as `/post`, plus `method` |
//! | `/count` | any method: `{"length": n, "fnv1a64": "<16 hex digits>"}` of the body, read as it arrives and never held, of any size ([`fnv1a64`] computes the same hash) |
//! | `/status/{code}` | empty body with that status (200 to 999); 301, 302, 303, 305, 307, 308 add `Location: /redirect/1`, 401 `WWW-Authenticate`, 418 a teapot |
//! | `/delay/{secs}` | the `/post`-style JSON after `secs` seconds (fractional, capped at 10); the wait is a timer, so thousands cost nothing |
//! | `/bytes/{n}?seed=S` | `n` bytes (at most 100 MiB) of xorshift64* seeded by `S`: [`seeded_bytes`] computes the same; without a seed, the clock seeds it |
//! | `/range/{n}` | `n` bytes of `abc...z` repeated; one `Range: bytes=a-b`, `a-` or `-s` gives 206 with `Content-Range`, an unsatisfiable one 416 |
//! | `/stream/{n}` | `n` (at most 100) lines of `/get` JSON with an `id`, one chunk each |
//! | `/drip?duration=2&numbytes=10&delay=0&code=200` | after `delay` s, a head with `Content-Length: numbytes`, then one `*` every `duration / numbytes` s |
//! | `/redirect/{n}` | 302 to `/relative-redirect/{n-1}`, ..., `/get`; `?absolute=true` for absolute URLs |
//! | `/relative-redirect/{n}`, `/absolute-redirect/{n}` | chains of `n` 302s ending at `/get`, with relative or `http://host:port/...` locations |
//! | `/redirect-to?url=U&status_code=C` | `C` (a 3xx, default 302) to `U` |
//! | `/links/{n}/{offset}` | httpbin's page of `n` links `<a href='/links/{n}/{i}'>{i}</a>`; `/links/{n}` redirects to offset 0 |
//! | `/web/{hosts}/{pages}/{i}` | page `i` (below `pages`) of a site of `pages` pages spread over `hosts` host names (each at most a million, pages a hundred million): HTML with about 10 links, deterministic (the next page `i+1`, then picks by a hash of `i`), as absolute URLs `http://h{j % hosts}.web.test:{port}/web/{hosts}/{pages}/{j}`, the port from the request's `Host` header. Every page is reachable from page 0. Serve `*.web.test` with a [`DnsServer`] wildcard to crawl it over many hosts |
//! | `/response-headers?K=V...` | those headers, and a JSON body of them |
//! | `/cookies`, `/cookies/set?K=V`, `/cookies/delete?K` | the `Cookie` header as JSON; set or expire cookies and redirect to `/cookies` |
//! | `/basic-auth/{user}/{passwd}` | 200 `{"authenticated": true, "user": ...}` if `Authorization: Basic` matches, else 401 with `WWW-Authenticate`; `/hidden-basic-auth/...` gives 404 instead |
//! | `/bearer` | 200 with the token of `Authorization: Bearer`, else 401 |
//! | `/cache`, `/cache/{n}`, `/etag/{etag}` | 304 when `If-Modified-Since` or `If-None-Match` is sent; `Cache-Control: max-age`; entity-tag checks |
//! | `/encoding/utf8`, `/html`, `/json`, `/xml`, `/deny`, `/base64/{b64}`, `/uuid` | fixed documents |
//! | `/robots.txt` | `User-agent: *` and `Disallow: /deny`, or the status, type and body of [`ServerConfig::robots_txt`]; counted in [`ServerStats::robots_fetches`] |
//! | `/limit/{n}?window_ms=1000&retry_after=secs&status=429&key=K&headers=ratelimit` | a rate limiter: see [Polite clients](#polite-clients) |
//! | `/flaky/{n}?key=K&status=503&retry_after=S&fail=reset` | fails the first `n` requests of a key: see [Polite clients](#polite-clients) |
//! | `/gzip`, `/deflate`, `/brotli`, `/zstd` | httpbin's JSON of the request's `headers`, `method` and `origin` with `"gzipped"` (`"deflated"`, `"brotli"`, `"zstd"`) `true`, in that content coding: deflate zlib-wrapped as httpbin sends it, br as uncompressed meta-blocks (valid brotli, no smaller), zstd by ruzstd. Each is there with the client feature of its name (`gzip` and `deflate` by default) |
//! | `/bytes-gzip/{n}?seed=S&piece=P`, `/bytes-deflate/{n}?seed=S&piece=P&raw=false` | the bytes of `/bytes/{n}?seed=S`, compressed as they are generated (level 1) and chunked, in chunks of at most `P` bytes (default 64 KiB; 1 sends the stream byte by byte); `raw=true`: deflate without the zlib wrapper |
//! | `/add?name=X&delay=MS` | the seed's tornado handler: the body `.` after `MS` milliseconds (default 1024, at most 60 s); 400 without `name` |
//!
//! Unknown paths get 404.
//!
//! # Polite clients
//!
//! For testing a client's per-host rate, its pauses on 429 and 503, its retries and its
//! robots.txt handling, three endpoints keep state for the server's life (each server its
//! own), and [`ServerStats`] counts what they saw. Any method is accepted by `/limit` and
//! `/flaky`; an invalid parameter gets 400, which counts for nothing.
//!
//! `/limit/{n}` admits at most `n` requests of a *limiter key* in any sliding window of
//! `window_ms` milliseconds (default 1000, at most a day). The key is the client's IP address,
//! the request's `Host` header (lower-cased) and the `key` argument (default empty), so that
//! one server reached under several host names, or several servers, limit each host on its
//! own. An admitted request gets 200 and `{"allowed": true, "in_window": k}` (`k` counts it).
//! A refused one does not enter the window; it gets `status` (429, the default, or 503), the
//! body `{"allowed": false, "in_window": k}`, counts in [`ServerStats::limited`], and with
//! `retry_after`:
//!
//! - `secs` (the default): `Retry-After: s`, the time until the oldest request in the window
//!   leaves it in whole seconds rounded up, at least 1;
//! - `date`: `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT`, the instant that request leaves,
//!   rounded up to a whole second (so at most `window_ms` plus 1 s away);
//! - `none`: no `Retry-After`.
//!
//! A `Retry-After` announces a pause: the server remembers its end for the key (now plus `s`
//! seconds, or the date on the system clock), and a request of that key arriving before it,
//! more than `grace_ms` (default 100) after the pause was first announced, counts in
//! [`ServerStats::early`]: within the grace it may have been on its way already, sent on
//! another connection before the client read the refusal. It is still answered by the rules
//! above. `headers=ratelimit`
//! adds the IETF draft's headers to every answer, admitted or not:
//! `RateLimit-Policy: "default";q={n};w={window in seconds, rounded up}` and
//! `RateLimit: "default";r={requests the window still admits};t={seconds until it admits one
//! more, rounded up; 0 while r > 0}`; `headers=policy` sends only the first, `headers=state`
//! only the second, and `headers=legacy` the earlier drafts' `RateLimit-Limit: {n}`,
//! `RateLimit-Remaining: {r}` and `RateLimit-Reset: {t}` instead. `n` may be 0, which refuses
//! everything.
//!
//! `/flaky/{n}` counts the requests of each `key` argument (default empty), whatever the client
//! or `n`. Request `k` of a key (from 1) fails while `k <= n`, and counts in
//! [`ServerStats::flaky_failures`]: with `status` (default 503, any 4xx or 5xx) and a text
//! body, plus `Retry-After: S` if `retry_after=S` is given; or, with `fail=reset`, by a reset
//! (RST) before any response byte; or, with `fail=close`, by a graceful close before any byte.
//! After that it answers 200 with `{"attempt": k}`.
//!
//! `/robots.txt` answers what [`ServerConfig::robots_txt`] sets, else the default rules, and
//! every request of it counts in [`ServerStats::robots_fetches`].
//!
//! # Faults
//!
//! Each reads the request (head and body) first, unless said otherwise, and behaves the same
//! way every time.
//!
//! | path | what the client sees |
//! |---|---|
//! | `/fault/stall-head` | nothing: no byte is sent, and the connection stays open until the client closes it or the server stops |
//! | `/fault/stall-body?after=N` | a head with `Content-Length: 2N` and `N` bytes of `*` (default 10, at most 1 MiB), then nothing, as above |
//! | `/fault/reset-body` | a head with `Content-Length: 1000`, 100 bytes of `*`, then a reset (RST: `SO_LINGER` 0, then close) |
//! | `/fault/close-before-response` | a graceful close (FIN) without a byte |
//! | `/fault/close-on-reuse` | on a connection's first request, a 200 with keep-alive as usual; on any later request of the same connection, a close without a byte, as above: a client's reused connection dies before its response |
//! | `/fault/redirect-loop` | a 302 to `/fault/redirect-loop` itself, keep-alive as usual, every time |
//! | `/fault/trickle?interval_ms=100` | the head `HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n` one byte per interval (at most 10 s), then the body `trickle\n` at once; keep-alive as usual |
//! | `/fault/huge-head?size=BYTES` | a 200 whose `X-Huge` header is `size` bytes of `a` (default 1 MiB, at most 256 MiB), written in 16 KiB pieces, then body `ok` and a close |
//! | `/fault/garbage` | the bytes of [`GARBAGE`] instead of a status line, then a close |
//! | `/fault/keep-alive-then-close` | a valid response with `Content-Length` and no `Connection: close`, then the server closes: a reused connection finds EOF |
//! | `/fault/early-response?code=413` | the status (default 413) with `Connection: close` at once, without reading the request body; the body is then drained while closing, so a client still sending it does not deadlock |
//! | `/fault/bad-length` | `Content-Length: ten`, body `0123456789`, close |
//! | `/fault/bad-chunk` | chunked body `5 hello` then the chunk size `ZZ`, close |
//! | `/fault/short-body` | `Content-Length: 100`, 50 bytes of `*`, close |
//! | `/fault/chunked-trailers` | the body `chunked body with trailers\n` in chunks with extensions (`;name=value`, `;quoted="a;b"`), a last chunk `0;last`, and the trailer `X-Checksum: fnv1a64=<16 hex digits of the body's FNV-1a 64>`, announced by `Trailer: X-Checksum`; keep-alive as usual |
//! | `/fault/te-and-cl` | `Transfer-Encoding: chunked` and `Content-Length: 5`; the chunked body is `hello world\n`; close |
//! | `/fault/until-close` | no length header: the body ends with the connection |
//! | `/fault/1xx` | `100 Continue`, then `103 Early Hints` with a `Link` header, then a 200 |
//! | `/fault/gzip-bomb?size=N` | `Content-Encoding: gzip` on `N` zero bytes (default 10 MiB, at most 1 GiB) compressed at level 9: about a thousandth of `N` on the wire; keep-alive as usual |
//! | `/fault/bad-gzip?flaw=header` | a gzip body of `this gzip body is broken on purpose\n` with one flaw: `header` (a wrong magic byte), `crc` (the trailer's CRC-32), `size` (the trailer's length) or `data` (the deflate data replaced by `0xff` bytes); keep-alive as usual |
//! | `/fault/gzip-truncated?cut=4` | that gzip body without its last `cut` bytes, with a `Content-Length` of what is sent: complete for HTTP, cut short for gzip |
//! | `/fault/bad-deflate` | `Content-Encoding: deflate` on bytes that are not deflate data |

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

mod codec;
#[cfg(any(
    feature = "gzip",
    feature = "deflate",
    feature = "brotli",
    feature = "zstd"
))]
mod compress;
mod conn;
mod dns;
mod dns_wire;
mod endpoints;
mod faults;
mod json;
mod polite;
mod proxy;
mod random;
mod request;
mod response;
mod serve;
#[cfg(feature = "tls")]
pub mod testcert;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use volley::net::{TcpListener, TcpStream};
use volley::sleep;
use volley::Runtime;
use volley::{spawn, JoinHandle};

pub use conn::fnv1a64;
pub use dns::{DnsBuilder, DnsServer, DnsServerStats};
pub use endpoints::ENDPOINTS;
pub use faults::GARBAGE;
pub use proxy::{ProxyBuilder, ProxyRequest, ProxyServer, ProxyStats};
pub use random::seeded_bytes;

/// Limits of a [`Server`]. Start from `ServerConfig::default()` and change fields.
///
/// ```
/// let mut config = volley_testserver::ServerConfig::default();
/// config.max_body_size = 1024;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The longest request head accepted; a longer one gets 431. Default 64 KiB.
    pub max_head_size: usize,
    /// The longest request body accepted; a longer one gets 413. Default 64 MiB.
    pub max_body_size: usize,
    /// How long a connection may wait for (all of) its next request head before it is closed.
    /// `None`: forever. Default 60 s. Faults that stall are not subject to it.
    pub idle_timeout: Option<Duration>,
    /// Serve HTTPS with this acceptor: each accepted connection does a TLS handshake first
    /// (within 10 s, else it is closed), then HTTP/1.1 as usual, and [`Server::url`] says
    /// `https://`. Default `None`: plain HTTP. Set it with [`ServerConfig::tls`]. (Feature
    /// `tls`.)
    #[cfg(feature = "tls")]
    pub tls: Option<volley::net::tls::TlsAcceptor>,
    /// What `/robots.txt` answers. Default `None`: 200 with `User-agent: *` and
    /// `Disallow: /deny`. Set it with [`ServerConfig::robots_txt`].
    pub robots_txt: Option<RobotsTxt>,
}

/// The answer of `/robots.txt`, set by [`ServerConfig::robots_txt`]: for testing a crawler
/// against rules of its own, or against a robots.txt that is missing (404), forbidden (401,
/// 403) or failing (5xx).
///
/// It is sent as it is to `GET` and `HEAD` requests: a status that allows no body (204, 304)
/// sends none, and a 1xx status breaks the exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RobotsTxt {
    /// The response's status.
    pub status: u16,
    /// Its `Content-Type`. [`RobotsTxt::new`] makes it `text/plain`.
    pub content_type: String,
    /// Its body.
    pub body: Vec<u8>,
}

impl RobotsTxt {
    /// `body` with `status`, as `text/plain`.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> RobotsTxt {
        RobotsTxt {
            status,
            content_type: "text/plain".to_string(),
            body: body.into(),
        }
    }
}

impl ServerConfig {
    /// Makes `/robots.txt` answer `status` with `body`, as `text/plain`. For another content
    /// type, set the `robots_txt` field to a [`RobotsTxt`] of your own.
    ///
    /// ```
    /// use volley_testserver::{Server, ServerConfig};
    /// use volley::{Client, Runtime};
    ///
    /// let rt = Runtime::new()?;
    /// rt.block_on(async {
    ///     let config = ServerConfig::default().robots_txt(200, "User-agent: *\nDisallow: /\n");
    ///     let server = Server::bind_with("127.0.0.1:0".parse().unwrap(), config)?;
    ///     let response = Client::new().get(server.url("/robots.txt")).send().await?;
    ///     assert_eq!(response.text().await?, "User-agent: *\nDisallow: /\n");
    ///     assert_eq!(server.stats().robots_fetches, 1);
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn robots_txt(mut self, status: u16, body: impl Into<Vec<u8>>) -> ServerConfig {
        self.robots_txt = Some(RobotsTxt::new(status, body));
        self
    }
}

#[cfg(feature = "tls")]
impl ServerConfig {
    /// Serves HTTPS with the certificate chain of `cert_chain_pem` (leaf first) and the
    /// private key of `key_pem`. [`testcert`] holds a TEST-ONLY pair for `localhost` and
    /// 127.0.0.1, and the CA a client must trust for it.
    ///
    /// ```
    /// use volley_testserver::{testcert, Server, ServerConfig};
    /// use volley::{Certificate, Client, Runtime};
    ///
    /// let rt = Runtime::new()?;
    /// rt.block_on(async {
    ///     let config = ServerConfig::default().tls(testcert::CERT_PEM, testcert::KEY_PEM)?;
    ///     let server = Server::bind_with("127.0.0.1:0".parse().unwrap(), config)?;
    ///     assert!(server.url("/get").starts_with("https://127.0.0.1:"));
    ///     let ca = Certificate::from_pem(testcert::CA_PEM)?;
    ///     let client = Client::builder().add_root_certificate(ca).build();
    ///     let response = client.get(server.url("/get")).send().await?;
    ///     assert_eq!(response.status(), 200);
    ///     assert!(response.timings().tls > std::time::Duration::ZERO);
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls(mut self, cert_chain_pem: &[u8], key_pem: &[u8]) -> io::Result<ServerConfig> {
        self.tls = Some(volley::net::tls::TlsAcceptor::from_pem(
            cert_chain_pem,
            key_pem,
        )?);
        Ok(self)
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_head_size: 64 * 1024,
            max_body_size: 64 * 1024 * 1024,
            idle_timeout: Some(Duration::from_secs(60)),
            #[cfg(feature = "tls")]
            tls: None,
            robots_txt: None,
        }
    }
}

/// Counts of what a server has done, from [`Server::stats`] or [`ServerThread::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted since the server started.
    pub connections_accepted: u64,
    /// Request heads parsed (and answered, or failed while answering) since the server started.
    pub requests: u64,
    /// Connections open now. A connection counts until its task ends, which, after a
    /// `Connection: close` response, is when the client closes its side too (or 2 s later).
    pub open_connections: usize,
    /// The most connections open at once so far.
    pub max_open_connections: usize,
    /// Requests `/limit/{n}` refused (with its `status`, 429 or 503), beyond its limit.
    pub limited: u64,
    /// `/limit/{n}` requests that arrived during a pause the server had announced to their
    /// limiter key with a `Retry-After` (before its delay-seconds had passed, or before its
    /// HTTP-date), later than the grace after the announcement: requests of a client that
    /// did not wait as told.
    pub early: u64,
    /// Requests `/flaky/{n}` failed: with a status, a reset or a close.
    pub flaky_failures: u64,
    /// `/robots.txt` requests, whatever their method.
    pub robots_fetches: u64,
}

/// The counters behind [`ServerStats`], shared with a [`ServerThread`]'s owner.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    requests: AtomicU64,
    open: AtomicUsize,
    max_open: AtomicUsize,
    limited: AtomicU64,
    early: AtomicU64,
    flaky_failures: AtomicU64,
    robots_fetches: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ServerStats {
        ServerStats {
            connections_accepted: self.accepted.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            open_connections: self.open.load(Ordering::Relaxed),
            max_open_connections: self.max_open.load(Ordering::Relaxed),
            limited: self.limited.load(Ordering::Relaxed),
            early: self.early.load(Ordering::Relaxed),
            flaky_failures: self.flaky_failures.load(Ordering::Relaxed),
            robots_fetches: self.robots_fetches.load(Ordering::Relaxed),
        }
    }
}

/// Something an endpoint counts in [`ServerStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// [`ServerStats::limited`].
    Limited,
    /// [`ServerStats::early`].
    Early,
    /// [`ServerStats::flaky_failures`].
    FlakyFailure,
    /// [`ServerStats::robots_fetches`].
    RobotsFetch,
}

/// A live connection's task, and whether it is between requests.
#[derive(Debug)]
struct ConnEntry {
    task: JoinHandle<()>,
    idle: Rc<Cell<bool>>,
}

/// State shared by the server handle, its accept loop and its connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    counters: Arc<Counters>,
    /// Set by shutdown: connections close after their current response.
    pub(crate) draining: Cell<bool>,
    conns: RefCell<HashMap<u64, ConnEntry>>,
    next_conn: Cell<u64>,
    /// The state of `/limit` and `/flaky`.
    pub(crate) polite: polite::PoliteState,
}

impl Shared {
    pub(crate) fn count_request(&self) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `event` in the server's stats.
    pub(crate) fn count(&self, event: Event) {
        let counter = match event {
            Event::Limited => &self.counters.limited,
            Event::Early => &self.counters.early,
            Event::FlakyFailure => &self.counters.flaky_failures,
            Event::RobotsFetch => &self.counters.robots_fetches,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Spawns the task serving a freshly accepted connection.
    fn start_conn(self: &Rc<Shared>, stream: TcpStream, peer: SocketAddr, local: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let counters = &self.counters;
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let open = counters.open.fetch_add(1, Ordering::Relaxed) + 1;
        counters.max_open.fetch_max(open, Ordering::Relaxed);
        let id = self.next_conn.get();
        self.next_conn.set(id + 1);
        let idle = Rc::new(Cell::new(false));
        let local = stream.local_addr().unwrap_or(local);
        let guard = ConnGuard {
            shared: self.clone(),
            id,
        };
        let (shared, conn_idle) = (self.clone(), idle.clone());
        let task = spawn(async move {
            let _guard = guard;
            let Some(stream) = conn::ServerStream::start(stream, &shared.config).await else {
                return;
            };
            let conn = conn::Conn::new(stream, peer, local, shared, conn_idle);
            serve::serve(conn).await;
        });
        self.conns.borrow_mut().insert(id, ConnEntry { task, idle });
    }
}

/// Unregisters a connection when its task ends or is dropped.
struct ConnGuard {
    shared: Rc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.counters.open.fetch_sub(1, Ordering::Relaxed);
        let removed = match self.shared.conns.try_borrow_mut() {
            Ok(mut conns) => conns.remove(&self.id),
            Err(_) => None,
        };
        drop(removed); // outside the borrow
    }
}

/// An httpbin-like server running on the current thread's volley runtime.
///
/// Its accept loop and its connections are spawned tasks: they run while the runtime runs
/// (inside [`Runtime::block_on`]). Dropping the server, or [`shutdown`](Server::shutdown),
/// stops it.
pub struct Server {
    shared: Rc<Shared>,
    /// Taken (and so closed) on shutdown.
    listener: Rc<RefCell<Option<TcpListener>>>,
    accept_task: JoinHandle<()>,
    addr: SocketAddr,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) with the default [`ServerConfig`] and starts
    /// accepting on the runtime running on this thread.
    ///
    /// Fails if the address cannot be bound, or if no runtime is running on this thread: call
    /// it inside [`Runtime::block_on`] (or use [`Server::spawn_thread`]).
    pub fn bind(addr: SocketAddr) -> io::Result<Server> {
        Server::bind_with(addr, ServerConfig::default())
    }

    /// Like [`bind`](Server::bind), with `config`.
    pub fn bind_with(addr: SocketAddr, config: ServerConfig) -> io::Result<Server> {
        if !volley::rt::in_runtime() {
            return Err(io::Error::other(
                "volley_testserver::Server::bind called outside a runtime: call it inside \
                 Runtime::block_on, or use Server::spawn_thread",
            ));
        }
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Rc::new(Shared {
            config,
            counters: Arc::default(),
            draining: Cell::new(false),
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(0),
            polite: polite::PoliteState::default(),
        });
        let listener = Rc::new(RefCell::new(Some(listener)));
        let accept_task = spawn(accept_loop(listener.clone(), shared.clone(), addr));
        Ok(Server {
            shared,
            listener,
            accept_task,
            addr,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{local_addr}{path}` (`https://` when serving TLS); a `/` is put before `path`
    /// if it lacks one.
    pub fn url(&self, path: &str) -> String {
        url(self.addr, self.shared.config.is_tls(), path)
    }

    /// What the server has done so far.
    pub fn stats(&self) -> ServerStats {
        self.shared.counters.snapshot()
    }

    /// Stops the server now: the listening socket closes at once, and every connection's task
    /// is cancelled, which closes its socket when the runtime next turns (or when it is
    /// dropped). Calling it again does nothing.
    pub fn shutdown(&self) {
        self.shared.draining.set(true);
        let listener = self.listener.borrow_mut().take();
        drop(listener);
        self.accept_task.abort();
        let conns = std::mem::take(&mut *self.shared.conns.borrow_mut());
        for entry in conns.into_values() {
            entry.task.abort();
        }
    }

    /// Stops accepting at once, closes connections that are between requests, lets the others
    /// finish their current response (after which they close), and after `grace` cancels
    /// whatever is left, as [`shutdown`](Server::shutdown) does.
    pub async fn shutdown_gracefully(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.shared.draining.set(true);
        let listener = self.listener.borrow_mut().take();
        drop(listener);
        self.accept_task.abort();
        for entry in self.shared.conns.borrow().values() {
            if entry.idle.get() {
                entry.task.abort();
            }
        }
        while !self.shared.conns.borrow().is_empty() && Instant::now() < deadline {
            sleep(Duration::from_millis(5)).await;
        }
        self.shutdown();
    }

    /// Starts a server on a new thread with its own [`Runtime`], bound to `addr` (port 0 picks
    /// a free port), and returns once it is listening. Dropping the returned handle stops it.
    pub fn spawn_thread(addr: SocketAddr) -> io::Result<ServerThread> {
        Server::spawn_thread_with(addr, ServerConfig::default())
    }

    /// Like [`spawn_thread`](Server::spawn_thread), with `config`.
    pub fn spawn_thread_with(addr: SocketAddr, config: ServerConfig) -> io::Result<ServerThread> {
        let tls = config.is_tls();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(StopSignal::default());
        let thread_stop = stop.clone();
        let thread = thread::Builder::new()
            .name("volley-httpbin".to_string())
            .spawn(move || {
                let rt = match Runtime::new() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async {
                    let server = match Server::bind_with(addr, config) {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok((server.addr, server.shared.counters.clone())));
                    poll_fn(|cx| thread_stop.poll_stopped(cx)).await;
                    server.shutdown();
                });
                // Dropping the runtime drops the cancelled connection tasks: their sockets close.
                drop(rt);
            })?;
        match ready_rx.recv() {
            Ok(Ok((addr, counters))) => Ok(ServerThread {
                addr,
                tls,
                counters,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other(
                    "the volley-httpbin thread died while starting",
                ))
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl ServerConfig {
    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}

fn url(addr: SocketAddr, tls: bool, path: &str) -> String {
    let slash = if path.starts_with('/') { "" } else { "/" };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}{slash}{path}")
}

/// The accept loop lets other tasks run once every this many accepts.
const ACCEPT_BATCH: u64 = 1024;

/// Accepts connections until the listener is taken away, spawning a task for each.
async fn accept_loop(
    listener: Rc<RefCell<Option<TcpListener>>>,
    shared: Rc<Shared>,
    addr: SocketAddr,
) {
    let mut errors = ErrorLog::default();
    let mut accepted = 0u64;
    loop {
        let next = poll_fn(|cx| match listener.borrow_mut().as_mut() {
            Some(listener) => listener.poll_accept(cx).map(Some),
            None => Poll::Ready(None),
        })
        .await;
        match next {
            None => return,
            Some(Ok((stream, peer))) => shared.start_conn(stream, peer, addr),
            Some(Err(e)) => errors.log(&e),
        }
        // Drain the accept queue in large batches (a full queue drops new SYNs, which clients
        // retry only a second later), but let other tasks run between batches when connects
        // keep arriving.
        accepted += 1;
        if accepted.is_multiple_of(ACCEPT_BATCH) {
            YieldNow(false).await;
        }
    }
}

/// Completes on its second poll, letting the other ready tasks run in between.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Prints accept errors to stderr, at most one line a second.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn log(&mut self, error: &io::Error) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            eprintln!(
                "volley-httpbin: accept failed: {error} (and {} more errors)",
                self.suppressed
            );
        } else {
            eprintln!("volley-httpbin: accept failed: {error}");
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Tells a server thread to stop, from any thread.
#[derive(Debug, Default)]
struct StopSignal {
    stopped: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl StopSignal {
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Store the waker before checking the flag, so that a stop in between is not missed.
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        if self.stopped.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A server running on its own thread and runtime, from [`Server::spawn_thread`]. It is
/// `Send`: any thread may hold it. Dropping it stops the server and joins the thread.
#[derive(Debug)]
pub struct ServerThread {
    addr: SocketAddr,
    tls: bool,
    counters: Arc<Counters>,
    stop: Arc<StopSignal>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ServerThread {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{local_addr}{path}` (`https://` when serving TLS); a `/` is put before `path`
    /// if it lacks one.
    pub fn url(&self, path: &str) -> String {
        url(self.addr, self.tls, path)
    }

    /// What the server has done so far.
    pub fn stats(&self) -> ServerStats {
        self.counters.snapshot()
    }

    /// Stops the server, closing its listener and connections, and waits for its thread.
    ///
    /// # Panics
    ///
    /// Propagates a panic of the server thread.
    pub fn shutdown(mut self) {
        if let Err(payload) = self.stop_and_join() {
            std::panic::resume_unwind(payload);
        }
    }

    fn stop_and_join(&mut self) -> thread::Result<()> {
        self.stop.stop();
        match self.thread.take() {
            Some(thread) => thread.join(),
            None => Ok(()),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
