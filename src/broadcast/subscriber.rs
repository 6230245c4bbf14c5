//! The subscribing handle: any number per log (up to `MAX_SUBSCRIBERS`), each
//! with its own position, in any process.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::error::{RecvError, RecvTimeoutError, TryRecvError};
use super::log::{Log, Start};
use super::reader::{Miss, Peeked, Sub};
use super::wire::Dims;
use super::{BroadcastControl, Policy};
use crate::options::Options;
use crate::segment::Region;
use crate::sync::Arc;
use crate::wait::{self, Deadline, Liveness, Wait, WaitPolicy};
use crate::Result;

/// A subscriber of a broadcast log: receives every batch published after it
/// joined (or from the oldest one kept), in order (see the [module docs](super)).
pub struct Subscriber<T: Pod = f64> {
    log: Arc<Log>,
    state: Sub,
    live: Liveness,
    /// What the next call reports before anything else: the verdict on an
    /// in-place batch that was overwritten while it was read.
    pending: Option<TryRecvError>,
    /// Lossy: where `recv` copies a batch before it hands it over.
    buf: Vec<T>,
    policy: WaitPolicy,
    _elem: PhantomData<fn(T) -> T>,
}

impl<T: Pod> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("name", &self.log.region().name())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Subscriber<T> {
    /// Subscribe to the broadcast segment `name`, starting at the next batch.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] if there is no such segment, a type or kind
    /// mismatch, a damaged header, or [`crate::Error::TooManyAttached`] when
    /// [`super::MAX_SUBSCRIBERS`] are subscribed.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &Options::new())
    }

    /// [`open`](Self::open) with options: where to start
    /// ([`Options::start`]), how long to wait for the segment, the tag, the wait
    /// policy.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
        let ty = opts.type_info::<T>()?;
        let region = opts.open(|init_wait| {
            Region::open_shm::<BroadcastControl>(name, &ty, init_wait, |g| {
                Dims::from_geometry(g).map(drop)
            })
        })?;
        let log = Arc::new(Log::new(Arc::new(region))?);
        Self::join(log, opts.broadcast_start(), opts.policy())
    }

    pub(super) fn join(log: Arc<Log>, start: Start, policy: WaitPolicy) -> Result<Self> {
        wait::init();
        let state = Sub::join(&log, start)?;
        Ok(Subscriber {
            log,
            state,
            live: Liveness::new(),
            pending: None,
            buf: Vec::new(),
            policy,
            _elem: PhantomData,
        })
    }

    /// Another subscriber of the same log, in this process, starting at `start`
    /// (an evicted subscriber subscribes again this way).
    ///
    /// # Errors
    /// [`crate::Error::TooManyAttached`] if [`super::MAX_SUBSCRIBERS`] are
    /// subscribed.
    pub fn subscribe(&self, start: Start) -> Result<Subscriber<T>> {
        Self::join(Arc::clone(&self.log), start, self.policy)
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

    /// Batches published that this subscriber has not received yet (a snapshot;
    /// lossy, some of them may be lost before it gets there).
    pub fn behind(&self) -> u64 {
        self.state.behind(&self.log)
    }

    /// Batches this subscriber was told it missed (`Lagged`), in all.
    pub fn missed(&self) -> u64 {
        self.state.missed()
    }

    /// Whether the publisher has gone (more batches may still be waiting).
    pub fn is_disconnected(&self) -> bool {
        self.log.publisher_gone(false)
    }

    /// Whether this subscriber was evicted (lossless): it receives nothing more.
    pub fn is_evicted(&self) -> bool {
        self.state.is_evicted()
    }

    /// How the blocking calls wait.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.policy
    }

    /// Change how the blocking calls wait.
    pub fn set_wait_policy(&mut self, policy: WaitPolicy) {
        self.policy = policy;
    }

    /// The next batch if one is there now, validated up to its header.
    fn try_look(&mut self) -> Result<Peeked, TryRecvError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        match self.state.look(&self.log) {
            Ok(p) => Ok(p),
            Err(Miss::Empty) => {
                if !self.log.publisher_gone(self.live.due(false)) {
                    return Err(TryRecvError::Empty);
                }
                // Gone: drain what it published before it went.
                match self.state.look(&self.log) {
                    Ok(p) => Ok(p),
                    Err(Miss::Empty) => Err(TryRecvError::Disconnected),
                    Err(m) => Err(TryRecvError::of(m)),
                }
            }
            Err(m) => Err(TryRecvError::of(m)),
        }
    }

    fn look_until(&mut self, deadline: Deadline) -> Result<Peeked, RecvTimeoutError> {
        match self.try_look() {
            Ok(p) => Ok(p),
            Err(TryRecvError::Empty) => wait::until(&mut Looking { rx: self }, deadline),
            Err(e) => Err(wait::AttemptError::waiting(e)),
        }
    }

    /// Copy the batch `p` into `out`, and keep it if it was intact.
    fn take_into(&mut self, p: Peeked, out: &mut Vec<T>) -> Result<usize, TryRecvError> {
        copy_out(&self.log, &p, out);
        match self.state.intact(&self.log, &p) {
            Ok(()) => {
                self.state.release(&self.log, &p);
                Ok(p.len)
            }
            Err(m) => {
                out.clear();
                Err(TryRecvError::of(m))
            }
        }
    }

    /// Receive the next batch in place, waiting for it. The guard derefs to
    /// `&[T]` (read-only: other subscribers read the same memory); dropping it
    /// moves on.
    ///
    /// Lossy: a batch the publisher overwrites while the guard is alive is
    /// reported when the guard drops, as [`RecvError::Lagged`] of the next call,
    /// which counts it among the missed ones; [`Batch::is_intact`] tells it
    /// before. Copy with [`recv_into`](Self::recv_into) where a torn read must
    /// never be looked at.
    ///
    /// # Errors
    /// [`RecvError::Lagged`] (lossy) after batches were lost;
    /// [`RecvError::Evicted`] (lossless) once evicted;
    /// [`RecvError::Disconnected`] once the publisher has gone and every batch
    /// was received; [`RecvError::Corrupted`] for a damaged log.
    pub fn recv(&mut self) -> Result<Batch<'_, T>, RecvError> {
        let p = self
            .look_until(Deadline::never())
            .map_err(RecvTimeoutError::without_deadline)?;
        self.batch(p)
            .map_err(|e| wait::AttemptError::waiting(e).without_deadline())
    }

    /// The guard over the batch `p`: in place, or (lossy) a checked copy.
    fn batch(&mut self, p: Peeked) -> Result<Batch<'_, T>, TryRecvError> {
        if self.log.config.lossy {
            let mut buf = std::mem::take(&mut self.buf);
            let r = self.take_into(p, &mut buf);
            self.buf = buf;
            r?;
            return Ok(Batch {
                rx: self,
                view: View::Copied,
            });
        }
        if self.log.config.evict_after.is_some() && !self.state.start_reading(&self.log) {
            return Err(TryRecvError::Evicted);
        }
        Ok(Batch {
            rx: self,
            view: View::InPlace(p),
        })
    }

    /// [`recv`](Self::recv) if a batch is there now.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], otherwise as [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Batch<'_, T>, TryRecvError> {
        let p = self.try_look()?;
        self.batch(p)
    }

    /// [`recv`](Self::recv), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], otherwise as [`recv`](Self::recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Batch<'_, T>, RecvTimeoutError> {
        let p = self.look_until(Deadline::after(timeout))?;
        self.batch(p).map_err(wait::AttemptError::waiting)
    }

    /// [`recv`](Self::recv), waiting until `deadline` at the latest.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Batch<'_, T>, RecvTimeoutError> {
        let p = self.look_until(Deadline::at(deadline))?;
        self.batch(p).map_err(wait::AttemptError::waiting)
    }

    /// Receive the next batch into `out` (replacing its contents), waiting for
    /// it; its length. A copy is checked after it is made: a lossy subscriber
    /// never gets a torn batch (`out` is left empty and the call says `Lagged`).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_into(&mut self, out: &mut Vec<T>) -> Result<usize, RecvError> {
        self.recv_into_until(out, Deadline::never())
            .map_err(RecvTimeoutError::without_deadline)
    }

    /// [`recv_into`](Self::recv_into) if a batch is there now.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    pub fn try_recv_into(&mut self, out: &mut Vec<T>) -> Result<usize, TryRecvError> {
        let p = self.try_look()?;
        self.take_into(p, out)
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_into_timeout(
        &mut self,
        out: &mut Vec<T>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_into_until(out, Deadline::after(timeout))
    }

    /// [`recv_into`](Self::recv_into), waiting until `deadline` at the latest.
    ///
    /// # Errors
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_into_deadline(
        &mut self,
        out: &mut Vec<T>,
        deadline: Instant,
    ) -> Result<usize, RecvTimeoutError> {
        self.recv_into_until(out, Deadline::at(deadline))
    }

    fn recv_into_until(
        &mut self,
        out: &mut Vec<T>,
        deadline: Deadline,
    ) -> Result<usize, RecvTimeoutError> {
        let p = self.look_until(deadline)?;
        self.take_into(p, out).map_err(wait::AttemptError::waiting)
    }

    /// Receive batches as vectors until the publisher has gone and the log is
    /// drained (or the subscriber is evicted, or the log is damaged: see
    /// [`Iter::error`]). Lossy: lost batches are skipped and counted in
    /// [`missed`](Self::missed).
    pub fn iter(&mut self) -> Iter<'_, T> {
        Iter {
            rx: self,
            error: None,
        }
    }

    /// Receive the batches that are there now, as vectors (lost ones skipped).
    pub fn try_iter(&mut self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }
}

