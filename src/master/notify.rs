//! Telling others how the master is: systemd (READY=1 once every worker
//! is in accept, RELOADING=1 around a reload, WATCHDOG=1 on time,
//! STOPPING=1), and the old master that started this one by a binary
//! upgrade (`ready` on its pipe, once ready).
//!
//! A binary upgrade under systemd (see upgrade.rs for why the new master is
//! systemd's child from the start): the unit has `NotifyAccess=all`, so
//! the new master's `READY=1` and `STATUS=` are taken although it is not
//! the main process yet; the old master says `MAINPID=` with the new pid
//! once it hears `ready`; and when the old master is gone, the new one says
//! `MAINPID=` (its own), `READY=1` and its `STATUS=` again, so that what
//! systemd shows does not depend on the order in which it read the
//! others. A `STATUS=` sent before a reload's new workers are counted
//! is sent again once every pool has what it wants.

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
    /// The old master, told `ready`, whose exit is awaited (under a
    /// service manager only), and when to look next.
    pub predecessor: Option<(sys::process::Pid, Instant)>,
    /// The last STATUS= was sent before the pools settled.
    pub status_stale: bool,
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
            predecessor: None,
            status_stale: false,
        }
    }

    /// Nobody is listening.
    fn is_idle(&self) -> bool {
        self.notifier.is_none() && self.old_master.is_none()
    }

    /// Something is sent once the pools settle.
    fn waits_for_pools(&self) -> bool {
        !self.ready_sent || self.status_stale && self.notifier.is_some()
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
                if let (Some(pid), Some(_)) = (report.from, &self.manager.notifier) {
                    self.manager.predecessor = Some((pid, now));
                }
            }
        } else if self.manager.status_stale && self.phase.is_serving() && self.all_workers_ready() {
            self.manager.status_stale = false;
            let status = self.status_line();
            self.notify(&format!("STATUS={status}"));
        }
        if let Some((pid, next)) = self.manager.predecessor {
            if now >= next {
                if sys::process::exists(pid) {
                    let next = sys::time::after(now, Duration::from_millis(50));
                    self.manager.predecessor = Some((pid, next));
                } else {
                    // systemd ignores a MAINPID= that names its main process
                    // already; it takes it if the old master's was lost.
                    self.manager.predecessor = None;
                    let status = self.status_line();
                    self.notify(&format!(
                        "MAINPID={}\nREADY=1\nSTATUS={status}",
                        std::process::id()
                    ));
                }
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
        let ready = self
            .manager
            .waits_for_pools()
            .then(|| sys::time::after(Instant::now(), Duration::from_millis(5)));
        let predecessor = self.manager.predecessor.map(|(_, next)| next);
        [
            ready,
            predecessor,
            self.manager.watchdog.map(|(_, next)| next),
        ]
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
        // The new workers are not counted yet: again when they are.
        self.manager.status_stale = true;
        result
    }
}
