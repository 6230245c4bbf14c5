//! Where memory comes from: named POSIX shared memory (the only OS code in the
//! crate) or the heap (for in-process channels, loom, miri and proptest).
//!
//! A [`Region`] is what the algorithms see: the identity header, the kind's control
//! block and the data region, with a validated [`Geometry`]. It does not say whether
//! the memory came from `shm_open` or from `Box`, so tests run the very same code as
//! production.
//!
//! Every `mmap` of the crate goes through [`Mapping`] ([`mapping`]): a segment's
//! read-write mapping, the read-only probe of a header and inspection's read-only
//! look.
//!
//! Named segments live in files in `/dev/shm` ([`files`]): a creator builds one
//! under a hidden temporary name and gives it its real name only once its header
//! is published, so a name is never visible half-made, even when its creator is
//! killed; `open` refuses at once a file that is not a shmbatch segment
//! ([`Error::NotShmbatch`]) and follows no symbolic link; [`remove`] deletes
//! shmbatch segments only, [`remove_any`] anything.

use std::any::Any;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(not(any(miri, loom)))]
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::layout::{Geometry, Identity, Kind, TypeInfo, CONTROL_OFFSET, IDENTITY_SIZE, LINE};
use crate::sync::Shadow;
use crate::wait::Deadline;

pub(crate) mod files;
mod mapping;

pub(crate) use files::Name;
use files::{io_error, Access};
pub use files::{remove, remove_any, MAX_NAME_LEN, SHM_DIR};
pub(crate) use mapping::Mapping;

/// How long `open` waits for a creator that is still writing the header (only a
/// creator that does not build under a temporary name lets anyone see that),
/// unless told otherwise (`Options::open_timeout`).
pub(crate) const OPEN_WAIT: Duration = Duration::from_secs(2);

/// How a new segment is made (from [`crate::Options`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Create {
    /// Permission bits of the file, in 0..=0o777; applied exactly (not masked by
    /// the umask).
    pub(crate) mode: u32,
    /// Keep the segment when the creating handle drops.
    pub(crate) persist: bool,
}

/// A process as the kernel knows it: its pid and its start time, so that a pid the
/// kernel has handed to a new process does not make a dead peer look alive.
///
/// The start time is field 22 of `/proc/PID/stat` (clock ticks since boot, 100 per
/// second on Linux), truncated to 32 bits: two processes with the same pid and start
/// times exactly a multiple of 2^32 ticks (497 days) apart are confused, nothing
/// else is. Pids are those of the caller's pid namespace: processes that share a
/// segment must share a pid namespace (a peer in another one looks dead).
///
/// Why not an OFD lock on the segment's file: a lock lives as long as its open file
/// description, which a `fork`ed child inherits (Python's `multiprocessing` forks),
/// so a dead process's lock can outlive it; and heap regions have no file.
///
/// Packed into 54 bits ([`ProcId::pack`]): `start << 22 | pid`. Linux pids are below
/// 2^22 (`PID_MAX_LIMIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ProcId {
    /// The process id, below 2^22 (0 is never a live process).
    pub pid: u32,
    /// The low 32 bits of its start time in clock ticks since boot (0 where it is
    /// not known: under loom and miri, or when `/proc` could not be read; a 0 is
    /// then judged by the pid alone, see [`alive`](Self::alive)).
    pub start: u32,
}

/// Bits of a packed [`ProcId`].
pub(crate) const PROC_BITS: u32 = 54;
/// Bits of a pid in a packed [`ProcId`].
const PID_BITS: u32 = 22;

impl ProcId {
    /// A process that is never alive (pid 0): what a zeroed word decodes to.
    pub(crate) const NOBODY: ProcId = ProcId { pid: 0, start: 0 };

    /// This process.
    pub(crate) fn me() -> ProcId {
        static ME: std::sync::OnceLock<ProcId> = std::sync::OnceLock::new();
        *ME.get_or_init(|| {
            let pid = std::process::id();
            assert!(pid < 1 << PID_BITS, "Linux pids are below 2^22, got {pid}");
            ProcId {
                pid,
                start: start_time(pid).unwrap_or(0),
            }
        })
    }

    /// `start << 22 | pid`, in the low [`PROC_BITS`] bits.
    pub(crate) const fn pack(self) -> u64 {
        (self.start as u64) << PID_BITS | (self.pid as u64 & ((1 << PID_BITS) - 1))
    }

