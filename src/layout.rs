//! The wire format: the header every segment starts with, its constants and its
//! validation.
//!
//! ```text
//! offset 0     Identity (256 bytes): magic, version, kind, init, element type,
//!              geometry. Written once by the creator, published by `init`.
//! offset 256   Control block of the segment's kind (spsc/mpmc/array): the atomic
//!              indices and futex words, each side's words on its own 128-byte line.
//! data_offset  Data region (a multiple of 128), data_len bytes long.
//! ```
//!
//! Offsets only, never pointers: every process maps the segment at its own address.
//! Every field is an atomic so that reading a header that another process may be
//! writing is never a data race. The creator stores every field with `Relaxed` and
//! then stores `init = INIT_READY` with `Release`; an opener loads `init` with
//! `Acquire` and only then reads the rest (sync point "header publication").
//!
//! A peer is not trusted: `Identity::validate` checks every field against the
//! mapped length before any pointer into the segment is formed, and the algorithms
//! copy what they need into process-local memory once, so a field that changes later
//! cannot move a bound that was already checked.

use crate::error::{Error, Kind, Result};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// `b"SHMBATCH"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMBATCH");
/// Version of the layout this build writes and reads.
pub const LAYOUT_VERSION: u32 = 4;
/// Size of the identity block that starts every segment.
pub const IDENTITY_SIZE: usize = 256;
/// Offset of the kind-specific control block.
pub const CONTROL_OFFSET: usize = IDENTITY_SIZE;
/// Alignment of the data region, and the width we assume for a cache line (two
/// 64-byte lines, because adjacent-line prefetch pairs them on x86).
pub const LINE: usize = 128;
/// Largest segment we agree to create or open: 1 TiB.
pub const MAX_SEGMENT_LEN: usize = 1 << 40;
/// How many bytes of the element type's name the header keeps.
pub const TYPE_NAME_MAX: usize = 64;

/// Array segments: offset of the lock word (a `u64`: 0 when free, else the holder's
/// pid in bits 0..22 and start time in bits 22..54), followed by a `u32` futex
/// word. See [`crate::SharedArray`] ("Layout, and Python", "A process dies").
pub const ARRAY_LOCK_OFFSET: usize = CONTROL_OFFSET;
/// Array segments: offset of the sequence counter (a `u64`, odd while a write is
/// being published, on its own line).
pub const ARRAY_SEQ_OFFSET: usize = CONTROL_OFFSET + LINE;
/// Array segments: offset of the first element, whatever the element type. Stable
/// within [`LAYOUT_VERSION`]; element `i` lies at `ARRAY_DATA_OFFSET + i *
/// size_of::<T>()`, in native byte order. A Python process can map it with
/// `numpy.ndarray((len,), dtype, buffer=shm.buf, offset=ARRAY_DATA_OFFSET)`.
pub const ARRAY_DATA_OFFSET: usize = CONTROL_OFFSET + 2 * LINE;

/// Value of `init` once the creator has written the whole header.
pub(crate) const INIT_READY: u32 = u32::from_le_bytes(*b"REDY");

