//! The master: forks the workers, watches them, reloads and stops them.
//!
//! The master never accepts a connection. It holds the listening sockets,
//! forks the workers of each pool (one pool per service and address), and
//! then sits in one loop: wait for a signal or the next timer, act on it,
//! repeat. Signal handlers only record (see [`signals`]); every decision is
//! taken here, in order, single-threaded, so a worker forked from this loop
//! is a whole copy of a one-thread process.
//!
//! What lives elsewhere: making a master ([`start`]), the back-off
//! arithmetic ([`pool`]), forking a pool's workers ([`spawn`]), what to
//! keep on a reload ([`reload`]), what a plan is ([`plan`]), stopping and
//! retiring workers ([`stop`]), the scoreboard watch ([`watch`]), telling
//! systemd ([`notify`]), the binary upgrade ([`upgrade`]) and the control
//! socket ([`control`]).
//!
//! The lifecycle is [`Phase`], which holds what each phase needs; every
//! change of phase but to and from [`Phase::Upgrading`] is logged.

mod control;
mod notify;
pub(crate) mod plan;
mod pool;
mod reload;
pub(crate) mod signals;
mod spawn;
mod start;
mod stop;
pub(crate) mod upgrade;
mod watch;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use crate::error::Error;
use crate::models::accept::PoolShared;
use crate::net::Listener;
use crate::scoreboard::Scoreboard;
use crate::service::builtin::metrics::PoolLabel;
use crate::spec::PoolSpec;
use crate::sys;
use crate::sys::process::Pid;
use plan::{Plan, SocketKey};
use pool::Pool;
use signals::{Event, Signals};

/// Where the master is in its life, with what that part of it needs.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Forking the first workers.
    Starting,
    /// Serving; every pool is kept at its size.
    Running,
    /// Serving, while a new master started by USR2 gets ready.
    Upgrading(upgrade::InProgress),
    /// Graceful stop, or a new master took over: the busy workers finish
    /// their connection; at `deadline` the rest are killed.
    Draining {
        /// When the remaining workers get SIGKILL.
        deadline: Instant,
        /// How the master's life ends once they are gone.
        then: Ended,
    },
    /// Fast stop: every worker is being killed.
    Killing,
    /// Every worker is gone.
    Stopped(Ended),
}

impl Phase {
    /// Serving connections: running, upgrading or not.
    fn is_serving(&self) -> bool {
        matches!(self, Phase::Running | Phase::Upgrading(_))
    }

    /// The upgrade under way, if any.
    fn upgrade(&self) -> Option<&upgrade::InProgress> {
        match self {
            Phase::Upgrading(up) => Some(up),
            _ => None,
        }
    }
}

/// How often a stopping master repeats SIGTERM to workers that have not
/// left yet. A worker can miss the first one when it arrives between its
/// check of the stop flag and its call to accept(2). On a TCP socket that
/// the master shuts down the worker wakes anyway; a socket kept across a
/// reload, a Unix or a UDP socket has no such wake-up.
const NUDGE_EVERY: Duration = Duration::from_millis(250);

/// How the master's life ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Stopped by a signal or `preforkd stop`.
    Stopped,
    /// A new master (binary upgrade) took the sockets and the pidfile.
    HandedOver,
}

/// How the `listening on` lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announce {
    /// `listening on ADDR` (`preforkd run`, the library).
    Address,
    /// `listening on ADDR (PROTO service NAME)` (`preforkd serve`).
    WithService,
}

/// A function that reads the configuration again, for SIGHUP.
pub(crate) type Reloader<'a> = Box<dyn FnMut() -> Result<Plan<'a>, Vec<String>> + 'a>;

