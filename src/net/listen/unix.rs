//! `Unix`-domain sockets: binding one as root in a directory others may
//! write, a stale file replaced, and the socket's file (its mode and
//! owner, whether it is still ours, its removal) changed only through the
//! identity recorded when it was made.
//!
//! The calls that never follow a link are `crate::sys::path`'s; this file
//! decides when to make them.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use socket2::{Domain, Socket, Type};

use super::{ListenSocket, Listener, SocketFile};
use crate::sys;
use crate::sys::path::{Entry, Kind, Parent, Pinned, Removal};

impl Listener {
    /// Sets the mode and owner of a Unix socket's file, where they differ
    /// (no-op for IP): a reload changed `socket_mode` or `socket_owner`.
    ///
    /// Only the file this listener made is changed, through a descriptor
    /// of its inode (see `crate::sys::path::Parent::pin_socket`): if
    /// its name holds anything else now, nothing is changed and the error
    /// says what is there. The mode first, while the file may still be
    /// the master's own: changing the mode of a file given away needs
    /// CAP_FOWNER, which the packaged systemd unit does not grant.
    pub fn set_file_access(&self, mode: Option<u32>, owner: Option<(u32, u32)>) -> io::Result<()> {
        let ListenSocket::Unix { path, file, .. } = &self.socket else {
            return Ok(());
        };
        if mode.is_none() && owner.is_none() {
            return Ok(());
        }
        let (parent, file) = our_parent(path, file.as_ref())?;
        let pinned = match parent.pin_socket(file.id)? {
            Pinned::Socket(s) => s,
            Pinned::Replaced(found) => return Err(replaced(found)),
        };
        let now = pinned.entry();
        if let Some(mode) = mode.filter(|&m| now.mode & 0o777 != m) {
            pinned.chmod(mode)?;
        }
        if let Some((uid, gid)) = owner.filter(|&o| (now.uid, now.gid) != o) {
            pinned.chown(uid, gid)?;
        }
        Ok(())
    }

