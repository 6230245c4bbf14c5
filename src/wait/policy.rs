//! How long a waiter spins, yields and sleeps: [`WaitPolicy`], carried out by
//! [`Backoff`]. Measured in time, not in instruction counts (a `pause` lasts a few
//! cycles on some CPUs and over a hundred on others).

use std::time::Duration;
#[cfg(not(loom))]
use std::time::Instant;

use crate::sync;

/// How a handle waits when a blocking or timed call finds the queue full or empty,
/// or the array locked (`try_` calls never wait). Set it with
/// [`Options::wait_policy`](crate::Options::wait_policy) when creating or opening,
/// or with `set_wait_policy` on the handle. Every kind waits the same way.
///
/// Whatever the policy, a waiter notices a peer that died (at most every 20 ms)
/// and honours its deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitPolicy {
    /// Spin, then yield, for as long as a sleep and wake costs on this machine
    /// ([`Calibration::spin`](crate::Calibration::spin), measured once per
    /// process, at least 10 µs), then sleep on a futex. A peer that answers
    /// within a few microseconds is never slept on, and a waiter whose peer is
    /// slow uses no CPU after the spin.
    #[default]
    Adaptive,
    /// Never yield or sleep: poll, with a CPU pause between looks, until the
    /// batch, the room or the lock is there. The lowest and steadiest latency,
    /// for a waiter that has a core of its own; that core stays busy while it
    /// waits. On a machine with fewer cores than busy threads it slows everyone.
    BusySpin,
    /// Poll for about a microsecond, then sleep: the least CPU, for waiters that
    /// can afford a sleep and wake (microseconds to tens of microseconds,
    /// [`Calibration::sleep_wake`](crate::Calibration::sleep_wake)) on most
    /// waits.
    LowCpu,
}

/// Polls at the shortest interval (one CPU pause) before backing off: a peer
/// that is about to answer does so within a few cache-line transfers, and a
/// waiter already pausing longer between looks notices it late
/// (`docs/benchmarks.md`, "The waiting back-off").
const QUICK_POLLS: u32 = 16;
/// Then the interval doubles up to 2^SPIN_STEPS pauses: a waiter that keeps
/// polling the line a fast peer is writing steals it on every look, so backing
/// off lets the peer get ahead (`docs/benchmarks.md`).
const SPIN_STEPS: u32 = 6;
/// The adaptive policy polls with pauses for at most this long, then yields
/// between looks until its spin budget is spent: on a machine with more busy
/// threads than cores the peer may be waiting for our core.
const PAUSE_PHASE: Duration = Duration::from_micros(4);
/// How long [`WaitPolicy::LowCpu`] polls before it sleeps.
const LOW_CPU_SPIN: Duration = Duration::from_micros(1);

/// Under loom, time does not exist (and must not steer a model): the phases are
/// counted in steps, as many as the adaptive policy takes on a fast machine.
#[cfg(loom)]
const LOOM_YIELDS: u32 = 10;

/// What the next `snooze` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pause(u32),
    Yield,
    Sleep,
}

/// Spin, then yield, as the policy says; tells the caller when it is time to
/// sleep. One per wait: it starts its clock at its first long step.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: WaitPolicy,
    step: u32,
    #[cfg(not(loom))]
    since: Option<Instant>,
    /// The adaptive spin budget (read once from the calibration).
    #[cfg(not(loom))]
    budget: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(WaitPolicy::Adaptive)
    }
}

impl Backoff {
    pub(crate) fn new(policy: WaitPolicy) -> Backoff {
        Backoff {
            policy,
            step: 0,
            #[cfg(not(loom))]
            since: None,
            #[cfg(not(loom))]
            budget: match policy {
                WaitPolicy::Adaptive => super::calibration().spin,
                _ => Duration::ZERO,
            },
        }
    }

