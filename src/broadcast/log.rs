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
//!   (`Log::publish`); a subscriber loads it with Acquire (`Log::look`).
//! - "claim" (the seqlock of lossy reads): before it writes any byte at position
//!   `x` of a lap, the publisher has stored `claim > x` with Release and then
//!   issued a Release fence (`Log::announce`). A subscriber that read a record at
//!   `p` issues an Acquire fence and loads `claim` (`Log::intact`): if any byte it
//!   read came from a write of a later lap, that write follows the fence, so the
//!   load sees `claim > p + ring` and the read is discarded. If `claim <= p + ring`,
//!   no byte of `[p, p + ring)` had been overwritten when it read. This is the
//!   classic seqlock argument (as in `array/lock.rs`), with one caveat: the
//!   elements are copied with plain memory accesses, so a lapped read races with
//!   the overwrite in the abstract machine's terms; its bytes are never used.
//! - "oldest": the publisher stores `oldest` (Release) before the `claim` that
//!   goes past it; a subscriber that saw that claim (Acquire) then loads `oldest`
//!   at least that new.
//! - "free space" (lossless): a subscriber stores its entry's `pos` with Release
//!   after it is done with a batch; the publisher loads it with Acquire (SeqCst)
//!   before it lets `claim` pass it.
//! - "join" (lossless): a joining subscriber stores its entry (SeqCst) and then
//!   loads `claim` (SeqCst); the publisher stores `claim` (SeqCst) and then scans
//!   the entries again (SeqCst). In the single total order of these, either the
//!   publisher's scan sees the new entry (and takes back the part of the claim it
//!   may not have), or the subscriber sees the claim (and joins further on).
//!
//! # Wake-ups
//! Both directions use the symmetric wake protocol (wait.rs): a fence per publish
//! and per lossless release, then a look at the futex word.

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::wire::{
    BroadcastControl, Config, Dims, Entry, Owner, ACTIVE, EVICTED, FREE, MAX_SUBSCRIBERS, PENDING,
    WRAP,
};
use crate::segment::{ProcId, Region};
use crate::sync::{fence, Arc, AtomicU64, Ordering};
use crate::wait::{self, WakeProtocol, WakeWords, Waker};
use crate::{Error, Result};

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
    region: Arc<Region>,
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
struct Header<'a> {
    seq: &'a AtomicU64,
    len: &'a AtomicU64,
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
    fn header(&self, off: usize) -> Header<'_> {
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

    /// The elements of a record whose header is at `off` (validated by callers to
    /// lie inside the log).
    #[inline]
    pub(super) fn payload<T>(&self, off: usize) -> NonNull<T> {
        // SAFETY: off + unit <= ring (callers); unit >= align_of::<T>().
        unsafe { self.data.add(off + self.dims.unit).cast() }
    }

    fn offset(&self, pos: u64) -> usize {
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

    /// The words of wake-ups from subscribers to a sleeping publisher.
    pub(super) fn space_words(&self) -> WakeWords<'_> {
        let s = &self.ctl().shared;
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

// ---------------------------------------------------------------------------
// The publisher
// ---------------------------------------------------------------------------

/// Where a claimed record goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    off: usize,
    wrap_at: Option<usize>,
}

impl Claim {
    pub(super) fn off(&self) -> usize {
        self.off
    }
}

/// What holds a lossless publisher back: an entry, its owner and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Blocker {
    index: usize,
    owner: u64,
    pos: u64,
}

/// The publisher's side of the log, in process-local memory.
pub(super) struct Pub {
    tail: u64,
    off: usize,
    seq: u64,
    /// Our copy of `claim`.
    claim: u64,
    /// Our copy of `oldest`.
    oldest: u64,
    /// Lossless: the entry that held us back last, and since when (eviction).
    pub(super) blocked: Option<(Blocker, Instant)>,
    waker: Waker,
}

impl std::fmt::Debug for Pub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pub")
            .field("tail", &self.tail)
            .field("seq", &self.seq)
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

