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
//!
//! # The identity block, field by field
//! For peers in other languages (a Python `struct.unpack_from` over
//! `SharedMemory(name).buf`, a C struct). Integers are in the byte order of the
//! machine (every process sharing a segment runs on the same one); the block is
//! [`LAYOUT_VERSION`] 6.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 8 | `magic` | [`MAGIC`] (on a little-endian machine, the bytes `SHMBATCH`) |
//! | 8 | 4 | `version` | [`LAYOUT_VERSION`]; any other value is refused (`VersionMismatch`) |
//! | 12 | 4 | `kind` | 1 SPSC, 2 MPMC, 3 array |
//! | 16 | 4 | `init` | 0 while the creator writes the rest, then `u32::from_le_bytes(*b"REDY")`, stored last (Release) |
//! | 20 | 4 | `creator_pid` | pid of the creating process |
//! | 24 | 4 | `elem_size` | `size_of::<T>()` in bytes, at least 1 |
//! | 28 | 4 | `elem_align` | `align_of::<T>()`, a power of two, at most 128 |
//! | 32 | 4 | `tag_len` | length of the type tag in bytes, 0 (untagged) to [`TAG_MAX`] |
//! | 36 | 4 | `flags` | bits 0 and 1, SPSC only: the [`WakeProtocol`], 0 symmetric, 1 asymmetric, 2 adaptive (3 is refused); other bits 0, and refused if set |
//! | 40 | 8 | `capacity` | elements asked for at creation (SPSC: the ring is the `data_len` bytes of the data region), slots (MPMC), elements (array) |
//! | 48 | 8 | `max_batch` | largest batch in elements (queues); 0 for arrays |
//! | 56 | 8 | `stride` | slot size in bytes (MPMC); 0 otherwise |
//! | 64 | 8 | `data_offset` | offset of the data region, a multiple of 128 |
//! | 72 | 8 | `data_len` | length of the data region in bytes |
//! | 80 | 8 | `segment_len` | length of the whole segment in bytes |
//! | 88 | 8 | `ndim` | arrays: number of dimensions, 0 (a flat array of `capacity` elements) to [`MAX_DIMS`]; 0 for queues |
//! | 96 | 32 | `reserved` | 0 |
//! | 128 | 64 | `tag` | the type tag: `tag_len` printable ASCII bytes (0x20 to 0x7e), in order; the writer zeroes the rest, readers ignore it |
//! | 192 | 64 | `shape` | arrays: the `ndim` dimensions as `u64`, each at least 1, in C order, whose product is `capacity`; the rest 0 |
//!
//! # Element types: size, alignment and tag
//! A segment records what its elements are by layout, not by Rust type name (which
//! is not stable across compilers and differs for the same `#[repr(C)]` struct
//! defined in two crates): their size, their alignment and a *type tag*, a short
//! ASCII string. The built-in numeric types are tagged with numpy's dtype string
//! ([`dtype_of`]): `"<f8"` for `f64`, `"<f4"` `f32`, `"<i8"` `i64`, `"<u8"` `u64`,
//! `"<i4"` `i32`, `"<u4"` `u32`, `"<i2"` `i16`, `"<u2"` `u16`, and `"|i1"` `i8`,
//! `"|u1"` `u8` (one byte has no byte order; `>` instead of `<` on a big-endian
//! machine), so a Python process can pass it to `numpy.dtype` as it is. Other
//! types (structs, arrays such as `[f64; 2]`) are untagged unless their creator
//! and openers set a tag with [`Options::tag`](crate::Options::tag).
//!
//! An opener's type matches the segment's when sizes are equal, alignments are
//! equal, and the tags are equal **where both are set**: an empty tag on either side
//! matches any tag. So `f64` and `u64` (both 8 bytes) do not match, a struct opens a
//! segment of the same struct defined elsewhere, and a user type without a tag
//! trusts size and alignment alone, even against a tagged segment (set a tag to be
//! stricter). Anything else is `Error::TypeMismatch`, which names both sides' size,
//! alignment and tag.

use std::fmt;

use crate::error::{Error, Result};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{WakeProtocol, FLAGS_WAKE};

/// `b"SHMBATCH"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMBATCH");
/// Version of the layout this build writes and reads. Version 4 records the
/// element type by size, alignment and tag (version 3 recorded a hash of its Rust
/// type name), and its MPMC positions carry the last claimer's identity.
pub const LAYOUT_VERSION: u32 = 6;
/// Size of the identity block that starts every segment.
pub const IDENTITY_SIZE: usize = 256;
/// Offset of the kind-specific control block.
pub const CONTROL_OFFSET: usize = IDENTITY_SIZE;
/// Alignment of the data region, and the width we assume for a cache line (two
/// 64-byte lines, because adjacent-line prefetch pairs them on x86).
pub const LINE: usize = 128;
/// Largest segment we agree to create or open: 1 TiB.
pub const MAX_SEGMENT_LEN: usize = 1 << 40;
/// Longest type tag in bytes (see the [module docs](self), "Element types").
pub const TAG_MAX: usize = 64;
/// Most dimensions an array's header records (numpy shapes of up to 8 axes).
pub const MAX_DIMS: usize = 8;

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

