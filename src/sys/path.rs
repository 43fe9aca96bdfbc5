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
//! says so. The directory's own path is resolved as root wrote it
//! (`/var/run` may be a link to `/run`); its identity is checked too.
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
}

impl Parent {
    /// Opens the directory of `path` (its path as given, links in it
    /// included) and keeps the last component, which must be a name.
    pub fn open(path: &Path) -> io::Result<Parent> {
        let invalid = || io::Error::from_raw_os_error(libc::EINVAL);
        let name = path
            .file_name()
            .filter(|n| !n.is_empty())
            .ok_or_else(invalid)?;
        let name = CString::new(name.as_bytes()).map_err(|_| invalid())?;
        let dir_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let fd = nix::fcntl::open(
            &dir_path,
            OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | DIR_FLAGS,
            Mode::empty(),
        )?;
        Ok(Parent {
            dir: take(fd),
            name,
            dir_path,
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
    /// change what this directory holds: it and every directory above it
    /// are owned by one of them, and none is writable by its group or by
    /// others unless it has the sticky bit (as /tmp). The reason when not.
    pub fn check_trusted(&self) -> Result<(), String> {
        let shown = std::fs::canonicalize(&self.dir_path).unwrap_or_else(|_| self.dir_path.clone());
        let mut names: Vec<PathBuf> = shown.ancestors().map(Path::to_path_buf).collect();
        names.reverse();
        let mut fd = self
            .dir
            .try_clone()
            .map_err(|e| format!("{}: {e}", shown.display()))?;
        loop {
            let here = names.pop().unwrap_or_else(|| PathBuf::from(".."));
            let e = entry_of(std::os::fd::AsFd::as_fd(&fd))
                .map_err(|err| format!("{}: {err}", here.display()))?;
            if !e.owned_by_us() {
                return Err(format!(
                    "the directory {} is owned by uid {}, neither root nor the daemon's user",
                    here.display(),
                    e.uid
                ));
            }
            if e.mode & 0o022 != 0 && e.mode & 0o1000 == 0 {
                return Err(format!(
                    "the directory {} is writable by {} (mode {:04o}) and has no sticky bit",
                    here.display(),
                    if e.mode & 0o002 != 0 {
                        "others"
                    } else {
                        "its group"
                    },
                    e.mode
                ));
            }
            let up = nix::fcntl::openat(
                Some(fd.as_raw_fd()),
                "..",
                OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | DIR_FLAGS,
                Mode::empty(),
            )
            .map_err(|err| format!("{}/..: {}", here.display(), err.desc()))?;
            let up = take(up);
            let above = entry_of(std::os::fd::AsFd::as_fd(&up))
                .map_err(|err| format!("{}/..: {err}", here.display()))?;
            if above.id == e.id {
                return Ok(());
            }
            fd = up;
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
            .dir_path
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
