//! Single-producer single-consumer queue of variable-length batches.
//!
//! One [`Sender`] and one [`Receiver`], usually in two processes, share a ring of
//! bytes in a named segment. Every batch is stored contiguously — a header word,
//! then the elements — so the receiver gets it as one `&[T]` (or `&mut [T]`) in place.
//!
//! # Behaviour
//! - **Full**: [`Sender::send`] and [`Sender::reserve`] wait (spin, yield, then
//!   sleep on a futex in the segment); [`Sender::try_send`] returns
//!   [`TrySendError::Full`]; `send_timeout` gives up after its timeout.
//! - **Empty**: [`Receiver::recv`] waits the same way; [`Receiver::try_recv`]
//!   returns [`TryRecvError::Empty`].
//! - **Batch length**: from 0 to [`Sender::max_batch`] elements: at least half the
//!   capacity asked for at creation, or fewer if [`Options::max_batch`] says so;
//!   longer batches are refused with `TooLarge`.
//! - **Peer gone**: when the sender drops (or its process dies), the receiver first
//!   drains every committed batch and then gets `Disconnected`. When the receiver
//!   drops or dies, sends return `Disconnected`. Before the peer has attached for the
//!   first time, a side just waits: `Disconnected` means the peer came and left. A
//!   new peer may attach after the old one left, and the queue resumes.
//! - **One of each**: a second sender (or receiver) opening the segment while a live
//!   one is attached gets [`Error::AlreadyAttached`]. If the holder died, the new
//!   handle takes its place: a batch that a dead receiver was reading is delivered
//!   again, a batch that a dead sender had not committed is gone.
//!
//! # A process dies
//! Each owner word records its process as the kernel knows it: pid and start time
//! (field 22 of `/proc/PID/stat`). A side that finds its peer attached but idle
//! asks, at most every 20 ms while polling and before each sleep slice, whether
//! that process still runs: it must exist, must not be a zombie (dead, not yet
//! reaped by its parent), and must have the recorded start time. So a pid that the
//! kernel has handed to a new process does not make a dead peer look alive, and an
//! attaching handle takes a dead holder's place at once. Pids are those of the
//! caller's pid namespace: processes that share a queue must share a pid namespace
//! (a peer in another one looks dead). Start times are kept to 32 bits of clock
//! ticks, so only the same pid reused a multiple of ~497 days later is confused;
//! where `/proc` cannot be read, only the pid is checked.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmbatch::spsc::{Receiver, Sender};
//! # let name = format!("doc-spsc-{}", std::process::id());
//! let mut tx = Sender::<f64>::create(&name, 4096)?; // creator: unlinks on drop
//! let mut rx = Receiver::<f64>::open(&name)?;       // usually in another process
//!
//! tx.send(&[1.0, 2.0, 3.0])?;                        // copying path
//! let mut slot = tx.reserve(2)?;                     // zero-copy path
//! slot.copy_from_slice(&[4.0, 5.0]);
//! slot.commit();
//!
//! let mut batch = rx.recv()?;                        // a guard over the ring
//! batch[0] += 10.0;                                  // may be modified in place
//! assert_eq!(&*batch, &[11.0, 2.0, 3.0]);
//! drop(batch);                                       // frees the space
//! let mut v = Vec::new();
//! rx.recv_into(&mut v)?;
//! assert_eq!(v, [4.0, 5.0]);
//!
//! drop(tx);
//! assert!(rx.recv().is_err()); // Disconnected: drained, and the sender is gone
//! # Ok(()) }
//! ```
//!
//! # The ring
//! Positions `head` and `tail` count bytes since creation (they never wrap: 2^64
//! bytes). A record is a `u64` header word padded to the unit
//! `U = max(8, align_of::<T>())`, then the elements padded to `U`. The header holds
//! `len + 1`; `0` means "nothing published here yet" and `u64::MAX` is a wrap
//! marker: the record did not fit before the end of the ring and starts at offset 0
//! (the skipped bytes count as used). A record is at most half the ring, which
//! guarantees that an empty ring accepts any allowed batch wherever its write offset
//! stands.
//!
//! The consumer polls the header at its read offset, not the producer's index: a
//! batch then costs the consumer one cache-line transfer (header and first elements
//! together) instead of two (index, then record). For that, the header at the
//! producer's write offset must always read `0` until a record is published there,
//! whatever the previous lap left in those bytes: before publishing a record, the
//! producer writes `0` at the place of the *next* record. That word must be free, so
//! the producer keeps one unit of the ring unused.
//!
//! Sync points (both ends are labelled in the code):
//! - "publish batch": the producer writes a record and the empty header after it,
//!   then stores the record's header (or the wrap marker before it) with Release;
//!   the consumer loads the header with Acquire before reading the batch. The
//!   producer then stores `tail` (Release), which nothing reads to receive: only
//!   attaching handles, the consumer's periodic sanity check (`check_tail`) and
//!   `inspect` read it.
//! - "free space": the consumer stores `head` (Release) after it is done with a
//!   batch; the producer loads `head` with Acquire before reusing that space.
//! - "detach": a leaving side stores its owner word with Release after its last
//!   store to the ring or its index; the peer loads it with Acquire and then looks
//!   at the ring again.
//!
//! Each publish ends with `wait::wake`, whose barrier costs a compiler fence where
//! Linux's `membarrier(2)` is available (see [`crate::asymmetric_wake`]).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{
    Error, RecvError, RecvTimeoutError, Result, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use crate::layout::{Geometry, Kind, Padded, Role, TypeInfo, MAX_SEGMENT_LEN};
