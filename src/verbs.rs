//! Methods that read the same in every queue, written once, and the copies they
//! share.

/// Copy `n` elements from `src` to `dst`, without a call to `memcpy` for the
/// one-element batches of tick-by-tick producers (the call costs more than the copy).
///
/// # Safety
/// As [`std::ptr::copy_nonoverlapping`].
#[inline(always)]
pub(crate) unsafe fn copy_elems<T: Copy>(src: *const T, dst: *mut T, n: usize) {
    if n == 1 {
        // SAFETY: both valid and aligned for one element (caller), non-overlapping.
        unsafe { dst.write(src.read()) }
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, n) }
    }
}

/// Replace the contents of `out` with `batch` (`recv_into`).
#[inline(always)]
pub(crate) fn fill<T: Copy>(out: &mut Vec<T>, batch: &[T]) {
    out.clear();
    match batch {
        [x] => out.push(*x),
        _ => out.extend_from_slice(batch),
    }
}

/// The copying receive verbs (`recv_into`, `try_recv_into`, `recv_into_timeout`),
/// for a receiver whose `recv`, `try_recv` and `recv_timeout` return a guard that
/// derefs to `[T]`. Invoked by [`recv_methods`].
macro_rules! recv_into_methods {
    () => {
        /// Receive the next batch into `out` (replacing its contents), waiting while
        /// the queue is empty. Returns the batch length.
        ///
        /// # Errors
        /// As [`recv`](Self::recv).
        pub fn recv_into(&mut self, out: &mut Vec<T>) -> Result<usize, RecvError> {
            let b = self.recv()?;
            $crate::verbs::fill(out, &b);
            Ok(out.len())
        }

        /// Receive the next batch into `out` if one is waiting.
        ///
        /// # Errors
        /// As [`try_recv`](Self::try_recv).
        pub fn try_recv_into(&mut self, out: &mut Vec<T>) -> Result<usize, TryRecvError> {
            let b = self.try_recv()?;
            $crate::verbs::fill(out, &b);
            Ok(out.len())
        }

        /// Receive the next batch into `out`, waiting at most `timeout`.
        ///
        /// # Errors
        /// As [`recv_timeout`](Self::recv_timeout).
        pub fn recv_into_timeout(
            &mut self,
            out: &mut Vec<T>,
            timeout: Duration,
        ) -> Result<usize, RecvTimeoutError> {
            let b = self.recv_timeout(timeout)?;
            $crate::verbs::fill(out, &b);
            Ok(out.len())
        }
    };
}

