//! [`spawn_blocking`]: run blocking work (a `getaddrinfo`, a file read) on a helper thread.
//!
//! One process-wide pool serves every runtime. Threads start on demand, up to
//! [`MAX_BLOCKING_THREADS`], and exit after [`BLOCKING_KEEP_ALIVE`] without work, so an idle
//! program has no helper threads at all. The result travels back through a mutex-guarded slot,
//! and the helper wakes the waiting task through its waker, which interrupts the loop's poll.
//!
//! Where it sits: beside the other handles, above `task.rs`, whose [`JoinError`] reports a
//! panicking job. It needs no runtime: the pool is process-wide and the waker finds the task's
//! executor on its own, so it imports neither `context.rs` nor a driver.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use super::task::JoinError;

/// The most helper threads the pool runs at once. Further jobs wait in its queue.
pub const MAX_BLOCKING_THREADS: usize = 16;

/// How long an idle helper thread waits for work before it exits.
pub const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

#[derive(Default)]
struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Jobs run outside the lock and under catch_unwind, so poisoning cannot leave bad state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(Pool::default)
    }

    fn execute(&'static self, job: Job) {
        let mut state = lock(&self.state);
        state.queue.push_back(job);
        if state.queue.len() > state.idle && state.threads < MAX_BLOCKING_THREADS {
            state.threads += 1;
            let spawned = thread::Builder::new()
                .name("volley-blocking".into())
                .spawn(move || self.work_loop());
            if spawned.is_err() {
                // The OS refused a thread; the threads we have will drain the queue. With none,
                // the job waits until a later call manages to start one.
                state.threads -= 1;
            }
        }
        drop(state);
        self.work.notify_one();
    }

    fn work_loop(&self) {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job();
                state = lock(&self.state);
                continue;
            }
            state.idle += 1;
            let (next, waited) = self
                .work
                .wait_timeout(state, BLOCKING_KEEP_ALIVE)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            if waited.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }
}

/// Where a blocking job leaves its result for the task awaiting it.
struct Slot<T> {
    result: Option<thread::Result<T>>,
    waker: Option<Waker>,
}

/// Runs `f` on a helper thread and returns a future of its result.
///
/// Use it for work that would block the loop. The future gives `Err` with
/// [`JoinError::is_panic`] if `f` panicked. Dropping the future does not stop `f`; its result
/// is discarded.
pub fn spawn_blocking<F, T>(f: F) -> BlockingTask<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot {
        result: None,
        waker: None,
    }));
    let job_slot = slot.clone();
    Pool::global().execute(Box::new(move || {
        let result = catch_unwind(AssertUnwindSafe(f));
        let waker = {
            let mut slot = lock(&job_slot);
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }));
    BlockingTask { slot }
}

/// The future of a [`spawn_blocking`] job's result.
#[must_use = "the job runs anyway; await this to get its result"]
pub struct BlockingTask<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Future for BlockingTask<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.slot);
        match slot.result.take() {
            Some(Ok(value)) => Poll::Ready(Ok(value)),
            Some(Err(payload)) => Poll::Ready(Err(JoinError::panicked(payload))),
            None => {
                match &slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                // The helper thread wakes us when it stores the result.
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for BlockingTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let done = lock(&self.slot).result.is_some();
        f.debug_struct("BlockingTask").field("done", &done).finish()
    }
}
