//! Files the master makes, changes and removes as root in directories
//! that others may be able to write: the pidfile, the control socket and
//! the sockets of `unix:` addresses.
//!
//! Every call here works relative to a descriptor of the file's directory
//! ([`Parent`]) and never follows a symbolic link at the file's own name:
//! `O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, or (Linux) an `O_PATH` descriptor
//! of the inode itself. A file is known by its device and inode
//! ([`FileId`]), recorded when it is made and checked again before it is
//! changed or removed: one replaced since is left alone, and the caller
//! says so. The directory's own path is walked from `/` one directory at
//! a time, following only the links that root or the daemon's user made
//! in a directory only they can change (`/var/run` may be a link to
//! `/run`), and judging each directory on the way ([`Parent::open`]); its
//! identity is checked too.
//!
//! No directory descriptor outlives the call that opened it: a worker
//! that inherited one could use it to leave its chroot.
//!
//! [`Parent::bind_socket`] changes the process's umask and working
//! directory for the length of one bind(2): the caller must be
//! single-threaded, as the master is.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

/// A file's identity: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// st_dev.
    pub dev: u64,
    /// st_ino.
    pub ino: u64,
}

/// What a name is, as `lstat` sees it (a link, not what it points to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A `Unix`-domain socket.
    Socket,
    /// A symbolic link.
    Symlink,
    /// A FIFO or a device.
    Other,
}

impl Kind {
    /// "a regular file", "a symbolic link", ...
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Socket => "a socket",
            Kind::Symlink => "a symbolic link",
            Kind::Other => "a special file",
        }
    }
}

/// One file's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Device and inode.
    pub id: FileId,
    /// Its type.
    pub kind: Kind,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits with set-id and sticky (& 0o7777).
    pub mode: u32,
    /// Hard links.
    pub nlink: u64,
}

impl Entry {
    // The fields' types differ between systems (st_mode is u16 on the
    // BSDs, st_nlink u32 on 32-bit Linux).
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &FileStat) -> Entry {
        let fmt = SFlag::from_bits_truncate(st.st_mode as _) & SFlag::S_IFMT;
        let kind = match fmt {
            SFlag::S_IFREG => Kind::File,
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFSOCK => Kind::Socket,
            SFlag::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        };
        Entry {
            id: FileId {
                dev: st.st_dev as u64,
                ino: st.st_ino as u64,
            },
            kind,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode as u32 & 0o7777,
            nlink: st.st_nlink as u64,
        }
    }

    /// Whether the owner is root or the calling process's effective user.
    pub fn owned_by_us(&self) -> bool {
        self.uid == 0 || self.uid == nix::unistd::geteuid().as_raw()
    }
}

/// What [`Parent::remove_if`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The file was ours and is gone now.
    Removed,
    /// There was nothing at the name.
    Gone,
    /// Something else is there now: left alone.
    Replaced(Entry),
}

/// The status of an open descriptor.
pub fn entry_of(fd: BorrowedFd<'_>) -> io::Result<Entry> {
    Ok(Entry::of(&nix::sys::stat::fstat(fd.as_raw_fd())?))
}

/// How directories are opened: only to be looked in, where the system can.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIR_FLAGS: OFlag = OFlag::O_PATH;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DIR_FLAGS: OFlag = OFlag::O_RDONLY;

