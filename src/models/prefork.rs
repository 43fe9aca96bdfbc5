//! `prefork`: N worker processes forked in advance, each blocking in
//! accept(2) on the socket they inherited (UNP 30.6; Apache's prefork MPM).
//! The daemon's own design, and the default model.
//!
//! What it teaches: pay for the fork before the client comes. The master
//! binds, forks the workers and never accepts; the kernel hands each
//! connection to one of the workers asleep in accept(2) on the shared
//! socket (Linux wakes one of them: no thundering herd for accept). The
//! master only supervises: it replaces a worker that dies, grows and
//! shrinks the pool; the worker's loop is the daemon's own, around
//! `accept`.
//!
//! What it costs: N processes of memory even when idle; a client waits in
//! the listen queue when all N are busy. Which worker gets a connection is
//! the kernel's choice: Linux queues the workers asleep in accept(2) in the
//! order they went to sleep, so even one client's connections take turns
//! among them (see the spread column of `compare`).
//!
//! System calls per connection: accept4, the handler's, close. Nothing else:
//! the same as the iterative server.

use nix::errno::Errno;

use crate::net::{Connection, Listener};

/// A worker's next connection: a plain accept(2) on the shared socket.
pub(crate) fn accept(listener: &Listener) -> Result<Connection, Errno> {
    listener.accept()
}
