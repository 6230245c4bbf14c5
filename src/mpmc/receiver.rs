//! The consuming end: [`Receiver`], its [`Batch`] guard and its iterators.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::attach::{create_queue, open_queue, Attachment, End};
use super::queue::{Miss, Queue, Seen, Taken};
use super::recover::{recover_head, Recovered};
use crate::error::{RecvError, RecvTimeoutError, Result, TryRecvError};
use crate::layout::Role;
use crate::options::Options;
use crate::sync::Arc;
use crate::wait::{self, Deadline, Wait, WaitPolicy};

/// The consuming end of an MPMC queue.
///
/// `Send` and `Sync`: share it between threads by reference or in an `Arc`, or
/// [`Clone`] it (clones share one attachment). Every method takes `&self`. See the
/// [module docs](super) for the behaviour when empty or disconnected.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (tx, rx) = shmbatch::mpmc::channel::<f64>(8, 4)?;
/// tx.send(&[1.0, 2.0])?;
/// tx.send(&[3.0])?;
/// drop(tx);
/// // Every batch as a Vec, until every sender is gone and all is drained.
/// let all: Vec<Vec<f64>> = rx.iter().collect();
/// assert_eq!(all, [vec![1.0, 2.0], vec![3.0]]);
/// # Ok(()) }
/// ```
pub struct Receiver<T: Pod = f64> {
    end: End,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> Clone for Receiver<T> {
    /// Another receiver on the same attachment (no new table entry).
    fn clone(&self) -> Self {
        Receiver::from_end(self.end.clone_end())
    }
}

impl<T: Pod> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("attachment", &self.end.att)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Receiver<T> {
    /// Create the segment `name` with `slots` slots of up to `max_batch` elements
    /// each, and attach to it as a receiver. The segment is removed when this
    /// handle (and its clones) drop, unless [`persist`](Self::persist) is called.
    ///
    /// # Errors
    /// As [`Sender::create`](super::Sender::create).
    pub fn create(name: &str, slots: usize, max_batch: usize) -> Result<Self> {
        Self::create_with(name, slots, max_batch, &Options::default())
    }

    /// [`create`](Self::create) with [`Options`], as
    /// [`Sender::create_with`](super::Sender::create_with).
    ///
    /// # Errors
    /// As [`Sender::create_with`](super::Sender::create_with).
    pub fn create_with(name: &str, slots: usize, max_batch: usize, opts: &Options) -> Result<Self> {
        Self::attach(create_queue::<T>(name, slots, max_batch, opts, false)?)
            .map(|h| h.with_policy(opts))
    }

