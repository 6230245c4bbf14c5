//! Waiting: spin briefly, then yield, then sleep on a futex word in the segment.
//!
//! ## The sleep/wake protocol
//! Each condition a side may wait for ("not empty", "not full") has a 32-bit futex
//! word in the segment, 1 while someone may be asleep on it.
//!
//! ```text
//! waiter                                  waker
//! flag.swap(1, SeqCst)         (W1)       index.store(new, Release)  (K1, publishes)
//! heavy barrier (asymmetric)   (WB)       barrier                    (KB)
//! if ready()                   (W2)       if flag.load() != 0        (K2)
//!     return                                  && flag.swap(0) != 0
//! futex_wait(flag, 1, slice)   (W3)           futex_wake(flag)
//! ```
//!
//! This is Dekker's pattern: the waiter stores W1 and loads W2, the waker stores K1
//! and loads K2, and no wake-up is lost as long as at least one of them sees the
//! other's store. That needs a store-load barrier on each side. The waker runs on
//! every publish and the waiter only when it is about to sleep, so the barriers
//! can be balanced two ways, the segment's [`WakeProtocol`]:
//!
//! - **Asymmetric** (Linux `membarrier(2)`): every process that uses shmbatch
//!   registers with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` when its first
//!   handle attaches. The waker's KB is then only a compiler fence, and the
//!   waiter's WB is `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, which runs a full memory
//!   barrier on every CPU that is running a thread of a registered process.
//!   Either that barrier lands on the waker's CPU after K1 was executed (K1 is
//!   then drained to memory and W2 sees it), or before it (then K2 executes after
//!   the barrier, and W1, which was globally visible before WB started, is what K2
//!   sees). This is the technique of liburcu and of folly's
//!   `asymmetricHeavyBarrier`; it is not expressible in Rust's memory model, which
//!   is why loom and miri builds only run the symmetric one.
//! - **Symmetric**: KB is `fence(SeqCst)`, W1 is a `SeqCst` swap, and there is no
//!   WB. If W2 (a `SeqCst` load) follows the waker's fence in the `SeqCst` total
//!   order S, it sees K1, which is sequenced before the fence. Otherwise W1, which
//!   precedes W2 in S, precedes the fence too, and K2, sequenced after the fence,
//!   sees W1 or a later store (a waker's swap to 0, whose futex wake then finds us
//!   or makes our futex call return at once). It costs one full fence per publish.
//!
//! ## Switching
//! Under the asymmetric protocol the waiter pays a barrier per sleep; under the
//! symmetric one the waker pays a fence per publish. Which is cheaper depends on
//! the machine (a heavy barrier costs about 1 µs on bare metal, 15 µs on a KVM
//! guest) and on the traffic (a streaming producer publishes millions of times
//! between sleeps; a slow one once per sleep). So in an SPSC segment each waker
//! announces its mode in a word of its own (`WakeWords::light`), the waiter runs
//! WB only while that word is 1, and a waker may switch at any time
//! ([`WakeProtocol::Adaptive`] does, from counted publishes and sleeps; the two
//! others stay put):
//!
//! - To fenceless: store 1 in the word (`SeqCst`), then stop fencing. A waiter
//!   whose `SeqCst` load of the word, after its W1, reads 0 precedes that store in
//!   the `SeqCst` order S, so W1 precedes it too, and the waker's K2 (a `SeqCst`
//!   load) follows it: K2 sees W1. A waiter that reads 1 runs WB.
//! - To fenced: start fencing, then store 0. A waiter that reads that 0 acquires
//!   the store, so every fenceless K1 before it is visible to its W2; later
//!   publishes fence.
//!
//! A waker that dies leaves its word as it was: waiters keep paying WB for it,
//! which is always safe, until the next waker of that end attaches and stores its
//! own mode. A process that could not register for `membarrier` never goes
//! fenceless. If WB fails (a system-call filter), a lost wake-up would be found by
//! the waiter's next look: the waiter then sleeps at most [`SHORT_SLICE`] at a time.
//!
//! ## MPMC: ordered by the claim
//! An MPMC waker claimed its slot with a `SeqCst` CAS on the position before it
//! publishes, and a waiter does not sleep while the other side's position differs
//! from what an idle queue would show (a claim is in flight or done). With W1, W2
//! (which loads that position) and K2 all `SeqCst` and the CAS sequenced before K2:
//! if W2 precedes the CAS in S, then W1 does too and K2 sees W1; otherwise W2 sees
//! the claim and the waiter does not sleep. No fence and no heavy barrier, in any
//! protocol.
//!
//! ## Waiting
//! Before a waiter sleeps it spins and yields for a time ([`WaitPolicy`]):
//! by default as long as a sleep and wake costs on this machine, measured once
//! per process ([`Calibration::spin`]).
//!
//! All sleeps are bounded by [`SLICE`] anyway so that a waiter notices a peer that
//! died without waking it (the queues check liveness between slices).

