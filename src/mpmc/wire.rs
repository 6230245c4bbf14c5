//! The MPMC wire format: the words in the segment and what they mean, the slot
//! header, the control block and the dimensions, validated on open. The
//! algorithm over them is in `queue.rs`.
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

#[cfg(not(loom))]
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::layout::{Geometry, Kind, Padded, TypeInfo, MAX_SEGMENT_LEN};
use crate::peers::{self, PeerTable, TABLE_LEN};
use crate::segment::{Control, Region};
#[cfg(not(loom))]
use crate::sync::Ordering;
use crate::sync::{AtomicU32, AtomicU64};

/// Most slots a queue may have.
pub const MAX_SLOTS: usize = 1 << 30;

/// Length word of a slot whose reservation was dropped: receivers skip it.
pub(super) const SKIPPED: u64 = u64::MAX;

/// Bytes of a slot header; the payload starts at `max(SLOT_HEADER, align_of::<T>())`.
pub(super) const SLOT_HEADER: usize = 32;

/// Slots are a multiple of this (and of `align_of::<T>()`): one cache line, so a
/// slot of a small batch does not share a line with its neighbours' headers while
/// taking half the memory (and cross-core traffic) of two-line slots.
pub(super) const SLOT_ALIGN: usize = 64;

/// Contended attempts (lost CAS, moved position, skipped slot) one `try_` call makes
/// before it reports `Full`/`Empty`. Each one means another handle made progress.
pub(super) const RETRY_LIMIT: u32 = 1024;

/// Positions (`tail`, `head`, stamps, the position in a claim word) are counted
/// modulo 2^48: this mask. `one_lap` (a power of two, at most 2^31) divides 2^48,
/// so a lap never straddles the wrap, and the 16 bits above are free for the
/// claimer's identity in `tail` and `head` ([`PosWord`]).
pub(super) const POS: u64 = (1 << 48) - 1;

/// `a + b` in position arithmetic (modulo 2^48).
#[inline]
pub(super) fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b) & POS
}

/// `a - b` in position arithmetic (modulo 2^48).
#[inline]
pub(super) fn sub(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b) & POS
}

/// The identity bits of an attachment, as claim words and position words carry
/// them: bit 63 set, the attachment's entry (peers.rs) in bits 62..57, that
/// entry's generation in bits 56..49. An entry reused by a later attachment has
/// another generation, so these bits name one attachment for 256 reuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Holder(pub(super) u64);

impl Holder {
    pub(super) const PRESENT: u64 = 1 << 63;
    pub(super) const ENTRY_SHIFT: u32 = 57;
    pub(super) const GEN_SHIFT: u32 = 49;
    /// Every identity bit.
    pub(super) const BITS: u64 = !((1 << 49) - 1);

    pub(super) fn of(slot: peers::Slot) -> Holder {
        Holder(
            Self::PRESENT | (slot.entry as u64) << Self::ENTRY_SHIFT | slot.gen << Self::GEN_SHIFT,
        )
    }

    /// The identity bits of `word` (a claim word or a position word), if any.
    #[inline]
    pub(super) fn in_word(word: u64) -> Option<Holder> {
        (word & Self::PRESENT != 0).then_some(Holder(word & Self::BITS))
    }