    /// Open the existing segment `name` as one more receiver.
    ///
    /// # Errors
    /// As [`Sender::open`](super::Sender::open).
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &Options::default())
    }

    /// [`open`](Self::open) with [`Options`], as
    /// [`Sender::open_with`](super::Sender::open_with).
    ///
    /// # Errors
    /// As [`Sender::open_with`](super::Sender::open_with).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
        let ty = opts.type_info::<T>()?;
        Self::attach(opts.open(|init_wait| open_queue(name, &ty, init_wait))?)
            .map(|h| h.with_policy(opts))
    }

    /// Open the segment `name` as one more receiver if it exists, else create it,
    /// race-free, as [`Sender::open_or_create`](super::Sender::open_or_create).
    ///
    /// # Errors
    /// As [`Sender::open_or_create`](super::Sender::open_or_create).
    pub fn open_or_create(
        name: &str,
        slots: usize,
        max_batch: usize,
        opts: &Options,
    ) -> Result<Self> {
        Self::attach(create_queue::<T>(name, slots, max_batch, opts, true)?)
            .map(|h| h.with_policy(opts))
    }

    /// Attach once more to the same queue, as a new receiver with its own
    /// attachment (for tests of process death on a [`channel`](super::channel)).
    ///
    /// # Errors
    /// [`Error::TooManyAttached`](crate::Error::TooManyAttached).
    #[doc(hidden)]
    pub fn attach_again(&self) -> Result<Self> {
        Self::attach(Arc::clone(&self.end.att.queue))
    }

    /// Make the next attempt that finds the queue empty check the peers and
    /// recover what dead ones hold, without waiting for the liveness interval (for
    /// tests and fuzzing).
    #[doc(hidden)]
    pub fn check_peers_next(&self) {
        self.end.live.ask();
    }

    pub(super) fn attach(q: Arc<Queue>) -> Result<Self> {
        Ok(Self::from_end(End::new(Attachment::new(
            q,
            Role::Receiver,
        )?)))
    }

    fn from_end(end: End) -> Self {
        Receiver {
            end,
            _t: PhantomData,
        }
    }

    fn queue(&self) -> &Queue {
        self.end.queue()
    }

    /// How this handle's blocking and timed calls wait ([`WaitPolicy`]): what
    /// [`Options::wait_policy`] set, [`WaitPolicy::Adaptive`] by default. A clone
    /// starts with its original's.
    #[must_use]
    pub fn wait_policy(&self) -> WaitPolicy {
        self.end.policy
    }

    /// Change how this handle's blocking and timed calls wait, from the next call
    /// on (its clones keep theirs).
    pub fn set_wait_policy(&mut self, policy: WaitPolicy) {
        self.end.policy = policy;
    }

    fn with_policy(mut self, opts: &Options) -> Self {
        self.set_wait_policy(opts.policy());
        self
    }

    /// Longest batch the queue carries, in elements.
    pub fn max_batch(&self) -> usize {
        self.queue().dims.max_batch
    }

    /// Number of slots: how many batches the queue holds (what `create` was
    /// given).
    pub fn capacity(&self) -> usize {
        self.queue().dims.slots
    }

    /// Slots claimed by senders and not yet taken by a receiver: committed batches
    /// plus those being written. A snapshot, stale as soon as it is read.
    pub fn len(&self) -> usize {
        self.queue().waiting()
    }

    /// Whether no committed batch waits at the head of the queue right now.
    pub fn is_empty(&self) -> bool {
        !self.queue().head_committed()
    }

    /// The segment name (`None` for a [`channel`](super::channel)).
    pub fn name(&self) -> Option<&str> {
        self.queue().region.name()
    }

    /// A token that keeps this segment mapped in this process after the handle
    /// drops (`None` for a heap queue): for bindings whose in-place views may
    /// outlive the handle. See [`Mapped`](crate::Mapped).
    pub fn keep_mapped(&self) -> Option<crate::Mapped> {
        self.queue().region.keep_mapped()
    }

    /// Keep the segment when the creating handle drops (no effect on an opener).
    pub fn persist(&self) {
        self.queue().region.persist();
    }

    /// Whether senders attached once and all are gone (checks that their processes
    /// are alive: one system call per attached sender). Batches they committed may
    /// still be waiting.
    pub fn is_disconnected(&self) -> bool {
        self.end.att.peer_gone(true)
    }

    /// Receive the next batch, waiting while the queue is empty. The guard derefs
    /// to the batch in its slot; dropping it frees the slot.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once every sender is gone and everything they
    /// committed has been received; [`RecvError::Corrupted`] if the shared state
    /// was damaged.
    pub fn recv(&self) -> Result<Batch<'_, T>, RecvError> {
        let taken = self.take_until(Deadline::never());
        Ok(self.guard(taken.map_err(RecvTimeoutError::without_deadline)?))
    }

    /// Receive the next batch if one is waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when nothing is waiting now (or, rarely, when other
    /// handles kept winning the race), otherwise as [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Batch<'_, T>, TryRecvError> {
        Ok(self.guard(self.take(&mut Seen::default())?))
    }

    /// Receive the next batch, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], otherwise as [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Batch<'_, T>, RecvTimeoutError> {
        Ok(self.guard(self.take_until(Deadline::after(timeout))?))
    }

    /// Receive the next batch, waiting until `deadline` at the latest.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Batch<'_, T>, RecvTimeoutError> {
        Ok(self.guard(self.take_until(Deadline::at(deadline))?))
    }

    /// Receive the next batch into `out` (replacing its contents), waiting while
    /// the queue is empty. Returns the batch length.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_into(&self, out: &mut Vec<T>) -> Result<usize, RecvError> {
        crate::verbs::fill(out, &self.recv()?);
        Ok(out.len())
    }

    /// Receive the next batch into `out` if one is waiting.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_into(&self, out: &mut Vec<T>) -> Result<usize, TryRecvError> {
        crate::verbs::fill(out, &self.try_recv()?);
        Ok(out.len())
    }

    /// Receive the next batch into `out`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_into_timeout(
        &self,
        out: &mut Vec<T>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        crate::verbs::fill(out, &self.recv_timeout(timeout)?);
        Ok(out.len())
    }

    /// Receive the next batch into `out`, waiting until `deadline` at the latest.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_into_deadline(
        &self,
        out: &mut Vec<T>,
        deadline: Instant,
    ) -> Result<usize, RecvTimeoutError> {
        crate::verbs::fill(out, &self.recv_deadline(deadline)?);
        Ok(out.len())
    }

    /// A blocking iterator over the batches, each copied into a `Vec`: it waits
    /// for each next one, and ends once every sender is gone and everything they
    /// committed has been received (or at the first other error: call
    /// [`recv`](Self::recv) to see it).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the batches waiting now, each copied into a `Vec`; it ends
    /// when the queue is empty (or disconnected, or at an error).
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Take the next batch and mark this attachment as that of a dead process
    /// before the slot's claim word is written: what a receiver killed right after
    /// its claim CAS leaves (for tests of recovery). Returns a copy of the batch,
    /// which the queue delivers again.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    #[doc(hidden)]
    pub fn simulate_death_taking(&self) -> Result<Vec<T>, TryRecvError> {
        let batch = self.guard(self.take_as::<true>(&mut Seen::default())?);
        let copy = batch.to_vec();
        batch.simulate_death();
        Ok(copy)
    }

    /// Claim the next committed batch, without waiting.
    #[inline(always)]
    fn take(&self, seen: &mut Seen) -> Result<Taken, TryRecvError> {
        self.take_as::<false>(seen)
    }

    /// `take`; with `DIES`, as `Queue::try_take`. An empty queue is the slow path:
    /// now and then (`Liveness`) it checks the senders and recovers what dead
    /// handles hold (`recover_head`); once every sender is gone, it looks once more
    /// and recovers everything before it says `Disconnected`.
    #[inline(always)]
    fn take_as<const DIES: bool>(&self, seen: &mut Seen) -> Result<Taken, TryRecvError> {
        let att = &*self.end.att;
        let corrupted = |reason| Err(TryRecvError::Corrupted { reason });
        let mut last_look = false;
        loop {
            match self.queue().try_take::<DIES>(att.holder, seen) {
                Ok(t) => return Ok(t),
                Err(Miss::Corrupted(reason)) => return corrupted(reason),
                Err(Miss::Contended) => return Err(TryRecvError::Empty),
                Err(Miss::NotNow) => {}
            }
            if last_look {
                // Every sender is gone: what is left to deliver is what the dead
                // left behind.
                match recover_head(att, &self.end.scanned, *seen, true)? {
                    Recovered::Taken(t) => return Ok(t),
                    Recovered::Retry => continue,
                    Recovered::Nothing => return Err(TryRecvError::Disconnected),
                }
            }
            let check = self.end.live.due(false);
            let gone = att.peer_gone(check);
            if check {
                match recover_head(att, &self.end.scanned, *seen, false)? {
                    Recovered::Taken(t) => return Ok(t),
                    Recovered::Retry => {
                        // What lies behind the recovered slot may need recovering
                        // too: the next look checks again.
                        self.end.live.ask();
                        continue;
                    }
                    Recovered::Nothing => {}
                }
            }
            if !gone {
                return Err(TryRecvError::Empty);
            }
            // Every sender is gone and we synchronised with their detaches: all they
            // committed is visible now. One more look decides.
            last_look = true;
        }
    }

    /// Wait for a committed batch until `deadline`.
    #[inline]
    fn take_until(&self, deadline: Deadline) -> Result<Taken, RecvTimeoutError> {
        wait::until(
            &mut Taking {
                rx: self,
                seen: Seen::default(),
            },
            deadline,
        )
    }

    fn guard(&self, taken: Taken) -> Batch<'_, T> {
        let ptr = self.queue().payload::<T>(taken.index);
        Batch {
            // SAFETY: derived from the non-null data pointer of the region.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            taken,
            rx: self,
        }
    }
}

