//! The alternatives `shmbatch bench` compares shmbatch with. Kept out of the
//! library so that `shmbatch` itself keeps its small dependency set; not published.
//!
//! Every function moves batches of `batch` `f64` for about `dur` and returns the
//! rate in elements per second, or why the peer was skipped. Cross-process peers
//! spawn `exe bench-peer <what> ...` (the `shmbatch` binary) as the other end;
//! [`child`] is that other end. The broadcast peers (`*_broadcast`) publish
//! batches of [`broadcast::BATCH`] from this process to several subscriber
//! processes, and [`broadcast`] is how the CLI measures shmbatch's the same way.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod broadcast;
#[cfg(feature = "iceoryx2")]
mod iox_broadcast;
mod ringfire;
mod shaq;

pub use self::ringfire::{ringfire, ringfire_broadcast};
pub use self::shaq::{shaq, shaq_broadcast};

/// The back-off shmbatch uses before it sleeps, from the library itself (16 looks
/// one CPU pause apart, then 2, 4 .. 64 pauses between looks, then yield; see
/// `docs/benchmarks.md`). Every spinning peer here uses it, so that on a busy
/// machine a thread that waits gives its core away as shmbatch does. The CLI's
/// limit measurements use it too, so that the limits see the same scheduler and
/// the same polling as shmbatch.
pub use shmbatch::__bench::Backoff;

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

/// Elements in a shmbatch ring of the bench for batches of `batch`: the larger of
/// 4 batches and 16384 elements (as in the CLI's `ring_for`).
fn ring_elements(batch: usize) -> usize {
    (4 * batch).max(16384)
}

/// A fresh path for a shared memory file: in `/dev/shm` (the temporary directory
/// where there is none), unique to this process and call.
fn shm_path(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("shmbatch-bench-{}-{n}-{tag}", std::process::id()))
}

/// A shared memory file and the peer process that uses it. Dropped, also on an
/// error path, it gives the process `grace` to exit by itself, ends it if it has
/// not, reaps it and removes the file.
struct ShmPeer {
    path: PathBuf,
    child: Option<Child>,
    grace: Duration,
}

impl ShmPeer {
    /// The file at `path`, removed on drop: nothing has been started yet.
    fn new(path: PathBuf) -> Self {
        ShmPeer {
            path,
            child: None,
            grace: Duration::ZERO,
        }
    }

    /// Starts `exe bench-peer ARGS` as the peer; its standard output is piped.
    fn spawn(&mut self, exe: &Path, args: &[String]) -> Result<&mut Child, Skipped> {
        let child = spawn(exe, args).map_err(|e| format!("spawn {}: {e}", exe.display()))?;
        Ok(self.child.insert(child))
    }

    /// Why the peer process has gone, or `None` while it runs.
    fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(format!("the peer process exited early ({status})")),
            Err(e) => Some(format!("the peer process: {e}")),
        }
    }
}

impl Drop for ShmPeer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let until = Instant::now() + self.grace;
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `f` on a thread with a 64 MiB stack: ringfire moves its records by value,
/// and a record of 65536 `f64` is 512 KiB.
fn on_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(s, f)
            .expect("spawn a thread");
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
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

