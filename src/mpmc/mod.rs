//! Multi-producer multi-consumer queue of batches in fixed-size slots.
//!
//! Any number of [`Sender`]s and [`Receiver`]s, in any number of processes, share a
//! bounded queue of `slots` slots in a named segment. Each slot holds one batch of
//! up to `max_batch` elements, contiguous, so a receiver gets it as one `&[T]` (or
//! `&mut [T]`) where it lies in the segment, and a sender may write it in place
//! ([`Sender::reserve`]).
//!
//! # Behaviour
//! - **Delivery**: each batch goes to exactly one receiver, whole. Batches are
//!   claimed by receivers in the order their senders claimed slots, so the batches
//!   of one sender are claimed in the order it sent them (two receivers may of
//!   course finish them in another order).
//! - **Full**: [`Sender::send`] and [`Sender::reserve`] wait (spin, yield, then
//!   sleep on a futex in the segment); [`Sender::try_send`] returns
//!   [`TrySendError::Full`](crate::TrySendError::Full); `send_timeout` gives up after its timeout. A slot stays
//!   taken while a receiver holds its [`Batch`] guard.
//! - **Empty**: [`Receiver::recv`] waits the same way; [`Receiver::try_recv`]
//!   returns [`TryRecvError::Empty`](crate::TryRecvError::Empty). A batch becomes visible when it is committed;
//!   a slot reserved but not yet committed holds up the receivers behind it (this
//!   is the price of delivering in claim order without locks).
//! - **Batch length**: 0 to [`Sender::max_batch`] elements; longer batches are
//!   refused with `TooLarge`.
//! - **Handles**: `Send` and `Sync`, every method takes `&self`; share a handle
//!   between threads (`Arc`) or [`Clone`] it (clones share one attachment). A segment tracks up to 64 attachments (`create`/`open` calls).
//! - **Disconnect**: when every sender is gone, receivers drain what was committed
//!   and then get `Disconnected`; when every receiver is gone, senders get
//!   `Disconnected`. Before the first sender (receiver) attaches, the other side
//!   waits: `Disconnected` means they came and all left. A new handle may attach
//!   later and the queue resumes.
//! - **A process dies** (SIGKILL at any instruction included): it never detaches,
//!   but the segment records the identity of every attachment (pid and start time,
//!   so a reused pid does not look alive; zombies are dead; peers must share a pid
//!   namespace) and every slot names the attachment that holds it. A waiting side
//!   checks them on its slow path (at most every 20 ms, a system call per attached
//!   process), so the survivors see `Disconnected` as if it had detached, and:
//!   - batches it committed are delivered;
//!   - a slot it had *reserved and not committed* is skipped, by the first
//!     receiver (or sender) that finds it; the batches behind it are delivered and
//!     the queue goes on. Nothing of the dead reservation is delivered.
//!   - a batch it had *received and was holding* (a [`Batch`] guard) is delivered
//!     again, to another receiver: by the sender that next needs its slot, or by a
//!     waiting receiver. Delivery is therefore *at least once* for the batches a
//!     receiver holds when it dies, and exactly once for all others. A redelivered
//!     batch may arrive after later batches of the same sender, and holds what the
//!     dead receiver left in it (it may have modified it in place).
//!
//!   When every sender is gone, receivers drain every committed batch, those
//!   redelivered included, and only then get `Disconnected`. Recovery takes one
//!   liveness interval (20 to 40 ms measured). A process that is stopped
//!   (SIGSTOP) is alive: its slots wait for it. A guard leaked with
//!   `mem::forget` is recovered once its handle's attachment is gone.
//! - **Untrusted peers**: every position, stamp and length read from the segment is
//!   checked before use; damage gives `Corrupted`, never a panic, an out-of-bounds
//!   access or an endless loop.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmbatch::mpmc::{Receiver, Sender};
//! # let name = format!("doc-mpmc-{}", std::process::id());
//! let tx = Sender::<f64>::create(&name, 64, 1024)?; // 64 slots of <= 1024 f64
//! let tx2 = Sender::<f64>::open(&name)?;                // usually other processes
//! let rx = Receiver::<f64>::open(&name)?;
//!
//! tx.send(&[1.0, 2.0, 3.0])?;                            // copying path
//! let mut slot = tx2.reserve(2)?;                        // zero-copy path
//! slot.copy_from_slice(&[4.0, 5.0]);
//! slot.commit();
//!
//! let mut batch = rx.recv()?;                            // a guard over the slot
//! batch[0] += 10.0;                                      // may be modified in place
//! assert_eq!(&*batch, &[11.0, 2.0, 3.0]);
//! drop(batch);                                           // frees the slot
//! let mut v = Vec::new();
//! rx.recv_into(&mut v)?;
//! assert_eq!(v, [4.0, 5.0]);
//!
//! drop((tx, tx2));
//! assert!(rx.recv().is_err()); // Disconnected: drained, and every sender is gone
//! # Ok(()) }
//! ```
//!
//!
//! # Design
//! Vyukov's bounded queue, whose claims survive their claimer: `queue.rs` has the
//! algorithm and the wire format (module docs there), `recover.rs` what a handle
//! does with a slot whose holder died, `attach.rs` a handle's attachment and
//! waiting state, and `sender.rs`/`receiver.rs` the public handles.

