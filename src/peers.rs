//! Who is attached to a segment that many processes share: a count per role and a
//! table of attached process ids.
//!
//! A process that exits normally detaches (its entry is freed and its role's count
//! goes down). A process that dies never does, so the count alone would keep its
//! peers waiting forever; the table records the identity of every attachment (pid
//! and start time, [`ProcId`]) so that the survivors can check it on their slow
//! paths and reap the dead ([`PeerTable::reap`]).
//!
//! Each entry also has a generation, bumped by every attach into it, so that a
//! word elsewhere in the segment can name "the attachment in entry `e`, generation
//! `g`" in 14 bits and still be told from a later attachment that reuses the entry
//! (the MPMC slots' claim words do this, see [`PeerTable::holder_alive`]).
//!
//! ```text
//! counts line   senders:   EVER | live count     (one u64 per role)
//!               receivers: EVER | live count
//!               deaths:    bumped by every reap and detach (a hint to rescan)
//! entries       TABLE_LEN words: ProcId::pack() << 10 | generation << 2 | role code
//!               (role code 0: free; the generation stays when it is freed)
//! ```
//!
//! Counts and entries are untrusted like every other shared word: a hostile value
//! can make a side look connected or disconnected, never cause a panic or an
//! out-of-bounds access (counts saturate, unknown role codes are ignored).

use crate::layout::{Padded, Role};
use crate::segment::ProcId;
use crate::sync::{AtomicU64, Ordering};

/// How many attachments (`create`/`open` calls; clones share one) a segment tracks.
/// (Four under loom: the models attach at most four, and every entry a reap reads
/// multiplies the interleavings.)
pub(crate) const TABLE_LEN: usize = if cfg!(loom) { 4 } else { 64 };
/// Bits of an entry index (claim words hold one).
pub(crate) const ENTRY_BITS: u32 = 6;
/// Bits of an entry's generation.
pub(crate) const GEN_BITS: u32 = 8;
const _: () = assert!(TABLE_LEN <= 1 << ENTRY_BITS);

const ROLE_MASK: u64 = 0b11;
const GEN_SHIFT: u32 = 2;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const PROC_SHIFT: u32 = GEN_SHIFT + GEN_BITS;
const _: () = assert!(PROC_SHIFT + crate::segment::PROC_BITS <= 64);

/// Set in a count word once a handle of that role has attached.
const EVER: u64 = 1 << 63;
/// The live-count bits of a count word.
const COUNT: u64 = u32::MAX as u64;

const fn role_code(role: Role) -> u64 {
    match role {
        Role::Sender => 1,
        Role::Receiver => 2,
    }
}

const fn role_index(role: Role) -> usize {
    match role {
        Role::Sender => 0,
        Role::Receiver => 1,
    }
}

fn role_of(code: u64) -> Option<Role> {
    match code {
        1 => Some(Role::Sender),
        2 => Some(Role::Receiver),
        _ => None,
    }
}

/// An entry word: `proc << 10 | gen << 2 | role code` (role code 0: free).
const fn entry_word(proc: ProcId, gen: u64, role: Option<Role>) -> u64 {
    let code = match role {
        Some(r) => role_code(r),
        None => 0,
    };
    proc.pack() << PROC_SHIFT | (gen & GEN_MASK) << GEN_SHIFT | code
}

/// The parts of an entry word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// `None` for a free entry or an unknown role code.
    pub(crate) role: Option<Role>,
    /// The generation, in `0..2^GEN_BITS`.
    pub(crate) gen: u64,
    /// The attached process.
    pub(crate) proc: ProcId,
}

impl Entry {
    /// Decode any word (hostile ones included).
    pub(crate) fn decode(word: u64) -> Entry {
        Entry {
            role: role_of(word & ROLE_MASK),
            gen: (word >> GEN_SHIFT) & GEN_MASK,
            proc: ProcId::unpack(word >> PROC_SHIFT),
        }
    }
}

/// An attachment: where it is in the table and what its entry word is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Index in the table, below [`TABLE_LEN`].
    pub(crate) entry: usize,
    /// Its generation.
    pub(crate) gen: u64,
}

