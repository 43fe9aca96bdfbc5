//! Programs' standard error: the pipe a worker gives its programs instead
//! of its own stderr, and a descriptor that turns readable when a child
//! ends, so the worker can read the one while it waits for the other.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

#[cfg(not(target_os = "linux"))]
use nix::fcntl::FdFlag;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// A pipe for programs' stderr: (read, write), both close-on-exec; only
/// the read end is non-blocking (a program's writes to its stderr block
/// as they would on a terminal or a file, never fail with EAGAIN).
///
/// On Linux both ends are close-on-exec from the start (pipe2), so a
/// program another thread of the worker starts meanwhile (the `pool`
/// model) never inherits them; elsewhere the flag is set just after.
pub fn relay_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(target_os = "linux")]
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    #[cfg(not(target_os = "linux"))]
    let (read, write) = nix::unistd::pipe()?;
    #[cfg(not(target_os = "linux"))]
    for fd in [&read, &write] {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    fcntl(read.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((read, write))
}

/// A descriptor that polls readable once the child `pid` has ended
/// (pidfd_open(2), close-on-exec). The caller must not have reaped `pid`
/// yet, so the number cannot name another process.
#[cfg(target_os = "linux")]
pub fn child_ended_fd(pid: u32) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes two integers and touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd_open: bad descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us: it is open,
    // and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads what is waiting in the non-blocking `fd` into `buf`; `Ok(0)` at
/// end of file, WouldBlock when nothing is waiting.
pub fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd.as_raw_fd(), buf) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
