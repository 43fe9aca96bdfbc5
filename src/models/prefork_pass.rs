//! `prefork-pass`: N children forked in advance; the parent alone accepts
//! and passes each connection's descriptor to an idle child over a Unix
//! socket (SCM_RIGHTS) (UNP 30.9).
//!
//! What it teaches: descriptor passing, and a parent that knows which
//! child is free. Each child tells the parent when it is done (one byte on
//! its socket); the parent only polls the listening socket while some child
//! is idle, so connections wait in the listen queue, not at a busy child.
//! The parent picks the first idle child, so connections go to the same
//! few children under light load.
//!
//! What it costs: the most system calls per connection of the process
//! designs, all through one process: accept, sendmsg, recvmsg and a write
//! and read back. Stevens measured it as the slowest of the pre-forked
//! designs, and so does `compare`; the parent is a bottleneck on one core.
//!
//! As in `event`, the listening socket is blocking for this model (it is
//! shared): if, during a reload, the next generation's pool takes a
//! connection between this one's poll(2) and accept(2), this parent waits
//! in accept for the next connection, its children's "done" unread
//! meanwhile; unless that pool made the socket non-blocking, and accept
//! fails with EAGAIN, back to poll.
//!
//! System calls per connection: poll, accept4, sendmsg, close in the parent;
//! recvmsg, the handler's, close, write in the child; read in the parent.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::{Accepted, Runner};
use crate::backoff::{self, ForkBackoff};
use crate::exit::WorkerExit;
use crate::sys;
use crate::sys::process::{Fork, Pid};

/// The parent's side of one child.
struct Child {
    pid: Pid,
    channel: UnixStream,
    busy: bool,
}

pub(crate) fn run(runner: &Runner<'_>) -> WorkerExit {
    let mut children: Vec<Option<Child>> = (0..runner.workers().max(1)).map(|_| None).collect();
    super::runner_ready(runner.slot);
    let mut exit = WorkerExit::Done;
    // A child that cannot be forked is tried again with the master's
    // back-off: 1 s, doubling up to 32 s, three kinds of lines.
    let mut failing: Option<ForkBackoff> = None;
    while !runner.stopping() {
        if failing
            .as_ref()
            .is_none_or(|f| Instant::now() >= f.retry_at())
        {
            spawn_missing(runner, &mut children, &mut failing);
        }
        let idle = children.iter().flatten().any(|c| !c.busy);
        // The listener first, polled only while a child is free; then every
        // child's channel.
        let mut fds = vec![PollFd::new(
            runner.listener.as_fd(),
            if idle {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            },
        )];
        let live: Vec<usize> = (0..children.len())
            .filter(|&i| children[i].is_some())
            .collect();
        for &i in &live {
            let child = children[i].as_ref().expect("live");
            fds.push(PollFd::new(child.channel.as_fd(), PollFlags::POLLIN));
        }
        // Until the next attempt to fork a missing child.
        let timeout = match &failing {
            Some(f) if live.len() < children.len() => {
                let wait = f.retry_at().saturating_duration_since(Instant::now());
                let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                PollTimeout::try_from(ms.saturating_add(1)).unwrap_or(PollTimeout::MAX)
            }
            _ => PollTimeout::NONE,
        };
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log::error!("W0012 service {}: poll: {e}", runner.name());
                exit = WorkerExit::Fatal;
                break;
            }
        }
        let readable = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        let listener_ready = readable(&fds[0]);
        let channels_ready: Vec<usize> = live
            .iter()
            .enumerate()
            .filter(|(k, _)| readable(&fds[k + 1]))
            .map(|(_, &i)| i)
            .collect();
        drop(fds);
        for i in channels_ready {
            let mut done = [0u8; 64];
            let child = children[i].as_mut().expect("live");
            match child.channel.read(&mut done) {
                Ok(n) if n > 0 => child.busy = false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // End of file or an error: the child died. Its connection
                // went with it; a new child takes its place.
                _ => {
                    log::warn!(
                        "W0001 service {}: child {} died; replacing it",
                        runner.name(),
                        child.pid
                    );
                    children[i] = None;
                    while let Ok(Some(_)) = sys::process::reap_any() {}
                }
            }
        }
        if listener_ready {
            match super::accept_once(runner.listener, runner.name()) {
                None => {}
                Some(Accepted::Connection(conn)) => pass(runner, &mut children, &conn),
                Some(Accepted::Stop) => break,
                Some(Accepted::Fail(failed)) => {
                    exit = failed;
                    break;
                }
            }
        }
    }
    // Closing the channels tells each child to leave after its connection.
    children.clear();
    while let Ok(Some(_)) = sys::process::reap_blocking() {}
    exit
}

