//! The executor and `block_on`: spawning, joining, aborting, panics, wakers (local, repeated
//! and remote), `spawn_blocking`, and what happens to tasks when the runtime goes away.

mod util;

use std::cell::{Cell, RefCell};
use std::future::{pending, poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use util::{
    block_on_bounded, block_on_watched, drop_flag, noop_waker, watchdog, yield_now, DropFlag,
};
use volley::{sleep, spawn, spawn_blocking, JoinError, JoinHandle, Runtime};

/// The message of a panic payload made by `panic!`.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic payload>".into())
}

/// Polls a finished `JoinHandle` once outside any runtime and returns its result.
fn take_finished<T>(handle: &mut JoinHandle<T>) -> Result<T, JoinError> {
    let waker = noop_waker();
    match Pin::new(handle).poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("JoinHandle not finished"),
    }
}

/// A spawned task's output comes back through its `JoinHandle`.
#[test]
fn spawn_and_join_returns_output() {
    let rt = Runtime::new().unwrap();
    let out = block_on_bounded(&rt, 10, async {
        let a = spawn(async { 6 * 7 });
        let b = spawn(async { String::from("hello") });
        (a.await.unwrap(), b.await.unwrap())
    });
    assert_eq!(out, (42, "hello".to_string()));
    assert_eq!(rt.stats().tasks, 0);
}

/// Tasks may spawn tasks, several levels deep, and await them from inside other tasks.
#[test]
fn spawn_from_inside_tasks() {
    let rt = Runtime::new().unwrap();
    let total = block_on_bounded(&rt, 10, async {
        let outer = spawn(async {
            let mut handles = Vec::new();
            for i in 0..10u64 {
                handles.push(spawn(async move {
                    let inner = spawn(async move { i * 2 });
                    inner.await.unwrap() + 1
                }));
            }
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        });
        outer.await.unwrap()
    });
    assert_eq!(total, (0..10u64).map(|i| i * 2 + 1).sum::<u64>());
    assert_eq!(rt.stats().tasks, 0);
}

/// `Runtime::spawn` outside `block_on` queues the task; it first runs when `block_on` turns.
#[test]
fn runtime_spawn_from_outside_block_on() {
    let rt = Runtime::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let ran2 = ran.clone();
    let handle = rt.spawn(async move {
        ran2.set(true);
        sleep(Duration::from_millis(1)).await;
        "done"
    });
    assert!(!ran.get(), "a task must not run inside spawn");
    assert_eq!(rt.stats().tasks, 1);
    let out = block_on_bounded(&rt, 10, handle).unwrap();
    assert!(ran.get());
    assert_eq!(out, "done");
    assert_eq!(rt.stats().tasks, 0);
}

/// The free `spawn` outside any runtime panics with a message naming the mistake.
#[test]
fn spawn_outside_runtime_panics() {
    let err = catch_unwind(|| {
        drop(spawn(async {}));
    })
    .unwrap_err();
    assert!(panic_message(&*err).contains("outside a runtime"));
}

/// Aborting a pending task drops its future and makes its handle report `is_cancelled`.
#[test]
fn abort_cancels_and_drops_the_future() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let (dropped, guard) = drop_flag();
        let polled = Rc::new(Cell::new(0u32));
        let polled2 = polled.clone();
        let handle = spawn(async move {
            let _guard = guard;
            polled2.set(polled2.get() + 1);
            pending::<()>().await;
        });
        // Let it start and park.
        yield_now().await;
        yield_now().await;
        assert_eq!(polled.get(), 1);
        assert!(!handle.is_finished());
        assert!(!dropped.get());

        handle.abort();
        let err = handle.await.unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert!(!err.is_panic());
        assert!(dropped.get(), "the aborted future's Drop must have run");
        assert_eq!(polled.get(), 1, "an aborted future is not polled again");
    });
    assert_eq!(rt.stats().tasks, 0);
    assert_eq!(rt.stats().timers, 0);
}

/// Aborting a task before its first poll still drops it and reports `is_cancelled`.
#[test]
fn abort_before_first_poll() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let (dropped, guard) = drop_flag();
        let polled = Rc::new(Cell::new(false));
        let polled2 = polled.clone();
        let handle = spawn(async move {
            let _guard = guard;
            polled2.set(true);
        });
        handle.abort();
        let err = handle.await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(dropped.get());
        assert!(
            !polled.get(),
            "aborted before its first poll, it never runs"
        );
    });
    assert_eq!(rt.stats().tasks, 0);
}

