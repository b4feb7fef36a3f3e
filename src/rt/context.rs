//! The thread-local "current runtime": the [`Core`] that `block_on` is driving on this thread.
//!
//! Where it sits: above the drivers, below the handles. [`Core`] holds the executor, the
//! reactor and the timer driver, so this file imports those three, and none of them imports it
//! back: a driver never asks which runtime is current. The handle-level code that must find
//! the current runtime imports this file: `task.rs` ([`spawn`](crate::rt::spawn)),
//! `sleep.rs` (a [`Sleep`](crate::rt::Sleep)'s first poll) and `net/io_source.rs` (a socket's
//! first registration). `runtime.rs`, at the top, enters it.
//!
//! Entering also enters the executor (see `executor::enter`): a task woken on this thread
//! finds its run queue through the executor's own thread-local, with one access per wake.

use std::cell::RefCell;
use std::rc::Rc;

use super::executor::{self, Executor};
use super::reactor::Reactor;
use super::timer::Timers;

/// Everything one runtime owns. Shared through `Rc` by the runtime and its thread-local context.
#[derive(Debug)]
pub(crate) struct Core {
    /// An `Rc` so that the executor's own thread-local can point at it too.
    pub(crate) executor: Rc<Executor>,
    pub(crate) reactor: Rc<Reactor>,
    pub(crate) timers: Rc<Timers>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Restores the previous context when dropped, also during a panic.
pub(crate) struct Entered {
    previous: Option<Rc<Core>>,
    /// Restores the executor's thread-local; a field, so it drops right after `drop` below.
    _executor: executor::Entered,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

/// Makes `core` the current runtime for `block_on`.
pub(crate) fn enter(core: &Rc<Core>) -> Entered {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        assert!(
            c.is_none(),
            "Runtime::block_on called inside a running runtime; spawn the future instead"
        );
        *c = Some(core.clone());
    });
    Entered {
        previous: None,
        _executor: executor::enter(&core.executor),
    }
}

/// Makes `core` current while the runtime drops its tasks, whatever was current before.
pub(crate) fn enter_for_drop(core: &Rc<Core>) -> Entered {
    let previous = CURRENT
        .try_with(|c| c.borrow_mut().replace(core.clone()))
        .ok()
        .flatten();
    Entered {
        previous,
        _executor: executor::enter(&core.executor),
    }
}

/// The running runtime, if any.
pub(crate) fn current() -> Option<Rc<Core>> {
    CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()
}

/// Calls `f` with the running runtime, without touching its refcount.
pub(crate) fn with_current<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.as_deref().map(f)))
        .ok()
        .flatten()
}

/// Whether a volley runtime is running on this thread, inside
/// [`Runtime::block_on`](crate::rt::Runtime::block_on) (or while a dropped runtime drops its
/// tasks).
///
/// Where it is true, [`spawn`](crate::rt::spawn) works and sockets and timers find their
/// runtime; where it is false, they panic or return an error. Code that may run either way can
/// ask first.
///
/// ```
/// assert!(!volley::rt::in_runtime());
/// let rt = volley::Runtime::new()?;
/// assert!(rt.block_on(async { volley::rt::in_runtime() }));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn in_runtime() -> bool {
    with_current(|_| ()).is_some()
}
