//! Broadcast: one publisher, many subscribers, each of which sees every batch.
//!
//! One [`Publisher`] writes variable-length batches into a log in a named
//! segment; any number of [`Subscriber`]s (up to [`MAX_SUBSCRIBERS`] at once), in
//! any processes, each read the log at their own position. Every batch is one
//! contiguous slice, as in [`crate::spsc`]; a subscriber's in-place batch is
//! read-only, because the other subscribers read the same memory.
//!
//! # Policies
//! Chosen at creation ([`Options::broadcast_policy`]):
//! - [`Policy::Lossless`] (the default): the publisher waits for the slowest
//!   live subscriber. A subscriber whose process died stops holding it back as
//!   soon as the publisher finds the log full (its process is checked at once,
//!   then every 20 ms). With [`Options::evict_after`], a live subscriber that
//!   holds the publisher back that long without moving is evicted: its next call
//!   returns [`RecvError::Evicted`], and it may subscribe again. The default is
//!   never to evict.
//! - [`Policy::Lossy`] (latest wins): the publisher never waits. A subscriber
//!   that was lapped gets [`RecvError::Lagged`] with the exact number of batches
//!   it lost, and the next call returns the oldest batch the log still holds.
//!   Every read is checked after it is made, seqlock-style: `recv_into` never
//!   hands over a torn batch. An in-place batch ([`Subscriber::recv`]) is
//!   checked when its guard drops: if it was overwritten meanwhile, the next call
//!   reports `Lagged`, counting it as missed ([`Batch::is_intact`] tells before).
//!   So a lossy subscriber that must never look at torn bytes copies.
//!
//! # Joining and leaving
//! A new subscriber starts at the next batch published after it joined
//! ([`Start::Next`], the default) or at the oldest batch the log still holds
//! ([`Start::Oldest`]; [`Options::start`], or [`Publisher::subscribe`]'s
//! argument). Subscribers come and go freely. When the publisher drops (or its
//! process dies), subscribers drain what they have not read and then get
//! [`RecvError::Disconnected`]. The publisher never gets `Disconnected`: with no
//! subscribers it goes on publishing into the log.
//!
//! # What a process death costs
//! - A subscriber killed mid-batch holds nothing: its entry is freed by the
//!   publisher the first time it finds the log full, after checking the process
//!   (pid and start time, as in [`crate::spsc`]).
//! - A publisher killed mid-batch loses that batch (never published); the
//!   subscribers see everything before it, then `Disconnected` within 20 ms.
//! - A subscriber stopped (SIGSTOP) is alive: lossless, it holds the publisher
//!   back until it continues or is evicted; lossy, it is lapped.
//!
//! # Capacity
//! As for SPSC: `create(name, capacity)` sizes the log for `capacity` elements,
//! two records of the longest batch (`capacity / 2` elements, or
//! [`Options::max_batch`]), with a header of `max(16, align_of::<T>())` bytes per
//! batch.
//!
//! # Waiting
//! The verbs are those of the queues: blocking, `try_`, `_timeout` and
//! `_deadline` forms, with the [`WaitPolicy`](crate::WaitPolicy) of the options.
//! The publisher wakes sleeping subscribers with the segment's
//! [`WakeProtocol`](crate::WakeProtocol) ([`Options::wake_protocol`]; adaptive
//! by default: no fence per publish while no subscriber sleeps); lossless
//! subscribers wake a waiting publisher with a fence per release.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmbatch::broadcast::{Publisher, Subscriber};
//! # let name = format!("doc-bcast-{}", std::process::id());
//! let mut tx = Publisher::<f64>::create(&name, 4096)?; // creator: unlinks on drop
//! let mut a = Subscriber::<f64>::open(&name)?;          // usually other processes
//! let mut b = Subscriber::<f64>::open(&name)?;
//!
//! tx.send(&[1.0, 2.0, 3.0])?;
//! let mut slot = tx.reserve(2)?; // zero-copy
//! slot.copy_from_slice(&[4.0, 5.0]);
//! slot.commit();
//!
//! assert_eq!(&*a.recv()?, &[1.0, 2.0, 3.0]); // in place, read-only
//! let mut v = Vec::new();
//! a.recv_into(&mut v)?;
//! assert_eq!(v, [4.0, 5.0]);
//! assert_eq!(b.iter().take(2).collect::<Vec<_>>(), [vec![1.0, 2.0, 3.0], vec![4.0, 5.0]]);
//!
//! drop(tx);
//! assert!(a.recv().unwrap_err().is_disconnected());
//! # Ok(()) }
//! ```
//!
//! Lossy, with a subscriber that falls behind:
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmbatch::broadcast::{self, Policy, RecvError, Start};
//! use shmbatch::Options;
//! let opts = Options::new().broadcast_policy(Policy::Lossy);
//! let (mut tx, mut slow) = broadcast::channel_with::<u64>(64, &opts)?;
//! for i in 0..1000 {
//!     tx.send(&[i])?; // never waits
//! }
//! let Err(RecvError::Lagged { missed }) = slow.recv_into(&mut Vec::new()) else {
//!     panic!("expected a lag")
//! };
//! let mut v = Vec::new();
//! slow.recv_into(&mut v)?; // the oldest batch still held
//! assert_eq!(v[0], missed);
//! # let _ = Start::Next;
//! # Ok(()) }
//! ```

mod error;
mod log;
mod publisher;
mod reader;
mod subscriber;
mod wire;
mod writer;

pub use error::{RecvError, RecvTimeoutError, TryRecvError};
pub use log::Start;
pub use publisher::{Publisher, Reservation};
pub use subscriber::{Batch, Iter, Subscriber, TryIter};
pub(crate) use wire::stats;
pub(crate) use wire::BroadcastControl;
pub use wire::MAX_SUBSCRIBERS;

use bytemuck::Pod;

use crate::{Options, Result};

/// What the publisher does when a subscriber falls a whole log behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Wait for the slowest live subscriber (back-pressure).
    #[default]
    Lossless,
    /// Never wait: overwrite, and tell the lapped subscriber what it lost.
    Lossy,
}

/// A lossless broadcast log on the heap, for threads: the publisher and a first
/// subscriber (more with [`Publisher::subscribe`]). `capacity` as for
/// [`Publisher::create`].
///
/// # Errors
/// [`crate::Error::InvalidSize`] for a zero or huge capacity.
pub fn channel<T: Pod>(capacity: usize) -> Result<(Publisher<T>, Subscriber<T>)> {
    channel_with(capacity, &Options::new())
}

/// [`channel`] with options (policy, eviction, longest batch, wait policy); the
/// first subscriber starts at [`Options::start`].
///
/// # Errors
/// As [`channel`], and bad options.
pub fn channel_with<T: Pod>(
    capacity: usize,
    opts: &Options,
) -> Result<(Publisher<T>, Subscriber<T>)> {
    let tx = Publisher::heap(capacity, opts)?;
    let rx = tx.subscribe(opts.broadcast_start())?;
    Ok((tx, rx))
}