    /// Binds a Unix stream socket at `path`, as root might in a directory
    /// others can write:
    /// 0. the directory is reached without a link anyone else could have
    ///    planted, through directories only root and the daemon's user
    ///    can change (the directory itself may be a service user's); else
    ///    nothing is bound (see [`Parent::open`], [`Parent::check_way`]);
    /// 1. a stale socket file there (ours, nobody accepts on it) is
    ///    removed; anything else is left for bind(2) to refuse;
    /// 2. bind(2) relative to the directory, under a umask that gives the
    ///    file `mode` at birth (see [`Parent::bind_socket`]);
    /// 3. the file the directory names right after must be a socket of
    ///    ours with one link: its device and inode are recorded;
    /// 4. its owner is changed through a descriptor of that inode;
    /// 5. listen(2) last: until then, a connection is refused. So the
    ///    socket is connectable only with its final mode and owner.
    pub(super) fn bind_unix(
        path: &Path,
        backlog: i32,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Listener> {
        let parent = Parent::open(path)?;
        parent.check_way().map_err(io::Error::other)?;
        remove_if_stale(&parent)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        parent.bind_socket(socket.as_fd(), mode)?;
        let made = parent.entry()?.filter(|e| {
            e.kind == Kind::Socket
                && e.uid == nix::unistd::geteuid().as_raw()
                && e.nlink == 1
                && mode.is_none_or(|m| e.mode & 0o777 == m)
        });
        let Some(made) = made else {
            return Err(io::Error::other(
                "its file was replaced right after bind; nothing was changed",
            ));
        };
        let file = SocketFile {
            dir: parent.dir_id()?,
            id: made.id,
        };
        if let Some((uid, gid)) = owner {
            match parent.pin_socket(file.id)? {
                Pinned::Socket(s) => s.chown(uid, gid)?,
                Pinned::Replaced(found) => return Err(replaced(found)),
            }
        }
        socket.listen(backlog)?;
        Ok(Listener::new(
            ListenSocket::Unix {
                listener: UnixListener::from(OwnedFd::from(socket)),
                path: path.to_path_buf(),
                file: Some(file),
            },
            format!("unix:{}", path.display()),
        ))
    }

    /// Removes the socket of another daemon of ours (the previous master
    /// of a binary upgrade) at `path`, to bind our own there. Only a
    /// socket owned by root or by us is removed, never through a link.
    pub fn remove_our_socket(path: &Path) -> io::Result<()> {
        let parent = Parent::open(path)?;
        parent.check_way().map_err(io::Error::other)?;
        match parent.entry()? {
            Some(e) if e.kind == Kind::Socket && e.owned_by_us() => {
                parent.remove_if(e.id).map(drop)
            }
            Some(e) => Err(replaced(Some(e))),
            None => Ok(()),
        }
    }

    /// Whether the path of this Unix-domain socket still names it (and not
    /// a socket another process has bound there since). False for IP
    /// sockets.
    pub fn owns_socket_file(&self) -> bool {
        match &self.socket {
            ListenSocket::Unix { path, file, .. } => {
                our_parent(path, file.as_ref()).is_ok_and(|(parent, file)| {
                    parent
                        .entry()
                        .ok()
                        .flatten()
                        .is_some_and(|e| e.id == file.id)
                })
            }
            _ => false,
        }
    }

    /// Removes the socket's file, if its path still names it (unlinkat(2)
    /// in its directory after checking device and inode). Something else
    /// there is left alone: silently if it is a socket of ours (a newer
    /// master's), with a warning (W0071) otherwise.
    pub(super) fn remove_socket_file(&self) {
        if self.managed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let ListenSocket::Unix { path, file, .. } = &self.socket else {
            return;
        };
        let Some(file) = file else { return };
        let found = match our_parent(path, Some(file)) {
            Ok((parent, file)) => match parent.remove_if(file.id) {
                Ok(Removal::Removed | Removal::Gone) => return,
                Ok(Removal::Replaced(e)) if e.kind == Kind::Socket && e.owned_by_us() => return,
                Ok(Removal::Replaced(e)) => replaced(Some(e)),
                Err(e) => e,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => e,
        };
        log::warn!(
            "W0071 the socket file {}: {}; left in place",
            path.display(),
            sys::fd::describe(&found)
        );
    }
}

/// The file of a socket someone else bound at `path` (systemd, or the old
/// master of a binary upgrade), if it may be taken for ours: a socket
/// owned by root or the daemon's user, with one link, in a directory that
/// only they can swap. Else why not: a hard link to another socket of
/// root's, planted in a directory its user can write, must not be chmod'ed
/// and chown'ed at a reload.
pub(super) fn adopted_file(path: &Path) -> io::Result<SocketFile> {
    let parent = Parent::open(path)?;
    parent.check_way().map_err(io::Error::other)?;
    let e = parent
        .entry()?
        .ok_or_else(|| io::Error::other("there is no file at its path"))?;
    if e.kind != Kind::Socket || !e.owned_by_us() {
        return Err(io::Error::other(format!(
            "it is {} owned by uid {}",
            e.kind.name(),
            e.uid
        )));
    }
    if e.nlink != 1 {
        return Err(io::Error::other(format!("it has {} hard links", e.nlink)));
    }
    Ok(SocketFile {
        dir: parent.dir_id()?,
        id: e.id,
    })
}

/// The directory of a socket's file, open, if it is still the directory
/// the file was made in.
fn our_parent(path: &Path, file: Option<&SocketFile>) -> io::Result<(Parent, SocketFile)> {
    let file = *file.ok_or_else(|| io::Error::other("it was not made by this daemon"))?;
    let parent = Parent::open(path)?;
    if parent.dir_id()? != file.dir {
        return Err(io::Error::other(format!(
            "its directory {} was replaced",
            parent.dir_path().display()
        )));
    }
    Ok((parent, file))
}

/// The error for a socket's file replaced by `found` (`None`: removed).
fn replaced(found: Option<Entry>) -> io::Error {
    match found {
        None => io::Error::other("it was removed"),
        Some(e) => io::Error::other(format!(
            "it was replaced by {} owned by uid {}",
            e.kind.name(),
            e.uid
        )),
    }
}

/// Removes the file at `parent`'s name if it is a socket of ours (root's
/// or the daemon user's) that nobody accepts on, left by a daemon that was
/// killed: connected to through its inode, never through a link. A live
/// one is "address already in use"; someone else's socket is refused;
/// anything else is left for bind to report.
fn remove_if_stale(parent: &Parent) -> io::Result<()> {
    let Some(e) = parent.entry()? else {
        return Ok(());
    };
    if e.kind != Kind::Socket {
        return Ok(());
    }
    if !e.owned_by_us() {
        return Err(io::Error::other(format!(
            "a socket owned by uid {} is in the way; not removed",
            e.uid
        )));
    }
    let Pinned::Socket(pinned) = parent.pin_socket(e.id)? else {
        return Ok(());
    };
    match parent.socket_is_live(&pinned) {
        Ok(true) => Err(io::Error::from_raw_os_error(libc::EADDRINUSE)),
        Ok(false) => parent.remove_if(e.id).map(drop),
        // Not known to be live or stale (a socket of root's, mode 0600, to
        // a daemon of another user): bind(2) could only say "address in
        // use", which it is not known to be.
        Err(probe) => Err(io::Error::other(format!(
            "a socket owned by uid {} is in the way and cannot be connected to ({}); not removed",
            e.uid,
            sys::fd::describe(&probe)
        ))),
    }
}
