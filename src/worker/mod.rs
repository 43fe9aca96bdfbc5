//! The worker: one process, one connection at a time.
//!
//! A worker is forked by the master with the listening socket already open.
//! It first cuts itself loose from the master's state (its signal handlers
//! were reset by `sys::process::fork`; here it starts its own session, with
//! no controlling terminal, arranges to die with the master, and closes every descriptor but the
//! listener and stdio), then blocks in accept(2), serves the connection with
//! the handler, and goes back to accept. It never reads configuration,
//! forks workers, or talks to other workers.
//!
//! Before the first accept it drops to its service's privileges (user,
//! group, chroot, limits); if that fails it exits with
//! [`WorkerExit::Fatal`] and never serves. A UDP worker (a builtin's, or
//! a library program's datagram handler's) blocks in recvfrom(2) instead
//! of accept(2) and answers each datagram it may (`datagram.rs`); a wait service's worker watches the socket and starts
//! the program that reads or accepts on it (`wait.rs`).
//!
//! Stopping: SIGTERM only sets a flag. A worker blocked in accept sees EINTR
//! and leaves; a busy worker finishes its connection first. When the master
//! shuts the listener down, accept fails with EINVAL and the worker leaves
//! too. It exits with a [`WorkerExit`] code the master understands.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::Signal;

use crate::config::Protocol;
use crate::exit::WorkerExit;
use crate::models::accept::{AcceptError, Acceptor, PoolShared};
use crate::models::{report_served, Runner};
use crate::net::proxy::{self, Proxy};
use crate::net::{Connection, Listener};
use crate::scoreboard::{Counter, OwnSlot, Scoreboard, Slot, State};
use crate::service::builtin::metrics::{self, PoolLabel};
use crate::service::builtin::DatagramBuiltin;
use crate::service::{serve_one, Builtin, Served, Service};
use crate::spec::{Job, PoolSpec};
use crate::sys;
use crate::sys::process::Pid;

mod datagram;
mod wait;

/// What a worker is given besides its pool's spec: nothing else crosses
/// the fork.
pub(crate) struct Worker<'a> {
    /// Its pool: what it serves, how, with which limits.
    pub spec: &'a PoolSpec<'a>,
    /// The pool's socket, inherited.
    pub listener: &'a Listener,
    /// What the pool's workers share (`prefork-lock`'s lock, `prefork-mutex`'s
    /// mutex).
    pub shared: &'a PoolShared,
    /// Its place on the scoreboard.
    pub seat: Seat<'a>,
    /// The master, whose death ends the worker.
    pub master: Pid,
    /// Where to tell the master "I turned busy/idle" (adaptive pools).
    pub busy_pipe: Option<BorrowedFd<'a>>,
    /// The daemon's UDP service ports, never answered (see `answerable`).
    pub udp_ports: &'a [u16],
    /// The daemon's pools, for the `metrics` builtin.
    pub pools: &'a [PoolLabel],
}

/// A worker's place on the scoreboard: its own slot, and its pool's
/// shared one (the rate limiter; the tag per_source counts by), in the
/// board it reads for per_source.
pub(crate) struct Seat<'a> {
    pub board: &'a Scoreboard,
    pub slot: Slot<'a>,
    /// Where `slot` is on the board.
    pub index: usize,
    pub pool: usize,
}

thread_local! {
    /// This worker's own slot, for [`set_state`]: set once the worker
    /// serves connections; never set in the master.
    static OWN_SLOT: std::cell::RefCell<Option<OwnSlot>> = const { std::cell::RefCell::new(None) };
}

/// Records on this worker's slot what its handler is doing (what
/// `preforkd::set_state` does); nothing outside a worker, or on a thread
/// of the handler's own.
pub(crate) fn set_state(text: &str) {
    OWN_SLOT.with_borrow(|own| {
        if let Some(own) = own {
            own.slot().set_note(text);
        }
    });
}

