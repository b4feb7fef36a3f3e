//! Name resolution, with no dependency on the HTTP client: the [`Resolve`](crate::Resolve)
//! trait, the resolvers, and the native one's sans-IO pieces.
//!
//! - `resolve`: the [`Resolve`](crate::Resolve) trait and its future,
//!   [`Resolving`](crate::Resolving).
//! - `resolver`: [`Resolver`](crate::Resolver), the one type a client takes: native (the
//!   default), system, or your own.
//! - `system`: [`SystemResolver`](crate::SystemResolver), `getaddrinfo` on a helper thread.
//! - `native`: [`NativeResolver`](crate::NativeResolver), a stub resolver native to the
//!   reactor (issue 7) that sends the queries below over UDP and TCP on it (the only part
//!   doing I/O). Its sans-IO pieces:
//!   - `packet`: build queries and parse responses (RFC 1035, RFC 3596), DNS-over-TCP
//!     framing.
//!   - `conf`: `/etc/resolv.conf` and the search-list order of glibc.
//!   - `hosts`: `/etc/hosts`.

pub(crate) mod conf;
pub(crate) mod hosts;
pub(crate) mod native;
pub(crate) mod packet;
#[cfg(test)]
mod props;
pub(crate) mod resolve;
pub(crate) mod resolver;
pub(crate) mod system;
