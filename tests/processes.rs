//! Cross-process tests: the test binary re-runs itself as the peer process.
//!
//! `main` looks at `SHMBATCH_CHILD`; when it is set, this process is a child and
//! plays the role named there. Otherwise it runs the trials below through
//! libtest-mimic, which prints the usual `test result:` summary.

use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use shmbatch::spsc::{Receiver, Sender};
use shmbatch::{Error, RecvTimeoutError, SendTimeoutError};

/// Values streamed by the long tests.
const TOTAL: u64 = 10_000_000;
/// Longest batch in the long tests.
const MAX_LEN: u64 = 4096;
/// Ring capacity: max_batch must reach MAX_LEN.
const CAPACITY: usize = 1 << 16;
/// Upper bound on any single wait in these tests.
const PATIENCE: Duration = Duration::from_secs(60);

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const SPECIALS: [u64; 6] = [
    0x7ff8_0000_0000_0000, // NaN
    0xfff8_0000_0000_0001, // negative NaN with payload
    0x7ff0_0000_0000_0001, // signalling NaN
    0x8000_0000_0000_0000, // -0.0
    0x0000_0000_0000_0001, // smallest subnormal
    0xfff0_0000_0000_0000, // -inf
];

/// The i-th value of the stream: random bits, with NaNs and -0.0 sprinkled in.
fn value(seed: u64, i: u64) -> f64 {
    if i % 997 == 0 {
        f64::from_bits(SPECIALS[(i / 997 % 6) as usize])
    } else {
        f64::from_bits(splitmix(seed ^ i))
    }
}

/// Length of the k-th batch, in 1..=MAX_LEN (clipped to what is left).
fn batch_len(seed: u64, k: u64, sent: u64) -> usize {
    (1 + splitmix(!seed ^ k) % MAX_LEN).min(TOTAL - sent) as usize
}

fn unique(tag: &str) -> String {
    format!("shmbatch-test-proc-{tag}-{}", std::process::id())
}

fn command(role: &str, name: &str, seed: u64) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env("SHMBATCH_CHILD", role)
        .env("SHMBATCH_NAME", name)
        .env("SHMBATCH_SEED", seed.to_string());
    c
}

fn spawn(role: &str, name: &str, seed: u64) -> Child {
    command(role, name, seed).spawn().unwrap()
}

