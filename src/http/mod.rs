//! The HTTP/1.1 client: the wire code, sans-IO (`proto/`), and the client around it.
//!
//! From the top: `client.rs` ([`Client`](crate::Client), `RequestBuilder`) → `policy.rs`
//! (redirects, the stale-connection retry: where retries, backoff and rate limits go) →
//! `exchange.rs` (one exchange: route, connection, send, head) → `conn.rs` (the driver:
//! connect, TLS, write, read) over `proto/`. Beside them: `config.rs` (every setting, one
//! builder), `context.rs` (what a client shares), `cookies.rs` (the cookie store),
//! `request.rs`, `body.rs` (the request `Body`, buffered or streamed), `response.rs`, `pool.rs`,
//! `names.rs` (the client's name layer over `crate::dns`), `proxy.rs`, `tls.rs`,
//! `redirect.rs`, `error.rs`, `timings.rs`. Every module imports only ones below it.

pub(crate) mod body;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod context;
pub(crate) mod cookies;
pub(crate) mod error;
pub(crate) mod exchange;
pub(crate) mod names;
pub(crate) mod policy;
pub(crate) mod pool;
pub(crate) mod proto;
pub(crate) mod proxy;
pub mod redirect;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod timings;
#[cfg(feature = "tls")]
pub(crate) mod tls;