mod attach;
mod queue;
mod receiver;
mod recover;
mod sender;
mod wire;

use bytemuck::Pod;

pub use receiver::{Batch, Iter, Receiver, TryIter};
pub use sender::{Reservation, Sender};
pub use wire::MAX_SLOTS;
pub(crate) use wire::{stats, MpmcControl};

use crate::error::Result;
use crate::layout::TypeInfo;
use crate::segment::Region;
use crate::sync::{Arc, Ordering};
use queue::Queue;
use wire::{add, geometry, init_slots, sub};

/// Create a queue of `slots` slots of up to `max_batch` elements on the heap, for
/// threads of one process.
///
/// This runs exactly the algorithm of the shared-memory queue; it is what the loom
/// models, miri and the thread benchmarks use. Share or clone the handles for more
/// threads.
///
/// # Errors
/// [`Error::InvalidSize`](crate::Error::InvalidSize) for zero or absurd `slots` or
/// `max_batch`, [`Error::UnsupportedType`](crate::Error::UnsupportedType) for a
/// zero-sized or over-aligned `T`.
pub fn channel<T: Pod>(slots: usize, max_batch: usize) -> Result<(Sender<T>, Receiver<T>)> {
    channel_near_wrap(slots, max_batch, 0)
}

/// [`channel`], with its positions started `laps` laps before they wrap around
/// at 2^48 (for tests of the wrap, which a real queue reaches after 2^48 claims).
///
/// # Errors
/// As [`channel`].
#[doc(hidden)]
pub fn channel_near_wrap<T: Pod>(
    slots: usize,
    max_batch: usize,
    laps: u64,
) -> Result<(Sender<T>, Receiver<T>)> {
    let ty = TypeInfo::of::<T>()?;
    let (g, dims) = geometry(&ty, slots, max_batch)?;
    let region = Region::heap::<MpmcControl>(g, &ty, |r| init_slots(r, &dims));
    let q = Queue::new(region)?;
    if laps != 0 {
        let start = sub(0, laps.wrapping_mul(dims.one_lap));
        for index in 0..dims.slots {
            // Relaxed: nobody else sees the queue before the handles below exist.
            q.header(index)
                .stamp
                .store(add(start, index as u64), Ordering::Relaxed);
        }
        q.ctl().tail.store(start, Ordering::Relaxed);
        q.ctl().head.store(start, Ordering::Relaxed);
    }
    let q = Arc::new(q);
    Ok((Sender::attach(Arc::clone(&q))?, Receiver::attach(q)?))
}
