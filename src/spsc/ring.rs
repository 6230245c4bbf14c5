//! The SPSC record ring over a [`Region`]: the control block as it lies in the
//! segment, and the algorithm of each end — the producer's claim and publish, the
//! consumer's look and release, and what each end checks when it attaches (the
//! sizes are `dims.rs`). Pure logic: who is attached and whether the peer lives is
//! `link.rs`, when to wait is `wait.rs`; every Release/Acquire pair of the ring
//! has both of its ends in this file.
//!
//! # Records
//! Positions `head` and `tail` count bytes since creation (they never wrap: 2^64
//! bytes). A record is a `u64` header word padded to the unit
//! `U = max(8, align_of::<T>())`, then the elements padded to `U`. The header holds
//! `len + 1`; [`EMPTY`] means "nothing published here yet" and [`WRAP`] is a wrap
//! marker: the record did not fit before the end of the ring and starts at offset 0
//! (the skipped bytes count as used). A record is at most half the ring, which
//! guarantees that an empty ring accepts any allowed batch wherever its write offset
//! stands.
//!
//! The consumer polls the header at its read offset, not the producer's index: a
//! batch then costs the consumer one cache-line transfer (header and first elements
//! together) instead of two (index, then record). For that, the header at the
//! producer's write offset must always read `EMPTY` until a record is published
//! there, whatever the previous lap left in those bytes: before publishing a record,
//! the producer writes `EMPTY` at the place of the *next* record. That word must be
//! free, so the producer keeps one unit of the ring unused.
//!
//! # Sync points
//! Both ends of each are labelled in the code.
//! - "publish batch": the producer writes a record and the empty header after it,
//!   then stores the record's header (or the wrap marker before it) with Release
//!   (`Producer::publish`); the consumer loads the header with Acquire before
//!   reading the batch (`Consumer::look`). The producer then stores `tail` and
//!   `sent` (Release), which nothing reads to receive: only attaching handles, the
//!   consumer's periodic sanity check (`Consumer::check_tail`), `len` and
//!   `inspect` read them.
//! - "free space": the consumer stores `head` (Release) after it is done with a
//!   batch, then `received` (`Consumer::release`); the producer loads `head` with
//!   Acquire before reusing that space (`Producer::claim`).
//! - The wake protocol (wait.rs): the stores above are its K1, and the `SeqCst`
//!   loads in `Producer::sleep` and `Consumer::sleep` its W2.
//!
//! Each publish and release ends with `Wake::wake`, whose barrier is a full fence
//! or, in a segment of the asymmetric protocol, a compiler fence (see
//! [`crate::WakeProtocol`]).
//!
//! # Batch counts
//! `sent` and `received` count batches (wrap markers are not batches), so that
//! `len` costs one load instead of a walk over the records. Each is written by its
//! own side only, after the position it goes with, and is a report, never used to
//! form a pointer: a reader clamps `sent - received` to `0..=Dims::max_records`.
//! A process killed between a position store and its count store leaves a count
//! one short; the next handle of that side recounts from the records themselves
//! when it attaches (`Producer::attach`, `Consumer::attach`).

use std::ptr::NonNull;
use std::time::Duration;

use super::dims::Dims;
use super::link::Peers;
use crate::layout::Padded;
use crate::segment::{Control, Region};
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::wait::{self, WakeWords, Waker};
use crate::{Error, Kind, Result, TryRecvError, TrySendError};

/// Header of a wrap marker.
const WRAP: u64 = u64::MAX;
/// Header of a place where nothing is published yet (a zeroed ring is all empty).
const EMPTY: u64 = 0;

/// The SPSC control block at `CONTROL_OFFSET`: three lines of 128 bytes.
///
/// | offset | field | written by |
/// |---|---|---|
/// | 0 | `tail` | producer |
/// | 8 | `sent` | producer |
/// | 128 | `head` | consumer |
/// | 136 | `received` | consumer |
/// | 256 | owner words, futex words ([`Peers`]) | both, rarely |
#[repr(C)]
#[derive(Default)]
pub(crate) struct SpscControl {
    producer: Padded<ProducerLine>,
    consumer: Padded<ConsumerLine>,
    pub(super) peers: Padded<Peers>,
}

