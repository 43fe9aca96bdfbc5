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
//!
//! Here: [`Parent`], the open directory and the name in it, and what
//! reads or opens that name. By concern, the rest:
//! - `entry`: what a name is ([`Entry`], [`Kind`], [`FileId`]);
//! - `walk`: how [`Parent::open`] reaches the directory, and judges it;
//! - `remove`: removing the file recorded, and nothing else ([`Removal`]);
//! - `socket`: a socket's file, bound and then held by its inode
//!   ([`Pinned`], [`PinnedSocket`]).

mod entry;
mod remove;
mod socket;
#[cfg(test)]
mod tests;
mod walk;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

pub use entry::{entry_of, Entry, FileId, Kind};
pub use remove::Removal;
pub use socket::Pinned;
// Part of the interface as before the split, though no caller names it
// today (they match `Pinned::Socket(s)`).
#[allow(unused_imports)]
pub use socket::PinnedSocket;
use walk::walk;

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
}
