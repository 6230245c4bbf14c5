//! Methods that read the same in every queue, written once.

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
            out.clear();
            out.extend_from_slice(&b);
            Ok(out.len())
        }

        /// Receive the next batch into `out` if one is waiting.
        ///
        /// # Errors
        /// As [`try_recv`](Self::try_recv).
        pub fn try_recv_into(&mut self, out: &mut Vec<T>) -> Result<usize, TryRecvError> {
            let b = self.try_recv()?;
            out.clear();
            out.extend_from_slice(&b);
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
            out.clear();
            out.extend_from_slice(&b);
            Ok(out.len())
        }
    };
}