    /// The inverse of [`pack`](Self::pack); bits above [`PROC_BITS`] are ignored,
    /// so any word from shared memory decodes to some `ProcId`.
    pub(crate) const fn unpack(word: u64) -> ProcId {
        ProcId {
            pid: (word & ((1 << PID_BITS) - 1)) as u32,
            start: (word >> PID_BITS) as u32,
        }
    }

    /// Whether this process still runs: it exists, is not a zombie, and started
    /// when it says (a start of 0 says nothing: the process that recorded it could
    /// not read its own start time, and a live process must not look dead). Costs a system call and a read of `/proc` (~10 µs) for another
    /// process: call on slow paths only.
    pub(crate) fn alive(self) -> bool {
        if self.pid == 0 {
            return false;
        }
        let me = ProcId::me();
        if self.pid == me.pid {
            // Our pid with another start time: a dead process that had our pid.
            return self.start == me.start || self.start == 0;
        }
        #[cfg(any(miri, loom))]
        {
            true
        }
        #[cfg(not(any(miri, loom)))]
        {
            // A pid from shared memory may be anything: above i32::MAX it would be a
            // negative pid_t, which kill(2) reads as a process group.
            let Some(p) = i32::try_from(self.pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            else {
                return false;
            };
            match rustix::process::test_kill_process(p) {
                Ok(()) | Err(Errno::PERM) => match proc_stat(self.pid) {
                    // Gone between the two calls, a zombie (dead, not yet reaped by
                    // its parent), or a new process that got the pid.
                    Ok(Some((state, start))) => {
                        state != 'Z' && (start == self.start || self.start == 0)
                    }
                    Ok(None) => false,
                    // /proc unreadable (hidepid, no procfs): kill(2) is all we know.
                    Err(()) => true,
                },
                Err(_) => false,
            }
        }
    }
}

/// Whether process `pid` exists and is not a zombie, whatever its start time (for
/// reports about a pid recorded without one).
pub(crate) fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    #[cfg(any(miri, loom))]
    {
        pid == std::process::id() || pid < 1 << PID_BITS
    }
    #[cfg(not(any(miri, loom)))]
    {
        let start = match proc_stat(pid) {
            Ok(Some((_, start))) => start,
            Ok(None) => return false,
            Err(()) => return ProcId { pid, start: 0 }.alive_by_signal(),
        };
        ProcId { pid, start }.alive()
    }
}

impl ProcId {
    /// `kill(pid, 0)` alone.
    #[cfg(not(any(miri, loom)))]
    fn alive_by_signal(self) -> bool {
        i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|p| {
                matches!(
                    rustix::process::test_kill_process(p),
                    Ok(()) | Err(Errno::PERM)
                )
            })
    }
}

/// The start time of process `pid`, if it exists (`None` under loom and miri).
fn start_time(pid: u32) -> Option<u32> {
    #[cfg(any(miri, loom))]
    {
        let _ = pid;
        None
    }
    #[cfg(not(any(miri, loom)))]
    {
        proc_stat(pid).ok().flatten().map(|(_, start)| start)
    }
}

/// State letter and start time (low 32 bits) from `/proc/PID/stat`: `Ok(None)` if
/// the process does not exist, `Err` if `/proc` cannot tell.
#[cfg(not(any(miri, loom)))]
fn proc_stat(pid: u32) -> std::result::Result<Option<(char, u32)>, ()> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(()),
    };
    parse_stat(&stat).map(Some).ok_or(())
}

/// Parse the state (field 3) and start time (field 22) of a `/proc/PID/stat` line.
/// The command name (field 2) is in parentheses and may hold spaces and `)`, so
/// the fields are counted from the last `)`.
#[cfg(not(any(miri, loom)))]
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4..=21 lie between the state and the start time.
    let start: u64 = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start as u32))
}

/// A read-write mapping of a whole shared-memory object, and its name. The name
/// is unlinked on drop when `owner` is set, the temporary name always.
struct Segment {
    name: Name,
    /// The temporary name the file still has, until [`Segment::publish`].
    temp: Option<Name>,
    /// Shared with the [`Mapped`] tokens handed out: unmapped when the last goes.
    map: Arc<Mapping>,
    owner: AtomicBool,
}

impl Segment {
    /// Make the file of a new segment under a temporary name (see [`files`]) and
    /// map it. The name stays free until [`publish`](Self::publish).
    fn create(name: &Name, len: usize, how: &Create) -> Result<Segment> {
        let files::Building { temp, fd } = files::create_temp(name, len, how.mode)?;
        let map = match Mapping::new(&fd, len, Access::ReadWrite, name) {
            Ok(map) => Arc::new(map),
            Err(e) => {
                let _ = files::unlink(&temp);
                return Err(e);
            }
        };
        Ok(Segment {
            name: name.clone(),
            temp: Some(temp),
            map,
            owner: AtomicBool::new(!how.persist),
        })
    }

