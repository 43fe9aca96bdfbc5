//! Removing a file: only the one recorded, never a link, never what
//! replaced it ([`Parent::remove_if`]).

use std::io;
use std::os::fd::AsRawFd;

use nix::errno::Errno;

use super::{Entry, FileId, Kind, Parent};

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

impl Parent {
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
}
