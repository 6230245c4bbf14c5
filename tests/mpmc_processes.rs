//! Cross-process tests of the MPMC queue: the test binary re-runs itself as
//! producer and consumer processes.
//!
//! `main` looks at `SHMBATCH_MPMC_CHILD`; when it is set, this process is a child
//! and plays the role named there. Otherwise it runs the trials below through
//! libtest-mimic, one at a time (each one already runs several processes).
//!
//! Children say `ready` on stdout once attached and wait for a line on stdin before
//! they start, so that no producer can finish before the others have attached
//! (receivers would rightly see `Disconnected` in between). Every wait is bounded,
//! children are killed when a trial fails, and segments and result files are
//! removed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use shmbatch::mpmc::{Receiver, Sender};
use shmbatch::{RecvTimeoutError, SendTimeoutError};

const PRODUCERS: u64 = 3;
const CONSUMERS: u64 = 2;
/// Batches per producer: 3 * 333_334 > 1 million in total.
const PER_PRODUCER: u64 = 333_334;
const SLOTS: usize = 64;
const MAX_BATCH: usize = 16;
/// Upper bound on any single wait in a child.
const PATIENCE: Duration = Duration::from_secs(60);
/// Upper bound on a whole trial.
const TRIAL_LIMIT: Duration = Duration::from_secs(240);

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Batch `seq` of producer `p`: its first element is the id `p << 48 | seq`, then
/// random bits (NaNs included). Its length is in `1..=MAX_BATCH`.
fn batch_len(p: u64, seq: u64) -> usize {
    1 + (splitmix(p << 48 ^ seq) % MAX_BATCH as u64) as usize
}

fn element(p: u64, seq: u64, k: usize) -> f64 {
    if k == 0 {
        f64::from_bits(p << 48 | seq)
    } else {
        f64::from_bits(splitmix((p << 48 | seq) ^ (k as u64) << 40))
    }
}

fn unique(tag: &str) -> String {
    format!("shmbatch-test-mpmcproc-{tag}-{}", std::process::id())
}

fn result_file(name: &str, c: u64) -> PathBuf {
    std::env::temp_dir().join(format!("{name}-consumer-{c}.bin"))
}

// ---------------------------------------------------------------- children