/// The identity block at offset 0 of every segment.
///
/// Every field is written by the creator only, with `Relaxed`, before `init` is
/// published with `Release`; after that nobody writes them. Readers load `init` with
/// `Acquire` first and treat every other field as untrusted input.
#[repr(C, align(128))]
#[derive(Default)]
pub(crate) struct Identity {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub version: AtomicU32,
    /// [`Kind::code`].
    pub kind: AtomicU32,
    /// 0 while the creator writes the header, [`INIT_READY`] after.
    pub init: AtomicU32,
    /// Process id of the creator (for liveness reports, and for `open` to judge
    /// whether an unpublished header may still be published).
    pub creator_pid: AtomicU32,
    /// `size_of::<T>()`, in 1..=u32::MAX.
    pub elem_size: AtomicU32,
    /// `align_of::<T>()`, a power of two in 1..=[`LINE`].
    pub elem_align: AtomicU32,
    /// FNV-1a hash of `type_name::<T>()`.
    pub type_hash: AtomicU64,
    /// Kind-specific: ring bytes (spsc), slots (mpmc), elements (array).
    pub capacity: AtomicU64,
    /// Largest batch in elements (queues); 0 for arrays.
    pub max_batch: AtomicU64,
    /// Kind-specific stride in bytes (mpmc slot size); 0 otherwise.
    pub stride: AtomicU64,
    /// Offset of the data region; a multiple of [`LINE`], past the control block.
    pub data_offset: AtomicU64,
    /// Length of the data region in bytes.
    pub data_len: AtomicU64,
    /// Length of the whole segment in bytes; at most the mapped length.
    pub segment_len: AtomicU64,
    /// Number of valid bytes in `type_name`, at most [`TYPE_NAME_MAX`].
    pub type_name_len: AtomicU32,
    /// Reserved, 0.
    pub flags: AtomicU32,
    /// Reserved, 0: pads the first line.
    pub reserved: [AtomicU64; 4],
    /// UTF-8 bytes of `type_name::<T>()`, truncated, packed little-endian.
    pub type_name: [AtomicU64; TYPE_NAME_MAX / 8],
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Identity>() == IDENTITY_SIZE);
    assert!(align_of::<Identity>() == LINE);
    assert!(offset_of!(Identity, magic) == 0);
    assert!(offset_of!(Identity, version) == 8);
    assert!(offset_of!(Identity, kind) == 12);
    assert!(offset_of!(Identity, init) == 16);
    assert!(offset_of!(Identity, elem_size) == 24);
    assert!(offset_of!(Identity, capacity) == 40);
    assert!(offset_of!(Identity, data_offset) == 64);
    assert!(offset_of!(Identity, segment_len) == 80);
    assert!(offset_of!(Identity, type_name) == 128);
};

/// What the crate knows about an element type `T`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypeInfo {
    pub name: &'static str,
    pub hash: u64,
    pub size: usize,
    pub align: usize,
}

impl TypeInfo {
    pub(crate) fn of<T: bytemuck::Pod>() -> Result<TypeInfo> {
        let name = core::any::type_name::<T>();
        let size = core::mem::size_of::<T>();
        let align = core::mem::align_of::<T>();
        if size == 0 {
            return Err(Error::UnsupportedType {
                type_name: name,
                reason: "zero-sized types carry no data",
            });
        }
        if align > LINE {
            return Err(Error::UnsupportedType {
                type_name: name,
                reason: "alignment above 128 bytes is not supported",
            });
        }
        if u32::try_from(size).is_err() {
            return Err(Error::UnsupportedType {
                type_name: name,
                reason: "element larger than 4 GiB",
            });
        }
        Ok(TypeInfo {
            name,
            hash: fnv1a(name.as_bytes()),
            size,
            align,
        })
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The creator's description of a segment, written into [`Identity`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub kind: Kind,
    pub elem_size: usize,
    pub elem_align: usize,
    pub capacity: u64,
    pub max_batch: u64,
    pub stride: u64,
    pub data_offset: usize,
    pub data_len: usize,
    pub segment_len: usize,
    pub creator_pid: u32,
}

impl Geometry {
    /// Geometry of a new segment whose control block is `control_size` bytes.
    pub(crate) fn new(
        kind: Kind,
        ty: &TypeInfo,
        control_size: usize,
        data_len: usize,
        capacity: u64,
        max_batch: u64,
        stride: u64,
    ) -> Result<Geometry> {
        let data_offset = (CONTROL_OFFSET + control_size).next_multiple_of(LINE);
        let segment_len = data_offset
            .checked_add(data_len)
            .filter(|&l| l <= MAX_SEGMENT_LEN)
            .ok_or_else(|| Error::InvalidSize {
                what: "segment",
                value: data_len,
                reason: format!("the segment would exceed {MAX_SEGMENT_LEN} bytes"),
            })?;
        Ok(Geometry {
            kind,
            elem_size: ty.size,
            elem_align: ty.align,
            capacity,
            max_batch,
            stride,
            data_offset,
            data_len,
            segment_len,
            creator_pid: std::process::id(),
        })
    }
}

impl Identity {
    /// Write the whole header, then publish it.
    pub(crate) fn publish(&self, g: &Geometry, ty: &TypeInfo) {
        let r = Ordering::Relaxed;
        self.magic.store(MAGIC, r);
        self.version.store(LAYOUT_VERSION, r);
        self.kind.store(g.kind.code(), r);
        self.creator_pid.store(g.creator_pid, r);
        self.elem_size.store(g.elem_size as u32, r);
        self.elem_align.store(g.elem_align as u32, r);
        self.type_hash.store(ty.hash, r);
        self.capacity.store(g.capacity, r);
        self.max_batch.store(g.max_batch, r);
        self.stride.store(g.stride, r);
        self.data_offset.store(g.data_offset as u64, r);
        self.data_len.store(g.data_len as u64, r);
        self.segment_len.store(g.segment_len as u64, r);
        // Whole characters only, so that an opener can insist on valid UTF-8.
        let mut cut = ty.name.len().min(TYPE_NAME_MAX);
        while !ty.name.is_char_boundary(cut) {
            cut -= 1;
        }
        let name = &ty.name.as_bytes()[..cut];
        self.type_name_len.store(name.len() as u32, r);
        for (i, word) in self.type_name.iter().enumerate() {
            let mut buf = [0u8; 8];
            let lo = (i * 8).min(name.len());
            let hi = (i * 8 + 8).min(name.len());
            buf[..hi - lo].copy_from_slice(&name[lo..hi]);
            word.store(u64::from_le_bytes(buf), r);
        }
        // Sync point "header publication": pairs with the Acquire load in
        // `is_ready`/`validate` of every opener.
        self.init.store(INIT_READY, Ordering::Release);
    }