fn take(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by open(2)/openat(2) to this caller,
    // which owns it and hands it over once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A directory, open, and the name of one file in it.
#[derive(Debug)]
pub struct Parent {
    dir: OwnedFd,
    name: CString,
    dir_path: PathBuf,
    /// The directory's path as it was walked: links resolved.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    real: PathBuf,
    /// Why someone else than root and the daemon's user could change which
    /// directory the path names (a directory on the way that they own, or
    /// may write without a sticky bit); `None` if nobody can.
    above: Option<String>,
    /// Why someone else could change what the directory itself holds.
    here: Option<String>,
}

/// Why [`Parent::open`] did not open a directory.
#[derive(Debug)]
pub enum OpenError {
    /// The system said no (no such directory, permission denied...).
    Io(io::Error),
    /// A symbolic link on the way that someone else than root and the
    /// daemon's user made, or could replace: not followed, and why.
    Unsafe(String),
}

impl From<OpenError> for io::Error {
    fn from(e: OpenError) -> io::Error {
        match e {
            OpenError::Io(e) => e,
            OpenError::Unsafe(why) => io::Error::other(why),
        }
    }
}

impl From<Errno> for OpenError {
    fn from(e: Errno) -> OpenError {
        OpenError::Io(e.into())
    }
}

/// Links followed in one path at most, as the kernel's limit (ELOOP).
const MAX_LINKS: usize = 40;

/// One directory of a walk: open, its path, and why someone else than
/// root and the daemon's user can change what it holds, if they can.
struct Step {
    fd: OwnedFd,
    shown: PathBuf,
    untrusted: Option<String>,
}

/// Why someone else than root and the daemon's user can change what the
/// directory `e` (at `shown`) holds: another owns it, or its group or
/// others may write it and it has no sticky bit. `None`: nobody can.
fn judge_dir(e: &Entry, shown: &Path) -> Option<String> {
    if !e.owned_by_us() {
        return Some(format!(
            "the directory {} is owned by uid {}, neither root nor the daemon's user",
            shown.display(),
            e.uid
        ));
    }
    if e.mode & 0o022 != 0 && e.mode & 0o1000 == 0 {
        return Some(format!(
            "the directory {} is writable by {} (mode {:04o}) and has no sticky bit",
            shown.display(),
            if e.mode & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            e.mode
        ));
    }
    None
}

/// Opens the directory `name` in `at`, never through a link.
fn open_dir_at(at: &OwnedFd, name: &std::ffi::OsStr) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        Some(at.as_raw_fd()),
        name,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | DIR_FLAGS,
        Mode::empty(),
    )
    .map(take)
}

/// Walks `dir` one component at a time from `/`, never following a link
/// that someone else than root and the daemon's user made or could
/// replace (one of theirs, or one in a directory they can change), and
/// judges each directory on the way: the directory reached, and the steps
/// that led to it (the last one is the directory's own).
fn walk(dir: &Path) -> Result<Vec<Step>, OpenError> {
    use std::collections::VecDeque;
    use std::ffi::{OsStr, OsString};
    use std::path::Component;
    let root = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | DIR_FLAGS,
        Mode::empty(),
    )
    .map(take)?;
    let shown = PathBuf::from("/");
    let untrusted = judge_dir(
        &entry_of(std::os::fd::AsFd::as_fd(&root)).map_err(OpenError::Io)?,
        &shown,
    );
    let mut steps = vec![Step {
        fd: root,
        shown,
        untrusted,
    }];
    let components = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let mut todo: VecDeque<OsString> = components(dir).into();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            // The directory above this one on the walk is the one `..`
            // names (a link's target was walked as the link's directory).
            if steps.len() > 1 {
                steps.pop();
            }
            continue;
        }
        let here = steps.last().expect("the walk starts at /");
        let shown = here.shown.join(&name);
        match open_dir_at(&here.fd, &name) {
            Ok(fd) => {
                let e = entry_of(std::os::fd::AsFd::as_fd(&fd)).map_err(OpenError::Io)?;
                let untrusted = here.untrusted.clone().or_else(|| judge_dir(&e, &shown));
                steps.push(Step {
                    fd,
                    shown,
                    untrusted,
                });
            }
            Err(err) => {
                // A link (ELOOP; ENOTDIR for Linux's O_PATH; EMLINK on
                // FreeBSD), or really an error.
                let link = match nix::sys::stat::fstatat(
                    Some(here.fd.as_raw_fd()),
                    name.as_os_str(),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    Ok(st) if Entry::of(&st).kind == Kind::Symlink => Entry::of(&st),
                    _ => return Err(err.into()),
                };
                if let Some(why) = &here.untrusted {
                    return Err(OpenError::Unsafe(format!(
                        "{} is a symbolic link, and {why}; not followed",
                        shown.display()
                    )));
                }
                if !link.owned_by_us() {
                    return Err(OpenError::Unsafe(format!(
                        "{} is a symbolic link owned by uid {}, neither root nor the daemon's user; not followed",
                        shown.display(),
                        link.uid
                    )));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::ELOOP.into());
                }
                // Nobody else can replace the link meanwhile: it is root's
                // or ours, in a directory only root and we can change.
                let target = nix::fcntl::readlinkat(Some(here.fd.as_raw_fd()), name.as_os_str())?;
                let target = Path::new(OsStr::new(&target));
                if target.is_absolute() {
                    steps.truncate(1);
                }
                for c in components(target).into_iter().rev() {
                    todo.push_front(c);
                }
            }
        }
    }
    Ok(steps)
}

