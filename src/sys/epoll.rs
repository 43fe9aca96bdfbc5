//! epoll(7) on one descriptor: a worker of `prefork-epoll` or
//! `prefork-epoll-exclusive` waits here for its listening socket to turn
//! readable, in an epoll instance of its own (made after its fork), with
//! or without EPOLLEXCLUSIVE (Linux 4.5 and later: of the epoll instances
//! waiting on the socket, the kernel wakes one or more, not all).
//!
//! Linux only: elsewhere the configuration refuses the two models.

use std::io;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// An epoll instance watching one descriptor for input.
#[derive(Debug)]
pub struct ReadableWatch {
    epoll: Epoll,
}

impl ReadableWatch {
    /// A new epoll instance (close-on-exec, so the programs a worker
    /// starts do not hold it) with `fd` in its interest list for EPOLLIN,
    /// level-triggered, and EPOLLEXCLUSIVE when `exclusive`.
    pub fn new(fd: BorrowedFd<'_>, exclusive: bool) -> io::Result<ReadableWatch> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let mut events = EpollFlags::EPOLLIN;
        if exclusive {
            events |= EpollFlags::EPOLLEXCLUSIVE;
        }
        epoll.add(fd, EpollEvent::new(events, 0))?;
        Ok(ReadableWatch { epoll })
    }

    /// Waits until the descriptor is readable, or reports an error or a
    /// hangup (which epoll always reports). EINTR is returned, not retried,
    /// so that the caller's stop flag is seen.
    pub fn wait(&self) -> Result<(), Errno> {
        let mut events = [EpollEvent::empty()];
        // With no timeout, epoll_wait returns at least one event or fails.
        while self.epoll.wait(&mut events, EpollTimeout::NONE)? == 0 {}
        Ok(())
    }
}
