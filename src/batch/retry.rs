//! When a batch tries a request again, and how long it waits first: [`RetryPolicy`], the
//! reasons ([`RetryReason`]), the record of each attempt ([`Attempt`]), full-jitter
//! exponential backoff, and the reading of `Retry-After`.
//!
//! Pure rules, no I/O: the scheduler of `batch/scheduler.rs` asks them after every attempt.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode};

use crate::http::error::{Error, Kind, Phase};

/// Which failed attempts a batch tries again, how often, and how long it waits in between.
/// Set with [`Batch::retry`](crate::batch::Batch::retry).
///
/// The default retries an idempotent request (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) up to
/// twice when it could not connect, when the connection was reset or closed before the whole
/// response head came, when a deadline passed, or on 429, 502, 503 and 504. It waits a
/// full-jitter exponential backoff between attempts (a random time from zero to
/// `base × 2^n`, at most `cap`; 200 ms base, 10 s cap), or what a 429 or 503 said in its
/// `Retry-After`. A 429 or 503 with a valid `Retry-After` is the host's pause rather than a
/// failure of the request: waiting it out does not spend a retry, up to
/// [`max_server_waits`](Self::max_server_waits) times. A request whose body is a stream is
/// never retried: it can be sent once.
///
/// Retries of one host are also held to a **budget**: over the last 10 seconds, at most 20 %
/// as many retries as first attempts, and at least 10, so that a dying host is not hammered.
/// A retry the server asked for with a valid `Retry-After` is not charged: the host's pause
/// already keeps the batch off it.
///
/// ```
/// use std::time::Duration;
/// use volley::batch::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_retries(4)
///     .status(500, true)     // retry 500 too
///     .status(502, false)    // but not 502
///     .backoff(Duration::from_millis(50), Duration::from_secs(2));
/// assert_eq!(policy.get_max_retries(), 4);
/// assert!(policy.retries_status(500) && !policy.retries_status(502));
/// assert_eq!(RetryPolicy::never().get_max_retries(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    max_retries: u32,
    max_waits: u32,
    /// One bit per status code 100..=599, from 100.
    statuses: [u64; 8],
    on_connect: bool,
    on_reset: bool,
    on_timeout: bool,
    /// One bit per method of [`METHODS`].
    methods: u16,
    base: Duration,
    cap: Duration,
    budget_ratio: f64,
    budget_min: u32,
}

/// The methods a policy can name, by bit.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::OPTIONS,
    Method::TRACE,
    Method::PUT,
    Method::DELETE,
    Method::POST,
    Method::PATCH,
    Method::CONNECT,
];

/// The idempotent methods of RFC 9110 §9.2.2: the first six of [`METHODS`].
const IDEMPOTENT: u16 = 0b11_1111;

/// The window over which a host's retry budget is counted.
pub(crate) const BUDGET_WINDOW: Duration = Duration::from_secs(10);

fn method_bit(method: &Method) -> Option<u16> {
    METHODS.iter().position(|m| m == method).map(|i| 1 << i)
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        let mut policy = RetryPolicy {
            max_retries: 2,
            max_waits: 10,
            statuses: [0; 8],
            on_connect: true,
            on_reset: true,
            on_timeout: true,
            methods: IDEMPOTENT,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            budget_ratio: 0.2,
            budget_min: 10,
        };
        for code in [429, 502, 503, 504] {
            policy = policy.status(code, true);
        }
        policy
    }
}

impl RetryPolicy {
    /// A policy that never retries, not even when the server says when to.
    pub fn never() -> RetryPolicy {
        RetryPolicy::default().max_retries(0).max_server_waits(0)
    }

    /// The most retries of one request, after its first attempt (default 2).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The most times one request waits out a server's valid `Retry-After` on a 429 or 503
    /// and goes again (default 10). These waits are not failures of the request but the
    /// host's pause, which the requests already on their way when it began run into too;
    /// so they do not spend its [`max_retries`](Self::max_retries).
    pub fn max_server_waits(mut self, n: u32) -> Self {
        self.max_waits = n;
        self
    }

    /// Whether a response with status `code` (100 to 599) is retried. Default: 429, 502,
    /// 503 and 504. Codes out of range are ignored.
    pub fn status(mut self, code: u16, retry: bool) -> Self {
        if let Some(bit) = code.checked_sub(100).filter(|b| *b < 500) {
            let (word, bit) = (usize::from(bit / 64), bit % 64);
            if retry {
                self.statuses[word] |= 1 << bit;
            } else {
                self.statuses[word] &= !(1 << bit);
            }
        }
        self
    }

    /// Whether a request that could not connect (refused, unreachable, no address answered)
    /// is retried (default `true`).
    pub fn on_connect_error(mut self, retry: bool) -> Self {
        self.on_connect = retry;
        self
    }

