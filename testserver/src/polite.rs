//! The endpoints for testing polite clients, which keep state per server: `/limit/{n}`, a
//! sliding-window rate limiter per client, `Host` and key that announces its pauses with
//! `Retry-After` and counts the requests sent during one; `/flaky/{n}`, which fails a key's
//! first `n` requests; and `/robots.txt`, as [`ServerConfig::robots_txt`] sets it. The crate
//! docs list their parameters.
//!
//! Like `faults.rs`, this module parses its own query arguments, so that it does not import
//! the router that calls it.
//!
//! [`ServerConfig::robots_txt`]: crate::ServerConfig::robots_txt

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::conn::Next;
use super::json::Json;
use super::request::Request;
use super::response::{http_date, Response};
use super::{Event, Shared};

/// What `/robots.txt` says when [`ServerConfig::robots_txt`](crate::ServerConfig::robots_txt)
/// is not set.
pub(crate) const DEFAULT_ROBOTS_TXT: &str = "User-agent: *\nDisallow: /deny\n";

/// How long after announcing a pause `/limit` takes requests as already on their way, not
/// early, unless `grace_ms` says otherwise.
const DEFAULT_GRACE_MS: u64 = 100;

/// The longest `/limit` window: a day.
const MAX_WINDOW_MS: u64 = 86_400_000;

/// What an endpoint of this module does with a request.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Send this response.
    Respond(Response),
    /// Send nothing, and end the connection this way (`/flaky`'s `fail=close` and
    /// `fail=reset`).
    Drop(Next),
}

/// The state of this module's endpoints, one per server.
#[derive(Debug, Default)]
pub(crate) struct PoliteState {
    /// `/limit`'s windows, by limiter key, kept for the server's life.
    limits: RefCell<HashMap<LimitKey, Window>>,
    /// `/flaky`'s request counts, by `key` argument, kept for the server's life.
    flaky: RefCell<HashMap<String, u64>>,
}

/// Whom `/limit` limits: the client's IP address, the request's `Host` header (lower-cased,
/// empty if absent) and the `key` argument.
type LimitKey = (IpAddr, String, String);

/// One limiter key's recent requests and announced pause.
#[derive(Debug, Default)]
struct Window {
    /// When the admitted requests still in the window arrived, oldest first.
    arrivals: VecDeque<Instant>,
    /// The end of the last pause a `Retry-After` announced, until a request finds it passed.
    paused_until: Option<PauseEnd>,
    /// When the pause that lasts now was first announced: requests already in flight then
    /// may arrive during the grace after it without counting as early.
    announced: Option<Instant>,
}

/// The end of an announced pause, on the clock its announcement used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PauseEnd {
    /// Delay-seconds: the refusal's instant plus that many seconds.
    Instant(Instant),
    /// An HTTP-date: that date.
    Date(SystemTime),
}

impl PauseEnd {
    /// Whether the pause still lasts at `now` (monotonic) and `wall` (the same moment on the
    /// system clock).
    fn lasts(self, now: Instant, wall: SystemTime) -> bool {
        match self {
            PauseEnd::Instant(end) => now < end,
            PauseEnd::Date(end) => wall < end,
        }
    }
}

/// What [`Window::admit`] decided.
#[derive(Clone, Copy, Debug)]
struct Verdict {
    admitted: bool,
    /// Requests in the window, this one included if admitted.
    in_window: usize,
    /// How many more the window admits now.
    remaining: usize,
    /// How long until the window admits one more: zero if `remaining > 0`.
    wait: Duration,
}

impl Window {
    /// Whether a request arriving at `now` (and `wall`) comes during an announced pause,
    /// more than `grace` after it was announced (sooner, it may have been on its way
    /// already). A pause found over is forgotten.
    fn early(&mut self, now: Instant, wall: SystemTime, grace: Duration) -> bool {
        let lasts = self.paused_until.is_some_and(|end| end.lasts(now, wall));
        if !lasts {
            self.paused_until = None;
            self.announced = None;
        }
        lasts
            && self
                .announced
                .is_none_or(|at| now.saturating_duration_since(at) > grace)
    }