/// Aborting a task that is sleeping cancels its timer too.
#[test]
fn abort_sleeping_task_removes_its_timer() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let handle = spawn(async {
            sleep(Duration::from_secs(3600)).await;
        });
        yield_now().await;
        yield_now().await;
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
    });
    assert_eq!(rt.stats().timers, 0);
    assert_eq!(rt.stats().tasks, 0);
}

/// Aborting a task that already finished keeps its output.
#[test]
fn abort_after_finish_keeps_output() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let handle = spawn(async { 5 });
        while !handle.is_finished() {
            yield_now().await;
        }
        handle.abort();
        assert_eq!(handle.await.unwrap(), 5);
    });
}

/// One task can abort another through its handle and await the cancellation.
#[test]
fn abort_from_another_task() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let (dropped, guard) = drop_flag();
        let victim = spawn(async move {
            let _guard = guard;
            sleep(Duration::from_secs(3600)).await;
        });
        let killer = spawn(async move {
            sleep(Duration::from_millis(5)).await;
            victim.abort();
            victim.await
        });
        let result = killer.await.unwrap();
        assert!(result.unwrap_err().is_cancelled());
        assert!(dropped.get());
    });
    assert_eq!(rt.stats().timers, 0);
}

/// A panic in a task surfaces at its `JoinHandle` as `is_panic` with the message, and the
/// loop keeps running other tasks.
#[test]
fn panic_in_task_is_reported_and_loop_continues() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let (dropped, guard) = drop_flag();
        let before = spawn(async {
            sleep(Duration::from_millis(20)).await;
            1
        });
        let bad = spawn(async move {
            let _guard = guard;
            sleep(Duration::from_millis(5)).await;
            let n = 7;
            if n == 7 {
                panic!("boom {n}");
            }
            0
        });
        let bad_static = spawn(async {
            yield_now().await;
            panic!("static boom");
        });
        let after = spawn(async {
            sleep(Duration::from_millis(30)).await;
            2
        });

        let err = bad.await.unwrap_err();
        assert!(err.is_panic());
        assert!(!err.is_cancelled());
        assert!(err.to_string().contains("boom 7"), "{err}");
        assert!(format!("{err:?}").contains("boom 7"), "{err:?}");
        assert_eq!(panic_message(&*err.into_panic()), "boom 7");
        assert!(dropped.get(), "the panicked future is dropped");

        let err = bad_static.await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(panic_message(&*err.into_panic()), "static boom");

        assert_eq!(before.await.unwrap(), 1);
        assert_eq!(after.await.unwrap(), 2);
        // Spawning still works after the panics.
        assert_eq!(spawn(async { 3 }).await.unwrap(), 3);
    });
    assert_eq!(rt.stats().tasks, 0);
    assert_eq!(rt.stats().timers, 0);
}

/// A panic in the destructor of an aborted task's future is contained like any other panic
/// of a spawned task: `block_on` does not unwind, the handle reports `is_panic`, other tasks
/// keep running and `stats().tasks` returns to 0.
#[test]
fn panic_in_drop_of_aborted_task_is_contained() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop boom");
        }
    }
    let rt = Runtime::new().unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        block_on_bounded(&rt, 10, async {
            let victim = spawn(async {
                let _bomb = PanicOnDrop;
                pending::<()>().await;
            });
            let bystander = spawn(async {
                sleep(Duration::from_millis(5)).await;
                2
            });
            yield_now().await;
            yield_now().await;
            victim.abort();
            let err = victim.await.unwrap_err();
            (err.is_panic(), err.to_string(), bystander.await.unwrap())
        })
    }));
    let (is_panic, message, bystander) =
        outcome.expect("a panic in an aborted task's Drop escaped from block_on");
    assert!(is_panic, "reported as: {message}");
    assert!(message.contains("drop boom"), "{message}");
    assert_eq!(bystander, 2);
    assert_eq!(rt.stats().tasks, 0, "the task's slot leaked");
}

