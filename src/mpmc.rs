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
//!   [`TrySendError::Full`]; `send_timeout` gives up after its timeout. A slot stays
//!   taken while a receiver holds its [`Batch`] guard.
//! - **Empty**: [`Receiver::recv`] waits the same way; [`Receiver::try_recv`]
//!   returns [`TryRecvError::Empty`]. A batch becomes visible when it is committed;
//!   a slot reserved but not yet committed holds up the receivers behind it (this
//!   is the price of delivering in claim order without locks).
//! - **Batch length**: 0 to [`Sender::max_batch`] elements; longer batches are
//!   refused with `TooLarge`.
//! - **Handles**: `Send`, and [`Clone`] within a process (clones share one
//!   attachment). A segment tracks up to 64 attachments (`create`/`open` calls).
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
//! let mut tx = Sender::<f64>::create(&name, 64, 1024)?; // 64 slots of <= 1024 f64
//! let mut tx2 = Sender::<f64>::open(&name)?;            // usually other processes
//! let mut rx = Receiver::<f64>::open(&name)?;
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
//! # The algorithm
//! Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>),
//! in the lap encoding of crossbeam's `ArrayQueue`. Positions `tail` (enqueue) and
//! `head` (dequeue) are `lap | index` with `one_lap = (slots + 1).next_power_of_two()`.
//! Each slot carries a stamp; for the slot at position `p`:
//!
//! ```text
//! stamp == p                 free for lap(p): a sender may claim p (CAS tail p -> next)
//! stamp == p + 1             committed: a receiver may claim p (CAS head p -> next)
//! stamp == p + one_lap       released by the receiver: free for the next lap
//! ```
//!
//! A sender at `tail = t` that sees `stamp == t - one_lap` (previous lap claimed,
//! not committed) or `t - one_lap + 1` (previous lap committed or being read) finds
//! the queue full; a receiver at `head = h` that sees `h` (free, or claimed and not
//! committed) or `h + 1 - one_lap` (previous lap still being read) finds it empty.
//! Because `tail` and `head` only move by read-modify-writes, an `Acquire` load of
//! one synchronises with every earlier claimer, so no older stamp can be seen; and a
//! stamp from a later lap is only ever seen after the position moved past. So any
//! other stamp, with a position that has not moved, is corruption. Every position is
//! checked to index a real slot (`index < slots`) and every length against
//! `max_batch` before use, and each `try_` operation gives up after a bounded
//! number of contended retries.
//!
//! A reservation dropped without commit publishes its slot with the length word
//! `u64::MAX` ("skipped"), which receivers release and step over, so the queue
//! never wedges on a cancelled send.
//!
//! ## Claims that survive their claimer
//! Vyukov's queue claims a slot with the CAS on `tail` (or `head`); a claimer that
//! dies after it holds the slot for ever, and nobody can tell whose it was. Here
//! the claim is a CAS on the slot's *claim word* instead (`ClaimWord`: the
//! claimer's attachment entry and its generation, the side, the position), and
//! `tail` (`head`) is moved right after, by the claimer or by anyone who finds the
//! claim while the position still names it (`Queue::advance`). So at every
//! instruction a claimed slot names its holder, and a holder found dead
//! (`Peers::holder_alive`) is replaced by a CAS from its claim word:
//!
//! ```text
//! stamp p,     write claim of p, holder gone  -> publish p as skipped
//! stamp p + 1, read claim of p,  holder gone  -> a sender at p + one_lap commits
//!                                                it again there; a receiver takes
//!                                                it over as it lies
//! ```
//!
//! A sender claims only a slot whose claim word is the previous lap's read claim
//! (or none yet), and a receiver only one holding the commit's write claim for
//! its position; the position in the word makes every claim word unique (for
//! 2^48 claims), so a CAS from a word read before the slot moved on fails. A
//! recovering handle reads the claim word, finds the holder gone, and only then
//! reads the stamp (a gone holder changes neither again).
//!
//! Sync points (both ends are labelled in the code):
//! - "publish batch": the sender writes the payload and the length, then stores
//!   `p + 1` in the stamp (Release); the receiver loads the stamp with Acquire
//!   before reading the length and the payload.
//! - "free slot": the receiver is done with the payload, then stores `p + one_lap`
//!   in the stamp (Release); the next sender loads it with Acquire before writing.
//! - "detach": a leaving handle decrements its role's count with a Release RMW
//!   after its last publish or release; the other side loads the count with
//!   Acquire and then looks at the queue once more (see `peers.rs`).
//!
//! Waiting follows the protocol of `wait.rs`: receivers sleep on `not_empty`,
//! senders on `not_full`. K1 is the Release stamp store of a publish or release,
//! after which `wait::wake` runs the waker's barrier and wakes the other side's
//! word only if someone announced sleep there; the last handle of a role to
//! detach wakes the other side unconditionally (`wait::wake_always`). W2 reloads, with
//! `SeqCst`, the sleeper's position, the stamp of the slot it is waiting at and the
//! peer count, and sleeps only if none changed.
//!
//! # Wire format
//! ```text
//! control block (at CONTROL_OFFSET, 1024 bytes)
//!   line 0   tail: enqueue position                (senders)
//!   line 1   head: dequeue position                (receivers)
//!   line 2   futex words not_empty, not_full       (sleepers and their wakers)
//!   line 3   peer counts and the deaths hint; lines 4..8 the attachment
//!            table (peers.rs)
//! data region: `slots` slots of `stride` bytes (a multiple of 64 and of
//! align_of::<T>())
//!   +0   stamp  u64    sequence stamp (above)
//!   +8   len    u64    batch length in elements, or u64::MAX for a skipped slot
//!   +16  claim  u64    claim word of the holder (ClaimWord)
//!   +24  reserved u64
//!   +max(32, align_of::<T>())   payload: max_batch elements
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{
    Error, Kind, RecvError, RecvTimeoutError, Result, Role, SendError, SendTimeoutError,
    TryRecvError, TrySendError,
};
use crate::layout::{Geometry, Padded, TypeInfo, MAX_SEGMENT_LEN};
use crate::options::Options;
use crate::peers::{self, Left, Peers, TABLE_LEN};
use crate::segment::{Control, Create, ProcId, Region};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use crate::wait::{self, Deadline, SLICE};

/// Most slots a queue may have.
pub const MAX_SLOTS: usize = 1 << 30;

/// Length word of a slot whose reservation was dropped: receivers skip it.
const SKIPPED: u64 = u64::MAX;

/// Bytes of a slot header; the payload starts at `max(SLOT_HEADER, align_of::<T>())`.
const SLOT_HEADER: usize = 32;

/// Slots are a multiple of this (and of `align_of::<T>()`): one cache line, so a
/// slot of a small batch does not share a line with its neighbours' headers while
/// taking half the memory (and cross-core traffic) of two-line slots.
const SLOT_ALIGN: usize = 64;

/// Contended attempts (lost CAS, moved position, skipped slot) one `try_` call makes
/// before it reports `Full`/`Empty`. Each one means another handle made progress.
const RETRY_LIMIT: u32 = 1024;

/// Failed polls between two looks at the peers' liveness (which are also at least
/// [`SLICE`] apart).
const LIVENESS_EVERY: u32 = 1024;

/// The claim word of a slot: who holds it, on which side, for which position.
///
/// ```text
/// bit 63       1 once claimed (0: never claimed since creation)
/// bits 62..57  the holder's attachment entry (peers.rs)
/// bits 56..49  that entry's generation when the claim was made
/// bit 48       side: 0 = claimed by a sender (writing), 1 = taken by a receiver
/// bits 47..0   the position claimed, modulo 2^48
/// ```
///
/// The position makes every claim word unique for 2^48 claims, so a CAS from a
/// word read earlier cannot succeed after the slot went round a lap (no ABA), and
/// the entry and generation name an attachment even after its entry is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClaimWord(u64);

