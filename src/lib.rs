//! # volley
//!
//! An HTTP/1.1 client for fetching many URLs concurrently, on an event loop of its own: a
//! `mio::Poll` reactor driving hand-written futures, one loop per thread, no tokio, and
//! `#![forbid(unsafe_code)]`.
//!
//! ## One GET
//!
//! ```
//! use volley::{Client, Runtime};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     // A local httpbin-like server (the dev-dependency volley-testserver): no network.
//!     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
//!
//!     let client = Client::new();
//!     let resp = client.get(server.url("/get")).send().await?;
//!     assert_eq!(resp.status(), 200);
//!     assert!(resp.text().await?.contains("volley/"));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Fetching 10,000 URLs
//!
//! [`Client::fetch_all`] takes any iterator of URLs or [`Request`]s and runs them with a
//! bound on requests in flight, overall and per host; [`Batch::run`] returns every result in
//! input order with a summary, [`Batch::stream`] yields them as they complete. It is polite
//! by host: a per-host rate, retries with backoff, and a whole-host pause on 429 or 503 for
//! the server's `Retry-After` (see [`batch`]).
//!
//! ```
//! use volley::{Client, Runtime};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
//!     let urls = (0..10_000).map(|i| server.url(&format!("/get?i={i}")));
//!
//!     let report = Client::new()
//!         .fetch_all(urls)
//!         .concurrency(200)
//!         .keep_bodies(false)
//!         .run()
//!         .await;
//!     assert_eq!(report.summary.ok, 10_000);
//!     let first = report.results[0].outcome.as_ref().unwrap();
//!     assert_eq!(first.status, 200);
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Streaming a body
//!
//! [`Response::chunk`] hands the body over as it arrives, decoded (gzip, deflate; br and zstd
//! with their features), without holding all of it; a body that is not decoded comes in
//! pieces of up to 64 KiB, shared with the connection's buffer rather than copied. A request
//! [`Body`] can stream too: from a reader, a channel fed by another thread or task, or an
//! `AsyncRead`.
//!
//! ```
//! use volley::{Client, Runtime};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
//!
//!     let mut resp = Client::new().get(server.url("/bytes/1000000")).send().await?;
//!     let mut total = 0;
//!     while let Some(chunk) = resp.chunk().await? {
//!         total += chunk.len();
//!     }
//!     assert_eq!(total, 1_000_000);
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Modules, from the bottom up
//!
//! Each layer uses only the ones above it in this list; [`architecture`] (the repository's
//! ARCHITECTURE.md) walks one request through them, file by file.
//!
//! - [`rt`]: the runtime. [`Runtime`] and its `block_on` loop, the executor, the `mio`
//!   reactor, timers ([`sleep`], [`timeout`], [`interval`]), [`spawn`] and
//!   [`spawn_blocking`].
//! - [`sync`]: [`sync::oneshot`] and [`sync::mpsc`] channels, [`sync::join_all`] and
//!   [`sync::select`], for tasks on any thread and any executor; inside, the parking wait
//!   the blocking client is built on.
//! - [`net`]: sockets on the reactor: [`TcpStream`] (with its hand-written `Connect`, `Read`
//!   and `Write` futures), [`TcpListener`], [`UdpSocket`], TLS (`net::tls`, rustls driven
//!   on the reactor) and [`raise_fd_limit`].
//! - `dns` (private, re-exported): name resolution. [`Resolve`] and its implementations:
//!   [`NativeResolver`] (the default, on the reactor, no helper thread) and
//!   [`SystemResolver`] (`getaddrinfo` on a helper thread), chosen with [`Resolver`].
//! - `http::proto` (private): the sans-IO wire code, plain state machines over byte slices:
//!   request encoding, response heads, body framing, content decoding.
//! - `http` (private, re-exported): the client. [`Client`]; every setting in one [`Config`]
//!   with one [`ClientBuilder`]; the policy between a request and the wire (redirects, the
//!   stale-connection retry); the driver that moves bytes between the wire code and a socket;
//!   the keep-alive pool, [`Proxy`], [`redirect`], the request [`Body`] (buffered or
//!   streamed), [`Response`] and the one [`Error`].
//! - [`robots`]: robots.txt (RFC 9309). [`Robots`], one file's rules for one crawler, and
//!   [`RobotsCache`], which fetches each origin's file once with a [`Client`], keeps it, and
//!   gives a [`RobotsVerdict`] per URL: allowed (with the crawl delay), disallowed, or
//!   deferred while the file is unreachable.
//! - [`batch`]: [`Client::fetch_all`]: many requests, bounded in flight, per host.
//! - [`frontier`]: the URLs still to fetch, shared by workers: put, lease, complete, with
//!   leases that run out so that no URL is lost; in memory, or in Redis streams for workers
//!   on many machines (feature `redis`).
//! - [`threaded`]: [`threaded::Client`], `Send + Sync + Clone`, for tokio or any executor:
//!   each request runs on a volley loop of the client's own threads and crosses back on
//!   [`sync`] channels.
//! - [`blocking`]: [`blocking::Client`], the threaded client with each call waited for on
//!   the calling thread, as `reqwest::blocking`.
//!
//! Test code is not part of the library: the test server is the `volley-testserver` crate of
//! this workspace, and the fuzz drivers (`testing`) are compiled for tests and the `fuzzing`
//! feature only.
//!
//! ## Features
//!
//! On by default: `tls` (HTTPS with rustls and *ring*, and Mozilla's root certificates from
//! webpki-roots), `gzip` and `deflate` (decoding those `Content-Encoding`s, with flate2's
//! pure-Rust backend), `json` (reqwest's serde conveniences, `RequestBuilder::json`, `query`
//! and `form`, and `Response::json`, with serde, serde_json and serde_urlencoded). Off by
//! default: `brotli` and `zstd` (those codings, pure Rust), `cookies` (a cookie store per
//! client, `ClientBuilder::cookie_store`, with the cookie_store crate), `native-roots` (the
//! platform's root certificates too; implies `tls`), `futures-io` (`AsyncRead` and
//! `AsyncWrite` for [`TcpStream`], `AsyncRead` for [`Response`], `Body::from_async_read`),
//! `psl` (`HostGrouping::RegistrableDomain`), `redis` (`frontier::RedisFrontier`, with the
//! redis crate's synchronous API).
//! `fuzzing` is internal: hidden entry points for the fuzz targets, not a public API.
//!
//! ## Coming from reqwest
//!
//! The request and response API keeps reqwest's names, so most code ports by replacing
//! `reqwest::` with `volley::`: `Client::get(..).header(..).query(..).json(..)`,
//! `basic_auth`, `bearer_auth`, `timeout`, `send`; `Response::status`, `headers`,
//! `content_length`, `remote_addr`, `error_for_status(_ref)`, `chunk`, `bytes`, `text` and
//! `json`; `Error::is_timeout`, `is_connect`, `is_decode`; [`Url`] is re-exported. What
//! differs: the futures of a [`Client`] run on volley's [`Runtime`], not tokio, and it
//! belongs to its thread (from tokio or any executor, use [`threaded::Client`]; from plain
//! threads, [`blocking::Client`], as `reqwest::blocking`); timeouts are on by default (see
//! [`Client`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