/// Regression: a pending task whose `Drop` panics while the runtime is dropped does not
/// unwind out of `Runtime::drop`, and the other pending tasks are still dropped.
#[test]
fn panic_in_drop_during_runtime_drop_is_contained() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop boom at shutdown");
        }
    }
    let (dropped, flag) = drop_flag();
    let rt = Runtime::new().unwrap();
    rt.block_on(async move {
        let bomb = spawn(async {
            let _bomb = PanicOnDrop;
            pending::<()>().await;
        });
        let other = spawn(async move {
            let _flag = flag;
            pending::<()>().await;
        });
        drop((bomb, other));
        yield_now().await;
    });
    assert_eq!(rt.stats().tasks, 2);
    let outcome = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    assert!(
        outcome.is_ok(),
        "a task's panicking Drop escaped from Runtime::drop"
    );
    assert!(dropped.get(), "the other pending task was dropped too");
}

/// A panic in the `block_on` future propagates out of `block_on`; the runtime stays usable.
#[test]
fn panic_in_block_on_future_propagates() {
    let rt = Runtime::new().unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            yield_now().await;
            panic!("main boom");
        })
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*err), "main boom");
    assert_eq!(
        block_on_bounded(&rt, 10, async { spawn(async { 1 }).await }).unwrap(),
        1
    );
}

/// A future that counts its polls, wakes itself `wakes` times in its first poll, and then
/// stays pending: any extra poll would show in the count.
struct SelfWaker {
    polls: Rc<Cell<u32>>,
    wakes: u32,
}

impl Future for SelfWaker {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.set(self.polls.get() + 1);
        if self.polls.get() == 1 {
            for _ in 0..self.wakes {
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}

/// Many wakes of a task during one poll lead to exactly one more poll, for a spawned task
/// and for the `block_on` future.
#[test]
fn many_self_wakes_before_a_poll_poll_once() {
    let rt = Runtime::new().unwrap();
    let polls = Rc::new(Cell::new(0));
    let task = rt.spawn(SelfWaker {
        polls: polls.clone(),
        wakes: 100,
    });
    block_on_watched(&rt, 10, async {
        for _ in 0..10 {
            yield_now().await;
        }
    });
    assert_eq!(polls.get(), 2, "100 self-wakes must give one more poll");
    task.abort();
    assert!(block_on_watched(&rt, 10, task).unwrap_err().is_cancelled());

    // The block_on future: polled first, once more for its 100 self-wakes, and once when
    // the task it waits for finishes.
    let polls = Rc::new(Cell::new(0u32));
    let mut first = true;
    let mut other = rt.spawn(sleep(Duration::from_millis(30)));
    block_on_watched(
        &rt,
        10,
        poll_fn(|cx| {
            polls.set(polls.get() + 1);
            if first {
                first = false;
                for _ in 0..100 {
                    cx.waker().wake_by_ref();
                }
            }
            Pin::new(&mut other).poll(cx)
        }),
    )
    .unwrap();
    assert_eq!(polls.get(), 3);
}

/// 1000 wakes (by reference and by value on clones) from another task lead to one poll.
#[test]
fn many_wakes_from_another_task_poll_once() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let stored: Rc<RefCell<Option<Waker>>> = Rc::default();
        let polls = Rc::new(Cell::new(0u32));
        let target = spawn({
            let stored = stored.clone();
            let polls = polls.clone();
            poll_fn(move |cx| {
                polls.set(polls.get() + 1);
                if polls.get() == 1 {
                    *stored.borrow_mut() = Some(cx.waker().clone());
                }
                Poll::<()>::Pending
            })
        });
        let waker_task = spawn({
            let stored = stored.clone();
            async move {
                let mut spins = 0;
                while stored.borrow().is_none() {
                    spins += 1;
                    assert!(spins < 10_000, "target never parked");
                    yield_now().await;
                }
                let waker = stored.borrow_mut().take().unwrap();
                let clones: Vec<Waker> = (0..500).map(|_| waker.clone()).collect();
                for _ in 0..500 {
                    waker.wake_by_ref();
                }
                for clone in clones {
                    clone.wake();
                }
            }
        });
        waker_task.await.unwrap();
        for _ in 0..10 {
            yield_now().await;
        }
        assert_eq!(
            polls.get(),
            2,
            "1000 wakes before a poll must give one poll"
        );
        target.abort();
        assert!(target.await.unwrap_err().is_cancelled());
    });
}