/// The words only the producer writes.
#[repr(C)]
#[derive(Default)]
struct ProducerLine {
    /// Bytes ever published. Written by the producer only (Release store after
    /// each record's header), read on slow paths only: by attaching handles,
    /// `check_tail` and `inspect`. The consumer reads records through their
    /// headers, so it may release a record before its producer stores `tail`:
    /// `tail` is within one ring of `head`, on either side.
    tail: AtomicU64,
    /// Batches ever published. Written by the producer only (Release store after
    /// `tail`), read by the consumer's `len` and an attaching consumer (Acquire).
    /// Untrusted: any value, clamped where it is used (module docs).
    sent: AtomicU64,
}

/// The words only the consumer writes.
#[repr(C)]
#[derive(Default)]
struct ConsumerLine {
    /// Bytes ever released. Written by the consumer only (Release store), read by
    /// the producer (Acquire, when its cached copy says the ring is full; `SeqCst`
    /// while it sleeps).
    head: AtomicU64,
    /// Batches ever released. Written by the consumer only (Release store after
    /// `head`), read by the producer's `len` and an attaching producer (Acquire).
    /// Untrusted like `sent`.
    received: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<SpscControl>() == 3 * crate::layout::LINE);
    assert!(offset_of!(SpscControl, consumer) == crate::layout::LINE);
    assert!(offset_of!(SpscControl, peers) == 2 * crate::layout::LINE);
    assert!(offset_of!(ProducerLine, sent) == 8);
    assert!(offset_of!(ConsumerLine, received) == 8);
};

// SAFETY: all-zero is the valid initial state (positions and counts 0, owners
// never attached, nobody asleep), and the block holds atomics only.
unsafe impl Control for SpscControl {
    const KIND: Kind = Kind::Spsc;
}

impl SpscControl {
    /// `(tail, head)` for a report (Relaxed: never used to form a pointer). head
    /// first: it only grows, so a tail read after it is less likely to look behind.
    pub(super) fn positions(&self) -> (u64, u64) {
        let head = self.consumer.head.load(Ordering::Relaxed);
        (self.producer.tail.load(Ordering::Relaxed), head)
    }
}

/// Largest position accepted at attach: 2^62 bytes is ~146 years at 1 TB/s, so a
/// larger one is damage, and the bound keeps our position arithmetic far from
/// overflow whatever a peer writes later (it is checked relative to ours).
const MAX_POSITION: u64 = 1 << 62;

/// Check positions read at attach. `tail` may be behind `head` (see
/// [`ProducerLine::tail`]), but never by more than a ring, and never ahead by more
/// than a ring; both are unit-aligned.
fn check_positions(head: u64, tail: u64, d: &Dims) -> Result<()> {
    let unit = d.unit as u64;
    if head > MAX_POSITION
        || tail > MAX_POSITION
        || head.abs_diff(tail) > d.ring as u64
        || head % unit != 0
        || tail % unit != 0
    {
        return Err(Error::corrupted("spsc positions are inconsistent"));
    }
    Ok(())
}

/// The ring of one segment, as either end sees it: the region, its control block,
/// the data region and the dims validated when it was opened.
pub(super) struct Ring {
    region: Arc<Region>,
    ctl: NonNull<SpscControl>,
    data: NonNull<u8>,
    pub(super) dims: Dims,
    /// The segment's wake protocol (its header's).
    protocol: wait::WakeProtocol,
}

// SAFETY: the pointers point into `region`, which the Ring keeps alive and which is
// Send + Sync; the Ring itself has no thread affinity.
unsafe impl Send for Ring {}

