//! The publishing handle: one per log, the segment's creator.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::log::{Log, Start};
use super::subscriber::Subscriber;
use super::wire::{Config, Dims, MAX_EVICT};
use super::writer::{Blocker, Claim, ClaimMiss, Pub};
use super::{BroadcastControl, Policy};
use crate::layout::TypeInfo;
use crate::options::Options;
use crate::segment::{Create, Region};
use crate::sync::Arc;
use crate::wait::{self, Deadline, Liveness, Wait, WaitPolicy};
use crate::{Error, Result, SendError, SendTimeoutError, TrySendError};

/// The publisher of a broadcast log: every batch it sends reaches every
/// subscriber (see the [module docs](super)).
pub struct Publisher<T: Pod = f64> {
    log: Arc<Log>,
    state: Pub,
    live: Liveness,
    /// The blocker whose process we last checked.
    checked: Option<Blocker>,
    /// The blocker of the last full attempt.
    blocker: Option<Blocker>,
    policy: WaitPolicy,
    /// Racy logs: where a reservation is filled before it is copied in.
    stage: Vec<T>,
    _elem: PhantomData<fn(T) -> T>,
}

/// Write `batch` as the elements of the record at `claim`: word by word into a
/// racy log (see `Log::racy`), else with a plain copy.
fn write_elems<T: Pod>(log: &Log, claim: Claim, batch: &[T]) {
    if log.racy() {
        // SAFETY: `batch` is readable for its bytes; the record holds
        // max_batch >= batch.len() elements (checked in `try_claim`).
        unsafe {
            log.store_words(
                claim.off(),
                batch.as_ptr().cast(),
                std::mem::size_of_val(batch),
            )
        };
    } else {
        // SAFETY: the claim gives us the record's elements, max_batch >=
        // batch.len() (checked in `try_claim`), which no subscriber reads until
        // we publish (a lossless log that does not evict). `batch` is caller
        // memory.
        unsafe {
            crate::verbs::copy_elems(
                batch.as_ptr(),
                log.payload::<T>(claim.off()).as_ptr(),
                batch.len(),
            )
        };
    }
}

impl<T: Pod> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("name", &self.log.region().name())
            .field("policy", &self.policy())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn config(opts: &Options) -> Result<Config> {
    let evict_after = opts.broadcast_evict_after();
    if let Some(d) = evict_after {
        if d.is_zero() || d > MAX_EVICT {
            return Err(Error::InvalidSize {
                what: "evict_after",
                value: d.as_millis().try_into().unwrap_or(usize::MAX),
                reason: format!("must be more than 0 and at most {} s", MAX_EVICT.as_secs()),
            });
        }
    }
    Ok(Config {
        lossy: opts.broadcast_policy_of() == Policy::Lossy,
        evict_after,
    })
}

