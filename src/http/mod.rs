//! The HTTP/1.1 client: sans-IO request encoder, head parser and body decoder, plus the
//! driver that moves bytes between them and a [`TcpStream`](crate::TcpStream).

pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod context;
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