    /// Whether a request whose connection was reset or closed before the response head
    /// was whole is retried (default `true`).
    pub fn on_reset(mut self, retry: bool) -> Self {
        self.on_reset = retry;
        self
    }

    /// Whether a request whose deadline passed (connect, head, body or total) is retried
    /// (default `true`). A queue timeout is never retried.
    pub fn on_timeout(mut self, retry: bool) -> Self {
        self.on_timeout = retry;
        self
    }

    /// Whether requests of `method` are retried. Default: the idempotent methods (GET, HEAD,
    /// OPTIONS, TRACE, PUT, DELETE); POST, PATCH and CONNECT can be allowed here. Other
    /// methods are never retried.
    pub fn method(mut self, method: &Method, retry: bool) -> Self {
        if let Some(bit) = method_bit(method) {
            if retry {
                self.methods |= bit;
            } else {
                self.methods &= !bit;
            }
        }
        self
    }

    /// The backoff: before retry `n` (from 0), a random wait between zero and
    /// `min(cap, base × 2^n)` ("full jitter"). Default 200 ms and 10 s.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.base = base;
        self.cap = cap.max(base);
        self
    }

    /// The retry budget of each host: over the last 10 seconds, at most `ratio` times as
    /// many retries as first attempts, and at least `min`. Default 0.2 and 10.
    pub fn budget(mut self, ratio: f64, min: u32) -> Self {
        self.budget_ratio = if ratio.is_finite() {
            ratio.max(0.0)
        } else {
            0.0
        };
        self.budget_min = min;
        self
    }

    /// The most retries of one request.
    pub fn get_max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Whether a request that went through `attempts` may go again, after an attempt that
    /// got a valid `Retry-After` (`told_when`) or not.
    pub(crate) fn may_retry(&self, attempts: &[Attempt], told_when: bool) -> bool {
        let waits = attempts.iter().filter(|a| a.retry_after.is_some()).count() as u32;
        let retries = attempts.len() as u32 - waits;
        match told_when {
            true => waits < self.max_waits,
            false => retries < self.max_retries,
        }
    }

    /// True if responses of status `code` are retried.
    pub fn retries_status(&self, code: u16) -> bool {
        match code.checked_sub(100).filter(|b| *b < 500) {
            Some(bit) => self.statuses[usize::from(bit / 64)] & (1 << (bit % 64)) != 0,
            None => false,
        }
    }

    /// True if requests of `method` may be retried.
    pub fn retries_method(&self, method: &Method) -> bool {
        method_bit(method).is_some_and(|bit| self.methods & bit != 0)
    }

    /// Why an attempt that ended with `status` should be retried, if it should.
    pub(crate) fn for_status(&self, status: StatusCode) -> Option<RetryReason> {
        self.retries_status(status.as_u16())
            .then_some(RetryReason::Status(status))
    }

    /// Why an attempt that ended with `error` should be retried, if it should.
    pub(crate) fn for_error(&self, error: &Error) -> Option<RetryReason> {
        match error.kind() {
            Kind::Connect if self.on_connect => Some(RetryReason::Connect),
            Kind::Io(phase @ (Phase::Connect | Phase::Tls | Phase::Send | Phase::ReadHead))
                if self.on_reset =>
            {
                Some(RetryReason::Reset(*phase))
            }
            Kind::Timeout { phase, .. } if self.on_timeout && *phase != Phase::Queue => {
                Some(RetryReason::Timeout(*phase))
            }
            _ => None,
        }
    }

    /// The backoff's base: the shortest pause of a host told to wait without a time.
    pub(crate) fn base(&self) -> Duration {
        self.base
    }

    /// The backoff before retry `n` (from 0), given a random number in `[0, 1)`.
    pub(crate) fn backoff_for(&self, n: u32, random: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX))
            .min(self.cap);
        ceiling.mul_f64(random.clamp(0.0, 1.0))
    }

    /// How many retries a host may start now, with `firsts` first attempts and `retries`
    /// retries in the budget window.
    pub(crate) fn budget_allows(&self, firsts: u64, retries: u64) -> bool {
        let allowed = (firsts as f64 * self.budget_ratio).floor() as u64;
        retries < allowed.max(u64::from(self.budget_min))
    }
}

/// Why an attempt was tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// The response had this status (429, 503, ... as the policy says).
    Status(StatusCode),
    /// No connection could be made.
    Connect,
    /// The connection was reset or closed in this phase, before the response head was whole.
    Reset(Phase),
    /// A deadline passed in this phase.
    Timeout(Phase),
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::Status(status) => write!(f, "status {}", status.as_u16()),
            RetryReason::Connect => f.write_str("connect error"),
            RetryReason::Reset(phase) => write!(f, "connection lost ({phase:?})"),
            RetryReason::Timeout(phase) => write!(f, "timeout ({phase:?})"),
        }
    }
}

