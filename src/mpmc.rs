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
//! the CAS also names the claimer: `tail` and `head` carry the last claimer's
//! attachment entry and generation above a 48-bit position (`PosWord`), so the
//! claim CAS moves the position and says who moved it in one instruction. Right
//! after it, the claimer writes the slot's *claim word* (`ClaimWord`: its
//! identity, the side, the position). If it dies in between, the next claimer
//! writes that claim word for it before its own CAS replaces the name
//! (`Queue::record`: on the fast path one load of the previous slot's claim word),
//! and so does every recovery (`Queue::settle`). So at every instruction a claimed
//! slot is named, by its claim word or by the position word, and a holder found
//! dead (`PeerTable::holder_alive`) is replaced by a CAS from its claim word:
//!
//! ```text
//! stamp p,     write claim of p, holder gone  -> publish p as skipped
//! stamp p + 1, read claim of p,  holder gone  -> a sender at p + one_lap commits
//!                                                it again there; a receiver takes
//!                                                it over as it lies
//! ```
//!
//! The claim word a `record` CAS expects is the one the slot held before that
//! claim (the previous lap's read claim for a sender's claim, the commit's write
//! claim for a receiver's); the position in it makes every claim word unique (for
//! 2^48 claims), so the CAS fails once the claim word was written or the slot moved
//! on. A recovering handle reads the claim word, finds the holder gone, and only
//! then reads the stamp (a gone holder changes neither again).
//!
//! The fast path pays for this with one load (of a line the previous claimer of
//! the same side wrote) and one plain store per claim; the read-modify-writes are
//! Vyukov's: one CAS per claim.
//!
//! Positions count modulo 2^48 (stamps and claim words too); `one_lap` divides
//! 2^48, so the lap encoding is unaffected by the wrap.
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
//!   line 0   tail: enqueue position and last claimer (senders; PosWord)
//!   line 1   head: dequeue position and last claimer (receivers; PosWord)
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
    Error, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::layout::{Geometry, Kind, Padded, Role, TypeInfo, MAX_SEGMENT_LEN};
use crate::options::Options;
use crate::peers::{self, Left, PeerTable, TABLE_LEN};
use crate::segment::{Control, Create, ProcId, Region};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use crate::wait::{self, Deadline, Wait, SLICE};

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

/// Positions (`tail`, `head`, stamps, the position in a claim word) are counted
/// modulo 2^48: this mask. `one_lap` (a power of two, at most 2^31) divides 2^48,
/// so a lap never straddles the wrap, and the 16 bits above are free for the
/// claimer's identity in `tail` and `head` ([`PosWord`]).
const POS: u64 = (1 << 48) - 1;

/// `a + b` in position arithmetic (modulo 2^48).
#[inline]
fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b) & POS
}

/// `a - b` in position arithmetic (modulo 2^48).
#[inline]
fn sub(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b) & POS
}

/// The identity bits of an attachment, as claim words and position words carry
/// them: bit 63 set, the attachment's entry (peers.rs) in bits 62..57, that
/// entry's generation in bits 56..49. An entry reused by a later attachment has
/// another generation, so these bits name one attachment for 256 reuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holder(u64);

impl Holder {
    const PRESENT: u64 = 1 << 63;
    const ENTRY_SHIFT: u32 = 57;
    const GEN_SHIFT: u32 = 49;
    /// Every identity bit.
    const BITS: u64 = !((1 << 49) - 1);

    fn of(slot: peers::Slot) -> Holder {
        Holder(
            Self::PRESENT | (slot.entry as u64) << Self::ENTRY_SHIFT | slot.gen << Self::GEN_SHIFT,
        )
    }

    /// The identity bits of `word` (a claim word or a position word), if any.
    #[inline]
    fn in_word(word: u64) -> Option<Holder> {
        (word & Self::PRESENT != 0).then_some(Holder(word & Self::BITS))
    }

