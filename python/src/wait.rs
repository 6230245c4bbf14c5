//! Blocking calls from Python: the wait runs without the GIL, in slices, and
//! returns to Python between slices so that Ctrl-C (`KeyboardInterrupt`) and other
//! signal handlers run within [`SLICE`].

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::QueueError;

/// The longest a blocking call stays in Rust before it checks for signals.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// When a wait with `timeout` seconds (`None`: without limit) ends.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(format!(
            "timeout must be a non-negative number of seconds, not {t}"
        ))),
        Some(t) => Ok(Some(Instant::now() + seconds(t))),
    }
}

/// `t` seconds, already checked by [`deadline`]; a value too large for a
/// `Duration` is about a century.
pub(crate) fn seconds(t: f64) -> Duration {
    Duration::try_from_secs_f64(t).unwrap_or(Duration::from_secs(3_155_760_000))
}

/// A value that leaves [`Python::detach`]'s closure on the thread that called it.
///
/// `detach` runs its closure on the calling thread; its `Send` bounds exist to keep
/// GIL-bound objects out of it, not because the values cross threads. A guard
/// borrowed from a leased handle is not `Send`-checked through the lease, so it
/// travels in this wrapper.
pub(crate) struct SameThread<T>(pub T);

// SAFETY: see the type's docs: the value is created and consumed on one thread.
unsafe impl<T> Send for SameThread<T> {}

/// Run `attempt(slice_end)` without the GIL until it succeeds, fails for another
/// reason than a timeout, or `deadline` passes (then `Timeout`); between slices,
/// run Python's signal handlers (a `KeyboardInterrupt` propagates).
pub(crate) fn blocking<R>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Instant) -> Result<R, QueueError>,
) -> PyResult<R> {
    loop {
        let now = Instant::now();
        let slice_end = match deadline {
            Some(d) => d.min(now + SLICE),
            None => now + SLICE,
        };
        let run = SameThread(&mut attempt);
        let got = py.detach(move || {
            let run = run;
            SameThread((run.0)(slice_end))
        });
        match got.0 {
            Ok(r) => return Ok(r),
            Err(QueueError::Timeout) if deadline.is_none_or(|d| slice_end < d) => {
                py.check_signals()?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
