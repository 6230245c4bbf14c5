//! The guards and iterators that SPSC handles return: [`Reservation`] (room in the
//! ring, until committed), [`Batch`] (a received batch in place, until dropped),
//! and the copying iterators [`Iter`] and [`TryIter`].

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use bytemuck::Pod;

use super::ring::{Claim, Consumer, Peeked, Producer};
use super::{Receiver, Sender};
use crate::{RecvError, TryRecvError};

/// Room for one batch inside the ring, from [`Sender::reserve`].
///
/// Derefs to `&mut [T]`. [`commit`](Self::commit) publishes the batch; dropping the
/// reservation without committing publishes nothing and frees the room, so a
/// reservation left unused is a warning:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let (mut tx, _rx) = shmbatch::spsc::channel::<f64>(8).unwrap();
/// tx.reserve(4).unwrap(); // sends nothing
/// ```
#[must_use = "a reservation publishes nothing unless it is committed"]
pub struct Reservation<'a, T: Pod = f64> {
    tx: &'a mut Sender<T>,
    claim: Claim,
    len: usize,
}

impl<'a, T: Pod> Reservation<'a, T> {
    pub(super) fn new(tx: &'a mut Sender<T>, claim: Claim, len: usize) -> Self {
        Reservation { tx, claim, len }
    }

    /// Shorten the batch to `len` elements (no effect if `len` is not smaller):
    /// reserve for the longest case, fill some, commit that many.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Publish the batch to the receiver.
    pub fn commit(self) {
        self.tx
            .prod
            .publish(&self.tx.link.ring, self.claim, self.len);
    }

    fn ptr(&self) -> NonNull<T> {
        Producer::payload(&self.tx.link.ring, &self.claim, self.len)
    }
}

// SAFETY: through `&Reservation` only `&[T]` is reachable (`Deref`), never the
// sender (Send is automatic: a `&mut Sender` and the claim).
unsafe impl<T: Pod + Sync> Sync for Reservation<'_, T> {}

impl<T: Pod> Deref for Reservation<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the claim covers record(len) bytes that only we access until
        // publish; the pointer is aligned (`Ring::payload`) and T is Pod, so any
        // bytes are a valid T.
        unsafe { std::slice::from_raw_parts(self.ptr().as_ptr(), self.len) }
    }
}

impl<T: Pod> DerefMut for Reservation<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique in-process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr().as_ptr(), self.len) }
    }
}

impl<T: Pod> fmt::Debug for Reservation<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// A received batch, in place in the ring. Derefs to `&[T]` and `&mut [T]`;
/// dropping it gives the space back to the sender. A batch received and dropped
/// unread is a warning; `drop(rx.recv()?)` says it was meant.
#[must_use = "dropping the batch releases it unread"]
pub struct Batch<'a, T: Pod = f64> {
    rx: &'a mut Receiver<T>,
    ptr: NonNull<T>,
    peeked: Peeked,
}

impl<'a, T: Pod> Batch<'a, T> {
    pub(super) fn new(rx: &'a mut Receiver<T>, peeked: Peeked) -> Self {
        Batch {
            ptr: Consumer::payload(&rx.link.ring, &peeked),
            peeked,
            rx,
        }
    }
}

// SAFETY: a `Batch` is a `&mut Receiver` (Send: the receiver is Send) plus the
// exclusive use of one record in the ring, like a `&mut [T]`: moving it to another
// thread moves both, and the release in `drop` is an atomic store that any thread
// may make.
unsafe impl<T: Pod + Send> Send for Batch<'_, T> {}
// SAFETY: through `&Batch` only `&[T]` is reachable (`Deref`), never the receiver.
unsafe impl<T: Pod + Sync> Sync for Batch<'_, T> {}

impl<T: Pod> Deref for Batch<'_, T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the record lies inside the ring (`look` checked it) and belongs
        // to the consumer until `release`; aligned (`Ring::payload`); T is Pod.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.peeked.len) }
    }
}

impl<T: Pod> DerefMut for Batch<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique in-process, and
        // the producer does not touch the record before `release`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.peeked.len) }
    }
}

impl<T: Pod> Drop for Batch<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let rx = &mut *self.rx;
        rx.cons.release(&rx.link.ring, &self.peeked);
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Batch<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The blocking iterator of [`Receiver::iter`]: yields each batch as a `Vec`.
///
/// Each `next` calls [`Receiver::recv`], so after it has ended a later `next` tries
/// again (a new sender may have attached).
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Iter<'a, T: Pod = f64> {
    rx: &'a mut Receiver<T>,
    error: Option<RecvError>,
}

impl<'a, T: Pod> Iter<'a, T> {
    pub(super) fn new(rx: &'a mut Receiver<T>) -> Self {
        Iter { rx, error: None }
    }

    /// Why the last `next` returned `None`: [`RecvError::Disconnected`] at the end
    /// of the stream, [`RecvError::Corrupted`] if the queue was damaged; `None`
    /// while it has not ended.
    #[must_use]
    pub fn error(&self) -> Option<RecvError> {
        self.error
    }
}

impl<T: Pod> Iterator for Iter<'_, T> {
    type Item = Vec<T>;

    fn next(&mut self) -> Option<Vec<T>> {
        match self.rx.recv() {
            Ok(b) => Some(b.to_vec()),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

impl<T: Pod> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// `for batch in &mut rx`: the same as [`Receiver::iter`].
impl<'a, T: Pod> IntoIterator for &'a mut Receiver<T> {
    type Item = Vec<T>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// The non-blocking iterator of [`Receiver::try_iter`]: yields each batch waiting
/// now as a `Vec`.
///
/// Each `next` calls [`Receiver::try_recv`], so after it has ended a later `next`
/// finds batches sent since.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct TryIter<'a, T: Pod = f64> {
    rx: &'a mut Receiver<T>,
    error: Option<TryRecvError>,
}

impl<'a, T: Pod> TryIter<'a, T> {
    pub(super) fn new(rx: &'a mut Receiver<T>) -> Self {
        TryIter { rx, error: None }
    }

    /// Why the last `next` returned `None`: [`TryRecvError::Empty`] when nothing
    /// was waiting, [`TryRecvError::Disconnected`] at the end of the stream,
    /// [`TryRecvError::Corrupted`] if the queue was damaged; `None` while it has
    /// not ended.
    #[must_use]
    pub fn error(&self) -> Option<TryRecvError> {
        self.error
    }
}

impl<T: Pod> Iterator for TryIter<'_, T> {
    type Item = Vec<T>;

    fn next(&mut self) -> Option<Vec<T>> {
        match self.rx.try_recv() {
            Ok(b) => Some(b.to_vec()),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

impl<T: Pod> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}
