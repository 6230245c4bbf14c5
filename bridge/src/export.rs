//! The exporter: receives every batch of a local queue and publishes it on a zenoh
//! key, numbered, with the element type.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use zenoh::qos::CongestionControl;
use zenoh::Wait;

use crate::endpoint::{Polled, Source};
use crate::replay::{self, Window};
use crate::stats::{now_ns, Snapshot, Stats};
use crate::wire::{self, Header, StreamType};
use crate::{stream_type_of, Error, Stop};

/// How an [`Exporter`] publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// Lossy: publish with zenoh's `Drop` congestion control (a slow importer
    /// loses batches, counted as gaps at the importer) and never wait for an
    /// importer. Default: lossless (`Block`: a slow importer holds the exporter
    /// back, and with no importer matching the key the exporter leaves the batches
    /// in its local queue).
    pub lossy: bool,
    /// Send each sample at once instead of letting zenoh batch small samples:
    /// lower latency, lower throughput for small batches. Default off.
    pub express: bool,
    /// How long one wait on the local queue lasts before the stop flag is checked.
    /// Default 50 ms.
    pub poll: Duration,
    /// After the source ends, how long [`Exporter::run`] stays to tell the end
    /// to importers that subscribe again (an importer restarted just then would
    /// otherwise never learn it). Default 2 s.
    pub linger: Duration,
    /// Bytes of the most recent samples kept to repair an importer's gap (see
    /// the crate docs, "Repairing gaps"); 0 keeps none. Default 64 MiB. Not used
    /// when lossy.
    pub replay_bytes: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            lossy: false,
            express: false,
            poll: Duration::from_millis(50),
            linger: Duration::from_secs(2),
            replay_bytes: 64 << 20,
        }
    }
}

/// Carries the batches of a local queue (a [`Source`]) to a zenoh key.
///
/// Each batch becomes one zenoh sample: the batch's bytes after a 40-byte header
/// and the type tag (see the crate docs, "Wire format"). The batch is released
/// from the local queue only once zenoh has taken the sample, so an exporter
/// killed mid-publish leaves it for the next exporter, which sends it again under
/// the same sequence number (SPSC sources), and the importer drops the repeat.
pub struct Exporter<S: Source> {
    source: S,
    publisher: zenoh::pubsub::Publisher<'static>,
    /// Kept alive: it sets `matched` as importers come and go.
    _matching: zenoh::matching::MatchingListener<()>,
    matched: Arc<AtomicBool>,
    /// How many times an importer started matching the key.
    arrivals: Arc<AtomicU64>,
    /// The most recent samples, for importers that ask to repair a gap.
    window: Arc<Mutex<Window>>,
    /// Kept alive: answers those requests.
    _resume: zenoh::query::Queryable<()>,
    key: String,
    ty: StreamType,
    stream: u64,
    /// The next sequence number, for sources that do not number their batches.
    next_local: u64,
    opts: ExportOptions,
    stats: Arc<Stats>,
    stop: Stop,
}

