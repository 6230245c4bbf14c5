//! Cross-process tests of the broadcast log: the test binary re-runs itself as
//! subscriber processes (`SHMBATCH_BCAST_CHILD` names the role); the parent
//! publishes.
//!
//! Children say `ready` on stdout once subscribed. Every wait is bounded,
//! children are killed when a trial fails, and segments are removed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use shmbatch::broadcast::{Policy, Publisher, RecvTimeoutError, Start, Subscriber};
use shmbatch::Options;

/// Upper bound on any single wait.
const PATIENCE: Duration = Duration::from_secs(60);

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Length of batch `seq`, in `1..=max`.
fn len_of(seq: u64, max: usize) -> usize {
    1 + (splitmix(seq) % max as u64) as usize
}

/// Element `k` of batch `seq`: the batch and the index in the bits, so that
/// any torn, shifted or stale element is caught.
fn element(seq: u64, k: usize) -> f64 {
    f64::from_bits(seq << 16 | k as u64)
}

fn check(seq: u64, b: &[f64], max: usize) -> Result<(), String> {
    if b.len() != len_of(seq, max) {
        return Err(format!(
            "batch {seq}: {} elements, not {}",
            b.len(),
            len_of(seq, max)
        ));
    }
    for (k, x) in b.iter().enumerate() {
        if x.to_bits() != element(seq, k).to_bits() {
            return Err(format!("batch {seq}: element {k} is {:#x}", x.to_bits()));
        }
    }
    Ok(())
}

fn unique(tag: &str) -> String {
    format!("shmbatch-test-bcastproc-{tag}-{}", std::process::id())
}

// ---------------------------------------------------------------- children

fn child(role: &str) -> ExitCode {
    let name = std::env::var("SHMBATCH_NAME").expect("SHMBATCH_NAME");
    let r = match role {
        "all" => all(&name),
        "slow-lossy" => slow_lossy(&name),
        "stall" => stall(&name),
        "oldest" => joiner(&name, Start::Oldest),
        "next" => joiner(&name, Start::Next),
        "publisher" => publisher(&name),
        _ => Err(format!("unknown role {role}")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("child {role}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ready() -> Result<(), String> {
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())
}

fn open(name: &str, start: Start) -> Result<Subscriber<f64>, String> {
    let opts = Options::new()
        .open_timeout(Duration::from_secs(10))
        .start(start);
    Subscriber::<f64>::open_with(name, &opts).map_err(|e| e.to_string())
}

/// Receive everything in place, checking every value in order; print the count.
fn all(name: &str) -> Result<(), String> {
    let mut rx = open(name, Start::Next)?;
    ready()?;
    let max = rx.max_batch().min(MAX_LOSSLESS);
    let mut seq = 0u64;
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(b) => check(seq, &b, max)?,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(format!("after {seq} batches: {e}")),
        }
        seq += 1;
    }
    println!("{seq}");
    Ok(())
}