    /// Records a pause announced at `now`, ending at `end`.
    fn announce(&mut self, end: PauseEnd, now: Instant) {
        if self.paused_until.is_none() {
            self.announced = Some(now);
        }
        self.paused_until = Some(end);
    }

    /// Admits a request arriving at `now` if fewer than `limit` admitted requests arrived in
    /// the `span` before it. A refused request does not enter the window.
    fn admit(&mut self, now: Instant, limit: usize, span: Duration) -> Verdict {
        while self
            .arrivals
            .front()
            .is_some_and(|&t| now.duration_since(t) >= span)
        {
            self.arrivals.pop_front();
        }
        let admitted = self.arrivals.len() < limit;
        if admitted {
            self.arrivals.push_back(now);
        }
        let remaining = limit.saturating_sub(self.arrivals.len());
        Verdict {
            admitted,
            in_window: self.arrivals.len(),
            remaining,
            wait: match remaining {
                0 => self.wait_for_slot(now, limit, span),
                _ => Duration::ZERO,
            },
        }
    }

    /// How long after `now` the window holds fewer than `limit` requests: until the request
    /// whose leaving brings it below the limit leaves. For a limit of 0, never: `span`.
    fn wait_for_slot(&self, now: Instant, limit: usize, span: Duration) -> Duration {
        let len = self.arrivals.len();
        match limit {
            0 => span,
            // `len >= limit` here (no slot remains), so the index is in range.
            _ => (self.arrivals[len - limit] + span).saturating_duration_since(now),
        }
    }
}

/// How `/limit` says when to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RetryAfter {
    /// `Retry-After: {delay-seconds}`.
    Secs,
    /// `Retry-After: {IMF-fixdate}`.
    Date,
    /// No `Retry-After`, and so no pause.
    None,
}

/// Which rate-limit headers `/limit/{n}` sends (`headers=`).
#[derive(Debug, Default, Clone, Copy)]
struct RateLimitHeaders {
    /// `RateLimit-Policy` (the IETF draft).
    policy: bool,
    /// `RateLimit` (the IETF draft).
    state: bool,
    /// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (its earlier versions).
    legacy: bool,
}

/// The parameters of `/limit/{n}`.
#[derive(Debug)]
struct LimitParams {
    limit: usize,
    span: Duration,
    retry_after: RetryAfter,
    status: u16,
    key: String,
    headers: RateLimitHeaders,
    /// After a pause is announced, requests arriving within this are not early.
    grace: Duration,
}

impl LimitParams {
    /// Parses `/limit/{n}`'s `n` and query; 400 if one is invalid.
    fn parse(req: &Request, n: &str) -> Result<LimitParams, Response> {
        let limit = n
            .parse()
            .map_err(|_| bad_request(&format!("invalid limit: {n:?}")))?;
        let window_ms = arg(req, "window_ms")?.unwrap_or(1000);
        if !(1..=MAX_WINDOW_MS).contains(&window_ms) {
            return Err(bad_request("window_ms must be 1 to 86400000"));
        }
        let retry_after = match req.arg("retry_after").as_deref() {
            None | Some("secs") => RetryAfter::Secs,
            Some("date") => RetryAfter::Date,
            Some("none") => RetryAfter::None,
            Some(_) => return Err(bad_request("retry_after is secs, date or none")),
        };
        let status = arg(req, "status")?.unwrap_or(429);
        if status != 429 && status != 503 {
            return Err(bad_request("status is 429 or 503"));
        }
        let headers = match req.arg("headers").as_deref() {
            None => RateLimitHeaders::default(),
            Some("ratelimit") => RateLimitHeaders {
                policy: true,
                state: true,
                legacy: false,
            },
            Some("policy") => RateLimitHeaders {
                policy: true,
                ..RateLimitHeaders::default()
            },
            Some("state") => RateLimitHeaders {
                state: true,
                ..RateLimitHeaders::default()
            },
            Some("legacy") => RateLimitHeaders {
                legacy: true,
                ..RateLimitHeaders::default()
            },
            Some(_) => return Err(bad_request("headers is ratelimit, policy, state or legacy")),
        };
        Ok(LimitParams {
            limit,
            span: Duration::from_millis(window_ms),
            retry_after,
            status,
            key: req.arg("key").unwrap_or_default(),
            headers,
            grace: Duration::from_millis(arg(req, "grace_ms")?.unwrap_or(DEFAULT_GRACE_MS)),
        })
    }
}

