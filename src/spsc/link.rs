//! Attachment and liveness of the two ends of an SPSC queue: the owner words in the
//! control block, attach and detach, whether the peer has gone (or died), how often
//! to ask, the segment each constructor makes or opens, and the report `inspect`
//! reads. The ring itself is `ring.rs`.
//!
//! Sync point "detach" (both ends are here): a leaving side stores its owner word
//! with Release (`SeqCst`) after its last store to the ring or its index
//! (`Link::detach`); the peer loads it with Acquire (`Link::peer_gone`) and then
//! looks at the ring again, so a receiver that sees its sender gone drains every
//! batch the sender committed before it gets `Disconnected`.

use std::fmt;

use bytemuck::Pod;

use super::dims::Dims;
use super::ring::{Ring, SpscControl};
use crate::layout::{Geometry, TypeInfo};
use crate::options::Options;
use crate::segment::{Create, ProcId, Region};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use crate::wait::{self, Deadline, Liveness, WaitPolicy, WakeProtocol};
use crate::{Error, Result, Role};

/// States of an owner word: `ProcId::pack() << 8 | state` (module docs of
/// `spsc`, "A process dies").
// 0 = never attached (the zeroed initial state).
const ATTACHED: u64 = 1;
const LEFT: u64 = 2;

const fn owner(who: ProcId, state: u64) -> u64 {
    who.pack() << 8 | state
}
const fn owner_state(word: u64) -> u64 {
    word & 0xff
}
/// The process in an owner word; any bits decode to some `ProcId` (the top two
/// bits are ignored), whose `alive` is at worst a wrong answer, never a panic.
const fn owner_id(word: u64) -> ProcId {
    ProcId::unpack(word >> 8)
}
const _: () = assert!(crate::segment::PROC_BITS + 8 <= 64);

/// Owner words and futex words: written rarely (attach, detach, going to sleep),
/// read on every operation, so they share a line that stays cached.
#[repr(C)]
#[derive(Default)]
pub(super) struct Peers {
    /// Producer's owner word: `ProcId::pack() << 8 | state`, the state in bits
    /// 0..8 (0 never attached, `ATTACHED`, `LEFT`), the producer's pid in bits
    /// 8..30 and its start time in bits 30..62; bits 62..64 are 0. Written by the
    /// attaching/leaving producer (Acquire CAS / `SeqCst` store), and by a
    /// consumer that found the producer's process dead (Acquire CAS ATTACHED ->
    /// LEFT, keeping the `ProcId`); read with Acquire (`SeqCst` before sleeping).
    /// See `link.rs`.
    pub(super) producer: AtomicU64,
    /// Consumer's owner word, likewise.
    pub(super) consumer: AtomicU64,
    /// Futex: 1 while the consumer may sleep waiting for data.
    pub(super) data_ready: AtomicU32,
    /// Futex: 1 while the producer may sleep waiting for space.
    pub(super) space_ready: AtomicU32,
    /// 1 while the producer publishes without a fence: a consumer about to sleep
    /// runs the heavy barrier (wait.rs, "Switching"). Written by the producer.
    pub(super) producer_light: AtomicU32,
    /// Likewise for the consumer's releases and a sleeping producer.
    pub(super) consumer_light: AtomicU32,
    /// Consumer sleeps so far (wrapping; a report that steers an adaptive
    /// producer's choice, nothing more).
    pub(super) data_sleeps: AtomicU32,
    /// Producer sleeps so far, likewise.
    pub(super) space_sleeps: AtomicU32,
}

/// One attached end: the ring, which end we are, and when we last asked whether
/// the peer's process lives.
pub(super) struct Link {
    pub(super) ring: Ring,
    role: Role,
    /// This process, as recorded in our owner word.
    me: ProcId,
    /// When to check the peer's process: a check costs a system call and a read
    /// of `/proc` (~10 µs), which a polling loop must not pay often.
    live: Liveness,
    /// Whether we hold our end (a failed attach must not detach the live holder).
    attached: bool,
    /// How our blocking calls wait.
    pub(super) policy: WaitPolicy,
}

impl Link {
    /// Attach to `region` as `role`: take the owner word, or fail with
    /// `AlreadyAttached` if a live process holds it.
    pub(super) fn new(region: Arc<Region>, role: Role) -> Result<Link> {
        wait::init();
        let mut link = Link {
            ring: Ring::new(region)?,
            role,
            me: ProcId::me(),
            live: Liveness::new(),
            attached: false,
            policy: WaitPolicy::default(),
        };
        link.attach()?;
        link.attached = true;
        Ok(link)
    }

    /// Our owner word and the peer's.
    fn words(&self) -> (&AtomicU64, &AtomicU64) {
        let p = &self.ring.ctl().peers;
        match self.role {
            Role::Sender => (&p.producer, &p.consumer),
            Role::Receiver => (&p.consumer, &p.producer),
        }
    }