/// Apply `f` to `word` in one read-modify-write (a CAS loop); returns the previous
/// value. Release on success, for the "detach" sync point (see `decrement`); no
/// Acquire: an attach or detach reads nothing its peers wrote. The Relaxed loads
/// only seed the loop: the CAS checks them.
fn update(word: &AtomicU64, f: impl Fn(u64) -> u64) -> u64 {
    let mut cur = word.load(Ordering::Relaxed);
    loop {
        match word.compare_exchange_weak(cur, f(cur), Ordering::Release, Ordering::Relaxed) {
            Ok(prev) => return prev,
            Err(now) => cur = now,
        }
    }
}

/// The attachment record of a many-to-many segment, part of its control block.
#[repr(C)]
pub(crate) struct PeerTable {
    /// Per role (sender, receiver): `EVER | live count`. Updated by attaching,
    /// detaching and reaping handles with Release read-modify-writes (a detach heads
    /// a release sequence, see [`PeerTable::gone`]; the last one is followed by
    /// `wait::wake_always`, which needs no more); read by receivers (`Acquire`),
    /// senders (Relaxed) and sleepers (`SeqCst`, W2). Then `deaths`: bumped
    /// (Relaxed RMW) by every detach and every reap; read (Relaxed) by handles that
    /// look for slots a gone attachment held. Any value is harmless: a change only
    /// makes them look.
    counts: Padded<[AtomicU64; 3]>,
    /// Attachment table: `entry_word`. Claimed with a CAS from a free word (role
    /// code 0) by an attaching handle, which bumps the generation; freed with a CAS
    /// back to a free word of the same generation by its own detach or by a peer
    /// that found the process dead. Only attach, detach and reap write it; handles
    /// judging a claim word read it (Acquire, see [`PeerTable::holder_alive`]).
    entries: [AtomicU64; TABLE_LEN],
}

impl Default for PeerTable {
    fn default() -> Self {
        PeerTable {
            counts: Padded::default(),
            entries: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<PeerTable>() == crate::layout::LINE + 8 * TABLE_LEN);

/// The table has no free entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableFull;

/// What a detach or reap did to a role's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Left {
    /// The role still has live handles (or nothing was removed).
    Some,
    /// The last handle of the role has gone: wake the other side.
    Last,
}

impl PeerTable {
    fn count(&self, role: Role) -> &AtomicU64 {
        &self.counts[role_index(role)]
    }

    fn deaths_word(&self) -> &AtomicU64 {
        &self.counts[2]
    }

    /// Every entry, decoded (Relaxed loads, for reports: `inspect`).
    pub(crate) fn snapshot(&self) -> Vec<Entry> {
        self.entries
            .iter()
            .map(|e| Entry::decode(e.load(Ordering::Relaxed)))
            .collect()
    }

    /// Bumped by every detach and reap: when it changes, an attachment went away
    /// and slots it held may need recovering.
    pub(crate) fn deaths(&self) -> u64 {
        // Relaxed: a hint; the claim words read after it carry their own ordering.
        self.deaths_word().load(Ordering::Relaxed)
    }

    /// Record an attachment of `role` by process `proc`; returns the entry to pass
    /// to [`detach`](Self::detach) and to name in claim words.
    ///
    /// Claims an entry before counting, so that the count is always at least the
    /// number of live entries of the role. When the table is full, dead entries are
    /// reaped once before giving up.
    pub(crate) fn attach(&self, role: Role, proc: ProcId) -> Result<Slot, TableFull> {
        let slot = self.claim_entry(role, proc).or_else(|_| {
            self.reap_all();
            self.claim_entry(role, proc)
        })?;
        // After this RMW, a peer that reads the count sees us attached.
        update(self.count(role), |c| EVER | ((c & COUNT) + 1).min(COUNT));
        Ok(slot)
    }