use std::time::{Duration, Instant};

use crate::sync::{self, AtomicU32, Ordering};

mod calibrate;
mod policy;

pub use calibrate::{asymmetric_wake, calibration, Calibration};
pub(crate) use policy::Backoff;
pub use policy::{SpinThenYield, WaitPolicy};

/// Longest single futex sleep; between slices a waiter re-checks its peers.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// A point in time after which a timed operation gives up; `None` waits forever.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    pub(crate) fn never() -> Self {
        Deadline(None)
    }

    pub(crate) fn after(timeout: Duration) -> Self {
        Deadline(Instant::now().checked_add(timeout))
    }

    pub(crate) fn at(instant: Instant) -> Self {
        Deadline(Some(instant))
    }

    /// Time left, `None` if unbounded, `Some(ZERO)` once passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub(crate) fn passed(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    /// The length of the next sleep: at most [`SLICE`], at most the time left.
    pub(crate) fn slice(&self) -> Duration {
        self.remaining().map_or(SLICE, |r| r.min(SLICE))
    }
}

/// Longest single sleep of a waiter whose heavy barrier failed (module docs).
pub(crate) const SHORT_SLICE: Duration = Duration::from_millis(1);

/// Measure this process's waiting costs (once; module `calibrate`) and register
/// for `membarrier(2)`: called when a queue handle attaches, before it can
/// publish anything.
pub(crate) fn init() {
    calibration();
}

/// How the wakers and the sleepers of an SPSC segment make sure that no wake-up
/// is lost (the module docs of `wait`): decided by the segment's creator and
/// recorded in its header (bits 0 and 1 of `flags`). MPMC queues need none: their
/// claim CAS orders their wake-ups (module docs).
///
/// By default a creator takes [`Adaptive`](Self::Adaptive) where `membarrier(2)`
/// works ([`calibration`]); [`Options::wake_protocol`](crate::Options::wake_protocol)
/// sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WakeProtocol {
    /// Each waker chooses, and keeps choosing, between the two others from what
    /// they cost: its publishes (each one a fence under the symmetric protocol)
    /// against its peer's sleeps (each one a `membarrier` under the asymmetric
    /// one), counted as they happen and priced with [`calibration`].
    Adaptive,
    /// Publishing costs no fence; a waiter about to sleep runs
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which interrupts every CPU
    /// running a thread of a process that uses shmbatch. Cheap on bare metal
    /// (about 1 µs on AMD EPYC), expensive under virtualization (15 µs on a
    /// 2-vCPU KVM guest while the peer runs).
    Asymmetric,
    /// Every publish ends with a full fence (7 ns, or 30 ns when the peer is
    /// polling the line, on the KVM guest); a waiter about to sleep pays nothing
    /// more.
    Symmetric,
}

/// Bits 0 and 1 of the header's `flags`: the segment's [`WakeProtocol`].
pub(crate) const FLAGS_WAKE: u32 = 0b11;