/// Why a claim did not succeed.
#[derive(Debug)]
pub(super) enum ClaimMiss {
    /// Lossless: an active subscriber holds the space (it is named).
    Full(Blocker),
    Corrupted(&'static str),
}

impl Pub {
    /// The publisher of a new log (it is created with its publisher).
    pub(super) fn attach(log: &Log) -> Pub {
        let s = &log.ctl().shared;
        // Release: a subscriber that reads our pid reads the configuration too.
        s.owner.store(ProcId::me().pack(), Ordering::Release);
        let claim = if log.config.lossy {
            0
        } else {
            log.dims.ring as u64
        };
        // Lossless: nobody is subscribed yet, so one ring is ours to write.
        log.ctl().publisher.claim.store(claim, Ordering::SeqCst);
        Pub {
            tail: 0,
            off: 0,
            seq: 0,
            claim,
            oldest: 0,
            blocked: None,
            waker: Waker::attach(WakeProtocol::Symmetric, log.data_words()),
        }
    }

    /// Where a record of `len` elements goes from our offset, and the position
    /// just past it and the pending header after it.
    fn place(&self, d: &Dims, len: usize) -> (usize, Option<usize>, u64) {
        let rec = d.record(len);
        let (off, wrap_at, need) = if self.off + rec <= d.ring {
            (self.off, None, rec)
        } else {
            (0, Some(self.off), d.ring - self.off + rec)
        };
        (off, wrap_at, self.tail + (need + d.unit) as u64)
    }

    /// Claim room for a record of `len <= max_batch` elements, without waiting.
    #[inline]
    pub(super) fn claim(&mut self, log: &Log, len: usize) -> Result<Claim, ClaimMiss> {
        let d = log.dims;
        let (off, wrap_at, end) = self.place(&d, len);
        if log.config.lossy {
            self.announce(log, end)?;
        } else if end > self.claim {
            self.make_room(log, end)?;
        }
        let shadow = log.region.shadow();
        if let Some(w) = wrap_at {
            shadow.write(w, d.unit);
        }
        shadow.write(off, d.record(len));
        Ok(Claim { off, wrap_at })
    }

    /// Lossy: move `oldest` past what the record ending at `end` overwrites, then
    /// store the claim (sync points "oldest" and "claim").
    #[inline]
    fn announce(&mut self, log: &Log, end: u64) -> Result<(), ClaimMiss> {
        let p = &log.ctl().publisher;
        let ring = log.dims.ring as u64;
        if end > self.oldest + ring {
            self.advance_oldest(log, end - ring)?;
            // Sync point "oldest": before the claim below.
            p.oldest.store(self.oldest, Ordering::Release);
        }
        self.claim = end;
        // Sync point "claim": the Release fence orders this store before every
        // byte we write next.
        p.claim.store(end, Ordering::Release);
        fence(Ordering::Release);
        Ok(())
    }

    /// Move our `oldest` to the first record boundary at or after `to` (at most
    /// `tail`), following our own headers, which are validated like any other.
    fn advance_oldest(&mut self, log: &Log, to: u64) -> Result<(), ClaimMiss> {
        let d = log.dims;
        let to = to.min(self.tail);
        let damaged = ClaimMiss::Corrupted("broadcast log records are damaged");
        while self.oldest < to {
            let off = log.offset(self.oldest);
            let h = log.header(off);
            // Relaxed: our own stores.
            let len = h.len.load(Ordering::Relaxed);
            let advance = if len == WRAP {
                if off == 0 {
                    return Err(damaged);
                }
                d.ring - off
            } else if len > d.max_batch as u64 || off + d.record(len as usize) > d.ring {
                return Err(damaged);
            } else {
                d.record(len as usize)
            };
            self.oldest += advance as u64;
        }
        Ok(())
    }

    /// Lossless: let `claim` pass `end` if every active subscriber allows it
    /// (sync points "free space" and "join"); otherwise name the one that holds us
    /// back. Dead and evicted subscribers are not waited for (`reap`).
    fn make_room(&mut self, log: &Log, end: u64) -> Result<(), ClaimMiss> {
        let ring = log.dims.ring as u64;
        let (min, blocker) = self.scan(log)?;
        let limit = min.map_or(end, |m| m + ring).max(self.claim);
        if limit < end {
            return Err(ClaimMiss::Full(
                blocker.expect("a limit below end has a blocker"),
            ));
        }
        self.advance_oldest(log, limit - ring)?;
        let p = &log.ctl().publisher;
        p.oldest.store(self.oldest, Ordering::Release);
        p.claim.store(limit, Ordering::SeqCst);
        // Sync point "join": look again for subscribers that joined behind the
        // limit while we scanned, and take back what they need.
        let (again, blocker) = self.scan(log)?;
        let safe = again
            .map_or(limit, |m| (m + ring).min(limit))
            .max(self.claim);
        if safe < limit {
            p.claim.store(safe, Ordering::SeqCst);
        }
        self.claim = safe;
        if safe < end {
            return Err(ClaimMiss::Full(
                blocker.expect("a limit below end has a blocker"),
            ));
        }
        self.blocked = None;
        Ok(())
    }

