//! The batch's host scheduler against real loopback servers: retries with backoff, host
//! pauses on 429/503 and `Retry-After`, per-host rates, the retry budget, and per-host
//! statistics. Times are bounded generously; order and counts carry the proofs.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use volley::batch::{RetryPolicy, RetryReason};
use volley::{Client, ErrorKind, Method, Request, Runtime};
use volley_testserver::Server;

/// A loopback port with nothing listening on it.
fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/")
}

fn fast_backoff() -> RetryPolicy {
    RetryPolicy::default().backoff(Duration::from_millis(1), Duration::from_millis(20))
}

#[test]
fn connect_errors_are_retried_then_reported_with_their_attempts() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let report = Client::new()
            .fetch_all([refused_url()])
            .retry(fast_backoff())
            .run()
            .await;
        let result = &report.results[0];
        let error = result.outcome.as_ref().unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Connect), "{error}");
        assert_eq!(result.attempts.len(), 2, "{:?}", result.attempts);
        assert!(result
            .attempts
            .iter()
            .all(|a| a.reason == RetryReason::Connect && a.wait <= Duration::from_millis(20)));
        assert_eq!(report.summary.retries, 2);
        let (host, stats) = report.summary.hosts.iter().next().unwrap();
        assert!(host.starts_with("http://127.0.0.1:"), "{host}");
        assert_eq!((stats.requests, stats.retries, stats.failed), (3, 2, 1));
    });
}

#[test]
fn retries_never_and_non_idempotent_methods_are_not_retried() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let url = refused_url();
        let report = Client::new()
            .fetch_all([url.clone()])
            .retry(RetryPolicy::never())
            .run()
            .await;
        assert!(report.results[0].attempts.is_empty());
        let post = Request::new(Method::POST, url.parse().unwrap());
        let report = Client::new()
            .fetch_all([post])
            .retry(fast_backoff())
            .run()
            .await;
        assert!(report.results[0].outcome.is_err());
        assert!(report.results[0].attempts.is_empty());
        // Unless the policy allows the method.
        let post = Request::new(Method::POST, url.parse().unwrap());
        let report = Client::new()
            .fetch_all([post])
            .retry(fast_backoff().method(&Method::POST, true).max_retries(1))
            .run()
            .await;
        assert_eq!(report.results[0].attempts.len(), 1);
    });
}

#[test]
fn a_503_without_retry_after_pauses_the_host_by_the_backoff_and_ends_as_the_last_response() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let report = Client::new()
            .fetch_all([server.url("/status/503")])
            .retry(fast_backoff().max_retries(3))
            .run()
            .await;
        let result = &report.results[0];
        assert_eq!(result.outcome.as_ref().unwrap().status, 503);
        assert_eq!(result.attempts.len(), 3);
        for attempt in &result.attempts {
            assert_eq!(attempt.reason, RetryReason::Status(503.try_into().unwrap()));
            assert_eq!(attempt.retry_after, None);
            // The host's pause: at least the backoff's base.
            assert!(attempt.wait >= Duration::from_millis(1), "{attempt:?}");
        }
        assert_eq!(server.stats().requests, 4);
        let stats = report.summary.hosts.values().next().unwrap();
        assert_eq!(stats.statuses.get(&503), Some(&4));
        assert!(stats.paused >= Duration::from_millis(3), "{stats:?}");
    });
}

#[test]
fn a_rate_spaces_each_hosts_requests_and_not_the_others() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let a = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut urls = Vec::new();
        for i in 0..6 {
            urls.push(a.url(&format!("/get?i={i}")));
            urls.push(b.url(&format!("/get?i={i}")));
        }
        let started = Instant::now();
        let report = Client::new().fetch_all(urls).rate(25.0, 1).run().await;
        let elapsed = started.elapsed();
        assert_eq!(report.summary.ok, 12);
        // Six per host at 25/s: the first at once, then one every 40 ms, so at least 200 ms;
        // both hosts go at once, so far less than twelve requests' 440 ms.
        assert!(elapsed >= Duration::from_millis(195), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(report.summary.hosts.len(), 2);
        for stats in report.summary.hosts.values() {
            assert_eq!(stats.requests, 6);
        }
        // Results come back in input order, and the completion order interleaves the hosts.
        let indexes: Vec<usize> = report.results.iter().map(|r| r.index).collect();
        assert_eq!(indexes, (0..12).collect::<Vec<_>>());
    });
}

