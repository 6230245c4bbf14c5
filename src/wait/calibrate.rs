//! What waiting costs on this machine, measured once per process: the inputs of
//! the wake protocol's choice ([`WakeProtocol`]) and of the spin budget of
//! [`WaitPolicy::Adaptive`](super::WaitPolicy::Adaptive).
//!
//! The first handle a process attaches (or the first call to [`calibration`])
//! runs the measurement, which takes 1 to 5 ms: two helper threads, pinned to
//! two CPUs where the process may use two, time fences and `membarrier(2)` while
//! one of them spins, then play a futex ping-pong. Every later call returns the
//! stored figures.
//!
//! # Why each figure matters
//! - `fence`, `fence_contended`: what the symmetric side adds to every publish
//!   (a store and a `SeqCst` fence, on a line no other CPU holds, and on one the
//!   other thread keeps reading, as a polling consumer does). On a 2-vCPU KVM
//!   guest on Intel Xeon: 7 ns and 30 ns.
//! - `membarrier`: what the asymmetric side adds to every sleep, timed while
//!   another CPU runs a thread of a registered process, as it does when a peer is
//!   busy. Idle CPUs are not interrupted, so an idle machine shows a fraction of
//!   it: on that guest 0.14 µs idle and 15 µs with a running peer, where
//!   bare-metal AMD EPYC shows about 1 µs.
//! - `sleep_wake`: the delay between a futex wake and the sleeper running again
//!   (half a round trip with the sleeper asleep on another CPU): what a sleep
//!   costs the waiter whom a peer answers, and so how long it pays to spin first.
//!   19 µs on that guest.
//!
//! # The choices
//! - Protocol: [`WakeProtocol::Adaptive`] where `membarrier(2)` works. Its
//!   wakers start on the asymmetric side when the heavy barrier is at most a
//!   quarter of the sleep it precedes (`membarrier * 4 <= sleep_wake`: it never
//!   makes a sleep materially longer), else on the symmetric side, and then
//!   weigh, every 4096 publishes or 64 sleeps, the fences their publishes cost
//!   (or would) against the barriers their peer's sleeps cost (or would), priced
//!   with these figures. A streaming producer, whose consumer rarely sleeps, ends
//!   up without fences; one whose consumer sleeps on every batch ends up paying a
//!   fence per publish so that the consumer pays no barrier.
//! - Spin budget: `sleep_wake`, clamped to [`MIN_SPIN`]`..=`[`MAX_SPIN`]. A
//!   waiter that spins as long as a sleep and wake would cost, and only then
//!   sleeps, never pays more than twice the best choice made knowing when the peer
//!   answers (the classic competitive bound of spin-then-block); a peer that
//!   answers within [`MIN_SPIN`] is never slept on.
//!
//! In the environment, `SHMBATCH_WAKE=symmetric`, `asymmetric` or `adaptive`
//! sets the protocol of the segments this process creates, whatever the figures
//! say (`asymmetric` and `adaptive` only where `membarrier(2)` works);
//! `SHMBATCH_SYMMETRIC_WAKE=1` also skips the membarrier registration, so that
//! this process fences every publish in every segment.

use std::sync::OnceLock;
use std::time::Duration;

use super::WakeProtocol;

/// The shortest spin budget: a peer that answers within this is never slept on.
pub(crate) const MIN_SPIN: Duration = Duration::from_micros(10);
/// The longest spin budget, whatever a sleep costs: a waiter spins at most this
/// long (then yields, then sleeps).
pub(crate) const MAX_SPIN: Duration = Duration::from_micros(200);

