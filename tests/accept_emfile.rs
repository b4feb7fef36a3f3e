//! Accepting while out of file descriptors. Alone in its own test binary, because it lowers
//! the process-wide `RLIMIT_NOFILE`.

mod util;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use util::{block_on_bounded, local, open_fd_numbers, watchdog};
use volley::net::ACCEPT_BACKOFF;
use volley::{sleep, spawn, Runtime, TcpListener};

/// `EMFILE`, as `raw_os_error` reports it.
const EMFILE: i32 = 24;

/// Descriptors left for the server to accept into before it runs out.
const SERVER_ROOM: u64 = 10;

/// Restores the descriptor limit when dropped, also if the test fails.
struct RestoreLimit(Rlimit);

impl Drop for RestoreLimit {
    fn drop(&mut self) {
        let _ = setrlimit(Resource::Nofile, self.0);
    }
}

/// Waits (bounded) until `cond` holds.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// When `accept` runs out of descriptors it reports `EMFILE`, backs off instead of spinning
/// (few loop turns while the error persists), and accepts the queued connections once
/// descriptors are freed.
#[test]
fn accept_emfile_backs_off_and_recovers() {
    let _dog = watchdog("accept_emfile_backs_off_and_recovers", 60);
    let original = getrlimit(Resource::Nofile);
    let _restore = RestoreLimit(original);

    let rt = Runtime::new().unwrap();
    let mut listener = TcpListener::bind(local()).unwrap();
    let addr = listener.local_addr().unwrap();

    // Descriptors are handed out lowest first, and the limit caps their numbers: with every
    // open descriptor below `limit`, exactly `limit - open` more can be opened.
    let open = open_fd_numbers();
    let highest = *open.iter().max().unwrap();
    let limit = (highest + 1).max(open.len() as u64 + SERVER_ROOM + 30);
    let free = limit - open.len() as u64;
    assert!(
        free < 2000,
        "descriptor numbers too sparse to test: {open:?}"
    );
    let clients = (free - SERVER_ROOM) as usize;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: original.maximum,
        },
    )
    .expect("lower RLIMIT_NOFILE");

    // Blocking clients on their own thread: their connects complete into the listen backlog
    // whether or not the server can accept. They hold their sockets until told to go.
    let (connected_tx, connected_rx) = mpsc::channel::<Result<usize, String>>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let client_thread = thread::spawn(move || {
        let mut streams = Vec::new();
        for i in 0..clients {
            match std::net::TcpStream::connect(addr) {
                Ok(s) => streams.push(s),
                Err(e) => {
                    let _ = connected_tx.send(Err(format!("client connect {i}: {e}")));
                    return;
                }
            }
        }
        let _ = connected_tx.send(Ok(streams.len()));
        let _ = release_rx.recv_timeout(Duration::from_secs(60));
        drop(streams);
    });
    let n = connected_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("client thread hung")
        .unwrap();
    assert_eq!(n, clients);
    // From here on no descriptor is free except SERVER_ROOM for the server's accepts.

    let accepted: Rc<RefCell<Vec<(volley::TcpStream, SocketAddr)>>> = Rc::default();
    let total = Rc::new(Cell::new(0usize));
    let errors: Rc<RefCell<Vec<Option<i32>>>> = Rc::default();
    let release = Rc::new(Cell::new(false));

    block_on_bounded(&rt, 40, async {
        let server = spawn({
            let (accepted, total, errors, release) = (
                accepted.clone(),
                total.clone(),
                errors.clone(),
                release.clone(),
            );
            async move {
                while total.get() < clients {
                    match listener.accept().await {
                        Ok(pair) => {
                            total.set(total.get() + 1);
                            if !release.get() {
                                accepted.borrow_mut().push(pair);
                            } // else: dropped at once, freeing its descriptor again
                        }
                        // A server loop that logs the error and accepts again.
                        Err(e) => errors.borrow_mut().push(e.raw_os_error()),
                    }
                }
            }
        });

        // The server fills its room, then hits EMFILE.
        wait_until("the first accept error", || !errors.borrow().is_empty()).await;
        let filled = total.get();
        assert!(filled >= 1, "nothing was accepted before EMFILE");
        assert!(
            filled < clients,
            "all {clients} accepted: EMFILE never happened"
        );

        // While EMFILE persists, the loop sleeps between retries instead of spinning.
        let turns_before = rt.stats().turns;
        let errors_before = errors.borrow().len();
        sleep(Duration::from_millis(500)).await;
        let turns = rt.stats().turns - turns_before;
        let retries = errors.borrow().len() - errors_before;
        assert!(
            turns < 100,
            "{turns} loop turns in 500 ms under EMFILE: spinning"
        );
        assert!(
            retries >= 1,
            "accept was not retried within 500 ms (backoff is {ACCEPT_BACKOFF:?})"
        );
        assert!(retries < 100, "{retries} accept errors in 500 ms: spinning");
        assert_eq!(total.get(), filled, "accepted while out of descriptors?");
        assert!(
            errors.borrow().iter().all(|e| *e == Some(EMFILE)),
            "accept errors other than EMFILE: {:?}",
            errors.borrow()
        );

        // Free the descriptors: the server keeps serving and drains the queue.
        release.set(true);
        accepted.borrow_mut().clear();
        wait_until("the queued connections to be accepted", || {
            total.get() == clients
        })
        .await;
        server.await.unwrap();
    });
    assert_eq!(total.get(), clients);
    assert!(errors.borrow().iter().all(|e| *e == Some(EMFILE)));

    release_tx.send(()).unwrap();
    client_thread.join().unwrap();
    drop(rt);
}
