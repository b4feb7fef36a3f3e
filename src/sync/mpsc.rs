//! A queue from many senders to one receiver: bounded ([`channel`], where a send waits for
//! room) or not ([`unbounded_channel`]).
//!
//! The receiver gets `None` once every sender is gone and the queue is empty. Dropping the
//! receiver drops what is queued and makes every later send fail, giving the value back.
//!
//! ```
//! let (tx, mut rx) = volley::sync::mpsc::channel(2);
//! let producer = std::thread::spawn(move || {
//!     for i in 0..10 {
//!         tx.blocking_send(i).unwrap(); // waits while two are queued
//!     }
//! });
//! let mut sum = 0;
//! while let Some(i) = rx.blocking_recv() {
//!     sum += i;
//! }
//! assert_eq!(sum, 45);
//! producer.join().unwrap();
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::{lock, wake};

/// A channel that holds at most `capacity` values (at least 1); [`Sender::send`] waits for
/// room.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    make(Some(capacity.max(1)))
}

/// A channel with no bound; [`Sender::send`] never waits.
pub fn unbounded_channel<T>() -> (Sender<T>, Receiver<T>) {
    make(None)
}

fn make<T>(capacity: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            capacity,
            rx_waker: None,
            tx_wakers: Vec::new(),
            senders: 1,
            rx_gone: false,
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

struct Chan<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<T>,
    capacity: Option<usize>,
    rx_waker: Option<Waker>,
    /// Senders waiting for room; all are woken when a value is taken.
    tx_wakers: Vec<Waker>,
    senders: usize,
    rx_gone: bool,
}

/// The sending half; clone it for more senders.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// The receiver is gone; the value is given back.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the receiver is gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why [`Sender::try_send`] could not send; the value is given back.
#[derive(PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is at its capacity.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Closed(_) => "Closed(..)",
        })
    }
}

impl<T> Sender<T> {
    /// Queues `value`, waiting while the channel is full. Fails, giving the value back, if
    /// the receiver is gone.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = Some(value);
        poll_fn(
            |cx| match self.try_send(value.take().expect("polled after ready")) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(TrySendError::Closed(v)) => Poll::Ready(Err(SendError(v))),
                Err(TrySendError::Full(v)) => {
                    let mut state = lock(&self.chan.state);
                    // Room may have been made between the two locks: look again.
                    if state.rx_gone || !state.is_full() {
                        drop(state);
                        value = Some(v);
                        cx.waker().wake_by_ref();
                    } else {
                        if !state.tx_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                            state.tx_wakers.push(cx.waker().clone());
                        }
                        value = Some(v);
                    }
                    Poll::Pending
                }
            },
        )
        .await
    }

    /// Queues `value` if there is room now.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut state = lock(&self.chan.state);
            if state.rx_gone {
                return Err(TrySendError::Closed(value));
            }
            if state.is_full() {
                return Err(TrySendError::Full(value));
            }
            state.queue.push_back(value);
            state.rx_waker.take()
        };
        if let Some(waker) = waker {
            wake(waker);
        }
        Ok(())
    }

    /// [`send`](Self::send), blocking this thread while the channel is full; for code outside
    /// any async runtime.
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        super::block_on(self.send(value))
    }

    /// True once the receiver is gone.
    pub fn is_closed(&self) -> bool {
        lock(&self.chan.state).rx_gone
    }

    /// Ready once the receiver is gone (to stop producing what nobody will read).
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = lock(&self.chan.state);
        if state.rx_gone {
            return Poll::Ready(());
        }
        if !state.tx_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.tx_wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits until the receiver is gone.
    pub async fn closed(&self) {
        poll_fn(|cx| self.poll_closed(cx)).await
    }
}

impl<T> State<T> {
    fn is_full(&self) -> bool {
        self.capacity.is_some_and(|cap| self.queue.len() >= cap)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        lock(&self.chan.state).senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.chan.state);
            state.senders -= 1;
            if state.senders > 0 {
                return;
            }
            state.rx_waker.take()
        };
        if let Some(waker) = waker {
            wake(waker);
        }
    }
}

impl<T> Receiver<T> {
    /// The next value, waiting for one; `None` once every sender is gone and the queue is
    /// empty.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll-style [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let (value, wakers) = {
            let mut state = lock(&self.chan.state);
            match state.queue.pop_front() {
                Some(value) => (value, std::mem::take(&mut state.tx_wakers)),
                None if state.senders == 0 => return Poll::Ready(None),
                None => {
                    if !state
                        .rx_waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        state.rx_waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        };
        wakers.into_iter().for_each(wake);
        Poll::Ready(Some(value))
    }

    /// A value if one is queued now.
    pub fn try_recv(&mut self) -> Option<T> {
        let (value, wakers) = {
            let mut state = lock(&self.chan.state);
            let value = state.queue.pop_front()?;
            (value, std::mem::take(&mut state.tx_wakers))
        };
        wakers.into_iter().for_each(wake);
        Some(value)
    }

    /// [`recv`](Self::recv), blocking this thread; for code outside any async runtime.
    pub fn blocking_recv(&mut self) -> Option<T> {
        super::block_on(self.recv())
    }

    /// Stops the channel: later sends fail, and what is queued can still be received.
    pub fn close(&mut self) {
        let wakers = {
            let mut state = lock(&self.chan.state);
            state.rx_gone = true;
            std::mem::take(&mut state.tx_wakers)
        };
        wakers.into_iter().for_each(wake);
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (queue, wakers) = {
            let mut state = lock(&self.chan.state);
            state.rx_gone = true;
            (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.tx_wakers),
            )
        };
        // Queued values (and whatever they own: reply channels, sockets) drop outside the
        // lock, so their own destructors may use channels freely.
        drop(queue);
        wakers.into_iter().for_each(wake);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpsc::Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.chan.state);
        f.debug_struct("mpsc::Receiver")
            .field("queued", &state.queue.len())
            .field("senders", &state.senders)
            .finish()
    }
}

/// Lets a receiver be awaited as a future of its next value, for [`select`](super::select).
impl<T> Future for &mut Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_send_waits_for_room_across_threads() {
        let (tx, mut rx) = channel(1);
        let producer = std::thread::spawn(move || {
            for i in 0..1000u32 {
                tx.blocking_send(i).unwrap();
            }
        });
        let mut expected = 0;
        while let Some(i) = rx.blocking_recv() {
            assert_eq!(i, expected); // one sender: in order
            expected += 1;
        }
        assert_eq!(expected, 1000);
        producer.join().unwrap();
    }

    #[test]
    fn dropped_receiver_fails_sends_and_drops_the_queue() {
        let (tx, rx) = unbounded_channel();
        let token = Arc::new(());
        tx.try_send(token.clone()).unwrap();
        assert_eq!(Arc::strong_count(&token), 2);
        drop(rx);
        assert_eq!(Arc::strong_count(&token), 1);
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send(token), Err(TrySendError::Closed(_))));
    }

    #[test]
    fn a_full_sender_wakes_when_the_receiver_goes() {
        let (tx, mut rx) = channel(1);
        tx.try_send(1).unwrap();
        assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
        let thread = std::thread::spawn(move || tx.blocking_send(3));
        std::thread::sleep(std::time::Duration::from_millis(20));
        rx.close();
        assert_eq!(thread.join().unwrap(), Err(SendError(3)));
        assert_eq!(rx.try_recv(), Some(1));
    }
}
