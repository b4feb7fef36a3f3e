//! The HTTP/1.1 client: sans-IO request encoder, head parser and body decoder, plus the
//! driver that moves bytes between them and a [`TcpStream`](crate::TcpStream).

// The client that drives these sans-IO pieces lands in the following commits of issue 3;
// until then only their unit tests use them.
#![allow(dead_code)]

pub(crate) mod body;
pub(crate) mod encode;
pub(crate) mod error;
pub(crate) mod head;
