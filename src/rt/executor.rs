//! The executor: a slab of tasks, a run queue of woken task ids, and the wakers that fill it.
//!
//! A task is a boxed `Future<Output = ()>` in a slot of [`TaskSlab`]. Its identity is a
//! [`TaskId`]: the slot index plus the slot's generation, so that a stale wake for a task that
//! has finished never polls the task that reuses its slot.
//!
//! Every task owns one [`TaskWaker`] (an `Arc`, made once at spawn), so polling never
//! allocates. The waker carries a `scheduled` flag: the first wake after a poll queues the task,
//! later wakes see the flag and do nothing, so a task woken many times before it runs is polled
//! once. The executor clears the flag just before it polls, so a wake during the poll queues the
//! task again.
//!
//! A wake on the runtime's own thread pushes the id onto the local run queue, with no lock:
//! it finds the queue through [`RUNNING`], this file's thread-local pointer to the executor that
//! `block_on` is running on this thread (one thread-local access per wake). A wake from any
//! other thread, or for another runtime's task, pushes onto [`Shared::remote`], a mutex-guarded
//! list, and interrupts a sleeping `mio::Poll` through the `mio::Waker`.
//!
//! Where it sits: at the bottom of `rt`, a driver beside the reactor and the timer driver. It
//! imports no other runtime file. `context.rs` holds it in `Core` and calls [`enter`] when it
//! enters, so that [`RUNNING`] is set and restored by the same guard as the current runtime.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

thread_local! {
    /// The executor `block_on` is running on this thread, if any: where a wake on this thread
    /// queues its task. Set and restored by [`enter`].
    static RUNNING: RefCell<Option<Rc<Executor>>> = const { RefCell::new(None) };
}

thread_local! {
    /// Wakes that [`defer_wake`] held back during this loop turn, for [`flush_deferred`].
    static DEFERRED: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
    /// Whether [`defer_wake`] may hold wakes back on this thread: set only on the threaded
    /// client's loop threads, where no code blocks the thread waiting for an answer.
    static DEFER_ENABLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lets [`defer_wake`] hold wakes back on this thread, which must be a loop thread whose
/// tasks never block it waiting for another thread (a held wake would never go out).
pub(crate) fn enable_deferred_wakes() {
    DEFER_ENABLED.with(|d| d.set(true));
}

/// Wakes `waker` at the end of this loop turn if a runtime is running on this thread and it
/// is one of the threaded client's loop threads ([`enable_deferred_wakes`]), else now. The cross-thread channels (`crate::sync`) wake through this: a loop that answers
/// many requests of another thread's tasks in one turn then wakes that thread's executor
/// once with all of them, instead of once per answer while it is still busy (each such wake
/// can cost the other side a syscall and a trip through its poll).
pub(crate) fn defer_wake(waker: Waker) {
    let in_loop = DEFER_ENABLED.try_with(|d| d.get()).unwrap_or(false)
        && RUNNING
            .try_with(|r| r.try_borrow().is_ok_and(|r| r.is_some()))
            .unwrap_or(false);
    if in_loop {
        DEFERRED.with(|d| d.borrow_mut().push(waker));
    } else {
        waker.wake();
    }
}

/// How many wakes [`defer_wake`] holds back on this thread now.
pub(crate) fn deferred_len() -> usize {
    DEFERRED.try_with(|d| d.borrow().len()).unwrap_or(0)
}

/// Wakes every waker [`defer_wake`] held back on this thread. Called by the loop once per
/// turn, after running tasks and before polling, and when `block_on` returns.
pub(crate) fn flush_deferred() {
    let wakers = DEFERRED
        .try_with(|d| std::mem::take(&mut *d.borrow_mut()))
        .unwrap_or_default();
    for waker in wakers {
        waker.wake();
    }
}

/// Restores the previous [`RUNNING`] executor when dropped, also during a panic.
#[derive(Debug)]
pub(crate) struct Entered {
    previous: Option<Rc<Executor>>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = RUNNING.try_with(|r| *r.borrow_mut() = previous);
    }
}

/// Makes `executor` the one that wakes on this thread queue onto, until the guard drops.
/// Called by `context::enter` and `context::enter_for_drop`, with the runtime's own executor.
pub(crate) fn enter(executor: &Rc<Executor>) -> Entered {
    let previous = RUNNING
        .try_with(|r| r.borrow_mut().replace(executor.clone()))
        .ok()
        .flatten();
    Entered { previous }
}

