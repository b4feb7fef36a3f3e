//! [`Worker`]: fetches what a [`Frontier`] holds until it is drained, through a threaded
//! batch, and completes each URL with its outcome.

use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::sync::mpsc;
use std::task::Poll;
use std::time::{Duration, Instant};

use http::Method;
use url::Url;

use super::{Frontier, FrontierError, Leased, Outcome};
use crate::batch::{BatchSummary, Duplicates, FetchResult};
use crate::http::request::Request;
use crate::rt::{sleep, timeout, Runtime};
use crate::threaded;

/// The input of a worker's batch: the leased URLs, as the worker sends them. Its `next`
/// waits for the next one, so the batch reads it on a thread of its own.
#[derive(Debug)]
pub struct Leases(mpsc::Receiver<Request>);

impl Iterator for Leases {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        self.0.recv().ok()
    }
}

/// What a worker did: see [`Worker::run`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkReport {
    /// URLs leased and fetched by this worker.
    pub fetched: u64,
    /// Outcomes recorded by this worker; fewer than `fetched` when some URL's lease had run
    /// out and another worker recorded it first.
    pub recorded: u64,
    /// URLs found in the results and put back (new ones only).
    pub found: u64,
    /// The batch's summary.
    pub summary: BatchSummary,
}

/// Fetches a frontier's URLs until it is drained: leases them ahead of the batch (at most
/// [`window`](Worker::window) at a time), runs them through a [`threaded::Client`]'s batch
/// (sharded by host over its loops, with the settings the caller gives it), and completes
/// each with the [`Outcome`] the caller makes of its result, in groups of those ready
/// together. It renews its leases while it works, and ends when nothing is queued and
/// nothing is leased, by any worker.
///
/// The frontier is used from the calling thread only (a Redis frontier's calls block): the
/// requests run on the client's loops, and the leased URLs reach the batch through a
/// channel read on a thread of the batch's own.
///
/// ```
/// use std::time::Duration;
/// use volley::frontier::{Frontier, MemoryFrontier, Outcome, Worker};
/// use volley::{threaded, Url};
///
/// # let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse().unwrap())?;
/// let mut frontier = MemoryFrontier::new(8, Duration::from_secs(30));
/// let urls: Vec<Url> = (0..50)
///     .map(|i| Url::parse(&server.url(&format!("/get?i={i}"))).unwrap())
///     .collect();
/// frontier.put(&urls).unwrap();
/// let report = Worker::new(&mut frontier, threaded::Client::new())
///     .run(
///         |batch| batch.concurrency(10),
///         |_leased, result, _found| Outcome {
///             ok: result.outcome.is_ok(),
///             record: String::new(),
///         },
///     )
///     .unwrap();
/// assert_eq!(report.recorded, 50);
/// assert!(frontier.is_drained().unwrap());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Worker<'a, F: ?Sized> {
    frontier: &'a mut F,
    client: threaded::Client,
    window: usize,
    poll: Duration,
    renew_every: Duration,
}

