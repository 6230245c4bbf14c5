//! Read-only inspection of segments: what `shmbatch ls` and `shmbatch stat` show.
//!
//! [`inspect`] opens a segment's file in `/dev/shm` read-only, maps its header and
//! control block read-only, validates the header exactly as `open` does (but
//! accepting any kind and element type) and reports what it finds. It never
//! attaches, never writes and never waits: a queue being inspected does not notice.
//!
//! The values are a snapshot of memory that other processes are changing: a fill
//! level can be stale by the time it is printed. Process liveness is a hint: where
//! a segment records a process with its start time (SPSC owners, MPMC attachments,
//! the array's lock holder) a reused pid reads as dead, where it records the pid
//! alone (the creator) a reused pid looks alive; a process in another pid
//! namespace looks dead.
//!
//! [`list`] also shows the temporary files of segments being created (see
//! [`Listed::half_made`]): a creator builds a segment under a hidden temporary name
//! and renames it when it is complete, so a temporary that stays is one whose
//! creator died (or is still at work). [`Listed::remove_if_stale`] is what
//! `shmbatch rm --stale` calls for each entry.

use std::os::fd::AsFd;

use crate::error::{Error, Result};
use crate::layout::{Identity, Kind, Role, CONTROL_OFFSET, LAYOUT_VERSION};
use crate::segment::files::{self, Access, Temporary};
use crate::segment::{pid_alive, Mapping, Name, ProcId};

pub use crate::segment::SHM_DIR;

/// How much of a segment [`inspect`] maps: the identity block and every kind's
/// control block fit in it.
const PREFIX: usize = 16 * 1024;

/// A process named in a segment, and whether it is alive now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Whether the process exists and is not a zombie (a hint, see the module docs).
    pub alive: bool,
}

impl Process {
    /// A process recorded by its pid alone (the creator, MPMC peers).
    fn new(pid: u32) -> Process {
        Process {
            pid,
            alive: pid_alive(pid),
        }
    }

    /// A process recorded with its start time (SPSC owners, the array's lock
    /// holder): a pid now used by another process reads as dead.
    fn of(id: ProcId) -> Process {
        Process {
            pid: id.pid,
            alive: id.alive(),
        }
    }
}

/// A process attached to a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its role: a queue's sender or receiver; `None` for an array's lock holder.
    pub role: Option<Role>,
    /// The process.
    pub process: Process,
}

/// What a broadcast segment's control block says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastInfo {
    /// Whether the log is lossy (else lossless).
    pub lossy: bool,
    /// Lossless: the eviction timeout, if any.
    pub evict_after: Option<std::time::Duration>,
    /// Batches published so far.
    pub published: u64,
    /// Whether the publisher has dropped.
    pub closed: bool,
    /// The subscribers attached now (and evicted ones not yet gone).
    pub subscribers: Vec<SubscriberInfo>,
}

/// One subscriber of a broadcast log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberInfo {
    /// Its entry in the subscriber table.
    pub entry: usize,
    /// Its process.
    pub process: Process,
    /// Evicted (lossless): it will receive nothing more.
    pub evicted: bool,
    /// Batches published that it has not received.
    pub behind: u64,
    /// Batches it was told it lost (lossy).
    pub missed: u64,
}

/// How full a queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Used units.
    pub used: u64,
    /// Total units.
    pub total: u64,
    /// What a unit is: `"bytes"` (SPSC ring) or `"slots"` (MPMC).
    pub unit: &'static str,
}

impl Fill {
    /// `used / total`, in 0.0..=1.0 (0.0 for an empty geometry).
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            (self.used as f64 / self.total as f64).min(1.0)
        }
    }
}

