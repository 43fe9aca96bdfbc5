//! `prefork-epoll-exclusive`: `prefork-epoll` with the socket added to
//! each worker's epoll instance with EPOLLEXCLUSIVE (Linux 4.5 and later).
//! Linux only.
//!
//! What it teaches: the fix for the herd that readiness waits suffer. With
//! EPOLLEXCLUSIVE, each epoll instance waits on the socket as an exclusive
//! waiter, as accept(2) itself does, so a connection wakes one worker (or
//! a few: the kernel promises "one or more"), not all; the herd of
//! `prefork-epoll` and `prefork-poll` is gone, while a worker can still
//! wait on other descriptors in the same epoll_wait. nginx uses it when
//! `accept_mutex` is off.
//!
//! What it costs: what `prefork-epoll` costs, without the wasted wake-ups
//! of the idle workers; now and then a worker woken with the others
//! still gets EAGAIN. The socket is non-blocking for this model too.
//!
//! System calls per connection: epoll_wait, accept4, the handler's, close.

use std::io;

use super::prefork_epoll::EpollWait;
use crate::net::Listener;

/// A worker's epoll instance, watching the socket with EPOLLEXCLUSIVE.
pub(crate) fn watch(listener: &Listener) -> io::Result<EpollWait> {
    EpollWait::new(listener, true)
}
