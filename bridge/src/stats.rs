//! The counters of a running bridge: plain atomics that the bridge's thread
//! updates (Relaxed: each is a report, read by a progress thread; nothing is
//! synchronised through them) and anyone holding the [`Arc`](std::sync::Arc) reads
//! as a [`Snapshot`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::resume::Counts;

/// Live counters of an [`Exporter`](crate::Exporter) or [`Importer`](crate::Importer).
#[derive(Debug, Default)]
pub struct Stats {
    batches: AtomicU64,
    elements: AtomicU64,
    bytes: AtomicU64,
    gaps: AtomicU64,
    lost: AtomicU64,
    duplicates: AtomicU64,
    uncertain: AtomicU64,
    streams: AtomicU64,
    dropped: AtomicU64,
    missed_at_source: AtomicU64,
    waits_for_peer: AtomicU64,
    replayed: AtomicU64,
    repaired: AtomicU64,
    lag_ns: AtomicU64,
    lag_max_ns: AtomicU64,
    next_seq: AtomicU64,
    ended: AtomicU64,
}

/// The counters at one moment. Both sides fill `batches`, `elements`, `bytes`,
/// `next_seq` and `ended`; an exporter also `missed_at_source`,
/// `waits_for_peer` and `replayed`; an importer the rest (`gaps`, `lost`,
/// `duplicates`, `uncertain`, `streams`, `dropped`, `repaired`, `lag`,
/// `lag_max`). A field a side does not fill stays 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Batches carried (exporter: published on the key; importer: committed to
    /// the local queue). An importer with a state counts this and every count
    /// below since the state was created, across restarts.
    pub batches: u64,
    /// Elements in those batches.
    pub elements: u64,
    /// Bytes of elements in those batches (headers not counted).
    pub bytes: u64,
    /// Importer: how many times the sequence jumped forward.
    pub gaps: u64,
    /// Importer: batches missing in those jumps, exactly (each never arrived).
    pub lost: u64,
    /// Importer: batches that arrived a second time and were dropped (a restarted
    /// exporter sending again what its predecessor had sent).
    pub duplicates: u64,
    /// Importer: batches whose commit a killed importer interrupted, into a queue
    /// that cannot tell whether it landed (MPMC only; see the crate docs).
    pub uncertain: u64,
    /// Importer: streams seen (a new stream id: a new source queue, or a restarted
    /// exporter of a source that does not number its batches).
    pub streams: u64,
    /// Importer in lossy mode: batches dropped because the local queue was full.
    pub dropped: u64,
    /// Exporter: batches its source lost before the bridge saw them (a lossy
    /// broadcast subscriber that was lapped).
    pub missed_at_source: u64,
    /// Exporter, lossless mode: steps that found no importer subscribed and
    /// waited (each up to [`ExportOptions::poll`](crate::ExportOptions::poll))
    /// for one to appear; 0 when one was always there.
    pub waits_for_peer: u64,
    /// Exporter: samples published again to repair an importer's gap.
    pub replayed: u64,
    /// Importer: gaps repaired from the exporter's replay window (not lost).
    pub repaired: u64,
    /// Importer: exporter-send to local-commit time of the last batch (wall
    /// clocks of two hosts: as good as their synchronisation).
    pub lag: Duration,
    /// Importer: the largest such lag seen.
    pub lag_max: Duration,
    /// The sequence number expected (importer) or sent (exporter) next.
    pub next_seq: u64,
    /// Whether the stream ended: the exporter's source was drained and gone.
    pub ended: bool,
}

/// Nanoseconds since the Unix epoch, the clock samples carry.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Stats {
    /// Read every counter.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            batches: self.batches.load(Relaxed),
            elements: self.elements.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
            lost: self.lost.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            uncertain: self.uncertain.load(Relaxed),
            streams: self.streams.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            missed_at_source: self.missed_at_source.load(Relaxed),
            waits_for_peer: self.waits_for_peer.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            repaired: self.repaired.load(Relaxed),
            lag: Duration::from_nanos(self.lag_ns.load(Relaxed)),
            lag_max: Duration::from_nanos(self.lag_max_ns.load(Relaxed)),
            next_seq: self.next_seq.load(Relaxed),
            ended: self.ended.load(Relaxed) != 0,
        }
    }

    pub(crate) fn carried(&self, elements: usize, bytes: usize, next_seq: u64) {
        self.batches.fetch_add(1, Relaxed);
        self.elements.fetch_add(elements as u64, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
        self.next_seq.store(next_seq, Relaxed);
    }

    pub(crate) fn lag(&self, sent_ns: u64) {
        let lag = now_ns().saturating_sub(sent_ns);
        self.lag_ns.store(lag, Relaxed);
        self.lag_max_ns.fetch_max(lag, Relaxed);
    }

    /// An importer's counts (kept in its state, so totals across restarts).
    pub(crate) fn mirror(&self, c: &Counts, elem_size: u64, next: Option<u64>) {
        self.batches.store(c.delivered, Relaxed);
        self.elements.store(c.elements, Relaxed);
        self.bytes.store(c.elements * elem_size, Relaxed);
        self.gaps.store(c.gaps, Relaxed);
        self.lost.store(c.lost, Relaxed);
        self.duplicates.store(c.duplicates, Relaxed);
        self.uncertain.store(c.uncertain, Relaxed);
        self.streams.store(c.streams, Relaxed);
        self.dropped.store(c.dropped, Relaxed);
        self.repaired.store(c.repaired, Relaxed);
        if let Some(next) = next {
            self.next_seq.store(next, Relaxed);
        }
    }

    pub(crate) fn missed_at_source(&self, n: u64) {
        self.missed_at_source.fetch_add(n, Relaxed);
    }

    pub(crate) fn replayed(&self) {
        self.replayed.fetch_add(1, Relaxed);
    }

    pub(crate) fn waited_for_peer(&self) {
        self.waits_for_peer.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_ended(&self, ended: bool) {
        self.ended.store(u64::from(ended), Relaxed);
    }
}