/// Which side holds a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// A sender claimed it and is writing (stamp `p`), or committed it (`p + 1`).
    Write,
    /// A receiver took the committed batch (stamp `p + 1`) and is reading it.
    Read,
}

impl ClaimWord {
    const CLAIMED: u64 = 1 << 63;
    const ENTRY_SHIFT: u32 = 57;
    const GEN_SHIFT: u32 = 49;
    const READ: u64 = 1 << 48;
    const POS: u64 = (1 << 48) - 1;

    /// The identity bits of attachment `slot`.
    fn holder_bits(slot: peers::Slot) -> u64 {
        Self::CLAIMED | (slot.entry as u64) << Self::ENTRY_SHIFT | slot.gen << Self::GEN_SHIFT
    }

    /// The word for a claim by the holder `bits` (from `holder_bits`).
    #[inline]
    fn new(bits: u64, side: Side, pos: u64) -> ClaimWord {
        let side = match side {
            Side::Write => 0,
            Side::Read => Self::READ,
        };
        ClaimWord(bits | side | pos & Self::POS)
    }

    /// Whether this is a claim of position `pos` on `side`.
    #[inline]
    fn is(self, side: Side, pos: u64) -> bool {
        let want = match side {
            Side::Write => 0,
            Side::Read => Self::READ,
        };
        self.0 & (Self::CLAIMED | Self::READ) == Self::CLAIMED | want
            && self.0 & Self::POS == pos & Self::POS
    }

    /// The attachment that made the claim.
    fn holder(self) -> peers::Slot {
        peers::Slot {
            // Any 6 bits: `Peers::holder_alive` checks the index.
            entry: (self.0 >> Self::ENTRY_SHIFT) as usize & ((1 << peers::ENTRY_BITS) - 1),
            gen: (self.0 >> Self::GEN_SHIFT) & ((1 << peers::GEN_BITS) - 1),
        }
    }
}

const _: () = assert!(TABLE_LEN <= 1 << peers::ENTRY_BITS);
const _: () = assert!(ClaimWord::GEN_SHIFT + peers::GEN_BITS == ClaimWord::ENTRY_SHIFT);
const _: () = assert!(ClaimWord::ENTRY_SHIFT + peers::ENTRY_BITS == 63);

/// The header of one slot, at the start of the slot in the data region.
///
/// Under loom, atomics cannot live in raw memory, so the headers live in a vector in
/// [`Queue`] instead and only the payloads are in the region.
#[repr(C)]
#[derive(Default)]
struct SlotHeader {
    /// Sequence stamp (module docs). Written by the claiming sender (Release store
    /// of `p + 1` on commit) and the claiming receiver (Release store of
    /// `p + one_lap` on release); read by both sides with Acquire before claiming.
    /// The creator stores `index` (lap 0) before publishing the header.
    stamp: AtomicU64,
    /// Batch length in elements, or [`SKIPPED`]. Written by the claiming sender
    /// (Relaxed) before its stamp store; read by the claiming receiver (Relaxed)
    /// after its Acquire load of the stamp. Checked against `max_batch`.
    len: AtomicU64,
    /// The claim word (see [`ClaimWord`]): who holds the slot, for which
    /// position, on which side. A sender claims a free slot, and a receiver a
    /// committed one, by a CAS on this word (AcqRel on success: Acquire to see the
    /// previous holder's claim, Release so that a helper that reads ours with
    /// Acquire and then moves the position passes on what we saw); everyone loads
    /// it with Acquire. Handles that find the holder dead take the slot over with a
    /// CAS from the dead holder's word.
    claim: AtomicU64,
    /// Reserved, 0.
    reserved: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<SlotHeader>() == SLOT_HEADER);

impl SlotHeader {
    /// Whether the slot still shows `stamp` and `claim`, read again (Acquire, as
    /// the first reads): two reads that disagree with each other and do not
    /// change are damage, not a race.
    fn unchanged(&self, stamp: u64, claim: ClaimWord) -> bool {
        self.stamp.load(Ordering::Acquire) == stamp && self.claim.load(Ordering::Acquire) == claim.0
    }
}

/// The MPMC control block at `CONTROL_OFFSET`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MpmcControl {
    /// Enqueue position, `lap | index`. Moved by senders only, with a CAS (Release
    /// on success, Acquire on failure) from the value they loaded (Acquire) to the
    /// next position; `index < slots`.
    tail: Padded<AtomicU64>,
    /// Dequeue position, likewise, moved by receivers only.
    head: Padded<AtomicU64>,
    /// Futex words: written only when a handle goes to sleep or wakes sleepers.
    futex: Padded<Futexes>,
    /// Attachment counts and table.
    peers: Peers,
}

#[repr(C)]
#[derive(Default)]
struct Futexes {
    /// 1 while a receiver may sleep waiting for a batch (wait.rs protocol).
    not_empty: AtomicU32,
    /// 1 while a sender may sleep waiting for a free slot.
    not_full: AtomicU32,
}

#[cfg(not(loom))]
const _: () = {
    use crate::layout::LINE;
    use std::mem::{offset_of, size_of};
    assert!(size_of::<MpmcControl>() == 8 * LINE);
    assert!(offset_of!(MpmcControl, head) == LINE);
    assert!(offset_of!(MpmcControl, futex) == 2 * LINE);
    assert!(offset_of!(MpmcControl, peers) == 3 * LINE);
};

// SAFETY: all-zero is the valid initial state (positions 0, nobody asleep, nobody
// attached), and the block holds atomics only.
unsafe impl Control for MpmcControl {
    const KIND: Kind = Kind::Mpmc;
}

/// Sizes of the queue, fixed at creation and validated on open.
#[derive(Debug, Clone, Copy)]
struct Dims {
    /// Number of slots, in `1..=MAX_SLOTS`.
    slots: usize,
    /// `(slots + 1).next_power_of_two()`: the position increment of one lap.
    one_lap: u64,
    /// Largest batch in elements, at least 1.
    max_batch: usize,
    /// `size_of::<T>()`.
    elem: usize,
    /// Offset of the payload in a slot: `max(SLOT_HEADER, align_of::<T>())`.
    payload: usize,
    /// Bytes per slot: a multiple of `max(SLOT_ALIGN, align_of::<T>())`, at least
    /// `payload + max_batch * elem`.
    stride: usize,
}

impl Dims {
    /// The dimensions for these arguments, or `(what, value, reason)`.
    fn compute(
        elem: usize,
        align: usize,
        slots: usize,
        max_batch: usize,
    ) -> std::result::Result<Dims, (&'static str, usize, String)> {
        if slots == 0 {
            return Err(("slots", 0, "must be at least 1".into()));
        }
        if slots > MAX_SLOTS {
            return Err(("slots", slots, format!("must be at most {MAX_SLOTS}")));
        }
        if max_batch == 0 {
            return Err(("max_batch", 0, "must be at least 1 element".into()));
        }
        let payload = SLOT_HEADER.max(align);
        let stride = max_batch
            .checked_mul(elem)
            .and_then(|b| b.checked_add(payload))
            .filter(|&b| b <= MAX_SEGMENT_LEN)
            .ok_or_else(|| {
                (
                    "max_batch",
                    max_batch,
                    format!("a slot would exceed {MAX_SEGMENT_LEN} bytes"),
                )
            })?
            .next_multiple_of(SLOT_ALIGN.max(align));
        if stride
            .checked_mul(slots)
            .map_or(true, |b| b > MAX_SEGMENT_LEN)
        {
            return Err((
                "slots",
                slots,
                format!("slots * slot size would exceed {MAX_SEGMENT_LEN} bytes"),
            ));
        }
        Ok(Dims {
            slots,
            one_lap: (slots as u64 + 1).next_power_of_two(),
            max_batch,
            elem,
            payload,
            stride,
        })
    }