#[test]
fn the_retry_budget_stops_hammering_a_dying_host() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let url = refused_url();
        let urls: Vec<String> = (0..30).map(|i| format!("{url}?i={i}")).collect();
        let report = Client::new()
            .fetch_all(urls)
            .retry(fast_backoff().max_retries(5).budget(0.0, 4))
            .run()
            .await;
        assert_eq!(report.summary.failed, 30);
        // At most 4 retries in the window, whatever 30 × 5 would have been.
        assert_eq!(report.summary.retries, 4);
        let stats = report.summary.hosts.values().next().unwrap();
        assert_eq!(stats.requests, 34);
    });
}

/// A limiter that admits 10 requests a second per host and says `Retry-After` on 429.
fn limited(server: &Server, form: &str, i: usize) -> String {
    server.url(&format!(
        "/limit/10?window_ms=1000&retry_after={form}&i={i}"
    ))
}

#[test]
fn a_429_with_retry_after_pauses_the_whole_host_and_every_url_ends_200() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        for form in ["secs", "date"] {
            let urls: Vec<String> = (0..30).map(|i| limited(&server, form, i)).collect();
            let before = server.stats();
            let started = Instant::now();
            let report = Client::new().fetch_all(urls).concurrency(30).run().await;
            let elapsed = started.elapsed();
            let stats = server.stats();
            assert_eq!(report.summary.statuses.get(&200), Some(&30), "{form}");
            // Requests on their way when a pause began may arrive in it; none sent after.
            assert_eq!(stats.early - before.early, 0, "{form}: {stats:?}");
            assert!(
                stats.limited > before.limited,
                "{form}: the limit was reached"
            );
            // 30 at 10 per second: two pauses at least.
            assert!(
                elapsed >= Duration::from_millis(1500),
                "{form}: {elapsed:?}"
            );
            assert!(elapsed < Duration::from_secs(20), "{form}: {elapsed:?}");
            let waited: Vec<_> = report.results.iter().flat_map(|r| &r.attempts).collect();
            assert!(!waited.is_empty());
            for attempt in waited {
                assert_eq!(attempt.reason, RetryReason::Status(429.try_into().unwrap()));
                let told = attempt.retry_after.expect("a valid Retry-After");
                assert!(
                    told > Duration::ZERO && told <= Duration::from_secs(2),
                    "{told:?}"
                );
            }
            let host = report.summary.hosts.values().next().unwrap();
            assert!(host.throttled > 0 && host.paused >= Duration::from_millis(900));
            assert_eq!(host.ok, 30);
        }
    });
}

#[test]
fn a_retry_after_beyond_the_cap_fails_the_request_and_those_waiting_behind_it() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let urls: Vec<String> = (0..5)
            .map(|i| server.url(&format!("/limit/1?window_ms=120000&i={i}")))
            .collect();
        let started = Instant::now();
        let report = Client::new()
            .fetch_all(urls)
            .per_host(1)
            .max_retry_after(Duration::from_secs(5))
            .run()
            .await;
        assert!(started.elapsed() < Duration::from_secs(5), "nothing waited");
        assert_eq!(report.results[0].outcome.as_ref().unwrap().status, 200);
        for result in &report.results[1..] {
            let e = result.outcome.as_ref().unwrap_err();
            match e.kind() {
                ErrorKind::RateLimited { status, wait, max } => {
                    assert_eq!(status.as_u16(), 429);
                    assert!(*wait > Duration::from_secs(100), "{wait:?}");
                    assert_eq!(*max, Duration::from_secs(5));
                }
                other => panic!("{other:?}"),
            }
            assert!(
                e.to_string().contains("longer than max_retry_after (5s)"),
                "{e}"
            );
        }
        // One request met the 429; the others failed without being sent.
        assert_eq!(server.stats().requests, 2);
        assert_eq!(report.summary.errors.get("rate limited"), Some(&4));
    });
}

#[test]
fn flaky_urls_succeed_within_their_retries_and_resets_are_retried() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let urls = [
            server.url("/flaky/2?key=twice"),
            server.url("/flaky/3?key=thrice"),
            server.url("/flaky/1?key=reset&fail=reset"),
            server.url("/flaky/1?key=close&fail=close"),
        ];
        let report = Client::new()
            .fetch_all(urls)
            .retry(fast_backoff())
            .run()
            .await;
        let statuses: Vec<Option<u16>> = report
            .results
            .iter()
            .map(|r| r.outcome.as_ref().ok().map(|f| f.status.as_u16()))
            .collect();
        // Three failures are one more than two retries: the last 503 is the result.
        assert_eq!(statuses, [Some(200), Some(503), Some(200), Some(200)]);
        let attempts: Vec<usize> = report.results.iter().map(|r| r.attempts.len()).collect();
        assert_eq!(attempts, [2, 2, 1, 1]);
        assert!(matches!(
            report.results[2].attempts[0].reason,
            RetryReason::Reset(_)
        ));
        assert_eq!(server.stats().flaky_failures, 2 + 3 + 1 + 1);
    });
}

