//! The endpoints for polite clients: `/limit/{n}` (its window, its `Retry-After` forms, its
//! pause tracking, its keys and its RateLimit headers), `/flaky/{n}` (each way of failing),
//! and a configured `/robots.txt`, with their counters in `ServerStats`.
//!
//! Checked at the byte level with a plain `std::net::TcpStream` client (as volley's
//! `tests/server.rs` does: read and write timeouts, so nothing hangs), and with volley's own
//! client where a failure must show as a client error. Everything is on loopback. Windows are
//! 200 to 500 ms, and the tests wait only for what the server announced; time bounds are
//! generous, and the rest is shown by the order of events.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use volley::Runtime;
use volley_testserver::{RobotsTxt, Server, ServerConfig, ServerThread, ENDPOINTS};

/// How long a test client waits for any one read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn start() -> ServerThread {
    start_with(ServerConfig::default())
}

fn start_with(config: ServerConfig) -> ServerThread {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    Server::spawn_thread_with(local, config).expect("start server thread")
}

/// A response as read off the wire (`Content-Length` framing only: all these endpoints use
/// it).
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The integer after `"name": ` in the JSON body.
    fn json_int(&self, name: &str) -> u64 {
        let at = self
            .body
            .find(&format!("\"{name}\": "))
            .unwrap_or_else(|| panic!("no {name:?} in {:?}", self.body));
        let rest = &self.body[at + name.len() + 4..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().expect("a number")
    }

    /// `Retry-After` as delay-seconds.
    fn retry_after_secs(&self) -> u64 {
        let value = self.header("retry-after").expect("a Retry-After");
        value.parse().expect("Retry-After in delay-seconds")
    }
}

/// A blocking client over one connection, with its own read buffer.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// `GET path` with `Host: host`, and its response.
    fn get_from(&mut self, host: &str, path: &str) -> Resp {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        self.response()
    }

    /// `GET path` with `Host: test`.
    fn get(&mut self, path: &str) -> Resp {
        self.get_from("test", path)
    }

    fn send(&mut self, request: &str) {
        self.stream.write_all(request.as_bytes()).expect("send");
    }

    /// Reads more bytes into the buffer; 0 at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads through the next CRLF and returns the line without it.
    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line);
                return text.trim_end_matches(['\r', '\n']).to_string();
            }
            assert!(self.fill().expect("read") > 0, "EOF inside a line");
        }
    }

    /// Reads one head: the status and the header lines.
    fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let status_line = self.line();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.to_string(), value.trim().to_string()));
        }
        (status, headers)
    }

    /// Reads one response to a `GET` (or any request but `HEAD`).
    fn response(&mut self) -> Resp {
        let (status, headers) = self.head();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().expect("numeric Content-Length"))
            .unwrap_or(0);
        while self.buf.len() < len {
            assert!(self.fill().expect("read") > 0, "EOF inside a body");
        }
        let body = String::from_utf8(self.buf.drain(..len).collect()).expect("UTF-8 body");
        Resp {
            status,
            headers,
            body,
        }
    }

    /// How the connection ends when no response comes: `None` for a clean EOF without a
    /// byte, else the error kind.
    fn end_without_response(&mut self) -> Option<io::ErrorKind> {
        let outcome = match self.fill() {
            Ok(0) => None,
            Ok(_) => panic!("expected no response, got {:?}", self.buf),
            Err(e) => Some(e.kind()),
        };
        assert!(self.buf.is_empty());
        outcome
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date, by Howard Hinnant's
/// `days_from_civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 section 5.6.7), checking
/// its weekday too.
fn parse_http_date(text: &str) -> SystemTime {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let parts: Vec<&str> = text.split(' ').collect();
    let [weekday, day, month, year, time, "GMT"] = parts[..] else {
        panic!("not an IMF-fixdate: {text:?}");
    };
    assert_eq!((day.len(), year.len(), time.len()), (2, 4, 8), "{text:?}");
    let month = MONTHS.iter().position(|&m| m == month).expect("a month") as i64 + 1;
    let days = days_from_civil(year.parse().unwrap(), month, day.parse().unwrap());
    assert_eq!(weekday, format!("{},", DAYS[days.rem_euclid(7) as usize]));
    let hms: Vec<i64> = time.split(':').map(|n| n.parse().unwrap()).collect();
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

/// The test's own date parser reads RFC 9110's example right.
#[test]
fn http_date_parser() {
    let date = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(date, UNIX_EPOCH + Duration::from_secs(784_111_777));
    let leap = parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(leap, UNIX_EPOCH + Duration::from_secs(951_782_400));
}

/// `/limit/3` admits exactly three requests in its window, then refuses with 429 and a
/// `Retry-After` of 1 s (the window is 500 ms: rounded up); the refusal does not enter the
/// window, and after waiting the announced second the next request is admitted, not early.
#[test]
fn limit_admits_n_then_refuses_with_delay_seconds() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let path = "/limit/3?window_ms=500";
    for k in 1..=3 {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.contains("\"allowed\": true"), "{r:?}");
        assert_eq!(r.json_int("in_window"), k);
        assert!(r.header("retry-after").is_none());
    }
    let refused = c.get(path);
    assert_eq!(refused.status, 429, "{refused:?}");
    assert!(refused.body.contains("\"allowed\": false"));
    assert_eq!(
        refused.json_int("in_window"),
        3,
        "the refusal is not counted"
    );
    assert_eq!(refused.retry_after_secs(), 1);
    assert!(refused.header("ratelimit").is_none());
    let stats = server.stats();
    assert_eq!((stats.limited, stats.early), (1, 0));

    thread::sleep(Duration::from_secs(refused.retry_after_secs()));
    let after = c.get(path);
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(after.json_int("in_window"), 1, "the window has emptied");
    let stats = server.stats();
    assert_eq!((stats.limited, stats.early), (1, 0));
}

