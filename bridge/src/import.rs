//! The importer: subscribes to a zenoh key and commits every batch to a local
//! queue, checking type and sequence, and recording where it is so that a
//! restart resumes exactly.

use std::sync::Arc;
use std::time::Duration;

use zenoh::handlers::{FifoChannel, FifoChannelHandler};
use zenoh::sample::Sample as ZSample;
use zenoh::Wait;

use crate::endpoint::{Offered, Sink};
use crate::resume::{self, Counts, Slot, State};
use crate::stats::{Snapshot, Stats};
use crate::wire::{self, StreamType};
use crate::{stream_type_of, Error, Stop};

/// How an [`Importer`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Lossy: when the local queue is full, drop the batch (counted in
    /// [`Snapshot::dropped`]) instead of waiting. Default: lossless (wait, which
    /// holds zenoh and, through it, the exporter back).
    pub lossy: bool,
    /// Return from [`Importer::run`] when the exporter says its source ended.
    /// Default: keep running (a new exporter may come).
    pub until_end: bool,
    /// The name of the state segment that records where the importer is, for a
    /// restart. Default: the local queue's name with `.bridge-import` appended. A
    /// queue without a name (heap-backed) keeps no state unless one is named here.
    pub state: Option<String>,
    /// Keep no state: a restarted importer starts afresh (and counts nothing
    /// across the restart). Default off.
    pub stateless: bool,
    /// Samples zenoh may hold for the importer before it stops reading the
    /// connection (back-pressure). Default 256.
    pub depth: usize,
    /// How long one wait for a sample lasts before the stop flag is checked.
    /// Default 50 ms.
    pub poll: Duration,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            lossy: false,
            until_end: false,
            state: None,
            stateless: false,
            depth: 256,
            poll: Duration::from_millis(50),
        }
    }
}

/// How long an importer waits for an answer to a replay request, and then for
/// the replay, before it counts the gap as lost.
const REPLAY_WAIT: Duration = Duration::from_secs(2);

/// What one [`Importer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A batch was committed to the local queue.
    Delivered,
    /// A sample was handled without a commit: a duplicate dropped, a lossy drop,
    /// or an end-of-stream notice while running on.
    Skipped,
    /// No sample arrived within the poll interval.
    Idle,
    /// The exporter's source ended.
    Ended,
}

/// Carries the batches published on a zenoh key into a local queue (a [`Sink`]).
pub struct Importer<K: Sink> {
    sink: K,
    subscriber: zenoh::pubsub::Subscriber<FifoChannelHandler<ZSample>>,
    /// For asking the exporter to repair a gap.
    session: zenoh::Session,
    /// Since when a replay the exporter promised is awaited.
    awaiting_replay: Option<std::time::Instant>,
    key: String,
    ty: StreamType,
    state: Option<State>,
    /// The stream last delivered from and the next sequence number expected in it.
    expect: Option<(u64, u64)>,
    /// Totals since the state was created (this importer's, without a state).
    counts: Counts,
    opts: ImportOptions,
    stats: Arc<Stats>,
    stop: Stop,
}