/// ipc-channel between two processes, carrying the raw bytes of each batch: the
/// child makes a bytes channel (a Unix socket on Linux), sends its receiving end
/// to this process through a one-shot server, and sends batches through it; this
/// process receives each batch as a `Vec<u8>`. (Typed `IpcSender<Vec<f64>>` adds
/// serialization on top of this and is slower.)
pub fn ipc_channel(exe: &Path, batch: usize, dur: Duration) -> Result<f64, Skipped> {
    use ipc_channel::ipc::{IpcBytesReceiver, IpcOneShotServer};
    let (server, name) =
        IpcOneShotServer::<IpcBytesReceiver>::new().map_err(|e| format!("server: {e}"))?;
    let mut child =
        spawn(exe, &["ipc-channel".into(), batch.to_string(), name]).map_err(|e| e.to_string())?;
    let run = || -> Result<f64, ipc_channel::IpcError> {
        let (_, rx) = server.accept()?;
        let bytes = batch * 8;
        let take = || -> Result<u64, ipc_channel::IpcError> {
            let v = rx.recv()?;
            debug_assert_eq!(v.len(), bytes);
            Ok((v.len() / 8) as u64)
        };
        take()?; // the first batch starts the clock
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < dur {
            for _ in 0..16 {
                n += take()?;
            }
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    };
    let r = run();
    // Dropping the receiver does not always make the child's send fail: a batch
    // above ipc-channel's fragment size travels over a dedicated socket whose
    // receiving end may still be in flight in the closed channel, and the child
    // blocks writing to it. It holds nothing that outlives it: end it.
    let _ = child.kill();
    let _ = child.wait();
    r.map_err(|e| e.to_string())
}

/// Whether this build has the iceoryx2 peer (cargo feature `iceoryx2`).
pub const ICEORYX2_BUILT: bool = cfg!(feature = "iceoryx2");

/// iceoryx2 publish-subscribe between two processes: a child publishes batches of
/// `f64` as slices (`loan_slice_uninit` + `write_from_slice`: one copy in), this
/// process subscribes and copies each sample out, like shmbatch's copying path.
/// No overflow, and the publisher retries until delivered, so that nothing is
/// lost; the subscriber buffer holds as many batches as shmbatch's ring (4 to
/// 1024). Needs the cargo feature `iceoryx2`; without it, always skipped.
pub fn iceoryx2(exe: &Path, batch: usize, dur: Duration) -> Result<f64, Skipped> {
    #[cfg(feature = "iceoryx2")]
    return iox::subscribe(exe, batch, dur);
    #[cfg(not(feature = "iceoryx2"))]
    {
        let _ = (exe, batch, dur);
        Err("not built in (cargo feature `iceoryx2`)".into())
    }
}

/// iceoryx2 publish-subscribe from this process to `subs` subscriber processes,
/// batches of [`broadcast::BATCH`] (see `iox_broadcast`). Needs the cargo
/// feature `iceoryx2`; without it, always skipped.
pub fn iceoryx2_broadcast(exe: &Path, subs: usize, dur: Duration) -> Result<f64, Skipped> {
    #[cfg(feature = "iceoryx2")]
    return iox_broadcast::publish(exe, subs, dur);
    #[cfg(not(feature = "iceoryx2"))]
    {
        let _ = (exe, subs, dur);
        Err("not built in (cargo feature `iceoryx2`)".into())
    }
}

/// Batches a shmbatch ring of the bench holds: its capacity is the larger of 4
/// batches and 16384 elements (as in the CLI's `ring_for`).
#[cfg(feature = "iceoryx2")]
fn batches_in_ring(batch: usize) -> usize {
    ((4 * batch).max(16384) / batch).clamp(4, 1024)
}

#[cfg(feature = "iceoryx2")]
mod iox {
    use super::{batches_in_ring, spawn, AtomicU64, Backoff, Duration, Instant, Ordering, Skipped};
    use iceoryx2::port::publisher::Publisher;
    use iceoryx2::prelude::PortFactory as _;
    use iceoryx2::prelude::{
        set_log_level, BackpressureStrategy, LogLevel, Node, NodeBuilder, ServiceName,
        SignalHandlingMode,
    };
    use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

    type Service = iceoryx2::service::ipc::Service;

    fn service(
        node: &Node<Service>,
        name: &str,
        batch: usize,
        create: bool,
    ) -> Result<PortFactory<Service, [f64], ()>, String> {
        let name: ServiceName = name.try_into().map_err(|e| format!("{e:?}"))?;
        let b = node
            .service_builder(&name)
            .publish_subscribe::<[f64]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(batches_in_ring(batch))
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1);
        if create {
            b.create().map_err(|e| format!("create service: {e:?}"))
        } else {
            b.open().map_err(|e| format!("open service: {e:?}"))
        }
    }

    pub(super) fn node() -> Result<Node<Service>, String> {
        set_log_level(LogLevel::Error);
        NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Service>()
            .map_err(|e| format!("node: {e:?}"))
    }

    pub(super) fn subscribe(
        exe: &std::path::Path,
        batch: usize,
        dur: Duration,
    ) -> Result<f64, Skipped> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "shmbatch-bench/{}/{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let node = node()?;
        let service = service(&node, &name, batch, true)?;
        let sub = service
            .subscriber_builder()
            .buffer_size(batches_in_ring(batch))
            .create()
            .map_err(|e| format!("subscriber: {e:?}"))?;
        let mut child =
            spawn(exe, &["iceoryx2".into(), batch.to_string(), name]).map_err(|e| e.to_string())?;
        let mut out = vec![0.0f64; batch];
        let mut take = || -> Result<bool, String> {
            match sub.receive() {
                Ok(Some(s)) => {
                    out.copy_from_slice(s.payload());
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(e) => Err(format!("receive: {e:?}")),
            }
        };
        let mut run = |child: &mut std::process::Child| -> Result<f64, String> {
            let mut b = Backoff::default();
            while !take()? {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("iceoryx2 publisher exited early: {status}"));
                }
                b.snooze();
            }
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < dur {
                for _ in 0..16 {
                    let mut b = Backoff::default();
                    while !take()? {
                        b.snooze();
                    }
                    n += batch as u64;
                }
            }
            Ok(n as f64 / start.elapsed().as_secs_f64())
        };
        let r = run(&mut child);
        drop(sub); // the publisher then delivers to nobody and exits
        let _ = child.wait();
        std::hint::black_box(&out);
        r
    }

    fn publisher(
        service: &PortFactory<Service, [f64], ()>,
        batch: usize,
    ) -> Result<Publisher<Service, [f64], ()>, String> {
        service
            .publisher_builder()
            .initial_max_slice_len(batch)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(|e| format!("publisher: {e:?}"))
    }

    /// The child end: publish until the subscriber has gone. Counts nothing: the
    /// subscriber counts the samples it receives.
    pub(super) fn publish(batch: usize, name: &str) -> Result<(), String> {
        let node = node()?;
        let service = service(&node, name, batch, false)?;
        let publisher = publisher(&service, batch)?;
        let src: Vec<f64> = (0..batch).map(|i| i as f64).collect();
        loop {
            let s = publisher
                .loan_slice_uninit(batch)
                .map_err(|e| format!("loan: {e:?}"))?;
            let n = s
                .write_from_slice(&src)
                .send()
                .map_err(|e| format!("send: {e:?}"))?;
            // No recipient: the subscriber has gone, or (with it still there) the
            // sample was dropped because its list of held samples was full. The
            // subscriber, created before this process started, tells which.
            if n == 0 && service.dynamic_config().number_of_subscribers() == 0 {
                return Ok(());
            }
        }
    }
}

