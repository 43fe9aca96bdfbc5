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
//!
//! The master leaves the socket blocking for this model. But O_NONBLOCK
//! belongs to the socket, which a reload shares with the next generation:
//! if that one runs `prefork-poll` or an epoll model, it makes the socket
//! non-blocking under the workers of this one, still draining. Their
//! accept(2) then fails with EAGAIN when nothing is queued, and `accept`
//! waits in poll(2) for the socket to turn readable before it tries again,
//! rather than spinning. Every model that waits in accept takes its
//! connections through it.

use std::os::fd::AsFd;

use nix::errno::Errno;

use crate::net::{Connection, Listener};
use crate::sys;

/// A worker's next connection: a plain accept(2) on the shared socket;
/// if the socket is non-blocking and nothing is queued, poll(2) until
/// something is, and accept again. EINTR (from either) is returned, for
/// the caller to look at its stop flag.
pub(crate) fn accept(listener: &Listener) -> Result<Connection, Errno> {
    loop {
        match listener.accept() {
            Err(Errno::EAGAIN) => wait_readable(listener)?,
            accepted => return accepted,
        }
    }
}

/// Waits in poll(2) until `listener` has a connection to accept (or is
/// shut down, which accept then reports). EINTR is returned.
pub(crate) fn wait_readable(listener: &Listener) -> Result<(), Errno> {
    sys::ready::wait_readable(listener.as_fd(), None)
        .map(|_| ())
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Duration;

    use nix::sys::resource::{getrusage, UsageWho};

    use crate::net::{ListenAddr, Listener};

    /// A socket left non-blocking by another pool: [`super::accept`] waits
    /// in poll(2) for the client that comes 300 ms later, and the wait
    /// costs the thread next to no CPU, where retrying accept would burn
    /// all of it.
    #[test]
    fn accept_waits_on_a_nonblocking_socket_without_spinning() {
        let addr: ListenAddr = "127.0.0.1:0".parse().unwrap();
        let listener = Listener::bind(&addr, 16).unwrap();
        listener.set_nonblocking(true).unwrap();
        let to = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::net::TcpStream::connect(to).unwrap()
        });
        let cpu = || {
            let usage = getrusage(UsageWho::RUSAGE_THREAD).unwrap();
            let us = |t: nix::sys::time::TimeVal| {
                Duration::from_micros(t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64)
            };
            us(usage.user_time()) + us(usage.system_time())
        };
        let before = cpu();
        let accepted = super::accept(&listener);
        let spent = cpu() - before;
        assert!(accepted.is_ok(), "{:?}", accepted.err());
        assert!(spent < Duration::from_millis(20), "{spent:?} of CPU");
        drop(client.join());
    }
}
