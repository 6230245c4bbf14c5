//! A handle's attachment to a queue (an entry in the segment's attachment table,
//! which names it in claim words and tells its liveness) and its process-local
//! state; creating and opening the queue of a segment.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytemuck::Pod;

use super::queue::{Queue, Seen};
use super::wire::{geometry, init_slots, sub, ClaimWord, Dims, Holder, MpmcControl, PosWord, Side};
use crate::error::{Error, Result};
use crate::layout::Role;
use crate::layout::TypeInfo;
use crate::options::Options;
use crate::peers::{self, Left, TABLE_LEN};
use crate::segment::{Create, ProcId, Region};
use crate::sync::{Arc, Ordering};
use crate::wait::{self, Deadline, Liveness, WaitPolicy};

/// One entry in the attachment table, shared by a handle and its clones; detaches
/// when the last of them drops.
pub(super) struct Attachment {
    pub(super) queue: Arc<Queue>,
    pub(super) role: Role,
    proc: ProcId,
    slot: peers::Slot,
    /// `Holder::of(slot)`.
    pub(super) holder: Holder,
}

impl Attachment {
    pub(super) fn new(queue: Arc<Queue>, role: Role) -> Result<Arc<Attachment>> {
        wait::init();
        let proc = ProcId::me();
        let slot = queue
            .ctl()
            .peers
            .attach(role, proc)
            .map_err(|_| Error::TooManyAttached {
                name: queue.name().to_owned(),
                max: TABLE_LEN,
            })?;
        Ok(Arc::new(Attachment {
            queue,
            role,
            proc,
            slot,
            holder: Holder::of(slot),
        }))
    }

    /// Our claim word for `pos` on `side`.
    #[inline]
    pub(super) fn claim(&self, side: Side, pos: u64) -> ClaimWord {
        ClaimWord::new(self.holder, side, pos)
    }

    /// Make this attachment look dead (tests): see [`PeerTable::simulate_death`].
    pub(super) fn simulate_death(&self) {
        self.queue
            .ctl()
            .peers
            .simulate_death(self.role, self.proc, self.slot);
    }

    pub(super) fn peer(&self) -> Role {
        match self.role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }

    /// Whether the other side attached once and is gone. With `check_pids`, the
    /// dead processes of both sides are reaped first (system calls; a reap of our
    /// own side tells the others to look for batches a dead receiver held).
    pub(super) fn peer_gone(&self, check_pids: bool) -> bool {
        let q = &self.queue;
        let peers = &q.ctl().peers;
        if check_pids {
            for role in [self.peer(), self.role] {
                if peers.reap(role) == Left::Last {
                    // The other side's sleepers wait for `role`: let them see it
                    // is gone.
                    wait::wake_always(q.flag_waiting_for(role));
                }
            }
        }
        // Sync point "detach": Acquire pairs with the peers' decrements (peers.rs).
        peers.gone(self.peer(), Ordering::Acquire)
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let q = &self.queue;
        if q.ctl().peers.detach(self.role, self.proc, self.slot) == Left::Last {
            // The peer's sleepers wait for us: wake them whatever the flag says
            // (`wake_always` explains why that needs no K2).
            wait::wake_always(q.flag_waiting_for(self.role));
        }
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.queue.region.name())
            .field("role", &self.role)
            .field("dims", &self.queue.dims)
            .finish_non_exhaustive()
    }
}

/// A handle's process-local state: its attachment, and the bookkeeping of its
/// waits, shared by the threads that use the handle (so `std` atomics, never in
/// the segment).
#[derive(Debug)]
pub(super) struct End {
    pub(super) att: Arc<Attachment>,
    /// When to look at the peers' liveness.
    pub(super) live: Liveness,
    /// The `deaths` count of the last scan for orphaned batches that found none
    /// (receivers only).
    pub(super) scanned: AtomicU64,
    /// How the handle's blocking calls wait.
    pub(super) policy: WaitPolicy,
}

