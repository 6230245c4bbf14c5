//! What one zenoh sample of a bridged stream holds: a small header, the element
//! type, then the batch's bytes. Everything here is read from the network, so
//! [`decode`] checks every field before any of it is used.
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"SBZB"` |
//! | 4 | 1 | format version ([`VERSION`]) |
//! | 5 | 1 | flags: [`END`] (the source is drained and gone; no payload) |
//! | 6 | 1 | `tag_len`: bytes of the type tag, at most [`TAG_MAX`] |
//! | 7 | 1 | zero |
//! | 8 | 4 | element size in bytes (not zero) |
//! | 12 | 4 | element alignment in bytes (a power of two) |
//! | 16 | 8 | stream id |
//! | 24 | 8 | sequence number of the batch in its stream, below 2^63 |
//! | 32 | 8 | when the exporter sent it: ns since the Unix epoch |
//! | 40 | `tag_len` | type tag: printable ASCII, the numpy dtype string for built-ins |
//! | 40 + `tag_len` | rest | the batch: a whole number of elements, native byte order |
//!
//! Integers are little-endian. The elements are carried as the exporter's host
//! stores them; the tag of a built-in type names its byte order (`"<f8"`), so two
//! hosts of different byte order refuse each other's streams rather than swap bytes.

use shmbatch::layout::TAG_MAX;

/// The first four bytes of every sample.
pub(crate) const MAGIC: [u8; 4] = *b"SBZB";
/// The format this crate writes and reads.
pub(crate) const VERSION: u8 = 1;
/// Flag: the exporter's source is drained and its senders are gone. Carries no batch.
pub(crate) const END: u8 = 1;
/// Bytes before the tag.
pub(crate) const FIXED: usize = 40;
/// Sequence numbers are below this (2^63): far beyond any stream, and it leaves
/// the importer's `seq + 1` and sums of gaps without overflow.
pub(crate) const MAX_SEQ: u64 = 1 << 63;

/// The element type of a stream, as it travels: what a queue's segment records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamType {
    /// The type tag: a numpy dtype string such as `"<f8"` for the built-in types,
    /// or what [`shmbatch::Options::tag`] set; empty for an untagged type.
    pub tag: String,
    /// `size_of` the element.
    pub size: u32,
    /// `align_of` the element.
    pub align: u32,
}

impl StreamType {
    /// The type a queue of `T` records when its creator set no tag.
    pub fn of<T: bytemuck::Pod>() -> StreamType {
        StreamType {
            tag: shmbatch::layout::dtype_of::<T>().unwrap_or("").to_owned(),
            size: size_of::<T>() as u32,
            align: align_of::<T>() as u32,
        }
    }
}

impl std::fmt::Display for StreamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = if self.tag.is_empty() {
            "untagged".to_owned()
        } else {
            format!("{:?}", self.tag)
        };
        write!(f, "{tag} ({} bytes, align {})", self.size, self.align)
    }
}

/// The header fields of one sample, type aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub flags: u8,
    pub stream: u64,
    pub seq: u64,
    pub sent_ns: u64,
}

/// A decoded sample: header, the type as sent, and the batch's bytes.
#[derive(Debug)]
pub(crate) struct Sample<'a> {
    pub header: Header,
    pub tag: &'a [u8],
    pub size: u32,
    pub align: u32,
    pub payload: &'a [u8],
}

impl Sample<'_> {
    /// Whether the sample's type is `ty`.
    pub fn is_type(&self, ty: &StreamType) -> bool {
        self.tag == ty.tag.as_bytes() && self.size == ty.size && self.align == ty.align
    }

    /// The sample's type, for messages (the tag was checked printable ASCII).
    pub fn stream_type(&self) -> StreamType {
        StreamType {
            tag: String::from_utf8_lossy(self.tag).into_owned(),
            size: self.size,
            align: self.align,
        }
    }
}

/// Append the header for `ty` and `h` to `out` (cleared first); the caller
/// appends the batch's bytes.
pub(crate) fn encode_header(out: &mut Vec<u8>, ty: &StreamType, h: &Header) {
    debug_assert!(ty.tag.len() <= TAG_MAX);
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, h.flags, ty.tag.len() as u8, 0]);
    out.extend_from_slice(&ty.size.to_le_bytes());
    out.extend_from_slice(&ty.align.to_le_bytes());
    out.extend_from_slice(&h.stream.to_le_bytes());
    out.extend_from_slice(&h.seq.to_le_bytes());
    out.extend_from_slice(&h.sent_ns.to_le_bytes());
    out.extend_from_slice(ty.tag.as_bytes());
}

/// Why a sample is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than a header.
    #[error("sample of {0} bytes is shorter than a header")]
    Short(usize),
    /// Not a shmbatch-zenoh sample.
    #[error("sample does not start with the shmbatch-zenoh magic")]
    Magic,
    /// A format this build does not read.
    #[error("sample format version {found}, this build reads {expected}")]
    Version {
        /// In the sample.
        found: u8,
        /// What this build reads.
        expected: u8,
    },
    /// A header field out of range.
    #[error("sample header is invalid: {0}")]
    Field(&'static str),
    /// The batch is not a whole number of elements.
    #[error("batch of {bytes} bytes is not a whole number of {size}-byte elements")]
    Ragged {
        /// Payload bytes.
        bytes: usize,
        /// Element size.
        size: u32,
    },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Check and split one sample. Never panics, whatever `b` holds.
pub(crate) fn decode(b: &[u8]) -> Result<Sample<'_>, WireError> {
    if b.len() < FIXED {
        return Err(WireError::Short(b.len()));
    }
    if b[0..4] != MAGIC {
        return Err(WireError::Magic);
    }
    if b[4] != VERSION {
        return Err(WireError::Version {
            found: b[4],
            expected: VERSION,
        });
    }
    let flags = b[5];
    if flags & !END != 0 {
        return Err(WireError::Field("unknown flag bits"));
    }
    let tag_len = usize::from(b[6]);
    if tag_len > TAG_MAX {
        return Err(WireError::Field("type tag longer than 64 bytes"));
    }
    if b[7] != 0 {
        return Err(WireError::Field("reserved byte is not zero"));
    }
    let (size, align) = (u32_at(b, 8), u32_at(b, 12));
    if size == 0 {
        return Err(WireError::Field("element size is zero"));
    }
    if !align.is_power_of_two() {
        return Err(WireError::Field("element alignment is not a power of two"));
    }
    let Some(tag) = b.get(FIXED..FIXED + tag_len) else {
        return Err(WireError::Short(b.len()));
    };
    if tag.iter().any(|c| !(0x20..=0x7e).contains(c)) {
        return Err(WireError::Field("type tag is not printable ASCII"));
    }
    let payload = &b[FIXED + tag_len..];
    if !payload.len().is_multiple_of(size as usize) {
        return Err(WireError::Ragged {
            bytes: payload.len(),
            size,
        });
    }
    if flags & END != 0 && !payload.is_empty() {
        return Err(WireError::Field("end-of-stream sample carries a batch"));
    }
    let seq = u64_at(b, 24);
    if seq >= MAX_SEQ {
        return Err(WireError::Field("sequence number out of range"));
    }
    Ok(Sample {
        header: Header {
            flags,
            stream: u64_at(b, 16),
            seq,
            sent_ns: u64_at(b, 32),
        },
        tag,
        size,
        align,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ty: &StreamType, h: &Header, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_header(&mut v, ty, h);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn round_trip_keeps_every_field_and_byte() {
        let ty = StreamType::of::<f64>();
        let h = Header {
            flags: 0,
            stream: 0xdead_beef_0123_4567,
            seq: MAX_SEQ - 1,
            sent_ns: 42,
        };
        let xs = [f64::from_bits(0x7ff8_dead_beef_0001), -0.0, 1.5];
        let b = sample(&ty, &h, bytemuck::cast_slice(&xs));
        let s = decode(&b).unwrap();
        assert_eq!(s.header, h);
        assert!(s.is_type(&ty));
        assert_eq!(s.stream_type(), ty);
        let back: Vec<f64> = s
            .payload
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&xs));
    }

    #[test]
    fn every_malformed_sample_is_an_error() {
        let ty = StreamType::of::<f64>();
        let h = Header {
            flags: 0,
            stream: 1,
            seq: 2,
            sent_ns: 3,
        };
        let good = sample(&ty, &h, &[0; 16]);
        assert!(decode(&good).is_ok());
        let with = |at: usize, v: u8| {
            let mut b = good.clone();
            b[at] = v;
            decode(&b).unwrap_err()
        };
        assert_eq!(with(0, b'x'), WireError::Magic);
        assert!(matches!(with(4, 9), WireError::Version { found: 9, .. }));
        assert_eq!(with(5, 2), WireError::Field("unknown flag bits"));
        assert_eq!(
            with(5, END),
            WireError::Field("end-of-stream sample carries a batch")
        );
        assert_eq!(
            with(6, 65),
            WireError::Field("type tag longer than 64 bytes")
        );
        assert_eq!(with(7, 1), WireError::Field("reserved byte is not zero"));
        assert_eq!(with(8, 3), WireError::Ragged { bytes: 16, size: 3 });
        assert_eq!(
            with(12, 3),
            WireError::Field("element alignment is not a power of two")
        );
        assert_eq!(
            with(40, 0),
            WireError::Field("type tag is not printable ASCII")
        );
        assert_eq!(decode(&good[..39]).unwrap_err(), WireError::Short(39));
        assert_eq!(
            with(31, 0x80),
            WireError::Field("sequence number out of range")
        );
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(WireError::Ragged { .. })
        ));
        let mut zero = good.clone();
        zero[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            decode(&zero).unwrap_err(),
            WireError::Field("element size is zero")
        );
        // A tag running past the end of the sample.
        let mut long = good[..FIXED].to_vec();
        long[6] = 10;
        assert_eq!(decode(&long).unwrap_err(), WireError::Short(FIXED));
        // Every truncation and every single-byte change is handled without a panic.
        for n in 0..good.len() {
            let _ = decode(&good[..n]);
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[n] = v;
                let _ = decode(&b);
            }
        }
    }
}