    /// Give a segment made by [`create`](Self::create) its real name. On an error
    /// the temporary is unlinked when `self` drops.
    fn publish(&mut self) -> Result<()> {
        if let Some(temp) = &self.temp {
            files::publish(temp, &self.name)?;
            self.temp = None;
        }
        Ok(())
    }

    /// Open an existing segment. A file without the shmbatch magic is refused at
    /// once. A header with the magic but not yet published (only a foreign writer
    /// or a creator that does not build under a temporary name shows one) is waited
    /// for until `init_wait` (by default [`OPEN_WAIT`] from now) while the creator
    /// pid it records is alive, and is corrupted at once when that process is dead.
    fn open(name: &Name, init_wait: Deadline) -> Result<Segment> {
        let (fd, stat) = files::open(name, files::Access::ReadWrite)?;
        let start = Instant::now();
        let mut size = stat.st_size;
        // Phase 1: wait until the header is published.
        loop {
            let probe = files::probe(&fd, size as u64, name)?;
            if probe.ready? {
                break;
            }
            if !pid_alive(probe.creator_pid) {
                return Err(Error::corrupted(format!(
                    "header was never published and its creator (pid {}) is not running",
                    probe.creator_pid
                )));
            }
            if init_wait.passed() {
                return Err(Error::NotReady {
                    name: name.as_str().to_owned(),
                    waited_ms: start.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(init_wait.slice().min(Duration::from_millis(1)));
            size = rustix::fs::fstat(&fd)
                .map_err(|e| io_error("fstat", name, e))?
                .st_size;
        }
        // Phase 2: map the whole object. The header is validated by the caller
        // against this length before anything past the identity block is touched.
        let size = rustix::fs::fstat(&fd)
            .map_err(|e| io_error("fstat", name, e))?
            .st_size;
        // The object may have shrunk since phase 1: re-check the lower bound too,
        // since `open_shm` reads the identity block through this mapping.
        let len = usize::try_from(size)
            .ok()
            .filter(|&l| (IDENTITY_SIZE..=crate::layout::MAX_SEGMENT_LEN).contains(&l))
            .ok_or_else(|| Error::corrupted(format!("segment size {size} is out of range")))?;
        let map = Arc::new(Mapping::new(&fd, len, Access::ReadWrite, name)?);
        Ok(Segment {
            name: name.clone(),
            temp: None,
            map,
            owner: AtomicBool::new(false),
        })
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The mapping is unmapped after this, when the last `Arc` of `map` (this
        // one, or a `Mapped` token) drops.
        if let Some(temp) = &self.temp {
            let _ = files::unlink(temp);
        } else if *self.owner.get_mut() {
            let _ = files::unlink(&self.name);
        }
    }
}

/// The control block of one kind of segment, placed at [`CONTROL_OFFSET`].
///
/// # Safety
/// The all-zero bit pattern must be a valid `Self` (the creator's `ftruncate` zero
/// fills a new segment), and `Self` must consist of atomics only, so that a hostile
/// peer writing any bits never makes it invalid.
pub(crate) unsafe trait Control: Default + Send + Sync + 'static {
    /// The kind this control block belongs to.
    const KIND: Kind;
}

enum Backing {
    Shm(Segment),
    Heap {
        identity: *mut Identity,
        control: *mut (dyn Any + Send + Sync),
        data: *mut u8,
        data_layout: std::alloc::Layout,
    },
}

/// Keeps the memory of a named segment mapped in this process after the handle
/// it came from has dropped: from `keep_mapped` of every handle.
///
/// Dropping a handle still does everything else it does (detaches its end,
/// removes the name if it created the segment); only the `munmap` waits for the
/// last token. It is for foreign-language bindings whose views of a batch or an
/// array (a numpy array, say) may outlive the handle: such a view stays readable
/// instead of dangling, but shows whatever other processes write there, with no
/// synchronisation. Rust code does not need it: guards borrow their handle.
#[derive(Clone)]
pub struct Mapped(Arc<Mapping>);

impl fmt::Debug for Mapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapped")
            .field("len", &self.0.len())
            .finish()
    }
}

/// Memory a queue or array lives in: header, control block and data region.
pub(crate) struct Region {
    identity: NonNull<Identity>,
    control: NonNull<u8>,
    data: NonNull<u8>,
    geometry: Geometry,
    shadow: Shadow,
    backing: Backing,
}

// SAFETY: the region's memory is owned by `backing` and lives as long as the Region;
// the header and control block are atomics only and the data region is accessed
// under each algorithm's ownership protocol, so sharing across threads is sound.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.name())
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

impl Region {
    /// Create a named segment with geometry `g`, let `init` set up the control block
    /// and data region, publish the header, and only then give the segment its name
    /// (all-or-nothing: see [`files`]).
    pub(crate) fn create_shm<C: Control>(
        name: &str,
        g: Geometry,
        ty: &TypeInfo,
        how: &Create,
        init: impl FnOnce(&Region),
    ) -> Result<Region> {
        debug_assert!(CONTROL_OFFSET + std::mem::size_of::<C>() <= g.data_offset);
        let name = Name::new(name)?;
        let seg = Segment::create(&name, g.segment_len, how)?;
        let base = seg.map.base();
        // SAFETY: offsets were computed by Geometry::new and lie within segment_len,
        // which is the mapping's length.
        let mut region = unsafe { Region::from_base(base, g, Backing::Shm(seg)) };
        init(&region);
        region.identity().publish(&g, ty);
        if let Backing::Shm(seg) = &mut region.backing {
            // On an error `region` drops and unlinks the temporary.
            seg.publish()?;
        }
        Ok(region)
    }

