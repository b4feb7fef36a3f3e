//! [`SharedSlots`]: one bound on the requests in flight shared by the loops of a sharded
//! batch (the threaded client's, on several loops), so that `concurrency` bounds the whole
//! batch while each loop takes the slots its hosts need.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Waker};

use crate::sync::lock_ignoring_poison as lock;

/// Slots in flight shared by several batches on several threads.
///
/// A batch looks for a free slot before it takes a request to start, and takes one when it
/// starts it: two loops that look at once may both start one, so the bound is exceeded by
/// at most one request per loop, for a moment. A batch that finds none waits to be woken by
/// the next request that ends on any loop.
#[derive(Debug)]
pub(crate) struct SharedSlots {
    limit: usize,
    used: AtomicUsize,
    waiting: Mutex<Vec<Waker>>,
}

impl SharedSlots {
    pub(crate) fn new(limit: usize) -> SharedSlots {
        SharedSlots {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            waiting: Mutex::new(Vec::new()),
        }
    }

    /// True if a slot is free; else `cx` is woken when one is given back.
    pub(crate) fn free(&self, cx: &mut Context<'_>) -> bool {
        if self.used.load(Ordering::Acquire) < self.limit {
            return true;
        }
        {
            let mut waiting = lock(&self.waiting);
            if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                waiting.push(cx.waker().clone());
            }
        }
        // A slot given back between the look and the registration would wake no one.
        self.used.load(Ordering::Acquire) < self.limit
    }

    /// Takes a slot for a request that starts.
    pub(crate) fn take(&self) {
        self.used.fetch_add(1, Ordering::AcqRel);
    }

    /// Gives back `n` slots and wakes the batches waiting for one.
    pub(crate) fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.used.fetch_sub(n, Ordering::AcqRel);
        let woken = std::mem::take(&mut *lock(&self.waiting));
        for waker in woken {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A full bound registers the waiter; a slot given back wakes it.
    #[test]
    fn a_waiter_is_woken_when_a_slot_comes_back() {
        let slots = SharedSlots::new(2);
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(slots.free(&mut cx));
        slots.take();
        slots.take();
        assert!(!slots.free(&mut cx));
        assert!(!slots.free(&mut cx), "registered once");
        assert_eq!(lock(&slots.waiting).len(), 1);
        slots.give(1);
        assert!(flag.0.load(Ordering::SeqCst));
        assert!(slots.free(&mut cx));
    }
}