/// What waiting costs on this machine, measured once per process; see
/// [`calibration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Calibration {
    /// A store followed by a `SeqCst` fence, on an uncontended line: what the
    /// symmetric protocol adds to each publish (at least).
    pub fence: Duration,
    /// The same with another CPU reading the line: the publish of a queue whose
    /// peer is polling, where the fence waits for the line to come back.
    pub fence_contended: Duration,
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` while another CPU runs a
    /// thread of this process: what the asymmetric protocol adds to each sleep.
    /// `None` where the kernel refuses it.
    pub membarrier: Option<Duration>,
    /// From a futex wake to the woken thread running, on another CPU where there
    /// is one: what one sleep costs a waiter that its peer answers.
    pub sleep_wake: Duration,
    /// The protocol of the SPSC segments this process creates unless
    /// [`Options::wake_protocol`](crate::Options::wake_protocol) says otherwise:
    /// [`WakeProtocol::Adaptive`] where `membarrier(2)` works, else
    /// [`WakeProtocol::Symmetric`], or what `SHMBATCH_WAKE` says (module docs).
    pub protocol: WakeProtocol,
    /// Whether an adaptive waker starts without fences (the asymmetric side):
    /// when the heavy barrier is at most a quarter of a sleep and wake (module
    /// docs). It then follows the traffic.
    pub start_asymmetric: bool,
    /// How long a waiter under [`WaitPolicy::Adaptive`](crate::WaitPolicy)
    /// spins and yields before it sleeps.
    pub spin: Duration,
    /// Whether this process registered for `membarrier(2)`, so that its own
    /// publishes into asymmetric segments need no fence.
    pub registered: bool,
}

static CALIBRATION: OnceLock<Calibration> = OnceLock::new();

/// The costs of waiting on this machine and what shmbatch chose from them,
/// measured when the first handle of the process attaches (about a millisecond,
/// once), or now if none has.
///
/// # Example
/// ```
/// let c = shmbatch::calibration();
/// println!(
///     "protocol {:?}: membarrier {:?}, fence {:?}, sleep and wake {:?}, spin {:?}",
///     c.protocol, c.membarrier, c.fence, c.sleep_wake, c.spin
/// );
/// assert!(c.spin >= std::time::Duration::from_micros(10));
/// ```
pub fn calibration() -> &'static Calibration {
    CALIBRATION.get_or_init(measure)
}

/// Whether this process's wakers start on the asymmetric side: publishing costs
/// no fence, and a waiter about to sleep pays a `membarrier(2)` instead. Chosen
/// from measured costs (a heavy barrier at most a quarter of a sleep and wake);
/// an adaptive waker ([`WakeProtocol::Adaptive`], the default) then moves to the
/// side its traffic makes cheaper. See [`calibration`] for the figures.
pub fn asymmetric_wake() -> bool {
    calibration().start_asymmetric
}

/// The protocol for a segment, given the costs.
fn choose(registered: bool, membarrier: Option<Duration>, sleep_wake: Duration) -> WakeProtocol {
    // The side an adaptive waker starts on.
    match membarrier {
        Some(m) if registered && m * 4 <= sleep_wake => WakeProtocol::Asymmetric,
        _ => WakeProtocol::Symmetric,
    }
}

fn spin_for(sleep_wake: Duration) -> Duration {
    sleep_wake.clamp(MIN_SPIN, MAX_SPIN)
}

#[cfg(any(loom, miri))]
fn measure() -> Calibration {
    // Neither can run the measurement; loom and miri only model the symmetric
    // protocol (wait.rs), and a short spin keeps models and runs small.
    Calibration {
        fence: Duration::ZERO,
        fence_contended: Duration::ZERO,
        membarrier: None,
        sleep_wake: MIN_SPIN,
        protocol: WakeProtocol::Symmetric,
        start_asymmetric: false,
        spin: MIN_SPIN,
        registered: false,
    }
}

#[cfg(not(any(loom, miri)))]
fn measure() -> Calibration {
    use rustix::thread::{membarrier, MembarrierCommand};

    let forced = std::env::var_os("SHMBATCH_SYMMETRIC_WAKE").is_some_and(|v| v != "0");
    // Registration must precede our first fenceless publish, so that every
    // waiter's GLOBAL_EXPEDITED barrier reaches our CPUs from then on; it happens
    // here, before any handle of this process exists.
    let registered = !forced && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok();
    let fence = time_fence();
    let Figures {
        membarrier,
        sleep_wake,
        fence_contended,
    } = with_peer_thread(registered);
    let start = choose(registered, membarrier, sleep_wake);
    let can = registered && membarrier.is_some();
    let protocol = match std::env::var("SHMBATCH_WAKE").as_deref() {
        Ok("symmetric") => WakeProtocol::Symmetric,
        Ok("asymmetric") if can => WakeProtocol::Asymmetric,
        _ if can => WakeProtocol::Adaptive,
        _ => WakeProtocol::Symmetric,
    };
    Calibration {
        fence,
        fence_contended,
        membarrier,
        sleep_wake,
        protocol,
        start_asymmetric: start == WakeProtocol::Asymmetric,
        spin: spin_for(sleep_wake),
        registered,
    }
}