use crate::options::Options;
use crate::segment::{Control, Create, ProcId, Region};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use crate::wait::{self, Deadline};

/// Header of a wrap marker.
const WRAP: u64 = u64::MAX;
/// Header of a place where nothing is published yet (a zeroed ring is all empty).
const EMPTY: u64 = 0;

/// States of an owner word: `ProcId::pack() << 8 | state` (module docs, "A
/// process dies").
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

/// How many failed polls between two liveness checks of the peer's process.
const LIVENESS_EVERY: u32 = 1024;

/// Least time between two liveness checks from the non-blocking calls: a check
/// costs a system call and a read of `/proc` (~10 µs), which a polling loop must
/// not pay often.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(20);

/// The SPSC control block at `CONTROL_OFFSET`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct SpscControl {
    /// Bytes ever published. Written by the producer only (Release store after
    /// each record's header), read on slow paths only: by attaching handles,
    /// `check_tail` and `inspect`. The consumer reads records through their
    /// headers, so it may release a record before its producer stores `tail`:
    /// `tail` is within one ring of `head`, on either side.
    tail: Padded<AtomicU64>,
    /// Bytes ever released. Written by the consumer only (Release store), read by
    /// the producer (Acquire, when its cached copy says the ring is full; `SeqCst`
    /// while it sleeps).
    head: Padded<AtomicU64>,
    /// Owner words and futex words: written rarely (attach, detach, going to
    /// sleep), read on every operation, so they share a line that stays cached.
    peers: Padded<Peers>,
}

#[repr(C)]
#[derive(Default)]
struct Peers {
    /// Producer's owner word: `ProcId::pack() << 8 | state`, the state in bits
    /// 0..8 (0 never attached, `ATTACHED`, `LEFT`), the producer's pid in bits
    /// 8..30 and its start time in bits 30..62; bits 62..64 are 0. Written by the
    /// attaching/leaving producer (Acquire CAS / `SeqCst` store), and by a
    /// consumer that found the producer's process dead (Acquire CAS ATTACHED ->
    /// LEFT, keeping the `ProcId`); read with Acquire (`SeqCst` before sleeping).
    producer: AtomicU64,
    /// Consumer's owner word, likewise.
    consumer: AtomicU64,
    /// Futex: 1 while the consumer may sleep waiting for data.
    data_ready: AtomicU32,
    /// Futex: 1 while the producer may sleep waiting for space.
    space_ready: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<SpscControl>() == 3 * crate::layout::LINE);

// SAFETY: all-zero is the valid initial state (positions 0, owners NEVER, nobody
// asleep), and the block holds atomics only.
unsafe impl Control for SpscControl {
    const KIND: Kind = Kind::Spsc;
}

/// Sizes of the ring, fixed at creation and validated on open.
#[derive(Debug, Clone, Copy)]
struct Dims {
    /// Ring length in bytes: a multiple of `2 * unit`.
    ring: usize,
    /// Record alignment unit: `max(8, align_of::<T>())`.
    unit: usize,
    /// `size_of::<T>()`.
    elem: usize,
    /// Largest batch in elements; `record(max_batch) <= ring / 2`.
    max_batch: usize,
}

impl Dims {
    /// Dims of a ring for `capacity` elements, carrying batches of up to
    /// `max_batch` elements (by default the most it can).
    fn for_capacity(ty: &TypeInfo, capacity: usize, max_batch: Option<usize>) -> Result<Dims> {
        let too_large = || Error::InvalidSize {
            what: "capacity",
            value: capacity,
            reason: format!("the ring would exceed {MAX_SEGMENT_LEN} bytes"),
        };
        if capacity == 0 {
            return Err(Error::InvalidSize {
                what: "capacity",
                value: 0,
                reason: "must be at least 1 element".into(),
            });
        }
        let unit = ty.align.max(8);
        let half_payload = capacity
            .div_ceil(2)
            .checked_mul(ty.size)
            .filter(|&b| b <= MAX_SEGMENT_LEN / 2)
            .ok_or_else(too_large)?
            .next_multiple_of(unit);
        let ring = 2 * (unit + half_payload);
        if ring > MAX_SEGMENT_LEN - 4096 {
            return Err(too_large());
        }
        let most = half_payload / ty.size;
        let max_batch = match max_batch {
            None => most,
            Some(m) if (1..=most).contains(&m) => m,
            Some(m) => {
                return Err(Error::InvalidSize {
                    what: "max_batch",
                    value: m,
                    reason: format!(
                        "must be in 1..={most} for a capacity of {capacity} elements (a batch \
                         takes at most half the ring)"
                    ),
                })
            }
        };
        Ok(Dims {
            ring,
            unit,
            elem: ty.size,
            max_batch,
        })
    }

    fn from_geometry(g: &Geometry) -> Result<Dims> {
        let ring = usize::try_from(g.capacity).unwrap_or(usize::MAX);
        let unit = g.elem_align.max(8);
        let max_batch = usize::try_from(g.max_batch).unwrap_or(usize::MAX);
        if !unit.is_power_of_two()
            || ring != g.data_len
            || ring < 2 * unit
            || ring % (2 * unit) != 0
        {
            return Err(Error::corrupted("spsc ring length is inconsistent"));
        }
        let dims = Dims {
            ring,
            unit,
            elem: g.elem_size,
            max_batch,
        };
        match max_batch.checked_mul(g.elem_size) {
            Some(b) if unit + b.next_multiple_of(unit) <= ring / 2 => Ok(dims),
            _ => Err(Error::corrupted(
                "spsc maximum batch does not fit half the ring",
            )),
        }
    }

