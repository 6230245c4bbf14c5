//! Element types: the numpy dtypes the binding carries, and the one place that
//! turns a runtime dtype into a Rust type parameter ([`dispatch!`]).

use bytemuck::Pod;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use shmbatch::layout::dtype_of;
use shmbatch::SharedArray;

/// The element types of segments Python can open: numpy's fixed-size numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F8,
    F4,
    I8,
    U8,
    I4,
    U4,
    I2,
    U2,
    I1,
    U1,
}

/// Every supported dtype, for messages and lookups.
const ALL: [DType; 10] = [
    DType::F8,
    DType::F4,
    DType::I8,
    DType::U8,
    DType::I4,
    DType::U4,
    DType::I2,
    DType::U2,
    DType::I1,
    DType::U1,
];

impl DType {
    /// The segment tag of this type (`"<f8"`): what Rust's `dtype_of` records.
    pub(crate) fn tag(self) -> &'static str {
        let tag = match self {
            DType::F8 => dtype_of::<f64>(),
            DType::F4 => dtype_of::<f32>(),
            DType::I8 => dtype_of::<i64>(),
            DType::U8 => dtype_of::<u64>(),
            DType::I4 => dtype_of::<i32>(),
            DType::U4 => dtype_of::<u32>(),
            DType::I2 => dtype_of::<i16>(),
            DType::U2 => dtype_of::<u16>(),
            DType::I1 => dtype_of::<i8>(),
            DType::U1 => dtype_of::<u8>(),
        };
        tag.expect("the built-in numeric types are tagged")
    }

    /// The dtype a segment tag names, if the binding carries it.
    pub(crate) fn from_tag(tag: &str) -> Option<DType> {
        ALL.into_iter().find(|d| d.tag() == tag)
    }

    /// Whatever `numpy.dtype()` accepts ("f8", "<f8", `numpy.float64`, `float`, a
    /// dtype) as one of ours; a `TypeError` naming what is supported otherwise.
    pub(crate) fn parse(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
        static NP_DTYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let py = obj.py();
        let np_dtype = NP_DTYPE.get_or_try_init(py, || {
            py.import("numpy")?.getattr("dtype").map(Bound::unbind)
        })?;
        let dt = np_dtype.bind(py).call1((obj,))?;
        let tag: String = dt.getattr("str")?.extract()?;
        DType::from_tag(&tag).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|d| d.tag()).collect();
            PyTypeError::new_err(format!(
                "dtype {tag} is not supported by shmbatch: use one of {}",
                names.join(", ")
            ))
        })
    }

    /// The numpy dtype object of this type.
    pub(crate) fn numpy<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("numpy")?.getattr("dtype")?.call1((self.tag(),))
    }
}

/// What an element type must be to cross into Python: plain bytes that numpy
/// knows, convertible from and to Python numbers.
pub(crate) trait Elem:
    Pod
    + numpy::Element
    + Send
    + Sync
    + for<'a, 'py> FromPyObject<'a, 'py>
    + for<'py> IntoPyObject<'py>
    + 'static
{
    /// Atomic element operations, for the types that have them (`TypeError`
    /// otherwise).
    fn atomics(a: &SharedArray<Self>) -> PyResult<&dyn Atomics<Self>>;
}

/// `SharedArray`'s element operations, where `T` is an `AtomicElement`.
pub(crate) trait Atomics<T> {
    fn load(&self, i: usize) -> Option<T>;
    fn store(&self, i: usize, v: T) -> Option<()>;
    fn swap(&self, i: usize, v: T) -> Option<T>;
    fn fetch_add(&self, i: usize, v: T) -> Option<T>;
    fn compare_exchange(&self, i: usize, current: T, new: T) -> Option<Result<T, T>>;
}

impl<T: shmbatch::AtomicElement> Atomics<T> for SharedArray<T> {
    fn load(&self, i: usize) -> Option<T> {
        SharedArray::load(self, i).ok()
    }
    fn store(&self, i: usize, v: T) -> Option<()> {
        SharedArray::store(self, i, v).ok()
    }
    fn swap(&self, i: usize, v: T) -> Option<T> {
        SharedArray::swap(self, i, v).ok()
    }
    fn fetch_add(&self, i: usize, v: T) -> Option<T> {
        SharedArray::fetch_add(self, i, v).ok()
    }
    fn compare_exchange(&self, i: usize, current: T, new: T) -> Option<Result<T, T>> {
        SharedArray::compare_exchange(self, i, current, new).ok()
    }
}

/// `impl Elem` for types with atomic element operations.
macro_rules! atomic_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            fn atomics(a: &SharedArray<Self>) -> PyResult<&dyn Atomics<Self>> {
                Ok(a)
            }
        }
    )*};
}

/// `impl Elem` for types without them (no 1- or 2-byte atomics in `SharedArray`).
macro_rules! plain_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            fn atomics(_: &SharedArray<Self>) -> PyResult<&dyn Atomics<Self>> {
                Err(PyTypeError::new_err(format!(
                    "element operations need a 4- or 8-byte dtype, not {}",
                    dtype_of::<$t>().unwrap_or("?")
                )))
            }
        }
    )*};
}

atomic_elem!(f64, f32, i64, u64, i32, u32);
plain_elem!(i16, u16, i8, u8);

/// Call the generic function `$f::<T>($args)` with `T` the Rust type of the
/// runtime [`DType`] `$dt`: the one place where a dtype picks a type.
macro_rules! dispatch {
    ($dt:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $dt {
            $crate::dtype::DType::F8 => $f::<f64>($($arg),*),
            $crate::dtype::DType::F4 => $f::<f32>($($arg),*),
            $crate::dtype::DType::I8 => $f::<i64>($($arg),*),
            $crate::dtype::DType::U8 => $f::<u64>($($arg),*),
            $crate::dtype::DType::I4 => $f::<i32>($($arg),*),
            $crate::dtype::DType::U4 => $f::<u32>($($arg),*),
            $crate::dtype::DType::I2 => $f::<i16>($($arg),*),
            $crate::dtype::DType::U2 => $f::<u16>($($arg),*),
            $crate::dtype::DType::I1 => $f::<i8>($($arg),*),
            $crate::dtype::DType::U1 => $f::<u8>($($arg),*),
        }
    };
}
pub(crate) use dispatch;
