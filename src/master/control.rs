//! The control socket: `preforkd status`, `reload` and `stop` talk to the
//! master here.
//!
//! A Unix stream socket, mode 0600 (only the master's user, normally root,
//! may connect), polled by the master's loop with its signals. A client
//! sends one line (`status`, `status json`, `reload`, `stop`) and reads the
//! answer until the master closes.
//!
//! The master never waits for a client: a client's socket is non-blocking
//! and polled in the master's loop with the signals, its request read as
//! it comes and its answer written as the client takes it. A client has
//! [`DEADLINE`] for the whole exchange, then it is closed; so a client that
//! sends nothing, or one byte at a time, delays neither the reaping and
//! respawning of workers nor another client's request. At most
//! [`MAX_CLIENTS`] are served at once; more are closed at once.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use serde::Serialize;

use super::{Ended, Master, Phase, PoolRun};
use crate::error::Error;
use crate::net::{Connection, ListenAddr, Listener};
use crate::scoreboard::State;
use crate::service::builtin::metrics::PoolCounts;
use crate::sys;

/// Binds the control socket at `path`, non-blocking, its file born with
/// mode 0600 (never connectable by anyone else, not even for an instant).
pub(super) fn bind(path: &Path) -> std::io::Result<Listener> {
    let listener =
        Listener::bind_with_access(&ListenAddr::Unix(path.to_path_buf()), 16, Some(0o600), None)?;
    socket2::SockRef::from(&listener).set_nonblocking(true)?;
    Ok(listener)
}

/// The control socket, if there is one, and the clients being served.
#[derive(Default)]
pub(super) struct Control {
    pub listener: Option<Listener>,
    pub clients: Vec<Client>,
    /// Where it is (`serve` only), to bind it again after a failed upgrade.
    pub path: Option<PathBuf>,
}

impl Control {
    /// The control socket at `path`, bound: an old master's is replaced
    /// when `take_over` (a binary upgrade). A path in use by another
    /// daemon is an error; any other failure leaves the master without a
    /// control socket, with a warning.
    pub(super) fn bind(path: PathBuf, take_over: bool) -> Result<Control, Error> {
        let bound = match bind(&path) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) && take_over => {
                Listener::remove_our_socket(&path).and_then(|()| bind(&path))
            }
            other => other,
        };
        let listener = match bound {
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
        Ok(Control {
            listener,
            clients: Vec::new(),
            path: Some(path),
        })
    }
}

/// How long a control client has for its whole exchange: to send its
/// request and to read the answer.
pub(super) const DEADLINE: Duration = Duration::from_secs(1);

/// Control clients served at once; one more is closed at once.
pub(super) const MAX_CLIENTS: usize = 16;

/// The longest request: `reload FILE` with the longest path (PATH_MAX,
/// 4096 bytes on Linux) and its newline.
const MAX_REQUEST: usize = 4096 + 8;

/// A control client: its request so far, then the answer left to send.
pub(super) struct Client {
    conn: Connection,
    deadline: Instant,
    request: Vec<u8>,
    /// The answer, and how much of it was sent.
    answer: Option<(Vec<u8>, usize)>,
}

