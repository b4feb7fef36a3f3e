//! Timer handles: [`sleep`], [`sleep_until`], [`timeout`], [`timeout_at`] and [`interval`],
//! all on the hand-written [`Sleep`] future.
//!
//! A [`Sleep`] registers with the current runtime's timer driver (`timer.rs`) on its first
//! poll, and keeps its key there, so dropping it removes exactly its entry in `O(log n)`.
//!
//! A timer never fires early: a [`Sleep`] is ready only when `Instant::now()` has reached its
//! deadline, whatever woke it. It fires late by the poll's granularity (mio rounds the timeout
//! up to the next millisecond) plus the time the loop spends on other tasks.
//!
//! Where it sits: above `context.rs`, which a [`Sleep`]'s first poll asks for the current
//! runtime's timers, and above the timer driver it registers with; neither imports it back.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::context;
use super::timer::{TimerKey, Timers};

/// A registered timer: which runtime holds it and under which key.
#[derive(Debug)]
struct Entry {
    timers: Rc<Timers>,
    key: TimerKey,
}

/// Waits until `duration` has passed.
///
/// The deadline is fixed when this is called, not when the future is first polled.
pub fn sleep(duration: Duration) -> Sleep {
    let now = Instant::now();
    sleep_until(now.checked_add(duration).unwrap_or_else(far_future))
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        entry: None,
    }
}

/// About 30 years from now: the deadline of a sleep whose duration overflows `Instant`.
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(86400 * 365 * 30))
        .unwrap_or(now)
}

/// A future that completes at a deadline. Made by [`sleep`] and [`sleep_until`].
///
/// It registers with the runtime's timers on its first poll and unregisters when it completes or
/// is dropped, in `O(log n)`.
#[must_use = "a Sleep does nothing unless awaited"]
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
    /// `None` until first polled, and again after completing.
    entry: Option<Entry>,
}

impl Sleep {
    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// True once the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline, as if the sleep had been made anew with `deadline`.
    pub fn reset(&mut self, deadline: Instant) {
        self.unregister();
        self.deadline = deadline;
    }

    fn unregister(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.timers.remove(entry.key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        match &self.entry {
            Some(entry) => entry.timers.update(entry.key, cx.waker()),
            None => {
                let Some(timers) = context::with_current(|core| core.timers.clone()) else {
                    panic!(
                        "volley::sleep polled outside a runtime: await it inside Runtime::block_on"
                    );
                };
                let key = timers.insert(self.deadline, cx.waker().clone());
                self.entry = Some(Entry { timers, key });
            }
        }
        // The loop wakes us once the deadline passes: it is the poll timeout or earlier.
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// The error of [`timeout`]: the deadline passed before the future completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::ErrorKind::TimedOut.into()
    }
}

/// Runs `future`, giving up with [`Elapsed`] if it has not completed within `duration`.
///
/// On timeout the inner future is dropped, which cancels whatever it was doing. The inner
/// future is polled before the clock is checked, so one that is ready at the deadline wins.
///
/// This is an `async fn` rather than a named future: safe Rust cannot reach a pinned generic
/// field without `unsafe` or a box, and `std::pin::pin!` inside an `async fn` needs neither.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let now = Instant::now();
    timeout_at(now.checked_add(duration).unwrap_or_else(far_future), future).await
}

/// Runs `future`, giving up with [`Elapsed`] if it has not completed by `deadline`.
///
/// Like [`timeout`], the timer is registered only if the future is pending on its first
/// poll: an operation that completes at once costs no timer at all.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    let mut deadline = sleep_until(deadline);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut deadline).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A stream of evenly spaced instants. Made by [`interval`].
///
/// The first tick completes at once. If the task falls behind by more than a period, the missed
/// ticks are skipped rather than fired in a burst, and the schedule keeps its original phase.
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    sleep: Sleep,
}

/// Ticks every `period`, starting now.
///
/// # Panics
///
/// Panics if `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "interval period must be non-zero");
    Interval {
        period,
        sleep: sleep_until(Instant::now()),
    }
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Poll-style [`tick`](Self::tick), for hand-written futures.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let tick = self.sleep.deadline();
        let now = Instant::now();
        let mut next = tick + self.period;
        if next <= now {
            // Behind schedule: skip to the first tick after now, keeping the phase.
            let behind = now.duration_since(tick).as_nanos();
            let periods = behind / self.period.as_nanos() + 1;
            let skip = u32::try_from(periods).unwrap_or(u32::MAX);
            next = tick
                .checked_add(self.period.saturating_mul(skip))
                .unwrap_or_else(far_future);
        }
        self.sleep.reset(next);
        Poll::Ready(tick)
    }

    /// The time between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}