/// A wake from another thread interrupts a loop sleeping in `mio::Poll` with no timers and
/// no I/O pending, for the `block_on` future and for a spawned task.
#[test]
fn remote_wake_interrupts_sleeping_poll() {
    let _dog = watchdog("remote_wake_interrupts_sleeping_poll", 10);
    let rt = Runtime::new().unwrap();

    // A handshake: the future parks its waker in `slot`; a thread wakes it 50 ms later.
    fn remote_waker() -> (Arc<Mutex<Option<Waker>>>, Arc<AtomicBool>) {
        let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (slot2, done2) = (slot.clone(), done.clone());
        thread::spawn(move || {
            let start = Instant::now();
            let waker = loop {
                if let Some(w) = slot2.lock().unwrap().take() {
                    break w;
                }
                assert!(start.elapsed() < Duration::from_secs(5), "never parked");
                thread::sleep(Duration::from_millis(1));
            };
            thread::sleep(Duration::from_millis(50));
            done2.store(true, Ordering::SeqCst);
            waker.wake();
        });
        (slot, done)
    }

    fn parked(
        slot: Arc<Mutex<Option<Waker>>>,
        done: Arc<AtomicBool>,
        polls: Rc<Cell<u32>>,
    ) -> impl Future<Output = ()> {
        poll_fn(move |cx| {
            polls.set(polls.get() + 1);
            if done.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                *slot.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    // The block_on future itself.
    let (slot, done) = remote_waker();
    let polls = Rc::new(Cell::new(0));
    let start = Instant::now();
    rt.block_on(parked(slot, done, polls.clone()));
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(polls.get(), 2);
    let stats = rt.stats();
    assert_eq!((stats.timers, stats.io_sources, stats.tasks), (0, 0, 0));

    // A spawned task, while the block_on future waits on its handle.
    let (slot, done) = remote_waker();
    let polls = Rc::new(Cell::new(0));
    let start = Instant::now();
    let handle = rt.spawn(parked(slot, done, polls.clone()));
    rt.block_on(handle).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(polls.get(), 2);
    assert_eq!(rt.stats().timers, 0);
}

/// Wakes from many threads at once are never lost: the task sees every increment.
#[test]
fn concurrent_remote_wakes_are_not_lost() {
    const THREADS: usize = 8;
    const WAKES: usize = 2000;
    let _dog = watchdog("concurrent_remote_wakes_are_not_lost", 30);
    let rt = Runtime::new().unwrap();
    for _round in 0..5 {
        let count = Arc::new(AtomicUsize::new(0));
        let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
        let polls = Rc::new(Cell::new(0usize));
        let task = rt.spawn({
            let (count, slot, polls) = (count.clone(), slot.clone(), polls.clone());
            poll_fn(move |cx| {
                polls.set(polls.get() + 1);
                *slot.lock().unwrap() = Some(cx.waker().clone());
                if count.load(Ordering::SeqCst) == THREADS * WAKES {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
        });
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (count, slot) = (count.clone(), slot.clone());
                thread::spawn(move || {
                    for _ in 0..WAKES {
                        count.fetch_add(1, Ordering::SeqCst);
                        let waker = slot.lock().unwrap().clone();
                        if let Some(w) = waker {
                            w.wake();
                        }
                    }
                })
            })
            .collect();
        // No timers: only remote wakes can end this.
        rt.block_on(task).unwrap();
        for t in threads {
            t.join().unwrap();
        }
        assert!(polls.get() <= THREADS * WAKES + 1);
    }
}

/// `spawn_blocking` runs its closure on another thread and returns its value.
#[test]
fn spawn_blocking_returns_value() {
    let rt = Runtime::new().unwrap();
    let main_thread = thread::current().id();
    let (value, other) = block_on_bounded(&rt, 20, async move {
        spawn_blocking(move || {
            thread::sleep(Duration::from_millis(20));
            (42u32, thread::current().id() != main_thread)
        })
        .await
        .unwrap()
    });
    assert_eq!(value, 42);
    assert!(other, "the closure runs on a helper thread");
}

/// More blocking jobs than helper threads all complete, each with its own value.
#[test]
fn spawn_blocking_many_jobs() {
    let rt = Runtime::new().unwrap();
    let n = volley::rt::MAX_BLOCKING_THREADS * 3;
    let results = block_on_bounded(&rt, 30, async move {
        let jobs: Vec<_> = (0..n)
            .map(|i| {
                spawn_blocking(move || {
                    thread::sleep(Duration::from_millis(5));
                    i * i
                })
            })
            .collect();
        let mut out = Vec::new();
        for job in jobs {
            out.push(job.await.unwrap());
        }
        out
    });
    assert_eq!(results, (0..n).map(|i| i * i).collect::<Vec<_>>());
}

/// A panic inside a `spawn_blocking` closure is reported as `is_panic` with its message.
#[test]
fn spawn_blocking_panic_is_reported() {
    let rt = Runtime::new().unwrap();
    let err = block_on_bounded(&rt, 20, async {
        spawn_blocking(|| -> u32 { panic!("blocking boom") })
            .await
            .unwrap_err()
    });
    assert!(err.is_panic());
    assert!(err.to_string().contains("blocking boom"), "{err}");
    // The pool survives the panic.
    let v = block_on_bounded(&rt, 20, async { spawn_blocking(|| 7).await.unwrap() });
    assert_eq!(v, 7);
}

/// `block_on` returns as soon as its future completes; pending tasks stay in the runtime
/// and are dropped with it (their `Drop` runs, their handles report cancellation).
#[test]
fn pending_tasks_are_dropped_with_the_runtime() {
    let rt = Runtime::new().unwrap();
    let mut flags = Vec::new();
    let mut handles = Vec::new();
    for i in 0..10 {
        let (flag, guard) = drop_flag();
        flags.push(flag);
        handles.push(rt.spawn(async move {
            let _guard = guard;
            if i % 2 == 0 {
                pending::<()>().await;
            } else {
                sleep(Duration::from_secs(3600)).await;
            }
        }));
    }
    let started = Instant::now();
    block_on_bounded(&rt, 10, async {
        yield_now().await;
        yield_now().await;
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "block_on must not wait for other tasks"
    );
    let stats = rt.stats();
    assert_eq!(stats.tasks, 10);
    assert_eq!(stats.timers, 5);
    assert!(flags.iter().all(|f| !f.get()));
    assert!(handles.iter().all(|h| !h.is_finished()));

    drop(rt);
    assert!(
        flags.iter().all(|f| f.get()),
        "every pending task is dropped"
    );
    for h in &mut handles {
        assert!(h.is_finished());
        assert!(take_finished(h).unwrap_err().is_cancelled());
    }
}

/// Tasks left pending by one `block_on` run again in the next, and `stats().tasks` returns
/// to 0 once they are aborted.
#[test]
fn pending_tasks_survive_between_block_ons() {
    let rt = Runtime::new().unwrap();
    let counter = Rc::new(Cell::new(0));
    let c = counter.clone();
    let slow = rt.spawn(async move {
        sleep(Duration::from_millis(30)).await;
        c.set(c.get() + 1);
    });
    let stuck: Vec<_> = (0..5).map(|_| rt.spawn(pending::<()>())).collect();
    block_on_bounded(&rt, 10, async {});
    assert_eq!(rt.stats().tasks, 6);
    block_on_bounded(&rt, 10, slow).unwrap();
    assert_eq!(counter.get(), 1);
    assert_eq!(rt.stats().tasks, 5);
    block_on_bounded(&rt, 10, async move {
        for h in &stuck {
            h.abort();
        }
        for h in stuck {
            assert!(h.await.unwrap_err().is_cancelled());
        }
    });
    assert_eq!(rt.stats().tasks, 0);
}

/// A task whose `Drop` spawns another task during runtime shutdown: both are dropped.
#[test]
fn drop_during_shutdown_may_spawn() {
    struct SpawnOnDrop(Option<DropFlag>);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            let guard = self.0.take();
            drop(spawn(async move {
                let _guard = guard;
                pending::<()>().await;
            }));
        }
    }
    let rt = Runtime::new().unwrap();
    let (flag, guard) = drop_flag();
    let _task = rt.spawn(async move {
        let _s = SpawnOnDrop(Some(guard));
        pending::<()>().await;
    });
    block_on_bounded(&rt, 10, yield_now());
    drop(rt);
    assert!(flag.get(), "the task spawned from Drop was dropped too");
}

/// Dropping a `JoinHandle` detaches the task, which still runs to completion.
#[test]
fn detached_task_runs_to_completion() {
    let rt = Runtime::new().unwrap();
    let done = Rc::new(Cell::new(false));
    block_on_bounded(&rt, 10, {
        let done = done.clone();
        async move {
            let d = done.clone();
            drop(spawn(async move {
                sleep(Duration::from_millis(20)).await;
                yield_now().await;
                d.set(true);
            }));
            for _ in 0..1000 {
                if done.get() {
                    break;
                }
                sleep(Duration::from_millis(5)).await;
            }
        }
    });
    assert!(done.get());
    assert_eq!(rt.stats().tasks, 0);
}

/// A stale waker of a finished task never polls the task that reuses its slot.
#[test]
fn stale_waker_does_not_poll_slot_reuser() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let stale: Rc<RefCell<Option<Waker>>> = Rc::default();
        let s = stale.clone();
        spawn(poll_fn(move |cx| {
            *s.borrow_mut() = Some(cx.waker().clone());
            Poll::Ready(())
        }))
        .await
        .unwrap();
        let polls = Rc::new(Cell::new(0u32));
        let p = polls.clone();
        let reuser = spawn(poll_fn(move |_| {
            p.set(p.get() + 1);
            Poll::<()>::Pending
        }));
        yield_now().await;
        yield_now().await;
        assert_eq!(polls.get(), 1);
        let waker = stale.borrow_mut().take().unwrap();
        waker.wake_by_ref();
        waker.wake();
        for _ in 0..5 {
            yield_now().await;
        }
        assert_eq!(polls.get(), 1, "a stale wake polled another task");
        reuser.abort();
        assert!(reuser.await.unwrap_err().is_cancelled());
    });
    assert_eq!(rt.stats().tasks, 0);
}

