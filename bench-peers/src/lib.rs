//! The alternatives `shmbatch bench` compares shmbatch with. Kept out of the
//! library so that `shmbatch` itself keeps its small dependency set; not published.
//!
//! Every function moves batches of `batch` `f64` for about `dur` and returns the
//! rate in elements per second, or why the peer was skipped. Cross-process peers
//! spawn `exe bench-peer <what> ...` (the `shmbatch` binary) as the other end;
//! [`child`] is that other end.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The back-off shmbatch uses before it sleeps: spin 1, 2, 4 .. 32 times, then
/// yield. Every spinning peer here uses it, so that on a busy machine a thread
/// that waits gives its core away as shmbatch does.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn snooze(&mut self) {
        if self.0 < 6 {
            for _ in 0..1u32 << self.0 {
                std::hint::spin_loop();
            }
            self.0 += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// A peer that could not run, with the reason.
pub type Skipped = String;

/// rtrb between two threads, batches written and read as chunks (copying).
pub fn rtrb_threads(batch: usize, dur: Duration) -> f64 {
    let cap = (4 * batch).max(16384);
    let (mut tx, mut rx) = rtrb::RingBuffer::<f64>::new(cap);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let src = vec![1.0f64; batch];
    let producer = std::thread::spawn(move || {
        let mut b = Backoff::default();
        while !s2.load(Ordering::Relaxed) {
            if let Ok(chunk) = tx.write_chunk_uninit(batch) {
                chunk.fill_from_iter(src.iter().copied());
                b = Backoff::default();
            } else {
                b.snooze();
            }
        }
    });
    let mut out = vec![0.0f64; batch];
    let mut n = 0u64;
    let start = Instant::now();
    let mut backoff = Backoff::default();
    while start.elapsed() < dur {
        for _ in 0..64 {
            if let Ok(chunk) = rx.read_chunk(batch) {
                let (a, b) = chunk.as_slices();
                out[..a.len()].copy_from_slice(a);
                out[a.len()..].copy_from_slice(b);
                chunk.commit_all();
                n += batch as u64;
                backoff = Backoff::default();
            } else {
                backoff.snooze();
            }
        }
    }
    let t = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    std::hint::black_box(&out);
    n as f64 / t.as_secs_f64()
}

/// crossbeam `ArrayQueue<f64>` between threads: `producers` threads push, the
/// caller and `consumers - 1` more threads pop, one element at a time.
pub fn crossbeam_threads(producers: usize, consumers: usize, dur: Duration) -> f64 {
    let q = Arc::new(crossbeam_queue::ArrayQueue::<f64>::new(16384));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut hs = Vec::new();
    for _ in 0..producers {
        let (q, stop) = (q.clone(), stop.clone());
        hs.push(std::thread::spawn(move || {
            let (mut x, mut b) = (0.0, Backoff::default());
            while !stop.load(Ordering::Relaxed) {
                if q.push(x).is_err() {
                    b.snooze();
                } else {
                    b = Backoff::default();
                }
                x += 1.0;
            }
        }));
    }
    let start = Instant::now();
    for _ in 0..consumers {
        let (q, stop, count) = (q.clone(), stop.clone(), count.clone());
        hs.push(std::thread::spawn(move || {
            let (mut n, mut b) = (0u64, Backoff::default());
            while !stop.load(Ordering::Relaxed) {
                match q.pop() {
                    Some(v) => {
                        std::hint::black_box(v);
                        n += 1;
                        b = Backoff::default();
                    }
                    None => b.snooze(),
                }
            }
            count.fetch_add(n, Ordering::Relaxed);
        }));
    }
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let t = start.elapsed();
    for h in hs {
        h.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / t.as_secs_f64()
}

fn read_batches(mut r: impl Read, batch: usize, dur: Duration) -> std::io::Result<f64> {
    let mut buf = vec![0u8; batch * 8];
    r.read_exact(&mut buf)?; // the first batch starts the clock
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..16 {
            r.read_exact(&mut buf)?;
            n += batch as u64;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn spawn(exe: &Path, args: &[String]) -> std::io::Result<std::process::Child> {
    Command::new(exe)
        .arg("bench-peer")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
}

/// A pipe between two processes carrying the raw bytes of each batch.
pub fn pipe(exe: &Path, batch: usize, dur: Duration) -> Result<f64, Skipped> {
    let mut child = spawn(exe, &["pipe".into(), batch.to_string()]).map_err(|e| e.to_string())?;
    let out = child.stdout.take().unwrap();
    let r = read_batches(out, batch, dur);
    // Dropping the read end makes the writer's next write fail: it exits.
    let _ = child.wait();
    r.map_err(|e| e.to_string())
}

/// A Unix domain stream socket between two processes carrying the raw bytes.
pub fn unix_socket(exe: &Path, batch: usize, dur: Duration) -> Result<f64, Skipped> {
    let path = std::env::temp_dir().join(format!("shmbatch-bench-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(|e| e.to_string())?;
    let mut child = spawn(
        exe,
        &[
            "uds".into(),
            batch.to_string(),
            path.to_string_lossy().into_owned(),
        ],
    )
    .map_err(|e| e.to_string())?;
    let r = listener
        .accept()
        .and_then(|(s, _)| read_batches(s, batch, dur));
    let _ = std::fs::remove_file(&path);
    let _ = child.wait();
    r.map_err(|e| e.to_string())
}

fn write_batches(mut w: impl Write, batch: usize) {
    let buf = vec![1u8; batch * 8];
    while w.write_all(&buf).is_ok() {}
}

/// The child end of the cross-process peers: `pipe BATCH` or `uds BATCH PATH`.
/// Returns `false` for an unknown peer.
pub fn child(args: &[String]) -> bool {
    let batch = || args[1].parse::<usize>().expect("batch size");
    match args.first().map(String::as_str) {
        Some("pipe") => write_batches(std::io::stdout().lock(), batch()),
        Some("uds") => {
            let s = std::os::unix::net::UnixStream::connect(&args[2]).expect("connect");
            write_batches(s, batch());
        }
        _ => return false,
    }
    true
}

const PYTHON: &str = r#"
import sys, time, multiprocessing as mp
import numpy as np
def produce(q, batch, stop):
    a = np.ones(batch, dtype=np.float64)
    while not stop.is_set():
        q.put(a)
    q.put(None)
if __name__ == "__main__":
    batch, dur = int(sys.argv[1]), float(sys.argv[2])
    q, stop = mp.Queue(maxsize=64), mp.Event()
    p = mp.Process(target=produce, args=(q, batch, stop))
    p.start()
    q.get()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < dur:
        for _ in range(16):
            n += len(q.get())
    t = time.perf_counter() - t0
    stop.set()
    while q.get() is not None:
        pass
    p.join()
    print(n / t)
"#;

/// Python's `multiprocessing.Queue` carrying numpy arrays between two processes.
/// Skipped when `python3` or numpy is missing.
pub fn python_mp_queue(batch: usize, dur: Duration) -> Result<f64, Skipped> {
    let out = Command::new("python3")
        .args([
            "-c",
            PYTHON,
            &batch.to_string(),
            &dur.as_secs_f64().to_string(),
        ])
        .output()
        .map_err(|e| format!("python3 not found ({e})"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No module named 'numpy'") {
            return Err("numpy is not installed for python3".into());
        }
        return Err(format!(
            "python3 failed: {}",
            err.lines().last().unwrap_or("")
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("unexpected python output: {e}"))
}