/// Nanoseconds of one store + `SeqCst` fence: the fastest of 3 rounds of 2048.
#[cfg(not(any(loom, miri)))]
fn time_fence() -> Duration {
    use std::sync::atomic::{fence, AtomicU64, Ordering};
    use std::time::Instant;
    const N: u32 = 2048;
    let word = AtomicU64::new(0);
    // A word the compiler must assume others see, so that the stores stay.
    let word = std::hint::black_box(&word);
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for i in 0..N {
                word.store(u64::from(i), Ordering::Relaxed);
                fence(Ordering::SeqCst);
            }
            t.elapsed()
        })
        .min()
        .map_or(Duration::ZERO, |t| t / N)
}

/// The longest futex sleep of a calibration thread (each re-checks after it).
#[cfg(not(any(loom, miri)))]
const TIMEOUT: rustix::thread::futex::Timespec = rustix::thread::futex::Timespec {
    tv_sec: 0,
    tv_nsec: 50_000_000,
};

/// Rounds of each measurement with the peer thread; the median is kept.
#[cfg(not(any(loom, miri)))]
const ROUNDS: usize = 9;

/// Time `membarrier` while a helper thread spins on another CPU, then a futex
/// ping-pong with the same thread. Both ends are threads of our own, each pinned
/// to its own CPU where the process may use two (the caller's thread may move
/// between CPUs at any time, and is not ours to pin). Falls back to [`MIN_SPIN`]
/// for the sleep if no thread can be started.
#[cfg(not(any(loom, miri)))]
fn with_peer_thread(registered: bool) -> Figures {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use std::sync::Arc;

    use rustix::thread::{futex, CpuSet};

    // The first two CPUs this process may run on, if there are two.
    let cpus: Vec<usize> = rustix::thread::sched_getaffinity(None)
        .map(|set| {
            (0..CpuSet::MAX_CPU)
                .filter(|&c| set.is_set(c))
                .take(2)
                .collect()
        })
        .unwrap_or_default();
    let pin = move |i: usize| {
        if let [_, _] = cpus[..] {
            let mut set = CpuSet::new();
            set.set(cpus[i]);
            let _ = rustix::thread::sched_setaffinity(None, &set);
        }
    };
    // 0: peer starting; 1: peer spinning; 2: stop spinning, start the ping-pong;
    // then the ping-pong counts up (odd: the peer's turn, even: ours); u32::MAX:
    // quit.
    let word = Arc::new(AtomicU32::new(0));
    let w = Arc::clone(&word);
    let running = Arc::new(AtomicU64::new(0));
    let r = Arc::clone(&running);
    // A line the measurer writes and the peer reads, for the contended fence.
    let line = Arc::new(AtomicU64::new(0));
    let l = Arc::clone(&line);
    let pin2 = pin.clone();
    let peer = std::thread::Builder::new()
        .name("shmbatch-calibrate".into())
        .spawn(move || {
            pin2(1);
            w.store(1, Ordering::Release);
            // A plain polling loop, not `pause`: a pausing vCPU may exit to the
            // hypervisor, which makes an interrupt to it look cheap. It counts, so
            // that the measurer knows it ran.
            while w.load(Ordering::Acquire) == 1 {
                r.fetch_add(1, Ordering::Relaxed);
                std::hint::black_box(l.load(Ordering::Relaxed));
            }
            loop {
                let v = w.load(Ordering::Acquire);
                if v == u32::MAX {
                    return;
                }
                if v % 2 == 1 {
                    w.store(v + 1, Ordering::Release);
                    let _ = futex::wake(&w, futex::Flags::PRIVATE, 1);
                } else {
                    let _ = futex::wait(&w, futex::Flags::PRIVATE, v, Some(&TIMEOUT));
                }
            }
        });
    let none = Figures {
        membarrier: None,
        sleep_wake: MIN_SPIN,
        fence_contended: Duration::ZERO,
    };
    let Ok(peer) = peer else {
        return none;
    };
    let w = Arc::clone(&word);
    let measurer = std::thread::Builder::new()
        .name("shmbatch-calibrate".into())
        .spawn(move || {
            pin(0);
            measure_with(&w, &running, &line, registered)
        });
    let figures = measurer.ok().and_then(|m| m.join().ok());
    word.store(u32::MAX, Ordering::Release);
    let _ = futex::wake(&word, futex::Flags::PRIVATE, 1);
    // It returns within one futex timeout.
    let _ = peer.join();
    figures.unwrap_or(none)
}

