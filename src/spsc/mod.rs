//! Single-producer single-consumer queue of variable-length batches.
//!
//! One [`Sender`] and one [`Receiver`], usually in two processes, share a ring of
//! bytes in a named segment. Every batch is stored contiguously — a header word,
//! then the elements — so the receiver gets it as one `&[T]` (or `&mut [T]`) in place.
//!
//! # Behaviour
//! - **Full**: [`Sender::send`] and [`Sender::reserve`] wait (spin, yield, then
//!   sleep on a futex in the segment); [`Sender::try_send`] returns
//!   [`TrySendError::Full`]; [`Sender::send_timeout`] gives up after a
//!   [`Duration`], [`Sender::send_deadline`] at an [`Instant`].
//! - **Empty**: [`Receiver::recv`] waits the same way; [`Receiver::try_recv`]
//!   returns [`TryRecvError::Empty`]; [`Receiver::iter`] receives until the sender
//!   is gone, [`Receiver::try_iter`] until the queue is empty.
//! - **Batch length**: from 0 to [`Sender::max_batch`] elements: at least half the
//!   capacity asked for at creation, or fewer if [`Options::max_batch`] says so;
//!   longer batches are refused with `TooLarge`.
//! - **Counting**: [`Sender::len`] and [`Receiver::len`] count the batches sent and
//!   not yet received, `is_empty` says whether there are none, and
//!   [`Sender::is_full`] whether a batch of `max_batch()` elements would have to
//!   wait. Each is a snapshot: the other side may change it the next moment.
//! - **Peer gone**: when the sender drops (or its process dies), the receiver first
//!   drains every committed batch and then gets `Disconnected`. When the receiver
//!   drops or dies, sends return `Disconnected`. Before the peer has attached for the
//!   first time, a side just waits: `Disconnected` means the peer came and left. A
//!   new peer may attach after the old one left, and the queue resumes.
//! - **One of each**: a second sender (or receiver) opening the segment while a live
//!   one is attached gets [`Error::AlreadyAttached`]. If the holder died, the new
//!   handle takes its place: a batch that a dead receiver was reading is delivered
//!   again, a batch that a dead sender had not committed is gone.
//!
//! # Capacity
//! `create(name, capacity)` sizes the ring for `capacity` elements, and
//! `capacity()` on every handle of the queue returns that number. The ring is the
//! size of two records of the longest batch: with `U = max(8, align_of::<T>())`,
//! it is `2 * (U + round_up(ceil(capacity / 2) * size_of::<T>(), U))` bytes (the
//! segment's `data_len`; `shmbatch stat` shows it). Each batch takes a header of
//! `U` bytes and is padded to `U`, and one unit always stays free, so how many
//! batches fit at once depends on their lengths: a queue of capacity 4096 `f64`
//! has a ring of 32784 bytes, which holds 2048 batches of one element, or one of
//! 2048 elements and most of a second.
//!
//! # A process dies
//! Each owner word records its process as the kernel knows it: pid and start time
//! (field 22 of `/proc/PID/stat`). A side that finds its peer attached but idle
//! asks, at most every 20 ms while polling and before each sleep slice, whether
//! that process still runs: it must exist, must not be a zombie (dead, not yet
//! reaped by its parent), and must have the recorded start time. So a pid that the
//! kernel has handed to a new process does not make a dead peer look alive, and an
//! attaching handle takes a dead holder's place at once. Pids are those of the
//! caller's pid namespace: processes that share a queue must share a pid namespace
//! (a peer in another one looks dead). Start times are kept to 32 bits of clock
//! ticks, so only the same pid reused a multiple of ~497 days later is confused;
//! where `/proc` cannot be read, only the pid is checked.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmbatch::spsc::{Receiver, Sender};
//! # let name = format!("doc-spsc-{}", std::process::id());
//! let mut tx = Sender::<f64>::create(&name, 4096)?; // creator: unlinks on drop
//! let mut rx = Receiver::<f64>::open(&name)?;       // usually in another process
//!
//! tx.send(&[1.0, 2.0, 3.0])?;                        // copying path
//! let mut slot = tx.reserve(2)?;                     // zero-copy path
//! slot.copy_from_slice(&[4.0, 5.0]);
//! slot.commit();
//! assert_eq!((tx.len(), rx.len()), (2, 2));
//!
//! let mut batch = rx.recv()?;                        // a guard over the ring
//! batch[0] += 10.0;                                  // may be modified in place
//! assert_eq!(&*batch, &[11.0, 2.0, 3.0]);
//! drop(batch);                                       // frees the space
//! let mut v = Vec::new();
//! rx.recv_into(&mut v)?;
//! assert_eq!(v, [4.0, 5.0]);
//!
//! drop(tx);
//! assert!(rx.recv().is_err()); // Disconnected: drained, and the sender is gone
//! # Ok(()) }
//! ```
//!
//! # The ring
//! A record is a `u64` header word padded to `U`, then the elements padded to `U`.
//! The header holds `len + 1`; `0` means "nothing published here yet" and
//! `u64::MAX` is a wrap marker: the record did not fit before the end of the ring
//! and starts at offset 0. The control block holds the producer's byte position
//! `tail` and batch count `sent` on one line, the consumer's `head` and `received`
//! on the next, and the owner and futex words on a third. The README's "Layout"
//! section gives the offsets; the code's `ring.rs` the algorithm and its sync points.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::options::Options;
use crate::sync::Arc;
use crate::wait::{Deadline, WaitPolicy};
#[cfg(doc)]
use crate::{Error, TryRecvError};
use crate::{Result, SendError, SendTimeoutError, TrySendError};