/// A task's identity: slot index in the low 32 bits, slot generation in the high 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskId(u64);

impl TaskId {
    /// The id the `block_on` future is woken under. No slot ever has it.
    pub(crate) const MAIN: TaskId = TaskId(u64::MAX);

    fn new(index: u32, generation: u32) -> TaskId {
        TaskId(u64::from(index) | (u64::from(generation) << 32))
    }

    fn index(self) -> usize {
        (self.0 & u64::from(u32::MAX)) as usize
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// The part of the executor that other threads may touch.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Ids woken from other threads, moved to the local run queue once per loop turn.
    remote: Mutex<Vec<TaskId>>,
    /// Set when `remote` may be non-empty, so the loop skips the lock on most turns and
    /// remote wakers skip the `mio::Waker` syscall when one is already on its way.
    remote_pending: AtomicBool,
    /// Interrupts `mio::Poll::poll` when a remote wake arrives while the loop sleeps.
    poll_waker: mio::Waker,
}

impl Shared {
    pub(crate) fn new(poll_waker: mio::Waker) -> Shared {
        Shared {
            remote: Mutex::new(Vec::new()),
            remote_pending: AtomicBool::new(false),
            poll_waker,
        }
    }

    fn push_remote(&self, id: TaskId) {
        // A poisoned lock only means another waker panicked mid-push; the Vec is still valid.
        self.remote
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        if !self.remote_pending.swap(true, Ordering::AcqRel) {
            // If this fails the loop is gone or the eventfd is broken; either way nobody
            // is left to run the task, so there is nothing better to do than drop the error.
            let _ = self.poll_waker.wake();
        }
    }
}

/// The waker of one task: cheap to clone (an `Arc`), `Send + Sync`, and deduplicating.
#[derive(Debug)]
pub(crate) struct TaskWaker {
    id: TaskId,
    /// True from the first wake until the executor starts the next poll.
    scheduled: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return; // already queued; it will be polled once
        }
        let queued_locally = RUNNING.try_with(|running| {
            let Ok(running) = running.try_borrow() else {
                return false;
            };
            match running.as_deref() {
                Some(executor) if Arc::ptr_eq(&executor.shared, &self.shared) => {
                    executor.run_queue.borrow_mut().push_back(self.id);
                    true
                }
                _ => false,
            }
        });
        // `Err`: the thread-local is gone (this thread is exiting); queue remotely.
        if !queued_locally.unwrap_or(false) {
            self.shared.push_remote(self.id);
        }
    }
}

/// A spawned task as it sits in its slot between polls.
struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    /// Kept to clear `scheduled` before each poll.
    handle: Arc<TaskWaker>,
    /// The same waker as `handle`, ready to lend to `Context` without touching the refcount.
    waker: Waker,
}

enum SlotState {
    /// No task; the index is on the free list.
    Free,
    /// A task waiting to be woken or polled.
    Idle(Task),
    /// The task is out of its slot being polled right now.
    Polling,
}

struct Slot {
    generation: u32,
    state: SlotState,
}

/// Tasks by slot index, with a free list so that ids are reused without a scan.
#[derive(Default)]
struct TaskSlab {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// Tasks spawned so far.
    spawned: u64,
}

/// The executor of one runtime.
pub(crate) struct Executor {
    shared: Arc<Shared>,
    /// Woken task ids in wake order. Only the runtime's thread touches it.
    pub(crate) run_queue: RefCell<VecDeque<TaskId>>,
    tasks: RefCell<TaskSlab>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("tasks", &self.tasks.borrow().live)
            .field("queued", &self.run_queue.borrow().len())
            .finish()
    }
}

impl Executor {
    pub(crate) fn new(shared: Arc<Shared>) -> Executor {
        Executor {
            shared,
            run_queue: RefCell::new(VecDeque::new()),
            tasks: RefCell::new(TaskSlab::default()),
        }
    }

    /// Makes a waker for the `block_on` future: it queues [`TaskId::MAIN`].
    pub(crate) fn main_waker(&self) -> (Arc<TaskWaker>, Waker) {
        let handle = Arc::new(TaskWaker {
            id: TaskId::MAIN,
            scheduled: AtomicBool::new(false),
            shared: self.shared.clone(),
        });
        (handle.clone(), Waker::from(handle))
    }

    /// Clears the `scheduled` flag of the main waker before `block_on` polls its future.
    pub(crate) fn begin_poll(handle: &TaskWaker) {
        handle.scheduled.store(false, Ordering::Release);
    }