/// Which end of a queue a handle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The producing end.
    Sender,
    /// The consuming end.
    Receiver,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        })
    }
}

/// What a segment holds, as recorded in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A single-producer single-consumer batch ring ([`crate::spsc`]).
    Spsc,
    /// A multi-producer multi-consumer slot queue ([`crate::mpmc`]).
    Mpmc,
    /// A shared array updated in place.
    Array,
    /// A broadcast log: one publisher, many subscribers ([`crate::broadcast`]).
    Broadcast,
}

impl Kind {
    /// The value of the identity block's `kind` field (the table in the module
    /// docs).
    pub(crate) const fn code(self) -> u32 {
        match self {
            Kind::Spsc => 1,
            Kind::Mpmc => 2,
            Kind::Array => 3,
            Kind::Broadcast => 4,
        }
    }

    /// The kind a `kind` field names, if any.
    pub(crate) const fn from_code(code: u32) -> Option<Kind> {
        match code {
            1 => Some(Kind::Spsc),
            2 => Some(Kind::Mpmc),
            3 => Some(Kind::Array),
            4 => Some(Kind::Broadcast),
            _ => None,
        }
    }

    /// The lowercase name used in messages and by the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Spsc => "spsc",
            Kind::Mpmc => "mpmc",
            Kind::Array => "array",
            Kind::Broadcast => "broadcast",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity block at offset 0 of every segment (the table in the module docs).
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
    /// Number of bytes of `tag`, in 0..=[`TAG_MAX`]; 0 for an untagged type.
    pub tag_len: AtomicU32,
    /// Bits 0 and 1: the SPSC wake protocol (0 symmetric, 1 asymmetric, 2
    /// adaptive; [`FLAGS_WAKE`](crate::wait::FLAGS_WAKE)); the others 0.
    pub flags: AtomicU32,
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
    /// Arrays: number of dimensions in `shape`, 0 for a flat array (and queues).
    pub ndim: AtomicU64,
    /// Reserved, 0: pads the first line.
    pub reserved: [AtomicU64; 4],
    /// The type tag's ASCII bytes in memory order (each word holds 8 of them as
    /// `u64::from_ne_bytes`), zero after `tag_len`.
    pub tag: [AtomicU64; TAG_MAX / 8],
    /// Arrays: the first `ndim` words are the dimensions; the rest are 0.
    pub shape: [AtomicU64; MAX_DIMS],
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
    assert!(offset_of!(Identity, creator_pid) == 20);
    assert!(offset_of!(Identity, elem_size) == 24);
    assert!(offset_of!(Identity, elem_align) == 28);
    assert!(offset_of!(Identity, tag_len) == 32);
    assert!(offset_of!(Identity, flags) == 36);
    assert!(offset_of!(Identity, capacity) == 40);
    assert!(offset_of!(Identity, max_batch) == 48);
    assert!(offset_of!(Identity, stride) == 56);
    assert!(offset_of!(Identity, data_offset) == 64);
    assert!(offset_of!(Identity, data_len) == 72);
    assert!(offset_of!(Identity, segment_len) == 80);
    assert!(offset_of!(Identity, ndim) == 88);
    assert!(offset_of!(Identity, reserved) == 96);
    assert!(offset_of!(Identity, tag) == 128);
    assert!(offset_of!(Identity, shape) == 192);
};

