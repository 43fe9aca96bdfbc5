//! The master: forks the workers, watches them, and stops them.
//!
//! The master never accepts a connection. It holds the listening socket
//! (bound before it starts), forks the pool's workers, and then sits in one
//! loop: wait for a signal or the next timer, act on it, repeat. Signal
//! handlers only record (see [`signals`]); every decision is taken here, in
//! order, single-threaded, so a worker forked from this loop is a whole copy
//! of a one-thread process.
//!
//! The lifecycle is [`Phase`]; every change of phase is logged.

mod pool;
pub(crate) mod signals;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::Error;
use crate::net::Listener;
use crate::service::Handler;
use crate::sys;
use crate::sys::process::{ChildExit, Fork, ForkError, Pid};
use crate::worker::Worker;
use crate::Options;
use pool::{Pool, Verdict};
use signals::{Event, Signals};

/// Where the master is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Forking the first workers.
    Starting,
    /// Serving; the pool is kept at its size.
    Running,
    /// Graceful stop: the listener is shut, busy workers finish their
    /// connection; at `deadline` the rest are killed.
    Draining {
        /// When the remaining workers get SIGKILL.
        deadline: Instant,
    },
    /// Fast stop: every worker is being killed.
    Killing,
    /// Every worker is gone.
    Stopped,
}

/// How often a draining master repeats SIGTERM to workers that have not
/// left yet. A worker can miss the first one when it arrives between its
/// check of the stop flag and its call to accept(2); on TCP the shutdown of
/// the listener wakes it anyway, so this only matters for Unix sockets.
const DRAIN_NUDGE: Duration = Duration::from_millis(250);

pub(crate) struct Master<'a> {
    listener: &'a Listener,
    handler: &'a dyn Handler,
    service: String,
    options: Options,
    pool: Pool,
    phase: Phase,
    next_nudge: Option<Instant>,
    pid: Pid,
}

