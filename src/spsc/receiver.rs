//! [`Receiver`], the consuming end of an SPSC queue: its constructors, its
//! accessors and its receiving verbs (the waiting core is in `ops.rs`).

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::link::{self, Link};
use super::ring::Consumer;
#[cfg(doc)]
use super::Sender;
use super::{Batch, Iter, TryIter};
use crate::options::Options;
use crate::wait::{Deadline, WaitPolicy};
#[cfg(doc)]
use crate::Error;
use crate::{RecvError, RecvTimeoutError, Result, TryRecvError};

/// The consuming end of an SPSC queue.
///
/// `Send` but not `Sync`: move it to the thread that receives. See the
/// [module docs](super) for the behaviour when empty or disconnected.
pub struct Receiver<T: Pod = f64> {
    pub(super) link: Link,
    pub(super) cons: Consumer,
    pub(super) _t: PhantomData<fn() -> T>,
}

impl<T: Pod> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("link", &self.link)
            .field("consumer", &self.cons)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Receiver<T> {
    /// Create the segment `name` with a ring sized for `capacity` elements, and
    /// attach to it as the receiver. The segment is removed when this handle
    /// drops, unless [`persist`](Self::persist) is called.
    ///
    /// # Errors
    /// As [`Sender::create`].
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Self::create_with(name, capacity, &Options::default())
    }

    /// [`create`](Self::create) with [`Options`], as [`Sender::create_with`].
    ///
    /// # Errors
    /// As [`Sender::create_with`].
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Self> {
        Self::from_region(link::create_region::<T>(name, capacity, opts, false)?)
            .map(|h| h.with_policy(opts))
    }

    /// Open the existing segment `name` as its receiver.
    ///
    /// # Errors
    /// As [`Sender::open`], with [`Error::AlreadyAttached`] if a live receiver
    /// holds it.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &Options::default())
    }

    /// [`open`](Self::open) with [`Options`], as [`Sender::open_with`].
    ///
    /// # Errors
    /// As [`Sender::open_with`].
    pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
        Self::from_region(link::open_region_with::<T>(name, opts)?).map(|h| h.with_policy(opts))
    }

    /// Open the segment `name` as its receiver if it exists, else create it, as
    /// [`Sender::open_or_create`] (race-free; an existing segment keeps its
    /// geometry).
    ///
    /// # Errors
    /// As [`Sender::open_or_create`].
    pub fn open_or_create(name: &str, capacity: usize, opts: &Options) -> Result<Self> {
        Self::from_region(link::create_region::<T>(name, capacity, opts, true)?)
            .map(|h| h.with_policy(opts))
    }

    /// As [`Sender::wait_policy`].
    #[must_use]
    pub fn wait_policy(&self) -> WaitPolicy {
        self.link.policy
    }

    /// As [`Sender::set_wait_policy`].
    pub fn set_wait_policy(&mut self, policy: WaitPolicy) {
        self.link.policy = policy;
    }

    fn with_policy(mut self, opts: &Options) -> Self {
        self.set_wait_policy(opts.policy());
        self
    }

    /// Longest batch the queue carries, in elements.
    #[must_use]
    pub fn max_batch(&self) -> usize {
        self.link.ring.dims.max_batch
    }

    /// The capacity in elements the queue was created with (see
    /// [`Sender::capacity`]).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.link.ring.dims.capacity
    }

    /// The segment name (`None` for a [`channel`](super::channel)).
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

    /// Whether the sender attached once and is gone (checks that its process is
    /// alive: one system call). Batches it committed may still be waiting.
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        self.link.peer_gone(true)
    }

    /// How many batches are waiting to be received: a snapshot, as
    /// [`Sender::len`] (whose remark on killed processes applies here too).
    #[must_use]
    pub fn len(&self) -> usize {
        self.cons.len(&self.link.ring)
    }

    /// How many batches have been released from this queue since it was created,
    /// by this receiver and every receiver before it: the number (counting from 0)
    /// of the batch the next `recv` returns. A batch is counted when its guard
    /// drops, so a batch a killed receiver was holding is delivered again under
    /// the same number. Exact after a receiver was killed mid-release (an
    /// attaching receiver recounts from the ring). See [`Sender::sent`].
    #[must_use]
    pub fn received(&self) -> u64 {
        self.cons.received()
    }

    /// Whether no batch is waiting right now (what `try_recv` would see; read from
    /// the ring itself, so exact even where [`len`](Self::len) is one off).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cons.is_empty(&self.link.ring)
    }

    /// Receive the next batch, waiting while the queue is empty. The guard derefs
    /// to the batch in the ring; dropping it frees the space.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] once the sender is gone and everything it sent
    /// has been received; [`RecvError::Corrupted`] if the shared state was damaged.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = shmbatch::spsc::channel::<f64>(64)?;
    /// tx.send(&[1.0, 2.0])?;
    /// drop(tx);
    /// let mut batch = rx.recv()?;
    /// batch[1] *= 10.0; // in place, in the ring
    /// assert_eq!(&*batch, &[1.0, 20.0]);
    /// drop(batch); // the space goes back to the sender
    /// assert!(rx.recv().unwrap_err().is_disconnected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self) -> Result<Batch<'_, T>, RecvError> {
        self.recv_until(Deadline::never())
            .map_err(RecvTimeoutError::without_deadline)
    }

    /// Receive the next batch if one is waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when nothing is waiting, otherwise as
    /// [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Batch<'_, T>, TryRecvError> {
        let p = self.peek()?;
        Ok(self.guard(p))
    }

    /// Receive the next batch, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if nothing arrived in time, otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Batch<'_, T>, RecvTimeoutError> {
        self.recv_until(Deadline::after(timeout))
    }

    /// Receive the next batch, waiting until `deadline`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if nothing arrived by then, otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Batch<'_, T>, RecvTimeoutError> {
        self.recv_until(Deadline::at(deadline))
    }

    /// Receive the next batch into `out` (replacing its contents), waiting while
    /// the queue is empty. Returns the batch length.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = shmbatch::spsc::channel::<f64>(64)?;
    /// let mut out = Vec::with_capacity(64); // reused: no allocation per batch
    /// tx.send(&[1.0, 2.0, 3.0])?;
    /// assert_eq!(rx.recv_into(&mut out)?, 3);
    /// assert_eq!(out, [1.0, 2.0, 3.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_into(&mut self, out: &mut Vec<T>) -> Result<usize, RecvError> {
        let b = self.recv()?;
        crate::verbs::fill(out, &b);
        Ok(out.len())
    }

    /// Receive the next batch into `out` if one is waiting.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_into(&mut self, out: &mut Vec<T>) -> Result<usize, TryRecvError> {
        let b = self.try_recv()?;
        crate::verbs::fill(out, &b);
        Ok(out.len())
    }

    /// Receive the next batch into `out`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_into_timeout(
        &mut self,
        out: &mut Vec<T>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        let b = self.recv_timeout(timeout)?;
        crate::verbs::fill(out, &b);
        Ok(out.len())
    }

    /// Receive the next batch into `out`, waiting until `deadline`.
    ///
    /// # Errors
    /// As [`recv_deadline`](Self::recv_deadline).
    pub fn recv_into_deadline(
        &mut self,
        out: &mut Vec<T>,
        deadline: Instant,
    ) -> Result<usize, RecvTimeoutError> {
        let b = self.recv_deadline(deadline)?;
        crate::verbs::fill(out, &b);
        Ok(out.len())
    }

    /// A blocking iterator over the batches, each copied into a new `Vec`: it
    /// waits while the queue is empty and ends when [`recv`](Self::recv) fails,
    /// normally with `Disconnected` after the last batch of a sender that left.
    /// [`Iter::error`] tells why it ended, so damage is not mistaken for the end of
    /// the stream. For zero copy, loop over `recv` instead.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = shmbatch::spsc::channel::<u32>(64)?;
    /// let producer = std::thread::spawn(move || {
    ///     for i in 0..3 {
    ///         tx.send(&[i, i + 1]).unwrap();
    ///     }
    /// });
    /// let mut batches = rx.iter();
    /// let sums: Vec<u32> = batches.by_ref().map(|b| b.iter().sum()).collect();
    /// assert_eq!(sums, [1, 3, 5]);
    /// assert!(batches.error().unwrap().is_disconnected()); // not damage
    /// producer.join().unwrap();
    /// # Ok::<(), shmbatch::Error>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_, T> {
        Iter::new(self)
    }

    /// A non-blocking iterator over the batches waiting now, each copied into a new
    /// `Vec`: it ends when [`try_recv`](Self::try_recv) fails, normally with
    /// `Empty`; [`TryIter::error`] tells why.
    ///
    /// # Examples
    /// ```
    /// let (mut tx, mut rx) = shmbatch::spsc::channel::<u32>(64)?;
    /// tx.send(&[1])?;
    /// tx.send(&[2, 3])?;
    /// let mut waiting = rx.try_iter();
    /// assert_eq!(waiting.by_ref().collect::<Vec<_>>(), [vec![1], vec![2, 3]]);
    /// assert!(waiting.error().unwrap().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_, T> {
        TryIter::new(self)
    }
}