/// The numpy dtype string of `T` if it is one of the built-in numeric types
/// (`"<f8"` for `f64` on a little-endian machine, `"|u1"` for `u8`), `None`
/// otherwise: the tag a segment of `T` records unless
/// [`Options::tag`](crate::Options::tag) sets another (module docs, "Element
/// types").
///
/// ```
/// use shmbatch::layout::dtype_of;
/// # if cfg!(target_endian = "little") {
/// assert_eq!(dtype_of::<f64>(), Some("<f8"));
/// assert_eq!(dtype_of::<u16>(), Some("<u2"));
/// # }
/// assert_eq!(dtype_of::<i8>(), Some("|i1"));
/// assert_eq!(dtype_of::<[f64; 2]>(), None);
/// ```
pub fn dtype_of<T: 'static>() -> Option<&'static str> {
    use std::any::TypeId;
    // TypeId needs no trait of T, so handles stay generic over any `Pod` type.
    let table: [(TypeId, &str, &str); 10] = [
        (TypeId::of::<f64>(), "<f8", ">f8"),
        (TypeId::of::<f32>(), "<f4", ">f4"),
        (TypeId::of::<i64>(), "<i8", ">i8"),
        (TypeId::of::<u64>(), "<u8", ">u8"),
        (TypeId::of::<i32>(), "<i4", ">i4"),
        (TypeId::of::<u32>(), "<u4", ">u4"),
        (TypeId::of::<i16>(), "<i2", ">i2"),
        (TypeId::of::<u16>(), "<u2", ">u2"),
        (TypeId::of::<i8>(), "|i1", "|i1"),
        (TypeId::of::<u8>(), "|u1", "|u1"),
    ];
    let id = TypeId::of::<T>();
    table.iter().find(|(t, ..)| *t == id).map(|&(_, le, be)| {
        if cfg!(target_endian = "little") {
            le
        } else {
            be
        }
    })
}

/// Why `tag` cannot be a type tag, or `None` if it can: at most [`TAG_MAX`] bytes
/// of printable ASCII (0x20 to 0x7e). The reason is printable text.
fn tag_fault(tag: &[u8]) -> Option<String> {
    if tag.len() > TAG_MAX {
        return Some(format!(
            "element type tag length {} is not in 0..={TAG_MAX}",
            tag.len()
        ));
    }
    tag.iter()
        .any(|b| !(0x20..=0x7e).contains(b))
        .then(|| "element type tag holds a byte that is not printable ASCII".to_owned())
}

/// How a message names a tag: quoted, or "untagged".
pub(crate) fn show_tag(tag: &str) -> String {
    if tag.is_empty() {
        "an untagged type".to_owned()
    } else {
        format!("tag {tag:?}")
    }
}

/// What the crate knows about an element type `T`: what a segment records of it.
#[derive(Debug, Clone)]
pub(crate) struct TypeInfo {
    /// `type_name::<T>()`, for messages about an unsupported type only.
    pub name: &'static str,
    /// The type tag: printable ASCII, at most [`TAG_MAX`] bytes, empty if untagged.
    pub tag: String,
    pub size: usize,
    pub align: usize,
}

impl TypeInfo {
    /// `T` with its built-in tag ([`dtype_of`]), or untagged.
    pub(crate) fn of<T: bytemuck::Pod>() -> Result<TypeInfo> {
        let name = core::any::type_name::<T>();
        let size = core::mem::size_of::<T>();
        let align = core::mem::align_of::<T>();
        let unsupported = |reason| {
            Err(Error::UnsupportedType {
                type_name: name,
                reason,
            })
        };
        if size == 0 {
            return unsupported("zero-sized types carry no data");
        }
        if align > LINE {
            return unsupported("alignment above 128 bytes is not supported");
        }
        if u32::try_from(size).is_err() {
            return unsupported("element larger than 4 GiB");
        }
        Ok(TypeInfo {
            name,
            tag: dtype_of::<T>().unwrap_or_default().to_owned(),
            size,
            align,
        })
    }

    /// The same type with `tag` instead of its built-in one (`None` keeps it).
    ///
    /// # Errors
    /// [`Error::UnsupportedType`] for a tag that is empty, longer than
    /// [`TAG_MAX`] or not printable ASCII.
    pub(crate) fn tagged(self, tag: Option<&str>) -> Result<TypeInfo> {
        let Some(tag) = tag else { return Ok(self) };
        if tag.is_empty() {
            return Err(Error::UnsupportedType {
                type_name: self.name,
                reason: "an empty type tag (leave the tag unset for an untagged type)",
            });
        }
        if tag_fault(tag.as_bytes()).is_some() {
            return Err(Error::UnsupportedType {
                type_name: self.name,
                reason: "a type tag is at most 64 bytes of printable ASCII",
            });
        }
        Ok(TypeInfo {
            tag: tag.to_owned(),
            ..self
        })
    }

