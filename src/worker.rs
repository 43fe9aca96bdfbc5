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
//! [`WorkerExit::Fatal`] and never serves. A datagram worker blocks in
//! recvfrom(2) instead of accept(2) and answers each datagram it may.
//!
//! Stopping: SIGTERM only sets a flag. A worker blocked in accept sees EINTR
//! and leaves; a busy worker finishes its connection first. When the master
//! shuts the listener down, accept fails with EINVAL and the worker leaves
//! too. It exits with a [`WorkerExit`] code the master understands.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::master::plan::Job;
use crate::models::prefork_lock::AcceptLock;
use crate::models::{report_served, Model, Runner};
use crate::net::acl::{Access, Rate, UDP_PER_SOURCE};
use crate::net::proxy::{self, Proxy};
use crate::net::{Connection, Listener};
use crate::privileges::Privileges;
use crate::scoreboard::{Scoreboard, Slot, State};
use crate::service::builtin::answerable;
use crate::service::{Builtin, Handler};
use crate::sys;
use crate::sys::process::Pid;

/// How a worker tells the master why it exited. The values are part of the
/// master/worker protocol and listed under EXIT STATUS in preforkd(8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerExit {
    /// Finished: asked to stop, or the listener was shut down.
    Done = 0,
    /// Out of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM) in accept.
    /// The master respawns it with back-off.
    Sick = 75, // EX_TEMPFAIL
    /// Cannot work at all (its setup failed, the socket is unusable). The
    /// master stops the pool instead of respawning in a loop.
    Fatal = 78, // EX_CONFIG
}

impl WorkerExit {
    /// The exit status with this meaning, if any.
    pub fn from_code(code: i32) -> Option<WorkerExit> {
        [WorkerExit::Done, WorkerExit::Sick, WorkerExit::Fatal]
            .into_iter()
            .find(|w| *w as i32 == code)
    }
}

/// What a worker needs from the master: nothing else crosses the fork.
pub(crate) struct Worker<'a, 'h> {
    pub listener: &'a Listener,
    pub job: &'a Job<'h>,
    pub privileges: &'a Privileges,
    pub master: Pid,
    pub service: &'a str,
    /// The daemon's UDP service ports, never answered (see `answerable`).
    pub udp_ports: Vec<u16>,
    /// This worker's scoreboard slot.
    pub slot: Slot<'a>,
    /// Where to tell the master "I turned busy/idle" (adaptive pools).
    pub busy_pipe: Option<BorrowedFd<'a>>,
    /// Exit after this many connections.
    pub max_requests: Option<u64>,
    /// Close a connection idle this long.
    pub timeout: Option<Duration>,
    /// Retire after a connection that left the resident memory above this.
    pub max_memory: Option<u64>,
    /// Log one line per connection.
    pub log_connections: bool,
    /// Who may connect.
    pub access: &'a Access,
    /// The whole scoreboard, read for per_source.
    pub board: &'a Scoreboard,
    /// The pool's shared slot (rate limiter, per_source tag).
    pub pool_slot: usize,
    /// How this worker serves its socket (see `crate::models`).
    pub model: Model,
    /// The `prefork-lock` model's lock around accept(2).
    pub accept_lock: Option<&'a AcceptLock>,
    /// listen(2) backlog of the worker's own socket (`reuseport`).
    pub backlog: i32,
    /// Processes or threads inside a single-process model.
    pub model_workers: usize,
    /// Read a PROXY protocol header from a trusted balancer before serving
    /// its connection.
    pub proxy_protocol: Option<&'a Proxy>,
}

impl Worker<'_, '_> {
    /// The forked child's whole life. Never returns.
    pub(crate) fn run(self) -> ! {
        // A panic must never unwind out of here: above this frame are the
        // master's, whose destructors would remove the daemon's files and
        // close descriptors already closed.
        let exit = panic::catch_unwind(AssertUnwindSafe(|| match self.setup() {
            Ok((stop, own)) => self.serve(stop, own.as_ref().unwrap_or(self.listener)) as i32,
            Err(e) => {
                log::error!("W0010 service {}: worker cannot start: {}", self.service, e);
                WorkerExit::Fatal as i32
            }
        }))
        .unwrap_or(70); // EX_SOFTWARE
        let _ = io::stderr().flush();
        sys::process::exit_now(exit)
    }