/// The measurer's side of [`with_peer_thread`].
#[cfg(not(any(loom, miri)))]
fn measure_with(
    word: &std::sync::atomic::AtomicU32,
    running: &std::sync::atomic::AtomicU64,
    line: &std::sync::atomic::AtomicU64,
    registered: bool,
) -> Figures {
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use rustix::thread::{futex, membarrier, MembarrierCommand};

    let started = Instant::now();
    while word.load(Ordering::Acquire) == 0 && started.elapsed() < Duration::from_millis(50) {
        std::thread::yield_now();
    }
    // Only the calls during which the peer was seen running count (on a busy
    // machine it may be off its CPU, which a barrier then skips); if too few
    // were, the dearest of all stands for them.
    // A store and a fence on a line the peer keeps reading: the publish of a
    // queue whose peer polls, where the fence waits for the line to come back.
    let fence_contended = (0..3)
        .map(|_| {
            let s = Instant::now();
            for i in 0..256 {
                line.store(i, Ordering::Relaxed);
                std::sync::atomic::fence(Ordering::SeqCst);
            }
            s.elapsed() / 256
        })
        .min()
        .unwrap_or(Duration::ZERO);
    let membarrier = registered
        .then(|| {
            let (mut ran, mut all) = (Vec::new(), Vec::new());
            for _ in 0..4 * ROUNDS {
                let before = running.load(Ordering::Relaxed);
                let s = Instant::now();
                membarrier(MembarrierCommand::GlobalExpedited).ok()?;
                let t = s.elapsed();
                all.push(t);
                if running.load(Ordering::Relaxed) != before {
                    ran.push(t);
                    if ran.len() == ROUNDS {
                        break;
                    }
                }
            }
            Some(if ran.len() >= 3 {
                median(ran)
            } else {
                all.into_iter().max().unwrap_or(Duration::ZERO)
            })
        })
        .flatten();
    // The ping-pong: we store an odd value and wake the peer; it answers with the
    // next even value and wakes us. Both sides sleep while they wait.
    word.store(2, Ordering::Release);
    let mut trips = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS as u32 + 2 {
        let ping = 3 + 2 * i;
        // Long enough for the peer to be asleep, not on its way there.
        let idle = Instant::now();
        while idle.elapsed() < Duration::from_micros(50) {
            std::hint::spin_loop();
        }
        let s = Instant::now();
        word.store(ping, Ordering::Release);
        let _ = futex::wake(word, futex::Flags::PRIVATE, 1);
        loop {
            let v = word.load(Ordering::Acquire);
            if v == ping + 1 || s.elapsed() > Duration::from_millis(100) {
                break;
            }
            let _ = futex::wait(word, futex::Flags::PRIVATE, v, Some(&TIMEOUT));
        }
        // The first two warm up (page faults, the peer reaching its loop).
        if i >= 2 {
            trips.push(s.elapsed());
        }
    }
    Figures {
        membarrier,
        sleep_wake: median(trips) / 2,
        fence_contended,
    }
}

/// What the two threads measure.
#[cfg(not(any(loom, miri)))]
struct Figures {
    membarrier: Option<Duration>,
    sleep_wake: Duration,
    fence_contended: Duration,
}

#[cfg(not(any(loom, miri)))]
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_follows_the_costs() {
        let us = Duration::from_micros;
        // Bare metal: a 1 µs barrier before a 10 µs sleep.
        assert_eq!(choose(true, Some(us(1)), us(10)), WakeProtocol::Asymmetric);
        // A VM: 14 µs before a 30 µs sleep.
        assert_eq!(choose(true, Some(us(14)), us(30)), WakeProtocol::Symmetric);
        // No barrier, or not registered: symmetric whatever the figures.
        assert_eq!(choose(true, None, us(30)), WakeProtocol::Symmetric);
        assert_eq!(choose(false, Some(us(1)), us(30)), WakeProtocol::Symmetric);
        assert_eq!(spin_for(us(1)), MIN_SPIN);
        assert_eq!(spin_for(us(30)), us(30));
        assert_eq!(spin_for(us(5000)), MAX_SPIN);
    }

    #[test]
    fn the_measurement_is_sane() {
        let c = calibration();
        assert!(c.spin >= MIN_SPIN && c.spin <= MAX_SPIN);
        assert!(c.sleep_wake < Duration::from_millis(100));
        let start = choose(c.registered, c.membarrier, c.sleep_wake);
        assert_eq!(c.start_asymmetric, start == WakeProtocol::Asymmetric);
        assert_eq!(asymmetric_wake(), c.start_asymmetric);
        if std::env::var_os("SHMBATCH_WAKE").is_none() {
            let can = c.registered && c.membarrier.is_some();
            assert_eq!(c.protocol == WakeProtocol::Adaptive, can);
        }
    }
}