impl Ring {
    pub(super) fn new(region: Arc<Region>) -> Result<Ring> {
        let dims = Dims::from_geometry(region.geometry())?;
        Ok(Ring {
            protocol: region.geometry().wake,
            ctl: NonNull::from(region.control::<SpscControl>()),
            data: region.data(),
            dims,
            region,
        })
    }

    /// The words of wake-ups from the producer to a sleeping consumer.
    fn data_words(&self) -> WakeWords<'_> {
        let p = &self.ctl().peers;
        WakeWords {
            flag: &p.data_ready,
            light: &p.producer_light,
            sleeps: &p.data_sleeps,
        }
    }

    /// The words of wake-ups from the consumer to a sleeping producer.
    fn space_words(&self) -> WakeWords<'_> {
        let p = &self.ctl().peers;
        WakeWords {
            flag: &p.space_ready,
            light: &p.consumer_light,
            sleeps: &p.space_sleeps,
        }
    }

    pub(super) fn region(&self) -> &Region {
        &self.region
    }

    #[inline]
    pub(super) fn ctl(&self) -> &SpscControl {
        // SAFETY: points into `self.region`'s control block, alive as long as self.
        unsafe { self.ctl.as_ref() }
    }

    /// The record header at ring offset `off`.
    #[inline]
    fn header(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off + 8 <= self.dims.ring && off % self.dims.unit == 0);
        // SAFETY: off + 8 <= ring = data_len (callers pass their own read or write
        // offset, 0, or an offset reduced modulo ring from a unit-aligned position,
        // all unit-aligned and below ring by construction); the data region is
        // LINE-aligned, so the word is aligned; the region lives as long as self.
        // The word is payload in other laps: those plain accesses are ordered with
        // the header accesses by the sync points "publish batch" and "free space"
        // (module docs), since a place is only reused after its previous record was
        // released and only read after it was published.
        unsafe { crate::sync::region_word(self.region.shadow(), self.data.as_ptr(), off) }
    }

    /// The elements of a record whose header is at `header_off`.
    #[inline]
    fn payload<T>(&self, header_off: usize, len: usize) -> NonNull<T> {
        debug_assert!(header_off + self.dims.record(len) <= self.dims.ring);
        // SAFETY: the record lies inside the ring (callers validated it), and the
        // payload starts `unit` bytes into it; unit >= align_of::<T>() and offsets
        // are unit-aligned, so the pointer is aligned for T.
        unsafe { self.data.add(header_off + self.dims.unit).cast::<T>() }
    }
}

/// What a walk over the published records found (`walk`).
struct Walked {
    /// Position of the first empty header: the end of the published records.
    end: u64,
    /// Records from the start of the walk to `end`.
    records: u64,
    /// Those of them that start at or after the walk's `mark`.
    beyond: u64,
}

/// Follow the published records from `head` to the first empty header. Every
/// header is validated, and the walk stays within one ring of `head`, so it ends
/// after at most `ring / unit` steps whatever the segment holds.
fn walk(ring: &Ring, head: u64, mark: u64) -> Result<Walked> {
    let d = ring.dims;
    let corrupted = || Error::corrupted("spsc published records are damaged");
    let mut w = Walked {
        end: head,
        records: 0,
        beyond: 0,
    };
    loop {
        let off = (w.end % d.ring as u64) as usize;
        // Acquire pairs with the "publish batch" store of whichever producer wrote
        // this header.
        let word = ring.header(off).load(Ordering::Acquire);
        let advance = match word {
            EMPTY => return Ok(w),
            WRAP if off == 0 => return Err(corrupted()),
            WRAP => d.ring - off,
            h if h - 1 > d.max_batch as u64 => return Err(corrupted()),
            h => {
                w.records += 1;
                w.beyond += u64::from(w.end >= mark);
                d.record((h - 1) as usize)
            }
        };
        if off + advance > d.ring {
            return Err(corrupted());
        }
        w.end += advance as u64;
        // Keep the unit for the empty header free, as a live producer does.
        if w.end - head + d.unit as u64 > d.ring as u64 {
            return Err(corrupted());
        }
    }
}

