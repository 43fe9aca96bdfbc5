//! epoll(7), Linux's readiness interface: an interest list kept in the
//! kernel, so that a wait costs time in proportion to the descriptors that
//! are ready, not to all those watched (as poll(2) does).
//!
//! A thin layer over `nix::sys::epoll`: create (close-on-exec), add,
//! modify, delete, and wait with a timeout ([`Epoll`], the event model's);
//! and one socket watched for input, with or without EPOLLEXCLUSIVE
//! ([`ReadableWatch`], a worker's of `prefork-epoll` and
//! `prefork-epoll-exclusive`: of the epoll instances waiting on a socket,
//! EPOLLEXCLUSIVE, since Linux 4.5, has the kernel wake one or more, not
//! all). Level-triggered: a descriptor
//! is reported for as long as it is ready. EINTR is returned to the
//! caller (as `ErrorKind::Interrupted`), never retried here, so that a
//! caller's stop flag and SIGCHLD are seen.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::sys::epoll::{Epoll as Instance, EpollCreateFlags};
pub use nix::sys::epoll::{EpollEvent as Event, EpollFlags as Flags};

/// One epoll instance, closed when dropped.
#[derive(Debug)]
pub struct Epoll(Instance);

impl Epoll {
    /// A new instance (epoll_create1(2), `EPOLL_CLOEXEC`: a program that
    /// a caller starts does not inherit it).
    pub fn new() -> io::Result<Epoll> {
        Ok(Epoll(Instance::new(EpollCreateFlags::EPOLL_CLOEXEC)?))
    }

    /// Watches `fd` for `events`, reported with `token`
    /// (epoll_ctl(2), `EPOLL_CTL_ADD`). A descriptor is added once.
    pub fn add(&self, fd: BorrowedFd<'_>, events: Flags, token: u64) -> io::Result<()> {
        Ok(self.0.add(fd, Event::new(events, token))?)
    }

    /// Changes what `fd` is watched for (`EPOLL_CTL_MOD`). Empty `events`
    /// still reports `EPOLLHUP` and `EPOLLERR`, as epoll_ctl(2) says.
    pub fn modify(&self, fd: BorrowedFd<'_>, events: Flags, token: u64) -> io::Result<()> {
        Ok(self.0.modify(fd, &mut Event::new(events, token))?)
    }

    /// Stops watching `fd` (`EPOLL_CTL_DEL`). Closing the descriptor does
    /// as much when no duplicate of it is open; this says so plainly.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        Ok(self.0.delete(fd)?)
    }

    /// Waits for at most `timeout` (`None`: for ever; rounded up to the
    /// millisecond) and fills `events` with what is ready: returns how
    /// many. EINTR comes back as an error of kind `Interrupted`.
    pub fn wait(&self, events: &mut [Event], timeout: Option<Duration>) -> io::Result<usize> {
        Ok(self.0.wait(events, super::ready::poll_timeout(timeout))?)
    }
}

/// An epoll instance of its own watching one descriptor for input.
#[derive(Debug)]
pub struct ReadableWatch(Epoll);

impl ReadableWatch {
    /// A new instance with `fd` in its interest list for EPOLLIN,
    /// level-triggered, and EPOLLEXCLUSIVE when `exclusive`.
    pub fn new(fd: BorrowedFd<'_>, exclusive: bool) -> io::Result<ReadableWatch> {
        let epoll = Epoll::new()?;
        let mut events = Flags::EPOLLIN;
        if exclusive {
            events |= Flags::EPOLLEXCLUSIVE;
        }
        epoll.add(fd, events, 0)?;
        Ok(ReadableWatch(epoll))
    }

    /// Waits until the descriptor is readable, or reports an error or a
    /// hangup (which epoll always reports). EINTR is returned, not retried,
    /// so that the caller's stop flag is seen.
    pub fn wait(&self) -> Result<(), nix::errno::Errno> {
        let mut events = [Event::empty()];
        // With no timeout, epoll_wait returns at least one event or fails.
        loop {
            match self.0.wait(&mut events, None) {
                Ok(0) => continue,
                Ok(_) => return Ok(()),
                Err(e) => {
                    return Err(nix::errno::Errno::from_raw(
                        e.raw_os_error().unwrap_or(libc::EIO),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_ready_descriptors_with_their_token() {
        let epoll = Epoll::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        epoll.add(b.as_fd(), Flags::EPOLLIN, 7).unwrap();
        let mut events = [Event::empty(); 4];
        let n = epoll
            .wait(&mut events, Some(Duration::from_millis(1)))
            .unwrap();
        assert_eq!(n, 0);
        a.write_all(b"x").unwrap();
        let n = epoll
            .wait(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(events[0].data(), 7);
        assert!(events[0].events().contains(Flags::EPOLLIN));
        epoll.modify(b.as_fd(), Flags::EPOLLOUT, 8).unwrap();
        let n = epoll
            .wait(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!((n, events[0].data()), (1, 8));
        epoll.delete(b.as_fd()).unwrap();
        let n = epoll
            .wait(&mut events, Some(Duration::from_millis(1)))
            .unwrap();
        assert_eq!(n, 0);
    }
}
