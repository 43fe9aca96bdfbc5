//! Waiting on a socket without accepting on it: whether it turned readable
//! or was shut down (poll(2)), and a datagram's sender, read or only
//! peeked at (recvfrom(2)).
//!
//! A worker of a wait service watches its socket here and leaves the
//! reading to the program; a UDP builtin's worker reads its datagrams with
//! [`recv_from`], which says "shut down" plainly instead of leaving it to
//! how std treats a datagram with no sender.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

/// What poll(2) said of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Something to read or accept (or an error to collect: a UDP
    /// socket's ICMP report).
    Readable,
    /// Shut down: nothing will come any more.
    HungUp,
    /// Nothing before the timeout.
    TimedOut,
}

/// Waits until `fd` is readable or hung up, for at most `timeout` (`None`:
/// for ever). EINTR is returned, not retried, so that a caller's stop flag
/// is seen.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<Readiness> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    if nix::poll::poll(&mut fds, poll_timeout(timeout))? == 0 {
        return Ok(Readiness::TimedOut);
    }
    let events = fds[0].revents().unwrap_or(PollFlags::empty());
    if events.intersects(PollFlags::POLLHUP | PollFlags::POLLNVAL) {
        Ok(Readiness::HungUp)
    } else {
        Ok(Readiness::Readable)
    }
}

/// `timeout` in poll(2)'s and epoll_wait(2)'s milliseconds (`None`: for
/// ever): rounded up, so that a short wait is not a busy loop; a wait too
/// long for them is cut (the caller loops).
pub fn poll_timeout(timeout: Option<Duration>) -> PollTimeout {
    match timeout {
        None => PollTimeout::NONE,
        Some(t) => {
            PollTimeout::try_from(t.as_millis().saturating_add(1).min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX)
        }
    }
}

/// Waits `timeout` unless a signal comes first (poll(2) on nothing):
/// `true` when the whole wait passed.
pub fn pause(timeout: Duration) -> bool {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    !matches!(nix::poll::poll(&mut [], timeout), Err(Errno::EINTR))
}

/// recvfrom(2) on the datagram socket `fd` into `buf` (with MSG_PEEK when
/// `peek`, leaving the datagram for whoever reads next): its length, cut
/// to `buf`, and its sender, as the socket can send back to it (an
/// IPv4-mapped address stays one). `None` when the socket was shut down (the
/// kernel returns no sender). EINTR is returned, not retried.
pub fn recv_from(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    peek: bool,
) -> io::Result<Option<(usize, SocketAddr)>> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let flags = if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: `buf` is valid for writes of its length, the address
    // pointer for `len` bytes, and the kernel writes at most those.
    let got = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags,
            std::ptr::addr_of_mut!(storage).cast::<libc::sockaddr>(),
            &mut len,
        )
    };
    if got < 0 {
        return Err(Errno::last().into());
    }
    if len == 0 {
        return Ok(None);
    }
    Ok(super::fd::socket_addr(&storage, false).map(|sender| (got as usize, sender)))
}
