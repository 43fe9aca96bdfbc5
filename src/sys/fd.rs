//! Descriptors: accepting, closing what a child should not hold, shutting
//! a listener down, and naming an errno the way a user reads it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::Shutdown;
#[cfg(not(target_vendor = "apple"))]
use nix::sys::socket::SockFlag;

/// accept4(2) with SOCK_CLOEXEC on `listener`.
///
/// Unlike `std::net::TcpListener::accept`, EINTR is *returned*, not retried:
/// a worker blocked here must see its stop signal.
#[cfg(not(target_vendor = "apple"))]
pub fn accept(listener: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let fd = nix::sys::socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// accept(2), then close-on-exec: macOS has no accept4. The gap between the
/// two calls is harmless here because a worker is single-threaded, so no
/// exec can happen in between.
#[cfg(target_vendor = "apple")]
pub fn accept(listener: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let fd = nix::sys::socket::accept(listener.as_raw_fd())?;
    // SAFETY: accept just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(fd)
}

/// shutdown(2) of a listening socket. On Linux this stops a TCP listener at
/// once: processes blocked in accept on it (in any process sharing it) wake
/// with EINVAL, and new connection attempts are refused, even while other
/// processes still hold the descriptor.
pub fn shutdown_listener(listener: BorrowedFd<'_>) {
    // ENOTCONN on some systems and for some socket types: nothing to undo.
    let _ = nix::sys::socket::shutdown(listener.as_raw_fd(), Shutdown::Both);
}

/// Closes every descriptor of the process except those in `keep`.
///
/// A forked worker calls this first, so that neither the master's private
/// descriptors nor anything the daemon itself inherited reaches a handler
/// or an exec'd program.
pub fn close_all_except(keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<RawFd> = keep.to_vec();
    keep.sort_unstable();
    keep.dedup();
    let mut first: RawFd = 0;
    for &k in &keep {
        if k > first {
            close_range(first, k - 1)?;
        }
        first = k + 1;
    }
    close_range(first, RawFd::MAX)
}

#[cfg(target_os = "linux")]
fn close_range(first: RawFd, last: RawFd) -> io::Result<()> {
    // SAFETY: close_range(2) only closes descriptors. The caller owns the
    // whole process (a freshly forked, single-threaded child) and the Rust
    // objects that own the closed descriptors are never used or dropped
    // again (the child leaves with _exit).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOSYS) {
        return close_listed(first, last);
    }
    Err(err)
}

#[cfg(not(target_os = "linux"))]
fn close_range(first: RawFd, last: RawFd) -> io::Result<()> {
    close_listed(first, last)
}

/// The portable way: read the list of open descriptors, then close those in
/// range (collect first: closing while reading would close the directory).
fn close_listed(first: RawFd, last: RawFd) -> io::Result<()> {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let open: Vec<RawFd> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| (first..=last).contains(fd))
        .collect();
    for fd in open {
        // SAFETY: as in close_range above; EBADF (the directory's own
        // descriptor, already closed) is harmless.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// The text of an I/O error as a user reads it: "Address already in use",
/// not "Address already in use (os error 98)".
pub fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}