impl<K: Sink> std::fmt::Debug for Importer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("key", &self.key)
            .field("type", &self.ty)
            .field("expect", &self.expect)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl<K: Sink> Importer<K> {
    /// Subscribe to `key` in `session` and deliver into `sink`. If the state
    /// segment records an earlier importer's position, resume from it: the first
    /// batch received is checked against it, so what the restart lost is counted.
    ///
    /// # Errors
    /// [`Error::Zenoh`] if the subscriber cannot be declared; [`Error::State`] if
    /// the state segment cannot be opened or is not an importer state.
    pub fn new(
        session: &zenoh::Session,
        key: &str,
        sink: K,
        opts: &ImportOptions,
    ) -> Result<Self, Error> {
        let ty = stream_type_of::<K::Elem>(sink.segment())?;
        let stats = Arc::new(Stats::default());
        let state_name = match (&opts.state, sink.segment()) {
            _ if opts.stateless => None,
            (Some(name), _) => Some(name.clone()),
            (None, Some(seg)) => Some(format!("{}.bridge-import", seg.trim_start_matches('/'))),
            (None, None) => None,
        };
        let (mut state, mut expect, mut counts) = (None, None, Counts::default());
        if let Some(name) = state_name {
            let (st, slot) = State::open(&name)?;
            if let Some(slot) = slot {
                let r = resume::resume(slot, sink.committed());
                expect = Some((r.stream, r.next));
                counts = r.counts;
            }
            state = Some(st);
        }
        stats.mirror(&counts, ty.size as u64, expect.map(|e| e.1));
        let subscriber = session
            .declare_subscriber(key.to_owned())
            .with(FifoChannel::new(opts.depth.max(1)))
            .wait()
            .map_err(|e| Error::Zenoh(format!("declaring a subscriber on {key:?}: {e}")))?;
        Ok(Importer {
            sink,
            subscriber,
            session: session.clone(),
            awaiting_replay: None,
            key: key.to_owned(),
            ty,
            state,
            expect,
            counts,
            opts: opts.clone(),
            stats,
            stop: Stop::default(),
        })
    }

    /// The live counters, shareable with a progress thread.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    pub fn stopper(&self) -> Stop {
        self.stop.clone()
    }

    /// The element type the local queue holds, which every sample must carry.
    pub fn stream_type(&self) -> &StreamType {
        &self.ty
    }

    /// The local queue.
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// The stream and the sequence number expected next, if known (from a
    /// sample, or from the state an earlier importer left).
    pub fn expecting(&self) -> Option<(u64, u64)> {
        self.expect
    }

    /// Deliver batches until [`Stop::stop`] is called or, with
    /// [`ImportOptions::until_end`], the exporter's source ends. Returns the
    /// final counters.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] for a sample of another element type (nothing of it
    /// is delivered); [`Error::Wire`] for a sample that is not a well-formed
    /// shmbatch-zenoh sample; [`Error::TooLarge`] for a batch longer than the
    /// local queue takes; [`Error::Queue`] if the local queue's receivers are gone
    /// or it is corrupted; [`Error::Zenoh`] if the session closed.
    pub fn run(&mut self) -> Result<Snapshot, Error> {
        loop {
            match self.step() {
                Ok(Step::Ended) if self.opts.until_end => return Ok(self.stats.snapshot()),
                Err(Error::Stopped) => return Ok(self.stats.snapshot()),
                Err(e) => return Err(e),
                Ok(_) if self.stop.is_stopped() => return Ok(self.stats.snapshot()),
                Ok(_) => {}
            }
        }
    }

    /// One step of [`run`](Self::run): wait up to the poll interval for a sample
    /// and handle it.
    ///
    /// # Errors
    /// As [`run`](Self::run), and [`Error::Stopped`] if stopped while waiting for
    /// room in the local queue (the batch is then not delivered, and the state
    /// says so).
    pub fn step(&mut self) -> Result<Step, Error> {
        let sample = match self.subscriber.recv_timeout(self.opts.poll) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(Step::Idle),
            Err(e) => return Err(Error::Zenoh(format!("receiving on {:?}: {e}", self.key))),
        };
        let bytes = sample.payload().to_bytes();
        let s = wire::decode(&bytes).map_err(|error| Error::Wire {
            key: self.key.clone(),
            error,
        })?;
        if !s.is_type(&self.ty) {
            return Err(Error::TypeMismatch {
                key: self.key.clone(),
                found: s.stream_type(),
                expected: self.ty.clone(),
            });
        }
        let h = s.header;
        if h.flags & wire::END != 0 {
            // The end carries the number the next batch would have had: a gap
            // before it is batches lost at the end of the stream.
            if let Some((stream, next)) = self.expect {
                if stream == h.stream && h.seq > next {
                    let waiting = self
                        .awaiting_replay
                        .is_some_and(|since| since.elapsed() < REPLAY_WAIT);
                    if waiting || self.ask_replay(stream, next) {
                        // The replay comes first, then the end again.
                        if !waiting {
                            self.awaiting_replay = Some(std::time::Instant::now());
                        }
                        return Ok(Step::Skipped);
                    }
                    self.awaiting_replay = None;
                    let mut counts = self.counts;
                    counts.gaps += 1;
                    counts.lost = counts.lost.saturating_add(h.seq - next);
                    self.settle(
                        counts,
                        Slot {
                            stream,
                            next: h.seq,
                            counts,
                            ..Slot::default()
                        },
                    );
                }
            }
            self.stats.set_ended(true);
            return Ok(Step::Ended);
        }
        self.stats.set_ended(false);
        // Where this batch stands in its stream.
        let mut counts = self.counts;
        match self.expect {
            Some((stream, next)) if stream == h.stream => {
                if h.seq < next {
                    // Sent again by a restarted exporter: already delivered.
                    counts.duplicates += 1;
                    self.settle(
                        counts,
                        Slot {
                            stream,
                            next,
                            counts,
                            ..Slot::default()
                        },
                    );
                    return Ok(Step::Skipped);
                }
                if h.seq > next {
                    if let Some(since) = self.awaiting_replay {
                        if since.elapsed() < REPLAY_WAIT {
                            // Batches after the gap, sent before the replay:
                            // the replay brings them again.
                            return Ok(Step::Skipped);
                        }
                        self.awaiting_replay = None;
                    } else if self.ask_replay(stream, next) {
                        self.awaiting_replay = Some(std::time::Instant::now());
                        return Ok(Step::Skipped);
                    }
                    counts.gaps += 1;
                    counts.lost = counts.lost.saturating_add(h.seq - next);
                } else if self.awaiting_replay.take().is_some() {
                    counts.repaired += 1;
                }
            }
            _ => counts.streams += 1,
        }
        let elems = s.payload.len() / size_of::<K::Elem>();
        if elems > self.sink.max_batch() {
            return Err(Error::TooLarge {
                len: elems,
                max: self.sink.max_batch(),
            });
        }
        // Record the commit in flight (module `resume`), with this batch's gap
        // already counted.
        if let Some(st) = &mut self.state {
            st.write(&Slot {
                stream: h.stream,
                next: h.seq,
                pending: h.seq + 1,
                committed_before: self.sink.committed().unwrap_or(0),
                pending_elements: elems as u64,
                counts,
            });
        }
        let stop = self.stop.clone();
        let offered = self
            .sink
            .offer(s.payload, !self.opts.lossy, &|| stop.is_stopped());
        let after = |counts: Counts, next: u64| Slot {
            stream: h.stream,
            next,
            counts,
            ..Slot::default()
        };
        match offered {
            Ok(Offered::Sent) => {
                counts.delivered += 1;
                counts.elements += elems as u64;
                self.settle(counts, after(counts, h.seq + 1));
                self.stats.lag(h.sent_ns);
                Ok(Step::Delivered)
            }
            Ok(Offered::Full) => {
                counts.dropped += 1;
                self.settle(counts, after(counts, h.seq + 1));
                Ok(Step::Skipped)
            }
            Err(e) => {
                // Not delivered: the batch is still expected.
                self.settle(counts, after(counts, h.seq));
                Err(e)
            }
        }
    }

    /// Ask the exporter to publish again from batch `next` of `stream`; whether
    /// it will.
    fn ask_replay(&self, stream: u64, next: u64) -> bool {
        let replies = match self
            .session
            .get(crate::replay::resume_key(&self.key))
            .payload(crate::replay::request(stream, next))
            .timeout(REPLAY_WAIT)
            .wait()
        {
            Ok(r) => r,
            Err(_) => return false,
        };
        while let Ok(reply) = replies.recv() {
            if let Ok(sample) = reply.result() {
                let status = crate::replay::parse_answer(&sample.payload().to_bytes(), stream);
                if status == Some(crate::replay::WILL) {
                    return true;
                }
            }
        }
        false
    }

    /// Make `slot` (no commit pending) where the importer stands: in the state,
    /// in memory and in the stats.
    fn settle(&mut self, counts: Counts, slot: Slot) {
        if let Some(st) = &mut self.state {
            st.write(&slot);
        }
        self.counts = counts;
        self.expect = Some((slot.stream, slot.next));
        self.stats
            .mirror(&counts, u64::from(self.ty.size), Some(slot.next));
    }
}
