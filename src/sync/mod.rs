//! Small tools for your own tasks, that work across threads and with any executor:
//! [`oneshot`] and [`mpsc`] channels, [`join_all`] and [`select`].
//!
//! Every waiting side stores a std [`Waker`](std::task::Waker) and is woken by the other
//! side, from whatever thread it runs on: a volley task woken from a tokio worker is queued
//! on its loop through the runtime's `mio::Waker`, and a tokio task woken from a volley loop
//! is queued by tokio. Nothing polls in a loop. Each channel is a `Mutex` around a queue and
//! the wakers; a send or a receive takes the lock once.
//!
//! Users of [`spawn`](crate::spawn) who would otherwise pull in `tokio::sync` or `futures`
//! for these four things can use them; the `futures` crate's and `async-channel`'s work
//! too, as any runtime-independent future does.
//!
//! ```
//! use volley::sync::{join_all, mpsc, oneshot};
//!
//! let rt = volley::Runtime::new()?;
//! rt.block_on(async {
//!     // A result from a plain thread.
//!     let (tx, rx) = oneshot::channel();
//!     std::thread::spawn(move || tx.send(6 * 7));
//!     assert_eq!(rx.await, Ok(42));
//!
//!     // Work from tasks, in order of sending.
//!     let (tx, mut rx) = mpsc::channel(16);
//!     let producers = (0..4).map(|i| {
//!         let tx = tx.clone();
//!         volley::spawn(async move { tx.send(i).await.unwrap() })
//!     });
//!     join_all(producers.collect::<Vec<_>>()).await;
//!     drop(tx);
//!     let mut got = Vec::new();
//!     while let Some(i) = rx.recv().await {
//!         got.push(i);
//!     }
//!     got.sort();
//!     assert_eq!(got, [0, 1, 2, 3]);
//! });
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! On the [`threaded`](crate::threaded) client's loop threads (and nowhere else), a wake is
//! held back until the end of the loop's turn (`rt::defer_wake`), so that a loop answering
//! many tasks of another executor wakes it once for all of them.
//!
//! Where it sits: just above `rt`, whose deferred wake it uses; nothing else of the crate.

mod combinators;
pub mod mpsc;
pub mod oneshot;
mod park;

pub use combinators::{join_all, select, Either, JoinAll, Select};
pub(crate) use park::block_on;

use std::sync::{Mutex, MutexGuard};

use lock_ignoring_poison as lock;

/// Wakes `waker`: at the end of the loop turn on a threaded client's loop thread, else now.
fn wake(waker: std::task::Waker) {
    crate::rt::defer_wake(waker);
}

/// Locks `mutex`, ignoring poisoning: every critical section in this module leaves its state
/// whole before anything that could panic (a waker's `wake` runs after the lock is released).
pub(crate) fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