impl<'a> Master<'a> {
    pub(crate) fn new(
        listener: &'a Listener,
        handler: &'a dyn Handler,
        service: String,
        options: Options,
    ) -> Master<'a> {
        Master {
            listener,
            handler,
            service,
            pool: Pool::new(options.workers.max(1)),
            options,
            phase: Phase::Starting,
            next_nudge: None,
            pid: sys::process::current_pid(),
        }
    }

    /// Runs until stopped. Prints `listening on ADDR` once the signal
    /// handlers are in place and the first workers are forked, so whoever
    /// reads that line may signal us at once.
    pub(crate) fn run(mut self) -> Result<(), Error> {
        self.set_phase(Phase::Starting);
        let mut signals = Signals::install().map_err(|e| Error::Startup {
            what: "cannot install signal handlers",
            source: e,
        })?;
        self.fill_pool(Instant::now())?;
        if self.pool.is_fatal() {
            return Err(Error::WorkersFailed {
                service: self.service.clone(),
            });
        }
        crate::log::announce(&format!("listening on {}", self.listener.local_display()));
        self.set_phase(Phase::Running);

        while self.phase != Phase::Stopped {
            let now = Instant::now();
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(now));
            let events = signals.wait(timeout).map_err(|e| Error::Startup {
                what: "cannot wait for signals",
                source: e,
            })?;
            for event in events {
                self.act(event);
            }
            self.run_timers(Instant::now())?;
            if self.pool.is_fatal() && self.pool.len() == 0 && self.phase == Phase::Running {
                return Err(Error::WorkersFailed {
                    service: self.service.clone(),
                });
            }
        }
        Ok(())
    }

    fn set_phase(&mut self, phase: Phase) {
        let name = match phase {
            Phase::Starting => format!(
                "starting {} for service {} on {}",
                workers(self.pool.target()),
                self.service,
                self.listener.local_display()
            ),
            Phase::Running => format!("running with {}", workers(self.pool.target())),
            Phase::Draining { .. } => format!(
                "stopping gracefully: waiting up to {:?} for {}",
                self.options.graceful_timeout,
                workers(self.pool.len())
            ),
            Phase::Killing => format!("stopping now: killing {}", workers(self.pool.len())),
            Phase::Stopped => "stopped".to_string(),
        };
        log::info!("M0001 master {}: {}", self.pid, name);
        self.phase = phase;
    }

    fn act(&mut self, event: Event) {
        match event {
            Event::Reap => self.reap(),
            Event::StopGraceful => self.stop_gracefully(),
            Event::StopFast => self.stop_now(),
            Event::AddWorker if self.phase == Phase::Running => {
                self.pool.grow();
                log::info!(
                    "M0002 service {}: TTIN: now {} workers",
                    self.service,
                    self.pool.target()
                );
            }
            Event::RemoveWorker if self.phase == Phase::Running => {
                if let Some(pid) = self.pool.shrink() {
                    sys::process::kill(pid, Signal::SIGTERM);
                }
                log::info!(
                    "M0003 service {}: TTOU: now {} workers",
                    self.service,
                    self.pool.target()
                );
            }
            Event::AddWorker | Event::RemoveWorker => {}
            Event::Reload => {
                log::warn!("M0004 HUP: `preforkd run` has no configuration to reload; ignored")
            }
            // Log output goes to stderr, which is not reopened.
            Event::ReopenLogs => log::debug!("USR1: no log file to reopen"),
            Event::Upgrade => {
                log::warn!("M0005 USR2: binary upgrade is not supported by `preforkd run`; ignored")
            }
        }
    }

    /// Reaps every child that has ended.
    fn reap(&mut self) {
        loop {
            match sys::process::reap_any() {
                Ok(Some((pid, exit))) => self.worker_exited(pid, exit),
                Ok(None) => return,
                Err(e) => {
                    log::error!("M0006 waitpid: {e}");
                    return;
                }
            }
        }
    }

    fn worker_exited(&mut self, pid: Pid, exit: ChildExit) {
        let now = Instant::now();
        let Some(verdict) = self.pool.exited(pid, exit, now) else {
            log::debug!("reaped unknown child {pid}: {exit}");
            return;
        };
        if self.phase != Phase::Running {
            log::debug!("service {}: worker {pid} left ({exit})", self.service);
            return;
        }
        match verdict {
            Verdict::Normal if exit == ChildExit::Exited(0) => {
                log::debug!("service {}: worker {pid} exited", self.service)
            }
            Verdict::Normal => {
                log::warn!("W0001 service {}: worker {pid} died ({exit}); replacing it", self.service)
            }
            Verdict::Failure { in_a_row, retry_in } => log::warn!(
                "W0002 service {}: worker {pid} died young ({exit}), {in_a_row} in a row; next fork in {} ms{}",
                self.service,
                retry_in.as_millis(),
                if retry_in >= pool::MAX_BACKOFF { " (forking at most once a second until a worker survives)" } else { "" }
            ),
            Verdict::Fatal => log::error!(
                "W0003 service {}: worker {pid} cannot work ({exit}); not respawning",
                self.service
            ),
        }
    }

    fn stop_gracefully(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.listener.shut_down();
        for pid in self.pool.pids() {
            sys::process::kill(pid, Signal::SIGTERM);
        }
        let now = Instant::now();
        let is_tcp = self.listener.local_addr().is_some();
        self.next_nudge = (!is_tcp).then(|| now + DRAIN_NUDGE);
        self.set_phase(Phase::Draining {
            deadline: now + self.options.graceful_timeout,
        });
    }

    fn stop_now(&mut self) {
        if self.phase == Phase::Stopped {
            return;
        }
        self.set_phase(Phase::Killing);
        self.listener.shut_down();
        self.kill_all();
    }

    /// SIGKILL to every worker's process group (the worker and any program
    /// it runs), then reap them all.
    fn kill_all(&mut self) {
        for pid in self.pool.pids() {
            sys::process::kill_group(pid, Signal::SIGKILL);
            sys::process::kill(pid, Signal::SIGKILL);
        }
        while self.pool.len() > 0 {
            match sys::process::reap_blocking() {
                Ok(Some((pid, exit))) => self.worker_exited(pid, exit),
                Ok(None) => break,
                Err(e) => {
                    log::error!("M0006 waitpid: {e}");
                    break;
                }
            }
        }
        self.set_phase(Phase::Stopped);
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Draining { deadline } => [Some(deadline), self.next_nudge]
                .into_iter()
                .flatten()
                .min(),
            Phase::Running => self.pool.next_deadline(),
            Phase::Starting | Phase::Killing | Phase::Stopped => None,
        }
    }

    fn run_timers(&mut self, now: Instant) -> Result<(), Error> {
        match self.phase {
            Phase::Running => {
                if self.pool.check_recovered(now) {
                    log::info!(
                        "W0004 service {}: workers survive again; back-off reset",
                        self.service
                    );
                }
                self.fill_pool(now)?;
            }
            Phase::Draining { deadline } => {
                if self.pool.len() == 0 {
                    self.set_phase(Phase::Stopped);
                } else if now >= deadline {
                    log::warn!(
                        "M0008 graceful timeout: killing {} workers still busy",
                        self.pool.len()
                    );
                    self.kill_all();
                } else if self.next_nudge.is_some_and(|t| now >= t) {
                    for pid in self.pool.pids() {
                        sys::process::kill(pid, Signal::SIGTERM);
                    }
                    self.next_nudge = Some(now + DRAIN_NUDGE);
                }
            }
            Phase::Starting | Phase::Killing | Phase::Stopped => {}
        }
        Ok(())
    }

    /// Forks as many workers as the pool wants now.
    fn fill_pool(&mut self, now: Instant) -> Result<(), Error> {
        for _ in 0..self.pool.forks_due(now) {
            match sys::process::fork(&signals::CAUGHT) {
                Ok(Fork::Child) => Worker {
                    listener: self.listener,
                    handler: self.handler,
                    master: self.pid,
                    service: &self.service,
                }
                .run(),
                Ok(Fork::Parent(pid)) => {
                    sys::process::own_process_group(pid);
                    self.pool.forked(pid, now);
                }
                Err(e @ (ForkError::Threaded(_) | ForkError::Unverifiable(_))) => {
                    return Err(Error::Fork(e));
                }
                Err(e) => {
                    let wait = self.pool.fork_failed(now);
                    log::error!(
                        "W0005 service {}: {e}; retrying in {} ms",
                        self.service,
                        wait.as_millis()
                    );
                    break;
                }
            }
        }
        Ok(())
    }
}

/// "1 worker", "3 workers".
fn workers(n: usize) -> String {
    if n == 1 {
        "1 worker".to_string()
    } else {
        format!("{n} workers")
    }
}
