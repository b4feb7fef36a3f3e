//! [`IoSource`]: a mio source, its registration, and the one retry-until-`WouldBlock` loop
//! that every socket operation goes through.
//!
//! It sits above the runtime's `context.rs`: on a socket's first use it looks up the current
//! runtime's reactor there and registers with it, so that the reactor itself never needs to
//! know which runtime is current.

use std::io;
use std::task::{Context, Poll};

use mio::event::Source;

use crate::rt::context;
use crate::rt::reactor::{Direction, Registration};

/// A mio source registered with the reactor on first use. Dropping it closes the source (which
/// removes it from epoll) and then frees its reactor slot: `io` is declared first, so it drops
/// first.
#[derive(Debug)]
pub(crate) struct IoSource<S: Source> {
    io: S,
    /// `None` until the first operation, so that a socket may be made outside the runtime.
    registration: Option<Registration>,
    /// Directions to assume ready before the first event (see [`Registration::new`]).
    assume_ready: &'static [Direction],
}

impl<S: Source> IoSource<S> {
    pub(crate) fn new(io: S, assume_ready: &'static [Direction]) -> IoSource<S> {
        IoSource {
            io,
            registration: None,
            assume_ready,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// The source and its registration, registering now if this is the first use.
    fn registered(&mut self) -> io::Result<(&S, &Registration)> {
        let registration = match &mut self.registration {
            Some(registration) => registration,
            slot @ None => {
                let reactor =
                    context::with_current(|core| core.reactor.clone()).ok_or_else(|| {
                        io::Error::other(
                            "volley I/O used outside a runtime: use it inside Runtime::block_on",
                        )
                    })?;
                slot.insert(Registration::new(reactor, &mut self.io, self.assume_ready)?)
            }
        };
        Ok((&self.io, registration))
    }

    /// Waits until `dir` is ready, without doing any I/O.
    pub(crate) fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<()>> {
        match self.registered() {
            Ok((_, registration)) => registration.poll_ready(cx, dir).map(Ok),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Forgets that `dir` is ready (the caller saw `WouldBlock` or a spurious event).
    pub(crate) fn clear_ready(&mut self, dir: Direction) {
        if let Some(registration) = &self.registration {
            registration.clear_ready(dir);
        }
    }

    /// Marks `dir` ready, so that the next operation tries the syscall at once.
    pub(crate) fn set_ready(&mut self, dir: Direction) {
        if let Some(registration) = &self.registration {
            registration.set_ready(dir);
        }
    }

    /// Runs `op` until it stops returning `WouldBlock`: each `WouldBlock` clears the readiness
    /// of `dir` and waits for the reactor to report it again. `Interrupted` is retried at once.
    pub(crate) fn poll_io<R>(
        &mut self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let (io, registration) = match self.registered() {
            Ok(pair) => pair,
            Err(e) => return Poll::Ready(Err(e)),
        };
        loop {
            if registration.poll_ready(cx, dir).is_pending() {
                // The reactor wakes us when an event reports `dir` ready for this token.
                return Poll::Pending;
            }
            match op(io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => registration.clear_ready(dir),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// Like [`poll_io`](Self::poll_io), for a datagram socket: `WouldBlock` also forgets that
    /// `dir` failed. On a stream socket an error or a close is final and the next operation
    /// reports it again; on a UDP socket an error is reported once (by the next `recv` or
    /// `send`) and the one after may say `WouldBlock`: keeping the sticky "closed" bit would
    /// make this loop retry forever instead of waiting.
    pub(crate) fn poll_datagram_io<R>(
        &mut self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let (io, registration) = match self.registered() {
            Ok(pair) => pair,
            Err(e) => return Poll::Ready(Err(e)),
        };
        loop {
            if registration.poll_ready(cx, dir).is_pending() {
                // The reactor wakes us when an event reports `dir` ready for this token.
                return Poll::Pending;
            }
            match op(io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    registration.clear_ready_and_closed(dir)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

// No `Drop` that calls `epoll_ctl(DEL)`: closing the descriptor, which dropping `io` does
// right after, removes it from the epoll set, and the `Registration` frees the slot and bumps
// its generation, so an event already queued for it is ignored. That saves a syscall per
// connection. (A descriptor duplicated behind our back would keep its epoll entry until the
// duplicate closes; its events would carry the stale generation and be ignored too.)
