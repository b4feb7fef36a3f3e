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
//! # Admission
//!
//! Requests are taken from the input lazily, in order, and start while fewer than
//! [`concurrency`](Batch::concurrency) are in flight. With [`per_host`](Batch::per_host), a
//! request whose host is at its limit waits in that host's queue while requests for other
//! hosts go ahead; hosts with waiting requests are served round-robin. Nothing fails for
//! being queued, unless it waits longer than the [`queue_timeout`](Batch::queue_timeout),
//! which is separate from the request's own timeout: time in the queue is not charged to the
//! request.
//!
//! The batch is descriptor-aware. At start it raises the soft `RLIMIT_NOFILE` to the hard
//! limit (once per process, see [`raise_fd_limit`](crate::raise_fd_limit)) and keeps the
//! concurrency under the descriptors left. If a connect still fails for want of a descriptor
//! or a local port (`EMFILE`, `ENFILE`, `EADDRNOTAVAIL`), the request goes back to the front
//! of the queue and the concurrency drops to what is in flight, then grows back by one per
//! success: the batch slows down instead of failing.
//!
//! # Results
//!
//! [`run`](Batch::run) returns every [`FetchResult`] in input order with a [`BatchSummary`];
//! [`stream`](Batch::stream) yields them as they complete (asyncio's `as_completed`). Each
//! result holds the response (status, headers, body) or the error, and its [`Timings`]. A
//! failure never affects the other requests.

mod histogram;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};
use url::Url;

pub use histogram::LatencyHistogram;

use crate::http::client::Client;
use crate::http::error::{Error, Kind, Phase};
use crate::http::request::{IntoUrl, Request};
use crate::http::timings::{Clock, Timings};
use crate::net::fdlimit;
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
            on_progress: None,
        }
    }
}

/// A batch of requests being configured. Made by [`Client::fetch_all`].
#[must_use = "a batch does nothing until .run() or .stream()"]
pub struct Batch<I> {
    client: Client,
    source: I,
    settings: Settings,
    on_progress: Option<ProgressFn>,
}

