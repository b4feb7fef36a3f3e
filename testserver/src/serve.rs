//! One accepted connection's life: its requests read in turn and routed, then its close.
//!
//! It sits above `conn.rs` (the connection and its I/O), `endpoints.rs` and `faults.rs` (the
//! answers, which write through a `Conn`), so none of those imports another that imports it
//! back.

use super::conn::{Conn, Next};
use super::endpoints;

/// Serves one accepted connection to its end.
pub(crate) async fn serve(mut conn: Conn) {
    let next = loop {
        let request = match conn.next_request().await {
            Ok(request) => request,
            Err(next) => break next,
        };
        match endpoints::dispatch(&mut conn, request).await {
            Ok(Next::KeepAlive) => {}
            Ok(next) => break next,
            Err(_) => break Next::Close,
        }
    };
    match next {
        Next::Reset => conn.reset(),
        Next::Close | Next::KeepAlive => conn.linger_close().await,
    }
}
