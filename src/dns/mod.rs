//! A DNS resolver native to the reactor (issue 7), step one: the sans-IO pieces.
//!
//! - `packet`: build queries and parse responses (RFC 1035, RFC 3596), DNS-over-TCP framing.
//! - `conf`: `/etc/resolv.conf` and the search-list order of glibc.
//! - `hosts`: `/etc/hosts`.
//! - `testing` (tests only): the responder side, to build responses.
//!
//! Nothing here does I/O; the resolver future that sends queries over UDP and TCP on the
//! reactor comes in a later step.

pub(crate) mod conf;
pub(crate) mod hosts;
pub(crate) mod packet;
#[cfg(test)]
mod props;
#[cfg(test)]
pub(crate) mod testing;