/// `status=503&retry_after=date`: the refusal is a 503 whose `Retry-After` is an IMF-fixdate
/// no earlier than the first request's time plus the window (when a slot frees) and no later
/// than the window plus 1 s from the answer; waiting until that date gets a 200, not early.
#[test]
fn limit_503_with_an_http_date() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let path = "/limit/2?window_ms=500&status=503&retry_after=date";
    let window = Duration::from_millis(500);
    let first_sent = SystemTime::now();
    assert_eq!(c.get(path).status, 200);
    assert_eq!(c.get(path).status, 200);
    let refused = c.get(path);
    let received = SystemTime::now();
    assert_eq!(refused.status, 503, "{refused:?}");
    let date = parse_http_date(refused.header("retry-after").expect("a Retry-After"));
    // A slot frees when the first request leaves the window; the date, whole seconds
    // rounded up, is not before that (less a little for the two clocks' rounding).
    assert!(
        date + Duration::from_millis(50) >= first_sent + window,
        "{date:?} is before {:?}",
        first_sent + window
    );
    assert!(
        date > first_sent,
        "the date is in the future of the request"
    );
    assert!(
        date <= received + window + Duration::from_secs(1),
        "{date:?} is more than window + 1 s after {received:?}"
    );
    assert_eq!(server.stats().limited, 1);

    if let Ok(wait) = date.duration_since(SystemTime::now()) {
        thread::sleep(wait);
    }
    let after = c.get(path);
    assert_eq!(after.status, 200, "{after:?}");
    let stats = server.stats();
    assert_eq!((stats.limited, stats.early), (1, 0));
}

/// `retry_after=none`: the refusal has no `Retry-After` and announces no pause, so a request
/// right after it is refused again but is not early.
#[test]
fn limit_without_retry_after_announces_no_pause() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let path = "/limit/1?window_ms=500&retry_after=none";
    assert_eq!(c.get(path).status, 200);
    for _ in 0..2 {
        let refused = c.get(path);
        assert_eq!(refused.status, 429);
        assert!(refused.header("retry-after").is_none(), "{refused:?}");
    }
    let stats = server.stats();
    assert_eq!((stats.limited, stats.early), (2, 0));
}

/// A request sent during an announced pause counts as early (and is answered as usual); one
/// sent after the last announced pause has ended does not.
#[test]
fn limit_counts_requests_during_a_pause_as_early() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let path = "/limit/1?window_ms=300&grace_ms=0";
    assert_eq!(c.get(path).status, 200);
    let refused = c.get(path);
    let mut pause_ends = Instant::now() + Duration::from_secs(refused.retry_after_secs());
    assert_eq!(refused.status, 429);
    assert_eq!(server.stats().early, 0, "the refusal itself is not early");

    // At once: within the announced second.
    let early = c.get(path);
    assert_eq!(server.stats().early, 1);
    assert!(matches!(early.status, 200 | 429), "{early:?}");
    if early.status == 429 {
        // It announced a pause of its own: wait for that one too.
        pause_ends = Instant::now() + Duration::from_secs(early.retry_after_secs());
    }

    thread::sleep(pause_ends.saturating_duration_since(Instant::now()));
    let after = c.get(path);
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(
        server.stats().early,
        1,
        "a request after the pause is not early"
    );
}

