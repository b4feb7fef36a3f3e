//! Fetching many URLs at once: [`Client::fetch_all`] and its [`Batch`].
//!
//! ```
//! use volley::{Client, Runtime};
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
//!     let urls: Vec<String> = (0..20).map(|i| server.url(&format!("/delay/0.05?i={i}"))).collect();
//!
//!     let report = Client::new()
//!         .fetch_all(urls)
//!         .concurrency(10)
//!         .per_host(4)
//!         .run()
//!         .await;
//!     assert_eq!(report.summary.ok, 20);
//!     for result in &report.results {
//!         assert_eq!(result.outcome.as_ref().unwrap().status, 200); // in input order
//!     }
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Admission: the host scheduler
//!
//! Requests are taken from the input lazily, in order, and start while fewer than
//! [`concurrency`](Batch::concurrency) are in flight. The **host** (scheme, host and port) is
//! the unit of politeness: each has its own slots ([`per_host`](Batch::per_host)), its own
//! token bucket ([`rate`](Batch::rate)) and its own pause. A request starts only when its host
//! has a free slot, a token and no pause; until then it waits in the host's queue, holding no
//! slot and no connection, while requests of other hosts go ahead. Hosts with waiting
//! requests are served round-robin. At most [`max_waiting`](Batch::max_waiting) requests
//! wait at once: the input is read no further until some start, so memory stays flat
//! however long the input is. Nothing fails for waiting, unless it waits longer than the
//! [`queue_timeout`](Batch::queue_timeout), which is separate from the request's own timeout:
//! time in the queue is not charged to the request.
//!
//! # Retries, pauses and rate limits
//!
//! A failed attempt is tried again as its [`RetryPolicy`] says ([`retry`](Batch::retry);
//! by default idempotent requests, up to twice, on connect errors, resets before the
//! response head, timeouts and 429/502/503/504), after a full-jitter exponential backoff,
//! and each retry goes back through its host's queue. Retries of a host are held to a budget
//! (20 % of its first attempts over 10 s, at least 10), so a dying host is not hammered.
//! [`FetchResult::attempts`] records each attempt that was tried again, and why.
//!
//! A **429 or 503 pauses its whole host**: for its `Retry-After` (delay-seconds or an
//! HTTP-date), or for the backoff when it has none or an invalid one (negative, garbage, a
//! date in the past). The host's waiting requests, retries included, start again when the
//! pause ends. A pause longer than [`max_retry_after`](Batch::max_retry_after) (default
//! 60 s) fails the requests that would wait for it at once, with
//! [`Kind::RateLimited`] naming the wait asked for. A
//! `RateLimit` header (the IETF draft: `"policy";r=0;t=5`, or the earlier drafts'
//! `RateLimit-Remaining: 0` and `RateLimit-Reset: 5`) that says the quota is spent pauses the
//! host until its reset, before any 429; a `RateLimit-Policy` (`"policy";q=100;w=60`) paces
//! the host evenly under the quota it states. [`adaptive`](Batch::adaptive) throttling
//! (off by default) halves a host's rate on each 429 or 503 and raises it back by 5 % per
//! other response.
//!
//! # robots.txt
//!
//! With [`robots`](Batch::robots), the batch obeys robots.txt (RFC 9309): each origin's file
//! is fetched once, before its first request, while other origins go ahead; disallowed URLs
//! are not fetched, an unreachable file defers its origin, and a `Crawl-delay` becomes the
//! host's rate. See [`robots`](crate::robots).
//!
//! # Duplicates
//!
//! A request equal to an earlier one of the input (method, URL, headers, no body) is not
//! fetched again but reported as a [`Duplicate`](crate::ErrorKind::Duplicate); with
//! [`Duplicates::Share`] identical requests in flight at once are fetched once and share the
//! result; [`Duplicates::Fetch`] fetches everything (load tests). See
//! [`duplicates`](Batch::duplicates).
//!
//! # Descriptors
//!
//! The batch is descriptor-aware. At start it raises the soft `RLIMIT_NOFILE` to the hard
//! limit (once per process, see [`raise_fd_limit`](crate::raise_fd_limit)) and keeps the
//! concurrency under the descriptors left. If a connect still fails for want of a descriptor
//! or a local port (`EMFILE`, `ENFILE`, `EADDRNOTAVAIL`), the request goes back to the front
//! of its host's queue and the concurrency drops to what is in flight, then grows back by one
//! per success: the batch slows down instead of failing.
//!
//! # Results
//!
//! [`run`](Batch::run) returns every [`FetchResult`] in input order with a [`BatchSummary`];
//! [`stream`](Batch::stream) yields them as they complete (asyncio's `as_completed`). Each
//! result holds the response (status, headers, body) or the error, its [`Timings`] and its
//! attempts. A failure never affects the other requests. The summary ends with each host's
//! [`HostStats`] (requests, statuses, retries, 429s, time paused, latency percentiles);
//! [`BatchSummary::top_hosts`] ranks them by time spent.
//!
//! The files: `mod.rs` (the batch and its stream), `scheduler.rs` (which waiting request
//! starts next), `host.rs` (a host's queue of jobs, slots, token bucket, pause, budget and
//! statistics), `retry.rs` (the retry rules, backoff and `Retry-After`), `histogram.rs`
//! (latencies), `source.rs` (the input: an iterator, or one loop's share of a threaded
//! batch).

mod histogram;
mod host;
mod retry;
mod scheduler;
mod slots;
mod source;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::{poll_fn, Future};
use std::hash::BuildHasherDefault;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};
use url::Url;

pub use histogram::LatencyHistogram;
pub(crate) use host::{host_key, shard_of};
pub use host::{HostGrouping, HostStats};
pub use retry::{Attempt, RetryPolicy, RetryReason};

use host::{HostKey, Job, Rate};
use retry::{retry_after, Jitter, RetryAfter};
use scheduler::{Next, Scheduler};
pub(crate) use slots::SharedSlots;
pub(crate) use source::Source;

use crate::http::client::Client;
use crate::http::error::{Error, Kind, Phase};
use crate::http::request::{IntoUrl, Request};
use crate::http::timings::{Clock, Timings};
use crate::net::fdlimit;
use crate::robots::{RobotsCache, RobotsStatus, RobotsVerdict};
use crate::rt::{sleep_until, JoinHandle, Sleep};

/// Descriptors kept free for everything that is not a batch request.
const FD_RESERVE: u64 = 64;

/// How long a request waits before retrying when no descriptor or port is free and nothing
/// in flight will free one.
const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(50);

/// How many times one request waits for a descriptor before its error is reported.
const MAX_EXHAUSTED_RETRIES: u32 = 200;

/// The progress callback.
type ProgressFn = Box<dyn FnMut(&Progress)>;

/// Something a batch can fetch: a URL (fetched with GET) or a whole [`Request`].
pub trait IntoRequest {
    /// The request, or why there is none (an invalid URL).
    fn into_request(self) -> Result<Request, Error>;
}

impl<T: IntoUrl> IntoRequest for T {
    fn into_request(self) -> Result<Request, Error> {
        self.into_url()
            .map(|url| Request::new(http::Method::GET, url))
    }
}

impl IntoRequest for Request {
    fn into_request(self) -> Result<Request, Error> {
        Ok(self)
    }
}

/// A request, or the error that stood in its way (reported as that request's result).
impl IntoRequest for Result<Request, Error> {
    fn into_request(self) -> Result<Request, Error> {
        self
    }
}

impl Client {
    /// Starts a batch that fetches every request of `requests`: URLs (GET) or [`Request`]s.
    /// See [`Batch`] for the settings; nothing happens until [`Batch::run`] or
    /// [`Batch::stream`].
    pub fn fetch_all<I>(&self, requests: I) -> Batch<I::IntoIter>
    where
        I: IntoIterator,
        I::Item: IntoRequest,
    {
        Batch {
            client: self.clone(),
            source: requests.into_iter(),
            settings: Settings::default(),
            robots: None,
            on_progress: None,
            slots: None,
        }
    }
}