/// Where a claimed record goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    /// Offset of the record's header.
    off: usize,
    /// Offset of a wrap marker to write first, if the record wraps.
    wrap_at: Option<usize>,
}

/// The producer's side of the ring, in process-local memory.
#[derive(Debug)]
pub(super) struct Producer {
    /// Bytes published (our copy of `tail`).
    tail: u64,
    /// `tail % ring`: where the next record starts.
    off: usize,
    /// Last `head` we loaded; `tail - head_cache` bounds the used bytes.
    head_cache: u64,
    /// Batches published (our copy of `sent`).
    sent: u64,
    /// How we wake a sleeping consumer.
    waker: Waker,
}

impl Producer {
    /// Take over the ring where the previous producer left it.
    ///
    /// A producer that died between publishing a record's header and storing
    /// `tail` left published records after `tail`; writing over them would corrupt
    /// what the consumer reads. Records are followed by an empty header (module
    /// docs), so the end is the first empty header after `head`. `sent` is then
    /// recounted: the consumer's count plus the records waiting, or the stored
    /// count plus the records after the stored `tail`, whichever is larger (each
    /// can only fall short, the first while the consumer releases, the second
    /// after a producer died between storing `tail` and `sent`).
    pub(super) fn attach(ring: &Ring) -> Result<Producer> {
        let ctl = ring.ctl();
        // Acquire pairs with the consumer's Release store of received, which
        // follows its "free space" store of head: the head loaded next is at
        // least the one that count goes with.
        let received = ctl.consumer.received.load(Ordering::Acquire);
        // Sync point "free space", as in `claim`.
        let head = ctl.consumer.head.load(Ordering::Acquire);
        // A mark for counting only (the walk reads the headers). Our side's
        // words, last stored by the previous producer: Acquire pairs with its
        // Release stores (in `publish`, or here), for a predecessor that died
        // without the detach that our attach would have acquired.
        let tail = ctl.producer.tail.load(Ordering::Acquire);
        let sent = ctl.producer.sent.load(Ordering::Acquire);
        check_positions(head, tail, &ring.dims)?;
        let w = walk(ring, head, tail)?;
        let sent = sent
            .wrapping_add(w.beyond)
            .max(received.wrapping_add(w.records));
        // Tell sleeping consumers, `len` and `inspect` (a no-op unless a producer
        // died between publishing a record and storing these).
        ctl.producer.tail.store(w.end, Ordering::Release);
        ctl.producer.sent.store(sent, Ordering::Release);
        Ok(Producer {
            off: (w.end % ring.dims.ring as u64) as usize,
            tail: w.end,
            head_cache: head,
            sent,
            waker: Waker::attach(ring.protocol, ring.data_words()),
        })
    }

    /// Where a record of `len` elements goes from our write offset: its header's
    /// offset, a wrap marker's if it wraps, and the bytes it takes (with the wrap
    /// gap and the empty header after it, module docs).
    #[inline(always)]
    fn place(&self, d: &Dims, len: usize) -> (usize, Option<usize>, u64) {
        let rec = d.record(len);
        let (off, wrap_at, need) = if self.off + rec <= d.ring {
            (self.off, None, rec)
        } else {
            (0, Some(self.off), d.ring - self.off + rec)
        };
        (off, wrap_at, (need + d.unit) as u64)
    }

    /// Find room for a record of `len <= max_batch` elements, without waiting.
    /// Only `Full` and `Corrupted` can come back.
    #[inline(always)]
    pub(super) fn claim(&mut self, ring: &Ring, len: usize) -> Result<Claim, TrySendError> {
        let d = ring.dims;
        let (off, wrap_at, need) = self.place(&d, len);
        if self.tail - self.head_cache + need > d.ring as u64 {
            // Sync point "free space": Acquire pairs with the consumer's Release
            // store of head in `Consumer::release`; the space it frees is ours
            // after this.
            let head = ring.ctl().consumer.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(head) > d.ring as u64 {
                return Err(TrySendError::Corrupted {
                    reason: "consumer position is ahead of the producer or too far behind",
                });
            }
            self.head_cache = head;
            if self.tail - head + need > d.ring as u64 {
                return Err(TrySendError::Full);
            }
        }
        let shadow = ring.region.shadow();
        if let Some(w) = wrap_at {
            shadow.write(w, d.unit);
        }
        shadow.write(off, d.record(len));
        Ok(Claim { off, wrap_at })
    }

