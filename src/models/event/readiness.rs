//! Which descriptors are ready: epoll(7) on Linux (`crate::sys::epoll`),
//! poll(2) elsewhere, and on Linux too should epoll_create1(2) fail.
//!
//! epoll keeps the interest list in the kernel: each descriptor is added
//! once, modified when what its session waits for changes, and deleted
//! before it is closed; a wait costs in proportion to what is ready.
//! poll(2) is given every descriptor at every wait, so the caller lists
//! them at each call (`wait`'s `all`), and add, modify and delete do
//! nothing.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};

/// What a descriptor is watched for. Hang-ups and errors are reported
/// whatever it is, `Nothing` included (poll(2) and epoll_ctl(2) both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
    Nothing,
}

/// What a ready descriptor is reported with: a session's slot, or one of
/// the two below.
pub(crate) type Token = u64;
/// The listening socket.
pub(crate) const LISTENER: Token = u64::MAX;
/// The pipe of the programs' stderr.
pub(crate) const STDERR: Token = u64::MAX - 1;

/// How many ready descriptors one epoll_wait(2) reports at most; the rest
/// wait for the next (level-triggered: they are still ready then).
#[cfg(target_os = "linux")]
const EVENTS: usize = 256;

pub(crate) enum Readiness {
    #[cfg(target_os = "linux")]
    Epoll {
        epoll: crate::sys::epoll::Epoll,
        events: Vec<crate::sys::epoll::Event>,
    },
    Poll,
}

#[cfg(target_os = "linux")]
fn epoll_flags(interest: Interest) -> crate::sys::epoll::Flags {
    use crate::sys::epoll::Flags;
    match interest {
        Interest::Read => Flags::EPOLLIN,
        Interest::Write => Flags::EPOLLOUT,
        Interest::Nothing => Flags::empty(),
    }
}

impl Readiness {
    /// epoll where there is one and it can be had, else poll(2).
    pub fn new() -> Readiness {
        #[cfg(target_os = "linux")]
        match crate::sys::epoll::Epoll::new() {
            Ok(epoll) => {
                return Readiness::Epoll {
                    epoll,
                    events: vec![crate::sys::epoll::Event::empty(); EVENTS],
                }
            }
            Err(e) => log::warn!("W0013 epoll_create1: {e}; using poll(2)"),
        }
        Readiness::Poll
    }

    /// The interface in use, for the log.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(target_os = "linux")]
            Readiness::Epoll { .. } => "epoll(7)",
            Readiness::Poll => "poll(2)",
        }
    }

    /// Starts watching `fd`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Readiness::Epoll { epoll, .. } => epoll.add(fd, epoll_flags(interest), token),
            Readiness::Poll => {
                let _ = (fd, token, interest);
                Ok(())
            }
        }
    }

    /// Watches `fd` for something else.
    pub fn modify(&self, fd: BorrowedFd<'_>, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Readiness::Epoll { epoll, .. } => epoll.modify(fd, epoll_flags(interest), token),
            Readiness::Poll => {
                let _ = (fd, token, interest);
                Ok(())
            }
        }
    }

    /// Stops watching `fd` (before it is closed).
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Readiness::Epoll { epoll, .. } => epoll.delete(fd),
            Readiness::Poll => {
                let _ = fd;
                Ok(())
            }
        }
    }

    /// Waits at most `timeout` (`None`: for ever) and puts the tokens of
    /// the ready descriptors in `ready`. `all` lists every descriptor
    /// watched, as added and modified: poll(2) reads it, epoll does not.
    /// EINTR is returned (kind `Interrupted`).
    pub fn wait<'f>(
        &mut self,
        timeout: Option<Duration>,
        all: impl Iterator<Item = (BorrowedFd<'f>, Token, Interest)>,
        ready: &mut Vec<Token>,
    ) -> io::Result<()> {
        ready.clear();
        match self {
            #[cfg(target_os = "linux")]
            Readiness::Epoll { epoll, events } => {
                drop(all);
                let n = epoll.wait(events, timeout)?;
                ready.extend(events[..n].iter().map(|e| e.data()));
            }
            Readiness::Poll => {
                let (mut fds, tokens): (Vec<PollFd<'f>>, Vec<Token>) = all
                    .map(|(fd, token, interest)| {
                        let events = match interest {
                            Interest::Read => PollFlags::POLLIN,
                            Interest::Write => PollFlags::POLLOUT,
                            Interest::Nothing => PollFlags::empty(),
                        };
                        (PollFd::new(fd, events), token)
                    })
                    .unzip();
                nix::poll::poll(&mut fds, crate::sys::ready::poll_timeout(timeout))?;
                ready.extend(
                    fds.iter()
                        .zip(tokens)
                        .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
                        .map(|(_, token)| token),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    /// Both backends report the same: nothing, then the readable one, then
    /// the writable one once it is watched for writing.
    #[test]
    fn both_backends_agree() {
        let mut backends = vec![Readiness::Poll];
        #[cfg(target_os = "linux")]
        backends.push(Readiness::new());
        for mut r in backends {
            let (mut a, b) = UnixStream::pair().unwrap();
            let (_c, d) = UnixStream::pair().unwrap();
            r.add(b.as_fd(), 1, Interest::Read).unwrap();
            r.add(d.as_fd(), 2, Interest::Nothing).unwrap();
            let mut ready = Vec::new();
            let short = Some(Duration::from_millis(1));
            let watched = [(1, Interest::Read), (2, Interest::Nothing)];
            let all = |w: [(Token, Interest); 2]| {
                [b.as_fd(), d.as_fd()]
                    .into_iter()
                    .zip(w)
                    .map(|(fd, (t, i))| (fd, t, i))
            };
            r.wait(short, all(watched), &mut ready).unwrap();
            assert!(ready.is_empty(), "{}: {ready:?}", r.name());
            a.write_all(b"x").unwrap();
            r.wait(Some(Duration::from_secs(5)), all(watched), &mut ready)
                .unwrap();
            assert_eq!(ready, [1], "{}", r.name());
            r.modify(d.as_fd(), 2, Interest::Write).unwrap();
            let watched = [(1, Interest::Read), (2, Interest::Write)];
            r.wait(Some(Duration::from_secs(5)), all(watched), &mut ready)
                .unwrap();
            ready.sort();
            assert_eq!(ready, [1, 2], "{}", r.name());
            r.delete(b.as_fd()).unwrap();
            r.delete(d.as_fd()).unwrap();
        }
    }
}
