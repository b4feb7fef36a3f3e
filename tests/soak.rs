//! Soak: about a million keep-alive requests through one client and one batch, against the
//! embedded server on its own thread, with a steady ~1 % of faults mixed in. Ignored by
//! default; run it with
//!
//! ```sh
//! cargo test --release --test soak -- --ignored --nocapture
//! # or: bash benches/soak.sh
//! ```
//!
//! Settings by environment variable: `SOAK_REQUESTS` (default 1,000,000),
//! `SOAK_CONCURRENCY` (50), `SOAK_REPORT_EVERY` (50,000), `SOAK_WATCHDOG_SECS` (3,600).
//!
//! The requests come from a lazy iterator and results are dropped as they arrive, so memory
//! does not grow with the run. Most are `GET /bytes/{n}?seed={i}` with `n` up to 2 KiB, each
//! body checked against the same pseudo-random stream by checksum. About one in a hundred is
//! a fault, the eight kinds in turn: a stalled head or body under a 200 ms request timeout,
//! a reset body, a close before the response, garbage, a keep-alive response followed by a
//! close, a short body, and a 32 KiB head against an 8 KiB cap. Each fault must fail with
//! its own kind and phase (the keep-alive-then-close one must succeed, and the requests that
//! meet its closed connection must be retried transparently).
//!
//! Every `SOAK_REPORT_EVERY` requests it prints the counts, open descriptors, `VmRSS` and
//! the runtime's stats. At the end it asserts: every result as expected; the client's
//! runtime holds nothing and the process's descriptors are back to their counts (with the
//! server idle, then without it) once the client is dropped; and `VmRSS` at the end is within
//! 5 % of `VmRSS` at 20 % of the run (runs of 200,000 requests or more). No timing is
//! asserted.

mod util;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use util::{local, open_fds, watchdog, Checksum};
use volley::{Client, Error, ErrorKind, Fetched, Limit, Phase, Runtime};
use volley_testserver::{seeded_bytes, Server};

/// The request timeout of the stalling faults.
const STALL_TIMEOUT: Duration = Duration::from_millis(200);
/// The client's `max_response_header_size`, which `/fault/huge-head` exceeds.
const HEAD_CAP: usize = 8 * 1024;
/// The head `/fault/huge-head` sends.
const HUGE_HEAD: usize = 32 * 1024;
/// The largest `/bytes/{n}`.
const MAX_BODY: u64 = 2048;
/// The body of `/fault/keep-alive-then-close`.
const KEEP_ALIVE_THEN_CLOSE: &[u8] = b"the server closes this connection now\n";

/// What request `i` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Plan {
    Good,
    StallHead,
    StallBody,
    ResetBody,
    CloseBeforeResponse,
    Garbage,
    KeepAliveThenClose,
    ShortBody,
    HugeHead,
}

const FAULTS: [Plan; 8] = [
    Plan::StallHead,
    Plan::StallBody,
    Plan::ResetBody,
    Plan::CloseBeforeResponse,
    Plan::Garbage,
    Plan::KeepAliveThenClose,
    Plan::ShortBody,
    Plan::HugeHead,
];

/// splitmix64: a well-mixed hash of the request index.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Request `i`'s kind, and for a good one its body length (its seed is `i`).
fn plan(i: u64) -> (Plan, u64) {
    let h = mix(i);
    if h.is_multiple_of(100) {
        (FAULTS[((h / 100) % FAULTS.len() as u64) as usize], 0)
    } else {
        (Plan::Good, (h >> 32) % (MAX_BODY + 1))
    }
}

fn path(i: u64) -> String {
    match plan(i) {
        (Plan::Good, n) => format!("/bytes/{n}?seed={i}"),
        (Plan::StallHead, _) => "/fault/stall-head".into(),
        (Plan::StallBody, _) => "/fault/stall-body?after=10".into(),
        (Plan::ResetBody, _) => "/fault/reset-body".into(),
        (Plan::CloseBeforeResponse, _) => "/fault/close-before-response".into(),
        (Plan::Garbage, _) => "/fault/garbage".into(),
        (Plan::KeepAliveThenClose, _) => "/fault/keep-alive-then-close".into(),
        (Plan::ShortBody, _) => "/fault/short-body".into(),
        (Plan::HugeHead, _) => format!("/fault/huge-head?size={HUGE_HEAD}"),
    }
}

fn checksum(bytes: &[u8]) -> Checksum {
    let mut c = Checksum::default();
    c.update(bytes);
    c
}

