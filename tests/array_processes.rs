//! `SharedArray` across real processes and real segments.
//!
//! A `harness = false` test: `main` runs as a child role when `SHMBATCH_ARRAY_ROLE`
//! is set (the parent re-runs this very binary as its worker processes), and
//! otherwise runs the trials below with libtest-mimic. Every wait is bounded; every
//! segment name includes the pid; each trial checks that nothing is left in
//! /dev/shm.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use shmbatch::layout::{ARRAY_DATA_OFFSET, ARRAY_LOCK_OFFSET, ARRAY_SEQ_OFFSET};
use shmbatch::{Error, LockBusy, LockTimeout, Recovered, SharedArray};

mod common;

const ROLE: &str = "SHMBATCH_ARRAY_ROLE";
const NAME: &str = "SHMBATCH_ARRAY_NAME";
const COUNT: &str = "SHMBATCH_ARRAY_COUNT";

const PROCS: usize = 4;
const INCREMENTS: usize = 100_000;
/// Longest a worker may run before the trial fails (the machine may be busy).
const CHILD_LIMIT: Duration = Duration::from_secs(120);

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        std::process::exit(child(&role));
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test(
            "locked_increments_from_4_processes_sum_exactly",
            locked_increments_sum_exactly,
        ),
        Trial::test(
            "fetch_add_from_4_processes_sums_exactly",
            fetch_add_sums_exactly,
        ),
        Trial::test(
            "snapshots_are_uniform_while_another_process_fills",
            snapshots_are_uniform,
        ),
        Trial::test(
            "killed_lock_holder_is_recovered_with_a_notice",
            killed_holder_is_recovered,
        ),
        Trial::test(
            "holder_dead_while_publishing_is_reported_partial",
            dead_publisher_is_partial,
        ),
        Trial::test(
            "lock_held_by_a_reused_pid_is_recovered",
            reused_pid_holder_is_recovered,
        ),
        Trial::test(
            "lock_held_by_a_live_process_is_not_stolen",
            live_holder_is_not_stolen,
        ),
        Trial::test(
            "lock_held_by_a_zombie_is_recovered",
            zombie_holder_is_recovered,
        ),
        Trial::test(
            "python_numpy_adds_10_in_place",
            python_numpy_adds_10_in_place,
        ),
        Trial::test("opener_sees_type_and_kind_mismatch", opener_mismatches),
        Trial::test(
            "segment_shorter_than_declared_is_corrupted",
            short_segment_is_corrupted,
        ),
        Trial::test(
            "garbage_headers_are_corrupted",
            garbage_headers_are_corrupted,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

// ---- children ----

fn child(role: &str) -> i32 {
    let name = std::env::var(NAME).unwrap_or_default();
    let count: usize = std::env::var(COUNT)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    match role {
        "exit" => 0,
        "lock-inc" => {
            let a = SharedArray::<f64>::open(&name).expect("open");
            for _ in 0..count {
                let _ = a.write(|xs| xs[0] += 1.0);
            }
            0
        }
        "fetch-add" => {
            let a = SharedArray::<f64>::open(&name).expect("open");
            for _ in 0..count {
                a.fetch_add(0, 1.0).expect("index 0");
            }
            0
        }
        "fill" => {
            let a = SharedArray::<f64>::open(&name).expect("open");
            for k in 1..=count {
                let _ = a.write(|xs| xs.fill(k as f64));
            }
            0
        }
        "snapshot" => {
            let a = SharedArray::<f64>::open(&name).expect("open");
            let end = Instant::now() + Duration::from_secs(60);
            let mut buf = Vec::new();
            let (mut snapshots, mut distinct, mut last) = (0u64, 0u64, f64::NAN.to_bits());
            loop {
                a.snapshot_into(&mut buf);
                snapshots += 1;
                let first = buf[0].to_bits();
                if let Some(bad) = buf.iter().position(|x| x.to_bits() != first) {
                    eprintln!(
                        "torn snapshot: element 0 is {} but element {bad} is {}",
                        buf[0], buf[bad]
                    );
                    return 1;
                }
                if first != last {
                    distinct += 1;
                    last = first;
                }
                if buf[0] == count as f64 {
                    println!("{snapshots} snapshots, {distinct} distinct values");
                    return 0;
                }
                if Instant::now() > end {
                    eprintln!("never saw the final value {count}");
                    return 2;
                }
            }
        }
        "hold" => {
            let a = SharedArray::<f64>::open(&name).expect("open");
            let _ = a.write(|xs| {
                xs[0] = 999.0; // on the private copy: never published
                println!("locked");
                use std::io::Write;
                std::io::stdout().flush().unwrap();
                std::thread::sleep(Duration::from_secs(60));
            });
            3
        }
        other => {
            eprintln!("unknown role {other}");
            100
        }
    }
}

fn spawn(role: &str, name: &str, count: usize) -> Child {
    Command::new(std::env::current_exe().expect("current_exe"))
        .env(ROLE, role)
        .env(NAME, name)
        .env(COUNT, count.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker")
}

/// Wait for `child` at most `limit`; kill it and fail past that.
fn wait(mut child: Child, limit: Duration) -> Result<(ExitStatus, String), Failed> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let mut out = String::new();
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            if !status.success() {
                return Err(format!("worker failed with {status}: {err}").into());
            }
            return Ok((status, out));
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("worker still running after {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn unique(tag: &str) -> String {
    format!("shmbatch-array-{}-{tag}", std::process::id())
}

fn shm_path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name)
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg().into())
    }
}

