//! A volley loop on a thread of its own: [`Worker`] is the handle the threaded client's
//! clones, responses and batch streams share; the thread runs a [`Runtime`] with one
//! [`crate::Client`] and does what the handles send it.
//!
//! A job crosses as a boxed closure on an unbounded [`mpsc`] channel and runs on the loop
//! with the loop's client, usually spawning a task. The loop's task waits on the channel with
//! its std `Waker`; a send from another thread wakes it through the runtime's `mio::Waker`
//! (one `eventfd` write, skipped while a wake is already on its way). Answers go back on
//! [`oneshot`] and bounded [`mpsc`] channels whose receivers' wakers belong to the caller's
//! executor, whichever it is.
//!
//! The thread stops when the last handle drops (the channel closes, the loop returns, and
//! the runtime's drop closes every socket); the handle joins it. If the thread dies, its
//! reason is kept, every queued job is dropped (so every waiting caller's reply channel
//! closes) and every later job is refused: callers get a [`Kind::Runtime`] error, never a
//! hang.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};
use url::Url;

use crate::http::config::ClientBuilder;
use crate::http::error::{Error, Kind};
use crate::http::request::Request;
use crate::http::timings::Timings;
use crate::rt::Runtime;
use crate::sync::{lock_ignoring_poison as lock, mpsc, oneshot};

/// Work for the loop: runs on the loop thread with the loop's client.
pub(crate) type Job = Box<dyn FnOnce(&crate::http::client::Client) + Send>;

/// Builds each loop's client from the defaults.
pub(crate) type Configure = Arc<dyn Fn(ClientBuilder) -> ClientBuilder + Send + Sync>;

/// Bodies of at most this many bytes (by `Content-Length`) are read on the loop before the
/// head is handed over, so the caller gets head and body in one message; larger or
/// unknown-length bodies stream.
pub(crate) const EAGER_BODY: u64 = 64 * 1024;

/// Body pieces in flight between the loop and the reader: the loop reads ahead this many
/// pieces (each at most one read or one decoded piece) and then waits.
pub(crate) const BODY_WINDOW: usize = 4;

/// The handle on one loop thread.
#[derive(Debug)]
pub(crate) struct Worker {
    /// `None` once dropping, to close the channel before joining.
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
    thread_id: ThreadId,
    /// Why the loop stopped, once it has.
    stopped: Arc<Mutex<Option<String>>>,
}

impl Worker {
    /// Starts a loop thread named `name`.
    pub(crate) fn start(name: String, configure: Configure) -> std::io::Result<Worker> {
        let (jobs, rx) = mpsc::unbounded_channel::<Job>();
        let stopped = Arc::new(Mutex::new(None));
        let stopped_by_thread = stopped.clone();
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || run(rx, configure, stopped_by_thread))?;
        Ok(Worker {
            jobs: Some(jobs),
            thread_id: thread.thread().id(),
            thread: Some(thread),
            stopped,
        })
    }

    /// Hands `job` to the loop; fails, naming why, if the loop has stopped.
    pub(crate) fn submit(&self, job: Job, url: Option<&Url>) -> Result<(), Error> {
        let jobs = self
            .jobs
            .as_ref()
            .expect("a worker only loses its sender when dropped");
        jobs.try_send(job).map_err(|_| self.stopped_error(url))
    }

    /// The error for a request that the loop will never answer.
    pub(crate) fn stopped_error(&self, url: Option<&Url>) -> Error {
        self.why_stopped().error(url)
    }

    /// Why the loop stopped, once it has, without holding the loop alive.
    pub(crate) fn why_stopped(&self) -> WhyStopped {
        WhyStopped(self.stopped.clone())
    }
}

/// Why a loop stopped, once it has: see [`Worker::why_stopped`].
#[derive(Debug, Clone)]
pub(crate) struct WhyStopped(Arc<Mutex<Option<String>>>);

impl WhyStopped {
    /// The error for a request that the loop will never answer.
    pub(crate) fn error(&self, url: Option<&Url>) -> Error {
        let why = match lock(&self.0).as_deref() {
            Some(why) => format!("the volley loop thread stopped: {why}"),
            // The loop is alive, so the task serving this request ended without answering.
            None => "the request's task on the volley loop ended without an answer (it panicked)"
                .to_owned(),
        };
        let e = Error::new(Kind::Runtime(why));
        match url {
            Some(url) => e.with_url(url),
            None => e,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the loop: it drops every task, closing their sockets.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            // The last handle can only be dropped on the loop itself by code of the user's
            // that the loop runs; joining there would wait forever, so the thread is left to
            // finish on its own.
            if thread::current().id() != self.thread_id {
                let _ = thread.join();
            }
        }
    }
}

