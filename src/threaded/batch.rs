//! The threaded client's [`Batch`]: [`fetch_all`](super::Client::fetch_all) run on the
//! client's loops, its results crossing back through bounded channels.
//!
//! On one loop, the input stays shared between the caller and the loop (a mutex the loop
//! takes once per request it admits), with the requests the loop has taken and not yet
//! answered. If the loop dies mid-batch, the stream answers each of those and each request
//! never taken with an error of kind [`Kind::Runtime`]: no request is lost.
//!
//! On several loops (`threads(n)`, n > 1), the batch is **sharded by host**: a thread of its
//! own reads the input, parses each request and deals it to the loop that serves its host
//! (grouped as [`hosts`](Batch::hosts) says) through a bounded channel; each loop runs a
//! batch of its share, with its own scheduler, pool and DNS cache, so a host's slots, rate
//! and pause stay exact with no lock. The loops share one bound of `concurrency` requests in
//! flight (`batch::SharedSlots`: a loop takes what its hosts need of it, and waits for a
//! slot any loop gives back; two loops starting at once may pass it by one each, briefly). Results come back on one channel per
//! loop, the summaries and host statistics are merged at the end, and `run` orders the
//! results by input index as on one loop. The dealer notes each request it deals until it is
//! answered: if a loop dies, its unanswered requests, and the later ones of its hosts, fail
//! with [`Kind::Runtime`], while the other loops go on.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use url::Url;

use super::worker::{or_closed, WhyStopped, Worker};
use super::Client;
use crate::batch::{
    shard_of, BatchReport, BatchSummary, FetchResult, HostGrouping, InOrder, IntoRequest, Progress,
    Settings, SharedSlots, Source,
};
use crate::http::error::{Error, Kind};
use crate::http::request::Request;
use crate::robots::{RobotsCache, RobotsCacheBuilder};
use crate::sync::{lock_ignoring_poison as lock, mpsc};

/// Results in flight between a loop and the caller; the batch on the loop waits when the
/// caller falls this far behind.
const RESULT_WINDOW: usize = 256;

/// Requests dealt to a loop and not yet taken by its batch; the dealer waits when a loop
/// falls this far behind.
const SHARE_WINDOW: usize = 1024;

type SendProgress = Box<dyn FnMut(&Progress) + Send>;

/// Sets up each loop's robots.txt cache from the default builder.
type RobotsSetup = Arc<dyn Fn(RobotsCacheBuilder) -> RobotsCacheBuilder + Send + Sync>;

/// How a threaded batch obeys robots.txt: each loop makes a [`RobotsCache`] with its own
/// client, for this user agent; the origins of a host are on one loop, so each file is
/// fetched once.
#[derive(Clone)]
struct Robots {
    user_agent: String,
    setup: RobotsSetup,
}

impl Robots {
    /// The cache for the loop whose client is `client`.
    fn cache(&self, client: &crate::Client) -> RobotsCache {
        (self.setup)(RobotsCache::builder(client.clone(), &self.user_agent)).build()
    }
}

impl Client {
    /// Starts a batch that fetches every request of `requests` (URLs or
    /// [`Request`]s) on the client's loops, with the settings and guarantees of
    /// [`crate::Client::fetch_all`]. With more than one loop, the batch is sharded by host:
    /// see [several loops](crate::threaded#several-loops).
    ///
    /// ```
    /// # let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse().unwrap())?;
    /// let client = volley::threaded::Client::new();
    /// let urls: Vec<String> = (0..100).map(|i| server.url(&format!("/get?i={i}"))).collect();
    /// // Any executor: here volley's own, on this thread, while the client's loop does the I/O.
    /// let report = volley::Runtime::new()?.block_on(client.fetch_all(urls).concurrency(20).run());
    /// assert_eq!(report.summary.ok, 100);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fetch_all<I>(&self, requests: I) -> Batch<I::IntoIter>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: IntoRequest,
    {
        Batch {
            client: self.clone(),
            source: requests.into_iter(),
            settings: Settings::default(),
            on_progress: None,
            robots: None,
            dealer: false,
        }
    }
}

