//! The batch API: ordering, the global and per-host caps (counted at the server), the queue
//! timeout, progress, timings, and failures that stay contained.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use util::with_server;
use volley::{Client, ErrorKind, Phase, Runtime};
use volley_testserver::{Server, ServerThread};

/// Results come back in input order, each with its own response.
#[test]
fn results_are_in_input_order() {
    with_server(|server| async move {
        // Later requests finish first: delays shrink along the input.
        let urls: Vec<String> = (0..30)
            .map(|i| server.url(&format!("/delay/{}?i={i}", (30 - i) as f64 / 300.0)))
            .collect();
        let report = Client::new().fetch_all(&urls).concurrency(30).run().await;
        assert_eq!(report.results.len(), 30);
        for (i, result) in report.results.iter().enumerate() {
            assert_eq!(result.index, i);
            let fetched = result.outcome.as_ref().unwrap();
            let body = std::str::from_utf8(&fetched.body).unwrap();
            assert!(
                body.contains(&format!("\"i\": \"{i}\"")),
                "result {i} holds another body"
            );
        }
        assert_eq!((report.summary.ok, report.summary.failed), (30, 0));
        assert_eq!(report.summary.statuses.get(&200), Some(&30));
    });
}

/// The stream yields results as they complete, not in input order.
#[test]
fn stream_yields_in_completion_order() {
    with_server(|server| async move {
        let urls: Vec<String> = [0.3, 0.2, 0.1]
            .iter()
            .map(|d| server.url(&format!("/delay/{d}")))
            .collect();
        let mut stream = Client::new().fetch_all(urls).stream();
        let mut order = Vec::new();
        while let Some(result) = stream.next().await {
            order.push(result.index);
        }
        assert_eq!(order, vec![2, 1, 0]);
        assert_eq!(stream.summary().requests, 3);
    });
}

/// The global cap is never exceeded: the server never sees more connections at once.
#[test]
fn concurrency_cap_holds() {
    with_server(|server| async move {
        let urls: Vec<String> = (0..60)
            .map(|i| server.url(&format!("/delay/0.02?i={i}")))
            .collect();
        let report = Client::new().fetch_all(urls).concurrency(7).run().await;
        assert_eq!(report.summary.ok, 60);
        let stats = server.stats();
        assert!(stats.max_open_connections <= 7, "{stats:?}");
        assert_eq!(stats.max_open_connections, 7, "the cap was reached");
    });
}

/// The per-host cap holds for each host while other hosts proceed.
#[test]
fn per_host_cap_holds() {
    with_server(|server| async move {
        let other = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // The slow host comes first in the input; the fast one must not wait behind it.
        let mut urls: Vec<String> = (0..12)
            .map(|i| server.url(&format!("/delay/0.1?i={i}")))
            .collect();
        urls.extend((0..12).map(|i| other.url(&format!("/get?i={i}"))));
        let report = Client::new()
            .fetch_all(urls)
            .concurrency(20)
            .per_host(3)
            .run()
            .await;
        assert_eq!(report.summary.ok, 24);
        assert!(
            server.stats().max_open_connections <= 3,
            "{:?}",
            server.stats()
        );
        assert!(
            other.stats().max_open_connections <= 3,
            "{:?}",
            other.stats()
        );
        let slow_done = report.results[..12]
            .iter()
            .map(|r| r.timings.queued)
            .max()
            .unwrap();
        let fast_queued = report.results[12..]
            .iter()
            .map(|r| r.timings.queued)
            .max()
            .unwrap();
        assert!(
            fast_queued < slow_done,
            "the fast host waited behind the slow one"
        );
    });
}

