//! Who is attached to a segment that many processes share: a count per role and a
//! table of attached process ids.
//!
//! A process that exits normally detaches (its entry is freed and its role's count
//! goes down). A process that dies never does, so the count alone would keep its
//! peers waiting forever; the table records the pid of every attachment so that the
//! survivors can check it with [`pid_alive`] on their slow paths and reap the dead
//! ([`Peers::reap`]).
//!
//! ```text
//! counts line   senders:   EVER | live count     (one u64 per role)
//!               receivers: EVER | live count
//! entries       TABLE_LEN words: 0 = free, else pid << 32 | role code
//! ```
//!
//! Counts and entries are untrusted like every other shared word: a hostile value
//! can make a side look connected or disconnected, never cause a panic or an
//! out-of-bounds access (counts saturate, unknown role codes are ignored).

use crate::error::Role;
use crate::layout::Padded;
use crate::segment::pid_alive;
use crate::sync::{AtomicU64, Ordering};

/// How many attachments (`create`/`open` calls; clones share one) a segment tracks.
pub(crate) const TABLE_LEN: usize = 64;

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

/// An entry word: `pid << 32 | role code`.
const fn entry_word(pid: u32, role: Role) -> u64 {
    (pid as u64) << 32 | role_code(role)
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
pub(crate) struct Peers {
    /// Per role (sender, receiver): `EVER | live count`. Updated by attaching,
    /// detaching and reaping handles with Release read-modify-writes (a detach heads
    /// a release sequence, see [`Peers::gone`]; the last one is followed by
    /// `wait::wake_always`, which needs no more); read by receivers (`Acquire`),
    /// senders (Relaxed) and sleepers (`SeqCst`, W2).
    counts: Padded<[AtomicU64; 2]>,
    /// Attachment table: 0 = free, else `pid << 32 | role code`. Claimed with a CAS
    /// from 0 by an attaching handle; freed with a CAS back to 0 by its own detach or
    /// by a peer that found the pid dead. Only attach, detach and reap touch it.
    entries: [AtomicU64; TABLE_LEN],
}

impl Default for Peers {
    fn default() -> Self {
        Peers {
            counts: Padded::default(),
            entries: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Peers>() == crate::layout::LINE + 8 * TABLE_LEN);

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

impl Peers {
    fn count(&self, role: Role) -> &AtomicU64 {
        &self.counts[role_index(role)]
    }

    /// Record an attachment of `role` by process `pid`; returns the entry index to
    /// pass to [`detach`](Self::detach).
    ///
    /// Claims an entry before counting, so that the count is always at least the
    /// number of live entries of the role. When the table is full, dead entries are
    /// reaped once before giving up.
    pub(crate) fn attach(&self, role: Role, pid: u32) -> Result<usize, TableFull> {
        let word = entry_word(pid, role);
        let entry = self.claim_entry(word).or_else(|_| {
            self.reap_all();
            self.claim_entry(word)
        })?;
        // After this RMW, a peer that reads the count sees us attached.
        update(self.count(role), |c| EVER | ((c & COUNT) + 1).min(COUNT));
        Ok(entry)
    }

    fn claim_entry(&self, word: u64) -> Result<usize, TableFull> {
        for (i, e) in self.entries.iter().enumerate() {
            // Relaxed: the entry publishes only itself (a pid for reapers); the
            // CAS makes the claim exclusive.
            if e.load(Ordering::Relaxed) == 0
                && e.compare_exchange(0, word, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return Ok(i);
            }
        }
        Err(TableFull)
    }

    /// Undo [`attach`](Self::attach). If a peer has already reaped the entry
    /// (it wrongly took us for dead, or the table was damaged), the count is left
    /// alone: whoever freed the entry decremented it.
    pub(crate) fn detach(&self, role: Role, pid: u32, entry: usize) -> Left {
        let word = entry_word(pid, role);
        // Relaxed: as in `claim_entry`; the count's RMW carries the ordering.
        let freed = self.entries.get(entry).is_some_and(|e| {
            e.compare_exchange(word, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        });
        if freed {
            self.decrement(role)
        } else {
            Left::Some
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
            let role = role_of(w & 0xffff_ffff);
            if w == 0 || !pick(role) || pid_alive((w >> 32) as u32) {
                continue;
            }
            // Only one reaper wins the CAS, so each dead entry is counted once
            // (atomicity is all it needs).
            if e.compare_exchange(w, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                if let Some(role) = role {
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
        let p = Peers::default();
        let me = std::process::id();
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
        assert_eq!(p.detach(Role::Sender, me, usize::MAX), Left::Some);
    }

    #[test]
    fn a_full_table_is_refused() {
        let p = Peers::default();
        let me = std::process::id();
        for _ in 0..TABLE_LEN {
            p.attach(Role::Receiver, me).unwrap();
        }
        assert_eq!(p.attach(Role::Receiver, me), Err(TableFull));
    }

    #[test]
    fn dead_entries_are_reaped() {
        let p = Peers::default();
        let me = std::process::id();
        p.attach(Role::Receiver, me).unwrap();
        // pid 0 is never alive: a stand-in for a process that died attached.
        p.attach(Role::Sender, 0).unwrap();
        assert!(!p.gone(Role::Sender, Ordering::SeqCst));
        assert_eq!(p.reap(Role::Receiver), Left::Some);
        assert_eq!(p.reap(Role::Sender), Left::Last);
        assert!(p.gone(Role::Sender, Ordering::SeqCst));
        assert!(!p.gone(Role::Receiver, Ordering::SeqCst));
    }
}
