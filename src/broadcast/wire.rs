//! The broadcast wire format: the words in the segment and what they mean, the
//! sizes, and their validation on open. The algorithm over them is `log.rs`.
//!
//! # Wire format
//! ```text
//! control block (at CONTROL_OFFSET, 3 + MAX_SUBSCRIBERS lines of 128 bytes)
//!   line 0   tail, seq              (the publisher, every batch; read rarely)
//!   line 1   claim, oldest          (the publisher, now and then; read by
//!                                    subscribers for every batch)
//!   line 2   policy, evict_after_ns, owner, closed, subscribers, joins, used,
//!            the data futex and wake words (creator, then rarely)
//!   line 3+i subscriber entry i: owner, pos, seq, missed, then its space futex
//!            and wake words (subscriber i; the publisher only to reap, evict
//!            or sleep)
//! data region: the log, `ring` bytes (a multiple of 2 * unit)
//!   record   seq word: batch number + 1 (| PENDING at the publisher's frontier)
//!            len word: elements, or WRAP for a wrap marker
//!            (both in a header of `unit` bytes), then the elements padded to unit
//! ```
//!
//! Every word is untrusted: a hostile value gives `Corrupted`, `Lagged` or
//! `Evicted`, never an access outside the log.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::{Geometry, Padded, TypeInfo};
use crate::segment::{Control, ProcId};
use crate::sync::{AtomicU32, AtomicU64};
use crate::Kind;

/// The most subscribers a broadcast segment holds at once (three under loom, to
/// keep the models small).
pub const MAX_SUBSCRIBERS: usize = if cfg!(loom) { 3 } else { 64 };

/// Set in a record's seq word while the record is not yet published: the header
/// at the publisher's frontier reads `PENDING | (n + 1)` for the next batch `n`.
pub(super) const PENDING: u64 = 1 << 63;
/// The len word of a wrap marker: the batch it stands for starts at offset 0.
pub(super) const WRAP: u64 = u64::MAX;

/// Largest position a subscriber accepts from the segment (`tail`, `oldest`):
/// 2^62 bytes is ~146 years at 1 TB/s, so a larger one is damage, and the bound
/// keeps position arithmetic (`pos + ring`) far from overflow.
pub(super) const MAX_POSITION: u64 = 1 << 62;

/// Subscriber entry states (low 2 bits of the owner word).
pub(super) const FREE: u64 = 0;
pub(super) const ACTIVE: u64 = 1;
pub(super) const EVICTED: u64 = 2;
/// Active and holding an in-place batch (lossless logs that evict): the
/// publisher evicts only from [`ACTIVE`], so never while the batch is read.
pub(super) const READING: u64 = 3;
const STATE_MASK: u64 = 0b11;
const GEN_SHIFT: u32 = 2;
const GEN_MASK: u64 = 0xff;
const PROC_SHIFT: u32 = 10;
const _: () = assert!(PROC_SHIFT + crate::segment::PROC_BITS <= 64);

/// An entry's owner word: `proc << 10 | generation << 2 | state`. The generation
/// is bumped by every subscribe into the entry, so that an evicted handle whose
/// entry was freed and taken again tells the new owner from itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner(pub(super) u64);

impl Owner {
    pub(super) fn new(proc: ProcId, gen: u64, state: u64) -> Owner {
        Owner(proc.pack() << PROC_SHIFT | (gen & GEN_MASK) << GEN_SHIFT | state)
    }
    pub(super) fn state(self) -> u64 {
        self.0 & STATE_MASK
    }
    pub(super) fn gen(self) -> u64 {
        (self.0 >> GEN_SHIFT) & GEN_MASK
    }
    pub(super) fn proc(self) -> ProcId {
        ProcId::unpack(self.0 >> PROC_SHIFT)
    }
    /// The same attachment in another state.
    pub(super) fn with_state(self, state: u64) -> Owner {
        Owner(self.0 & !STATE_MASK | state)
    }
    /// Active, reading or not: a subscriber the lossless publisher waits for.
    pub(super) fn is_active(self) -> bool {
        matches!(self.state(), ACTIVE | READING)
    }
}

/// The words the publisher writes for every batch (line 0), which subscribers
/// read only when they join.
#[repr(C)]
#[derive(Default)]
pub(super) struct PublisherLine {
    /// Bytes ever published, wrap gaps included: the end of the last record.
    /// Release store after each record; read by joining subscribers and reports.
    pub(super) tail: AtomicU64,
    /// Batches ever published (a report: subscribers' lag, `inspect`).
    pub(super) seq: AtomicU64,
}

