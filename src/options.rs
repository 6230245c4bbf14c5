//! How segments are created and opened: [`Options`], and the one place where its
//! policies (waiting for a name, reclaiming a stale segment, open-or-create) are
//! carried out for every kind.

use std::time::Duration;

use bytemuck::Pod;

use crate::broadcast::{Policy, Start};
use crate::error::{Error, Result};
use crate::layout::TypeInfo;
use crate::segment::files::DEFAULT_MODE;
use crate::segment::{Create, OPEN_WAIT};
use crate::wait::{Deadline, WaitPolicy, WakeProtocol};

/// How many times [`Options::open_or_create`] goes round when the segment it found
/// is gone before it could open it (its creator dropped it in between).
const OPEN_OR_CREATE_ROUNDS: u32 = 16;

/// The longest pause between two looks for a name that does not exist yet.
const NAME_POLL_MAX: Duration = Duration::from_millis(10);

/// Options for creating and opening a segment: the `create_with`, `open_with` and
/// `open_or_create` constructors of [`spsc::Sender`](crate::spsc::Sender),
/// [`spsc::Receiver`](crate::spsc::Receiver),
/// [`mpmc::Sender`](crate::mpmc::Sender), [`mpmc::Receiver`](crate::mpmc::Receiver)
/// and [`SharedArray`](crate::SharedArray) take one. `Options::default()` is what
/// `create` and `open` use.
///
/// Each setter says whether it applies when creating, opening, or both; an option
/// that does not apply is ignored.
///
/// # Example
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use shmbatch::{spsc, Options};
/// # let name = format!("doc-options-{}", std::process::id());
///
/// // Shared with the group, kept after the creator exits, at most 256 per batch.
/// let create = Options::new().mode(0o660).persist(true).max_batch(256);
/// let mut tx = spsc::Sender::<f64>::create_with(&name, 4096, &create)?;
/// assert_eq!(tx.max_batch(), 256);
/// tx.send(&[1.0, 2.0])?;
/// drop(tx);
///
/// // Another process: wait up to 5 s for the segment to appear.
/// let open = Options::new().open_timeout(Duration::from_secs(5));
/// let mut rx = spsc::Receiver::<f64>::open_with(&name, &open)?;
/// assert_eq!(&*rx.recv()?, &[1.0, 2.0]);
/// # drop(rx);
/// shmbatch::remove(&name)?; // persisted: someone removes it
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    mode: u32,
    open_timeout: Option<Duration>,
    persist: bool,
    reclaim_stale: bool,
    tag: Option<String>,
    max_batch: Option<usize>,
    shape: Option<Vec<usize>>,
    wait_policy: WaitPolicy,
    wake_protocol: Option<WakeProtocol>,
    broadcast_policy: Policy,
    evict_after: Option<Duration>,
    start: Start,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: DEFAULT_MODE,
            open_timeout: None,
            persist: false,
            reclaim_stale: false,
            tag: None,
            max_batch: None,
            shape: None,
            wait_policy: WaitPolicy::Adaptive,
            wake_protocol: None,
            broadcast_policy: Policy::Lossless,
            evict_after: None,
            start: Start::Next,
        }
    }
}

impl Options {
    /// The defaults: mode `0o600`, no waiting for a missing segment, the segment
    /// removed when its creator drops, no reclaiming, the element type's built-in
    /// tag, the largest batch the capacity allows.
    pub fn new() -> Options {
        Options::default()
    }

