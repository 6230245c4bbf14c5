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
/// derefs to `[T]`. Invoked inside `impl<T: Pod> Receiver<T>` of each queue.
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
