//! One host's share of a batch: its queue of jobs (requests and what they went through), its
//! slots, its token bucket, its pause, its retry budget, and its statistics ([`HostStats`]).
//!
//! The host, not the request, is the unit of politeness: a pause or a rate applies to every
//! request of the host, and a request waiting for one holds no slot and no connection. The
//! scheduler of `batch/scheduler.rs` keeps one [`Host`] per scheme, host and port.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use url::Url;

use super::histogram::LatencyHistogram;
use super::retry::{Attempt, BUDGET_WINDOW};
use crate::http::request::Request;

/// A host of a batch: its index in the scheduler's list of hosts.
pub(crate) type HostKey = usize;

/// What a batch counts as one host, for its slots, rate, pause and statistics. Set with
/// [`Batch::hosts`](crate::batch::Batch::hosts).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub enum HostGrouping {
    /// Scheme, host and port: `https://www.example.com:443` (the default; an origin).
    #[default]
    Origin,
    /// The host name alone, whatever the scheme and port: `www.example.com`.
    Name,
    /// The registrable domain ("eTLD+1" by the Public Suffix List): `www.example.co.uk` and
    /// `img.example.co.uk` are both `example.co.uk`. An IP address, or a name with no
    /// registrable domain (`localhost`), stands for itself. (Feature `psl`.)
    #[cfg(feature = "psl")]
    RegistrableDomain,
    /// What this function returns for the URL.
    Custom(fn(&Url) -> String),
}

/// A hash of the parts of `url` that make its key under `grouping`, without building the
/// key (FNV-1a); `None` for the groupings that need the key built.
pub(crate) fn quick_hash(url: &Url, grouping: HostGrouping) -> Option<u64> {
    let name = url.host_str().unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    match grouping {
        HostGrouping::Origin => {
            eat(url.scheme().as_bytes());
            eat(b"\0");
            eat(name.as_bytes());
            eat(&url.port_or_known_default().unwrap_or(0).to_le_bytes());
        }
        HostGrouping::Name => eat(name.as_bytes()),
        _ => return None,
    }
    Some(hash)
}

/// True if `key` is `url`'s key under `grouping` (for the groupings of [`quick_hash`]).
pub(crate) fn is_key_of(key: &str, url: &Url, grouping: HostGrouping) -> bool {
    let name = url.host_str().unwrap_or_default();
    match grouping {
        HostGrouping::Origin => {
            let Some(rest) = key.strip_prefix(url.scheme()) else {
                return false;
            };
            let Some(rest) = rest.strip_prefix("://").and_then(|r| r.strip_prefix(name)) else {
                return false;
            };
            let port = url.port_or_known_default().unwrap_or(0);
            rest.strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p == port)
        }
        HostGrouping::Name => key == name,
        _ => false,
    }
}

/// Which of `shards` loops serves `url`'s host, grouped as `grouping` says: always the same
/// one for a host, so its slots, rate and pause are kept in one place.
pub(crate) fn shard_of(url: &Url, grouping: HostGrouping, shards: usize) -> usize {
    let hash = quick_hash(url, grouping).unwrap_or_else(|| {
        let key = host_key(url, grouping);
        key.bytes().fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    });
    // FNV's low bits vary little between names that differ in one byte: mix them in.
    let mixed = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (mixed % shards.max(1) as u64) as usize
}

/// The key of `url`'s host, grouped as `grouping` says.
pub(crate) fn host_key(url: &Url, grouping: HostGrouping) -> String {
    let name = url.host_str().unwrap_or_default();
    match grouping {
        HostGrouping::Origin => {
            let port = url.port_or_known_default().unwrap_or(0);
            format!("{}://{name}:{port}", url.scheme())
        }
        HostGrouping::Name => name.to_owned(),
        #[cfg(feature = "psl")]
        HostGrouping::RegistrableDomain => match url.host() {
            Some(url::Host::Domain(domain)) => psl::domain_str(domain).unwrap_or(domain).to_owned(),
            _ => name.to_owned(),
        },
        HostGrouping::Custom(key) => key(url),
    }
}

