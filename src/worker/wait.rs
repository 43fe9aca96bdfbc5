//! A wait service's worker (inetd's `wait`): it watches the socket, and
//! when a datagram or a connection is waiting starts the program with the
//! socket itself as its stdin and stdout, then waits for it to exit before
//! it watches again. The program reads the datagrams, or accepts the
//! connections, itself (in.tftpd, talkd, an identd in wait mode).
//!
//! The worker is forked before anything arrives, as every worker is: what
//! a datagram costs is the program's fork and exec, in this worker, never
//! a fork in the master. One program runs at a time (the pool has one
//! worker, and a reload starts the new pool's only once the old one has
//! left: `master::spawn`).
//!
//! - A program that exits and leaves the socket as it found it (the same
//!   datagram first in line, or no connection taken) is started again only
//!   after a pause, 100 ms doubling to 10 s while it keeps doing so, with a
//!   line each time (W0025).
//! - `timeout` stops a program that runs past it, as it stops any busy
//!   worker: the master sends the worker's process group SIGTERM, then
//!   SIGKILL (W0020, W0021), and forks a fresh worker.
//! - On a stop (SIGTERM: a graceful stop, or a reload that retires the
//!   service) the program gets SIGTERM once, as xinetd does, and the
//!   worker waits for it and, on Linux, for the processes it left (it is
//!   their subreaper: in.tftpd's transfers run in children of its own), so
//!   that a transfer in flight ends before the worker does, or is killed
//!   with it at `graceful_timeout`.
//!
//! What does not live here: the checks that make a wait service (one
//! worker, prefork, none of the per-client settings: `config::policy`),
//! and how the program is started and told of its socket
//! (`service::exec`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::Worker;
use crate::exit::WorkerExit;
use crate::net::ListenAddr;
use crate::scoreboard::State;
use crate::service::exec::{Child, Waiting};
use crate::service::stderr::{self, Relay};
use crate::service::ExecSpec;
use crate::sys;
use crate::sys::ready::Readiness;

/// The pause before starting again a program that left the socket unread.
const UNREAD_FIRST: Duration = Duration::from_millis(100);

/// The longest such pause.
const UNREAD_MAX: Duration = Duration::from_secs(10);

/// Without a pidfd (not Linux), how often the worker looks whether its
/// program has ended, in milliseconds.
const LOOK_EVERY_MS: u8 = 100;

/// What the socket held when a program started, to tell afterwards
/// whether it took anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstInLine {
    /// The sender of the first datagram waiting.
    Datagram(SocketAddr),
    /// The connections waiting to be accepted, where the system says.
    Connections(Option<u32>),
}

