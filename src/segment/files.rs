//! The files behind named segments, in [`SHM_DIR`]: names, the one way a name is
//! opened, all-or-nothing creation, removal, and the temporaries that creation
//! leaves behind when its creator dies.
//!
//! **Opening.** Every name is opened relative to `/dev/shm` with `O_NOFOLLOW` (as
//! glibc's `shm_open` does, which `rustix::shm::open` does not), `O_NONBLOCK` (a FIFO
//! planted under the name cannot block us) and `O_CLOEXEC`, and anything but a
//! regular file is refused: a symbolic link is [`Error::NotShmbatch`] with reason
//! `"is a symbolic link"`. A file without the shmbatch magic in its first bytes is
//! [`Error::NotShmbatch`] at once ([`probe`]).
//!
//! **Creation is all-or-nothing.** A segment is built under a hidden temporary name
//! ([`temp_name`]: `.shmbatch-tmp-PID-START-N-NAME`), its creator initialises it and
//! publishes its header there, and only then does it get its real name, with
//! `renameat2(RENAME_NOREPLACE)`, or `link` + `unlink` where the filesystem has no
//! `RENAME_NOREPLACE`. Both fail atomically with `EEXIST` if the name is taken. So a
//! creator killed at any moment leaves under the real name either nothing or a
//! complete segment (stale once its creator is dead). What it leaves under the
//! temporary name carries the creator's pid and start time in the name, so that
//! `shmbatch ls` shows it as half-made and `shmbatch rm --stale` removes it once
//! that process is dead, without having to trust its contents.
//!
//! **Removal.** [`remove`] deletes shmbatch segments only; [`remove_any`] any file.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;

use super::{pid_alive, Mapping, ProcId};
use crate::error::{Error, Result};
use crate::layout::{Identity, IDENTITY_SIZE, MAGIC};

/// Where POSIX shared memory objects live on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// Longest segment name we accept, in bytes, without the leading `/`.
/// (Linux limits a name in `/dev/shm` to 255 bytes; we keep a margin for tools.)
pub const MAX_NAME_LEN: usize = 250;

/// Permission bits of a new segment's file unless told otherwise: owner only.
pub(crate) const DEFAULT_MODE: u32 = 0o600;

/// Numbers the temporary names this process makes ([`temp_name`]).
static TEMP_N: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name for `name` ([`temp_name`]).
fn next_temp(name: &Name) -> Name {
    // Relaxed: a counter that only has to give each call its own number.
    temp_name(name, TEMP_N.fetch_add(1, Ordering::Relaxed))
}

/// Start of the temporary name a segment is built under (reserved: `create` refuses
/// names that start with it).
pub(crate) const TEMP_PREFIX: &str = ".shmbatch-tmp-";

/// A validated segment name: `"prices"` and `"/prices"` are the same name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Name {
    /// Without the leading `/`: the file's name in [`SHM_DIR`].
    bare: String,
}

impl Name {
    pub(crate) fn new(name: &str) -> Result<Name> {
        let bad = |reason| {
            Err(Error::InvalidName {
                name: name.to_owned(),
                reason,
            })
        };
        let bare = name.strip_prefix('/').unwrap_or(name);
        if bare.is_empty() {
            return bad("the name is empty");
        }
        if bare.len() > MAX_NAME_LEN {
            return bad("the name is longer than 250 bytes");
        }
        if bare.contains('/') {
            return bad("the name contains '/' after its first character");
        }
        if bare.contains('\0') {
            return bad("the name contains a NUL byte");
        }
        if bare == "." || bare == ".." {
            return bad("'.' and '..' are not segment names");
        }
        Ok(Name {
            bare: bare.to_owned(),
        })
    }

    /// The name without the leading `/`.
    pub(crate) fn as_str(&self) -> &str {
        &self.bare
    }