    fn new(ty: &TypeInfo, slots: usize, max_batch: usize) -> Result<Dims> {
        Self::compute(ty.size, ty.align, slots, max_batch).map_err(|(what, value, reason)| {
            Error::InvalidSize {
                what,
                value,
                reason,
            }
        })
    }

    fn from_geometry(g: &Geometry) -> Result<Dims> {
        let slots = usize::try_from(g.capacity).unwrap_or(usize::MAX);
        let max_batch = usize::try_from(g.max_batch).unwrap_or(usize::MAX);
        let d = Self::compute(g.elem_size, g.elem_align, slots, max_batch)
            .map_err(|(what, _, reason)| Error::corrupted(format!("mpmc {what} {reason}")))?;
        if g.stride != d.stride as u64 || g.data_len != d.stride * d.slots {
            return Err(Error::corrupted(
                "mpmc slot size or data length is inconsistent",
            ));
        }
        Ok(d)
    }

    /// Byte offset of slot `index`'s payload in the data region.
    #[inline]
    fn payload_off(&self, index: usize) -> usize {
        index * self.stride + self.payload
    }
}

/// A slot header in the data region.
///
/// # Safety
/// `data` must be the data region of a region with dimensions `d` (so
/// `d.slots * d.stride` bytes, aligned to [`crate::layout::LINE`]), alive for `'a`, and
/// `index < d.slots`.
#[cfg(not(loom))]
unsafe fn slot_header<'a>(data: NonNull<u8>, d: &Dims, index: usize) -> &'a SlotHeader {
    debug_assert!(index < d.slots);
    // SAFETY: index * stride + SLOT_HEADER <= slots * stride = data_len (caller), so
    // the header is in bounds; data is LINE-aligned and stride a multiple of 64,
    // so it is 8-byte aligned; SlotHeader is atomics only, valid for any bits a peer wrote.
    unsafe { data.add(index * d.stride).cast::<SlotHeader>().as_ref() }
}

/// Store the lap-0 stamps: run by the creator before the header is published.
fn init_slots(_region: &Region, _d: &Dims) {
    #[cfg(not(loom))]
    for i in 0.._d.slots {
        // SAFETY: the region was made with dimensions `d`; i < slots.
        unsafe { slot_header(_region.data(), _d, i) }
            .stamp
            .store(i as u64, Ordering::Relaxed);
    }
}

/// A queue mapped into this process: the region and its validated dimensions.
struct Queue {
    region: Region,
    ctl: NonNull<MpmcControl>,
    data: NonNull<u8>,
    dims: Dims,
    /// Under loom: the slot headers (see [`SlotHeader`]).
    #[cfg(loom)]
    headers: Box<[SlotHeader]>,
}

// SAFETY: the pointers point into `region`, which the Queue owns and which is
// Send + Sync; shared state is accessed through atomics, and payloads under the
// stamp protocol (a slot's payload belongs to exactly one claimer at a time).
unsafe impl Send for Queue {}
// SAFETY: as above.
unsafe impl Sync for Queue {}

impl Queue {
    fn new(region: Region) -> Result<Queue> {
        let dims = Dims::from_geometry(region.geometry())?;
        Ok(Queue {
            ctl: NonNull::from(region.control::<MpmcControl>()),
            data: region.data(),
            dims,
            #[cfg(loom)]
            headers: (0..dims.slots)
                .map(|i| SlotHeader {
                    stamp: AtomicU64::new(i as u64),
                    ..SlotHeader::default()
                })
                .collect(),
            region,
        })
    }

    #[inline]
    fn ctl(&self) -> &MpmcControl {
        // SAFETY: points into `self.region`'s control block, alive as long as self.
        unsafe { self.ctl.as_ref() }
    }

    /// The slot index of a position read from shared memory, if it is a real one.
    #[inline]
    fn index(&self, pos: u64) -> Option<usize> {
        let i = (pos & (self.dims.one_lap - 1)) as usize;
        (i < self.dims.slots).then_some(i)
    }

    /// The position after `pos` (whose index is valid).
    #[inline]
    fn next(&self, pos: u64, index: usize) -> u64 {
        if index + 1 < self.dims.slots {
            pos.wrapping_add(1) // index + 1 < one_lap: no carry into the lap bits
        } else {
            (pos & !(self.dims.one_lap - 1)).wrapping_add(self.dims.one_lap)
        }
    }

