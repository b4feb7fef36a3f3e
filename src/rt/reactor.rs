//! The reactor: `mio::Poll`, and per-source readiness with the wakers waiting on it.
//!
//! Each I/O source is registered once, for both reading and writing, and gets a slot in a slab.
//! Its `mio::Token` packs the slot index with the slot's generation, which is bumped when the
//! slot is freed: an event still in flight for a closed socket carries the old generation and is
//! ignored, never delivered to the socket that reuses the slot.
//!
//! Readiness is edge-triggered. An event *sets* bits in the slot and wakes the task waiting in
//! that direction. Only an operation that returns `WouldBlock` *clears* the bit, so a task keeps
//! reading or writing until the kernel says stop, as mio requires. Spurious events are harmless:
//! the next operation simply returns `WouldBlock` again.
//!
//! Where it sits: at the bottom of `rt`, a driver beside the executor and the timer driver. It
//! imports no other runtime file and never asks which runtime is current: [`Registration::new`]
//! takes the reactor to register with, and `net/io_source.rs`, which sits above
//! `context.rs`, looks up the current runtime's reactor on a socket's first use.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::event::Source;
use mio::{Events, Interest, Token};

/// The token of the `mio::Waker` that remote wakes ring.
const WAKER_TOKEN: Token = Token(usize::MAX);

/// Bits of an index in a token; the rest hold the generation.
const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

/// How many events one `poll` call collects at most.
const EVENTS_CAPACITY: usize = 1024;

/// A direction of readiness a task can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The bit an operation clears on `WouldBlock`.
    fn bit(self) -> u8 {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }

    /// The bits that let an operation in this direction go ahead: ready, or closed (the
    /// syscall then reports EOF or the error at once).
    fn ready_mask(self) -> u8 {
        match self {
            Direction::Read => READABLE | READ_CLOSED,
            Direction::Write => WRITABLE | WRITE_CLOSED,
        }
    }
}

/// Data may be waiting. Cleared on `WouldBlock` (or a short read).
const READABLE: u8 = 0b0001;
/// Buffer space may be free. Cleared on `WouldBlock`.
const WRITABLE: u8 = 0b0010;
/// The peer closed its side, or the socket failed. Sticky: edge-triggered epoll reports it
/// once, and no later event would bring it back if it were cleared.
const READ_CLOSED: u8 = 0b0100;
/// Writing can only fail now. Sticky, like `READ_CLOSED`.
const WRITE_CLOSED: u8 = 0b1000;

/// One registered source.
#[derive(Debug, Default)]
struct IoSlot {
    generation: usize,
    live: bool,
    /// `READABLE`, `WRITABLE`, `READ_CLOSED`, `WRITE_CLOSED`: set by events; the first two
    /// are cleared on `WouldBlock`.
    readiness: u8,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// Slots by index, with a free list.
#[derive(Debug, Default)]
struct IoSlab {
    slots: Vec<IoSlot>,
    free: Vec<usize>,
    live: usize,
}

/// A `mio::Poll` plus the readiness of every source registered with it.
#[derive(Debug)]
pub(crate) struct Reactor {
    /// Borrowed mutably only inside [`Reactor::turn`].
    poll: RefCell<mio::Poll>,
    /// Reused across turns so that polling never allocates.
    events: RefCell<Events>,
    /// A clone of the poll's registry, usable while `poll` is borrowed.
    registry: mio::Registry,
    slab: RefCell<IoSlab>,
    /// Calls to `poll` so far, for [`crate::RuntimeStats`].
    turns: Cell<u64>,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        Ok(Reactor {
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(EVENTS_CAPACITY)),
            registry,
            slab: RefCell::new(IoSlab::default()),
            turns: Cell::new(0),
        })
    }

    /// A `mio::Waker` that interrupts this reactor's poll.
    pub(crate) fn poll_waker(&self) -> io::Result<mio::Waker> {
        mio::Waker::new(&self.registry, WAKER_TOKEN)
    }

    /// Number of registered sources.
    pub(crate) fn live(&self) -> usize {
        self.slab.borrow().live
    }

    pub(crate) fn turns(&self) -> u64 {
        self.turns.get()
    }

    /// Polls for events for at most `timeout` and wakes the tasks waiting on them.
    pub(crate) fn turn(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut events = self.events.borrow_mut();
        self.turns.set(self.turns.get() + 1);
        match self.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            let token = event.token();
            if token == WAKER_TOKEN {
                continue; // the executor drains its remote queue after every turn
            }
            let mut bits = 0;
            if event.is_readable() {
                bits |= READABLE;
            }
            if event.is_writable() {
                bits |= WRITABLE;
            }
            if event.is_read_closed() || event.is_error() {
                bits |= READ_CLOSED;
            }
            if event.is_write_closed() || event.is_error() {
                bits |= WRITE_CLOSED;
            }
            self.dispatch(token, bits);
        }
        Ok(())
    }

    /// Sets `bits` on the slot `token` names and wakes its waiters.
    fn dispatch(&self, token: Token, bits: u8) {
        let (reader, writer) = {
            let mut slab = self.slab.borrow_mut();
            let index = token.0 & INDEX_MASK;
            let Some(slot) = slab.slots.get_mut(index) else {
                return;
            };
            if !slot.live || slot.generation != token.0 >> INDEX_BITS {
                return; // an event for a source that has since been deregistered
            }
            slot.readiness |= bits;
            let reader = if bits & Direction::Read.ready_mask() != 0 {
                slot.reader.take()
            } else {
                None
            };
            let writer = if bits & Direction::Write.ready_mask() != 0 {
                slot.writer.take()
            } else {
                None
            };
            (reader, writer)
        };
        // Wake outside the borrow: a waker is arbitrary code.
        if let Some(w) = reader {
            w.wake();
        }
        if let Some(w) = writer {
            w.wake();
        }
    }
}