impl<S: Source> std::fmt::Debug for Exporter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("key", &self.key)
            .field("type", &self.ty)
            .field("stream", &format_args!("{:#018x}", self.stream))
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl<S: Source> Exporter<S> {
    /// Declare a publisher on `key` in `session` for the batches of `source`.
    ///
    /// # Errors
    /// [`Error::Zenoh`] if the key is not a valid key expression or the publisher
    /// cannot be declared; [`Error::Shm`] if the source's segment cannot be
    /// inspected for its type.
    pub fn new(
        session: &zenoh::Session,
        key: &str,
        source: S,
        opts: &ExportOptions,
    ) -> Result<Self, Error> {
        let ty = stream_type_of::<S::Elem>(source.segment())?;
        let stream = stream_id(source.segment(), source.next_number().is_some());
        let publisher = session
            .declare_publisher(key.to_owned())
            .congestion_control(if opts.lossy {
                CongestionControl::Drop
            } else {
                CongestionControl::Block
            })
            .express(opts.express)
            .wait()
            .map_err(|e| Error::Zenoh(format!("declaring a publisher on {key:?}: {e}")))?;
        let matched = Arc::new(AtomicBool::new(false));
        let arrivals = Arc::new(AtomicU64::new(0));
        let (flag, count) = (matched.clone(), arrivals.clone());
        let matching = publisher
            .matching_listener()
            .callback(move |status| {
                flag.store(status.matching(), Ordering::Release);
                if status.matching() {
                    count.fetch_add(1, Ordering::AcqRel);
                }
            })
            .wait()
            .map_err(|e| Error::Zenoh(format!("watching for importers of {key:?}: {e}")))?;
        // The listener reports changes only: start from the status now.
        if let Ok(status) = publisher.matching_status().wait() {
            matched.fetch_or(status.matching(), Ordering::AcqRel);
        }
        let cap = if opts.lossy { 0 } else { opts.replay_bytes };
        let window = Arc::new(Mutex::new(Window::new(cap)));
        let w = window.clone();
        let resume = session
            .declare_queryable(replay::resume_key(key))
            .callback(move |query| {
                let Some((asked_stream, next)) = query
                    .payload()
                    .and_then(|p| replay::parse_request(&p.to_bytes()))
                else {
                    return;
                };
                let status = if asked_stream == stream {
                    lock(&w).ask(next)
                } else {
                    replay::OTHER_STREAM
                };
                // An importer that does not get the answer counts the gap.
                let _ = query
                    .reply(query.key_expr().clone(), replay::answer(status, stream))
                    .wait();
            })
            .wait()
            .map_err(|e| Error::Zenoh(format!("declaring the resume queryable of {key:?}: {e}")))?;
        Ok(Exporter {
            source,
            window,
            _resume: resume,
            publisher,
            _matching: matching,
            matched,
            arrivals,
            key: key.to_owned(),
            ty,
            stream,
            next_local: 0,
            opts: opts.clone(),
            stats: Arc::new(Stats::default()),
            stop: Stop::default(),
        })
    }

    /// The live counters, shareable with a progress thread.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// A handle that stops [`run`](Self::run) from another thread (or a signal
    /// handler's flag).
    pub fn stopper(&self) -> Stop {
        self.stop.clone()
    }

    /// The element type the stream announces.
    pub fn stream_type(&self) -> &StreamType {
        &self.ty
    }

    /// The stream's id: derived from the source segment's identity for an SPSC
    /// source (so a restarted exporter continues the same stream), random per
    /// exporter otherwise.
    pub fn stream_id(&self) -> u64 {
        self.stream
    }

    /// Whether an importer matches the key now.
    pub fn has_importer(&self) -> bool {
        self.matched.load(Ordering::Acquire)
    }

    /// The local queue.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Carry batches until the source ends (its senders gone and every batch
    /// carried: the importer is told with an end-of-stream sample) or
    /// [`Stop::stop`] is called. Returns the final counters.
    ///
    /// # Errors
    /// [`Error::Zenoh`] if zenoh refuses a sample; [`Error::Queue`] if the local
    /// queue is corrupted.
    pub fn run(&mut self) -> Result<Snapshot, Error> {
        loop {
            match self.step()? {
                Polled::Ended => {
                    self.linger()?;
                    return Ok(self.stats.snapshot());
                }
                _ if self.stop.is_stopped() => return Ok(self.stats.snapshot()),
                _ => {}
            }
        }
    }

    /// One step of [`run`](Self::run): in lossless mode, wait (up to the poll
    /// interval) for an importer if none matches; then wait up to the poll interval
    /// for a batch and publish it. For a program that drives the bridge from its
    /// own loop.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn step(&mut self) -> Result<Polled, Error> {
        if !self.opts.lossy && !self.has_importer() {
            self.stats.waited_for_peer();
            let until = std::time::Instant::now() + self.opts.poll;
            while !self.has_importer() {
                if self.stop.is_stopped() || std::time::Instant::now() >= until {
                    return Ok(Polled::Idle);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.replay()?;
        let Exporter {
            source,
            publisher,
            window,
            ty,
            stream,
            next_local,
            stats,
            ..
        } = self;
        let numbered = source.next_number().is_some();
        let polled = source.poll(self.opts.poll, &mut |seq, batch| {
            let seq = if numbered {
                seq.unwrap_or(*next_local)
            } else {
                *next_local
            };
            let h = Header {
                flags: 0,
                stream: *stream,
                seq,
                sent_ns: now_ns(),
            };
            let bytes: &[u8] = bytemuck::cast_slice(batch);
            let mut sample = Vec::with_capacity(wire::FIXED + ty.tag.len() + bytes.len());
            wire::encode_header(&mut sample, ty, &h);
            sample.extend_from_slice(bytes);
            let sample = zenoh::bytes::ZBytes::from(sample);
            lock(window).push(seq, sample.clone());
            publisher
                .put(sample)
                .wait()
                .map_err(|e| Error::Zenoh(format!("publishing batch {seq}: {e}")))?;
            // A hostile source count near u64::MAX: the importer refuses
            // numbers from 2^63 on, and nothing here may overflow.
            *next_local = seq.saturating_add(1);
            stats.carried(batch.len(), bytes.len(), *next_local);
            Ok(())
        })?;
        match polled {
            Polled::Missed(n) => self.stats.missed_at_source(n),
            Polled::Ended => self.end()?,
            Polled::Batch | Polled::Idle => {}
        }
        Ok(polled)
    }

    /// After the end: tell it again to every importer that subscribes within
    /// [`ExportOptions::linger`].
    fn linger(&mut self) -> Result<(), Error> {
        let mut until = std::time::Instant::now() + self.opts.linger;
        let mut seen = self.arrivals.load(Ordering::Acquire);
        while std::time::Instant::now() < until && !self.stop.is_stopped() {
            std::thread::sleep(Duration::from_millis(5));
            let now = self.arrivals.load(Ordering::Acquire);
            // An importer asked to repair a gap before the end: replay, then
            // tell the end again.
            let replayed = self.replay()?;
            if now != seen || replayed {
                seen = now;
                self.end()?;
                until = std::time::Instant::now() + self.opts.linger;
            }
        }
        Ok(())
    }

    /// Publish again what an importer asked for, if it did; whether it did.
    fn replay(&mut self) -> Result<bool, Error> {
        let again = lock(&self.window).take_replay();
        for sample in &again {
            self.publisher
                .put(sample.clone())
                .wait()
                .map_err(|e| Error::Zenoh(format!("publishing a replay: {e}")))?;
            self.stats.replayed();
        }
        Ok(!again.is_empty())
    }

    /// Tell importers the stream ended (in lossless mode, once one matches).
    fn end(&mut self) -> Result<(), Error> {
        if !self.opts.lossy {
            let until = std::time::Instant::now() + self.opts.linger;
            while !self.has_importer() && std::time::Instant::now() < until {
                if self.stop.is_stopped() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // The number the next batch would have had: the importer counts what
        // never reached it before the end.
        let h = Header {
            flags: wire::END,
            stream: self.stream,
            seq: self.source.next_number().unwrap_or(self.next_local),
            sent_ns: now_ns(),
        };
        let mut sample = Vec::new();
        wire::encode_header(&mut sample, &self.ty, &h);
        self.publisher
            .put(sample)
            .wait()
            .map_err(|e| Error::Zenoh(format!("publishing the end of the stream: {e}")))?;
        self.stats.set_ended(true);
        Ok(())
    }
}

/// The window, whoever panicked while holding it (its state is a queue of
/// samples, whole at every step).
fn lock(w: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stream id: for a source that numbers its batches, a hash of what identifies
/// its segment (name, creator pid, the tmpfs inode), so that a restarted exporter
/// of the same queue continues the same stream; otherwise unique per exporter.
fn stream_id(segment: Option<&str>, numbered: bool) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut h = Fnv::default();
    match segment {
        Some(name) if numbered => {
            let name = name.trim_start_matches('/');
            h.eat(name.as_bytes());
            if let Ok(info) = shmbatch::inspect(name) {
                h.eat(&info.creator.pid.to_le_bytes());
            }
            if let Ok(meta) = std::fs::metadata(format!("/dev/shm/{name}")) {
                h.eat(&meta.ino().to_le_bytes());
            }
        }
        _ => {
            static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            h.eat(&now_ns().to_le_bytes());
            h.eat(&std::process::id().to_le_bytes());
            h.eat(&COUNT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        }
    }
    h.0
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