    /// Open the named segment and validate it as a `C::KIND` segment of element `ty`,
    /// waiting until `init_wait` for a creator still writing its header (see
    /// [`Segment::open`]). `check` validates the kind-specific geometry.
    pub(crate) fn open_shm<C: Control>(
        name: &str,
        ty: &TypeInfo,
        init_wait: Deadline,
        check: impl FnOnce(&Geometry) -> Result<()>,
    ) -> Result<Region> {
        let name = Name::new(name)?;
        let seg = Segment::open(&name, init_wait)?;
        // Segment::open mapped at least IDENTITY_SIZE bytes (it checked the length
        // it mapped).
        let identity: &Identity = seg.map.at(0);
        let g = identity.validate(seg.map.len(), Some((C::KIND, ty)), |_| {
            std::mem::size_of::<C>()
        })?;
        check(&g)?;
        let base = seg.map.base();
        // SAFETY: validate() checked data_offset >= CONTROL_OFFSET + size_of::<C>(),
        // data_offset + data_len <= segment_len <= mapped length.
        Ok(unsafe { Region::from_base(base, g, Backing::Shm(seg)) })
    }

    /// A region on the heap with the same layout, for in-process use and tests.
    pub(crate) fn heap<C: Control>(
        g: Geometry,
        ty: &TypeInfo,
        init: impl FnOnce(&Region),
    ) -> Region {
        let identity = Box::into_raw(Box::<Identity>::default());
        let control: *mut (dyn Any + Send + Sync) = Box::into_raw(Box::new(C::default()));
        let data_layout = std::alloc::Layout::from_size_align(g.data_len.max(1), LINE)
            .expect("data_len is bounded by MAX_SEGMENT_LEN");
        // SAFETY: the layout has a non-zero size.
        let data = unsafe { std::alloc::alloc_zeroed(data_layout) };
        if data.is_null() {
            std::alloc::handle_alloc_error(data_layout);
        }
        let region = Region {
            identity: NonNull::new(identity).expect("Box pointers are non-null"),
            control: NonNull::new(control.cast::<u8>()).expect("Box pointers are non-null"),
            data: NonNull::new(data).expect("checked above"),
            geometry: g,
            shadow: Shadow::new(g.data_len),
            backing: Backing::Heap {
                identity,
                control,
                data,
                data_layout,
            },
        };
        init(&region);
        region.identity().publish(&g, ty);
        region
    }

    /// # Safety
    /// `base` must point to a mapping of at least `g.segment_len` bytes, aligned to a
    /// page, owned by `backing`, and `g` must satisfy the checks of
    /// `Identity::validate`.
    unsafe fn from_base(base: NonNull<u8>, g: Geometry, backing: Backing) -> Region {
        Region {
            identity: base.cast(),
            // SAFETY: CONTROL_OFFSET < data_offset <= segment_len (caller).
            control: unsafe { base.add(CONTROL_OFFSET) },
            // SAFETY: data_offset + data_len <= segment_len (caller).
            data: unsafe { base.add(g.data_offset) },
            geometry: g,
            shadow: Shadow::new(g.data_len),
            backing,
        }
    }

    pub(crate) fn identity(&self) -> &Identity {
        // SAFETY: the identity block is valid for the region's life (construction)
        // and consists of atomics only.
        unsafe { self.identity.as_ref() }
    }

