//! Bridges between real processes on 127.0.0.1: an exporter process and an
//! importer process, zenoh peer mode with multicast scouting off and explicit
//! endpoints, carrying random-length `f64` batches from a local SPSC queue to
//! another, every value checked bit for bit. Processes are killed with SIGKILL
//! mid-stream and restarted; the bridge's counters must match what the checking
//! consumer actually saw lost or repeated.
//!
//! One binary plays every role: the test re-runs itself with `SBZ_ROLE` set.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use shmbatch::spsc::{Receiver, Sender};
use shmbatch_zenoh::{Endpoints, ExportOptions, Exporter, ImportOptions, Importer};

/// Queue capacity (elements) on both sides.
const CAPACITY: usize = 1 << 15;
/// Longest batch.
const MAX_LEN: u64 = 1024;

/// A mixing function: the generator of every length and value.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Batch `i`: its length is 1..=MAX_LEN, its first element is `i` and the rest
/// are arbitrary bit patterns (NaN payloads, infinities, subnormals), with a
/// `-0.0` in every batch long enough.
fn batch(seed: u64, i: u64) -> Vec<f64> {
    let len = 1 + mix(seed ^ i) % MAX_LEN;
    (0..len)
        .map(|j| match j {
            0 => i as f64,
            1 => -0.0,
            _ => f64::from_bits(mix(seed.wrapping_add(i << 20).wrapping_add(j))),
        })
        .collect()
}

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

/// The listening side listens, the other connects.
fn endpoints(me: &str) -> Endpoints {
    let ep = vec![env("SBZ_ENDPOINT")];
    if env("SBZ_LISTENER") == me {
        Endpoints {
            listen: ep,
            connect: vec![],
        }
    } else {
        Endpoints {
            listen: vec![],
            connect: ep,
        }
    }
}