impl End {
    pub(super) fn new(att: Arc<Attachment>) -> End {
        End {
            att,
            live: Liveness::new(),
            // Not a count anyone has: the first empty slow path scans.
            scanned: AtomicU64::new(u64::MAX),
            policy: WaitPolicy::default(),
        }
    }

    /// A new end on the same attachment (a clone of the handle).
    pub(super) fn clone_end(&self) -> End {
        End {
            policy: self.policy,
            ..End::new(Arc::clone(&self.att))
        }
    }

    pub(super) fn queue(&self) -> &Queue {
        &self.att.queue
    }

    /// Sleep until the peer acts, unless the slot or position we last saw (`seen`)
    /// changed or the peer left. When a liveness check is due, do not sleep: the
    /// next attempt checks, and recovers what the dead hold, where it can act on it.
    pub(super) fn sleep(&self, seen: Seen, slice: Duration) {
        if self.live.due(true) {
            self.live.ask();
            return;
        }
        if self.att.peer_gone(false) {
            return; // the next attempt reports it
        }
        let q = self.queue();
        let peer = self.att.peer();
        // Our side's position, and the other side's with the value it holds while
        // nobody has claimed what we wait for: for a receiver at head h, tail is
        // h; for a sender at tail t, head is where the previous lap's batch in
        // our slot was (t - one lap).
        let (pos, other, idle) = match self.att.role {
            Role::Sender => (&q.ctl().tail, &q.ctl().head, sub(seen.pos, q.dims.one_lap)),
            Role::Receiver => (&q.ctl().head, &q.ctl().tail, seen.pos),
        };
        // A claim already in flight: no need to announce a sleep (which would make
        // the claimer's publish pay a futex system call for nobody).
        if PosWord(other.load(Ordering::SeqCst)).pos() != idle {
            crate::sync::yield_now();
            return;
        }
        let mut claimed = false;
        wait::sleep_claimed(
            q.flag_waiting_for(peer),
            // W2 (wait.rs, "MPMC: ordered by the claim"): SeqCst loads of the
            // other side's position, which its claim CAS (K1) moves; of the stamp
            // we wait at and of the peer count a detach changes. Our own position
            // is not written by any K1 (same-side claims move it and wake nobody):
            // it is looked at so that a sleeper whose position moved tries again
            // at once.
            || {
                claimed = PosWord(other.load(Ordering::SeqCst)).pos() != idle;
                claimed
                    || PosWord(pos.load(Ordering::SeqCst)).pos() != seen.pos
                    || q.header(seen.index).stamp.load(Ordering::SeqCst) != seen.stamp
                    || q.ctl().peers.gone(peer, Ordering::SeqCst)
            },
            slice,
        );
        if claimed {
            // A claim is in flight (its holder is about to publish, or died and
            // is recovered at the next liveness check): give the CPU away rather
            // than spin on the next attempt.
            crate::sync::yield_now();
        }
    }
}

/// The queue of a new segment of `T` (what `create_with` of both ends makes), or,
/// with `or_open`, of the existing one if there is one (`open_or_create`).
pub(super) fn create_queue<T: Pod>(
    name: &str,
    slots: usize,
    max_batch: usize,
    opts: &Options,
    or_open: bool,
) -> Result<Arc<Queue>> {
    let ty = opts.type_info::<T>()?;
    let (g, dims) = geometry(&ty, slots, max_batch)?;
    let make = |how: &Create| {
        let region =
            Region::create_shm::<MpmcControl>(name, g, &ty, how, |r| init_slots(r, &dims))?;
        Ok(Arc::new(Queue::new(region)?))
    };
    if or_open {
        opts.open_or_create(name, make, |init_wait| open_queue(name, &ty, init_wait))
    } else {
        opts.create(name, make)
    }
}

/// The queue of the existing segment `name` of `ty`, waiting for its header until
/// `init_wait`.
pub(super) fn open_queue(name: &str, ty: &TypeInfo, init_wait: Deadline) -> Result<Arc<Queue>> {
    let region =
        Region::open_shm::<MpmcControl>(name, ty, init_wait, |g| Dims::from_geometry(g).map(drop))?;
    Ok(Arc::new(Queue::new(region)?))
}
