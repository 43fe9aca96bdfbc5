//! Workers come and go: forking a pool's workers, reaping them and
//! judging how they ended, adding a pool, and whether a pool can be
//! started at all. How its socket is bound is the model's business
//! (`crate::models::socket`); the rest of the master's loop is in `mod.rs`.

use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Instant;

use super::pool::{self, Pool, Verdict};
use super::{plan, signals, watch, Master, Phase, PoolRun};
use crate::config::Protocol;
use crate::error::Error;
use crate::models::accept::PoolShared;
use crate::scoreboard::Counter;
use crate::service::builtin::metrics::PoolLabel;
use crate::spec::PoolSpec;
use crate::sys;
use crate::sys::process::{ChildExit, Fork, ForkError, Pid};
use crate::worker::{Seat, Worker};

impl<'a> Master<'a> {
    /// Forks as many workers as each live pool wants now.
    pub(super) fn fill_pools(&mut self, now: Instant) -> Result<(), Error> {
        let udp_ports: Vec<u16> = self
            .sockets
            .iter()
            .filter(|((_, proto, _, _), _)| *proto == Protocol::Udp)
            .filter_map(|(_, l)| l.local_addr().map(|a| a.port()))
            .collect();
        for i in 0..self.pools.len() {
            let run = &self.pools[i];
            if run.retiring.is_some() || self.waits_for_socket(i) {
                continue;
            }
            for _ in 0..run.pool.forks_due(now) {
                let Some(slot) = self.board.allocate(self.generation) else {
                    log::error!("W0008 the scoreboard is full: no more workers");
                    return Ok(());
                };
                let run = &self.pools[i];
                let forked = sys::process::fork(&signals::CAUGHT);
                if forked.is_err() {
                    self.board.release(slot);
                }
                match forked {
                    Ok(Fork::Child) => Worker {
                        spec: &run.plan,
                        listener: &run.listener,
                        shared: &run.shared,
                        seat: Seat {
                            board: &self.board,
                            slot: self.board.slot(slot),
                            index: slot,
                            pool: run.shared_slot,
                        },
                        master: self.pid,
                        busy_pipe: run
                            .plan
                            .settings
                            .sizing
                            .is_adaptive()
                            .then(|| self.busy_pipe.1.as_fd()),
                        udp_ports: &udp_ports,
                        pools: &self.directory,
                    }
                    .run(),
                    Ok(Fork::Parent(pid)) => {
                        self.board.slot(slot).set_pid(pid.as_raw() as u32);
                        let shared = self.pools[i].shared_slot;
                        self.board.slot(slot).set_pool(shared);
                        self.board.slot(shared).add(Counter::Started, 1);
                        self.pools[i].pool.forked(pid, now, slot);
                    }
                    Err(e @ (ForkError::Threaded(_) | ForkError::Unverifiable(_))) => {
                        return Err(Error::Fork(e));
                    }
                    Err(e) => {
                        self.fork_failed(i, now, &e);
                        break;
                    }
                }
            }
            let run = &mut self.pools[i];
            if let Some(streak) = run.pool.fork_recovered(now) {
                crate::backoff::log_recovered(&run.plan.name, streak, run.pool.len());
            }
        }
        Ok(())
    }

    /// Whether pool `i` must wait before it forks: it shares its socket
    /// with another pool that still has workers (a reload's old
    /// generation), and one of the two is a wait service, whose program
    /// reads the socket itself. So a changed wait service's new program
    /// starts only once the old one has exited, and no worker accepts
    /// beside it meanwhile. (Reaping the old one wakes the loop, which
    /// forks then.)
    fn waits_for_socket(&self, i: usize) -> bool {
        let run = &self.pools[i];
        self.pools.iter().enumerate().any(|(j, other)| {
            j != i
                && Rc::ptr_eq(&other.listener, &run.listener)
                && other.pool.len() > 0
                && (other.plan.settings.wait || run.plan.settings.wait)
        })
    }

    /// Reaps every child that has ended.
    pub(super) fn reap(&mut self) {
        while self.reap_one(sys::process::reap_any) {}
    }

    /// Reaps one child with `wait` (which may block or not): whether one
    /// was reaped.
    pub(super) fn reap_one(&mut self, wait: fn() -> io::Result<Option<(Pid, ChildExit)>>) -> bool {
        match wait() {
            Ok(Some((pid, exit))) => {
                self.worker_exited(pid, exit);
                true
            }
            Ok(None) => false,
            Err(e) => {
                log::error!("M0006 waitpid: {e}");
                false
            }
        }
    }