    /// The smallest position of an active subscriber, and who has it.
    fn scan(&self, log: &Log) -> Result<(Option<u64>, Option<Blocker>), ClaimMiss> {
        let ring = log.dims.ring as u64;
        let mut min: Option<Blocker> = None;
        for i in 0..MAX_SUBSCRIBERS {
            let e = log.entry(i);
            let owner = e.owner.load(Ordering::SeqCst);
            if Owner(owner).state() != ACTIVE {
                continue;
            }
            // Sync point "free space": SeqCst (so Acquire) pairs with the
            // subscriber's Release store of pos.
            let pos = e.pos.load(Ordering::SeqCst);
            // A subscriber is never ahead of what we published, nor more than a
            // ring behind what we may write.
            if pos > self.tail {
                return Err(ClaimMiss::Corrupted(
                    "a subscriber position is ahead of the publisher",
                ));
            }
            if pos + ring < self.claim {
                // Being overwritten already: a joiner about to move on (sync
                // point "join"), which holds nothing back.
                continue;
            }
            if min.map_or(true, |m| pos < m.pos) {
                min = Some(Blocker {
                    index: i,
                    owner,
                    pos,
                });
            }
        }
        Ok((min.map(|m| m.pos), min))
    }

    /// Lossless, while `blocker` holds us back: free its entry if its process is
    /// dead (`check_pid`, a system call), or evict it if it has not moved for the
    /// eviction timeout. Whether it was removed.
    pub(super) fn reap(&mut self, log: &Log, blocker: Blocker, check_pid: bool) -> bool {
        let e = log.entry(blocker.index);
        let owner = Owner(blocker.owner);
        if check_pid && !owner.proc().alive() {
            // The dead keep their generation; the entry is free for the next.
            let freed = e
                .owner
                .compare_exchange(
                    owner.0,
                    owner.with_state(FREE).0,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                )
                .is_ok();
            if freed {
                let _ = log.ctl().shared.subscribers.fetch_sub(1, Ordering::Relaxed);
            }
            return freed;
        }
        let Some(after) = log.config.evict_after else {
            return false;
        };
        let now = Instant::now();
        match self.blocked {
            Some((b, since)) if b == blocker => {
                if now.duration_since(since) < after {
                    return false;
                }
                self.blocked = None;
                // The subscriber sees EVICTED at its next call (or at once, if it
                // reads meanwhile: the claim that passes it follows this CAS).
                e.owner
                    .compare_exchange(
                        owner.0,
                        owner.with_state(EVICTED).0,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            }
            _ => {
                self.blocked = Some((blocker, now));
                false
            }
        }
    }

    /// How long until `blocker` may be evicted (`None`: never).
    pub(super) fn evict_in(&self, log: &Log, blocker: Blocker) -> Option<Duration> {
        let after = log.config.evict_after?;
        Some(match self.blocked {
            Some((b, since)) if b == blocker => after.saturating_sub(since.elapsed()),
            _ => after,
        })
    }

    /// Write the headers of a claimed record of `len` elements (whose elements are
    /// written) and publish it (sync point "publish batch").
    #[inline]
    pub(super) fn publish(&mut self, log: &Log, claim: Claim, len: usize) {
        let d = log.dims;
        let rec = d.record(len);
        let next = if claim.off + rec == d.ring {
            0
        } else {
            claim.off + rec
        };
        let n = self.seq + 1; // the seq word of this batch
        log.region.shadow().write(next, d.unit);
        // The frontier: "batch n + 1 comes here". Ours: the claim included it.
        log.header(next)
            .seq
            .store(PENDING | (n + 1), Ordering::Relaxed);
        let h = log.header(claim.off);
        h.len.store(len as u64, Ordering::Relaxed);
        let mut advance = rec;
        match claim.wrap_at {
            None => h.seq.store(n, Ordering::Release),
            Some(w) => {
                // Subscribers reach offset 0 only through the marker.
                h.seq.store(n, Ordering::Relaxed);
                let m = log.header(w);
                m.len.store(WRAP, Ordering::Relaxed);
                // Sync point "publish batch", for the marker and all behind it.
                m.seq.store(n, Ordering::Release);
                advance += d.ring - w;
            }
        }
        self.off = next;
        self.tail += advance as u64;
        self.seq = n;
        let p = &log.ctl().publisher;
        // For joining subscribers and reports.
        p.tail.store(self.tail, Ordering::Release);
        p.seq.store(self.seq, Ordering::Release);
        self.waker.wake(log.data_words());
    }

    /// Sleep at most `slice` while `blocker` holds us back, unless it moved.
    pub(super) fn sleep(&self, log: &Log, blocker: Blocker, slice: Duration) {
        let e = log.entry(blocker.index);
        wait::sleep(
            log.space_words(),
            // W2: pairs with a subscriber's release (K1, then its fence and K2)
            // or its detach.
            || {
                e.pos.load(Ordering::SeqCst) != blocker.pos
                    || e.owner.load(Ordering::SeqCst) != blocker.owner
            },
            slice,
        );
    }

    /// The publisher leaves: subscribers drain and then see `Disconnected`.
    pub(super) fn close(&self, log: &Log) {
        log.ctl().shared.closed.store(1, Ordering::SeqCst);
        wait::wake_always(&log.ctl().shared.data_ready);
    }
}

// ---------------------------------------------------------------------------
// A subscriber
// ---------------------------------------------------------------------------

/// A batch found by `Sub::look`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peeked {
    /// Position of the record (past a wrap marker).
    pos: u64,
    pub(super) off: usize,
    pub(super) len: usize,
    /// Position after the record.
    next: u64,
}

/// What a look found besides a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Miss {
    Empty,
    /// Lapped (lossy): `missed` batches were lost; we moved to the oldest.
    Lagged(u64),
    Evicted,
    Corrupted(&'static str),
}

/// A subscriber's side of the log, in process-local memory.
#[derive(Debug)]
pub(super) struct Sub {
    index: usize,
    owner: Owner,
    pos: u64,
    /// The number of our next batch.
    seq: u64,
    missed: u64,
    evicted: bool,
    waker: Waker,
}

impl Sub {
    /// Take a free entry and join at `start`.
    pub(super) fn join(log: &Log, start: Start) -> Result<Sub> {
        let me = ProcId::me();
        for index in 0..MAX_SUBSCRIBERS {
            let e = log.entry(index);
            let old = Owner(e.owner.load(Ordering::Acquire));
            if old.state() != FREE {
                continue;
            }
            // Park the entry as ours but not active, so that the publisher ignores
            // it until its position is right.
            let mine = Owner::new(me, old.gen() + 1, ACTIVE);
            let parked = mine.with_state(EVICTED);
            if e.owner
                .compare_exchange(old.0, parked.0, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let mut sub = Sub {
                index,
                owner: mine,
                pos: 0,
                seq: 0,
                missed: 0,
                evicted: false,
                waker: Waker::attach(WakeProtocol::Symmetric, log.space_words()),
            };
            match sub.settle(log, start, parked) {
                Ok(()) => {
                    let _ = log.ctl().shared.subscribers.fetch_add(1, Ordering::Relaxed);
                    return Ok(sub);
                }
                Err(e) => {
                    let _ = log.entry(index).owner.compare_exchange(
                        sub.owner.0,
                        sub.owner.with_state(FREE).0,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    );
                    return Err(e);
                }
            }
        }
        Err(Error::TooManyAttached {
            name: log.region.name().unwrap_or("<heap>").to_owned(),
            max: MAX_SUBSCRIBERS,
        })
    }

    /// Find our start and activate the entry (sync point "join"): store the
    /// position, activate, then check that the publisher's claim leaves it
    /// intact; if not, start again further on.
    fn settle(&mut self, log: &Log, start: Start, parked: Owner) -> Result<()> {
        let p = &log.ctl().publisher;
        let e = log.entry(self.index);
        let ring = log.dims.ring as u64;
        let mut state = parked;
        for _ in 0..1000 {
            // Acquire pairs with the publisher's Release stores of tail / oldest:
            // the header there is visible.
            let pos = match start {
                Start::Next => p.tail.load(Ordering::SeqCst),
                Start::Oldest => p.oldest.load(Ordering::SeqCst),
            };
            let tail = p.tail.load(Ordering::SeqCst);
            if pos > tail || tail - pos > ring || pos % log.dims.unit as u64 != 0 {
                return Err(Error::corrupted("broadcast positions are inconsistent"));
            }
            let word = log.header(log.offset(pos)).seq.load(Ordering::Acquire);
            e.pos.store(pos, Ordering::SeqCst);
            if state != self.owner {
                e.owner.store(self.owner.0, Ordering::SeqCst);
                state = self.owner;
            }
            // Sync point "join".
            fence(Ordering::SeqCst);
            let claim = p.claim.load(Ordering::SeqCst);
            if claim > pos + ring {
                continue; // overwritten meanwhile: again, further on
            }
            let n = word & !PENDING;
            if n == 0 {
                return Err(Error::corrupted("broadcast record header is damaged"));
            }
            self.pos = pos;
            self.seq = n - 1;
            e.seq.store(self.seq, Ordering::Relaxed);
            return Ok(());
        }
        Err(Error::corrupted(
            "broadcast publisher keeps overwriting the start position",
        ))
    }

    /// Our entry's owner word still names us (not evicted, not freed).
    fn still_mine(&self, log: &Log) -> bool {
        log.entry(self.index).owner.load(Ordering::Acquire) == self.owner.0
    }

    /// The batch at our position, if one is published. Lossy: a lapped subscriber
    /// moves to the oldest batch and reports how many it missed.
    #[inline]
    pub(super) fn look(&mut self, log: &Log) -> Result<Peeked, Miss> {
        if self.evicted || (!log.config.lossy && !self.still_mine(log)) {
            return Err(self.evict());
        }
        let d = log.dims;
        let expected = self.seq + 1;
        let mut off = log.offset(self.pos);
        let mut pos = self.pos;
        // Sync point "publish batch".
        let mut h = log.header(off);
        let mut word = h.seq.load(Ordering::Acquire);
        if word != expected {
            return Err(self.not_here(log, word, expected));
        }
        let mut len = h.len.load(Ordering::Relaxed);
        if len == WRAP {
            if off == 0 {
                return Err(self.damaged(log, "wrap marker at the start of the log"));
            }
            pos += (d.ring - off) as u64;
            off = 0;
            h = log.header(0);
            // Relaxed: stored before the marker (sync point "publish batch").
            word = h.seq.load(Ordering::Relaxed);
            len = h.len.load(Ordering::Relaxed);
            if word != expected || len == WRAP {
                return Err(self.damaged(log, "wrap marker without its batch"));
            }
        }
        if len > d.max_batch as u64 {
            return Err(self.damaged(log, "batch length exceeds the maximum"));
        }
        let len = len as usize;
        let rec = d.record(len);
        if off + rec > d.ring {
            return Err(self.damaged(log, "batch extends past the end of the log"));
        }
        if !log.config.lossy {
            log.region.shadow().read(off, rec);
        }
        Ok(Peeked {
            pos,
            off,
            len,
            next: pos + rec as u64,
        })
    }

    /// The header at our position is not our batch: not yet published, lapped,
    /// evicted, or damage.
    #[cold]
    fn not_here(&mut self, log: &Log, word: u64, expected: u64) -> Miss {
        if word == PENDING | expected && self.claim_ok(log, self.pos) {
            return Miss::Empty;
        }
        self.overrun(log, "broadcast record header is damaged")
    }

    /// What a look found is not usable: lapped or evicted (if the claim says so),
    /// otherwise damage.
    #[cold]
    fn damaged(&mut self, log: &Log, reason: &'static str) -> Miss {
        self.overrun(log, reason)
    }

    fn overrun(&mut self, log: &Log, reason: &'static str) -> Miss {
        if self.claim_ok(log, self.pos) {
            return Miss::Corrupted(reason);
        }
        if log.config.lossy {
            self.catch_up(log)
        } else if self.still_mine(log) {
            Miss::Corrupted("broadcast publisher overwrote a subscriber's batch")
        } else {
            self.evict()
        }
    }

    fn evict(&mut self) -> Miss {
        self.evicted = true;
        Miss::Evicted
    }

    /// Sync point "claim": whether no byte of the ring from `pos` on has been
    /// overwritten so far.
    #[inline]
    fn claim_ok(&self, log: &Log, pos: u64) -> bool {
        fence(Ordering::Acquire);
        log.ctl().publisher.claim.load(Ordering::Acquire) <= pos + log.dims.ring as u64
    }

    /// Whether the batch `p` was intact while we read it: if not, we have moved on
    /// (lossy: to the oldest batch, and `Lagged` counts this one as missed) or were
    /// evicted.
    #[inline]
    pub(super) fn intact(&mut self, log: &Log, p: &Peeked) -> Result<(), Miss> {
        if self.claim_ok(log, p.pos) {
            return Ok(());
        }
        Err(self.overrun(log, "broadcast publisher overwrote a subscriber's batch"))
    }

    /// Whether `p` is intact so far, without acting on it.
    pub(super) fn peek_intact(&self, log: &Log, p: &Peeked) -> bool {
        self.claim_ok(log, p.pos) && (log.config.lossy || self.still_mine(log))
    }

    /// Lossy, lapped: move to the oldest batch the log holds.
    fn catch_up(&mut self, log: &Log) -> Miss {
        let p = &log.ctl().publisher;
        for _ in 0..1000 {
            // Sync point "oldest".
            let oldest = p.oldest.load(Ordering::Acquire);
            let tail = p.tail.load(Ordering::Acquire);
            if oldest > tail || oldest % log.dims.unit as u64 != 0 || oldest < self.pos {
                return Miss::Corrupted("broadcast oldest position is inconsistent");
            }
            let word = log.header(log.offset(oldest)).seq.load(Ordering::Acquire);
            if !self.claim_ok(log, oldest) {
                continue; // lapped again while we looked
            }
            let n = (word & !PENDING).wrapping_sub(1);
            if n < self.seq || n == u64::MAX {
                return Miss::Corrupted("broadcast oldest batch number is inconsistent");
            }
            let missed = n - self.seq;
            self.pos = oldest;
            self.seq = n;
            self.missed += missed;
            let e = log.entry(self.index);
            e.pos.store(self.pos, Ordering::Release);
            e.seq.store(self.seq, Ordering::Relaxed);
            e.missed.store(self.missed, Ordering::Relaxed);
            return Miss::Lagged(missed);
        }
        Miss::Corrupted("broadcast publisher keeps lapping the subscriber")
    }

    /// Done with `p`: move past it (sync point "free space").
    #[inline]
    pub(super) fn release(&mut self, log: &Log, p: &Peeked) {
        self.pos = p.next;
        self.seq += 1;
        let e = log.entry(self.index);
        e.pos.store(self.pos, Ordering::Release);
        e.seq.store(self.seq, Ordering::Relaxed);
        if !log.config.lossy {
            self.waker.wake(log.space_words());
        }
    }

    /// Batches published that we have not received (a report).
    pub(super) fn behind(&self, log: &Log) -> u64 {
        log.published().saturating_sub(self.seq)
    }

    pub(super) fn missed(&self) -> u64 {
        self.missed
    }

    pub(super) fn is_evicted(&self) -> bool {
        self.evicted
    }

    /// Sleep at most `slice` for the publisher, unless it already published here
    /// or left.
    pub(super) fn sleep(&self, log: &Log, slice: Duration) {
        let h = log.header(log.offset(self.pos));
        let pending = PENDING | (self.seq + 1);
        let s = &log.ctl().shared;
        wait::sleep(
            log.data_words(),
            // W2: pairs with the publisher's seq store (K1) and its fence, or its
            // close.
            || h.seq.load(Ordering::SeqCst) != pending || s.closed.load(Ordering::SeqCst) != 0,
            slice,
        );
    }

    /// Leave: free the entry (if it is still ours) and let a publisher waiting
    /// for us go on.
    pub(super) fn leave(&self, log: &Log) {
        let e = log.entry(self.index);
        if e.owner
            .compare_exchange(
                self.owner.0,
                self.owner.with_state(FREE).0,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            let _ = log.ctl().shared.subscribers.fetch_sub(1, Ordering::Relaxed);
        }
        if !log.config.lossy {
            wait::wake_always(&log.ctl().shared.space_ready);
        }
    }
}
