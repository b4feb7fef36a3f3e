//! A client for any executor and any thread: [`Client`] is `Send + Sync + Clone`, its futures
//! are `Send` and need no particular runtime (tokio, multi-thread or current-thread; smol;
//! `futures::executor::block_on`), and the I/O runs on volley loops of its own threads.
//!
//! ```
//! # let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse().unwrap())?;
//! # let url = server.url("/get");
//! let client = volley::threaded::Client::new();
//! let task = async move {
//!     let resp = client.get(&url).send().await?;
//!     assert_eq!(resp.status(), 200);
//!     resp.text().await
//! };
//! // Await it in a tokio task, an async-std task or any `block_on`; here, volley's own.
//! let body = volley::Runtime::new()?.block_on(task)?;
//! assert!(body.contains("/get"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it works, and what the hop costs
//!
//! The first request starts the loop threads (one by default, [`ClientBuilder::threads`]
//! for more); each runs a volley [`Runtime`](crate::Runtime) with its own
//! [`Client`](crate::Client), pool and DNS cache. A request crosses to its loop as a job on a
//! channel (a host always goes to the same loop, so its connections are reused), runs there
//! as a task, and its response head crosses back on a one-shot channel; a body of at most
//! 64 KiB with a `Content-Length` comes with the head, a larger one streams in pieces through
//! a bounded channel (the loop reads at most four pieces ahead of the reader). Every wait
//! is a std `Waker`: the loop is woken through its `mio::Waker` (one `eventfd` write, and
//! none while a wake is already pending), the caller's task through its own executor.
//!
//! So a request costs, beyond the loop's own work, two channel messages, one boxed job and
//! a task spawn on the loop, and up to two cross-thread wakes, each a syscall and a context
//! switch when the other side sleeps. The loop holds the wakes it owes other threads to the
//! end of its turn and sends them together, so a burst of answers wakes the caller's
//! executor once. Measured on 2 cores against nginx (W3: 200,000 keep-alive GETs over 50
//! connections, `benches/w3_tokio.sh`, raw output in `peers/w3-tokio-results.txt`), the hop
//! added about 5 µs of CPU per request (medians: 21.0 µs from a tokio current-thread runtime,
//! 16.2 µs on volley's own loop; reqwest took 22.6 µs), nearly all of it the one context
//! switch per request that `perf stat` counts when the two threads take turns
//! (`peers/w3-tokio-perfstat.txt`). Where requests take milliseconds rather than the 20 µs of
//! a loopback server, the hop is lost in the noise; where they take microseconds, use
//! volley's own [`Runtime`](crate::Runtime) and [`Client`](crate::Client), or
//! [`fetch_all`](Client::fetch_all), whose requests do not hop one by one.
//!
//! # Several loops
//!
//! With [`threads(n)`](ClientBuilder::threads), single requests go to the loop of their
//! host, and a [`fetch_all`](Client::fetch_all) batch is **sharded by host**: a thread of
//! its own (`volley-batch-dealer`) reads the input, parses each request and deals it to
//! the loop that serves its host (grouped as the batch's `hosts` setting says), through a
//! bounded channel. Each loop runs a batch of its share with its own scheduler, pool and DNS
//! cache, so a host's slots, rate, pause and retry budget stay exact without a lock; the
//! loops share one bound of `concurrency` requests in flight, each taking what its hosts
//! need of it. Results come back on one channel per loop; the
//! summary, its latency histogram and the host statistics are merged when the batch ends,
//! and `run` returns them in input order, as on one loop. The input is read in order, so a
//! loop that falls behind (its hosts slow or paused, its `max_waiting` reached) fills its
//! channel (1,024 requests) and the dealer waits for it, holding the others back too, as
//! one loop stops reading its input at `max_waiting`. If a loop dies, the requests dealt to it and not answered, and the later
//! ones of its hosts, fail with [`ErrorKind::Runtime`](crate::ErrorKind::Runtime); the
//! other loops go on, and every request still gets exactly one result.
//!
//! Dropping a request's future, a [`Response`] or a [`BatchStream`] cancels its work on
//! the loop and closes its connection. The loop threads stop, and are joined, when the last
//! handle (client clone, response or stream) is dropped; none is left behind. If a loop
//! thread dies (a panic in code of yours that runs on it, such as the
//! [`configure`](ClientBuilder::configure) closure), every request waiting on it and every
//! later one fails with an error of kind [`ErrorKind::Runtime`](crate::ErrorKind::Runtime)
//! saying why.

mod batch;
mod response;
pub(crate) mod worker;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use http::Method;
use url::Url;

use crate::http::client::request_methods;
use crate::http::error::{Error, Kind};
use crate::http::request::{IntoUrl, Request};
use crate::sync::oneshot;
use worker::{Configure, Worker};

pub use batch::{Batch, BatchStream};
pub use response::Response;

/// A request being built for the threaded [`Client`]; `send().await` sends it.
pub type RequestBuilder = crate::http::client::RequestBuilder<Client>;

