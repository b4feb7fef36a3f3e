//! Test-only code, compiled for this crate's own tests and the `fuzzing` feature, never for
//! a user's build: hidden, not a public API, and free to change.
//!
//! - `fuzz.rs`: the entry points of the fuzz targets in `fuzz/` ([`fuzz::head`],
//!   [`fuzz::body`], [`fuzz::dns`]) and the incremental drivers they share with the property
//!   tests (`http::proto::props`, `dns::props`).
//! - `dns_responder.rs` (tests only): the responder side of DNS messages (read a query, build a response),
//!   written apart from the resolver's parser so that the two check each other.

#[cfg(test)]
pub(crate) mod dns_responder;
pub mod fuzz;