/// A batch's settings, as its setters left them: [`Batch`] and the threaded client's batch
/// both hold one, and the latter hands it to the former on its loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    concurrency: usize,
    per_host: Option<usize>,
    queue_timeout: Option<Duration>,
    keep_bodies: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            concurrency: 100,
            per_host: None,
            queue_timeout: None,
            keep_bodies: true,
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
}

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

    /// Takes every setting of `settings` (the threaded client's batch, on its loop).
    pub(crate) fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Starts the batch and returns a stream of results in completion order.
    pub fn stream(self) -> BatchStream<I> {
        fdlimit::raise_fd_limit_once();
        let fd_budget = fd_budget();
        let started = Instant::now();
        let total = match self.source.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let limit = self.settings.concurrency.min(fd_budget);
        BatchStream {
            client: self.client,
            source: self.source,
            next_index: 0,
            state: Rc::new(RefCell::new(State {
                finished: VecDeque::new(),
                waker: None,
                in_flight: 0,
                limit,
                max_limit: limit,
                host_in_flight: HashMap::new(),
                freed_hosts: Vec::new(),
                retry: VecDeque::new(),
                retry_at: None,
            })),
            host_queues: HashMap::new(),
            ready_hosts: VecDeque::new(),
            handles: HashMap::new(),
            per_host: self.settings.per_host,
            queue_deadline: self.settings.queue_timeout.map(|t| (t, started + t)),
            queue_sleep: None,
            retry_sleep: None,
            keep_bodies: self.settings.keep_bodies,
            on_progress: self.on_progress,
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
    /// Where the time went: queued, DNS, connect, first byte, total.
    pub timings: Timings,
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
        }
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
            Err(e) => {
                self.failed += 1;
                *self.errors.entry(error_label(e)).or_default() += 1;
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

/// A host, for the per-host limit.
type HostKey = (String, String, u16);

fn host_key(url: &Url) -> HostKey {
    (
        url.scheme().to_owned(),
        url.host_str().unwrap_or_default().to_owned(),
        url.port_or_known_default().unwrap_or(0),
    )
}

/// What the stream and its request tasks share.
struct State {
    /// Results ready for the stream to yield.
    finished: VecDeque<FetchResult>,
    /// The stream's task, woken when a request finishes.
    waker: Option<Waker>,
    in_flight: usize,
    /// The concurrency now: lowered when descriptors run out, raised back one per success.
    limit: usize,
    /// The concurrency asked for, capped by the descriptors free at start.
    max_limit: usize,
    host_in_flight: HashMap<HostKey, usize>,
    /// Hosts whose requests finished since the stream last looked: they have a free slot.
    freed_hosts: Vec<HostKey>,
    /// Requests sent back for want of a descriptor: index, request, retries so far.
    retry: VecDeque<(usize, Request, u32)>,
    /// Not before this instant may a retry start (nothing in flight would wake the stream).
    retry_at: Option<Instant>,
}

/// The results of a running batch, in completion order. Made by [`Batch::stream`].
///
/// Dropping it cancels the requests still in flight.
pub struct BatchStream<I> {
    client: Client,
    source: I,
    next_index: usize,
    state: Rc<RefCell<State>>,
    /// Requests waiting because their host is at its limit, by host, in input order.
    host_queues: HashMap<HostKey, VecDeque<(usize, Request)>>,
    /// Hosts with waiting requests and a free slot, served round-robin.
    ready_hosts: VecDeque<HostKey>,
    handles: HashMap<usize, JoinHandle<()>>,
    per_host: Option<usize>,
    queue_deadline: Option<(Duration, Instant)>,
    queue_sleep: Option<Sleep>,
    retry_sleep: Option<Sleep>,
    keep_bodies: bool,
    on_progress: Option<ProgressFn>,
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
        for handle in self.handles.values() {
            handle.abort();
        }
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

    /// The totals so far.
    pub fn summary(&self) -> &BatchSummary {
        &self.summary
    }

    /// Poll-style [`next`](Self::next).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<FetchResult>> {
        loop {
            self.expire_queue(cx);
            // Refill the slots freed since the last call before handing out a result, so they
            // never sit idle while the caller deals with it.
            let started = self.admit(cx);
            if let Some(result) = self.take_finished() {
                return Poll::Ready(Some(result));
            }
            let state = self.state.borrow();
            let nothing_left = state.in_flight == 0
                && state.retry.is_empty()
                && self.source_done
                && self.host_queues.is_empty();
            if nothing_left {
                return Poll::Ready(None);
            }
            if started == 0 {
                drop(state);
                self.state.borrow_mut().waker = Some(cx.waker().clone());
                // Finishing requests, the queue timeout or the retry timer wake us.
                return Poll::Pending;
            }
        }
    }

    /// Pops a finished result, updating the summary and the progress.
    fn take_finished(&mut self) -> Option<FetchResult> {
        let result = self.state.borrow_mut().finished.pop_front()?;
        self.handles.remove(&result.index);
        let elapsed = self.started.elapsed();
        self.summary.record(&result, elapsed);
        if let Some(on_progress) = &mut self.on_progress {
            let progress = Progress {
                total: self.summary.total,
                done: self.summary.requests,
                ok: self.summary.ok,
                failed: self.summary.failed,
                in_flight: self.state.borrow().in_flight,
                bytes: self.summary.bytes,
                elapsed,
            };
            on_progress(&progress);
        }
        Some(result)
    }

    /// Fails every request still queued once the queue timeout has passed.
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
        let expired = |index: usize, url: Option<Url>| FetchResult {
            index,
            outcome: Err(match &url {
                Some(url) => Error::new(Kind::Timeout {
                    phase: Phase::Queue,
                    after,
                })
                .with_url(url),
                None => Error::new(Kind::Timeout {
                    phase: Phase::Queue,
                    after,
                }),
            }),
            url,
            timings: Timings {
                queued: after,
                ..Timings::default()
            },
        };
        let mut failed = Vec::new();
        for (_, queue) in self.host_queues.drain() {
            failed.extend(
                queue
                    .into_iter()
                    .map(|(i, r)| expired(i, Some(r.url().clone()))),
            );
        }
        self.ready_hosts.clear();
        failed.extend(
            self.state
                .borrow_mut()
                .retry
                .drain(..)
                .map(|(i, r, _)| expired(i, Some(r.url().clone()))),
        );
        for item in self.source.by_ref() {
            let index = self.next_index;
            self.next_index += 1;
            let url = item.into_request().ok().map(|r| r.url().clone());
            failed.push(expired(index, url));
        }
        self.source_done = true;
        failed.sort_by_key(|r| r.index);
        self.state.borrow_mut().finished.extend(failed);
    }

    /// Starts requests while slots are free. Returns how many started.
    fn admit(&mut self, cx: &mut Context<'_>) -> usize {
        let mut started = 0;
        loop {
            let (in_flight, limit) = {
                let state = self.state.borrow();
                (state.in_flight, state.limit)
            };
            if in_flight >= limit {
                return started;
            }
            match self.next_admissible(cx) {
                Some((index, request, retries)) => {
                    self.start(index, request, retries);
                    started += 1;
                }
                None => return started,
            }
        }
    }

    /// The next request that may start now, by priority: retries, then requests of hosts
    /// that have a free slot again, then new input.
    fn next_admissible(&mut self, cx: &mut Context<'_>) -> Option<(usize, Request, u32)> {
        let retry_due = {
            let state = self.state.borrow();
            match (state.retry.is_empty(), state.retry_at) {
                (true, _) => None,
                (false, Some(at)) if Instant::now() < at => Some(at),
                (false, _) => {
                    drop(state);
                    let mut state = self.state.borrow_mut();
                    state.retry_at = None;
                    return state.retry.pop_front();
                }
            }
        };
        if let Some(at) = retry_due {
            let sleep = self.retry_sleep.get_or_insert_with(|| sleep_until(at));
            if sleep.deadline() != at {
                sleep.reset(at);
            }
            // The timer wakes us when the retry may go.
            let _ = Pin::new(sleep).poll(cx);
            return None;
        }
        let freed = std::mem::take(&mut self.state.borrow_mut().freed_hosts);
        for host in freed {
            if self.host_queues.contains_key(&host) && !self.ready_hosts.contains(&host) {
                self.ready_hosts.push_back(host);
            }
        }
        while let Some(host) = self.ready_hosts.pop_front() {
            if !self.host_has_room(&host) {
                continue;
            }
            let Some(queue) = self.host_queues.get_mut(&host) else {
                continue;
            };
            let (index, request) = queue.pop_front()?;
            if queue.is_empty() {
                self.host_queues.remove(&host);
            } else {
                self.ready_hosts.push_back(host);
            }
            return Some((index, request, 0));
        }
        while !self.source_done {
            let Some(item) = self.source.next() else {
                self.source_done = true;
                break;
            };
            let index = self.next_index;
            self.next_index += 1;
            let request = match item.into_request() {
                Ok(request) => request,
                Err(e) => {
                    let result = FetchResult {
                        index,
                        url: e.url().cloned(),
                        outcome: Err(e),
                        timings: Timings::default(),
                    };
                    self.state.borrow_mut().finished.push_back(result);
                    continue;
                }
            };
            if self.per_host.is_some() {
                let host = host_key(request.url());
                if !self.host_has_room(&host) || self.host_queues.contains_key(&host) {
                    self.host_queues
                        .entry(host)
                        .or_default()
                        .push_back((index, request));
                    continue;
                }
            }
            return Some((index, request, 0));
        }
        None
    }

    fn host_has_room(&self, host: &HostKey) -> bool {
        match self.per_host {
            Some(max) => {
                self.state
                    .borrow()
                    .host_in_flight
                    .get(host)
                    .copied()
                    .unwrap_or(0)
                    < max
            }
            None => true,
        }
    }

    /// Spawns the task that runs request `index`.
    fn start(&mut self, index: usize, request: Request, retries: u32) {
        let batch_started = self.started;
        let host = self.per_host.map(|_| host_key(request.url()));
        {
            let mut state = self.state.borrow_mut();
            state.in_flight += 1;
            if let Some(host) = &host {
                *state.host_in_flight.entry(host.clone()).or_default() += 1;
            }
        }
        let client = self.client.clone();
        let state = self.state.clone();
        let keep = self.keep_bodies;
        let handle = crate::rt::spawn(async move {
            // Queued until the task first runs: a request waits in the run queue too.
            let queued = batch_started.elapsed();
            let outcome = fetch(&client, &request, keep).await;
            let mut state = state.borrow_mut();
            let state = &mut *state;
            state.in_flight -= 1;
            if let Some(host) = host {
                if let Some(n) = state.host_in_flight.get_mut(&host) {
                    *n -= 1;
                    if *n == 0 {
                        state.host_in_flight.remove(&host);
                    }
                }
                state.freed_hosts.push(host);
            }
            match outcome {
                Err((e, _)) if is_exhausted(&e) && retries < MAX_EXHAUSTED_RETRIES => {
                    // No descriptor or port free: wait for one rather than fail.
                    state.limit = state.in_flight.max(1);
                    if state.in_flight == 0 {
                        state.retry_at = Some(Instant::now() + EXHAUSTED_BACKOFF);
                    }
                    state.retry.push_front((index, request, retries + 1));
                }
                outcome => {
                    if outcome.is_ok() && state.limit < state.max_limit {
                        state.limit += 1;
                    }
                    let (outcome, mut timings) = match outcome {
                        Ok((fetched, timings)) => (Ok(fetched), timings),
                        Err((e, timings)) => (Err(e), timings),
                    };
                    timings.queued = queued;
                    state.finished.push_back(FetchResult {
                        index,
                        url: Some(request.into_url()),
                        outcome,
                        timings,
                    });
                }
            }
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        });
        self.handles.insert(index, handle);
    }
}

/// True if `e` says no descriptor or local port was free.
fn is_exhausted(e: &Error) -> bool {
    matches!(e.kind(), Kind::Connect)
        && e.os_error()
            .is_some_and(|code| fdlimit::is_exhaustion(rustix::io::Errno::from_raw_os_error(code)))
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