/// Whether request `i` ended as it must; if not, why.
fn check(i: u64, outcome: &Result<Fetched, Error>) -> Result<(), String> {
    let (plan, n) = plan(i);
    let timeout = |phase| ErrorKind::Timeout {
        phase,
        after: STALL_TIMEOUT,
    };
    let expected_error = match plan {
        Plan::Good | Plan::KeepAliveThenClose => None,
        Plan::StallHead => Some(timeout(Phase::ReadHead)),
        Plan::StallBody => Some(timeout(Phase::ReadBody)),
        Plan::ResetBody | Plan::ShortBody => Some(ErrorKind::Io(Phase::ReadBody)),
        Plan::CloseBeforeResponse => Some(ErrorKind::Io(Phase::ReadHead)),
        Plan::Garbage => None,
        Plan::HugeHead => Some(ErrorKind::TooLarge {
            what: Limit::Head,
            limit: HEAD_CAP as u64,
        }),
    };
    match (plan, outcome) {
        (Plan::Good, Ok(f)) => {
            let expected = seeded_bytes(i, n as usize);
            if f.status != 200 || checksum(&f.body) != checksum(&expected) || f.body_len != n {
                return Err(format!(
                    "status {}, {} bytes, checksum {:?}, expected {n} bytes, {:?}",
                    f.status,
                    f.body.len(),
                    checksum(&f.body),
                    checksum(&expected)
                ));
            }
            Ok(())
        }
        (Plan::KeepAliveThenClose, Ok(f)) if f.status == 200 && f.body == KEEP_ALIVE_THEN_CLOSE => {
            Ok(())
        }
        (Plan::Garbage, Err(e)) if matches!(e.kind(), ErrorKind::InvalidResponse(_)) => Ok(()),
        (_, Err(e)) if expected_error.as_ref() == Some(e.kind()) => Ok(()),
        (_, Ok(f)) => Err(format!("{plan:?}: unexpected {} response", f.status)),
        (_, Err(e)) => Err(format!(
            "{plan:?}: unexpected error: {e:#} ({:?})",
            e.kind()
        )),
    }
}

/// A short label for an outcome, for the tallies.
fn label(outcome: &Result<Fetched, Error>) -> String {
    match outcome {
        Ok(_) => "ok".into(),
        Err(e) => match e.kind() {
            ErrorKind::Timeout { phase, .. } => format!("timeout/{phase:?}"),
            ErrorKind::Io(phase) => format!("io/{phase:?}"),
            ErrorKind::InvalidResponse(_) => "invalid response".into(),
            ErrorKind::TooLarge { what, .. } => format!("too large/{what:?}"),
            other => format!("{other:?}"),
        },
    }
}

/// `VmRSS` of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

