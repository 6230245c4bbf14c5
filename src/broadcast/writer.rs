//! The publisher's side of the log: claim, publish, and the lossless gating on
//! the slowest subscriber with reaping and eviction (sync points in `log.rs`).

use std::time::{Duration, Instant};

use super::log::Log;
use super::wire::{Dims, Owner, ACTIVE, EVICTED, FREE, MAX_SUBSCRIBERS, PENDING, WRAP};
use crate::segment::ProcId;
use crate::sync::{fence, Ordering};
use crate::wait::{self, Waker};

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
        Pub {
            tail: 0,
            off: 0,
            seq: 0,
            claim: 0,
            oldest: 0,
            blocked: None,
            waker: Waker::attach(log.region.geometry().wake, log.data_words()),
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
        if end > self.claim {
            if log.config.lossy {
                self.announce(log, end)?;
            } else {
                self.make_room(log, end)?;
                if log.racy() {
                    // Sync point "claim", for readers evicted meanwhile.
                    fence(Ordering::Release);
                }
            }
        }
        if !log.racy() {
            let shadow = log.region.shadow();
            if let Some(w) = wrap_at {
                shadow.write(w, d.unit);
            }
            shadow.write(off, d.record(len));
        }
        Ok(Claim { off, wrap_at })
    }

    /// How far to announce a claim that must reach `end`: the next chunk
    /// boundary, but never more than a ring past what is published (so that
    /// `oldest` can follow it).
    fn reach(&self, log: &Log, end: u64) -> u64 {
        let chunk = log.dims.chunk();
        end.next_multiple_of(chunk)
            .min(self.tail + log.dims.ring as u64)
            .max(end)
    }

    /// Lossy: announce a claim up to the chunk past `end`, after moving `oldest`
    /// past what it may overwrite (sync points "oldest" and "claim").
    #[inline]
    fn announce(&mut self, log: &Log, end: u64) -> Result<(), ClaimMiss> {
        if end <= self.claim {
            return Ok(());
        }
        let limit = self.reach(log, end);
        self.publish_limit(log, limit)?;
        // Sync point "claim": the Release fence orders the claim store before
        // every byte we write next.
        fence(Ordering::Release);
        Ok(())
    }

    /// Move `oldest` to what a claim of `limit` leaves intact, store it, then
    /// the claim (sync point "oldest").
    fn publish_limit(&mut self, log: &Log, limit: u64) -> Result<(), ClaimMiss> {
        let c = &log.ctl().claims;
        let ring = log.dims.ring as u64;
        if limit > self.oldest + ring {
            self.advance_oldest(log, limit - ring)?;
            c.oldest.store(self.oldest, Ordering::Release);
        }
        self.claim = limit;
        c.claim.store(limit, Ordering::SeqCst);
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
        let joins = &log.ctl().shared.joins;
        let before = joins.load(Ordering::SeqCst);
        let old = self.claim;
        let (min, blocker) = self.scan(log, old)?;
        let limit = min
            .map_or_else(|| self.reach(log, end), |m| m + ring)
            .max(self.claim);
        if limit < end {
            return Err(ClaimMiss::Full(
                blocker.expect("a limit below end has a blocker"),
            ));
        }
        self.publish_limit(log, limit)?;
        // Sync point "join": a subscriber that became active while we scanned
        // bumped `joins` after it did; look again, and take back what it needs.
        if joins.load(Ordering::SeqCst) != before {
            let (again, blocker) = self.scan(log, old)?;
            let safe = again.map_or(limit, |m| (m + ring).min(limit)).max(old);
            if safe < limit {
                self.claim = safe;
                log.ctl().claims.claim.store(safe, Ordering::SeqCst);
            }
            if safe < end {
                return Err(ClaimMiss::Full(
                    blocker.expect("a limit below end has a blocker"),
                ));
            }
        }
        self.blocked = None;
        Ok(())
    }

    /// The smallest position of an active subscriber, and who has it. `claimed`
    /// is the claim in force before this attempt: a subscriber more than a ring
    /// behind it is a joiner that will move on.
    fn scan(&self, log: &Log, claimed: u64) -> Result<(Option<u64>, Option<Blocker>), ClaimMiss> {
        let ring = log.dims.ring as u64;
        let used = log.ctl().shared.used.load(Ordering::SeqCst);
        let used = usize::try_from(used).map_or(MAX_SUBSCRIBERS, |u| u.min(MAX_SUBSCRIBERS));
        let mut min: Option<Blocker> = None;
        for i in 0..used {
            let e = log.entry(i);
            let owner = e.owner.load(Ordering::SeqCst);
            if !Owner(owner).is_active() {
                continue;
            }
            // Sync point "free space": SeqCst (so Acquire) pairs with the
            // subscriber's Release store of pos.
            let pos = e.pos.load(Ordering::SeqCst);
            // A subscriber is never ahead of what we published.
            if pos > self.tail {
                return Err(ClaimMiss::Corrupted(
                    "a subscriber position is ahead of the publisher",
                ));
            }
            if pos + ring < claimed {
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
        if owner.state() != ACTIVE {
            // Reading an in-place batch: never evicted meanwhile.
            return false;
        }
        let now = Instant::now();
        match self.blocked {
            Some((b, since)) if b == blocker => {
                // Loom models must be deterministic: there the second sight of
                // the same blocker counts as the timeout.
                if !cfg!(loom) && now.duration_since(since) < after {
                    return false;
                }
                self.blocked = None;
                // The subscriber sees EVICTED at its next call (or at once, if it
                // reads meanwhile: the claim that passes it follows this CAS).
                let evicted = e
                    .owner
                    .compare_exchange(
                        owner.0,
                        owner.with_state(EVICTED).0,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    )
                    .is_ok();
                if evicted {
                    let _ = log.ctl().shared.subscribers.fetch_sub(1, Ordering::Relaxed);
                }
                evicted
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
        if !log.racy() {
            // The header word is payload in other laps (see `Log::header`).
            log.region.shadow().write(next, d.unit);
        }
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
            log.space_words(blocker.index),
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