#[doc = include_str!("../ARCHITECTURE.md")]
pub mod architecture {}
pub mod batch;
pub mod blocking;
mod dns;
pub mod frontier;
mod http;
pub mod net;
pub mod robots;
pub mod rt;
pub mod sync;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod testing;
pub mod threaded;
pub use crate::dns::native::{DnsStats, NativeResolver};
pub use crate::dns::resolve::{Resolve, Resolving};
pub use crate::dns::resolver::Resolver;
pub use crate::dns::system::SystemResolver;
pub use crate::http::body::{Body, BodySendError, BodySender};
pub use crate::http::client::{Client, RequestBuilder};
pub use crate::http::config::{ClientBuilder, Config};
pub use crate::http::error::{BodyFailure, CertReason, Error, Kind as ErrorKind, Limit, Phase};
pub use crate::http::proxy::Proxy;
pub use crate::http::redirect;
pub use crate::http::request::{IntoUrl, Request};
pub use crate::http::response::Response;
pub use crate::http::timings::Timings;
#[cfg(feature = "tls")]
pub use crate::http::tls::Certificate;
pub use ::http::{header, HeaderMap, Method, StatusCode, Version};
pub use ::url::Url;
pub use batch::{Batch, FetchResult, Fetched, RetryPolicy};
pub use net::fdlimit::raise_fd_limit;
pub use net::{TcpListener, TcpStream, UdpSocket};
pub use robots::{Robots, RobotsCache, RobotsVerdict};
pub use rt::{
    interval, sleep, sleep_until, spawn, spawn_blocking, timeout, timeout_at, JoinError,
    JoinHandle, Runtime,
};