impl WakeProtocol {
    pub(crate) fn flags(self) -> u32 {
        match self {
            WakeProtocol::Symmetric => 0,
            WakeProtocol::Asymmetric => 1,
            WakeProtocol::Adaptive => 2,
        }
    }

    /// `None` for the one code no creator writes.
    pub(crate) fn from_flags(flags: u32) -> Option<WakeProtocol> {
        match flags & FLAGS_WAKE {
            0 => Some(WakeProtocol::Symmetric),
            1 => Some(WakeProtocol::Asymmetric),
            2 => Some(WakeProtocol::Adaptive),
            _ => None,
        }
    }

    /// The protocol a segment created now gets, unless its options set one.
    pub(crate) fn default_for_new() -> WakeProtocol {
        calibration().protocol
    }
}

/// The words of one direction of wake-ups in a segment: the futex word, the
/// waker's mode, and the sleeper's count of sleeps.
#[derive(Clone, Copy)]
pub(crate) struct WakeWords<'a> {
    /// 1 while the sleeper may be asleep (the futex word).
    pub(crate) flag: &'a AtomicU32,
    /// 1 while the waker publishes without a fence (so the sleeper must run the
    /// heavy barrier before it sleeps); written by the waker only.
    pub(crate) light: &'a AtomicU32,
    /// Sleeps so far (wrapping), counted by the sleeper, read by an adaptive
    /// waker. A report: a peer may write any value, which only steers the
    /// waker's choice.
    pub(crate) sleeps: &'a AtomicU32,
}

/// An adaptive waker looks at its costs again after this many publishes...
const RECONSIDER_PUBLISHES: u32 = 4096;
/// ... or as soon as its peer has slept this many times.
const RECONSIDER_SLEEPS: u32 = 64;

/// One waker's side of a segment's [`WakeProtocol`], for one direction:
/// process-local, owned by the end that publishes (`&mut` on every publish).
#[derive(Debug)]
pub(crate) struct Waker {
    /// KB is a compiler fence only (we announced it in `WakeWords::light`).
    light: bool,
    adaptive: bool,
    /// Publishes since we last looked at the costs.
    publishes: u32,
    /// The sleeper's count when we last looked.
    seen_sleeps: u32,
}

impl Waker {
    /// Take up the waker's role in `w` under `protocol` (before our first
    /// publish).
    pub(crate) fn attach(protocol: WakeProtocol, w: WakeWords<'_>) -> Waker {
        let c = calibration();
        let can = c.registered && c.membarrier.is_some();
        let light = can
            && match protocol {
                WakeProtocol::Asymmetric => true,
                WakeProtocol::Symmetric => false,
                WakeProtocol::Adaptive => c.start_asymmetric,
            };
        let mut waker = Waker {
            light: false,
            adaptive: can && protocol == WakeProtocol::Adaptive,
            publishes: 0,
            seen_sleeps: w.sleeps.load(Ordering::Relaxed),
        };
        // Whatever a predecessor (perhaps one that died) left there.
        waker.set(light, w);
        waker
    }

    /// Switch between fenceless (`light`) and fenced publishes. See the module
    /// docs, "Switching".
    fn set(&mut self, light: bool, w: WakeWords<'_>) {
        if light {
            // Announce first: a sleeper that does not see it will be seen by our
            // next K2, which follows this store in the SeqCst order.
            w.light.store(1, Ordering::SeqCst);
            self.light = true;
        } else {
            // Fence first: a sleeper that sees the 0 also sees every fenceless K1
            // before it (Release/Acquire through this word).
            self.light = false;
            w.light.store(0, Ordering::SeqCst);
        }
    }

    /// KB of the module docs: the barrier between a waker's publishing store
    /// (K1) and its load of the sleep flag (K2).
    #[inline(always)]
    fn barrier(&self) {
        if self.light {
            // The waiter's membarrier supplies the hardware barrier; we only stop
            // the compiler from moving K2 above K1.
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        } else {
            sync::fence(Ordering::SeqCst);
        }
    }

