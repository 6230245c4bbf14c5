//! The native half of the `shmbatch` Python package (`shmbatch._shmbatch`):
//! pyo3 classes over the Rust library. The Python half (`python/shmbatch/`) adds
//! the `spsc` and `mpmc` modules, the exception classes and pickling.
//!
//! Layering: `dtype` turns a numpy dtype into a Rust type once; `queue` and
//! `array` put every handle behind an object-safe trait; `slot` keeps handles
//! for Python objects (one user at a time, fork-aware); `wait` runs blocking
//! calls without the GIL, in slices, checking for signals.

#![warn(clippy::undocumented_unsafe_blocks)]

mod array;
mod dtype;
mod errors;
mod pyqueue;
mod queue;
mod slot;
mod view;
mod wait;
mod write;

use pyo3::prelude::*;

/// Remove the segment `name` (whoever created it).
#[pyfunction]
fn remove(name: &str) -> PyResult<()> {
    use errors::OrRaise;
    shmbatch::remove(name).or_raise()
}

/// What the header of segment `name` says, as a dict (kind, dtype tag, sizes,
/// shape, creator).
#[pyfunction]
fn inspect<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    use errors::OrRaise;
    let i = shmbatch::inspect(name).or_raise()?;
    let d = pyo3::types::PyDict::new(py);
    d.set_item("name", &i.name)?;
    d.set_item("kind", i.kind.as_str())?;
    d.set_item("dtype", &i.tag)?;
    d.set_item("elem_size", i.elem_size)?;
    d.set_item("capacity", i.capacity)?;
    d.set_item("max_batch", i.max_batch)?;
    d.set_item("shape", i.shape.clone())?;
    d.set_item("data_offset", i.data_offset)?;
    d.set_item("creator_pid", i.creator.pid)?;
    Ok(d)
}

#[pymodule]
fn _shmbatch(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<array::PyArrayHandle>()?;
    m.add_class::<write::Write>()?;
    m.add_class::<write::RecoveredNotice>()?;
    m.add_class::<pyqueue::PySender>()?;
    m.add_class::<pyqueue::PyReceiver>()?;
    m.add_class::<view::View>()?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add("MAX_NAME_LEN", shmbatch::MAX_NAME_LEN)?;
    Ok(())
}