/// Wait for a child with a bound; kill it if the bound passes.
fn reap(mut child: Child, within: Duration) -> Result<i32, Failed> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status.code().unwrap_or(-1));
        }
        if start.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("child did not finish within {within:?}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Produce the whole stream with the copying path (`send`).
fn produce_copying(tx: &mut Sender<f64>, seed: u64) -> Result<(), String> {
    let mut buf = Vec::with_capacity(MAX_LEN as usize);
    let (mut sent, mut k) = (0, 0);
    while sent < TOTAL {
        let len = batch_len(seed, k, sent);
        buf.clear();
        buf.extend((sent..sent + len as u64).map(|i| value(seed, i)));
        tx.send_timeout(&buf, PATIENCE)
            .map_err(|e| format!("send: {e}"))?;
        sent += len as u64;
        k += 1;
    }
    Ok(())
}

/// Produce the whole stream with the zero-copy path (`reserve` + `commit`).
fn produce_zero_copy(tx: &mut Sender<f64>, seed: u64) -> Result<(), String> {
    let (mut sent, mut k) = (0, 0);
    while sent < TOTAL {
        let len = batch_len(seed, k, sent);
        let mut r = tx
            .reserve_timeout(len, PATIENCE)
            .map_err(|e| format!("reserve: {e}"))?;
        for (j, x) in r.iter_mut().enumerate() {
            *x = value(seed, sent + j as u64);
        }
        r.commit();
        sent += len as u64;
        k += 1;
    }
    Ok(())
}

/// Check one received batch against the stream.
fn check(seed: u64, k: u64, got: &[f64], received: &mut u64) -> Result<(), String> {
    let want = batch_len(seed, k, *received);
    if got.len() != want {
        return Err(format!("batch {k}: length {} != {want}", got.len()));
    }
    for (j, x) in got.iter().enumerate() {
        let i = *received + j as u64;
        if x.to_bits() != value(seed, i).to_bits() {
            return Err(format!(
                "value {i}: {:#x} != {:#x}",
                x.to_bits(),
                value(seed, i).to_bits()
            ));
        }
    }
    *received += got.len() as u64;
    Ok(())
}

/// Consume until Disconnected, with the zero-copy guard (`recv`) or `recv_into`.
fn consume(rx: &mut Receiver<f64>, seed: u64, zero_copy: bool) -> Result<(), String> {
    let (mut received, mut k) = (0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        let got = if zero_copy {
            rx.recv_timeout(PATIENCE)
                .map(|b| check(seed, k, &b, &mut received))
        } else {
            rx.recv_into_timeout(&mut buf, PATIENCE)
                .map(|_| check(seed, k, &buf, &mut received))
        };
        match got {
            Ok(checked) => checked?,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(format!("recv after {received} values: {e}")),
        }
        k += 1;
    }
    if received != TOTAL {
        return Err(format!("received {received} values, expected {TOTAL}"));
    }
    Ok(())
}

fn child(role: &str) -> ExitCode {
    let name = std::env::var("SHMBATCH_NAME").unwrap();
    let seed: u64 = std::env::var("SHMBATCH_SEED").unwrap().parse().unwrap();
    let result = match role {
        "consume-zero-copy" => Receiver::<f64>::open(&name)
            .map_err(|e| e.to_string())
            .and_then(|mut rx| consume(&mut rx, seed, true)),
        "produce-zero-copy" => Sender::<f64>::open(&name)
            .map_err(|e| e.to_string())
            .and_then(|mut tx| produce_zero_copy(&mut tx, seed)),
        "consume-then-hang" => Receiver::<f64>::open(&name)
            .map_err(|e| e.to_string())
            .and_then(|mut rx| {
                // Received and released: the batch is not what this child holds.
                drop(rx.recv_timeout(PATIENCE).map_err(|e| e.to_string())?);
                println!("ready");
                std::thread::sleep(PATIENCE);
                Ok(())
            }),
        "produce-then-abort" => {
            Sender::<f64>::open(&name)
                .map_err(|e| e.to_string())
                .map(|mut tx| {
                    for k in 0..seed {
                        tx.send(&[k as f64; 3]).unwrap();
                    }
                    // Exit without running destructors: the owner word still says
                    // "attached" with a pid that is about to be dead.
                    std::process::exit(3);
                })
        }
        "open-sender" => match Sender::<f64>::open(&name) {
            Err(Error::AlreadyAttached { pid, .. }) if pid == seed as u32 => Ok(()),
            other => Err(format!("expected AlreadyAttached, got {other:?}")),
        },
        other => Err(format!("unknown role {other}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("child {role}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stream_copying_sender_to_zero_copy_receiver() -> Result<(), Failed> {
    let name = unique("copy");
    let seed = 0x5eed_0001;
    let mut tx = Sender::<f64>::create(&name, CAPACITY)?;
    assert!(tx.max_batch() >= MAX_LEN as usize);
    let child = spawn("consume-zero-copy", &name, seed);
    let start = Instant::now();
    let produced = produce_copying(&mut tx, seed);
    drop(tx);
    let code = reap(child, PATIENCE)?;
    let secs = start.elapsed().as_secs_f64();
    produced?;
    if code != 0 {
        return Err(format!("consumer exited with {code}").into());
    }
    eprintln!(
        "  copying send -> zero-copy recv: {TOTAL} f64 in {secs:.2} s ({:.2} GB/s)",
        TOTAL as f64 * 8.0 / secs / 1e9
    );
    Ok(())
}

fn stream_zero_copy_sender_to_copying_receiver() -> Result<(), Failed> {
    let name = unique("zero");
    let seed = 0x5eed_0002;
    let mut rx = Receiver::<f64>::create(&name, CAPACITY)?;
    let child = spawn("produce-zero-copy", &name, seed);
    let start = Instant::now();
    let consumed = consume(&mut rx, seed, false);
    let secs = start.elapsed().as_secs_f64();
    drop(rx); // a producer still sending gets Disconnected and exits
    let code = reap(child, PATIENCE)?;
    consumed?;
    if code != 0 {
        return Err(format!("producer exited with {code}").into());
    }
    eprintln!(
        "  reserve/commit -> recv_into: {TOTAL} f64 in {secs:.2} s ({:.2} GB/s)",
        TOTAL as f64 * 8.0 / secs / 1e9
    );
    Ok(())
}

fn killed_receiver_disconnects_a_blocked_sender() -> Result<(), Failed> {
    let name = unique("killrx");
    let mut tx = Sender::<f64>::create(&name, 64)?;
    let mut child = command("consume-then-hang", &name, 0)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    tx.send(&[1.0])?;
    // Wait until the child has attached and received the first batch.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )?;
    if line.trim() != "ready" {
        let _ = child.kill();
        return Err(format!("child said {line:?}").into());
    }
    // Fill the ring; the child is alive and holds the receiver.
    while tx.try_send(&[1.0; 8]).is_ok() {}
    child.kill()?;
    child.wait()?;
    let start = Instant::now();
    match tx.send_timeout(&[1.0; 8], Duration::from_secs(10)) {
        Err(SendTimeoutError::Disconnected) => {}
        other => return Err(format!("expected Disconnected, got {other:?}").into()),
    }
    if start.elapsed() > Duration::from_secs(2) {
        return Err(format!("took {:?} to notice", start.elapsed()).into());
    }
    Ok(())
}

fn aborted_sender_is_drained_then_disconnected() -> Result<(), Failed> {
    let name = unique("abort");
    let mut rx = Receiver::<f64>::create(&name, 1024)?;
    let batches = 20;
    let child = spawn("produce-then-abort", &name, batches);
    reap(child, PATIENCE)?;
    for k in 0..batches {
        let b = rx.recv_timeout(Duration::from_secs(10))?;
        if *b != [k as f64; 3] {
            return Err(format!("batch {k}: {:?}", &*b).into());
        }
    }
    let r = match rx.recv_timeout(Duration::from_secs(10)) {
        Err(RecvTimeoutError::Disconnected) => Ok(()),
        other => Err(format!("expected Disconnected, got {:?}", other.map(|b| b.len())).into()),
    };
    r
}

fn second_sender_process_is_refused() -> Result<(), Failed> {
    let name = unique("second");
    let _tx = Sender::<f64>::create(&name, 64)?;
    let code = reap(
        spawn("open-sender", &name, u64::from(std::process::id())),
        PATIENCE,
    )?;
    if code != 0 {
        return Err("child could open a second sender or saw another error".into());
    }
    let mut rx = Receiver::<f64>::open(&name)?;
    let r = match rx.try_recv() {
        Err(shmbatch::TryRecvError::Empty) => Ok(()),
        other => Err(format!("expected Empty, got {:?}", other.map(|b| b.len())).into()),
    };
    r
}

/// Whether process `pid` is a zombie (exited, not yet reaped), from `/proc`.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.split_ascii_whitespace().next()? == "Z"))
        .unwrap_or(false)
}

fn zombie_sender_is_dead() -> Result<(), Failed> {
    let name = unique("zombie");
    let mut rx = Receiver::<f64>::create(&name, 1024)?;
    // The child attaches, sends one batch and exits without detaching; it stays a
    // zombie until we reap it.
    let mut child = spawn("produce-then-abort", &name, 1);
    let t = Instant::now();
    while !is_zombie(child.id()) {
        if t.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            return Err("child never exited".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let got = rx.recv_timeout(Duration::from_secs(10)).map(|b| b.to_vec());
    let after = rx.recv_timeout(Duration::from_secs(10)).map(|b| b.len());
    // Its place can be taken while it is still a zombie.
    let reopened = Sender::<f64>::open(&name).map(drop);
    let still_zombie = is_zombie(child.id());
    reap(child, PATIENCE)?;
    if got != Ok(vec![0.0; 3]) {
        return Err(format!("first batch: {got:?}").into());
    }
    if !matches!(after, Err(RecvTimeoutError::Disconnected)) {
        return Err(format!("expected Disconnected, got {after:?}").into());
    }
    if let Err(e) = reopened {
        return Err(format!("a new sender could not attach: {e}").into());
    }
    if !still_zombie {
        return Err("the child was reaped too early for the test to mean anything".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Ok(role) = std::env::var("SHMBATCH_CHILD") {
        return child(&role);
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test(
            "stream_copying_sender_to_zero_copy_receiver",
            stream_copying_sender_to_zero_copy_receiver,
        ),
        Trial::test(
            "stream_zero_copy_sender_to_copying_receiver",
            stream_zero_copy_sender_to_copying_receiver,
        ),
        Trial::test(
            "killed_receiver_disconnects_a_blocked_sender",
            killed_receiver_disconnects_a_blocked_sender,
        ),
        Trial::test(
            "aborted_sender_is_drained_then_disconnected",
            aborted_sender_is_drained_then_disconnected,
        ),
        Trial::test(
            "second_sender_process_is_refused",
            second_sender_process_is_refused,
        ),
        Trial::test(
            "zombie_sender_is_dead_before_it_is_reaped",
            zombie_sender_is_dead,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
