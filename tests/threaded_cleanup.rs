//! The threaded client's loop thread starts on first use and stops, with its descriptors,
//! when the last handle drops. Alone in its test binary, so that no other test's threads or
//! descriptors come and go meanwhile.

mod util;

use std::time::{Duration, Instant};

/// Threads of this process (entries in `/proc/self/task`).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn settle(what: &str, expected: usize, count: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() != expected {
        assert!(
            Instant::now() < deadline,
            "{what}: {} now, {expected} before",
            count()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn loop_thread_starts_on_first_use_and_leaves_nothing_behind() {
    let server = volley_testserver::Server::spawn_thread(util::local()).unwrap();
    let url = server.url("/bytes/200000");
    let threads_before = threads();
    let fds_before = util::open_fds();

    let client = volley::threaded::Client::new();
    let clone = client.clone();
    assert_eq!(
        threads(),
        threads_before,
        "no thread before the first request"
    );

    let blocking = volley::blocking::Client::from(clone);
    let resp = blocking.get(&url).send().unwrap();
    assert_eq!(threads(), threads_before + 1, "one loop thread");
    drop(blocking);
    drop(client);
    // The response still holds the loop: its body is read after every client is gone.
    assert_eq!(resp.bytes().unwrap().len(), 200_000);
    // Last handle gone: the loop thread was joined and its epoll, eventfd and sockets closed.
    assert_eq!(threads(), threads_before);
    settle("descriptors", fds_before, util::open_fds);
    drop(server);
}
