//! `prefork-mutex`: `prefork` with a pthread mutex around accept(2), shared
//! by the workers (UNP 30.8, "thread locking around accept"): a
//! PTHREAD_PROCESS_SHARED mutex in an anonymous MAP_SHARED mapping the
//! master makes before the first fork.
//!
//! What it teaches: the same serialization as `prefork-lock`, one worker
//! in accept and the others waiting for the lock, with a lock that lives
//! in shared memory instead of the kernel's file table. Taking a free
//! mutex is an atomic instruction in user space, with no system call;
//! only contention goes to the kernel (a futex wait and wake on Linux).
//! Stevens found it faster than the fcntl(2) lock.
//!
//! What it costs: a shared page; per connection, a futex wake when a
//! worker waits for the mutex, and the lock's wait wake-ups described
//! below. Like `prefork-lock`, it buys nothing over plain `prefork` on
//! Linux, which wakes one process blocked in accept(2).
//!
//! A worker that dies holding the mutex, even by SIGKILL, must not leave
//! the others locked out: the mutex is PTHREAD_MUTEX_ROBUST (Linux,
//! FreeBSD), so the next worker to lock it gets EOWNERDEAD, makes it
//! consistent (pthread_mutex_consistent(3)), logs W0016 and goes on.
//! macOS has no robust mutexes: there it is a plain process-shared mutex,
//! and a holder's death locks the pool out (the fcntl lock of
//! `prefork-lock` has no such hole).
//!
//! Stopping: pthread_mutex_lock(3) does not return EINTR, so a worker
//! waiting for the mutex would not see SIGTERM. Workers wait with
//! pthread_mutex_timedlock(3) in slices of 200 ms, looking at their stop
//! flag between slices (where there is no timed lock, macOS, with
//! pthread_mutex_trylock(3) and 10 ms sleeps that a signal cuts short). So
//! an idle worker waiting for the mutex wakes five times a second, and
//! stops within 200 ms; the holder, in accept(2), stops at once (EINTR).
//! Locking only once poll(2) says the socket is readable would have
//! avoided the slices, but brought back the herd the mutex is there to
//! avoid.
//!
//! System calls per connection: accept4 under the mutex, futex (wake the
//! next waiter, when one waits), the handler's, close.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;

use super::prefork;
use crate::net::{Connection, Listener};
use crate::sys::mutex::SharedMutex;

/// How long a worker waits for the mutex before it looks at its stop flag.
const SLICE: Duration = Duration::from_millis(200);

/// The mutex, in memory the master shares with every worker it forks.
#[derive(Debug)]
pub(crate) struct AcceptMutex {
    mutex: SharedMutex,
}

impl AcceptMutex {
    /// Made by the master, before the first fork.
    pub(crate) fn new() -> io::Result<AcceptMutex> {
        Ok(AcceptMutex {
            mutex: SharedMutex::new()?,
        })
    }

    /// Takes the mutex (or returns EINTR once `stop` is set), accepts one
    /// connection, releases the mutex. EINTR from accept is returned too.
    pub(crate) fn accept(
        &self,
        listener: &Listener,
        stop: &AtomicBool,
        name: &str,
    ) -> Result<Connection, Errno> {
        let held = loop {
            if stop.load(Ordering::SeqCst) {
                return Err(Errno::EINTR);
            }
            if let Some(held) = self.mutex.lock_within(SLICE)? {
                break held;
            }
        };
        if held.recovered {
            log::warn!(
                "W0016 service {name}: a worker died holding the accept mutex; worker {} took it over",
                std::process::id()
            );
        }
        // Checked again: the stop may have come while this worker waited.
        if stop.load(Ordering::SeqCst) {
            return Err(Errno::EINTR);
        }
        prefork::accept(listener)
    }
}
