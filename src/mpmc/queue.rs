//! The MPMC slot queue over a [`Region`]: the wire structs, the dimensions, and
//! the lock-free algorithm of a claim, a commit, a take and a release. Pure logic:
//! both ends of every Release/Acquire pair on the fast path are in this file (the
//! recoveries are in `recover.rs`, the handles in `mod.rs`).
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
//! Waiting follows the protocol of `wait.rs`, ordered by the claim ("MPMC:
//! ordered by the claim" there): receivers sleep on `not_empty`, senders on
//! `not_full`. K1 is the waker's `SeqCst` claim CAS on its position (tail for a
//! sender, head for a receiver), sequenced before its publish or release, after
//! which `wait::wake_claimed` wakes the other side's word only if someone
//! announced sleep there (no fence). The last handle of a role to detach, and a
//! recovery, wake the other side unconditionally (`wait::wake_always`). W2
//! reloads, with `SeqCst`, the sleeper's position, the other side's position (a
//! receiver does not sleep once tail has moved past its head, a sender once head
//! has moved past the slot it waits for: a claim is in flight or done), the stamp
//! of the slot it is waiting at and the peer count, and sleeps only if none
//! changed.
//!
//! The wire format (the words, the slot header, the control block) is in
//! `wire.rs`.

use std::ptr::NonNull;

#[cfg(not(loom))]
use super::wire::slot_header;
use super::wire::{
    add, sub, used, ClaimWord, Dims, Holder, MpmcControl, PosWord, Side, SlotHeader, RETRY_LIMIT,
    SKIPPED,
};
use crate::error::Result;
use crate::layout::Role;
use crate::segment::Region;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait;

/// A queue mapped into this process: the region and its validated dimensions.
pub(super) struct Queue {
    pub(super) region: Region,
    pub(super) ctl: NonNull<MpmcControl>,
    pub(super) data: NonNull<u8>,
    pub(super) dims: Dims,
    /// Under loom: the slot headers (see [`SlotHeader`]).
    #[cfg(loom)]
    pub(super) headers: Box<[SlotHeader]>,
}

// SAFETY: the pointers point into `region`, which the Queue owns and which is
// Send + Sync; shared state is accessed through atomics, and payloads under the
// stamp protocol (a slot's payload belongs to exactly one claimer at a time).
unsafe impl Send for Queue {}
// SAFETY: as above.
unsafe impl Sync for Queue {}