/// A batch of requests being configured. Made by [`Client::fetch_all`].
#[must_use = "a batch does nothing until .run() or .stream()"]
pub struct Batch<I> {
    client: Client,
    source: I,
    settings: Settings,
    robots: Option<RobotsCache>,
    on_progress: Option<ProgressFn>,
    /// The bound in flight shared with the other loops of a sharded batch.
    slots: Option<Arc<SharedSlots>>,
}

/// A batch's settings, as its setters left them: [`Batch`] and the threaded client's batch
/// both hold one, and the latter hands it to the former on its loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    concurrency: usize,
    per_host: Option<usize>,
    queue_timeout: Option<Duration>,
    keep_bodies: bool,
    rate: Option<Rate>,
    retry: RetryPolicy,
    max_retry_after: Duration,
    adaptive: bool,
    max_waiting: usize,
    duplicates: Duplicates,
    grouping: HostGrouping,
}

/// What a batch does with a request equal to an earlier one of its input (same method, URL
/// and headers, and no body). Set with [`Batch::duplicates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Duplicates {
    /// Not fetched again: its result is an error of kind
    /// [`Duplicate`](crate::ErrorKind::Duplicate), counted in
    /// [`BatchSummary::duplicates`] and not as a failure. The default. The batch remembers a
    /// 64-bit fingerprint of each request, 8 to 16 bytes per distinct request.
    #[default]
    Report,
    /// Identical requests in flight at once are fetched once, and each gets a copy of the
    /// result (single-flight); one that comes after the first has ended is fetched again.
    Share,
    /// Every request is fetched, the same or not (for load tests).
    Fetch,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            concurrency: 100,
            per_host: None,
            queue_timeout: None,
            keep_bodies: true,
            rate: None,
            retry: RetryPolicy::default(),
            max_retry_after: Duration::from_secs(60),
            adaptive: false,
            max_waiting: 10_000,
            duplicates: Duplicates::Report,
            grouping: HostGrouping::Origin,
        }
    }
}

impl Settings {
    pub(crate) fn concurrency(&mut self, n: usize) {
        self.concurrency = n.max(1);
    }

    pub(crate) fn per_host(&mut self, n: usize) {
        self.per_host = Some(n.max(1));
    }

    pub(crate) fn queue_timeout(&mut self, timeout: Duration) {
        self.queue_timeout = Some(timeout);
    }

    pub(crate) fn keep_bodies(&mut self, keep: bool) {
        self.keep_bodies = keep;
    }

    pub(crate) fn rate(&mut self, per_s: f64, burst: u32) {
        self.rate = (per_s.is_finite() && per_s > 0.0).then(|| Rate {
            per_s,
            burst: f64::from(burst.max(1)),
        });
    }

    pub(crate) fn retry(&mut self, policy: RetryPolicy) {
        self.retry = policy;
    }

    pub(crate) fn retries(&mut self, n: u32) {
        self.retry = self.retry.max_retries(n);
    }

    pub(crate) fn max_retry_after(&mut self, max: Duration) {
        self.max_retry_after = max;
    }

    pub(crate) fn adaptive(&mut self, on: bool) {
        self.adaptive = on;
    }

    pub(crate) fn max_waiting(&mut self, n: usize) {
        self.max_waiting = n.max(1);
    }

    pub(crate) fn duplicates(&mut self, what: Duplicates) {
        self.duplicates = what;
    }

    pub(crate) fn concurrency_limit(&self) -> usize {
        self.concurrency
    }

    pub(crate) fn grouping(&self) -> HostGrouping {
        self.grouping
    }

    pub(crate) fn hosts(&mut self, grouping: HostGrouping) {
        self.grouping = grouping;
    }
}

/// The settings of [`Batch`] for a batch that forwards them (the threaded and blocking
/// batches): each setter is documented as the one of [`Batch`] it stands for. `$apply`
/// names a macro that applies `name(args)` to `self` and returns the batch.
macro_rules! forward_settings {
    ($apply:ident) => {
        /// As [`crate::Batch::concurrency`].
        pub fn concurrency(self, n: usize) -> Self {
            $apply!(self, concurrency(n))
        }

        /// As [`crate::Batch::per_host`].
        pub fn per_host(self, n: usize) -> Self {
            $apply!(self, per_host(n))
        }

        /// As [`crate::Batch::queue_timeout`].
        pub fn queue_timeout(self, timeout: std::time::Duration) -> Self {
            $apply!(self, queue_timeout(timeout))
        }

        /// As [`crate::Batch::keep_bodies`].
        pub fn keep_bodies(self, keep: bool) -> Self {
            $apply!(self, keep_bodies(keep))
        }

        /// As [`crate::Batch::rate`].
        pub fn rate(self, per_s: f64, burst: u32) -> Self {
            $apply!(self, rate(per_s, burst))
        }

        /// As [`crate::Batch::retry`].
        pub fn retry(self, policy: $crate::batch::RetryPolicy) -> Self {
            $apply!(self, retry(policy))
        }

        /// As [`crate::Batch::retries`].
        pub fn retries(self, n: u32) -> Self {
            $apply!(self, retries(n))
        }

        /// As [`crate::Batch::max_retry_after`].
        pub fn max_retry_after(self, max: std::time::Duration) -> Self {
            $apply!(self, max_retry_after(max))
        }

        /// As [`crate::Batch::adaptive`].
        pub fn adaptive(self, on: bool) -> Self {
            $apply!(self, adaptive(on))
        }

        /// As [`crate::Batch::max_waiting`].
        pub fn max_waiting(self, n: usize) -> Self {
            $apply!(self, max_waiting(n))
        }

        /// As [`crate::Batch::duplicates`].
        pub fn duplicates(self, what: $crate::batch::Duplicates) -> Self {
            $apply!(self, duplicates(what))
        }

        /// As [`crate::Batch::hosts`].
        pub fn hosts(self, grouping: $crate::batch::HostGrouping) -> Self {
            $apply!(self, hosts(grouping))
        }
    };
}
pub(crate) use forward_settings;

/// Results put back in input order, for `run`.
pub(crate) struct InOrder(Vec<Option<FetchResult>>);

impl InOrder {
    /// Room for `total` results, if the input told its length.
    pub(crate) fn new(total: Option<usize>) -> InOrder {
        InOrder(Vec::with_capacity(total.unwrap_or(0)))
    }

    pub(crate) fn put(&mut self, result: FetchResult) {
        let index = result.index;
        if self.0.len() <= index {
            self.0.resize_with(index + 1, || None);
        }
        self.0[index] = Some(result);
    }

    pub(crate) fn finish(self, summary: BatchSummary) -> BatchReport {
        BatchReport {
            results: self.0.into_iter().flatten().collect(),
            summary,
        }
    }
}