    /// Bytes a record of `len` elements occupies; `len <= max_batch`.
    #[inline]
    fn record(&self, len: usize) -> usize {
        // `unit` is a power of two (the header's alignment was validated as one), so
        // rounding up is a mask, not a division; no overflow: the result is at most
        // ring / 2.
        let mask = self.unit - 1;
        self.unit + ((len * self.elem + mask) & !mask)
    }
}

/// Plumbing shared by both ends: the region, its control block and who we are.
struct Link {
    region: Arc<Region>,
    ctl: NonNull<SpscControl>,
    data: NonNull<u8>,
    dims: Dims,
    role: Role,
    /// This process, as recorded in our owner word.
    me: ProcId,
    /// Failed polls since the last liveness check of the peer.
    idle: u32,
    /// When the non-blocking calls last checked the peer's process.
    checked_at: Instant,
    /// Whether we hold our end (a failed attach must not detach the live holder).
    attached: bool,
}

// SAFETY: the pointers point into `region`, which the Link keeps alive and which is
// Send + Sync; the Link itself has no thread affinity.
unsafe impl Send for Link {}

impl Link {
    fn new(region: Arc<Region>, role: Role) -> Result<Link> {
        wait::init();
        let dims = Dims::from_geometry(region.geometry())?;
        let ctl = NonNull::from(region.control::<SpscControl>());
        let data = region.data();
        let mut link = Link {
            region,
            ctl,
            data,
            dims,
            role,
            me: ProcId::me(),
            idle: 0,
            checked_at: Instant::now(),
            attached: false,
        };
        link.attach()?;
        link.attached = true;
        Ok(link)
    }

    #[inline]
    fn ctl(&self) -> &SpscControl {
        // SAFETY: points into `self.region`'s control block, alive as long as self.
        unsafe { self.ctl.as_ref() }
    }

    fn words(&self) -> (&AtomicU64, &AtomicU64) {
        let p = &self.ctl().peers;
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
                    name: self.region.name().unwrap_or("<heap>").to_owned(),
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
        let p = &self.ctl().peers;
        wait::wake_always(match self.role {
            Role::Sender => &p.data_ready,
            Role::Receiver => &p.space_ready,
        });
    }

