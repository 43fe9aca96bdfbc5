//! The master: forks the workers, watches them, reloads and stops them.
//!
//! The master never accepts a connection. It holds the listening sockets,
//! forks the workers of each pool (one pool per service and address), and
//! then sits in one loop: wait for a signal or the next timer, act on it,
//! repeat. Signal handlers only record (see [`signals`]); every decision is
//! taken here, in order, single-threaded, so a worker forked from this loop
//! is a whole copy of a one-thread process.
//!
//! What lives elsewhere: the back-off arithmetic ([`pool`]), forking a
//! pool's workers and binding its socket ([`spawn`]), what to keep
//! on a reload ([`reload`]), what a plan is ([`plan`]).
//!
//! The lifecycle is [`Phase`]; every change of phase is logged.

mod control;
pub(crate) mod plan;
mod pool;
mod reload;
pub(crate) mod signals;
mod spawn;
pub(crate) mod upgrade;
mod watch;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::signal::Signal;

use crate::config::Protocol;
use crate::error::Error;
use crate::models::accept::PoolShared;
use crate::models::socket::bind;
use crate::net::Listener;
use crate::scoreboard::{Scoreboard, State};
use crate::spec::PoolSpec;
use crate::sys;
use crate::sys::process::{ChildExit, Pid};
use plan::{Plan, SocketKey};
use pool::{Pool, Verdict};
use signals::{Event, Signals};
use spawn::startable;

/// Where the master is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Forking the first workers.
    Starting,
    /// Serving; every pool is kept at its size.
    Running,
    /// Graceful stop: the listeners are shut, busy workers finish their
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
    /// The pool's shared slot on the scoreboard (its rate limiter; the tag
    /// its workers' slots carry, for per_source).
    shared_slot: usize,
    /// Connections served by workers that are gone.
    served_by_gone: u64,
    /// What its workers share (the `prefork-lock` model's lock file),
    /// inherited by each.
    shared: PoolShared,
}

pub(crate) struct Master<'a> {
    board: Scoreboard,
    /// Workers of adaptive pools write a byte here when they turn busy or
    /// idle; the master polls the read end with its signals.
    busy_pipe: (OwnedFd, OwnedFd),
    /// The control socket of `preforkd status`, `reload`, `stop`.
    control: Option<Listener>,
    /// Clients of the control socket being served, each with its deadline.
    control_clients: Vec<control::Client>,
    control_path: Option<PathBuf>,
    /// systemd's notification socket, and whether READY=1 was sent.
    notifier: Option<sys::daemon::Notifier>,
    ready_sent: bool,
    /// WATCHDOG=1 every this long (half of $WATCHDOG_USEC), and when next.
    watchdog: Option<(Duration, Instant)>,
    /// How to start a new master on USR2 (`serve` only).
    upgrader: Option<upgrade::Upgrader>,
    upgrading: Option<upgrade::InProgress>,
    /// A new master took over the sockets: drain without closing them.
    handed_over: bool,
    /// Where a new master says `ready` to the one that started it.
    ready_pipe: Option<OwnedFd>,
    /// Workers of live pools told to leave, nudged until they are reaped.
    retired: std::collections::BTreeSet<Pid>,
    /// The pidfile a new master writes its pid into once ready.
    pidfile_on_ready: Option<std::os::fd::RawFd>,
    sockets: BTreeMap<SocketKey, Rc<Listener>>,
    pools: Vec<PoolRun<'a>>,
    graceful_timeout: Duration,
    reloader: Option<Reloader<'a>>,
    generation: u32,
    phase: Phase,
    next_nudge: Option<Instant>,
    announce: Announce,
    pid: Pid,
}

impl<'a> Master<'a> {
    /// Takes the sockets already bound (the library's, or none), binds the
    /// rest of the plan's, and prepares its pools. Fails on the first
    /// address that cannot be bound; nothing has been forked then.
    /// Lets USR2 start a new master this way (`serve`).
    pub(crate) fn allow_upgrade(&mut self, upgrader: upgrade::Upgrader) {
        self.upgrader = Some(upgrader);
    }

