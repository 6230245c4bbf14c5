//! `shmbatch bridge export` and `shmbatch bridge import`: a local queue carried
//! to and from a zenoh key by `shmbatch-zenoh`, with a progress line.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use clap::{Args as ClapArgs, Subcommand};
use shmbatch::{broadcast, mpmc, spsc, Kind};
use shmbatch_zenoh::{
    Endpoints, ExportOptions, Exporter, ImportOptions, Importer, Sink, Snapshot, Source, Stats,
    Stop,
};

use crate::Result;

/// `shmbatch bridge …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Receive every batch of a local queue and publish it on a zenoh key.
    Export {
        /// The local queue (SPSC or MPMC: this becomes its receiver; broadcast:
        /// a new subscriber).
        name: String,
        /// The zenoh key to publish on.
        #[arg(long)]
        key: String,
        #[command(flatten)]
        common: Common,
        /// Send each sample at once (lower latency, lower throughput for small
        /// batches) instead of letting zenoh batch them.
        #[arg(long)]
        express: bool,
    },
    /// Subscribe to a zenoh key and send every batch into a local queue (opened,
    /// or created if missing).
    Import {
        /// The zenoh key to subscribe to.
        key: String,
        /// The local queue (this becomes its sender, or its publisher).
        name: String,
        #[command(flatten)]
        common: Common,
        /// Kind of queue to create if `NAME` does not exist: spsc, mpmc or broadcast.
        #[arg(long, default_value = "spsc")]
        kind: String,
        /// Elements the queue holds, if it is created (spsc, broadcast).
        #[arg(long, default_value_t = 1 << 20)]
        capacity: usize,
        /// Slots and the longest batch, if an MPMC queue is created.
        #[arg(long, default_value_t = 256)]
        slots: usize,
        /// The longest batch, if an MPMC queue is created.
        #[arg(long, default_value_t = 4096)]
        max_batch: usize,
        /// Element type (numpy dtype string) of the queue, if it is created.
        #[arg(long, default_value = "<f8")]
        dtype: String,
        /// Exit when the exporter's source ends.
        #[arg(long)]
        until_end: bool,
    },
}