/// A batch of requests for a threaded [`Client`], being configured: the same settings as
/// [`crate::Batch`].
#[must_use = "a batch does nothing until .run() or .stream()"]
pub struct Batch<I> {
    client: Client,
    source: I,
    settings: Settings,
    on_progress: Option<SendProgress>,
    robots: Option<Robots>,
    /// Read the input on a thread of its own (the dealer) even on one loop: for an input that
    /// blocks.
    dealer: bool,
}

impl<I> fmt::Debug for Batch<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("threaded::Batch")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The input, shared by the caller and the loop, and what the loop has taken from it.
struct Feed<I> {
    source: I,
    /// Taken by the loop and not yet answered, by index, with the URL if it parsed.
    taken: BTreeMap<usize, Option<Url>>,
    next_index: usize,
}

/// The loop's view of the input: takes each request under the lock and notes it as taken.
struct Take<I>(Arc<Mutex<Feed<I>>>);

impl<I> Iterator for Take<I>
where
    I: Iterator,
    I::Item: IntoRequest,
{
    type Item = Result<Request, Error>;

    fn next(&mut self) -> Option<Result<Request, Error>> {
        let mut feed = lock(&self.0);
        let request = feed.source.next()?.into_request();
        let index = feed.next_index;
        feed.next_index += 1;
        let url = request.as_ref().ok().map(|r| r.url.clone());
        feed.taken.insert(index, url);
        Some(request)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        lock(&self.0).source.size_hint()
    }
}

/// What crosses from a loop's batch to the stream. A result is not boxed: it is the
/// message almost every time.
#[allow(clippy::large_enum_variant)]
enum Message {
    Result(FetchResult),
    Done(BatchSummary),
}

/// Applies a setter of [`Settings`] to a threaded batch, for `forward_settings!`.
macro_rules! apply_setting {
    ($batch:ident, $name:ident($($arg:expr),*)) => {{
        let mut batch = $batch;
        batch.settings.$name($($arg),*);
        batch
    }};
}

