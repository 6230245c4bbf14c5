//! The local ends of a bridge: the queue handles an [`Exporter`](crate::Exporter)
//! receives from ([`Source`]) and an [`Importer`](crate::Importer) sends into
//! ([`Sink`]). Both traits are sealed: they are implemented for shmbatch's own
//! handles, whose counters the bridge's restart accounting relies on.

use std::time::Duration;

use bytemuck::Pod;
use shmbatch::{broadcast, mpmc, spsc};

use crate::Error;

mod sealed {
    pub trait Sealed {}
}

/// What one poll of a [`Source`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// A batch was handed to the callback (which returned `Ok`).
    Batch,
    /// Nothing arrived within the poll interval.
    Idle,
    /// The source lost `missed` batches (a lossy broadcast subscriber was lapped).
    Missed(u64),
    /// The source is drained and its senders are gone.
    Ended,
}

/// What a [`Source`] hands each batch to: the queue's number for it, if any,
/// and the batch in place.
pub type Each<'a, T> = &'a mut dyn FnMut(Option<u64>, &[T]) -> Result<(), Error>;

/// A local queue an exporter receives from: [`spsc::Receiver`],
/// [`mpmc::Receiver`] or [`broadcast::Subscriber`].
pub trait Source: sealed::Sealed {
    /// The element type.
    type Elem: Pod;

    /// Wait up to `poll` for the next batch and hand it to `f` in place, with the
    /// queue's own number for it where the queue keeps one (SPSC: the count of
    /// batches received before it). The batch is released only after `f` returns,
    /// so a process killed inside `f` leaves it in the queue for the next receiver.
    fn poll(&mut self, poll: Duration, f: Each<'_, Self::Elem>) -> Result<Polled, Error>;

    /// The queue's segment name, if it has one.
    fn segment(&self) -> Option<&str>;

    /// The number the next batch will have, for a queue that numbers its
    /// batches (so that a restarted exporter continues the same stream): SPSC.
    /// `None` for the others.
    fn next_number(&self) -> Option<u64>;
}

impl<T: Pod> sealed::Sealed for spsc::Receiver<T> {}
impl<T: Pod> Source for spsc::Receiver<T> {
    type Elem = T;

    fn poll(&mut self, poll: Duration, f: Each<'_, T>) -> Result<Polled, Error> {
        // The batch's number is the count of batches released before it; it
        // counts up when the guard drops.
        let seq = self.received();
        match self.recv_timeout(poll) {
            Ok(batch) => {
                f(Some(seq), &batch)?;
                Ok(Polled::Batch)
            }
            Err(shmbatch::RecvTimeoutError::Timeout) => Ok(Polled::Idle),
            Err(shmbatch::RecvTimeoutError::Disconnected) => Ok(Polled::Ended),
            Err(e) => Err(Error::Queue(e.to_string())),
        }
    }

    fn segment(&self) -> Option<&str> {
        self.name()
    }

    fn next_number(&self) -> Option<u64> {
        Some(self.received())
    }
}

impl<T: Pod> sealed::Sealed for mpmc::Receiver<T> {}
impl<T: Pod> Source for mpmc::Receiver<T> {
    type Elem = T;

    fn poll(&mut self, poll: Duration, f: Each<'_, T>) -> Result<Polled, Error> {
        match self.recv_timeout(poll) {
            Ok(batch) => {
                f(None, &batch)?;
                Ok(Polled::Batch)
            }
            Err(shmbatch::RecvTimeoutError::Timeout) => Ok(Polled::Idle),
            Err(shmbatch::RecvTimeoutError::Disconnected) => Ok(Polled::Ended),
            Err(e) => Err(Error::Queue(e.to_string())),
        }
    }

    fn segment(&self) -> Option<&str> {
        self.name()
    }

    fn next_number(&self) -> Option<u64> {
        None
    }
}

impl<T: Pod> sealed::Sealed for broadcast::Subscriber<T> {}
impl<T: Pod> Source for broadcast::Subscriber<T> {
    type Elem = T;

    fn poll(&mut self, poll: Duration, f: Each<'_, T>) -> Result<Polled, Error> {
        use broadcast::RecvTimeoutError as E;
        match self.recv_timeout(poll) {
            Ok(batch) => {
                f(None, &batch)?;
                Ok(Polled::Batch)
            }
            Err(E::Timeout) => Ok(Polled::Idle),
            Err(E::Lagged { missed }) => Ok(Polled::Missed(missed)),
            Err(E::Disconnected) => Ok(Polled::Ended),
            Err(e) => Err(Error::Queue(e.to_string())),
        }
    }