/// Passes `conn` to the first idle child. A child that cannot take it (it
/// died since the poll) is forgotten, and the next idle one tried; with
/// none left, the connection is closed.
fn pass(runner: &Runner<'_>, children: &mut [Option<Child>], conn: &crate::net::Connection) {
    while let Some(i) = children
        .iter()
        .position(|c| c.as_ref().is_some_and(|c| !c.busy))
    {
        let child = children[i].as_mut().expect("idle");
        match sys::fd::send_fd(child.channel.as_fd(), conn.as_fd()) {
            Ok(()) => {
                child.busy = true;
                return;
            }
            Err(e) => {
                log::warn!(
                    "W0001 service {}: cannot pass a connection to child {}: {e}; replacing it",
                    runner.name(),
                    child.pid
                );
                children[i] = None;
                while let Ok(Some(_)) = sys::process::reap_any() {}
            }
        }
    }
    log::warn!(
        "W0013 service {}: no child to pass a connection to; closed",
        runner.name()
    );
}

/// Forks the children that are missing, until one cannot be: then
/// `failing` backs off. Says when all are there again.
fn spawn_missing(
    runner: &Runner<'_>,
    children: &mut [Option<Child>],
    failing: &mut Option<ForkBackoff>,
) {
    let mut error = None;
    for slot in children.iter_mut().filter(|c| c.is_none()) {
        match spawn(runner) {
            Ok(child) => {
                *slot = Some(child);
                if let Some(f) = failing {
                    f.forked();
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let running = children.iter().flatten().count();
    let now = Instant::now();
    match error {
        Some(e) => {
            let report = ForkBackoff::failed(failing, now);
            backoff::log_failure(runner.name(), &e, report, running, children.len());
        }
        None => {
            if let Some(f) = failing.take() {
                backoff::log_recovered(runner.name(), f.end(now), running);
            }
        }
    }
}

/// Forks a child with its end of a new socket pair.
fn spawn(runner: &Runner<'_>) -> std::io::Result<Child> {
    let (ours, theirs) = UnixStream::pair()?;
    let parent = sys::process::current_pid();
    match sys::process::fork(&[]).map_err(|e| std::io::Error::other(e.to_string()))? {
        Fork::Child => {
            drop(ours);
            // Only our own channel stays open, besides the listener and
            // stdio (the siblings' channels were inherited too).
            let keep = [0, 1, 2, runner.listener.as_raw_fd(), theirs.as_raw_fd()];
            let code = match sys::process::die_with_parent(parent)
                .and_then(|()| sys::fd::close_all_except(&keep))
            {
                Ok(()) => {
                    // Our own syslog connection: the inherited one was
                    // among the descriptors just closed.
                    crate::log::reopen_after_fork();
                    serve_passed(runner, theirs)
                }
                Err(e) => {
                    log::error!("W0010 service {}: child cannot start: {e}", runner.name());
                    WorkerExit::Fatal
                }
            };
            let _ = std::io::Write::flush(&mut std::io::stderr());
            sys::process::exit_now(code as i32)
        }
        Fork::Parent(pid) => Ok(Child {
            pid,
            channel: ours,
            busy: false,
        }),
    }
}

/// A child's life: receive a descriptor, serve it, say "done", until the
/// parent closes the channel.
fn serve_passed(runner: &Runner<'_>, mut channel: UnixStream) -> WorkerExit {
    let mut served = 0u64;
    loop {
        let fd: OwnedFd = match sys::fd::recv_fd(channel.as_fd()) {
            Ok(Some(fd)) => fd,
            Ok(None) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("W0012 service {}: recvmsg: {e}", runner.name());
                break;
            }
        };
        match runner.listener.connection_from(fd) {
            Ok(conn) => runner.serve(conn),
            Err(e) => log::warn!("W0013 service {}: a passed connection: {e}", runner.name()),
        }
        served += 1;
        if std::io::Write::write_all(&mut channel, b"d").is_err() {
            break;
        }
    }
    super::report_served(runner.name(), &std::process::id().to_string(), served);
    WorkerExit::Done
}