    /// Wake the sleeper of `w` if it may be asleep. Call right after publishing
    /// with a Release store (K1): this is KB and K2 of the module docs.
    #[inline]
    pub(crate) fn wake(&mut self, w: WakeWords<'_>) {
        self.barrier();
        wake_if_flagged(w.flag);
        if self.adaptive {
            self.count(w);
        }
    }

    #[inline]
    fn count(&mut self, w: WakeWords<'_>) {
        self.publishes += 1;
        // The sleep count lies on the flag's line, which K2 just read.
        let slept = w
            .sleeps
            .load(Ordering::Relaxed)
            .wrapping_sub(self.seen_sleeps);
        if self.publishes >= RECONSIDER_PUBLISHES || slept >= RECONSIDER_SLEEPS {
            self.reconsider(slept, w);
        }
    }

    /// Compare what the last publishes cost (or would have) in fences with what
    /// the sleeper's sleeps cost (or would have) in heavy barriers, and take the
    /// cheaper, with a factor of 2 either way against flapping.
    #[cold]
    fn reconsider(&mut self, slept: u32, w: WakeWords<'_>) {
        let c = calibration();
        let fences = f64::from(self.publishes) * c.fence_contended.as_secs_f64();
        let barriers = f64::from(slept.min(RECONSIDER_PUBLISHES))
            * c.membarrier.unwrap_or(MAX_BARRIER).as_secs_f64();
        if self.light && barriers > 2.0 * fences {
            self.set(false, w);
        } else if !self.light && 2.0 * barriers < fences {
            self.set(true, w);
        }
        self.publishes = 0;
        self.seen_sleeps = self.seen_sleeps.wrapping_add(slept);
    }
}

/// What a heavy barrier is taken to cost where none was measured.
const MAX_BARRIER: Duration = Duration::from_millis(1);

/// K2 and the wake-up: wake everyone asleep on `flag` if it says someone may be.
#[inline(always)]
fn wake_if_flagged(flag: &AtomicU32) {
    // K2: pairs with W1 (through the barriers). SeqCst, a plain load on x86: the
    // mode switches and the MPMC wake-ups order it after a SeqCst store or RMW
    // (module docs). The swap only decides who makes the system call; the kernel
    // re-checks the word under its lock, so Relaxed is enough.
    if flag.load(Ordering::SeqCst) != 0 && flag.swap(0, Ordering::Relaxed) != 0 {
        futex_wake(flag);
    }
}

/// Sleep on `w.flag` unless `ready()` already holds; the W side of the module
/// docs (SPSC). `ready` must load what the waker publishes with `SeqCst`.
pub(crate) fn sleep(w: WakeWords<'_>, ready: impl FnOnce() -> bool, max: Duration) {
    // W1: announce the sleeper. Pairs with K2.
    w.flag.swap(1, Ordering::SeqCst);
    w.sleeps.fetch_add(1, Ordering::Relaxed);
    // WB, only while the waker publishes without a fence (module docs).
    let max = if w.light.load(Ordering::SeqCst) == 0 || heavy_barrier() {
        max
    } else {
        max.min(SHORT_SLICE)
    };
    // W2.
    if ready() {
        return;
    }
    futex_wait(w.flag, 1, max);
}

/// The MPMC wake: K2 only. The waker's claim CAS (SeqCst) is sequenced before it,
/// and the sleeper does not sleep once it sees that claim (module docs).
#[inline]
pub(crate) fn wake_claimed(flag: &AtomicU32) {
    wake_if_flagged(flag);
}

/// The MPMC sleep: W1, then W2 (which must look, with SeqCst, at the position the
/// waker's claim CAS moves), then the futex.
pub(crate) fn sleep_claimed(flag: &AtomicU32, ready: impl FnOnce() -> bool, max: Duration) {
    flag.swap(1, Ordering::SeqCst);
    if ready() {
        return;
    }
    futex_wait(flag, 1, max);
}