    /// The elements of a claimed record of `len` elements.
    #[inline]
    pub(super) fn payload<T>(ring: &Ring, claim: &Claim, len: usize) -> NonNull<T> {
        ring.payload(claim.off, len)
    }

    /// Write the record's header (and wrap marker) and publish it.
    #[inline(always)]
    pub(super) fn publish(&mut self, ring: &Ring, claim: Claim, len: usize) {
        let d = ring.dims;
        let rec = d.record(len);
        let next = if claim.off + rec == d.ring {
            0
        } else {
            claim.off + rec
        };
        ring.region.shadow().write(next, 8);
        // The place of the next record reads empty until we publish there. It is
        // ours: the claim included one unit after the record. Relaxed: the Release
        // store below publishes it with the record.
        ring.header(next).store(EMPTY, Ordering::Relaxed);
        let header = len as u64 + 1;
        let mut advance = rec;
        match claim.wrap_at {
            None => {
                // Sync point "publish batch": Release pairs with the consumer's
                // Acquire load of this header in `Consumer::look`.
                ring.header(claim.off).store(header, Ordering::Release);
            }
            Some(w) => {
                // The consumer reaches offset 0 only through the marker at w.
                ring.header(claim.off).store(header, Ordering::Relaxed);
                // Sync point "publish batch": Release pairs with the consumer's
                // Acquire load of the marker in `Consumer::look`, after which the
                // header at 0, the record and the empty header are visible.
                ring.header(w).store(WRAP, Ordering::Release);
                advance += d.ring - w;
            }
        }
        self.off = next;
        self.tail += advance as u64;
        self.sent = self.sent.wrapping_add(1);
        let ctl = ring.ctl();
        // For attaching handles, sleeping consumers (K1 of the wake protocol,
        // wait.rs), `len` and inspect; Release pairs with their Acquire/SeqCst
        // loads (`Consumer::check_tail`, `Consumer::attach`, `Consumer::len`).
        ctl.producer.tail.store(self.tail, Ordering::Release);
        ctl.producer.sent.store(self.sent, Ordering::Release);
        self.waker.wake(ring.data_words());
    }

    /// Whether a record of `len` elements would not fit now.
    pub(super) fn lacks_room(&self, ring: &Ring, len: usize) -> bool {
        let d = ring.dims;
        let (_, _, need) = self.place(&d, len);
        // Pairs with the consumer's "free space" store, as in `claim`.
        let head = ring.ctl().consumer.head.load(Ordering::Acquire);
        let used = self.tail.wrapping_sub(head);
        used > d.ring as u64 || used + need > d.ring as u64
    }

    /// Whether the consumer has released every batch we published.
    pub(super) fn is_empty(&self, ring: &Ring) -> bool {
        // Pairs with the consumer's "free space" store, as in `claim`.
        ring.ctl().consumer.head.load(Ordering::Acquire) == self.tail
    }

    /// Batches published and not yet released (module docs, "Batch counts").
    /// Batches published on this ring since it was created (by every producer).
    pub(super) fn sent(&self) -> u64 {
        self.sent
    }

    pub(super) fn len(&self, ring: &Ring) -> usize {
        // Acquire pairs with the consumer's Release store in `Consumer::release`.
        let received = ring.ctl().consumer.received.load(Ordering::Acquire);
        ring.dims.waiting(self.sent, received)
    }

