//! The threaded client's batch on several loops: sharded by host, each host on one loop, every
//! request answered once, in input order for `run`, and no request lost when a loop dies.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use volley::threaded;
use volley::{ErrorKind, Runtime};
use volley_testserver::{Server, ServerThread};

/// Hosts enough that both loops get some: all 12 land on one of 2 loops with a chance of
/// 1 in 2,048 per run, whatever the ports.
const HOSTS: usize = 12;

fn servers() -> Vec<ServerThread> {
    (0..HOSTS)
        .map(|_| Server::spawn_thread(util::local()).expect("test server"))
        .collect()
}

/// A client of two loops whose user agent names the loop, so each response says which loop
/// fetched it.
fn two_loops() -> threaded::Client {
    threaded::Client::builder()
        .threads(2)
        .configure(|b| {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            b.user_agent(&name)
        })
        .build()
}

/// 600 requests over 12 hosts, on two loops: every one answered once, in input order; each
/// host's requests all ran on one loop, and both loops ran some; the summary and the host
/// statistics are the loops' merged.
#[test]
fn a_batch_on_two_loops_keeps_each_host_on_one_loop() {
    let servers = servers();
    let urls: Vec<String> = (0..600)
        .map(|i| servers[i % HOSTS].url(&format!("/user-agent?i={i}")))
        .collect();
    let client = two_loops();
    let rt = Runtime::new().unwrap();
    let report = rt.block_on(client.fetch_all(urls.clone()).concurrency(40).run());

    assert_eq!(report.results.len(), 600);
    let mut loops_of_host: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, result) in report.results.iter().enumerate() {
        assert_eq!(result.index, i);
        assert_eq!(result.url.as_ref().unwrap().as_str(), urls[i]);
        let fetched = result.outcome.as_ref().expect("a response");
        assert_eq!(fetched.status, 200);
        let body = std::str::from_utf8(&fetched.body).unwrap();
        let name = ["volley-loop-0", "volley-loop-1"]
            .into_iter()
            .find(|n| body.contains(n))
            .unwrap_or_else(|| panic!("no loop named in {body}"));
        let url = result.url.as_ref().unwrap();
        loops_of_host
            .entry(format!("{}", url.port().unwrap()))
            .or_default()
            .insert(name.to_owned());
    }
    assert_eq!(loops_of_host.len(), HOSTS);
    for (host, loops) in &loops_of_host {
        assert_eq!(loops.len(), 1, "host {host} ran on {loops:?}");
    }
    let used: BTreeSet<&String> = loops_of_host.values().flatten().collect();
    assert_eq!(
        used.len(),
        2,
        "both loops ran some hosts: {loops_of_host:?}"
    );

    let summary = &report.summary;
    assert_eq!(
        (summary.requests, summary.ok, summary.failed),
        (600, 600, 0)
    );
    assert_eq!(summary.statuses.get(&200), Some(&600));
    assert_eq!(summary.latency.len(), 600);
    assert_eq!(summary.hosts.len(), HOSTS);
    assert!(summary
        .hosts
        .values()
        .all(|h| h.requests == 50 && h.ok == 50));
    // Each host was fetched on one loop: its connections were reused there.
    for server in &servers {
        assert!(server.stats().requests >= 50);
    }
}

/// `stream` on two loops hands out each result once, as it completes, and `per_host(1)` holds
/// per host: one connection each.
#[test]
fn a_stream_on_two_loops_answers_each_request_once() {
    let servers = servers();
    let urls: Vec<String> = (0..240)
        .map(|i| servers[i % HOSTS].url(&format!("/get?i={i}")))
        .collect();
    let client = two_loops();
    let rt = Runtime::new().unwrap();
    let indices = rt.block_on(async {
        let mut stream = client.fetch_all(urls).per_host(1).stream();
        let mut seen = Vec::new();
        while let Some(result) = stream.next().await {
            assert!(result.outcome.is_ok(), "{:?}", result.outcome);
            seen.push(result.index);
        }
        assert_eq!(stream.summary().ok, 240);
        seen
    });
    let distinct: BTreeSet<usize> = indices.iter().copied().collect();
    assert_eq!(indices.len(), 240);
    assert_eq!(distinct, (0..240).collect());
    for server in &servers {
        assert_eq!(
            server.stats().connections_accepted,
            1,
            "{:?}",
            server.stats()
        );
    }
}

/// A loop that dies at start (its `configure` panics) takes its hosts' requests with it: each
/// fails with a `Runtime` error that says why, the other loop's hosts are fetched, and no
/// request is lost or answered twice. Invalid URLs are answered by the dealer.
#[test]
fn a_dead_loop_fails_its_hosts_and_the_others_go_on() {
    let servers = servers();
    let mut urls: Vec<String> = (0..360)
        .map(|i| servers[i % HOSTS].url(&format!("/get?i={i}")))
        .collect();
    urls[7] = "not a url".into();
    let client = threaded::Client::builder()
        .threads(2)
        .configure(|b| {
            if std::thread::current().name() == Some("volley-loop-1") {
                panic!("boom in loop 1");
            }
            b
        })
        .build();
    let rt = Runtime::new().unwrap();
    let report = rt.block_on(client.fetch_all(urls).concurrency(30).run());
    assert_eq!(report.results.len(), 360);
    let mut ok_hosts = BTreeSet::new();
    let mut failed_hosts = BTreeSet::new();
    for (i, result) in report.results.iter().enumerate() {
        assert_eq!(result.index, i);
        if i == 7 {
            assert!(matches!(
                result.outcome.as_ref().unwrap_err().kind(),
                ErrorKind::InvalidUrl(_)
            ));
            continue;
        }
        let port = result.url.as_ref().unwrap().port().unwrap();
        match &result.outcome {
            Ok(fetched) => {
                assert_eq!(fetched.status, 200);
                ok_hosts.insert(port);
            }
            Err(e) => {
                assert!(matches!(e.kind(), ErrorKind::Runtime(_)), "{e:?}");
                assert!(e.to_string().contains("boom in loop 1"), "{e}");
                failed_hosts.insert(port);
            }
        }
    }
    assert!(ok_hosts.is_disjoint(&failed_hosts), "a host is on one loop");
    assert!(!ok_hosts.is_empty() && !failed_hosts.is_empty());
    let summary = &report.summary;
    assert_eq!(summary.requests, 360);
    assert_eq!(summary.ok + summary.failed, 360);
}