/// The child end of the cross-process peers: `pipe BATCH`, `uds BATCH PATH`,
/// `ipc-channel BATCH SERVER`, `ringfire-send BATCH PATH`, `shaq-send BATCH PATH`,
/// `iceoryx2 BATCH SERVICE`, and the broadcast subscribers `ringfire-sub PATH`,
/// `shaq-sub PATH` and `iceoryx2-sub SUBS SERVICE`. Returns `false` for an unknown peer.
pub fn child(args: &[String]) -> bool {
    let batch = || args[1].parse::<usize>().expect("batch size");
    match args.first().map(String::as_str) {
        Some("pipe") => write_batches(std::io::stdout().lock(), batch()),
        Some("uds") => {
            let s = std::os::unix::net::UnixStream::connect(&args[2]).expect("connect");
            write_batches(s, batch());
        }
        Some("ipc-channel") => {
            use ipc_channel::ipc::{IpcBytesReceiver, IpcSender};
            let server = IpcSender::<IpcBytesReceiver>::connect(args[2].clone()).expect("connect");
            let (tx, rx) = ipc_channel::ipc::bytes_channel().expect("bytes channel");
            server.send(rx).expect("send the receiving end");
            drop(server);
            let buf = vec![1u8; batch() * 8];
            while tx.send(&buf).is_ok() {}
        }
        Some("ringfire-send") => {
            exit_on_error("ringfire producer", ringfire::send(batch(), &args[2]))
        }
        Some("shaq-send") => exit_on_error("shaq producer", shaq::send(batch(), &args[2])),
        Some("ringfire-sub") => exit_on_error("ringfire reader", ringfire::subscribe(&args[1])),
        Some("shaq-sub") => exit_on_error("shaq consumer", shaq::subscribe(&args[1])),
        #[cfg(feature = "iceoryx2")]
        Some("iceoryx2-sub") => exit_on_error(
            "iceoryx2 subscriber",
            iox_broadcast::subscribe(args[1].parse().expect("subscriber count"), &args[2]),
        ),
        #[cfg(feature = "iceoryx2")]
        Some("iceoryx2") => {
            if let Err(e) = iox::publish(batch(), &args[2]) {
                eprintln!("iceoryx2 publisher: {e}");
                std::process::exit(1);
            }
        }
        _ => return false,
    }
    true
}

/// A child's failure: printed, and the process exits with status 1.
fn exit_on_error(what: &str, r: Result<(), String>) {
    if let Err(e) = r {
        eprintln!("{what}: {e}");
        std::process::exit(1);
    }
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