/// What both directions take.
#[derive(Debug, ClapArgs)]
pub(crate) struct Common {
    /// zenoh endpoint to listen on (repeatable), e.g. tcp/0.0.0.0:7447.
    #[arg(long)]
    listen: Vec<String>,
    /// zenoh endpoint to connect to (repeatable), e.g. tcp/10.0.0.2:7447.
    #[arg(long)]
    connect: Vec<String>,
    /// Never wait: drop what the other side or the local queue cannot take now
    /// (counted). Default: lossless, with back-pressure end to end.
    #[arg(long)]
    lossy: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Print the final counters as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl Common {
    fn endpoints(&self) -> Endpoints {
        Endpoints {
            listen: self.listen.clone(),
            connect: self.connect.clone(),
        }
    }
}

/// Run a bridge command.
pub(crate) fn run(cmd: &Command) -> Result {
    match cmd {
        Command::Export {
            name,
            key,
            common,
            express,
        } => {
            let info = shmbatch::inspect(name)?;
            let opts = ExportOptions {
                lossy: common.lossy,
                express: *express,
                ..ExportOptions::default()
            };
            let go = Export {
                name,
                key,
                common,
                opts,
                kind: info.kind,
            };
            by_dtype(&info.tag, go)
        }
        Command::Import {
            key,
            name,
            common,
            kind,
            capacity,
            slots,
            max_batch,
            dtype,
            until_end,
        } => {
            let (kind, tag) = match shmbatch::inspect(name) {
                Ok(info) => (info.kind, info.tag),
                Err(shmbatch::Error::NotFound { .. }) => (parse_kind(kind)?, dtype.clone()),
                Err(e) => return Err(e.into()),
            };
            let opts = ImportOptions {
                lossy: common.lossy,
                until_end: *until_end,
                ..ImportOptions::default()
            };
            let go = Import {
                name,
                key,
                common,
                opts,
                kind,
                sizes: (*capacity, *slots, *max_batch),
            };
            by_dtype(&tag, go)
        }
    }
}

fn parse_kind(kind: &str) -> Result<Kind> {
    match kind {
        "spsc" => Ok(Kind::Spsc),
        "mpmc" => Ok(Kind::Mpmc),
        "broadcast" => Ok(Kind::Broadcast),
        _ => Err(format!("--kind {kind:?}: expected spsc, mpmc or broadcast").into()),
    }
}

/// Something to run with the element type a tag names.
trait ForType {
    fn go<T: Pod>(self) -> Result;
}

/// Run `f` with the Rust type of the numpy dtype string `tag`.
fn by_dtype(tag: &str, f: impl ForType) -> Result {
    let le = cfg!(target_endian = "little");
    let t = tag
        .strip_prefix(if le { '<' } else { '>' })
        .or_else(|| tag.strip_prefix('|'));
    match t {
        Some("f8") => f.go::<f64>(),
        Some("f4") => f.go::<f32>(),
        Some("i8") => f.go::<i64>(),
        Some("u8") => f.go::<u64>(),
        Some("i4") => f.go::<i32>(),
        Some("u4") => f.go::<u32>(),
        Some("i2") => f.go::<i16>(),
        Some("u2") => f.go::<u16>(),
        Some("i1") => f.go::<i8>(),
        Some("u1") => f.go::<u8>(),
        _ => Err(format!(
            "element type {tag:?}: the command bridges numpy's built-in numeric types \
             in this host's byte order; embed shmbatch-zenoh for other types"
        )
        .into()),
    }
}

struct Export<'a> {
    name: &'a str,
    key: &'a str,
    common: &'a Common,
    opts: ExportOptions,
    kind: Kind,
}

impl ForType for Export<'_> {
    fn go<T: Pod>(self) -> Result {
        let session = self.common.endpoints().open()?;
        match self.kind {
            Kind::Spsc => self.run(&session, spsc::Receiver::<T>::open(self.name)?),
            Kind::Mpmc => self.run(&session, mpmc::Receiver::<T>::open(self.name)?),
            Kind::Broadcast => self.run(&session, broadcast::Subscriber::<T>::open(self.name)?),
            _ => Err(format!("{}: a {} segment is not a queue", self.name, self.kind).into()),
        }
    }
}

impl Export<'_> {
    fn run<S: Source>(&self, session: &shmbatch_zenoh::zenoh::Session, source: S) -> Result {
        let mut ex = Exporter::new(session, self.key, source, &self.opts)?;
        let what = format!("export {} -> {}", self.name, self.key);
        let s = with_progress(&what, self.common, ex.stats(), ex.stopper(), || ex.run())?;
        report(&what, self.common, &s, ex.stream_type().size);
        Ok(())
    }
}

struct Import<'a> {
    name: &'a str,
    key: &'a str,
    common: &'a Common,
    opts: ImportOptions,
    kind: Kind,
    sizes: (usize, usize, usize),
}

impl ForType for Import<'_> {
    fn go<T: Pod>(self) -> Result {
        let session = self.common.endpoints().open()?;
        let (capacity, slots, max_batch) = self.sizes;
        let exists = shmbatch::inspect(self.name).is_ok();
        match self.kind {
            Kind::Spsc => {
                let opts = shmbatch::Options::new();
                let tx = spsc::Sender::<T>::open_or_create(self.name, capacity, &opts)?;
                // The queue outlives a bridge: a restarted importer finds it.
                tx.persist();
                self.run(&session, tx)
            }
            Kind::Mpmc => {
                let tx = if exists {
                    mpmc::Sender::<T>::open(self.name)?
                } else {
                    mpmc::Sender::<T>::create(self.name, slots, max_batch)?
                };
                tx.persist();
                self.run(&session, tx)
            }
            Kind::Broadcast => {
                // A publisher cannot reattach: the log lives as long as this bridge.
                self.run(
                    &session,
                    broadcast::Publisher::<T>::create(self.name, capacity)?,
                )
            }
            _ => Err(format!("{}: a {} segment is not a queue", self.name, self.kind).into()),
        }
    }
}