/// The words the publisher writes now and then (line 1), which subscribers read
/// for every batch.
#[repr(C)]
#[derive(Default)]
pub(super) struct ClaimLine {
    /// The end of the bytes the publisher may be writing: no byte at a position
    /// `>= claim` is written, so a record at `p` is intact while
    /// `claim <= p + ring`. Lossy: past the end of the record being written, in
    /// steps of [`Dims::chunk`] (so that subscribers find the line unchanged for
    /// most batches), at most `tail + ring`. Lossless: the slowest active
    /// subscriber's position plus the ring.
    pub(super) claim: AtomicU64,
    /// Position of the oldest record still intact (`<= tail`, `>= claim - ring`
    /// once the publisher stored both). Stored before `claim` grows.
    pub(super) oldest: AtomicU64,
}

/// Configuration (written once by the creator) and the rarely written words.
#[repr(C)]
#[derive(Default)]
pub(super) struct SharedLine {
    /// 0 lossless, 1 lossy ([`super::Policy`]).
    pub(super) policy: AtomicU64,
    /// Lossless: evict a subscriber that holds the publisher back this long
    /// without moving (nanoseconds; 0: never).
    pub(super) evict_after_ns: AtomicU64,
    /// The publisher's process ([`ProcId::pack`]); 0 before it attached.
    pub(super) owner: AtomicU64,
    /// 1 once the publisher has gone (dropped).
    pub(super) closed: AtomicU64,
    /// Active subscribers (a report; the entries are the truth).
    pub(super) subscribers: AtomicU64,
    /// Bumped by every subscriber once its entry is active (sync point "join").
    pub(super) joins: AtomicU64,
    /// One past the highest entry ever taken: the publisher scans `0..used`.
    /// Untrusted: clamped to `MAX_SUBSCRIBERS`.
    pub(super) used: AtomicU64,
    /// 1 while a subscriber may sleep waiting for a batch.
    pub(super) data_ready: AtomicU32,
    pub(super) data_light: AtomicU32,
    pub(super) data_sleeps: AtomicU32,
}

/// One subscriber's line.
#[repr(C)]
#[derive(Default)]
pub(super) struct Entry {
    /// [`Owner`] word; state [`FREE`] when nobody holds the entry.
    pub(super) owner: AtomicU64,
    /// The position of the subscriber's next record (bytes released). Release
    /// store after each batch; the lossless publisher waits for the smallest.
    pub(super) pos: AtomicU64,
    /// The number of the subscriber's next batch (a report).
    pub(super) seq: AtomicU64,
    /// Batches it was told it missed (a report).
    pub(super) missed: AtomicU64,
    /// 1 while the publisher may sleep waiting for this subscriber to free room:
    /// each entry has its own wake words, so that each has one waker (the
    /// subscriber) and may use the segment's wake protocol.
    pub(super) space_ready: AtomicU32,
    pub(super) space_light: AtomicU32,
    pub(super) space_sleeps: AtomicU32,
}

/// The broadcast control block at `CONTROL_OFFSET`.
#[repr(C)]
pub(crate) struct BroadcastControl {
    pub(super) publisher: Padded<PublisherLine>,
    pub(super) claims: Padded<ClaimLine>,
    pub(super) shared: Padded<SharedLine>,
    pub(super) entries: [Padded<Entry>; MAX_SUBSCRIBERS],
}

impl Default for BroadcastControl {
    fn default() -> Self {
        BroadcastControl {
            publisher: Padded::default(),
            claims: Padded::default(),
            shared: Padded::default(),
            entries: std::array::from_fn(|_| Padded::default()),
        }
    }
}

#[cfg(not(loom))]
const _: () = {
    use crate::layout::LINE;
    use std::mem::{offset_of, size_of};
    assert!(size_of::<BroadcastControl>() == (3 + MAX_SUBSCRIBERS) * LINE);
    assert!(offset_of!(BroadcastControl, claims) == LINE);
    assert!(offset_of!(BroadcastControl, shared) == 2 * LINE);
    assert!(offset_of!(BroadcastControl, entries) == 3 * LINE);
};

// SAFETY: all-zero is a valid initial state (policy lossless, no publisher, no
// subscribers, nobody asleep; the creator writes the first header and the
// configuration before it publishes the segment), and the block holds atomics only.
unsafe impl Control for BroadcastControl {
    const KIND: Kind = Kind::Broadcast;
}

/// Sizes and configuration of a log, fixed at creation and validated on open.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    /// Elements asked for at creation (`Identity.capacity`).
    pub(super) capacity: usize,
    /// Log length in bytes: a multiple of `2 * unit`.
    pub(super) ring: usize,
    /// Record alignment unit and header size: `max(16, align_of::<T>())`.
    pub(super) unit: usize,
    /// `size_of::<T>()`.
    pub(super) elem: usize,
    /// Largest batch in elements; `record(max_batch) <= ring / 2`.
    pub(super) max_batch: usize,
}

impl Dims {
    pub(super) fn for_capacity(
        ty: &TypeInfo,
        capacity: usize,
        max_batch: Option<usize>,
    ) -> Result<Dims> {
        // The SPSC ring's formula, with a unit that holds the two header words.
        let (ring, max_batch) = crate::spsc::dims::sizes(ty, 16, capacity, max_batch)?;
        Ok(Dims {
            capacity,
            ring,
            unit: ty.align.max(16),
            elem: ty.size,
            max_batch,
        })
    }