/// A request of the batch and what it has been through.
#[derive(Debug)]
pub(crate) struct Job {
    /// Its position in the batch's input.
    pub(crate) index: usize,
    pub(crate) request: Request,
    pub(crate) host: HostKey,
    /// The attempts before this one that were tried again.
    pub(crate) attempts: Vec<Attempt>,
    /// How many times it went back for want of a descriptor.
    pub(crate) exhausted: u32,
    /// Its fingerprint, when the batch looks for duplicates.
    pub(crate) fingerprint: Option<u64>,
}

/// A request rate with a burst: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    /// Tokens added per second.
    pub(crate) per_s: f64,
    /// The most tokens the bucket holds.
    pub(crate) burst: f64,
}

/// What a host may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// A request may start.
    Open,
    /// Every slot is taken: a finishing request opens it.
    Full,
    /// Not before this instant (a pause, or no token yet).
    Until(Instant),
}

/// One host's state. See the module docs.
#[derive(Debug)]
pub(crate) struct Host {
    /// Its key: `scheme://host:port` by default.
    pub(crate) name: String,
    /// Requests waiting for this host, in order; retries go first.
    pub(crate) queue: VecDeque<Job>,
    pub(crate) in_flight: usize,
    /// The token bucket, when the host has a rate: tokens, and when they were counted.
    tokens: f64,
    counted: Instant,
    pub(crate) rate: Option<Rate>,
    /// No request starts before this instant.
    pub(crate) paused_until: Option<Instant>,
    /// Pauses in a row without a success between them: the exponent of the next backoff.
    pub(crate) pauses_in_a_row: u32,
    /// The retry budget: first attempts and retries decided per second, for the last
    /// [`BUDGET_WINDOW`], oldest first, with the second each counts.
    budget: VecDeque<(Instant, u64, u64)>,
    /// True while the host is in the scheduler's list of hosts to look at.
    pub(crate) listed: bool,
    /// True while the host is in the scheduler's list of paused hosts.
    pub(crate) in_paused: bool,
    pub(crate) stats: HostStats,
}

impl Host {
    pub(crate) fn new(name: String, rate: Option<Rate>, now: Instant) -> Host {
        Host {
            name,
            queue: VecDeque::new(),
            in_flight: 0,
            tokens: rate.map_or(0.0, |r| r.burst),
            counted: now,
            rate,
            paused_until: None,
            pauses_in_a_row: 0,
            budget: VecDeque::new(),
            listed: false,
            in_paused: false,
            stats: HostStats::default(),
        }
    }