    /// Move `word` (tail or head) from `pos`, whose slot `index` has been claimed,
    /// to the next position, unless someone already did: the claimer does it right
    /// after its claim, and anyone who finds the claim while the position still
    /// names it helps, so a claimer that dies in between holds nobody up.
    ///
    /// Release: each move heads a release sequence, so that an Acquire load of the
    /// position synchronises with everyone who moved it before (and, through the
    /// claim word, with the claimers they helped). Relaxed on failure: we read
    /// nothing through a failed move.
    #[inline]
    fn advance(&self, word: &AtomicU64, pos: u64, index: usize) {
        let _ = word.compare_exchange(
            pos,
            self.next(pos, index),
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    /// Whether the holder named by claim word `c` is still attached and alive (a
    /// system call unless it is this process: slow paths only).
    fn holder_alive(&self, c: ClaimWord) -> bool {
        self.ctl().peers.holder_alive(c.holder())
    }

    #[inline]
    fn header(&self, index: usize) -> &SlotHeader {
        #[cfg(loom)]
        {
            &self.headers[index]
        }
        #[cfg(not(loom))]
        // SAFETY: `data` is this region's data region with dimensions `dims`;
        // callers pass indices from `index()`, which are below `slots`.
        unsafe {
            slot_header(self.data, &self.dims, index)
        }
    }

    /// Pointer to slot `index`'s payload.
    #[inline]
    fn payload<T>(&self, index: usize) -> *mut T {
        debug_assert!(index < self.dims.slots);
        // SAFETY: callers pass indices from `index()`, which are below `slots`
        // (debug-asserted above), so payload_off(index) + max_batch * elem <= stride *
        // (index + 1) <= data_len; the payload offset is a multiple of
        // max(32, align_of::<T>()) within a slot whose start is a multiple of
        // max(64, align_of::<T>()) from the LINE-aligned data region, so aligned.
        unsafe {
            self.data
                .as_ptr()
                .add(self.dims.payload_off(index))
                .cast::<T>()
        }
    }

    /// The futex that sleepers waiting for `role` to act sleep on: receivers wait
    /// for senders (not empty), senders for receivers (not full).
    fn flag_waiting_for(&self, role: Role) -> &AtomicU32 {
        match role {
            Role::Sender => &self.ctl().futex.not_empty,
            Role::Receiver => &self.ctl().futex.not_full,
        }
    }

    fn name(&self) -> &str {
        self.region.name().unwrap_or("<heap>")
    }
}

/// One entry in the attachment table, shared by a handle and its clones; detaches
/// when the last of them drops.
struct Attachment {
    queue: Arc<Queue>,
    role: Role,
    proc: ProcId,
    slot: peers::Slot,
    /// `ClaimWord::holder_bits(slot)`.
    holder: u64,
}

impl Attachment {
    fn new(queue: Arc<Queue>, role: Role) -> Result<Arc<Attachment>> {
        wait::init();
        let proc = ProcId::me();
        let slot = queue
            .ctl()
            .peers
            .attach(role, proc)
            .map_err(|_| Error::TooManyAttached {
                name: queue.name().to_owned(),
                max: TABLE_LEN,
            })?;
        Ok(Arc::new(Attachment {
            queue,
            role,
            proc,
            slot,
            holder: ClaimWord::holder_bits(slot),
        }))
    }

    /// Our claim word for `pos` on `side`.
    #[inline]
    fn claim(&self, side: Side, pos: u64) -> ClaimWord {
        ClaimWord::new(self.holder, side, pos)
    }

    /// Claim `slot` for `pos` on `side` by a CAS from the claim word `from` that we
    /// read: exactly one of the handles that race for it wins, and none once the
    /// slot moved on (every later claim word differs from `from`). AcqRel on
    /// success, see [`SlotHeader::claim`]; Relaxed on failure: the caller loads
    /// again.
    #[inline]
    fn claim_from(&self, slot: &SlotHeader, from: ClaimWord, side: Side, pos: u64) -> bool {
        slot.claim
            .compare_exchange(
                from.0,
                self.claim(side, pos).0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Take over the slot at `index`, claimed as `dead` by a holder that is gone,
    /// with our claim for `pos` on `side` (its Acquire also pairs with the
    /// Release of `simulate_death`, which stands for a process's end in tests).
    fn take_over(&self, index: usize, dead: ClaimWord, side: Side, pos: u64) -> bool {
        self.claim_from(self.queue.header(index), dead, side, pos)
    }

    /// Publish the slot at position `pos`, claimed by a sender that died before
    /// committing it (its claim word is `dead`), as skipped, unless another handle
    /// was first.
    #[cold]
    fn skip_dead_writer(&self, pos: u64, index: usize, dead: ClaimWord) {
        if !self.take_over(index, dead, Side::Write, pos) {
            return;
        }
        let q = &*self.queue;
        // It may have died before moving tail past its claim.
        q.advance(&q.ctl().tail, pos, index);
        let slot = q.header(index);
        // As `Sender::publish`, with our claim.
        slot.len.store(SKIPPED, Ordering::Relaxed);
        slot.stamp.store(pos.wrapping_add(1), Ordering::Release);
        wait::wake(&q.ctl().futex.not_empty);
    }

    /// Make this attachment look dead (tests): see [`Peers::simulate_death`].
    fn simulate_death(&self) {
        self.queue
            .ctl()
            .peers
            .simulate_death(self.role, self.proc, self.slot);
    }

    fn peer(&self) -> Role {
        match self.role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }

    /// Whether the other side attached once and is gone. With `check_pids`, the
    /// dead processes of both sides are reaped first (system calls; a reap of our
    /// own side tells the others to look for batches a dead receiver held).
    fn peer_gone(&self, check_pids: bool) -> bool {
        let q = &self.queue;
        let peers = &q.ctl().peers;
        if check_pids {
            for role in [self.peer(), self.role] {
                if peers.reap(role) == Left::Last {
                    // The other side's sleepers wait for `role`: let them see it
                    // is gone.
                    wait::wake_always(q.flag_waiting_for(role));
                }
            }
        }
        // Sync point "detach": Acquire pairs with the peers' decrements (peers.rs).
        peers.gone(self.peer(), Ordering::Acquire)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let q = &self.queue;
        if q.ctl().peers.detach(self.role, self.proc, self.slot) == Left::Last {
            // The peer's sleepers wait for us: wake them whatever the flag says
            // (`wake_always` explains why that needs no K2).
            wait::wake_always(q.flag_waiting_for(self.role));
        }
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.queue.region.name())
            .field("role", &self.role)
            .field("dims", &self.queue.dims)
            .finish_non_exhaustive()
    }
}

/// What a handle last saw at its position, for the sleep condition.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    pos: u64,
    /// A valid slot index (0 until a position was seen).
    index: usize,
    stamp: u64,
}

/// A handle's process-local state: the attachment and its waiting bookkeeping.
#[derive(Debug)]
struct End {
    att: Arc<Attachment>,
    seen: Seen,
    /// Failed polls since creation (wrapping).
    idle: u32,
    last_check: Instant,
    /// The `deaths` count of the last scan for orphaned batches that found none
    /// (receivers only).
    scanned: u64,
    /// Set by `sleep` for the next `liveness_due`.
    check_next: bool,
}

impl End {
    fn new(att: Arc<Attachment>) -> End {
        End {
            att,
            seen: Seen::default(),
            idle: 0,
            last_check: Instant::now(),
            // Not a count anyone has: the first empty slow path scans.
            scanned: u64::MAX,
            check_next: false,
        }
    }

    fn clone_end(&self) -> End {
        End::new(Arc::clone(&self.att))
    }

    /// Count a failed poll and say whether to check the peers' pids (and recover
    /// what the dead hold) now: at most every [`SLICE`], and outside sleep only
    /// every [`LIVENESS_EVERY`] polls (so that a spinning `try_` loop rarely reads
    /// the clock), or when a sleeper handed its turn to the next attempt.
    #[inline]
    fn liveness_due(&mut self, sleeping: bool) -> bool {
        if std::mem::take(&mut self.check_next) {
            return true;
        }
        self.idle = self.idle.wrapping_add(1);
        if !sleeping && self.idle % LIVENESS_EVERY != 0 {
            return false;
        }
        let now = Instant::now();
        if now.saturating_duration_since(self.last_check) < SLICE {
            return false;
        }
        self.last_check = now;
        true
    }

    /// Sleep until the peer acts, unless the slot or position we last saw changed
    /// or the peer left. When a liveness check is due, do not sleep: the next
    /// attempt checks, and recovers what the dead hold, where it can act on it.
    fn sleep(&mut self, slice: Duration) {
        if self.liveness_due(true) {
            self.check_next = true;
            return;
        }
        if self.att.peer_gone(false) {
            return; // the next attempt reports it
        }
        let q = &*self.att.queue;
        let seen = self.seen;
        let peer = self.att.peer();
        let pos = match self.att.role {
            Role::Sender => &q.ctl().tail,
            Role::Receiver => &q.ctl().head,
        };
        wait::sleep(
            q.flag_waiting_for(peer),
            // W2: SeqCst loads of what K1 writes (the stamp we wait at) and of the
            // peer count a detach changes. The position is not written by any K1
            // (same-side claims move it and wake nobody): it is looked at so that
            // a sleeper whose position moved tries again at once.
            || {
                pos.load(Ordering::SeqCst) != seen.pos
                    || q.header(seen.index).stamp.load(Ordering::SeqCst) != seen.stamp
                    || q.ctl().peers.gone(peer, Ordering::SeqCst)
            },
            slice,
        );
    }
}

/// Create a queue of `slots` slots of up to `max_batch` elements on the heap, for
/// threads of one process.
///
/// This runs exactly the algorithm of the shared-memory queue; it is what the loom
/// models, miri and the thread benchmarks use. Clone the handles for more threads.
///
/// # Errors
/// [`Error::InvalidSize`] for zero or absurd `slots` or `max_batch`,
/// [`Error::UnsupportedType`] for a zero-sized or over-aligned `T`.
pub fn channel<T: Pod>(slots: usize, max_batch: usize) -> Result<(Sender<T>, Receiver<T>)> {
    let ty = TypeInfo::of::<T>()?;
    let (g, dims) = geometry(&ty, slots, max_batch)?;
    let region = Region::heap::<MpmcControl>(g, &ty, |r| init_slots(r, &dims));
    let q = Arc::new(Queue::new(region)?);
    Ok((Sender::attach(Arc::clone(&q))?, Receiver::attach(q)?))
}

fn geometry(ty: &TypeInfo, slots: usize, max_batch: usize) -> Result<(Geometry, Dims)> {
    let d = Dims::new(ty, slots, max_batch)?;
    let g = Geometry::new(
        Kind::Mpmc,
        ty,
        std::mem::size_of::<MpmcControl>(),
        d.stride * d.slots,
        d.slots as u64,
        d.max_batch as u64,
        d.stride as u64,
    )?;
    Ok((g, d))
}

/// The queue of a new segment of `T` (what `create_with` of both ends makes), or,
/// with `or_open`, of the existing one if there is one (`open_or_create`).
fn create_queue<T: Pod>(
    name: &str,
    slots: usize,
    max_batch: usize,
    opts: &Options,
    or_open: bool,
) -> Result<Arc<Queue>> {
    let ty = opts.type_info::<T>()?;
    let (g, dims) = geometry(&ty, slots, max_batch)?;
    let make = |how: &Create| {
        let region =
            Region::create_shm::<MpmcControl>(name, g, &ty, how, |r| init_slots(r, &dims))?;
        Ok(Arc::new(Queue::new(region)?))
    };
    if or_open {
        opts.open_or_create(name, make, |init_wait| open_queue(name, &ty, init_wait))
    } else {
        opts.create(name, make)
    }
}

/// The queue of the existing segment `name` of `ty`, waiting for its header until
/// `init_wait`.
fn open_queue(name: &str, ty: &TypeInfo, init_wait: Deadline) -> Result<Arc<Queue>> {
    let region =
        Region::open_shm::<MpmcControl>(name, ty, init_wait, |g| Dims::from_geometry(g).map(drop))?;
    Ok(Arc::new(Queue::new(region)?))
}

/// A sender at `tail` found the queue full at slot `index`: if the previous
/// lap's holder of that slot is gone, recover the slot. Returns whether anything
/// changed (then claiming again may succeed).
///
/// - Claimed for writing (`stamp == p`, `p = tail - one_lap`) by a sender that is
///   gone: published as skipped, which the receivers step over.
/// - Taken (`stamp == p + 1`, a read claim) by a receiver that is gone: the batch
///   is committed again, as it lies, at position `tail` (we claim `tail` for it), so
///   another receiver gets it. The read claim keeps the batch's length.
///
/// Every recovery reads the claim word, finds its holder gone, and only then reads
/// the stamp: a holder that is gone changes neither again, so the pair is
/// consistent, and the CAS from the claim word read first makes the takeover
/// exclusive. (Read the other way round, a stamp from before the holder's last
/// publish or release would pass for the current one.)
#[cold]
#[inline(never)]
fn recover_tail(att: &Attachment, tail: u64, index: usize) -> bool {
    let q = &*att.queue;
    let p = tail.wrapping_sub(q.dims.one_lap);
    let slot = q.header(index);
    // Acquire: see `SlotHeader::claim`.
    let c = ClaimWord(slot.claim.load(Ordering::Acquire));
    let (writing, taken) = (c.is(Side::Write, p), c.is(Side::Read, p));
    if !(writing || taken) || q.holder_alive(c) {
        return false;
    }
    // Acquire as in `Sender::claim`.
    let stamp = slot.stamp.load(Ordering::Acquire);
    // A takeover lost to another handle is progress too: look again.
    if writing && stamp == p {
        att.skip_dead_writer(p, index, c);
        return true;
    }
    if taken && stamp == p.wrapping_add(1) {
        if !att.take_over(index, c, Side::Write, tail) {
            return true;
        }
        q.advance(&q.ctl().tail, tail, index);
        // Sync point "publish batch", as in `Sender::publish`: the payload and
        // length are the dead receiver's batch.
        slot.stamp.store(tail.wrapping_add(1), Ordering::Release);
        wait::wake(&q.ctl().futex.not_empty);
        return true;
    }
    false
}

/// A claimed slot.
#[derive(Debug, Clone, Copy)]
struct Claim {
    pos: u64,
    index: usize,
}

/// What a `Sender` and a `Receiver` share: their struct, `Clone`, `Debug`, and the
/// constructors and accessors. `$marker` is the `PhantomData` variance marker;
/// `$what`, `$peers` and `$peer` name this role and the other one in the docs;
/// `$gone_note` ends the doc of `is_disconnected`.
macro_rules! handle {
    (
        $(#[$doc:meta])*
        $name:ident, $role:expr, $marker:ty,
        what: $what:literal,
        peers: $peers:literal,
        peer: $peer:literal,
        gone_note: $gone_note:literal $(,)?
    ) => {
        $(#[$doc])*
        pub struct $name<T: Pod = f64> {
            end: End,
            _t: PhantomData<$marker>,
        }

        impl<T: Pod> Clone for $name<T> {
            #[doc = concat!("Another ", $what, " on the same attachment (no new table entry).")]
            fn clone(&self) -> Self {
                $name {
                    end: self.end.clone_end(),
                    _t: PhantomData,
                }
            }
        }

        impl<T: Pod> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("attachment", &self.end.att)
                    .finish_non_exhaustive()
            }
        }

        impl<T: Pod> $name<T> {
            #[doc = concat!("Create the segment `name` with `slots` slots of up to `max_batch` elements each, and attach to it as a ", $what, ". The segment is removed when this handle (and its clones) drop, unless [`persist`](Self::persist) is called.")]
            ///
            /// # Errors
            /// [`Error::InvalidName`], [`Error::InvalidSize`] (zero or absurd `slots` or
            /// `max_batch`), [`Error::UnsupportedType`], [`Error::AlreadyExists`],
            /// [`Error::Io`].
            pub fn create(name: &str, slots: usize, max_batch: usize) -> Result<Self> {
                Self::create_with(name, slots, max_batch, &Options::default())
            }

            /// [`create`](Self::create) with [`Options`]: the file mode, `persist`,
            /// `reclaim_stale` and the type `tag` apply (`Options::max_batch` does
            /// not: the argument sets it).
            ///
            /// # Errors
            /// As [`create`](Self::create); [`Error::InvalidSize`] also for a `mode`
            /// with bits outside `0o777`, [`Error::UnsupportedType`] for an invalid
            /// `tag`; with `reclaim_stale`, [`Error::AlreadyExists`] only if the
            /// segment there is not stale.
            pub fn create_with(
                name: &str,
                slots: usize,
                max_batch: usize,
                opts: &Options,
            ) -> Result<Self> {
                Self::attach(create_queue::<T>(name, slots, max_batch, opts, false)?)
            }

            #[doc = concat!("Open the existing segment `name` as one more ", $what, ".")]
            ///
            /// # Errors
            /// [`Error::NotFound`], [`Error::KindMismatch`], [`Error::TypeMismatch`],
            /// [`Error::VersionMismatch`], [`Error::Corrupted`], [`Error::NotReady`],
            /// [`Error::TooManyAttached`], [`Error::Io`].
            pub fn open(name: &str) -> Result<Self> {
                Self::open_with(name, &Options::default())
            }

            /// [`open`](Self::open) with [`Options`]: `open_timeout` and the type
            /// `tag` apply.
            ///
            /// # Errors
            /// As [`open`](Self::open): with an `open_timeout`, [`Error::NotFound`]
            /// once it has passed without the segment appearing and
            /// [`Error::NotReady`] once it has passed with its header unpublished;
            /// [`Error::UnsupportedType`] for an invalid `tag`.
            pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
                let ty = opts.type_info::<T>()?;
                Self::attach(opts.open(|init_wait| open_queue(name, &ty, init_wait))?)
            }

            #[doc = concat!("Open the segment `name` as one more ", $what, " if it exists, else create it with `slots` slots of up to `max_batch` elements, and attach.")]
            ///
            /// Race-free: when several processes (or threads) do this at once, one
            /// creates the segment and the others open it. Whoever creates it owns
            /// it (removes it when its handles drop, unless `persist`); an existing
            /// segment keeps its slots and maximum batch. Every option applies, as
            /// in [`create_with`](Self::create_with) and
            /// [`open_with`](Self::open_with) (`open_timeout` bounds only the wait
            /// for a header being written: a missing segment is created).
            ///
            /// # Errors
            /// Those of [`create_with`](Self::create_with) but `AlreadyExists`, and
            /// those of [`open_with`](Self::open_with); [`Error::NotFound`] only if
            /// the segment kept vanishing between a failed create and the open, 16
            /// times over.
            pub fn open_or_create(
                name: &str,
                slots: usize,
                max_batch: usize,
                opts: &Options,
            ) -> Result<Self> {
                Self::attach(create_queue::<T>(name, slots, max_batch, opts, true)?)
            }

            #[doc = concat!("Attach once more to the same queue, as a new ", $what, " with its own attachment (what [`open`](Self::open) gives in another process; for tests of process death on a [`channel`]).")]
            ///
            /// # Errors
            /// [`Error::TooManyAttached`].
            #[doc(hidden)]
            pub fn attach_again(&self) -> Result<Self> {
                Self::attach(Arc::clone(&self.end.att.queue))
            }

            /// Make the next operation that finds the queue full (empty) check the
            /// peers and recover what dead ones hold, without waiting for the
            /// liveness interval (for tests and fuzzing).
            #[doc(hidden)]
            pub fn check_peers_next(&mut self) {
                self.end.check_next = true;
            }

            fn attach(q: Arc<Queue>) -> Result<Self> {
                Ok($name {
                    end: End::new(Attachment::new(q, $role)?),
                    _t: PhantomData,
                })
            }

            fn queue(&self) -> &Queue {
                &self.end.att.queue
            }

            /// Longest batch the queue carries, in elements.
            pub fn max_batch(&self) -> usize {
                self.queue().dims.max_batch
            }

            /// Number of slots: how many batches the queue holds.
            pub fn capacity(&self) -> usize {
                self.queue().dims.slots
            }

            /// The segment name (`None` for a [`channel`]).
            pub fn name(&self) -> Option<&str> {
                self.queue().region.name()
            }

            /// Keep the segment when the creating handle drops (no effect on an opener).
            pub fn persist(&self) {
                self.queue().region.persist();
            }

            #[doc = concat!("Whether ", $peers, " attached once and all are gone (checks that their processes are alive: one system call per attached ", $peer, ").", $gone_note)]
            pub fn is_disconnected(&self) -> bool {
                self.end.att.peer_gone(true)
            }
        }
    };
}

handle! {
    /// The producing end of an MPMC queue.
    ///
    /// `Send`; clone it for more threads. See the [module docs](self) for the
    /// behaviour when full or disconnected.
    Sender, Role::Sender, fn(T),
    what: "sender",
    peers: "receivers",
    peer: "receiver",
    gone_note: "",
}

impl<T: Pod> Sender<T> {
    /// Claim a free slot for a batch of `len` elements, without waiting.
    #[inline]
    fn claim(&mut self, len: usize) -> Result<Claim, TrySendError> {
        let End { att, seen, .. } = &mut self.end;
        let q = &*att.queue;
        let d = &q.dims;
        if len > d.max_batch {
            return Err(TrySendError::TooLarge {
                len,
                max: d.max_batch,
            });
        }
        let ctl = q.ctl();
        // Relaxed: a sender reads nothing the receivers wrote before leaving.
        if ctl.peers.gone(Role::Receiver, Ordering::Relaxed) {
            return Err(TrySendError::Disconnected);
        }
        let corrupted = |reason| Err(TrySendError::Corrupted { reason });
        // Acquire: synchronises with every earlier mover of tail through the
        // release sequence of its CASes (`Queue::advance`), so the stamp below is
        // not older than lap - 1.
        let mut tail = ctl.tail.load(Ordering::Acquire);
        for _ in 0..RETRY_LIMIT {
            let Some(index) = q.index(tail) else {
                return corrupted("enqueue position names no slot");
            };
            let slot = q.header(index);
            // Sync point "free slot": Acquire pairs with the Release store in
            // `release` by the previous lap's receiver: its reads and
            // writes of the payload happen before ours.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                // Free for this lap, or claimed for it by a sender that has not
                // moved tail yet. Acquire: see `SlotHeader::claim`.
                let c = ClaimWord(slot.claim.load(Ordering::Acquire));
                if c.is(Side::Write, tail) {
                    // Claimed: help move tail only if its claimer has not (a load
                    // first: a CAS that fails still takes the line from them).
                    // Acquire as the first load of tail above.
                    let t = ctl.tail.load(Ordering::Acquire);
                    if t == tail {
                        q.advance(&ctl.tail, tail, index);
                        tail = ctl.tail.load(Ordering::Acquire);
                    } else {
                        tail = t;
                    }
                    continue;
                }
                // A free slot holds the previous lap's read claim (or nothing yet).
                // Anything else was written after our load of the stamp: the slot
                // moved on (a CAS from it would claim a slot that is not free), or
                // it is damaged.
                if !(c.0 == 0 || c.is(Side::Read, tail.wrapping_sub(d.one_lap))) {
                    if slot.unchanged(stamp, c) {
                        return corrupted("claim word is inconsistent with the slot stamp");
                    }
                    // Acquire as the first load of tail above.
                    tail = ctl.tail.load(Ordering::Acquire);
                    continue;
                }
                // The claim (orderings in `SlotHeader::claim`). It cannot succeed
                // once the slot moved on: every later claim word differs from `c`.
                if att.claim_from(slot, c, Side::Write, tail) {
                    q.advance(&ctl.tail, tail, index);
                    q.region.shadow().write(d.payload_off(index), len * d.elem);
                    return Ok(Claim { pos: tail, index });
                }
                // Another handle claimed it first: look again.
            } else if stamp == tail.wrapping_sub(d.one_lap)
                || stamp == tail.wrapping_sub(d.one_lap).wrapping_add(1)
            {
                // The slot still holds the previous lap's batch: full.
                *seen = Seen {
                    pos: tail,
                    index,
                    stamp,
                };
                if self.end.liveness_due(false) {
                    if self.end.att.peer_gone(true) {
                        return Err(TrySendError::Disconnected);
                    }
                    if recover_tail(&self.end.att, tail, index) {
                        // The next slot may be a dead holder's too.
                        self.end.check_next = true;
                        return self.claim(len);
                    }
                }
                return Err(TrySendError::Full);
            } else {
                // Our tail is stale (the stamp is from a later claim, which
                // happens after tail moved), or the slot is damaged. Acquire as
                // the first load of tail above.
                let t = ctl.tail.load(Ordering::Acquire);
                if t == tail {
                    return corrupted("slot stamp is inconsistent with the enqueue position");
                }
                tail = t;
            }
        }
        // Heavy contention: let a sleeper's condition fire at once.
        seen.pos = tail.wrapping_add(1);
        Err(TrySendError::Full)
    }

