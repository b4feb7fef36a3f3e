//! The runtime: one executor, one reactor and one timer set, driven by [`Runtime::block_on`].
//!
//! # The loop
//!
//! `block_on` enters the runtime (sets the thread-local context, `context.rs`, that
//! [`spawn`](crate::spawn), the I/O types and the timers find it through) and turns this loop
//! until its own future completes:
//!
//! 1. **Run ready tasks.** Pop woken task ids and poll each task once, the `block_on` future
//!    included, up to [`MAX_POLLS_PER_TURN`] so that I/O is never starved by tasks that keep
//!    waking each other.
//!    Then the wakes that tasks sent to other threads' executors through `crate::sync`'s
//!    channels, held back during the run, go out together (`executor::defer_wake`), unless
//!    tasks are still queued and fewer than 64 are held.
//! 2. **Compute the timeout.** Zero if a task is still queued; otherwise the time until the
//!    earliest timer deadline; otherwise none (sleep until an event).
//! 3. **Poll.** `mio::Poll::poll` with that timeout.
//! 4. **Dispatch.** Each event wakes the reader, the writer or both of its source; timers past
//!    their deadline wake their tasks; ids woken from other threads join the run queue.
//!
//! A runtime belongs to the thread that created it: nothing in it is `Send`, and no lock is
//! taken on the hot path. Only wakers cross threads. Run one runtime per core for more.
//!
//! Where it sits: at the top of `rt`. It builds the three drivers (`executor.rs`, `reactor.rs`,
//! `timer.rs`), holds them in a `context::Core`, enters the context, and spawns through
//! `task.rs`. No other file imports it; the public items are re-exported by `rt/mod.rs`.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::context::{self, Core};
use super::executor::{deferred_len, flush_deferred, Executor, Shared, TaskId};
use super::reactor::Reactor;
use super::task::{spawn_on, JoinHandle};
use super::timer::Timers;

/// The most wakes for other threads' tasks held back across busy loop turns.
const MAX_DEFERRED_WAKES: usize = 64;

/// How many tasks one loop turn polls before it looks at I/O and timers again.
pub const MAX_POLLS_PER_TURN: usize = 256;

/// A single-threaded async runtime: a task executor, a `mio` reactor and timers.
///
/// ```
/// let rt = volley::Runtime::new()?;
/// let answer = rt.block_on(async {
///     let task = volley::spawn(async { 6 * 7 });
///     task.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Dropping the runtime drops every task that is still pending, which closes their sockets and
/// cancels their timers.
#[derive(Debug)]
pub struct Runtime {
    core: Rc<Core>,
}

/// Counts of what a runtime holds, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeStats {
    /// Spawned tasks that have not finished.
    pub tasks: usize,
    /// I/O sources registered with the reactor.
    pub io_sources: usize,
    /// Timers waiting for their deadline.
    pub timers: usize,
    /// Calls to `mio::Poll::poll` so far.
    pub turns: u64,
    /// Tasks spawned so far.
    pub spawned: u64,
}

impl Runtime {
    /// Creates a runtime. It fails only if the OS refuses an epoll instance or an eventfd.
    pub fn new() -> io::Result<Runtime> {
        let reactor = Reactor::new()?;
        let shared = Arc::new(Shared::new(reactor.poll_waker()?));
        Ok(Runtime {
            core: Rc::new(Core {
                executor: Rc::new(Executor::new(shared)),
                reactor: Rc::new(reactor),
                timers: Rc::new(Timers::default()),
            }),
        })
    }

    /// Runs `future` to completion on this thread, driving every spawned task, I/O source and
    /// timer meanwhile, and returns its output.
    ///
    /// Tasks still pending when it returns stay in the runtime: a later `block_on` runs them
    /// again, and dropping the runtime drops them.
    ///
    /// # Panics
    ///
    /// Panics if called from inside a running runtime (a nested `block_on` would stall the
    /// outer loop), and propagates a panic of `future` itself. Panics of spawned tasks are
    /// caught and reported through their [`JoinHandle`].
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _entered = context::enter(&self.core);
        let executor = &self.core.executor;
        let mut future = pin!(future);
        let (main_handle, main_waker) = executor.main_waker();
        executor.run_queue.borrow_mut().push_back(TaskId::MAIN);
        loop {
            // 1. Run ready tasks.
            for _ in 0..MAX_POLLS_PER_TURN {
                let Some(id) = executor.next_woken() else {
                    break;
                };
                if id == TaskId::MAIN {
                    Executor::begin_poll(&main_handle);
                    let mut cx = Context::from_waker(&main_waker);
                    if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                        flush_deferred();
                        return output;
                    }
                } else {
                    executor.run(id);
                }
            }
            // Wakes for other threads' tasks, held back while tasks ran, go out together:
            // before the loop may sleep, or once enough have gathered. While tasks are still
            // queued the loop turns again at once, so holding them one more turn costs
            // microseconds and saves the other thread a wake-up per answer.
            let busy = executor.has_woken();
            if !busy || deferred_len() >= MAX_DEFERRED_WAKES {
                flush_deferred();
            }
            // 2. Compute the timeout.
            let timeout = if busy {
                Some(std::time::Duration::ZERO)
            } else {
                self.core
                    .timers
                    .next_deadline()
                    .map(|deadline| deadline.saturating_duration_since(Instant::now()))
            };
            // 3. Poll, and 4. dispatch.
            if let Err(e) = self.core.reactor.turn(timeout) {
                // epoll_wait fails only on a broken epoll fd or bad arguments: nothing to retry.
                panic!("volley: polling the reactor failed: {e}");
            }
            if !self.core.timers.is_empty() {
                self.core.timers.fire(Instant::now());
            }
            executor.drain_remote();
        }
    }

    /// Spawns a future onto this runtime from outside it. It first runs when `block_on` next
    /// turns the loop. Inside the runtime, the free function [`spawn`](crate::spawn) does
    /// the same.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_on(&self.core.executor, future)
    }

    /// Counts of live tasks, I/O sources and timers.
    pub fn stats(&self) -> RuntimeStats {
        RuntimeStats {
            tasks: self.core.executor.live(),
            io_sources: self.core.reactor.live(),
            timers: self.core.timers.len(),
            turns: self.core.reactor.turns(),
            spawned: self.core.executor.spawned(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Destructors of tasks may spawn, sleep or touch I/O: let them find this runtime.
        let _entered = context::enter_for_drop(&self.core);
        self.core.executor.shutdown();
        // Dropped tasks may have closed channels whose other ends wait on other threads.
        flush_deferred();
    }
}