    /// Whether a request may start now, with at most `per_host` in flight.
    pub(crate) fn gate(&mut self, per_host: Option<usize>, now: Instant) -> Gate {
        if let Some(until) = self.paused_until {
            if now < until {
                return Gate::Until(until);
            }
            self.paused_until = None;
        }
        if per_host.is_some_and(|max| self.in_flight >= max) {
            return Gate::Full;
        }
        if let Some(rate) = self.rate {
            self.refill(rate, now);
            if self.tokens < 1.0 {
                let wait = (1.0 - self.tokens) / rate.per_s;
                return Gate::Until(now + Duration::from_secs_f64(wait.min(86_400.0)));
            }
        }
        Gate::Open
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.counted).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_s).min(rate.burst);
        self.counted = now;
    }

    /// Takes a slot and a token for a request that starts now; `retry` if it is one (its
    /// budget was charged when it was decided).
    pub(crate) fn start(&mut self, retry: bool, now: Instant) {
        self.in_flight += 1;
        if self.rate.is_some() {
            self.tokens -= 1.0;
        }
        self.stats.requests += 1;
        if !retry {
            self.count(now, |firsts, _| *firsts += 1);
        }
    }

    /// Charges a retry decided now to the budget.
    pub(crate) fn charge_retry(&mut self, now: Instant) {
        self.count(now, |_, retries| *retries += 1);
    }

    /// Adds to the budget's counts of the second of `now`.
    fn count(&mut self, now: Instant, add: impl FnOnce(&mut u64, &mut u64)) {
        let fresh = self
            .budget
            .back()
            .is_none_or(|&(at, _, _)| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if fresh {
            self.budget.push_back((now, 0, 0));
        }
        if let Some((_, firsts, retries)) = self.budget.back_mut() {
            add(firsts, retries);
        }
    }

    /// First attempts and retries started over the budget window before `now`.
    pub(crate) fn budget_counts(&mut self, now: Instant) -> (u64, u64) {
        while self
            .budget
            .front()
            .is_some_and(|&(at, _, _)| now.saturating_duration_since(at) >= BUDGET_WINDOW)
        {
            self.budget.pop_front();
        }
        self.budget
            .iter()
            .fold((0, 0), |(f, r), &(_, first, retry)| (f + first, r + retry))
    }

    /// Pauses the host until `until` (or longer, if it already is), counting the time.
    pub(crate) fn pause(&mut self, until: Instant, now: Instant) {
        let from = self.paused_until.map_or(now, |p| p.max(now));
        if until > from {
            self.stats.paused += until - from;
            self.paused_until = Some(until);
        }
    }

    /// Slows the host to `rate` if it has none or a faster one (a robots.txt crawl delay).
    pub(crate) fn limit_rate(&mut self, rate: Rate) {
        match self.rate {
            // A host without a rate may start one request at once.
            None => {
                self.tokens = rate.burst;
                self.counted = Instant::now();
            }
            Some(r) if r.per_s > rate.per_s => self.tokens = self.tokens.min(rate.burst),
            Some(_) => return,
        }
        self.rate = Some(rate);
    }

    /// Adopts `rate`, which the server advertised (`RateLimit-Policy`), if the host has no
    /// lower one. The requests still in flight and the one that brought the header have
    /// spent the server's quota too, so they spend tokens now.
    pub(crate) fn adopt_rate(&mut self, rate: Rate, now: Instant) {
        if let Some(current) = self.rate {
            if current.per_s <= rate.per_s {
                return;
            }
            self.refill(current, now);
        }
        let tokens = match self.rate {
            Some(_) => self.tokens.min(rate.burst),
            None => rate.burst,
        };
        self.tokens = tokens - 1.0 - self.in_flight as f64;
        self.counted = now;
        self.rate = Some(rate);
    }

    /// Halves the host's rate (adaptive throttling), down to one request a minute; a host
    /// without a rate gets one of `observed` requests per second, halved.
    pub(crate) fn slow_down(&mut self, observed: f64, now: Instant) {
        let per_s = self.rate.map_or(observed, |r| r.per_s) / 2.0;
        let per_s = per_s.max(1.0 / 60.0);
        self.rate = Some(Rate { per_s, burst: 1.0 });
        self.tokens = self.tokens.min(1.0);
        self.counted = now;
    }

    /// Raises the host's rate back by 5 %, up to `ceiling` (the batch's rate; `None`: the
    /// host's rate is lifted once it passes `lift_at` requests per second).
    pub(crate) fn speed_up(&mut self, ceiling: Option<Rate>, lift_at: f64) {
        let Some(rate) = self.rate else { return };
        let per_s = rate.per_s * 1.05;
        self.rate = match ceiling {
            Some(c) if per_s >= c.per_s => Some(c),
            Some(_) => Some(Rate { per_s, ..rate }),
            None if per_s >= lift_at => None,
            None => Some(Rate { per_s, ..rate }),
        };
    }
}

/// What one host of a batch saw: in [`BatchSummary::hosts`](crate::batch::BatchSummary).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HostStats {
    /// Attempts sent (first attempts and retries).
    pub requests: u64,
    /// Requests that ended with a response (any status), after their retries.
    pub ok: u64,
    /// Requests that ended in an error, after their retries.
    pub failed: u64,
    /// Responses of every attempt, by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Attempts tried again.
    pub retries: u64,
    /// 429 Too Many Requests responses.
    pub throttled: u64,
    /// How long the host was paused (by `Retry-After`, a backoff, or robots.txt).
    pub paused: Duration,
    /// Time spent on attempts of this host, summed: their total latencies.
    pub busy: Duration,
    /// The latency of each attempt that got a response.
    pub latency: LatencyHistogram,
}

impl HostStats {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &HostStats) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.failed += other.failed;
        for (&status, &n) in &other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.retries += other.retries;
        self.throttled += other.throttled;
        self.paused += other.paused;
        self.busy += other.busy;
        self.latency.merge(&other.latency);
    }
}