impl Client {
    /// What the master's poll waits for on this client's socket.
    pub(super) fn interest(&self) -> (BorrowedFd<'_>, PollFlags) {
        let flags = if self.answer.is_some() {
            PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        };
        (self.conn.as_fd(), flags)
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Reads what has come; the request once it is complete (a line, the
    /// longest allowed, or the client's end of file).
    fn read(&mut self) -> Result<Option<String>, ()> {
        let mut buf = [0u8; MAX_REQUEST];
        loop {
            let room = MAX_REQUEST - self.request.len();
            match self.conn.read(&mut buf[..room]) {
                Ok(0) => break,
                Ok(n) => {
                    self.request.extend_from_slice(&buf[..n]);
                    if self.request.contains(&b'\n') || self.request.len() >= MAX_REQUEST {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(_) => return Err(()),
            }
        }
        let line = self.request.split(|&b| b == b'\n').next().unwrap_or(&[]);
        Ok(Some(String::from_utf8_lossy(line).trim().to_string()))
    }

    /// Sends what the socket takes of the answer; true once all is sent
    /// (or the client is gone).
    fn write(&mut self) -> bool {
        let Some((answer, sent)) = &mut self.answer else {
            return false;
        };
        while *sent < answer.len() {
            match self.conn.write(&answer[*sent..]) {
                Ok(0) => return true,
                Ok(n) => *sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
        true
    }
}

/// `preforkd status --json`, and the rows of the text form.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub master: u32,
    pub phase: String,
    pub generation: u32,
    pub pools: Vec<PoolStatus>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PoolStatus {
    pub service: String,
    pub address: String,
    pub protocol: String,
    pub retiring: bool,
    pub busy: usize,
    pub idle: usize,
    pub served: u64,
    /// The numbers `/metrics` gives (the `metrics` builtin).
    pub counters: PoolCounts,
    pub workers: Vec<WorkerStatus>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WorkerStatus {
    pub pid: u32,
    pub generation: u32,
    pub state: String,
    pub served: u64,
    pub client: Option<String>,
    pub busy_ms: u64,
    /// What a library handler said it is doing (`preforkd::set_state`),
    /// sanitized; only while busy.
    pub handler_state: Option<String>,
}

impl Master<'_> {
    /// Takes every client waiting on the control socket, and serves what
    /// each has sent already.
    pub(super) fn accept_control(&mut self, now: Instant) {
        loop {
            let Some(control) = &self.control.listener else {
                return;
            };
            let conn = match control.accept() {
                Ok(conn) => conn,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
                Err(e) => {
                    log::warn!("M0030 control socket: accept: {}", e.desc());
                    return;
                }
            };
            if self.control.clients.len() >= MAX_CLIENTS || conn.set_nonblocking(true).is_err() {
                log::debug!("control socket: {MAX_CLIENTS} clients already; one more closed");
                continue;
            }
            self.control.clients.push(Client {
                conn,
                deadline: now + DEADLINE,
                request: Vec::new(),
                answer: None,
            });
            self.serve_control(self.control.clients.len() - 1);
        }
    }

    /// Serves control clients whose sockets are ready (`ready[i]` for the
    /// `i`-th), and closes those past their deadline.
    pub(super) fn serve_controls(&mut self, ready: &[bool], now: Instant) {
        for i in (0..self.control.clients.len().min(ready.len())).rev() {
            if ready[i] {
                self.serve_control(i);
            }
        }
        self.control.clients.retain(|c| {
            let keep = now < c.deadline;
            if !keep {
                log::debug!("control socket: a client past its {DEADLINE:?} deadline; closed");
            }
            keep
        });
    }

    /// Reads client `i`'s request if it is there, answers it, and sends
    /// what the socket takes; the client is closed once done.
    fn serve_control(&mut self, i: usize) {
        let client = &mut self.control.clients[i];
        if client.answer.is_none() {
            let request = match client.read() {
                Ok(None) => return,
                Ok(Some(request)) => request,
                Err(()) => {
                    self.control.clients.remove(i);
                    return;
                }
            };
            let answer = match request.as_str() {
                "status" => self.status().to_text(),
                "status json" => {
                    serde_json::to_string_pretty(&self.status()).unwrap_or_default() + "\n"
                }
                r if r == "reload" || r.starts_with("reload ") => {
                    match self.reload_of(r.strip_prefix("reload ").map(Path::new)) {
                        Ok(summary) => format!("ok: {summary}\n"),
                        Err(why) => format!("error: {why}\n"),
                    }
                }
                "stop" => {
                    let mut client = self.control.clients.remove(i);
                    client.answer = Some((b"ok: stopping gracefully\n".to_vec(), 0));
                    client.write();
                    drop(client);
                    self.stop_gracefully();
                    return;
                }
                other => format!(
                    "error: unknown request '{other}' (status, status json, reload, stop)\n"
                ),
            };
            let client = &mut self.control.clients[i];
            client.answer = Some((answer.into_bytes(), 0));
        }
        if self.control.clients[i].write() {
            self.control.clients.remove(i);
        }
    }

    /// `reload`, or `reload FILE` from `preforkd reload -c FILE`: refused
    /// when FILE is not the file this daemon reads (it checked FILE, and
    /// would have reloaded another).
    fn reload_of(&mut self, file: Option<&Path>) -> Result<String, String> {
        if let Some(file) = file {
            if self.config_file.as_deref() != Some(file) {
                return Err(format!(
                    "this daemon reads {}, not {}: nothing reloaded (reload -c names the daemon's own file; to serve another, restart it with that one)",
                    self.config_file
                        .as_ref()
                        .map_or("its built-in default".into(), |p| p.display().to_string()),
                    file.display()
                ));
            }
        }
        self.reload_notified()
    }

    /// The scoreboard, as `status` shows it.
    pub(crate) fn status(&self) -> Status {
        let pools = self.pools.iter().map(|run| self.pool_status(run)).collect();
        let phase = match self.phase {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Upgrading(_) => "upgrading",
            Phase::Draining {
                then: Ended::HandedOver,
                ..
            } => "handing over",
            Phase::Draining { .. } => "stopping",
            Phase::Killing => "killing",
            Phase::Stopped(_) => "stopped",
        };
        Status {
            master: self.pid.as_raw() as u32,
            phase: phase.into(),
            generation: self.generation,
            pools,
        }
    }

    fn pool_status(&self, run: &PoolRun<'_>) -> PoolStatus {
        let workers: Vec<WorkerStatus> = run
            .pool
            .slots()
            .map(|(pid, slot)| {
                let s = self.board.slot(slot);
                let busy = s.state() == State::Busy;
                WorkerStatus {
                    pid: pid.as_raw() as u32,
                    generation: s.generation(),
                    state: s.state().name().into(),
                    served: s.served(),
                    client: busy.then(|| s.client().map(|c| c.to_string())).flatten(),
                    busy_ms: s.busy_for_ms(),
                    handler_state: busy.then(|| s.note()).flatten(),
                }
            })
            .collect();
        let counters = PoolCounts::read(&self.board, run.shared_slot);
        PoolStatus {
            service: run.plan.name.clone(),
            address: run.listener.local_display().to_string(),
            protocol: run.plan.protocol().to_string(),
            retiring: run.retiring.is_some(),
            busy: workers.iter().filter(|w| w.state == "busy").count(),
            idle: workers.iter().filter(|w| w.state == "idle").count(),
            served: counters.served,
            counters,
            workers,
        }
    }
}

impl Status {
    /// The text form: one paragraph per pool, Apache server-status style.
    pub(crate) fn to_text(&self) -> String {
        let mut out = format!(
            "preforkd master {}: {}, generation {}\n",
            self.master, self.phase, self.generation
        );
        for p in &self.pools {
            out += &format!(
                "\nservice {} on {} ({}){}: {} busy, {} idle, {} served\n",
                p.service,
                p.address,
                p.protocol,
                if p.retiring { ", retiring" } else { "" },
                p.busy,
                p.idle,
                p.served
            );
            out += &format!(
                "  {:>8}  {:>3}  {:<8}  {:>8}  {:<24}  {:<6}  {}\n",
                "pid", "gen", "state", "served", "client", "for", "handler_state"
            );
            for w in &p.workers {
                let busy_for = if w.state == "busy" {
                    format!("{:.1}s", w.busy_ms as f64 / 1000.0)
                } else {
                    "-".into()
                };
                out += &format!(
                    "  {:>8}  {:>3}  {:<8}  {:>8}  {:<24}  {:<6}  {}\n",
                    w.pid,
                    w.generation,
                    w.state,
                    w.served,
                    w.client.as_deref().unwrap_or("-"),
                    busy_for,
                    w.handler_state.as_deref().unwrap_or("-")
                );
            }
        }
        out
    }
}