    /// The attachment these bits name.
    fn slot(self) -> peers::Slot {
        peers::Slot {
            // Any 6 bits: `PeerTable::holder_alive` checks the index.
            entry: (self.0 >> Self::ENTRY_SHIFT) as usize & ((1 << peers::ENTRY_BITS) - 1),
            gen: (self.0 >> Self::GEN_SHIFT) & ((1 << peers::GEN_BITS) - 1),
        }
    }
}

const _: () = assert!(TABLE_LEN <= 1 << peers::ENTRY_BITS);
const _: () = assert!(Holder::GEN_SHIFT + peers::GEN_BITS == Holder::ENTRY_SHIFT);
const _: () = assert!(Holder::ENTRY_SHIFT + peers::ENTRY_BITS == 63);
const _: () = assert!(Holder::GEN_SHIFT == 49 && POS == (1 << 48) - 1);

/// The word in `tail` (`head`): the position, and who claimed the position before
/// it, i.e. who made the last successful claim CAS on this word.
///
/// ```text
/// bits 63..49  the last claimer's identity (Holder); bit 63 clear: nobody yet
/// bit 48       0
/// bits 47..0   the position, lap | index, modulo 2^48
/// ```
///
/// The claim CAS moves the position and names its claimer in one instruction, so
/// a claimer that dies right after it is still known: the next claimer (before its
/// own CAS replaces the name) or a recovering handle writes the dead claimer's
/// claim word for it (`Queue::record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PosWord(u64);

impl PosWord {
    #[inline]
    fn new(pos: u64, by: Holder) -> PosWord {
        PosWord(by.0 | pos & POS)
    }

    #[inline]
    fn pos(self) -> u64 {
        self.0 & POS
    }
}

/// The claim word of a slot: who holds it, on which side, for which position.
///
/// ```text
/// bits 63..49  the holder's identity (Holder); 0: never claimed since creation
/// bit 48       side: 0 = claimed by a sender (writing), 1 = taken by a receiver
/// bits 47..0   the position claimed
/// ```
///
/// The position makes every claim word unique for 2^48 claims, so a CAS from a
/// word read earlier cannot succeed after the slot went round a lap (no ABA).
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
    const READ: u64 = 1 << 48;

    /// The word for a claim by `by` of `pos` on `side`.
    #[inline]
    fn new(by: Holder, side: Side, pos: u64) -> ClaimWord {
        let side = match side {
            Side::Write => 0,
            Side::Read => Self::READ,
        };
        ClaimWord(by.0 | side | pos & POS)
    }

    /// Whether this is a claim of position `pos` on `side`.
    #[inline]
    fn is(self, side: Side, pos: u64) -> bool {
        let want = match side {
            Side::Write => 0,
            Side::Read => Self::READ,
        };
        self.0 & (Holder::PRESENT | Self::READ) == Holder::PRESENT | want
            && self.0 & POS == pos & POS
    }

    /// The attachment that made the claim (any bits for a word that is no claim:
    /// callers check `is` first).
    fn holder(self) -> peers::Slot {
        Holder(self.0 & Holder::BITS).slot()
    }
}

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
    /// position, on which side. Stored (Relaxed) by the claimer right after its
    /// claim CAS on `tail`/`head`, or, if it has not yet, by a CAS from the
    /// slot's previous claim word in `Queue::record` (the same value: the first
    /// write wins, the other is a no-op or fails). Handles that find the holder
    /// dead take the slot over with a CAS from the dead holder's word (AcqRel:
    /// Acquire to see what a recoverer that died before us did to the slot,
    /// Release for the next one). Loaded with Acquire by recoverers, which then
    /// judge the holder and only then load the stamp (`recover_tail`).
    claim: AtomicU64,
    /// Reserved, 0.
    reserved: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<SlotHeader>() == SLOT_HEADER);

