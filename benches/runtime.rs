//! volley against tokio's current-thread runtime, doing the same work in the same bench.
//!
//! Each criterion group holds two functions, `volley` and `tokio`, so the report shows them
//! side by side. Both runtimes run on one thread, and each is built once per benchmark, outside
//! the timed loop. The tokio runtime is `Builder::new_current_thread().enable_all().build()`.
//! Tasks go to it with plain `tokio::spawn` from inside `block_on`: on a current-thread runtime
//! that is the analogue of `volley::spawn` (same thread, the runtime's own run queue, no
//! `LocalSet` in between). Shared state between tasks is therefore `Send` (`Arc`, atomics), the
//! same types on both sides.
//!
//! Run all of it with `cargo bench -p volley-benches --bench runtime`, or one group with e.g.
//! `cargo bench -p volley-benches --bench runtime -- spawn_100k`.

use std::future::{poll_fn, Future};
use std::hint::black_box;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Tasks spawned per iteration of `spawn_100k`.
const SPAWNS: u64 = 100_000;
/// Yields per iteration of `wake_repoll`, and hand-offs per iteration of `wake_ping_pong`.
const WAKES: usize = 100_000;
/// Timers created, registered and cancelled per iteration of `timers_insert_cancel_100k`.
const TIMERS: usize = 100_000;
/// Round trips per iteration of `tcp_ping_pong`.
const ROUND_TRIPS: usize = 10_000;
/// Size of one `tcp_ping_pong` message, each way.
const MSG: usize = 64;

fn volley_rt() -> volley::Runtime {
    volley::Runtime::new().expect("volley runtime")
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Settings for a noisy 2-core machine: few samples, a few seconds each.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(8))
        .noise_threshold(0.05)
}

// ---------------------------------------------------------------------------------------------
// spawn_100k

/// Spawns `SPAWNS` tasks on volley that each return their index, awaits every handle in order
/// and sums the outputs.
async fn spawn_volley() -> u64 {
    let handles: Vec<_> = (0..SPAWNS)
        .map(|i| volley::spawn(async move { i }))
        .collect();
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    sum
}

/// The same as [`spawn_volley`] with `tokio::spawn`.
async fn spawn_tokio() -> u64 {
    let handles: Vec<_> = (0..SPAWNS)
        .map(|i| tokio::spawn(async move { i }))
        .collect();
    let mut sum = 0;
    for handle in handles {
        sum += handle.await.unwrap();
    }
    sum
}