impl Queue {
    pub(super) fn new(region: Region) -> Result<Queue> {
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
    pub(super) fn ctl(&self) -> &MpmcControl {
        // SAFETY: points into `self.region`'s control block, alive as long as self.
        unsafe { self.ctl.as_ref() }
    }

    /// The slot index of a position read from shared memory, if it is a real one.
    #[inline(always)]
    pub(super) fn index(&self, pos: u64) -> Option<usize> {
        let i = (pos & (self.dims.one_lap - 1)) as usize;
        (i < self.dims.slots).then_some(i)
    }

    /// The position after `pos` (whose index is valid).
    #[inline(always)]
    pub(super) fn next(&self, pos: u64, index: usize) -> u64 {
        if index + 1 < self.dims.slots {
            add(pos, 1) // index + 1 < one_lap: no carry into the lap bits
        } else {
            add(pos & !(self.dims.one_lap - 1), self.dims.one_lap)
        }
    }

    /// The position before `pos` (whose index is valid), and its index.
    #[inline]
    pub(super) fn prev(&self, pos: u64, index: usize) -> (u64, usize) {
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
    pub(super) fn word(&self, side: Side) -> &AtomicU64 {
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
    #[inline(always)]
    pub(super) fn record(&self, side: Side, word: PosWord) {
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
    pub(super) fn record_cold(
        &self,
        slot: &SlotHeader,
        side: Side,
        c: ClaimWord,
        claim: ClaimWord,
        pos: u64,
    ) {
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
    pub(super) fn settle(&self) {
        for side in [Side::Write, Side::Read] {
            // Acquire: see `record`.
            self.record(side, PosWord(self.word(side).load(Ordering::Acquire)));
        }
    }

    /// Whether the holder named by claim word `c` is still attached and alive (a
    /// system call unless it is this process: slow paths only).
    pub(super) fn holder_alive(&self, c: ClaimWord) -> bool {
        self.ctl().peers.holder_alive(c.holder())
    }

    #[inline(always)]
    pub(super) fn header(&self, index: usize) -> &SlotHeader {
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
    #[inline(always)]
    pub(super) fn payload<T>(&self, index: usize) -> *mut T {
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
    pub(super) fn flag_waiting_for(&self, role: Role) -> &AtomicU32 {
        match role {
            Role::Sender => &self.ctl().futex.not_empty,
            Role::Receiver => &self.ctl().futex.not_full,
        }
    }

    pub(super) fn name(&self) -> &str {
        self.region.name().unwrap_or("<heap>")
    }
}

/// A claimed slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    pub(super) pos: u64,
    pub(super) index: usize,
}

/// A slot a receiver has claimed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Taken {
    pub(super) pos: u64,
    pub(super) index: usize,
    pub(super) len: usize,
}

/// What a handle last saw at its position, for the sleep condition.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seen {
    pub(super) pos: u64,
    /// A valid slot index (0 until a position was seen).
    pub(super) index: usize,
    pub(super) stamp: u64,
}

/// Why an attempt got nothing.
#[derive(Debug)]
pub(super) enum Miss {
    /// Full (for a sender) or empty (for a receiver) at the slot `Seen` names.
    NotNow,
    /// Other handles kept winning the race ([`RETRY_LIMIT`] times in a row).
    Contended,
    /// The shared state is damaged.
    Corrupted(&'static str),
}

impl Queue {
    /// Claim a free slot for `len` elements (checked by the caller) as `by`,
    /// without waiting; on a miss, `seen` says where. With `DIES` (tests), leave the
    /// claim word unwritten, as a sender killed right after its claim CAS would.
    #[inline(always)]
    pub(super) fn try_claim<const DIES: bool>(
        &self,
        by: Holder,
        len: usize,
        seen: &mut Seen,
    ) -> std::result::Result<Claim, Miss> {
        let (ctl, d) = (self.ctl(), &self.dims);
        // Acquire: synchronises with every earlier claimer through the release
        // sequence of the claim CASes on tail, so the stamp below is not older
        // than lap - 1.
        let mut tail = PosWord(ctl.tail.load(Ordering::Acquire));
        for _ in 0..RETRY_LIMIT {
            let t = tail.pos();
            let Some(index) = self.index(t) else {
                return Err(Miss::Corrupted("enqueue position names no slot"));
            };
            let slot = self.header(index);
            // Sync point "free slot": Acquire pairs with the Release store in
            // `release` by the previous lap's receiver: its reads and writes of
            // the payload happen before ours.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == t {
                // Free for this lap. Our CAS replaces the name of the last claimer
                // in tail: make sure its claim word is written first.
                self.record(Side::Write, tail);
                // The claim. Release: heads a release sequence (see the load of
                // tail above) and passes on what `record` saw. Acquire on failure,
                // as the load of tail above.
                // SeqCst: also K1 of the wake protocol (wait.rs, "MPMC: ordered by
                // the claim"); the same instruction as Release on x86.
                match ctl.tail.compare_exchange(
                    tail.0,
                    PosWord::new(self.next(t, index), by).0,
                    Ordering::SeqCst,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        if !DIES {
                            // Relaxed: see `SlotHeader::claim`.
                            slot.claim
                                .store(ClaimWord::new(by, Side::Write, t).0, Ordering::Relaxed);
                        }
                        self.region
                            .shadow()
                            .write(d.payload_off(index), len * d.elem);
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
                return Err(Miss::NotNow);
            } else {
                // Our tail is stale (the stamp is from a later claim, which happens
                // after tail moved), or the slot is damaged. Acquire as the first
                // load of tail above.
                let now = PosWord(ctl.tail.load(Ordering::Acquire));
                if now == tail {
                    return Err(Miss::Corrupted(
                        "slot stamp is inconsistent with the enqueue position",
                    ));
                }
                tail = now;
            }
        }
        // Heavy contention: let a sleeper's condition fire at once.
        seen.pos = add(tail.pos(), 1);
        Err(Miss::Contended)
    }

    /// Write the length of the slot `claim` and publish it (`len == SKIPPED`
    /// cancels).
    #[inline(always)]
    pub(super) fn publish(&self, claim: Claim, len: u64) {
        let slot = self.header(claim.index);
        // Relaxed: published by the stamp store below (see `SlotHeader::len`).
        slot.len.store(len, Ordering::Relaxed);
        // Sync point "publish batch": Release pairs with the receiver's Acquire
        // load of the stamp in `try_take`.
        slot.stamp.store(add(claim.pos, 1), Ordering::Release);
        // K2 (wait.rs, "MPMC: ordered by the claim"): after our SeqCst claim CAS
        // on tail, which a receiver about to sleep looks at.
        wait::wake_claimed(&self.ctl().futex.not_empty);
    }

    /// Take the next committed batch as `by`, without waiting, stepping over
    /// skipped slots; on a miss, `seen` says where. With `DIES` (tests), leave the
    /// claim word unwritten, as a receiver killed right after its claim CAS would.
    #[inline(always)]
    pub(super) fn try_take<const DIES: bool>(
        &self,
        by: Holder,
        seen: &mut Seen,
    ) -> std::result::Result<Taken, Miss> {
        let (ctl, d) = (self.ctl(), &self.dims);
        // Acquire: synchronises with every earlier claimer through the release
        // sequence of the claim CASes on head.
        let mut head = PosWord(ctl.head.load(Ordering::Acquire));
        for _ in 0..RETRY_LIMIT {
            let h = head.pos();
            let Some(index) = self.index(h) else {
                return Err(Miss::Corrupted("dequeue position names no slot"));
            };
            let slot = self.header(index);
            // Sync point "publish batch": Acquire pairs with the Release store in
            // `publish`; the length and payload are visible after this.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == add(h, 1) {
                // Committed. As in `try_claim`: record the last claim on head, then
                // claim ours (orderings there).
                self.record(Side::Read, head);
                // SeqCst: also K1 of the wake protocol, as in `try_claim`.
                if let Err(now) = ctl.head.compare_exchange(
                    head.0,
                    PosWord::new(self.next(h, index), by).0,
                    Ordering::SeqCst,
                    Ordering::Acquire,
                ) {
                    head = PosWord(now);
                    continue;
                }
                if !DIES {
                    // Relaxed: see `SlotHeader::claim`.
                    slot.claim
                        .store(ClaimWord::new(by, Side::Read, h).0, Ordering::Relaxed);
                }
                match self.checked_len(h, index) {
                    Ok(Some(len)) => return Ok(Taken { pos: h, index, len }),
                    // Skipped: released; on to the next.
                    Ok(None) => head = PosWord(ctl.head.load(Ordering::Acquire)),
                    Err(reason) => return Err(Miss::Corrupted(reason)),
                }
            } else if stamp == h || stamp == sub(add(h, 1), d.one_lap) {
                // Free, claimed and not committed, or the previous lap's batch
                // still being read: nothing to take at head.
                *seen = Seen {
                    pos: h,
                    index,
                    stamp,
                };
                return Err(Miss::NotNow);
            } else {
                // Our head is stale (the stamp is from a later lap, which happens
                // after head moved), or the slot is damaged. Acquire as the first
                // load of head above.
                let now = PosWord(ctl.head.load(Ordering::Acquire));
                if now == head {
                    return Err(Miss::Corrupted(
                        "slot stamp is inconsistent with the dequeue position",
                    ));
                }
                head = now;
            }
        }
        // Heavy contention: let a sleeper's condition fire at once.
        seen.pos = add(head.pos(), 1);
        Err(Miss::Contended)
    }

    /// Slots claimed by senders and not yet taken (`used` of a snapshot).
    pub(super) fn waiting(&self) -> usize {
        // Relaxed: a snapshot that reads nothing else; head first (see `used`).
        let head = self.ctl().head.load(Ordering::Relaxed);
        let tail = self.ctl().tail.load(Ordering::Relaxed);
        used(head, tail, self.dims.slots as u64).map_or(0, |n| n as usize)
    }

    /// Whether the slot at tail is not free for this lap (a hint).
    pub(super) fn next_slot_busy(&self) -> bool {
        // Relaxed: a hint that reads nothing after these two words.
        let tail = PosWord(self.ctl().tail.load(Ordering::Relaxed)).pos();
        self.index(tail).map_or(true, |i| {
            self.header(i).stamp.load(Ordering::Relaxed) != tail
        })
    }

    /// Whether a committed batch waits at head (a hint).
    pub(super) fn head_committed(&self) -> bool {
        // Relaxed: a hint that reads nothing after these two words.
        let head = PosWord(self.ctl().head.load(Ordering::Relaxed)).pos();
        self.index(head)
            .is_some_and(|i| self.header(i).stamp.load(Ordering::Relaxed) == add(head, 1))
    }

    /// The length of the batch in the slot at `pos` that we just took: `None` for a
    /// skipped slot (released here), `Err` for a length above `max_batch` (released
    /// too, so the queue goes on).
    #[inline(always)]
    pub(super) fn checked_len(
        &self,
        pos: u64,
        index: usize,
    ) -> std::result::Result<Option<usize>, &'static str> {
        // Relaxed: published by the stamp we loaded with Acquire (see
        // `SlotHeader::len`).
        let len = self.header(index).len.load(Ordering::Relaxed);
        if len == SKIPPED {
            self.release(pos, index);
            return Ok(None);
        }
        if len > self.dims.max_batch as u64 {
            self.release(pos, index);
            return Err("batch length exceeds the maximum");
        }
        let len = len as usize;
        self.region
            .shadow()
            .write(self.dims.payload_off(index), len * self.dims.elem);
        Ok(Some(len))
    }

    /// Give a claimed slot back to the senders.
    #[inline(always)]
    pub(super) fn release(&self, pos: u64, index: usize) {
        let slot = self.header(index);
        // Sync point "free slot": Release pairs with the next sender's Acquire load of
        // the stamp in `Sender::claim` (our reads and in-place writes of the payload
        // happen before it reuses the slot).
        slot.stamp
            .store(add(pos, self.dims.one_lap), Ordering::Release);
        // K2, after our SeqCst claim CAS on head (see `publish`).
        wait::wake_claimed(&self.ctl().futex.not_full);
    }
}
