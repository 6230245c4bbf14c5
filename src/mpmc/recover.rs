//! Recovery: what a handle does on its slow path with a slot whose holder is gone
//! (module docs of `queue.rs`, "Claims that survive their claimer"). Every
//! recovery first writes the claim words the last claimers may not have written
//! yet (`Queue::settle`), then reads a claim word, judges its holder, and only
//! then reads the stamp; a takeover is a CAS from the dead holder's claim word.

use super::attach::Attachment;
use super::queue::{Seen, Taken};
use super::wire::{add, sub, ClaimWord, PosWord, Side, RETRY_LIMIT, SKIPPED};
use crate::error::TryRecvError;
use crate::sync::Ordering;
use crate::wait;

impl Attachment {
    /// Take over the slot at `index`, claimed as `dead` by a holder that is gone,
    /// with our claim for `pos` on `side`: exactly one of the handles that race
    /// for it wins, and none once the slot moved on (every later claim word
    /// differs from `dead`). AcqRel on success, see [`SlotHeader::claim`]; its
    /// Acquire also pairs with the Release of `simulate_death`, which stands for a
    /// process's end in tests. Relaxed on failure: the caller looks again.
    pub(super) fn take_over(&self, index: usize, dead: ClaimWord, side: Side, pos: u64) -> bool {
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
    pub(super) fn skip_dead_writer(&self, pos: u64, index: usize, dead: ClaimWord) {
        if !self.take_over(index, dead, Side::Write, pos) {
            return;
        }
        let q = &*self.queue;
        let slot = q.header(index);
        // As `Sender::publish`, with our claim.
        slot.len.store(SKIPPED, Ordering::Relaxed);
        slot.stamp.store(add(pos, 1), Ordering::Release);
        wait::wake_always(&q.ctl().futex.not_empty);
    }

    /// Commit the batch in the slot at `index` again, at position `tail`, whose
    /// slot it is: its claim word `dead` is the read claim of the previous lap by
    /// a receiver that is gone (or our own kind of claim of `tail`, by a handle
    /// that died doing this), so the batch is delivered again. Unless another
    /// handle was first.
    #[cold]
    pub(super) fn recommit(&self, tail: u64, index: usize, dead: ClaimWord) {
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
            // SeqCst as the claim CAS in `Sender::claim`.
            match word.compare_exchange(
                now.0,
                PosWord::new(q.next(tail, index), self.holder).0,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(w) => now = PosWord(w),
            }
        }
        // Sync point "publish batch", as in `Sender::publish`: the payload and
        // length are the dead receiver's batch.
        q.header(index).stamp.store(add(tail, 1), Ordering::Release);
        wait::wake_always(&q.ctl().futex.not_empty);
    }
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
pub(super) fn recover_tail(att: &Attachment, tail: u64, index: usize) -> bool {
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
pub(super) fn recover_head(
    att: &Attachment,
    scanned: &std::sync::atomic::AtomicU64,
    at: Seen,
    all: bool,
) -> Result<Recovered, TryRecvError> {
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
    if !all && deaths == scanned.load(std::sync::atomic::Ordering::Relaxed) {
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
        match q.checked_len(pos, index) {
            Ok(Some(len)) => return Ok(Recovered::Taken(Taken { pos, index, len })),
            Ok(None) => continue,
            Err(reason) => return Err(TryRecvError::Corrupted { reason }),
        }
    }
    scanned.store(deaths, std::sync::atomic::Ordering::Relaxed);
    Ok(Recovered::Nothing)
}

/// What [`recover_head`] did.
pub(super) enum Recovered {
    Nothing,
    /// The slot at head changed: look again.
    Retry,
    /// We took over a batch a dead receiver held.
    Taken(Taken),
}