impl<T: Pod> Publisher<T> {
    /// Create the segment `name` with a log for `capacity` elements: batches of up
    /// to `capacity / 2` elements (rounded up), lossless. Unlinked when the
    /// publisher drops.
    ///
    /// # Errors
    /// As [`crate::spsc::Sender::create`]: a bad name or capacity, a name that
    /// exists, or the system refusing the segment.
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Self::create_with(name, capacity, &Options::new())
    }

    /// [`create`](Self::create) with options: the policy
    /// ([`Options::broadcast_policy`]), the eviction timeout
    /// ([`Options::evict_after`]), the longest batch, mode, persistence, tag,
    /// wait policy.
    ///
    /// # Errors
    /// As [`create`](Self::create), and an eviction timeout out of range.
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Self> {
        let ty = opts.type_info::<T>()?;
        let cfg = config(opts)?;
        let dims = Dims::for_capacity(&ty, capacity, opts.spsc_max_batch())?;
        let mut g = dims.geometry(&ty)?;
        g.wake = opts.protocol();
        let make = |how: &Create| {
            Region::create_shm::<BroadcastControl>(name, g, &ty, how, |r| Log::init(r, cfg))
        };
        let region = opts.create(name, make)?;
        Self::from_region(region, opts.policy())
    }

    /// A log on the heap, for threads (`broadcast::channel`).
    pub(super) fn heap(capacity: usize, opts: &Options) -> Result<Self> {
        let ty: TypeInfo = opts.type_info::<T>()?;
        let cfg = config(opts)?;
        let dims = Dims::for_capacity(&ty, capacity, opts.spsc_max_batch())?;
        let mut g = dims.geometry(&ty)?;
        g.wake = opts.protocol();
        let region = Region::heap::<BroadcastControl>(g, &ty, |r| Log::init(r, cfg));
        Self::from_region(region, opts.policy())
    }

    fn from_region(region: Region, policy: WaitPolicy) -> Result<Self> {
        wait::init();
        let log = Arc::new(Log::new(Arc::new(region))?);
        let state = Pub::attach(&log);
        Ok(Publisher {
            log,
            state,
            live: Liveness::new(),
            checked: None,
            blocker: None,
            policy,
            stage: Vec::new(),
            _elem: PhantomData,
        })
    }

    /// A new subscriber of this log, in this process, starting at `start`.
    ///
    /// # Errors
    /// [`Error::TooManyAttached`] if [`super::MAX_SUBSCRIBERS`] are subscribed.
    pub fn subscribe(&self, start: Start) -> Result<Subscriber<T>> {
        Subscriber::join(Arc::clone(&self.log), start, self.policy)
    }

    /// Whether the log drops batches for slow subscribers.
    pub fn policy(&self) -> Policy {
        if self.log.config.lossy {
            Policy::Lossy
        } else {
            Policy::Lossless
        }
    }

    /// The longest batch, in elements.
    pub fn max_batch(&self) -> usize {
        self.log.dims.max_batch
    }

    /// The capacity asked for at creation, in elements.
    pub fn capacity(&self) -> usize {
        self.log.dims.capacity
    }

    /// The segment's name (`None` for a heap channel).
    pub fn name(&self) -> Option<&str> {
        self.log.region().name()
    }

    /// Subscribers attached now (a snapshot).
    pub fn subscribers(&self) -> usize {
        self.log.subscribers()
    }

    /// Batches published so far.
    pub fn published(&self) -> u64 {
        self.log.published()
    }

    /// How the blocking calls wait.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.policy
    }

    /// Change how the blocking calls wait.
    pub fn set_wait_policy(&mut self, policy: WaitPolicy) {
        self.policy = policy;
    }

    /// Claim room for `len` elements now: `Full` only while a lossless log's
    /// slowest subscriber holds the space.
    fn try_claim(&mut self, len: usize) -> Result<Claim, TrySendError> {
        let max = self.log.dims.max_batch;
        if len > max {
            return Err(TrySendError::TooLarge { len, max });
        }
        for _ in 0..super::MAX_SUBSCRIBERS + 1 {
            match self.state.claim(&self.log, len) {
                Ok(c) => {
                    self.blocker = None;
                    return Ok(c);
                }
                Err(ClaimMiss::Corrupted(reason)) => {
                    return Err(TrySendError::Corrupted { reason })
                }
                Err(ClaimMiss::Full(b)) => {
                    // A new blocker's process is checked at once, then every
                    // liveness interval.
                    let check = self.checked != Some(b) || self.live.due(false);
                    self.checked = Some(b);
                    if !self.state.reap(&self.log, b, check) {
                        self.blocker = Some(b);
                        return Err(TrySendError::Full);
                    }
                }
            }
        }
        Err(TrySendError::Full)
    }

    fn claim_until(&mut self, len: usize, deadline: Deadline) -> Result<Claim, SendTimeoutError> {
        match self.try_claim(len) {
            Ok(c) => Ok(c),
            Err(TrySendError::Full) => wait::until(&mut Claiming { tx: self, len }, deadline),
            Err(e) => Err(wait::AttemptError::waiting(e)),
        }
    }

    fn copy_in(&mut self, batch: &[T], claim: Claim) {
        write_elems(&self.log, claim, batch);
        self.state.publish(&self.log, claim, batch.len());
    }

    /// A reservation of `len` elements at `claim`: in the log, or (racy logs,
    /// see `Log::racy`) in our staging buffer, copied in at commit.
    fn reservation(&mut self, claim: Claim, len: usize) -> Reservation<'_, T> {
        if self.log.racy() {
            self.stage.clear();
            self.stage.resize(len, T::zeroed());
        }
        Reservation {
            tx: self,
            claim,
            len,
        }
    }

    /// Publish a copy of `batch`, waiting while a lossless log is full.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] for a batch over [`max_batch`](Self::max_batch),
    /// [`SendError::Corrupted`] if the shared state was damaged.
    pub fn send(&mut self, batch: &[T]) -> Result<(), SendError> {
        let claim = self
            .claim_until(batch.len(), Deadline::never())
            .map_err(SendTimeoutError::without_deadline)?;
        self.copy_in(batch, claim);
        Ok(())
    }

    /// Publish a copy of `batch` if there is room now (always, when lossy).
    ///
    /// # Errors
    /// [`TrySendError::Full`], otherwise as [`send`](Self::send).
    pub fn try_send(&mut self, batch: &[T]) -> Result<(), TrySendError> {
        let claim = self.try_claim(batch.len())?;
        self.copy_in(batch, claim);
        Ok(())
    }

    /// Publish a copy of `batch`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`], otherwise as [`send`](Self::send).
    pub fn send_timeout(&mut self, batch: &[T], timeout: Duration) -> Result<(), SendTimeoutError> {
        let claim = self.claim_until(batch.len(), Deadline::after(timeout))?;
        self.copy_in(batch, claim);
        Ok(())
    }

    /// Publish a copy of `batch`, waiting until `deadline` at the latest.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn send_deadline(
        &mut self,
        batch: &[T],
        deadline: Instant,
    ) -> Result<(), SendTimeoutError> {
        let claim = self.claim_until(batch.len(), Deadline::at(deadline))?;
        self.copy_in(batch, claim);
        Ok(())
    }

    /// Reserve room for a batch of `len` elements in the log, waiting while a
    /// lossless log is full; fill it in place and [`commit`](Reservation::commit).
    /// The elements hold whatever the log held there before.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_, T>, SendError> {
        let claim = self
            .claim_until(len, Deadline::never())
            .map_err(SendTimeoutError::without_deadline)?;
        Ok(self.reservation(claim, len))
    }

    /// [`reserve`](Self::reserve) if there is room now.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation<'_, T>, TrySendError> {
        let claim = self.try_claim(len)?;
        Ok(self.reservation(claim, len))
    }

    /// [`reserve`](Self::reserve), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`send_timeout`](Self::send_timeout).
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Reservation<'_, T>, SendTimeoutError> {
        let claim = self.claim_until(len, Deadline::after(timeout))?;
        Ok(self.reservation(claim, len))
    }
}

