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

/// State letter and start time (field 22 of `/proc/PID/stat`, low 32 bits) of
/// process `pid`, or `None` if it does not exist.
pub fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let start: u64 = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start as u32))
}

/// A process identity as the wire format packs it (54 bits): `start << 22 | pid`.
pub fn proc_word(pid: u32, start: u32) -> u64 {
    u64::from(start) << 22 | u64::from(pid)
}

/// An SPSC owner word: `proc_word << 8 | state` (1 attached, 2 left).
pub fn spsc_owner(pid: u32, start: u32, state: u64) -> u64 {
    proc_word(pid, start) << 8 | state
}

/// Wait (up to 10 s) until child `pid` has exited but is not reaped: a zombie.
pub fn wait_for_zombie(pid: u32) {
    let t = std::time::Instant::now();
    while proc_stat(pid).map(|(s, _)| s) != Some('Z') {
        assert!(
            t.elapsed().as_secs() < 10,
            "child {pid} never became a zombie"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