/// One pool at work: its plan, its socket, its workers.
struct PoolRun<'a> {
    plan: PoolSpec<'a>,
    listener: Rc<Listener>,
    pool: Pool,
    /// Set when a reload replaced or removed it: the workers are finishing
    /// and are killed at this deadline.
    retiring: Option<Instant>,
    /// What the scoreboard watch keeps about this pool.
    watch: watch::PoolWatch,
    /// The pool's shared slot on the scoreboard (its rate limiter, its
    /// counters; the tag its workers' slots carry, for per_source).
    shared_slot: usize,
    /// What its workers share (`prefork-lock`'s lock file, `prefork-mutex`'s
    /// mutex), inherited by each.
    shared: PoolShared,
}

impl PoolRun<'_> {
    /// Whether TTIN and TTOU change the pool's size: not a single-process
    /// model's one runner, nor a wait service's one worker.
    fn scales_by_signal(&self) -> bool {
        self.plan.settings.model.is_process_pool() && !self.plan.settings.wait
    }
}

/// The supervisor's state: each concern in a struct of its own, the
/// lifecycle in [`Phase`].
pub(crate) struct Master<'a> {
    board: Scoreboard,
    /// Workers of adaptive pools write a byte here when they turn busy or
    /// idle; the master polls the read end with its signals.
    busy_pipe: (OwnedFd, OwnedFd),
    /// The control socket of `preforkd status`, `reload`, `stop`.
    control: control::Control,
    /// systemd, and an old master waiting for us to be ready.
    manager: notify::Manager,
    /// How to start a new master on USR2 (`serve` only).
    upgrader: Option<upgrade::Upgrader>,
    /// Workers told to leave that have not yet.
    leaving: stop::Leaving,
    sockets: BTreeMap<SocketKey, Rc<Listener>>,
    pools: Vec<PoolRun<'a>>,
    /// Every pool's names and shared slot, for the `metrics` builtin:
    /// made when the pools change, given to each worker by reference.
    directory: Vec<PoolLabel>,
    graceful_timeout: Duration,
    /// Reads the configuration again, for SIGHUP (`serve` only).
    reloader: Option<Reloader<'a>>,
    /// The file `reloader` reads, absolute (`serve` only; `None` for the
    /// built-in default): `reload FILE` naming another is refused.
    config_file: Option<std::path::PathBuf>,
    generation: u32,
    phase: Phase,
    announce: Announce,
    pid: Pid,
}