    /// Whether a segment that records `size`, `align` and `tag` holds this type
    /// (module docs, "Element types").
    fn matches(&self, size: usize, align: usize, tag: &str) -> bool {
        size == self.size
            && align == self.align
            && (tag.is_empty() || self.tag.is_empty() || tag == self.tag)
    }
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
    /// Arrays: the dimensions ([`Shape::FLAT`] for a flat array and for queues).
    pub shape: Shape,
    /// SPSC: how wakers and sleepers order their stores (the header's `flags`).
    pub wake: WakeProtocol,
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
            shape: Shape::FLAT,
            // Code 0 until an SPSC creator sets it: the other kinds do not use it.
            wake: WakeProtocol::Symmetric,
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
        self.capacity.store(g.capacity, r);
        self.max_batch.store(g.max_batch, r);
        self.stride.store(g.stride, r);
        self.data_offset.store(g.data_offset as u64, r);
        self.data_len.store(g.data_len as u64, r);
        self.segment_len.store(g.segment_len as u64, r);
        self.flags.store(g.wake.flags(), r);
        let dims = g.shape.dims();
        self.ndim.store(dims.len() as u64, r);
        for (i, word) in self.shape.iter().enumerate() {
            word.store(dims.get(i).map_or(0, |&d| d as u64), r);
        }
        let tag = ty.tag.as_bytes();
        debug_assert!(tag_fault(tag).is_none(), "TypeInfo holds a valid tag");
        self.tag_len.store(tag.len() as u32, r);
        for (i, word) in self.tag.iter().enumerate() {
            let mut buf = [0u8; 8];
            let lo = (i * 8).min(tag.len());
            let hi = (i * 8 + 8).min(tag.len());
            buf[..hi - lo].copy_from_slice(&tag[lo..hi]);
            word.store(u64::from_ne_bytes(buf), r);
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

    /// The element type tag recorded by the creator, checked: at most
    /// [`TAG_MAX`] bytes of printable ASCII, so that it can go into a message as it
    /// is. Empty for an untagged type.
    pub(crate) fn tag(&self) -> Result<String> {
        let len = self.tag_len.load(Ordering::Relaxed) as usize;
        if len > TAG_MAX {
            return Err(Error::corrupted(format!(
                "element type tag length {len} is not in 0..={TAG_MAX}"
            )));
        }
        let bytes: Vec<u8> = self
            .tag
            .iter()
            .flat_map(|w| w.load(Ordering::Relaxed).to_ne_bytes())
            .take(len)
            .collect();
        if let Some(fault) = tag_fault(&bytes) {
            return Err(Error::corrupted(fault));
        }
        // Printable ASCII is UTF-8.
        Ok(bytes.into_iter().map(char::from).collect())
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
        let flags = self.flags.load(r);
        let wake = match WakeProtocol::from_flags(flags) {
            Some(w) if flags & !FLAGS_WAKE == 0 => w,
            _ => {
                return Err(Error::corrupted(format!(
                    "header flags {flags:#x} hold bits no creator sets"
                )))
            }
        };
        let tag = self.tag()?;
        if let Some((want_kind, ty)) = expect {
            if kind != want_kind {
                return Err(Error::KindMismatch {
                    found: kind,
                    expected: want_kind,
                });
            }
            if !ty.matches(elem_size, elem_align, &tag) {
                return Err(Error::TypeMismatch {
                    found: tag,
                    found_size: elem_size,
                    found_align: elem_align,
                    expected: ty.tag.clone(),
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
        let capacity = self.capacity.load(r);
        let shape = self.shape(kind, capacity)?;
        Ok(Geometry {
            kind,
            elem_size,
            elem_align,
            capacity,
            max_batch: self.max_batch.load(r),
            stride: self.stride.load(r),
            data_offset,
            data_len,
            segment_len,
            creator_pid: self.creator_pid.load(r),
            shape,
            wake,
        })
    }

    /// The recorded shape, checked: none for queues; for arrays at most
    /// [`MAX_DIMS`] dimensions of at least 1 whose product is `capacity`.
    fn shape(&self, kind: Kind, capacity: u64) -> Result<Shape> {
        let ndim = self.ndim.load(Ordering::Relaxed);
        if ndim == 0 {
            return Ok(Shape::FLAT);
        }
        if kind != Kind::Array {
            return Err(Error::corrupted("a queue header records an array shape"));
        }
        let ndim = usize::try_from(ndim)
            .ok()
            .filter(|&n| n <= MAX_DIMS)
            .ok_or_else(|| {
                Error::corrupted(format!("array has {ndim} dimensions, at most {MAX_DIMS}"))
            })?;
        let mut dims = [0usize; MAX_DIMS];
        for (d, word) in dims.iter_mut().zip(&self.shape).take(ndim) {
            *d = usize::try_from(word.load(Ordering::Relaxed)).unwrap_or(0);
        }
        let len = usize::try_from(capacity).unwrap_or(0);
        Shape::new(&dims[..ndim], len).map_err(|_| {
            Error::corrupted(format!(
                "array shape {:?} does not describe its {capacity} elements",
                &dims[..ndim]
            ))
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

mod shape;
pub(crate) use shape::Shape;

#[cfg(all(test, not(loom)))]
mod tests;