#[test]
#[ignore = "a long soak: cargo test --release --test soak -- --ignored --nocapture"]
fn soak_keep_alive_with_faults() {
    let total = env_u64("SOAK_REQUESTS", 1_000_000);
    let concurrency = env_u64("SOAK_CONCURRENCY", 50) as usize;
    let every = env_u64("SOAK_REPORT_EVERY", 50_000).max(1);
    let _dog = watchdog("soak", env_u64("SOAK_WATCHDOG_SECS", 3600));
    // The batch raises the descriptor limit once per process; do it before counting.
    let _ = volley::raise_fd_limit();

    let fds_before = open_fds();
    let rss_before = rss_kib();
    let server = Server::spawn_thread(local()).unwrap();
    let fds_server = open_fds();
    let rt = Runtime::new().unwrap();
    let fds_runtime = open_fds();
    println!(
        "soak: {total} requests at concurrency {concurrency} against {}; \
         fds {fds_before} before, {fds_server} with the server, {fds_runtime} with the runtime; \
         VmRSS {rss_before} KiB",
        server.local_addr()
    );

    let started = Instant::now();
    let mut tallies: BTreeMap<(Plan, String), u64> = BTreeMap::new();
    let mut wrong: Vec<String> = Vec::new();
    let mut wrong_count = 0u64;
    let mut rss_warm = None;
    let mut done = 0u64;
    rt.block_on(async {
        let client = Client::builder().max_response_header_size(HEAD_CAP).build();
        let base = server.url("");
        let base = base.trim_end_matches('/').to_owned();
        let maker = client.clone();
        // Lazy: one request made per admission, none kept.
        let requests = (0..total).map(move |i| {
            let request = maker.get(format!("{base}{}", path(i)));
            let request = match plan(i).0 {
                Plan::StallHead | Plan::StallBody => request.timeout(STALL_TIMEOUT),
                _ => request,
            };
            request.build().expect("a valid request")
        });
        // Faults repeat by plan, and each attempt's own outcome is what is checked.
        let mut stream = client
            .fetch_all(requests)
            .concurrency(concurrency)
            .duplicates(volley::batch::Duplicates::Fetch)
            .retry(volley::RetryPolicy::never())
            .stream();
        while let Some(result) = stream.next().await {
            let i = result.index as u64;
            *tallies
                .entry((plan(i).0, label(&result.outcome)))
                .or_default() += 1;
            if let Err(why) = check(i, &result.outcome) {
                wrong_count += 1;
                if wrong.len() < 20 {
                    wrong.push(format!("request {i}: {why}"));
                }
            }
            done += 1;
            if done == total / 5 {
                rss_warm = Some(rss_kib());
            }
            if done.is_multiple_of(every) || done == total {
                let s = stream.summary();
                let stats = rt.stats();
                println!(
                    "{done:>9} done in {:>6.1} s: {} ok, {} failed {:?}, {} wrong; fds {}, \
                     VmRSS {} KiB; runtime: {} tasks, {} io sources, {} timers, {} turns",
                    started.elapsed().as_secs_f64(),
                    s.ok,
                    s.failed,
                    s.errors,
                    wrong_count,
                    open_fds(),
                    rss_kib(),
                    stats.tasks,
                    stats.io_sources,
                    stats.timers,
                    stats.turns,
                );
            }
        }
        let summary = stream.summary().clone();
        println!(
            "batch: {} requests, {} ok, {} failed, {:.0} req/s, p50 {:?}, p99 {:?}, max {:?}",
            summary.requests,
            summary.ok,
            summary.failed,
            summary.requests_per_s(),
            summary.latency.quantile(0.5),
            summary.latency.quantile(0.99),
            summary.latency.quantile(1.0),
        );
    });
    let wall = started.elapsed();
    let rss_end = rss_kib();
    let fds_end = open_fds();
    let stats = rt.stats();

    println!("outcomes by request kind:");
    for ((plan, label), n) in &tallies {
        println!("  {plan:?}: {label}: {n}");
    }
    println!("server: {:?}", server.stats());

    // The client and its pool were dropped with the block; the server closes its side of
    // each connection when it reads the close. Then the descriptors are as before the run.
    let settle = Instant::now();
    while server.stats().open_connections > 0 && settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let fds_after_client = open_fds();
    let server_stats = server.stats();
    drop(rt);
    let fds_after_runtime = open_fds();
    server.shutdown();
    let fds_after_server = open_fds();
    let rss_warm = rss_warm.unwrap_or(rss_before);
    let growth = (rss_end as f64 - rss_warm as f64) / rss_warm as f64 * 100.0;
    println!(
        "soak: {done} requests in {:.1} s; VmRSS {rss_before} KiB before, {rss_warm} KiB at 20 %, \
         {rss_end} KiB at the end ({growth:+.2} %); fds {fds_end} at the end, \
         {fds_after_client} once the client was dropped (with the server and runtime: \
         {fds_runtime}), {fds_after_runtime} after the runtime ({fds_server}), \
         {fds_after_server} after the server ({fds_before}); runtime at the end: {stats:?}",
        wall.as_secs_f64()
    );

    assert_eq!(done, total, "every request gave a result");
    assert!(
        wrong.is_empty(),
        "{wrong_count} requests ended wrongly; the first:\n{}",
        wrong.join("\n")
    );
    if total >= 10_000 {
        for fault in FAULTS {
            assert!(
                tallies.keys().any(|(p, _)| *p == fault),
                "no {fault:?} in the mix"
            );
        }
    }
    let (tasks, io_sources, timers) = (stats.tasks, stats.io_sources, stats.timers);
    assert_eq!(
        (tasks, io_sources, timers),
        (0, 0, 0),
        "the client's runtime still holds something"
    );
    assert_eq!(
        server_stats.open_connections, 0,
        "the server still holds connections"
    );
    assert_eq!(
        fds_after_client, fds_runtime,
        "descriptors left open by the client"
    );
    assert_eq!(
        fds_after_runtime, fds_server,
        "descriptors left by the runtime"
    );
    assert_eq!(
        fds_after_server, fds_before,
        "descriptors left by the server"
    );
    if total >= 200_000 {
        assert!(
            growth < 5.0,
            "VmRSS grew {growth:.2} % from 20 % of the run ({rss_warm} KiB) to its end \
             ({rss_end} KiB)"
        );
    }
}