    /// Whether the peer attached once and is gone. With `check_pid`, a peer whose
    /// process died is marked as gone too (one system call).
    #[inline]
    fn peer_gone(&self, check_pid: bool) -> bool {
        let (_, peer) = self.words();
        // Pairs with the peer's "detach" store: after seeing LEFT, a reload of the
        // peer's index sees its final value.
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

    /// Count a failed poll; say a pid check is due at most every
    /// `LIVENESS_INTERVAL` (polling calls read the clock once per `LIVENESS_EVERY`
    /// polls; a side about to sleep reads it every time).
    #[inline]
    fn liveness_due(&mut self, sleeping: bool) -> bool {
        self.idle = self.idle.wrapping_add(1);
        if !sleeping && self.idle % LIVENESS_EVERY != 0 {
            return false;
        }
        let now = Instant::now();
        if now.duration_since(self.checked_at) < LIVENESS_INTERVAL {
            return false;
        }
        self.checked_at = now;
        true
    }

    /// Whether the peer's owner word still says attached (`SeqCst`: W2 of the wake
    /// protocol, paired with the `SeqCst` detach store).
    fn peer_attached_seqcst(&self) -> bool {
        let (_, peer) = self.words();
        owner_state(peer.load(Ordering::SeqCst)) != LEFT
    }

    /// The record header at ring offset `off`.
    #[inline]
    fn header(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off + 8 <= self.dims.ring && off % self.dims.unit == 0);
        // SAFETY: off + 8 <= ring = data_len (callers pass their own read or write
        // offset, 0, or an offset reduced modulo ring from a unit-aligned position,
        // all unit-aligned and below ring by construction); the
        // data region is LINE-aligned, so the word is aligned; the region lives as
        // long as self. The word is payload in other laps: those plain accesses are
        // ordered with the header accesses by the sync points "publish batch" and
        // "free space" (module docs), since a place is only reused after its
        // previous record was released and only read after it was published.
        unsafe { crate::sync::region_word(self.region.shadow(), self.data.as_ptr(), off) }
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
            .field("name", &self.region.name())
            .field("role", &self.role)
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

/// Create a queue of `capacity` elements on the heap, for two threads of one process.
///
/// This runs exactly the algorithm of the shared-memory queue; it is what the loom
/// models, miri and the thread benchmarks use.
///
/// # Errors
/// [`Error::InvalidSize`] for a zero or absurd capacity, [`Error::UnsupportedType`]
/// for a zero-sized or over-aligned `T`.
pub fn channel<T: Pod>(capacity: usize) -> Result<(Sender<T>, Receiver<T>)> {
    let ty = TypeInfo::of::<T>()?;
    let g = geometry(&ty, capacity, None)?;
    let region = Arc::new(Region::heap::<SpscControl>(g, &ty, |_| {}));
    let tx = Sender::from_region(Arc::clone(&region))?;
    let rx = Receiver::from_region(region)?;
    Ok((tx, rx))
}

fn geometry(ty: &TypeInfo, capacity: usize, max_batch: Option<usize>) -> Result<Geometry> {
    let dims = Dims::for_capacity(ty, capacity, max_batch)?;
    Geometry::new(
        Kind::Spsc,
        ty,
        std::mem::size_of::<SpscControl>(),
        dims.ring,
        dims.ring as u64,
        dims.max_batch as u64,
        0,
    )
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

/// The segment of a new queue of `T` (what `create_with` of both ends makes).
fn create_region_with<T: Pod>(name: &str, capacity: usize, opts: &Options) -> Result<Arc<Region>> {
    let ty = opts.type_info::<T>()?;
    let g = geometry(&ty, capacity, opts.spsc_max_batch())?;
    opts.create(name, |how| make_region(name, g, &ty, how))
}

/// The segment of an existing queue of `T` (what `open_with` of both ends opens).
fn open_region_with<T: Pod>(name: &str, opts: &Options) -> Result<Arc<Region>> {
    let ty = opts.type_info::<T>()?;
    opts.open(|init_wait| open_region(name, &ty, init_wait))
}

/// What `open_or_create` of both ends attaches to.
fn open_or_create_region<T: Pod>(
    name: &str,
    capacity: usize,
    opts: &Options,
) -> Result<Arc<Region>> {
    let ty = opts.type_info::<T>()?;
    let g = geometry(&ty, capacity, opts.spsc_max_batch())?;
    opts.open_or_create(
        name,
        |how| make_region(name, g, &ty, how),
        |init_wait| open_region(name, &ty, init_wait),
    )
}

/// Largest position accepted at attach: 2^62 bytes is ~146 years at 1 TB/s, so a
/// larger one is damage, and the bound keeps our position arithmetic far from
/// overflow whatever a peer writes later (it is checked relative to ours).
const MAX_POSITION: u64 = 1 << 62;

/// Check positions read at attach; `mine` is the one this side will advance.
/// `tail` may be behind `head` (see [`SpscControl::tail`]), but never by more
/// than a ring, and never ahead by more than a ring.
fn check_positions(head: u64, tail: u64, d: &Dims, mine: u64) -> Result<()> {
    if head > MAX_POSITION
        || tail > MAX_POSITION
        || head.abs_diff(tail) > d.ring as u64
        || mine % d.unit as u64 != 0
    {
        return Err(Error::corrupted("spsc positions are inconsistent"));
    }
    Ok(())
}

/// The end of the published records, starting from the stored `tail` (or from
/// `head` if the consumer is already past it).
///
/// A producer that died between publishing a record's header and storing `tail`
/// left published records after `tail`; writing over them would corrupt what the
/// consumer reads. Records are followed by an empty header (module docs), so the
/// end is the first empty header from there on. Every header is validated: the
/// walk stays within one ring of `head`, so it ends after at most `ring / unit`
/// steps whatever the segment holds.
fn published_end(link: &Link, head: u64, tail: u64) -> Result<u64> {
    let mut tail = tail.max(head);
    let d = link.dims;
    let corrupted = || Error::corrupted("spsc records after the producer position are damaged");
    loop {
        let off = (tail % d.ring as u64) as usize;
        // Acquire pairs with the previous producer's "publish batch" store.
        let word = link.header(off).load(Ordering::Acquire);
        let advance = match word {
            EMPTY => return Ok(tail),
            WRAP if off == 0 => return Err(corrupted()),
            WRAP => d.ring - off,
            w if w - 1 > d.max_batch as u64 => return Err(corrupted()),
            w => d.record((w - 1) as usize),
        };
        if off + advance > d.ring {
            return Err(corrupted());
        }
        tail += advance as u64;
        // Keep the unit for the empty header free, as a live producer does.
        if tail - head + d.unit as u64 > d.ring as u64 {
            return Err(corrupted());
        }
    }
}

/// Where a claimed record goes.
#[derive(Debug, Clone, Copy)]
struct Claim {
    /// Offset of the record's header.
    off: usize,
    /// Offset of a wrap marker to write first, if the record wraps.
    wrap_at: Option<usize>,
}

/// The producing end of an SPSC queue.
///
/// `Send` but not `Sync`: move it to the thread that sends. See the
/// [module docs](self) for the behaviour when full or disconnected.
pub struct Sender<T: Pod = f64> {
    link: Link,
    /// Bytes published (our copy of `tail`).
    tail: u64,
    /// `tail % ring`: where the next record starts.
    off: usize,
    /// Last `head` we loaded; `tail - head_cache` bounds the used bytes.
    head_cache: u64,
    _t: PhantomData<fn(T)>,
}

impl<T: Pod> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("link", &self.link)
            .field("tail", &self.tail)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Sender<T> {
    /// Create the segment `name` with room for at least `capacity` elements, and
    /// attach to it as the sender. The segment is removed when this handle drops,
    /// unless [`persist`](Self::persist) is called.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidSize`] (zero or absurd capacity),
    /// [`Error::UnsupportedType`], [`Error::AlreadyExists`], [`Error::Io`].
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Self::create_with(name, capacity, &Options::default())
    }

    /// [`create`](Self::create) with [`Options`]: the file mode, `persist`,
    /// `reclaim_stale`, the type `tag` and `max_batch` apply.
    ///
    /// # Errors
    /// As [`create`](Self::create); [`Error::InvalidSize`] also for a `mode` with
    /// bits outside `0o777` or a `max_batch` the capacity cannot carry,
    /// [`Error::UnsupportedType`] for an invalid `tag`; with `reclaim_stale`,
    /// [`Error::AlreadyExists`] only if the segment there is not stale.
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Self> {
        Self::from_region(create_region_with::<T>(name, capacity, opts)?)
    }

    /// Open the existing segment `name` as its sender.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KindMismatch`], [`Error::TypeMismatch`],
    /// [`Error::VersionMismatch`], [`Error::Corrupted`], [`Error::NotReady`],
    /// [`Error::AlreadyAttached`] if a live sender holds it, [`Error::Io`].
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &Options::default())
    }

