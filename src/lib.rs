//! Zero-copy batch queues and shared arrays between processes, over named POSIX
//! shared memory. Linux only (see [Platform](#platform)).
//!
//! Python's `multiprocessing.shared_memory` lets two processes share bytes but gives
//! them no queue and no synchronisation. shmbatch gives them:
//!
//! - [`spsc`]: one producer process sends batches of `T` (any
//!   [`bytemuck::Pod`] type, `f64` by default) to one consumer process. Every batch
//!   arrives whole, in order, as one contiguous slice, which the consumer may read
//!   and modify where it lies in the ring. The producer may write in place too
//!   ([`spsc::Sender::reserve`]).
//! - [`mpmc`]: any number of producer and consumer processes share one bounded
//!   queue of batches in fixed-size slots ([`mpmc::Sender`] and [`mpmc::Receiver`]
//!   are `Clone` and `Send`). Each batch goes to exactly one receiver, whole, in
//!   place; the batches of one sender are claimed in the order it sent them. A
//!   process killed at any instruction wedges nothing: its unfinished reservation is
//!   skipped and a batch it was holding is delivered again to another receiver.
//! - [`array`](mod@array) ([`SharedArray`]): a fixed-length array of `T` that many
//!   processes open by name and update in place: exclusive `write`s under a
//!   cross-process lock that survives a holder's death, reads that never see half a
//!   write, lock-free element operations (`fetch_add` on `f64`, ...), and a stable
//!   data offset that Python's `SharedMemory` plus `numpy` can map directly.
//! - [`inspect`](mod@inspect): a read-only look at segments that never attaches, so
//!   the queue does not notice: [`inspect()`](fn@inspect) reads one segment's
//!   header, kind, geometry, fill level and processes, [`list`] every segment (and
//!   half-made one) in `/dev/shm`. This is what `shmbatch ls`, `stat` and
//!   `rm --stale` show and use.
//! - [`layout`]: the wire format every segment starts with, as public constants
//!   ([`layout::MAGIC`], [`layout::LAYOUT_VERSION`], [`layout::ARRAY_DATA_OFFSET`],
//!   ...), for readers in other languages and for tools; the module docs give the
//!   offsets and who writes each field. Segments of another layout version are
//!   refused with [`Error::VersionMismatch`].
//!
//! Errors are in the crate root: [`Error`] for set-up (`create`, `open`, [`remove`]),
//! and a small `Copy` enum per queue operation ([`TrySendError`], [`SendError`],
//! [`SendTimeoutError`], [`TryRecvError`], [`RecvError`], [`RecvTimeoutError`]) with
//! predicates such as [`TrySendError::is_full`] and [`RecvError::is_disconnected`].
//! [`Error`] converts into [`std::io::Error`], so `?` works in functions returning
//! [`std::io::Result`].
//!
//! Segments are named: a creator makes one (`create`), other processes open it by
//! name (`open`). `"prices"` and `"/prices"` are the same name. The creator removes
//! the segment when it drops unless told to persist; [`remove`] deletes one by name
//! ([`remove_any`] deletes any file in `/dev/shm`). Creation is all-or-nothing: a
//! name is never visible before its segment is complete, even if the creator is
//! killed; opening a file that is not a shmbatch segment fails at once with
//! [`Error::NotShmbatch`].
//!
//! # Verbs
//! The two queues have the same verbs, with the same errors. Each blocking verb has
//! a non-blocking `try_` form, a `_timeout` form that waits at most a
//! [`Duration`](std::time::Duration) and a `_deadline` form that waits until an
//! [`Instant`](std::time::Instant). SPSC verbs take `&mut self` (one producer, one
//! consumer); MPMC verbs take `&self`, and its handles are `Sync`. Both ends of
//! both queues have `len`, `is_empty` and (senders) `is_full`.
//!
//! | verb | waits | [`spsc`] | [`mpmc`] | error |
//! |---|---|---|---|---|
//! | send a copy of `&[T]` | while full | [`send`](spsc::Sender::send) | [`send`](mpmc::Sender::send) | [`SendError`] |
//! | | never | [`try_send`](spsc::Sender::try_send) | [`try_send`](mpmc::Sender::try_send) | [`TrySendError`] |
//! | | at most a timeout | [`send_timeout`](spsc::Sender::send_timeout) | [`send_timeout`](mpmc::Sender::send_timeout) | [`SendTimeoutError`] |
//! | | until an `Instant` | [`send_deadline`](spsc::Sender::send_deadline) | [`send_deadline`](mpmc::Sender::send_deadline) | [`SendTimeoutError`] |
//! | write in place (then `commit`) | while full | [`reserve`](spsc::Sender::reserve) | [`reserve`](mpmc::Sender::reserve) | [`SendError`] |
//! | | never | [`try_reserve`](spsc::Sender::try_reserve) | [`try_reserve`](mpmc::Sender::try_reserve) | [`TrySendError`] |
//! | | at most a timeout | [`reserve_timeout`](spsc::Sender::reserve_timeout) | [`reserve_timeout`](mpmc::Sender::reserve_timeout) | [`SendTimeoutError`] |
//! | | until an `Instant` | [`reserve_deadline`](spsc::Sender::reserve_deadline) | [`reserve_deadline`](mpmc::Sender::reserve_deadline) | [`SendTimeoutError`] |
//! | receive in place (a guard) | while empty | [`recv`](spsc::Receiver::recv) | [`recv`](mpmc::Receiver::recv) | [`RecvError`] |
//! | | never | [`try_recv`](spsc::Receiver::try_recv) | [`try_recv`](mpmc::Receiver::try_recv) | [`TryRecvError`] |
//! | | at most a timeout | [`recv_timeout`](spsc::Receiver::recv_timeout) | [`recv_timeout`](mpmc::Receiver::recv_timeout) | [`RecvTimeoutError`] |
//! | | until an `Instant` | [`recv_deadline`](spsc::Receiver::recv_deadline) | [`recv_deadline`](mpmc::Receiver::recv_deadline) | [`RecvTimeoutError`] |
//! | receive a copy into a `Vec` | while empty | [`recv_into`](spsc::Receiver::recv_into) | [`recv_into`](mpmc::Receiver::recv_into) | [`RecvError`] |
//! | | never | [`try_recv_into`](spsc::Receiver::try_recv_into) | [`try_recv_into`](mpmc::Receiver::try_recv_into) | [`TryRecvError`] |
//! | | at most a timeout | [`recv_into_timeout`](spsc::Receiver::recv_into_timeout) | [`recv_into_timeout`](mpmc::Receiver::recv_into_timeout) | [`RecvTimeoutError`] |
//! | | until an `Instant` | [`recv_into_deadline`](spsc::Receiver::recv_into_deadline) | [`recv_into_deadline`](mpmc::Receiver::recv_into_deadline) | [`RecvTimeoutError`] |
//! | iterate, a `Vec` per batch | until disconnected / while any wait | [`iter`](spsc::Receiver::iter), [`try_iter`](spsc::Receiver::try_iter) | [`iter`](mpmc::Receiver::iter), [`try_iter`](mpmc::Receiver::try_iter) | (ends) |
//!
//! A [`SharedArray`] has no queue verbs; it has
//! [`write`](SharedArray::write) / [`try_write`](SharedArray::try_write) /
//! [`write_timeout`](SharedArray::write_timeout) under its lock,
//! [`read`](SharedArray::read) / [`read_timeout`](SharedArray::read_timeout) and
//! [`snapshot`](SharedArray::snapshot) / [`snapshot_timeout`](SharedArray::snapshot_timeout) /
//! [`snapshot_into`](SharedArray::snapshot_into) that never see half a write, and the
//! lock-free element operations [`load`](SharedArray::load),
//! [`store`](SharedArray::store), [`swap`](SharedArray::swap),
//! [`fetch_add`](SharedArray::fetch_add) and
//! [`compare_exchange`](SharedArray::compare_exchange).
//!
//! # Behaviour in brief
//! - Blocking calls spin briefly, then yield, then sleep on a futex word in the
//!   segment; every blocking call has `try_` and `_timeout` variants. When nobody
//!   sleeps, the fast path makes no system call.
//! - A side whose peer has gone gets `Disconnected` (a receiver first drains what
//!   was sent). A peer whose process died is detected too.
//! - The other process is not trusted: every header field, index and length read
//!   from shared memory is validated before use, and damage is reported as
//!   [`Error::Corrupted`] or a `Corrupted` variant, never as a panic or an
//!   out-of-bounds access.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let name = format!("doc-lib-{}", std::process::id());
//! // Process A
//! let mut tx = shmbatch::spsc::Sender::<f64>::create(&name, 1 << 16)?;
//! tx.send(&[1.0, 2.0, 3.0])?;
//!
//! // Process B
//! let mut rx = shmbatch::spsc::Receiver::<f64>::open(&name)?;
//! let batch = rx.recv()?;
//! assert_eq!(&*batch, &[1.0, 2.0, 3.0]);
//! # Ok(()) }
//! ```
//!
//! # Safety model
//! See the README's "Safety model" section: a peer process can corrupt the data it
//! shares with you and make you see errors or wrong values, but it cannot make this
//! crate read or write outside the segment, panic, or wait forever on a call that
//! has a timeout. It can make you crash with `SIGBUS` by shrinking the shared file,
//! which no user-space library can prevent.
//!
//! # Platform
//! Linux only, and the crate does not compile elsewhere: waiting sleeps on `futex(2)`
//! words inside the segment, segments are files in `/dev/shm` created whole with
//! `renameat2(RENAME_NOREPLACE)`, a peer's liveness is its pid and start time read
//! from `/proc/PID/stat`, and the fast path relies on `membarrier(2)` where it is
//! cheap (with a fence
//! per publish where it is missing). Processes that share a segment must share a
//! pid namespace.

#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "shmbatch supports Linux only: it waits on futex(2) words in shared memory, creates \
     segments in /dev/shm with renameat2, and checks peer liveness through /proc/PID/stat"
);

mod verbs;

pub mod array;
pub mod broadcast;
mod error;
pub mod inspect;
pub mod layout;
pub mod mpmc;
mod options;
mod peers;
mod segment;
pub mod spsc;
mod sync;
mod wait;

pub use array::{AtomicElement, Recovered, SharedArray, WriteGuard, WriteOutcome};
pub use error::{
    Error, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
pub use error::{IndexOutOfBounds, LockBusy, LockTimeout};
pub use inspect::{inspect, list, BroadcastInfo, SegmentInfo, SubscriberInfo};
pub use layout::{Kind, Role};
pub use options::Options;
pub use segment::{remove, remove_any, Mapped, MAX_NAME_LEN};
pub use wait::{asymmetric_wake, calibration, Calibration, WaitPolicy, WakeProtocol};

/// Not part of the stable API: what the workspace's bench code (`bench-peers/`, the
/// CLI) shares with the library. It may change in any release.
#[doc(hidden)]
pub mod __bench {
    pub use crate::wait::SpinThenYield as Backoff;
}
