//! The producing end: [`Sender`] and its [`Reservation`].

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::attach::{create_queue, open_queue, Attachment, End};
use super::queue::{Claim, Miss, Queue, Seen};
use super::recover::recover_tail;
use super::wire::SKIPPED;
use crate::error::{Result, SendError, SendTimeoutError, TrySendError};
use crate::layout::Role;
use crate::options::Options;
use crate::sync::Arc;
use crate::wait::{self, Deadline, Wait, WaitPolicy};

/// The producing end of an MPMC queue.
///
/// `Send` and `Sync`: share it between threads by reference or in an `Arc`, or
/// [`Clone`] it (clones share one attachment). Every method takes `&self`. See the
/// [module docs](super) for the behaviour when full or disconnected.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use shmbatch::mpmc;
///
/// let (tx, rx) = mpmc::channel::<f64>(8, 4)?;
/// let tx = Arc::new(tx);
/// let workers: Vec<_> = (0..2)
///     .map(|i| {
///         let tx = Arc::clone(&tx);
///         std::thread::spawn(move || tx.send(&[i as f64]))
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap()?;
/// }
/// let mut got: Vec<f64> = rx.try_iter().map(|b| b[0]).collect();
/// got.sort_by(f64::total_cmp);
/// assert_eq!(got, [0.0, 1.0]);
/// # Ok(()) }
/// ```
pub struct Sender<T: Pod = f64> {
    end: End,
    _t: PhantomData<fn(T)>,
}

impl<T: Pod> Clone for Sender<T> {
    /// Another sender on the same attachment (no new table entry).
    fn clone(&self) -> Self {
        Sender::from_end(self.end.clone_end())
    }
}