    fn phase(&mut self) -> Phase {
        let step = self.step;
        self.step = self.step.saturating_add(1);
        if step < QUICK_POLLS {
            return Phase::Pause(1);
        }
        let pauses = if cfg!(loom) {
            // One per step keeps the models small (a pause is a loom yield).
            1
        } else {
            2u32 << (step - QUICK_POLLS).min(SPIN_STEPS - 1)
        };
        if self.policy == WaitPolicy::BusySpin {
            return Phase::Pause(pauses);
        }
        #[cfg(loom)]
        {
            let spin = QUICK_POLLS + SPIN_STEPS;
            let yields = if self.policy == WaitPolicy::LowCpu {
                0
            } else {
                LOOM_YIELDS
            };
            if step < spin {
                Phase::Pause(pauses)
            } else if step < spin + yields {
                Phase::Yield
            } else {
                Phase::Sleep
            }
        }
        #[cfg(not(loom))]
        {
            let elapsed = self.since.get_or_insert_with(Instant::now).elapsed();
            let (pause_for, total) = match self.policy {
                WaitPolicy::LowCpu => (LOW_CPU_SPIN, LOW_CPU_SPIN),
                _ => (PAUSE_PHASE.min(self.budget), self.budget),
            };
            if elapsed < pause_for {
                Phase::Pause(pauses)
            } else if elapsed < total {
                Phase::Yield
            } else {
                Phase::Sleep
            }
        }
    }

    /// Wait a little. Returns `false` once spinning and yielding are over and
    /// the caller should sleep instead (never under [`WaitPolicy::BusySpin`]).
    #[inline]
    pub(crate) fn snooze(&mut self) -> bool {
        match self.phase() {
            Phase::Pause(n) => {
                for _ in 0..n {
                    sync::spin_loop();
                }
                true
            }
            Phase::Yield => {
                sync::yield_now();
                true
            }
            Phase::Sleep => false,
        }
    }

    /// Whether the quick polls are over (time to look at the clock for a
    /// deadline: each later step is at least a few pauses long).
    pub(crate) fn is_slow(&self) -> bool {
        self.step >= QUICK_POLLS
    }
}

/// [`Backoff`] for spinning loops outside the library, which have no futex to
/// sleep on: the adaptive policy, and once it would sleep, every `snooze` yields.
/// Exported as `shmbatch::__bench::Backoff` for the workspace's bench code
/// (`bench-peers/`, the CLI's limit measurements), so that they poll exactly as
/// shmbatch does. Not part of the stable API.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct SpinThenYield(Backoff);

impl SpinThenYield {
    /// Wait a little: a [`Backoff`] step, or a yield once those are exhausted.
    #[inline]
    pub fn snooze(&mut self) {
        if !self.0.snooze() {
            sync::yield_now();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Steps until `Sleep`, and the time they took.
    fn until_sleep(policy: WaitPolicy, cap: u32) -> (Option<u32>, Duration) {
        let mut b = Backoff::new(policy);
        let t = Instant::now();
        for i in 0..cap {
            if !b.snooze() {
                return (Some(i), t.elapsed());
            }
        }
        (None, t.elapsed())
    }

    #[test]
    fn adaptive_spins_for_its_budget_then_says_sleep() {
        let budget = super::super::calibration().spin;
        let (steps, took) = until_sleep(WaitPolicy::Adaptive, u32::MAX);
        assert!(steps.is_some());
        assert!(took >= budget, "slept after {took:?}, budget {budget:?}");
    }

    #[test]
    fn low_cpu_says_sleep_after_about_a_microsecond() {
        let (steps, took) = until_sleep(WaitPolicy::LowCpu, u32::MAX);
        assert!(steps.is_some());
        assert!(took >= LOW_CPU_SPIN);
        // Generous: a preempted thread may take long, but not a whole budget of
        // the adaptive policy each time.
        assert!(took < Duration::from_millis(50), "{took:?}");
    }

    #[test]
    fn busy_spin_never_says_sleep() {
        assert_eq!(until_sleep(WaitPolicy::BusySpin, 100_000).0, None);
    }

    #[test]
    fn the_poll_interval_grows_to_its_cap() {
        let mut b = Backoff::new(WaitPolicy::BusySpin);
        let phases: Vec<Phase> = (0..40).map(|_| b.phase()).collect();
        assert_eq!(phases[0], Phase::Pause(1));
        assert_eq!(phases[QUICK_POLLS as usize], Phase::Pause(2));
        assert_eq!(phases[39], Phase::Pause(1 << SPIN_STEPS));
    }
}