    fn claim_entry(&self, role: Role, proc: ProcId) -> Result<Slot, TableFull> {
        for (i, e) in self.entries.iter().enumerate() {
            // Relaxed: a candidate; the CAS below decides.
            let cur = e.load(Ordering::Relaxed);
            if cur & ROLE_MASK != 0 {
                continue;
            }
            let gen = (Entry::decode(cur).gen + 1) & GEN_MASK;
            // Release: a handle that reads this entry (Acquire, `holder_alive`)
            // after reading one of our claim words sees our identity, not the
            // previous holder's. The CAS makes the claim exclusive.
            if e.compare_exchange(
                cur,
                entry_word(proc, gen, Some(role)),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
            {
                return Ok(Slot { entry: i, gen });
            }
        }
        Err(TableFull)
    }

    /// Undo [`attach`](Self::attach). If a peer has already reaped the entry
    /// (it wrongly took us for dead, or the table was damaged), the count is left
    /// alone: whoever freed the entry decremented it.
    pub(crate) fn detach(&self, role: Role, proc: ProcId, slot: Slot) -> Left {
        let word = entry_word(proc, slot.gen, Some(role));
        // Relaxed: as in `claim_entry`; the count's RMW carries the ordering.
        let freed = self.entries.get(slot.entry).is_some_and(|e| {
            e.compare_exchange(
                word,
                entry_word(ProcId::NOBODY, slot.gen, None),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
        });
        // A handle that leaked a guard (mem::forget) leaves a claim behind: let
        // the survivors look.
        self.deaths_word().fetch_add(1, Ordering::Relaxed);
        if freed {
            self.decrement(role)
        } else {
            Left::Some
        }
    }

    /// Whether the attachment `slot` still exists and its process is alive: for a
    /// claim word naming it. One system call (and a `/proc` read) unless the
    /// process is this one: slow paths only.
    ///
    /// A generation other than `slot.gen`, or a free entry, means the attachment
    /// that made the claim is gone (detached, or reaped after its death): the
    /// claim is orphaned.
    pub(crate) fn holder_alive(&self, slot: Slot) -> bool {
        let Some(e) = self.entries.get(slot.entry) else {
            return false;
        };
        // Acquire pairs with the Release CAS of `claim_entry`: when the claim word
        // we read was made by a later attachment of this entry, we see its word.
        let e = Entry::decode(e.load(Ordering::Acquire));
        e.role.is_some() && e.gen == slot.gen && e.proc.alive()
    }

    /// Make the attachment `slot` look like the attachment of a process that died
    /// (for tests of recovery, and loom models, which cannot kill a thread).
    pub(crate) fn simulate_death(&self, role: Role, proc: ProcId, slot: Slot) {
        if let Some(e) = self.entries.get(slot.entry) {
            // Release pairs with the Acquire load in `holder_alive`: a handle that
            // finds us dead and takes over a slot we held sees what we did to it,
            // as a real death (after which every store of the dead is visible)
            // gives for free.
            let _ = e.compare_exchange(
                entry_word(proc, slot.gen, Some(role)),
                entry_word(ProcId::NOBODY, slot.gen, Some(role)),
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
    }

    fn decrement(&self, role: Role) -> Left {
        // Sync point "detach": a Release RMW after every batch this handle published
        // or released. Pairs with the Acquire/SeqCst load in `gone`: the count words
        // are only ever changed by RMWs, so they form one release sequence, and a
        // peer that reads 0 synchronises with every earlier detach of the role.
        let prev = update(self.count(role), |c| {
            (c & EVER) | (c & COUNT).saturating_sub(1)
        });
        if prev & COUNT == 1 {
            Left::Last
        } else {
            Left::Some
        }
    }

    /// Whether a handle of `role` attached once and none is attached now.
    ///
    /// With `Acquire` (or `SeqCst`), a `true` answer happens after the detach of every
    /// handle of the role (see `decrement`), so everything they published is visible.
    #[inline]
    pub(crate) fn gone(&self, role: Role, order: Ordering) -> bool {
        let c = self.count(role).load(order);
        c & EVER != 0 && c & COUNT == 0
    }

    /// Free the entries of `role` whose process is dead, decrementing the count for
    /// each. One system call per entry of the role: call on slow paths only.
    pub(crate) fn reap(&self, role: Role) -> Left {
        self.reap_where(|r| r == Some(role))
    }

    /// Free every dead entry (used when the table is full).
    fn reap_all(&self) {
        self.reap_where(|_| true);
    }

    /// Reap dead entries whose role satisfies `pick`; `Left::Last` if that took
    /// some role's count to zero.
    fn reap_where(&self, pick: impl Fn(Option<Role>) -> bool) -> Left {
        let mut out = Left::Some;
        for e in &self.entries {
            // Relaxed: a candidate only; the CAS below decides.
            let w = e.load(Ordering::Relaxed);
            let entry = Entry::decode(w);
            if w & ROLE_MASK == 0 || !pick(entry.role) || entry.proc.alive() {
                continue;
            }
            // Tell the survivors to look for slots the dead one held before its
            // entry goes: if we die in between, the next reaper bumps it again.
            self.deaths_word().fetch_add(1, Ordering::Relaxed);
            // Only one reaper wins the CAS, so each dead entry is counted once
            // (atomicity is all it needs). The generation stays.
            let free = entry_word(ProcId::NOBODY, entry.gen, None);
            if e.compare_exchange(w, free, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                if let Some(role) = entry.role {
                    if self.decrement(role) == Left::Last {
                        out = Left::Last;
                    }
                }
            }
        }
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_attach_and_detach() {
        let p = PeerTable::default();
        let me = ProcId::me();
        // Never attached is not gone.
        assert!(!p.gone(Role::Sender, Ordering::SeqCst));
        let a = p.attach(Role::Sender, me).unwrap();
        let b = p.attach(Role::Sender, me).unwrap();
        assert_ne!(a, b);
        assert!(!p.gone(Role::Sender, Ordering::SeqCst));
        assert!(!p.gone(Role::Receiver, Ordering::SeqCst));
        assert_eq!(p.detach(Role::Sender, me, a), Left::Some);
        assert_eq!(p.detach(Role::Sender, me, b), Left::Last);
        assert!(p.gone(Role::Sender, Ordering::SeqCst));
        // A second detach of the same entry changes nothing.
        assert_eq!(p.detach(Role::Sender, me, b), Left::Some);
        let nowhere = Slot {
            entry: usize::MAX,
            gen: 0,
        };
        assert_eq!(p.detach(Role::Sender, me, nowhere), Left::Some);
    }

    #[test]
    fn generations_tell_a_reused_entry_from_its_predecessor() {
        let p = PeerTable::default();
        let me = ProcId::me();
        let a = p.attach(Role::Sender, me).unwrap();
        assert!(p.holder_alive(a));
        let deaths = p.deaths();
        p.detach(Role::Sender, me, a);
        assert_ne!(p.deaths(), deaths, "a detach is a hint to look");
        assert!(!p.holder_alive(a), "a detached attachment holds nothing");
        let b = p.attach(Role::Receiver, me).unwrap();
        assert_eq!(b.entry, a.entry, "the first free entry is reused");
        assert_ne!(b.gen, a.gen);
        assert!(p.holder_alive(b));
        assert!(
            !p.holder_alive(a),
            "a claim of the old attachment is orphaned"
        );
        p.simulate_death(Role::Receiver, me, b);
        assert!(!p.holder_alive(b));
        assert_eq!(p.reap(Role::Receiver), Left::Last);
        assert!(!p.holder_alive(Slot {
            entry: TABLE_LEN,
            gen: 0
        }));
    }

    #[test]
    fn a_full_table_is_refused() {
        let p = PeerTable::default();
        let me = ProcId::me();
        for _ in 0..TABLE_LEN {
            p.attach(Role::Receiver, me).unwrap();
        }
        assert_eq!(p.attach(Role::Receiver, me), Err(TableFull));
    }

    #[test]
    fn dead_entries_are_reaped() {
        let p = PeerTable::default();
        let me = ProcId::me();
        p.attach(Role::Receiver, me).unwrap();
        // pid 0 is never alive: a stand-in for a process that died attached.
        p.attach(Role::Sender, ProcId::NOBODY).unwrap();
        assert!(!p.gone(Role::Sender, Ordering::SeqCst));
        assert_eq!(p.reap(Role::Receiver), Left::Some);
        assert_eq!(p.reap(Role::Sender), Left::Last);
        assert!(p.gone(Role::Sender, Ordering::SeqCst));
        assert!(!p.gone(Role::Receiver, Ordering::SeqCst));
    }
}