pub(crate) mod dims;
mod guard;
mod link;
mod ops;
mod receiver;
mod ring;

pub use guard::{Batch, Iter, Reservation, TryIter};
pub(crate) use link::stats;
use link::Link;
pub use receiver::Receiver;
use ring::Producer;
pub(crate) use ring::SpscControl;

/// Create a queue of `capacity` elements on the heap, for two threads of one process.
///
/// This runs exactly the algorithm of the shared-memory queue; it is what the loom
/// models, miri and the thread benchmarks use.
///
/// # Errors
/// [`Error::InvalidSize`] for a zero or absurd capacity, [`Error::UnsupportedType`]
/// for a zero-sized or over-aligned `T`.
///
/// # Examples
/// ```
/// let (mut tx, mut rx) = shmbatch::spsc::channel::<u32>(16)?;
/// std::thread::spawn(move || tx.send(&[1, 2, 3]));
/// assert_eq!(rx.iter().next(), Some(vec![1, 2, 3]));
/// # Ok::<(), shmbatch::Error>(())
/// ```
pub fn channel<T: Pod>(capacity: usize) -> Result<(Sender<T>, Receiver<T>)> {
    let region = link::heap_region::<T>(capacity)?;
    let tx = Sender::from_region(Arc::clone(&region))?;
    let rx = Receiver::from_region(region)?;
    Ok((tx, rx))
}

/// The producing end of an SPSC queue.
///
/// `Send` but not `Sync`: move it to the thread that sends. See the
/// [module docs](self) for the behaviour when full or disconnected.
pub struct Sender<T: Pod = f64> {
    link: Link,
    prod: Producer,
    _t: PhantomData<fn(T)>,
}