impl<T: Pod> Drop for Subscriber<T> {
    fn drop(&mut self) {
        self.state.leave(&self.log);
    }
}

/// A subscriber waiting for a batch (`wait::until`).
struct Looking<'a, T: Pod> {
    rx: &'a mut Subscriber<T>,
}

impl<T: Pod> Wait for Looking<'_, T> {
    type Ready = Peeked;
    type Error = TryRecvError;

    fn attempt(&mut self) -> Result<Peeked, TryRecvError> {
        self.rx.try_look()
    }

    fn sleep(&mut self, slice: Duration) -> Result<(), TryRecvError> {
        let rx = &mut *self.rx;
        if rx.live.due(true) {
            rx.live.ask(); // the next attempt checks the publisher's process
            return Ok(());
        }
        rx.state.sleep(&rx.log, slice);
        Ok(())
    }

    fn policy(&self) -> WaitPolicy {
        self.rx.policy
    }
}

/// Copy the elements of `p` into `out`: word by word from a racy log (see
/// `Log::racy`), else with a plain copy.
fn copy_out<T: Pod>(log: &Log, p: &Peeked, out: &mut Vec<T>) {
    out.clear();
    if log.racy() {
        out.reserve(p.len);
        // SAFETY: `look` validated the record to lie inside the log with `p.len`
        // elements; `out` has room for them, and any bytes are a valid `T: Pod`.
        unsafe {
            log.load_words(
                p.off,
                out.as_mut_ptr().cast(),
                p.len * std::mem::size_of::<T>(),
            );
            out.set_len(p.len);
        }
    } else {
        // SAFETY: validated by `look` as above; a lossless log that does not
        // evict is not written there until we release the batch.
        let batch = unsafe { std::slice::from_raw_parts(log.payload::<T>(p.off).as_ptr(), p.len) };
        out.extend_from_slice(batch);
    }
}

