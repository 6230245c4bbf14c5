//! Each SPSC operation once, behind the public verbs of `mod.rs`: attaching (the
//! owner word of `link.rs`, then the ring's position of `ring.rs`), and for sends
//! and receives the non-blocking attempt, which adds the liveness of the peer
//! around the ring's claim or look, and its [`Wait`] impl, which `wait::until`
//! turns into the blocking, timed and deadline calls.

use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;

use super::link::Link;
use super::ring::{Claim, Consumer, Peeked, Producer};
use super::{Batch, Receiver, Reservation, Sender};
use crate::segment::Region;
use crate::sync::Arc;
use crate::wait::{self, Deadline, Wait, WaitPolicy};
use crate::{RecvTimeoutError, Result, Role, SendTimeoutError, TryRecvError, TrySendError};

impl<T: Pod> Sender<T> {
    /// Attach to `region` as its sender.
    pub(super) fn from_region(region: Arc<Region>) -> Result<Self> {
        let link = Link::new(region, Role::Sender)?;
        let prod = Producer::attach(&link.ring)?;
        Ok(Sender {
            link,
            prod,
            _t: PhantomData,
        })
    }

    /// Find room for a record of `len` elements, without waiting.
    #[inline(always)]
    pub(super) fn claim(&mut self, len: usize) -> Result<Claim, TrySendError> {
        let max = self.max_batch();
        if len > max {
            return Err(TrySendError::TooLarge { len, max });
        }
        if self.link.peer_gone(false) {
            return Err(TrySendError::Disconnected);
        }
        match self.prod.claim(&self.link.ring, len) {
            Err(TrySendError::Full) => {
                let check = self.link.liveness_due(false);
                if check && self.link.peer_gone(true) {
                    return Err(TrySendError::Disconnected);
                }
                Err(TrySendError::Full)
            }
            r => r,
        }
    }

    /// Wait for room for `len` elements until `deadline`.
    #[inline]
    pub(super) fn claim_until(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<Claim, SendTimeoutError> {
        wait::until(&mut Claiming { tx: self, len }, deadline)
    }

    #[inline]
    pub(super) fn send_until(
        &mut self,
        batch: &[T],
        deadline: Deadline,
    ) -> Result<(), SendTimeoutError> {
        let claim = self.claim_until(batch.len(), deadline)?;
        self.copy_in(batch, claim);
        Ok(())
    }

    #[inline]
    pub(super) fn reserve_until(
        &mut self,
        len: usize,
        deadline: Deadline,
    ) -> Result<Reservation<'_, T>, SendTimeoutError> {
        let claim = self.claim_until(len, deadline)?;
        Ok(self.reservation(claim, len))
    }

    #[inline(always)]
    pub(super) fn copy_in(&mut self, batch: &[T], claim: Claim) {
        let dst = Producer::payload::<T>(&self.link.ring, &claim, batch.len());
        // SAFETY: the claim gives us record(len) bytes at claim.off that the consumer
        // does not touch until we publish; they do not overlap `batch`, which is
        // caller memory; `dst` is aligned for T (`Ring::payload`).
        unsafe { crate::verbs::copy_elems(batch.as_ptr(), dst.as_ptr(), batch.len()) };
        self.prod.publish(&self.link.ring, claim, batch.len());
    }

    pub(super) fn reservation(&mut self, claim: Claim, len: usize) -> Reservation<'_, T> {
        Reservation::new(self, claim, len)
    }
}

/// A sender waiting for room (`wait::until`).
struct Claiming<'a, T: Pod> {
    tx: &'a mut Sender<T>,
    len: usize,
}

impl<T: Pod> Wait for Claiming<'_, T> {
    type Ready = Claim;
    type Error = TrySendError;

    #[inline(always)]
    fn attempt(&mut self) -> Result<Claim, TrySendError> {
        self.tx.claim(self.len)
    }

    fn sleep(&mut self, slice: Duration) -> Result<(), TrySendError> {
        let link = &mut self.tx.link;
        let check = link.liveness_due(true);
        // A receiver that left (or died) is reported by the next attempt.
        if !link.peer_gone(check) {
            self.tx
                .prod
                .sleep(&link.ring, slice, || link.peer_attached_seqcst());
        }
        Ok(())
    }

    fn policy(&self) -> WaitPolicy {
        self.tx.link.policy
    }
}

impl<T: Pod> Receiver<T> {
    /// Attach to `region` as its receiver.
    pub(super) fn from_region(region: Arc<Region>) -> Result<Self> {
        let link = Link::new(region, Role::Receiver)?;
        let cons = Consumer::attach(&link.ring)?;
        Ok(Receiver {
            link,
            cons,
            _t: PhantomData,
        })
    }

    /// Find the next batch, without waiting (`try_recv`).
    // NB: out of line on purpose: with the look inlined into `try_recv`, the bench
    //     `spsc/uncontended` (try_send + try_recv on one thread) ran 2.3x slower;
    //     figures in the commit message that introduced `ops.rs`.
    #[inline(never)]
    pub(super) fn peek(&mut self) -> Result<Peeked, TryRecvError> {
        match self.cons.look(&self.link.ring)? {
            Some(p) => Ok(p),
            None => self.peek_empty(),
        }
    }

    /// `peek` found nothing: look at the sender, and at its position when due.
    #[inline]
    pub(super) fn peek_empty(&mut self) -> Result<Peeked, TryRecvError> {
        let check = self.link.liveness_due(false);
        if self.link.peer_gone(check) {
            // Everything the sender published happens-before its detach, which we
            // just observed (sync point "detach", link.rs): one more look is final.
            return self
                .cons
                .look(&self.link.ring)?
                .ok_or(TryRecvError::Disconnected);
        }
        if check {
            self.cons.check_tail(&self.link.ring)?;
        }
        Err(TryRecvError::Empty)
    }

    #[inline]
    pub(super) fn recv_until(
        &mut self,
        deadline: Deadline,
    ) -> Result<Batch<'_, T>, RecvTimeoutError> {
        let p = wait::until(&mut Taking { rx: self }, deadline)?;
        Ok(self.guard(p))
    }

    pub(super) fn guard(&mut self, p: Peeked) -> Batch<'_, T> {
        Batch::new(self, p)
    }
}

/// A receiver waiting for a batch (`wait::until`).
struct Taking<'a, T: Pod> {
    rx: &'a mut Receiver<T>,
}

impl<T: Pod> Wait for Taking<'_, T> {
    type Ready = Peeked;
    type Error = TryRecvError;

    /// `peek`, with the look inline: the fast path of the blocking calls.
    #[inline(always)]
    fn attempt(&mut self) -> Result<Peeked, TryRecvError> {
        let rx = &mut *self.rx;
        match rx.cons.look(&rx.link.ring)? {
            Some(p) => Ok(p),
            None => rx.peek_empty(),
        }
    }

    /// Sleep unless the sender left (the next attempt drains and reports it); a
    /// `tail` found damaged before sleeping is `Corrupted`.
    fn sleep(&mut self, slice: Duration) -> Result<(), TryRecvError> {
        let link = &mut self.rx.link;
        let check = link.liveness_due(true);
        if link.peer_gone(check) {
            return Ok(());
        }
        if check {
            self.rx.cons.check_tail(&link.ring)?;
        }
        self.rx
            .cons
            .sleep(&link.ring, slice, || link.peer_attached_seqcst());
        Ok(())
    }

    fn policy(&self) -> WaitPolicy {
        self.rx.link.policy
    }
}
