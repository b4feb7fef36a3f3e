//! Spawned tasks as their spawner sees them: [`spawn`], [`JoinHandle`] and [`JoinError`].
//!
//! A spawned future is wrapped in a small `async` block that polls it under `catch_unwind`,
//! drops it under `catch_unwind` too, checks the abort flag before each poll, and writes the outcome into a `JoinState` shared
//! with the [`JoinHandle`]. The wrapper is what the executor stores; the handle only reads the
//! shared state. Dropping the handle detaches the task; it keeps running.
//!
//! Where it sits: above `context.rs`, which [`spawn`] asks for the current runtime, and above
//! the executor, which stores the wrapper. `runtime.rs` (for `Runtime::spawn`) and
//! `blocking.rs` (for [`JoinError`]) import it; it imports neither back.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::context;
use super::executor::Executor;

/// Spawns a future onto the runtime running on this thread and returns a handle to its output.
///
/// The future need not be `Send`: it runs on this thread only. It starts on the next turn of
/// the loop, not inside `spawn`.
///
/// # Panics
///
/// Panics if no runtime is running on this thread, that is, outside
/// [`Runtime::block_on`](crate::Runtime::block_on). Use
/// [`Runtime::spawn`](crate::Runtime::spawn) to spawn from outside.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match context::current() {
        Some(core) => spawn_on(&core.executor, future),
        None => panic!("volley::spawn called outside a runtime: call it inside Runtime::block_on"),
    }
}

/// Futures larger than this many bytes get a box of their own inside the wrapper.
///
/// The wrapper `async` block keeps the future it captured and the pinned copy it polls (an
/// `async` block's captures keep their own storage), so a future stored inline costs twice its
/// size. A box turns the captured copy into a pointer: for a batch request's 2.7 KB future that
/// is 2.8 KB per task instead of 5.5 KB, for one more allocation. Small futures stay inline.
const INLINE_FUTURE_MAX: usize = 256;

/// Wraps `future` and stores it in `executor`.
pub(crate) fn spawn_on<F>(executor: &Executor, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    if std::mem::size_of::<F>() > INLINE_FUTURE_MAX {
        wrap(executor, Box::pin(future))
    } else {
        wrap(executor, future)
    }
}

/// Wraps `future` in the task wrapper described in the module docs and stores it.
fn wrap<F>(executor: &Executor, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = Rc::new(JoinState {
        stage: RefCell::new(Stage::Running),
        join_waker: RefCell::new(None),
        aborted: Cell::new(false),
        task_waker: RefCell::new(None),
    });
    let guard = CancelOnDrop(state.clone());
    let task = async move {
        let guard = guard;
        // The future sits in a pinned `Option` so it can be dropped in place, under
        // `catch_unwind`, as soon as it completes or is aborted: a destructor that panics is
        // reported at the handle like a panic in `poll`, and never unwinds into the loop.
        let mut future = pin!(Some(future));
        let result = poll_fn(|cx| {
            let outcome = if guard.0.aborted.get() {
                Err(JoinError::cancelled())
            } else {
                let Some(running) = future.as_mut().as_pin_mut() else {
                    return Poll::Ready(Err(JoinError::cancelled()));
                };
                match catch_unwind(AssertUnwindSafe(|| running.poll(cx))) {
                    Ok(Poll::Ready(output)) => Ok(output),
                    Ok(Poll::Pending) => return Poll::Pending,
                    Err(payload) => Err(JoinError::panicked(payload)),
                }
            };
            match catch_unwind(AssertUnwindSafe(|| future.set(None))) {
                Ok(()) => Poll::Ready(outcome),
                Err(payload) => Poll::Ready(Err(JoinError::panicked(payload))),
            }
        })
        .await;
        guard.0.finish(result);
    };
    let waker = executor.spawn(Box::pin(task));
    *state.task_waker.borrow_mut() = Some(waker);
    JoinHandle { state }
}

/// Where the task's outcome waits for its handle.
enum Stage<T> {
    Running,
    Finished(Result<T, JoinError>),
    /// The handle has taken the outcome.
    Consumed,
}

/// State shared by a task's wrapper and its [`JoinHandle`].
struct JoinState<T> {
    stage: RefCell<Stage<T>>,
    /// The task awaiting the handle, if any.
    join_waker: RefCell<Option<Waker>>,
    /// Set by [`JoinHandle::abort`]; the wrapper checks it before each poll.
    aborted: Cell<bool>,
    /// The task's own waker, so `abort` can get it polled. Dropped when the task finishes.
    task_waker: RefCell<Option<Waker>>,
}

impl<T> JoinState<T> {
    fn finish(&self, result: Result<T, JoinError>) {
        if !matches!(*self.stage.borrow(), Stage::Running) {
            return; // already finished, or the handle took the outcome
        }
        *self.stage.borrow_mut() = Stage::Finished(result);
        self.task_waker.borrow_mut().take();
        if let Some(waker) = self.join_waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// Reports cancellation if the wrapper is dropped before it finished: the runtime was dropped
/// with the task still pending.
struct CancelOnDrop<T>(Rc<JoinState<T>>);

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        self.0.finish(Err(JoinError::cancelled()));
    }
}

/// An owned permission to await a spawned task's output.
///
/// It is a future: awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked or
/// was cancelled. Dropping it detaches the task, which keeps running.
#[must_use = "dropping a JoinHandle detaches the task; call .abort() to cancel it"]
pub struct JoinHandle<T> {
    state: Rc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    /// Cancels the task. Its future is dropped the next time the loop reaches it, and awaiting
    /// this handle then reports [`JoinError::is_cancelled`]. A task that already finished keeps
    /// its output.
    pub fn abort(&self) {
        if let Stage::Running = *self.state.stage.borrow() {
            self.state.aborted.set(true);
            if let Some(waker) = self.state.task_waker.borrow().as_ref() {
                waker.wake_by_ref();
            }
        }
    }

    /// True once the task has finished, whether it completed, panicked or was cancelled.
    pub fn is_finished(&self) -> bool {
        !matches!(*self.state.stage.borrow(), Stage::Running)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut stage = self.state.stage.borrow_mut();
        match std::mem::replace(&mut *stage, Stage::Consumed) {
            Stage::Finished(result) => Poll::Ready(result),
            Stage::Running => {
                *stage = Stage::Running;
                let mut join_waker = self.state.join_waker.borrow_mut();
                match join_waker.as_ref() {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *join_waker = Some(cx.waker().clone()),
                }
                // The task's wrapper wakes us when it finishes.
                Poll::Pending
            }
            Stage::Consumed => panic!("JoinHandle polled after it returned the task's output"),
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task gave no output: it was cancelled, or it panicked.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    Panicked(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panicked(payload),
        }
    }

    /// True if the task was aborted, or dropped with its runtime before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// True if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// The panic payload, to pass to `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// Panics if the error is not a panic; check [`is_panic`](Self::is_panic) first.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.repr {
            Repr::Panicked(payload) => payload,
            Repr::Cancelled => panic!("JoinError::into_panic called on a cancelled task"),
        }
    }

    /// The panic message, when the payload is a string (as `panic!` makes it).
    fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panicked(payload) => payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str)),
            Repr::Cancelled => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("task was cancelled"),
            (Repr::Panicked(_), Some(msg)) => write!(f, "task panicked: {msg}"),
            (Repr::Panicked(_), None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panicked(_) => write!(f, "JoinError::Panicked({:?})", self.panic_message()),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(err: JoinError) -> std::io::Error {
        std::io::Error::other(err.to_string())
    }
}
