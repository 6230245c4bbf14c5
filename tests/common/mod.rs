//! Helpers shared by the tests that use real shared memory.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A segment name unique to this process and call, starting with `shmbatch-test-`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmbatch-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where a segment lives on Linux.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name)
}

/// Removes the segment (or whatever file has its name) when dropped, even if the
/// test fails.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = shmbatch::remove_any(&self.0);
    }
}

/// Overwrite bytes of a segment at `offset`, as a hostile peer would.
pub fn poke(name: &str, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path(name)).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Read the little-endian `u64` of a segment at `offset`.
pub fn peek_u64(name: &str, offset: u64) -> u64 {
    let f = OpenOptions::new().read(true).open(path(name)).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, offset).unwrap();
    u64::from_le_bytes(b)
}
