//! The master's signals, as events for its loop.
//!
//! signal-hook's handlers only write a byte to a socket pair and record the
//! signal number; [`Signals::wait`] polls the read end with the loop's
//! timeout and turns what arrived into [`Event`]s. This is the only place
//! signal numbers appear in the master.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use signal_hook::consts::signal::*;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

/// Every signal the master catches. A forked worker resets these to their
/// default disposition before anything else (see `sys::process::fork`).
pub(crate) const CAUGHT: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGCHLD,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// What a signal asks the master to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// CHLD: reap children.
    Reap,
    /// TERM: graceful stop.
    StopGraceful,
    /// INT, QUIT: fast stop.
    StopFast,
    /// TTIN: one worker more.
    AddWorker,
    /// TTOU: one worker less.
    RemoveWorker,
    /// HUP: reload.
    Reload,
    /// USR1: reopen log files.
    ReopenLogs,
    /// USR2: binary upgrade.
    Upgrade,
}

/// The master's signal handlers and their self-pipe.
pub(crate) struct Signals {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
}

impl Signals {
    /// Installs the handlers for [`CAUGHT`].
    pub(crate) fn install() -> io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        let numbers = CAUGHT.map(|s| s as i32);
        let delivery = SignalDelivery::with_pipe(read, write, SignalOnly, numbers)?;
        Ok(Signals { delivery })
    }

    /// Waits until a signal arrives, one of `others` becomes readable, or
    /// `timeout` passes (`None`: no limit). Returns the events that arrived,
    /// in the order the master should act on them (reaping first, so that a
    /// stop or a scale decision sees the pool as it is), and what poll(2)
    /// said of each of `others` (each polled for its own flags).
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        others: &[(BorrowedFd<'_>, PollFlags)],
    ) -> io::Result<(Vec<Event>, Vec<PollFlags>)> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            // Round up, so a timer due in 0.4 ms does not become a busy loop.
            Some(d) => {
                PollTimeout::try_from(d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = vec![PollFd::new(
            self.delivery.get_read().as_fd(),
            PollFlags::POLLIN,
        )];
        fds.extend(others.iter().map(|(fd, flags)| PollFd::new(*fd, *flags)));
        let polled = nix::poll::poll(&mut fds, timeout);
        let ready = fds[1..]
            .iter()
            .map(|fd| match polled {
                Ok(_) => fd.revents().unwrap_or(PollFlags::empty()),
                Err(_) => PollFlags::empty(),
            })
            .collect();
        match polled {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut events: Vec<Event> = self.delivery.pending().filter_map(to_event).collect();
        events.sort_by_key(|e| *e != Event::Reap);
        Ok((events, ready))
    }
}

fn to_event(signal: i32) -> Option<Event> {
    Some(match signal {
        SIGCHLD => Event::Reap,
        SIGTERM => Event::StopGraceful,
        SIGINT | SIGQUIT => Event::StopFast,
        SIGTTIN => Event::AddWorker,
        SIGTTOU => Event::RemoveWorker,
        SIGHUP => Event::Reload,
        SIGUSR1 => Event::ReopenLogs,
        SIGUSR2 => Event::Upgrade,
        _ => return None,
    })
}
