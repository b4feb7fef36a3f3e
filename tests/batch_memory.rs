//! A batch that does not keep bodies holds no body memory: its peak memory does not grow with
//! the size of the bodies it reads. One test in its own file, so that the process's peak
//! resident size (`VmHWM`) is this test's alone.

mod util;

use util::status_bytes;
use volley::{Client, Runtime};
use volley_testserver::Server;

/// Regression (issue 14): with `keep_bodies(false)`, every result kept the capacity of the
/// buffer its body was read into, so 300 bodies of 1 MiB held 300 MiB. Now the peak grows by
/// what is in flight (20 bodies being served and read), far below the bodies' total.
#[test]
fn keep_bodies_false_holds_no_body_memory() {
    const BODIES: usize = 300;
    const SIZE: usize = 1 << 20;
    let server = Server::spawn_thread("127.0.0.1:0".parse().unwrap()).unwrap();
    let rt = Runtime::new().unwrap();
    let before = status_bytes("VmRSS:");
    let urls = (0..BODIES).map(|i| server.url(&format!("/bytes/{SIZE}?seed={i}")));
    let report = rt.block_on(
        Client::new()
            .fetch_all(urls)
            .concurrency(20)
            .keep_bodies(false)
            .run(),
    );
    let grown_mib = (status_bytes("VmHWM:") - before) >> 20;
    assert_eq!(report.summary.ok, BODIES as u64, "{:?}", report.summary);
    for result in &report.results {
        let fetched = result.outcome.as_ref().unwrap();
        assert_eq!(fetched.body_len, SIZE as u64);
        assert!(fetched.body.is_empty());
    }
    eprintln!("peak resident size grew by {grown_mib} MiB");
    // 300 MiB of bodies were read; what may be resident at once is 20 in flight on each side.
    assert!(
        grown_mib < 100,
        "peak memory grew by {grown_mib} MiB reading {BODIES} bodies of 1 MiB without keeping them"
    );
}
