//! SIGUSR2: binary upgrade, as nginx and unicorn do it.
//!
//! The master forks and execs the binary again (the file on disk now,
//! perhaps a new version) as `serve --foreground -c CONFIG`, handing it:
//! - every listening socket, on descriptors 3, 4, ... with `LISTEN_FDS`,
//!   `LISTEN_PID` and `LISTEN_FDNAMES` (`SERVICE/ADDR`), so the new master
//!   adopts them as it would systemd's, and binds nothing that is shared;
//! - the pidfile's descriptor (`PREFORKD_PIDFILE_FD`), whose lock is on the
//!   open file and so passes with it;
//! - the write end of a pipe (`PREFORKD_READY_FD`) on which it says
//!   `ready` once its workers are in accept.
//!
//! Under a service manager ($NOTIFY_SOCKET set) the new master is not the
//! old master's child: an intermediate process forks it, writes its pid on
//! the pipe (`pid N`) and exits, so that it is adopted at once by the
//! service manager (PID 1, or the user manager, a subreaper). systemd
//! decides whether it will wait for a main process when it reads `MAINPID=`:
//! a process that is not its child then is "alien" for good (a later
//! `MAINPID=` naming the same pid changes nothing), and `systemctl stop`
//! of an alien main process skips the graceful wait and sends SIGKILL.
//!
//! Then the old master drains: its workers finish their connection and
//! leave, and it exits without closing the sockets for good, removing the
//! pidfile or the Unix socket files, which are the new master's now. If the
//! new binary dies, or is not ready within the graceful timeout, the old
//! master says why and goes on serving as if nothing happened.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::{Ended, Master, Phase};
use crate::sys;
use crate::sys::process::{ChildExit, Fork, Pid};

/// The variables an old master sets for the new one, beside socket
/// activation's `LISTEN_*`; spelled here only.
const UPGRADE_FROM: &str = "PREFORKD_UPGRADE_FROM";
const PIDFILE_FD: &str = "PREFORKD_PIDFILE_FD";
const PIDFILE: &str = "PREFORKD_PIDFILE";
const READY_FD: &str = "PREFORKD_READY_FD";
const DETACHED: &str = "PREFORKD_DETACHED";

/// What an old master handed to this one, which it started on USR2: read
/// from the environment once, at startup, and taken out of it, so that no
/// program a worker runs sees it.
pub(crate) struct Handoff {
    /// The pidfile's descriptor, locked: the file names the old master
    /// until this one is ready.
    pub pidfile_fd: Option<OwnedFd>,
    /// The pidfile's path.
    pub pidfile: Option<PathBuf>,
    /// Where to say `ready` to the old master.
    pub ready: Option<OwnedFd>,
    /// The old master had detached: this one logs as a detached one does.
    pub detached: bool,
    /// The old master's pid.
    pub from: Option<Pid>,
}

impl Handoff {
    /// The handoff, if an old master started this process.
    pub(crate) fn take_from_env() -> Option<Handoff> {
        let from = std::env::var_os(UPGRADE_FROM);
        std::env::remove_var(UPGRADE_FROM);
        let pidfile_fd = sys::daemon::inherited_fd(PIDFILE_FD);
        let pidfile = std::env::var_os(PIDFILE).map(PathBuf::from);
        std::env::remove_var(PIDFILE);
        let ready = sys::daemon::inherited_fd(READY_FD);
        let detached = std::env::var_os(DETACHED).is_some();
        std::env::remove_var(DETACHED);
        from.map(|from| Handoff {
            pidfile_fd,
            pidfile,
            ready,
            detached,
            from: from
                .to_str()
                .and_then(|p| p.parse().ok())
                .map(Pid::from_raw),
        })
    }
}

/// How this master, started by an upgrade, tells the old one it is ready.
#[derive(Debug)]
pub(crate) struct ReadyReport {
    /// The pipe to write `ready` on.
    pub pipe: OwnedFd,
    /// The pidfile to write our pid into first.
    pub pidfile: Option<RawFd>,
    /// The old master, whose exit is awaited, under a service manager,
    /// to say `MAINPID=` and `READY=1` again (see notify.rs).
    pub from: Option<Pid>,
}