    /// Cuts the worker loose from the master; returns its stop flag, and
    /// its own socket when the model gives each worker one.
    fn setup(&self) -> io::Result<(&'static AtomicBool, Option<Listener>)> {
        self.slot.set_pid(std::process::id());
        // Out of the master's session: no controlling terminal, so neither
        // this worker nor a program it runs can open /dev/tty, and the
        // terminal's hangup and ^C never reach them. The session is also the
        // worker's process group, which the master signals as a whole.
        sys::process::new_session()?;
        sys::process::die_with_parent(self.master)?;
        let mut keep = vec![0, 1, 2, self.listener.as_raw_fd()];
        keep.extend(self.busy_pipe.map(|fd| fd.as_raw_fd()));
        keep.extend(self.accept_lock.map(|lock| lock.fd().as_raw_fd()));
        sys::fd::close_all_except(&keep)?;
        // Bound while the worker may still bind a privileged port.
        let own = match self.model {
            Model::Reuseport => Some(crate::models::reuseport::own_socket(
                self.listener,
                self.backlog,
            )?),
            _ => None,
        };
        // Our own connection to syslog (the inherited one was just closed),
        // made before a chroot could hide /dev/log.
        crate::log::reopen_after_fork();
        // Whether programs' stderr goes through this worker to the log
        // (syslog, or a terminal they must not hold), decided once.
        crate::service::stderr::prepare(self.service);
        let stop = sys::signal::install_stop_flag(Signal::SIGTERM)?;
        self.privileges.apply()?;
        // Changing the effective ids clears the parent-death signal
        // (prctl(2)): ask for it again as the new user.
        sys::process::die_with_parent(self.master)?;
        Ok((stop, own))
    }

    fn serve(&self, stop: &'static AtomicBool, listener: &Listener) -> WorkerExit {
        match self.job {
            Job::Stream(handler) if !self.model.is_process_pool() => {
                let runner = Runner {
                    name: self.service,
                    listener,
                    handler: handler.as_ref(),
                    service: handler.as_service(),
                    workers: self.model_workers,
                    stop,
                    timeout: self.timeout,
                    slot: &self.slot,
                };
                crate::models::run_single(self.model, &runner)
            }
            Job::Stream(handler) => {
                let mut served = 0;
                let exit = self.serve_connections(handler.as_ref(), stop, listener, &mut served);
                report_served(self.service, &std::process::id().to_string(), served);
                exit
            }
            Job::Datagram(builtin) => self.serve_datagrams(*builtin, stop),
        }
    }

    /// The next connection: a plain accept, or one under the accept lock.
    fn next_connection(&self, listener: &Listener) -> Result<Connection, Errno> {
        match self.accept_lock {
            Some(lock) => lock.accept(listener),
            None => crate::models::prefork::accept(listener),
        }
    }