/// A loop's share that dies mid-run (the progress callback panics on it at request 41) loses
/// no request: what it held fails with a `Runtime` error, the rest is fetched, and every
/// request has one result.
#[test]
fn a_share_that_dies_mid_run_loses_no_request() {
    let servers = servers();
    let urls: Vec<String> = (0..400)
        .map(|i| servers[i % HOSTS].url(&format!("/get?i={i}")))
        .collect();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let rt = Runtime::new().unwrap();
    let report = rt.block_on(
        two_loops()
            .fetch_all(urls)
            .concurrency(20)
            .on_progress(move |_| {
                if counted.fetch_add(1, Ordering::SeqCst) == 40 {
                    panic!("progress callback fails");
                }
            })
            .run(),
    );
    assert_eq!(report.results.len(), 400);
    for (i, result) in report.results.iter().enumerate() {
        assert_eq!(result.index, i);
        if let Err(e) = &result.outcome {
            assert!(matches!(e.kind(), ErrorKind::Runtime(_)), "{e:?}");
        }
    }
    let failed = report.results.iter().filter(|r| r.outcome.is_err()).count();
    assert!(failed > 0, "the share that died had requests left");
    assert!(failed < 400, "the other share went on");
    assert_eq!(report.summary.requests, 400);
}

/// Progress on two loops is the sum of both: `done` counts every request by the end.
#[test]
fn progress_on_two_loops_is_summed() {
    let servers = servers();
    let urls: Vec<String> = (0..120)
        .map(|i| servers[i % HOSTS].url(&format!("/get?i={i}")))
        .collect();
    let most = Arc::new(AtomicUsize::new(0));
    let seen = most.clone();
    let rt = Runtime::new().unwrap();
    let report = rt.block_on(
        two_loops()
            .fetch_all(urls)
            .on_progress(move |p| {
                seen.fetch_max(p.done as usize, Ordering::SeqCst);
            })
            .run(),
    );
    assert_eq!(report.summary.ok, 120);
    assert_eq!(most.load(Ordering::SeqCst), 120);
}

/// A threaded batch obeys robots.txt, on one loop and sharded over two: each origin's file is
/// fetched once (by the loop that serves it), and no disallowed path is requested.
#[test]
fn a_threaded_batch_obeys_robots_txt() {
    obeys_robots_txt(threaded::Client::new());
    obeys_robots_txt(two_loops());
}

fn obeys_robots_txt(client: threaded::Client) {
    let servers = servers();
    // The test server's robots.txt disallows /deny for every agent.
    let urls: Vec<String> = (0..240)
        .map(|i| {
            // Each server gets 10 of each.
            let path = if (i / HOSTS).is_multiple_of(2) {
                "get"
            } else {
                "deny"
            };
            servers[i % HOSTS].url(&format!("/{path}?i={i}"))
        })
        .collect();
    let rt = Runtime::new().unwrap();
    let report = rt.block_on(client.fetch_all(urls).robots("volley").run());
    for (i, result) in report.results.iter().enumerate() {
        match (i / HOSTS) % 2 {
            0 => assert_eq!(result.outcome.as_ref().unwrap().status, 200),
            _ => assert!(
                matches!(
                    result.outcome.as_ref().unwrap_err().kind(),
                    ErrorKind::DisallowedByRobots
                ),
                "{:?}",
                result.outcome
            ),
        }
    }
    for server in &servers {
        let stats = server.stats();
        assert_eq!(stats.robots_fetches, 1, "{stats:?}");
        assert_eq!(
            stats.requests,
            10 + 1,
            "its /get requests and robots.txt: {stats:?}"
        );
    }
}

/// The loops share one bound in flight: 60 requests of 200 ms at `concurrency(10)` take at
/// least 6 rounds (1.2 s) whichever loops their hosts are on (with 10 slots per loop, they
/// took 0.8 s). The summed progress is no check of the bound: it adds each loop's latest
/// report, taken at different moments.
#[test]
fn two_loops_share_one_bound_in_flight() {
    let servers = servers();
    let urls: Vec<String> = (0..60)
        .map(|i| servers[i % HOSTS].url(&format!("/delay/0.2?i={i}")))
        .collect();
    let most = Arc::new(AtomicUsize::new(0));
    let seen = most.clone();
    let rt = Runtime::new().unwrap();
    let started = std::time::Instant::now();
    let report = rt.block_on(
        two_loops()
            .fetch_all(urls)
            .concurrency(10)
            .on_progress(move |p| {
                seen.fetch_max(p.in_flight, Ordering::SeqCst);
            })
            .run(),
    );
    let elapsed = started.elapsed();
    assert_eq!(report.summary.ok, 60);
    assert!(
        elapsed >= std::time::Duration::from_millis(1150),
        "{elapsed:?}"
    );
    assert!(most.load(Ordering::SeqCst) >= 5, "the slots were used");
}