    /// The state of `init`: `Ok(true)` once published, `Ok(false)` while the creator is
    /// still writing, `Err` for a value no creator writes.
    pub(crate) fn is_ready(&self) -> Result<bool> {
        // Pairs with the Release store at the end of `publish`.
        match self.init.load(Ordering::Acquire) {
            INIT_READY => Ok(true),
            0 => Ok(false),
            _ => Err(Error::corrupted("header init word holds an unknown value")),
        }
    }

    /// The element type name recorded by the creator (maybe truncated), checked:
    /// its length is in 1..=[`TYPE_NAME_MAX`] and it is UTF-8 text without control
    /// characters, so that it can go into a message as it is.
    pub(crate) fn type_name(&self) -> Result<String> {
        let len = self.type_name_len.load(Ordering::Relaxed) as usize;
        if len == 0 || len > TYPE_NAME_MAX {
            return Err(Error::corrupted(format!(
                "element type name length {len} is not in 1..={TYPE_NAME_MAX}"
            )));
        }
        let bytes: Vec<u8> = self
            .type_name
            .iter()
            .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
            .take(len)
            .collect();
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            // `publish` keeps whole characters, but a writer that cut the name at
            // TYPE_NAME_MAX bytes may have left the start of one at the end.
            Err(e) if e.error_len().is_none() && len == TYPE_NAME_MAX => {
                std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default()
            }
            Err(_) => return Err(Error::corrupted("element type name is not UTF-8")),
        };
        if text.chars().any(is_unprintable) {
            return Err(Error::corrupted(
                "element type name holds control characters",
            ));
        }
        Ok(text.to_owned())
    }