/// The limiter key is (client address, `Host`, `key`): each host name and each key has its
/// own window and its own pause, and a second server has its own state.
#[test]
fn limit_keys_hosts_and_keys_separately() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let path = "/limit/1?window_ms=500&grace_ms=0";
    assert_eq!(c.get_from("127.0.0.1", path).status, 200);
    assert_eq!(c.get_from("127.0.0.1", path).status, 429);
    // Another host name of the same server: its own window, and not in the first's pause.
    assert_eq!(c.get_from("127.0.0.2", path).status, 200);
    assert_eq!(server.stats().early, 0);
    // Host names are case-insensitive.
    assert_eq!(c.get_from("LOCALHOST", path).status, 200);
    assert_eq!(c.get_from("localhost", path).status, 429);
    // Another key on a limited host.
    let keyed = "/limit/1?window_ms=500&key=other&grace_ms=0";
    assert_eq!(c.get_from("127.0.0.1", keyed).status, 200);
    assert_eq!(c.get_from("127.0.0.1", keyed).status, 429);
    let stats = server.stats();
    assert_eq!((stats.limited, stats.early), (3, 0));
    // The first host is still in its announced second: that request is early (and answered
    // as usual: 429 while its window holds the first request).
    let early = c.get_from("127.0.0.1", path);
    assert!(matches!(early.status, 200 | 429), "{early:?}");
    assert_eq!(server.stats().early, 1);

    // A second server knows nothing of the first's windows.
    let other = start();
    let mut o = Client::connect(other.local_addr());
    assert_eq!(o.get_from("127.0.0.1", path).status, 200);
    assert_eq!((other.stats().limited, other.stats().early), (0, 0));
}

/// `headers=ratelimit`: every answer carries `RateLimit-Policy` (the limit and the window in
/// seconds, rounded up) and `RateLimit` (the requests left, and the seconds until one more is
/// admitted: 0 while some are left); on the refusal, `t` is the `Retry-After`.
#[test]
fn limit_ratelimit_headers() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let path = "/limit/2?window_ms=1500&headers=ratelimit";
    let policy = "\"default\";q=2;w=2";

    let first = c.get(path);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("ratelimit-policy"), Some(policy));
    assert_eq!(first.header("ratelimit"), Some("\"default\";r=1;t=0"));

    let second = c.get(path);
    assert_eq!(second.status, 200);
    assert_eq!(second.header("ratelimit-policy"), Some(policy));
    let t = second
        .header("ratelimit")
        .and_then(|v| v.strip_prefix("\"default\";r=0;t="))
        .expect("r=0 after the second request");
    assert!(
        matches!(t, "1" | "2"),
        "t={t}: the 1.5 s window, rounded up"
    );

    let refused = c.get(path);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("ratelimit-policy"), Some(policy));
    let secs = refused.retry_after_secs();
    assert!((1..=2).contains(&secs));
    let expected = format!("\"default\";r=0;t={secs}");
    assert_eq!(refused.header("ratelimit"), Some(expected.as_str()));
}

/// `headers=policy`, `state` and `legacy` send one kind of header each: the draft's
/// `RateLimit-Policy`, its `RateLimit`, or the earlier drafts' three fields.
#[test]
fn limit_ratelimit_header_kinds() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let names = [
        "ratelimit-policy",
        "ratelimit",
        "ratelimit-limit",
        "ratelimit-remaining",
    ];
    let present = |r: &Resp| names.map(|n| r.header(n).is_some());

    let policy = c.get("/limit/2?key=p&headers=policy");
    assert_eq!(
        policy.header("ratelimit-policy"),
        Some("\"default\";q=2;w=1")
    );
    assert_eq!(present(&policy), [true, false, false, false]);

    let state = c.get("/limit/2?key=s&headers=state");
    assert_eq!(state.header("ratelimit"), Some("\"default\";r=1;t=0"));
    assert_eq!(present(&state), [false, true, false, false]);

    let path = "/limit/1?key=l&headers=legacy";
    let first = c.get(path);
    assert_eq!(present(&first), [false, false, true, true]);
    assert_eq!(first.header("ratelimit-limit"), Some("1"));
    assert_eq!(first.header("ratelimit-remaining"), Some("0"));
    assert_eq!(first.header("ratelimit-reset"), Some("1"));
    let refused = c.get(path);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));

    assert_eq!(c.get("/limit/1?headers=other").status, 400);
}

/// Invalid parameters get 400, which neither enters a window nor counts as limited.
#[test]
fn limit_rejects_invalid_parameters() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    for path in [
        "/limit/x",
        "/limit/-1",
        "/limit/1?status=404",
        "/limit/1?retry_after=soon",
        "/limit/1?window_ms=0",
        "/limit/1?window_ms=86400001",
        "/limit/1?headers=all",
    ] {
        assert_eq!(c.get(path).status, 400, "{path}");
    }
    assert_eq!(c.get("/limit/1").status, 200, "no window was entered");
    assert_eq!(server.stats().limited, 0);
}