impl<'a> Master<'a> {
    /// Runs until stopped. Prints the `listening on` lines once the signal
    /// handlers are in place and the first workers are forked (with
    /// `reuseport`, once they listen), so whoever reads them may signal us,
    /// and connect, at once.
    pub(crate) fn run(mut self) -> Result<Ended, Error> {
        // The process may have detached (forked) since `new`.
        self.pid = sys::process::current_pid();
        self.manager = notify::Manager::from_env(self.manager.old_master.take());
        self.set_phase(Phase::Starting);
        let mut signals = Signals::install().map_err(|e| Error::Startup {
            what: "cannot install signal handlers",
            source: e,
        })?;
        self.fill_pools(Instant::now())?;
        self.check_some_pool_works()?;
        let early = self.await_own_sockets(&mut signals)?;
        for run in &self.pools {
            self.announce_socket(run);
        }
        self.set_phase(Phase::Running);
        for event in early {
            self.act(event);
        }

        while !matches!(self.phase, Phase::Stopped(_)) {
            let now = Instant::now();
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(now));
            // Besides signals: the busy pipe, the control socket, and the
            // pipe of a new master being started, each if there is one;
            // then the control clients.
            let readable = PollFlags::POLLIN;
            let others: Vec<_> = [
                Some(self.busy_pipe.0.as_fd()),
                self.control.listener.as_ref().map(|c| c.as_fd()),
                self.phase
                    .upgrade()
                    .and_then(|u| u.ready.as_ref())
                    .map(|r| r.as_fd()),
            ]
            .into_iter()
            .flatten()
            .map(|fd| (fd, readable))
            .chain(self.control.clients.iter().map(|c| c.interest()))
            .collect();
            let control = self.control.listener.is_some();
            let upgrading = self.phase.upgrade().is_some_and(|u| u.ready.is_some());
            let (events, ready) = signals.wait(timeout, &others).map_err(|e| Error::Startup {
                what: "cannot wait for signals",
                source: e,
            })?;
            for event in events {
                self.act(event);
            }
            let mut ready = ready.into_iter();
            let mut next = || ready.next().is_some_and(|r| r.contains(readable));
            if next() {
                sys::fd::drain(self.busy_pipe.0.as_fd());
            }
            let control_ready = control && next();
            // The new master's pipe closed (it exited before it was ready,
            // or its intermediate did) polls as POLLHUP without POLLIN:
            // that too must be read, to see the end of file, or poll
            // returns at once forever.
            let closed = PollFlags::POLLHUP | PollFlags::POLLERR;
            let upgrade_ready = upgrading
                && ready
                    .next()
                    .is_some_and(|r| r.contains(readable) || r.intersects(closed));
            // A client's socket is ready for what it waits for, or closed.
            let clients: Vec<bool> = ready.map(|r| !r.is_empty()).collect();
            self.serve_controls(&clients, Instant::now());
            if control_ready {
                self.accept_control(Instant::now());
            }
            if upgrade_ready {
                self.upgrade_progress();
            }
            self.run_timers(Instant::now())?;
            self.notify_service_manager(Instant::now());
            if self.phase.is_serving() {
                self.check_some_pool_works()?;
            }
        }
        if matches!(self.phase, Phase::Stopped(Ended::HandedOver)) {
            // The sockets are the new master's: neither shut down nor
            // their files removed.
            std::mem::forget(std::mem::take(&mut self.sockets));
            for run in std::mem::take(&mut self.pools) {
                std::mem::forget(run.listener);
            }
            return Ok(Ended::HandedOver);
        }
        Ok(Ended::Stopped)
    }

    fn announce_socket(&self, run: &PoolRun<'_>) {
        let addr = run.listener.local_display();
        let note = run.listener.stack_note();
        let line = match self.announce {
            Announce::Address => format!("listening on {addr}{note}"),
            Announce::WithService => {
                format!(
                    "listening on {addr}{note} ({} service {})",
                    run.plan.protocol(),
                    run.plan.name
                )
            }
        };
        crate::log::announce(&line);
    }

    /// Every pool stopped for good (its workers cannot start): nothing is
    /// served, so the master gives up rather than idle.
    fn check_some_pool_works(&self) -> Result<(), Error> {
        let live: Vec<&PoolRun<'_>> = self.pools.iter().filter(|r| r.retiring.is_none()).collect();
        if !live.is_empty() && live.iter().all(|r| r.pool.is_fatal() && r.pool.len() == 0) {
            let mut names: Vec<&str> = live.iter().map(|r| r.plan.name.as_str()).collect();
            names.dedup();
            return Err(Error::WorkersFailed {
                service: names.join(", "),
            });
        }
        Ok(())
    }

    fn set_phase(&mut self, phase: Phase) {
        let live = self.pools.iter().filter(|r| r.retiring.is_none());
        let target: usize = live.clone().map(|r| r.pool.target()).sum();
        let running: usize = self.pools.iter().map(|r| r.pool.len()).sum();
        let what = match self.pools.as_slice() {
            [one] => format!(
                "service {} on {}",
                one.plan.name,
                one.listener.local_display()
            ),
            many => format!("{} pools", many.len()),
        };
        let name = match phase {
            Phase::Starting => format!("starting {} for {what}", workers(target)),
            Phase::Running | Phase::Upgrading(_) => format!(
                "running with {}, generation {}",
                workers(target),
                self.generation
            ),
            Phase::Draining { .. } => format!(
                "stopping gracefully: waiting up to {:?} for {}",
                self.graceful_timeout,
                workers(running)
            ),
            Phase::Killing => format!("stopping now: killing {}", workers(running)),
            Phase::Stopped(_) => "stopped".to_string(),
        };
        log::info!("M0001 master {}: {}", self.pid, name);
        self.phase = phase;
    }

    fn act(&mut self, event: Event) {
        match event {
            Event::Reap => self.reap(),
            Event::StopGraceful => self.stop_gracefully(),
            Event::StopFast => self.stop_now(),
            Event::AddWorker | Event::RemoveWorker if self.phase.is_serving() => {
                self.scale(event == Event::AddWorker)
            }
            Event::AddWorker | Event::RemoveWorker => {}
            Event::Reload if self.phase.is_serving() => {
                let _ = self.reload_notified();
            }
            Event::Reload => {}
            // Log output goes to stderr, which is not reopened.
            Event::ReopenLogs => {
                crate::log::reopen();
                log::info!("M0016 USR1: log reopened");
            }
            Event::Upgrade => self.upgrade(),
        }
    }

    /// TTIN / TTOU: one worker more or less in every live pool.
    fn scale(&mut self, up: bool) {
        let mut retire = Vec::new();
        // A single-process model keeps its one runner, and a wait service
        // its one worker: a second would start a second program on the
        // socket, and none would leave the service without a program.
        for run in self.pools.iter_mut().filter(|r| r.retiring.is_none()) {
            let (id, sig) = if up {
                ("M0002", "TTIN")
            } else {
                ("M0003", "TTOU")
            };
            if !run.scales_by_signal() {
                log::info!(
                    "{id} service {} on {}: {sig}: keeps its one {}",
                    run.plan.name,
                    run.listener.local_display(),
                    if run.plan.settings.wait {
                        "worker (a wait service)"
                    } else {
                        "runner"
                    }
                );
                continue;
            }
            let at_max = matches!(run.plan.settings.sizing, crate::config::Sizing::Adaptive { max, .. } if run.pool.target() >= max);
            if up {
                if !at_max {
                    run.pool.grow();
                }
            } else if let Some(pid) = run.pool.shrink() {
                retire.push(pid);
            }
            log::info!(
                "{id} service {} on {}: {sig}: now {}",
                run.plan.name,
                run.listener.local_display(),
                workers(run.pool.target())
            );
        }
        for pid in retire {
            self.retire_worker(pid);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let clients = self.control.clients.iter().map(|c| c.deadline()).min();
        let timers = self.next_timer();
        [clients, timers].into_iter().flatten().min()
    }

    fn next_timer(&self) -> Option<Instant> {
        let retiring = self.pools.iter().filter_map(|r| r.retiring);
        let nudge = self
            .leaving
            .next_nudge
            .filter(|_| self.pools.iter().any(|r| r.pool.len() > 0));
        match self.phase {
            Phase::Draining { deadline, .. } => [Some(deadline), nudge].into_iter().flatten().min(),
            Phase::Running | Phase::Upgrading(_) => self
                .pools
                .iter()
                .filter(|r| r.retiring.is_none())
                .filter_map(|r| r.pool.next_deadline())
                .chain(retiring)
                .chain(nudge)
                .chain(self.next_watch())
                .chain(self.next_notification())
                .chain(self.phase.upgrade().map(|u| u.deadline))
                .min(),
            Phase::Starting | Phase::Killing | Phase::Stopped(_) => None,
        }
    }

    fn run_timers(&mut self, now: Instant) -> Result<(), Error> {
        match self.phase {
            Phase::Running | Phase::Upgrading(_) => {
                for run in self.pools.iter_mut().filter(|r| r.retiring.is_none()) {
                    if run.pool.check_recovered(now) {
                        log::info!(
                            "W0004 service {}: workers survive again; back-off reset",
                            run.plan.name
                        );
                    }
                }
                self.finish_retiring(now);
                self.watch(now);
                self.upgrade_timers(now);
                self.fill_pools(now)?;
            }
            Phase::Draining { deadline, then } => self.drain_timers(now, deadline, then),
            Phase::Starting | Phase::Killing | Phase::Stopped(_) => {}
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
