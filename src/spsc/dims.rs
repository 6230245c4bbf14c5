//! Sizes of an SPSC ring: the one formula from a capacity in elements to ring
//! bytes and the longest batch, the checks of an opened segment's geometry, and
//! record sizes. No atomics: what the sizes are used for is `ring.rs`.

use super::ring::SpscControl;
use crate::layout::{Geometry, TypeInfo, MAX_SEGMENT_LEN};
use crate::{Error, Kind, Result};

/// Ring bytes and the longest batch (in elements) for a queue of `capacity`
/// elements of `size` bytes aligned to `align`, with records padded to
/// `unit = max(min_unit, align)`; `None` if the ring would exceed the largest
/// segment. The one formula of the record rings (SPSC with a `min_unit` of 8,
/// the broadcast log with 16, which holds its two header words): the ring is the
/// size of two records of the longest batch,
/// `2 * (U + round_up(ceil(capacity / 2) * size, U))` bytes, so that an empty
/// ring takes such a record wherever its write offset stands.
pub(crate) fn ring_for(
    size: usize,
    align: usize,
    min_unit: usize,
    capacity: usize,
) -> Option<(usize, usize)> {
    let unit = align.max(min_unit);
    let half_payload = capacity
        .div_ceil(2)
        .checked_mul(size)
        .filter(|&b| b <= MAX_SEGMENT_LEN / 2)?
        .next_multiple_of(unit);
    let ring = 2 * (unit + half_payload);
    (ring <= MAX_SEGMENT_LEN - 4096).then_some((ring, half_payload / size.max(1)))
}

/// Ring bytes and the longest batch for a new record ring of `capacity`
/// elements of `ty` ([`ring_for`]), with `max_batch` checked against what it
/// allows (by default the most): the errors a caller's bad sizes get.
pub(crate) fn sizes(
    ty: &TypeInfo,
    min_unit: usize,
    capacity: usize,
    max_batch: Option<usize>,
) -> Result<(usize, usize)> {
    if capacity == 0 {
        return Err(Error::InvalidSize {
            what: "capacity",
            value: 0,
            reason: "must be at least 1 element".into(),
        });
    }
    let (ring, most) =
        ring_for(ty.size, ty.align, min_unit, capacity).ok_or_else(|| Error::InvalidSize {
            what: "capacity",
            value: capacity,
            reason: format!("the ring would exceed {MAX_SEGMENT_LEN} bytes"),
        })?;
    let max_batch = match max_batch {
        None => most,
        Some(m) if (1..=most).contains(&m) => m,
        Some(m) => {
            return Err(Error::InvalidSize {
                what: "max_batch",
                value: m,
                reason: format!(
                    "must be in 1..={most} for a capacity of {capacity} elements (a batch \
                     takes at most half the ring)"
                ),
            })
        }
    };
    Ok((ring, max_batch))
}

/// Sizes of the ring, fixed at creation and validated on open.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    /// Elements asked for at creation (`Identity.capacity`): the ring is sized
    /// from it by [`ring_for`].
    pub(super) capacity: usize,
    /// Ring length in bytes (`Identity.data_len`): a multiple of `2 * unit`.
    pub(super) ring: usize,
    /// Record alignment unit: `max(8, align_of::<T>())`.
    pub(super) unit: usize,
    /// `size_of::<T>()`.
    pub(super) elem: usize,
    /// Largest batch in elements; `record(max_batch) <= ring / 2`.
    pub(super) max_batch: usize,
}

impl Dims {
    /// Dims of a ring for `capacity` elements, carrying batches of up to
    /// `max_batch` elements (by default the most it can).
    pub(super) fn for_capacity(
        ty: &TypeInfo,
        capacity: usize,
        max_batch: Option<usize>,
    ) -> Result<Dims> {
        let (ring, max_batch) = sizes(ty, 8, capacity, max_batch)?;
        Ok(Dims {
            capacity,
            ring,
            unit: ty.align.max(8),
            elem: ty.size,
            max_batch,
        })
    }

    /// Dims of an existing segment, from its validated identity block: the ring is
    /// the data region, and capacity, ring and maximum batch must agree.
    pub(super) fn from_geometry(g: &Geometry) -> Result<Dims> {
        let ring = g.data_len;
        let unit = g.elem_align.max(8);
        if !unit.is_power_of_two() || ring < 2 * unit || ring % (2 * unit) != 0 {
            return Err(Error::corrupted("spsc ring length is inconsistent"));
        }
        let max_batch = usize::try_from(g.max_batch).unwrap_or(usize::MAX);
        match max_batch.checked_mul(g.elem_size) {
            Some(b) if b <= ring / 2 && unit + b.next_multiple_of(unit) <= ring / 2 => {}
            _ => {
                return Err(Error::corrupted(
                    "spsc maximum batch does not fit half the ring",
                ))
            }
        }
        let capacity = usize::try_from(g.capacity).unwrap_or(0);
        match ring_for(g.elem_size, g.elem_align, 8, capacity) {
            Some((r, most)) if capacity > 0 && r == ring && max_batch <= most => Ok(Dims {
                capacity,
                ring,
                unit,
                elem: g.elem_size,
                max_batch,
            }),
            _ => Err(Error::corrupted(
                "spsc ring length does not match the capacity",
            )),
        }
    }

    /// The identity block's geometry for these dims (module docs of `layout`).
    pub(super) fn geometry(&self, ty: &TypeInfo) -> Result<Geometry> {
        Geometry::new(
            Kind::Spsc,
            ty,
            std::mem::size_of::<SpscControl>(),
            self.ring,
            self.capacity as u64,
            self.max_batch as u64,
            0,
        )
    }

    /// Bytes a record of `len` elements occupies; `len <= max_batch`.
    #[inline]
    pub(super) fn record(&self, len: usize) -> usize {
        debug_assert!(len <= self.max_batch);
        // `unit` is a power of two (checked in `from_geometry`), so rounding up is a
        // mask, not a division; no overflow: the result is at most ring / 2.
        let mask = self.unit - 1;
        self.unit + ((len * self.elem + mask) & !mask)
    }

    /// The most records the ring can hold at once (each takes at least a unit, and
    /// one unit stays free): the bound of `len`.
    pub(super) fn max_records(&self) -> u64 {
        (self.ring / self.unit - 1) as u64
    }

    /// Batches waiting, from counts that a peer may have damaged: `sent -
    /// received` clamped to `0..=max_records` (a count may also lag its position
    /// by a batch, which makes the difference -1 for a moment).
    pub(super) fn waiting(&self, sent: u64, received: u64) -> usize {
        let d = sent.wrapping_sub(received);
        if d > 1 << 63 {
            0
        } else {
            d.min(self.max_records()) as usize
        }
    }
}