/// `/flaky/2` fails twice with 503 for each key, then answers 200 with the attempt number;
/// `status` and `retry_after` shape the failures.
#[test]
fn flaky_fails_n_times_per_key_then_succeeds() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    for _ in 0..2 {
        let r = c.get("/flaky/2?key=a");
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.header("retry-after").is_none());
    }
    for k in 3..=4 {
        let r = c.get("/flaky/2?key=a");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json_int("attempt"), k);
    }
    // Another key starts over, with its own status and Retry-After.
    let r = c.get("/flaky/1?key=b&status=500&retry_after=7");
    assert_eq!((r.status, r.header("retry-after")), (500, Some("7")));
    assert_eq!(c.get("/flaky/1?key=b&status=500").json_int("attempt"), 2);
    // No key is the empty key.
    assert_eq!(c.get("/flaky/1?status=429").status, 429);
    assert_eq!(c.get("/flaky/1").status, 200);
    assert_eq!(server.stats().flaky_failures, 4);
    for path in ["/flaky/x", "/flaky/1?status=302", "/flaky/1?fail=hang"] {
        assert_eq!(c.get(path).status, 400, "{path}");
    }
    assert_eq!(server.stats().flaky_failures, 4);
}

/// `fail=reset` resets the connection and `fail=close` closes it, both before any response
/// byte; the attempt after the failures gets its 200.
#[test]
fn flaky_reset_and_close_send_no_byte() {
    let server = start();
    for (mode, end) in [
        ("reset", Some(io::ErrorKind::ConnectionReset)),
        ("close", None),
    ] {
        for _ in 0..2 {
            let mut c = Client::connect(server.local_addr());
            c.send(&format!(
                "GET /flaky/2?key={mode}&fail={mode} HTTP/1.1\r\nHost: t\r\n\r\n"
            ));
            assert_eq!(c.end_without_response(), end, "fail={mode}");
        }
        let mut c = Client::connect(server.local_addr());
        let r = c.get(&format!("/flaky/2?key={mode}&fail={mode}"));
        assert_eq!((r.status, r.json_int("attempt")), (200, 3), "fail={mode}");
    }
    assert_eq!(server.stats().flaky_failures, 4);
}

/// Through volley's client, each failure without a response is an error, one attempt each
/// (the server counted exactly the failures, and the success is attempt 3).
#[test]
fn flaky_failures_are_client_errors() {
    let server = start();
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        for mode in ["reset", "close"] {
            // A fresh client each time: no pooled connection to retry on.
            let url = server.url(&format!("/flaky/1?key={mode}&fail={mode}"));
            let failed = volley::Client::new().get(&url).send().await;
            assert!(failed.is_err(), "fail={mode}: {failed:?}");
            let response = volley::Client::new().get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.text().await.unwrap().contains("\"attempt\": 2"));
        }
    });
    assert_eq!(server.stats().flaky_failures, 2);
}

/// A configured robots.txt is served with its status, type and body to GET and HEAD, and
/// every fetch counts; without one, the default rules are unchanged.
#[test]
fn robots_txt_config_is_served_and_counted() {
    let server = start_with(ServerConfig::default().robots_txt(503, "try later\n"));
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/robots.txt");
    assert_eq!((r.status, r.body.as_str()), (503, "try later\n"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    c.send("HEAD /robots.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let (status, headers) = c.head();
    assert_eq!(status, 503);
    assert!(headers.contains(&("Content-Length".to_string(), "10".to_string())));
    c.send("POST /robots.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.response().status, 405);
    assert_eq!(server.stats().robots_fetches, 3);

    let mut config = ServerConfig::default();
    config.robots_txt = Some(RobotsTxt {
        status: 200,
        content_type: "text/x-robots; charset=utf-8".to_string(),
        body: b"User-agent: *\nDisallow: /\nCrawl-delay: 1\n".to_vec(),
    });
    let custom = start_with(config);
    let r = Client::connect(custom.local_addr()).get("/robots.txt");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/x-robots; charset=utf-8")
    );
    assert_eq!(r.body, "User-agent: *\nDisallow: /\nCrawl-delay: 1\n");
    assert_eq!(custom.stats().robots_fetches, 1);

    let default = start();
    let r = Client::connect(default.local_addr()).get("/robots.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "User-agent: *\nDisallow: /deny\n");
    assert_eq!(default.stats().robots_fetches, 1);
    assert_eq!(default.stats().limited, 0);
}

/// The endpoint list (and so the `/` page) has the new endpoints.
#[test]
fn endpoints_are_listed() {
    for prefix in ["/limit/{n}", "/flaky/{n}", "/robots.txt"] {
        assert!(
            ENDPOINTS.iter().any(|(path, _)| path.starts_with(prefix)),
            "{prefix} is not in ENDPOINTS"
        );
    }
    let server = start();
    let index = Client::connect(server.local_addr()).get("/");
    assert!(index
        .body
        .contains("<code>/limit/{n}?window_ms=1000&amp;status=429</code>"));
}