    /// Whether this is the temporary name of a segment being built.
    pub(crate) fn is_temporary(&self) -> bool {
        self.bare.starts_with(TEMP_PREFIX)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The error of system call `op` on the file of segment `name`.
pub(crate) fn io_error(op: &'static str, name: &Name, e: Errno) -> Error {
    match e {
        Errno::NOENT => Error::NotFound {
            name: name.as_str().to_owned(),
        },
        Errno::EXIST => Error::AlreadyExists {
            name: name.as_str().to_owned(),
        },
        e => Error::Io {
            op,
            name: name.as_str().to_owned(),
            source: e.into(),
        },
    }
}

fn not_shmbatch(name: &Name, reason: impl Into<String>) -> Error {
    Error::NotShmbatch {
        name: name.as_str().to_owned(),
        reason: reason.into(),
    }
}

/// `/dev/shm`, as a directory to open and rename names in.
fn dir(name: &Name) -> Result<OwnedFd> {
    rustix::fs::open(
        SHM_DIR,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Io {
        op: "open /dev/shm",
        name: name.as_str().to_owned(),
        source: e.into(),
    })
}

/// How [`open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// `O_RDONLY`: inspection and removal.
    Read,
    /// `O_RDWR`: attaching.
    ReadWrite,
}

/// Open the file of segment `name`: the one function that opens an existing name
/// (module docs, "Opening"). Returns it with its `fstat`.
///
/// # Errors
/// [`Error::NotFound`]; [`Error::NotShmbatch`] for a symbolic link or anything but a
/// regular file; [`Error::Io`].
pub(crate) fn open(name: &Name, access: Access) -> Result<(OwnedFd, Stat)> {
    let mode = match access {
        Access::Read => OFlags::RDONLY,
        Access::ReadWrite => OFlags::RDWR,
    };
    let flags = mode | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir(name)?, name.as_str(), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => return Err(not_shmbatch(name, "is a symbolic link")),
        Err(Errno::ISDIR) => return Err(not_shmbatch(name, "is a directory")),
        Err(e) => return Err(io_error("open", name, e)),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| io_error("fstat", name, e))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(not_shmbatch(name, "is not a regular file"));
    }
    Ok((fd, stat))
}

/// What the identity block of a file with the shmbatch magic says.
#[derive(Debug)]
pub(crate) struct Probe {
    /// [`Identity::is_ready`]: `Ok(false)` while the header is unpublished.
    pub(crate) ready: Result<bool>,
    /// The creator's pid as the header records it (may be unwritten yet: 0).
    pub(crate) creator_pid: u32,
}

/// Read the identity block of the open file `fd`, `len` bytes long: is it a
/// shmbatch segment, and is its header published?
///
/// # Errors
/// [`Error::NotShmbatch`] for a file shorter than the header or without the magic;
/// [`Error::Io`] if it cannot be mapped.
pub(crate) fn probe(fd: impl AsFd, len: u64, name: &Name) -> Result<Probe> {
    if len == 0 {
        return Err(not_shmbatch(name, "the file is empty"));
    }
    if len < IDENTITY_SIZE as u64 {
        return Err(not_shmbatch(
            name,
            format!("only {len} bytes, shorter than the {IDENTITY_SIZE}-byte header"),
        ));
    }
    // Map only the identity block, so that a hostile size cannot make us map much.
    let map = Mapping::new(fd, IDENTITY_SIZE, Access::Read, name)?;
    let identity: &Identity = map.at(0);
    // Relaxed: the magic and pid are facts to report; `is_ready`'s Acquire load is
    // the sync point with the creator's `publish` for whoever reads on.
    let magic = identity.magic.load(Ordering::Relaxed);
    let ready = identity.is_ready();
    let creator_pid = identity.creator_pid.load(Ordering::Relaxed);
    drop(map);
    if magic != MAGIC {
        return Err(not_shmbatch(name, "no shmbatch magic"));
    }
    Ok(Probe { ready, creator_pid })
}

/// Whether `name` exists in [`SHM_DIR`] (a link is not followed).
pub(crate) fn exists(name: &Name) -> Result<bool> {
    match rustix::fs::statat(dir(name)?, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(io_error("stat", name, e)),
    }
}

/// A segment file being built under its temporary name, not yet visible under
/// its real one.
#[derive(Debug)]
pub(crate) struct Building {
    /// The temporary name, in [`SHM_DIR`].
    pub(crate) temp: Name,
    /// The file, open for reading and writing.
    pub(crate) fd: OwnedFd,
}

/// The temporary name that this process builds its `n`-th segment for `name`
/// under: [`TEMP_PREFIX`], then `PID-START-N-`, then as much of `name` as fits in
/// [`MAX_NAME_LEN`] bytes (for people reading `ls`; the name is not needed to judge
/// or remove a temporary).
pub(crate) fn temp_name(name: &Name, n: u64) -> Name {
    let me = ProcId::me();
    let mut s = format!("{TEMP_PREFIX}{}-{}-{n}-", me.pid, me.start);
    let mut cut = name.as_str().len().min(MAX_NAME_LEN - s.len());
    while !name.as_str().is_char_boundary(cut) {
        cut -= 1;
    }
    s.push_str(&name.as_str()[..cut]);
    Name { bare: s }
}

