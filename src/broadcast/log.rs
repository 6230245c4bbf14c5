//! The broadcast log over a [`Region`]: the publisher's claim and publish, a
//! subscriber's join, look, check and release, and the lossless publisher's
//! gating on the slowest subscriber (with reaping and eviction). Pure logic over
//! the words of `wire.rs`; the handles (`publisher.rs`, `subscriber.rs`) decide
//! when to wait. Both ends of every Release/Acquire pair are in this file.
//!
//! # Records
//! Positions count bytes since creation and never wrap (2^64). A record at
//! position `p` lies at offset `p % ring`: a header of `unit` bytes — the seq word
//! `n + 1` for batch `n` and the len word — then the elements. A record that does
//! not fit before the end of the log is preceded by a wrap marker (len word
//! [`WRAP`], seq word that of the batch) and starts at offset 0. Before it
//! publishes a record, the publisher writes the header after it as
//! `PENDING | (n + 2)`: the header at the frontier always says "batch `n + 1`
//! comes here, not yet", so a subscriber polls one header, never the publisher's
//! line, and a joining subscriber learns the number of the next batch from it.
//!
//! # Sync points
//! - "publish batch": the publisher writes the elements, the pending header after
//!   them and the len word, then stores the seq word with Release
//!   (`Pub::publish`, writer.rs); a subscriber loads it with Acquire
//!   (`Sub::look`, reader.rs).
//! - "claim" (the seqlock of lossy reads): before it writes any byte at position
//!   `x` of a lap, the publisher has stored `claim > x` and then issued a Release
//!   fence (`Pub::announce`). It announces a sixteenth of the log at a time, so
//!   the claim's line changes once per sixteenth, not per batch. A subscriber
//!   that read a record at `p` issues an Acquire fence and loads `claim`
//!   (`Sub::intact`): if any byte it read came from a write of a later lap, that
//!   write follows the fence, so the load sees `claim > p + ring` and the read is
//!   discarded. If `claim <= p + ring`, no byte of `[p, p + ring)` had been
//!   overwritten when it read. This is the classic seqlock argument (as in
//!   `array/lock.rs`), with one caveat: the elements are copied with plain memory
//!   accesses, so a lapped read races with the overwrite in the abstract
//!   machine's terms; its bytes are never used.
//! - "oldest": the publisher stores `oldest` (Release) before the `claim` that
//!   goes past it; a subscriber that saw that claim (Acquire) then loads `oldest`
//!   at least that new, and finds there a record that claim left intact.
//! - "free space" (lossless): a subscriber stores its entry's `pos` with Release
//!   after it is done with a batch; the publisher loads it (SeqCst) before it
//!   lets `claim` pass it (`Pub::make_room`).
//! - "join" (lossless): a joining subscriber raises `used` past its entry,
//!   stores its position, activates its entry, bumps `joins`, then loads `claim`
//!   (all SeqCst). The publisher loads `joins`, scans the entries below `used`,
//!   stores its new `claim`, and loads `joins` again. In the single total order
//!   of these: if the bump precedes the first load of `joins`, the scan sees the
//!   entry; if it falls between the two loads, the publisher scans again and
//!   takes back what the subscriber needs; if it follows the second, the
//!   subscriber sees the new claim and joins further on (`Sub::settle`).

//! # Wake-ups
//! Publisher to subscribers: the segment's [`crate::WakeProtocol`] (the header's
//! flags, as for SPSC; adaptive by default), with the publisher as the one
//! waker of the `data` words and every subscriber a sleeper on them: while the
//! publisher publishes without fences it says so in `data_light`, and a
//! subscriber runs the heavy barrier before it sleeps (wait.rs). Subscribers to
//! the publisher (lossless): each entry has its own space words, whose one
//! waker is its subscriber, with the same protocol; the publisher sleeps on the
//! words of the subscriber that holds it back.

use std::ptr::NonNull;

use super::wire::{BroadcastControl, Config, Dims, Entry, MAX_SUBSCRIBERS, PENDING};
use crate::segment::{ProcId, Region};
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::wait::WakeWords;
use crate::Result;