    /// Receives datagrams and answers them, one at a time.
    fn serve_datagrams(&self, builtin: Builtin, stop: &AtomicBool) -> WorkerExit {
        let Some(socket) = self.listener.as_udp() else {
            log::error!("W0012 service {}: not a datagram socket", self.service);
            return WorkerExit::Fatal;
        };
        let mut buf = vec![0u8; 65536];
        let mut answered = 0usize;
        // Datagrams admitted (answered or not: discard), for max_requests.
        let mut taken = 0u64;
        self.slot.set(State::Idle);
        loop {
            if stop.load(Ordering::SeqCst) {
                return WorkerExit::Done;
            }
            if self.max_requests.is_some_and(|max| taken >= max) {
                log::debug!("service {}: took {taken} datagrams: retiring", self.service);
                self.slot.set(State::Exiting);
                return WorkerExit::Done;
            }
            let (len, source) = match socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The socket was shut down (recvfrom gives 0 bytes and no
                // address, which std reports as invalid input): stop.
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => return WorkerExit::Done,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOTSOCK)) => {
                    log::error!("W0012 service {}: recvfrom: {e}", self.service);
                    return WorkerExit::Fatal;
                }
                Err(e) => {
                    // ICMP errors of earlier answers (ECONNREFUSED) and the like.
                    log::debug!("service {}: recvfrom: {e}", self.service);
                    continue;
                }
            };
            if let Err(why) =
                answerable(source, &self.udp_ports).and_then(|()| self.admit_datagram(source.ip()))
            {
                log::debug!(
                    "service {}: dropped a datagram from {source}: {why}",
                    self.service
                );
                continue;
            }
            self.slot.begin(Some(source));
            taken += 1;
            if let Some(reply) = builtin.datagram_reply(&buf[..len], answered) {
                match socket.send_to(&reply, source) {
                    Ok(_) => answered += 1,
                    Err(e) => log::debug!("service {}: sendto {source}: {e}", self.service),
                }
            }
            self.slot.end();
        }
    }

    /// Applies the service's access rules to a datagram from `ip`: the
    /// lists, `per_source` as datagrams per second from one address (by
    /// default [`UDP_PER_SOURCE`], so that every builtin's replies to one
    /// address are limited), and `rate` for the whole socket.
    fn admit_datagram(&self, ip: std::net::IpAddr) -> Result<(), &'static str> {
        self.access.allows(ip)?;
        let per_second = Rate {
            count: self.access.per_source.unwrap_or(UDP_PER_SOURCE),
            per_secs: 1,
        };
        let now = sys::shm::monotonic_us();
        if !self
            .board
            .sources()
            .admit(self.pool_slot, ip, per_second, now)
        {
            return Err("per_source limit reached");
        }
        if let Some(rate) = self.access.rate {
            if !rate.admit(self.board.slot(self.pool_slot).rate_state(), now) {
                return Err("rate limit reached");
            }
        }
        Ok(())
    }

    /// Applies the service's access rules to a client just accepted: to
    /// its own address, or to the one a trusted balancer's header named
    /// (whose `rate` was applied before its header: `with_rate` false).
    fn admit(&self, conn: &crate::net::Connection, with_rate: bool) -> Result<(), String> {
        if self.access.is_open() {
            return Ok(());
        }
        let Some(ip) = conn.remote_addr().map(|a| a.ip()) else {
            return Ok(()); // Unix sockets: the file's mode is the access list.
        };
        self.access.allows(ip).map_err(str::to_string)?;
        if let Some(limit) = self.access.per_source {
            // Our own slot is busy with this client already.
            if self.board.busy_from(self.pool_slot, ip) > limit as usize {
                return Err(format!("per_source limit of {limit} reached"));
            }
        }
        if with_rate {
            self.admit_rate()?;
        }
        Ok(())
    }

    /// The service's `rate`, for each address it listens on.
    fn admit_rate(&self) -> Result<(), String> {
        if let Some(rate) = self.access.rate {
            let state = self.board.slot(self.pool_slot);
            if !rate.admit(state.rate_state(), sys::shm::monotonic_us()) {
                return Err(format!("rate limit of {rate} reached"));
            }
        }
        Ok(())
    }

    /// Everything a connection must pass before its handler runs; on
    /// failure, the log line's id (W0030 access rules, W0031 PROXY header)
    /// and why.
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
    fn screen(&self, conn: &mut Connection) -> Result<(), (&'static str, String)> {
        let access = |e| ("W0030", e);
        let Some(proxy) = self.proxy_protocol else {
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
                        format!("a PROXY protocol header from {peer}, not in trusted_proxies"),
                    ));
                }
                Ok(())
            }
            _ => {
                self.admit_rate().map_err(access)?;
                self.take_proxy_header(conn, proxy)
                    .map_err(|e| ("W0031", e))?;
                self.admit(conn, false).map_err(access)
            }
        }
    }

    /// Closes a connection at once, logs why under `id` (W0030 for the
    /// access rules, W0031 for a bad PROXY header), and goes back to idle
    /// without counting it as served.
    fn refuse(&self, conn: Connection, id: &str, why: &str) {
        let client = conn
            .remote_addr()
            .map_or("a client".to_string(), |a| a.to_string());
        log::info!("{id} service {}: refused {client}: {why}", self.service);
        drop(conn);
        self.mark(|s| s.end_refused());
    }

    /// Takes the PROXY protocol header off `conn`; the client it names
    /// becomes the connection's, here and on the scoreboard (per_source
    /// counts it). A LOCAL header (a health check) leaves the connection's
    /// own addresses.
    fn take_proxy_header(&self, conn: &mut Connection, proxy: &Proxy) -> Result<(), String> {
        let limit = self.timeout.map_or(proxy.timeout, |t| t.min(proxy.timeout));
        match proxy::read_header(conn.as_fd(), proxy.version, limit) {
            Ok(proxy::Proxied::Client {
                source,
                destination,
            }) => {
                conn.set_proxied(source, destination);
                self.slot.begin(Some(source));
                Ok(())
            }
            Ok(proxy::Proxied::Local) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records a change of state on the scoreboard, and tells the master of
    /// an adaptive pool about it.
    fn mark(&self, change: impl FnOnce(&Slot<'_>)) {
        change(&self.slot);
        if let Some(fd) = self.busy_pipe {
            sys::fd::poke(fd);
        }
    }

    fn serve_connections(
        &self,
        handler: &dyn Handler,
        stop: &AtomicBool,
        listener: &Listener,
        served: &mut u64,
    ) -> WorkerExit {
        self.slot.set_pool(self.pool_slot);
        self.mark(|s| s.set(State::Idle));
        loop {
            if stop.load(Ordering::SeqCst) {
                self.slot.set(State::Exiting);
                return WorkerExit::Done;
            }
            if self.max_requests.is_some_and(|max| *served >= max) {
                log::debug!(
                    "service {}: served {served} connections: retiring",
                    self.service
                );
                self.slot.set(State::Exiting);
                return WorkerExit::Done;
            }
            let mut conn = match self.next_connection(listener) {
                Ok(conn) => conn,
                Err(e) => match AcceptError::classify(e) {
                    AcceptError::Retry => continue,
                    AcceptError::ListenerClosed => return WorkerExit::Done,
                    AcceptError::Exhausted => {
                        log::warn!(
                            "W0011 service {}: accept: {}; worker exits to be respawned",
                            self.service,
                            e.desc()
                        );
                        return WorkerExit::Sick;
                    }
                    AcceptError::Broken => {
                        log::error!("W0012 service {}: accept: {}", self.service, e.desc());
                        return WorkerExit::Fatal;
                    }
                },
            };
            self.mark(|s| s.begin(conn.remote_addr()));
            if let Err((id, why)) = self.screen(&mut conn) {
                self.refuse(conn, id, &why);
                continue;
            }
            // Also clears the header's read timeout when there is none.
            if self.timeout.is_some() || self.proxy_protocol.is_some() {
                if let Err(e) = conn.set_timeout(self.timeout) {
                    log::debug!("service {}: cannot set the timeout: {e}", self.service);
                }
            }
            if self.log_connections {
                self.serve_one_logged(handler, conn);
            } else {
                let _ = self.serve_one(handler, conn);
            }
            *served += 1;
            self.mark(|s| s.end());
            if let Some(limit) = self.max_memory {
                let rss = sys::process::resident_bytes().unwrap_or(0);
                if rss > limit {
                    log::info!(
                        "W0022 service {}: worker {} uses {} KiB, more than max_memory ({} KiB): retiring it",
                        self.service,
                        std::process::id(),
                        rss / 1024,
                        limit / 1024
                    );
                    self.slot.set(State::Exiting);
                    return WorkerExit::Done;
                }
            }
        }
    }

    /// Serves one connection and logs one line about it: C0001 served (with
    /// the program's exit status), C0003 failed.
    fn serve_one_logged(&self, handler: &dyn Handler, conn: crate::net::Connection) {
        let client = conn
            .remote_addr()
            .map_or("unix client".to_string(), |a| a.to_string());
        // A second descriptor outlives the handler, for the byte counts.
        let probe = conn.as_tcp().and_then(|_| conn.try_clone_fd().ok());
        let start = std::time::Instant::now();
        let failure = self.serve_one(handler, conn);
        let ms = start.elapsed().as_millis();
        let bytes = probe
            .as_ref()
            .and_then(|fd| sys::fd::tcp_bytes(fd.as_fd()))
            .map_or(String::new(), |(inbound, outbound)| {
                format!(", {inbound} bytes in, {outbound} out")
            });
        drop(probe);
        let exit = crate::service::exec::take_last_exit()
            .map_or(String::new(), |s| format!(", program {s}"));
        let pid = std::process::id();
        match failure {
            None => log::info!(
                "C0001 service {}: {client} served by {pid} in {ms} ms{bytes}{exit}",
                self.service
            ),
            Some(why) => log::info!(
                "C0003 service {}: {client} failed in {pid} after {ms} ms{bytes}{exit}: {why}",
                self.service
            ),
        }
    }

    fn serve_one(&self, handler: &dyn Handler, conn: Connection) -> Option<String> {
        serve_one(self.service, handler, conn)
    }
}

/// Serves one connection; returns why it failed, if it did (a client that
/// went away or idled out is not a failure). Errors and panics are logged.
pub(crate) fn serve_one(service: &str, handler: &dyn Handler, conn: Connection) -> Option<String> {
    crate::service::outcome(
        service,
        panic::catch_unwind(AssertUnwindSafe(|| handler.handle(conn))),
    )
}

/// What an accept(2) failure means for the worker.
pub(crate) enum AcceptError {
    /// A signal (look at the stop flag), or a connection that failed before
    /// we took it: accept(2) on Linux reports pending network errors of the
    /// new connection, to be treated like EAGAIN.
    Retry,
    /// The master shut the listener down (EINVAL).
    ListenerClosed,
    /// Out of descriptors or memory.
    Exhausted,
    /// The descriptor is not a listening socket: nothing will fix that.
    Broken,
}

impl AcceptError {
    pub(crate) fn classify(e: Errno) -> AcceptError {
        match e {
            Errno::EINVAL => AcceptError::ListenerClosed,
            Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM => {
                AcceptError::Exhausted
            }
            // EOPNOTSUPP: not a stream socket (a UDP socket given a stream
            // handler). Linux lists it among network errors to retry too,
            // but a listening TCP socket never reports it.
            Errno::EBADF | Errno::ENOTSOCK | Errno::EFAULT | Errno::EOPNOTSUPP => {
                AcceptError::Broken
            }
            // EINTR, EAGAIN, ECONNABORTED, EPROTO, EPERM (firewall) and the
            // network errors accept(2) lists for Linux.
            _ => AcceptError::Retry,
        }
    }
}