/// An HTTP/1.1 client that can be used from any thread and any executor: `Send`, `Sync`, and
/// cheap to clone (clones share the loop threads, their pools and DNS caches). See the
/// [module docs](self).
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    configure: Configure,
    threads: usize,
    /// Started on first use.
    workers: OnceLock<Result<Vec<Arc<Worker>>, String>>,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("threaded::Client")
            .field("threads", &self.shared.threads)
            .field("started", &self.shared.workers.get().is_some())
            .finish()
    }
}

/// Settings of a threaded [`Client`]: how many loop threads, and the settings of the
/// [`Client`](crate::Client) each of them runs.
///
/// ```
/// use std::time::Duration;
///
/// let client = volley::threaded::Client::builder()
///     .configure(|b| b.timeout(Duration::from_secs(5)).user_agent("crawler/1.0"))
///     .build();
/// # drop(client);
/// ```
#[must_use]
pub struct ClientBuilder {
    configure: Configure,
    threads: usize,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("threaded::ClientBuilder")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The settings of each loop's client: `f` gets a [`crate::http::config::ClientBuilder`] with the
    /// defaults and returns it configured. It runs on each loop thread when the loop starts
    /// (a resolver or other setting that is not `Send` is made there), so it must be `Send`
    /// and callable more than once.
    pub fn configure<F>(mut self, f: F) -> Self
    where
        F: Fn(crate::http::config::ClientBuilder) -> crate::http::config::ClientBuilder
            + Send
            + Sync
            + 'static,
    {
        self.configure = Arc::new(f);
        self
    }

    /// The number of loop threads (default 1; at least 1). Requests are spread over them by
    /// host: one host's requests always run on the same loop.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Builds the client. No thread starts until the first request.
    pub fn build(self) -> Client {
        Client {
            shared: Arc::new(Shared {
                configure: self.configure,
                threads: self.threads,
                workers: OnceLock::new(),
            }),
        }
    }

    /// Builds the client after checking the settings on this thread, or says which one is
    /// invalid (the same check [`crate::http::config::ClientBuilder::try_build`] makes).
    pub fn try_build(self) -> Result<Client, Error> {
        (self.configure)(crate::http::config::ClientBuilder::new()).into_config()?;
        Ok(self.build())
    }
}

impl Client {
    /// A client with the default settings and one loop thread.
    pub fn new() -> Client {
        Client::builder().build()
    }

    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            configure: Arc::new(|b| b),
            threads: 1,
        }
    }

    request_methods!();

    /// Starts a request with any method.
    pub fn request(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        crate::http::client::RequestBuilder::new(self.clone(), method, url)
    }

    /// Sends `request` on its loop, follows redirects per the policy, and returns the final
    /// response once its head has arrived.
    pub async fn execute(&self, request: Request) -> Result<Response, Error> {
        let worker = self.worker_for(Some(&request.url))?;
        let url = request.url.clone();
        let (reply, answer) = oneshot::channel();
        worker.submit(
            Box::new(move |client| {
                drop(crate::rt::spawn(worker::serve(
                    client.clone(),
                    request,
                    reply,
                )));
            }),
            Some(&url),
        )?;
        match answer.await {
            Ok(Ok(head)) => Ok(Response::new(head, worker)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(worker.stopped_error(Some(&url))),
        }
    }

    /// Runs `job` on the loop that serves `url` (the first loop for `None`), starting the
    /// loops on first use.
    pub(crate) fn worker_for(&self, url: Option<&Url>) -> Result<Arc<Worker>, Error> {
        let workers = self.workers().map_err(|e| match url {
            Some(url) => e.with_url(url),
            None => e,
        })?;
        let index = match (url, workers.len()) {
            (_, 1) | (None, _) => 0,
            (Some(url), n) => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                (url.scheme(), url.host_str(), url.port_or_known_default()).hash(&mut hasher);
                (hasher.finish() % n as u64) as usize
            }
        };
        Ok(workers[index].clone())
    }

    /// The number of loop threads.
    pub(crate) fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Every loop, started on first use.
    pub(crate) fn workers(&self) -> Result<&[Arc<Worker>], Error> {
        let workers = self.shared.workers.get_or_init(|| {
            (0..self.shared.threads)
                .map(|i| {
                    Worker::start(format!("volley-loop-{i}"), self.shared.configure.clone())
                        .map(Arc::new)
                        .map_err(|e| format!("cannot start a loop thread: {e}"))
                })
                .collect()
        });
        match workers {
            Ok(workers) => Ok(workers),
            Err(why) => Err(Error::new(Kind::Runtime(why.clone()))),
        }
    }
}

impl crate::http::client::RequestBuilder<Client> {
    /// Sends the request on the client's loop and waits for the final response head.
    pub async fn send(self) -> Result<Response, Error> {
        let request = self.request?;
        self.client.execute(request).await
    }
}