/// Where a subscriber joins the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// At the next batch published after it joined.
    #[default]
    Next,
    /// At the oldest batch the log still holds.
    Oldest,
}

/// The log of one segment, as every handle sees it.
pub(super) struct Log {
    pub(super) region: Arc<Region>,
    ctl: NonNull<BroadcastControl>,
    data: NonNull<u8>,
    pub(super) dims: Dims,
    pub(super) config: Config,
}

// SAFETY: the pointers point into `region`, which the Log keeps alive and which is
// Send + Sync; every shared word is an atomic.
unsafe impl Send for Log {}
// SAFETY: as above: shared access goes through atomics only.
unsafe impl Sync for Log {}

/// A record header as loaded: the seq word and the len word.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header<'a> {
    pub(super) seq: &'a AtomicU64,
    pub(super) len: &'a AtomicU64,
}

impl Log {
    pub(super) fn new(region: Arc<Region>) -> Result<Log> {
        let dims = Dims::from_geometry(region.geometry())?;
        let ctl = NonNull::from(region.control::<BroadcastControl>());
        // SAFETY: points into the region's control block, alive with `region`.
        let config = Config::read(&unsafe { ctl.as_ref() }.shared)?;
        Ok(Log {
            ctl,
            data: region.data(),
            dims,
            config,
            region,
        })
    }

    pub(super) fn region(&self) -> &Region {
        &self.region
    }

    #[inline]
    pub(super) fn ctl(&self) -> &BroadcastControl {
        // SAFETY: points into `self.region`'s control block, alive as long as self.
        unsafe { self.ctl.as_ref() }
    }

    /// Write the configuration and the first pending header of a new log (the
    /// creator, before the segment is published).
    pub(super) fn init(region: &Region, config: Config) {
        let ctl = region.control::<BroadcastControl>();
        let s = &ctl.shared;
        s.policy.store(u64::from(config.lossy), Ordering::Relaxed);
        let ns = config.evict_after.map_or(0, |d| d.as_nanos() as u64);
        s.evict_after_ns.store(ns, Ordering::Relaxed);
        // SAFETY: offset 0 of a data region of at least 2 * unit >= 32 bytes.
        let seq = unsafe { crate::sync::region_word(region.shadow(), region.data().as_ptr(), 0) };
        seq.store(PENDING | 1, Ordering::Relaxed);
        // The header publish (Release) orders these before any opener's reads.
    }