/// The MPMC control block at `CONTROL_OFFSET`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MpmcControl {
    /// Enqueue position and its last claimer ([`PosWord`]). Moved by senders
    /// only, with the claim CAS (Release on success, Acquire on failure) from the
    /// value they loaded (Acquire) to the next position and their identity;
    /// `index < slots`.
    tail: Padded<AtomicU64>,
    /// Dequeue position and its last claimer, likewise, moved by receivers only.
    head: Padded<AtomicU64>,
    /// Futex words: written only when a handle goes to sleep or wakes sleepers.
    futex: Padded<Futexes>,
    /// Attachment counts and table.
    peers: PeerTable,
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

/// Claimed slots between the position words `head` and `tail` (read in that
/// order) of a queue of `slots` slots: committed batches plus those being written
/// or read. `None` when a position is not a valid `lap | index`, or tail is behind
/// head. For `inspect`, which reads an untrusted segment.
pub(crate) fn used(head: u64, tail: u64, slots: u64) -> Option<u64> {
    let one_lap = slots.checked_add(1)?.checked_next_power_of_two()?;
    if one_lap > 1 << 32 {
        return None;
    }
    let (head, tail) = (PosWord(head).pos(), PosWord(tail).pos());
    let split = |p: u64| (p & !(one_lap - 1), p & (one_lap - 1));
    let ((hl, hi), (tl, ti)) = (split(head), split(tail));
    if hi >= slots || ti >= slots {
        return None;
    }
    // Laps between them, modulo 2^48 like the positions. Head was read first and
    // tail never falls behind it; it may have moved on since, by more than a
    // lap's worth in all: clamp.
    let laps = sub(tl, hl) / one_lap;
    let used = laps.checked_mul(slots)?.checked_add(ti)?.checked_sub(hi)?;
    Some(used.min(slots))
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
            add(pos, 1) // index + 1 < one_lap: no carry into the lap bits
        } else {
            add(pos & !(self.dims.one_lap - 1), self.dims.one_lap)
        }
    }

    /// The position before `pos` (whose index is valid), and its index.
    #[inline]
    fn prev(&self, pos: u64, index: usize) -> (u64, usize) {
        if index > 0 {
            (sub(pos, 1), index - 1)
        } else {
            let last = self.dims.slots - 1;
            (
                add(
                    sub(pos & !(self.dims.one_lap - 1), self.dims.one_lap),
                    last as u64,
                ),
                last,
            )
        }
    }

    /// The position word of `side`: `tail` for senders, `head` for receivers.
    #[inline]
    fn word(&self, side: Side) -> &AtomicU64 {
        match side {
            Side::Write => &self.ctl().tail,
            Side::Read => &self.ctl().head,
        }
    }

    /// Write the claim word of the last claim made on `word` (the tail word for
    /// `Side::Write`, the head word for `Side::Read`), unless it is written
    /// already: the claimer stores it right after its claim CAS, but may die
    /// before, and the next claim CAS on the word replaces the claimer's name.
    /// So every claimer calls this before its CAS (the fast path: one load of the
    /// previous slot's claim word, which its claimer has usually written), and
    /// every recovery before it reads a claim word (`settle`).
    ///
    /// The CAS is from the claim word the slot held before that claim (a sender's
    /// claim replaces the previous lap's read claim, or 0 before the first lap; a
    /// receiver's replaces the commit's write claim), which is unique to that
    /// claim: once the claimer or anyone else wrote the claim, or the slot moved
    /// on, it fails. Relaxed: it publishes nothing but the word itself (recoverers
    /// reach the payload through the stamp), and the load sees the previous claim
    /// word because our Acquire load of `word` synchronised with the claimer's
    /// Release CAS, which came after its Acquire load of the stamp, which came
    /// after the previous holder's claim word.
    #[inline]
    fn record(&self, side: Side, word: PosWord) {
        let Some(by) = Holder::in_word(word.0) else {
            return; // no claim on this word yet
        };
        let Some(index) = self.index(word.pos()) else {
            return; // damage: the caller's own checks report it
        };
        let (pos, index) = self.prev(word.pos(), index);
        let slot = self.header(index);
        let claim = ClaimWord::new(by, side, pos);
        let c = ClaimWord(slot.claim.load(Ordering::Relaxed));
        if c != claim {
            // Rare: written by nobody yet, or the slot has moved on.
            self.record_cold(slot, side, c, claim, pos);
        }
    }

    /// The CAS of `record`, which the fast path rarely needs: from `c`, if it is
    /// the claim word before the claim of `pos`.
    #[cold]
    fn record_cold(&self, slot: &SlotHeader, side: Side, c: ClaimWord, claim: ClaimWord, pos: u64) {
        let before = match side {
            Side::Write => c.0 == 0 || c.is(Side::Read, sub(pos, self.dims.one_lap)),
            Side::Read => c.is(Side::Write, pos),
        };
        if before {
            let _ = slot
                .claim
                .compare_exchange(c.0, claim.0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// `record` the last claim of both position words: the first step of every
    /// recovery, so that every claimed slot names its holder.
    #[cold]
    fn settle(&self) {
        for side in [Side::Write, Side::Read] {
            // Acquire: see `record`.
            self.record(side, PosWord(self.word(side).load(Ordering::Acquire)));
        }
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
    /// `Holder::of(slot)`.
    holder: Holder,
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
            holder: Holder::of(slot),
        }))
    }

    /// Our claim word for `pos` on `side`.
    #[inline]
    fn claim(&self, side: Side, pos: u64) -> ClaimWord {
        ClaimWord::new(self.holder, side, pos)
    }

    /// Take over the slot at `index`, claimed as `dead` by a holder that is gone,
    /// with our claim for `pos` on `side`: exactly one of the handles that race
    /// for it wins, and none once the slot moved on (every later claim word
    /// differs from `dead`). AcqRel on success, see [`SlotHeader::claim`]; its
    /// Acquire also pairs with the Release of `simulate_death`, which stands for a
    /// process's end in tests. Relaxed on failure: the caller looks again.
    fn take_over(&self, index: usize, dead: ClaimWord, side: Side, pos: u64) -> bool {
        self.queue
            .header(index)
            .claim
            .compare_exchange(
                dead.0,
                self.claim(side, pos).0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
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
        let slot = q.header(index);
        // As `Sender::publish`, with our claim.
        slot.len.store(SKIPPED, Ordering::Relaxed);
        slot.stamp.store(add(pos, 1), Ordering::Release);
        wait::wake(&q.ctl().futex.not_empty);
    }

    /// Commit the batch in the slot at `index` again, at position `tail`, whose
    /// slot it is: its claim word `dead` is the read claim of the previous lap by
    /// a receiver that is gone (or our own kind of claim of `tail`, by a handle
    /// that died doing this), so the batch is delivered again. Unless another
    /// handle was first.
    #[cold]
    fn recommit(&self, tail: u64, index: usize, dead: ClaimWord) {
        if !self.take_over(index, dead, Side::Write, tail) {
            return;
        }
        let q = &*self.queue;
        let word = &q.ctl().tail;
        // Claim `tail` for it: no sender can (its stamp says full), so only a
        // handle that died doing this has moved it. Acquire as in `Sender::claim`.
        let mut now = PosWord(word.load(Ordering::Acquire));
        for _ in 0..RETRY_LIMIT {
            if now.pos() != tail {
                break;
            }
            // Release as the claim CAS in `Sender::claim`.
            match word.compare_exchange(
                now.0,
                PosWord::new(q.next(tail, index), self.holder).0,
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(w) => now = PosWord(w),
            }
        }
        // Sync point "publish batch", as in `Sender::publish`: the payload and
        // length are the dead receiver's batch.
        q.header(index).stamp.store(add(tail, 1), Ordering::Release);
        wait::wake(&q.ctl().futex.not_empty);
    }

    /// Make this attachment look dead (tests): see [`PeerTable::simulate_death`].
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
    let start = sub(0, laps.wrapping_mul(dims.one_lap));
    for index in 0..dims.slots {
        // Relaxed: nobody else sees the queue before the handles below exist.
        q.header(index)
            .stamp
            .store(add(start, index as u64), Ordering::Relaxed);
    }
    q.ctl().tail.store(start, Ordering::Relaxed);
    q.ctl().head.store(start, Ordering::Relaxed);
    let q = Arc::new(q);
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
///   another receiver gets it. The read claim keeps the batch's length. A write
///   claim of `tail` here is such a commit by a handle that died doing it: we
///   finish it.
///
/// Every recovery first writes the claim words that the last claimers may not
/// have written yet (`Queue::settle`), then reads the claim word, finds its holder
/// gone, and only then reads the stamp: a holder that is gone changes neither
/// again, so the pair is consistent, and the CAS from the claim word read first
/// makes the takeover exclusive. (Read the other way round, a stamp from before
/// the holder's last publish or release would pass for the current one.)
#[cold]
#[inline(never)]
fn recover_tail(att: &Attachment, tail: u64, index: usize) -> bool {
    let q = &*att.queue;
    q.settle();
    let p = sub(tail, q.dims.one_lap);
    let slot = q.header(index);
    // Acquire: see `SlotHeader::claim`.
    let c = ClaimWord(slot.claim.load(Ordering::Acquire));
    let writing = c.is(Side::Write, p);
    let taken = c.is(Side::Read, p) || c.is(Side::Write, tail);
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
    if taken && stamp == add(p, 1) {
        att.recommit(tail, index, c);
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
        self.claim_as::<false>(len)
    }

    /// `claim`; with `DIES` (tests), leave the claim word unwritten, as a sender
    /// killed right after its claim CAS would.
    #[inline]
    fn claim_as<const DIES: bool>(&mut self, len: usize) -> Result<Claim, TrySendError> {
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
        // Acquire: synchronises with every earlier claimer through the release
        // sequence of the claim CASes on tail, so the stamp below is not older
        // than lap - 1.
        let mut tail = PosWord(ctl.tail.load(Ordering::Acquire));
        for _ in 0..RETRY_LIMIT {
            let t = tail.pos();
            let Some(index) = q.index(t) else {
                return corrupted("enqueue position names no slot");
            };
            let slot = q.header(index);
            // Sync point "free slot": Acquire pairs with the Release store in
            // `release` by the previous lap's receiver: its reads and
            // writes of the payload happen before ours.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == t {
                // Free for this lap. Our CAS replaces the name of the last
                // claimer in tail: make sure its claim word is written first.
                q.record(Side::Write, tail);
                // The claim. Release: heads a release sequence (see the load of
                // tail above) and passes on what `record` saw. Acquire on
                // failure, as the load of tail above.
                match ctl.tail.compare_exchange(
                    tail.0,
                    PosWord::new(q.next(t, index), att.holder).0,
                    Ordering::Release,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        if !DIES {
                            // Relaxed: see `SlotHeader::claim`.
                            slot.claim
                                .store(att.claim(Side::Write, t).0, Ordering::Relaxed);
                        }
                        q.region.shadow().write(d.payload_off(index), len * d.elem);
                        return Ok(Claim { pos: t, index });
                    }
                    // Another sender claimed it first: look again.
                    Err(now) => tail = PosWord(now),
                }
            } else if stamp == sub(t, d.one_lap) || stamp == add(sub(t, d.one_lap), 1) {
                // The slot still holds the previous lap's batch: full.
                *seen = Seen {
                    pos: t,
                    index,
                    stamp,
                };
                if self.end.liveness_due(false) {
                    if self.end.att.peer_gone(true) {
                        return Err(TrySendError::Disconnected);
                    }
                    if recover_tail(&self.end.att, t, index) {
                        // The next slot may be a dead holder's too.
                        self.end.check_next = true;
                        return self.claim_as::<DIES>(len);
                    }
                }
                return Err(TrySendError::Full);
            } else {
                // Our tail is stale (the stamp is from a later claim, which
                // happens after tail moved), or the slot is damaged. Acquire as
                // the first load of tail above.
                let now = PosWord(ctl.tail.load(Ordering::Acquire));
                if now == tail {
                    return corrupted("slot stamp is inconsistent with the enqueue position");
                }
                tail = now;
            }
        }
        // Heavy contention: let a sleeper's condition fire at once.
        seen.pos = add(tail.pos(), 1);
        Err(TrySendError::Full)
    }

    /// Wait for a free slot until `deadline`.
    #[inline]
    fn claim_until(&mut self, len: usize, deadline: Deadline) -> Result<Claim, SendTimeoutError> {
        wait::until(&mut Claiming { tx: self, len }, deadline)
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
        slot.stamp.store(add(claim.pos, 1), Ordering::Release);
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

/// A sender waiting for a free slot (`wait::until`).
struct Claiming<'a, T: Pod> {
    tx: &'a mut Sender<T>,
    len: usize,
}