impl Parent {
    /// Opens the directory of `path` and keeps the last component, which
    /// must be a name. The directory is walked one component at a time
    /// from `/` (a relative path from the working directory), without
    /// following a link unless root or the daemon's user made it in a
    /// directory only they can change (`/var/run` may be a link to
    /// `/run`); such a link is followed, its target walked the same way.
    /// Any other link is refused ([`OpenError::Unsafe`]). Each directory
    /// on the way is judged: see [`Parent::check_trusted`] and
    /// [`Parent::check_way`].
    pub fn open(path: &Path) -> Result<Parent, OpenError> {
        let invalid = || OpenError::Io(io::Error::from_raw_os_error(libc::EINVAL));
        let name = path
            .file_name()
            .filter(|n| !n.is_empty())
            .ok_or_else(invalid)?;
        let name = CString::new(name.as_bytes()).map_err(|_| invalid())?;
        let dir_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let absolute = if dir_path.is_absolute() {
            dir_path.clone()
        } else {
            std::env::current_dir()
                .map_err(OpenError::Io)?
                .join(&dir_path)
        };
        let mut steps = walk(&absolute)?;
        let last = steps.pop().expect("the walk starts at /");
        let above = steps.pop().and_then(|s| s.untrusted);
        Ok(Parent {
            dir: last.fd,
            name,
            dir_path,
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            real: last.shown,
            above,
            // What is above it, if anything, or its own.
            here: last.untrusted,
        })
    }

    /// The directory's path, as given.
    pub fn dir_path(&self) -> &Path {
        &self.dir_path
    }

    /// The directory's identity.
    pub fn dir_id(&self) -> io::Result<FileId> {
        Ok(entry_of(self.dir_fd())?.id)
    }