#[test]
fn a_ratelimit_header_that_says_none_is_left_pauses_the_host_before_any_429() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        // The draft's `RateLimit: "default";r=0;t=1`, then its earlier versions'
        // `RateLimit-Remaining: 0` with `RateLimit-Reset: 1`.
        for headers in ["state", "legacy"] {
            let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let urls: Vec<String> = (0..6)
                .map(|i| server.url(&format!("/limit/3?window_ms=1000&headers={headers}&i={i}")))
                .collect();
            let started = Instant::now();
            let report = Client::new().fetch_all(urls).per_host(1).run().await;
            assert_eq!(report.summary.statuses.get(&200), Some(&6), "{headers}");
            assert_eq!(
                server.stats().limited,
                0,
                "{headers}: the client stopped when told none was left"
            );
            assert!(started.elapsed() >= Duration::from_millis(900), "{headers}");
            let host = report.summary.hosts.values().next().unwrap();
            assert!(
                host.paused >= Duration::from_millis(900),
                "{headers}: {host:?}"
            );
        }
    });
}

#[test]
fn a_ratelimit_policy_header_paces_the_host_under_the_quota_it_states() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // 8 requests per second, said by `RateLimit-Policy: "default";q=8;w=1` on each answer
        // (key=paced), and the same limit unsaid (key=blind).
        let urls = |key: &str| -> Vec<String> {
            (0..24)
                .map(|i| {
                    server.url(&format!(
                        "/limit/8?window_ms=1000&key={key}&headers=policy&i={i}"
                    ))
                })
                .map(|url| match key {
                    "blind" => url.replace("&headers=policy", ""),
                    _ => url,
                })
                .collect()
        };
        let client = Client::new();
        let blind = client
            .fetch_all(urls("blind"))
            .per_host(4)
            .retry(RetryPolicy::never())
            .run()
            .await;
        let refused = server.stats().limited;
        assert!(
            refused > 0,
            "without the header, 24 requests at once meet the limit"
        );
        assert_eq!(blind.summary.requests, 24);

        let started = Instant::now();
        let paced = client
            .fetch_all(urls("paced"))
            .per_host(4)
            .retry(RetryPolicy::never())
            .run()
            .await;
        let elapsed = started.elapsed();
        assert_eq!(
            paced.summary.statuses.get(&200),
            Some(&24),
            "{:?}",
            paced.summary
        );
        assert_eq!(
            server.stats().limited,
            refused,
            "no 429 once the policy was known"
        );
        // The first 4 go at once; the other 20 at 95 % of 8/s, the 4 counted against it.
        assert!(elapsed >= Duration::from_millis(2500), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    });
}

#[test]
fn hosts_grouped_by_name_share_one_slot_and_one_entry() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let a = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut urls = Vec::new();
        for i in 0..4 {
            urls.push(a.url(&format!("/delay/0.05?i={i}")));
            urls.push(b.url(&format!("/delay/0.05?i={i}")));
        }
        let started = Instant::now();
        let report = Client::new()
            .fetch_all(urls)
            .per_host(1)
            .hosts(volley::batch::HostGrouping::Name)
            .run()
            .await;
        assert_eq!(report.summary.ok, 8);
        // One slot for both ports: eight requests of 50 ms one after another.
        assert!(started.elapsed() >= Duration::from_millis(400));
        let hosts: Vec<&String> = report.summary.hosts.keys().collect();
        assert_eq!(hosts, ["127.0.0.1"]);
    });
}

#[test]
fn adaptive_throttling_meets_fewer_429s() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut limited = Vec::new();
        for adaptive in [false, true] {
            let urls: Vec<String> = (0..40)
                .map(|i| server.url(&format!("/limit/10?window_ms=1000&key={adaptive}&i={i}")))
                .collect();
            let before = server.stats().limited;
            let report = Client::new()
                .fetch_all(urls)
                .concurrency(20)
                .adaptive(adaptive)
                .run()
                .await;
            assert_eq!(report.summary.statuses.get(&200), Some(&40), "{adaptive}");
            limited.push(server.stats().limited - before);
        }
        // Without it every pause ends in a burst of 20; with it the host's rate halves.
        assert!(limited[1] < limited[0], "{limited:?}");
    });
}