/// How `/flaky` fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// A response with this status.
    Status(u16),
    /// A reset before any byte.
    Reset,
    /// A graceful close before any byte.
    Close,
}

/// Answers the endpoints of this module; `None` for any other path.
pub(crate) fn route(shared: &Shared, req: &Request, segs: &[&str]) -> Option<Answer> {
    let answer = match segs {
        ["limit", n] => limit(shared, req, n).map(Answer::Respond),
        ["flaky", n] => flaky(shared, req, n),
        ["robots.txt"] => robots(shared, req).map(Answer::Respond),
        _ => return None,
    };
    Some(answer.unwrap_or_else(Answer::Respond))
}

fn bad_request(why: &str) -> Response {
    Response::text(400, &format!("{why}\n"))
}

/// Query argument `name` parsed, `None` if absent; 400 if unparsable.
fn arg<T: FromStr>(req: &Request, name: &str) -> Result<Option<T>, Response> {
    req.arg(name)
        .map(|v| {
            v.parse()
                .map_err(|_| bad_request(&format!("invalid {name}: {v:?}")))
        })
        .transpose()
}

/// Whole seconds in `d`, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `time` rounded up to a whole second, as an HTTP-date must be to not announce an earlier
/// instant.
fn ceil_to_second(time: SystemTime) -> SystemTime {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_secs(ceil_secs(since_epoch))
}

/// `/limit/{n}`: admits at most `n` requests of a limiter key in any window of `window_ms`,
/// refuses the others with `status` and a `Retry-After`, and counts the requests that come
/// during an announced pause as early.
fn limit(shared: &Shared, req: &Request, n: &str) -> Result<Response, Response> {
    let params = LimitParams::parse(req, n)?;
    let host = req.header("host").unwrap_or("").to_ascii_lowercase();
    let key = (req.peer.ip(), host, params.key.clone());
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut limits = shared.polite.limits.borrow_mut();
    let window = limits.entry(key).or_default();
    if window.early(now, wall, params.grace) {
        shared.count(Event::Early);
    }
    let verdict = window.admit(now, params.limit, params.span);
    let mut response = if verdict.admitted {
        Response::json(200, &limit_json(true, verdict.in_window))
    } else {
        shared.count(Event::Limited);
        let (header, pause) = retry_after(params.retry_after, verdict.wait, now, wall);
        if let Some(end) = pause {
            window.announce(end, now);
        }
        let response = Response::json(params.status, &limit_json(false, verdict.in_window));
        match header {
            Some(value) => response.header("Retry-After", value),
            None => response,
        }
    };
    let reset = ceil_secs(verdict.wait);
    if params.headers.policy {
        let policy = format!(
            "\"default\";q={};w={}",
            params.limit,
            ceil_secs(params.span)
        );
        response = response.header("RateLimit-Policy", policy);
    }
    if params.headers.state {
        let state = format!("\"default\";r={};t={reset}", verdict.remaining);
        response = response.header("RateLimit", state);
    }
    if params.headers.legacy {
        response = response
            .header("RateLimit-Limit", params.limit.to_string())
            .header("RateLimit-Remaining", verdict.remaining.to_string())
            .header("RateLimit-Reset", reset.to_string());
    }
    Ok(response)
}

