//! What a name is: a file's identity ([`FileId`]), its type ([`Kind`])
//! and its status ([`Entry`]), as fstat(2) and `lstat` see them.
//!
//! Only reading a status lives here; opening, changing and removing are
//! [`Parent`](super::Parent)'s.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::stat::{FileStat, SFlag};

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
    pub(super) fn of(st: &FileStat) -> Entry {
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

/// The status of an open descriptor.
pub fn entry_of(fd: BorrowedFd<'_>) -> io::Result<Entry> {
    Ok(Entry::of(&nix::sys::stat::fstat(fd.as_raw_fd())?))
}
