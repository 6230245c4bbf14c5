//! What the hostile-segment targets share.

/// `init` word (offset 16) value of a published header; set so that `open` does
/// not wait for a creator (the unpublished case is covered by unit tests).
const READY: [u8; 4] = *b"REDY";

/// Write `bytes` (padded to the 256-byte identity block, with the header marked
/// published) as the shared-memory object `name`.
pub fn write_segment(name: &str, mut bytes: Vec<u8>) {
    if bytes.len() < 256 {
        bytes.resize(256, 0);
    }
    bytes[16..20].copy_from_slice(&READY);
    std::fs::write(format!("/dev/shm/{name}"), &bytes).unwrap();
}

/// Read every element of a received batch (its bits, so NaNs count) and write the
/// first in place, as a consumer would.
pub fn touch(b: &mut [f64]) {
    std::hint::black_box(b.iter().map(|x| x.to_bits()).fold(0, u64::wrapping_add));
    if let Some(x) = b.first_mut() {
        *x = 1.0;
    }
}
