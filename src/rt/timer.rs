//! The timer driver: the pending deadlines of one runtime, and firing the ones that passed.
//!
//! Pending timers live in one ordered map keyed by `(deadline, id)`, the design of
//! `async-io`. The first key gives the poll timeout; after each poll, the loop pops every key
//! whose deadline has passed and wakes its task. A timer handle (`sleep.rs`) knows its own key,
//! so dropping it removes exactly that entry in `O(log n)`, with no scan: this matters because
//! most request timeouts are cancelled, never fired.
//!
//! Where it sits: at the bottom of `rt`, a driver beside the executor and the reactor. It
//! imports no other runtime file. `context.rs` holds one [`Timers`] per runtime in `Core`,
//! `runtime.rs` asks it for the poll timeout and fires it, and the handles in `sleep.rs` find
//! it through the context and register with it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::task::Waker;
use std::time::Instant;

/// A timer's key: its deadline, then a sequence number to tell equal deadlines apart.
pub(crate) type TimerKey = (Instant, u64);

/// The pending timers of one runtime.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    pending: RefCell<BTreeMap<TimerKey, Waker>>,
    next_id: Cell<u64>,
}

impl Timers {
    pub(crate) fn insert(&self, deadline: Instant, waker: Waker) -> TimerKey {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.pending.borrow_mut().insert((deadline, id), waker);
        (deadline, id)
    }

    /// Replaces the waker of a pending timer, unless it would wake the same task.
    pub(crate) fn update(&self, key: TimerKey, waker: &Waker) {
        if let Some(w) = self.pending.borrow_mut().get_mut(&key) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    pub(crate) fn remove(&self, key: TimerKey) {
        let removed = self.pending.borrow_mut().remove(&key);
        drop(removed); // outside the borrow
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.borrow().first_key_value().map(|(k, _)| k.0)
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.borrow().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.borrow().is_empty()
    }

    /// Wakes and removes every timer whose deadline is at or before `now`.
    pub(crate) fn fire(&self, now: Instant) {
        loop {
            let due = {
                let mut pending = self.pending.borrow_mut();
                match pending.first_key_value() {
                    Some((key, _)) if key.0 <= now => pending.pop_first(),
                    _ => None,
                }
            };
            match due {
                Some((_, waker)) => waker.wake(),
                None => break,
            }
        }
    }
}