/// spawn_100k: inside `block_on`, spawn 100,000 trivial tasks and await all their handles
/// (task allocation, first poll, completion, join-handle wake-up and read-out).
fn spawn_100k(c: &mut Criterion) {
    let expected = SPAWNS * (SPAWNS - 1) / 2;
    let mut group = c.benchmark_group("spawn_100k");
    group.throughput(Throughput::Elements(SPAWNS));
    group.bench_function("volley", |b| {
        let rt = volley_rt();
        assert_eq!(rt.block_on(spawn_volley()), expected);
        b.iter(|| black_box(rt.block_on(spawn_volley())));
    });
    group.bench_function("tokio", |b| {
        let rt = tokio_rt();
        assert_eq!(rt.block_on(spawn_tokio()), expected);
        b.iter(|| black_box(rt.block_on(spawn_tokio())));
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// wake_repoll

/// Returns `Pending` once, after waking its own task with `wake_by_ref`, then `Ready`: the
/// smallest trip through wake -> run queue -> re-poll. (Not `tokio::task::yield_now`, which
/// defers its wake on tokio and would not take the same path as on volley.)
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A spawned task that yields `WAKES` times.
async fn yield_loop() -> usize {
    for _ in 0..WAKES {
        YieldNow { yielded: false }.await;
    }
    WAKES
}

/// wake_repoll: one spawned task yields 100,000 times through a self-wake, so each iteration
/// is 100,000 wake -> run-queue -> re-poll cycles of a spawned task.
fn wake_repoll(c: &mut Criterion) {
    let mut group = c.benchmark_group("wake_repoll");
    group.throughput(Throughput::Elements(WAKES as u64));
    group.bench_function("volley", |b| {
        let rt = volley_rt();
        b.iter(|| black_box(rt.block_on(async { volley::spawn(yield_loop()).await.unwrap() })));
    });
    group.bench_function("tokio", |b| {
        let rt = tokio_rt();
        b.iter(|| black_box(rt.block_on(async { tokio::spawn(yield_loop()).await.unwrap() })));
    });
    group.finish();
}

/// Whose turn it is, and where each of two tasks leaves its waker while it waits.
#[derive(Default)]
struct Baton {
    turn: AtomicUsize,
    wakers: [Mutex<Option<Waker>>; 2],
}

impl Baton {
    /// Waits until it is `me`'s turn. The waker is stored once and reused (`will_wake`), so the
    /// hot path clones no waker.
    fn wait(&self, me: usize) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.turn.load(Ordering::Acquire) == me {
                return Poll::Ready(());
            }
            let mut slot = self.wakers[me].lock().unwrap();
            match &*slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
    }

    /// Hands the turn to the other task and wakes it.
    fn pass(&self, me: usize) {
        let other = 1 - me;
        self.turn.store(other, Ordering::Release);
        if let Some(w) = &*self.wakers[other].lock().unwrap() {
            w.wake_by_ref();
        }
    }
}

/// One side of the ping-pong: `WAKES / 2` turns, each ending with a wake of the other side.
async fn ping_pong_side(baton: Arc<Baton>, me: usize) {
    for _ in 0..WAKES / 2 {
        baton.wait(me).await;
        baton.pass(me);
    }
}

/// wake_ping_pong: two spawned tasks hand a turn back and forth 100,000 times in all, each
/// hand-off one cross-task wake and one re-poll (the `Arc<Mutex<Option<Waker>>>` is the same on
/// both runtimes: `tokio::spawn` needs `Send`).
fn wake_ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("wake_ping_pong");
    group.throughput(Throughput::Elements(WAKES as u64));
    group.bench_function("volley", |b| {
        let rt = volley_rt();
        b.iter(|| {
            rt.block_on(async {
                let baton = Arc::new(Baton::default());
                let a = volley::spawn(ping_pong_side(baton.clone(), 0));
                let b = volley::spawn(ping_pong_side(baton, 1));
                a.await.unwrap();
                b.await.unwrap();
            })
        });
    });
    group.bench_function("tokio", |b| {
        let rt = tokio_rt();
        b.iter(|| {
            rt.block_on(async {
                let baton = Arc::new(Baton::default());
                let a = tokio::spawn(ping_pong_side(baton.clone(), 0));
                let b = tokio::spawn(ping_pong_side(baton, 1));
                a.await.unwrap();
                b.await.unwrap();
            })
        });
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// timers_insert_cancel_100k

/// Polls every sleep once from one task (which registers it with the runtime's timers) and
/// checks that none is due.
async fn poll_each_once<S: Future<Output = ()>>(sleeps: &mut [Pin<Box<S>>]) {
    poll_fn(|cx| {
        for sleep in sleeps.iter_mut() {
            assert!(sleep.as_mut().poll(cx).is_pending());
        }
        Poll::Ready(())
    })
    .await;
}

/// Creates `TIMERS` volley sleeps 1 s + i µs away, registers each by polling it once, then
/// drops them all (cancelling every timer). Returns how many timers the runtime held.
async fn timers_volley(rt: &volley::Runtime) -> usize {
    let base = Instant::now() + Duration::from_secs(1);
    // volley's `Sleep` is `Unpin`, but it is boxed like tokio's (which is not) so that both
    // sides do the same allocations.
    let mut sleeps: Vec<_> = (0..TIMERS as u64)
        .map(|i| Box::pin(volley::sleep_until(base + Duration::from_micros(i))))
        .collect();
    poll_each_once(&mut sleeps).await;
    let registered = rt.stats().timers;
    drop(sleeps);
    registered
}

/// The same as [`timers_volley`] with `tokio::time::sleep_until`. Tokio's `Sleep` also
/// registers with the timer wheel on its first poll, and deregisters on drop. (Its poll takes a
/// unit of tokio's cooperative budget first, but a `Pending` poll gives it back, so the budget
/// does not stop the 100,000 registrations; `check_all_register` confirms they happen.)
async fn timers_tokio() -> usize {
    let base = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut sleeps: Vec<_> = (0..TIMERS as u64)
        .map(|i| Box::pin(tokio::time::sleep_until(base + Duration::from_micros(i))))
        .collect();
    poll_each_once(&mut sleeps).await;
    drop(sleeps);
    TIMERS
}

/// Counts the wakes it receives.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Checks, outside the timed loop, that polling each sleep once the way the bench does really
/// registers it: every one of `sleeps` (due within a few ms) must wake its waker once `pause`
/// (due after them all) completes.
async fn check_all_register<S, P>(mut sleeps: Vec<Pin<Box<S>>>, pause: P)
where
    S: Future<Output = ()>,
    P: Future<Output = ()>,
{
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    poll_fn(|_| {
        for sleep in sleeps.iter_mut() {
            assert!(sleep.as_mut().poll(&mut cx).is_pending());
        }
        Poll::Ready(())
    })
    .await;
    pause.await;
    assert_eq!(counter.0.load(Ordering::Relaxed), sleeps.len());
}

/// timers_insert_cancel_100k: make 100,000 sleeps with distinct deadlines, poll each once so
/// it registers its timer, then drop them all so every timer is cancelled before it fires.
fn timers_insert_cancel_100k(c: &mut Criterion) {
    let mut group = c.benchmark_group("timers_insert_cancel_100k");
    group.throughput(Throughput::Elements(TIMERS as u64));
    group.bench_function("volley", |b| {
        let rt = volley_rt();
        rt.block_on(async {
            let soon = Instant::now() + Duration::from_millis(2);
            let sleeps = (0..1000)
                .map(|_| Box::pin(volley::sleep_until(soon)))
                .collect();
            check_all_register(sleeps, volley::sleep(Duration::from_millis(10))).await;
        });
        assert_eq!(rt.block_on(timers_volley(&rt)), TIMERS);
        assert_eq!(rt.stats().timers, 0);
        b.iter(|| black_box(rt.block_on(timers_volley(&rt))));
    });
    group.bench_function("tokio", |b| {
        let rt = tokio_rt();
        rt.block_on(async {
            let soon = tokio::time::Instant::now() + Duration::from_millis(2);
            let sleeps = (0..1000)
                .map(|_| Box::pin(tokio::time::sleep_until(soon)))
                .collect();
            check_all_register(sleeps, tokio::time::sleep(Duration::from_millis(10))).await;
        });
        b.iter(|| black_box(rt.block_on(timers_tokio())));
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// tcp_ping_pong

/// Reads exactly `buf.len()` bytes from a volley stream; `UnexpectedEof` if the peer closes.
async fn read_exact_volley(stream: &mut volley::TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(())
}

/// Accepts one connection and echoes `MSG`-byte messages until the client closes.
async fn echo_server_volley(mut listener: volley::TcpListener) -> io::Result<()> {
    let (mut conn, _) = listener.accept().await?;
    conn.set_nodelay(true)?;
    let mut buf = [0; MSG];
    loop {
        match read_exact_volley(&mut conn, &mut buf).await {
            Ok(()) => conn.write_all(&buf).await?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// `ROUND_TRIPS` times: send one message, read the echo.
async fn client_volley(client: &mut volley::TcpStream) -> u8 {
    let msg = [7; MSG];
    let mut reply = [0; MSG];
    for _ in 0..ROUND_TRIPS {
        client.write_all(&msg).await.unwrap();
        read_exact_volley(client, &mut reply).await.unwrap();
    }
    assert_eq!(reply, msg);
    reply[0]
}

/// The same as [`echo_server_volley`] on `tokio::net`.
async fn echo_server_tokio(listener: tokio::net::TcpListener) -> io::Result<()> {
    let (mut conn, _) = listener.accept().await?;
    conn.set_nodelay(true)?;
    let mut buf = [0; MSG];
    loop {
        match conn.read_exact(&mut buf).await {
            Ok(_) => conn.write_all(&buf).await?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The same as [`client_volley`] on `tokio::net`.
async fn client_tokio(client: &mut tokio::net::TcpStream) -> u8 {
    let msg = [7; MSG];
    let mut reply = [0; MSG];
    for _ in 0..ROUND_TRIPS {
        client.write_all(&msg).await.unwrap();
        client.read_exact(&mut reply).await.unwrap();
    }
    assert_eq!(reply, msg);
    reply[0]
}

/// tcp_ping_pong: a loopback echo server task and a client (the `block_on` future) on the same
/// one-thread runtime, `TCP_NODELAY` on both ends; one iteration is 10,000 round trips of a
/// 64-byte message. The connection is made once per benchmark, outside the timed loop.
fn tcp_ping_pong(c: &mut Criterion) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut group = c.benchmark_group("tcp_ping_pong");
    // One iteration takes long enough that criterion's linear sampling would overrun.
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(ROUND_TRIPS as u64));
    group.bench_function("volley", |b| {
        let rt = volley_rt();
        let (mut client, server) = rt.block_on(async {
            let listener = volley::TcpListener::bind(loopback).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = volley::spawn(echo_server_volley(listener));
            let client = volley::TcpStream::connect(addr).await.unwrap();
            client.set_nodelay(true).unwrap();
            (client, server)
        });
        b.iter(|| black_box(rt.block_on(client_volley(&mut client))));
        drop(client);
        rt.block_on(server).unwrap().unwrap();
    });
    group.bench_function("tokio", |b| {
        let rt = tokio_rt();
        let (mut client, server) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(loopback).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(echo_server_tokio(listener));
            let client = tokio::net::TcpStream::connect(addr).await.unwrap();
            client.set_nodelay(true).unwrap();
            (client, server)
        });
        b.iter(|| black_box(rt.block_on(client_tokio(&mut client))));
        drop(client);
        rt.block_on(server).unwrap().unwrap();
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = spawn_100k, wake_repoll, wake_ping_pong, timers_insert_cancel_100k, tcp_ping_pong
}
criterion_main!(benches);