impl<I> Batch<I>
where
    I: Iterator + Send + 'static,
    I::Item: IntoRequest,
{
    crate::batch::forward_settings!(apply_setting);

    /// As [`crate::Batch::on_progress`]; `f` runs on a loop thread. With several loops, it
    /// gets the sum of their progress (`elapsed` the longest), from whichever loop has just
    /// finished a request.
    pub fn on_progress(mut self, f: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Obeys robots.txt as [`crate::Batch::robots`] does, for the crawler `user_agent` (its
    /// product token, such as `volley`), with each loop's own [`RobotsCache`] with the
    /// default settings (files kept 24 h, crawl delays capped at 30 s).
    pub fn robots(self, user_agent: &str) -> Self {
        self.robots_with(user_agent, |b| b)
    }

    /// [`robots`](Self::robots), with each loop's cache set up by `setup` from
    /// [`RobotsCache::builder`] (say, `|b| b.max_crawl_delay(Duration::from_secs(5))`).
    pub fn robots_with<F>(mut self, user_agent: &str, setup: F) -> Self
    where
        F: Fn(RobotsCacheBuilder) -> RobotsCacheBuilder + Send + Sync + 'static,
    {
        self.robots = Some(Robots {
            user_agent: user_agent.to_owned(),
            setup: Arc::new(setup),
        });
        self
    }

    /// Reads the input on a thread of its own, as with several loops, even on one: for an
    /// input whose `next` may block (a frontier's leases), which must not stall a loop.
    pub(crate) fn input_thread(mut self) -> Self {
        self.dealer = true;
        self
    }

    /// Runs the batch and returns every result in input order, with the summary.
    pub async fn run(self) -> BatchReport {
        let mut stream = self.stream();
        let mut results = InOrder::new(stream.summary.total);
        while let Some(result) = stream.next().await {
            results.put(result);
        }
        let summary = std::mem::replace(&mut stream.summary, BatchSummary::new(None));
        results.finish(summary)
    }

    /// Starts the batch on the client's loops and returns a stream of results in completion
    /// order.
    pub fn stream(self) -> BatchStream {
        let total = match self.source.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let mut stream = BatchStream {
            lanes: Vec::new(),
            turn: 0,
            summary: BatchSummary::new(total),
            started: Instant::now(),
            lost: VecDeque::new(),
            extra: BatchSummary::new(None),
            ended: false,
            workers: Vec::new(),
            feed: None,
            cancel: None,
        };
        if self.client.threads() > 1 || self.dealer {
            match self.client.workers() {
                Ok(workers) => {
                    let workers = workers.to_vec();
                    self.shard(&mut stream, workers);
                    return stream;
                }
                Err(e) => {
                    stream.lose_all(self.source, &e);
                    return stream;
                }
            }
        }
        let feed = Arc::new(Mutex::new(Feed {
            source: self.source,
            taken: BTreeMap::new(),
            next_index: 0,
        }));
        let worker = match self.client.worker_for(None) {
            Ok(worker) => worker,
            Err(e) => {
                stream.lost.extend(FeedHandle(feed).lose(0, &e));
                stream.ended = true;
                return stream;
            }
        };
        let (tx, rx) = mpsc::channel(RESULT_WINDOW);
        let loop_feed = Take(feed.clone());
        let settings = self.settings;
        let on_progress = self.on_progress;
        let robots = self.robots;
        let submitted = worker.submit(
            Box::new(move |client| {
                let mut batch = client.fetch_all(loop_feed).with_settings(settings);
                if let Some(f) = on_progress {
                    batch = batch.on_progress(f);
                }
                if let Some(robots) = robots {
                    batch = batch.robots(robots.cache(client));
                }
                drop(crate::rt::spawn(forward(batch.stream(), tx)));
            }),
            None,
        );
        match submitted {
            Ok(()) => {
                stream.lanes.push(Lane::new(rx, Some(0)));
                stream.workers.push(worker);
                stream.feed = Some(Box::new(FeedHandle(feed)));
            }
            Err(e) => {
                stream.lost.extend(FeedHandle(feed).lose(0, &e));
                stream.ended = true;
            }
        }
        stream
    }

    /// Starts one share of the batch on each of `workers` and the thread that deals the
    /// input to them by host.
    fn shard(self, stream: &mut BatchStream, workers: Vec<Arc<Worker>>) {
        let n = workers.len();
        let settings = self.settings;
        // Each loop may use every slot; together they keep to the one bound.
        let slots = Arc::new(SharedSlots::new(settings.concurrency_limit()));
        let progress = self.on_progress.map(|f| {
            Arc::new(Mutex::new(SharedProgress {
                f,
                each: vec![None; n],
            }))
        });
        let deal = Arc::new(Mutex::new(Deal {
            taken: BTreeMap::new(),
            dead: vec![false; n],
        }));
        let mut shares = Vec::with_capacity(n);
        for (k, worker) in workers.iter().enumerate() {
            let (share_tx, share_rx) = mpsc::channel(SHARE_WINDOW);
            let (tx, rx) = mpsc::channel(RESULT_WINDOW);
            let progress = progress.clone();
            let robots = self.robots.clone();
            let slots = slots.clone();
            let submitted = worker.submit(
                Box::new(move |client| {
                    let share = Share(share_rx);
                    let mut batch = crate::batch::Batch::of_source(client, share)
                        .with_settings(settings)
                        .with_slots(slots);
                    if let Some(progress) = progress {
                        batch = batch.with_progress(Box::new(move |p: &Progress| {
                            SharedProgress::report(&progress, k, p);
                        }));
                    }
                    if let Some(robots) = robots {
                        batch = batch.with_robots(robots.cache(client));
                    }
                    drop(crate::rt::spawn(forward(batch.start(), tx)));
                }),
                None,
            );
            // A loop that refused the job is dead: its lane ends at once, and what would be
            // dealt to it fails.
            if submitted.is_err() {
                lock(&deal).dead[k] = true;
            }
            stream.lanes.push(Lane::new(rx, Some(k)));
            shares.push(share_tx);
        }
        let (dealer_tx, dealer_rx) = mpsc::channel(RESULT_WINDOW);
        stream.lanes.push(Lane::new(dealer_rx, None));
        let cancel = Arc::new(AtomicBool::new(false));
        let dealer = Dealer {
            grouping: settings.grouping(),
            shares,
            results: dealer_tx,
            deal: deal.clone(),
            why: workers.iter().map(|w| w.why_stopped()).collect(),
            cancel: cancel.clone(),
        };
        // Handed over through a slot, so that it is not lost if the thread cannot start.
        let source = Arc::new(Mutex::new(Some(self.source)));
        let slot = source.clone();
        let spawned = std::thread::Builder::new()
            .name("volley-batch-dealer".into())
            .spawn(move || {
                if let Some(source) = lock(&slot).take() {
                    dealer.run(source);
                }
            });
        if let Err(e) = spawned {
            // The dealer's channels are gone with it: every lane ends with nothing dealt.
            let why = format!("cannot start the thread that deals the batch: {e}");
            if let Some(source) = lock(&source).take() {
                stream.lose_all(source, &Error::new(Kind::Runtime(why)));
            }
        }
        stream.workers = workers;
        stream.feed = Some(Box::new(DealHandle(deal)));
        stream.cancel = Some(cancel);
    }
}

/// On a loop: sends each result of `stream` to the caller, then the summary; stops (which
/// cancels the requests in flight) when the caller drops its end.
async fn forward<S: Source>(mut stream: crate::batch::BatchStream<S>, tx: mpsc::Sender<Message>) {
    loop {
        let next = poll_fn(|cx| stream.poll_result(cx));
        let next = or_closed(pin!(next), |cx| tx.poll_closed(cx)).await;
        let message = match next {
            None => return,
            Some(None) => Message::Done(stream.summary().clone()),
            Some(Some(result)) => Message::Result(result),
        };
        let done = matches!(message, Message::Done(_));
        if tx.send(message).await.is_err() || done {
            return;
        }
    }
}

/// A loop's share of a sharded batch: the requests of its hosts, as the dealer sends them.
struct Share(mpsc::Receiver<(usize, Result<Request, Error>)>);

impl Source for Share {
    type Item = Result<Request, Error>;

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Option<usize>, Self::Item)>> {
        self.0
            .poll_recv(cx)
            .map(|next| next.map(|(index, item)| (Some(index), item)))
    }
}

/// What the dealer has dealt, shared with the stream.
struct Deal {
    /// Dealt and not yet answered: by index, the loop it went to and its URL.
    taken: BTreeMap<usize, (usize, Url)>,
    /// The loops known to be gone: what would go to them fails at once.
    dead: Vec<bool>,
}

/// The thread that reads a sharded batch's input and deals each request to its host's loop.
struct Dealer {
    grouping: HostGrouping,
    shares: Vec<mpsc::Sender<(usize, Result<Request, Error>)>>,
    /// For the results the dealer makes itself: invalid requests, and requests whose loop
    /// is gone.
    results: mpsc::Sender<Message>,
    deal: Arc<Mutex<Deal>>,
    why: Vec<WhyStopped>,
    cancel: Arc<AtomicBool>,
}

impl Dealer {
    fn run<I>(self, source: I)
    where
        I: Iterator,
        I::Item: IntoRequest,
    {
        for (index, item) in source.enumerate() {
            if self.cancel.load(Ordering::Relaxed) {
                return;
            }
            let request = match item.into_request() {
                Ok(request) => request,
                Err(e) => {
                    let result = FetchResult::failed(index, e.url().cloned(), e);
                    if self.results.blocking_send(Message::Result(result)).is_err() {
                        return; // the stream is gone
                    }
                    continue;
                }
            };
            let lane = shard_of(&request.url, self.grouping, self.shares.len());
            let url = request.url.clone();
            let alive = {
                let mut deal = lock(&self.deal);
                let alive = !deal.dead[lane];
                if alive {
                    deal.taken.insert(index, (lane, url.clone()));
                }
                alive
            };
            // A loop that went away after the note was made: the stream fails the request
            // if it saw the loop go first (and took the note), else the dealer does.
            let undelivered = !alive
                || (self.shares[lane]
                    .blocking_send((index, Ok(request)))
                    .is_err()
                    && lock(&self.deal).taken.remove(&index).is_some());
            if undelivered {
                let error = self.why[lane].error(Some(&url));
                let result = FetchResult::failed(index, Some(url), error);
                if self.results.blocking_send(Message::Result(result)).is_err() {
                    return;
                }
            }
        }
        // Dropping the senders ends each loop's share: its batch finishes what it has.
    }
}

/// The progress of each loop of a sharded batch, and the caller's callback for their sum.
struct SharedProgress {
    f: SendProgress,
    each: Vec<Option<Progress>>,
}

impl SharedProgress {
    /// Notes loop `k`'s progress `p` and calls the callback with the sum over the loops.
    fn report(shared: &Mutex<SharedProgress>, k: usize, p: &Progress) {
        let mut shared = lock(shared);
        shared.each[k] = Some(*p);
        let mut sum = *p;
        for other in shared.each.iter().enumerate().filter(|&(i, _)| i != k) {
            let Some(q) = other.1 else { continue };
            sum.done += q.done;
            sum.ok += q.ok;
            sum.failed += q.failed;
            sum.in_flight += q.in_flight;
            sum.bytes += q.bytes;
            sum.elapsed = sum.elapsed.max(q.elapsed);
            sum.retries += q.retries;
            sum.waiting += q.waiting;
            sum.paused_hosts += q.paused_hosts;
        }
        sum.total = None;
        (shared.f)(&sum);
    }
}

/// What the stream holds of the requests given to loops, without their type: what it needs
/// if a loop dies.
trait LostRequests: Send {
    /// Marks `index` answered.
    fn answered(&self, index: usize);
    /// Fails every request given to loop `lane` and not answered (on one loop, every request
    /// never taken too).
    fn lose(&self, lane: usize, error: &Error) -> Vec<FetchResult>;
}

/// The failure of a request that a loop will never answer.
fn never_answered(index: usize, url: Option<Url>, error: &Error) -> FetchResult {
    let why = match error.kind() {
        Kind::Runtime(why) => why.clone(),
        _ => error.to_string(),
    };
    let mut e = Error::new(Kind::Runtime(why));
    if let Some(url) = &url {
        e = e.with_url(url);
    }
    FetchResult::failed(index, url, e)
}

struct FeedHandle<I>(Arc<Mutex<Feed<I>>>);

impl<I> LostRequests for FeedHandle<I>
where
    I: Iterator + Send,
    I::Item: IntoRequest,
{
    fn answered(&self, index: usize) {
        lock(&self.0).taken.remove(&index);
    }

    fn lose(&self, _: usize, error: &Error) -> Vec<FetchResult> {
        let mut feed = lock(&self.0);
        let mut lost: Vec<FetchResult> = std::mem::take(&mut feed.taken)
            .into_iter()
            .map(|(index, url)| never_answered(index, url, error))
            .collect();
        while let Some(item) = feed.source.next() {
            let index = feed.next_index;
            feed.next_index += 1;
            lost.push(match item.into_request() {
                Ok(request) => never_answered(index, Some(request.url), error),
                Err(e) => FetchResult::failed(index, None, e),
            });
        }
        lost
    }
}

struct DealHandle(Arc<Mutex<Deal>>);

impl LostRequests for DealHandle {
    fn answered(&self, index: usize) {
        lock(&self.0).taken.remove(&index);
    }

    fn lose(&self, lane: usize, error: &Error) -> Vec<FetchResult> {
        let mut deal = lock(&self.0);
        deal.dead[lane] = true;
        let theirs: Vec<usize> = deal
            .taken
            .iter()
            .filter(|(_, (to, _))| *to == lane)
            .map(|(&index, _)| index)
            .collect();
        theirs
            .into_iter()
            .filter_map(|index| deal.taken.remove(&index).map(|(_, url)| (index, url)))
            .map(|(index, url)| never_answered(index, Some(url), error))
            .collect()
    }
}

/// One source of results for the stream: a loop running (a share of) the batch, or the
/// dealer of a sharded batch.
struct Lane {
    rx: mpsc::Receiver<Message>,
    /// The loop (its index in the stream's workers), or `None` for the dealer.
    worker: Option<usize>,
    /// The loop's summary once it has sent it; until then the results counted.
    counted: BatchSummary,
    ended: bool,
}

impl Lane {
    fn new(rx: mpsc::Receiver<Message>, worker: Option<usize>) -> Lane {
        Lane {
            rx,
            worker,
            counted: BatchSummary::new(None),
            ended: false,
        }
    }
}

/// The results of a threaded batch, in completion order; made by [`Batch::stream`]. Dropping
/// it cancels the requests still in flight on the loops.
pub struct BatchStream {
    lanes: Vec<Lane>,
    /// The lane to look at first: each gets its turn.
    turn: usize,
    summary: BatchSummary,
    started: Instant,
    /// Failures made up for requests no loop will answer, to hand out.
    lost: VecDeque<FetchResult>,
    /// The counts of the made-up failures.
    extra: BatchSummary,
    ended: bool,
    /// Keep the loop threads alive while the batch runs.
    workers: Vec<Arc<Worker>>,
    feed: Option<Box<dyn LostRequests>>,
    /// Tells a sharded batch's dealer to stop reading the input.
    cancel: Option<Arc<AtomicBool>>,
}

impl fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("threaded::BatchStream")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        if let Some(cancel) = &self.cancel {
            cancel.store(true, Ordering::Relaxed);
        }
    }
}