    /// Wait for a free slot until `deadline`.
    #[inline]
    fn claim_until(&mut self, len: usize, deadline: Deadline) -> Result<Claim, SendTimeoutError> {
        match self.claim(len) {
            Ok(c) => Ok(c),
            Err(TrySendError::Full) => self.claim_wait(len, deadline),
            Err(e) => Err(e.into_blocking().expect("not Full").into()),
        }
    }

    /// The waiting half of `claim_until`, out of line.
    #[inline(never)]
    fn claim_wait(&mut self, len: usize, deadline: Deadline) -> Result<Claim, SendTimeoutError> {
        let r = wait::block(
            self,
            deadline,
            |s| match s.claim(len) {
                Ok(c) => Ok(Some(c)),
                Err(TrySendError::Full) => Ok(None),
                Err(e) => Err(e.into_blocking().expect("not Full")),
            },
            |s, slice| {
                s.end.sleep(slice);
                Ok(())
            },
        );
        match r {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(SendTimeoutError::Timeout),
            Err(e) => Err(e.into()),
        }
    }

    /// Write the slot's length and publish it (`len == SKIPPED` cancels).
    #[inline]
    fn publish(&self, claim: Claim, len: u64) {
        let q = self.queue();
        let slot = q.header(claim.index);
        // Relaxed: published by the stamp store below (see `SlotHeader::len`).
        slot.len.store(len, Ordering::Relaxed);
        // Sync point "publish batch": Release pairs with the receiver's Acquire
        // load of the stamp in `Receiver::take`. This is K1 of the wake protocol;
        // `wake` supplies its barrier (wait.rs).
        slot.stamp
            .store(claim.pos.wrapping_add(1), Ordering::Release);
        wait::wake(&q.ctl().futex.not_empty);
    }