impl<I> fmt::Debug for Batch<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<I> Batch<I>
where
    I: Iterator,
    I::Item: IntoRequest,
{
    /// The most requests in flight at once (default 100; at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.settings.concurrency(n);
        self
    }

    /// The most requests in flight to one host (scheme, host and port) at once; others for
    /// that host wait their turn (default: no limit but the global one).
    pub fn per_host(mut self, n: usize) -> Self {
        self.settings.per_host(n);
        self
    }

    /// The longest a request may wait for an admission slot, counted from the start of the
    /// batch; one still waiting then fails with a timeout in [`Phase::Queue`]. Default: none.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.settings.queue_timeout(timeout);
        self
    }

    /// Whether to keep response bodies (default `true`). With `false`, bodies are read to the
    /// end and counted, so connections are reused, but not stored.
    pub fn keep_bodies(mut self, keep: bool) -> Self {
        self.settings.keep_bodies(keep);
        self
    }

    /// The most requests per second started to one host, with bursts of up to `burst`
    /// (a token bucket; `burst` at least 1). A request waits for its host's token in the
    /// host's queue, holding no slot. Default: no rate.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use volley::{Client, Runtime};
    ///
    /// let rt = Runtime::new()?;
    /// rt.block_on(async {
    ///     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    ///     let urls: Vec<String> = (0..5).map(|i| server.url(&format!("/get?i={i}"))).collect();
    ///     let start = Instant::now();
    ///     let report = Client::new().fetch_all(urls).rate(20.0, 1).run().await;
    ///     assert_eq!(report.summary.ok, 5);
    ///     // One at once, then one every 50 ms.
    ///     assert!(start.elapsed() >= Duration::from_millis(190));
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn rate(mut self, per_s: f64, burst: u32) -> Self {
        self.settings.rate(per_s, burst);
        self
    }

    /// Which failed attempts are tried again, how often and after how long. Default:
    /// [`RetryPolicy::default`], up to 2 retries of idempotent requests on connect errors,
    /// resets, timeouts and 429/502/503/504; [`RetryPolicy::never`] turns retries off.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.settings.retry(policy);
        self
    }

    /// Shorthand for [`retry`](Self::retry) with the current policy and `n` retries at most.
    pub fn retries(mut self, n: u32) -> Self {
        self.settings.retries(n);
        self
    }

    /// The longest host pause the batch waits out (default 60 s). A 429 or 503 pauses its
    /// whole host for its `Retry-After` (both forms, delay-seconds and HTTP-date), or for a
    /// backoff when it has none or an invalid one; requests that would wait longer than
    /// `max` behind a pause fail at once with [`Kind::RateLimited`], which says how long
    /// the server asked for.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.settings.max_retry_after(max);
        self
    }

    /// Adaptive throttling (default off), in the spirit of Scrapy's AutoThrottle: each 429
    /// or 503 halves its host's rate (a host without one gets half the rate it was served
    /// at), and each other response raises it back by 5 %, up to [`rate`](Self::rate).
    pub fn adaptive(mut self, on: bool) -> Self {
        self.settings.adaptive(on);
        self
    }

    /// The most requests taken from the input that may wait at once for their hosts
    /// (default 10,000). The input is read no further while that many wait, so memory stays
    /// flat however long it is, even when one host is slow or paused.
    pub fn max_waiting(mut self, n: usize) -> Self {
        self.settings.max_waiting(n);
        self
    }

    /// What to do with a request equal to an earlier one (default
    /// [`Duplicates::Report`]: not fetched, reported as a duplicate).
    ///
    /// ```
    /// use volley::batch::Duplicates;
    /// use volley::{Client, ErrorKind, Runtime};
    ///
    /// let rt = Runtime::new()?;
    /// rt.block_on(async {
    ///     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    ///     let url = server.url("/get");
    ///     let report = Client::new().fetch_all([&url, &url]).run().await;
    ///     assert_eq!(report.results[0].outcome.as_ref().unwrap().status, 200);
    ///     let second = report.results[1].outcome.as_ref().unwrap_err();
    ///     assert_eq!(second.kind(), &ErrorKind::Duplicate);
    ///     assert_eq!((report.summary.duplicates, report.summary.failed), (1, 0));
    ///
    ///     let report = Client::new()
    ///         .fetch_all([&url, &url])
    ///         .duplicates(Duplicates::Fetch)
    ///         .run()
    ///         .await;
    ///     assert_eq!(report.summary.ok, 2);
    ///     assert_eq!(server.stats().requests, 3);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn duplicates(mut self, what: Duplicates) -> Self {
        self.settings.duplicates(what);
        self
    }

    /// What counts as one host for [`per_host`](Self::per_host), [`rate`](Self::rate),
    /// pauses and statistics: by default the origin (scheme, host and port); or the host
    /// name, the registrable domain (feature `psl`), or a function of the URL.
    pub fn hosts(mut self, grouping: HostGrouping) -> Self {
        self.settings.hosts(grouping);
        self
    }

    /// Obeys robots.txt (RFC 9309), as `cache` fetches and keeps it: each origin's file is
    /// fetched once, before the origin's first request, while the requests of other origins
    /// go ahead. A URL it disallows is not fetched: its result is an error of kind
    /// [`DisallowedByRobots`](crate::ErrorKind::DisallowedByRobots). An origin whose file is
    /// unreachable (a 5xx, a 429, no answer) is deferred: its URLs are not fetched, with
    /// [`RobotsUnreachable`](crate::ErrorKind::RobotsUnreachable). A `Crawl-delay` (capped
    /// by the cache's `max_crawl_delay`, 30 s by default) becomes the host's rate, if slower
    /// than [`rate`](Self::rate). Share one cache between batches to fetch each file once.
    ///
    /// ```
    /// use volley::robots::RobotsCache;
    /// use volley::{Client, ErrorKind, Runtime};
    ///
    /// let rt = Runtime::new()?;
    /// rt.block_on(async {
    ///     // Its robots.txt says `Disallow: /deny`.
    ///     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
    ///     let client = Client::new();
    ///     let report = client
    ///         .fetch_all([server.url("/get"), server.url("/deny")])
    ///         .robots(RobotsCache::new(client.clone(), "volley"))
    ///         .run()
    ///         .await;
    ///     assert_eq!(report.results[0].outcome.as_ref().unwrap().status, 200);
    ///     let denied = report.results[1].outcome.as_ref().unwrap_err();
    ///     assert_eq!(denied.kind(), &ErrorKind::DisallowedByRobots);
    ///     // robots.txt and /get: /deny was never asked for.
    ///     assert_eq!(server.stats().requests, 2);
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn robots(mut self, cache: RobotsCache) -> Self {
        self.robots = Some(cache);
        self
    }

    /// Calls `f` after every finished request with the batch's progress.
    pub fn on_progress(mut self, f: impl FnMut(&Progress) + 'static) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Runs the batch and returns every result in input order, with the summary.
    pub async fn run(self) -> BatchReport {
        let mut stream = self.stream();
        let mut results = InOrder::new(stream.summary.total);
        while let Some(result) = stream.next().await {
            results.put(result);
        }
        results.finish(stream.summary.clone())
    }

    /// Starts the batch and returns a stream of results in completion order.
    pub fn stream(self) -> BatchStream<I> {
        self.start()
    }
}

// Crate-internal methods only: `Source` is not part of the API.
#[allow(private_bounds)]
impl<S: Source> Batch<S> {
    /// A batch of the requests of `source` (the threaded client's loops: each its shard).
    pub(crate) fn of_source(client: &Client, source: S) -> Batch<S> {
        Batch {
            client: client.clone(),
            source,
            settings: Settings::default(),
            robots: None,
            on_progress: None,
            slots: None,
        }
    }

    /// Takes every setting of `settings` (the threaded client's batch, on its loop).
    pub(crate) fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Calls `f` after every finished request, as [`on_progress`](Batch::on_progress).
    pub(crate) fn with_progress(mut self, f: ProgressFn) -> Self {
        self.on_progress = Some(f);
        self
    }

    /// Shares the bound in flight with other batches (the other loops of a sharded batch).
    pub(crate) fn with_slots(mut self, slots: Arc<SharedSlots>) -> Self {
        self.slots = Some(slots);
        self
    }

    /// Obeys robots.txt with `cache`, as [`robots`](Batch::robots).
    pub(crate) fn with_robots(mut self, cache: RobotsCache) -> Self {
        self.robots = Some(cache);
        self
    }

