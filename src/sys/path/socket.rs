//! A `Unix`-domain socket's file: bound with its mode from birth
//! ([`Parent::bind_socket`]), then held by its inode ([`PinnedSocket`])
//! to change its owner and mode or to ask whether anyone listens on it.
//!
//! Binding changes the process's umask and working directory for the
//! length of one bind(2): the caller must be single-threaded.

#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::os::unix::ffi::OsStrExt;
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::path::PathBuf;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

#[cfg(any(target_os = "linux", target_os = "android"))]
use super::entry_of;
use super::{take, Entry, FileId, Kind, Parent, DIR_FLAGS};

impl Parent {
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
