//! HTTP/1.1 on the wire, sans-IO: plain state machines over byte slices, with no socket, no
//! timer and nothing of the client (hyper's `proto/h1`, ureq-proto). The driver (`conn.rs`)
//! and the response move bytes between them and a connection.
//!
//! - `encode`: the request head, as bytes for one write.
//! - `head`: the response head (httparse), and the framing rules of RFC 9112 §6.3.
//! - `body`: the body framings (none, `Content-Length`, chunked with trailers, until close).
//! - `decode`: content codings, `Accept-Encoding` and the incremental decoders.
//! - `props` (tests only): property tests of the head parser and the body decoder.

pub(crate) mod body;
pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod head;
#[cfg(test)]
mod props;