impl Worker<'_> {
    /// Watches the socket and runs the program on it, one at a time,
    /// until a stop.
    pub(super) fn serve_waiting(&self, program: &ExecSpec, stop: &AtomicBool) -> WorkerExit {
        let socket = self.listener.as_fd();
        if let Err(e) = sys::process::adopt_orphans() {
            log::debug!("service {}: cannot adopt orphans: {e}", self.name());
        }
        let mut unread = 0u32;
        self.seat.slot.set(State::Idle);
        loop {
            self.reap_orphans();
            if stop.load(Ordering::SeqCst) {
                return self.leave();
            }
            match sys::ready::wait_readable(socket, None) {
                Ok(Readiness::Readable) => {}
                Ok(Readiness::HungUp) => return self.leave(),
                Ok(Readiness::TimedOut) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("W0012 service {}: poll: {e}", self.name());
                    return WorkerExit::Fatal;
                }
            }
            let first = match self.first_in_line(socket) {
                Ok(Some(first)) => first,
                // Shut down: a stop or a reload that removed the service.
                Ok(None) => return self.leave(),
                // An ICMP report of an earlier reply, collected; or EINTR.
                Err(_) => continue,
            };
            let sender = match first {
                FirstInLine::Datagram(sender) => Some(sender),
                FirstInLine::Connections(_) => None,
            };
            self.seat.slot.begin(sender);
            let started = Instant::now();
            let ran = self.run_program(program, socket, sender, stop);
            self.seat.slot.end();
            let (pid, status) = match ran {
                Ok(ran) => ran,
                Err(e) => {
                    // Removed since startup, a process limit: as an unread
                    // socket, not in a loop.
                    log::warn!("W0013 service {}: {e}", self.name());
                    unread += 1;
                    if !self.pause(unread, stop) {
                        return self.leave();
                    }
                    continue;
                }
            };
            if self.spec.settings.log_connections {
                let ms = started.elapsed().as_millis();
                let by = sender.map_or(String::new(), |s| format!(" for a datagram from {s}"));
                log::info!(
                    "C0005 service {}: {}[{pid}]{by} ran {ms} ms: {status}",
                    self.name(),
                    program.name()
                );
            }
            if stop.load(Ordering::SeqCst) {
                return self.leave();
            }
            if self.left_unread(socket, first) {
                unread += 1;
                log::warn!(
                    "W0025 service {}: {}[{pid}] exited ({status}) and left the socket unread; next start in {} ms ({unread} in a row)",
                    self.name(),
                    program.name(),
                    pause_after(unread).as_millis()
                );
                if !self.pause(unread, stop) {
                    return self.leave();
                }
            } else {
                unread = 0;
            }
        }
    }

    /// What is first on the socket: a datagram's sender (peeked at, left
    /// for the program), or the length of the accept queue. `None` once
    /// the socket is shut down.
    fn first_in_line(&self, socket: BorrowedFd<'_>) -> io::Result<Option<FirstInLine>> {
        if self.listener.as_udp().is_none() {
            return Ok(Some(FirstInLine::Connections(sys::fd::accept_queue(
                socket,
            ))));
        }
        let mut byte = [0u8; 1];
        Ok(sys::ready::recv_from(socket, &mut byte, true)?
            .map(|(_, sender)| FirstInLine::Datagram(sender)))
    }

    /// Whether the program that just exited took nothing: the same sender
    /// is first in line, or no fewer connections wait (where the system
    /// counts them; elsewhere, any connection waiting).
    fn left_unread(&self, socket: BorrowedFd<'_>, before: FirstInLine) -> bool {
        if sys::ready::wait_readable(socket, Some(Duration::ZERO)).ok() != Some(Readiness::Readable)
        {
            return false;
        }
        match (before, self.first_in_line(socket)) {
            (FirstInLine::Datagram(a), Ok(Some(FirstInLine::Datagram(b)))) => a == b,
            (FirstInLine::Connections(Some(a)), Ok(Some(FirstInLine::Connections(Some(b))))) => {
                b >= a && b > 0
            }
            (FirstInLine::Connections(None), Ok(Some(_))) => true,
            _ => false,
        }
    }

    /// The pause after the `unread`th program in a row that took nothing;
    /// `false` if a stop came meanwhile.
    fn pause(&self, unread: u32, stop: &AtomicBool) -> bool {
        let until = Instant::now() + pause_after(unread);
        loop {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            sys::ready::pause(until - now);
        }
    }

    /// Starts the program on the socket and waits for it; its pid and how
    /// it ended.
    fn run_program(
        &self,
        program: &ExecSpec,
        socket: BorrowedFd<'_>,
        sender: Option<SocketAddr>,
        stop: &AtomicBool,
    ) -> io::Result<(u32, ExitStatus)> {
        let waiting = match (&self.spec.addr, self.listener.local_addr()) {
            (ListenAddr::Unix(path), _) => Waiting::Unix { local: path },
            (_, Some(local)) if self.listener.as_udp().is_some() => Waiting::Udp { local, sender },
            (_, Some(local)) => Waiting::Tcp { local },
            (_, None) => return Err(io::Error::other("the socket has no address")),
        };
        let mut relay = stderr::wanted().then(Relay::new).transpose()?;
        let mut child = program.spawn_waiting(socket, &waiting, relay.as_ref())?;
        let pid = child.id();
        let status = self.wait_for(&mut child, relay.as_mut(), &program.name(), stop)?;
        if let Some(relay) = &mut relay {
            relay.finish(&program.name(), Some(pid));
        }
        Ok((pid, status))
    }

    /// Waits for the program, relaying its stderr; SIGTERM to it once a
    /// stop comes. (A program past `timeout` is the master's to stop, as
    /// any busy worker is: W0020.)
    fn wait_for(
        &self,
        child: &mut Child,
        mut relay: Option<&mut Relay>,
        name: &str,
        stop: &AtomicBool,
    ) -> io::Result<ExitStatus> {
        let pid = child.id();
        #[cfg(target_os = "linux")]
        let ended = sys::stdio::child_ended_fd(pid).ok();
        #[cfg(not(target_os = "linux"))]
        let ended: Option<std::os::fd::OwnedFd> = None;
        let timeout = match ended {
            Some(_) => PollTimeout::NONE,
            None => PollTimeout::from(LOOK_EVERY_MS),
        };
        let mut told_to_stop = false;
        loop {
            if stop.load(Ordering::SeqCst) && !told_to_stop {
                log::info!(
                    "service {}: stopping: SIGTERM to {name}[{pid}]",
                    self.name()
                );
                sys::process::kill(sys::process::Pid::from_raw(pid as i32), Signal::SIGTERM);
                told_to_stop = true;
            }
            let mut fds = Vec::with_capacity(2);
            if let Some(fd) = &ended {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            if let Some(relay) = &relay {
                fds.push(PollFd::new(relay.read_fd(), PollFlags::POLLIN));
            }
            let polled = nix::poll::poll(&mut fds, timeout);
            let done = ended.is_some()
                && polled.is_ok()
                && fds[0].revents().is_some_and(|r| !r.is_empty());
            if let Some(relay) = relay.as_deref_mut() {
                relay.relay(name, Some(pid), false);
            }
            if done || (ended.is_none() && child.try_wait()?.is_some()) {
                return child.wait();
            }
        }
    }

    /// Reaps the processes a program left behind that have ended since.
    fn reap_orphans(&self) {
        while let Ok(Some((pid, exit))) = sys::process::reap_any() {
            log::debug!(
                "service {}: reaped {pid}, left by a program ({exit})",
                self.name()
            );
        }
    }

    /// Leaves after a stop: once the processes a program left behind have
    /// ended too (the master kills them with the worker at the graceful
    /// timeout).
    fn leave(&self) -> WorkerExit {
        self.seat.slot.set(State::Exiting);
        while let Ok(Some((pid, exit))) = sys::process::reap_blocking() {
            log::debug!(
                "service {}: reaped {pid}, left by a program ({exit})",
                self.name()
            );
        }
        WorkerExit::Done
    }
}

/// The pause after the `unread`th program in a row that left the socket
/// unread: [`UNREAD_FIRST`], doubling, at most [`UNREAD_MAX`].
fn pause_after(unread: u32) -> Duration {
    let doublings = unread.saturating_sub(1).min(16);
    UNREAD_FIRST.saturating_mul(1 << doublings).min(UNREAD_MAX)
}
