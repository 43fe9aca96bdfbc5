//! `prefork-poll`: `prefork` whose workers wait in poll(2) on the shared
//! socket, then accept (the "select collisions" of UNP 30.6, where
//! Stevens' children called select(2) before accept).
//!
//! What it teaches: the thundering herd that Linux fixed for accept(2) but
//! not for readiness. A process blocked in accept(2) sleeps on the socket's
//! wait queue as an exclusive waiter, so a connection wakes one of them
//! (Linux 2.2 and later); a process in poll(2) or select(2) sleeps there as
//! an ordinary waiter, and every one is woken. Each idle worker returns
//! from poll for each connection, all call accept, one wins, and the
//! others get EAGAIN and go back to poll.
//!
//! For the losers not to block in accept until the next connection, the
//! socket is non-blocking for this model: the master sets O_NONBLOCK on it
//! before the first fork (see `accept`'s `PoolShared`), and the other
//! stream models clear it.
//!
//! What it costs: a poll(2) per connection in the winner, and in every
//! other idle worker a poll(2) and a failed accept4 (EAGAIN): wake-ups and
//! system calls that grow with the number of idle workers, not with the
//! load. A real server that waits on several sockets (Apache's prefork
//! with more than one Listen) has to poll, and serializes it with a lock
//! (`prefork-lock`), or uses EPOLLEXCLUSIVE (`prefork-epoll-exclusive`).
//!
//! System calls per connection: poll, accept4, the handler's, close; in
//! each other idle worker, poll and accept4 (EAGAIN).

use nix::errno::Errno;

use super::prefork;
use crate::net::{Connection, Listener};

/// Waits in poll(2) for the socket to be readable, then accepts. EAGAIN
/// (another worker took the connection) and EINTR are returned, for the
/// worker's loop to try again or stop.
pub(crate) fn accept(listener: &Listener) -> Result<Connection, Errno> {
    prefork::wait_readable(listener)?;
    listener.accept()
}