    /// Stores a task and queues its first poll. Returns the task's waker.
    pub(crate) fn spawn(&self, future: Pin<Box<dyn Future<Output = ()>>>) -> Waker {
        let mut tasks = self.tasks.borrow_mut();
        let index = match tasks.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(tasks.slots.len()).expect("more than 2^32 live tasks");
                tasks.slots.push(Slot {
                    generation: 0,
                    state: SlotState::Free,
                });
                index
            }
        };
        let slot = &mut tasks.slots[index as usize];
        let id = TaskId::new(index, slot.generation);
        let handle = Arc::new(TaskWaker {
            id,
            scheduled: AtomicBool::new(true),
            shared: self.shared.clone(),
        });
        let waker = Waker::from(handle.clone());
        slot.state = SlotState::Idle(Task {
            future,
            handle,
            waker: waker.clone(),
        });
        tasks.live += 1;
        tasks.spawned += 1;
        drop(tasks);
        self.run_queue.borrow_mut().push_back(id);
        waker
    }

    /// Pops the next woken id.
    pub(crate) fn next_woken(&self) -> Option<TaskId> {
        self.run_queue.borrow_mut().pop_front()
    }

    /// True if a task is waiting to run.
    pub(crate) fn has_woken(&self) -> bool {
        !self.run_queue.borrow().is_empty()
    }

    /// Moves ids woken from other threads onto the local run queue.
    pub(crate) fn drain_remote(&self) {
        if !self.shared.remote_pending.load(Ordering::Acquire) {
            return;
        }
        // Clear the flag before taking the list: a push that lands after the take sets it
        // again and wakes the poll, so no wake is lost.
        self.shared.remote_pending.store(false, Ordering::Release);
        let woken = mem::take(&mut *self.shared.remote.lock().unwrap_or_else(|e| e.into_inner()));
        self.run_queue.borrow_mut().extend(woken);
    }

    /// Polls the task `id` once, if it still exists. The slab is not borrowed during the poll,
    /// so the task may spawn, wake or drop other tasks.
    pub(crate) fn run(&self, id: TaskId) {
        let mut task = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(slot) = tasks.slots.get_mut(id.index()) else {
                return;
            };
            if slot.generation != id.generation() {
                return; // a stale wake for a task that has finished
            }
            match mem::replace(&mut slot.state, SlotState::Polling) {
                SlotState::Idle(task) => task,
                other => {
                    slot.state = other;
                    return;
                }
            }
        };
        task.handle.scheduled.store(false, Ordering::Release);
        let done = task
            .future
            .as_mut()
            .poll(&mut Context::from_waker(&task.waker))
            .is_ready();
        let mut tasks = self.tasks.borrow_mut();
        let slot = &mut tasks.slots[id.index()];
        if done {
            slot.state = SlotState::Free;
            slot.generation = slot.generation.wrapping_add(1);
            tasks.free.push(id.index() as u32);
            tasks.live -= 1;
            drop(tasks);
            drop(task); // outside the borrow: dropping may touch the executor
        } else {
            slot.state = SlotState::Idle(task);
        }
    }

    /// Number of spawned tasks that have not finished.
    pub(crate) fn live(&self) -> usize {
        self.tasks.borrow().live
    }

    /// Number of tasks spawned so far.
    pub(crate) fn spawned(&self) -> u64 {
        self.tasks.borrow().spawned
    }

    /// Drops every task. Destructors may spawn more tasks, so repeat until none are left
    /// (bounded, in case a destructor spawns forever).
    pub(crate) fn shutdown(&self) {
        for _ in 0..64 {
            let dropped: Vec<Task> = {
                let mut tasks = self.tasks.borrow_mut();
                let tasks = &mut *tasks;
                let mut out = Vec::new();
                for (index, slot) in tasks.slots.iter_mut().enumerate() {
                    if let SlotState::Idle(_) = slot.state {
                        if let SlotState::Idle(task) =
                            mem::replace(&mut slot.state, SlotState::Free)
                        {
                            out.push(task);
                        }
                        slot.generation = slot.generation.wrapping_add(1);
                        tasks.free.push(index as u32);
                        tasks.live -= 1;
                    }
                }
                out
            };
            if dropped.is_empty() {
                break;
            }
            for task in dropped {
                // A destructor that panics must not stop the others from being dropped, nor
                // unwind out of `Runtime::drop`.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(task)));
            }
        }
        self.run_queue.borrow_mut().clear();
    }
}