    /// The geometry a new segment of these dims records.
    pub(super) fn geometry(&self, ty: &TypeInfo) -> Result<Geometry> {
        Geometry::new(
            Kind::Broadcast,
            ty,
            std::mem::size_of::<BroadcastControl>(),
            self.ring,
            self.capacity as u64,
            self.max_batch as u64,
            0,
        )
    }

    /// The dims an opened segment's validated geometry describes, checked against
    /// the one formula: a header that does not match it is refused.
    pub(super) fn from_geometry(g: &Geometry) -> Result<Dims> {
        let bad = |what: &str| Error::corrupted(format!("broadcast header: {what}"));
        let capacity = usize::try_from(g.capacity).map_err(|_| bad("capacity"))?;
        let max_batch = usize::try_from(g.max_batch).map_err(|_| bad("max_batch"))?;
        let ty = TypeInfo {
            name: "",
            tag: String::new(),
            size: g.elem_size,
            align: g.elem_align,
        };
        let d = Dims::for_capacity(&ty, capacity, Some(max_batch))
            .map_err(|_| bad("capacity and max_batch do not fit the log"))?;
        if d.ring != g.data_len || g.stride != 0 {
            return Err(bad("log length does not match the capacity"));
        }
        Ok(d)
    }

    /// Lossy: the step of the announced claim, a sixteenth of the log (at least
    /// a unit): a lapped subscriber may be told so up to that much early.
    pub(super) fn chunk(&self) -> u64 {
        (self.ring / 16).next_multiple_of(self.unit) as u64
    }

    /// Bytes of a record of `len <= max_batch` elements.
    #[inline]
    pub(super) fn record(&self, len: usize) -> usize {
        self.unit + (len * self.elem).next_multiple_of(self.unit)
    }
}

/// The configuration words, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Config {
    pub(super) lossy: bool,
    pub(super) evict_after: Option<Duration>,
}

/// Longest eviction timeout accepted (a larger one is damage): a day.
pub(super) const MAX_EVICT: Duration = Duration::from_secs(86_400);

impl Config {
    pub(super) fn read(s: &SharedLine) -> Result<Config> {
        use crate::sync::Ordering::Acquire;
        let lossy = match s.policy.load(Acquire) {
            0 => false,
            1 => true,
            p => return Err(Error::corrupted(format!("broadcast policy word {p}"))),
        };
        let ns = s.evict_after_ns.load(Acquire);
        if ns > MAX_EVICT.as_nanos() as u64 {
            return Err(Error::corrupted(format!(
                "broadcast eviction timeout of {ns} ns"
            )));
        }
        Ok(Config {
            lossy,
            evict_after: (ns != 0).then(|| Duration::from_nanos(ns)),
        })
    }
}

/// One occupied subscriber entry, for inspection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryStats {
    pub index: usize,
    pub proc: ProcId,
    pub evicted: bool,
    pub seq: u64,
    pub missed: u64,
}

/// A snapshot of a broadcast control block (`shmbatch::inspect`). Reports only:
/// every word is read Relaxed and clamped where it is shown.
#[derive(Debug, Clone)]
pub(crate) struct BroadcastStats {
    pub lossy: bool,
    pub evict_after: Option<Duration>,
    pub publisher: Option<ProcId>,
    pub closed: bool,
    pub published: u64,
    /// Bytes between the slowest subscriber and the publisher.
    pub used: u64,
    pub entries: Vec<EntryStats>,
}

pub(crate) fn stats(ctl: &BroadcastControl) -> BroadcastStats {
    use crate::sync::Ordering::Relaxed;
    let s = &ctl.shared;
    let p = &ctl.publisher;
    let config = Config::read(s).unwrap_or(Config {
        lossy: s.policy.load(Relaxed) != 0,
        evict_after: None,
    });
    let tail = p.tail.load(Relaxed);
    let mut min = tail;
    let mut entries = Vec::new();
    for (index, e) in ctl.entries.iter().enumerate() {
        let owner = Owner(e.owner.load(Relaxed));
        if owner.state() == FREE {
            continue;
        }
        let pos = e.pos.load(Relaxed);
        if owner.is_active() {
            min = min.min(pos);
        }
        entries.push(EntryStats {
            index,
            proc: owner.proc(),
            evicted: !owner.is_active(),
            seq: e.seq.load(Relaxed),
            missed: e.missed.load(Relaxed),
        });
    }
    let owner = s.owner.load(Relaxed);
    BroadcastStats {
        lossy: config.lossy,
        evict_after: config.evict_after,
        publisher: (owner != 0).then(|| ProcId::unpack(owner)),
        closed: s.closed.load(Relaxed) != 0,
        published: p.seq.load(Relaxed),
        used: tail - min,
        entries,
    }
}