    /// Starts the batch: [`stream`](Batch::stream) for any [`Source`].
    pub(crate) fn start(self) -> BatchStream<S> {
        fdlimit::raise_fd_limit_once();
        let fd_budget = fd_budget();
        let started = Instant::now();
        let total = match self.source.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let limit = self.settings.concurrency.min(fd_budget);
        let settings = self.settings;
        BatchStream {
            client: self.client,
            source: self.source,
            next_index: 0,
            state: Rc::new(RefCell::new(State {
                completed: VecDeque::new(),
                robots_known: VecDeque::new(),
                waker: None,
                lanes: Vec::new(),
                free: Vec::new(),
                handed: VecDeque::new(),
                draining: false,
            })),
            scheduler: Scheduler::new(
                settings.per_host,
                settings.rate,
                settings.max_retry_after,
                settings.grouping,
            ),
            finished: VecDeque::new(),
            spare: VecDeque::new(),
            lanes: Vec::new(),
            in_flight: 0,
            limit,
            max_limit: limit,
            settings,
            queue_deadline: settings.queue_timeout.map(|t| (t, started + t)),
            queue_sleep: None,
            wake_sleep: None,
            jitter: Jitter::default(),
            seen: HashSet::default(),
            sharing: HashMap::new(),
            robots: self.robots,
            origins: HashMap::new(),
            parked: 0,
            robot_tasks: Vec::new(),
            on_progress: self.on_progress,
            slots: self.slots,
            started,
            summary: BatchSummary::new(total),
            source_done: false,
        }
    }
}

/// The descriptors a batch may use: the soft limit less those open and a reserve.
fn fd_budget() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match (limit, fdlimit::open_fds()) {
        (Some(limit), Some(open)) => {
            let left = limit.saturating_sub(open as u64 + FD_RESERVE);
            usize::try_from(left).unwrap_or(usize::MAX).max(1)
        }
        _ => usize::MAX,
    }
}

/// What one request ended with.
#[derive(Debug)]
#[non_exhaustive]
pub struct FetchResult {
    /// The request's position in the batch's input, from 0.
    pub index: usize,
    /// The URL requested (`None` if it did not parse).
    pub url: Option<Url>,
    /// The response, or why there is none.
    pub outcome: Result<Fetched, Error>,
    /// Where the time went: queued, DNS, connect, first byte, total (of the last attempt).
    pub timings: Timings,
    /// The attempts before the last that were tried again, and why; empty when the first
    /// attempt was the last.
    pub attempts: Vec<Attempt>,
}

impl FetchResult {
    /// A request that failed with `error` before or instead of any attempt.
    pub(crate) fn failed(index: usize, url: Option<Url>, error: Error) -> FetchResult {
        FetchResult {
            index,
            url,
            outcome: Err(error),
            timings: Timings::default(),
            attempts: Vec::new(),
        }
    }
}

/// A response read to the end.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fetched {
    /// The status code.
    pub status: StatusCode,
    /// The HTTP version of the response.
    pub version: Version,
    /// The response headers.
    pub headers: HeaderMap,
    /// The final URL, after redirects.
    pub final_url: Url,
    /// The body; empty when the batch does not keep bodies.
    pub body: Bytes,
    /// The body's length, kept or not.
    pub body_len: u64,
}

/// A batch's progress, passed to [`Batch::on_progress`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress {
    /// The number of requests, if the input told its length.
    pub total: Option<usize>,
    /// Requests finished, either way.
    pub done: u64,
    /// Requests that got a complete response (any status).
    pub ok: u64,
    /// Requests that ended in an error.
    pub failed: u64,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Body bytes received.
    pub bytes: u64,
    /// Time since the batch started.
    pub elapsed: Duration,
    /// Attempts tried again so far.
    pub retries: u64,
    /// Requests waiting for their host (a slot, a token, a pause or a backoff).
    pub waiting: usize,
    /// Hosts paused now.
    pub paused_hosts: usize,
}

/// Counts, bytes, time and latency percentiles of a batch. Memory is constant whatever its
/// size: latencies go into a [`LatencyHistogram`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BatchSummary {
    /// The number of requests, if the input told its length.
    pub total: Option<usize>,
    /// Requests finished.
    pub requests: u64,
    /// Requests that got a complete response (any status).
    pub ok: u64,
    /// Requests that ended in an error.
    pub failed: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// From the start of the batch to its last result.
    pub elapsed: Duration,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Errors by kind, as short labels (`timeout`, `connect`, ...).
    pub errors: BTreeMap<&'static str, u64>,
    /// Total latency of the requests that got a response (queue time excluded).
    pub latency: LatencyHistogram,
    /// Attempts tried again.
    pub retries: u64,
    /// Requests not fetched for being duplicates (see [`Batch::duplicates`]); they count in
    /// `requests` but neither in `ok` nor in `failed`.
    pub duplicates: u64,
    /// Each host's statistics, by `scheme://host:port`; filled in when the batch ends.
    pub hosts: BTreeMap<String, HostStats>,
}

impl BatchSummary {
    pub(crate) fn new(total: Option<usize>) -> BatchSummary {
        BatchSummary {
            total,
            requests: 0,
            ok: 0,
            failed: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            latency: LatencyHistogram::default(),
            retries: 0,
            duplicates: 0,
            hosts: BTreeMap::new(),
        }
    }

    /// The `n` hosts that took the most time (their attempts' latencies summed), most first.
    pub fn top_hosts(&self, n: usize) -> Vec<(&str, &HostStats)> {
        let mut hosts: Vec<(&str, &HostStats)> =
            self.hosts.iter().map(|(k, v)| (k.as_str(), v)).collect();
        hosts.sort_by(|a, b| b.1.busy.cmp(&a.1.busy).then(a.0.cmp(b.0)));
        hosts.truncate(n);
        hosts
    }

    /// Finished requests per second of batch time.
    pub fn requests_per_s(&self) -> f64 {
        match self.elapsed.as_secs_f64() {
            s if s > 0.0 => self.requests as f64 / s,
            _ => 0.0,
        }
    }

    pub(crate) fn record(&mut self, result: &FetchResult, elapsed: Duration) {
        self.requests += 1;
        self.elapsed = elapsed;
        match &result.outcome {
            Ok(fetched) => {
                self.ok += 1;
                self.bytes += fetched.body_len;
                *self.statuses.entry(fetched.status.as_u16()).or_default() += 1;
                self.latency.record(result.timings.total);
            }
            Err(e) if *e.kind() == Kind::Duplicate => self.duplicates += 1,
            Err(e) => {
                self.failed += 1;
                *self.errors.entry(error_label(e)).or_default() += 1;
            }
        }
    }

    /// Adds `other`'s counts to these: the summary of both batches' results, as of a batch
    /// run on several loops, each with its share of the hosts. `total` is left as it is.
    pub fn merge(&mut self, other: &BatchSummary) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.failed += other.failed;
        self.bytes += other.bytes;
        self.elapsed = self.elapsed.max(other.elapsed);
        for (&status, &n) in &other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (&label, &n) in &other.errors {
            *self.errors.entry(label).or_default() += n;
        }
        self.latency.merge(&other.latency);
        self.retries += other.retries;
        self.duplicates += other.duplicates;
        for (host, stats) in &other.hosts {
            match self.hosts.get_mut(host) {
                Some(mine) => mine.merge(stats),
                None => {
                    self.hosts.insert(host.clone(), stats.clone());
                }
            }
        }
    }
}

/// A short label for an error's kind, for counting.
fn error_label(e: &Error) -> &'static str {
    match e.kind() {
        Kind::InvalidUrl(_) => "invalid url",
        Kind::UnsupportedScheme(_) => "unsupported scheme",
        Kind::InvalidRequest(_) => "invalid request",
        Kind::Dns => "dns",
        Kind::Connect => "connect",
        Kind::Timeout { .. } => "timeout",
        Kind::Io(_) => "i/o",
        Kind::InvalidResponse(_) => "invalid response",
        Kind::Decode(_) => "decode",
        Kind::TooLarge { .. } => "too large",
        Kind::TooManyRedirects(_) => "too many redirects",
        Kind::InvalidProxy(_) => "invalid proxy",
        Kind::ProxyAuth | Kind::ProxyTunnel(_) => "proxy",
        Kind::Runtime(_) => "runtime",
        Kind::RateLimited { .. } => "rate limited",
        Kind::Duplicate => "duplicate",
        Kind::DisallowedByRobots => "robots disallowed",
        Kind::RobotsUnreachable(_) => "robots unreachable",
        _ => "other",
    }
}

/// Every result of a batch, in input order, and its summary. Returned by [`Batch::run`].
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchReport {
    /// One result per request, in input order.
    pub results: Vec<FetchResult>,
    /// The totals.
    pub summary: BatchSummary,
}

