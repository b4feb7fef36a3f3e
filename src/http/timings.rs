//! [`Timings`]: where a request's time went, phase by phase, as curl's `-w` reports.

use std::time::{Duration, Instant};

/// Where a request's time went. Phases that did not happen are zero.
///
/// Every field but `queued` counts from the start of the request, after any queueing in a
/// batch; redirects add their DNS and connect time to the totals, and `first_byte` is that of
/// the final response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// Waiting in a batch, for an admission slot and then for the task's first turn on the
    /// loop (zero for a request sent on its own).
    pub queued: Duration,
    /// Resolving host names (zero for IP literals, cached names and reused connections).
    pub dns: Duration,
    /// Opening TCP connections, and a proxy's `CONNECT` tunnel (zero when a pooled connection
    /// was reused).
    pub connect: Duration,
    /// TLS handshakes of `https://` connections, after `connect` (zero for `http://`, and
    /// when a pooled connection was reused).
    pub tls: Duration,
    /// From the start to the first byte of the final response: time to first byte.
    pub first_byte: Duration,
    /// From the start to the end of the body (or to now, while it is still being read).
    pub total: Duration,
    /// Whether the final response came over a reused keep-alive connection.
    pub reused: bool,
}

/// Records [`Timings`] as a request runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) start: Instant,
    pub(crate) timings: Spent,
    /// When the body ended, once it has.
    pub(crate) done: Option<Instant>,
}

/// The phases a [`Clock`] records: [`Timings`] without `queued` (set by a batch on the
/// result) and `total` (computed when read), which every request future would otherwise carry.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spent {
    pub(crate) dns: Duration,
    pub(crate) connect: Duration,
    pub(crate) tls: Duration,
    pub(crate) first_byte: Duration,
    pub(crate) reused: bool,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock {
            start: Instant::now(),
            timings: Spent::default(),
            done: None,
        }
    }

    /// Marks the first response byte of the current hop.
    pub(crate) fn first_byte(&mut self) {
        self.timings.first_byte = self.start.elapsed();
    }

    /// The timings so far.
    pub(crate) fn read(&self) -> Timings {
        let end = self.done.unwrap_or_else(Instant::now);
        let Spent {
            dns,
            connect,
            tls,
            first_byte,
            reused,
        } = self.timings;
        Timings {
            queued: Duration::ZERO,
            dns,
            connect,
            tls,
            first_byte,
            total: end.saturating_duration_since(self.start),
            reused,
        }
    }
}
