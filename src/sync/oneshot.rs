//! A channel for one value: [`channel`] gives a [`Sender`] and a [`Receiver`], which is a
//! future of the value.
//!
//! ```
//! let rt = volley::Runtime::new()?;
//! rt.block_on(async {
//!     let (tx, rx) = volley::sync::oneshot::channel::<u32>();
//!     drop(tx);
//!     assert!(rx.await.is_err()); // the sender went away without sending
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::{lock, wake};

/// Makes a channel for one value.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Mutex::new(Inner {
        value: None,
        rx_waker: None,
        tx_waker: None,
        tx_gone: false,
        rx_gone: false,
    }));
    (
        Sender {
            inner: inner.clone(),
        },
        Receiver { inner },
    )
}

struct Inner<T> {
    value: Option<T>,
    /// The receiver waiting for the value.
    rx_waker: Option<Waker>,
    /// The sender waiting in [`Sender::closed`].
    tx_waker: Option<Waker>,
    tx_gone: bool,
    rx_gone: bool,
}

/// The sending half: [`send`](Self::send) once.
pub struct Sender<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

/// The receiving half: a future of the value, or of [`RecvError`] if the sender was dropped
/// without sending.
pub struct Receiver<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

/// The sender was dropped without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sender was dropped without sending")
    }
}

impl std::error::Error for RecvError {}

impl<T> Sender<T> {
    /// Sends the value, waking the receiver. Gives the value back if the receiver is gone.
    pub fn send(self, value: T) -> Result<(), T> {
        let waker = {
            let mut inner = lock(&self.inner);
            if inner.rx_gone {
                return Err(value);
            }
            inner.value = Some(value);
            inner.rx_waker.take()
        };
        if let Some(waker) = waker {
            wake(waker);
        }
        Ok(())
    }

    /// True once the receiver has been dropped: nobody wants the value any more.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner).rx_gone
    }

    /// Ready once the receiver has been dropped (to stop work nobody waits for).
    pub fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = lock(&self.inner);
        if inner.rx_gone {
            return Poll::Ready(());
        }
        if !inner
            .tx_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.tx_waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits until the receiver has been dropped.
    pub async fn closed(&mut self) {
        std::future::poll_fn(|cx| self.poll_closed(cx)).await
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut inner = lock(&self.inner);
            inner.tx_gone = true;
            inner.rx_waker.take()
        };
        if let Some(waker) = waker {
            wake(waker);
        }
    }
}

impl<T> Receiver<T> {
    /// The value if it has been sent; `Ok(None)` if not yet, `Err` if it never will be.
    pub fn try_recv(&mut self) -> Result<Option<T>, RecvError> {
        let mut inner = lock(&self.inner);
        match inner.value.take() {
            Some(value) => Ok(Some(value)),
            None if inner.tx_gone => Err(RecvError),
            None => Ok(None),
        }
    }

    /// Waits for the value on this thread, blocking it; for code outside any async runtime.
    pub fn blocking_recv(self) -> Result<T, RecvError> {
        super::block_on(self)
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = lock(&self.inner);
        if let Some(value) = inner.value.take() {
            return Poll::Ready(Ok(value));
        }
        if inner.tx_gone {
            return Poll::Ready(Err(RecvError));
        }
        if !inner
            .rx_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.rx_waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (waker, value) = {
            let mut inner = lock(&self.inner);
            inner.rx_gone = true;
            (inner.tx_waker.take(), inner.value.take())
        };
        // A value sent but never received is dropped here, outside the lock.
        drop(value);
        if let Some(waker) = waker {
            wake(waker);
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Receiver").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_crosses_threads_and_wakes_the_receiver() {
        let (tx, rx) = channel();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.send(String::from("hi")).unwrap();
        });
        assert_eq!(rx.blocking_recv().as_deref(), Ok("hi"));
        thread.join().unwrap();
    }

    #[test]
    fn dropped_sender_is_an_error_and_dropped_receiver_closes() {
        let (tx, rx) = channel::<u8>();
        drop(tx);
        assert_eq!(rx.blocking_recv(), Err(RecvError));

        let (mut tx, rx) = channel::<u8>();
        assert!(!tx.is_closed());
        let thread = std::thread::spawn(move || drop(rx));
        super::super::block_on(tx.closed());
        assert!(tx.is_closed());
        assert_eq!(tx.send(1), Err(1));
        thread.join().unwrap();
    }
}