#[test]
fn robots_txt_is_fetched_once_per_origin_and_obeyed_with_its_crawl_delay() {
    use volley::robots::RobotsCache;
    use volley_testserver::ServerConfig;
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let robots = "User-agent: *\nDisallow: /deny\nCrawl-delay: 0.1\n";
        let config = ServerConfig::default().robots_txt(200, robots);
        let server = Server::bind_with("127.0.0.1:0".parse().unwrap(), config).unwrap();
        let mut urls: Vec<String> = (0..5).map(|i| server.url(&format!("/get?i={i}"))).collect();
        urls.push(server.url("/deny"));
        urls.push(server.url("/deny/deeper"));
        let client = Client::new();
        let started = Instant::now();
        let report = client
            .fetch_all(urls)
            .robots(RobotsCache::new(client.clone(), "volley"))
            .run()
            .await;
        let elapsed = started.elapsed();
        assert_eq!(report.summary.ok, 5);
        for result in &report.results[5..] {
            let e = result.outcome.as_ref().unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::DisallowedByRobots);
            assert!(e.to_string().contains("robots.txt disallows it"), "{e}");
        }
        let stats = server.stats();
        assert_eq!(stats.robots_fetches, 1);
        // robots.txt and the five allowed pages; neither /deny was asked for.
        assert_eq!(stats.requests, 6);
        // Crawl-delay 0.1 s: five requests, one at once, then one every 100 ms.
        assert!(elapsed >= Duration::from_millis(390), "{elapsed:?}");
    });
}

#[test]
fn an_unreachable_robots_txt_defers_its_origin_and_not_the_others() {
    use volley::robots::RobotsCache;
    use volley_testserver::ServerConfig;
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let config = ServerConfig::default().robots_txt(503, "down");
        let down = Server::bind_with("127.0.0.1:0".parse().unwrap(), config).unwrap();
        let up = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let urls = [down.url("/get?a"), up.url("/get?b"), down.url("/get?c")];
        let client = Client::new();
        let report = client
            .fetch_all(urls)
            .robots(RobotsCache::new(client.clone(), "volley"))
            .run()
            .await;
        assert_eq!(report.results[1].outcome.as_ref().unwrap().status, 200);
        for i in [0, 2] {
            let e = report.results[i].outcome.as_ref().unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::RobotsUnreachable(_)), "{e}");
        }
        // Only robots.txt reached the deferred origin.
        assert_eq!(down.stats().requests, down.stats().robots_fetches);
        assert_eq!(report.summary.errors.get("robots unreachable"), Some(&2));
    });
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A host waiting for its token while every slot is taken by another host's slow request:
/// the batch sleeps until that request ends, and does not spin on the due host.
#[test]
fn a_due_host_with_every_slot_taken_does_not_spin() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let other = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // The fast host's requests are read first and wait for their tokens; then a slow
        // request of the other host takes the only slot.
        let mut urls: Vec<String> = (0..4).map(|i| server.url(&format!("/get?i={i}"))).collect();
        urls.extend((0..4).map(|i| other.url(&format!("/delay/0.3?i={i}"))));
        let (cpu, started) = (cpu_seconds(), Instant::now());
        let report = Client::new()
            .fetch_all(urls)
            .concurrency(1)
            .rate(20.0, 1)
            .run()
            .await;
        let (cpu, wall) = (cpu_seconds() - cpu, started.elapsed().as_secs_f64());
        assert_eq!(report.summary.ok, 8);
        assert!(wall >= 1.2, "{wall}");
        // Mostly waiting on 300 ms delays: a spinning loop would burn the whole wall time.
        assert!(cpu < wall * 0.5, "cpu {cpu} s in {wall} s");
    });
}

#[test]
fn identical_requests_in_flight_are_fetched_once_and_shared() {
    use volley::batch::Duplicates;
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let slow = server.url("/delay/0.2");
        let urls = [slow.clone(), server.url("/get"), slow.clone(), slow];
        let report = Client::new()
            .fetch_all(urls)
            .duplicates(Duplicates::Share)
            .run()
            .await;
        assert_eq!(report.summary.ok, 4);
        for i in [0, 2, 3] {
            let fetched = report.results[i].outcome.as_ref().unwrap();
            assert_eq!(fetched.status, 200);
            assert!(!fetched.body.is_empty());
        }
        // The three identical requests were in flight together: one fetch for them.
        assert_eq!(server.stats().requests, 2);
        assert_eq!(report.summary.duplicates, 0, "shared, not reported");
    });
}
