//! Broadcast between processes, measured the same way for shmbatch and for every
//! peer: this process publishes batches of [`BATCH`] `f64` (lossless) to N
//! subscriber processes, each of which receives every batch.
//!
//! Element 0 of every batch carries its number, [`END`] the end mark. A
//! subscriber joins, says `ready`, checks that the numbers come 0, 1, 2 ... with
//! none lost or out of order, and at the end mark prints how many it received
//! and exits. [`publish`] waits until all are ready, publishes for the run's
//! length, sends the end mark and waits for every count, which must equal the
//! number published. The figure is elements per second *per subscriber*: every
//! one of the N receives all of them, so N subscribers move N times as many
//! elements in all. The clock runs from the first publish until the last
//! subscriber has received the end mark, so that nothing still in the ring when
//! the publisher stops is counted as delivered.

use std::fmt::Display;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout};
use std::time::{Duration, Instant};

use super::{spawn, Skipped};

/// Elements in one broadcast batch.
pub const BATCH: usize = 256;

/// The numbers of subscriber processes measured.
pub const SUBSCRIBERS: [usize; 3] = [1, 2, 4];

/// Element 0 of the last batch: the end of the run.
pub const END: f64 = -1.0;

/// The subscriber processes of one measurement, each with its standard output.
/// Dropped, also on an error path, it gives them two seconds to exit, ends those
/// that have not, reaps them and removes the file it was given, if any.
pub struct Subscribers {
    children: Vec<(Child, BufReader<ChildStdout>)>,
    remove: Option<PathBuf>,
}

impl Subscribers {
    /// None yet; `remove` is a file to remove on drop (a peer's ring).
    pub fn new(remove: Option<PathBuf>) -> Self {
        Subscribers {
            children: Vec::new(),
            remove,
        }
    }

    /// Starts `n` processes `exe bench-peer ARGS`.
    ///
    /// # Errors
    /// When a process cannot be started.
    pub fn spawn(&mut self, exe: &Path, n: usize, args: &[String]) -> Result<(), Skipped> {
        for _ in 0..n {
            let mut c = spawn(exe, args).map_err(|e| format!("spawn {}: {e}", exe.display()))?;
            let out = BufReader::new(c.stdout.take().expect("piped"));
            self.children.push((c, out));
        }
        Ok(())
    }

    /// The next line from subscriber `i`, or why there is none.
    fn line(&mut self, i: usize) -> Result<String, Skipped> {
        let mut line = String::new();
        let (c, out) = &mut self.children[i];
        match out.read_line(&mut line) {
            Ok(0) => {
                let status = c.wait().map_err(|e| format!("a subscriber: {e}"))?;
                Err(format!("a subscriber process exited early ({status})"))
            }
            Ok(_) => Ok(line.trim().to_owned()),
            Err(e) => Err(format!("read a subscriber's output: {e}")),
        }
    }

    /// Waits until every subscriber has joined (said `ready`).
    ///
    /// # Errors
    /// When one exits first or says something else.
    pub fn ready(&mut self) -> Result<(), Skipped> {
        for i in 0..self.children.len() {
            let l = self.line(i)?;
            if l != "ready" {
                return Err(format!("unexpected output from a subscriber: {l:?}"));
            }
        }
        Ok(())
    }

    /// Why a subscriber process has gone, or `None` while all run.
    pub fn exited(&mut self) -> Option<String> {
        self.children
            .iter_mut()
            .find_map(|(c, _)| match c.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(format!("a subscriber process exited early ({status})")),
                Err(e) => Some(format!("a subscriber process: {e}")),
            })
    }

    /// Waits for every subscriber to exit.
    ///
    /// # Errors
    /// When one failed.
    pub fn wait(&mut self) -> Result<(), Skipped> {
        for (mut c, _) in self.children.drain(..) {
            let status = c.wait().map_err(|e| format!("a subscriber: {e}"))?;
            if !status.success() {
                return Err(format!("a subscriber process failed ({status})"));
            }
        }
        Ok(())
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        let until = Instant::now() + Duration::from_secs(2);
        for (c, _) in &mut self.children {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        if let Some(p) = &self.remove {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The publishing side of a measurement (see the module docs): `send(x, subs)`
/// publishes one batch whose element 0 is `x` (waiting for room, as a lossless
/// publisher does; `subs` is there to look whether a subscriber has gone while
/// it waits). Elements per second per subscriber.
///
/// # Errors
/// A failed send, a subscriber that exits early, or a count that is not the
/// number published.
pub fn publish<E: Display>(
    subs: &mut Subscribers,
    dur: Duration,
    mut send: impl FnMut(f64, &mut Subscribers) -> Result<(), E>,
) -> Result<f64, Skipped> {
    subs.ready()?;
    let start = Instant::now();
    let mut k = 0u64;
    let mut send = |x: f64, subs: &mut Subscribers| send(x, subs).map_err(|e| e.to_string());
    while start.elapsed() < dur {
        for _ in 0..16 {
            send(k as f64, subs)?;
            k += 1;
        }
    }
    send(END, subs)?;
    for i in 0..subs.children.len() {
        let l = subs.line(i)?;
        if l != k.to_string() {
            return Err(format!("{k} batches published, a subscriber says {l:?}"));
        }
    }
    let t = start.elapsed();
    subs.wait()?;
    Ok(k as f64 * BATCH as f64 / t.as_secs_f64())
}

/// The subscribing side, once joined: says `ready`, then takes batches with
/// `recv` (which returns element 0 of the next batch) until the end mark,
/// checking their numbers, and prints how many it received.
///
/// # Errors
/// From `recv`, or for a batch lost or out of order.
pub fn subscribe(mut recv: impl FnMut() -> Result<f64, String>) -> Result<(), String> {
    let say = |s: &str| {
        let mut o = std::io::stdout().lock();
        writeln!(o, "{s}")
            .and_then(|()| o.flush())
            .map_err(|e| format!("write {s}: {e}"))
    };
    say("ready")?;
    let mut k = 0u64;
    loop {
        let x = recv()?;
        if x == END {
            break;
        }
        if x != k as f64 {
            return Err(format!("batch {k} lost: got batch {x}"));
        }
        k += 1;
    }
    say(&k.to_string())
}