impl<F: ?Sized> fmt::Debug for Worker<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl<'a, F: Frontier + ?Sized> Worker<'a, F> {
    /// A worker of `frontier` whose requests run on `client`'s loops.
    pub fn new(frontier: &'a mut F, client: threaded::Client) -> Worker<'a, F> {
        Worker {
            frontier,
            client,
            window: 1000,
            poll: Duration::from_millis(200),
            renew_every: Duration::from_secs(5),
        }
    }

    /// The most URLs leased and not completed at once (default 1,000; at least 1): enough to
    /// keep the batch's slots busy, few enough to hand back quickly if this worker dies.
    pub fn window(mut self, n: usize) -> Self {
        self.window = n.max(1);
        self
    }

    /// How often the worker renews its leases (default 5 s): well under the frontier's
    /// lease time. And how long it waits before looking again when it has nothing to do
    /// while other workers hold what is left (a tenth of this, at most 200 ms).
    pub fn renew_every(mut self, every: Duration) -> Self {
        self.renew_every = every.max(Duration::from_millis(10));
        self.poll = (every / 10).min(Duration::from_millis(200));
        self
    }

    /// Runs until the frontier is drained. `configure` sets up the batch (concurrency, per
    /// host limit, rate, retries, ...); `record` makes each result's [`Outcome`], and may push
    /// URLs it found (links, for a crawl) into its `Vec`, which are put back.
    pub fn run<C, R>(self, configure: C, mut record: R) -> Result<WorkReport, FrontierError>
    where
        C: FnOnce(threaded::Batch<Leases>) -> threaded::Batch<Leases>,
        R: FnMut(&Leased, &FetchResult, &mut Vec<Url>) -> Outcome,
    {
        let Worker {
            frontier,
            client,
            window,
            poll,
            renew_every,
        } = self;
        let runtime = Runtime::new().map_err(|e| FrontierError {
            frontier: "(worker)".into(),
            doing: "start the worker's runtime",
            why: e.to_string(),
        })?;
        let (tx, rx) = mpsc::channel();
        // The frontier has deduplicated the URLs: the batch need not remember them.
        let batch = client.fetch_all(Leases(rx)).duplicates(Duplicates::Fetch);
        let mut stream = configure(batch).input_thread().stream();
        let mut sender = Some(tx);
        let mut in_flight: HashMap<usize, Leased> = HashMap::new();
        let mut next_index = 0;
        let mut report = WorkReport {
            fetched: 0,
            recorded: 0,
            found: 0,
            summary: BatchSummary::new(None),
        };
        let mut renewed = Instant::now();
        runtime.block_on(async {
            loop {
                if let Some(tx) = &sender {
                    // Leases in groups: once half the window is free, or nothing is in hand.
                    if in_flight.len() <= window / 2 {
                        for leased in frontier.lease(window - in_flight.len())? {
                            let request = Request::new(Method::GET, leased.url.clone());
                            if tx.send(request).is_err() {
                                break; // the batch is gone; its stream says why
                            }
                            in_flight.insert(next_index, leased);
                            next_index += 1;
                            report.fetched += 1;
                        }
                    }
                    if in_flight.is_empty() {
                        if frontier.is_drained()? {
                            sender = None; // the batch's input ends: it finishes
                            continue;
                        }
                        // Other workers hold what is left (or it is not due yet).
                        sleep(poll).await;
                        if renewed.elapsed() >= renew_every {
                            frontier.renew()?;
                            renewed = Instant::now();
                        }
                        continue;
                    }
                }
                // The results ready now (waiting up to the renewal for the first).
                let mut ready = Vec::new();
                let first = timeout(renew_every, stream.next()).await;
                let ended = match first {
                    Ok(None) => true,
                    Ok(Some(result)) => {
                        ready.push(result);
                        poll_fn(|cx| {
                            while ready.len() < 500 {
                                match stream.poll_next(cx) {
                                    Poll::Ready(Some(result)) => ready.push(result),
                                    _ => break,
                                }
                            }
                            Poll::Ready(())
                        })
                        .await;
                        false
                    }
                    Err(_) => false,
                };
                let mut done = Vec::with_capacity(ready.len());
                let mut found = Vec::new();
                for result in &ready {
                    let Some(leased) = in_flight.remove(&result.index) else {
                        continue;
                    };
                    let outcome = record(&leased, result, &mut found);
                    done.push((leased, outcome));
                }
                if !done.is_empty() {
                    report.recorded += frontier.complete(&done)? as u64;
                }
                if !found.is_empty() {
                    report.found += frontier.put(&found)? as u64;
                }
                if renewed.elapsed() >= renew_every {
                    frontier.renew()?;
                    renewed = Instant::now();
                }
                if ended {
                    report.summary = stream.summary().clone();
                    return Ok(report);
                }
            }
        })
    }
}