/// A source's place in the reactor. Dropping it frees the slot and bumps its generation; the
/// owner closes the source, which takes it out of the epoll set.
#[derive(Debug)]
pub(crate) struct Registration {
    reactor: Rc<Reactor>,
    index: usize,
}

impl Registration {
    /// Registers `source` for reading and writing with `reactor`.
    ///
    /// `ready` says which directions to assume ready before the first event: an accepted or
    /// connected socket may already have data, and trying costs one syscall, while a socket
    /// still connecting must wait for its first event.
    pub(crate) fn new(
        reactor: Rc<Reactor>,
        source: &mut impl Source,
        ready: &[Direction],
    ) -> io::Result<Registration> {
        let index = {
            let mut slab = reactor.slab.borrow_mut();
            let index = match slab.free.pop() {
                Some(index) => index,
                None => {
                    slab.slots.push(IoSlot::default());
                    slab.slots.len() - 1
                }
            };
            if index >= INDEX_MASK {
                slab.free.push(index);
                return Err(io::Error::other("too many I/O sources for one reactor"));
            }
            let slot = &mut slab.slots[index];
            slot.live = true;
            slot.readiness = ready.iter().fold(0, |bits, d| bits | d.bit());
            slab.live += 1;
            index
        };
        let generation = reactor.slab.borrow().slots[index].generation;
        let token = Token(index | (generation << INDEX_BITS));
        let registration = Registration { reactor, index };
        registration.reactor.registry.register(
            source,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(registration)
    }

    /// Ready if `dir` is ready; otherwise stores the task's waker and returns `Pending`.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<()> {
        let mut slab = self.reactor.slab.borrow_mut();
        let slot = &mut slab.slots[self.index];
        if slot.readiness & dir.ready_mask() != 0 {
            return Poll::Ready(());
        }
        let waiter = match dir {
            Direction::Read => &mut slot.reader,
            Direction::Write => &mut slot.writer,
        };
        match waiter {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Forgets that `dir` is ready: the last operation returned `WouldBlock`.
    pub(crate) fn clear_ready(&self, dir: Direction) {
        self.reactor.slab.borrow_mut().slots[self.index].readiness &= !dir.bit();
    }

    /// Forgets that `dir` is ready *and* that it was closed or failed: for a datagram socket,
    /// whose errors (an ICMP port unreachable on a connected UDP socket) are reported once by
    /// the next `recv` or `send`, not a lasting state. The next error brings a new event.
    pub(crate) fn clear_ready_and_closed(&self, dir: Direction) {
        self.reactor.slab.borrow_mut().slots[self.index].readiness &= !dir.ready_mask();
    }

    /// Marks `dir` ready, so that the next operation is tried without waiting for an event.
    pub(crate) fn set_ready(&self, dir: Direction) {
        self.reactor.slab.borrow_mut().slots[self.index].readiness |= dir.bit();
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let (reader, writer) = {
            let mut slab = self.reactor.slab.borrow_mut();
            let slot = &mut slab.slots[self.index];
            slot.live = false;
            slot.readiness = 0;
            slot.generation = (slot.generation + 1) & (usize::MAX >> INDEX_BITS);
            let wakers = (slot.reader.take(), slot.writer.take());
            slab.free.push(self.index);
            slab.live -= 1;
            wakers
        };
        // Dropped outside the borrow: dropping a waker may run arbitrary code.
        drop((reader, writer));
    }
}
