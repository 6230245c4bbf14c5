//! Stream about 1 GiB of f64 batches from this process to a second, real process
//! through a named shared-memory segment, verify every value, print the throughput.
//!
//! ```text
//! cargo run --release --example quickstart                 # 1 GiB, batches of 1..=8192
//! cargo run --release --example quickstart -- --gib 4 --max-batch 65536
//! ```
//!
//! The parent creates the segment and produces with the zero-copy path
//! (`reserve` + fill in place + `commit`); the child (this same executable, started
//! with `--consume NAME`) opens it by name and checks each batch where it lies in
//! the ring (`recv` guard). Batch lengths vary (deterministic pseudo-random), and
//! every value is checked bit for bit.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use shmbatch::spsc::{Receiver, Sender};
use shmbatch::RecvTimeoutError;

/// Value number `i` of the stream (exact in f64 for i < 2^53).
fn value(i: u64) -> f64 {
    i as f64
}

/// Length of batch `k`, in 1..=max (xorshift, so both processes agree).
fn batch_len(k: u64, max: usize) -> usize {
    let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    1 + (x % max as u64) as usize
}

fn arg(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn consume(name: &str, max: usize) -> Result<(u64, u64), String> {
    let mut rx = Receiver::<f64>::open(name).map_err(|e| e.to_string())?;
    let (mut values, mut batches) = (0u64, 0u64);
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => {
                let want = batch_len(batches, max);
                if b.len() != want {
                    return Err(format!(
                        "batch {batches}: {} values, expected {want}",
                        b.len()
                    ));
                }
                // Check in place: the slice is the ring itself.
                let bad = b
                    .iter()
                    .enumerate()
                    .find(|&(j, x)| x.to_bits() != value(values + j as u64).to_bits());
                if let Some((j, x)) = bad {
                    return Err(format!("value {}: got {x}", values + j as u64));
                }
                values += b.len() as u64;
                batches += 1;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok((values, batches)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let max: usize = arg(&args, "--max-batch").map_or(8192, |s| s.parse().expect("--max-batch N"));
    if let Some(name) = arg(&args, "--consume") {
        return match consume(&name, max) {
            Ok((values, batches)) => {
                println!("consumer: verified {values} values in {batches} batches");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("consumer: FAILED: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let gib: f64 = arg(&args, "--gib").map_or(1.0, |s| s.parse().expect("--gib N"));
    let total = (gib * (1u64 << 30) as f64 / 8.0) as u64;
    let name = format!("shmbatch-quickstart-{}", std::process::id());

    // Room for 16 of the largest batches.
    let mut tx = Sender::<f64>::create(&name, 16 * max).expect("create segment");
    println!(
        "segment /dev/shm/{name}: capacity {} f64, batches of 1..={max} f64",
        tx.capacity()
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--consume", &name, "--max-batch", &max.to_string()])
        .spawn()
        .expect("spawn consumer process");
    println!(
        "consumer process {} started; streaming {gib} GiB ...",
        child.id()
    );

    let start = Instant::now();
    let (mut sent, mut k) = (0u64, 0u64);
    let mut failed = None;
    while sent < total {
        let len = batch_len(k, max);
        let mut slot = match tx.reserve_timeout(len, Duration::from_secs(30)) {
            Ok(slot) => slot,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        for (j, x) in slot.iter_mut().enumerate() {
            *x = value(sent + j as u64);
        }
        slot.commit();
        sent += len as u64;
        k += 1;
    }
    drop(tx); // disconnect: the consumer drains and stops
    let status = child.wait().expect("wait for consumer");
    let secs = start.elapsed().as_secs_f64();
    if let Some(e) = failed {
        eprintln!("producer: {e}");
        return ExitCode::FAILURE;
    }
    if !status.success() {
        eprintln!("consumer failed");
        return ExitCode::FAILURE;
    }
    let bytes = sent as f64 * 8.0;
    println!(
        "sent {sent} f64 ({:.2} GiB) in {k} batches in {secs:.3} s: {:.2} GB/s, {:.2} M batches/s, every value verified",
        bytes / (1u64 << 30) as f64,
        bytes / secs / 1e9,
        k as f64 / secs / 1e6
    );
    ExitCode::SUCCESS
}