fn no_leftover(name: &str) -> Result<(), Failed> {
    check(!shm_path(name).exists(), || {
        format!("segment {name} left in /dev/shm")
    })
}

// ---- trials ----

fn sum_from_workers(tag: &str, role: &str) -> Result<(), Failed> {
    let name = unique(tag);
    {
        let a = SharedArray::<f64>::create(&name, 4)?;
        let kids: Vec<_> = (0..PROCS).map(|_| spawn(role, &name, INCREMENTS)).collect();
        for k in kids {
            wait(k, CHILD_LIMIT)?;
        }
        let got = a.snapshot();
        let want = (PROCS * INCREMENTS) as f64;
        check(got[0].to_bits() == want.to_bits(), || {
            format!("element 0 is {}, want {want}", got[0])
        })?;
        check(got[1..].iter().all(|x| x.to_bits() == 0), || {
            format!("other elements changed: {got:?}")
        })?;
    }
    no_leftover(&name)
}

fn locked_increments_sum_exactly() -> Result<(), Failed> {
    sum_from_workers("lock", "lock-inc")
}

fn fetch_add_sums_exactly() -> Result<(), Failed> {
    sum_from_workers("fadd", "fetch-add")
}

fn snapshots_are_uniform() -> Result<(), Failed> {
    let name = unique("uniform");
    let rounds = 20_000;
    {
        let _a = SharedArray::<f64>::create(&name, 4096)?;
        let readers: Vec<_> = (0..2).map(|_| spawn("snapshot", &name, rounds)).collect();
        let writer = spawn("fill", &name, rounds);
        wait(writer, CHILD_LIMIT)?;
        for r in readers {
            let (_, out) = wait(r, CHILD_LIMIT)?;
            eprintln!("reader: {}", out.trim());
        }
    }
    no_leftover(&name)
}

fn killed_holder_is_recovered() -> Result<(), Failed> {
    let name = unique("kill");
    {
        let a = SharedArray::<f64>::create_from(&name, &[1.0, 2.0, 3.0])?;
        let mut holder = spawn("hold", &name, 0);
        let pid = holder.id();
        let stdout = holder.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30));
        if line.as_deref().map(str::trim) != Ok("locked") {
            let _ = holder.kill();
            let _ = holder.wait();
            return Err(format!("holder did not report the lock: {line:?}").into());
        }
        let busy = a.try_write(|_| ());
        let killed = holder.kill(); // SIGKILL, inside the closure
        holder.wait()?;
        killed?;
        check(busy == Err(LockBusy { pid }), || {
            format!("try_write while held: {busy:?}")
        })?;
        let t = Instant::now();
        let out = a.write_timeout(Duration::from_secs(10), |xs| xs[1] += 1.0)?;
        let took = t.elapsed();
        check(
            out.recovered
                == Some(Recovered {
                    pid,
                    partial: false,
                }),
            || format!("recovery notice: {:?}", out.recovered),
        )?;
        check(took < Duration::from_secs(2), || {
            format!("recovery took {took:?}")
        })?;
        let s = a.snapshot();
        check(s == [1.0, 3.0, 3.0], || {
            format!("the dead holder's private change leaked: {s:?}")
        })?;
        let again = a.write(|_| ());
        check(again.recovered.is_none(), || {
            "notice reported twice".to_string()
        })?;
        eprintln!("recovered from SIGKILLed holder {pid} in {took:?}");
    }
    no_leftover(&name)
}

