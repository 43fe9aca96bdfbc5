//! A mutex shared by processes: a pthread mutex with
//! PTHREAD_PROCESS_SHARED in an anonymous MAP_SHARED mapping, made before
//! the first fork and inherited by every worker (`prefork-mutex`, UNP
//! 30.8).
//!
//! Where the system has robust mutexes (Linux, FreeBSD), the mutex is
//! PTHREAD_MUTEX_ROBUST: if its holder dies, even by SIGKILL, the kernel
//! (Linux's robust futex list) or libthr hands it to the next locker with
//! EOWNERDEAD, and [`SharedMutex::lock_within`] makes it consistent again
//! (pthread_mutex_consistent(3)) and says so. Elsewhere (macOS) it is a
//! plain process-shared mutex, which a holder's death leaves locked.
//!
//! pthread_mutex_lock(3) never returns EINTR, so a waiter could not see a
//! signal; waits here are cut into slices: pthread_mutex_timedlock(3)
//! where it exists, otherwise pthread_mutex_trylock(3) and a short
//! poll(2) that a signal interrupts.

use std::cell::UnsafeCell;
use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::time::Duration;

use nix::errno::Errno;

/// A process-shared pthread mutex in its own shared mapping.
pub struct SharedMutex {
    ptr: NonNull<UnsafeCell<libc::pthread_mutex_t>>,
}

// SAFETY: a pthread mutex is made to be used from several threads (and,
// being PTHREAD_PROCESS_SHARED, processes); the pointer is to a mapping
// that lives as long as the value.
unsafe impl Send for SharedMutex {}
// SAFETY: as above: every access goes through the pthread calls.
unsafe impl Sync for SharedMutex {}

impl std::fmt::Debug for SharedMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedMutex")
    }
}

/// The mutex, held; unlocked when dropped.
#[derive(Debug)]
pub struct Held<'a> {
    mutex: &'a SharedMutex,
    /// The previous holder died holding it (EOWNERDEAD); it was made
    /// consistent again.
    pub recovered: bool,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: the mutex was initialized in `new` and is held by this
        // thread (this guard exists only after a successful lock).
        unsafe { libc::pthread_mutex_unlock(self.mutex.raw()) };
    }
}

/// Makes a pthread call's result an `Errno` (the pthread calls return the
/// error number rather than setting errno).
fn check(code: libc::c_int) -> Result<(), Errno> {
    if code == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw(code))
    }
}

