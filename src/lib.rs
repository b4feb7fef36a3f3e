//! # volley
//!
//! An event loop of our own, a `mio::Poll` reactor driving hand-written futures, and an
//! HTTP/1.1 client on it, for fetching many URLs concurrently from one thread.
//!
//! ```
//! use volley::{Client, Runtime};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     // A local httpbin-like server, so the example needs no network.
//!     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
//!
//!     let client = Client::new();
//!     let resp = client.get(server.url("/get")).header("accept", "application/json").send().await?;
//!     assert_eq!(resp.status(), 200);
//!     let body = resp.text().await?;
//!     assert!(body.contains("volley/"));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Architecture
//!
//! ```text
//! user code (async fn / hand-written futures)
//!    │ spawn / block_on / JoinHandle
//!    ▼
//! executor ── run queue of woken tasks ◄── Waker (std::task::Wake, Send + Sync)
//!    │ idle: nothing runnable                     ▲ local wake: push to the queue
//!    ▼                                            │ remote wake: push + mio::Waker
//! reactor: mio::Poll.poll(timeout = earliest timer deadline)
//!    │ events → token → per-source read/write wakers
//!    │ timers past their deadline → wakers
//!    ▼
//! leaf futures, hand-written state machines: Connect, Read, Write, Accept, Sleep
//!    ▲
//! http: Client → pool checkout or (resolve → connect) → write request → read head → body decoder
//! ```
//!
//! - [`rt`] (`rt/runtime.rs`): [`Runtime`] and its loop (run ready tasks, compute the timeout,
//!   poll, dispatch). One runtime per thread; nothing in it is `Send`, so the hot path takes no
//!   lock.
//! - `rt/executor.rs`: the task slab, the run queue and the deduplicating wakers.
//! - `rt/task.rs`: [`spawn`], [`JoinHandle`], [`JoinError`]; `rt/blocking.rs`: [`spawn_blocking`].
//! - `rt/reactor.rs`: `mio::Poll`, per-source edge-triggered readiness, generation-tagged
//!   tokens.
//! - `rt/timer.rs`, `rt/sleep.rs`: [`sleep`], [`timeout`], [`interval`], on an ordered map of
//!   deadlines.
//! - [`net`]: [`TcpStream`] and [`TcpListener`] with the futures [`net::Connect`],
//!   [`net::Read`], [`net::Write`], [`net::Accept`] and friends; with the `tls` feature (on by
//!   default), `net::tls`: rustls (sans-IO) driven on the reactor, a hand-written handshake
//!   future and `TlsStream`, for clients (`TlsConnector`) and servers (`TlsAcceptor`);
//!   [`UdpSocket`] for datagrams (the DNS stub resolver's queries).
//! - `dns` (private; [`Resolve`], [`Resolver`], [`SystemResolver`] and [`NativeResolver`]
//!   re-exported): name resolution, below `http`; the native resolver, the client's default,
//!   has no helper thread. Sans-IO pieces with table and property tests: messages (`packet.rs`:
//!   queries, defensive response parsing with bounded decompression, TCP framing),
//!   `resolv.conf` and the environment with glibc's search order (`conf.rs`), `/etc/hosts`
//!   (`hosts.rs`); and `native.rs`, async code over [`UdpSocket`] and [`TcpStream`]: A and
//!   AAAA at once on one connected socket, retries across servers, TCP on truncation, a TTL
//!   cache, and one query for concurrent lookups of a name.
//! - `http` (private, re-exported flat): the client. Sans-IO pieces over byte slices in
//!   `http/proto/`, with table tests: `encode.rs` (request head), `head.rs` (response head
//!   via httparse, and the RFC 9112 §6.3 framing rules), `body.rs` (Content-Length, chunked
//!   with trailers, until-close) and `decode.rs` (content codings). A thin driver, `conn.rs`, moves bytes between them and a `Stream`, an enum
//!   of a [`TcpStream`] or a boxed `net::tls::TlsStream` (the TLS handshake, `start_tls`,
//!   is the only phase that knows which), one function per phase, each under
//!   [`Phase`]-named deadlines; `connect` races several addresses (Happy Eyeballs).
//!   `config.rs` holds [`Config`] (every setting) and [`ClientBuilder`], `tls.rs`
//!   `Certificate` and the TLS connector. `client.rs` holds [`Client`], `policy.rs` the
//!   request flow's decisions (redirects, the stale-connection retry), `exchange.rs` one
//!   exchange on a connection, `pool.rs` the keep-alive pool, `names.rs` resolution (fixed
//!   mappings, then a [`Resolver`]: native by default, `getaddrinfo` on a helper thread as an
//!   option), `proxy.rs` [`Proxy`] (routing, `NO_PROXY`, `CONNECT` tunnels), `response.rs`
//!   [`Response`] (content codings: gzip and deflate with the default features `gzip` and
//!   `deflate`, br and zstd with the features `brotli` and `zstd`), and `error.rs` the one
//!   [`Error`]. The request future is `async` code over the hand-written leaves; its outer
//!   layers work on captured state in place, since an `async fn` stores each argument twice,
//!   and a spawned future over 256 bytes gets a box of its own inside the task wrapper (a
//!   batch request's task is about 1.9 KB).
//! - `server` (feature `server`, on by default): an embedded httpbin-like HTTP/1.1 test server
//!   with fault endpoints, `volley_testserver::Server`, for tests, examples and benchmarks.
//!
//! # The runtime on its own
//!
//! An echo over loopback: a spawned server task and a client, on one thread.
//!
//! ```
//! use volley::{Runtime, TcpListener, TcpStream};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())?;
//!     let addr = listener.local_addr()?;
//!     let server = volley::spawn(async move {
//!         let (mut conn, _) = listener.accept().await?;
//!         let mut buf = [0; 64];
//!         let n = conn.read(&mut buf).await?;
//!         conn.write_all(&buf[..n]).await
//!     });
//!
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut reply = [0; 5];
//!     let n = client.read(&mut reply).await?;
//!     assert_eq!(&reply[..n], b"hello");
//!     server.await??;
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod batch;
mod dns;
mod http;
pub mod net;
pub mod rt;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod testing;

pub use crate::dns::native::{DnsStats, NativeResolver};
pub use crate::dns::resolve::{Resolve, Resolving};
pub use crate::dns::resolver::Resolver;
pub use crate::dns::system::SystemResolver;
pub use crate::http::client::{Client, RequestBuilder};
pub use crate::http::config::{ClientBuilder, Config};
pub use crate::http::error::{CertReason, Error, Kind as ErrorKind, Limit, Phase};
pub use crate::http::proxy::Proxy;
pub use crate::http::redirect;
pub use crate::http::request::{IntoUrl, Request};
pub use crate::http::response::Response;
pub use crate::http::timings::Timings;
#[cfg(feature = "tls")]
pub use crate::http::tls::Certificate;
pub use ::http::{header, HeaderMap, Method, StatusCode, Version};
pub use batch::{
    Batch, BatchReport, BatchStream, BatchSummary, FetchResult, Fetched, IntoRequest,
    LatencyHistogram, Progress,
};
pub use net::fdlimit::raise_fd_limit;
pub use net::{TcpListener, TcpStream, UdpSocket};
pub use rt::{
    interval, sleep, sleep_until, spawn, spawn_blocking, timeout, timeout_at, BlockingTask,
    Elapsed, Interval, JoinError, JoinHandle, Runtime, RuntimeStats, Sleep,
};