/// The sending verbs (`send`, `try_send`, `send_timeout`, `reserve`, `try_reserve`,
/// `reserve_timeout`), for a sender with `claim`, `claim_until`, `copy_in` and
/// `reservation`. Invoked inside `impl<T: Pod> Sender<T>` of each queue, with the
/// words that differ between them:
/// - `gone`: when sends fail with `Disconnected`;
/// - `room`: what a send waits for ("room", "a free slot");
/// - `now`: the condition of the non-blocking calls ("there is room now");
/// - `full`: when `TrySendError::Full` is returned;
/// - `reserve`: the documentation of `reserve`, after its first line;
/// - `place`: what is reserved ("room", "a slot").
macro_rules! send_methods {
    (
        gone: $gone:literal,
        room: $room:literal,
        now: $now:literal,
        full: $full:literal,
        place: $place:literal,
        reserve: $reserve:literal $(,)?
    ) => {
        #[doc = "Send a copy of `batch`, waiting while the queue is full."]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = "[`SendError::TooLarge`] if `batch.len() > max_batch()`,"]
        #[doc = concat!("[`SendError::Disconnected`] ", $gone, ",")]
        #[doc = "[`SendError::Corrupted`] if the shared state was damaged."]
        pub fn send(&mut self, batch: &[T]) -> Result<(), SendError> {
            let claim = self
                .claim_until(batch.len(), Deadline::never())
                .map_err(SendTimeoutError::without_deadline)?;
            self.copy_in(batch, claim);
            Ok(())
        }

        #[doc = concat!("Send a copy of `batch` if ", $now, ".")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = concat!("[`TrySendError::Full`] ", $full, ", otherwise as [`send`](Self::send).")]
        pub fn try_send(&mut self, batch: &[T]) -> Result<(), TrySendError> {
            let claim = self.claim(batch.len())?;
            self.copy_in(batch, claim);
            Ok(())
        }

        #[doc = concat!("Send a copy of `batch`, waiting at most `timeout` for ", $room, ".")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = "[`SendTimeoutError::Timeout`], otherwise as [`send`](Self::send)."]
        pub fn send_timeout(
            &mut self,
            batch: &[T],
            timeout: Duration,
        ) -> Result<(), SendTimeoutError> {
            let claim = self.claim_until(batch.len(), Deadline::after(timeout))?;
            self.copy_in(batch, claim);
            Ok(())
        }

        #[doc = concat!("Reserve ", $place, " for a batch of `len` elements, waiting while the queue is full.")]
        #[doc = ""]
        #[doc = $reserve]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = "As [`send`](Self::send)."]
        pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_, T>, SendError> {
            let claim = self
                .claim_until(len, Deadline::never())
                .map_err(SendTimeoutError::without_deadline)?;
            Ok(self.reservation(claim, len))
        }

        #[doc = concat!("Reserve ", $place, " for `len` elements if ", $now, ".")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = "As [`try_send`](Self::try_send)."]
        pub fn try_reserve(&mut self, len: usize) -> Result<Reservation<'_, T>, TrySendError> {
            let claim = self.claim(len)?;
            Ok(self.reservation(claim, len))
        }

        #[doc = concat!("Reserve ", $place, " for `len` elements, waiting at most `timeout`.")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = "As [`send_timeout`](Self::send_timeout)."]
        pub fn reserve_timeout(
            &mut self,
            len: usize,
            timeout: Duration,
        ) -> Result<Reservation<'_, T>, SendTimeoutError> {
            let claim = self.claim_until(len, Deadline::after(timeout))?;
            Ok(self.reservation(claim, len))
        }
    };
}

/// The receiving verbs (`recv`, `try_recv`, `recv_timeout`, and the copying ones
/// of [`recv_into_methods`]), for a receiver whose `$next` finds a batch without
/// waiting, `$until` waits for one until a deadline, and `guard` wraps it. Invoked
/// inside `impl<T: Pod> Receiver<T>` of each queue, with the words that differ:
/// - `place`: where the batch lies and what dropping the guard frees;
/// - `gone`: when `recv` fails with `Disconnected`;
/// - `empty`: when `TryRecvError::Empty` is returned.
macro_rules! recv_methods {
    (
        next: $next:ident,
        until: $until:ident,
        place: $place:literal,
        gone: $gone:literal,
        empty: $empty:literal $(,)?
    ) => {
        #[doc = concat!("Receive the next batch, waiting while the queue is empty. ", $place)]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = concat!("[`RecvError::Disconnected`] ", $gone, "; [`RecvError::Corrupted`] if the shared state was damaged.")]
        pub fn recv(&mut self) -> Result<Batch<'_, T>, RecvError> {
            let b = self
                .$until(Deadline::never())
                .map_err(RecvTimeoutError::without_deadline)?;
            Ok(self.guard(b))
        }

        #[doc = "Receive the next batch if one is waiting."]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = concat!("[`TryRecvError::Empty`] ", $empty, ", otherwise as [`recv`](Self::recv).")]
        pub fn try_recv(&mut self) -> Result<Batch<'_, T>, TryRecvError> {
            let b = self.$next()?;
            Ok(self.guard(b))
        }

        #[doc = "Receive the next batch, waiting at most `timeout`."]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = "[`RecvTimeoutError::Timeout`], otherwise as [`recv`](Self::recv)."]
        pub fn recv_timeout(
            &mut self,
            timeout: Duration,
        ) -> Result<Batch<'_, T>, RecvTimeoutError> {
            let b = self.$until(Deadline::after(timeout))?;
            Ok(self.guard(b))
        }

        recv_into_methods!();
    };
}
