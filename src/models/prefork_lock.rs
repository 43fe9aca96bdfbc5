//! `prefork-lock`: `prefork` with a lock around accept(2), so that one
//! worker at a time waits in accept and the others wait for the lock (UNP
//! 30.7, which uses fcntl(2) record locks, as here).
//!
//! What it teaches: on old kernels, and still for select(2) or poll(2) on a
//! shared socket, every sleeping worker woke up for each connection and
//! all but one went back to sleep (the thundering herd). Serializing
//! accept with a lock avoids it. Apache's prefork does the same when it
//! listens on several sockets (its AcceptMutex).
//!
//! What it costs: two fcntl(2) calls per connection, and a file. Linux has
//! woken a single process blocked in accept(2) for decades, so here the
//! lock buys nothing: `compare` shows its price.
//!
//! The lock is a POSIX record lock on a file the master creates and
//! unlinks at once: such locks belong to a process, so every worker, which
//! inherits the same descriptor, still competes for it, and the kernel
//! releases it when its holder dies, even by SIGKILL.
//!
//! System calls per connection: fcntl(F_SETLKW), accept4, fcntl(F_SETLK
//! unlock), the handler's, close.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use nix::errno::Errno;

use crate::net::{Connection, Listener};
use crate::sys;

/// The lock file, open in the master and inherited by the workers.
#[derive(Debug)]
pub(crate) struct AcceptLock {
    file: File,
}

impl AcceptLock {
    /// Creates the lock file in the temporary directory and unlinks it: it
    /// lives as long as a descriptor to it is open.
    pub(crate) fn new() -> io::Result<AcceptLock> {
        let path = unique_path();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(AcceptLock { file })
    }

    /// Takes the lock, accepts one connection, releases the lock. EINTR
    /// from either wait is returned, for the caller to look at its flags.
    pub(crate) fn accept(&self, listener: &Listener) -> Result<Connection, Errno> {
        sys::fd::lock_wait(self.file.as_fd())?;
        let accepted = super::prefork::accept(listener);
        sys::fd::unlock(self.file.as_fd());
        accepted
    }

    /// The descriptor a worker must keep open.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn unique_path() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("preforkd-accept-lock.{}.{n}", std::process::id()))
}