/// Requests still queued when the queue timeout passes fail in the queue phase; the ones
/// that started complete. Time in the queue is not charged to the request.
#[test]
fn queue_timeout_is_separate_from_the_request_timeout() {
    with_server(|server| async move {
        let urls: Vec<String> = (0..5)
            .map(|i| server.url(&format!("/delay/0.4?i={i}")))
            .collect();
        let client = Client::builder()
            .timeout(Duration::from_millis(700))
            .build();
        let report = client
            .fetch_all(urls)
            .concurrency(1)
            .queue_timeout(Duration::from_millis(600))
            .run()
            .await;
        // 0: 0.0-0.4 s, 1: 0.4-0.8 s (0.8 s after the batch started, within its own 0.7 s),
        // 2..4: still queued at 0.6 s.
        let kinds: Vec<_> = report
            .results
            .iter()
            .map(|r| r.outcome.as_ref().err().map(|e| e.kind().clone()))
            .collect();
        assert!(kinds[0].is_none() && kinds[1].is_none(), "{kinds:?}");
        for kind in &kinds[2..] {
            assert!(
                matches!(kind, Some(ErrorKind::Timeout { phase: Phase::Queue, after }) if *after == Duration::from_millis(600)),
                "{kind:?}"
            );
        }
        assert_eq!(report.summary.errors.get("timeout"), Some(&3));
    });
}

/// A progress event follows every finished request, with counts that add up.
#[test]
fn progress_reports_every_request() {
    with_server(|server| async move {
        let events = Rc::new(RefCell::new(Vec::new()));
        let seen = events.clone();
        let mut urls: Vec<String> = (0..9)
            .map(|i| server.url(&format!("/bytes/{}", 100 * i)))
            .collect();
        urls.push("http://127.0.0.1:1/refused".into());
        let report = Client::new()
            .fetch_all(urls)
            .concurrency(4)
            .on_progress(move |p| seen.borrow_mut().push(*p))
            .run()
            .await;
        let events = events.borrow();
        assert_eq!(events.len(), 10);
        for (i, p) in events.iter().enumerate() {
            assert_eq!(p.done, i as u64 + 1);
            assert_eq!(p.ok + p.failed, p.done);
            assert!(p.in_flight <= 4);
            assert_eq!(p.total, Some(10));
        }
        let last = events.last().unwrap();
        assert_eq!((last.ok, last.failed, last.bytes), (9, 1, 100 * 36));
        assert_eq!(report.summary.bytes, 3600);
    });
}

/// Timings are present and ordered: queued grows with a cap of one, first byte comes before
/// the total, and a reused connection has no connect time.
#[test]
fn timings_are_sane() {
    with_server(|server| async move {
        let urls: Vec<String> = (0..4)
            .map(|i| server.url(&format!("/delay/0.05?i={i}")))
            .collect();
        let report = Client::new().fetch_all(urls).concurrency(1).run().await;
        let t: Vec<_> = report.results.iter().map(|r| r.timings).collect();
        assert_eq!(t[0].queued, t[0].queued.min(Duration::from_millis(5)));
        for w in t.windows(2) {
            assert!(
                w[1].queued >= w[0].queued + Duration::from_millis(50),
                "{t:?}"
            );
        }
        for (i, t) in t.iter().enumerate() {
            assert!(t.first_byte >= Duration::from_millis(50), "{t:?}");
            assert!(t.total >= t.first_byte, "{t:?}");
            assert_eq!(t.reused, i > 0, "{t:?}");
            assert_eq!(t.connect > Duration::ZERO, i == 0, "{t:?}");
        }
        let p50 = report.summary.latency.quantile(0.5);
        assert!(
            p50 >= Duration::from_millis(50) && p50 < Duration::from_secs(5),
            "{p50:?}"
        );
    });
}

