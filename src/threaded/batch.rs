//! The threaded client's [`Batch`]: [`fetch_all`](super::Client::fetch_all) run on a loop,
//! its results crossing back through a bounded channel.
//!
//! The input stays shared between the caller and the loop (a mutex the loop takes once per
//! request it admits), with the requests the loop has taken and not yet answered. If the
//! loop dies mid-batch, the stream answers each of those and each request never taken with
//! an error of kind [`Kind::Runtime`]: no request is lost.

use std::collections::BTreeMap;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use url::Url;

use super::worker::{or_closed, Worker};
use super::Client;
use crate::batch::{
    BatchReport, BatchSummary, FetchResult, InOrder, IntoRequest, Progress, Settings,
};
use crate::http::error::{Error, Kind};
use crate::http::request::Request;
use crate::sync::{lock_ignoring_poison as lock, mpsc};

/// Results in flight between the loop and the caller; the batch on the loop waits when the
/// caller falls this far behind.
const RESULT_WINDOW: usize = 256;

type SendProgress = Box<dyn FnMut(&Progress) + Send>;

impl Client {
    /// Starts a batch that fetches every request of `requests` (URLs or
    /// [`Request`]s) on a loop thread, with the settings and guarantees of
    /// [`crate::Client::fetch_all`].
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

/// What crosses from the loop's batch to the stream. A result is not boxed: it is the
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

    /// As [`crate::Batch::on_progress`]; `f` runs on the loop thread.
    pub fn on_progress(mut self, f: impl FnMut(&Progress) + Send + 'static) -> Self {
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
        results.finish(stream.summary)
    }

    /// Starts the batch on a loop and returns a stream of results in completion order.
    pub fn stream(self) -> BatchStream {
        let total = match self.source.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let feed = Arc::new(Mutex::new(Feed {
            source: self.source,
            taken: BTreeMap::new(),
            next_index: 0,
        }));
        let (tx, rx) = mpsc::channel(RESULT_WINDOW);
        let mut stream = BatchStream {
            rx,
            summary: BatchSummary::new(total),
            started: Instant::now(),
            lost: None,
            worker: None,
            feed: None,
        };
        let worker = match self.client.worker_for(None) {
            Ok(worker) => worker,
            Err(e) => {
                stream.lose(feed, &e);
                return stream;
            }
        };
        let loop_feed = Take(feed.clone());
        let settings = self.settings;
        let on_progress = self.on_progress;
        let submitted = worker.submit(
            Box::new(move |client| {
                let mut batch = client.fetch_all(loop_feed).with_settings(settings);
                if let Some(f) = on_progress {
                    batch = batch.on_progress(f);
                }
                drop(crate::rt::spawn(forward(batch.stream(), tx)));
            }),
            None,
        );
        match submitted {
            Ok(()) => {
                stream.worker = Some(worker);
                stream.feed = Some(Box::new(FeedHandle(feed)));
            }
            Err(e) => stream.lose(feed, &e),
        }
        stream
    }
}

/// On the loop: sends each result of `stream` to the caller, then the summary; stops (which
/// cancels the requests in flight) when the caller drops its end.
async fn forward<I>(mut stream: crate::batch::BatchStream<Take<I>>, tx: mpsc::Sender<Message>)
where
    I: Iterator,
    I::Item: IntoRequest,
{
    loop {
        let next = or_closed(stream.next(), |cx| tx.poll_closed(cx)).await;
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

/// The caller's hold on the shared input, without its type: what the stream needs if the
/// loop dies.
trait LostRequests: Send {
    /// Marks `index` answered.
    fn answered(&self, index: usize);
    /// Takes every request taken and not answered, then every one never taken, as failures.
    fn drain(&self, error: &Error) -> Vec<FetchResult>;
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

    fn drain(&self, error: &Error) -> Vec<FetchResult> {
        let mut feed = lock(&self.0);
        let failed = |index, url: Option<Url>| {
            let why = match error.kind() {
                Kind::Runtime(why) => why.clone(),
                _ => error.to_string(),
            };
            let mut e = Error::new(Kind::Runtime(why));
            if let Some(url) = &url {
                e = e.with_url(url);
            }
            FetchResult::failed(index, url, e)
        };
        let mut lost: Vec<FetchResult> = std::mem::take(&mut feed.taken)
            .into_iter()
            .map(|(index, url)| failed(index, url))
            .collect();
        while let Some(item) = feed.source.next() {
            let index = feed.next_index;
            feed.next_index += 1;
            lost.push(match item.into_request() {
                Ok(request) => failed(index, Some(request.url)),
                Err(e) => FetchResult::failed(index, None, e),
            });
        }
        lost
    }
}

/// The results of a threaded batch, in completion order; made by [`Batch::stream`]. Dropping
/// it cancels the requests still in flight on the loop.
pub struct BatchStream {
    rx: mpsc::Receiver<Message>,
    summary: BatchSummary,
    started: Instant,
    /// Failures made up for requests the loop will never answer, once it is gone.
    lost: Option<std::vec::IntoIter<FetchResult>>,
    /// Keeps the loop thread alive while the batch runs.
    worker: Option<Arc<Worker>>,
    feed: Option<Box<dyn LostRequests>>,
}

impl fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("threaded::BatchStream")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl BatchStream {
    /// Fails every request of `feed`: the loop is not there to run them.
    fn lose<I>(&mut self, feed: Arc<Mutex<Feed<I>>>, error: &Error)
    where
        I: Iterator + Send,
        I::Item: IntoRequest,
    {
        self.lost = Some(FeedHandle(feed).drain(error).into_iter());
    }

    /// The next result to finish, or `None` when every request has.
    pub async fn next(&mut self) -> Option<FetchResult> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The totals so far (the loop's own, once the batch is done).
    pub fn summary(&self) -> &BatchSummary {
        &self.summary
    }

    /// Poll-style [`next`](Self::next).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<FetchResult>> {
        if let Some(lost) = &mut self.lost {
            let next = lost.next();
            if let Some(result) = &next {
                self.summary.record(result, self.started.elapsed());
            }
            return Poll::Ready(next);
        }
        match std::task::ready!(self.rx.poll_recv(cx)) {
            Some(Message::Result(result)) => {
                if let Some(feed) = &self.feed {
                    feed.answered(result.index);
                }
                self.summary.record(&result, self.started.elapsed());
                Poll::Ready(Some(result))
            }
            Some(Message::Done(summary)) => {
                self.summary = summary;
                self.feed = None;
                self.lost = Some(Vec::new().into_iter());
                Poll::Ready(None)
            }
            None => {
                // The loop went away mid-batch.
                let error = match &self.worker {
                    Some(worker) => worker.stopped_error(None),
                    None => Error::new(Kind::Runtime("the loop is gone".into())),
                };
                let lost = match self.feed.take() {
                    Some(feed) => feed.drain(&error),
                    None => Vec::new(),
                };
                self.lost = Some(lost.into_iter());
                self.poll_next(cx)
            }
        }
    }
}