    /// [`open`](Self::open) with [`Options`]: `open_timeout` and the type `tag`
    /// apply.
    ///
    /// # Errors
    /// As [`open`](Self::open): with an `open_timeout`, [`Error::NotFound`] once it
    /// has passed without the segment appearing and [`Error::NotReady`] once it has
    /// passed with its header unpublished; [`Error::UnsupportedType`] for an
    /// invalid `tag`.
    pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
        Self::from_region(open_region_with::<T>(name, opts)?)
    }

    /// Open the segment `name` as its sender if it exists, else create it with room
    /// for at least `capacity` elements, and attach. Race-free: when several
    /// processes (or threads) do this at once, one creates the segment and the
    /// others open it. Whoever creates it owns it (removes it when dropping,
    /// unless `persist`); an existing segment keeps its capacity and maximum batch.
    /// Every option applies, as in [`create_with`](Self::create_with) and
    /// [`open_with`](Self::open_with) (`open_timeout` bounds only the wait for a
    /// header being written: a missing segment is created).
    ///
    /// # Errors
    /// Those of [`create_with`](Self::create_with) but `AlreadyExists`, and those of
    /// [`open_with`](Self::open_with); [`Error::NotFound`] only if the segment kept
    /// vanishing between a failed create and the open, 16 times over.
    pub fn open_or_create(name: &str, capacity: usize, opts: &Options) -> Result<Self> {
        Self::from_region(open_or_create_region::<T>(name, capacity, opts)?)
    }

    fn from_region(region: Arc<Region>) -> Result<Self> {
        let link = Link::new(region, Role::Sender)?;
        let ctl = link.ctl();
        // Acquire pairs with the consumer's "free space" store.
        let head = ctl.head.load(Ordering::Acquire);
        // A starting point only (published_end reads the headers themselves);
        // Acquire pairs with the previous producer's Release store of tail.
        let tail = ctl.tail.load(Ordering::Acquire);
        let d = link.dims;
        check_positions(head, tail, &d, tail)?;
        let tail = published_end(&link, head, tail)?;
        // Tell sleeping consumers and `inspect` (a no-op unless a producer died
        // between publishing a record and storing tail).
        ctl.tail.store(tail, Ordering::Release);
        Ok(Sender {
            off: (tail % d.ring as u64) as usize,
            tail,
            head_cache: head,
            link,
            _t: PhantomData,
        })
    }

    /// Longest batch this queue accepts, in elements.
    pub fn max_batch(&self) -> usize {
        self.link.dims.max_batch
    }

    /// Length of the ring in elements. Each batch also takes a header of
    /// `max(8, align_of::<T>())` bytes and is padded to that size, and one more
    /// header's worth of the ring always stays free (module docs).
    pub fn capacity(&self) -> usize {
        self.link.dims.ring / self.link.dims.elem
    }

    /// The segment name (`None` for a [`channel`]).
    pub fn name(&self) -> Option<&str> {
        self.link.region.name()
    }

    /// Keep the segment when the creating handle drops (no effect on an opener).
    pub fn persist(&self) {
        self.link.region.persist();
    }

    /// Whether the receiver attached once and is gone (checks that its process is
    /// alive: one system call).
    pub fn is_disconnected(&self) -> bool {
        self.link.peer_gone(true)
    }

    /// Find room for a record of `len` elements, without waiting.
    #[inline(always)]
    fn claim(&mut self, len: usize) -> Result<Claim, TrySendError> {
        let d = self.link.dims;
        if len > d.max_batch {
            return Err(TrySendError::TooLarge {
                len,
                max: d.max_batch,
            });
        }
        if self.link.peer_gone(false) {
            return Err(TrySendError::Disconnected);
        }
        let rec = d.record(len);
        let (off, wrap_at, need) = if self.off + rec <= d.ring {
            (self.off, None, rec)
        } else {
            (0, Some(self.off), d.ring - self.off + rec)
        };
        // `need` plus the empty header after the record (module docs).
        let need = need + d.unit;
        if self.tail - self.head_cache + need as u64 > d.ring as u64 {
            // Sync point "free space": Acquire pairs with the consumer's Release store
            // of head in `Receiver::release`; the space it frees is ours after this.
            let head = self.link.ctl().head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(head) > d.ring as u64 {
                return Err(TrySendError::Corrupted {
                    reason: "consumer position is ahead of the producer or too far behind",
                });
            }
            self.head_cache = head;
            if self.tail - head + need as u64 > d.ring as u64 {
                let check = self.link.liveness_due(false);
                if check && self.link.peer_gone(true) {
                    return Err(TrySendError::Disconnected);
                }
                return Err(TrySendError::Full);
            }
        }
        let shadow = self.link.region.shadow();
        if let Some(w) = wrap_at {
            shadow.write(w, d.unit);
        }
        shadow.write(off, rec);
        Ok(Claim { off, wrap_at })
    }

    /// Wait for room for `len` elements until `deadline`.
    #[inline]
    fn claim_until(&mut self, len: usize, deadline: Deadline) -> Result<Claim, SendTimeoutError> {
        match self.claim(len) {
            Ok(c) => Ok(c),
            Err(TrySendError::Full) => self.claim_wait(len, deadline),
            Err(e) => Err(e.into_blocking().expect("not Full").into()),
        }
    }

    /// The waiting half of `claim_until`, out of line.
    #[inline(never)]
    fn claim_wait(&mut self, len: usize, deadline: Deadline) -> Result<Claim, SendTimeoutError> {
        let r = wait::block(
            self,
            deadline,
            |s| match s.claim(len) {
                Ok(c) => Ok(Some(c)),
                Err(TrySendError::Full) => Ok(None),
                Err(e) => Err(e.into_blocking().expect("not Full")),
            },
            |s, slice| {
                let check = s.link.liveness_due(true);
                if s.link.peer_gone(check) {
                    return Ok(());
                }
                let ctl = s.link.ctl();
                let seen = s.head_cache;
                wait::sleep(
                    &ctl.peers.space_ready,
                    // W2 (wait.rs): pairs with K1, the consumer's store of head in
                    // `Receiver::release` or its detach store.
                    || ctl.head.load(Ordering::SeqCst) != seen || !s.link.peer_attached_seqcst(),
                    slice,
                );
                Ok(())
            },
        );
        match r {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(SendTimeoutError::Timeout),
            Err(e) => Err(e.into()),
        }
    }

    #[inline]
    fn payload(&self, claim: &Claim, len: usize) -> *mut T {
        debug_assert!(claim.off + self.link.dims.record(len) <= self.link.dims.ring);
        // SAFETY: claim.off + record(len) <= ring (claim), and the payload starts
        // `unit` bytes into the record; unit >= align_of::<T>() and offsets are
        // unit-aligned, so the pointer is aligned for T.
        unsafe {
            self.link
                .data
                .as_ptr()
                .add(claim.off + self.link.dims.unit)
                .cast::<T>()
        }
    }

    /// Write the record's header (and wrap marker) and publish it.
    #[inline(always)]
    fn publish(&mut self, claim: Claim, len: usize) {
        let d = self.link.dims;
        let rec = d.record(len);
        let next = if claim.off + rec == d.ring {
            0
        } else {
            claim.off + rec
        };
        let link = &self.link;
        link.region.shadow().write(next, 8);
        // The place of the next record reads empty until we publish there. It is
        // ours: the claim included one unit after the record. Relaxed: the Release
        // store below publishes it with the record.
        link.header(next).store(EMPTY, Ordering::Relaxed);
        let header = len as u64 + 1;
        let mut advance = rec;
        match claim.wrap_at {
            None => {
                // Sync point "publish batch": Release pairs with the consumer's
                // Acquire load of this header in `Receiver::look`.
                link.header(claim.off).store(header, Ordering::Release);
            }
            Some(w) => {
                // The consumer reaches offset 0 only through the marker at w.
                link.header(claim.off).store(header, Ordering::Relaxed);
                // Sync point "publish batch": Release pairs with the consumer's
                // Acquire load of the marker in `Receiver::look`, after which the
                // header at 0, the record and the empty header are visible.
                link.header(w).store(WRAP, Ordering::Release);
                advance += d.ring - w;
            }
        }
        self.off = next;
        self.tail += advance as u64;
        let ctl = link.ctl();
        // For attaching producers, sleeping consumers (K1 of the wake protocol,
        // wait.rs) and inspect; Release pairs with their Acquire/SeqCst loads.
        ctl.tail.store(self.tail, Ordering::Release);
        wait::wake(&ctl.peers.data_ready);
    }

    #[inline]
    fn copy_in(&mut self, batch: &[T], claim: Claim) {
        // SAFETY: the claim gives us record(len) bytes at claim.off that the consumer
        // does not touch until we publish; they do not overlap `batch`, which is
        // caller memory.
        unsafe {
            crate::verbs::copy_elems(
                batch.as_ptr(),
                self.payload(&claim, batch.len()),
                batch.len(),
            )
        };
        self.publish(claim, batch.len());
    }

    send_methods! {
        gone: "once the receiver is gone",
        room: "room",
        now: "there is room now",
        full: "when there is no room now",
        place: "room",
        reserve: "The room is inside the ring. Fill it through the returned guard and
[`commit`](Reservation::commit) it; dropping the guard publishes nothing.

The reserved elements hold whatever bytes were there before.",
    }

    fn reservation(&mut self, claim: Claim, len: usize) -> Reservation<'_, T> {
        Reservation {
            tx: self,
            claim,
            len,
        }
    }
}