    /// The control block. `C` must be the control type the region was made with.
    pub(crate) fn control<C: Control>(&self) -> &C {
        assert_eq!(self.geometry.kind, C::KIND, "control block of another kind");
        if let Backing::Heap { control, .. } = &self.backing {
            // SAFETY: the heap control block lives until drop.
            debug_assert!(unsafe { &**control }.is::<C>());
        }
        // SAFETY: the region was created or validated as a C::KIND segment (checked
        // above), so a C lies at `control`, aligned (CONTROL_OFFSET is a multiple of
        // LINE, or a Box<C>), and C is atomics only (Control's contract), valid for
        // any bits a peer may have written.
        unsafe { self.control.cast::<C>().as_ref() }
    }

    /// Start of the data region (aligned to [`LINE`]), `geometry().data_len` bytes.
    pub(crate) fn data(&self) -> NonNull<u8> {
        self.data
    }

    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Loom's view of the data region (no-op outside loom).
    pub(crate) fn shadow(&self) -> &Shadow {
        &self.shadow
    }

    /// The segment name, or `None` for a heap region.
    pub(crate) fn name(&self) -> Option<&str> {
        match &self.backing {
            Backing::Shm(seg) => Some(seg.name.as_str()),
            Backing::Heap { .. } => None,
        }
    }

    /// A token that keeps a named segment's memory mapped (see [`Mapped`]);
    /// `None` for a heap region.
    pub(crate) fn keep_mapped(&self) -> Option<Mapped> {
        match &self.backing {
            Backing::Shm(seg) => Some(Mapped(Arc::clone(&seg.map))),
            Backing::Heap { .. } => None,
        }
    }

    /// Keep the named segment when this handle (its creator) drops.
    pub(crate) fn persist(&self) {
        if let Backing::Shm(seg) = &self.backing {
            // Relaxed: a process-local flag, read only by `Drop`, which the `Arc`
            // holding the region orders after every handle's last use.
            seg.owner.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Backing::Heap {
            identity,
            control,
            data,
            data_layout,
        } = self.backing
        {
            // SAFETY: these came from Box::into_raw / alloc_zeroed with this layout in
            // `heap`, and nothing uses them after the Region is dropped.
            unsafe {
                drop(Box::from_raw(identity));
                drop(Box::from_raw(control));
                std::alloc::dealloc(data, data_layout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_alive_and_zero_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(ProcId::me().alive());
        assert!(!ProcId::NOBODY.alive());
    }

    #[test]
    fn proc_ids_pack_and_unpack() {
        let p = ProcId {
            pid: (1 << 22) - 1,
            start: u32::MAX,
        };
        assert_eq!(ProcId::unpack(p.pack()), p);
        assert!(p.pack() < 1 << PROC_BITS);
        assert_eq!(ProcId::unpack(0), ProcId::NOBODY);
        assert_eq!(ProcId::unpack(ProcId::me().pack()), ProcId::me());
    }

    #[cfg(not(miri))]
    #[test]
    fn a_reused_pid_does_not_look_alive() {
        // Our own pid with another start time is a dead process that had our pid.
        let me = ProcId::me();
        assert!(!ProcId {
            start: me.start.wrapping_add(1),
            ..me
        }
        .alive());
        // So is pid 1 with a start time it does not have.
        let init = ProcId {
            pid: 1,
            start: start_time(1).unwrap_or(0),
        };
        if pid_alive(1) && proc_stat(1).is_ok() {
            assert!(init.alive());
            assert!(!ProcId {
                start: init.start.wrapping_add(1),
                ..init
            }
            .alive());
        }
    }

    #[cfg(not(miri))]
    #[test]
    fn a_zombie_is_dead() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not waited for: once it exits it stays a zombie until `wait`.
        let t = std::time::Instant::now();
        while proc_stat(pid).ok().flatten().map(|(s, _)| s) != Some('Z') {
            assert!(t.elapsed() < Duration::from_secs(10), "child never exited");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!pid_alive(pid));
        let mut child = child;
        child.wait().unwrap();
        assert!(!pid_alive(pid));
    }

    #[cfg(not(miri))]
    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "42 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4294967301 20";
        assert_eq!(parse_stat(line), Some(('S', 5)));
        assert_eq!(parse_stat("42 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[cfg(not(miri))]
    #[test]
    fn pids_that_are_negative_as_pid_t_are_dead() {
        // Found by fuzzing hostile MPMC attachment tables.
        for pid in [1 << 31, u32::MAX - 1, u32::MAX] {
            assert!(!pid_alive(pid), "{pid}");
        }
    }
}
