//! Making a master: its sockets (taken from a service manager or an old
//! master, or bound), its pools, its control socket. Nothing is forked
//! here; `Master::run` forks the first workers.

use std::collections::btree_map::Entry;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::control::Control;
use super::notify::Manager;
use super::plan::{self, Plan, SocketKey};
use super::signals::{Event, Signals};
use super::spawn::startable;
use super::stop::Leaving;
use super::upgrade::{ReadyReport, Upgrader};
use super::{Announce, Master, Phase, Reloader};
use crate::config::Protocol;
use crate::error::Error;
use crate::models::socket::{bind, bound_per_worker};
use crate::net::Listener;
use crate::scoreboard::Scoreboard;
use crate::spec::PoolSpec;
use crate::sys;

impl<'a> Master<'a> {
    /// Takes the sockets already bound (the library's, or none), binds the
    /// rest of the plan's, and prepares its pools. Fails on the first
    /// address that cannot be bound; nothing has been forked then.
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
            control: Control::default(),
            manager: Manager::default(),
            upgrader: None,
            config_file: None,
            leaving: Leaving::default(),
            sockets: bound.into_iter().map(|(k, l)| (k, Rc::new(l))).collect(),
            pools: Vec::new(),
            directory: Vec::new(),
            graceful_timeout: plan.graceful_timeout,
            reloader,
            generation: 1,
            phase: Phase::Starting,
            announce,
            pid: sys::process::current_pid(),
        };
        let ready = startable_pools(plan.pools)?;
        master.adopt_passed_sockets(&ready);
        for p in &ready {
            if let Entry::Vacant(slot) = master.sockets.entry(plan::socket_key(p)) {
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
        Ok(master)
    }

    /// Opens the control socket at `path` (`serve` only), replacing an
    /// old master's after a binary upgrade (`take_over`).
    pub(crate) fn open_control(&mut self, path: PathBuf, take_over: bool) -> Result<(), Error> {
        self.control = Control::bind(path, take_over)?;
        Ok(())
    }

    /// Waits until every worker of a pool that binds a socket of its own
    /// (`reuseport`) listens on it, so that `listening on` is true when it
    /// is printed: the master's socket of such a pool never listens, and a
    /// client before then would be refused. Workers that die meanwhile are
    /// reaped, logged and replaced; a stop ends the wait at once. The
    /// signals are returned, for the loop to act on. Bounded by the
    /// graceful timeout (M0007).
    pub(super) fn await_own_sockets(&mut self, signals: &mut Signals) -> Result<Vec<Event>, Error> {
        let mut early = Vec::new();
        let deadline = sys::time::after(Instant::now(), self.graceful_timeout);
        let waiting = |m: &Master<'_>| {
            m.pools
                .iter()
                .any(|r| bound_per_worker(r.plan.settings.model) && !m.pool_ready(r))
        };
        while waiting(self) {
            if Instant::now() >= deadline {
                log::warn!(
                    "M0007 reuseport workers are not all listening after {:?}; announcing the sockets anyway",
                    self.graceful_timeout
                );
                break;
            }
            let (events, _) = signals
                .wait(Some(Duration::from_millis(5)), &[])
                .map_err(|e| Error::Startup {
                    what: "cannot wait for signals",
                    source: e,
                })?;
            let mut stop = false;
            for event in events {
                match event {
                    Event::Reap => self.reap(),
                    other => {
                        stop |= matches!(other, Event::StopGraceful | Event::StopFast);
                        early.push(other);
                    }
                }
            }
            if stop {
                break;
            }
            self.fill_pools(Instant::now())?;
            self.check_some_pool_works()?;
        }
        Ok(early)
    }

    /// The file the reloader reads, absolute: `preforkd reload -c FILE`
    /// with another FILE is refused (`serve`).
    pub(crate) fn reads_config(&mut self, file: Option<PathBuf>) {
        self.config_file = file;
    }

    /// Lets USR2 start a new master this way (`serve`).
    pub(crate) fn allow_upgrade(&mut self, upgrader: Upgrader) {
        self.upgrader = Some(upgrader);
    }

    /// Says `ready` on `pipe` once the workers are in accept, after writing
    /// our pid into the pidfile: this master was started by an upgrade, and
    /// the old one waits for that.
    pub(crate) fn report_ready_on(
        &mut self,
        pipe: OwnedFd,
        pidfile: Option<RawFd>,
        from: Option<crate::sys::process::Pid>,
    ) {
        self.manager.old_master = Some(ReadyReport {
            pipe,
            pidfile,
            from,
        });
    }

    /// Takes the sockets a service manager (or an old master) passed for
    /// the pools in `specs`, matched by address, or by name for a port-0
    /// address (`SERVICE`, or `SERVICE/ADDR` as a binary upgrade names
    /// them). The others are closed, with a warning.
    fn adopt_passed_sockets(&mut self, specs: &[PoolSpec<'a>]) {
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
        for p in specs {
            let udp = p.protocol() == Protocol::Udp;
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
                self.sockets
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
    }
}

/// The pools whose workers can start. A service whose workers could never
/// switch to their user (the master is not root) is not started: one log
/// line, no socket, no fork; the others go on. None at all is an error.
fn startable_pools(pools: Vec<PoolSpec<'_>>) -> Result<Vec<PoolSpec<'_>>, Error> {
    let (ready, refused): (Vec<_>, Vec<_>) = pools.into_iter().partition(|p| startable(p).is_ok());
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
    Ok(ready)
}
