//! How a worker takes its next connection: what accept(2)'s errors mean
//! ([`AcceptError`]), and, for the process pools, what their workers share
//! (`prefork-lock`'s lock file: [`PoolShared`], made by the master before
//! the first fork) and the [`Acceptor`] each worker makes of it after its
//! fork (`reuseport`'s own socket, bound there).
//!
//! The worker calls the acceptor it was given; the master passes the
//! shared part along without looking inside.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;

use super::prefork_lock::AcceptLock;
use super::{prefork, reuseport, Model};
use crate::net::{Connection, Listener};

/// What an accept(2) failure means for the worker.
pub(crate) enum AcceptError {
    /// A signal (look at the stop flag), or a connection that failed before
    /// we took it: accept(2) on Linux reports pending network errors of the
    /// new connection, to be treated like EAGAIN.
    Retry,
    /// The master shut the listener down (EINVAL).
    ListenerClosed,
    /// Out of descriptors or memory.
    Exhausted,
    /// The descriptor is not a listening socket: nothing will fix that.
    Broken,
}

impl AcceptError {
    pub(crate) fn classify(e: Errno) -> AcceptError {
        match e {
            Errno::EINVAL => AcceptError::ListenerClosed,
            Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM => {
                AcceptError::Exhausted
            }
            // EOPNOTSUPP: not a stream socket (a UDP socket given a stream
            // handler). Linux lists it among network errors to retry too,
            // but a listening TCP socket never reports it.
            Errno::EBADF | Errno::ENOTSOCK | Errno::EFAULT | Errno::EOPNOTSUPP => {
                AcceptError::Broken
            }
            // EINTR, EAGAIN, ECONNABORTED, EPROTO, EPERM (firewall) and the
            // network errors accept(2) lists for Linux.
            _ => AcceptError::Retry,
        }
    }
}

/// What the workers of one process pool share, made once by the master
/// before it forks them and inherited by each.
#[derive(Debug, Default)]
pub(crate) struct PoolShared {
    /// `prefork-lock`'s lock around accept(2).
    lock: Option<AcceptLock>,
}

impl PoolShared {
    /// What `model`'s workers share: a lock file for `prefork-lock`,
    /// nothing for the others.
    pub(crate) fn new(model: Model) -> io::Result<PoolShared> {
        let lock = match model {
            Model::PreforkLock => Some(AcceptLock::new()?),
            _ => None,
        };
        Ok(PoolShared { lock })
    }

    /// The descriptors a worker must keep open when it closes the rest.
    pub(crate) fn fds(&self) -> Option<RawFd> {
        self.lock.as_ref().map(|lock| lock.fd().as_raw_fd())
    }
}

/// How one worker of a process pool takes its connections: from the
/// socket it inherited (with or without the lock), or from its own.
pub(crate) struct Acceptor<'a> {
    socket: Socket<'a>,
    lock: Option<&'a AcceptLock>,
}

enum Socket<'a> {
    Inherited(&'a Listener),
    /// `reuseport`'s, bound by this worker.
    Own(Listener),
}

impl<'a> Acceptor<'a> {
    /// Made in the worker after its fork, before it drops its privileges
    /// (a worker of `reuseport` may still bind a privileged port then).
    pub(crate) fn new(
        model: Model,
        listener: &'a Listener,
        shared: &'a PoolShared,
        backlog: i32,
    ) -> io::Result<Acceptor<'a>> {
        let socket = match model {
            Model::Reuseport => Socket::Own(reuseport::own_socket(listener, backlog)?),
            _ => Socket::Inherited(listener),
        };
        Ok(Acceptor {
            socket,
            lock: shared.lock.as_ref(),
        })
    }

    /// The socket connections come from.
    pub(crate) fn listener(&self) -> &Listener {
        match &self.socket {
            Socket::Inherited(listener) => listener,
            Socket::Own(listener) => listener,
        }
    }

    /// The next connection: a plain accept, or one under the lock.
    pub(crate) fn accept(&self) -> Result<Connection, Errno> {
        match self.lock {
            Some(lock) => lock.accept(self.listener()),
            None => prefork::accept(self.listener()),
        }
    }
}