impl BatchStream {
    /// Fails every request of `source`: no loop is there to run them.
    fn lose_all<I>(&mut self, source: I, error: &Error)
    where
        I: Iterator + Send,
        I::Item: IntoRequest,
    {
        let feed = Arc::new(Mutex::new(Feed {
            source,
            taken: BTreeMap::new(),
            next_index: 0,
        }));
        self.lost.extend(FeedHandle(feed).lose(0, error));
        self.ended = true;
    }

    /// The next result to finish, or `None` when every request has.
    pub async fn next(&mut self) -> Option<FetchResult> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The totals so far (the loops' own, merged, once the batch is done).
    pub fn summary(&self) -> &BatchSummary {
        &self.summary
    }

    /// Poll-style [`next`](Self::next).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<FetchResult>> {
        loop {
            let elapsed = self.started.elapsed();
            if let Some(result) = self.lost.pop_front() {
                self.extra.record(&result, elapsed);
                self.summary.record(&result, elapsed);
                return Poll::Ready(Some(result));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            let mut waiting = false;
            let n = self.lanes.len();
            for i in 0..n {
                let k = (self.turn + i) % n;
                let lane = &mut self.lanes[k];
                if lane.ended {
                    continue;
                }
                match lane.rx.poll_recv(cx) {
                    Poll::Pending => waiting = true,
                    Poll::Ready(Some(Message::Result(result))) => {
                        self.turn = (k + 1) % n;
                        if let Some(feed) = &self.feed {
                            feed.answered(result.index);
                        }
                        lane.counted.record(&result, elapsed);
                        self.summary.record(&result, elapsed);
                        return Poll::Ready(Some(result));
                    }
                    Poll::Ready(Some(Message::Done(summary))) => {
                        lane.counted = summary;
                        lane.ended = true;
                    }
                    Poll::Ready(None) => {
                        lane.ended = true;
                        // A loop went away mid-batch: what it was given fails. (The dealer's
                        // lane ends when the input does.)
                        if let Some(w) = lane.worker {
                            let error = self.workers[w].stopped_error(None);
                            if let Some(feed) = &self.feed {
                                self.lost.extend(feed.lose(w, &error));
                            }
                        }
                    }
                }
            }
            if !self.lost.is_empty() {
                continue;
            }
            if waiting {
                return Poll::Pending;
            }
            self.finish();
        }
    }

    /// Every lane has ended: the summary becomes the loops' own, merged, with the counts of
    /// the results they did not make.
    fn finish(&mut self) {
        let mut summary = BatchSummary::new(self.summary.total);
        for lane in &self.lanes {
            summary.merge(&lane.counted);
        }
        summary.merge(&self.extra);
        self.summary = summary;
        self.feed = None;
        self.ended = true;
    }
}