/// Room for one batch inside the ring, from [`Sender::reserve`].
///
/// Derefs to `&mut [T]`. [`commit`](Self::commit) publishes the batch; dropping the
/// reservation without committing publishes nothing and frees the room.
pub struct Reservation<'a, T: Pod = f64> {
    tx: &'a mut Sender<T>,
    claim: Claim,
    len: usize,
}

impl<T: Pod> Reservation<'_, T> {
    /// Shorten the batch to `len` elements (no effect if `len` is not smaller):
    /// reserve for the longest case, fill some, commit that many.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Publish the batch to the receiver.
    pub fn commit(self) {
        self.tx.publish(self.claim, self.len);
    }
}

impl<T: Pod> Deref for Reservation<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the claim covers record(len) bytes that only we access until
        // publish; the pointer is aligned (see `payload`) and T is Pod, so any bytes
        // are a valid T.
        unsafe { std::slice::from_raw_parts(self.tx.payload(&self.claim, self.len), self.len) }
    }
}

impl<T: Pod> DerefMut for Reservation<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique in-process.
        unsafe { std::slice::from_raw_parts_mut(self.tx.payload(&self.claim, self.len), self.len) }
    }
}

impl<T: Pod> fmt::Debug for Reservation<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// A received batch in the ring.
#[derive(Debug, Clone, Copy)]
struct Peeked {
    /// Offset of the first element.
    payload: usize,
    len: usize,
    /// Bytes to release (record plus any wrap gap).
    advance: usize,
    /// Read offset after release.
    next_off: usize,
}