/// Pid of a process that has exited and been reaped.
fn dead_pid() -> Result<u32, Failed> {
    let c = spawn("exit", "", 0);
    let pid = c.id();
    wait(c, CHILD_LIMIT)?;
    Ok(pid)
}

fn open_rw(name: &str) -> Result<File, Failed> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))?)
}

/// Forge the lock word: held by process `pid` with start time `start`.
fn set_holder(f: &File, pid: u32, start: u32) -> Result<(), Failed> {
    let word = common::proc_word(pid, start);
    Ok(f.write_all_at(&word.to_ne_bytes(), ARRAY_LOCK_OFFSET as u64)?)
}

/// Live processes to forge a holder from: ourselves, and pid 1 where its `/proc`
/// entry is readable; with their start times.
fn live_processes() -> Vec<(u32, u32)> {
    [std::process::id(), 1]
        .into_iter()
        .filter_map(|pid| common::proc_stat(pid).map(|(_, start)| (pid, start)))
        .collect()
}

fn reused_pid_holder_is_recovered() -> Result<(), Failed> {
    let name = unique("reused");
    {
        let a = SharedArray::<f64>::create_from(&name, &[1.0, 2.0])?;
        let f = open_rw(&name)?;
        for (pid, start) in live_processes() {
            // A holder that died, whose pid now names a live process.
            set_holder(&f, pid, start.wrapping_add(1))?;
            let out = a.write_timeout(Duration::from_secs(10), |xs| xs[0] += 1.0);
            check(
                out.as_ref().map(|o| o.recovered)
                    == Ok(Some(Recovered {
                        pid,
                        partial: false,
                    })),
                || format!("pid {pid}: {out:?}"),
            )?;
        }
        let s = a.snapshot();
        check(s[0] == 1.0 + live_processes().len() as f64, || {
            format!("{s:?}")
        })?;
    }
    no_leftover(&name)
}

fn live_holder_is_not_stolen() -> Result<(), Failed> {
    let name = unique("live");
    {
        let a = SharedArray::<f64>::create_from(&name, &[1.0, 2.0])?;
        let f = open_rw(&name)?;
        for (pid, start) in live_processes() {
            // Held by a live process (as if another thread of ours held it): the
            // liveness check runs (several sleep slices pass) and must say alive.
            set_holder(&f, pid, start)?;
            let busy = a.try_write(|xs| xs[0] = -1.0);
            check(busy == Err(LockBusy { pid }), || {
                format!("pid {pid}: try_write {busy:?}")
            })?;
            let out = a.write_timeout(Duration::from_millis(300), |xs| xs[0] = -1.0);
            check(out == Err(LockTimeout { pid }), || {
                format!("pid {pid}: write_timeout {out:?}")
            })?;
            let snap = a.snapshot_timeout(Duration::from_millis(100));
            check(snap.is_ok(), || format!("a reader waited: {snap:?}"))?;
        }
        f.write_all_at(&0u64.to_ne_bytes(), ARRAY_LOCK_OFFSET as u64)?;
        let out = a.write(|xs| xs[1] = 5.0);
        check(out.recovered.is_none(), || format!("{:?}", out.recovered))?;
        check(a.snapshot() == [1.0, 5.0], || format!("{:?}", a.snapshot()))?;
    }
    no_leftover(&name)
}

fn zombie_holder_is_recovered() -> Result<(), Failed> {
    let name = unique("zombie");
    let mut child = Command::new("true").spawn()?;
    let pid = child.id();
    let start = common::proc_stat(pid).map(|(_, s)| s);
    common::wait_for_zombie(pid);
    let r = (|| {
        let start = start.ok_or("no /proc entry for the child")?;
        let a = SharedArray::<f64>::create_from(&name, &[1.0])?;
        set_holder(&open_rw(&name)?, pid, start)?;
        let out = a.write_timeout(Duration::from_secs(10), |xs| xs[0] = 2.0)?;
        check(
            out.recovered
                == Some(Recovered {
                    pid,
                    partial: false,
                }),
            || format!("recovery notice: {:?}", out.recovered),
        )
    })();
    child.wait()?;
    r?;
    no_leftover(&name)
}