impl<T: Pod> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("attachment", &self.end.att)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Sender<T> {
    /// Create the segment `name` with `slots` slots of up to `max_batch` elements
    /// each, and attach to it as a sender. The segment is removed when this handle
    /// (and its clones) drop, unless [`persist`](Self::persist) is called.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName),
    /// [`Error::InvalidSize`](crate::Error::InvalidSize) (zero or absurd `slots` or
    /// `max_batch`), [`Error::UnsupportedType`](crate::Error::UnsupportedType),
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists),
    /// [`Error::Io`](crate::Error::Io).
    pub fn create(name: &str, slots: usize, max_batch: usize) -> Result<Self> {
        Self::create_with(name, slots, max_batch, &Options::default())
    }

    /// [`create`](Self::create) with [`Options`]: the file mode, `persist`,
    /// `reclaim_stale` and the type `tag` apply (`Options::max_batch` does not: the
    /// argument sets it).
    ///
    /// # Errors
    /// As [`create`](Self::create); `InvalidSize` also for a `mode` with bits
    /// outside `0o777`, `UnsupportedType` for an invalid `tag`; with
    /// `reclaim_stale`, `AlreadyExists` only if the segment there is not stale.
    pub fn create_with(name: &str, slots: usize, max_batch: usize, opts: &Options) -> Result<Self> {
        Self::attach(create_queue::<T>(name, slots, max_batch, opts, false)?)
            .map(|h| h.with_policy(opts))
    }

    /// Open the existing segment `name` as one more sender.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound),
    /// [`Error::KindMismatch`](crate::Error::KindMismatch),
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch),
    /// [`Error::VersionMismatch`](crate::Error::VersionMismatch),
    /// [`Error::Corrupted`](crate::Error::Corrupted),
    /// [`Error::NotReady`](crate::Error::NotReady),
    /// [`Error::TooManyAttached`](crate::Error::TooManyAttached),
    /// [`Error::Io`](crate::Error::Io).
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &Options::default())
    }

    /// [`open`](Self::open) with [`Options`]: `open_timeout` and the type `tag`
    /// apply.
    ///
    /// # Errors
    /// As [`open`](Self::open): with an `open_timeout`, `NotFound` once it has
    /// passed without the segment appearing and `NotReady` once it has passed with
    /// its header unpublished; `UnsupportedType` for an invalid `tag`.
    pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
        let ty = opts.type_info::<T>()?;
        Self::attach(opts.open(|init_wait| open_queue(name, &ty, init_wait))?)
            .map(|h| h.with_policy(opts))
    }

    /// Open the segment `name` as one more sender if it exists, else create it
    /// with `slots` slots of up to `max_batch` elements, and attach.
    ///
    /// Race-free: when several processes (or threads) do this at once, one creates
    /// the segment and the others open it. Whoever creates it owns it (removes it
    /// when its handles drop, unless `persist`); an existing segment keeps its
    /// slots and maximum batch. Every option applies, as in
    /// [`create_with`](Self::create_with) and [`open_with`](Self::open_with)
    /// (`open_timeout` bounds only the wait for a header being written).
    ///
    /// # Errors
    /// Those of `create_with` but `AlreadyExists`, and those of `open_with`;
    /// `NotFound` only if the segment kept vanishing between a failed create and
    /// the open, 16 times over.
    pub fn open_or_create(
        name: &str,
        slots: usize,
        max_batch: usize,
        opts: &Options,
    ) -> Result<Self> {
        Self::attach(create_queue::<T>(name, slots, max_batch, opts, true)?)
            .map(|h| h.with_policy(opts))
    }

    /// Attach once more to the same queue, as a new sender with its own attachment
    /// (what [`open`](Self::open) gives in another process; for tests of process
    /// death on a [`channel`](super::channel)).
    ///
    /// # Errors
    /// [`Error::TooManyAttached`](crate::Error::TooManyAttached).
    #[doc(hidden)]
    pub fn attach_again(&self) -> Result<Self> {
        Self::attach(Arc::clone(&self.end.att.queue))
    }

    /// Make the next attempt that finds the queue full check the peers and recover
    /// what dead ones hold, without waiting for the liveness interval (for tests
    /// and fuzzing).
    #[doc(hidden)]
    pub fn check_peers_next(&self) {
        self.end.live.ask();
    }

    pub(super) fn attach(q: Arc<Queue>) -> Result<Self> {
        Ok(Self::from_end(End::new(Attachment::new(q, Role::Sender)?)))
    }

    fn from_end(end: End) -> Self {
        Sender {
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

    /// Whether no batch waits ([`len`](Self::len) is 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a batch (of any length up to [`max_batch`](Self::max_batch)) would
    /// find no free slot now.
    pub fn is_full(&self) -> bool {
        self.queue().next_slot_busy()
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

    /// Whether receivers attached once and all are gone (checks that their
    /// processes are alive: one system call per attached receiver).
    pub fn is_disconnected(&self) -> bool {
        self.end.att.peer_gone(true)
    }

    /// Send a copy of `batch`, waiting while the queue is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if `batch.len() > max_batch()`,
    /// [`SendError::Disconnected`] once every receiver is gone,
    /// [`SendError::Corrupted`] if the shared state was damaged.
    pub fn send(&self, batch: &[T]) -> Result<(), SendError> {
        let claim = self.claim_until(batch.len(), Deadline::never());
        self.copy_in(batch, claim.map_err(SendTimeoutError::without_deadline)?);
        Ok(())
    }

    /// Send a copy of `batch` if a slot is free now.
    ///
    /// # Errors
    /// [`TrySendError::Full`] when no slot is free now (or, rarely, when other
    /// handles kept winning the race for it), otherwise as [`send`](Self::send).
    pub fn try_send(&self, batch: &[T]) -> Result<(), TrySendError> {
        self.copy_in(batch, self.claim(batch.len(), &mut Seen::default())?);
        Ok(())
    }

    /// Send a copy of `batch`, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`], otherwise as [`send`](Self::send).
    pub fn send_timeout(&self, batch: &[T], timeout: Duration) -> Result<(), SendTimeoutError> {
        self.copy_in(
            batch,
            self.claim_until(batch.len(), Deadline::after(timeout))?,
        );
        Ok(())
    }

    /// Send a copy of `batch`, waiting until `deadline` at the latest for a free
    /// slot.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn send_deadline(&self, batch: &[T], deadline: Instant) -> Result<(), SendTimeoutError> {
        self.copy_in(
            batch,
            self.claim_until(batch.len(), Deadline::at(deadline))?,
        );
        Ok(())
    }

    /// Reserve a slot for a batch of `len` elements, waiting while the queue is
    /// full. Fill it through the returned guard and
    /// [`commit`](Reservation::commit) it; dropping the guard cancels (receivers
    /// skip the slot).
    ///
    /// The reserved elements hold whatever bytes were there before. Receivers wait
    /// at this slot until it is committed or dropped, so do not hold it long.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (tx, rx) = shmbatch::mpmc::channel::<f64>(4, 8)?;
    /// let mut slot = tx.reserve(3)?;
    /// slot.copy_from_slice(&[1.0, 2.0, 3.0]);
    /// slot.commit();
    /// assert_eq!(&*rx.recv()?, &[1.0, 2.0, 3.0]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn reserve(&self, len: usize) -> Result<Reservation<'_, T>, SendError> {
        let claim = self.claim_until(len, Deadline::never());
        Ok(self.reservation(claim.map_err(SendTimeoutError::without_deadline)?, len))
    }

    /// Reserve a slot for `len` elements if one is free now.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub fn try_reserve(&self, len: usize) -> Result<Reservation<'_, T>, TrySendError> {
        Ok(self.reservation(self.claim(len, &mut Seen::default())?, len))
    }

    /// Reserve a slot for `len` elements, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_timeout(
        &self,
        len: usize,
        timeout: Duration,
    ) -> Result<Reservation<'_, T>, SendTimeoutError> {
        Ok(self.reservation(self.claim_until(len, Deadline::after(timeout))?, len))
    }

    /// Reserve a slot for `len` elements, waiting until `deadline` at the latest.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_deadline(
        &self,
        len: usize,
        deadline: Instant,
    ) -> Result<Reservation<'_, T>, SendTimeoutError> {
        Ok(self.reservation(self.claim_until(len, Deadline::at(deadline))?, len))
    }

    /// Claim a slot for `len` elements and mark this attachment as that of a dead
    /// process before the slot's claim word is written: what a sender killed
    /// right after its claim CAS leaves (for tests of recovery).
    ///
    /// # Errors
    /// As [`try_reserve`](Self::try_reserve).
    #[doc(hidden)]
    pub fn simulate_death_claiming(&self, len: usize) -> Result<(), TrySendError> {
        let claim = self.claim_as::<true>(len, &mut Seen::default())?;
        self.reservation(claim, len).simulate_death();
        Ok(())
    }

    /// Claim a free slot for a batch of `len` elements, without waiting.
    #[inline(always)]
    fn claim(&self, len: usize, seen: &mut Seen) -> Result<Claim, TrySendError> {
        self.claim_as::<false>(len, seen)
    }

    /// `claim`; with `DIES`, as `Queue::try_claim`. A full queue is the slow
    /// path: now and then (`Liveness`) it checks the receivers and recovers the
    /// slot at tail if its holder is gone, then tries again (the next slot may be
    /// a dead holder's too).
    #[inline(always)]
    fn claim_as<const DIES: bool>(
        &self,
        len: usize,
        seen: &mut Seen,
    ) -> Result<Claim, TrySendError> {
        let (att, q) = (&*self.end.att, self.queue());
        let max = q.dims.max_batch;
        if len > max {
            return Err(TrySendError::TooLarge { len, max });
        }
        // Relaxed: a sender reads nothing the receivers wrote before leaving.
        if q.ctl()
            .peers
            .gone(Role::Receiver, crate::sync::Ordering::Relaxed)
        {
            return Err(TrySendError::Disconnected);
        }
        // Each pass but the last recovers a slot: at most one per slot.
        for _ in 0..=q.dims.slots {
            match q.try_claim::<DIES>(att.holder, len, seen) {
                Ok(c) => return Ok(c),
                Err(Miss::Corrupted(reason)) => return Err(TrySendError::Corrupted { reason }),
                Err(Miss::Contended) => return Err(TrySendError::Full),
                Err(Miss::NotNow) => {}
            }
            if !self.end.live.due(false) {
                break;
            }
            if att.peer_gone(true) {
                return Err(TrySendError::Disconnected);
            }
            if !recover_tail(att, seen.pos, seen.index) {
                break;
            }
            // The next slot may be a dead holder's too.
            self.end.live.ask();
        }
        Err(TrySendError::Full)
    }

    /// Wait for a free slot until `deadline`.
    #[inline]
    fn claim_until(&self, len: usize, deadline: Deadline) -> Result<Claim, SendTimeoutError> {
        wait::until(
            &mut Claiming {
                tx: self,
                len,
                seen: Seen::default(),
            },
            deadline,
        )
    }

    #[inline(always)]
    fn copy_in(&self, batch: &[T], claim: Claim) {
        // SAFETY: the claim gives us the slot's payload, max_batch >= batch.len()
        // elements (checked in `claim`), which no receiver touches until we publish;
        // it does not overlap `batch`, which is caller memory.
        unsafe {
            crate::verbs::copy_elems(
                batch.as_ptr(),
                self.queue().payload::<T>(claim.index),
                batch.len(),
            )
        };
        self.queue().publish(claim, batch.len() as u64);
    }

    fn reservation(&self, claim: Claim, len: usize) -> Reservation<'_, T> {
        Reservation {
            tx: self,
            claim,
            len,
            committed: false,
        }
    }
}