    /// Read the header of a published segment mapped over `mapped_len` bytes, check
    /// it against what the caller expects, and return a process-local copy.
    ///
    /// `expect` is `None` to accept any kind and element type (inspection).
    pub(crate) fn validate(
        &self,
        mapped_len: usize,
        expect: Option<(Kind, &TypeInfo)>,
        control_size: impl Fn(Kind) -> usize,
    ) -> Result<Geometry> {
        if !self.is_ready()? {
            return Err(Error::corrupted("header was never published"));
        }
        let r = Ordering::Relaxed;
        if self.magic.load(r) != MAGIC {
            return Err(Error::corrupted("bad magic number: not a shmbatch segment"));
        }
        let version = self.version.load(r);
        if version != LAYOUT_VERSION {
            return Err(Error::VersionMismatch {
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        let kind = Kind::from_code(self.kind.load(r))
            .ok_or_else(|| Error::corrupted("unknown segment kind"))?;
        let elem_size = self.elem_size.load(r) as usize;
        let elem_align = self.elem_align.load(r) as usize;
        // What no creator writes is damage, not another type: checked before the
        // comparison with the caller's type, so that a mismatch names a real type.
        if elem_size == 0 || !elem_align.is_power_of_two() || elem_align > LINE {
            return Err(Error::corrupted(format!(
                "impossible element size {elem_size} or alignment {elem_align}"
            )));
        }
        let type_name = self.type_name()?;
        if let Some((want_kind, ty)) = expect {
            if kind != want_kind {
                return Err(Error::KindMismatch {
                    found: kind,
                    expected: want_kind,
                });
            }
            if elem_size != ty.size || elem_align != ty.align || self.type_hash.load(r) != ty.hash {
                return Err(Error::TypeMismatch {
                    found: type_name,
                    found_size: elem_size,
                    found_align: elem_align,
                    expected: ty.name,
                    expected_size: ty.size,
                    expected_align: ty.align,
                });
            }
        }
        let to_usize = |v: u64, what: &'static str| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v <= MAX_SEGMENT_LEN)
                .ok_or_else(|| Error::corrupted(format!("{what} out of range")))
        };
        let data_offset = to_usize(self.data_offset.load(r), "data offset")?;
        let data_len = to_usize(self.data_len.load(r), "data length")?;
        let segment_len = to_usize(self.segment_len.load(r), "segment length")?;
        if data_offset % LINE != 0 || data_offset < CONTROL_OFFSET + control_size(kind) {
            return Err(Error::corrupted(
                "data offset overlaps the header or is misaligned",
            ));
        }
        if data_offset + data_len > segment_len {
            return Err(Error::corrupted(
                "data region extends past the segment length",
            ));
        }
        if segment_len > mapped_len {
            return Err(Error::corrupted(format!(
                "header declares {segment_len} bytes but the segment has only {mapped_len}"
            )));
        }
        Ok(Geometry {
            kind,
            elem_size,
            elem_align,
            capacity: self.capacity.load(r),
            max_batch: self.max_batch.load(r),
            stride: self.stride.load(r),
            data_offset,
            data_len,
            segment_len,
            creator_pid: self.creator_pid.load(r),
        })
    }
}

/// A value on its own 128-byte line, so that words written by different processes
/// never share a cache line (false sharing).
#[repr(C, align(128))]
#[derive(Default, Debug)]
pub(crate) struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Characters a message must not carry from shared memory: C0/C1 controls, and the
/// bidirectional overrides that make a terminal show text in another order.
fn is_unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn header_naming(bytes: &[u8], len: u32) -> Identity {
        let id = Identity::default();
        id.type_name_len.store(len, Ordering::Relaxed);
        for (word, chunk) in id.type_name.iter().zip(bytes.chunks(8)) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            word.store(u64::from_le_bytes(buf), Ordering::Relaxed);
        }
        id
    }

    #[test]
    fn type_names_must_be_printable_utf8() {
        assert_eq!(header_naming(b"f64", 3).type_name().unwrap(), "f64");
        for (bytes, len) in [
            (&b"f64"[..], 0),
            (b"f64", 65),
            (b"f64", u32::MAX),
            (b"\xff\xfe", 2),
            (b"a\x1b[2Jb", 6),
            (b"tab\there", 8),
            ("x\u{202e}y".as_bytes(), 5),
        ] {
            match header_naming(bytes, len).type_name() {
                Err(Error::Corrupted(reason)) => {
                    assert!(!reason.chars().any(is_unprintable), "{reason:?}")
                }
                other => panic!("{bytes:?} {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn long_type_names_are_cut_at_a_character() {
        // 63 ASCII bytes then a 2-byte character: a byte cut would split it.
        const NAME: &str = concat!(
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "é"
        );
        assert_eq!(NAME.len(), 65);
        let name = NAME;
        let ty = TypeInfo {
            name,
            hash: 0,
            size: 8,
            align: 8,
        };
        let g = Geometry::new(Kind::Array, &ty, 0, 0, 0, 0, 0).unwrap();
        let id = Identity::default();
        id.publish(&g, &ty);
        assert_eq!(id.type_name().unwrap(), "a".repeat(63));
        // What a writer that cut mid-character left is read up to the cut.
        let mut bytes = "a".repeat(63).into_bytes();
        bytes.push(0xc3);
        assert_eq!(
            header_naming(&bytes, 64).type_name().unwrap(),
            "a".repeat(63)
        );
    }
}