/// How to start the new master.
#[derive(Debug, Clone)]
pub(crate) struct Upgrader {
    /// The binary, as it was found at startup.
    pub exe: PathBuf,
    /// Its arguments (`serve --foreground -c CONFIG`).
    pub args: Vec<OsString>,
    /// The pidfile's path and descriptor, if there is one.
    pub pidfile: Option<(PathBuf, std::os::fd::RawFd)>,
    /// This master detached: the new one logs as a detached one does
    /// (to syslog unless the file says otherwise).
    pub detached: bool,
}

/// An upgrade under way: the new master, the pipe it says `ready` on, and
/// when it is given up.
#[derive(Debug)]
pub(crate) struct InProgress {
    /// The new master, once known: our child, or under a service manager
    /// the pid the intermediate process wrote on the pipe.
    pub child: Option<Pid>,
    /// Under a service manager, the intermediate process, our child, that
    /// forks the new master and exits at once.
    pub intermediate: Option<Pid>,
    /// The pipe the new master says `ready` on; `None` once it closed
    /// while the new master is our own child, whose exit status then
    /// says why (SIGCHLD), rather than the pipe.
    pub ready: Option<OwnedFd>,
    /// Whether the new master is our child (no service manager): its
    /// exit is reaped here.
    pub ours: bool,
    pub deadline: Instant,
}