/// A sender waiting for a free slot (`wait::until`).
struct Claiming<'a, T: Pod> {
    tx: &'a Sender<T>,
    len: usize,
    seen: Seen,
}

impl<T: Pod> Wait for Claiming<'_, T> {
    type Ready = Claim;
    type Error = TrySendError;

    #[inline]
    fn attempt(&mut self) -> Result<Claim, TrySendError> {
        self.tx.claim(self.len, &mut self.seen)
    }

    fn sleep(&mut self, slice: Duration) -> Result<(), TrySendError> {
        self.tx.end.sleep(self.seen, slice);
        Ok(())
    }

    fn policy(&self) -> WaitPolicy {
        self.tx.end.policy
    }
}

/// A claimed slot, from [`Sender::reserve`].
///
/// Derefs to `&mut [T]`. [`commit`](Self::commit) publishes the batch; dropping the
/// reservation without committing publishes the slot as skipped, which receivers
/// step over. Forgetting to commit is a warning:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let (tx, _rx) = shmbatch::mpmc::channel::<f64>(4, 4).unwrap();
/// tx.reserve(4).unwrap(); // sends nothing
/// ```
#[must_use = "a reservation dropped without `commit` sends nothing"]
pub struct Reservation<'a, T: Pod = f64> {
    tx: &'a Sender<T>,
    claim: Claim,
    len: usize,
    committed: bool,
}

