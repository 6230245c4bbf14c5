//! Carry shmbatch queues between hosts over [zenoh](https://zenoh.io).
//!
//! An [`Exporter`] receives every batch of a local queue (an SPSC or MPMC
//! receiver, or a broadcast subscriber) and publishes it on a zenoh key; an
//! [`Importer`] on another host subscribes to the key and commits every batch to
//! a local queue (an SPSC or MPMC sender, or a broadcast publisher). The
//! producers and consumers on either side keep using their shmbatch queues and
//! do not know the network is there. The network protocol is zenoh's: peer to
//! peer over TCP, no router process. The `shmbatch bridge export` and
//! `shmbatch bridge import` commands (CLI feature `bridge`) run one of each.
//!
//! # Example
//! ```no_run
//! use shmbatch_zenoh::{Endpoints, ExportOptions, Exporter, ImportOptions, Importer};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Host A: the queue "ticks" is filled by a local producer.
//! let rx = shmbatch::spsc::Receiver::<f64>::open("ticks")?;
//! let session = Endpoints { listen: vec!["tcp/0.0.0.0:7447".into()], ..Default::default() }
//!     .open()?;
//! let mut exporter = Exporter::new(&session, "md/ticks", rx, &ExportOptions::default())?;
//! std::thread::spawn(move || exporter.run());
//!
//! // Host B: the queue "ticks" is read by a local consumer.
//! let tx = shmbatch::spsc::Sender::<f64>::open("ticks")?;
//! let session = Endpoints { connect: vec!["tcp/hostA:7447".into()], ..Default::default() }
//!     .open()?;
//! let mut importer = Importer::new(&session, "md/ticks", tx, &ImportOptions::default())?;
//! let stats = importer.stats(); // read by a progress thread
//! importer.run()?;
//! println!("lost {} batches", stats.snapshot().lost);
//! # Ok(()) }
//! ```
//!
//! # What the bridge preserves
//! - **Batches whole, in order, bit for bit.** One batch is one zenoh sample; the
//!   elements travel as their bytes, so NaN payloads and `-0.0` arrive as sent.
//!   zenoh delivers the samples of one publisher in order over its TCP link.
//! - **Numbered.** Each sample carries its stream id and sequence number. The
//!   importer never reorders: a number below the one it expects is a duplicate
//!   (dropped, counted in [`Snapshot::duplicates`]); a number above is a gap
//!   (delivered, counted in [`Snapshot::gaps`] and, batch by batch,
//!   [`Snapshot::lost`]).
//! - **Typed.** Each sample carries the element's tag (the numpy dtype string for
//!   built-ins), size and alignment, as the source queue's segment records them.
//!   An importer whose queue holds another type refuses the stream with
//!   [`Error::TypeMismatch`] and delivers none of it.
//! - **Lossless by default.** The exporter publishes with zenoh's reliable
//!   transport and `Block` congestion control, the importer waits for room in its
//!   queue, and the importer stops reading from zenoh while it waits: a slow
//!   consumer on host B holds back, in turn, the importer, the TCP connection, the
//!   exporter and the producer on host A. While no importer is subscribed, the
//!   exporter takes nothing from its queue. [`ExportOptions::lossy`] and
//!   [`ImportOptions::lossy`] trade this for never waiting (for broadcast).
//!
//! # Restarts
//! Either side may be restarted (or killed) at any moment, and the stream
//! resumes when it is back. What a restart can cost, and where it is counted:
//!
//! | event | lost | repeated |
//! |---|---|---|
//! | exporter killed, SPSC source | what zenoh had taken but not yet sent: counted in `lost` | the batch being published: the next exporter sends it again under the same number, and the importer drops it (`duplicates`) |
//! | exporter killed, MPMC or broadcast source | as above | not detectable: the next exporter starts a new stream (`streams`) |
//! | importer killed | what was in flight (zenoh's buffers, the TCP connection) and what the exporter published before it noticed: counted in `lost` by the next importer | nothing |
//! | importer killed mid-commit | — | — : resolved exactly from the queue's count (SPSC, broadcast); MPMC: counted in `uncertain` |
//!
//! An SPSC source numbers its batches itself ([`shmbatch::spsc::Receiver::received`]),
//! so its stream id and numbering survive an exporter restart. The importer
//! records where it is in a small state segment next to its queue
//! (`NAME.bridge-import`, see [`ImportOptions::state`]) after every batch, with
//! its counters, so a restarted importer knows the next number it expects and
//! its [`Stats`] report totals since the state was created. Remove the state
//! (`shmbatch rm NAME.bridge-import`) to start counting afresh.
//!
//! # Wire format
//! See the `wire` module's source: a 40-byte little-endian header (magic,
//! version, flags, tag length, element size and alignment, stream, sequence,
//! send time), the tag, then the batch. Every field of a received sample is
//! checked before use; a malformed sample is [`Error::Wire`].

#![deny(unsafe_code, missing_docs, missing_debug_implementations)]

mod endpoint;
mod export;
mod import;
mod replay;
mod resume;
mod session;
mod stats;
mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use endpoint::{Each, Offered, Polled, Sink, Source};
pub use export::{ExportOptions, Exporter};
pub use import::{ImportOptions, Importer, Step};
pub use session::Endpoints;
pub use stats::{Snapshot, Stats};
pub use wire::{StreamType, WireError};
/// The zenoh this crate is built with, for programs that open their own session.
pub use zenoh;

/// Errors of a bridge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// zenoh refused: a bad key expression, a closed session, a failed put.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// The zenoh configuration could not be built.
    #[error("configuration: {0}")]
    Config(String),
    /// The local queue failed: its peer is gone, or it is corrupted.
    #[error("local queue: {0}")]
    Queue(String),
    /// A segment could not be inspected.
    #[error(transparent)]
    Shm(#[from] shmbatch::Error),
    /// The importer's state segment cannot be used.
    #[error("importer state {0}")]
    State(String),
    /// The stream's element type is not the local queue's.
    #[error("stream {key:?} carries elements of type {found}, the local queue holds {expected}: refused")]
    TypeMismatch {
        /// The zenoh key.
        key: String,
        /// The type the samples carry.
        found: StreamType,
        /// The local queue's type.
        expected: StreamType,
    },
    /// A sample on the key is not a well-formed shmbatch-zenoh sample.
    #[error("sample on {key:?}: {error}")]
    Wire {
        /// The zenoh key.
        key: String,
        /// What is wrong with it.
        error: WireError,
    },
    /// A batch longer than the local queue takes.
    #[error(
        "batch of {len} elements exceeds the local queue's maximum of {max}; make the queue larger"
    )]
    TooLarge {
        /// Elements in the batch.
        len: usize,
        /// The local queue's maximum batch length.
        max: usize,
    },
    /// Stopped by [`Stop::stop`] while waiting.
    #[error("stopped")]
    Stopped,
}

/// Stops a running [`Exporter`] or [`Importer`] from another thread: `run`
/// returns within one poll interval.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Ask the bridge to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The type of a queue's elements as the segment `name` records it (its tag may
/// be one set by [`shmbatch::Options::tag`]), or as `T` would record it for a
/// queue without a name.
fn stream_type_of<T: bytemuck::Pod>(segment: Option<&str>) -> Result<StreamType, Error> {
    match segment {
        Some(name) => {
            let info = shmbatch::inspect(name)?;
            Ok(StreamType {
                tag: info.tag,
                size: info.elem_size as u32,
                align: info.elem_align as u32,
            })
        }
        None => Ok(StreamType::of::<T>()),
    }
}