fn dead_publisher_is_partial() -> Result<(), Failed> {
    let name = unique("partial");
    let dead = dead_pid()?;
    {
        let a = SharedArray::<f64>::create_from(&name, &[1.0, 2.0, 3.0])?;
        // What a holder killed in the middle of publishing leaves: its identity in
        // the lock word, an odd sequence number, and some new words.
        let f = open_rw(&name)?;
        set_holder(&f, dead, 0)?;
        f.write_all_at(&7u64.to_ne_bytes(), ARRAY_SEQ_OFFSET as u64)?;
        f.write_all_at(&50.0f64.to_ne_bytes(), ARRAY_DATA_OFFSET as u64)?;
        // A reader recovers the lock rather than wait forever.
        let t = Instant::now();
        let s = a.snapshot_timeout(Duration::from_secs(10))?;
        let took = t.elapsed();
        check(s == [50.0, 2.0, 3.0], || format!("snapshot {s:?}"))?;
        check(a.is_partial(), || "partial flag not set".into())?;
        // The next writer is told, once.
        let out = a.write_timeout(Duration::from_secs(10), |xs| xs[0] = 1.0)?;
        check(
            out.recovered
                == Some(Recovered {
                    pid: dead,
                    partial: true,
                }),
            || format!("recovery notice: {:?}", out.recovered),
        )?;
        check(out.may_be_partial(), || "may_be_partial".into())?;
        check(!a.is_partial(), || "partial flag not cleared".into())?;
        check(a.write(|_| ()).recovered.is_none(), || {
            "notice reported twice".into()
        })?;
        let mut seq = [0u8; 8];
        f.read_exact_at(&mut seq, ARRAY_SEQ_OFFSET as u64)?;
        check(u64::from_ne_bytes(seq) % 2 == 0, || {
            "sequence left odd".into()
        })?;
        eprintln!("reader recovered a dead publisher in {took:?}");
    }
    no_leftover(&name)
}

const PYTHON: &str = r#"
import sys
from multiprocessing import shared_memory
import numpy as np
name, n, off, dt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
try:
    shm = shared_memory.SharedMemory(name=name, track=False)   # Python >= 3.13
except TypeError:
    shm = shared_memory.SharedMemory(name=name)
    from multiprocessing import resource_tracker
    resource_tracker.unregister(shm._name, "shared_memory")    # do not unlink at exit
a = np.ndarray((n,), dtype=dt, buffer=shm.buf, offset=off)
print(a.tolist())
a += 10
del a
shm.close()
"#;