/// Failures of every kind mid-batch leave the good requests untouched.
#[test]
fn failures_do_not_affect_the_others() {
    with_server(|server| async move {
        let mut urls = Vec::new();
        for i in 0..40 {
            urls.push(match i % 8 {
                1 => format!("http://127.0.0.1:1/refused?i={i}"),
                3 => "not a url".to_owned(),
                5 => server.url(&format!("/fault/reset-body?i={i}")),
                7 => server.url(&format!("/fault/garbage?i={i}")),
                _ => server.url(&format!("/bytes/1000?seed={i}")),
            });
        }
        let report = Client::new().fetch_all(urls).concurrency(10).run().await;
        for (i, r) in report.results.iter().enumerate() {
            match i % 8 {
                1 | 3 | 5 | 7 => assert!(r.outcome.is_err(), "{i}"),
                _ => {
                    let fetched = r.outcome.as_ref().unwrap_or_else(|e| panic!("{i}: {e:#}"));
                    assert_eq!(
                        fetched.body[..],
                        volley_testserver::seeded_bytes(i as u64, 1000)[..]
                    );
                }
            }
        }
        assert_eq!((report.summary.ok, report.summary.failed), (20, 20));
        assert_eq!(report.summary.errors.get("invalid url"), Some(&5));
        assert_eq!(report.summary.errors.get("connect"), Some(&5));
    });
}

/// A test server on a thread of its own, so that a runtime's counts are the client's alone;
/// the runtime for the client; `n` URLs `/delay/{secs}?i={i}` on the server.
fn server_on_its_own_thread(n: usize, secs: &str) -> (ServerThread, Runtime, Vec<String>) {
    let server = Server::spawn_thread("127.0.0.1:0".parse().unwrap()).unwrap();
    let urls = (0..n)
        .map(|i| server.url(&format!("/delay/{secs}?i={i}")))
        .collect();
    (server, Runtime::new().unwrap(), urls)
}

/// A batch runs its requests on lanes, tasks reused from one request to the next, rather than
/// on a task per request: 40 requests at concurrency 4 spawn 4 tasks, each result is its own
/// request's, and the lanes end once no request is left to start.
#[test]
fn requests_run_on_reused_lanes() {
    let (_server, rt, urls) = server_on_its_own_thread(40, "0.005");
    rt.block_on(async {
        let client = Client::new();
        let before = rt.stats();
        let mut stream = client.fetch_all(urls).concurrency(4).stream();
        let mut most_tasks = 0;
        let mut seen = Vec::new();
        while let Some(result) = volley::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("hung")
        {
            most_tasks = most_tasks.max(rt.stats().tasks - before.tasks);
            let fetched = result.outcome.as_ref().expect("fetched");
            let body = std::str::from_utf8(&fetched.body).unwrap();
            let i = result.index;
            assert!(
                body.contains(&format!("\"i\": \"{i}\"")),
                "result {i}: {body}"
            );
            seen.push(i);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        let after = rt.stats();
        assert_eq!(
            after.spawned - before.spawned,
            4,
            "four lanes for 40 requests"
        );
        assert_eq!(most_tasks, 4);
        // Let the lanes that were told to end run to their end.
        volley::sleep(Duration::from_millis(20)).await;
        let after = rt.stats();
        // The sockets left are the pool's idle keep-alive connections.
        assert_eq!(
            (after.tasks, after.timers, after.io_sources),
            (before.tasks, before.timers, client.idle_connections()),
            "the lanes ended with the batch: {after:?}"
        );
        drop(stream);
    });
}

/// Dropping the stream mid-batch cancels what is in flight: no task, timer or socket of
/// the batch is left on the client's runtime.
#[test]
fn dropping_the_stream_cancels() {
    let (_server, rt, urls) = server_on_its_own_thread(20, "5");
    rt.block_on(async {
        let client = Client::new();
        let mut stream = client.fetch_all(urls).concurrency(10).stream();
        let first = volley::timeout(Duration::from_millis(200), stream.next()).await;
        assert!(first.is_err(), "nothing finishes within 200 ms");
        let busy = rt.stats();
        assert_eq!((busy.tasks, busy.io_sources), (10, 10), "{busy:?}");
        drop(stream);
        volley::sleep(Duration::from_millis(20)).await; // let the aborted tasks be dropped
        let after = rt.stats();
        assert_eq!(
            (after.tasks, after.timers, after.io_sources),
            (0, 0, 0),
            "{after:?}"
        );
        assert_eq!(
            client.idle_connections(),
            0,
            "cancelled connections are not pooled"
        );
    });
}