    /// Creating: the permission bits of the segment's file in `/dev/shm`, applied
    /// exactly (the process's umask does not mask them). Default `0o600`, owner
    /// only; `0o660` shares the segment with the file's group. Only the bits
    /// `0o777` may be set (checked when creating: [`Error::InvalidSize`]).
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode;
        self
    }

    /// Opening: wait up to `timeout` for a segment that does not exist yet, and
    /// for a creator that is still writing its header. By default `open` fails at
    /// once with [`Error::NotFound`] and waits up to 2 s for a header being
    /// written. When the time is up, the error is [`Error::NotFound`] (the name
    /// never appeared) or [`Error::NotReady`] (its header was never published).
    /// The name is looked for every few milliseconds.
    pub fn open_timeout(mut self, timeout: Duration) -> Options {
        self.open_timeout = Some(timeout);
        self
    }

    /// Creating: keep the segment when the creating handle drops (as its
    /// `persist` method does), so that it outlives its creator; remove it with
    /// [`remove`](crate::remove) or `shmbatch rm`. Default `false`.
    pub fn persist(mut self, persist: bool) -> Options {
        self.persist = persist;
        self
    }

    /// Creating: if a segment of that name exists but is stale (its creator and
    /// every process attached to it are dead, as `shmbatch ls` shows it; see
    /// [`SegmentInfo::is_stale`](crate::SegmentInfo::is_stale)), remove it and
    /// create the new one in its place instead of failing with
    /// [`Error::AlreadyExists`]. A segment that anyone alive uses, and a file that
    /// is not a valid segment, are left alone. Default `false`.
    ///
    /// The creator is judged by its pid alone, so a reused pid keeps a stale
    /// segment (it looks alive); a segment that a live process wants to open later
    /// but has not attached to yet looks stale.
    pub fn reclaim_stale(mut self, reclaim: bool) -> Options {
        self.reclaim_stale = reclaim;
        self
    }

    /// Creating and opening: the element type's tag (see [`crate::layout`],
    /// "Element types"): recorded by a creator instead of the built-in one
    /// (numpy's dtype string for the numeric types, none for other types), and
    /// compared by an opener with the segment's. Tags must be equal where both
    /// sides have one, so tag a struct (`"tick/v2"`, `"(2,)<f8"`) to tell it from
    /// another of the same size. At most [`TAG_MAX`](crate::layout::TAG_MAX) (64)
    /// bytes of printable ASCII, not empty (checked when creating or opening:
    /// [`Error::UnsupportedType`]).
    pub fn tag(mut self, tag: impl Into<String>) -> Options {
        self.tag = Some(tag.into());
        self
    }

    /// Creating an SPSC queue: the longest batch, in elements, that `send` and
    /// `reserve` accept (longer ones are `TooLarge`). It must be in 1 up to what
    /// the capacity allows (a batch takes at most half the ring, so by default at
    /// least half the capacity), which is the default ([`Error::InvalidSize`]
    /// otherwise). MPMC queues take `max_batch` as an argument of `create`, and
    /// arrays have no batches: both ignore it.
    pub fn max_batch(mut self, max_batch: usize) -> Options {
        self.max_batch = Some(max_batch);
        self
    }

    /// Creating an array: its dimensions (at most
    /// [`MAX_DIMS`](crate::layout::MAX_DIMS), each at least 1, in C order), recorded
    /// in the header so that every opener sees the same shape
    /// ([`SharedArray::shape`](crate::SharedArray::shape)); their product must be
    /// the array's length ([`Error::InvalidSize`] otherwise). Unset, the array is
    /// flat: one dimension, its length. Queues ignore it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmbatch::{Options, SharedArray};
    /// # let name = format!("doc-shape-{}", std::process::id());
    /// let grid = SharedArray::<f32>::create_with(&name, 12, &Options::new().shape(&[3, 4]))?;
    /// assert_eq!(SharedArray::<f32>::open(&name)?.shape(), [3, 4]);
    /// # drop(grid);
    /// # Ok(()) }
    /// ```
    pub fn shape(mut self, dims: &[usize]) -> Options {
        self.shape = Some(dims.to_vec());
        self
    }

    /// Creating or opening any kind: how the handle waits when a blocking or timed
    /// call must ([`WaitPolicy`]; [`WaitPolicy::Adaptive`] by default). Every
    /// handle also has `set_wait_policy`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmbatch::{spsc, Options, WaitPolicy};
    /// # let name = format!("doc-wait-{}", std::process::id());
    /// // A consumer on a core of its own: never sleeps.
    /// let opts = Options::new().wait_policy(WaitPolicy::BusySpin);
    /// let rx = spsc::Receiver::<f64>::create_with(&name, 1024, &opts)?;
    /// assert_eq!(rx.wait_policy(), WaitPolicy::BusySpin);
    /// # Ok(()) }
    /// ```
    pub fn wait_policy(mut self, policy: WaitPolicy) -> Options {
        self.wait_policy = policy;
        self
    }

    /// Creating an SPSC queue: its [`WakeProtocol`], recorded in the header and
    /// followed by every process that opens it. Unset,
    /// [`WakeProtocol::Adaptive`] where `membarrier(2)` works
    /// ([`calibration`](crate::calibration)). MPMC queues (whose claims order
    /// their wake-ups) and arrays ignore it.
    pub fn wake_protocol(mut self, protocol: WakeProtocol) -> Options {
        self.wake_protocol = Some(protocol);
        self
    }

    /// Creating a broadcast log: [`Policy::Lossless`] (the default) or
    /// [`Policy::Lossy`] ([`crate::broadcast`]). Queues and arrays ignore it.
    pub fn broadcast_policy(mut self, policy: Policy) -> Options {
        self.broadcast_policy = policy;
        self
    }

    /// Creating a lossless broadcast log: evict a subscriber that holds the
    /// publisher back this long without moving (at most a day). Unset, never.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use shmbatch::broadcast::{self, RecvError, Start};
    /// use shmbatch::Options;
    /// let opts = Options::new().evict_after(Duration::from_millis(20));
    /// let (mut tx, mut stalled) = broadcast::channel_with::<f64>(64, &opts)?;
    /// for i in 0..1000 {
    ///     tx.send(&[i as f64])?; // waits 20 ms once, then evicts `stalled`
    /// }
    /// assert_eq!(stalled.recv_into(&mut Vec::new()), Err(RecvError::Evicted));
    /// let mut again = tx.subscribe(Start::Oldest)?; // subscribe again
    /// assert!(again.recv_into(&mut Vec::new())? > 0);
    /// # Ok(()) }
    /// ```
    pub fn evict_after(mut self, timeout: Duration) -> Options {
        self.evict_after = Some(timeout);
        self
    }

    /// Opening a broadcast subscriber: where it starts ([`Start::Next`] by
    /// default).
    pub fn start(mut self, start: Start) -> Options {
        self.start = start;
        self
    }

    pub(crate) fn broadcast_policy_of(&self) -> Policy {
        self.broadcast_policy
    }

    pub(crate) fn broadcast_evict_after(&self) -> Option<Duration> {
        self.evict_after
    }

    pub(crate) fn broadcast_start(&self) -> Start {
        self.start
    }

    /// The wait policy asked for.
    pub(crate) fn policy(&self) -> WaitPolicy {
        self.wait_policy
    }

    /// The wake protocol of a queue created with these options.
    pub(crate) fn protocol(&self) -> WakeProtocol {
        self.wake_protocol
            .unwrap_or_else(WakeProtocol::default_for_new)
    }

    /// The array dimensions asked for, if any.
    pub(crate) fn array_shape(&self) -> Option<&[usize]> {
        self.shape.as_deref()
    }

    /// `T` as a segment records it: with [`tag`](Self::tag) if set.
    pub(crate) fn type_info<T: Pod>(&self) -> Result<TypeInfo> {
        TypeInfo::of::<T>()?.tagged(self.tag.as_deref())
    }

    /// The SPSC largest batch asked for, if any.
    pub(crate) fn spsc_max_batch(&self) -> Option<usize> {
        self.max_batch
    }

    /// How the segment layer makes a new segment.
    fn how(&self) -> Result<Create> {
        if self.mode & !0o777 != 0 {
            return Err(Error::InvalidSize {
                what: "mode",
                value: self.mode as usize,
                reason: format!(
                    "{:#o} sets bits outside the permission bits 0o777",
                    self.mode
                ),
            });
        }
        Ok(Create {
            mode: self.mode,
            persist: self.persist,
        })
    }

    /// Create the segment `name` with `make`; if it exists and
    /// [`reclaim_stale`](Self::reclaim_stale) is set, remove it if stale and make it
    /// once more.
    pub(crate) fn create<R>(
        &self,
        name: &str,
        mut make: impl FnMut(&Create) -> Result<R>,
    ) -> Result<R> {
        let how = self.how()?;
        match make(&how) {
            Err(e @ Error::AlreadyExists { .. }) if self.reclaim_stale => {
                if crate::inspect::reclaim_stale(name)? {
                    make(&how)
                } else {
                    Err(e)
                }
            }
            r => r,
        }
    }

    /// Open with `open`, which waits for an unpublished header until the deadline
    /// it is given; with an [`open_timeout`](Self::open_timeout), a name that does
    /// not exist yet is looked for again until the timeout.
    pub(crate) fn open<R>(&self, mut open: impl FnMut(Deadline) -> Result<R>) -> Result<R> {
        let Some(timeout) = self.open_timeout else {
            return open(Deadline::after(OPEN_WAIT));
        };
        let deadline = Deadline::after(timeout);
        let mut pause = Duration::from_millis(1);
        loop {
            match open(deadline) {
                Err(Error::NotFound { .. }) if !deadline.passed() => {
                    std::thread::sleep(pause.min(deadline.slice()));
                    pause = (pause * 2).min(NAME_POLL_MAX);
                }
                r => return r,
            }
        }
    }

    /// Open the segment, or create it with `make` if it does not exist; race-free
    /// between processes doing this at once, since creation is all-or-nothing and
    /// fails if the name is taken: whoever loses opens what the winner made.
    pub(crate) fn open_or_create<R>(
        &self,
        name: &str,
        mut make: impl FnMut(&Create) -> Result<R>,
        mut open: impl FnMut(Deadline) -> Result<R>,
    ) -> Result<R> {
        let init_wait = || Deadline::after(self.open_timeout.unwrap_or(OPEN_WAIT));
        let mut round = 1;
        loop {
            match self.create(name, &mut make) {
                Err(Error::AlreadyExists { .. }) => {}
                r => return r,
            }
            match open(init_wait()) {
                // Gone between the two: its creator dropped it. Create it again.
                Err(Error::NotFound { .. }) if round < OPEN_OR_CREATE_ROUNDS => round += 1,
                r => return r,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone() -> Error {
        Error::NotFound { name: "x".into() }
    }

    fn taken() -> Error {
        Error::AlreadyExists { name: "x".into() }
    }

    #[test]
    fn open_or_create_goes_round_while_the_segment_vanishes() {
        let opts = Options::new();
        // Taken twice, gone each time it is opened, then free.
        let mut makes = 0;
        let r = opts.open_or_create(
            "x",
            |_| {
                makes += 1;
                if makes <= 2 {
                    Err(taken())
                } else {
                    Ok(makes)
                }
            },
            |_| Err::<u32, _>(gone()),
        );
        assert_eq!(r.unwrap(), 3);
        // Never settles: gives up after a bounded number of rounds.
        let mut rounds = 0;
        let r = opts.open_or_create(
            "x",
            |_| {
                rounds += 1;
                Err::<(), _>(taken())
            },
            |_| Err(gone()),
        );
        assert!(matches!(r, Err(Error::NotFound { .. })));
        assert_eq!(rounds, OPEN_OR_CREATE_ROUNDS);
        // Any other error ends it at once.
        let r = opts.open_or_create(
            "x",
            |_| Err::<(), _>(taken()),
            |_| Err(Error::corrupted("x")),
        );
        assert!(matches!(r, Err(Error::Corrupted(_))));
    }

    #[test]
    fn open_looks_again_for_a_missing_name_only_with_a_timeout() {
        let mut looks = 0;
        let r = Options::new().open(|_| {
            looks += 1;
            Err::<(), _>(gone())
        });
        assert!(matches!(r, Err(Error::NotFound { .. })));
        assert_eq!(looks, 1);
        let mut looks = 0;
        let r = Options::new()
            .open_timeout(Duration::from_secs(60))
            .open(|_| {
                looks += 1;
                if looks < 4 {
                    Err(gone())
                } else {
                    Ok(looks)
                }
            });
        assert_eq!(r.unwrap(), 4);
    }

    #[test]
    fn modes_are_permission_bits_only() {
        assert_eq!(Options::new().how().unwrap().mode, 0o600);
        assert_eq!(Options::new().mode(0o777).how().unwrap().mode, 0o777);
        for bad in [0o1000, 0o4600, u32::MAX] {
            assert!(matches!(
                Options::new().mode(bad).how(),
                Err(Error::InvalidSize { what: "mode", .. })
            ));
        }
    }
}
