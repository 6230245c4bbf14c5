//! `with a.write() as arr:`: the `Write` context of `SharedArray.write`, and the
//! notice it gives when a writer died holding the lock.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;

use crate::array::{make_read_only, ArrayGuard, ArrayOps};
use crate::errors::{Class, QueueError};
use crate::wait::{blocking, deadline};

/// What a dead writer left, as Python sees it.
#[pyclass(module = "shmbatch._shmbatch", frozen, get_all)]
#[derive(Clone)]
pub struct RecoveredNotice {
    /// Pid of the writer that died holding the lock (0 if unknown).
    pid: u32,
    /// Whether the array may hold part of its write.
    partial: bool,
}

#[pymethods]
impl RecoveredNotice {
    fn __repr__(&self) -> String {
        format!(
            "Recovered(pid={}, partial={})",
            self.pid,
            if self.partial { "True" } else { "False" }
        )
    }
}

/// The lock of an open `write()` block and the working copy it handed out.
type Held = (Box<dyn ArrayGuard>, Py<PyAny>);

/// The `with a.write() as arr:` context.
#[pyclass(module = "shmbatch._shmbatch")]
pub struct Write {
    pub(crate) array: Arc<dyn ArrayOps>,
    pub(crate) shape: Vec<usize>,
    pub(crate) timeout: Option<f64>,
    /// While the block runs: the lock and the array handed to it.
    pub(crate) state: Mutex<Option<Held>>,
    pub(crate) recovered: Mutex<Option<RecoveredNotice>>,
}

#[pymethods]
impl Write {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.is_some() {
            return Err(Class::Busy.err("this write is already open"));
        }
        let until = deadline(self.timeout)?;
        let array = Arc::clone(&self.array);
        let guard = blocking(py, until, |slice_end| {
            Arc::clone(&array)
                .lock(Some(slice_end))
                .map_err(|_| QueueError::Timeout)
                .map(crate::wait::SameThread)
        })
        .map_err(|e| {
            if e.is_instance_of::<PyTimeoutError>(py) {
                PyTimeoutError::new_err("timed out waiting for the array's lock")
            } else {
                e
            }
        })?
        .0;
        if let Some(r) = guard.recovered() {
            let notice = RecoveredNotice {
                pid: r.pid,
                partial: r.partial,
            };
            let msg = format!(
                "took the lock over from writer pid {} that died holding it; the data {}",
                r.pid,
                if r.partial {
                    "may be partial"
                } else {
                    "is as it left it before publishing (intact)"
                }
            );
            *self.recovered.lock().unwrap_or_else(|p| p.into_inner()) = Some(notice);
            let warning = py.import("shmbatch._errors")?.getattr("RecoveredWarning")?;
            PyErr::warn(
                py,
                &warning,
                &std::ffi::CString::new(msg).expect("no NUL"),
                1,
            )?;
        }
        let arr = guard.to_numpy(py, &self.shape)?;
        *state = Some((guard, arr.clone_ref(py)));
        Ok(arr)
    }

    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let taken = self.state.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((mut guard, arr)) = taken else {
            return Ok(false);
        };
        let arr = arr.bind(py);
        let clean = exc_type.is_none_or(|t| t.is_none());
        if clean {
            guard.copy_from_numpy(arr)?;
            let _ = guard.commit();
        } else {
            drop(guard); // publishes nothing
        }
        make_read_only(arr)?;
        Ok(false)
    }

    /// `None`, or what a writer that died holding the lock left
    /// (`Recovered(pid, partial)`), once the block has started.
    #[getter]
    fn recovered(&self) -> Option<RecoveredNotice> {
        self.recovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
