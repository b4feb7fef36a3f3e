//! robots.txt over the wire: [`RobotsCache`] against the embedded test server and against
//! small raw servers on loopback that answer what the test server does not (a 503, a 404, a
//! 2 MiB file, bytes that are not UTF-8, an HTML page, a redirect loop, a stall), each
//! counting the requests it gets. Every case runs alone under a watchdog; a raw server serves
//! a fixed number of connections, one at a time, and stops.

mod util;

use std::future::Future;
use std::io::{ErrorKind as IoErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use util::watchdog;
use volley::robots::{RobotsCache, RobotsStatus, RobotsVerdict, Unavailable, Unreachable};
use volley::{Client, ErrorKind, Runtime, StatusCode, Url};

/// Held by every test of this file: the descriptor count and the timings see no other case.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs one case alone, under a watchdog, on a fresh runtime.
fn case<Fut: Future<Output = ()>>(name: &'static str, f: impl FnOnce() -> Fut) {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let _dog = watchdog(name, 60);
    Runtime::new().expect("a runtime").block_on(f());
}

/// What a raw server does with one request.
enum Answer {
    /// Waits this long, then writes these bytes and closes the connection.
    Send(Duration, Vec<u8>),
    /// Holds the connection open without a word, until the server stops.
    Stall,
}

/// A response with `Content-Length` and `Connection: close`.
fn response(status: &str, headers: &str, body: &[u8]) -> Answer {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    Answer::Send(Duration::ZERO, out)
}

/// A `text/plain` 200 with `body`.
fn robots_txt(body: &[u8]) -> Answer {
    response("200 OK", "Content-Type: text/plain\r\n", body)
}

/// A server on a thread of its own: answers the `n`th request (from 0) for `path` with
/// `answer(path, n)`, one connection at a time, each closed after its answer, and records
/// every request's path. It stops after `max` connections, after 30 s, or when dropped.
struct RawServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RawServer {
    fn start(max: usize, answer: impl Fn(&str, usize) -> Answer + Send + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("its address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut served = 0;
                while served < max && !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            served += 1;
                            serve(stream, &log, &stop, &answer);
                        }
                        Err(e) if e.kind() == IoErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(2))
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        RawServer {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).expect("a URL")
    }

    /// The paths requested so far.
    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests asked for `path`.
    fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|p| *p == path).count()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request head from `stream`, records its path, and answers it.