/// What a temporary name says: who is building it, and for which name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Temporary {
    /// The process building it.
    pub(crate) creator: ProcId,
    /// The start of the name it is being built for.
    pub(crate) for_name: String,
}

impl Temporary {
    /// Parse a file name made by [`temp_name`]; `None` for any other name.
    pub(crate) fn parse(file: &str) -> Option<Temporary> {
        let rest = file.strip_prefix(TEMP_PREFIX)?;
        let (pid, rest) = rest.split_once('-')?;
        let (start, rest) = rest.split_once('-')?;
        let (n, for_name) = rest.split_once('-')?;
        n.parse::<u64>().ok()?;
        Some(Temporary {
            creator: ProcId {
                pid: pid.parse().ok()?,
                start: start.parse().ok()?,
            },
            for_name: for_name.to_owned(),
        })
    }

    /// Whether its creator still runs. A start time of 0 means the creator could
    /// not read its own: then the pid alone decides (a reused pid looks alive).
    pub(crate) fn creator_alive(&self) -> bool {
        if self.creator.start == 0 {
            pid_alive(self.creator.pid)
        } else {
            self.creator.alive()
        }
    }
}

/// Create a file of `len` bytes (reserved, zero-filled, with permission bits
/// `mode`, not masked by the umask) under a new temporary name for `name`. The
/// caller builds the segment in it and then calls [`publish`], or [`unlink`]s the
/// temporary.
///
/// # Errors
/// [`Error::InvalidName`] for a name that starts with [`TEMP_PREFIX`];
/// [`Error::AlreadyExists`] if `name` exists already (checked again, atomically, by
/// [`publish`]); [`Error::Io`], for instance when `/dev/shm` is full.
pub(crate) fn create_temp(name: &Name, len: usize, mode: u32) -> Result<Building> {
    debug_assert!(mode <= 0o777, "Options checks the mode");
    if name.is_temporary() {
        return Err(Error::InvalidName {
            name: name.as_str().to_owned(),
            reason: "names starting with '.shmbatch-tmp-' are reserved for segments being created",
        });
    }
    // A cheap early answer, so that a taken name costs no allocation of `len` bytes.
    if exists(name)? {
        return Err(io_error("create", name, Errno::EXIST));
    }
    let dir = dir(name)?;
    let (temp, fd) = loop {
        let temp = next_temp(name);
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // Created owner-only; `fchmod` below sets the mode asked for, whatever the umask.
        match rustix::fs::openat(&dir, temp.as_str(), flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => break (temp, fd),
            // Left by a dead process that had our pid and start time (a pid
            // namespace restarted): take the next number.
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(io_error("open", name, e)),
        }
    };
    let fail = |e: Error| {
        let _ = rustix::fs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
        e
    };
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
        .map_err(|e| fail(io_error("fchmod", name, e)))?;
    rustix::fs::ftruncate(&fd, len as u64).map_err(|e| fail(io_error("ftruncate", name, e)))?;
    // Reserve the pages now, so that a full /dev/shm is an error here and not a
    // SIGBUS on first touch. Filesystems without fallocate just skip it.
    match rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, len as u64) {
        Ok(()) | Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => {}
        Err(e) => return Err(fail(io_error("fallocate", name, e))),
    }
    Ok(Building { temp, fd })
}

/// Give the temporary file `temp` its real name `name`, atomically and only if
/// `name` does not exist. On an error the temporary is left for the caller to
/// [`unlink`].
///
/// # Errors
/// [`Error::AlreadyExists`] if `name` exists; [`Error::Io`].
pub(crate) fn publish(temp: &Name, name: &Name) -> Result<()> {
    let dir = dir(name)?;
    match rustix::fs::renameat_with(
        &dir,
        temp.as_str(),
        &dir,
        name.as_str(),
        RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        // EINVAL: this filesystem has no RENAME_NOREPLACE; ENOSYS: no renameat2.
        Err(Errno::INVAL) | Err(Errno::NOSYS) => link_then_unlink(&dir, temp, name),
        Err(e) => Err(publish_error("renameat2", name, e)),
    }
}