impl<T: Pod> Drop for Publisher<T> {
    fn drop(&mut self) {
        self.state.close(&self.log);
    }
}

/// A publisher waiting for room (`wait::until`).
struct Claiming<'a, T: Pod> {
    tx: &'a mut Publisher<T>,
    len: usize,
}

impl<T: Pod> Wait for Claiming<'_, T> {
    type Ready = Claim;
    type Error = TrySendError;

    fn attempt(&mut self) -> Result<Claim, TrySendError> {
        self.tx.try_claim(self.len)
    }

    fn sleep(&mut self, slice: Duration) -> Result<(), TrySendError> {
        let tx = &mut *self.tx;
        if tx.live.due(true) {
            tx.live.ask(); // the next attempt checks the blocker's process
            return Ok(());
        }
        if let Some(b) = tx.blocker {
            // Wake in time to evict the blocker, if it comes to that.
            let slice = tx
                .state
                .evict_in(&tx.log, b)
                .map_or(slice, |d| slice.min(d.max(Duration::from_micros(100))));
            tx.state.sleep(&tx.log, b, slice);
        }
        Ok(())
    }

    fn policy(&self) -> WaitPolicy {
        self.tx.policy
    }
}

/// Room reserved in the log by [`Publisher::reserve`]: fill it, then
/// [`commit`](Self::commit). Dropping it without committing publishes nothing
/// (the room is used by the next batch).
#[must_use = "a reservation dropped without `commit` publishes nothing"]
pub struct Reservation<'a, T: Pod = f64> {
    tx: &'a mut Publisher<T>,
    claim: Claim,
    len: usize,
}

impl<T: Pod> Reservation<'_, T> {
    /// Shorten the batch to `len` elements (no effect if not smaller).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Publish the batch to every subscriber.
    pub fn commit(self) {
        let (claim, len) = (self.claim, self.len);
        let tx = self.tx;
        if tx.log.racy() {
            write_elems(&tx.log, claim, &tx.stage[..len]);
        }
        tx.state.publish(&tx.log, claim, len);
    }
}

impl<T: Pod> Deref for Reservation<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        if self.tx.log.racy() {
            return &self.tx.stage[..self.len];
        }
        // SAFETY: the claimed record holds `len <= max_batch` elements, aligned,
        // inside the log; only this publisher writes it until it is published,
        // and no subscriber reads it (a lossless log that does not evict).
        unsafe {
            std::slice::from_raw_parts(
                self.tx.log.payload::<T>(self.claim.off()).as_ptr(),
                self.len,
            )
        }
    }
}

impl<T: Pod> DerefMut for Reservation<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        if self.tx.log.racy() {
            let len = self.len;
            return &mut self.tx.stage[..len];
        }
        // SAFETY: as in `deref`, and `&mut self` makes this the only view.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.tx.log.payload::<T>(self.claim.off()).as_ptr(),
                self.len,
            )
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Reservation<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
