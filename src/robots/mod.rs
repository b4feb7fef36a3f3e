//! robots.txt (RFC 9309): which URLs a crawler may fetch, and how slowly.
//!
//! [`Robots`] is one file's rules for one crawler, parsed from bytes (`rules.rs`, sans-IO).
//!
//! Where it sits: above `http`, whose client fetches the files (with a redirect limit of its
//! own per request), and `rt`, which runs each fetch as a task; below `batch`. Nothing of
//! `http` imports it.

mod rules;

pub use rules::{Robots, MAX_ROBOTS_BYTES};