/// A lossy subscriber that dawdles: every batch it gets must be intact and in
/// order; print delivered and missed.
fn slow_lossy(name: &str) -> Result<(), String> {
    let mut rx = open(name, Start::Next)?;
    ready()?;
    let (mut next, mut delivered, mut missed) = (0u64, 0u64, 0u64);
    let mut v = Vec::new();
    loop {
        match rx.recv_into_timeout(&mut v, PATIENCE) {
            Ok(_) => {
                let seq = v[0].to_bits() >> 16;
                if seq != next {
                    return Err(format!("batch {seq} where {next} was due"));
                }
                check(seq, &v, MAX_LOSSY)?;
                next += 1;
                delivered += 1;
                if delivered % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
            Err(RecvTimeoutError::Lagged { missed: m }) => {
                missed += m;
                next += m;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    if missed != rx.missed() {
        return Err(format!(
            "counted {missed} missed, the handle says {}",
            rx.missed()
        ));
    }
    println!("{delivered} {missed}");
    Ok(())
}

/// Subscribe, read one batch, then hold the publisher back until killed.
fn stall(name: &str) -> Result<(), String> {
    let mut rx = open(name, Start::Next)?;
    ready()?;
    drop(rx.recv_timeout(PATIENCE).map_err(|e| e.to_string())?);
    std::thread::sleep(PATIENCE);
    Err("not killed".into())
}

/// Create the log, wait for the go, publish 50 batches, say how many, then
/// hang until killed.
fn publisher(name: &str) -> Result<(), String> {
    // Room for all 50: the subscriber reads only after the kill.
    let mut tx = Publisher::<f64>::create(name, 8192).map_err(|e| e.to_string())?;
    ready()?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    for seq in 0..50 {
        let b: Vec<f64> = (0..len_of(seq, MAX_LOSSY))
            .map(|k| element(seq, k))
            .collect();
        tx.send_timeout(&b, PATIENCE).map_err(|e| e.to_string())?;
    }
    println!("50");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    std::thread::sleep(PATIENCE);
    Err("not killed".into())
}

/// Join late at `start`; print the first batch number and the count.
fn joiner(name: &str, start: Start) -> Result<(), String> {
    let mut rx = open(name, start)?;
    ready()?;
    let mut first = None;
    let mut n = 0u64;
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(b) => {
                let seq = b[0].to_bits() >> 16;
                let f = *first.get_or_insert(seq);
                if seq != f + n {
                    return Err(format!("batch {seq} after {n} from {f}"));
                }
                check(seq, &b, MAX_LOSSY)?;
                n += 1;
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    println!("{} {n}", first.map_or(-1, |f| f as i64));
    Ok(())
}

// ---------------------------------------------------------------- parent

const MAX_LOSSLESS: usize = 4096;
const MAX_LOSSY: usize = 64;

struct Kid {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Kid {
    fn spawn(role: &str, name: &str) -> Result<Kid, Failed> {
        let mut child = Command::new(std::env::current_exe()?)
            .env("SHMBATCH_BCAST_CHILD", role)
            .env("SHMBATCH_NAME", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Kid { child, out })
    }

    fn line(&mut self) -> Result<String, Failed> {
        let mut l = String::new();
        self.out.read_line(&mut l)?;
        if l.is_empty() {
            let status = self.child.wait()?;
            return Err(format!("child exited ({status}) before it said anything").into());
        }
        Ok(l.trim().to_owned())
    }

    fn ready(&mut self) -> Result<(), Failed> {
        match self.line()?.as_str() {
            "ready" => Ok(()),
            l => Err(format!("child said {l:?}").into()),
        }
    }

    /// The child's last line, once it exited successfully within `limit`.
    fn finish(mut self, limit: Duration) -> Result<String, Failed> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    return Err(format!("child failed: {status}").into());
                }
                return self.line();
            }
            if start.elapsed() > limit {
                return Err(format!("child still running after {limit:?}").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn no_leftover(name: &str) -> Result<(), Failed> {
    if std::path::Path::new("/dev/shm").join(name).exists() {
        let _ = shmbatch::remove(name);
        return Err(format!("segment {name} was left in /dev/shm").into());
    }
    Ok(())
}

/// One publisher, 4 subscriber processes, 1 M batches of 1..=4096 elements:
/// every subscriber checks every value in order.
fn lossless_four_subscribers_see_every_value() -> Result<(), Failed> {
    const BATCHES: u64 = 1_000_000;
    let name = unique("all");
    let mut tx = Publisher::<f64>::create(&name, 4 * MAX_LOSSLESS)?;
    let mut kids = (0..4)
        .map(|_| Kid::spawn("all", &name))
        .collect::<Result<Vec<_>, _>>()?;
    for k in &mut kids {
        k.ready()?;
    }
    assert_eq!(tx.subscribers(), 4);
    let start = Instant::now();
    let mut buf = Vec::with_capacity(MAX_LOSSLESS);
    for seq in 0..BATCHES {
        let len = len_of(seq, MAX_LOSSLESS);
        if seq % 2 == 0 {
            buf.clear();
            buf.extend((0..len).map(|k| element(seq, k)));
            tx.send_timeout(&buf, PATIENCE)?;
        } else {
            let mut r = tx.reserve_timeout(len, PATIENCE)?;
            for (k, x) in r.iter_mut().enumerate() {
                *x = element(seq, k);
            }
            r.commit();
        }
    }
    drop(tx);
    for k in kids {
        let n: u64 = k.finish(PATIENCE)?.parse()?;
        if n != BATCHES {
            return Err(format!("a subscriber got {n} batches").into());
        }
    }
    eprintln!("  1 M batches to 4 subscribers in {:?}", start.elapsed());
    no_leftover(&name)
}

/// Lossy, with one slow subscriber: every batch it gets is intact, and
/// delivered plus missed is what was published.
fn lossy_slow_subscriber_counts_exactly() -> Result<(), Failed> {
    const BATCHES: u64 = 300_000;
    let name = unique("lossy");
    let opts = Options::new().broadcast_policy(Policy::Lossy);
    let mut tx = Publisher::<f64>::create_with(&name, 2 * MAX_LOSSY, &opts)?;
    let mut kid = Kid::spawn("slow-lossy", &name)?;
    kid.ready()?;
    let mut buf = Vec::with_capacity(MAX_LOSSY);
    for seq in 0..BATCHES {
        buf.clear();
        buf.extend((0..len_of(seq, MAX_LOSSY)).map(|k| element(seq, k)));
        tx.try_send(&buf)?; // never waits
        if seq % 256 == 0 {
            // Paced, so that the slow subscriber gets some and misses some.
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    drop(tx);
    let out = kid.finish(PATIENCE)?;
    let (d, m) = out.split_once(' ').ok_or("bad output")?;
    let (delivered, missed): (u64, u64) = (d.parse()?, m.parse()?);
    eprintln!("  delivered {delivered}, missed {missed}");
    if delivered + missed != BATCHES || missed == 0 || delivered == 0 {
        return Err(format!("delivered {delivered} + missed {missed} != {BATCHES}").into());
    }
    no_leftover(&name)
}

/// Lossless, with a subscriber SIGKILLed while it holds the publisher back: the
/// publisher goes on within the liveness interval (20 ms; bounded here at
/// 250 ms for a loaded 2-core machine).
fn killed_subscriber_stops_holding_back() -> Result<(), Failed> {
    let name = unique("kill");
    let mut tx = Publisher::<f64>::create(&name, 1024)?;
    let mut live = Kid::spawn("all", &name)?;
    let mut victim = Kid::spawn("stall", &name)?;
    live.ready()?;
    victim.ready()?;
    let max = 1024 / 2;
    let send = |tx: &mut Publisher<f64>, seq: &mut u64, timeout: Duration| {
        let b: Vec<f64> = (0..len_of(*seq, max)).map(|k| element(*seq, k)).collect();
        let r = tx.send_timeout(&b, timeout);
        if r.is_ok() {
            *seq += 1;
        }
        r
    };
    let mut seq = 0u64;
    // Fill the log until the stalled subscriber holds us back.
    while send(&mut tx, &mut seq, Duration::from_millis(200)).is_ok() {
        if seq > 100_000 {
            return Err("the stalled subscriber never held the publisher back".into());
        }
    }
    let killed = Instant::now();
    victim.child.kill()?;
    victim.child.wait()?;
    send(&mut tx, &mut seq, PATIENCE)?;
    let held = killed.elapsed();
    eprintln!("  held back {held:?} after the kill");
    if held > Duration::from_millis(250) {
        return Err(format!("held back {held:?} by a dead subscriber").into());
    }
    for _ in 0..1000 {
        send(&mut tx, &mut seq, PATIENCE)?;
    }
    let sent = seq;
    drop(tx);
    let n: u64 = live.finish(PATIENCE)?.parse()?;
    if n != sent {
        return Err(format!("the live subscriber got {n} of {sent}").into());
    }
    no_leftover(&name)
}

/// Late joiners start where their option says: `Next` at the first batch after
/// they joined, `Oldest` at the oldest the log still holds.
fn late_joiners_start_where_asked() -> Result<(), Failed> {
    let name = unique("late");
    let mut tx = Publisher::<f64>::create(&name, 4 * MAX_LOSSY)?;
    let send = |tx: &mut Publisher<f64>, seq: u64| {
        let b: Vec<f64> = (0..len_of(seq, MAX_LOSSY))
            .map(|k| element(seq, k))
            .collect();
        tx.send_timeout(&b, PATIENCE)
    };
    for seq in 0..100 {
        send(&mut tx, seq)?;
    }
    let mut oldest = Kid::spawn("oldest", &name)?;
    let mut next = Kid::spawn("next", &name)?;
    oldest.ready()?;
    next.ready()?;
    for seq in 100..200 {
        send(&mut tx, seq)?;
    }
    drop(tx);
    let parse = |s: String| -> Result<(i64, u64), Failed> {
        let (f, n) = s.split_once(' ').ok_or("bad output")?;
        Ok((f.parse()?, n.parse()?))
    };
    let (nf, nn) = parse(next.finish(PATIENCE)?)?;
    if (nf, nn) != (100, 100) {
        return Err(format!("Next joiner got {nn} batches from {nf}").into());
    }
    let (of, on) = parse(oldest.finish(PATIENCE)?)?;
    eprintln!("  Oldest joiner started at batch {of}");
    if !(0..100).contains(&of) || of as u64 + on != 200 {
        return Err(format!("Oldest joiner got {on} batches from {of}").into());
    }
    no_leftover(&name)
}

/// A publisher process SIGKILLed after publishing: the subscriber drains every
/// batch it published, then sees Disconnected (within the liveness interval).
fn killed_publisher_is_drained_then_disconnected() -> Result<(), Failed> {
    let name = unique("pubdeath");
    let mut kid = Kid::spawn("publisher", &name)?;
    kid.ready()?; // created
    let mut rx = open(&name, Start::Oldest)?;
    writeln!(kid.child.stdin.as_mut().expect("piped"), "go")?;
    let sent: u64 = kid.line()?.parse()?;
    let killed = Instant::now();
    kid.child.kill()?;
    kid.child.wait()?;
    let mut n = 0u64;
    let end = loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(b) => {
                check(n, &b, MAX_LOSSY)?;
                n += 1;
            }
            Err(e) => break e,
        }
    };
    let waited = killed.elapsed();
    drop(rx);
    let _ = shmbatch::remove(&name); // its creator died: nobody unlinked it
    if end != RecvTimeoutError::Disconnected || n != sent {
        return Err(format!("got {n} of {sent} batches, then {end}").into());
    }
    eprintln!("  disconnected {waited:?} after the kill");
    if waited > Duration::from_secs(2) {
        return Err(format!("took {waited:?} to see the publisher die").into());
    }
    no_leftover(&name)
}

fn main() -> ExitCode {
    if let Ok(role) = std::env::var("SHMBATCH_BCAST_CHILD") {
        return child(&role);
    }
    let mut args = Arguments::from_args();
    args.test_threads.get_or_insert(1);
    let trials = vec![
        Trial::test(
            "lossless_four_subscribers_see_every_value",
            lossless_four_subscribers_see_every_value,
        ),
        Trial::test(
            "lossy_slow_subscriber_counts_exactly",
            lossy_slow_subscriber_counts_exactly,
        ),
        Trial::test(
            "killed_subscriber_stops_holding_back",
            killed_subscriber_stops_holding_back,
        ),
        Trial::test(
            "late_joiners_start_where_asked",
            late_joiners_start_where_asked,
        ),
        Trial::test(
            "killed_publisher_is_drained_then_disconnected",
            killed_publisher_is_drained_then_disconnected,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