    #[inline]
    fn copy_in(&mut self, batch: &[T], claim: Claim) {
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
        self.publish(claim, batch.len() as u64);
    }

    send_methods! {
        gone: "once every receiver is gone",
        room: "a free slot",
        now: "a slot is free now",
        full: "when no slot is free now (or, rarely, when other
    handles kept winning the race for it)",
        place: "a slot",
        reserve: "Fill it through the returned guard and [`commit`](Reservation::commit)
it; dropping the guard cancels (receivers skip the slot).

The reserved elements hold whatever bytes were there before. Receivers wait
at this slot until it is committed or dropped, so do not hold it long.",
    }

    fn reservation(&mut self, claim: Claim, len: usize) -> Reservation<'_, T> {
        Reservation {
            tx: self,
            claim,
            len,
            committed: false,
        }
    }
}

/// A claimed slot, from [`Sender::reserve`].
///
/// Derefs to `&mut [T]`. [`commit`](Self::commit) publishes the batch; dropping the
/// reservation without committing publishes the slot as skipped, which receivers
/// step over.
pub struct Reservation<'a, T: Pod = f64> {
    tx: &'a mut Sender<T>,
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
        self.tx.publish(self.claim, self.len as u64);
    }
}

impl<T: Pod> Reservation<'_, T> {
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
            self.tx.publish(self.claim, SKIPPED);
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
        // SAFETY: as in `deref`; `&mut self` makes the access unique in-process, and
        // no receiver reads the slot before we publish it.
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