    fn segment(&self) -> Option<&str> {
        self.name()
    }

    fn next_number(&self) -> Option<u64> {
        None
    }
}

/// What one offer to a [`Sink`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// The batch is committed to the queue.
    Sent,
    /// The queue had no room (only when the importer does not wait).
    Full,
}

/// A local queue an importer sends into: [`spsc::Sender`], [`mpmc::Sender`] or
/// [`broadcast::Publisher`].
pub trait Sink: sealed::Sealed {
    /// The element type.
    type Elem: Pod;

    /// Commit a batch of `bytes.len() / size_of::<Elem>()` elements whose bytes are
    /// `bytes` (any alignment). With `wait`, wait for room as long as it takes,
    /// checking `stop` every few milliseconds; without, return
    /// [`Offered::Full`] if there is none.
    fn offer(
        &mut self,
        bytes: &[u8],
        wait: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<Offered, Error>;

    /// Batches committed to the queue since it was created, by every sender, where
    /// the queue counts them for one sender (SPSC, broadcast); `None` for MPMC.
    fn committed(&self) -> Option<u64>;

    /// The queue's segment name, if it has one.
    fn segment(&self) -> Option<&str>;

    /// The longest batch the queue takes.
    fn max_batch(&self) -> usize;
}

/// How long one wait for room lasts before `stop` is checked again.
const ROOM_SLICE: Duration = Duration::from_millis(20);

/// The elements of `bytes`, copied into `out` (which has exactly that many).
fn fill<T: Pod>(out: &mut [T], bytes: &[u8]) {
    bytemuck::cast_slice_mut::<T, u8>(out).copy_from_slice(bytes);
}

/// One reservation attempt's outcome, kind aside.
fn send_error(e: impl std::fmt::Display) -> Error {
    Error::Queue(e.to_string())
}

macro_rules! reserve_loop {
    ($self:ident, $len:ident, $bytes:ident, $wait:ident, $stop:ident) => {{
        use shmbatch::{SendTimeoutError as W, TrySendError as T};
        if !$wait {
            return match $self.try_reserve($len) {
                Ok(mut r) => {
                    fill(&mut r, $bytes);
                    r.commit();
                    Ok(Offered::Sent)
                }
                Err(T::Full) => Ok(Offered::Full),
                Err(e) => Err(send_error(e)),
            };
        }
        loop {
            match $self.reserve_timeout($len, ROOM_SLICE) {
                Ok(mut r) => {
                    fill(&mut r, $bytes);
                    r.commit();
                    return Ok(Offered::Sent);
                }
                Err(W::Timeout) if !$stop() => continue,
                Err(W::Timeout) => return Err(Error::Stopped),
                Err(e) => return Err(send_error(e)),
            }
        }
    }};
}

impl<T: Pod> sealed::Sealed for spsc::Sender<T> {}
impl<T: Pod> Sink for spsc::Sender<T> {
    type Elem = T;

    fn offer(
        &mut self,
        bytes: &[u8],
        wait: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<Offered, Error> {
        let len = bytes.len() / size_of::<T>();
        reserve_loop!(self, len, bytes, wait, stop)
    }

    fn committed(&self) -> Option<u64> {
        Some(self.sent())
    }

    fn segment(&self) -> Option<&str> {
        self.name()
    }

    fn max_batch(&self) -> usize {
        spsc::Sender::max_batch(self)
    }
}

impl<T: Pod> sealed::Sealed for mpmc::Sender<T> {}
impl<T: Pod> Sink for mpmc::Sender<T> {
    type Elem = T;

    fn offer(
        &mut self,
        bytes: &[u8],
        wait: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<Offered, Error> {
        let len = bytes.len() / size_of::<T>();
        reserve_loop!(self, len, bytes, wait, stop)
    }

    fn committed(&self) -> Option<u64> {
        None
    }

    fn segment(&self) -> Option<&str> {
        self.name()
    }

    fn max_batch(&self) -> usize {
        mpmc::Sender::max_batch(self)
    }
}

impl<T: Pod> sealed::Sealed for broadcast::Publisher<T> {}
impl<T: Pod> Sink for broadcast::Publisher<T> {
    type Elem = T;

    fn offer(
        &mut self,
        bytes: &[u8],
        wait: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<Offered, Error> {
        let len = bytes.len() / size_of::<T>();
        reserve_loop!(self, len, bytes, wait, stop)
    }

    fn committed(&self) -> Option<u64> {
        Some(self.published())
    }

    fn segment(&self) -> Option<&str> {
        self.name()
    }

    fn max_batch(&self) -> usize {
        broadcast::Publisher::max_batch(self)
    }
}