/// One attempt of a request that was tried again: why, and how long the batch waited
/// before the next. In [`FetchResult::attempts`](crate::batch::FetchResult::attempts); the
/// last attempt is the result's outcome itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// Why it was tried again.
    pub reason: RetryReason,
    /// The server's `Retry-After`, when it gave a valid one.
    pub retry_after: Option<Duration>,
    /// The wait before the next attempt: the backoff, or the host's pause.
    pub wait: Duration,
}

/// What a response's `Retry-After` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryAfter {
    /// No header, or one that is not valid (garbage, negative, a date in the past): the
    /// backoff applies.
    Absent,
    /// Wait this long.
    After(Duration),
}

/// Reads `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, against `now`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> RetryAfter {
    let Some(value) = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    else {
        return RetryAfter::Absent;
    };
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // At most a day's worth of digits matters; longer numbers saturate.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return RetryAfter::After(Duration::from_secs(secs));
    }
    match httpdate::parse_http_date(value) {
        Ok(date) => match date.duration_since(now) {
            Ok(wait) if !wait.is_zero() => RetryAfter::After(wait),
            _ => RetryAfter::Absent, // in the past
        },
        Err(_) => RetryAfter::Absent,
    }
}

/// A small, fast random source for jitter: xorshift64*, seeded from the standard library's
/// per-process random hasher keys.
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Default for Jitter {
    fn default() -> Jitter {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        Jitter(hasher.finish() | 1)
    }
}

impl Jitter {
    /// A number in `[0, 1)`.
    pub(crate) fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let secs = |v| retry_after(&headers(v), now);
        assert_eq!(secs("120"), RetryAfter::After(Duration::from_secs(120)));
        assert_eq!(secs(" 0 "), RetryAfter::After(Duration::ZERO));
        assert_eq!(secs("-5"), RetryAfter::Absent);
        assert_eq!(secs("1.5"), RetryAfter::Absent);
        assert_eq!(secs("soon"), RetryAfter::Absent);
        assert_eq!(secs(""), RetryAfter::Absent);
        assert_eq!(
            secs("99999999999999999999999"),
            RetryAfter::After(Duration::from_secs(u64::MAX))
        );
        // The three date forms of RFC 9110 §5.6.7.
        for date in [
            "Sun, 06 Nov 1994 08:49:47 GMT",
            "Sunday, 06-Nov-94 08:49:47 GMT",
            "Sun Nov  6 08:49:47 1994",
        ] {
            assert_eq!(
                secs(date),
                RetryAfter::After(Duration::from_secs(10)),
                "{date}"
            );
        }
        assert_eq!(secs("Sun, 06 Nov 1994 08:49:37 GMT"), RetryAfter::Absent); // now
        assert_eq!(secs("Sun, 06 Nov 1994 08:40:00 GMT"), RetryAfter::Absent); // past
        assert_eq!(retry_after(&HeaderMap::new(), now), RetryAfter::Absent);
    }

    #[test]
    fn default_policy() {
        let p = RetryPolicy::default();
        for code in [429, 502, 503, 504] {
            assert!(p.retries_status(code), "{code}");
        }
        for code in [200, 404, 500, 501, 99, 600, 0, u16::MAX] {
            assert!(!p.retries_status(code), "{code}");
        }
        assert!(p.retries_method(&Method::GET) && p.retries_method(&Method::DELETE));
        assert!(!p.retries_method(&Method::POST));
        assert!(p.method(&Method::POST, true).retries_method(&Method::POST));
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert!(!p.method(&custom, true).retries_method(&custom));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy::default().backoff(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(
            p.backoff_for(0, 0.999_999),
            Duration::from_millis(100).mul_f64(0.999_999)
        );
        assert_eq!(p.backoff_for(3, 0.5), Duration::from_millis(400));
        assert_eq!(p.backoff_for(10, 0.5), Duration::from_millis(500));
        assert_eq!(p.backoff_for(u32::MAX, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff_for(2, 0.0), Duration::ZERO);
        let mut jitter = Jitter::default();
        let draws: Vec<f64> = (0..1000).map(|_| jitter.next()).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    #[test]
    fn budget() {
        let p = RetryPolicy::default();
        assert!(p.budget_allows(0, 9));
        assert!(!p.budget_allows(0, 10));
        assert!(p.budget_allows(100, 19));
        assert!(!p.budget_allows(100, 20));
        let strict = p.budget(0.0, 0);
        assert!(!strict.budget_allows(1000, 0));
    }
}