/// `/limit`'s body: `{"allowed": ..., "in_window": ...}`.
fn limit_json(allowed: bool, in_window: usize) -> Json {
    Json::object([
        ("allowed", Json::Bool(allowed)),
        ("in_window", Json::int(in_window as u64)),
    ])
}

/// The `Retry-After` value for a refusal at `now` (`wall`) whose slot frees after `wait`, and
/// the end of the pause it announces: delay-seconds of `wait` rounded up (at least 1), or the
/// HTTP-date of `wall + wait` rounded up to a whole second, or neither.
fn retry_after(
    form: RetryAfter,
    wait: Duration,
    now: Instant,
    wall: SystemTime,
) -> (Option<String>, Option<PauseEnd>) {
    match form {
        RetryAfter::Secs => {
            let secs = ceil_secs(wait).max(1);
            let end = now + Duration::from_secs(secs);
            (Some(secs.to_string()), Some(PauseEnd::Instant(end)))
        }
        RetryAfter::Date => {
            let date = ceil_to_second(wall + wait);
            (Some(http_date(date)), Some(PauseEnd::Date(date)))
        }
        RetryAfter::None => (None, None),
    }
}

/// `/flaky/{n}`: fails the first `n` requests with the same `key`, then answers 200 with the
/// attempt's number.
fn flaky(shared: &Shared, req: &Request, n: &str) -> Result<Answer, Response> {
    let failures: u64 = n
        .parse()
        .map_err(|_| bad_request(&format!("invalid failure count: {n:?}")))?;
    let failure = flaky_failure(req)?;
    let retry_after: Option<u64> = arg(req, "retry_after")?;
    let key = req.arg("key").unwrap_or_default();
    let attempt = {
        let mut counts = shared.polite.flaky.borrow_mut();
        let count = counts.entry(key).or_insert(0);
        *count += 1;
        *count
    };
    if attempt > failures {
        let body = Json::object([("attempt", Json::int(attempt))]);
        return Ok(Answer::Respond(Response::json(200, &body)));
    }
    shared.count(Event::FlakyFailure);
    Ok(match failure {
        Failure::Reset => Answer::Drop(Next::Reset),
        Failure::Close => Answer::Drop(Next::Close),
        Failure::Status(status) => {
            let text = format!("flaky: attempt {attempt} of {failures} failing\n");
            let response = Response::text(status, &text);
            Answer::Respond(match retry_after {
                Some(secs) => response.header("Retry-After", secs.to_string()),
                None => response,
            })
        }
    })
}

/// How `/flaky` fails, from its `fail` and `status` arguments; 400 if invalid.
fn flaky_failure(req: &Request) -> Result<Failure, Response> {
    match req.arg("fail").as_deref() {
        Some("reset") => return Ok(Failure::Reset),
        Some("close") => return Ok(Failure::Close),
        Some(_) => return Err(bad_request("fail is reset or close")),
        None => {}
    }
    let status = arg(req, "status")?.unwrap_or(503);
    if !(400..=599).contains(&status) {
        return Err(bad_request("status must be 400 to 599"));
    }
    Ok(Failure::Status(status))
}