/// A slot a receiver has claimed.
#[derive(Debug, Clone, Copy)]
struct Taken {
    pos: u64,
    index: usize,
    len: usize,
}

handle! {
    /// The consuming end of an MPMC queue.
    ///
    /// `Send`; clone it for more threads. See the [module docs](self) for the
    /// behaviour when empty or disconnected.
    Receiver, Role::Receiver, fn() -> T,
    what: "receiver",
    peers: "senders",
    peer: "sender",
    gone_note: " Batches they committed may still be waiting.",
}

impl<T: Pod> Receiver<T> {
    /// Whether no committed batch waits at the head of the queue right now.
    pub fn is_empty(&self) -> bool {
        let q = self.queue();
        // Relaxed: a hint that reads nothing after these two words.
        let head = q.ctl().head.load(Ordering::Relaxed);
        q.index(head).map_or(true, |i| {
            q.header(i).stamp.load(Ordering::Relaxed) != head.wrapping_add(1)
        })
    }

    /// Claim the next committed batch, without waiting.
    #[inline]
    fn take(&mut self) -> Result<Taken, TryRecvError> {
        let mut last_look = false;
        loop {
            let End { att, seen, .. } = &mut self.end;
            let q = &*att.queue;
            let d = &q.dims;
            let ctl = q.ctl();
            let corrupted = |reason| Err(TryRecvError::Corrupted { reason });
            // Acquire: synchronises with every earlier mover of head through the
            // release sequence of its CASes (`Queue::advance`).
            let mut head = ctl.head.load(Ordering::Acquire);
            let mut tries = 0;
            let empty = loop {
                if tries == RETRY_LIMIT {
                    // Heavy contention: let a sleeper's condition fire at once.
                    seen.pos = head.wrapping_add(1);
                    return Err(TryRecvError::Empty);
                }
                tries += 1;
                let Some(index) = q.index(head) else {
                    return corrupted("dequeue position names no slot");
                };
                let slot = q.header(index);
                // Sync point "publish batch": Acquire pairs with the Release store in
                // `Sender::publish`; the length and payload are visible after this.
                let stamp = slot.stamp.load(Ordering::Acquire);
                if stamp == head.wrapping_add(1) {
                    // Committed: by its sender's claim, or taken by a receiver that
                    // has not moved head yet. Acquire: see `SlotHeader::claim`.
                    let c = ClaimWord(slot.claim.load(Ordering::Acquire));
                    if c.is(Side::Read, head) {
                        // Taken: help move head only if its taker has not, as in
                        // `Sender::claim`. Acquire as the first load of head above.
                        let h = ctl.head.load(Ordering::Acquire);
                        if h == head {
                            q.advance(&ctl.head, head, index);
                            head = ctl.head.load(Ordering::Acquire);
                        } else {
                            head = h;
                        }
                        continue;
                    }
                    if !c.is(Side::Write, head) {
                        // The slot moved on since we loaded its stamp, or it is
                        // damaged: a committed slot holds its committer's claim.
                        if slot.unchanged(stamp, c) {
                            return corrupted("claim word is inconsistent with the slot stamp");
                        }
                        continue;
                    }
                    // The claim (orderings in `SlotHeader::claim`).
                    if !att.claim_from(slot, c, Side::Read, head) {
                        continue;
                    }
                    q.advance(&ctl.head, head, index);
                    match checked_len(q, head, index) {
                        Ok(Some(len)) => {
                            return Ok(Taken {
                                pos: head,
                                index,
                                len,
                            })
                        }
                        // Skipped: released; on to the next.
                        Ok(None) => head = ctl.head.load(Ordering::Acquire),
                        Err(reason) => return corrupted(reason),
                    }
                } else if stamp == head || stamp == head.wrapping_add(1).wrapping_sub(d.one_lap) {
                    // Free, claimed and not committed, or the previous lap's batch
                    // still being read: nothing to take at head.
                    break Seen {
                        pos: head,
                        index,
                        stamp,
                    };
                } else {
                    // Our head is stale (the stamp is from a later lap, which
                    // happens after head moved), or the slot is damaged. Acquire
                    // as the first load of head above.
                    let h = ctl.head.load(Ordering::Acquire);
                    if h == head {
                        return corrupted("slot stamp is inconsistent with the dequeue position");
                    }
                    head = h;
                }
            };
            *seen = empty;
            if last_look {
                // Every sender is gone: what is left to deliver is what the dead
                // left behind.
                match self.recover(empty, true)? {
                    Recovered::Taken(t) => return Ok(t),
                    Recovered::Retry => continue,
                    Recovered::Nothing => return Err(TryRecvError::Disconnected),
                }
            }
            let check = self.end.liveness_due(false);
            let gone = self.end.att.peer_gone(check);
            if check {
                match self.recover(empty, false)? {
                    Recovered::Taken(t) => return Ok(t),
                    Recovered::Retry => {
                        // What lies behind the recovered slot may need recovering
                        // too: the next look checks again.
                        self.end.check_next = true;
                        continue;
                    }
                    Recovered::Nothing => {}
                }
            }
            if !gone {
                return Err(TryRecvError::Empty);
            }
            // Every sender is gone and we synchronised with their detaches: all they
            // committed is visible now. One more look decides.
            last_look = true;
        }
    }