/// What a [`Batch`] shows.
#[derive(Debug)]
enum View {
    /// The record in the log (lossless).
    InPlace(Peeked),
    /// The subscriber's copy, checked (lossy).
    Copied,
}

/// A batch received with [`Subscriber::recv`]: derefs to `&[T]`. Lossless: the
/// record in the log, in place (read-only: other subscribers read it too).
/// Lossy: a copy checked to be intact, in a buffer the subscriber keeps.
pub struct Batch<'a, T: Pod = f64> {
    rx: &'a mut Subscriber<T>,
    view: View,
}

impl<T: Pod> Batch<'_, T> {
    /// Whether the batch is intact: always, unless the log was damaged (a
    /// lossless log does not overwrite a batch while its guard lives, even one
    /// that evicts; a lossy one hands over a checked copy).
    pub fn is_intact(&self) -> bool {
        match &self.view {
            View::InPlace(p) => self.rx.state.peek_intact(&self.rx.log, p),
            View::Copied => true,
        }
    }
}

impl<T: Pod> Deref for Batch<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.view {
            // SAFETY: validated by `look` to lie inside the log with `len`
            // aligned elements, which the publisher does not write while the
            // guard lives (lossless; in a log that evicts, the entry says
            // READING, which the publisher does not evict).
            View::InPlace(p) => unsafe {
                std::slice::from_raw_parts(self.rx.log.payload::<T>(p.off).as_ptr(), p.len)
            },
            View::Copied => &self.rx.buf,
        }
    }
}

impl<T: Pod> Drop for Batch<'_, T> {
    fn drop(&mut self) {
        let View::InPlace(p) = self.view else {
            return; // a copy: released when it was made
        };
        let rx = &mut *self.rx;
        if rx.log.config.evict_after.is_some() {
            rx.state.stop_reading(&rx.log);
        }
        match rx.state.intact(&rx.log, &p) {
            Ok(()) => rx.state.release(&rx.log, &p),
            Err(m) => rx.pending = Some(TryRecvError::of(m)),
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Batch<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Blocking iterator of [`Subscriber::iter`].
#[derive(Debug)]
pub struct Iter<'a, T: Pod = f64> {
    rx: &'a mut Subscriber<T>,
    error: Option<RecvError>,
}

impl<T: Pod> Iter<'_, T> {
    /// Why the iteration ended, if not because the publisher left
    /// (`Evicted` or `Corrupted`).
    pub fn error(&self) -> Option<RecvError> {
        self.error
    }
}

impl<T: Pod> Iterator for Iter<'_, T> {
    type Item = Vec<T>;

    fn next(&mut self) -> Option<Vec<T>> {
        if self.error.is_some() {
            return None;
        }
        let mut out = Vec::new();
        loop {
            match self.rx.recv_into(&mut out) {
                Ok(_) => return Some(out),
                Err(RecvError::Lagged { .. }) => continue,
                Err(RecvError::Disconnected) => return None,
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            }
        }
    }
}

/// Non-blocking iterator of [`Subscriber::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T: Pod = f64> {
    rx: &'a mut Subscriber<T>,
}

impl<T: Pod> Iterator for TryIter<'_, T> {
    type Item = Vec<T>;

    fn next(&mut self) -> Option<Vec<T>> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv_into(&mut out) {
                Ok(_) => return Some(out),
                Err(TryRecvError::Lagged { .. }) => continue,
                Err(_) => return None,
            }
        }
    }
}
