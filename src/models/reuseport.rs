//! `reuseport`: every worker process has its own listening socket, all
//! bound to the same port with SO_REUSEPORT, and the kernel spreads new
//! connections over them by a hash of the client's address and port
//! (Linux 3.9 and later; FreeBSD 12 and later with SO_REUSEPORT_LB, set
//! there too; elsewhere the option only lets sockets share a port, without
//! any spreading). Not in
//! Stevens' book, which predates it; nginx's `reuseport` and many modern
//! servers use it.
//!
//! What it teaches: no shared accept queue at all. Each worker accepts from
//! its own queue, so connections spread evenly (see the spread column of
//! `compare`), with no lock and no wake-up to arbitrate.
//!
//! What it costs: a connection hashed to a busy worker waits in that
//! worker's queue even while others are idle; and when a worker leaves,
//! the connections waiting in its queue are reset, since nobody else can
//! accept them: not only when one dies, but also when one is retired
//! (`max_requests`, `max_memory`, SIGTTOU, a reload, an adaptive pool
//! shrinking), since the kernel hashes new connections to its socket until
//! it exits. Linux 5.14 can hand them to the other sockets instead
//! (`sysctl net.ipv4.tcp_migrate_req=1`). The master holds the port with a socket that is bound but
//! never listens, so the port stays ours while workers come and go.
//!
//! System calls per connection: accept4, the handler's, close (the same as
//! `prefork`); per worker, a socket, setsockopt, bind and listen.

use std::io;

use crate::net::Listener;

/// The master's socket: bound with SO_REUSEPORT, never listening, so that
/// the port stays the service's while workers come and go.
pub(crate) fn hold_port(addr: &crate::net::ListenAddr) -> io::Result<Listener> {
    Listener::bind_reuseport(addr, None)
}

/// The socket a worker accepts on: a new listening socket on the address
/// of the master's (which has the real port when the service asked for 0).
pub(crate) fn own_socket(master: &Listener, backlog: i32) -> io::Result<Listener> {
    master.rebind_reuseport(backlog)
}