impl<T: Pod> Reservation<'_, T> {
    /// Shorten the batch to `len` elements (no effect if `len` is not smaller):
    /// reserve for the longest case, fill some, commit that many.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Publish the batch to the receivers.
    pub fn commit(mut self) {
        self.committed = true;
        self.tx.queue().publish(self.claim, self.len as u64);
    }

    /// Leave the slot claimed and mark the sender's attachment as that of a dead
    /// process, as if the process had been killed here (for tests of recovery).
    #[doc(hidden)]
    pub fn simulate_death(self) {
        self.tx.end.att.simulate_death();
        std::mem::forget(self);
    }
}

impl<T: Pod> Drop for Reservation<'_, T> {
    fn drop(&mut self) {
        if !self.committed {
            self.tx.queue().publish(self.claim, SKIPPED);
        }
    }
}

impl<T: Pod> Deref for Reservation<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the slot is ours until publish (our CAS on tail claimed it); len <=
        // max_batch (checked in `claim`, and truncate only shrinks it), so the
        // payload range is inside the slot; aligned (see `Queue::payload`); T is Pod,
        // so any bytes are a valid T.
        unsafe {
            std::slice::from_raw_parts(self.tx.queue().payload::<T>(self.claim.index), self.len)
        }
    }
}

impl<T: Pod> DerefMut for Reservation<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; the slot belongs to this reservation alone (no
        // other claim of any handle names it), `&mut self` makes the access unique,
        // and no receiver reads the slot before we publish it.
        unsafe {
            std::slice::from_raw_parts_mut(self.tx.queue().payload::<T>(self.claim.index), self.len)
        }
    }
}

impl<T: Pod> fmt::Debug for Reservation<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