/// A request that ended, as its lane hands it to the stream.
struct Completion {
    job: Job,
    outcome: Result<(Fetched, Timings), (Error, Timings)>,
    /// Time from the batch's start to the attempt's start.
    queued: Duration,
}

/// What the stream and its lanes share.
struct State {
    /// Attempts that ended, for the stream to look at.
    completed: VecDeque<Completion>,
    /// robots.txt files fetched: the origin, and what its file says.
    robots_known: VecDeque<(String, RobotsStatus)>,
    /// The stream's task, woken when a request finishes.
    waker: Option<Waker>,
    /// One entry per lane, by its number.
    lanes: Vec<Lane>,
    /// The lanes with no request, the one that finished last on top.
    free: Vec<usize>,
    /// Requests handed to free lanes, one for each lane `assigned` and not yet run.
    handed: VecDeque<Job>,
    /// No request waits to start: a lane that finishes ends rather than wait for one (a
    /// later retry starts a new lane), so that the lanes of a burst do not outlive it.
    draining: bool,
}

/// A lane: a task that runs the batch's requests one after another, so that a request costs
/// no task of its own (no allocation, no spawn, no copy of its future into a box): the lane's
/// future holds each request's in turn. [`BatchStream::start`] spawns a lane with its first
/// request, and hands the later ones to free lanes through [`State::handed`]. A batch has at
/// most as many lanes as requests in flight; they end when no request waits to start
/// ([`State::draining`]).
struct Lane {
    /// A request waits in `handed` for this lane: the lane takes one when it runs.
    assigned: bool,
    /// The lane was free when the batch began draining: it ends.
    end: bool,
    /// The lane's task while it waits for a request.
    waker: Option<Waker>,
}

/// The results of a running batch, in completion order. Made by [`Batch::stream`].
///
/// Dropping it cancels the requests still in flight.
pub struct BatchStream<I> {
    client: Client,
    source: I,
    next_index: usize,
    state: Rc<RefCell<State>>,
    scheduler: Scheduler,
    /// Results ready to hand out.
    finished: VecDeque<FetchResult>,
    /// An empty queue of completions, swapped with the full one.
    spare: VecDeque<Completion>,
    /// The lanes' tasks, by lane number.
    lanes: Vec<JoinHandle<()>>,
    in_flight: usize,
    /// The concurrency now: lowered when descriptors run out, raised back one per success.
    limit: usize,
    /// The concurrency asked for, capped by the descriptors free at start.
    max_limit: usize,
    settings: Settings,
    queue_deadline: Option<(Duration, Instant)>,
    queue_sleep: Option<Sleep>,
    /// Wakes the stream when a paused host, a token or a backoff is due.
    wake_sleep: Option<Sleep>,
    jitter: Jitter,
    /// Fingerprints of the requests seen, for [`Duplicates::Report`].
    seen: HashSet<u64, BuildHasherDefault<scheduler::Prehashed>>,
    /// Requests waiting for an identical one in flight, by its fingerprint, for
    /// [`Duplicates::Share`].
    sharing: HashMap<u64, Vec<(usize, Url)>>,
    /// The robots.txt cache, when the batch obeys robots.txt.
    robots: Option<RobotsCache>,
    /// Each origin's robots.txt: being fetched (with the requests waiting for it), or known.
    origins: HashMap<String, OriginRobots>,
    /// Requests waiting for their origin's robots.txt.
    parked: usize,
    /// The tasks fetching robots.txt files.
    robot_tasks: Vec<JoinHandle<()>>,
    on_progress: Option<ProgressFn>,
    /// The bound in flight shared with the other loops of a sharded batch.
    slots: Option<Arc<SharedSlots>>,
    started: Instant,
    summary: BatchSummary,
    source_done: bool,
}

impl<I> fmt::Debug for BatchStream<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchStream")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl<I> Drop for BatchStream<I> {
    fn drop(&mut self) {
        for handle in self.lanes.iter().chain(&self.robot_tasks) {
            handle.abort();
        }
        if let Some(slots) = &self.slots {
            slots.give(self.in_flight);
        }
    }
}

/// An origin's robots.txt, for a batch that obeys it.
enum OriginRobots {
    /// Being fetched; these requests wait for it.
    Fetching(Vec<Job>),
    /// Fetched (or found unavailable or unreachable).
    Known(RobotsStatus),
}

impl<I> BatchStream<I> {
    /// The totals so far. Its [`hosts`](BatchSummary::hosts) are filled in when the stream
    /// ends; [`host_stats`](Self::host_stats) has them meanwhile.
    pub fn summary(&self) -> &BatchSummary {
        &self.summary
    }

    /// Each host's statistics so far, by `scheme://host:port`.
    pub fn host_stats(&self) -> impl Iterator<Item = (&str, &HostStats)> {
        self.scheduler.stats()
    }
}

impl<I> BatchStream<I>
where
    I: Iterator,
    I::Item: IntoRequest,
{
    /// The next result to finish, or `None` when every request has.
    pub async fn next(&mut self) -> Option<FetchResult> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Poll-style [`next`](Self::next).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<FetchResult>> {
        self.poll_result(cx)
    }
}

// Crate-internal methods only: `Source` is not part of the API.
#[allow(private_bounds)]
impl<S: Source> BatchStream<S> {
    /// [`poll_next`](Self::poll_next), for any [`Source`].
    pub(crate) fn poll_result(&mut self, cx: &mut Context<'_>) -> Poll<Option<FetchResult>> {
        loop {
            self.expire_queue(cx);
            let completed = self.take_completed() + self.take_robots();
            // Refill the slots freed since the last call before handing out a result, so they
            // never sit idle while the caller deals with it.
            let started = self.admit(cx);
            self.set_draining();
            if let Some(result) = self.take_finished() {
                return Poll::Ready(Some(result));
            }
            let nothing_left = self.in_flight == 0
                && self.scheduler.waiting() == 0
                && self.parked == 0
                && self.source_done;
            if nothing_left {
                self.summary.hosts = self
                    .scheduler
                    .stats()
                    .map(|(host, stats)| (host.to_owned(), stats.clone()))
                    .collect();
                return Poll::Ready(None);
            }
            if started == 0 && completed == 0 {
                self.state.borrow_mut().waker = Some(cx.waker().clone());
                // With every slot taken, a finishing request wakes us, not the timer: a due
                // host could not start anyway, and looping on it would spin.
                if self.has_room(cx) && self.poll_wake(cx) {
                    continue;
                }
                // Finishing requests, the queue timeout or the scheduler's timer wake us.
                return Poll::Pending;
            }
        }
    }

