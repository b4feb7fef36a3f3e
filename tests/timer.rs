//! Timers: `sleep`, `sleep_until`, `timeout` and `interval`. Ordering, never firing early,
//! cancellation, and many live timers at once. Lateness is only checked against loose
//! correctness bounds: these machines are small and noisy.

mod util;

use std::cell::{Cell, RefCell};
use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use util::{block_on_watched, drop_flag, yield_now, Prng};
use volley::rt::{Elapsed, Sleep};
use volley::{interval, sleep, sleep_until, spawn, timeout, Runtime};

/// Generous upper bound on how late a short sleep may finish and still count as working.
const LOOSE: Duration = Duration::from_secs(2);

/// Timers fire in deadline order, whatever order they were created in.
#[test]
fn timers_fire_in_deadline_order() {
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 20, async {
        let base = Instant::now() + Duration::from_millis(5);
        let fired: Rc<RefCell<Vec<Instant>>> = Rc::default();
        // Offsets 0..=98 ms in steps of 2, with some repeated, in a scrambled order.
        let mut offsets: Vec<u64> = (0..50).map(|i| i * 2).chain([10, 10, 40, 40, 40]).collect();
        let mut rng = Prng::new(7);
        for i in (1..offsets.len()).rev() {
            offsets.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let handles: Vec<_> = offsets
            .iter()
            .map(|&ms| {
                let deadline = base + Duration::from_millis(ms);
                let fired = fired.clone();
                spawn(async move {
                    sleep_until(deadline).await;
                    assert!(Instant::now() >= deadline);
                    fired.borrow_mut().push(deadline);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        let fired = fired.borrow();
        assert_eq!(fired.len(), offsets.len());
        assert!(
            fired.windows(2).all(|w| w[0] <= w[1]),
            "timers completed out of deadline order"
        );
    });
    assert_eq!(rt.stats().timers, 0);
}

/// A sleep never completes before its deadline, for sub-millisecond and millisecond
/// durations, one after another and all at once.
#[test]
fn sleep_never_fires_early() {
    let durations: Vec<Duration> = [
        0, 1, 10, 100, 250, 499, 500, 501, 999, 1_000, 1_001, 1_500, 1_999, 2_000, 3_333, 5_000,
        7_777, 10_000, 15_000,
    ]
    .iter()
    .map(|&us| Duration::from_micros(us))
    .collect();
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 60, async {
        // One after another.
        for _ in 0..3 {
            for &d in &durations {
                let s = sleep(d);
                let deadline = s.deadline();
                s.await;
                let now = Instant::now();
                assert!(now >= deadline, "sleep({d:?}) woke early");
                assert!(now - deadline < LOOSE, "sleep({d:?}) far too late");
            }
        }
        // All at once, from many tasks.
        let handles: Vec<_> = (0..2000u64)
            .map(|i| {
                let d = Duration::from_micros((i * 37) % 20_000);
                spawn(async move {
                    let deadline = Instant::now() + d;
                    sleep_until(deadline).await;
                    assert!(Instant::now() >= deadline, "sleep({d:?}) woke early");
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(rt.stats().timers, 0);
}

/// A 10 ms sleep finishes, and within a loose bound; the runtime's own clock agrees.
#[test]
fn short_sleep_completes_within_loose_bound() {
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 10, async {
        let start = Instant::now();
        sleep(Duration::from_millis(10)).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(10));
        assert!(took < Duration::from_millis(500) + LOOSE, "{took:?}");
    });
}

/// A deadline already in the past completes at the first poll and registers no timer.
#[test]
fn past_deadline_is_ready_at_once() {
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 10, async {
        let past = Instant::now() - Duration::from_millis(1);
        let mut s = sleep_until(past);
        assert!(s.is_elapsed());
        poll_fn(|cx| {
            assert!(Pin::new(&mut s).poll(cx).is_ready());
            Poll::Ready(())
        })
        .await;
        sleep(Duration::ZERO).await;
    });
    assert_eq!(rt.stats().timers, 0);
}

/// A dropped `Sleep` never wakes its task: the timer is removed and the task, which had no
/// other reason to run, is not polled again.
#[test]
fn dropped_sleep_never_wakes() {
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 10, async {
        let polls = Rc::new(Cell::new(0u32));
        let p = polls.clone();
        let task = spawn(poll_fn(move |cx| {
            p.set(p.get() + 1);
            if p.get() == 1 {
                let mut s = sleep(Duration::from_millis(20));
                assert!(Pin::new(&mut s).poll(cx).is_pending());
                drop(s);
            }
            Poll::<()>::Pending
        }));
        yield_now().await;
        yield_now().await;
        assert_eq!(polls.get(), 1);
        assert_eq!(
            rt.stats().timers,
            0,
            "the dropped sleep left its timer behind"
        );
        // Wait well past the dropped deadline.
        sleep(Duration::from_millis(100)).await;
        assert_eq!(polls.get(), 1, "a dropped sleep woke its task");
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    });
    assert_eq!(rt.stats().timers, 0);
}

/// A cancelled `Sleep` and a reset one leave exactly the live timers registered.
#[test]
fn dropped_and_reset_sleeps_unregister() {
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 10, async {
        let mut a = sleep(Duration::from_secs(3600));
        let mut b = sleep(Duration::from_secs(3600));
        poll_fn(|cx| {
            assert!(Pin::new(&mut a).poll(cx).is_pending());
            assert!(Pin::new(&mut b).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!(rt.stats().timers, 2);
        drop(a);
        assert_eq!(rt.stats().timers, 1);
        // Reset to a near deadline: the old entry goes, the new one fires.
        let soon = Instant::now() + Duration::from_millis(5);
        b.reset(soon);
        assert_eq!(b.deadline(), soon);
        assert_eq!(rt.stats().timers, 0);
        b.await;
        assert!(Instant::now() >= soon);
    });
    assert_eq!(rt.stats().timers, 0);
}

/// A `Sleep` polled by one task and then awaited by another wakes the second task.
#[test]
fn sleep_moved_between_tasks_wakes_the_new_owner() {
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 10, async {
        let slot: Rc<RefCell<Option<Sleep>>> = Rc::default();
        let s = slot.clone();
        spawn(poll_fn(move |cx| {
            let mut sl = sleep(Duration::from_millis(20));
            assert!(Pin::new(&mut sl).poll(cx).is_pending());
            *s.borrow_mut() = Some(sl);
            Poll::Ready(())
        }))
        .await
        .unwrap();
        let sl = slot.borrow_mut().take().unwrap();
        let deadline = sl.deadline();
        let owner = spawn(sl);
        owner.await.unwrap();
        assert!(Instant::now() >= deadline);
    });
    assert_eq!(rt.stats().timers, 0);
}

/// `timeout` gives `Ok` when the inner future finishes first and `Err(Elapsed)` when it does
/// not, dropping the inner future in that case; either way no timer is left behind.
#[test]
fn timeout_both_ways() {
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 10, async {
        // Inner first.
        let out = timeout(Duration::from_secs(5), async {
            sleep(Duration::from_millis(5)).await;
            11
        })
        .await;
        assert_eq!(out, Ok(11));
        assert_eq!(rt.stats().timers, 0);

        // Inner slow.
        let (dropped, guard) = drop_flag();
        let start = Instant::now();
        let out = timeout(Duration::from_millis(20), async move {
            let _guard = guard;
            sleep(Duration::from_secs(3600)).await;
            12
        })
        .await;
        let _: Elapsed = out.unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(dropped.get(), "the timed-out future must be dropped");
        assert_eq!(rt.stats().timers, 0);

        // A pending-forever future with no timers of its own.
        let out = timeout(Duration::from_millis(5), pending::<()>()).await;
        let err: Elapsed = out.unwrap_err();
        assert_eq!(err.to_string(), "deadline has elapsed");
        assert_eq!(
            std::io::Error::from(err).kind(),
            std::io::ErrorKind::TimedOut
        );

        // An inner future that is ready at once wins even a zero timeout.
        assert_eq!(timeout(Duration::ZERO, async { 13 }).await, Ok(13));
        // A huge duration does not overflow.
        assert_eq!(timeout(Duration::MAX, async { 14 }).await, Ok(14));
    });
    assert_eq!(rt.stats().timers, 0);
}

/// `sleep(Duration::MAX)` neither panics nor fires; it can be cancelled.
#[test]
fn huge_sleep_does_not_overflow() {
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 10, async {
        let out = timeout(Duration::from_millis(10), sleep(Duration::MAX)).await;
        assert!(out.is_err());
    });
    assert_eq!(rt.stats().timers, 0);
}

/// An interval ticks at exact multiples of its period from the first tick, never early, and
/// after a stall skips the missed ticks instead of firing them in a burst.
#[test]
fn interval_ticks_at_period_multiples_and_skips_missed() {
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 20, async {
        let period = Duration::from_millis(50);
        let mut iv = interval(period);
        assert_eq!(iv.period(), period);
        let first = iv.tick().await;
        let on_grid = |t: Instant| (t - first).as_nanos().is_multiple_of(period.as_nanos());
        // Consecutive ticks are one period apart unless the loop itself fell a period behind
        // (a noisy machine may do that), and then they stay on the grid anyway.
        let mut last = first;
        let mut exact = 0;
        for k in 1..=5 {
            let t = iv.tick().await;
            assert!(Instant::now() >= t, "tick {k} fired early");
            assert!(t > last, "tick {k} did not advance");
            assert!(on_grid(t), "tick {k} off the grid");
            if t == last + period {
                exact += 1;
            }
            last = t;
        }
        assert!(
            exact >= 1,
            "no tick came exactly one period after the previous one"
        );

        // Stall the loop for several periods.
        std::thread::sleep(period * 3 + period / 2);
        let stall_end = Instant::now();

        // The overdue tick comes at once, with its scheduled instant (before the stall
        // ended)...
        let late = iv.tick().await;
        assert!(late > last && on_grid(late));
        assert!(late < stall_end);
        // ...and the next one is in the future: no burst of the missed ticks.
        let next = iv.tick().await;
        assert!(next > stall_end, "missed ticks were fired in a burst");
        assert!(on_grid(next), "the schedule lost its phase");
        assert!(Instant::now() >= next);
        let after = iv.tick().await;
        assert!(after > next && on_grid(after));
    });
    assert_eq!(rt.stats().timers, 0);
}

/// `interval` rejects a zero period.
#[test]
fn interval_zero_period_panics() {
    assert!(std::panic::catch_unwind(|| interval(Duration::ZERO)).is_err());
}

/// 100,000 tasks each sleeping 1..50 ms all complete, never early, and leave no timers.
#[test]
fn hundred_thousand_live_timers() {
    const N: u64 = 100_000;
    let rt = Runtime::new().unwrap();
    let done = Rc::new(Cell::new(0u64));
    block_on_watched(&rt, 120, {
        let done = done.clone();
        let rt = &rt;
        async move {
            let mut rng = Prng::new(0x5eed);
            let handles: Vec<_> = (0..N)
                .map(|_| {
                    let ms = 1 + rng.next_u64() % 50;
                    let done = done.clone();
                    spawn(async move {
                        let s = sleep(Duration::from_millis(ms));
                        let deadline = s.deadline();
                        s.await;
                        assert!(Instant::now() >= deadline);
                        done.set(done.get() + 1);
                    })
                })
                .collect();
            assert_eq!(rt.stats().tasks as u64, N);
            yield_now().await;
            // Every task has been polled once by now; those not done hold a task slot.
            assert_eq!(rt.stats().tasks as u64, N - done.get());
            assert!(rt.stats().timers as u64 <= N);
            for h in handles {
                h.await.unwrap();
            }
        }
    });
    assert_eq!(done.get(), N);
    let stats = rt.stats();
    assert_eq!((stats.tasks, stats.timers), (0, 0));
}

/// Cancelling 100,000 registered sleeps, by dropping them or aborting their tasks, leaves
/// no timers behind.
#[test]
fn cancelling_hundred_thousand_sleeps_leaves_no_timers() {
    const N: usize = 100_000;
    let rt = Runtime::new().unwrap();
    block_on_watched(&rt, 120, async {
        // Sleeps owned and polled by this future, then dropped.
        let mut rng = Prng::new(99);
        let mut sleeps: Vec<Sleep> = (0..N)
            .map(|_| {
                sleep(Duration::from_secs(3600) + Duration::from_millis(rng.next_u64() % 10_000))
            })
            .collect();
        poll_fn(|cx| {
            for s in &mut sleeps {
                assert!(Pin::new(s).poll(cx).is_pending());
            }
            Poll::Ready(())
        })
        .await;
        assert_eq!(rt.stats().timers, N);
        // Drop every other one first, then the rest.
        let mut i = 0;
        sleeps.retain(|_| {
            i += 1;
            i % 2 == 0
        });
        assert_eq!(rt.stats().timers, N / 2);
        drop(sleeps);
        assert_eq!(rt.stats().timers, 0);

        // Sleeps inside tasks, cancelled by abort.
        let handles: Vec<_> = (0..N)
            .map(|i| spawn(sleep(Duration::from_secs(3600 + i as u64))))
            .collect();
        yield_now().await;
        assert_eq!(rt.stats().timers, N);
        for h in &handles {
            h.abort();
        }
        for h in handles {
            assert!(h.await.unwrap_err().is_cancelled());
        }
        assert_eq!(rt.stats().timers, 0);
        assert_eq!(rt.stats().tasks, 0);
        // The loop still runs timers normally afterwards.
        sleep(Duration::from_millis(2)).await;
    });
    assert_eq!(rt.stats().timers, 0);
}

/// Polling a `Sleep` outside any runtime panics with a message naming the mistake.
#[test]
fn sleep_outside_runtime_panics() {
    let waker = util::noop_waker();
    let mut s = sleep(Duration::from_millis(1));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = Pin::new(&mut s).poll(&mut std::task::Context::from_waker(&waker));
    }))
    .unwrap_err();
    let message = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(message.contains("outside a runtime"), "{message}");
}