impl<T: Pod> Wait for Claiming<'_, T> {
    type Ready = Claim;
    type Error = TrySendError;

    #[inline]
    fn attempt(&mut self) -> Result<Claim, TrySendError> {
        self.tx.claim(self.len)
    }

    fn sleep(&mut self, slice: Duration) -> Result<(), TrySendError> {
        self.tx.end.sleep(slice);
        Ok(())
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

impl<T: Pod> Sender<T> {
    /// Claim a slot for `len` elements and mark this attachment as that of a dead
    /// process before the slot's claim word is written: what a sender killed
    /// right after its claim CAS leaves (for tests of recovery).
    ///
    /// # Errors
    /// As [`try_reserve`](Self::try_reserve).
    #[doc(hidden)]
    pub fn simulate_death_claiming(&mut self, len: usize) -> Result<(), TrySendError> {
        let claim = self.claim_as::<true>(len)?;
        self.reservation(claim, len).simulate_death();
        Ok(())
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
        let head = PosWord(q.ctl().head.load(Ordering::Relaxed)).pos();
        q.index(head).map_or(true, |i| {
            q.header(i).stamp.load(Ordering::Relaxed) != add(head, 1)
        })
    }

    /// Claim the next committed batch, without waiting.
    #[inline]
    fn take(&mut self) -> Result<Taken, TryRecvError> {
        self.take_as::<false>()
    }

    /// `take`; with `DIES` (tests), leave the claim word unwritten, as a receiver
    /// killed right after its claim CAS would.
    #[inline]
    fn take_as<const DIES: bool>(&mut self) -> Result<Taken, TryRecvError> {
        let mut last_look = false;
        loop {
            let End { att, seen, .. } = &mut self.end;
            let q = &*att.queue;
            let d = &q.dims;
            let ctl = q.ctl();
            let corrupted = |reason| Err(TryRecvError::Corrupted { reason });
            // Acquire: synchronises with every earlier claimer through the
            // release sequence of the claim CASes on head.
            let mut head = PosWord(ctl.head.load(Ordering::Acquire));
            let mut tries = 0;
            let empty = loop {
                let h = head.pos();
                if tries == RETRY_LIMIT {
                    // Heavy contention: let a sleeper's condition fire at once.
                    seen.pos = add(h, 1);
                    return Err(TryRecvError::Empty);
                }
                tries += 1;
                let Some(index) = q.index(h) else {
                    return corrupted("dequeue position names no slot");
                };
                let slot = q.header(index);
                // Sync point "publish batch": Acquire pairs with the Release store in
                // `Sender::publish`; the length and payload are visible after this.
                let stamp = slot.stamp.load(Ordering::Acquire);
                if stamp == add(h, 1) {
                    // Committed. As in `Sender::claim`: record the last claim on
                    // head, then claim ours (orderings there).
                    q.record(Side::Read, head);
                    if let Err(now) = ctl.head.compare_exchange(
                        head.0,
                        PosWord::new(q.next(h, index), att.holder).0,
                        Ordering::Release,
                        Ordering::Acquire,
                    ) {
                        head = PosWord(now);
                        continue;
                    }
                    if !DIES {
                        // Relaxed: see `SlotHeader::claim`.
                        slot.claim
                            .store(att.claim(Side::Read, h).0, Ordering::Relaxed);
                    }
                    match checked_len(q, h, index) {
                        Ok(Some(len)) => return Ok(Taken { pos: h, index, len }),
                        // Skipped: released; on to the next.
                        Ok(None) => head = PosWord(ctl.head.load(Ordering::Acquire)),
                        Err(reason) => return corrupted(reason),
                    }
                } else if stamp == h || stamp == sub(add(h, 1), d.one_lap) {
                    // Free, claimed and not committed, or the previous lap's batch
                    // still being read: nothing to take at head.
                    break Seen {
                        pos: h,
                        index,
                        stamp,
                    };
                } else {
                    // Our head is stale (the stamp is from a later lap, which
                    // happens after head moved), or the slot is damaged. Acquire
                    // as the first load of head above.
                    let now = PosWord(ctl.head.load(Ordering::Acquire));
                    if now == head {
                        return corrupted("slot stamp is inconsistent with the dequeue position");
                    }
                    head = now;
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
    /// - The slot at head, which a handle that is gone was committing again for a
    ///   dead receiver (`Attachment::recommit`): we finish that (`Retry`).
    /// - A batch that a receiver that is gone had taken: we take it over and
    ///   deliver it (`Taken`). This scans every slot, so it runs only when an
    ///   attachment went away since our last scan (`PeerTable::deaths`), or, with
    ///   `all`, once every sender is gone.
    #[cold]
    #[inline(never)]
    fn recover(&mut self, at: Seen, all: bool) -> Result<Recovered, TryRecvError> {
        let att = &*self.end.att;
        let q = &*att.queue;
        q.settle();
        // Claim word, holder, then stamp, as in `recover_tail`.
        let slot = q.header(at.index);
        let c = ClaimWord(slot.claim.load(Ordering::Acquire));
        if c.is(Side::Write, at.pos) && !q.holder_alive(c) {
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == at.pos {
                // Skipped by us, or by someone faster: either way, look again.
                att.skip_dead_writer(at.pos, at.index, c);
                return Ok(Recovered::Retry);
            }
            if stamp == sub(add(at.pos, 1), q.dims.one_lap) {
                att.recommit(at.pos, at.index, c);
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
            let pos = sub(stamp, 1);
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

    /// Wait for a committed batch until `deadline`.
    #[inline]
    fn take_until(&mut self, deadline: Deadline) -> Result<Taken, RecvTimeoutError> {
        wait::until(&mut Taking { rx: self }, deadline)
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

/// A receiver waiting for a committed batch (`wait::until`).
struct Taking<'a, T: Pod> {
    rx: &'a mut Receiver<T>,
}

impl<T: Pod> Wait for Taking<'_, T> {
    type Ready = Taken;
    type Error = TryRecvError;

    #[inline]
    fn attempt(&mut self) -> Result<Taken, TryRecvError> {
        self.rx.take()
    }

    fn sleep(&mut self, slice: Duration) -> Result<(), TryRecvError> {
        self.rx.end.sleep(slice);
        Ok(())
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
        .store(add(pos, q.dims.one_lap), Ordering::Release);
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

impl<T: Pod> Receiver<T> {
    /// Take the next batch and mark this attachment as that of a dead process
    /// before the slot's claim word is written: what a receiver killed right after
    /// its claim CAS leaves (for tests of recovery). Returns a copy of the batch,
    /// which the queue delivers again.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    #[doc(hidden)]
    pub fn simulate_death_taking(&mut self) -> Result<Vec<T>, TryRecvError> {
        let taken = self.take_as::<true>()?;
        let batch = self.guard(taken);
        let copy = batch.to_vec();
        batch.simulate_death();
        Ok(copy)
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
