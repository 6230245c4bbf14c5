//! `View`: the context of `reserve` and `recv_view` (`with ... as arr:`), an
//! in-place batch lent by a leased handle, and the numpy array over it.

use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::array::borrowed_array;
use crate::dtype::{dispatch, DType};
use crate::queue::Lent;
use crate::slot::Lease;

/// What keeps a view's handle leased, whatever the handle's type.
pub(crate) trait Release: Send + Sync {
    fn release(&mut self);
    fn is_ours(&self) -> bool;
}

impl<H: ?Sized + Send> Release for Lease<H> {
    fn release(&mut self) {
        Lease::release(self)
    }
    fn is_ours(&self) -> bool {
        Lease::is_ours(self)
    }
}

/// An in-place batch: room from `reserve` or a batch from `recv_view`.
struct Lending {
    /// Declared first: finished or dropped before `lease` lets the handle go.
    lent: Option<Box<dyn Lent>>,
    lease: Box<dyn Release>,
}

impl Drop for Lending {
    fn drop(&mut self) {
        if let Some(lent) = self.lent.take() {
            if self.lease.is_ours() {
                // A view dropped unentered or unfinished: a reservation publishes
                // nothing, a batch is released.
                drop(lent);
            } else {
                // Inherited through fork: the parent's, not ours to touch.
                std::mem::forget(lent);
            }
        }
        self.lease.release();
    }
}

/// The context of `reserve` and `recv_view`: `with ... as arr:`.
#[pyclass(module = "shmbatch._shmbatch")]
pub struct View {
    lending: Mutex<Option<Lending>>,
    array: Mutex<Option<Py<PyAny>>>,
    /// Keeps the memory the array shows mapped after the view is released and
    /// even after its handle is closed: the array then reads stale data, never
    /// unmapped memory.
    _mapped: Option<shmbatch::Mapped>,
    dtype: DType,
    /// A reservation (publish on a clean exit) rather than a received batch.
    reservation: bool,
    len: usize,
}

impl View {
    pub(crate) fn new(
        lent: Box<dyn Lent + 'static>,
        lease: Box<dyn Release>,
        mapped: Option<shmbatch::Mapped>,
        dtype: DType,
        reservation: bool,
    ) -> PyResult<View> {
        let len = lent.len();
        let view = View {
            lending: Mutex::new(Some(Lending {
                lent: Some(lent),
                lease,
            })),
            array: Mutex::new(None),
            _mapped: mapped,
            dtype,
            reservation,
            len,
        };
        Ok(view)
    }

    /// Commit (a reservation, if `publish`) or release (a batch), then make the
    /// array read-only.
    fn finish(&self, py: Python<'_>, publish: bool) -> PyResult<()> {
        let lending = self
            .lending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut l) = lending {
            if let Some(lent) = l.lent.take() {
                if l.lease.is_ours() && (publish || !self.reservation) {
                    lent.finish();
                } else if l.lease.is_ours() {
                    drop(lent);
                } else {
                    std::mem::forget(lent);
                }
            }
            // `l` drops: the handle is free for other calls, and may be closed.
        }
        // The array no longer refers to a batch of ours: read-only, and the view
        // lets it go (no cycle between the two is left for the GC).
        if let Some(arr) = self.array.lock().unwrap_or_else(|p| p.into_inner()).take() {
            crate::array::make_read_only(arr.bind(py))?;
        }
        Ok(())
    }
}

#[pymethods]
impl View {
    /// The batch as a numpy array over the ring (the same array each time).
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.borrow();
        if let Some(a) = this
            .array
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(a.clone_ref(py));
        }
        let ptr = {
            let lending = this.lending.lock().unwrap_or_else(|p| p.into_inner());
            match lending.as_ref().and_then(|l| l.lent.as_ref()) {
                Some(l) => l.ptr(),
                None => return Err(PyValueError::new_err("this view was already released")),
            }
        };
        let arr = dispatch!(
            this.dtype,
            borrowed_array(ptr, this.len, slf.clone().into_any())
        )?;
        *this.array.lock().unwrap_or_else(|p| p.into_inner()) = Some(arr.clone().unbind());
        Ok(arr.unbind())
    }

    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let clean = exc_type.is_none_or(|t| t.is_none());
        self.finish(py, clean)?;
        Ok(false)
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        // The array refers to this view (its base) while the block runs: a cycle
        // the garbage collector must see if both are dropped unfinished.
        if let Ok(a) = self.array.try_lock() {
            if let Some(a) = a.as_ref() {
                visit.call(a)?;
            }
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        let a = self
            .array
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(a);
    }

    /// Finish without a `with` block: publish a reservation, release a batch.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, true)
    }

    /// Number of elements.
    fn __len__(&self) -> usize {
        self.len
    }
}
