//! [`Shape`]: the dimensions an array's header records (layout version 5:
//! `ndim` at offset 88, the dimensions at 192; see the parent module's table).

use super::MAX_DIMS;
use crate::error::{Error, Result};

/// The dimensions of an array as its header records them: none (flat), or up to
/// [`MAX_DIMS`] dimensions, each at least 1, whose product is the array's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    ndim: usize,
    dims: [usize; MAX_DIMS],
}

impl Shape {
    /// No dimensions recorded: a flat array of `capacity` elements.
    pub(crate) const FLAT: Shape = Shape {
        ndim: 0,
        dims: [0; MAX_DIMS],
    };

    /// The dimensions `dims` of an array of `len` elements, checked.
    ///
    /// # Errors
    /// [`Error::InvalidSize`] for more than [`MAX_DIMS`] dimensions, none, a
    /// dimension of 0, or a product that is not `len`.
    pub(crate) fn new(dims: &[usize], len: usize) -> Result<Shape> {
        let bad = |value, reason: String| {
            Err(Error::InvalidSize {
                what: "shape",
                value,
                reason,
            })
        };
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return bad(
                dims.len(),
                format!("an array has 1 to {MAX_DIMS} dimensions"),
            );
        }
        if dims.contains(&0) {
            return bad(0, "every dimension is at least 1".into());
        }
        let product = dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
        if product != Some(len) {
            return bad(
                product.unwrap_or(usize::MAX),
                format!("the dimensions {dims:?} do not multiply to the length {len}"),
            );
        }
        let mut out = Shape::FLAT;
        out.ndim = dims.len();
        out.dims[..dims.len()].copy_from_slice(dims);
        Ok(out)
    }

    /// The recorded dimensions (empty for [`FLAT`](Self::FLAT)).
    pub(crate) fn dims(&self) -> &[usize] {
        &self.dims[..self.ndim]
    }
}
