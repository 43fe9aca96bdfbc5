//! How a worker takes its next connection: what accept(2)'s errors mean
//! ([`AcceptError`]), and, for the process pools, what their workers share
//! ([`PoolShared`], made by the master before the first fork:
//! `prefork-lock`'s lock file, `prefork-mutex`'s mutex, and the socket's
//! O_NONBLOCK as the model needs it) and the [`Acceptor`] each worker makes
//! of it after its fork (`reuseport`'s own socket, bound there; the epoll
//! instance of the epoll models).
//!
//! The worker calls the acceptor it was given; the master passes the
//! shared part along without looking inside.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::AtomicBool;

use nix::errno::Errno;

use super::prefork_epoll::EpollWait;
use super::prefork_lock::AcceptLock;
use super::prefork_mutex::AcceptMutex;
use super::{prefork, prefork_epoll_exclusive, prefork_poll, reuseport, Model};
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
            // ENOTRECOVERABLE: `prefork-mutex`'s mutex is unusable.
            Errno::EBADF
            | Errno::ENOTSOCK
            | Errno::EFAULT
            | Errno::EOPNOTSUPP
            | Errno::ENOTRECOVERABLE => AcceptError::Broken,
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
    /// `prefork-mutex`'s.
    mutex: Option<AcceptMutex>,
}

/// Whether `model`'s workers need a non-blocking socket: those that wait
/// for readiness (poll, epoll) before they accept, so that a worker that
/// loses the race gets EAGAIN instead of blocking.
fn wants_nonblocking(model: Model) -> bool {
    matches!(
        model,
        Model::PreforkPoll | Model::PreforkEpoll | Model::PreforkEpollExclusive
    )
}

impl PoolShared {
    /// What `model`'s workers share: a lock file for `prefork-lock`, a
    /// mutex for `prefork-mutex`, nothing for the others. Sets O_NONBLOCK
    /// on a stream `listener` for the models that wait for readiness and
    /// clears it for every other: the flag belongs to the socket, shared
    /// with the master and with the pools of other generations, so each
    /// pool leaves it as its own design needs (and every accept loop copes
    /// with a socket left non-blocking by another: `prefork::accept`).
    pub(crate) fn new(model: Model, listener: &Listener) -> io::Result<PoolShared> {
        listener.set_nonblocking(wants_nonblocking(model))?;
        let lock = match model {
            Model::PreforkLock => Some(AcceptLock::new()?),
            _ => None,
        };
        let mutex = match model {
            Model::PreforkMutex => Some(AcceptMutex::new()?),
            _ => None,
        };
        Ok(PoolShared { lock, mutex })
    }

    /// The descriptors a worker must keep open when it closes the rest.
    pub(crate) fn fds(&self) -> Option<RawFd> {
        self.lock.as_ref().map(|lock| lock.fd().as_raw_fd())
    }
}

/// How one worker of a process pool takes its connections: from the
/// socket it inherited (waiting for it as its model says), or from its own.
pub(crate) struct Acceptor<'a> {
    socket: Socket<'a>,
    wait: Wait<'a>,
    /// The service's name, for logs.
    name: &'a str,
}

enum Socket<'a> {
    Inherited(&'a Listener),
    /// `reuseport`'s, bound by this worker.
    Own(Listener),
}

/// What a worker does before or around accept(2).
enum Wait<'a> {
    /// Nothing: accept blocks (`prefork`, `reuseport`).
    Accept,
    /// `prefork-lock`'s lock file.
    Lock(&'a AcceptLock),
    /// `prefork-mutex`'s mutex.
    Mutex(&'a AcceptMutex),
    /// poll(2) first (`prefork-poll`).
    Poll,
    /// epoll_wait(2) first, on the worker's own instance.
    Epoll(EpollWait),
}

impl<'a> Acceptor<'a> {
    /// Made in the worker after its fork, before it drops its privileges
    /// (a worker of `reuseport` may still bind a privileged port then).
    pub(crate) fn new(
        model: Model,
        listener: &'a Listener,
        shared: &'a PoolShared,
        backlog: i32,
        name: &'a str,
    ) -> io::Result<Acceptor<'a>> {
        let socket = match model {
            Model::Reuseport => Socket::Own(reuseport::own_socket(listener, backlog)?),
            _ => Socket::Inherited(listener),
        };
        let wait = match model {
            Model::PreforkLock => shared.lock.as_ref().map_or(Wait::Accept, Wait::Lock),
            Model::PreforkMutex => shared.mutex.as_ref().map_or(Wait::Accept, Wait::Mutex),
            Model::PreforkPoll => Wait::Poll,
            Model::PreforkEpoll => Wait::Epoll(EpollWait::new(listener, false)?),
            Model::PreforkEpollExclusive => Wait::Epoll(prefork_epoll_exclusive::watch(listener)?),
            _ => Wait::Accept,
        };
        Ok(Acceptor { socket, wait, name })
    }

    /// The socket connections come from.
    pub(crate) fn listener(&self) -> &Listener {
        match &self.socket {
            Socket::Inherited(listener) => listener,
            Socket::Own(listener) => listener,
        }
    }

    /// The next connection, as the model takes it. EINTR when a signal
    /// came (or, for `prefork-mutex`, `stop` was set while waiting for the
    /// mutex); EAGAIN when a readiness wait woke and another worker took
    /// the connection: both for the caller to try again after looking at
    /// `stop`.
    pub(crate) fn accept(&self, stop: &AtomicBool) -> Result<Connection, Errno> {
        let listener = self.listener();
        match &self.wait {
            Wait::Accept => prefork::accept(listener),
            Wait::Lock(lock) => lock.accept(listener),
            Wait::Mutex(mutex) => mutex.accept(listener, stop, self.name),
            Wait::Poll => prefork_poll::accept(listener),
            Wait::Epoll(epoll) => epoll.accept(listener),
        }
    }
}
