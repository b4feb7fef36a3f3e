//! [`Source`]: where a batch's requests come from. The public API takes any iterator; the
//! threaded client's loops, one shard of a batch each, take theirs from a channel that a
//! thread of their own fills, and may have to wait for it.

use std::task::{Context, Poll};

use super::IntoRequest;

/// The input of a batch: requests, one at a time.
pub(crate) trait Source {
    type Item: IntoRequest;

    /// The next request, with its index in the whole input when the source knows it (else
    /// the batch counts them from 0); `Pending` when none is ready yet (the source then wakes
    /// `cx`), `None` at the end.
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Option<usize>, Self::Item)>>;

    /// As [`Iterator::size_hint`].
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}

/// An iterator is a source that is always ready.
impl<I> Source for I
where
    I: Iterator,
    I::Item: IntoRequest,
{
    type Item = I::Item;

    fn poll_item(&mut self, _: &mut Context<'_>) -> Poll<Option<(Option<usize>, I::Item)>> {
        Poll::Ready(self.next().map(|item| (None, item)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        Iterator::size_hint(self)
    }
}