    /// Says `ready` on `pipe` once the workers are in accept: this master
    /// was started by an upgrade, and the old one waits for that.
    pub(crate) fn report_ready_on(&mut self, pipe: OwnedFd, pidfile: Option<std::os::fd::RawFd>) {
        self.ready_pipe = Some(pipe);
        self.pidfile_on_ready = pidfile;
    }

    pub(crate) fn new(
        bound: Vec<(SocketKey, Listener)>,
        plan: Plan<'a>,
        reloader: Option<Reloader<'a>>,
        announce: Announce,
    ) -> Result<Master<'a>, Error> {
        let startup = |what, source| Error::Startup { what, source };
        let mut master = Master {
            board: Scoreboard::new().map_err(|e| startup("cannot map the scoreboard", e))?,
            busy_pipe: sys::fd::pipe().map_err(|e| startup("cannot create a pipe", e))?,
            control: None,
            control_clients: Vec::new(),
            control_path: None,
            notifier: None,
            ready_sent: false,
            watchdog: None,
            upgrader: None,
            upgrading: None,
            handed_over: false,
            ready_pipe: None,
            retired: Default::default(),
            pidfile_on_ready: None,
            sockets: bound.into_iter().map(|(k, l)| (k, Rc::new(l))).collect(),
            pools: Vec::new(),
            graceful_timeout: plan.graceful_timeout,
            reloader,
            generation: 1,
            phase: Phase::Starting,
            next_nudge: None,
            announce,
            pid: sys::process::current_pid(),
        };
        // A service whose workers could never switch to their user (the
        // master is not root) is not started: one log line, no socket, no
        // fork. The others go on.
        let plan_control = plan.control;
        let take_over_control = plan.take_over_control;
        let (ready, refused): (Vec<_>, Vec<_>) =
            plan.pools.into_iter().partition(|p| startable(p).is_ok());
        for p in &refused {
            if let Err(why) = startable(p) {
                log::error!("W0006 service {} on {}: {why}; not started", p.name, p.addr);
            }
        }
        if ready.is_empty() {
            let mut names: Vec<String> = refused.iter().map(|p| p.name.clone()).collect();
            names.dedup();
            return Err(Error::WorkersFailed {
                service: names.join(", "),
            });
        }
        // Sockets a service manager passed are taken instead of binding,
        // matched by name (LISTEN_FDNAMES = the service's name) or address.
        let mut adopted: Vec<(Option<String>, Listener)> = sys::daemon::listen_fds()
            .into_iter()
            .filter_map(|(name, fd)| match Listener::adopt(fd) {
                // From systemd, it stays systemd's; from an old master, it
                // becomes ours once we are ready (until then a failure of
                // ours must leave it to the old master).
                Ok(l) => {
                    l.set_managed(true);
                    Some((name, l))
                }
                Err(e) => {
                    log::warn!("W0041 a socket passed by the service manager is unusable: {e}");
                    None
                }
            })
            .collect();
        for p in &ready {
            let udp = p.protocol() == Protocol::Udp;
            // By address; a port-0 address by name ("SERVICE", or
            // "SERVICE/ADDR" as a binary upgrade passes them).
            let exact = plan::fd_name(&p.name, &p.addr);
            let found = adopted
                .iter()
                .position(|(_, l)| l.serves(&p.addr, udp))
                .or_else(|| {
                    adopted.iter().position(|(name, l)| {
                        let name = name.as_deref();
                        (name == Some(exact.as_str())
                            || (name == Some(p.name.as_str()) && p.addr.is_port_zero()))
                            && l.as_udp().is_some() == udp
                    })
                });
            if let Some(i) = found {
                let (_, listener) = adopted.remove(i);
                log::info!(
                    "M0021 service {}: using the socket {} passed by the service manager",
                    p.name,
                    listener.local_display()
                );
                master
                    .sockets
                    .entry(plan::socket_key(p))
                    .or_insert_with(|| Rc::new(listener));
            }
        }
        for (name, listener) in adopted {
            log::warn!(
                "W0041 the socket {} ({}) passed by the service manager matches no service; closed",
                listener.local_display(),
                name.as_deref().unwrap_or("no name")
            );
        }
        for p in &ready {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                master.sockets.entry(plan::socket_key(p))
            {
                let listener = bind(p).map_err(|source| Error::Bind {
                    addr: p.addr.to_string(),
                    source,
                })?;
                slot.insert(Rc::new(listener));
            }
        }
        for p in ready {
            master.add_pool(p);
        }
        master.control_path = plan_control.clone();
        if let Some(path) = &plan_control {
            let bound = match control::bind(path) {
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) && take_over_control => {
                    Listener::remove_our_socket(path).and_then(|()| control::bind(path))
                }
                other => other,
            };
            master.control = match bound {
                Ok(listener) => Some(listener),
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                    return Err(Error::Bind {
                        addr: path.display().to_string(),
                        source: e,
                    });
                }
                Err(e) => {
                    log::warn!(
                        "W0040 cannot create the control socket {}: {}; status, reload and stop will not work (SIGHUP and SIGTERM will)",
                        path.display(),
                        sys::fd::describe(&e)
                    );
                    None
                }
            };
        }
        Ok(master)
    }

    /// Runs until stopped. Prints the `listening on` lines once the signal
    /// handlers are in place and the first workers are forked, so whoever
    /// reads them may signal us at once.
    pub(crate) fn run(mut self) -> Result<Ended, Error> {
        // The process may have detached (forked) since `new`.
        self.pid = sys::process::current_pid();
        self.notifier = sys::daemon::Notifier::from_env();
        self.watchdog =
            sys::daemon::watchdog_usec().map(|us| (Duration::from_micros(us / 2), Instant::now()));
        self.set_phase(Phase::Starting);
        let mut signals = Signals::install().map_err(|e| Error::Startup {
            what: "cannot install signal handlers",
            source: e,
        })?;
        self.fill_pools(Instant::now())?;
        self.check_some_pool_works()?;
        for run in &self.pools {
            self.announce_socket(run);
        }
        self.set_phase(Phase::Running);

        while self.phase != Phase::Stopped {
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
                self.control.as_ref().map(|c| c.as_fd()),
                self.upgrading.as_ref().map(|u| u.ready.as_fd()),
            ]
            .into_iter()
            .flatten()
            .map(|fd| (fd, readable))
            .chain(self.control_clients.iter().map(|c| c.interest()))
            .collect();
            let (control, upgrading) = (self.control.is_some(), self.upgrading.is_some());
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
            let (control_ready, upgrade_ready) = (control && next(), upgrading && next());
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
            if self.phase == Phase::Running {
                self.check_some_pool_works()?;
            }
        }
        if self.handed_over {
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
        let line = match self.announce {
            Announce::Address => format!("listening on {addr}"),
            Announce::WithService => {
                format!(
                    "listening on {addr} ({} service {})",
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
            Phase::Running => format!(
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
            Event::AddWorker | Event::RemoveWorker if self.phase == Phase::Running => {
                self.scale(event == Event::AddWorker)
            }
            Event::AddWorker | Event::RemoveWorker => {}
            Event::Reload if self.phase == Phase::Running => {
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
        // A single-process model keeps its one runner.
        for run in self
            .pools
            .iter_mut()
            .filter(|r| r.retiring.is_none() && r.plan.settings.model.is_process_pool())
        {
            let at_max = matches!(run.plan.settings.sizing, crate::config::Sizing::Adaptive { max, .. } if run.pool.target() >= max);
            if up {
                if !at_max {
                    run.pool.grow();
                }
            } else if let Some(pid) = run.pool.shrink() {
                retire.push(pid);
            }
            let (id, sig) = if up {
                ("M0002", "TTIN")
            } else {
                ("M0003", "TTOU")
            };
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
        let phase = self.phase;
        let Some((run, (verdict, slot))) = self.pools.iter_mut().find_map(|r| {
            let served = self.board.slot(r.pool.slot_of(pid)?).served();
            r.pool.exited(pid, exit, now, served).map(|v| (r, v))
        }) else {
            if !self.upgrade_child_exited(pid, exit) {
                log::debug!("reaped unknown child {pid}: {exit}");
            }
            return;
        };
        run.served_by_gone += self.board.slot(slot).served();
        self.board.release(slot);
        run.watch.forget(pid);
        self.retired.remove(&pid);
        let service = &run.plan.name;
        if phase != Phase::Running || run.retiring.is_some() {
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

    fn stop_gracefully(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.notify("STOPPING=1");
        for listener in self.sockets.values() {
            listener.shut_down();
        }
        self.signal_workers(|_| true, Signal::SIGTERM);
        let now = Instant::now();
        self.next_nudge = Some(sys::time::after(now, NUDGE_EVERY));
        self.set_phase(Phase::Draining {
            deadline: sys::time::after(now, self.graceful_timeout),
        });
    }

    fn stop_now(&mut self) {
        if matches!(self.phase, Phase::Killing | Phase::Stopped) {
            return;
        }
        self.notify("STOPPING=1");
        self.set_phase(Phase::Killing);
        for listener in self.sockets.values() {
            listener.shut_down();
        }
        self.kill_where(|_| true);
        while self.pools.iter().any(|r| r.pool.len() > 0) {
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

    fn signal_workers(&self, which: impl Fn(&PoolRun<'_>) -> bool, signal: Signal) {
        for run in self.pools.iter().filter(|r| which(r)) {
            for pid in run.pool.pids() {
                sys::process::kill(pid, signal);
            }
        }
    }

    /// SIGKILL to the process group of every worker of the chosen pools:
    /// the worker and any program it runs.
    fn kill_where(&self, which: impl Fn(&PoolRun<'_>) -> bool) {
        for run in self.pools.iter().filter(|r| which(r)) {
            for pid in run.pool.pids() {
                sys::process::kill_group(pid, Signal::SIGKILL);
                sys::process::kill(pid, Signal::SIGKILL);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let clients = self.control_clients.iter().map(|c| c.deadline()).min();
        let timers = self.next_timer();
        [clients, timers].into_iter().flatten().min()
    }

    fn next_timer(&self) -> Option<Instant> {
        let retiring = self.pools.iter().filter_map(|r| r.retiring);
        let nudge = self
            .next_nudge
            .filter(|_| self.pools.iter().any(|r| r.pool.len() > 0));
        match self.phase {
            Phase::Draining { deadline } => [Some(deadline), nudge].into_iter().flatten().min(),
            Phase::Running => self
                .pools
                .iter()
                .filter(|r| r.retiring.is_none())
                .filter_map(|r| r.pool.next_deadline())
                .chain(retiring)
                .chain(nudge)
                .chain(self.next_watch())
                .chain(self.next_notification())
                .chain(self.upgrading.as_ref().map(|u| u.deadline))
                .min(),
            Phase::Starting | Phase::Killing | Phase::Stopped => None,
        }
    }

    fn run_timers(&mut self, now: Instant) -> Result<(), Error> {
        match self.phase {
            Phase::Running => {
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
            Phase::Draining { deadline } => {
                let left: usize = self.pools.iter().map(|r| r.pool.len()).sum();
                if left == 0 {
                    self.set_phase(Phase::Stopped);
                } else if now >= deadline {
                    log::warn!(
                        "M0008 graceful timeout: killing {} still busy",
                        workers(left)
                    );
                    self.kill_where(|_| true);
                    self.next_nudge = None;
                    // Killed: they are reaped at once; say it only once.
                    self.phase = Phase::Draining {
                        deadline: sys::time::after(now, Duration::from_secs(3600)),
                    };
                } else if self.next_nudge.is_some_and(|t| now >= t) {
                    self.nudge_workers(|_| true);
                    self.next_nudge = Some(sys::time::after(now, NUDGE_EVERY));
                }
            }
            Phase::Starting | Phase::Killing | Phase::Stopped => {}
        }
        Ok(())
    }

    /// Retiring pools: nudge their workers, kill them at the deadline, and
    /// forget the pools that are empty.
    fn finish_retiring(&mut self, now: Instant) {
        if self.next_nudge.is_some_and(|t| now >= t) {
            self.nudge_workers(|r| r.retiring.is_some());
            for &pid in &self.retired {
                if !self.is_busy(pid) {
                    sys::process::kill(pid, Signal::SIGTERM);
                }
            }
            self.next_nudge = Some(sys::time::after(now, NUDGE_EVERY));
        }
        let overdue = |r: &PoolRun<'_>| r.retiring.is_some_and(|t| now >= t) && r.pool.len() > 0;
        if self.pools.iter().any(overdue) {
            log::warn!("M0008 graceful timeout: killing the old generation's workers still busy");
            self.kill_where(overdue);
        }
        let board = &mut self.board;
        self.pools.retain(|r| {
            let keep = r.retiring.is_none() || r.pool.len() > 0;
            if !keep {
                board.release(r.shared_slot);
            }
            keep
        });
        if !self.pools.iter().any(|r| r.retiring.is_some()) && self.retired.is_empty() {
            self.next_nudge = None;
        }
    }

    /// Retires one worker of a live pool (TTOU, reload, an idle extra):
    /// SIGTERM now, and again with every nudge until it is reaped, since
    /// one signal can land just before it blocks in accept(2).
    pub(super) fn retire_worker(&mut self, pid: Pid) {
        sys::process::kill(pid, Signal::SIGTERM);
        self.retired.insert(pid);
        self.next_nudge
            .get_or_insert_with(|| sys::time::after(Instant::now(), NUDGE_EVERY));
    }
}

impl Master<'_> {
    /// Sends `state` to systemd, if it is listening.
    fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            n.send(state);
        }
    }

    /// READY=1 (with a STATUS= line) once every worker of every live pool
    /// is in accept, and WATCHDOG=1 on time.
    fn notify_service_manager(&mut self, now: Instant) {
        if self.notifier.is_none() && self.ready_pipe.is_none() {
            return;
        }
        if !self.ready_sent && self.phase == Phase::Running && self.all_workers_ready() {
            self.ready_sent = true;
            let status = self.status_line();
            self.notify(&format!("READY=1\nSTATUS={status}"));
            // A master started by a binary upgrade takes over the sockets
            // and the pidfile, and tells the old one.
            if let Some(pipe) = self.ready_pipe.take() {
                for listener in self.sockets.values() {
                    listener.set_managed(false);
                }
                if let Some(fd) = self.pidfile_on_ready.take() {
                    if let Err(e) = sys::daemon::rewrite_pid(fd) {
                        log::warn!(
                            "M0044 upgrade: cannot write the pidfile: {}",
                            sys::fd::describe(&e)
                        );
                    }
                }
                let _ = nix::unistd::write(&pipe, b"ready\n");
            }
        }
        if let Some((every, next)) = self.watchdog {
            if now >= next {
                self.notify("WATCHDOG=1");
                self.watchdog = Some((every, sys::time::after(now, every)));
            }
        }
    }

    /// When to look again: soon while READY=1 waits for workers, and at
    /// the next watchdog ping.
    fn next_notification(&self) -> Option<Instant> {
        if self.notifier.is_none() && self.ready_pipe.is_none() {
            return None;
        }
        let ready =
            (!self.ready_sent).then(|| sys::time::after(Instant::now(), Duration::from_millis(5)));
        [ready, self.watchdog.map(|(_, next)| next)]
            .into_iter()
            .flatten()
            .min()
    }

    fn all_workers_ready(&self) -> bool {
        self.pools.iter().filter(|r| r.retiring.is_none()).all(|r| {
            r.pool.is_fatal()
                || r.pool.len() >= r.pool.target()
                    && r.pool.slots().all(|(_, s)| {
                        self.board.slot(s).state() != crate::scoreboard::State::Starting
                    })
        })
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
    fn reload_notified(&mut self) -> Result<String, String> {
        if self.phase != Phase::Running {
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

/// "1 worker", "3 workers".
fn workers(n: usize) -> String {
    if n == 1 {
        "1 worker".to_string()
    } else {
        format!("{n} workers")
    }
}