/// The roles a child process plays.
fn role(role: &str) {
    let key = env("SBZ_KEY");
    match role {
        "produce" => {
            let (name, seed, n): (String, u64, u64) = (
                env("SBZ_QUEUE"),
                env("SBZ_SEED").parse().unwrap(),
                env("SBZ_BATCHES").parse().unwrap(),
            );
            // Persistent, so that a restarted exporter finds it after the producer
            // is done; the test removes it.
            let mut tx = Sender::<f64>::create(&name, CAPACITY).unwrap();
            tx.persist();
            println!("ready");
            for i in 0..n {
                let b = batch(seed, i);
                // A killed exporter leaves the queue without a receiver until
                // its successor attaches: the batch waits for it.
                while let Err(e) = tx.send(&b) {
                    assert_eq!(e, shmbatch::SendError::Disconnected);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        "export" => {
            let rx = Receiver::<f64>::open(&env("SBZ_QUEUE")).unwrap();
            let ep = endpoints("export");
            let session = ep.open().unwrap();
            let mut ex = Exporter::new(&session, &key, rx, &ExportOptions::default()).unwrap();
            let s = ex.run().unwrap();
            println!("exported {} {}", s.batches, s.next_seq);
        }
        "import" => {
            let tx = Sender::<f64>::open(&env("SBZ_QUEUE")).unwrap();
            let session = endpoints("import").open().unwrap();
            let opts = ImportOptions {
                until_end: true,
                ..ImportOptions::default()
            };
            let mut im = Importer::new(&session, &key, tx, &opts).unwrap();
            println!("ready");
            match im.run() {
                Ok(s) => println!(
                    "imported {} {} {} {} {} {} {}",
                    s.batches, s.elements, s.gaps, s.lost, s.duplicates, s.uncertain, s.repaired
                ),
                Err(e) => println!("error {e}"),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// A child process, killed if the trial ends while it still runs.
struct Proc(Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(role: &str, vars: &[(&str, String)]) -> Proc {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env("SBZ_ROLE", role).stdout(Stdio::piped());
    for (k, v) in vars {
        c.env(k, v);
    }
    Proc(c.spawn().unwrap())
}

/// The last line a child printed, once it exits (bounded wait).
fn finish(mut child: Proc, within: Duration) -> Result<String, Failed> {
    let until = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait()? {
            let mut out = String::new();
            for line in BufReader::new(child.stdout.take().unwrap()).lines() {
                out = line?;
            }
            if !status.success() {
                return Err(format!("child failed: {status}, said {out:?}").into());
            }
            return Ok(out);
        }
        if Instant::now() > until {
            let _ = child.kill();
            return Err("child did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait for a child's "ready" line (its subscriber is declared).
fn ready(child: &mut Child) -> Result<(), Failed> {
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        return Err(format!("expected ready, got {line:?}").into());
    }
    // Keep reading its later lines through the same pipe.
    child.stdout = Some(out.into_inner());
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes the persistent segments of a trial, however it ends.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            match shmbatch::remove(name) {
                Ok(()) | Err(shmbatch::Error::NotFound { .. }) => {}
                Err(e) => eprintln!("removing {name}: {e}"),
            }
        }
    }
}

/// What the consumer saw.
#[derive(Debug, Default)]
struct Seen {
    delivered: u64,
    elements: u64,
    missing: u64,
    runs: u64,
    repeated: u64,
}

/// Run one stream of `batches` batches through exporter and importer, killing
/// the process `victim` picks (`"import"` or `"export"`) `kills` times.
fn stream(tag: &str, batches: u64, victim: Option<&str>, kills: u32) -> Result<(), Failed> {
    let pid = std::process::id();
    let (src, dst) = (
        format!("shmbatch-test-bridge-{tag}-src-{pid}"),
        format!("shmbatch-test-bridge-{tag}-dst-{pid}"),
    );
    let seed = mix(u64::from(pid) ^ 0x5eed);
    let port = free_port();
    let key = format!("shmbatch/test/{tag}/{pid}");
    // The producer creates the source queue; the test process creates the
    // destination queue and is its consumer.
    let mut rx = Receiver::<f64>::create(&dst, CAPACITY)?;
    let state = format!("{dst}.bridge-import");
    let _cleanup = Cleanup(vec![src.clone(), state.clone()]);
    // The process that is killed connects; the survivor listens.
    let listener = if victim == Some("import") {
        "export"
    } else {
        "import"
    };
    let vars = |role: &str| {
        vec![
            ("SBZ_KEY", key.clone()),
            (
                "SBZ_QUEUE",
                if role == "import" {
                    dst.clone()
                } else {
                    src.clone()
                },
            ),
            ("SBZ_SEED", seed.to_string()),
            ("SBZ_BATCHES", batches.to_string()),
            ("SBZ_ENDPOINT", format!("tcp/127.0.0.1:{port}")),
            ("SBZ_LISTENER", listener.to_owned()),
        ]
    };
    let mut producer = spawn("produce", &vars("produce"));
    ready(&mut producer)?;
    let mut exporter = spawn("export", &vars("export"));
    let mut importer = spawn("import", &vars("import"));
    ready(&mut importer)?;

    let mut seen = Seen::default();
    let mut next = 0u64;
    let mut kill_at: Vec<u64> = (1..=u64::from(kills))
        .map(|k| k * batches / (u64::from(kills) + 1) + mix(seed + k) % 50)
        .collect();
    kill_at.reverse();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut out = Vec::new();
    let mut importer_said: Option<String> = None;
    loop {
        if Instant::now() > deadline {
            return Err(format!("stream stalled at batch {next}: {seen:?}").into());
        }
        if kill_at.last().is_some_and(|&k| next >= k) {
            kill_at.pop();
            let which = victim.unwrap();
            let child = if which == "import" {
                &mut importer
            } else {
                &mut exporter
            };
            child.kill()?;
            child.wait()?;
            std::thread::sleep(Duration::from_millis(mix(next) % 100));
            *child = spawn(which, &vars(which));
            if which == "import" {
                ready(child)?;
            }
        }
        match rx.recv_into_timeout(&mut out, Duration::from_millis(20)) {
            Ok(_) => {
                let i = out[0] as u64;
                if i < next {
                    seen.repeated += 1;
                    continue;
                }
                if i > next {
                    seen.missing += i - next;
                    seen.runs += 1;
                }
                let want = batch(seed, i);
                if bits(&out) != bits(&want) {
                    return Err(format!("batch {i} arrived changed").into());
                }
                seen.delivered += 1;
                seen.elements += out.len() as u64;
                next = i + 1;
            }
            Err(_) => {
                // Empty, or the importer is between lives: has the last one ended?
                if importer_said.is_some() {
                    if rx.is_empty() {
                        break;
                    }
                } else if let Some(status) = importer.try_wait()? {
                    let mut line = String::new();
                    for l in BufReader::new(importer.stdout.take().unwrap()).lines() {
                        line = l?;
                    }
                    if !status.success() {
                        return Err(format!("importer failed: {status}, {line}").into());
                    }
                    importer_said = Some(line);
                }
            }
        }
    }
    let _ = finish(producer, Duration::from_secs(10))?;
    let exported = finish(exporter, Duration::from_secs(30))?;
    let line = importer_said.unwrap();
    let f: Vec<u64> = line
        .strip_prefix("imported ")
        .ok_or(format!("importer said {line:?}"))?
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    eprintln!("  {tag}: consumer saw {seen:?}; importer counted {f:?}; exporter {exported}");
    // The consumer never sees a batch twice, and every batch it sees is whole.
    assert_eq!(seen.repeated, 0, "a batch was delivered twice");
    // The importer's totals, kept across its restarts, are what happened.
    let [delivered, elements, gaps, lost, _dups, uncertain, _repaired] = f[..] else {
        return Err(format!("bad stats line {line:?}").into());
    };
    assert_eq!(delivered, seen.delivered, "delivered");
    assert_eq!(elements, seen.elements, "elements");
    assert_eq!(lost, seen.missing + (batches - next), "lost");
    // A loss at the very end is a gap the end-of-stream sample reveals.
    assert_eq!(gaps, seen.runs + u64::from(next < batches), "gaps");
    assert_eq!(uncertain, 0, "an SPSC queue leaves nothing uncertain");
    assert!(
        seen.elements >= 1_000_000 || kills > 0,
        "carried only {} f64",
        seen.elements
    );
    if victim.is_none() {
        assert_eq!(
            (seen.missing, next),
            (0, batches),
            "a lossless run lost batches"
        );
    }
    Ok(())
}

fn main() {
    if let Ok(r) = std::env::var("SBZ_ROLE") {
        role(&r);
        return;
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("bridge_carries_2m_f64_spsc_to_spsc_bit_for_bit", || {
            stream("plain", 4000, None, 0)
        }),
        Trial::test("importer_killed_and_restarted_counts_match", || {
            stream("kill-import", 4000, Some("import"), 3)
        }),
        Trial::test("exporter_killed_and_restarted_counts_match", || {
            stream("kill-export", 4000, Some("export"), 3)
        }),
        Trial::test("type_mismatch_is_refused", type_mismatch),
        Trial::test("lossy_drops_are_counted", lossy_drops_are_counted),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// Two zenoh sessions in this process, one listening and one connecting to it
/// over TCP on 127.0.0.1.
fn session_pair() -> Result<
    (
        shmbatch_zenoh::zenoh::Session,
        shmbatch_zenoh::zenoh::Session,
    ),
    Failed,
> {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let listen = Endpoints {
        listen: vec![ep.clone()],
        ..Endpoints::default()
    }
    .open()?;
    let connect = Endpoints {
        connect: vec![ep],
        ..Endpoints::default()
    }
    .open()?;
    Ok((listen, connect))
}

/// An importer whose queue holds `f32` refuses a stream of `f64`, and delivers
/// nothing of it.
fn type_mismatch() -> Result<(), Failed> {
    let pid = std::process::id();
    let key = format!("shmbatch/test/mismatch/{pid}");
    let (mut tx, rx) = shmbatch::spsc::channel::<f64>(1024)?;
    let (listen, connect) = session_pair()?;
    let (sink, mut out) = shmbatch::spsc::channel::<f32>(1024)?;
    let mut im = Importer::new(&connect, &key, sink, &ImportOptions::default())?;
    let mut ex = Exporter::new(&listen, &key, rx, &ExportOptions::default())?;
    tx.send(&[1.0, 2.0])?;
    let until = Instant::now() + Duration::from_secs(20);
    while ex.step()? != shmbatch_zenoh::Polled::Batch {
        if Instant::now() > until {
            return Err("the exporter never saw the importer".into());
        }
    }
    let err = loop {
        match im.step() {
            Ok(_) if Instant::now() < until => continue,
            Ok(s) => return Err(format!("no refusal, last step {s:?}").into()),
            Err(e) => break e,
        }
    };
    let msg = err.to_string();
    assert!(
        matches!(err, shmbatch_zenoh::Error::TypeMismatch { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("\"<f8\"") && msg.contains("\"<f4\"") && msg.contains("refused"),
        "{msg}"
    );
    assert!(
        out.try_recv().is_err(),
        "a batch of the wrong type was delivered"
    );
    Ok(())
}

/// Lossy on both sides: an importer whose queue is full drops batches instead of
/// waiting, and counts them; what it delivers is in order.
fn lossy_drops_are_counted() -> Result<(), Failed> {
    let pid = std::process::id();
    let key = format!("shmbatch/test/lossy/{pid}");
    let (mut tx, rx) = shmbatch::spsc::channel::<f64>(1 << 16)?;
    let (listen, connect) = session_pair()?;
    // Room for a few batches of 16: nobody reads it while the stream runs.
    let (sink, mut out) = shmbatch::spsc::channel::<f64>(64)?;
    let im_opts = ImportOptions {
        lossy: true,
        ..ImportOptions::default()
    };
    let mut im = Importer::new(&connect, &key, sink, &im_opts)?;
    let ex_opts = ExportOptions {
        lossy: true,
        ..ExportOptions::default()
    };
    let mut ex = Exporter::new(&listen, &key, rx, &ex_opts)?;
    let until = Instant::now() + Duration::from_secs(20);
    while !ex.has_importer() {
        if Instant::now() > until {
            return Err("the exporter never saw the importer".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    const N: u64 = 200;
    for i in 0..N {
        tx.send(&[i as f64; 16])?;
    }
    drop(tx);
    let exporter = std::thread::spawn(move || ex.run().map_err(|e| e.to_string()));
    loop {
        match im.step()? {
            shmbatch_zenoh::Step::Ended => break,
            _ if Instant::now() > until => return Err("the end never came".into()),
            _ => {}
        }
    }
    let ex_stats = exporter.join().unwrap()?;
    let s = im.stats().snapshot();
    let mut got = Vec::new();
    while let Ok(b) = out.try_recv() {
        got.push(b[0] as u64);
    }
    eprintln!(
        "  lossy: delivered {} dropped {} lost {} of {N}",
        s.batches, s.dropped, s.lost
    );
    assert_eq!(ex_stats.batches, N);
    assert_eq!(s.batches, got.len() as u64);
    assert_eq!(s.batches + s.dropped + s.lost, N, "{s:?}");
    assert!(
        s.dropped > 0,
        "a queue of 64 elements took all 200 batches: {s:?}"
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    Ok(())
}