/// WB: a full barrier on every CPU running a registered process. `false` if the
/// kernel refused it.
#[cfg(not(any(loom, miri)))]
fn heavy_barrier() -> bool {
    use rustix::thread::{membarrier, MembarrierCommand};
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}

// Loom and miri cannot model membarrier: there `light` is always false (nothing is
// registered), every waker fences, and the symmetric argument covers both
// protocols.
#[cfg(any(loom, miri))]
fn heavy_barrier() -> bool {
    true
}

/// Wake everyone asleep on `flag` whatever its state (used on detach).
pub(crate) fn wake_always(flag: &AtomicU32) {
    // SeqCst after the caller's SeqCst detach store: a sleeper whose W1 comes after
    // this store in the SeqCst order sees the detach in W2; one whose W1 comes
    // before it finds 0 (or is woken) in W3.
    flag.store(0, Ordering::SeqCst);
    futex_wake(flag);
}

/// Sleep while `flag` holds `expected`, at most `max` (shared futex; returns early on
/// a wake, a signal or a changed value).
#[cfg(not(any(loom, miri)))]
pub(crate) fn futex_wait(flag: &AtomicU32, expected: u32, max: Duration) {
    use rustix::thread::futex;
    let ts = futex::Timespec {
        tv_sec: max.as_secs() as _,
        tv_nsec: max.subsec_nanos() as _,
    };
    // Not FUTEX_PRIVATE: the word lives in memory shared between processes.
    // EAGAIN (value changed), ETIMEDOUT and EINTR all mean "look again".
    let _ = futex::wait(flag, futex::Flags::empty(), expected, Some(&ts));
}

/// Wake everyone asleep on `flag` (shared futex).
#[cfg(not(any(loom, miri)))]
pub(crate) fn futex_wake(flag: &AtomicU32) {
    use rustix::thread::futex;
    let _ = futex::wake(flag, futex::Flags::empty(), i32::MAX as u32);
}

// Loom cannot see system calls and miri does not emulate shared futexes: there the
// sleep is a yield (bounded waits still terminate through their callers' loops).
#[cfg(any(loom, miri))]
pub(crate) fn futex_wait(_flag: &AtomicU32, _expected: u32, _max: Duration) {
    sync::yield_now();
}

#[cfg(any(loom, miri))]
pub(crate) fn futex_wake(_flag: &AtomicU32) {}

/// Failed polls between two looks at the peers' liveness outside sleep (which are
/// also at least [`SLICE`] apart).
const LIVENESS_EVERY: u32 = 1024;

/// When a handle that finds its queue full (empty) should look at its peers'
/// liveness, a system call per attached peer, and recover what the dead hold: at
/// most every [`SLICE`]; outside sleep only every [`LIVENESS_EVERY`] failed polls,
/// so that a spinning `try_` loop rarely reads the clock; and at once after
/// [`ask`](Self::ask) (a sleeper hands its turn to the next attempt, recoveries
/// chain, tests ask).
///
/// Process-local bookkeeping of one handle, shared by the threads that use it:
/// plain `std` atomics (never in the segment, never modelled by loom), Relaxed,
/// since the worst a race does is one check more or fewer.
#[derive(Debug)]
pub(crate) struct Liveness {
    /// Failed polls since creation (wrapping).
    idle: std::sync::atomic::AtomicU32,
    /// When the last check was due: nanoseconds since `epoch`.
    last: std::sync::atomic::AtomicU64,
    epoch: Instant,
    /// Set by `ask` for the next `due`.
    next: std::sync::atomic::AtomicBool,
}

impl Liveness {
    pub(crate) fn new() -> Liveness {
        Liveness {
            idle: Default::default(),
            last: Default::default(),
            epoch: Instant::now(),
            next: Default::default(),
        }
    }

