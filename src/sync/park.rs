//! [`block_on`]: runs one future to completion on this thread, parking it between wakes. It
//! drives no I/O: it is for futures whose work happens elsewhere (a volley loop thread, a
//! plain thread), such as the [`blocking`](crate::blocking) client's.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Unparks the thread that made it.
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is ready, parking in between.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // Wakes this thread held back for the end of a loop turn must not wait behind the
        // park: the answer may depend on them.
        crate::rt::flush_deferred();
        // A wake between the poll and here leaves the token set, so this returns at once.
        thread::park();
    }
}