    /// Sleep at most `slice` for the consumer to free space, unless it already
    /// has or `peer_attached` says it left.
    pub(super) fn sleep(&self, ring: &Ring, slice: Duration, peer_attached: impl FnOnce() -> bool) {
        let ctl = ring.ctl();
        let seen = self.head_cache;
        wait::sleep(
            ring.space_words(),
            // W2 (wait.rs): pairs with K1, the consumer's store of head in
            // `Consumer::release` or its detach store (`peer_attached`).
            || ctl.consumer.head.load(Ordering::SeqCst) != seen || !peer_attached(),
            slice,
        );
    }
}

/// A batch found in the ring by `Consumer::look`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peeked {
    /// Offset of the record's header.
    off: usize,
    pub(super) len: usize,
    /// Bytes to release (record plus any wrap gap).
    advance: usize,
    /// Read offset after release.
    next_off: usize,
}

/// The consumer's side of the ring, in process-local memory.
#[derive(Debug)]
pub(super) struct Consumer {
    /// Bytes released (our copy of `head`).
    head: u64,
    /// `head % ring`: where the next record starts.
    off: usize,
    /// Batches released (our copy of `received`).
    received: u64,
    /// How we wake a sleeping producer.
    waker: Waker,
}

impl Consumer {
    /// Take over the ring where the previous consumer left it. `received` is
    /// recounted: the producer's count less the records waiting, or the stored
    /// count, whichever is larger (each can only fall short: the first while the
    /// producer publishes, the second after a consumer died between storing
    /// `head` and `received`). Damage found here is left for `look` to report.
    pub(super) fn attach(ring: &Ring) -> Result<Consumer> {
        let ctl = ring.ctl();
        // Our side's words, last stored by the previous consumer: Acquire pairs
        // with its Release stores ("free space" and the count after it), for a
        // predecessor that died without the detach that our attach would have
        // acquired.
        let head = ctl.consumer.head.load(Ordering::Acquire);
        let received = ctl.consumer.received.load(Ordering::Acquire);
        // Checked for sanity only (records are read through their headers).
        let tail = ctl.producer.tail.load(Ordering::Relaxed);
        check_positions(head, tail, &ring.dims)?;
        // Acquire pairs with the producer's Release store of sent in
        // `Producer::publish`: the records it counts are visible to the walk.
        let sent = ctl.producer.sent.load(Ordering::Acquire);
        let received = match walk(ring, head, head) {
            Ok(w) => received.max(sent.saturating_sub(w.records)),
            Err(_) => received,
        };
        // Release pairs with the Acquire loads in `Producer::len` and `attach`.
        ctl.consumer.received.store(received, Ordering::Release);
        Ok(Consumer {
            off: (head % ring.dims.ring as u64) as usize,
            head,
            received,
            waker: Waker::attach(ring.protocol, ring.space_words()),
        })
    }

    /// Read the header at our offset: the batch there, or `None` if nothing is
    /// published yet. The header is loaded once and validated before use.
    #[inline(always)]
    pub(super) fn look(&self, ring: &Ring) -> Result<Option<Peeked>, TryRecvError> {
        let d = ring.dims;
        let corrupted = |reason| Err(TryRecvError::Corrupted { reason });
        let mut off = self.off;
        let mut skip = 0;
        // Sync point "publish batch": Acquire pairs with the producer's Release
        // store of this header (or wrap marker) in `Producer::publish`; the record
        // is visible after this.
        let mut word = ring.header(off).load(Ordering::Acquire);
        if word == EMPTY {
            return Ok(None);
        }
        if word == WRAP {
            skip = d.ring - off;
            off = 0;
            // Relaxed: stored before the marker, whose Acquire load above made it
            // visible (sync point "publish batch").
            word = ring.header(0).load(Ordering::Relaxed);
            if word == EMPTY || word == WRAP || skip == d.ring {
                return corrupted("wrap marker without a batch after it");
            }
        }
        let len = word - 1;
        if len > d.max_batch as u64 {
            return corrupted("batch length exceeds the maximum");
        }
        let len = len as usize;
        let rec = d.record(len);
        if off + rec > d.ring {
            return corrupted("batch extends past the end of the ring");
        }
        let shadow = ring.region.shadow();
        shadow.read(self.off, 8);
        shadow.write(off, rec);
        Ok(Some(Peeked {
            off,
            len,
            advance: skip + rec,
            next_off: if off + rec == d.ring { 0 } else { off + rec },
        }))
    }