/// The loop thread: build the runtime and the client, run jobs until the channel closes.
fn run(mut jobs: mpsc::Receiver<Job>, configure: Configure, stopped: Arc<Mutex<Option<String>>>) {
    // This thread runs only the loop: answers to other threads may wait for the end of a
    // turn and go out together (see `rt::defer_wake`).
    crate::rt::enable_deferred_wakes();
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let rt = Runtime::new().map_err(|e| format!("it could not create its runtime: {e}"))?;
        let client = configure(ClientBuilder::new())
            .try_build()
            .map_err(|e| format!("its client settings are invalid: {e:#}"))?;
        // Declared last, so dropped first in a panic: the reason is set before the tasks
        // (and their reply channels) are dropped with the runtime.
        let _marks = MarkOnPanic(&stopped);
        rt.block_on(async {
            while let Some(job) = jobs.recv().await {
                job(&client);
            }
        });
        Ok(())
    }));
    let why = match outcome {
        Ok(Ok(())) => "all its handles were dropped".to_owned(),
        Ok(Err(why)) => why,
        Err(panic) => format!("it panicked: {}", panic_message(&*panic)),
    };
    *lock(&stopped) = Some(why);
    // Later jobs are refused from here on, and queued ones are dropped, which closes the
    // reply channel of every request still waiting.
    drop(jobs);
}

/// Sets the loop's stop reason if it is dropped during a panic.
struct MarkOnPanic<'a>(&'a Mutex<Option<String>>);

impl Drop for MarkOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            *lock(self.0) = Some("it panicked".to_owned());
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(a panic payload that is not a string)"
    }
}

/// A response head as it crosses from the loop to the caller.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) reason: std::borrow::Cow<'static, str>,
    pub(crate) headers: HeaderMap,
    pub(crate) url: Url,
    pub(crate) content_length: Option<u64>,
    pub(crate) remote_addr: Option<std::net::SocketAddr>,
    pub(crate) timings: Timings,
    pub(crate) body: BodyFrom,
}

/// Where the caller's body comes from.
#[derive(Debug)]
pub(crate) enum BodyFrom {
    /// Read on the loop already: the whole body and its trailers.
    Done(Bytes, Option<HeaderMap>),
    /// Still coming, piece by piece.
    Stream(mpsc::Receiver<Piece>),
}

/// One message of a streamed body.
#[derive(Debug)]
pub(crate) enum Piece {
    Data(Bytes),
    /// The end: trailers, and the timings up to the end of the body.
    End(Option<HeaderMap>, Timings),
    Failed(Error),
}

/// Runs `request` on the loop and answers on `reply`: the head (with the body if it is small
/// and framed by length), then the body's pieces. Stops, closing the connection, as soon as
/// the caller drops its end.
pub(crate) async fn serve(
    client: crate::http::client::Client,
    request: Request,
    mut reply: oneshot::Sender<Result<Head, Error>>,
) {
    // Matched in the statement that awaits it: a named answer would keep its room (a whole
    // response) in the task beside `response`.
    let mut response =
        match or_closed(pin!(client.execute(request)), |cx| reply.poll_closed(cx)).await {
            None => return, // the caller went away; dropping the request future cancels it
            Some(Err(e)) => {
                let _ = reply.send(Err(e));
                return;
            }
            Some(Ok(response)) => response,
        };
    let eager = response.content_length().is_some_and(|n| n <= EAGER_BODY);
    let mut head = Head {
        status: response.status(),
        version: response.version(),
        reason: response.reason_kept(),
        headers: response.take_headers(),
        url: response.url().clone(),
        content_length: response.content_length(),
        remote_addr: response.remote_addr(),
        timings: response.timings(),
        body: BodyFrom::Done(Bytes::new(), None),
    };
    if eager {
        let body = or_closed(pin!(response.read_all(true)), |cx| reply.poll_closed(cx)).await;
        match body {
            None => return,
            Some(Err(e)) => {
                let _ = reply.send(Err(e));
                return;
            }
            Some(Ok((body, _))) => {
                head.timings = response.timings();
                head.body = BodyFrom::Done(Bytes::from(body), response.trailers().cloned());
                let _ = reply.send(Ok(head));
                return;
            }
        }
    }
    let (pieces, rx) = mpsc::channel(BODY_WINDOW);
    head.body = BodyFrom::Stream(rx);
    if reply.send(Ok(head)).is_err() {
        return;
    }
    loop {
        let got = or_closed(pin!(response.chunk()), |cx| pieces.poll_closed(cx)).await;
        let piece = match got {
            None => return,
            Some(Ok(Some(data))) => Piece::Data(data),
            Some(Ok(None)) => Piece::End(response.trailers().cloned(), response.timings()),
            Some(Err(e)) => Piece::Failed(e),
        };
        let last = !matches!(piece, Piece::Data(_));
        if pieces.send(piece).await.is_err() || last {
            return;
        }
    }
}

/// Runs `future` until it finishes (`Some` of its output) or `closed` is ready (`None`; the
/// caller then drops the future): work for a caller that may go away.
///
/// It takes the future pinned where the caller keeps it (`or_closed(pin!(f), ..)`): taken by
/// value and pinned here, it would be stored twice in the caller's future, the argument and
/// the pinned copy (for [`serve`], 1.5 KB more in every request's task).
pub(crate) async fn or_closed<F: Future>(
    mut future: Pin<&mut F>,
    mut closed: impl FnMut(&mut Context<'_>) -> Poll<()>,
) -> Option<F::Output> {
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        closed(cx).map(|()| None)
    })
    .await
}
