//! The control socket: `preforkd status`, `reload` and `stop` talk to the
//! master here.
//!
//! A Unix stream socket, mode 0600 (only the master's user, normally root,
//! may connect), polled by the master's loop with its signals. A client
//! sends one line (`status`, `status json`, `reload`, `stop`) and reads the
//! answer until the master closes. The master reads with a 100 ms and
//! writes with a 1 s timeout, so a stuck client delays it little and never
//! blocks it for good.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{Master, Phase, PoolRun};
use crate::net::{ListenAddr, Listener};
use crate::scoreboard::State;

/// Binds the control socket at `path`, non-blocking, its file born with
/// mode 0600 (never connectable by anyone else, not even for an instant).
pub(super) fn bind(path: &Path) -> std::io::Result<Listener> {
    let listener =
        Listener::bind_with_access(&ListenAddr::Unix(path.to_path_buf()), 16, Some(0o600), None)?;
    socket2::SockRef::from(&listener).set_nonblocking(true)?;
    Ok(listener)
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
}

impl Master<'_> {
    /// Answers every client waiting on the control socket.
    pub(super) fn serve_control(&mut self) {
        loop {
            let Some(control) = &self.control else { return };
            let mut conn = match control.accept() {
                Ok(conn) => conn,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
                Err(e) => {
                    log::warn!("M0030 control socket: accept: {}", e.desc());
                    return;
                }
            };
            let _ = conn.set_timeout(Some(Duration::from_millis(100)));
            let mut request = [0u8; 256];
            let mut len = 0;
            while len < request.len() && !request[..len].contains(&b'\n') {
                match conn.read(&mut request[len..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
            }
            let request = String::from_utf8_lossy(&request[..len]).trim().to_string();
            let _ = conn.set_timeout(Some(Duration::from_secs(1)));
            let answer = match request.as_str() {
                "status" => self.status().to_text(),
                "status json" => {
                    serde_json::to_string_pretty(&self.status()).unwrap_or_default() + "\n"
                }
                "reload" => match self.reload_notified() {
                    Ok(summary) => format!("ok: {summary}\n"),
                    Err(why) => format!("error: {why}\n"),
                },
                "stop" => {
                    let _ = conn.write_all(b"ok: stopping gracefully\n");
                    drop(conn);
                    self.stop_gracefully();
                    continue;
                }
                other => format!(
                    "error: unknown request '{other}' (status, status json, reload, stop)\n"
                ),
            };
            let _ = conn.write_all(answer.as_bytes());
        }
    }

    /// The scoreboard, as `status` shows it.
    pub(crate) fn status(&self) -> Status {
        let pools = self.pools.iter().map(|run| self.pool_status(run)).collect();
        let phase = match self.phase {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Draining { .. } => "stopping",
            Phase::Killing => "killing",
            Phase::Stopped => "stopped",
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
                WorkerStatus {
                    pid: pid.as_raw() as u32,
                    generation: s.generation(),
                    state: s.state().name().into(),
                    served: s.served(),
                    client: (s.state() == State::Busy)
                        .then(|| s.client().map(|c| c.to_string()))
                        .flatten(),
                    busy_ms: s.busy_for_ms(),
                }
            })
            .collect();
        PoolStatus {
            service: run.plan.service.clone(),
            address: run.listener.local_display().to_string(),
            protocol: run.plan.protocol.to_string(),
            retiring: run.retiring.is_some(),
            busy: workers.iter().filter(|w| w.state == "busy").count(),
            idle: workers.iter().filter(|w| w.state == "idle").count(),
            served: run.served_by_gone + workers.iter().map(|w| w.served).sum::<u64>(),
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
                "  {:>8}  {:>3}  {:<8}  {:>8}  {:<24}  {}\n",
                "pid", "gen", "state", "served", "client", "for"
            );
            for w in &p.workers {
                let busy_for = if w.state == "busy" {
                    format!("{:.1}s", w.busy_ms as f64 / 1000.0)
                } else {
                    "-".into()
                };
                out += &format!(
                    "  {:>8}  {:>3}  {:<8}  {:>8}  {:<24}  {}\n",
                    w.pid,
                    w.generation,
                    w.state,
                    w.served,
                    w.client.as_deref().unwrap_or("-"),
                    busy_for
                );
            }
        }
        out
    }
}
