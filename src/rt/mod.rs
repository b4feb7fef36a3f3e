//! The runtime: one loop per thread that runs tasks, polls `mio` and fires timers.
//!
//! One file per concept, bottom to top; each imports only files listed above it:
//!
//! - `executor.rs` (driver): the task slab, the run queue and the deduplicating wakers.
//! - `reactor.rs` (driver): `mio::Poll`, edge-triggered readiness per source, tagged tokens.
//! - `timer.rs` (driver): the ordered map of deadlines that the loop fires.
//! - `context.rs`: the thread-local current runtime (`Core`: the three drivers), [`in_runtime`].
//! - `task.rs`: [`spawn`], [`JoinHandle`] and [`JoinError`].
//! - `sleep.rs`: [`sleep`](fn@sleep), [`sleep_until`], [`timeout`], [`timeout_at`],
//!   [`interval`].
//! - `blocking.rs`: [`spawn_blocking`], on a process-wide pool of helper threads.
//! - `runtime.rs`: [`Runtime`] and the `block_on` loop.
//!
//! The drivers never ask which runtime is current; the handles above `context.rs` do, and pass
//! the driver they found down. Outside `rt`, `net` registers its sockets with the reactor
//! (`reactor.rs`, found through `context.rs`); the rest of the crate uses the items below.
//!
//! # Example
//!
//! An echo over loopback: a spawned server task and a client, on one thread.
//!
//! ```
//! use volley::{Runtime, TcpListener, TcpStream};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())?;
//!     let addr = listener.local_addr()?;
//!     let server = volley::spawn(async move {
//!         let (mut conn, _) = listener.accept().await?;
//!         let mut buf = [0; 64];
//!         let n = conn.read(&mut buf).await?;
//!         conn.write_all(&buf[..n]).await
//!     });
//!
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut reply = [0; 5];
//!     let n = client.read(&mut reply).await?;
//!     assert_eq!(&reply[..n], b"hello");
//!     server.await??;
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod blocking;
pub(crate) mod context;
mod executor;
pub(crate) mod reactor;
mod runtime;
mod sleep;
mod task;
mod timer;

pub use blocking::{spawn_blocking, BlockingTask, BLOCKING_KEEP_ALIVE, MAX_BLOCKING_THREADS};
pub use context::in_runtime;
pub(crate) use executor::{defer_wake, enable_deferred_wakes, flush_deferred};
pub use runtime::{Runtime, RuntimeStats, MAX_POLLS_PER_TURN};
pub use sleep::{interval, sleep, sleep_until, timeout, timeout_at, Elapsed, Interval, Sleep};
pub use task::{spawn, JoinError, JoinHandle};