impl Worker<'_> {
    /// The forked child's whole life. Never returns.
    pub(crate) fn run(self) -> ! {
        // A panic must never unwind out of here: above this frame are the
        // master's, whose destructors would remove the daemon's files and
        // close descriptors already closed.
        let exit = panic::catch_unwind(AssertUnwindSafe(|| match self.setup() {
            Ok((stop, acceptor)) => self.serve_hooked(stop, &acceptor),
            Err(e) => {
                log::error!("W0010 service {}: worker cannot start: {}", self.name(), e);
                WorkerExit::Fatal
            }
        }))
        .unwrap_or(WorkerExit::Panicked);
        let _ = io::stderr().flush();
        sys::process::exit_now(exit as i32)
    }

    /// Cuts the worker loose from the master; returns its stop flag, and
    /// how it takes connections (its own socket, when the model gives each
    /// worker one).
    fn setup(&self) -> io::Result<(&'static AtomicBool, Acceptor<'_>)> {
        self.seat.slot.set_pid(std::process::id());
        // Out of the master's session: no controlling terminal, so neither
        // this worker nor a program it runs can open /dev/tty, and the
        // terminal's hangup and ^C never reach them. The session is also the
        // worker's process group, which the master signals as a whole.
        sys::process::new_session()?;
        sys::process::die_with_parent(self.master)?;
        let mut keep = vec![0, 1, 2, self.listener.as_raw_fd()];
        keep.extend(self.busy_pipe.map(|fd| fd.as_raw_fd()));
        keep.extend(self.shared.fds());
        sys::fd::close_all_except(&keep)?;
        // Bound while the worker may still bind a privileged port.
        let settings = &self.spec.settings;
        let acceptor = Acceptor::new(
            settings.model,
            self.listener,
            self.shared,
            settings.backlog,
            &self.spec.name,
        )?;
        // Our own connection to syslog (the inherited one was just closed),
        // made before a chroot could hide /dev/log.
        crate::log::reopen_after_fork();
        // Whether programs' stderr goes through this worker to the log
        // (syslog, or a terminal they must not hold), decided once.
        crate::service::stderr::prepare(self.name());
        let stop = sys::signal::install_stop_flag(Signal::SIGTERM)?;
        settings.privileges.apply()?;
        // Changing the effective ids clears the parent-death signal
        // (prctl(2)): ask for it again as the new user.
        sys::process::die_with_parent(self.master)?;
        Ok((stop, acceptor))
    }

    /// Serves between a library program's hooks: the after-fork hook
    /// first (if it fails, the worker exits [`WorkerExit::Sick`] without
    /// serving, and the master backs off as from any worker that dies
    /// young), the exit hook last.
    fn serve_hooked(&self, stop: &'static AtomicBool, acceptor: &Acceptor<'_>) -> WorkerExit {
        let Some(hooks) = self.spec.job.hooks() else {
            return self.serve(stop, acceptor);
        };
        let info = crate::spec::WorkerInfo {
            pool: self.name().to_string(),
            pid: std::process::id(),
        };
        if let Some(started) = &hooks.started {
            if let Err(why) = started(&info) {
                log::error!(
                    "W0017 service {}: worker {}: the after-fork hook failed: {why}; the worker exits to be respawned with back-off",
                    self.name(),
                    info.pid
                );
                self.seat.slot.set(State::Exiting);
                return WorkerExit::Sick;
            }
        }
        let exit = self.serve(stop, acceptor);
        if let Some(exiting) = &hooks.exiting {
            exiting(&info, exit);
        }
        exit
    }

    /// The service's name, for logs.
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn serve(&self, stop: &'static AtomicBool, acceptor: &Acceptor<'_>) -> WorkerExit {
        let spec = self.spec;
        if !spec.settings.model.is_process_pool() {
            let runner = Runner {
                spec,
                listener: acceptor.listener(),
                stop,
                slot: &self.seat.slot,
            };
            return crate::models::run_single(spec.settings.model, &runner);
        }
        match (&spec.job, spec.protocol()) {
            (Job::Service(Service::Exec(program)), _) if spec.settings.wait => {
                self.serve_waiting(program, stop)
            }
            (Job::Service(Service::Builtin(builtin)), Protocol::Udp) => {
                self.serve_datagrams(&DatagramBuiltin::new(*builtin), stop)
            }
            (Job::Datagrams(handler, _), Protocol::Udp) => {
                self.serve_datagrams(handler.as_ref(), stop)
            }
            (_, Protocol::Udp) => {
                log::error!(
                    "W0012 service {}: udp serves builtins, datagram handlers and wait services only",
                    self.name()
                );
                WorkerExit::Fatal
            }
            (Job::Datagrams(..), Protocol::Tcp) => {
                log::error!(
                    "W0012 service {}: a datagram handler serves udp only",
                    self.name()
                );
                WorkerExit::Fatal
            }
            (_, Protocol::Tcp) => {
                let mut served = 0;
                let exit = self.serve_connections(stop, acceptor, &mut served);
                report_served(self.name(), &std::process::id().to_string(), served);
                exit
            }
        }
    }

    /// Applies the service's access rules to a client just accepted: to
    /// its own address, or to the one a trusted balancer's header named
    /// (whose `rate` was applied before its header: `with_rate` false).
    fn admit(
        &self,
        conn: &crate::net::Connection,
        with_rate: bool,
    ) -> Result<(), (Counter, String)> {
        let access = &self.spec.settings.access;
        if access.is_open() {
            return Ok(());
        }
        let Some(ip) = conn.remote_addr().map(|a| a.ip()) else {
            return Ok(()); // Unix sockets: the file's mode is the access list.
        };
        access
            .allows(ip)
            .map_err(|e| (Counter::RefusedRule, e.to_string()))?;
        if let Some(limit) = access.per_source {
            // Our own slot is busy with this client already.
            if self.seat.board.busy_from(self.seat.pool, ip) > limit as usize {
                return Err((
                    Counter::RefusedRule,
                    format!("per_source limit of {limit} reached"),
                ));
            }
        }
        if with_rate {
            self.admit_rate()?;
        }
        Ok(())
    }

    /// The service's `rate`, for each address it listens on.
    fn admit_rate(&self) -> Result<(), (Counter, String)> {
        if let Some(rate) = self.spec.settings.access.rate {
            let state = self.seat.board.slot(self.seat.pool);
            if !rate.admit(state.rate_state(), sys::shm::monotonic_us()) {
                return Err((
                    Counter::RefusedRate,
                    format!("rate limit of {rate} reached"),
                ));
            }
        }
        Ok(())
    }

    /// Everything a connection must pass before its handler runs; on
    /// failure, the log line's id (W0030 access rules, W0031 PROXY header),
    /// the pool's counter it adds to, and why.
    ///
    /// Without `proxy_protocol`, the access rules on the client. With it, a
    /// connection from a trusted balancer (or over a unix: socket, whose
    /// mode says who may connect) must start with a header, within
    /// `proxy_timeout`: `rate` is applied before the worker waits for it,
    /// the lists and `per_source` to the client it names. Any other peer is
    /// a direct client, as HAProxy's `expect-proxy ... if { src ... }` and
    /// nginx's `set_real_ip_from` treat it: judged by its own address
    /// before anything is read, never waited for, and refused if what it
    /// has sent already starts like a header.
    fn screen(&self, conn: &mut Connection) -> Result<(), (&'static str, Counter, String)> {
        let access = |(counter, e)| ("W0030", counter, e);
        let Some(proxy) = &self.spec.settings.proxy_protocol else {
            return self.admit(conn, true).map_err(access);
        };
        match conn.remote_addr().map(|a| a.ip()) {
            Some(peer) if !proxy.trusts(peer) => {
                self.admit(conn, true).map_err(access)?;
                let mut first = [0u8; 12];
                let n = proxy::peek_now(conn.as_fd(), &mut first);
                if proxy::looks_like_header(&first[..n]) {
                    return Err((
                        "W0031",
                        Counter::RefusedProxy,
                        format!("a PROXY protocol header from {peer}, not in trusted_proxies"),
                    ));
                }
                Ok(())
            }
            _ => {
                self.admit_rate().map_err(access)?;
                self.take_proxy_header(conn, proxy)
                    .map_err(|e| ("W0031", Counter::RefusedProxy, e))?;
                self.admit(conn, false).map_err(access)
            }
        }
    }

    /// Closes a connection at once, logs why under `id` (W0030 for the
    /// access rules, W0031 for a bad PROXY header), counts it in the pool's
    /// `counter`, and goes back to idle without counting it as served.
    fn refuse(&self, conn: Connection, id: &str, counter: Counter, why: &str) {
        let client = conn
            .remote_addr()
            .map_or("a client".to_string(), |a| a.to_string());
        log::info!("{id} service {}: refused {client}: {why}", self.name());
        // Counted before the client sees the close.
        self.seat.board.slot(self.seat.pool).add(counter, 1);
        drop(conn);
        self.mark(|s| s.end_refused());
    }

    /// Takes the PROXY protocol header off `conn`; the client it names
    /// becomes the connection's, here and on the scoreboard (per_source
    /// counts it). A LOCAL header (a health check) leaves the connection's
    /// own addresses.
    fn take_proxy_header(&self, conn: &mut Connection, proxy: &Proxy) -> Result<(), String> {
        let limit = self
            .spec
            .settings
            .timeout
            .map_or(proxy.timeout, |t| t.min(proxy.timeout));
        match proxy::read_header(conn.as_fd(), proxy.version, limit) {
            Ok(proxy::Proxied::Client {
                source,
                destination,
            }) => {
                conn.set_proxied(source, destination);
                self.seat.slot.begin(Some(source));
                Ok(())
            }
            Ok(proxy::Proxied::Local) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records a change of state on the scoreboard, and tells the master of
    /// an adaptive pool about it.
    fn mark(&self, change: impl FnOnce(&Slot<'_>)) {
        change(&self.seat.slot);
        if let Some(fd) = self.busy_pipe {
            sys::fd::poke(fd);
        }
    }

    fn serve_connections(
        &self,
        stop: &AtomicBool,
        acceptor: &Acceptor<'_>,
        served: &mut u64,
    ) -> WorkerExit {
        let max_requests = self.max_requests();
        OWN_SLOT.set(Some(self.seat.board.own_slot(self.seat.index)));
        self.seat.slot.set_pool(self.seat.pool);
        self.mark(|s| s.set(State::Idle));
        loop {
            if stop.load(Ordering::SeqCst) {
                self.seat.slot.set(State::Exiting);
                return WorkerExit::Done;
            }
            if max_requests.is_some_and(|max| *served >= max) {
                log::debug!(
                    "service {}: served {served} connections: retiring",
                    self.name()
                );
                self.seat.slot.set(State::Exiting);
                return WorkerExit::Done;
            }
            let mut conn = match acceptor.accept(stop) {
                Ok(conn) => conn,
                Err(e) => match AcceptError::classify(e) {
                    AcceptError::Retry => continue,
                    AcceptError::ListenerClosed => return WorkerExit::Done,
                    AcceptError::Exhausted => {
                        log::warn!(
                            "W0011 service {}: accept: {}; worker exits to be respawned",
                            self.name(),
                            e.desc()
                        );
                        return WorkerExit::Sick;
                    }
                    AcceptError::Broken => {
                        log::error!("W0012 service {}: accept: {}", self.name(), e.desc());
                        return WorkerExit::Fatal;
                    }
                },
            };
            self.mark(|s| s.begin(conn.remote_addr()));
            if let Err((id, counter, why)) = self.screen(&mut conn) {
                self.refuse(conn, id, counter, &why);
                continue;
            }
            // Also clears the header's read timeout when there is none.
            if self.spec.settings.timeout.is_some() || self.spec.settings.proxy_protocol.is_some() {
                if let Err(e) = conn.set_timeout(self.spec.settings.timeout) {
                    log::debug!("service {}: cannot set the timeout: {e}", self.name());
                }
            }
            if self.spec.settings.log_connections {
                self.serve_one_logged(conn);
            } else {
                self.serve_one(conn);
            }
            *served += 1;
            // What the handler read and wrote, into the pool's totals: a
            // worker's own slot is cleared when it is reaped.
            let (bytes_in, bytes_out) = crate::net::take_traffic();
            let pool = self.seat.board.slot(self.seat.pool);
            pool.add(Counter::BytesIn, bytes_in);
            pool.add(Counter::BytesOut, bytes_out);
            self.mark(|s| s.end());
            if let Some(limit) = self.spec.settings.max_memory {
                let rss = sys::process::resident_bytes().unwrap_or(0);
                if rss > limit {
                    log::info!(
                        "W0022 service {}: worker {} uses {} KiB, more than max_memory ({} KiB): retiring it",
                        self.name(),
                        std::process::id(),
                        rss / 1024,
                        limit / 1024
                    );
                    self.seat.slot.set(State::Exiting);
                    return WorkerExit::Done;
                }
            }
        }
    }

    /// Serves one connection and logs one line about it: C0001 served (with
    /// the program's exit status), C0003 failed.
    fn serve_one_logged(&self, conn: Connection) {
        let client = conn
            .remote_addr()
            .map_or("unix client".to_string(), |a| a.to_string());
        // A second descriptor outlives the handler, for the byte counts.
        let probe = conn.as_tcp().and_then(|_| conn.try_clone_fd().ok());
        let start = std::time::Instant::now();
        let served = self.serve_one(conn);
        let ms = start.elapsed().as_millis();
        let bytes = probe
            .as_ref()
            .and_then(|fd| sys::fd::tcp_bytes(fd.as_fd()))
            .map_or(String::new(), |(inbound, outbound)| {
                format!(", {inbound} bytes in, {outbound} out")
            });
        drop(probe);
        let exit = served
            .program
            .map_or(String::new(), |s| format!(", program {s}"));
        let pid = std::process::id();
        match served.failure {
            None => log::info!(
                "C0001 service {}: {client} served by {pid} in {ms} ms{bytes}{exit}",
                self.name()
            ),
            Some(why) => log::info!(
                "C0003 service {}: {client} failed in {pid} after {ms} ms{bytes}{exit}: {why}",
                self.name()
            ),
        }
    }

    /// Runs the job on one connection, catching a panic of its handler.
    fn serve_one(&self, conn: Connection) -> Served {
        match &self.spec.job {
            Job::Service(Service::Builtin(Builtin::Metrics)) => {
                let sources = metrics::Sources {
                    board: self.seat.board,
                    pools: self.pools,
                    timeout: self.spec.settings.timeout,
                };
                serve_one(self.name(), || {
                    metrics::serve(conn, &sources).map(|()| None)
                })
            }
            Job::Service(service) => serve_one(self.name(), || service.serve(conn)),
            Job::Handler(handler, _) => {
                serve_one(self.name(), || handler.handle(conn).map(|()| None))
            }
            // `serve` gives a datagram handler's pool no connection.
            Job::Datagrams(..) => Served {
                failure: Some("a datagram handler serves no connection".into()),
                program: None,
            },
        }
    }

    /// When this worker retires: after `max_requests` connections (or
    /// datagrams), plus its own share of `max_requests_jitter`.
    fn max_requests(&self) -> Option<u64> {
        let settings = &self.spec.settings;
        let jitter = jitter(settings.max_requests_jitter, sys::process::current_pid());
        settings.max_requests.map(|n| n.saturating_add(jitter))
    }
}

/// A number in `0..=max`, different for each worker, so that workers with
/// the same `max_requests` do not all restart together (gunicorn's
/// max_requests_jitter). Not for anything that needs real randomness.
fn jitter(max: u64, seed: Pid) -> u64 {
    if max == 0 {
        return 0;
    }
    let mut x =
        (seed.as_raw() as u64) ^ sys::shm::monotonic_ms().rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x % max.saturating_add(1)
}