    fn attach(&self) -> Result<()> {
        let (mine, _) = self.words();
        // Acquire pairs with the previous holder's "detach" Release store, so we
        // start from its final index.
        let mut cur = mine.load(Ordering::Acquire);
        loop {
            // A holder whose process died, is a zombie, or whose pid now names
            // another process (another start time) is gone: take its place.
            if owner_state(cur) == ATTACHED && owner_id(cur).alive() {
                return Err(Error::AlreadyAttached {
                    name: self.ring.region().name().unwrap_or("<heap>").to_owned(),
                    role: self.role,
                    pid: owner_id(cur).pid,
                });
            }
            // Acquire as the load above (the previous holder's final stores); no
            // Release: nobody acquires an ATTACHED word to read what we wrote.
            match mine.compare_exchange(
                cur,
                owner(self.me, ATTACHED),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    fn detach(&self) {
        let (mine, _) = self.words();
        // Sync point "detach": SeqCst (a Release store) after our last index store;
        // pairs with the peer's Acquire load in `peer_gone`, and is K1 of the wake
        // protocol for a peer about to sleep (wait.rs).
        mine.store(owner(self.me, LEFT), Ordering::SeqCst);
        let p = &self.ring.ctl().peers;
        wait::wake_always(match self.role {
            Role::Sender => &p.data_ready,
            Role::Receiver => &p.space_ready,
        });
    }

    /// Whether the peer attached once and is gone. With `check_pid`, a peer whose
    /// process died is marked as gone too (one system call).
    #[inline]
    pub(super) fn peer_gone(&self, check_pid: bool) -> bool {
        let (_, peer) = self.words();
        // Sync point "detach": after seeing LEFT, a reload of the peer's index sees
        // its final value.
        let w = peer.load(Ordering::Acquire);
        match owner_state(w) {
            LEFT => true,
            ATTACHED if check_pid => Self::mark_if_dead(peer, w),
            _ => false,
        }
    }

    /// The slow half of `peer_gone`: one system call (and a `/proc` read).
    #[cold]
    #[inline(never)]
    fn mark_if_dead(peer: &AtomicU64, w: u64) -> bool {
        // Record the death for everyone; losing the race to a new peer's attach is
        // fine (then it is not gone). Acquire as in `peer_gone`; no Release: we
        // publish nothing with this word (a dead process's stores are all done).
        // Only a word that names the same process (pid and start time) is marked:
        // a new peer's ATTACHED word is another value, so the CAS fails on it.
        !owner_id(w).alive()
            && peer
                .compare_exchange(
                    w,
                    owner(owner_id(w), LEFT),
                    Ordering::Acquire,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Count a failed poll; say whether a pid check is due (`wait::Liveness`:
    /// at most every slice, and for polling calls once per so many polls).
    #[inline]
    pub(super) fn liveness_due(&mut self, sleeping: bool) -> bool {
        self.live.due(sleeping)
    }

    /// Whether the peer's owner word still says attached (`SeqCst`: W2 of the wake
    /// protocol, paired with the `SeqCst` detach store).
    pub(super) fn peer_attached_seqcst(&self) -> bool {
        let (_, peer) = self.words();
        owner_state(peer.load(Ordering::SeqCst)) != LEFT
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.attached {
            self.detach();
        }
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("name", &self.ring.region().name())
            .field("role", &self.role)
            .field("dims", &self.ring.dims)
            .finish_non_exhaustive()
    }
}

/// A heap region for a queue of `capacity` elements of `T` (`channel`).
pub(super) fn heap_region<T: Pod>(capacity: usize) -> Result<Arc<Region>> {
    let ty = TypeInfo::of::<T>()?;
    let mut g = Dims::for_capacity(&ty, capacity, None)?.geometry(&ty)?;
    g.wake = WakeProtocol::default_for_new();
    Ok(Arc::new(Region::heap::<SpscControl>(g, &ty, |_| {})))
}

fn make_region(name: &str, g: Geometry, ty: &TypeInfo, how: &Create) -> Result<Arc<Region>> {
    let region = Region::create_shm::<SpscControl>(name, g, ty, how, |_| {})?;
    Ok(Arc::new(region))
}

fn open_region(name: &str, ty: &TypeInfo, init_wait: Deadline) -> Result<Arc<Region>> {
    let region =
        Region::open_shm::<SpscControl>(name, ty, init_wait, |g| Dims::from_geometry(g).map(drop))?;
    Ok(Arc::new(region))
}

/// The segment of a new queue of `T` (what `create_with` of both ends makes), or,
/// with `or_open`, of the existing one if there is one (`open_or_create`).
pub(super) fn create_region<T: Pod>(
    name: &str,
    capacity: usize,
    opts: &Options,
    or_open: bool,
) -> Result<Arc<Region>> {
    let ty = opts.type_info::<T>()?;
    let mut g = Dims::for_capacity(&ty, capacity, opts.spsc_max_batch())?.geometry(&ty)?;
    g.wake = opts.protocol();
    let make = |how: &Create| make_region(name, g, &ty, how);
    if or_open {
        opts.open_or_create(name, make, |init_wait| open_region(name, &ty, init_wait))
    } else {
        opts.create(name, make)
    }
}

/// The segment of an existing queue of `T` (what `open_with` of both ends opens).
pub(super) fn open_region_with<T: Pod>(name: &str, opts: &Options) -> Result<Arc<Region>> {
    let ty = opts.type_info::<T>()?;
    opts.open(|init_wait| open_region(name, &ty, init_wait))
}

/// A snapshot of an SPSC control block, for inspection (`shmbatch::inspect`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpscStats {
    /// Bytes ever published and released; `tail - head` is the fill in bytes.
    pub tail: u64,
    pub head: u64,
    /// `(process, attached)` of the producer and the consumer; `None` if never
    /// attached.
    pub producer: Option<(ProcId, bool)>,
    pub consumer: Option<(ProcId, bool)>,
}

/// Read a control block without taking part in its protocol (Relaxed loads only:
/// the values are a report, never used to form a pointer).
pub(crate) fn stats(ctl: &SpscControl) -> SpscStats {
    let side = |w: &AtomicU64| {
        let w = w.load(Ordering::Relaxed);
        match owner_state(w) {
            ATTACHED => Some((owner_id(w), true)),
            LEFT => Some((owner_id(w), false)),
            _ => None,
        }
    };
    let (tail, head) = ctl.positions();
    SpscStats {
        tail,
        head,
        producer: side(&ctl.peers.producer),
        consumer: side(&ctl.peers.consumer),
    }
}