/// The consuming end of an SPSC queue.
///
/// `Send` but not `Sync`: move it to the thread that receives. See the
/// [module docs](self) for the behaviour when empty or disconnected.
pub struct Receiver<T: Pod = f64> {
    link: Link,
    /// Bytes released (our copy of `head`).
    head: u64,
    /// `head % ring`: where the next record starts.
    off: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("link", &self.link)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Receiver<T> {
    /// Create the segment `name` with room for at least `capacity` elements, and
    /// attach to it as the receiver. The segment is removed when this handle drops,
    /// unless [`persist`](Self::persist) is called.
    ///
    /// # Errors
    /// As [`Sender::create`].
    pub fn create(name: &str, capacity: usize) -> Result<Self> {
        Self::create_with(name, capacity, &Options::default())
    }

    /// [`create`](Self::create) with [`Options`], as [`Sender::create_with`].
    ///
    /// # Errors
    /// As [`Sender::create_with`].
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Self> {
        Self::from_region(create_region_with::<T>(name, capacity, opts)?)
    }

    /// Open the existing segment `name` as its receiver.
    ///
    /// # Errors
    /// As [`Sender::open`], with [`Error::AlreadyAttached`] if a live receiver
    /// holds it.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &Options::default())
    }

    /// [`open`](Self::open) with [`Options`], as [`Sender::open_with`].
    ///
    /// # Errors
    /// As [`Sender::open_with`].
    pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
        Self::from_region(open_region_with::<T>(name, opts)?)
    }

    /// Open the segment `name` as its receiver if it exists, else create it, as
    /// [`Sender::open_or_create`] (race-free; an existing segment keeps its
    /// geometry).
    ///
    /// # Errors
    /// As [`Sender::open_or_create`].
    pub fn open_or_create(name: &str, capacity: usize, opts: &Options) -> Result<Self> {
        Self::from_region(open_or_create_region::<T>(name, capacity, opts)?)
    }

    fn from_region(region: Arc<Region>) -> Result<Self> {
        let link = Link::new(region, Role::Receiver)?;
        let ctl = link.ctl();
        // Our side's index, last stored by the previous consumer: Acquire pairs
        // with its "free space" store (attach acquired its detach already).
        let head = ctl.head.load(Ordering::Acquire);
        // Checked for sanity only (records are read through their headers).
        let tail = ctl.tail.load(Ordering::Relaxed);
        let d = link.dims;
        check_positions(head, tail, &d, head)?;
        Ok(Receiver {
            off: (head % d.ring as u64) as usize,
            head,
            link,
            _t: PhantomData,
        })
    }

    /// Longest batch the queue carries, in elements.
    pub fn max_batch(&self) -> usize {
        self.link.dims.max_batch
    }

    /// Length of the ring in elements (see [`Sender::capacity`]).
    pub fn capacity(&self) -> usize {
        self.link.dims.ring / self.link.dims.elem
    }

    /// The segment name (`None` for a [`channel`]).
    pub fn name(&self) -> Option<&str> {
        self.link.region.name()
    }

    /// Keep the segment when the creating handle drops (no effect on an opener).
    pub fn persist(&self) {
        self.link.region.persist();
    }

    /// Whether the sender attached once and is gone (checks that its process is
    /// alive: one system call). Batches it committed may still be waiting.
    pub fn is_disconnected(&self) -> bool {
        self.link.peer_gone(true)
    }

    /// Whether no batch is waiting right now (what `try_recv` would see).
    pub fn is_empty(&self) -> bool {
        // Pairs with the producer's "publish batch" store, as in `look`.
        self.link.header(self.off).load(Ordering::Acquire) == EMPTY
    }

    /// Find the next batch, without waiting.
    #[inline]
    fn peek(&mut self) -> Result<Peeked, TryRecvError> {
        if let Some(p) = self.look()? {
            return Ok(p);
        }
        let check = self.link.liveness_due(false);
        if self.link.peer_gone(check) {
            // Everything the sender published happens-before its detach, which we
            // just observed: one more look is final.
            return self.look()?.ok_or(TryRecvError::Disconnected);
        }
        if check {
            self.check_tail()?;
        }
        Err(TryRecvError::Empty)
    }

    /// Read the header at our offset: the batch there, or `None` if nothing is
    /// published yet. The header is loaded once and validated before use.
    #[inline(always)]
    fn look(&self) -> Result<Option<Peeked>, TryRecvError> {
        let d = self.link.dims;
        let corrupted = |reason| Err(TryRecvError::Corrupted { reason });
        let shadow = self.link.region.shadow();
        let mut off = self.off;
        let mut skip = 0;
        // Sync point "publish batch": Acquire pairs with the producer's Release
        // store of this header (or wrap marker) in `Sender::publish`; the record is
        // visible after this.
        let mut word = self.link.header(off).load(Ordering::Acquire);
        if word == EMPTY {
            return Ok(None);
        }
        if word == WRAP {
            skip = d.ring - off;
            off = 0;
            // Relaxed: stored before the marker, whose Acquire load above made it
            // visible (sync point "publish batch").
            word = self.link.header(0).load(Ordering::Relaxed);
            if word == EMPTY || word == WRAP || skip == d.ring {
                return corrupted("wrap marker without a batch after it");
            }
        }
        let len = word - 1;
        if len > d.max_batch as u64 {
            return corrupted("batch length exceeds the maximum");
        }
        let len = len as usize;
        let rec = d.record(len);
        if off + rec > d.ring {
            return corrupted("batch extends past the end of the ring");
        }
        shadow.read(self.off, 8);
        shadow.write(off, rec);
        Ok(Some(Peeked {
            payload: off + d.unit,
            len,
            advance: skip + rec,
            next_off: if off + rec == d.ring { 0 } else { off + rec },
        }))
    }

    /// Check the producer's `tail` against what we see, on the slow paths only:
    /// `tail` is not needed to receive, but sleeping trusts it.
    fn check_tail(&self) -> Result<(), TryRecvError> {
        // Acquire pairs with the producer's Release store of tail in
        // `Sender::publish`: every header published before it is visible now.
        let tail = self.link.ctl().tail.load(Ordering::Acquire);
        let ahead = tail.wrapping_sub(self.head);
        // A tail behind us is harmless (a new producer is still looking for the end
        // of what a dead one published); one that is ahead must have a batch here.
        if ahead <= 1 << 63 && ahead != 0 {
            if ahead > self.link.dims.ring as u64 {
                return Err(TryRecvError::Corrupted {
                    reason: "producer position is too far ahead",
                });
            }
            if self.look()?.is_none() {
                return Err(TryRecvError::Corrupted {
                    reason: "producer position is ahead of the published batches",
                });
            }
        }
        Ok(())
    }

    /// Give the space of a received batch back to the producer.
    #[inline]
    fn release(&mut self, p: &Peeked) {
        let d = self.link.dims;
        self.link
            .region
            .shadow()
            .write(p.payload - d.unit, d.record(p.len));
        self.head += p.advance as u64;
        self.off = p.next_off;
        let ctl = self.link.ctl();
        // Sync point "free space": Release pairs with the producer's Acquire load of
        // head in `Sender::claim` (our reads and in-place writes of the batch happen
        // before it reuses the space). K1 of the wake protocol; `wake` supplies its
        // barrier (wait.rs).
        ctl.head.store(self.head, Ordering::Release);
        wait::wake(&ctl.peers.space_ready);
    }

    #[inline]
    fn peek_until(&mut self, deadline: Deadline) -> Result<Peeked, RecvTimeoutError> {
        match self.look() {
            Ok(Some(p)) => Ok(p),
            Ok(None) => self.peek_wait(deadline),
            Err(e) => Err(e.into_blocking().expect("not Empty").into()),
        }
    }

    /// The waiting half of `peek_until`, out of line.
    #[inline(never)]
    fn peek_wait(&mut self, deadline: Deadline) -> Result<Peeked, RecvTimeoutError> {
        let r = wait::block(
            self,
            deadline,
            |s| match s.peek() {
                Ok(p) => Ok(Some(p)),
                Err(TryRecvError::Empty) => Ok(None),
                Err(e) => Err(e.into_blocking().expect("not Empty")),
            },
            |s, slice| {
                let check = s.link.liveness_due(true);
                if s.link.peer_gone(check) {
                    return Ok(());
                }
                if check {
                    s.check_tail()
                        .map_err(|e| e.into_blocking().expect("not Empty"))?;
                }
                let header = s.link.header(s.off);
                wait::sleep(
                    &s.link.ctl().peers.data_ready,
                    // W2 (wait.rs): pairs with K1, the producer's store of the header
                    // (or wrap marker) at our offset in `Sender::publish`, or its
                    // detach store.
                    || header.load(Ordering::SeqCst) != EMPTY || !s.link.peer_attached_seqcst(),
                    slice,
                );
                Ok(())
            },
        );
        match r {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(RecvTimeoutError::Timeout),
            Err(e) => Err(e.into()),
        }
    }

    fn guard(&mut self, p: Peeked) -> Batch<'_, T> {
        // SAFETY: look() checked payload + len * size_of::<T>() <= ring, so the
        // offset is inside the data region; the payload offset is unit-aligned plus
        // unit, so aligned for T.
        let ptr = unsafe { self.link.data.add(p.payload).cast::<T>() };
        Batch {
            ptr,
            peeked: p,
            rx: self,
        }
    }

    recv_methods! {
        next: peek,
        until: peek_until,
        place: "The guard derefs to the batch in the ring; dropping it frees the space.",
        gone: "once the sender is gone and everything it sent has been received",
        empty: "when nothing is waiting",
    }
}