/// A receiver waiting for a committed batch (`wait::until`).
struct Taking<'a, T: Pod> {
    rx: &'a Receiver<T>,
    seen: Seen,
}

impl<T: Pod> Wait for Taking<'_, T> {
    type Ready = Taken;
    type Error = TryRecvError;

    #[inline]
    fn attempt(&mut self) -> Result<Taken, TryRecvError> {
        self.rx.take(&mut self.seen)
    }

    fn sleep(&mut self, slice: Duration) -> Result<(), TryRecvError> {
        self.rx.end.sleep(self.seen, slice);
        Ok(())
    }

    fn policy(&self) -> WaitPolicy {
        self.rx.end.policy
    }
}

/// A received batch, in place in its slot. Derefs to `&[T]` and `&mut [T]`;
/// dropping it gives the slot back to the senders.
#[must_use = "dropping the batch at once gives its slot back unread"]
pub struct Batch<'a, T: Pod = f64> {
    rx: &'a Receiver<T>,
    ptr: NonNull<T>,
    taken: Taken,
}

// SAFETY: a `Batch` is a `&Receiver` (the receiver is Sync) plus the exclusive use
// of one taken slot, like a `&mut [T]`; the release in `drop` is atomic stores that
// any thread may make.
unsafe impl<T: Pod + Send> Send for Batch<'_, T> {}
// SAFETY: through `&Batch` only `&[T]` is reachable (`Deref`).
unsafe impl<T: Pod + Sync> Sync for Batch<'_, T> {}

