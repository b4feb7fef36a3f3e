//! [`join_all`] and [`select`]: waiting for several futures, with the names and shapes of
//! the `futures` crate's, so code ports by changing the import.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Waits for every future of `futures` and returns their outputs in the same order.
///
/// Each is boxed once and polled in turn until it is ready; every wake polls those still
/// pending, so this suits tens or hundreds of futures. For thousands, [`spawn`](crate::spawn)
/// them and join the handles, or use [`Client::fetch_all`](crate::Client::fetch_all).
///
/// ```
/// use volley::sync::join_all;
///
/// let rt = volley::Runtime::new()?;
/// let out = rt.block_on(join_all((1..=3).map(|i| async move {
///     volley::sleep(std::time::Duration::from_millis(10 * (4 - i))).await;
///     i * 10
/// })));
/// assert_eq!(out, [10, 20, 30]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn join_all<I>(futures: I) -> JoinAll<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    let pending: Vec<_> = futures
        .into_iter()
        .map(|f| Slot::Pending(Box::pin(f.into_future())))
        .collect();
    JoinAll { slots: pending }
}

enum Slot<F: Future> {
    Pending(Pin<Box<F>>),
    Done(Option<F::Output>),
}

/// The future of [`join_all`].
#[must_use = "futures do nothing unless awaited"]
pub struct JoinAll<F: Future> {
    slots: Vec<Slot<F>>,
}

impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<F::Output>> {
        let mut all_done = true;
        for slot in &mut self.slots {
            if let Slot::Pending(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(output) => *slot = Slot::Done(Some(output)),
                    Poll::Pending => all_done = false,
                }
            }
        }
        if !all_done {
            return Poll::Pending;
        }
        let outputs = self
            .slots
            .iter_mut()
            .map(|slot| match slot {
                Slot::Done(output) => output.take().expect("joined twice"),
                Slot::Pending(_) => unreachable!("all slots are done"),
            })
            .collect();
        Poll::Ready(outputs)
    }
}

impl<F: Future> fmt::Debug for JoinAll<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pending = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Pending(_)))
            .count();
        f.debug_struct("JoinAll")
            .field("futures", &self.slots.len())
            .field("pending", &pending)
            .finish()
    }
}

/// One of two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first.
    Left(A),
    /// The second.
    Right(B),
}

/// Waits for the first of two futures: `Left((output, b))` if `a` finished first (ties go to
/// `a`), with the other future, unfinished, to await or drop.
///
/// Both must be [`Unpin`]: pin a future with [`std::pin::pin!`] or `Box::pin` first.
///
/// ```
/// use std::time::Duration;
/// use volley::sync::{select, Either};
///
/// let rt = volley::Runtime::new()?;
/// rt.block_on(async {
///     let slow = std::pin::pin!(volley::sleep(Duration::from_secs(60)));
///     let fast = std::pin::pin!(async { "done" });
///     match select(slow, fast).await {
///         Either::Right((out, _slow)) => assert_eq!(out, "done"),
///         Either::Left(_) => unreachable!(),
///     }
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn select<A, B>(a: A, b: B) -> Select<A, B>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    Select {
        inner: Some((a, b)),
    }
}

/// The future of [`select`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Select<A, B> {
    inner: Option<(A, B)>,
}

impl<A, B> Future for Select<A, B>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    type Output = Either<(A::Output, B), (B::Output, A)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (a, b) = self
            .inner
            .as_mut()
            .expect("Select polled after it finished");
        if let Poll::Ready(out) = Pin::new(a).poll(cx) {
            let (_, b) = self.inner.take().expect("present");
            return Poll::Ready(Either::Left((out, b)));
        }
        if let Poll::Ready(out) = Pin::new(b).poll(cx) {
            let (a, _) = self.inner.take().expect("present");
            return Poll::Ready(Either::Right((out, a)));
        }
        Poll::Pending
    }
}