impl fmt::Display for HostStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} ok, {} failed, {} retries, {} throttled, paused {:.1} s, p50 {:?}",
            self.requests,
            self.ok,
            self.failed,
            self.retries,
            self.throttled,
            self.paused.as_secs_f64(),
            self.latency.quantile(0.5)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groupings() {
        let url = Url::parse("https://img.example.co.uk/a.png").unwrap();
        assert_eq!(
            host_key(&url, HostGrouping::Origin),
            "https://img.example.co.uk:443"
        );
        assert_eq!(host_key(&url, HostGrouping::Name), "img.example.co.uk");
        #[cfg(feature = "psl")]
        {
            let domain =
                |u: &str| host_key(&Url::parse(u).unwrap(), HostGrouping::RegistrableDomain);
            assert_eq!(domain("https://img.example.co.uk/"), "example.co.uk");
            assert_eq!(domain("http://www.example.co.uk:8080/"), "example.co.uk");
            assert_eq!(domain("http://127.0.0.1:8080/"), "127.0.0.1");
            assert_eq!(domain("http://[::1]/"), "[::1]");
            assert_eq!(domain("http://localhost/"), "localhost");
        }
        let custom = HostGrouping::Custom(|u| u.scheme().to_owned());
        assert_eq!(host_key(&url, custom), "https");
        // The quick check agrees with the key it stands for.
        for grouping in [HostGrouping::Origin, HostGrouping::Name] {
            let key = host_key(&url, grouping);
            assert!(is_key_of(&key, &url, grouping), "{key}");
            assert!(quick_hash(&url, grouping).is_some());
            let other = Url::parse("https://img.example.co.uk:8443/").unwrap();
            assert_eq!(
                is_key_of(&key, &other, grouping),
                matches!(grouping, HostGrouping::Name)
            );
        }
        assert_eq!(quick_hash(&url, custom), None);
    }

    #[test]
    fn token_bucket_spaces_requests() {
        let t0 = Instant::now();
        let rate = Rate {
            per_s: 10.0,
            burst: 2.0,
        };
        let mut host = Host::new("h".into(), Some(rate), t0);
        assert_eq!(host.gate(None, t0), Gate::Open);
        host.start(false, t0);
        assert_eq!(host.gate(None, t0), Gate::Open);
        host.start(false, t0);
        // The burst is spent: the next token comes 100 ms later.
        assert_eq!(
            host.gate(None, t0),
            Gate::Until(t0 + Duration::from_millis(100))
        );
        let later = t0 + Duration::from_millis(100);
        assert_eq!(host.gate(None, later), Gate::Open);
        // Idle time refills at most the burst.
        let much_later = t0 + Duration::from_secs(60);
        assert_eq!(host.gate(None, much_later), Gate::Open);
        host.start(false, much_later);
        host.start(false, much_later);
        assert!(matches!(host.gate(None, much_later), Gate::Until(_)));
    }

    #[test]
    fn pause_slots_and_budget() {
        let t0 = Instant::now();
        let mut host = Host::new("h".into(), None, t0);
        host.pause(t0 + Duration::from_secs(2), t0);
        host.pause(t0 + Duration::from_secs(1), t0); // shorter: no change
        assert_eq!(
            host.gate(None, t0),
            Gate::Until(t0 + Duration::from_secs(2))
        );
        assert_eq!(host.stats.paused, Duration::from_secs(2));
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(host.gate(Some(1), t2), Gate::Open);
        host.start(false, t2);
        assert_eq!(host.gate(Some(1), t2), Gate::Full);
        host.start(true, t2);
        assert_eq!(host.budget_counts(t2), (1, 0));
        host.charge_retry(t2);
        assert_eq!(host.budget_counts(t2), (1, 1));
        assert_eq!(host.budget_counts(t2 + BUDGET_WINDOW), (0, 0));
    }

    #[test]
    fn adaptive_rate_halves_and_recovers() {
        let t0 = Instant::now();
        let mut host = Host::new("h".into(), None, t0);
        host.slow_down(40.0, t0);
        assert_eq!(host.rate.map(|r| r.per_s), Some(20.0));
        host.slow_down(40.0, t0);
        assert_eq!(host.rate.map(|r| r.per_s), Some(10.0));
        for _ in 0..100 {
            host.speed_up(None, 40.0);
        }
        assert_eq!(host.rate, None);
    }
}