    pub(super) fn worker_exited(&mut self, pid: Pid, exit: ChildExit) {
        let now = Instant::now();
        // While starting, a death is judged and logged as when running.
        let serving = matches!(self.phase, Phase::Starting) || self.phase.is_serving();
        let Some((run, (verdict, slot))) = self.pools.iter_mut().find_map(|r| {
            let served = self.board.slot(r.pool.slot_of(pid)?).served();
            r.pool.exited(pid, exit, now, served).map(|v| (r, v))
        }) else {
            if !self.upgrade_child_exited(pid, exit) {
                log::debug!("reaped unknown child {pid}: {exit}");
            }
            return;
        };
        self.board.fold_served(slot, run.shared_slot);
        self.board.release(slot);
        if matches!(verdict, Verdict::Failure { .. } | Verdict::Fatal) {
            self.board.slot(run.shared_slot).add(Counter::DiedYoung, 1);
        }
        run.watch.forget(pid);
        self.leaving.retired.remove(&pid);
        let service = &run.plan.name;
        if !serving || run.retiring.is_some() {
            log::debug!("service {service}: worker {pid} left ({exit})");
            return;
        }
        match verdict {
            Verdict::Normal if exit == ChildExit::Exited(0) => {
                log::debug!("service {service}: worker {pid} exited")
            }
            Verdict::Normal => {
                log::warn!("W0001 service {service}: worker {pid} died ({exit}); replacing it")
            }
            Verdict::Failure { in_a_row, retry_in } => log::warn!(
                "W0002 service {service}: worker {pid} died young ({exit}), {in_a_row} in a row; next fork in {} ms{}",
                retry_in.as_millis(),
                if retry_in >= pool::MAX_BACKOFF {
                    " (forking at most once a second until a worker survives)"
                } else {
                    ""
                }
            ),
            Verdict::Fatal if run.pool.len() == 0 => log::error!(
                "W0003 service {service}: workers cannot start ({exit}); service stopped, not respawning"
            ),
            Verdict::Fatal => log::debug!("service {service}: worker {pid} cannot start ({exit})"),
        }
    }

    /// fork(2) failed for pool `i`: the pool backs off; one line when the
    /// streak starts, then at most one every 10 s with the count.
    fn fork_failed(&mut self, i: usize, now: Instant, e: &ForkError) {
        let run = &mut self.pools[i];
        let report = run.pool.fork_failed(now);
        let (running, target) = (run.pool.len(), run.pool.target());
        crate::backoff::log_failure(&run.plan.name, e, report, running, target);
    }

    /// Adds a pool for `spec` on its socket (which must be bound).
    pub(super) fn add_pool(&mut self, spec: PoolSpec<'a>) {
        let listener = Rc::clone(&self.sockets[&plan::socket_key(&spec)]);
        let pool = Pool::new(spec.processes());
        let shared = match PoolShared::new(spec.settings.model, &listener) {
            Ok(shared) => shared,
            Err(e) => {
                log::error!(
                    "W0006 service {} on {}: cannot prepare the socket or the accept lock: {}; not started",
                    spec.name,
                    spec.addr,
                    sys::fd::describe(&e)
                );
                return;
            }
        };
        let Some(shared_slot) = self.board.allocate_shared() else {
            log::error!(
                "W0008 the scoreboard is full: service {} not started",
                spec.name
            );
            return;
        };
        self.pools.push(PoolRun {
            shared_slot,
            shared,
            plan: spec,
            listener,
            pool,
            retiring: None,
            watch: watch::PoolWatch::default(),
        });
        self.refresh_directory();
    }

    /// Makes the list of pools the `metrics` builtin reads again (the
    /// pools changed); workers forked from now on get the new one. A
    /// retiring pool is left out: its replacement has the same labels.
    pub(super) fn refresh_directory(&mut self) {
        self.directory = self
            .pools
            .iter()
            .filter(|r| r.retiring.is_none())
            .map(|r| {
                PoolLabel::new(
                    &r.plan.name,
                    r.listener.local_display(),
                    &r.plan.protocol().to_string(),
                    r.shared_slot,
                    self.board.serial(r.shared_slot),
                )
            })
            .collect();
    }
}

/// Whether the master can start the workers of `spec`: as root always;
/// otherwise only if they need not switch to another user.
pub(super) fn startable(spec: &PoolSpec<'_>) -> Result<(), String> {
    match &spec.settings.privileges.account {
        Some(account) => crate::privileges::can_become(account),
        None => Ok(()),
    }
}