fn python_numpy_adds_10_in_place() -> Result<(), Failed> {
    let name = unique("numpy");
    {
        let a = SharedArray::<f64>::create_from(&name, &[1.0, 2.0, 3.0, 4.0, 5.0])?;
        let out = Command::new("python3")
            .arg("-c")
            .arg(PYTHON)
            .arg(&name)
            .arg(a.len().to_string())
            .arg(a.data_offset().to_string())
            .arg(a.dtype().expect("f64 has a dtype"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!("cannot run python3 ({e}): install Python 3 and numpy (pip install numpy)")
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named 'numpy'") {
            return Err("numpy is not installed for python3: run `pip install numpy`".into());
        }
        check(out.status.success(), || {
            format!("python failed with {}: {stderr}", out.status)
        })?;
        let printed = String::from_utf8_lossy(&out.stdout);
        check(printed.trim() == "[1.0, 2.0, 3.0, 4.0, 5.0]", || {
            format!("python saw {printed}")
        })?;
        let s = a.snapshot();
        check(s == [11.0, 12.0, 13.0, 14.0, 15.0], || {
            format!("after python: {s:?}")
        })?;
        check(shm_path(&name).exists(), || {
            "python unlinked the segment".into()
        })?;
        check(stderr.trim().is_empty(), || {
            format!("python warned: {stderr}")
        })?;
    }
    no_leftover(&name)
}

fn opener_mismatches() -> Result<(), Failed> {
    let name = unique("mismatch");
    {
        let _a = SharedArray::<f64>::create(&name, 8)?;
        match SharedArray::<f32>::open(&name) {
            Err(Error::TypeMismatch {
                found_size: 8,
                expected_size: 4,
                ..
            }) => {}
            other => return Err(format!("f32 opener: {other:?}").into()),
        }
        // Same size, another type.
        match SharedArray::<i64>::open(&name) {
            Err(Error::TypeMismatch { .. }) => {}
            other => return Err(format!("i64 opener: {other:?}").into()),
        }
        let b = SharedArray::<f64>::open(&format!("/{name}"))?;
        check(b.len() == 8, || "len".into())?;
        check(b.name() == Some(name.as_str()), || "name".into())?;
    }
    let q = unique("queue");
    {
        let _tx = shmbatch::spsc::Sender::<f64>::create(&q, 64)?;
        match SharedArray::<f64>::open(&q) {
            Err(Error::KindMismatch { .. }) => {}
            other => return Err(format!("array over spsc: {other:?}").into()),
        }
    }
    match SharedArray::<f64>::open(&unique("absent")) {
        Err(Error::NotFound { .. }) => {}
        other => return Err(format!("absent: {other:?}").into()),
    }
    match SharedArray::<f64>::create("a/b", 1) {
        Err(Error::InvalidName { .. }) => {}
        other => return Err(format!("bad name: {other:?}").into()),
    }
    match SharedArray::<f64>::create(&unique("zero"), 0) {
        Err(Error::InvalidSize { .. }) => {}
        other => return Err(format!("zero length: {other:?}").into()),
    }
    no_leftover(&name)?;
    no_leftover(&q)
}

fn short_segment_is_corrupted() -> Result<(), Failed> {
    let name = unique("short");
    {
        let a = SharedArray::<f64>::create(&name, 1000)?;
        a.persist();
        drop(a); // do not touch a mapping past the new end of file
        open_rw(&name)?.set_len(ARRAY_DATA_OFFSET as u64 + 100)?;
        let r = SharedArray::<f64>::open(&name);
        shmbatch::remove(&name)?;
        match r {
            Err(Error::Corrupted(reason)) if reason.contains("declares") => {}
            other => return Err(format!("short segment: {other:?}").into()),
        }
    }
    no_leftover(&name)
}

/// Offsets of identity fields (see `shmbatch::layout`).
const CAPACITY: u64 = 40;
const MAX_BATCH: u64 = 48;
const DATA_OFF: u64 = 64;
const DATA_LEN: u64 = 72;

fn garbage_headers_are_corrupted() -> Result<(), Failed> {
    // Not a shmbatch segment at all.
    let junk = unique("junk");
    {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(shm_path(&junk))?;
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 151 % 251) as u8).collect();
        f.write_all_at(&bytes, 0)?;
        let r = SharedArray::<f64>::open(&junk);
        let refused = shmbatch::remove(&junk);
        shmbatch::remove_any(&junk)?;
        match r {
            Err(Error::NotShmbatch { .. }) => {}
            other => return Err(format!("junk: {other:?}").into()),
        }
        match refused {
            Err(Error::NotShmbatch { .. }) => {}
            other => return Err(format!("remove of junk: {other:?}").into()),
        }
    }
    // A real array header with one array field damaged at a time.
    let cases: [(&str, u64, u64, &str); 5] = [
        ("zero-len", CAPACITY, 0, "zero"),
        ("huge-len", CAPACITY, u64::MAX, "out of range"),
        ("len-vs-data", CAPACITY, 17, "needs"),
        ("queue-field", MAX_BATCH, 3, "queue fields"),
        ("data-offset", DATA_OFF, 1024, ""),
    ];
    for (tag, off, value, want) in cases {
        let name = unique(tag);
        let a = SharedArray::<f64>::create(&name, 16)?;
        let f = open_rw(&name)?;
        f.write_all_at(&value.to_ne_bytes(), off)?;
        let r = SharedArray::<f64>::open(&name);
        match &r {
            Err(Error::Corrupted(reason)) if reason.contains(want) => {}
            other => return Err(format!("{tag}: {other:?}").into()),
        }
        drop(a);
        no_leftover(&name)?;
    }
    // data_len larger than the segment.
    let name = unique("data-len");
    let a = SharedArray::<f64>::create(&name, 16)?;
    open_rw(&name)?.write_all_at(&(1u64 << 20).to_ne_bytes(), DATA_LEN)?;
    match SharedArray::<f64>::open(&name) {
        Err(Error::Corrupted(_)) => {}
        other => return Err(format!("data-len: {other:?}").into()),
    }
    drop(a);
    no_leftover(&name)?;
    no_leftover(&junk)
}
