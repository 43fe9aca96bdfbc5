//! Workers leaving: the graceful stop and its drain, the fast stop, and
//! the workers of a live pool retired one by one (TTOU, a reload, an idle
//! extra), each nudged with SIGTERM until it is reaped.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{workers, Ended, Master, Phase, PoolRun, NUDGE_EVERY};
use crate::scoreboard::State;
use crate::sys;
use crate::sys::process::Pid;

/// Workers told to leave that have not yet, and when to nudge them again.
#[derive(Debug, Default)]
pub(super) struct Leaving {
    /// Workers of live pools told to leave, nudged until they are reaped.
    pub retired: BTreeSet<Pid>,
    /// When the next nudge is due, while anyone is leaving.
    pub next_nudge: Option<Instant>,
}

impl Master<'_> {
    /// SIGTERM, `preforkd stop`: shut the sockets, let busy workers finish
    /// their connection, kill the rest at the graceful timeout.
    pub(super) fn stop_gracefully(&mut self) {
        if !self.phase.is_serving() {
            return;
        }
        self.cancel_upgrade();
        self.notify("STOPPING=1");
        for listener in self.sockets.values() {
            listener.shut_down();
        }
        self.drain(Ended::Stopped);
    }

    /// Tells every worker to leave after its connection, and waits for
    /// them until the graceful timeout; then the life ends as `then`.
    pub(super) fn drain(&mut self, then: Ended) {
        self.signal_workers(|_| true, Signal::SIGTERM);
        let now = Instant::now();
        self.leaving.next_nudge = Some(sys::time::after(now, NUDGE_EVERY));
        self.set_phase(Phase::Draining {
            deadline: sys::time::after(now, self.graceful_timeout),
            then,
        });
    }

    /// SIGINT, SIGQUIT: kill every worker and stop.
    pub(super) fn stop_now(&mut self) {
        let then = match self.phase {
            Phase::Killing | Phase::Stopped(_) => return,
            Phase::Draining { then, .. } => then,
            _ => Ended::Stopped,
        };
        self.cancel_upgrade();
        // After a hand-over, the service manager's main process is the new
        // master: this one's stop is not the service's.
        if then != Ended::HandedOver {
            self.notify("STOPPING=1");
        }
        self.set_phase(Phase::Killing);
        for listener in self.sockets.values() {
            listener.shut_down();
        }
        self.kill_where(|_| true);
        while self.pools.iter().any(|r| r.pool.len() > 0)
            && self.reap_one(sys::process::reap_blocking)
        {}
        self.set_phase(Phase::Stopped(then));
    }

    /// A drain's timers: stop once every worker has left, kill those still
    /// busy at `deadline`, nudge the others until then.
    pub(super) fn drain_timers(&mut self, now: Instant, deadline: Instant, then: Ended) {
        let left: usize = self.pools.iter().map(|r| r.pool.len()).sum();
        if left == 0 {
            self.set_phase(Phase::Stopped(then));
        } else if now >= deadline {
            log::warn!(
                "M0008 graceful timeout: killing {} still busy",
                workers(left)
            );
            self.kill_where(|_| true);
            self.leaving.next_nudge = None;
            // Killed: they are reaped at once; say it only once.
            self.phase = Phase::Draining {
                deadline: sys::time::after(now, Duration::from_secs(3600)),
                then,
            };
        } else if self.leaving.next_nudge.is_some_and(|t| now >= t) {
            self.nudge_workers(|_| true);
            self.leaving.next_nudge = Some(sys::time::after(now, NUDGE_EVERY));
        }
    }

    /// SIGTERM again to the chosen pools' workers that are not serving a
    /// connection: the first one may have landed just before a worker
    /// blocked in accept(2). A busy worker saw it (its flag is set) and
    /// leaves after its connection; a signal now would only interrupt its
    /// reads and restart their idle timeout.
    fn nudge_workers(&self, which: impl Fn(&PoolRun<'_>) -> bool) {
        for run in self.pools.iter().filter(|r| which(r)) {
            for (pid, slot) in run.pool.slots() {
                if self.board.slot(slot).state() != State::Busy {
                    sys::process::kill(pid, Signal::SIGTERM);
                }
            }
        }
    }

    /// Whether worker `pid` is serving a connection, by the scoreboard.
    fn is_busy(&self, pid: Pid) -> bool {
        self.pools
            .iter()
            .find_map(|r| r.pool.slot_of(pid))
            .is_some_and(|slot| self.board.slot(slot).state() == State::Busy)
    }

    pub(super) fn signal_workers(&self, which: impl Fn(&PoolRun<'_>) -> bool, signal: Signal) {
        for run in self.pools.iter().filter(|r| which(r)) {
            for pid in run.pool.pids() {
                sys::process::kill(pid, signal);
            }
        }
    }

    /// SIGKILL to the process group of every worker of the chosen pools:
    /// the worker and any program it runs.
    pub(super) fn kill_where(&self, which: impl Fn(&PoolRun<'_>) -> bool) {
        for run in self.pools.iter().filter(|r| which(r)) {
            for pid in run.pool.pids() {
                sys::process::kill_group(pid, Signal::SIGKILL);
                sys::process::kill(pid, Signal::SIGKILL);
            }
        }
    }

    /// Retiring pools: nudge their workers, kill them at the deadline, and
    /// forget the pools that are empty.
    pub(super) fn finish_retiring(&mut self, now: Instant) {
        if self.leaving.next_nudge.is_some_and(|t| now >= t) {
            self.nudge_workers(|r| r.retiring.is_some());
            for &pid in &self.leaving.retired {
                if !self.is_busy(pid) {
                    sys::process::kill(pid, Signal::SIGTERM);
                }
            }
            self.leaving.next_nudge = Some(sys::time::after(now, NUDGE_EVERY));
        }
        let overdue = |r: &PoolRun<'_>| r.retiring.is_some_and(|t| now >= t) && r.pool.len() > 0;
        if self.pools.iter().any(overdue) {
            log::warn!("M0008 graceful timeout: killing the old generation's workers still busy");
            self.kill_where(overdue);
        }
        let board = &mut self.board;
        let before = self.pools.len();
        self.pools.retain(|r| {
            let keep = r.retiring.is_none() || r.pool.len() > 0;
            if !keep {
                board.release(r.shared_slot);
            }
            keep
        });
        if self.pools.len() != before {
            self.refresh_directory();
        }
        if !self.pools.iter().any(|r| r.retiring.is_some()) && self.leaving.retired.is_empty() {
            self.leaving.next_nudge = None;
        }
    }

    /// Retires one worker of a live pool (TTOU, reload, an idle extra):
    /// SIGTERM now, and again with every nudge until it is reaped, since
    /// one signal can land just before it blocks in accept(2).
    pub(super) fn retire_worker(&mut self, pid: Pid) {
        sys::process::kill(pid, Signal::SIGTERM);
        self.leaving.retired.insert(pid);
        self.leaving
            .next_nudge
            .get_or_insert_with(|| sys::time::after(Instant::now(), NUDGE_EVERY));
    }
}