    #[inline]
    pub(super) fn header(&self, off: usize) -> Header<'_> {
        debug_assert!(off + self.dims.unit <= self.dims.ring && off % self.dims.unit == 0);
        // SAFETY: off + 16 <= off + unit <= ring = data_len (callers reduce
        // unit-aligned positions modulo ring, or pass 0), and the data region is
        // LINE-aligned, so both words are aligned and inside. In other laps the
        // words are payload: plain accesses to them are ordered with these atomics
        // by the sync points (module docs), except a lapped lossy read, whose
        // result is discarded.
        unsafe {
            let base = self.data.as_ptr();
            Header {
                seq: crate::sync::region_word(self.region.shadow(), base, off),
                len: crate::sync::region_word(self.region.shadow(), base, off + 8),
            }
        }
    }

    /// Whether a subscriber's read may race with the publisher's overwrite: lossy
    /// logs, and lossless logs that evict. Their elements are written and copied
    /// as 8-byte `Relaxed` atomic words ([`store_words`](Self::store_words),
    /// [`load_words`](Self::load_words)), so that a lapped or evicted reader's
    /// copy races with nothing in the memory model's terms, and the seqlock
    /// argument of sync point "claim" holds as stated.
    pub(super) fn racy(&self) -> bool {
        self.config.lossy || self.config.evict_after.is_some()
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        // SAFETY: callers pass 8-aligned offsets of words inside a record inside
        // the log (see store_words); racy logs access the elements only through
        // these atomics.
        unsafe { crate::sync::region_word(self.region.shadow(), self.data.as_ptr(), off) }
    }

    /// Racy logs: write `bytes` bytes from `src` as the elements of the record at
    /// `off` (validated: `off + record(len) <= ring` with `bytes <= len * elem`),
    /// word by word. The last word is padded with zeros, inside the record's
    /// padding (records are a multiple of `unit >= 16`).
    ///
    /// # Safety
    /// `src` must be valid for `bytes` bytes of reads.
    pub(super) unsafe fn store_words(&self, off: usize, src: *const u8, bytes: usize) {
        let base = off + self.dims.unit;
        let mut i = 0;
        while i < bytes {
            let n = (bytes - i).min(8);
            let mut w = [0u8; 8];
            // SAFETY: i + n <= bytes (caller: readable).
            unsafe { std::ptr::copy_nonoverlapping(src.add(i), w.as_mut_ptr(), n) };
            self.word(base + i)
                .store(u64::from_ne_bytes(w), Ordering::Relaxed);
            i += 8;
        }
    }

    /// Racy logs: read `bytes` bytes of the elements of the record at `off` into
    /// `dst`, word by word (the inverse of `store_words`).
    ///
    /// # Safety
    /// `dst` must be valid for `bytes` bytes of writes.
    pub(super) unsafe fn load_words(&self, off: usize, dst: *mut u8, bytes: usize) {
        let base = off + self.dims.unit;
        let mut i = 0;
        while i < bytes {
            let n = (bytes - i).min(8);
            let w = self.word(base + i).load(Ordering::Relaxed).to_ne_bytes();
            // SAFETY: i + n <= bytes (caller: writable).
            unsafe { std::ptr::copy_nonoverlapping(w.as_ptr(), dst.add(i), n) };
            i += 8;
        }
    }

    /// The elements of a record whose header is at `off` (validated by callers to
    /// lie inside the log).
    #[inline]
    pub(super) fn payload<T>(&self, off: usize) -> NonNull<T> {
        // SAFETY: off + unit <= ring (callers); unit >= align_of::<T>().
        unsafe { self.data.add(off + self.dims.unit).cast() }
    }

    pub(super) fn offset(&self, pos: u64) -> usize {
        (pos % self.dims.ring as u64) as usize
    }

    pub(super) fn entry(&self, i: usize) -> &Entry {
        &self.ctl().entries[i]
    }

    /// The words of wake-ups from the publisher to sleeping subscribers.
    pub(super) fn data_words(&self) -> WakeWords<'_> {
        let s = &self.ctl().shared;
        WakeWords {
            flag: &s.data_ready,
            light: &s.data_light,
            sleeps: &s.data_sleeps,
        }
    }

    /// The words of wake-ups from subscriber `index` to a publisher sleeping
    /// until it frees room.
    pub(super) fn space_words(&self, index: usize) -> WakeWords<'_> {
        let s = self.entry(index);
        WakeWords {
            flag: &s.space_ready,
            light: &s.space_light,
            sleeps: &s.space_sleeps,
        }
    }

    /// Whether the publisher has gone: dropped, or (with `check_pid`, a system
    /// call) dead.
    pub(super) fn publisher_gone(&self, check_pid: bool) -> bool {
        let s = &self.ctl().shared;
        // Acquire pairs with the publisher's SeqCst store in `close`: everything it
        // published is visible after this.
        if s.closed.load(Ordering::Acquire) != 0 {
            return true;
        }
        let owner = s.owner.load(Ordering::Acquire);
        check_pid && owner != 0 && !ProcId::unpack(owner).alive()
    }

    /// Active subscribers (a report).
    pub(super) fn subscribers(&self) -> usize {
        let n = self.ctl().shared.subscribers.load(Ordering::Relaxed);
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(MAX_SUBSCRIBERS)
    }

    /// Number of batches published so far (a report).
    pub(super) fn published(&self) -> u64 {
        self.ctl().publisher.seq.load(Ordering::Acquire)
    }
}