impl<T: Pod> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("link", &self.link)
            .field("producer", &self.prod)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Sender<T> {
    /// Create the segment `name` with a ring sized for `capacity` elements
    /// (module docs, "Capacity"), and attach to it as the sender. The segment is
    /// removed when this handle drops, unless [`persist`](Self::persist) is called.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidSize`] (zero or absurd capacity),
    /// [`Error::UnsupportedType`], [`Error::AlreadyExists`], [`Error::Io`].
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Self::create_with(name, capacity, &Options::default())
    }

    /// [`create`](Self::create) with [`Options`]: the file mode, `persist`,
    /// `reclaim_stale`, the type `tag` and `max_batch` apply.
    ///
    /// # Errors
    /// As [`create`](Self::create); [`Error::InvalidSize`] also for a `mode` with
    /// bits outside `0o777` or a `max_batch` the capacity cannot carry,
    /// [`Error::UnsupportedType`] for an invalid `tag`; with `reclaim_stale`,
    /// [`Error::AlreadyExists`] only if the segment there is not stale.
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Self> {
        Self::from_region(link::create_region::<T>(name, capacity, opts, false)?)
            .map(|h| h.with_policy(opts))
    }

    /// Open the existing segment `name` as its sender.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KindMismatch`], [`Error::TypeMismatch`],
    /// [`Error::VersionMismatch`], [`Error::Corrupted`], [`Error::NotReady`],
    /// [`Error::AlreadyAttached`] if a live sender holds it, [`Error::Io`].
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &Options::default())
    }

    /// [`open`](Self::open) with [`Options`]: `open_timeout` and the type `tag`
    /// apply.
    ///
    /// # Errors
    /// As [`open`](Self::open): with an `open_timeout`, [`Error::NotFound`] once it
    /// has passed without the segment appearing and [`Error::NotReady`] once it has
    /// passed with its header unpublished; [`Error::UnsupportedType`] for an
    /// invalid `tag`.
    pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
        Self::from_region(link::open_region_with::<T>(name, opts)?).map(|h| h.with_policy(opts))
    }

    /// Open the segment `name` as its sender if it exists, else create it with a
    /// ring sized for `capacity` elements, and attach. Race-free: when several processes (or
    /// threads) do this at once, one creates the segment and the others open it.
    /// Whoever creates it owns it (removes it when dropping, unless `persist`); an
    /// existing segment keeps its capacity and maximum batch. Every option applies,
    /// as in [`create_with`](Self::create_with) and [`open_with`](Self::open_with)
    /// (`open_timeout` bounds only the wait for a header being written: a missing
    /// segment is created).
    ///
    /// # Errors
    /// Those of [`create_with`](Self::create_with) but `AlreadyExists`, and those of
    /// [`open_with`](Self::open_with); [`Error::NotFound`] only if the segment kept
    /// vanishing between a failed create and the open, 16 times over.
    pub fn open_or_create(name: &str, capacity: usize, opts: &Options) -> Result<Self> {
        Self::from_region(link::create_region::<T>(name, capacity, opts, true)?)
            .map(|h| h.with_policy(opts))
    }

    /// How this handle's blocking and timed calls wait ([`WaitPolicy`]): what
    /// [`Options::wait_policy`] set, [`WaitPolicy::Adaptive`] by default.
    #[must_use]
    pub fn wait_policy(&self) -> WaitPolicy {
        self.link.policy
    }

    /// Change how this handle's blocking and timed calls wait, from the next call
    /// on.
    pub fn set_wait_policy(&mut self, policy: WaitPolicy) {
        self.link.policy = policy;
    }

    fn with_policy(mut self, opts: &Options) -> Self {
        self.set_wait_policy(opts.policy());
        self
    }

    /// Longest batch this queue accepts, in elements.
    #[must_use]
    pub fn max_batch(&self) -> usize {
        self.link.ring.dims.max_batch
    }

    /// The capacity in elements the queue was created with (module docs,
    /// "Capacity"); the same on every handle of the queue.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.link.ring.dims.capacity
    }

    /// The segment name (`None` for a [`channel`]).
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.link.ring.region().name()
    }

    /// A token that keeps this segment mapped in this process after the handle
    /// drops (`None` for a heap queue): for bindings whose in-place views may
    /// outlive the handle. See [`Mapped`](crate::Mapped).
    pub fn keep_mapped(&self) -> Option<crate::Mapped> {
        self.link.ring.region().keep_mapped()
    }

    /// Keep the segment when the creating handle drops (no effect on an opener).
    pub fn persist(&self) {
        self.link.ring.region().persist();
    }

    /// Whether the receiver attached once and is gone (checks that its process is
    /// alive: one system call).
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        self.link.peer_gone(true)
    }

    /// How many batches this sender's queue holds that the receiver has not yet
    /// released (a batch it is reading still counts). A snapshot: the receiver may
    /// take some the next moment. One load of the other side's count, no system call.
    ///
    /// After a process was killed in the middle of a send or a receive, the count
    /// may be one off until the next handle of that side attaches, which recounts
    /// from the ring; it never exceeds what the ring can hold.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = shmbatch::spsc::channel::<f64>(64)?;
    /// assert!(tx.is_empty());
    /// tx.send(&[1.0, 2.0])?;
    /// tx.send(&[])?; // an empty batch is a batch
    /// assert_eq!((tx.len(), rx.len()), (2, 2));
    /// drop(rx.recv()?);
    /// assert_eq!(tx.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.prod.len(&self.link.ring)
    }

    /// How many batches have been committed to this queue since it was created, by
    /// this sender and every sender before it: the number the next batch sent will
    /// have, counting from 0. Exact even after a sender was killed mid-send (an
    /// attaching sender recounts from the ring's records). A queue's batch numbers
    /// are what lets `shmbatch-zenoh` tell across a restart which batches a dead
    /// process had already committed.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = shmbatch::spsc::channel::<f64>(64)?;
    /// tx.send(&[1.0])?;
    /// tx.send(&[2.0])?;
    /// drop(rx.recv()?);
    /// assert_eq!((tx.sent(), rx.received()), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.prod.sent()
    }

    /// Whether the receiver has released every batch sent so far (read from its
    /// position, so exact even where [`len`](Self::len) is one off).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.prod.is_empty(&self.link.ring)
    }

    /// Whether a batch of [`max_batch`](Self::max_batch) elements would have to
    /// wait now (shorter ones may still fit). An empty queue is never full.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = shmbatch::spsc::channel::<f64>(8)?;
    /// let max = vec![0.0; tx.max_batch()];
    /// tx.send(&max)?;
    /// assert!(tx.is_full()); // a second one waits for the receiver
    /// drop(rx.recv()?);
    /// assert!(!tx.is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.prod.lacks_room(&self.link.ring, self.max_batch())
    }

    /// Send a copy of `batch`, waiting while the queue is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if `batch.len() > max_batch()`,
    /// [`SendError::Disconnected`] once the receiver is gone,
    /// [`SendError::Corrupted`] if the shared state was damaged.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = shmbatch::spsc::channel::<f64>(64)?;
    /// tx.send(&[1.5, 2.5])?;
    /// assert_eq!(&*rx.recv()?, &[1.5, 2.5]);
    /// assert!(tx.send(&[0.0; 1000]).unwrap_err().is_too_large());
    /// drop(rx);
    /// assert!(tx.send(&[1.0]).unwrap_err().is_disconnected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&mut self, batch: &[T]) -> Result<(), SendError> {
        self.send_until(batch, Deadline::never())
            .map_err(SendTimeoutError::without_deadline)
    }

    /// Send a copy of `batch` if there is room now.
    ///
    /// # Errors
    /// [`TrySendError::Full`] when there is no room now, otherwise as
    /// [`send`](Self::send).
    pub fn try_send(&mut self, batch: &[T]) -> Result<(), TrySendError> {
        let claim = self.claim(batch.len())?;
        self.copy_in(batch, claim);
        Ok(())
    }

    /// Send a copy of `batch`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if no room appeared in time, otherwise as
    /// [`send`](Self::send).
    pub fn send_timeout(&mut self, batch: &[T], timeout: Duration) -> Result<(), SendTimeoutError> {
        self.send_until(batch, Deadline::after(timeout))
    }

    /// Send a copy of `batch`, waiting for room until `deadline`: one deadline for
    /// a sequence of calls.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if no room appeared by then, otherwise as
    /// [`send`](Self::send).
    ///
    /// # Examples
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let (mut tx, _rx) = shmbatch::spsc::channel::<f64>(8)?;
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// let mut sent = 0;
    /// while tx.send_deadline(&[1.0], deadline).is_ok() {
    ///     sent += 1; // nobody receives: the ring fills, then the deadline passes
    /// }
    /// assert!(sent > 0 && Instant::now() >= deadline);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_deadline(
        &mut self,
        batch: &[T],
        deadline: Instant,
    ) -> Result<(), SendTimeoutError> {
        self.send_until(batch, Deadline::at(deadline))
    }

    /// Reserve room for a batch of `len` elements in the ring, waiting while the
    /// queue is full. Fill it through the returned guard and
    /// [`commit`](Reservation::commit) it; dropping the guard publishes nothing.
    ///
    /// The reserved elements hold whatever bytes were there before.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = shmbatch::spsc::channel::<u64>(64)?;
    /// let mut r = tx.reserve(8)?; // the longest case
    /// for (i, x) in r.iter_mut().enumerate() {
    ///     *x = i as u64 * 10;
    /// }
    /// r.truncate(3); // only three were needed
    /// r.commit();
    /// assert_eq!(&*rx.recv()?, &[0, 10, 20]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_, T>, SendError> {
        self.reserve_until(len, Deadline::never())
            .map_err(SendTimeoutError::without_deadline)
    }

    /// Reserve room for `len` elements if there is room now.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation<'_, T>, TrySendError> {
        let claim = self.claim(len)?;
        Ok(self.reservation(claim, len))
    }

    /// Reserve room for `len` elements, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Reservation<'_, T>, SendTimeoutError> {
        self.reserve_until(len, Deadline::after(timeout))
    }

    /// Reserve room for `len` elements, waiting until `deadline`.
    ///
    /// # Errors
    /// As [`send_deadline`](Self::send_deadline).
    pub fn reserve_deadline(
        &mut self,
        len: usize,
        deadline: Instant,
    ) -> Result<Reservation<'_, T>, SendTimeoutError> {
        self.reserve_until(len, Deadline::at(deadline))
    }
}