impl SharedMutex {
    /// Maps a page, initializes a process-shared (and, where the system
    /// has them, robust) mutex in it.
    pub fn new() -> io::Result<SharedMutex> {
        let bytes = NonZeroUsize::new(std::mem::size_of::<libc::pthread_mutex_t>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let ptr = super::shm::map_shared(bytes)?;
        let mutex = SharedMutex { ptr: ptr.cast() };
        mutex.init()?;
        Ok(mutex)
    }

    fn raw(&self) -> *mut libc::pthread_mutex_t {
        // UnsafeCell<T> has the layout of T.
        UnsafeCell::raw_get(self.ptr.as_ptr())
    }

    fn init(&self) -> io::Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: pthread_mutexattr_init initializes the attribute object
        // it is given; it is used only after it succeeded, and destroyed
        // once the mutex is initialized.
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
        }
        let attr = attr.as_mut_ptr();
        // SAFETY: `attr` is initialized; the mutex's memory is ours, page
        // aligned (so aligned for pthread_mutex_t), and not yet in use by
        // any other thread or process (the master makes it before it forks).
        let made = unsafe {
            check(libc::pthread_mutexattr_setpshared(
                attr,
                libc::PTHREAD_PROCESS_SHARED,
            ))
            .and_then(|()| set_robust(attr))
            .and_then(|()| check(libc::pthread_mutex_init(self.raw(), attr)))
        };
        // SAFETY: `attr` was initialized above and is not used after this.
        unsafe { libc::pthread_mutexattr_destroy(attr) };
        made.map_err(io::Error::from)
    }

    /// Waits at most about `slice` for the mutex: `Ok(Some(held))` once it
    /// is ours, `Ok(None)` when the slice ran out (or, where there is no
    /// pthread_mutex_timedlock, a signal cut it short), for the caller to
    /// look at its stop flag and call again. An error when the mutex is
    /// unusable (ENOTRECOVERABLE).
    pub fn lock_within(&self, slice: Duration) -> Result<Option<Held<'_>>, Errno> {
        match self.timed_lock(slice) {
            Ok(true) => Ok(Some(Held {
                mutex: self,
                recovered: false,
            })),
            Ok(false) => Ok(None),
            Err(Errno::EOWNERDEAD) => {
                // SAFETY: EOWNERDEAD means this thread now holds the robust
                // mutex, in the state its dead holder left; the data it
                // guards (none: it guards the accept) needs no repair.
                check(unsafe { consistent(self.raw()) })?;
                Ok(Some(Held {
                    mutex: self,
                    recovered: true,
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// One slice of waiting: `true` when locked, `false` when it ran out.
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    fn timed_lock(&self, slice: Duration) -> Result<bool, Errno> {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
        let deadline = nix::sys::time::TimeSpec::from(Duration::from(now).saturating_add(slice));
        // SAFETY: the mutex was initialized in `new`; the timespec is valid
        // for the call.
        match check(unsafe { libc::pthread_mutex_timedlock(self.raw(), deadline.as_ref()) }) {
            Ok(()) => Ok(true),
            Err(Errno::ETIMEDOUT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One slice of waiting, where there is no timed lock: try, then sleep
    /// in steps of 10 ms (a signal ends the sleep) until the slice is over.
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    fn timed_lock(&self, slice: Duration) -> Result<bool, Errno> {
        let start = std::time::Instant::now();
        loop {
            // SAFETY: the mutex was initialized in `new`.
            match check(unsafe { libc::pthread_mutex_trylock(self.raw()) }) {
                Ok(()) => return Ok(true),
                Err(Errno::EBUSY) => {}
                Err(e) => return Err(e),
            }
            if start.elapsed() >= slice || !super::ready::pause(Duration::from_millis(10)) {
                return Ok(false);
            }
        }
    }
}

/// PTHREAD_MUTEX_ROBUST on an attribute object.
///
/// # Safety
/// `attr` must be an initialized attribute object.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
unsafe fn set_robust(attr: *mut libc::pthread_mutexattr_t) -> Result<(), Errno> {
    // SAFETY: the caller's precondition.
    check(unsafe { libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST) })
}

/// A plain process-shared mutex where there are no robust ones.
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
unsafe fn set_robust(_attr: *mut libc::pthread_mutexattr_t) -> Result<(), Errno> {
    Ok(())
}

/// pthread_mutex_consistent(3), where robust mutexes exist.
///
/// # Safety
/// `mutex` must be an initialized robust mutex this thread holds after
/// EOWNERDEAD.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
unsafe fn consistent(mutex: *mut libc::pthread_mutex_t) -> libc::c_int {
    // SAFETY: the caller's precondition.
    unsafe { libc::pthread_mutex_consistent(mutex) }
}

/// Never called where there are no robust mutexes (no EOWNERDEAD).
#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
unsafe fn consistent(_mutex: *mut libc::pthread_mutex_t) -> libc::c_int {
    libc::ENOTRECOVERABLE
}

impl Drop for SharedMutex {
    fn drop(&mut self) {
        // Not destroyed: the workers may still use it (a worker draining
        // after its pool was dropped). Only this process's mapping goes.
        let bytes = std::mem::size_of::<libc::pthread_mutex_t>();
        // SAFETY: unmaps exactly the mapping made in `new`; `self` is going
        // away, and no `Held` outlives it (it borrows it).
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), bytes) };
    }
}
