//! [`Resolve`]: the trait every resolver implements, native, system or your own, and
//! [`Resolving`], the future it returns. The lowest piece of name resolution: it imports
//! nothing of the crate.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

/// The future a [`Resolve`] returns.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>>>>;

/// Turns a host name into addresses. Implement it to plug in a resolver of your own.
///
/// The client asks only on a cache miss, and only for names: IP literals and fixed mappings
/// never reach it. An empty list counts as "not found".
pub trait Resolve {
    /// Resolves `host`; `port` goes into the returned addresses.
    fn resolve(&self, host: &str, port: u16) -> Resolving;

    /// Whether this resolver caches answers itself, honouring the records' TTLs. When it
    /// does, the client skips its own fixed-time cache
    /// ([`Config::DNS_TTL`](crate::Config::DNS_TTL)) for it, so an answer is not kept longer
    /// than its TTL. Default: `false`.
    fn caches_answers(&self) -> bool {
        false
    }
}
