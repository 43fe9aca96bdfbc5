//! Telling others how the master is: systemd (READY=1 once every worker
//! is in accept, RELOADING=1 around a reload, WATCHDOG=1 on time,
//! STOPPING=1), and the old master that started this one by a binary
//! upgrade (`ready` on its pipe, once ready).

use std::time::{Duration, Instant};

use super::upgrade::ReadyReport;
use super::{Master, PoolRun};
use crate::scoreboard::State;
use crate::sys;

/// Who waits to hear from the master, and what it told them.
#[derive(Debug, Default)]
pub(super) struct Manager {
    /// systemd's notification socket ($NOTIFY_SOCKET).
    pub notifier: Option<sys::daemon::Notifier>,
    /// READY=1 was sent.
    pub ready_sent: bool,
    /// WATCHDOG=1 every this long (half of $WATCHDOG_USEC), and when next.
    pub watchdog: Option<(Duration, Instant)>,
    /// The old master that started this one, waiting for `ready`.
    pub old_master: Option<ReadyReport>,
}

impl Manager {
    /// Reads $NOTIFY_SOCKET and $WATCHDOG_USEC: in `run`, since the process
    /// may have detached since the master was made.
    pub(super) fn from_env(old_master: Option<ReadyReport>) -> Manager {
        Manager {
            notifier: sys::daemon::Notifier::from_env(),
            ready_sent: false,
            watchdog: sys::daemon::watchdog_usec()
                .map(|us| (Duration::from_micros(us / 2), Instant::now())),
            old_master,
        }
    }

    /// Nobody is listening.
    fn is_idle(&self) -> bool {
        self.notifier.is_none() && self.old_master.is_none()
    }
}

impl Master<'_> {
    /// Sends `state` to systemd, if it is listening.
    pub(super) fn notify(&self, state: &str) {
        if let Some(n) = &self.manager.notifier {
            n.send(state);
        }
    }

    /// READY=1 (with a STATUS= line) once every worker of every live pool
    /// is in accept, and WATCHDOG=1 on time.
    pub(super) fn notify_service_manager(&mut self, now: Instant) {
        if self.manager.is_idle() {
            return;
        }
        if !self.manager.ready_sent && self.phase.is_serving() && self.all_workers_ready() {
            self.manager.ready_sent = true;
            let status = self.status_line();
            self.notify(&format!("READY=1\nSTATUS={status}"));
            // A master started by a binary upgrade takes over the sockets
            // and the pidfile, and tells the old one.
            if let Some(report) = self.manager.old_master.take() {
                for listener in self.sockets.values() {
                    listener.set_managed(false);
                }
                if let Some(fd) = report.pidfile {
                    if let Err(e) = sys::daemon::rewrite_pid(fd) {
                        log::warn!(
                            "M0044 upgrade: cannot write the pidfile: {}",
                            sys::fd::describe(&e)
                        );
                    }
                }
                let _ = nix::unistd::write(&report.pipe, b"ready\n");
            }
        }
        if let Some((every, next)) = self.manager.watchdog {
            if now >= next {
                self.notify("WATCHDOG=1");
                self.manager.watchdog = Some((every, sys::time::after(now, every)));
            }
        }
    }

    /// When to look again: soon while READY=1 waits for workers, and at
    /// the next watchdog ping.
    pub(super) fn next_notification(&self) -> Option<Instant> {
        if self.manager.is_idle() {
            return None;
        }
        let ready = (!self.manager.ready_sent)
            .then(|| sys::time::after(Instant::now(), Duration::from_millis(5)));
        [ready, self.manager.watchdog.map(|(_, next)| next)]
            .into_iter()
            .flatten()
            .min()
    }

    fn all_workers_ready(&self) -> bool {
        self.pools
            .iter()
            .filter(|r| r.retiring.is_none())
            .all(|r| self.pool_ready(r))
    }

    /// Whether every worker `run` wants is past its start (in accept), or
    /// the pool has stopped for good.
    pub(super) fn pool_ready(&self, run: &PoolRun<'_>) -> bool {
        run.pool.is_fatal()
            || run.pool.len() >= run.pool.target()
                && run
                    .pool
                    .slots()
                    .all(|(_, s)| self.board.slot(s).state() != State::Starting)
    }

    fn status_line(&self) -> String {
        let status = self.status();
        let busy: usize = status.pools.iter().map(|p| p.busy).sum();
        let idle: usize = status.pools.iter().map(|p| p.idle).sum();
        format!(
            "{} pools, {busy} workers busy, {idle} idle, generation {}",
            status.pools.len(),
            self.generation
        )
    }

    /// A reload, framed for systemd: RELOADING=1 first, READY=1 after
    /// (whether the new file was taken or refused, something serves).
    pub(super) fn reload_notified(&mut self) -> Result<String, String> {
        if !self.phase.is_serving() {
            return Err("the master is stopping; nothing to reload".into());
        }
        let now_us = sys::shm::monotonic_us();
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={now_us}"));
        let result = self.reload();
        let status = self.status_line();
        self.notify(&format!("READY=1\nSTATUS={status}"));
        result
    }
}