/// Everything the header of a segment says, plus a snapshot of its control block.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// Segment name, without the leading `/`.
    pub name: String,
    /// Layout version of the header (always [`LAYOUT_VERSION`] once validated).
    pub layout_version: u32,
    /// What the segment holds.
    pub kind: Kind,
    /// The element type's tag as the creator recorded it (`"<f8"`, ...; empty for
    /// an untagged type: see [`crate::layout`], "Element types").
    pub tag: String,
    /// Size of one element in bytes.
    pub elem_size: usize,
    /// Alignment of the element type.
    pub elem_align: usize,
    /// Kind-specific capacity: elements asked for at creation (spsc, whose ring is
    /// the `data_len` bytes of the data region), slots (mpmc), elements (array).
    pub capacity: u64,
    /// Largest batch in elements (queues); 0 for arrays.
    pub max_batch: u64,
    /// Kind-specific stride in bytes (mpmc slot size); 0 otherwise.
    pub stride: u64,
    /// Offset of the data region from the start of the segment: where a raw attach
    /// (`numpy.ndarray(..., offset=data_offset)`) starts.
    pub data_offset: usize,
    /// Length of the data region in bytes.
    pub data_len: usize,
    /// Arrays: the dimensions the creator recorded (`Options::shape`), empty for a
    /// flat array and for queues.
    pub shape: Vec<usize>,
    /// SPSC: the [`WakeProtocol`](crate::WakeProtocol) its creator chose, which
    /// every handle follows; `None` for MPMC queues (whose claims order their
    /// wake-ups) and arrays.
    pub wake_protocol: Option<crate::WakeProtocol>,
    /// Length of the segment as declared by its header.
    pub segment_len: usize,
    /// Length of the file in `/dev/shm`.
    pub file_len: u64,
    /// Bytes the file occupies in memory (allocated blocks).
    pub allocated: u64,
    /// The creating process.
    pub creator: Process,
    /// Processes attached now (or, for an array, holding the lock).
    pub peers: Vec<Peer>,
    /// Fill level of a queue; `None` for an array (or a kind this build cannot read).
    pub fill: Option<Fill>,
    /// Array: the sequence counter (odd while a write is being published).
    pub seq: Option<u64>,
    /// Broadcast: the policy, the publisher's count and every subscriber.
    pub broadcast: Option<BroadcastInfo>,
}

impl SegmentInfo {
    /// True when the creator and every attached peer are dead: nobody will use or
    /// remove the segment (what `shmbatch rm --stale` removes).
    pub fn is_stale(&self) -> bool {
        !self.creator.alive && self.peers.iter().all(|p| !p.process.alive)
    }
}

/// One entry of [`list`]: a file in `/dev/shm` that starts with the shmbatch magic,
/// or the temporary file of a segment being created.
#[derive(Debug)]
pub struct Listed {
    /// Segment name, without the leading `/` (for a half-made segment, the
    /// temporary file's name).
    pub name: String,
    /// The inspection result: a damaged segment is an error here, and so is a
    /// half-made one whose header is not written yet ([`Error::NotShmbatch`]).
    pub info: Result<SegmentInfo>,
    /// `Some` for the temporary file of a segment being created: it will get its
    /// real name when complete, or stay if its creator dies first.
    pub half_made: Option<HalfMade>,
}

/// What the name of a half-made segment's temporary file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalfMade {
    /// The name it is being made for (its start, if the name was long).
    pub for_name: String,
    /// The creating process (liveness judged by pid and start time).
    pub creator: Process,
}

impl Listed {
    /// True when nobody will use or remove this file: a segment that is
    /// [stale](SegmentInfo::is_stale), or a half-made one whose creator is dead.
    /// A segment that fails inspection is never stale (remove it by name).
    pub fn is_stale(&self) -> bool {
        match (&self.half_made, &self.info) {
            (Some(h), _) => !h.creator.alive,
            (None, Ok(info)) => info.is_stale(),
            (None, Err(_)) => false,
        }
    }