impl<T: Pod> Deref for Batch<'_, T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the slot is ours until `release` (our CAS on head claimed it);
        // len <= max_batch (checked in `take`), so the range is inside the slot;
        // aligned (see `Queue::payload`); T is Pod.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.taken.len) }
    }
}

impl<T: Pod> DerefMut for Batch<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; the slot belongs to this guard alone, `&mut self`
        // makes the access unique, and no sender touches the slot before `release`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.taken.len) }
    }
}

impl<T: Pod> Batch<'_, T> {
    /// Keep the slot taken and mark the receiver's attachment as that of a dead
    /// process, as if the process had been killed while holding the batch (for
    /// tests of recovery).
    #[doc(hidden)]
    pub fn simulate_death(self) {
        self.rx.end.att.simulate_death();
        std::mem::forget(self);
    }
}

impl<T: Pod> Drop for Batch<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let q = self.rx.queue();
        let t = self.taken;
        q.region
            .shadow()
            .write(q.dims.payload_off(t.index), t.len * q.dims.elem);
        q.release(t.pos, t.index);
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Batch<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The blocking iterator of [`Receiver::iter`].
#[derive(Debug)]
#[must_use = "iterators do nothing unless consumed"]
pub struct Iter<'a, T: Pod = f64> {
    rx: &'a Receiver<T>,
}

impl<T: Pod> Iterator for Iter<'_, T> {
    type Item = Vec<T>;
    fn next(&mut self) -> Option<Vec<T>> {
        self.rx.recv().ok().map(|b| b.to_vec())
    }
}

/// The non-blocking iterator of [`Receiver::try_iter`].
#[derive(Debug)]
#[must_use = "iterators do nothing unless consumed"]
pub struct TryIter<'a, T: Pod = f64> {
    rx: &'a Receiver<T>,
}

impl<T: Pod> Iterator for TryIter<'_, T> {
    type Item = Vec<T>;
    fn next(&mut self) -> Option<Vec<T>> {
        self.rx.try_recv().ok().map(|b| b.to_vec())
    }
}