impl Import<'_> {
    fn run<K: Sink>(&self, session: &shmbatch_zenoh::zenoh::Session, sink: K) -> Result {
        let mut im = Importer::new(session, self.key, sink, &self.opts)?;
        if let Some((_, next)) = im.expecting() {
            if !self.common.quiet {
                eprintln!("resuming {}: expecting batch {next}", self.name);
            }
        }
        let what = format!("import {} -> {}", self.key, self.name);
        let s = with_progress(&what, self.common, im.stats(), im.stopper(), || im.run())?;
        report(&what, self.common, &s, im.stream_type().size);
        Ok(())
    }
}

/// Run `body` with a progress line on stderr, once a second, and SIGINT or
/// SIGTERM stopping it cleanly.
fn with_progress(
    what: &str,
    common: &Common,
    stats: Arc<Stats>,
    stop: Stop,
    body: impl FnOnce() -> Result<Snapshot, shmbatch_zenoh::Error>,
) -> Result<Snapshot> {
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, signalled.clone())?;
    }
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (done, quiet, what) = (done.clone(), common.quiet, what.to_owned());
        let tty = std::io::stderr().is_terminal();
        std::thread::spawn(move || {
            let mut last = (Instant::now(), stats.snapshot());
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if signalled.load(Ordering::Relaxed) {
                    stop.stop();
                }
                if quiet || last.0.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let now = (Instant::now(), stats.snapshot());
                let secs = now.0.duration_since(last.0).as_secs_f64();
                let line = progress(&what, &now.1, &last.1, secs);
                if tty {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
                last = now;
            }
            if tty && !quiet {
                eprintln!();
            }
        })
    };
    let out = body();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    Ok(out?)
}

/// One progress line.
fn progress(what: &str, now: &Snapshot, before: &Snapshot, secs: f64) -> String {
    let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / secs.max(1e-9);
    format!(
        "{what}: {} batches, {:.1} k batches/s, {:.1} MB/s, lag {:?} (max {:?}), gaps {} lost {} dups {}{}",
        now.batches,
        rate(now.batches, before.batches) / 1e3,
        rate(now.bytes, before.bytes) / 1e6,
        now.lag,
        now.lag_max,
        now.gaps,
        now.lost,
        now.duplicates,
        if now.ended { ", ended" } else { "" },
    )
}

/// The final counters, as text on stderr or JSON on stdout.
fn report(what: &str, common: &Common, s: &Snapshot, elem_size: u32) {
    if common.json {
        let v = serde_json::json!({
            "bridge": what,
            "batches": s.batches,
            "elements": s.elements,
            "bytes": s.bytes,
            "elem_size": elem_size,
            "gaps": s.gaps,
            "lost": s.lost,
            "duplicates": s.duplicates,
            "uncertain": s.uncertain,
            "streams": s.streams,
            "dropped": s.dropped,
            "missed_at_source": s.missed_at_source,
            "waits_for_peer": s.waits_for_peer,
            "lag_ns": s.lag.as_nanos() as u64,
            "lag_max_ns": s.lag_max.as_nanos() as u64,
            "next_seq": s.next_seq,
            "ended": s.ended,
        });
        println!("{v}");
    } else if !common.quiet {
        eprintln!(
            "{what}: {} batches ({} elements), gaps {} lost {} duplicates {} uncertain {} dropped {}",
            s.batches, s.elements, s.gaps, s.lost, s.duplicates, s.uncertain, s.dropped
        );
    }
}