    /// The slow path of an empty queue: recover what gone handles hold.
    ///
    /// - The slot at head (`at`), claimed by a sender that is gone: published as
    ///   skipped (`Retry`: look at head again).
    /// - A batch that a receiver that is gone had taken: we take it over and
    ///   deliver it (`Taken`). This scans every slot, so it runs only when an
    ///   attachment went away since our last scan (`Peers::deaths`), or, with
    ///   `all`, once every sender is gone.
    #[cold]
    #[inline(never)]
    fn recover(&mut self, at: Seen, all: bool) -> Result<Recovered, TryRecvError> {
        let att = &*self.end.att;
        let q = &*att.queue;
        if at.stamp == at.pos {
            // Claim word, holder, then stamp, as in `recover_tail`.
            let slot = q.header(at.index);
            let c = ClaimWord(slot.claim.load(Ordering::Acquire));
            if c.is(Side::Write, at.pos)
                && !q.holder_alive(c)
                && slot.stamp.load(Ordering::Acquire) == at.pos
            {
                // Skipped by us, or by someone faster: either way, look again.
                att.skip_dead_writer(at.pos, at.index, c);
                return Ok(Recovered::Retry);
            }
        }
        let deaths = q.ctl().peers.deaths();
        if !all && deaths == self.end.scanned {
            return Ok(Recovered::Nothing);
        }
        for index in 0..q.dims.slots {
            let slot = q.header(index);
            // Claim word, holder, then stamp, as in `recover_tail`; Acquire both,
            // as in `take`.
            // (A first look at the stamp spares the system call of `holder_alive`
            // for the slots that are not taken.)
            let c = ClaimWord(slot.claim.load(Ordering::Acquire));
            let stamp = slot.stamp.load(Ordering::Acquire);
            let pos = stamp.wrapping_sub(1);
            if !c.is(Side::Read, pos)
                || q.index(pos) != Some(index)
                || q.holder_alive(c)
                || slot.stamp.load(Ordering::Acquire) != stamp
                || !att.take_over(index, c, Side::Read, pos)
            {
                continue;
            }
            // Ours now; the stamp cannot have moved: only the holder's release
            // or a takeover of the claim word we just won moves it.
            match checked_len(q, pos, index) {
                Ok(Some(len)) => return Ok(Recovered::Taken(Taken { pos, index, len })),
                Ok(None) => continue,
                Err(reason) => return Err(TryRecvError::Corrupted { reason }),
            }
        }
        self.end.scanned = deaths;
        Ok(Recovered::Nothing)
    }

    #[inline]
    fn take_until(&mut self, deadline: Deadline) -> Result<Taken, RecvTimeoutError> {
        match self.take() {
            Ok(t) => Ok(t),
            Err(TryRecvError::Empty) => self.take_wait(deadline),
            Err(e) => Err(e.into_blocking().expect("not Empty").into()),
        }
    }

    /// The waiting half of `take_until`, out of line.
    #[inline(never)]
    fn take_wait(&mut self, deadline: Deadline) -> Result<Taken, RecvTimeoutError> {
        let r = wait::block(
            self,
            deadline,
            |s| match s.take() {
                Ok(t) => Ok(Some(t)),
                Err(TryRecvError::Empty) => Ok(None),
                Err(e) => Err(e.into_blocking().expect("not Empty")),
            },
            |s, slice| {
                s.end.sleep(slice);
                Ok(())
            },
        );
        match r {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(RecvTimeoutError::Timeout),
            Err(e) => Err(e.into()),
        }
    }

    fn guard(&mut self, taken: Taken) -> Batch<'_, T> {
        let ptr = self.queue().payload::<T>(taken.index);
        Batch {
            // SAFETY: derived from the non-null data pointer of the region.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            taken,
            rx: self,
        }
    }

    recv_methods! {
        next: take,
        until: take_until,
        place: "The guard derefs to the batch in its slot; dropping it frees the slot.",
        gone: "once every sender is gone and everything they committed has been received",
        empty: "when nothing is waiting now (or, rarely, when other handles kept winning the race)",
    }
}

/// What [`Receiver::recover`] did.
enum Recovered {
    Nothing,
    /// The slot at head changed: look again.
    Retry,
    /// We took over a batch a dead receiver held.
    Taken(Taken),
}

/// The length of the batch in the slot at `pos` that we just took: `None` for a
/// skipped slot (released here), `Err` for a length above `max_batch` (released
/// too, so the queue goes on).
#[inline]
fn checked_len(
    q: &Queue,
    pos: u64,
    index: usize,
) -> std::result::Result<Option<usize>, &'static str> {
    // Relaxed: published by the stamp we loaded with Acquire (see
    // `SlotHeader::len`).
    let len = q.header(index).len.load(Ordering::Relaxed);
    if len == SKIPPED {
        release(q, pos, index);
        return Ok(None);
    }
    if len > q.dims.max_batch as u64 {
        release(q, pos, index);
        return Err("batch length exceeds the maximum");
    }
    let len = len as usize;
    q.region
        .shadow()
        .write(q.dims.payload_off(index), len * q.dims.elem);
    Ok(Some(len))
}

/// Give a claimed slot back to the senders.
#[inline]
fn release(q: &Queue, pos: u64, index: usize) {
    let slot = q.header(index);
    // Sync point "free slot": Release pairs with the next sender's Acquire load of
    // the stamp in `Sender::claim` (our reads and in-place writes of the payload
    // happen before it reuses the slot). K1 of the wake protocol; `wake` supplies
    // its barrier.
    slot.stamp
        .store(pos.wrapping_add(q.dims.one_lap), Ordering::Release);
    wait::wake(&q.ctl().futex.not_full);
}

/// A received batch, in place in its slot. Derefs to `&[T]` and `&mut [T]`;
/// dropping it gives the slot back to the senders.
pub struct Batch<'a, T: Pod = f64> {
    rx: &'a mut Receiver<T>,
    ptr: NonNull<T>,
    taken: Taken,
}

impl<T: Pod> Deref for Batch<'_, T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the slot is ours until `release` (our CAS on head claimed it);
        // len <= max_batch (checked in `take`), so the range is inside the slot;
        // aligned (see `Queue::payload`); T is Pod.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.taken.len) }
    }
}

impl<T: Pod> DerefMut for Batch<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique in-process, and
        // no sender touches the slot before `release`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.taken.len) }
    }
}

impl<T: Pod> Batch<'_, T> {
    /// Keep the slot taken and mark the receiver's attachment as that of a dead
    /// process, as if the process had been killed while holding the batch (for
    /// tests of recovery).
    #[doc(hidden)]
    pub fn simulate_death(self) {
        self.rx.end.att.simulate_death();
        std::mem::forget(self);
    }
}

impl<T: Pod> Drop for Batch<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let q = &*self.rx.end.att.queue;
        let t = self.taken;
        q.region
            .shadow()
            .write(q.dims.payload_off(t.index), t.len * q.dims.elem);
        release(q, t.pos, t.index);
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Batch<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
