//! A subscriber's side of the log: join, look, check and release, and catching
//! up after a lap (sync points in `log.rs`).

use std::time::Duration;

use super::log::{Log, Start};
use super::wire::{
    Owner, ACTIVE, EVICTED, FREE, MAX_POSITION, MAX_SUBSCRIBERS, PENDING, READING, WRAP,
};
use crate::segment::ProcId;
use crate::sync::{fence, Ordering};
use crate::wait::{self, Waker};
use crate::{Error, Result};

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
            // Free, or left evicted (or half-joined) by a process that died.
            let takeable = old.state() == FREE || (old.state() == EVICTED && !old.proc().alive());
            if !takeable {
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
            // Before we activate: the publisher scans the entries below `used`.
            let _ = log
                .ctl()
                .shared
                .used
                .fetch_max(index as u64 + 1, Ordering::SeqCst);
            let mut sub = Sub {
                index,
                owner: mine,
                pos: 0,
                seq: 0,
                missed: 0,
                evicted: false,
                waker: Waker::attach(log.region.geometry().wake, log.space_words(index)),
            };
            match sub.settle(log, start, parked) {
                Ok(()) => {
                    let _ = log.ctl().shared.subscribers.fetch_add(1, Ordering::Relaxed);
                    return Ok(sub);
                }
                Err(e) => {
                    // Not counted yet: only give the entry back.
                    sub.free_entry(log);
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
        let c = &log.ctl().claims;
        let e = log.entry(self.index);
        let ring = log.dims.ring as u64;
        let mut state = parked;
        for _ in 0..1000 {
            // Acquire pairs with the publisher's Release stores of tail / oldest:
            // the header there is visible.
            let pos = match start {
                Start::Next => p.tail.load(Ordering::SeqCst),
                Start::Oldest => c.oldest.load(Ordering::SeqCst),
            };
            let tail = p.tail.load(Ordering::SeqCst);
            if pos > tail || tail > MAX_POSITION || pos % log.dims.unit as u64 != 0 {
                return Err(Error::corrupted("broadcast positions are inconsistent"));
            }
            if tail - pos > ring {
                continue; // lapped while we looked: again
            }
            let word = log.header(log.offset(pos)).seq.load(Ordering::Acquire);
            e.pos.store(pos, Ordering::SeqCst);
            if state != self.owner {
                e.owner.store(self.owner.0, Ordering::SeqCst);
                state = self.owner;
            }
            // Sync point "join": after we are active, before we look at the claim.
            let _ = log.ctl().shared.joins.fetch_add(1, Ordering::SeqCst);
            let claim = c.claim.load(Ordering::SeqCst);
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

    /// Free our entry if it is still ours, active or evicted; whether it was
    /// active.
    fn free_entry(&self, log: &Log) -> bool {
        let e = log.entry(self.index);
        for state in [ACTIVE, READING, EVICTED] {
            let from = self.owner.with_state(state);
            if e.owner
                .compare_exchange(
                    from.0,
                    self.owner.with_state(FREE).0,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return state != EVICTED;
            }
        }
        false
    }

    /// Our entry's owner word still names us (not evicted, not freed).
    fn still_mine(&self, log: &Log) -> bool {
        let w = log.entry(self.index).owner.load(Ordering::Acquire);
        w == self.owner.0 || w == self.owner.with_state(READING).0
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
        if !log.racy() {
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
        log.ctl().claims.claim.load(Ordering::Acquire) <= pos + log.dims.ring as u64
    }

    /// Whether the batch `p` was intact while we read it: if not, we have moved on
    /// (lossy: to the oldest batch, and `Lagged` counts this one as missed) or were
    /// evicted.
    #[inline]
    pub(super) fn intact(&mut self, log: &Log, p: &Peeked) -> Result<(), Miss> {
        // A lossless log that does not evict never writes over an active
        // subscriber's batch (sync points "free space" and "join"): no look at
        // the claim's line, which the publisher rewrites whenever it is held back.
        if !log.racy() || self.claim_ok(log, p.pos) {
            return Ok(());
        }
        Err(self.overrun(log, "broadcast publisher overwrote a subscriber's batch"))
    }

    /// Lossless logs that evict: mark our entry as reading an in-place batch,
    /// which the publisher does not evict; `false` if we were evicted first.
    pub(super) fn start_reading(&mut self, log: &Log) -> bool {
        let e = log.entry(self.index);
        let ok = e
            .owner
            .compare_exchange(
                self.owner.0,
                self.owner.with_state(READING).0,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok();
        if !ok {
            self.evicted = true;
        }
        ok
    }

    /// The end of `start_reading`.
    pub(super) fn stop_reading(&self, log: &Log) {
        // Only we change a READING word (the publisher reaps it only if our
        // process is dead).
        log.entry(self.index)
            .owner
            .store(self.owner.0, Ordering::SeqCst);
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
            let oldest = log.ctl().claims.oldest.load(Ordering::Acquire);
            let tail = p.tail.load(Ordering::Acquire);
            if oldest > tail
                || tail > MAX_POSITION
                || oldest % log.dims.unit as u64 != 0
                || oldest < self.pos
            {
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
            self.waker.wake(log.space_words(self.index));
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
        if self.free_entry(log) {
            let _ = log.ctl().shared.subscribers.fetch_sub(1, Ordering::Relaxed);
        }
        if !log.config.lossy {
            wait::wake_always(&log.entry(self.index).space_ready);
        }
    }
}