impl Master<'_> {
    /// USR2.
    pub(super) fn upgrade(&mut self) {
        let Some(upgrader) = self.upgrader.clone() else {
            log::warn!("M0005 USR2: binary upgrade needs `preforkd serve`; ignored");
            return;
        };
        if !matches!(self.phase, Phase::Running) {
            log::warn!(
                "M0040 USR2: an upgrade is under way already, or the master is stopping; ignored"
            );
            return;
        }
        let (ready_read, ready_write) = match sys::fd::pipe() {
            Ok(p) => p,
            Err(e) => {
                log::error!(
                    "M0042 upgrade failed: cannot create a pipe: {}",
                    sys::fd::describe(&e)
                );
                return;
            }
        };
        let keys: Vec<_> = self.sockets.keys().cloned().collect();
        let via_intermediate = self.manager.notifier.is_some();
        match sys::process::fork(&super::signals::CAUGHT) {
            Ok(Fork::Child) => {
                // Never unwind out of the child: above are the master's frames.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if via_intermediate {
                        // This process is the intermediate: the new master
                        // is its child, adopted by the service manager as
                        // soon as this one exits (see the module's text).
                        match sys::process::fork(&super::signals::CAUGHT) {
                            Ok(Fork::Child) => {}
                            Ok(Fork::Parent(grandchild)) => {
                                let line = format!("pid {grandchild}\n");
                                let ok = nix::unistd::write(&ready_write, line.as_bytes())
                                    .is_ok_and(|n| n == line.len());
                                sys::process::exit_now(if ok { 0 } else { 71 });
                            }
                            Err(e) => {
                                log::error!("M0042 upgrade failed: {e}");
                                sys::process::exit_now(71);
                            }
                        }
                    }
                    let mut fds: Vec<i32> =
                        keys.iter().map(|k| self.sockets[k].as_raw_fd()).collect();
                    let names: Vec<String> = keys
                        .iter()
                        .map(|k| {
                            let service = self
                                .pools
                                .iter()
                                .find(|r| super::plan::socket_key(&r.plan) == *k)
                                .map_or("", |r| r.plan.name.as_str());
                            super::plan::fd_name(service, &k.0)
                        })
                        .collect();
                    let sockets = fds.len();
                    fds.extend(upgrader.pidfile.as_ref().map(|(_, fd)| *fd));
                    fds.push(ready_write.as_raw_fd());
                    let err = match sys::daemon::move_fds_from_3(&fds) {
                        Ok(placed) => {
                            // vars_os: a variable that is not UTF-8 passes as it is.
                            let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
                                .filter(|(k, _)| {
                                    let k = k.to_string_lossy();
                                    !k.starts_with("LISTEN_") && !k.starts_with("PREFORKD_")
                                })
                                .collect();
                            env.push((
                                "LISTEN_PID".into(),
                                OsString::from(std::process::id().to_string()),
                            ));
                            // The watchdog is the new master's once it takes over.
                            if env.iter().any(|(k, _)| k == "WATCHDOG_USEC") {
                                env.retain(|(k, _)| k != "WATCHDOG_PID");
                                env.push((
                                    "WATCHDOG_PID".into(),
                                    OsString::from(std::process::id().to_string()),
                                ));
                            }
                            if upgrader.detached {
                                env.push((DETACHED.into(), "1".into()));
                            }
                            env.push(("LISTEN_FDS".into(), OsString::from(sockets.to_string())));
                            env.push(("LISTEN_FDNAMES".into(), OsString::from(names.join(":"))));
                            env.push((UPGRADE_FROM.into(), OsString::from(self.pid.to_string())));
                            if let Some((path, _)) = &upgrader.pidfile {
                                env.push((
                                    PIDFILE_FD.into(),
                                    OsString::from(placed[sockets].to_string()),
                                ));
                                env.push((PIDFILE.into(), path.clone().into_os_string()));
                            }
                            env.push((
                                READY_FD.into(),
                                OsString::from(placed[placed.len() - 1].to_string()),
                            ));
                            sys::daemon::exec(&upgrader.exe, &upgrader.args, &env)
                        }
                        Err(e) => e,
                    };
                    log::error!(
                        "M0042 upgrade failed: cannot run {}: {}",
                        upgrader.exe.display(),
                        sys::fd::describe(&err)
                    );
                    sys::process::exit_now(127);
                }));
                sys::process::exit_now(70);
            }
            Ok(Fork::Parent(child)) => {
                drop(ready_write);
                // Under a service manager the new master's pid comes on the
                // pipe, from the intermediate process: M0041 is logged then.
                let (child, intermediate) = if via_intermediate {
                    (None, Some(child))
                } else {
                    log::info!(
                        "M0041 USR2: upgrading: new master {child} ({})",
                        upgrader.exe.display()
                    );
                    (Some(child), None)
                };
                self.phase = Phase::Upgrading(InProgress {
                    child,
                    intermediate,
                    ready: Some(ready_read),
                    ours: !via_intermediate,
                    deadline: sys::time::after(Instant::now(), self.graceful_timeout),
                });
            }
            Err(e) => log::error!("M0042 upgrade failed: {e}"),
        }
    }

    /// The new master wrote on its pipe, or closed it.
    /// Lines: `pid N` from the intermediate process, then `ready` from the
    /// new master (both may come in one read: each write is atomic).
    pub(super) fn upgrade_progress(&mut self) {
        let Phase::Upgrading(up) = &mut self.phase else {
            return;
        };
        let Some(ready) = &up.ready else {
            return;
        };
        let mut buf = [0u8; 64];
        let n = match nix::unistd::read(ready.as_raw_fd(), &mut buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
            Err(_) => 0,
        };
        if n == 0 {
            if up.ours {
                // It is exiting, most likely: SIGCHLD brings its status
                // (and the graceful timeout ends a new master that lives
                // on without its pipe).
                up.ready = None;
            } else {
                self.upgrade_failed("the new master closed its pipe before it was ready");
            }
            return;
        }
        let mut ready = false;
        for line in buf[..n].split(|&b| b == b'\n') {
            if let Some(pid) = line.strip_prefix(b"pid ") {
                let pid = std::str::from_utf8(pid).ok().and_then(|p| p.parse().ok());
                if let (Some(pid), None) = (pid, up.child) {
                    let pid = Pid::from_raw(pid);
                    up.child = Some(pid);
                    if let Some(upgrader) = &self.upgrader {
                        log::info!(
                            "M0041 USR2: upgrading: new master {pid} ({})",
                            upgrader.exe.display()
                        );
                    }
                }
            } else if line.starts_with(b"ready") {
                ready = true;
            }
        }
        if ready {
            self.hand_over();
        }
    }

    /// The new master, our child, exited: before it was ready, the upgrade
    /// failed. Returns whether `pid` was it.
    pub(super) fn upgrade_child_exited(&mut self, pid: Pid, exit: ChildExit) -> bool {
        match &mut self.phase {
            Phase::Upgrading(up) if up.child == Some(pid) => {
                self.upgrade_failed(&format!("the new master exited ({exit})"));
                true
            }
            // It has written the new master's pid and gone, as it should.
            Phase::Upgrading(up) if up.intermediate == Some(pid) => {
                up.intermediate = None;
                if exit != ChildExit::Exited(0) {
                    self.upgrade_failed(&format!(
                        "the process that starts the new master exited ({exit})"
                    ));
                }
                true
            }
            _ => false,
        }
    }

    /// Gives up an upgrade that is not ready in time.
    pub(super) fn upgrade_timers(&mut self, now: Instant) {
        if matches!(&self.phase, Phase::Upgrading(up) if now >= up.deadline) {
            self.upgrade_failed("the new master was not ready within the graceful timeout");
        }
    }

    /// Ends the upgrade under way, if there is one: back to running.
    fn take_upgrade(&mut self) -> Option<InProgress> {
        match std::mem::replace(&mut self.phase, Phase::Running) {
            Phase::Upgrading(up) => Some(up),
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// A stop while a new master is getting ready: it is killed, since the
    /// sockets it would take are being shut down.
    pub(super) fn cancel_upgrade(&mut self) {
        if let Some(up) = self.take_upgrade() {
            if let Some(child) = up.child {
                sys::process::kill(child, Signal::SIGKILL);
            }
            self.rebind_control();
            log::error!(
                "M0042 upgrade abandoned: the master is stopping; new master {} killed",
                up.child.map_or(0, |p| p.as_raw())
            );
        }
    }

    fn upgrade_failed(&mut self, why: &str) {
        if let Some(up) = self.take_upgrade() {
            if let Some(child) = up.child {
                sys::process::kill(child, Signal::SIGKILL);
            }
            // Before the log line, so that whoever reads it can talk to us.
            self.rebind_control();
            log::error!("M0042 upgrade failed: {why}; the old master goes on serving");
        }
    }

    /// The new master may have taken over the control socket's path before
    /// it was killed: bind it again. Ours, still there, is kept.
    fn rebind_control(&mut self) {
        let ours = self
            .control
            .listener
            .as_ref()
            .is_some_and(|l| l.owns_socket_file());
        if let (Some(path), false) = (self.control.path.clone(), ours) {
            self.control.listener = None;
            match super::control::bind(&path) {
                Ok(l) => self.control.listener = Some(l),
                Err(e) => log::warn!(
                    "W0040 cannot create the control socket {} again: {}",
                    path.display(),
                    sys::fd::describe(&e)
                ),
            }
        }
    }

    /// The new master is ready: drain, leaving the sockets to it.
    fn hand_over(&mut self) {
        let Some(up) = self.take_upgrade() else {
            return;
        };
        let Some(child) = up.child else {
            return;
        };
        log::info!("M0043 upgrade: new master {child} is ready; this one stops");
        // Under systemd, the new master is systemd's child already (see the
        // module's text): not an alien main process, which a stop would
        // SIGKILL without waiting.
        self.notify(&format!("MAINPID={child}"));
        // The sockets are the new master's now: a fast stop of this one
        // must not shut them down either.
        for listener in self.sockets.values() {
            listener.set_managed(true);
        }
        self.drain(Ended::HandedOver);
    }
}