    /// Remove this entry if it is stale now: liveness is judged again just before
    /// the removal, since the listing may be old. What `shmbatch rm --stale` does.
    /// Returns whether it was removed (`false` too if it has gone meanwhile).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be removed; the errors of [`remove`] for a
    /// segment that changed into something else since it was listed.
    ///
    /// [`remove`]: crate::remove
    pub fn remove_if_stale(&self) -> Result<bool> {
        let name = Name::new(&self.name)?;
        let temp = Temporary::parse(&self.name);
        let stale = match &temp {
            Some(temp) => !temp.creator_alive(),
            None => match inspect_name(&name) {
                Ok(info) => info.is_stale(),
                Err(Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e),
            },
        };
        if !stale {
            return Ok(false);
        }
        // A temporary may hold anything (a header not written yet): its name is
        // what makes it ours. A segment must still be one.
        let removed = if temp.is_some() {
            files::unlink(&name)
        } else {
            crate::remove(name.as_str())
        };
        match removed {
            Ok(()) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Inspect the segment `name` without attaching to it.
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::Io`];
/// [`Error::NotShmbatch`] for a file that is not a shmbatch segment (see
/// [`crate::remove_any`]); [`Error::NotReady`] while its creator is still writing
/// the header; [`Error::VersionMismatch`] or [`Error::Corrupted`] for a file that
/// is not a valid segment of this layout version.
pub fn inspect(name: &str) -> Result<SegmentInfo> {
    inspect_name(&Name::new(name)?)
}

/// Every shmbatch segment in `/dev/shm`, and every half-made one, sorted by name.
/// Files that do not start with the shmbatch magic are left out (but for the
/// temporaries of segments being created); segments that fail validation are
/// listed with their error.
pub fn list() -> Vec<Listed> {
    let Ok(dir) = std::fs::read_dir(SHM_DIR) else {
        return Vec::new();
    };
    let mut out: Vec<Listed> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| Name::new(&n).ok())
        .filter_map(|name| {
            let half_made = Temporary::parse(name.as_str()).map(|t| HalfMade {
                creator: Process {
                    pid: t.creator.pid,
                    alive: t.creator_alive(),
                },
                for_name: t.for_name,
            });
            let info = inspect_name(&name);
            match (&info, &half_made) {
                (Err(Error::NotFound { .. }), _) | (Err(Error::NotShmbatch { .. }), None) => None,
                _ => Some(Listed {
                    name: name.as_str().to_owned(),
                    info,
                    half_made,
                }),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn control_size(kind: Kind) -> usize {
    match kind {
        Kind::Spsc => std::mem::size_of::<crate::spsc::SpscControl>(),
        Kind::Mpmc => std::mem::size_of::<crate::mpmc::MpmcControl>(),
        Kind::Array => std::mem::size_of::<crate::array::ArrayControl>(),
        Kind::Broadcast => std::mem::size_of::<crate::broadcast::BroadcastControl>(),
    }
}

/// Remove the segment `name` if it is [stale](SegmentInfo::is_stale), judged on the
/// file itself, and only if no other file has replaced it meanwhile
/// ([`files::remove_judged`]): what `Options::reclaim_stale` does before it
/// creates again. Returns whether the name is free of that segment. A file that
/// fails inspection is not stale.
///
/// # Errors
/// [`Error::InvalidName`], [`Error::Io`], and the errors of opening the file.
pub(crate) fn reclaim_stale(name: &str) -> Result<bool> {
    let name = Name::new(name)?;
    files::remove_judged(&name, |file, stat| {
        inspect_file(&name, file, stat).is_ok_and(|info| info.is_stale())
    })
}

fn inspect_name(name: &Name) -> Result<SegmentInfo> {
    let (file, stat) = files::open(name, Access::Read)?;
    inspect_file(name, &file, &stat)
}

/// Inspect the segment `name`, open as `file` with `fstat` `stat`.
fn inspect_file(name: &Name, file: impl AsFd, stat: &rustix::fs::Stat) -> Result<SegmentInfo> {
    let file_len = stat.st_size as u64;
    // NotShmbatch for a file without the magic or shorter than the header.
    files::probe(&file, file_len, name)?;
    let map_len = usize::try_from(file_len).unwrap_or(usize::MAX).min(PREFIX);
    let map = Mapping::new(&file, map_len, Access::Read, name)?;
    let identity: &Identity = map.at(0);
    if !identity.is_ready()? {
        return Err(Error::NotReady {
            name: name.as_str().to_owned(),
            waited_ms: 0,
        });
    }
    let mapped = usize::try_from(file_len).unwrap_or(usize::MAX);
    let g = identity.validate(mapped, None, control_size)?;
    // validate() checked data_offset >= CONTROL_OFFSET + control_size(kind) and
    // data_offset <= file length; the control block must also lie in our prefix.
    if CONTROL_OFFSET + control_size(g.kind) > map_len {
        return Err(Error::corrupted("control block past the mapped prefix"));
    }
    let mut info = SegmentInfo {
        name: name.as_str().to_owned(),
        layout_version: LAYOUT_VERSION,
        kind: g.kind,
        tag: identity.tag()?,
        elem_size: g.elem_size,
        elem_align: g.elem_align,
        capacity: g.capacity,
        max_batch: g.max_batch,
        stride: g.stride,
        data_offset: g.data_offset,
        shape: g.shape.dims().to_vec(),
        data_len: g.data_len,
        wake_protocol: matches!(g.kind, Kind::Spsc | Kind::Broadcast).then_some(g.wake),
        segment_len: g.segment_len,
        file_len,
        allocated: stat.st_blocks as u64 * 512,
        creator: Process::new(g.creator_pid),
        peers: Vec::new(),
        fill: None,
        seq: None,
        broadcast: None,
    };
    match g.kind {
        Kind::Spsc => {
            let s = crate::spsc::stats(map.at(CONTROL_OFFSET));
            for (role, side) in [(Role::Sender, s.producer), (Role::Receiver, s.consumer)] {
                if let Some((id, true)) = side {
                    info.peers.push(Peer {
                        role: Some(role),
                        process: Process::of(id),
                    });
                }
            }
            info.fill = Some(Fill {
                // tail may lag head by a record (see `ProducerLine::tail` in
                // src/spsc/ring.rs).
                used: s.tail.saturating_sub(s.head).min(g.data_len as u64),
                total: g.data_len as u64,
                unit: "bytes",
            });
        }
        Kind::Array => {
            let s = crate::array::stats(map.at(CONTROL_OFFSET));
            if let Some(id) = s.holder {
                info.peers.push(Peer {
                    role: None,
                    process: Process::of(id),
                });
            }
            info.seq = Some(s.seq);
        }
        Kind::Broadcast => {
            let s = crate::broadcast::stats(map.at(CONTROL_OFFSET));
            if let Some(p) = s.publisher {
                info.peers.push(Peer {
                    role: Some(Role::Sender),
                    process: Process::of(p),
                });
            }
            let mut subscribers = Vec::new();
            for e in &s.entries {
                let process = Process::of(e.proc);
                info.peers.push(Peer {
                    role: Some(Role::Receiver),
                    process,
                });
                subscribers.push(SubscriberInfo {
                    entry: e.index,
                    process,
                    evicted: e.evicted,
                    behind: s.published.saturating_sub(e.seq),
                    missed: e.missed,
                });
            }
            info.fill = Some(Fill {
                used: s.used.min(g.data_len as u64),
                total: g.data_len as u64,
                unit: "bytes",
            });
            info.broadcast = Some(BroadcastInfo {
                lossy: s.lossy,
                evict_after: s.evict_after,
                published: s.published,
                closed: s.closed,
                subscribers,
            });
        }
        Kind::Mpmc => {
            let s = crate::mpmc::stats(map.at(CONTROL_OFFSET), g.capacity);
            info.peers = mpmc_peers(&s.entries);
            info.fill = s.used.map(|used| Fill {
                used,
                total: g.capacity,
                unit: "slots",
            });
        }
    }
    Ok(info)
}

/// The attached processes in an MPMC attachment table, one per (role, pid); a
/// free entry or one with an unknown role is left out.
fn mpmc_peers(entries: &[crate::peers::Entry]) -> Vec<Peer> {
    let mut peers: Vec<Peer> = Vec::new();
    for e in entries {
        let (Some(role), pid) = (e.role, e.proc.pid) else {
            continue;
        };
        if pid == 0
            || peers
                .iter()
                .any(|p| p.role == Some(role) && p.process.pid == pid)
        {
            continue;
        }
        peers.push(Peer {
            role: Some(role),
            process: Process {
                pid,
                alive: e.proc.alive(),
            },
        });
    }
    peers
}