/// A task that wakes itself forever does not starve timers: the loop still fires them.
#[test]
fn busy_task_does_not_starve_timers() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let spins = Rc::new(Cell::new(0u64));
        let s = spins.clone();
        let spinner = spawn(poll_fn(move |cx| {
            s.set(s.get() + 1);
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        }));
        let finished = volley::timeout(Duration::from_secs(5), sleep(Duration::from_millis(10)))
            .await
            .is_ok();
        assert!(finished, "the sleep must finish despite the spinning task");
        assert!(spins.get() > 1);
        spinner.abort();
        assert!(spinner.await.unwrap_err().is_cancelled());
    });
    assert!(rt.stats().turns > 0);
}

/// `block_on` inside a running runtime (the same or another) panics instead of stalling,
/// and the runtime is usable afterwards.
#[test]
fn nested_block_on_panics() {
    let rt = Runtime::new().unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { rt.block_on(async { 1 }) })
    }))
    .unwrap_err();
    assert!(
        panic_message(&*err).contains("inside a running runtime"),
        "{}",
        panic_message(&*err)
    );

    let other = Runtime::new().unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { other.block_on(async { 1 }) })
    }))
    .unwrap_err();
    assert!(panic_message(&*err).contains("inside a running runtime"));

    // Both runtimes still work after the panics.
    assert_eq!(
        block_on_bounded(&rt, 10, async { spawn(async { 2 }).await.unwrap() }),
        2
    );
    assert_eq!(
        block_on_bounded(&other, 10, async { spawn(async { 3 }).await.unwrap() }),
        3
    );
}

/// Two runtimes on two threads run independently.
#[test]
fn runtimes_on_two_threads() {
    let _dog = watchdog("runtimes_on_two_threads", 20);
    let threads: Vec<_> = (0..2u64)
        .map(|k| {
            thread::spawn(move || {
                let rt = Runtime::new().unwrap();
                rt.block_on(async move {
                    let hs: Vec<_> = (0..100u64)
                        .map(|i| {
                            spawn(async move {
                                sleep(Duration::from_millis(i % 7)).await;
                                i + k
                            })
                        })
                        .collect();
                    let mut sum = 0;
                    for h in hs {
                        sum += h.await.unwrap();
                    }
                    sum
                })
            })
        })
        .collect();
    let sums: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(sums, vec![4950, 5050]);
}