    /// Arms the timer for the scheduler's next instant. True if that instant has passed.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.scheduler.next_wake() else {
            return false;
        };
        let sleep = self.wake_sleep.get_or_insert_with(|| sleep_until(at));
        if sleep.deadline() != at {
            sleep.reset(at);
        }
        Pin::new(sleep).poll(cx).is_ready()
    }

    /// Pops a finished result, updating the summary and the progress.
    fn take_finished(&mut self) -> Option<FetchResult> {
        let result = self.finished.pop_front()?;
        let elapsed = self.started.elapsed();
        self.summary.record(&result, elapsed);
        if let Some(on_progress) = &mut self.on_progress {
            let now = self.started + elapsed;
            let progress = Progress {
                total: self.summary.total,
                done: self.summary.requests,
                ok: self.summary.ok,
                failed: self.summary.failed,
                in_flight: self.in_flight,
                bytes: self.summary.bytes,
                elapsed,
                retries: self.summary.retries,
                waiting: self.scheduler.waiting() + self.parked,
                paused_hosts: self.scheduler.paused_hosts(now),
            };
            on_progress(&progress);
        }
        Some(result)
    }

    /// Fails every request still waiting once the queue timeout has passed.
    fn expire_queue(&mut self, cx: &mut Context<'_>) {
        let Some((after, deadline)) = self.queue_deadline else {
            return;
        };
        if Instant::now() < deadline {
            let sleep = self
                .queue_sleep
                .get_or_insert_with(|| sleep_until(deadline));
            // The timer wakes us at the deadline if requests still wait then.
            let _ = Pin::new(sleep).poll(cx);
            return;
        }
        let timeout = || {
            Error::new(Kind::Timeout {
                phase: Phase::Queue,
                after,
            })
        };
        let expired = |index: usize, url: Option<Url>, attempts: Vec<Attempt>| {
            let mut result = FetchResult::failed(index, url, timeout());
            result.timings.queued = after;
            result.attempts = attempts;
            result
        };
        let mut failed = Vec::new();
        let mut jobs = self.scheduler.drain();
        for origin in self.origins.values_mut() {
            if let OriginRobots::Fetching(parked) = origin {
                jobs.append(parked);
            }
        }
        self.parked = 0;
        for job in jobs {
            // Requests waiting for one that was queued share its fate; those waiting for one
            // in flight wait on.
            let sharers = job.fingerprint.and_then(|p| self.sharing.remove(&p));
            for (index, url) in sharers.into_iter().flatten() {
                failed.push(expired(index, Some(url), Vec::new()));
            }
            failed.push(expired(
                job.index,
                Some(job.request.into_url()),
                job.attempts,
            ));
        }
        // What the input holds now; a source that has more later is drained again then.
        while let Poll::Ready(next) = self.source.poll_item(cx) {
            let Some((given, item)) = next else {
                self.source_done = true;
                break;
            };
            let index = self.index(given);
            let url = item.into_request().ok().map(|r| r.url().clone());
            failed.push(expired(index, url, Vec::new()));
        }
        failed.sort_by_key(|r| r.index);
        self.finished.extend(failed);
    }

    /// True if a request may start: a slot of this batch is free, and one of the bound it
    /// shares with other loops, if any (else `cx` is woken when one is).
    fn has_room(&self, cx: &mut Context<'_>) -> bool {
        self.in_flight < self.limit && self.slots.as_ref().is_none_or(|s| s.free(cx))
    }

    /// The index of the input's next item: `given` by the source, or counted.
    fn index(&mut self, given: Option<usize>) -> usize {
        let index = given.unwrap_or(self.next_index);
        self.next_index = index + 1;
        index
    }

    /// Starts requests while slots are free. Returns how many started.
    fn admit(&mut self, cx: &mut Context<'_>) -> usize {
        let mut started = 0;
        let now = Instant::now();
        while self.has_room(cx) {
            let next = match self.scheduler.next(now) {
                Some(next) => next,
                None => match self.next_input(now, cx) {
                    Some(next) => next,
                    None => return started,
                },
            };
            match next {
                Next::Start(job) => {
                    self.start(job);
                    started += 1;
                }
                Next::TooLong(job, wait) => self.give_up_paused(job, wait),
            }
        }
        started
    }

    /// Reads the input until a request may start, or the input ends, or enough wait.
    fn next_input(&mut self, now: Instant, cx: &mut Context<'_>) -> Option<Next> {
        // Results of items that fail at once (not a URL, duplicates) wait to be handed out
        // too: the input is read no further while too many do.
        while !self.source_done
            && self.scheduler.waiting() + self.parked + self.finished.len()
                < self.settings.max_waiting
        {
            // A source with nothing ready yet wakes the batch when it has.
            let Poll::Ready(next) = self.source.poll_item(cx) else {
                break;
            };
            let Some((given, item)) = next else {
                self.source_done = true;
                break;
            };
            let index = self.index(given);
            let request = match item.into_request() {
                Ok(request) => request,
                Err(e) => {
                    self.finished
                        .push_back(FetchResult::failed(index, e.url().cloned(), e));
                    continue;
                }
            };
            let fingerprint = match self.settings.duplicates {
                Duplicates::Fetch => None,
                _ => fingerprint(&request),
            };
            if let Some(print) = fingerprint {
                if self.is_duplicate(print, index, &request) {
                    continue;
                }
            }
            let job = Job {
                index,
                host: self.scheduler.host_of(request.url(), now),
                request,
                attempts: Vec::new(),
                exhausted: 0,
                fingerprint,
            };
            let job = match self.robots.is_some() {
                true => match self.robots_gate(job) {
                    Some(job) => job,
                    None => continue,
                },
                false => job,
            };
            if let Some(next) = self.scheduler.offer(job, now) {
                return Some(next);
            }
        }
        None
    }

    /// True if `request` (of input `index`) is to be answered as a duplicate rather than
    /// fetched: it is reported at once, or waits for the identical request in flight.
    fn is_duplicate(&mut self, print: u64, index: usize, request: &Request) -> bool {
        match self.settings.duplicates {
            Duplicates::Report if !self.seen.insert(print) => {
                let error = Error::new(Kind::Duplicate).with_url(request.url());
                let result = FetchResult::failed(index, Some(request.url().clone()), error);
                self.finished.push_back(result);
                true
            }
            Duplicates::Share => match self.sharing.get_mut(&print) {
                Some(waiting) => {
                    waiting.push((index, request.url().clone()));
                    true
                }
                None => {
                    self.sharing.insert(print, Vec::new());
                    false
                }
            },
            _ => false,
        }
    }

    /// Lets `job` through if its origin's robots.txt is known and allows it; fails it if the
    /// file disallows it or is unreachable; else parks it until the file is fetched, starting
    /// the fetch for the origin's first request.
    fn robots_gate(&mut self, job: Job) -> Option<Job> {
        let cache = self.robots.as_ref()?;
        let origin = job.request.url().origin().ascii_serialization();
        match self.origins.get_mut(&origin) {
            Some(OriginRobots::Known(status)) => {
                let verdict = cache.verdict(status, job.request.url());
                return self.obey(job, verdict);
            }
            Some(OriginRobots::Fetching(waiting)) => waiting.push(job),
            None => {
                let cache = cache.clone();
                let url = job.request.url().clone();
                let state = self.state.clone();
                let key = origin.clone();
                self.robot_tasks.push(crate::rt::spawn(async move {
                    let status = cache.status(&url).await;
                    let mut state = state.borrow_mut();
                    state.robots_known.push_back((key, status));
                    if let Some(waker) = state.waker.take() {
                        waker.wake();
                    }
                }));
                self.origins
                    .insert(origin, OriginRobots::Fetching(vec![job]));
            }
        }
        self.parked += 1;
        None
    }

    /// Lets `job` through if `verdict` allows it (slowing its host to the crawl delay), or
    /// fails it.
    fn obey(&mut self, job: Job, verdict: RobotsVerdict) -> Option<Job> {
        let kind = match verdict {
            RobotsVerdict::Allowed { crawl_delay } => {
                if let Some(delay) = crawl_delay.filter(|d| !d.is_zero()) {
                    let rate = Rate {
                        per_s: 1.0 / delay.as_secs_f64(),
                        burst: 1.0,
                    };
                    self.scheduler.host(job.host).limit_rate(rate);
                }
                return Some(job);
            }
            RobotsVerdict::Disallowed => Kind::DisallowedByRobots,
            RobotsVerdict::Deferred(why) => Kind::RobotsUnreachable(why.to_string()),
        };
        let error = Error::new(kind).with_url(job.request.url());
        let mut result = FetchResult::failed(job.index, Some(job.request.into_url()), error);
        result.attempts = job.attempts;
        self.push_result(result, job.fingerprint);
        None
    }

    /// Takes the robots.txt files fetched since the last look, and lets the requests that
    /// waited for them through (into their hosts' queues) or fails them. Returns how many
    /// files there were.
    fn take_robots(&mut self) -> usize {
        let known = std::mem::take(&mut self.state.borrow_mut().robots_known);
        let n = known.len();
        for (origin, status) in known {
            let previous = self
                .origins
                .insert(origin, OriginRobots::Known(status.clone()));
            let Some(OriginRobots::Fetching(jobs)) = previous else {
                continue;
            };
            let Some(cache) = self.robots.clone() else {
                continue;
            };
            for job in jobs {
                self.parked -= 1;
                let verdict = cache.verdict(&status, job.request.url());
                if let Some(job) = self.obey(job, verdict) {
                    self.scheduler.enqueue(job, false);
                }
            }
        }
        n
    }

    /// Answers the requests that waited for `result`'s, for [`Duplicates::Share`].
    fn share(&mut self, print: u64, result: &FetchResult) {
        let Some(waiting) = self.sharing.remove(&print) else {
            return;
        };
        for (index, url) in waiting {
            let outcome = match &result.outcome {
                Ok(fetched) => Ok(fetched.clone()),
                Err(e) => Err(e.shared_copy()),
            };
            self.finished.push_back(FetchResult {
                index,
                url: Some(url),
                outcome,
                timings: result.timings,
                attempts: result.attempts.clone(),
            });
        }
    }

    /// Fails a request whose host is paused for longer than `max_retry_after`.
    fn give_up_paused(&mut self, job: Job, wait: Duration) {
        let status = job
            .attempts
            .iter()
            .rev()
            .find_map(|a| match a.reason {
                RetryReason::Status(status) => Some(status),
                _ => None,
            })
            .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        let error = Error::new(Kind::RateLimited {
            status,
            wait,
            max: self.settings.max_retry_after,
        })
        .with_url(job.request.url());
        self.scheduler.host(job.host).stats.failed += 1;
        let mut result = FetchResult::failed(job.index, Some(job.request.into_url()), error);
        result.attempts = job.attempts;
        self.push_result(result, job.fingerprint);
    }

    /// Notes whether any request waits to start; when none does, the free lanes end, and so
    /// will the busy ones once their request is done.
    fn set_draining(&mut self) {
        let draining = self.source_done && self.scheduler.waiting() == 0 && self.parked == 0;
        let mut state = self.state.borrow_mut();
        state.draining = draining;
        if draining && !state.free.is_empty() {
            let State { lanes, free, .. } = &mut *state;
            for number in free.drain(..) {
                let lane = &mut lanes[number];
                lane.end = true;
                if let Some(waker) = lane.waker.take() {
                    waker.wake();
                }
            }
        }
    }

    /// Hands `job` to a free lane, or to a new one if every lane is busy.
    fn start(&mut self, job: Job) {
        self.in_flight += 1;
        if let Some(slots) = &self.slots {
            slots.take();
        }
        let mut state = self.state.borrow_mut();
        if let Some(lane) = state.free.pop() {
            state.handed.push_back(job);
            let lane = &mut state.lanes[lane];
            lane.assigned = true;
            if let Some(waker) = lane.waker.take() {
                waker.wake();
            }
            return;
        }
        // A new lane, its first request moved into its future.
        let number = state.lanes.len();
        state.lanes.push(Lane {
            assigned: false,
            end: false,
            waker: None,
        });
        drop(state);
        let lane = run_lane(
            number,
            job,
            self.client.clone(),
            self.state.clone(),
            self.settings.keep_bodies,
            self.started,
        );
        self.lanes.push(crate::rt::spawn(lane));
    }

    /// Looks at every attempt that ended: retries it, or makes it a result. Returns how
    /// many there were.
    fn take_completed(&mut self) -> usize {
        // Swapped with a spare queue, so neither allocates again.
        let mut completed = std::mem::take(&mut self.spare);
        std::mem::swap(&mut completed, &mut self.state.borrow_mut().completed);
        let n = completed.len();
        if n == 0 {
            self.spare = completed;
            return 0;
        }
        let now = Instant::now();
        for completion in completed.drain(..) {
            self.in_flight -= 1;
            if let Some(slots) = &self.slots {
                slots.give(1);
            }
            self.scheduler.finish(completion.job.host);
            self.complete(completion, now);
        }
        self.spare = completed;
        n
    }

    fn complete(&mut self, completion: Completion, now: Instant) {
        let Completion {
            mut job,
            outcome,
            queued,
        } = completion;
        let policy = self.settings.retry;
        let (reason, retry_after) = match &outcome {
            Err((e, _)) if is_exhausted(e) && job.exhausted < MAX_EXHAUSTED_RETRIES => {
                // No descriptor or port free: wait for one rather than fail.
                self.limit = self.in_flight.max(1);
                job.exhausted += 1;
                if self.in_flight == 0 {
                    self.scheduler.delay(job, now + EXHAUSTED_BACKOFF);
                } else {
                    self.scheduler.enqueue(job, true);
                }
                return;
            }
            Ok((fetched, timings)) => {
                let retry_after = self.observe_response(job.host, fetched, timings, now);
                (policy.for_status(fetched.status), retry_after)
            }
            Err((e, timings)) => {
                let stats = &mut self.scheduler.host(job.host).stats;
                stats.busy += timings.total;
                (policy.for_error(e), None)
            }
        };
        let left = policy.may_retry(&job.attempts, retry_after.is_some());
        // Asked only when there is a reason: a body's `try_clone` copies a handle.
        let retriable = |request: &Request| {
            policy.retries_method(request.method())
                && request.body().is_none_or(|b| b.try_clone().is_some())
        };
        if let Some(reason) = reason.filter(|_| left && retriable(&job.request)) {
            let host = self.scheduler.host(job.host);
            let paused = host.paused_until.filter(|p| *p > now);
            let (firsts, retries) = host.budget_counts(now);
            // A retry the server asked for is not charged to the budget: the pause keeps
            // the batch off the host already.
            if retry_after.is_some() || policy.budget_allows(firsts, retries) {
                host.charge_retry(now);
                host.stats.retries += 1;
                self.summary.retries += 1;
                let n = job.attempts.len() as u32;
                let wait = match paused {
                    Some(until) => until - now,
                    None => policy.backoff_for(n, self.jitter.next()),
                };
                job.attempts.push(Attempt {
                    reason,
                    retry_after,
                    wait,
                });
                if paused.is_some() {
                    // Behind the host's pause, first in line.
                    self.scheduler.enqueue(job, true);
                } else {
                    self.scheduler.delay(job, now + wait);
                }
                return;
            }
        }
        if outcome.is_ok() && self.limit < self.max_limit {
            self.limit += 1;
        }
        let stats = &mut self.scheduler.host(job.host).stats;
        let (outcome, mut timings) = match outcome {
            Ok((fetched, timings)) => {
                stats.ok += 1;
                (Ok(fetched), timings)
            }
            Err((e, timings)) => {
                stats.failed += 1;
                (Err(e), timings)
            }
        };
        timings.queued = queued;
        let result = FetchResult {
            index: job.index,
            url: Some(job.request.into_url()),
            outcome,
            timings,
            attempts: job.attempts,
        };
        self.push_result(result, job.fingerprint);
    }

    /// Hands out the final result of a request, and copies of it to the requests that waited
    /// for it ([`Duplicates::Share`]).
    fn push_result(&mut self, result: FetchResult, fingerprint: Option<u64>) {
        if let Some(print) = fingerprint.filter(|_| !self.sharing.is_empty()) {
            self.share(print, &result);
        }
        self.finished.push_back(result);
    }

    /// Counts a response in its host's statistics, and pauses the host on 429 or 503.
    /// Returns the server's valid `Retry-After`, if any.
    fn observe_response(
        &mut self,
        key: HostKey,
        fetched: &Fetched,
        timings: &Timings,
        now: Instant,
    ) -> Option<Duration> {
        let adaptive = self.settings.adaptive;
        let ceiling = self.settings.rate;
        let status = fetched.status;
        let throttled = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        let retry_after = match throttled {
            true => match retry_after(&fetched.headers, SystemTime::now()) {
                RetryAfter::After(wait) => Some(wait),
                RetryAfter::Absent => None,
            },
            false => None,
        };
        let limits = RateLimitHeaders::of(&fetched.headers);
        let host = self.scheduler.host(key);
        if let Some(rate) = limits.policy_rate() {
            host.adopt_rate(rate, now);
        }
        let stats = &mut host.stats;
        stats.busy += timings.total;
        stats.latency.record(timings.total);
        *stats.statuses.entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::TOO_MANY_REQUESTS {
            stats.throttled += 1;
        }
        if !throttled {
            host.pauses_in_a_row = 0;
            if adaptive {
                host.speed_up(ceiling, ADAPTIVE_LIFT);
            }
            if let Some(limit) = limits.spent() {
                // The server's RateLimit header says the quota is spent: wait for its reset.
                self.scheduler.pause(key, now + limit, now);
            }
            return None;
        }
        // The 429s of requests already on their way when the pause began are one event.
        let new_pause = host.paused_until.is_none_or(|p| p <= now);
        if new_pause {
            host.pauses_in_a_row = host.pauses_in_a_row.saturating_add(1);
        }
        // The full pause, even when it is beyond max_retry_after: the requests waiting for
        // the host then fail at once, saying so, instead of trying early.
        if adaptive && new_pause {
            let observed = host.stats.requests as f64 / self.started.elapsed().as_secs_f64();
            host.slow_down(observed.max(1.0), now);
        }
        let exponent = host.pauses_in_a_row.saturating_sub(1);
        let pause = retry_after.unwrap_or_else(|| {
            let policy = &self.settings.retry;
            policy
                .backoff_for(exponent, self.jitter.next())
                .max(policy.base())
        });
        self.scheduler.pause(key, now + pause, now);
        retry_after
    }
}