/// `/robots.txt`: the configured document, else [`DEFAULT_ROBOTS_TXT`]; every request counts.
fn robots(shared: &Shared, req: &Request) -> Result<Response, Response> {
    shared.count(Event::RobotsFetch);
    if req.method != "GET" && req.method != "HEAD" {
        return Err(Response::text(405, "method not allowed\n").header("Allow", "GET, HEAD"));
    }
    Ok(match &shared.config.robots_txt {
        Some(robots) => {
            Response::new(robots.status).body(&robots.content_type, robots.body.clone())
        }
        None => Response::text(200, DEFAULT_ROBOTS_TXT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAN: Duration = Duration::from_millis(500);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The window admits `limit` requests, refuses the next without keeping it, and admits
    /// again once the oldest has left.
    #[test]
    fn window_slides() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.admit(t0, 2, SPAN).in_window, 1);
        let second = w.admit(t0 + ms(100), 2, SPAN);
        assert!(second.admitted);
        assert_eq!((second.remaining, second.wait), (0, ms(400)));
        let refused = w.admit(t0 + ms(200), 2, SPAN);
        assert!(!refused.admitted);
        assert_eq!((refused.in_window, refused.wait), (2, ms(300)));
        let later = w.admit(t0 + SPAN, 2, SPAN);
        assert!(later.admitted, "the first request has left");
        assert_eq!((later.in_window, later.wait), (2, ms(100)));
    }

    /// With more requests in the window than the limit (an earlier, larger `n` for the same
    /// key), the wait is until enough have left; a limit of 0 refuses for the whole span.
    #[test]
    fn wait_for_slot_over_limit() {
        let t0 = Instant::now();
        let mut w = Window::default();
        for i in 0..4 {
            assert!(w.admit(t0 + ms(i * 10), 4, SPAN).admitted);
        }
        let refused = w.admit(t0 + ms(50), 2, SPAN);
        assert!(!refused.admitted);
        assert_eq!(refused.wait, ms(470), "until the third request leaves");
        assert_eq!(w.admit(t0 + ms(50), 0, SPAN).wait, SPAN);
    }

    /// Delay-seconds round up and are at least 1; dates round up to a whole second.
    #[test]
    fn retry_after_forms() {
        let (now, wall) = (
            Instant::now(),
            UNIX_EPOCH + Duration::from_millis(784_111_777_250),
        );
        let (secs, end) = retry_after(RetryAfter::Secs, ms(1), now, wall);
        assert_eq!(secs.as_deref(), Some("1"));
        assert!(matches!(end, Some(PauseEnd::Instant(t)) if t == now + Duration::from_secs(1)));
        assert_eq!(
            retry_after(RetryAfter::Secs, ms(1001), now, wall).0,
            Some("2".to_string())
        );
        let (date, end) = retry_after(RetryAfter::Date, ms(500), now, wall);
        assert_eq!(date.as_deref(), Some("Sun, 06 Nov 1994 08:49:38 GMT"));
        let announced = UNIX_EPOCH + Duration::from_secs(784_111_778);
        assert!(matches!(end, Some(PauseEnd::Date(t)) if t == announced));
        assert_eq!(
            retry_after(RetryAfter::None, ms(500), now, wall),
            (None, None)
        );
    }

    /// A pause lasts until its end, then is forgotten.
    #[test]
    fn early_until_the_pause_ends() {
        let (t0, wall) = (Instant::now(), SystemTime::now());
        let mut w = Window {
            paused_until: Some(PauseEnd::Instant(t0 + SPAN)),
            ..Window::default()
        };
        let none = Duration::ZERO;
        assert!(w.early(t0, wall, none));
        assert!(w.early(t0 + ms(499), wall, none));
        assert!(!w.early(t0 + SPAN, wall, none));
        assert!(w.paused_until.is_none());
        w.paused_until = Some(PauseEnd::Date(wall + SPAN));
        assert!(w.early(t0, wall, none));
        assert!(!w.early(t0, wall + SPAN, none));
    }

    /// Requests within the grace after an announcement were on their way: not early.
    #[test]
    fn no_early_within_the_grace() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let mut w = Window::default();
        w.announce(PauseEnd::Instant(t0 + SPAN), t0);
        // A later refusal during the same pause does not restart the grace.
        w.announce(PauseEnd::Instant(t0 + SPAN + ms(50)), t0 + ms(50));
        assert!(!w.early(t0 + ms(100), wall, ms(100)));
        assert!(w.early(t0 + ms(101), wall, ms(100)));
    }
}