/// A received batch, in place in the ring. Derefs to `&[T]` and `&mut [T]`;
/// dropping it gives the space back to the sender.
pub struct Batch<'a, T: Pod = f64> {
    rx: &'a mut Receiver<T>,
    ptr: NonNull<T>,
    peeked: Peeked,
}

impl<T: Pod> Deref for Batch<'_, T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the record lies inside the ring (peek checked it) and belongs to
        // the consumer until `release`; aligned (see `guard`); T is Pod.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.peeked.len) }
    }
}

impl<T: Pod> DerefMut for Batch<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique in-process, and
        // the producer does not touch the record before `release`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.peeked.len) }
    }
}

impl<T: Pod> Drop for Batch<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let p = self.peeked;
        self.rx.release(&p);
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Batch<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
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
    let r = Ordering::Relaxed;
    let side = |w: &AtomicU64| {
        let w = w.load(r);
        match owner_state(w) {
            ATTACHED => Some((owner_id(w), true)),
            LEFT => Some((owner_id(w), false)),
            _ => None,
        }
    };
    // head first: it only grows, so a tail read after it is less likely to look
    // behind it.
    let head = ctl.head.load(r);
    SpscStats {
        tail: ctl.tail.load(r),
        head,
        producer: side(&ctl.peers.producer),
        consumer: side(&ctl.peers.consumer),
    }
}