    /// The elements of a batch that `look` found.
    #[inline]
    pub(super) fn payload<T>(ring: &Ring, p: &Peeked) -> NonNull<T> {
        ring.payload(p.off, p.len)
    }

    /// Check the producer's `tail` against what we see, on the slow paths only:
    /// `tail` is not needed to receive, but sleeping trusts it. Only `Corrupted`
    /// can come back.
    pub(super) fn check_tail(&self, ring: &Ring) -> Result<(), TryRecvError> {
        // Acquire pairs with the producer's Release store of tail in
        // `Producer::publish`: every header published before it is visible now.
        let tail = ring.ctl().producer.tail.load(Ordering::Acquire);
        let ahead = tail.wrapping_sub(self.head);
        // A tail behind us is harmless (a new producer is still looking for the end
        // of what a dead one published); one that is ahead must have a batch here.
        if ahead <= 1 << 63 && ahead != 0 {
            if ahead > ring.dims.ring as u64 {
                return Err(TryRecvError::Corrupted {
                    reason: "producer position is too far ahead",
                });
            }
            if self.look(ring)?.is_none() {
                return Err(TryRecvError::Corrupted {
                    reason: "producer position is ahead of the published batches",
                });
            }
        }
        Ok(())
    }

    /// Give the space of a received batch back to the producer.
    #[inline]
    pub(super) fn release(&mut self, ring: &Ring, p: &Peeked) {
        ring.region.shadow().write(p.off, ring.dims.record(p.len));
        self.head += p.advance as u64;
        self.off = p.next_off;
        self.received = self.received.wrapping_add(1);
        let ctl = ring.ctl();
        // Sync point "free space": Release pairs with the producer's Acquire load
        // of head in `Producer::claim` (our reads and in-place writes of the batch
        // happen before it reuses the space). K1 of the wake protocol; `wake`
        // supplies its barrier (wait.rs).
        ctl.consumer.head.store(self.head, Ordering::Release);
        // Pairs with the Acquire loads in `Producer::len` and `Producer::attach`.
        ctl.consumer
            .received
            .store(self.received, Ordering::Release);
        self.waker.wake(ring.space_words());
    }

    /// Whether no batch is published at our offset (what `look` would see).
    pub(super) fn is_empty(&self, ring: &Ring) -> bool {
        // Pairs with the producer's "publish batch" store, as in `look`.
        ring.header(self.off).load(Ordering::Acquire) == EMPTY
    }

    /// Batches published and not yet released (module docs, "Batch counts").
    /// Batches released on this ring since it was created (by every consumer).
    pub(super) fn received(&self) -> u64 {
        self.received
    }

    pub(super) fn len(&self, ring: &Ring) -> usize {
        // Acquire pairs with the producer's Release store in `Producer::publish`.
        let sent = ring.ctl().producer.sent.load(Ordering::Acquire);
        ring.dims.waiting(sent, self.received)
    }

    /// Sleep at most `slice` for the producer to publish, unless it already has
    /// or `peer_attached` says it left.
    pub(super) fn sleep(&self, ring: &Ring, slice: Duration, peer_attached: impl FnOnce() -> bool) {
        let header = ring.header(self.off);
        wait::sleep(
            ring.data_words(),
            // W2 (wait.rs): pairs with K1, the producer's store of the header (or
            // wrap marker) at our offset in `Producer::publish`, or its detach
            // store (`peer_attached`).
            || header.load(Ordering::SeqCst) != EMPTY || !peer_attached(),
            slice,
        );
    }
}