/// [`io_error`], but a missing temporary (someone removed it) is not `NotFound`,
/// which would say that `name` does not exist.
fn publish_error(op: &'static str, name: &Name, e: Errno) -> Error {
    match e {
        Errno::NOENT => Error::Io {
            op,
            name: name.as_str().to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the temporary file the segment was built in was removed",
            ),
        },
        e => io_error(op, name, e),
    }
}

/// The fallback of [`publish`]: `link` fails atomically with `EEXIST`. A creator
/// killed between the two calls leaves the segment under both names; the
/// temporary one is then removed as stale.
fn link_then_unlink(dir: &OwnedFd, temp: &Name, name: &Name) -> Result<()> {
    rustix::fs::linkat(dir, temp.as_str(), dir, name.as_str(), AtFlags::empty())
        .map_err(|e| publish_error("link", name, e))?;
    // Failure here leaves a temporary that is removed as stale once we are gone.
    let _ = rustix::fs::unlinkat(dir, temp.as_str(), AtFlags::empty());
    Ok(())
}

/// Unlink `name` from [`SHM_DIR`], whatever it is (a link itself, not its target).
///
/// # Errors
/// [`Error::NotFound`], [`Error::Io`].
pub(crate) fn unlink(name: &Name) -> Result<()> {
    rustix::fs::unlinkat(dir(name)?, name.as_str(), AtFlags::empty())
        .map_err(|e| io_error("unlink", name, e))
}

/// Remove the file `name` if `judge`, given it open (read-only) with its `fstat`,
/// says so, and only that file: not one that replaced it after it was judged.
/// Returns whether the name is free of the judged file (`true` too if it had gone
/// before it could be judged or moved).
///
/// There is no "unlink if still this inode", so the file is first renamed to a
/// temporary name of ours ([`temp_name`]) and its inode compared with the judged
/// one: the same file is unlinked; another one (a segment published in the moment
/// between the judgement and the rename) is given its name back, atomically and
/// only if the name is still free. Its openers may see `NotFound` for that moment.
/// (If yet another segment took the name meanwhile, the moved one stays under the
/// temporary name, which `shmbatch rm --stale` removes after this process exits.)
///
/// # Errors
/// [`Error::InvalidName`], [`Error::Io`]; the errors of [`open`] but `NotFound`.
pub(crate) fn remove_judged(
    name: &Name,
    judge: impl FnOnce(&OwnedFd, &Stat) -> bool,
) -> Result<bool> {
    let (fd, stat) = match open(name, Access::Read) {
        Ok(opened) => opened,
        Err(Error::NotFound { .. }) => return Ok(true),
        Err(e) => return Err(e),
    };
    if !judge(&fd, &stat) {
        return Ok(false);
    }
    let dir = dir(name)?;
    let aside = next_temp(name);
    match rustix::fs::renameat(&dir, name.as_str(), &dir, aside.as_str()) {
        Ok(()) => {}
        Err(Errno::NOENT) => return Ok(true),
        Err(e) => return Err(io_error("rename", name, e)),
    }
    let moved = rustix::fs::statat(&dir, aside.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_error("stat", &aside, e))?;
    if (moved.st_dev, moved.st_ino) == (stat.st_dev, stat.st_ino) {
        unlink(&aside)?;
        return Ok(true);
    }
    publish(&aside, name)?;
    Ok(false)
}

/// Delete the shmbatch segment `name`. Processes that have it open keep their
/// mapping; the name is free for a new segment at once. A file that is not a
/// shmbatch segment is left alone (see [`remove_any`]); a damaged segment (magic
/// present, header invalid) is removed. Nothing stops a process from replacing
/// the file between the check and the unlink.
///
/// # Errors
/// [`Error::InvalidName`]; [`Error::NotFound`] if there is no such file;
/// [`Error::NotShmbatch`] if the file is not a shmbatch segment (no magic, shorter
/// than a header, a symbolic link, not a regular file); [`Error::Io`].
pub fn remove(name: &str) -> Result<()> {
    let name = Name::new(name)?;
    let (fd, stat) = open(&name, Access::Read)?;
    probe(&fd, stat.st_size as u64, &name)?;
    unlink(&name)
}