    /// Make the next `due` say yes.
    pub(crate) fn ask(&self) {
        self.next.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Count a failed poll and say whether to check the peers now.
    #[inline]
    pub(crate) fn due(&self, sleeping: bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.next.load(Relaxed) && self.next.swap(false, Relaxed) {
            return true;
        }
        // A load and a store, not an RMW: a count that races loses a poll or two,
        // and a failed poll stays free of locked instructions.
        let idle = self.idle.load(Relaxed).wrapping_add(1);
        self.idle.store(idle, Relaxed);
        if !sleeping && idle % LIVENESS_EVERY != 0 {
            return false;
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.last.load(Relaxed);
        if now.saturating_sub(last) < SLICE.as_nanos() as u64 {
            return false;
        }
        // One of the threads racing here wins the check.
        self.last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    }
}

/// One operation of a queue that may have to wait, as the blocking core sees it:
/// the per-kind part of every blocking, timed and deadline call (`send`,
/// `send_timeout`, `send_deadline`, `reserve`..., `recv`...). Each kind implements
/// it on a small per-call value (the handle, the batch length, what the last
/// attempt saw), and [`until`] turns it into the waiting call.
pub(crate) trait Wait {
    /// What the operation gives when it succeeds: a claimed slot, a taken batch.
    type Ready;
    /// The error of one attempt: `TrySendError`, `TryRecvError`, ...
    type Error: AttemptError;
    /// Try once, without waiting. `Full`/`Empty` (see [`AttemptError::not_now`])
    /// means: wait for the other side, then try again.
    fn attempt(&mut self) -> Result<Self::Ready, Self::Error>;
    /// Sleep at most `slice`, unless what the last attempt saw has changed (the
    /// W side of the protocol in the module docs). It may find damage too.
    fn sleep(&mut self, slice: Duration) -> Result<(), Self::Error>;
    /// How this handle waits.
    fn policy(&self) -> WaitPolicy;
}

/// The error of one attempt, as the blocking core needs it.
pub(crate) trait AttemptError: Sized {
    /// The error of the waiting call: `SendTimeoutError`, `RecvTimeoutError`, ...
    type Waiting;
    /// Whether the attempt only found the queue not ready (`Full`, `Empty`).
    fn not_now(&self) -> bool;
    /// The waiting call's error for this one (not called when `not_now`).
    fn waiting(self) -> Self::Waiting;
    /// The waiting call's `Timeout`.
    fn timeout() -> Self::Waiting;
}

/// Attempt `op` until it succeeds, fails, or `deadline` passes, backing off
/// between attempts: spin, yield, then sleep (`Wait::sleep`) a slice at a time.
#[inline]
pub(crate) fn until<W: Wait>(
    op: &mut W,
    deadline: Deadline,
) -> Result<W::Ready, <W::Error as AttemptError>::Waiting> {
    match op.attempt() {
        Ok(r) => Ok(r),
        Err(e) if e.not_now() => until_slow(op, deadline),
        Err(e) => Err(e.waiting()),
    }
}

/// The waiting half of [`until`], out of line so that the fast path stays small.
#[inline(never)]
fn until_slow<W: Wait>(
    op: &mut W,
    deadline: Deadline,
) -> Result<W::Ready, <W::Error as AttemptError>::Waiting> {
    let mut backoff = Backoff::new(op.policy());
    loop {
        if backoff.is_slow() && deadline.passed() {
            return Err(W::Error::timeout());
        }
        if !backoff.snooze() {
            op.sleep(deadline.slice()).map_err(AttemptError::waiting)?;
        }
        match op.attempt() {
            Ok(r) => return Ok(r),
            Err(e) if e.not_now() => {}
            Err(e) => return Err(e.waiting()),
        }
    }
}

/// Retry `attempt` until it yields a value, fails, or `deadline` passes (`Ok(None)`),
/// backing off between tries and calling `sleep` with the next sleep length once
/// spinning and yielding are exhausted (`sleep` may fail too). For waits that are
/// not a queue operation (the array's lock).
pub(crate) fn block<S, R, E>(
    s: &mut S,
    policy: WaitPolicy,
    deadline: Deadline,
    mut attempt: impl FnMut(&mut S) -> Result<Option<R>, E>,
    mut sleep: impl FnMut(&mut S, Duration) -> Result<(), E>,
) -> Result<Option<R>, E> {
    let mut backoff = Backoff::new(policy);
    loop {
        if let Some(r) = attempt(s)? {
            return Ok(Some(r));
        }
        if backoff.is_slow() && deadline.passed() {
            return Ok(None);
        }
        if !backoff.snooze() {
            sleep(s, deadline.slice())?;
        }
    }
}

#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    use super::*;

    struct Words([AtomicU32; 3]);

    impl Words {
        fn new() -> Words {
            Words([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)])
        }
        fn get(&self) -> WakeWords<'_> {
            WakeWords {
                flag: &self.0[0],
                light: &self.0[1],
                sleeps: &self.0[2],
            }
        }
    }

    #[test]
    fn fixed_protocols_announce_their_mode_and_keep_it() {
        let c = calibration();
        let can = c.registered && c.membarrier.is_some();
        let w = Words::new();
        w.0[1].store(1, Ordering::Relaxed); // a dead predecessor's
        let mut sym = Waker::attach(WakeProtocol::Symmetric, w.get());
        assert_eq!(w.0[1].load(Ordering::Relaxed), 0);
        for _ in 0..2 * RECONSIDER_PUBLISHES {
            sym.wake(w.get());
        }
        assert_eq!(w.0[1].load(Ordering::Relaxed), 0);
        let w = Words::new();
        let mut asym = Waker::attach(WakeProtocol::Asymmetric, w.get());
        assert_eq!(w.0[1].load(Ordering::Relaxed), u32::from(can));
        w.0[2].store(10 * RECONSIDER_SLEEPS, Ordering::Relaxed);
        asym.wake(w.get());
        assert_eq!(w.0[1].load(Ordering::Relaxed), u32::from(can));
    }

    #[test]
    fn an_adaptive_waker_follows_its_traffic() {
        let c = calibration();
        let w = Words::new();
        let mut waker = Waker::attach(WakeProtocol::Adaptive, w.get());
        let light = || w.0[1].load(Ordering::Relaxed) == 1;
        if !(c.registered && c.membarrier.is_some()) {
            assert!(!light());
            return;
        }
        assert_eq!(light(), c.start_asymmetric);
        // Streaming: publishes and no sleeps make fences the dearer side.
        for _ in 0..RECONSIDER_PUBLISHES {
            waker.wake(w.get());
        }
        assert!(light(), "{c:?}");
        // A sleep per publish makes barriers the dearer side (a barrier costs
        // more than a fence on every machine).
        for _ in 0..RECONSIDER_SLEEPS {
            w.0[2].fetch_add(1, Ordering::Relaxed);
            waker.wake(w.get());
        }
        assert!(!light(), "{c:?}");
        // And back.
        for _ in 0..RECONSIDER_PUBLISHES {
            waker.wake(w.get());
        }
        assert!(light());
    }

    #[test]
    fn a_sleeper_that_is_ready_does_not_sleep_and_counts_its_sleep() {
        let w = Words::new();
        w.0[1].store(1, Ordering::Relaxed);
        let t = Instant::now();
        sleep(w.get(), || true, Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(w.0[0].load(Ordering::Relaxed), 1);
        assert_eq!(w.0[2].load(Ordering::Relaxed), 1);
        // The waker's next publish clears the flag (and would wake).
        let mut waker = Waker::attach(WakeProtocol::Symmetric, w.get());
        waker.wake(w.get());
        assert_eq!(w.0[0].load(Ordering::Relaxed), 0);
    }
}