    /// The attachment these bits name.
    pub(super) fn slot(self) -> peers::Slot {
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
pub(super) struct PosWord(pub(super) u64);

impl PosWord {
    #[inline]
    pub(super) fn new(pos: u64, by: Holder) -> PosWord {
        PosWord(by.0 | pos & POS)
    }

    #[inline]
    pub(super) fn pos(self) -> u64 {
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
pub(super) struct ClaimWord(pub(super) u64);

/// Which side holds a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// A sender claimed it and is writing (stamp `p`), or committed it (`p + 1`).
    Write,
    /// A receiver took the committed batch (stamp `p + 1`) and is reading it.
    Read,
}

impl ClaimWord {
    pub(super) const READ: u64 = 1 << 48;

    /// The word for a claim by `by` of `pos` on `side`.
    #[inline]
    pub(super) fn new(by: Holder, side: Side, pos: u64) -> ClaimWord {
        let side = match side {
            Side::Write => 0,
            Side::Read => Self::READ,
        };
        ClaimWord(by.0 | side | pos & POS)
    }

    /// Whether this is a claim of position `pos` on `side`.
    #[inline]
    pub(super) fn is(self, side: Side, pos: u64) -> bool {
        let want = match side {
            Side::Write => 0,
            Side::Read => Self::READ,
        };
        self.0 & (Holder::PRESENT | Self::READ) == Holder::PRESENT | want
            && self.0 & POS == pos & POS
    }

    /// The attachment that made the claim (any bits for a word that is no claim:
    /// callers check `is` first).
    pub(super) fn holder(self) -> peers::Slot {
        Holder(self.0 & Holder::BITS).slot()
    }
}

/// The header of one slot, at the start of the slot in the data region.
///
/// Under loom, atomics cannot live in raw memory, so the headers live in a vector in
/// [`Queue`] instead and only the payloads are in the region.
#[repr(C)]
#[derive(Default)]
pub(super) struct SlotHeader {
    /// Sequence stamp (module docs). Written by the claiming sender (Release store
    /// of `p + 1` on commit) and the claiming receiver (Release store of
    /// `p + one_lap` on release); read by both sides with Acquire before claiming.
    /// The creator stores `index` (lap 0) before publishing the header.
    pub(super) stamp: AtomicU64,
    /// Batch length in elements, or [`SKIPPED`]. Written by the claiming sender
    /// (Relaxed) before its stamp store; read by the claiming receiver (Relaxed)
    /// after its Acquire load of the stamp. Checked against `max_batch`.
    pub(super) len: AtomicU64,
    /// The claim word (see [`ClaimWord`]): who holds the slot, for which
    /// position, on which side. Stored (Relaxed) by the claimer right after its
    /// claim CAS on `tail`/`head`, or, if it has not yet, by a CAS from the
    /// slot's previous claim word in `Queue::record` (the same value: the first
    /// write wins, the other is a no-op or fails). Handles that find the holder
    /// dead take the slot over with a CAS from the dead holder's word (AcqRel:
    /// Acquire to see what a recoverer that died before us did to the slot,
    /// Release for the next one). Loaded with Acquire by recoverers, which then
    /// judge the holder and only then load the stamp (`recover_tail`).
    pub(super) claim: AtomicU64,
    /// Reserved, 0.
    pub(super) reserved: AtomicU64,
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
    pub(super) tail: Padded<AtomicU64>,
    /// Dequeue position and its last claimer, likewise, moved by receivers only.
    pub(super) head: Padded<AtomicU64>,
    /// Futex words: written only when a handle goes to sleep or wakes sleepers.
    pub(super) futex: Padded<Futexes>,
    /// Attachment counts and table.
    pub(super) peers: PeerTable,
}

#[repr(C)]
#[derive(Default)]
pub(super) struct Futexes {
    /// 1 while a receiver may sleep waiting for a batch (wait.rs protocol).
    pub(super) not_empty: AtomicU32,
    /// 1 while a sender may sleep waiting for a free slot.
    pub(super) not_full: AtomicU32,
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
pub(super) struct Dims {
    /// Number of slots, in `1..=MAX_SLOTS`.
    pub(super) slots: usize,
    /// `(slots + 1).next_power_of_two()`: the position increment of one lap.
    pub(super) one_lap: u64,
    /// Largest batch in elements, at least 1.
    pub(super) max_batch: usize,
    /// `size_of::<T>()`.
    pub(super) elem: usize,
    /// Offset of the payload in a slot: `max(SLOT_HEADER, align_of::<T>())`.
    pub(super) payload: usize,
    /// Bytes per slot: a multiple of `max(SLOT_ALIGN, align_of::<T>())`, at least
    /// `payload + max_batch * elem`.
    pub(super) stride: usize,
}

impl Dims {
    /// The dimensions for these arguments, or `(what, value, reason)`.
    pub(super) fn compute(
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

    pub(super) fn new(ty: &TypeInfo, slots: usize, max_batch: usize) -> Result<Dims> {
        Self::compute(ty.size, ty.align, slots, max_batch).map_err(|(what, value, reason)| {
            Error::InvalidSize {
                what,
                value,
                reason,
            }
        })
    }

    pub(super) fn from_geometry(g: &Geometry) -> Result<Dims> {
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
    pub(super) fn payload_off(&self, index: usize) -> usize {
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
pub(super) unsafe fn slot_header<'a>(data: NonNull<u8>, d: &Dims, index: usize) -> &'a SlotHeader {
    debug_assert!(index < d.slots);
    // SAFETY: index * stride + SLOT_HEADER <= slots * stride = data_len (caller), so
    // the header is in bounds; data is LINE-aligned and stride a multiple of 64,
    // so it is 8-byte aligned; SlotHeader is atomics only, valid for any bits a peer wrote.
    unsafe { data.add(index * d.stride).cast::<SlotHeader>().as_ref() }
}

/// Store the lap-0 stamps: run by the creator before the header is published.
pub(super) fn init_slots(_region: &Region, _d: &Dims) {
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
pub(super) fn used(head: u64, tail: u64, slots: u64) -> Option<u64> {
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

pub(super) fn geometry(ty: &TypeInfo, slots: usize, max_batch: usize) -> Result<(Geometry, Dims)> {
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

/// A snapshot of an MPMC control block, for `inspect`.
#[derive(Debug)]
pub(crate) struct MpmcStats {
    /// Claimed slots not yet taken (`used`). `None` when a position is not a valid
    /// `lap | index`.
    pub(crate) used: Option<u64>,
    /// The attachment table, decoded.
    pub(crate) entries: Vec<peers::Entry>,
}

/// Read the control block of a queue of `slots` slots without taking part in its
/// protocol (Relaxed loads only: the values are a report, never used to form a
/// pointer). Every word is untrusted.
pub(crate) fn stats(ctl: &MpmcControl, slots: u64) -> MpmcStats {
    let r = std::sync::atomic::Ordering::Relaxed;
    // Head first: head <= tail at every instant and tail only grows, so the later
    // tail is at least the earlier head.
    let head = ctl.head.load(r);
    let tail = ctl.tail.load(r);
    MpmcStats {
        used: used(head, tail, slots),
        entries: ctl.peers.snapshot(),
    }
}