    fn dir_fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.dir.as_fd()
    }

    /// The name's entry (the link itself if it is one); `None` if nothing
    /// is there.
    pub fn entry(&self) -> io::Result<Option<Entry>> {
        match nix::sys::stat::fstatat(
            Some(self.dir.as_raw_fd()),
            self.name.as_c_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(Some(Entry::of(&st))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the name with `flags`, never through a symbolic link
    /// (`O_NOFOLLOW`: a link is ELOOP), close-on-exec, never as a
    /// controlling terminal; created with `mode` under the umask if
    /// `O_CREAT` asks.
    pub fn open_file(&self, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
        let fd = nix::fcntl::openat(
            Some(self.dir.as_raw_fd()),
            self.name.as_c_str(),
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            Mode::from_bits_truncate(mode as _),
        )?;
        Ok(take(fd))
    }

    /// Removes the name if it is still the file `id` (and not a link):
    /// unlinkat(2) in this directory, after fstatat(2). Whoever could swap
    /// the file between the two could have removed it themselves.
    pub fn remove_if(&self, id: FileId) -> io::Result<Removal> {
        match self.entry()? {
            None => Ok(Removal::Gone),
            Some(e) if e.id == id && e.kind != Kind::Symlink => {
                match nix::unistd::unlinkat(
                    Some(self.dir.as_raw_fd()),
                    self.name.as_c_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                ) {
                    Ok(()) | Err(Errno::ENOENT) => Ok(Removal::Removed),
                    Err(e) => Err(e.into()),
                }
            }
            Some(e) => Ok(Removal::Replaced(e)),
        }
    }

    /// Checks that nobody but root and the calling process's user can
    /// change what this directory holds: it and every directory on the
    /// way to it are owned by one of them, and none is writable by its
    /// group or by others unless it has the sticky bit (as /tmp). The
    /// reason when not.
    pub fn check_trusted(&self) -> Result<(), String> {
        match self.above.as_ref().or(self.here.as_ref()) {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Checks that nobody but root and the calling process's user can
    /// change which directory this is: every directory on the way to it
    /// is theirs, as for [`Parent::check_trusted`], but the directory
    /// itself may be another user's (a service user's socket directory).
    pub fn check_way(&self) -> Result<(), String> {
        match &self.above {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Binds `socket` (a `Unix`-domain socket) to the name in this
    /// directory, so that its file is born with permission bits `mode`
    /// (the umask is set to its complement for the call; `None` keeps the
    /// process's umask), owned by the caller. The name is bound relative
    /// to this directory (fchdir(2) to it and back): no link in its path
    /// is followed after [`Parent::open`], and the length of the
    /// directory's path does not count against `sun_path`'s.
    ///
    /// Changes the working directory and the umask, process-wide, for the
    /// length of the call: only for a single-threaded caller.
    pub fn bind_socket(&self, socket: BorrowedFd<'_>, mode: Option<u32>) -> io::Result<()> {
        let addr = nix::sys::socket::UnixAddr::new(self.name.as_bytes())?;
        let back = nix::fcntl::open(
            ".",
            OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | DIR_FLAGS,
            Mode::empty(),
        )
        .map(take)?;
        nix::unistd::fchdir(self.dir.as_raw_fd())?;
        let old_mask =
            mode.map(|m| nix::sys::stat::umask(Mode::from_bits_truncate((!m & 0o777) as _)));
        let bound = nix::sys::socket::bind(socket.as_raw_fd(), &addr);
        if let Some(old) = old_mask {
            nix::sys::stat::umask(old);
        }
        let returned = nix::unistd::fchdir(back.as_raw_fd());
        bound?;
        returned?;
        Ok(())
    }

    /// A descriptor of the inode at the name itself (`O_PATH`, never a
    /// link's target), provided it is the socket `id`: what changes its
    /// owner or mode then cannot reach another file, whatever happens to
    /// the name meanwhile.
    pub fn pin_socket(&self, id: FileId) -> io::Result<Pinned> {
        let replaced = |e: Option<Entry>| Pinned::Replaced(e);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let fd = match self.open_file(OFlag::O_PATH, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(replaced(None)),
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Ok(replaced(self.entry()?))
                }
                Err(e) => return Err(e),
            };
            let e = entry_of(std::os::fd::AsFd::as_fd(&fd))?;
            if e.id != id || e.kind != Kind::Socket {
                return Ok(replaced(Some(e)));
            }
            Ok(Pinned::Socket(PinnedSocket { fd, entry: e }))
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            match self.entry()? {
                Some(e) if e.id == id && e.kind == Kind::Socket => {
                    Ok(Pinned::Socket(PinnedSocket {
                        dir: self.dir.try_clone()?,
                        name: self.name.clone(),
                        entry: e,
                    }))
                }
                other => Ok(replaced(other)),
            }
        }
    }

    /// Whether a process listens on the socket at the name: connects to
    /// it (through its inode where the system can, never through a link).
    /// `Ok(false)`: refused, a socket nobody accepts on.
    pub fn socket_is_live(&self, at: &PinnedSocket) -> io::Result<bool> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let target = PathBuf::from(format!("/proc/self/fd/{}", at.fd.as_raw_fd()));
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let target = self
            .real
            .join(std::ffi::OsStr::from_bytes(at.name.as_bytes()));
        match std::os::unix::net::UnixStream::connect(target) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// What [`Parent::pin_socket`] found.
#[derive(Debug)]
pub enum Pinned {
    /// The socket, held.
    Socket(PinnedSocket),
    /// Something else is at the name (`None`: nothing).
    Replaced(Option<Entry>),
}

/// A socket file known to be the one asked for.
#[derive(Debug)]
pub struct PinnedSocket {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: OwnedFd,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    dir: OwnedFd,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    name: CString,
    entry: Entry,
}

impl PinnedSocket {
    /// Its status when pinned.
    pub fn entry(&self) -> Entry {
        self.entry
    }

    /// Gives it to `uid`:`gid` (fchownat(2) on the inode itself).
    pub fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        use nix::unistd::{Gid, Uid};
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return Ok(nix::unistd::fchownat(
            Some(self.fd.as_raw_fd()),
            "",
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_EMPTY_PATH,
        )?);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return Ok(nix::unistd::fchownat(
            Some(self.dir.as_raw_fd()),
            self.name.as_c_str(),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?);
    }

    /// Sets its permission bits (on Linux through /proc/self/fd, which
    /// names the inode itself; elsewhere fchmodat(2) without following a
    /// link).
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        let mode = Mode::from_bits_truncate(mode as _);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return Ok(nix::sys::stat::fchmodat(
            None,
            format!("/proc/self/fd/{}", self.fd.as_raw_fd()).as_str(),
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return Ok(nix::sys::stat::fchmodat(
            Some(self.dir.as_raw_fd()),
            self.name.as_c_str(),
            mode,
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("preforkd-path-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_link_at_the_name_is_not_followed() {
        let dir = scratch("link");
        let target = dir.join("target");
        std::fs::write(&target, "keep\n").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("name")).unwrap();
        let p = Parent::open(&dir.join("name")).unwrap();
        let err = p
            .open_file(OFlag::O_RDWR | OFlag::O_CREAT, 0o644)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        assert_eq!(p.entry().unwrap().unwrap().kind, Kind::Symlink);
        let id = entry_of(std::os::fd::AsFd::as_fd(
            &std::fs::File::open(&target).unwrap(),
        ))
        .unwrap()
        .id;
        // The link is not the file, even if it points to it.
        assert!(matches!(p.remove_if(id).unwrap(), Removal::Replaced(_)));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_directory_writable_by_others_is_refused_unless_sticky() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("trust");
        let open = dir.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let why = Parent::open(&open.join("x"))
            .unwrap()
            .check_trusted()
            .unwrap_err();
        assert!(why.contains("writable by others (mode 0777)"), "{why}");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        Parent::open(&open.join("x"))
            .unwrap()
            .check_trusted()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn refusal(path: &Path) -> String {
        match Parent::open(path) {
            Err(OpenError::Unsafe(why)) => why,
            other => panic!("{}: not refused: {other:?}", path.display()),
        }
    }

    #[test]
    fn a_link_is_followed_only_if_only_root_could_have_made_it() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = scratch("links");
        std::fs::create_dir(dir.join("real")).unwrap();
        // Root's links in root's directory, as /var/run -> /run.
        symlink("real", dir.join("relative")).unwrap();
        symlink(dir.join("real"), dir.join("absolute")).unwrap();
        symlink("../links-up", dir.join("real/up")).unwrap();
        for via in [
            "relative",
            "absolute",
            "relative/../real",
            "real/../absolute",
        ] {
            let p = Parent::open(&dir.join(via).join("x")).unwrap();
            assert_eq!(p.dir_id().unwrap(), {
                let f = std::fs::File::open(dir.join("real")).unwrap();
                entry_of(std::os::fd::AsFd::as_fd(&f)).unwrap().id
            });
            p.check_trusted().unwrap();
        }
        // A link to nowhere is the system's error, not a refusal.
        assert!(matches!(
            Parent::open(&dir.join("real/up/x")),
            Err(OpenError::Io(_))
        ));
        // A link in a directory others may write: never followed.
        let open = dir.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        symlink(dir.join("real"), open.join("l")).unwrap();
        let why = refusal(&open.join("l/x"));
        assert_eq!(
            why,
            format!(
                "{}/l is a symbolic link, and the directory {} is writable by others (mode 0777) \
                 and has no sticky bit; not followed",
                open.display(),
                open.display()
            )
        );
        // Even further on.
        std::fs::create_dir(open.join("sub")).unwrap();
        symlink(dir.join("real"), open.join("sub/l")).unwrap();
        assert!(refusal(&open.join("sub/l/x")).contains("is writable by others"));
        // Another user's link in a sticky directory, as /tmp.
        if nix::unistd::geteuid().is_root() {
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
            nix::unistd::fchownat(
                None,
                &open.join("l"),
                Some(nix::unistd::Uid::from_raw(65534)),
                None,
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .unwrap();
            assert_eq!(
                refusal(&open.join("l/x")),
                format!(
                    "{}/l is a symbolic link owned by uid 65534, neither root nor the daemon's user; not followed",
                    open.display()
                )
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_directory_on_the_way_that_others_may_write_makes_the_way_untrusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("way");
        let open = dir.join("open");
        std::fs::create_dir_all(open.join("sub")).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        // The directory itself may be changed by others: the way is
        // trusted, the directory is not.
        let p = Parent::open(&open.join("x")).unwrap();
        p.check_way().unwrap();
        assert!(p.check_trusted().is_err());
        // A directory below it: neither.
        let p = Parent::open(&open.join("sub/x")).unwrap();
        let why = format!(
            "the directory {} is writable by others (mode 0777) and has no sticky bit",
            open.display()
        );
        assert_eq!(p.check_way(), Err(why.clone()));
        assert_eq!(p.check_trusted(), Err(why));
        // Relative to the working directory: the same walk.
        let p = Parent::open(Path::new("x")).unwrap();
        let f = std::fs::File::open(".").unwrap();
        assert_eq!(
            p.dir_id().unwrap(),
            entry_of(std::os::fd::AsFd::as_fd(&f)).unwrap().id
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_socket_is_born_with_its_mode() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = scratch("bind");
        let path = dir.join("s");
        let socket =
            socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        let p = Parent::open(&path).unwrap();
        p.bind_socket(std::os::fd::AsFd::as_fd(&socket), Some(0o640))
            .unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        let id = p.entry().unwrap().unwrap().id;
        let Pinned::Socket(s) = p.pin_socket(id).unwrap() else {
            panic!("not pinned")
        };
        s.chmod(0o600).unwrap();
        let (uid, gid) = (meta.uid(), meta.gid());
        s.chown(uid, gid).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(!p.socket_is_live(&s).unwrap());
        socket.listen(1).unwrap();
        assert!(p.socket_is_live(&s).unwrap());
        assert_eq!(p.remove_if(id).unwrap(), Removal::Removed);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