fn child(role: &str) -> ExitCode {
    let name = std::env::var("SHMBATCH_NAME").expect("SHMBATCH_NAME");
    let r = match role.split_once(':') {
        Some(("producer", p)) => producer(&name, p.parse().unwrap()),
        Some(("consumer", c)) => consumer(&name, c.parse().unwrap()),
        _ => match role {
            "idle-receiver" => idle_receiver(&name),
            "crash-producer" => crash_producer(&name),
            "stuck-reservation" => stuck_reservation(&name),
            "die-in-reserve" => die_in_reserve(&name),
            "hold-batch" => hold_batch(&name),
            _ if role.starts_with("send-n:") => send_n(&name, &role["send-n:".len()..]),
            _ if role.starts_with("logged-producer:") => {
                logged_producer(&name, role["logged-producer:".len()..].parse().unwrap())
            }
            _ if role.starts_with("logged-consumer:") => {
                logged_consumer(&name, role["logged-consumer:".len()..].parse().unwrap())
            }
            _ => Err(format!("unknown role {role}")),
        },
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("child {role}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Say `ready` and wait for the parent's go (a line on stdin).
fn ready_then_wait_for_go() -> Result<(), String> {
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn producer(name: &str, p: u64) -> Result<(), String> {
    let tx = Sender::<f64>::open(name).map_err(|e| e.to_string())?;
    ready_then_wait_for_go()?;
    let mut buf = Vec::with_capacity(MAX_BATCH);
    for seq in 0..PER_PRODUCER {
        let len = batch_len(p, seq);
        if seq % 2 == 0 {
            buf.clear();
            buf.extend((0..len).map(|k| element(p, seq, k)));
            tx.send_timeout(&buf, PATIENCE)
                .map_err(|e| format!("send {seq}: {e}"))?;
        } else {
            if seq % 1001 == 1 {
                // A cancelled reservation: every receiver must step over it.
                drop(tx.reserve_timeout(MAX_BATCH, PATIENCE));
            }
            let mut r = tx
                .reserve_timeout(len, PATIENCE)
                .map_err(|e| format!("reserve {seq}: {e}"))?;
            for (k, x) in r.iter_mut().enumerate() {
                *x = element(p, seq, k);
            }
            r.commit();
        }
    }
    println!("done");
    Ok(())
}

/// Receive until disconnected; check every batch's length and contents and that
/// each producer's batches come in order; write the ids received to a file.
fn consumer(name: &str, c: u64) -> Result<(), String> {
    let rx = Receiver::<f64>::open(name).map_err(|e| e.to_string())?;
    ready_then_wait_for_go()?;
    let mut ids: Vec<u64> = Vec::new();
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut buf = Vec::new();
    let mut check = |b: &[f64]| -> Result<(), String> {
        let id = b.first().ok_or("empty batch")?.to_bits();
        let (p, seq) = (id >> 48, id & ((1 << 48) - 1));
        if p >= PRODUCERS || seq >= PER_PRODUCER || b.len() != batch_len(p, seq) {
            return Err(format!("bad batch id {id:#x}, length {}", b.len()));
        }
        for (k, x) in b.iter().enumerate() {
            if x.to_bits() != element(p, seq, k).to_bits() {
                return Err(format!("batch {p}/{seq}: element {k} differs"));
            }
        }
        if let Some(prev) = last.insert(p, seq) {
            if prev >= seq {
                return Err(format!("producer {p}: batch {seq} after {prev}"));
            }
        }
        ids.push(id);
        Ok(())
    };
    for n in 0u64.. {
        // Alternate the zero-copy guard and the copying receive.
        let r = if n % 2 == 0 {
            rx.recv_timeout(PATIENCE).map(|b| check(&b))
        } else {
            rx.recv_into_timeout(&mut buf, PATIENCE)
                .map(|_| check(&buf))
        };
        match r {
            Ok(checked) => checked?,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(format!("recv after {n} batches: {e}")),
        }
    }
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    std::fs::write(result_file(name, c), bytes).map_err(|e| e.to_string())?;
    println!("done {}", ids.len());
    Ok(())
}

/// Attach as a receiver and wait to be killed.
fn idle_receiver(name: &str) -> Result<(), String> {
    let _rx = Receiver::<f64>::open(name).map_err(|e| e.to_string())?;
    ready_then_wait_for_go()?;
    std::thread::sleep(PATIENCE);
    Err("was not killed".into())
}

/// Send ten batches, then wait to be killed (never detaching).
fn crash_producer(name: &str) -> Result<(), String> {
    let tx = Sender::<f64>::open(name).map_err(|e| e.to_string())?;
    for i in 0..10 {
        tx.send_timeout(&[i as f64; 3], PATIENCE)
            .map_err(|e| e.to_string())?;
    }
    ready_then_wait_for_go()?;
    std::thread::sleep(PATIENCE);
    Err("was not killed".into())
}

/// Send one batch, reserve a second slot, and wait to be killed holding it.
fn stuck_reservation(name: &str) -> Result<(), String> {
    let tx = Sender::<f64>::open(name).map_err(|e| e.to_string())?;
    tx.send_timeout(&[1.0], PATIENCE)
        .map_err(|e| e.to_string())?;
    let _r = tx.reserve_timeout(1, PATIENCE).map_err(|e| e.to_string())?;
    ready_then_wait_for_go()?;
    std::thread::sleep(PATIENCE);
    Err("was not killed".into())
}

/// Reserve a slot at once (nothing sent before) and wait to be killed holding it.
fn die_in_reserve(name: &str) -> Result<(), String> {
    let tx = Sender::<f64>::open(name).map_err(|e| e.to_string())?;
    let _r = tx.reserve_timeout(2, PATIENCE).map_err(|e| e.to_string())?;
    ready_then_wait_for_go()?;
    std::thread::sleep(PATIENCE);
    Err("was not killed".into())
}

/// Receive one batch and wait to be killed holding its guard.
fn hold_batch(name: &str) -> Result<(), String> {
    let rx = Receiver::<f64>::open(name).map_err(|e| e.to_string())?;
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let b = rx.recv_timeout(PATIENCE).map_err(|e| e.to_string())?;
    println!("holding {}", b[0]);
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    std::thread::sleep(PATIENCE);
    Err("was not killed".into())
}

/// `send-n:FROM:COUNT`: attach, say `ready`, wait for the go, send batches
/// `[FROM + i]` for `i < COUNT`, then leave.
fn send_n(name: &str, arg: &str) -> Result<(), String> {
    let (from, count) = arg.split_once(':').ok_or("send-n:FROM:COUNT")?;
    let (from, count): (u64, u64) = (from.parse().unwrap(), count.parse().unwrap());
    let tx = Sender::<f64>::open(name).map_err(|e| e.to_string())?;
    ready_then_wait_for_go()?;
    for i in 0..count {
        tx.send_timeout(&[(from + i) as f64], PATIENCE)
            .map_err(|e| format!("send {i}: {e}"))?;
    }
    Ok(())
}

/// Send batch `seq` of producer `p`: copied through `buf` for even `seq`, written
/// in place for odd ones.
fn send_batch(tx: &mut Sender<f64>, p: u64, seq: u64, buf: &mut Vec<f64>) -> Result<(), String> {
    let len = batch_len(p, seq);
    if seq % 2 == 0 {
        buf.clear();
        buf.extend((0..len).map(|k| element(p, seq, k)));
        tx.send_timeout(buf, PATIENCE)
            .map_err(|e| format!("send {seq}: {e}"))
    } else {
        let mut r = tx
            .reserve_timeout(len, PATIENCE)
            .map_err(|e| format!("reserve {seq}: {e}"))?;
        for (k, x) in r.iter_mut().enumerate() {
            *x = element(p, seq, k);
        }
        r.commit();
        Ok(())
    }
}

/// Batches per producer in the random-kill trials.
const KILL_PER_PRODUCER: u64 = 20_000;

fn ack_file(name: &str, p: u64) -> PathBuf {
    std::env::temp_dir().join(format!("{name}-acked-{p}"))
}

/// Send `KILL_PER_PRODUCER` batches (alternately copied and reserved), writing
/// after each `Ok` how many have been acknowledged to `ack_file` (a `pwrite`, which
/// survives a SIGKILL of the writer).
fn logged_producer(name: &str, p: u64) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let ack = std::fs::File::create(ack_file(name, p)).map_err(|e| e.to_string())?;
    let mut tx = Sender::<f64>::open(name).map_err(|e| e.to_string())?;
    ready_then_wait_for_go()?;
    let mut buf = Vec::with_capacity(MAX_BATCH);
    for seq in 0..KILL_PER_PRODUCER {
        send_batch(&mut tx, p, seq, &mut buf)?;
        ack.write_all_at(&(seq + 1).to_le_bytes(), 0)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Receive until disconnected, checking every batch, and append each batch's id
/// to the result file *before* releasing it (so that a batch this process dies
/// holding is either logged here or delivered to someone else).
fn logged_consumer(name: &str, c: u64) -> Result<(), String> {
    let mut out = std::fs::File::create(result_file(name, c)).map_err(|e| e.to_string())?;
    let rx = Receiver::<f64>::open(name).map_err(|e| e.to_string())?;
    ready_then_wait_for_go()?;
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(b) => {
                let id = b.first().ok_or("empty batch")?.to_bits();
                let (p, seq) = (id >> 48, id & ((1 << 48) - 1));
                if seq >= KILL_PER_PRODUCER || b.len() != batch_len(p, seq) {
                    return Err(format!("bad batch id {id:#x}, length {}", b.len()));
                }
                for (k, x) in b.iter().enumerate() {
                    if x.to_bits() != element(p, seq, k).to_bits() {
                        return Err(format!("batch {p}/{seq}: element {k} differs"));
                    }
                }
                out.write_all(&id.to_le_bytes())
                    .map_err(|e| e.to_string())?;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

// ---------------------------------------------------------------- parent

/// Running children: killed and reaped on drop, so a failed trial leaves none.
struct Children(Vec<(String, Child, BufReader<ChildStdout>)>);

impl Children {
    fn spawn(name: &str, roles: &[String]) -> Result<Children, Failed> {
        let mut kids = Children(Vec::new());
        for role in roles {
            let mut child = Command::new(std::env::current_exe()?)
                .env("SHMBATCH_MPMC_CHILD", role)
                .env("SHMBATCH_NAME", name)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let out = BufReader::new(child.stdout.take().expect("piped"));
            kids.0.push((role.clone(), child, out));
        }
        Ok(kids)
    }

    /// Read one line from each child and check it.
    fn expect_line(&mut self, want: &str) -> Result<Vec<String>, Failed> {
        let mut lines = Vec::new();
        for (role, _, out) in &mut self.0 {
            let mut line = String::new();
            out.read_line(&mut line)?;
            if !line.starts_with(want) {
                return Err(format!("{role} said {line:?}, expected {want:?}").into());
            }
            lines.push(line.trim().to_owned());
        }
        Ok(lines)
    }

    fn go(&mut self) -> Result<(), Failed> {
        for (_, child, _) in &mut self.0 {
            writeln!(child.stdin.as_mut().expect("piped"), "go")?;
        }
        Ok(())
    }

    /// Wait for every child to exit successfully, within `limit` in all.
    fn wait_all(&mut self, limit: Duration) -> Result<(), Failed> {
        let start = Instant::now();
        for (role, child, _) in &mut self.0 {
            loop {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        return Err(format!("{role} failed: {status}").into());
                    }
                    break;
                }
                if start.elapsed() > limit {
                    return Err(format!("{role} still running after {limit:?}").into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    fn kill(&mut self, i: usize) -> Result<(), Failed> {
        let child = &mut self.0[i].1;
        child.kill()?;
        child.wait()?;
        Ok(())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes files when dropped, even if the trial fails.
struct Files(Vec<PathBuf>);
impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn no_leftover(name: &str) -> Result<(), Failed> {
    if PathBuf::from("/dev/shm").join(name).exists() {
        let _ = shmbatch::remove(name);
        return Err(format!("segment {name} was left in /dev/shm").into());
    }
    Ok(())
}

fn three_producers_two_consumers_deliver_exactly_once() -> Result<(), Failed> {
    let name = unique("exactly-once");
    let files = Files((0..CONSUMERS).map(|c| result_file(&name, c)).collect());
    // The parent creates the segment as a receiver that never receives: it keeps the
    // segment alive and lets the consumers see Disconnected once producers leave.
    let rx = Receiver::<f64>::create(&name, SLOTS, MAX_BATCH)?;
    let roles: Vec<String> = (0..PRODUCERS)
        .map(|p| format!("producer:{p}"))
        .chain((0..CONSUMERS).map(|c| format!("consumer:{c}")))
        .collect();
    let start = Instant::now();
    let mut kids = Children::spawn(&name, &roles)?;
    kids.expect_line("ready")?;
    kids.go()?;
    kids.wait_all(TRIAL_LIMIT)?;
    let elapsed = start.elapsed();
    let said = kids.expect_line("done")?;
    drop(rx);
    no_leftover(&name)?;

    let mut seen: Vec<Vec<u8>> = vec![vec![0; PER_PRODUCER as usize]; PRODUCERS as usize];
    let mut per_consumer = Vec::new();
    for f in &files.0 {
        let bytes = std::fs::read(f)?;
        per_consumer.push(bytes.len() / 8);
        for id in bytes.chunks_exact(8) {
            let id = u64::from_le_bytes(id.try_into().expect("8 bytes"));
            seen[(id >> 48) as usize][(id & ((1 << 48) - 1)) as usize] += 1;
        }
    }
    for (p, counts) in seen.iter().enumerate() {
        if let Some(seq) = counts.iter().position(|&n| n != 1) {
            return Err(
                format!("producer {p}: batch {seq} delivered {} times", counts[seq]).into(),
            );
        }
    }
    eprintln!(
        "  {} batches from {PRODUCERS} producer processes to {CONSUMERS} consumer processes \
         ({per_consumer:?} per consumer) in {elapsed:.2?}; {said:?}",
        PRODUCERS * PER_PRODUCER
    );
    Ok(())
}

fn killed_receivers_disconnect_a_blocked_sender() -> Result<(), Failed> {
    let name = unique("killed-rx");
    let tx = Sender::<f64>::create(&name, 2, 1)?;
    let mut kids = Children::spawn(&name, &["idle-receiver".into()])?;
    kids.expect_line("ready")?;
    tx.send_timeout(&[1.0], PATIENCE)?;
    tx.send_timeout(&[2.0], PATIENCE)?;
    kids.kill(0)?;
    let start = Instant::now();
    match tx.send_timeout(&[3.0], PATIENCE) {
        Err(SendTimeoutError::Disconnected) => {}
        other => return Err(format!("expected Disconnected, got {other:?}").into()),
    }
    if start.elapsed() > Duration::from_secs(5) {
        return Err(format!("noticed the death only after {:?}", start.elapsed()).into());
    }
    drop(tx);
    no_leftover(&name)
}

fn killed_producer_is_drained_then_disconnected() -> Result<(), Failed> {
    let name = unique("killed-tx");
    let rx = Receiver::<f64>::create(&name, 16, 4)?;
    let mut kids = Children::spawn(&name, &["crash-producer".into()])?;
    kids.expect_line("ready")?;
    kids.kill(0)?;
    for i in 0..10 {
        let b = rx.recv_timeout(PATIENCE)?;
        if *b != [i as f64; 3] {
            return Err(format!("batch {i} is {:?}", &*b).into());
        }
    }
    match rx.recv_timeout(PATIENCE) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => return Err(format!("expected Disconnected, got {other:?}").into()),
    }
    drop(rx);
    no_leftover(&name)
}

fn producer_killed_holding_a_reservation_does_not_hang_receivers() -> Result<(), Failed> {
    let name = unique("stuck");
    let rx = Receiver::<f64>::create(&name, 4, 1)?;
    let mut kids = Children::spawn(&name, &["stuck-reservation".into()])?;
    kids.expect_line("ready")?;
    kids.kill(0)?;
    if *rx.recv_timeout(PATIENCE)? != [1.0] {
        return Err("wrong first batch".into());
    }
    // The reserved slot was never committed and its process is gone: with no other
    // sender left, receivers are told so instead of waiting at that slot.
    match rx.recv_timeout(PATIENCE) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => return Err(format!("expected Disconnected, got {other:?}").into()),
    }
    drop(rx);
    no_leftover(&name)
}

/// The measured failure of issue 9: a producer dies in `reserve`, another sends
/// 15 batches into 16 slots and leaves. All 15 arrive, then `Disconnected`; and a
/// producer that attaches later gets more than a lap through.
fn producer_killed_in_reserve_loses_no_other_batch() -> Result<(), Failed> {
    let name = unique("reserve-kill");
    let rx = Receiver::<f64>::create(&name, 16, 2)?;
    let mut dying = Children::spawn(&name, &["die-in-reserve".into()])?;
    dying.expect_line("ready")?;
    dying.kill(0)?;
    let killed = Instant::now();
    let mut sender = Children::spawn(&name, &["send-n:100:15".into()])?;
    sender.expect_line("ready")?;
    sender.go()?;
    sender.wait_all(TRIAL_LIMIT)?;
    let mut first = None;
    for i in 0..15 {
        let b = rx
            .recv_timeout(PATIENCE)
            .map_err(|e| format!("batch {i}: {e}"))?;
        first.get_or_insert_with(|| killed.elapsed());
        if *b != [(100 + i) as f64] {
            return Err(format!("batch {i} is {:?}", &*b).into());
        }
    }
    match rx.recv_timeout(PATIENCE) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => return Err(format!("expected Disconnected, got {other:?}").into()),
    }
    // The queue keeps flowing for a producer that comes later: 40 batches > 16 slots.
    let mut later = Children::spawn(&name, &["send-n:1000:40".into()])?;
    later.expect_line("ready")?;
    later.go()?;
    for i in 0..40 {
        let b = rx.recv_timeout(PATIENCE)?;
        if *b != [(1000 + i) as f64] {
            return Err(format!("later batch {i} is {:?}", &*b).into());
        }
    }
    later.wait_all(TRIAL_LIMIT)?;
    eprintln!(
        "  first batch past the dead claim {:.1?} after the kill",
        first.unwrap()
    );
    drop(rx);
    no_leftover(&name)
}

/// A receiver killed holding a `recv()` guard: its batch goes to another receiver,
/// and its slot back to the senders (more than a lap follows).
fn receiver_killed_holding_a_batch_is_redelivered() -> Result<(), Failed> {
    let name = unique("hold-kill");
    const N: u64 = 50;
    let files = Files(vec![result_file(&name, 0)]);
    let tx = Sender::<f64>::create(&name, 4, MAX_BATCH)?;
    let mut holder = Children::spawn(&name, &["hold-batch".into()])?;
    holder.expect_line("ready")?;
    let b0: Vec<f64> = (0..batch_len(0, 0)).map(|k| element(0, 0, k)).collect();
    tx.send_timeout(&b0, PATIENCE)?;
    holder.expect_line("holding")?;
    holder.kill(0)?;
    let killed = Instant::now();
    let mut consumer = Children::spawn(&name, &["logged-consumer:0".into()])?;
    consumer.expect_line("ready")?;
    consumer.go()?;
    for seq in 1..N {
        let b: Vec<f64> = (0..batch_len(0, seq)).map(|k| element(0, seq, k)).collect();
        tx.send_timeout(&b, PATIENCE)?;
    }
    drop(tx);
    consumer.wait_all(TRIAL_LIMIT)?;
    let ids = read_ids(&files.0[0])?;
    let mut seqs: Vec<u64> = ids.iter().map(|id| id & ((1 << 48) - 1)).collect();
    if seqs.first() == Some(&0) {
        return Err("batch 0 came first: it should come back after later ones".into());
    }
    seqs.sort_unstable();
    if seqs != (0..N).collect::<Vec<_>>() {
        return Err(format!("delivered {seqs:?}").into());
    }
    eprintln!(
        "  all {N} batches once, the dead receiver's again, {:.1?} after the kill",
        killed.elapsed()
    );
    no_leftover(&name)
}

fn read_ids(f: &std::path::Path) -> Result<Vec<u64>, Failed> {
    Ok(std::fs::read(f)?
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

/// Random SIGKILLs (and SIGSTOP/SIGCONT pauses) of producers and consumers, over
/// many trials: the survivors keep flowing, every batch a send returned `Ok` for
/// is delivered at least once, a batch is delivered twice only when a consumer
/// died holding it (its last logged id), and each consumer sees each producer's
/// batches in order, except such a redelivered one.
fn random_kills_lose_nothing() -> Result<(), Failed> {
    const TRIALS: u64 = 16;
    const P: u64 = 2;
    let seed = std::env::var("SHMBATCH_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("  seed {seed} (SHMBATCH_KILL_SEED to repeat)");
    let mut rng = seed;
    let mut rand = move |n: u64| {
        rng = splitmix(rng);
        rng % n
    };
    let (mut kills, mut stops, mut worst) = (0, 0, Duration::ZERO);
    for trial in 0..TRIALS {
        let name = unique(&format!("random-kill-{trial}"));
        let mut consumers: u64 = 2;
        let mut files = Files(
            (0..P)
                .map(|p| ack_file(&name, p))
                .chain((0..consumers).map(|c| result_file(&name, c)))
                .collect(),
        );
        // The parent's receiver never receives: it keeps the segment.
        let rx = Receiver::<f64>::create(&name, 8, MAX_BATCH)?;
        let roles: Vec<String> = (0..P)
            .map(|p| format!("logged-producer:{p}"))
            .chain((0..consumers).map(|c| format!("logged-consumer:{c}")))
            .collect();
        let mut kids = Children::spawn(&name, &roles)?;
        kids.expect_line("ready")?;
        let start = Instant::now();
        kids.go()?;
        let mut killed_consumers = Vec::new();
        // One or two events, each a kill or a pause, at random moments.
        for _ in 0..1 + rand(2) {
            std::thread::sleep(Duration::from_micros(rand(60_000)));
            let victim = rand(kids.0.len() as u64) as usize;
            if kids.0[victim].1.try_wait()?.is_some() {
                continue;
            }
            let role = kids.0[victim].0.clone();
            if rand(4) == 0 {
                let pid = rustix::process::Pid::from_child(&kids.0[victim].1);
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::STOP);
                std::thread::sleep(Duration::from_millis(rand(50)));
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
                stops += 1;
                continue;
            }
            kids.kill(victim)?;
            kids.0[victim].0 = format!("killed {role}");
            kills += 1;
            if let Some(c) = role.strip_prefix("logged-consumer:") {
                killed_consumers.push(c.parse::<u64>()?);
                // A replacement, so that someone drains.
                let c = consumers;
                consumers += 1;
                files.0.push(result_file(&name, c));
                let mut more = Children::spawn(&name, &[format!("logged-consumer:{c}")])?;
                more.expect_line("ready")?;
                more.go()?;
                kids.0.append(&mut more.0);
            }
        }
        // Every child still running ends by itself.
        let limit = Instant::now() + TRIAL_LIMIT;
        for (role, child, _) in &mut kids.0 {
            if role.starts_with("killed") {
                continue;
            }
            loop {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        return Err(format!("trial {trial}: {role} failed: {status}").into());
                    }
                    break;
                }
                if Instant::now() > limit {
                    return Err(format!("trial {trial}: {role} still running").into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        worst = worst.max(start.elapsed());
        drop(rx);
        no_leftover(&name)?;

        // What was acknowledged, and what was delivered where.
        let mut acked = Vec::new();
        for p in 0..P {
            let b = std::fs::read(ack_file(&name, p)).unwrap_or_default();
            acked.push(
                b.get(..8)
                    .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap())),
            );
        }
        let mut count: HashMap<u64, u32> = HashMap::new();
        let mut last_of_killed = Vec::new();
        let mut late = Vec::new();
        for c in 0..consumers {
            let ids = read_ids(&result_file(&name, c))?;
            if killed_consumers.contains(&c) {
                last_of_killed.extend(ids.last().copied());
            }
            for &id in &ids {
                *count.entry(id).or_default() += 1;
            }
            // Per producer, in order, but for batches that arrive late.
            let mut newest: HashMap<u64, u64> = HashMap::new();
            for &id in &ids {
                let (p, seq) = (id >> 48, id & ((1 << 48) - 1));
                match newest.get(&p) {
                    Some(&n) if n >= seq => late.push((c, id, n)),
                    _ => {
                        newest.insert(p, seq);
                    }
                }
            }
        }
        // A batch arrives late only when it is delivered again after its receiver
        // died holding it: at most one per killed consumer (it holds one at a time).
        if late.len() > killed_consumers.len() {
            return Err(format!(
                "trial {trial} (seed {seed}): out of order (consumer, id, newest before): \
                 {late:x?} with {} consumers killed",
                killed_consumers.len()
            )
            .into());
        }
        for p in 0..P {
            for seq in 0..acked[p as usize] {
                if !count.contains_key(&(p << 48 | seq)) {
                    return Err(format!(
                        "trial {trial} (seed {seed}): batch {p}/{seq} was acknowledged and never delivered"
                    )
                    .into());
                }
            }
        }
        for (&id, &n) in &count {
            if n > 2 || (n == 2 && !last_of_killed.contains(&id)) {
                return Err(format!(
                    "trial {trial} (seed {seed}): batch {}/{} delivered {n} times",
                    id >> 48,
                    id & ((1 << 48) - 1)
                )
                .into());
            }
        }
    }
    eprintln!("  {TRIALS} trials, {kills} kills, {stops} pauses; slowest trial {worst:.2?}");
    Ok(())
}

fn main() -> ExitCode {
    if let Ok(role) = std::env::var("SHMBATCH_MPMC_CHILD") {
        return child(&role);
    }
    let mut args = Arguments::from_args();
    // Each trial runs several processes already; the machine may have few cores.
    args.test_threads.get_or_insert(1);
    let trials = vec![
        Trial::test(
            "three_producers_two_consumers_deliver_exactly_once",
            three_producers_two_consumers_deliver_exactly_once,
        ),
        Trial::test(
            "killed_receivers_disconnect_a_blocked_sender",
            killed_receivers_disconnect_a_blocked_sender,
        ),
        Trial::test(
            "killed_producer_is_drained_then_disconnected",
            killed_producer_is_drained_then_disconnected,
        ),
        Trial::test(
            "producer_killed_holding_a_reservation_does_not_hang_receivers",
            producer_killed_holding_a_reservation_does_not_hang_receivers,
        ),
        Trial::test(
            "producer_killed_in_reserve_loses_no_other_batch",
            producer_killed_in_reserve_loses_no_other_batch,
        ),
        Trial::test(
            "receiver_killed_holding_a_batch_is_redelivered",
            receiver_killed_holding_a_batch_is_redelivered,
        ),
        Trial::test("random_kills_lose_nothing", random_kills_lose_nothing),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