/// A fingerprint of a request without a body: its method, URL and headers. `None` for a
/// request with a body, which is never a duplicate.
fn fingerprint(request: &Request) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    if request.body().is_some() {
        return None;
    }
    let mut hasher = DefaultHasher::new();
    request.method().hash(&mut hasher);
    request.url().as_str().hash(&mut hasher);
    for (name, value) in request.headers() {
        name.hash(&mut hasher);
        value.hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Above this many requests per second, an adaptive host's rate is lifted (when the batch
/// sets none).
const ADAPTIVE_LIFT: f64 = 1000.0;

/// The rate-limit headers of a response: the IETF draft's (draft-ietf-httpapi-ratelimit-headers)
/// `RateLimit` and `RateLimit-Policy`, and its earlier versions' `RateLimit-Remaining` and
/// `RateLimit-Reset`, still widely sent. Found in one pass over the names, which costs less
/// than four lookups when, as usual, there are none.
#[derive(Debug, Default)]
struct RateLimitHeaders<'a> {
    state: Option<&'a str>,
    policy: Option<&'a str>,
    remaining: Option<u64>,
    reset: Option<u64>,
}

impl RateLimitHeaders<'_> {
    fn of(headers: &HeaderMap) -> RateLimitHeaders<'_> {
        let mut found = RateLimitHeaders::default();
        for (name, value) in headers {
            let Some(rest) = name.as_str().strip_prefix("ratelimit") else {
                continue;
            };
            let value = value.to_str().ok();
            let number = || value?.trim().parse::<u64>().ok();
            match rest {
                "" => found.state = value,
                "-policy" => found.policy = value,
                "-remaining" => found.remaining = number(),
                "-reset" => found.reset = number(),
                _ => {}
            }
        }
        found
    }

    /// `Some(reset)` when the server says no request is left until `reset` has passed:
    /// `RateLimit: "policy";r=0;t=5`, or `RateLimit-Remaining: 0` with `RateLimit-Reset: 5`.
    fn spent(&self) -> Option<Duration> {
        let (remaining, reset) = match self.state {
            Some(value) => {
                let params = first_item_params(value);
                (params.get("r"), params.get("t"))
            }
            None => (self.remaining, self.reset),
        };
        match (remaining, reset) {
            (Some(0), Some(t)) if t > 0 => Some(Duration::from_secs(t)),
            _ => None,
        }
    }

    /// The rate `RateLimit-Policy` (`"default";q=100;w=60`: a quota of `q` requests per `w`
    /// seconds) allows: paced evenly at 95 % of `q / w`, with no burst, so that no window of
    /// `w` seconds, wherever it starts, holds more than `q`. The first policy of a list
    /// decides; one without `q` or `w` says nothing.
    fn policy_rate(&self) -> Option<Rate> {
        let params = first_item_params(self.policy?);
        let (quota, window) = (params.get("q")?, params.get("w")?);
        if quota == 0 || window == 0 {
            return None;
        }
        Some(Rate {
            per_s: 0.95 * quota as f64 / window as f64,
            burst: 1.0,
        })
    }
}