fn serve(
    mut stream: TcpStream,
    log: &Mutex<Vec<String>>,
    stop: &AtomicBool,
    answer: &dyn Fn(&str, usize) -> Answer,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    let n = {
        let mut log = log.lock().unwrap();
        let n = log.iter().filter(|p| **p == path).count();
        log.push(path.clone());
        n
    };
    match answer(&path, n) {
        Answer::Send(delay, bytes) => {
            thread::sleep(delay);
            let _ = stream.write_all(&bytes); // the client may hang up early
        }
        Answer::Stall => {
            let until = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::SeqCst) && Instant::now() < until {
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// A port on loopback that refuses connections: bound, then closed again.
fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn url(s: &str) -> Url {
    Url::parse(s).expect("a URL")
}

#[test]
fn the_test_servers_robots_txt_denies_deny() {
    case("test server", || async {
        let server = volley_testserver::Server::bind(util::local()).expect("the test server");
        let cache = RobotsCache::new(Client::new(), "volley/0.1");
        let deny = url(&server.url("/deny"));
        let get = url(&server.url("/get?x=1"));
        assert!(matches!(
            cache.check(&deny).await,
            RobotsVerdict::Disallowed
        ));
        assert!(matches!(
            cache.check(&get).await,
            RobotsVerdict::Allowed { crawl_delay: None }
        ));
        assert!(cache
            .check(&url(&server.url("/robots.txt")))
            .await
            .is_allowed());
        match cache.status(&get).await {
            RobotsStatus::Rules(robots) => assert_eq!(robots.rule_count(), 1),
            other => panic!("expected rules, got {other}"),
        }
        assert_eq!(cache.fetches(), 1, "one robots.txt for the origin");
        assert_eq!(
            cache.check(&deny).await.to_string(),
            "disallowed by robots.txt"
        );
    });
}

/// Twenty tasks ask about one origin at once: one robots.txt request, and every answer right.
#[test]
fn concurrent_checks_on_one_origin_share_one_fetch() {
    case("single flight", || async {
        let server = RawServer::start(10, |path, _| match path {
            "/robots.txt" => {
                let Answer::Send(_, bytes) = robots_txt(b"User-agent: *\nDisallow: /private\n")
                else {
                    unreachable!()
                };
                // Slow, so that every check arrives while the fetch is in flight.
                Answer::Send(Duration::from_millis(200), bytes)
            }
            _ => response("404 Not Found", "", b""),
        });
        let cache = RobotsCache::new(Client::new(), "volley");
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let cache = cache.clone();
                let path = if i % 2 == 0 { "/private/x" } else { "/public" };
                let url = server.url(&format!("{path}?i={i}"));
                volley::spawn(async move { (i, cache.check(&url).await) })
            })
            .collect();
        for task in tasks {
            let (i, verdict) = task.await.expect("a check task");
            assert_eq!(verdict.is_allowed(), i % 2 == 1, "check {i}: {verdict}");
        }
        // And later checks are answered from the cache.
        assert!(!cache.check(&server.url("/private")).await.is_allowed());
        assert_eq!(server.count("/robots.txt"), 1, "{:?}", server.requests());
        assert_eq!(server.requests().len(), 1);
        assert_eq!(cache.fetches(), 1);
    });
}

/// The task that started a fetch goes away: the fetch goes on, and the others get its answer.
#[test]
fn a_caller_that_goes_away_does_not_cancel_the_fetch() {
    case("cancelled caller", || async {
        let server = RawServer::start(5, |_, _| {
            let Answer::Send(_, bytes) = robots_txt(b"User-agent: *\nDisallow: /\n") else {
                unreachable!()
            };
            Answer::Send(Duration::from_millis(150), bytes)
        });
        let cache = RobotsCache::new(Client::new(), "volley");
        let first = {
            let (cache, url) = (cache.clone(), server.url("/a"));
            volley::spawn(async move { cache.check(&url).await })
        };
        volley::sleep(Duration::from_millis(50)).await;
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        assert!(matches!(
            cache.check(&server.url("/b")).await,
            RobotsVerdict::Disallowed
        ));
        assert_eq!(server.count("/robots.txt"), 1);
    });
}

/// A 503 defers the origin, with the reason; within the retry interval nothing is asked
/// again; after it, robots.txt is fetched again.
#[test]
fn a_5xx_defers_the_origin_until_a_retry() {
    case("503", || async {
        let server = RawServer::start(5, |_, n| match n {
            0 => response("503 Service Unavailable", "", b"down"),
            _ => robots_txt(b"User-agent: *\nDisallow: /private\n"),
        });
        let cache = RobotsCache::builder(Client::new(), "volley")
            .retry_interval(Duration::from_millis(300))
            .build();
        let page = server.url("/page");
        let verdict = cache.check(&page).await;
        assert!(
            matches!(
                verdict,
                RobotsVerdict::Deferred(Unreachable::Status(StatusCode::SERVICE_UNAVAILABLE))
            ),
            "{verdict}"
        );
        assert_eq!(
            verdict.to_string(),
            "deferred: robots.txt unreachable (503 Service Unavailable)"
        );
        // Still deferred, from the cache.
        assert!(matches!(
            cache.check(&page).await,
            RobotsVerdict::Deferred(_)
        ));
        assert_eq!(server.count("/robots.txt"), 1);

        volley::sleep(Duration::from_millis(400)).await;
        assert!(cache.check(&page).await.is_allowed());
        assert!(!cache.check(&server.url("/private")).await.is_allowed());
        assert_eq!(server.count("/robots.txt"), 2);
        assert_eq!(server.requests().len(), 2, "no page was requested");
    });
}

/// RFC 9309 §2.4: once the rules are too old they are fetched again, and while the origin is
/// unreachable the rules had before still hold.
#[test]
fn old_rules_hold_while_the_origin_is_unreachable() {
    case("stale rules", || async {
        let server = RawServer::start(5, |_, n| match n {
            0 => robots_txt(b"User-agent: *\nDisallow: /private\n"),
            _ => response("500 Internal Server Error", "", b""),
        });
        let cache = RobotsCache::builder(Client::new(), "volley")
            .max_age(Duration::from_millis(100))
            .retry_interval(Duration::from_secs(60))
            .build();
        let private = server.url("/private");
        assert!(matches!(
            cache.check(&private).await,
            RobotsVerdict::Disallowed
        ));
        volley::sleep(Duration::from_millis(200)).await;
        assert!(matches!(
            cache.check(&private).await,
            RobotsVerdict::Disallowed
        ));
        assert!(cache.check(&server.url("/public")).await.is_allowed());
        assert_eq!(server.count("/robots.txt"), 2);
    });
}

/// A 429 asks the crawler to slow down: the origin is deferred, not opened up.
#[test]
fn a_429_defers_the_origin() {
    case("429", || async {
        let server = RawServer::start(2, |_, _| response("429 Too Many Requests", "", b""));
        let cache = RobotsCache::new(Client::new(), "volley");
        let verdict = cache.check(&server.url("/page")).await;
        assert!(
            matches!(
                verdict,
                RobotsVerdict::Deferred(Unreachable::Status(StatusCode::TOO_MANY_REQUESTS))
            ),
            "{verdict}"
        );
    });
}

#[test]
fn a_4xx_allows_everything() {
    case("404", || async {
        let server = RawServer::start(2, |_, _| response("404 Not Found", "", b"no such file"));
        let cache = RobotsCache::new(Client::new(), "volley");
        let page = server.url("/anything");
        assert!(matches!(
            cache.check(&page).await,
            RobotsVerdict::Allowed { crawl_delay: None }
        ));
        let status = cache.status(&page).await;
        assert!(
            matches!(
                status,
                RobotsStatus::Unavailable(Unavailable::Status(StatusCode::NOT_FOUND))
            ),
            "{status}"
        );
        assert_eq!(
            status.to_string(),
            "no robots.txt to obey (404 Not Found): everything allowed"
        );
        assert_eq!(server.count("/robots.txt"), 1);
    });
}

/// A 2 MiB robots.txt: the first 500 KiB are parsed, the rest is never waited for, and
/// nothing fails; the connection is closed rather than kept, and no descriptor is left open.
#[test]
fn a_2_mib_file_is_read_to_500_kib() {
    case("2 MiB", || async {
        let fds_before = util::open_fds();
        let mut body = b"User-agent: *\nDisallow: /early\n".to_vec();
        while body.len() < 2 << 20 {
            body.extend_from_slice(b"# filler filler filler filler filler filler filler\n");
        }
        body.extend_from_slice(b"Disallow: /late\n");
        let server = RawServer::start(2, move |_, _| robots_txt(&body));
        let client = Client::new();
        let cache = RobotsCache::new(client.clone(), "volley");
        assert!(!cache.check(&server.url("/early")).await.is_allowed());
        assert!(cache.check(&server.url("/late")).await.is_allowed());
        assert_eq!(
            client.idle_connections(),
            0,
            "a body not read to its end is closed"
        );
        drop(server);
        drop(cache);
        drop(client);
        assert!(util::open_fds() <= fds_before, "a descriptor was left open");
    });
}

#[test]
fn bytes_that_are_not_utf8_do_not_break_the_file() {
    case("not UTF-8", || async {
        let server = RawServer::start(2, |_, _| {
            robots_txt(
                b"\xFF\xFE\nUser-agent: *\nDisallow: /caf\xE9\n\xC3\x28 junk\nDisallow: /x\n",
            )
        });
        let cache = RobotsCache::new(Client::new(), "volley");
        assert!(!cache.check(&server.url("/caf%E9/menu")).await.is_allowed());
        assert!(!cache.check(&server.url("/x")).await.is_allowed());
        assert!(cache.check(&server.url("/cafe")).await.is_allowed());
    });
}

/// A site that answers every path with its HTML home page: no rules, everything allowed.
#[test]
fn an_html_page_allows_everything() {
    case("HTML", || async {
        let server = RawServer::start(2, |_, _| {
            response(
                "200 OK",
                "Content-Type: text/html\r\n",
                b"<!DOCTYPE html>\n<html><body>\nDisallow: /looks-like-a-rule\n</body></html>\n",
            )
        });
        let cache = RobotsCache::new(Client::new(), "volley");
        assert!(cache
            .check(&server.url("/looks-like-a-rule"))
            .await
            .is_allowed());
        match cache.status(&server.url("/")).await {
            RobotsStatus::Rules(robots) => assert_eq!(robots.rule_count(), 0),
            other => panic!("expected no rules, got {other}"),
        }
    });
}

/// Redirects are followed, up to 5, and the rules found hold for the first origin.
#[test]
fn redirects_are_followed_up_to_five() {
    case("redirects", || async {
        let server = RawServer::start(10, |path, _| match path {
            "/robots.txt" => response("301 Moved Permanently", "Location: /r/1\r\n", b""),
            "/r/1" | "/r/2" | "/r/3" => {
                let next = path[3..].parse::<u32>().unwrap() + 1;
                response("302 Found", &format!("Location: /r/{next}\r\n"), b"")
            }
            "/r/4" => response("307 Temporary Redirect", "Location: /real.txt\r\n", b""),
            "/real.txt" => robots_txt(b"User-agent: *\nDisallow: /private\n"),
            _ => response("404 Not Found", "", b""),
        });
        let cache = RobotsCache::new(Client::new(), "volley");
        assert!(!cache.check(&server.url("/private")).await.is_allowed());
        assert!(cache.check(&server.url("/public")).await.is_allowed());
        assert_eq!(server.requests().len(), 6, "{:?}", server.requests());
    });
}

/// A redirect loop: after 5 redirects robots.txt counts as unavailable (allow all), and the
/// loop is not followed further.
#[test]
fn a_redirect_loop_allows_everything() {
    case("redirect loop", || async {
        let server = RawServer::start(20, |_, _| {
            response("302 Found", "Location: /robots.txt\r\n", b"")
        });
        let cache = RobotsCache::new(Client::new(), "volley");
        let page = server.url("/page");
        let status = cache.status(&page).await;
        assert!(
            matches!(
                status,
                RobotsStatus::Unavailable(Unavailable::TooManyRedirects(5))
            ),
            "{status}"
        );
        assert!(cache.check(&page).await.is_allowed());
        assert_eq!(
            server.count("/robots.txt"),
            6,
            "the first request and 5 redirects"
        );
        // A cache that follows fewer.
        let cache = RobotsCache::builder(Client::new(), "volley")
            .max_redirects(1)
            .build();
        assert!(matches!(
            cache.status(&page).await,
            RobotsStatus::Unavailable(Unavailable::TooManyRedirects(1))
        ));
        assert_eq!(server.count("/robots.txt"), 8);
    });
}

/// Nobody listens: the origin is deferred, and the error says the connection failed.
#[test]
fn a_refused_port_defers_the_origin() {
    case("refused", || async {
        let cache = RobotsCache::new(Client::new(), "volley");
        let page = url(&format!("http://127.0.0.1:{}/page", refused_port()));
        let started = Instant::now();
        match cache.check(&page).await {
            RobotsVerdict::Deferred(Unreachable::Error(e)) => {
                assert_eq!(e.kind(), &ErrorKind::Connect);
                let said = RobotsVerdict::Deferred(Unreachable::Error(e)).to_string();
                assert!(
                    said.starts_with(
                        "deferred: robots.txt unreachable (connection failed to http://127.0.0.1:"
                    ),
                    "{said}"
                );
                assert!(said.contains("/robots.txt"), "{said}");
            }
            other => panic!("expected a deferral, got {other}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a refusal is no timeout"
        );
    });
}

/// A server that accepts and never answers: the fetch's own timeout defers the origin.
#[test]
fn a_stalled_server_is_deferred_after_the_timeout() {
    case("stall", || async {
        let server = RawServer::start(2, |_, _| Answer::Stall);
        let cache = RobotsCache::builder(Client::new(), "volley")
            .timeout(Duration::from_millis(300))
            .build();
        let started = Instant::now();
        let verdict = cache.check(&server.url("/page")).await;
        let took = started.elapsed();
        match &verdict {
            RobotsVerdict::Deferred(Unreachable::Error(e)) => {
                assert!(e.is_timeout(), "{e:#}")
            }
            other => panic!("expected a timeout, got {other}"),
        }
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    });
}

/// `Crawl-delay` comes with an allowed verdict, capped at 30 s unless set otherwise.
#[test]
fn crawl_delay_is_passed_on_and_capped() {
    case("crawl-delay", || async {
        let server = RawServer::start(3, |_, _| {
            robots_txt(
                b"User-agent: volley\nCrawl-delay: 3600\n\nUser-agent: *\nCrawl-delay: 1.5\n",
            )
        });
        let delay = |cache: RobotsCache| {
            let url = server.url("/page");
            async move { cache.check(&url).await.crawl_delay() }
        };
        let client = Client::new();
        assert_eq!(
            delay(RobotsCache::new(client.clone(), "otherbot")).await,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            delay(RobotsCache::new(client.clone(), "volley")).await,
            Some(Duration::from_secs(30))
        );
        let capped = RobotsCache::builder(client, "volley")
            .max_crawl_delay(Duration::from_secs(2))
            .build();
        assert_eq!(delay(capped).await, Some(Duration::from_secs(2)));
    });
}

/// Each origin (scheme, host, port) has its own robots.txt; a URL without one is allowed.
#[test]
fn each_origin_is_asked_once() {
    case("origins", || async {
        let deny_all = |_: &str, _| robots_txt(b"User-agent: *\nDisallow: /\n");
        let one = RawServer::start(3, deny_all);
        let two = RawServer::start(3, |_, _| response("404 Not Found", "", b""));
        let cache = RobotsCache::new(Client::new(), "volley");
        for _ in 0..3 {
            assert!(!cache.check(&one.url("/a")).await.is_allowed());
            assert!(cache.check(&two.url("/a")).await.is_allowed());
        }
        assert_eq!(cache.fetches(), 2);
        assert_eq!((one.requests().len(), two.requests().len()), (1, 1));
        let mail = url("mailto:ann@example.com");
        assert!(matches!(
            cache.status(&mail).await,
            RobotsStatus::Unavailable(Unavailable::NoOrigin)
        ));
        assert!(cache.check(&mail).await.is_allowed());
        assert_eq!(cache.fetches(), 2);
    });
}

/// Zero for both intervals: every check fetches again, and none fails for it (nor panics).
#[test]
fn zero_intervals_fetch_every_time() {
    case("zero intervals", || async {
        let server = RawServer::start(10, |_, n| match n % 2 {
            0 => response("503 Service Unavailable", "", b""),
            _ => robots_txt(b"User-agent: *\nDisallow: /\n"),
        });
        let cache = RobotsCache::builder(Client::new(), "volley")
            .max_age(Duration::ZERO)
            .retry_interval(Duration::ZERO)
            .build();
        let page = server.url("/page");
        assert!(matches!(
            cache.check(&page).await,
            RobotsVerdict::Deferred(_)
        ));
        assert!(matches!(
            cache.check(&page).await,
            RobotsVerdict::Disallowed
        ));
        // A 503 again: the rules had hold.
        assert!(matches!(
            cache.check(&page).await,
            RobotsVerdict::Disallowed
        ));
        assert!(matches!(
            cache.check(&page).await,
            RobotsVerdict::Disallowed
        ));
        assert_eq!(server.count("/robots.txt"), 4);
    });
}
