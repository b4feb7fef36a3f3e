//! A dropped runtime releases every descriptor it and its tasks held. Alone in its own test
//! binary, so no other test opens or closes descriptors while it counts them.

mod util;

use std::cell::Cell;
use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use util::{block_on_bounded, local, open_fds};
use volley::{sleep, spawn, Runtime, TcpListener, TcpStream};

/// Sockets held by pending tasks (a listener, clients and accepted streams), timers, and the
/// runtime's own epoll and eventfd descriptors are all closed when the runtime is dropped.
#[test]
fn dropped_runtime_releases_its_sockets() {
    const CONNS: usize = 200;
    // Warm up anything lazily opened by the process on first use, outside the count.
    drop(Runtime::new().unwrap());

    let before = open_fds();
    let rt = Runtime::new().unwrap();
    let accepted = Rc::new(Cell::new(0usize));
    let connected = Rc::new(Cell::new(0usize));
    block_on_bounded(&rt, 60, {
        let (accepted, connected) = (accepted.clone(), connected.clone());
        async move {
            let mut listener = TcpListener::bind(local()).unwrap();
            let addr = listener.local_addr().unwrap();
            let acc = accepted.clone();
            // The server task stays pending in accept; each connection task in a read.
            drop(spawn(async move {
                loop {
                    let (mut conn, _) = listener.accept().await.unwrap();
                    let acc = acc.clone();
                    drop(spawn(async move {
                        // Counted once the read has registered the stream and parked.
                        let mut buf = [0u8; 16];
                        let mut read = conn.read(&mut buf);
                        let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut read).poll(cx)));
                        assert!(polled.await.is_pending(), "the client sent nothing");
                        acc.set(acc.get() + 1);
                        let _ = read.await;
                        pending::<()>().await;
                    }));
                }
            }));
            for _ in 0..CONNS {
                let connected = connected.clone();
                drop(spawn(async move {
                    let mut conn = TcpStream::connect(addr).await.unwrap();
                    // A stream registers with the reactor on its first operation: a read
                    // that parks (the server sends nothing).
                    let mut buf = [0u8; 16];
                    let mut read = conn.read(&mut buf);
                    let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut read).poll(cx)));
                    assert!(polled.await.is_pending(), "the server sent nothing");
                    drop(read);
                    connected.set(connected.get() + 1);
                    // Hold the connection and a far timer forever.
                    sleep(Duration::from_secs(3600)).await;
                }));
            }
            for _ in 0..10_000 {
                if accepted.get() == CONNS && connected.get() == CONNS {
                    break;
                }
                sleep(Duration::from_millis(5)).await;
            }
        }
    });
    assert_eq!((accepted.get(), connected.get()), (CONNS, CONNS));
    let stats = rt.stats();
    assert_eq!(stats.io_sources, 2 * CONNS + 1);
    assert_eq!(stats.timers, CONNS);
    assert_eq!(stats.tasks, 2 * CONNS + 1);
    let during = open_fds();
    assert!(
        during > before + 2 * CONNS,
        "expected the sockets to be open: {before} before, {during} during"
    );

    drop(rt);
    assert_eq!(
        open_fds(),
        before,
        "descriptors leaked by the dropped runtime"
    );

    // Many runtimes created and dropped leak nothing either.
    for _ in 0..50 {
        let rt = Runtime::new().unwrap();
        rt.block_on(async {
            let l = TcpListener::bind(local()).unwrap();
            let addr = l.local_addr().unwrap();
            drop(spawn(async move {
                let _c = TcpStream::connect(addr).await;
                pending::<()>().await;
            }));
            drop(spawn(async move {
                let mut l = l;
                let _ = l.accept().await;
                pending::<()>().await;
            }));
            sleep(Duration::from_millis(1)).await;
        });
    }
    assert_eq!(
        open_fds(),
        before,
        "descriptors leaked by repeated runtimes"
    );
}
