//! Zero-copy batch queues and shared arrays between processes, over named POSIX
//! shared memory.
//!
//! Python's `multiprocessing.shared_memory` lets two processes share bytes but gives
//! them no queue and no synchronisation. shmbatch gives them:
//!
//! - [`spsc`]: one producer process sends batches of `T` (any
//!   [`bytemuck::Pod`] type, `f64` by default) to one consumer process. Every batch
//!   arrives whole, in order, as one contiguous slice, which the consumer may read
//!   and modify where it lies in the ring. The producer may write in place too
//!   ([`spsc::Sender::reserve`]).
//! - [`SharedArray`]: a fixed-length array of `T` that many processes open by name
//!   and update in place: exclusive `write`s under a cross-process lock that
//!   survives a holder's death, reads that never see half a write, lock-free
//!   element operations (`fetch_add` on `f64`, ...), and a stable data offset that
//!   Python's `SharedMemory` plus `numpy` can map directly.
//!
//! Segments are named: a creator makes one (`create`), other processes open it by
//! name (`open`). `"prices"` and `"/prices"` are the same name. The creator removes
//! the segment when it drops unless told to persist; [`remove`] deletes one by name
//! ([`remove_any`] deletes any file in `/dev/shm`). Creation is all-or-nothing: a
//! name is never visible before its segment is complete, even if the creator is
//! killed; opening a file that is not a shmbatch segment fails at once with
//! [`Error::NotShmbatch`].
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

#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[macro_use]
mod verbs;

pub mod array;
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

pub use array::{AtomicElement, Recovered, SharedArray, WriteOutcome};
pub use error::{
    Error, Kind, RecvError, RecvTimeoutError, Result, Role, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
pub use error::{IndexOutOfBounds, LockBusy, LockTimeout};
pub use inspect::{inspect, list, SegmentInfo};
pub use options::Options;
pub use segment::{remove, remove_any, MAX_NAME_LEN};
pub use wait::asymmetric_wake;