/// The integer parameters of the first item of a structured-field list, such as
/// `"policy";q=100;w=60, "other";q=5`: here `q` and `w`.
fn first_item_params(value: &str) -> ItemParams<'_> {
    ItemParams(value.split(',').next().unwrap_or(""))
}

/// See [`first_item_params`].
struct ItemParams<'a>(&'a str);

impl ItemParams<'_> {
    /// The parameter `name` if it is a non-negative integer.
    fn get(&self, name: &str) -> Option<u64> {
        self.0.split(';').skip(1).find_map(|param| {
            let (key, value) = param.split_once('=')?;
            (key.trim() == name).then(|| value.trim().parse().ok())?
        })
    }
}

/// True if `e` says no descriptor or local port was free.
fn is_exhausted(e: &Error) -> bool {
    matches!(e.kind(), Kind::Connect)
        && e.os_error()
            .is_some_and(|code| fdlimit::is_exhaustion(rustix::io::Errno::from_raw_os_error(code)))
}

/// Lane `number` of a batch: runs `job`, then each request handed to it, and hands back
/// each outcome, until the batch drops it. An `async` block rather than an `async fn`: a
/// function's arguments would be kept twice in its future, once as given and once as moved.
#[allow(clippy::manual_async_fn)] // see above: 344 more bytes a lane as an `async fn`
fn run_lane(
    number: usize,
    mut job: Job,
    client: Client,
    state: Rc<RefCell<State>>,
    keep: bool,
    batch_started: Instant,
) -> impl Future<Output = ()> {
    async move {
        loop {
            // Queued until a lane runs it: a request waits in the run queue too.
            let queued = batch_started.elapsed();
            let outcome = fetch(&client, &job.request, keep).await;
            {
                let mut state = state.borrow_mut();
                state.completed.push_back(Completion {
                    job,
                    outcome,
                    queued,
                });
                if let Some(waker) = state.waker.take() {
                    waker.wake();
                }
                if state.draining {
                    return;
                }
                state.free.push(number);
            }
            let next = poll_fn(|cx| {
                let mut state = state.borrow_mut();
                let State { lanes, handed, .. } = &mut *state;
                let lane = &mut lanes[number];
                // Only a lane that was handed a request takes one: a lane woken for another
                // reason leaves it to the lane it is for.
                if lane.assigned {
                    if let Some(job) = handed.pop_front() {
                        lane.assigned = false;
                        return Poll::Ready(Some(job));
                    }
                }
                if lane.end {
                    return Poll::Ready(None);
                }
                lane.waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            match next {
                Some(next) => job = next,
                None => return,
            }
        }
    }
}

/// Sends one request and reads its body. The error carries the timings so far.
async fn fetch(
    client: &Client,
    request: &Request,
    keep: bool,
) -> Result<(Fetched, Timings), (Error, Timings)> {
    let clock = Clock::start();
    let started = clock.start;
    let failed = |e: Error| {
        let timings = Timings {
            total: started.elapsed(),
            ..Timings::default()
        };
        (e, timings)
    };
    let mut response = client
        .execute_request(crate::http::request::RequestCow::Borrowed(request), clock)
        .await
        .map_err(failed)?;
    let body = response.read_all(keep).await;
    let timings = response.timings();
    let (body, body_len) = body.map_err(|e| (e, timings))?;
    let (status, version, headers, final_url) = response.into_head();
    Ok((
        Fetched {
            status,
            version,
            headers,
            final_url,
            body: Bytes::from(body),
            body_len,
        },
        timings,
    ))
}