/// Delete the file `name` from `/dev/shm`, whatever it holds: the forced variant
/// of [`remove`], for files that are not shmbatch segments (a half-written file,
/// another program's, a symbolic link, which is removed itself and not its
/// target).
///
/// # Errors
/// [`Error::InvalidName`], [`Error::NotFound`], or [`Error::Io`] (a directory, for
/// instance).
pub fn remove_any(name: &str) -> Result<()> {
    unlink(&Name::new(name)?)
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_validated() {
        assert_eq!(Name::new("prices").unwrap(), Name::new("/prices").unwrap());
        for bad in ["", "/", "a/b", "//a", "a\0b", ".", "..", &"x".repeat(251)] {
            assert!(
                matches!(Name::new(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(Name::new(&"x".repeat(250)).is_ok());
    }

    #[test]
    fn temporary_names_parse_back_and_fit_for_any_name() {
        for name in ["a", "with-dashes-1-2", &"é".repeat(125), &"x".repeat(250)] {
            let name = Name::new(name).unwrap();
            let temp = temp_name(&name, u64::MAX);
            assert!(temp.as_str().len() <= MAX_NAME_LEN, "{temp:?}");
            assert!(temp.is_temporary());
            Name::new(temp.as_str()).unwrap();
            let t = Temporary::parse(temp.as_str()).unwrap();
            assert_eq!(t.creator, ProcId::me());
            assert!(name.as_str().starts_with(&t.for_name), "{t:?}");
            assert!(t.creator_alive());
        }
        for other in [
            "prices",
            ".shmbatch-tmp-",
            ".shmbatch-tmp-1-2-x",
            ".shmbatch-tmp-a-2-3-x",
            ".shmbatch-tmp-1-2-n-x",
        ] {
            assert_eq!(Temporary::parse(other), None, "{other}");
        }
    }

    fn fresh(tag: &str) -> Name {
        Name::new(&format!("shmbatch-test-files-{tag}-{}", std::process::id())).unwrap()
    }

    #[test]
    fn publishing_by_link_refuses_a_taken_name() {
        // The fallback for filesystems without RENAME_NOREPLACE, run on tmpfs.
        let name = fresh("link");
        let other = fresh("link-other");
        let a = create_temp(&name, 4096, DEFAULT_MODE).unwrap();
        let b = create_temp(&other, 4096, DEFAULT_MODE).unwrap();
        let dir = dir(&name).unwrap();
        link_then_unlink(&dir, &a.temp, &name).unwrap();
        assert!(!exists(&a.temp).unwrap() && exists(&name).unwrap());
        assert!(matches!(
            link_then_unlink(&dir, &b.temp, &name),
            Err(Error::AlreadyExists { .. })
        ));
        assert!(exists(&b.temp).unwrap());
        assert!(matches!(
            publish(&b.temp, &name),
            Err(Error::AlreadyExists { .. })
        ));
        unlink(&b.temp).unwrap();
        unlink(&name).unwrap();
        assert!(!exists(&name).unwrap());
    }

    #[test]
    fn only_the_judged_file_is_removed() {
        let name = fresh("judged");
        let write = |bytes: &[u8]| std::fs::write(format!("{SHM_DIR}/{}", name.as_str()), bytes);
        write(b"old").unwrap();
        assert!(!remove_judged(&name, |_, _| false).unwrap());
        assert!(exists(&name).unwrap());
        // Replaced by another file after it was judged: that one stays.
        let replaced = remove_judged(&name, |_, _| {
            unlink(&name).unwrap();
            write(b"new").unwrap();
            true
        });
        assert!(!replaced.unwrap());
        let left = std::fs::read(format!("{SHM_DIR}/{}", name.as_str())).unwrap();
        assert_eq!(left, b"new");
        assert!(remove_judged(&name, |_, _| true).unwrap());
        assert!(!exists(&name).unwrap());
        // Gone already: the name is free.
        assert!(remove_judged(&name, |_, _| unreachable!()).unwrap());
        let me = ProcId::me();
        let prefix = format!("{TEMP_PREFIX}{}-{}-", me.pid, me.start);
        let moved_aside = std::fs::read_dir(SHM_DIR)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .any(|f| f.starts_with(&prefix) && f.ends_with(name.as_str()));
        assert!(!moved_aside, "nothing is left under a temporary name");
    }

    #[test]
    fn reserved_names_are_not_created() {
        let name = Name::new(&format!("{TEMP_PREFIX}1-2-3-x")).unwrap();
        assert!(matches!(
            create_temp(&name, 4096, DEFAULT_MODE),
            Err(Error::InvalidName { .. })
        ));
    }
}
