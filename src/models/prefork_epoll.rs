//! `prefork-epoll`: `prefork` whose workers each wait in an epoll(7)
//! instance of their own, made after the fork, with the shared socket in
//! its interest list; epoll_wait(2), then accept. Linux only. Not in
//! Stevens' book, which predates epoll; the shape of a pre-forked event
//! server (nginx's workers, before `reuseport` or `accept_mutex`).
//!
//! What it teaches: epoll does not cure the herd by itself. Each epoll
//! instance hangs an ordinary (not exclusive) waiter on the socket's wait
//! queue, so, as with `prefork-poll`, every idle worker's epoll_wait
//! returns for each connection; one accept wins, the others get EAGAIN.
//! `prefork-epoll-exclusive` adds the flag that fixes it.
//!
//! The socket is non-blocking for this model (the master sets O_NONBLOCK
//! before the first fork), so the losers return to epoll_wait at once.
//!
//! What it costs: an epoll instance per worker (a descriptor and an
//! epoll_create1 and epoll_ctl when the worker starts); per connection,
//! an epoll_wait and an accept4, and in every other idle worker an
//! epoll_wait and a failed accept4 (EAGAIN). epoll's own advantage, a cost
//! that does not grow with the number of descriptors watched, does not
//! show with one.
//!
//! System calls per connection: epoll_wait, accept4, the handler's, close;
//! in each other idle worker, epoll_wait and accept4 (EAGAIN).

use std::io;

use nix::errno::Errno;

use crate::net::{Connection, Listener};

/// A worker's epoll instance on the shared socket.
#[derive(Debug)]
pub(crate) struct EpollWait {
    #[cfg(target_os = "linux")]
    watch: crate::sys::epoll::ReadableWatch,
}

impl EpollWait {
    /// Made in the worker after its fork: its own epoll instance, with the
    /// socket added with EPOLLEXCLUSIVE when `exclusive`.
    #[cfg(target_os = "linux")]
    pub(crate) fn new(listener: &Listener, exclusive: bool) -> io::Result<EpollWait> {
        use std::os::fd::AsFd;
        let watch = crate::sys::epoll::ReadableWatch::new(listener.as_fd(), exclusive)?;
        Ok(EpollWait { watch })
    }

    /// Off Linux there is no epoll (the configuration refuses the model
    /// before any worker starts).
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new(_listener: &Listener, exclusive: bool) -> io::Result<EpollWait> {
        let model = if exclusive {
            super::Model::PreforkEpollExclusive
        } else {
            super::Model::PreforkEpoll
        };
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("model {model} needs Linux (epoll)"),
        ))
    }

    /// Waits in epoll_wait(2) for the socket to be readable, then accepts.
    /// EAGAIN (another worker took the connection) and EINTR are returned.
    pub(crate) fn accept(&self, listener: &Listener) -> Result<Connection, Errno> {
        #[cfg(target_os = "linux")]
        self.watch.wait()?;
        listener.accept()
    }
}
