//! A DNS resolver native to the reactor (issue 7), step one: the sans-IO pieces.
//!
//! - `packet`: build queries and parse responses (RFC 1035, RFC 3596), DNS-over-TCP framing.
//! - `conf`: `/etc/resolv.conf` and the search-list order of glibc.
//! - `hosts`: `/etc/hosts`.
//! - `testing` (tests only): the responder side, to build responses.
//! - `native`: [`NativeResolver`](crate::NativeResolver), the stub resolver that sends
//!   those queries over UDP and TCP on the reactor (the only part doing I/O).

pub(crate) mod conf;
pub(crate) mod hosts;
pub(crate) mod native;
pub(crate) mod packet;
#[cfg(test)]
mod props;
#[cfg(test)]
pub(crate) mod testing;
