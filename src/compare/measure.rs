//! One measurement: a model's server started on a loopback port, loaded by
//! `preforkd load` in a process of its own, stopped, and what the kernel
//! says they both used ([`Sample`]). The rounds, the medians and the
//! table are the parent module's.
//!
//! CPU time and context switches: the server's whole tree, as the rusage
//! of its exit reports it (every process of the tree reaped by another,
//! down to the exec'd programs and `fork`'s children, to the microsecond),
//! minus the same for the same server started and stopped without a
//! client (the parent module takes the median of those idle runs). /proc would give the live tree's in 10 ms ticks per process,
//! too coarse, and would miss every process that ended before a reading.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::{tree, CompareSpec, Request, Target};
use crate::load::{Limit, LoadResult};
use crate::models::Model;

/// What one run of one model at one client count measured.
#[derive(Debug, Clone, Default)]
pub(super) struct Sample {
    pub(super) load: LoadResult,
    /// The server tree's user + system CPU during the load, ms: its whole
    /// run less what starting and stopping it cost (`idle`).
    pub(super) server_cpu_ms: f64,
    /// Its voluntary context switches during the load (each time one of
    /// its processes or threads slept and was woken), the same way.
    pub(super) wakeups: f64,
    /// Its minor page faults during the load, the same way: a count of
    /// work done (a fork's copied pages), which no busy machine changes.
    pub(super) faults: f64,
    /// The whole run's, start and stop included.
    pub(super) gross: Usage,
    /// The same server's started and stopped without a client, just
    /// before.
    pub(super) idle: Usage,
    /// The load generator's own CPU, ms.
    pub(super) load_cpu_ms: f64,
    /// The most PSS the tree had at once, bytes.
    pub(super) pss_peak_bytes: u64,
    /// Connections each worker served, from its W0050 line (W0051 lines
    /// count 1 for each of their workers).
    pub(super) served: Vec<u64>,
}

impl Sample {
    /// Sets the load's share of the run: the whole run less `idle`, the
    /// cost of starting and stopping this model's server (the median of
    /// its idle runs: one idle run that a busy moment slowed would
    /// otherwise make one round's figure too low).
    pub(super) fn less_idle(&mut self, idle: Usage) {
        let net = self.gross.minus(idle);
        self.server_cpu_ms = net.cpu_seconds.max(0.0) * 1000.0;
        self.wakeups = net.wakeups.max(0.0);
        self.faults = net.faults.max(0.0);
    }

    /// Connections tried, completed or not.
    pub(super) fn tried(&self) -> u64 {
        self.load.connections + self.load.failed
    }

    fn per_tried(&self, x: f64) -> f64 {
        match self.tried() {
            0 => 0.0,
            n => x / n as f64,
        }
    }

    /// Server CPU per connection, µs.
    pub(super) fn cpu_per_connection_us(&self) -> f64 {
        self.per_tried(self.server_cpu_ms * 1000.0)
    }

    /// Load generator CPU per connection, µs.
    pub(super) fn load_cpu_per_connection_us(&self) -> f64 {
        self.per_tried(self.load_cpu_ms * 1000.0)
    }

    /// Voluntary context switches per connection.
    pub(super) fn wakeups_per_connection(&self) -> f64 {
        self.per_tried(self.wakeups)
    }

    /// Minor page faults per connection.
    pub(super) fn faults_per_connection(&self) -> f64 {
        self.per_tried(self.faults)
    }
}

/// Measures `model` once at `clients` concurrent clients.
pub(super) fn measure(
    exe: &std::path::Path,
    spec: &CompareSpec,
    model: Model,
    clients: usize,
    limit: Limit,
) -> Result<Sample, String> {
    // What starting and stopping this server costs, without a client.
    let idle = {
        let before = Usage::reaped();
        let (stopped, lines) = Server::start(exe, spec, model)?.stop();
        stopped_cleanly(model, stopped, &lines)?;
        Usage::reaped().minus(before)
    };
    let server = Server::start(exe, spec, model)?;
    let sampler = Sampler::start(server.pid());
    let before_load = Usage::reaped();
    let result = load(exe, spec, server.addr, clients, limit);
    // The load generator has been reaped: from here until the server is,
    // no other child of ours ends.
    let before_stop = Usage::reaped();
    let peak = sampler.finish();
    let (stopped, lines) = server.stop();
    let gross = Usage::reaped().minus(before_stop);
    let load_usage = before_stop.minus(before_load);
    let load = result?;
    stopped_cleanly(model, stopped, &lines)?;
    Ok(Sample {
        load,
        server_cpu_ms: 0.0,
        wakeups: 0.0,
        faults: 0.0,
        gross,
        idle,
        load_cpu_ms: load_usage.cpu_seconds * 1000.0,
        pss_peak_bytes: peak.pss_bytes,
        served: served_counts(&lines),
    })
}

/// What the reaped children of this process used, in all
/// (getrusage(RUSAGE_CHILDREN): every child reaped, and their reaped
/// children in turn).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    /// User + system CPU, seconds, to the microsecond.
    pub(super) cpu_seconds: f64,
    /// Voluntary context switches.
    pub(super) wakeups: f64,
    /// Minor page faults (each page a process touched for the first time
    /// or copied on write).
    pub(super) faults: f64,
}

impl Usage {
    fn reaped() -> Usage {
        use nix::sys::resource::{getrusage, UsageWho};
        getrusage(UsageWho::RUSAGE_CHILDREN).map_or(Usage::default(), |u| {
            let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            Usage {
                cpu_seconds: seconds(u.user_time()) + seconds(u.system_time()),
                wakeups: u.voluntary_context_switches() as f64,
                faults: u.minor_page_faults() as f64,
            }
        })
    }

    pub(super) fn minus(self, other: Usage) -> Usage {
        Usage {
            cpu_seconds: self.cpu_seconds - other.cpu_seconds,
            wakeups: self.wakeups - other.wakeups,
            faults: self.faults - other.faults,
        }
    }
}

/// A server started for one measurement.
struct Server {
    child: Child,
    addr: std::net::SocketAddr,
    /// Every line of its stderr, read by a thread.
    lines: Arc<Mutex<Vec<String>>>,
    /// Told when the reader has seen the end of the pipe.
    reader_done: mpsc::Receiver<()>,
}

impl Server {
    fn start(exe: &std::path::Path, spec: &CompareSpec, model: Model) -> Result<Server, String> {
        let mut command = Command::new(exe);
        command.args([
            "run",
            "127.0.0.1:0",
            "-v",
            "--model",
            model.name(),
            "--workers",
            &spec.workers.to_string(),
            "--graceful-timeout",
            "20s",
        ]);
        match &spec.target {
            Target::Builtin(name) => command.args(["--builtin", name]),
            Target::Exec(argv) => command.arg("--").args(argv),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let stderr = child.stderr.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (found, listening) = mpsc::channel();
        let (done, reader_done) = mpsc::channel();
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    // The address is what follows up to the first " (":
                    // "listening on [::]:P (IPv4 and IPv6)".
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr = rest.split(" (").next().unwrap_or(rest);
                        let _ = found.send(addr.trim().to_string());
                    }
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
                let _ = done.send(());
            });
        }
        let addr = listening
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .and_then(|a| a.parse().ok());
        let mut server = Server {
            child,
            addr: ([127, 0, 0, 1], 0).into(),
            lines,
            reader_done,
        };
        match addr {
            Some(addr) => {
                server.addr = addr;
                Ok(server)
            }
            None => {
                let _ = server.child.kill();
                let (_, lines) = server.stop();
                Err(format!(
                    "model {model} did not start: {}",
                    lines.last().map_or("no output", String::as_str)
                ))
            }
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then the exit (SIGKILL after 30 s); returns the exit
    /// status's success and every line the server printed.
    fn stop(mut self) -> (bool, Vec<String>) {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().ok();
                }
            }
        };
        // The end of the pipe comes when every process holding it has
        // gone; a program a killed worker left running may hold it longer:
        // then the lines read so far are what there is.
        let _ = self.reader_done.recv_timeout(Duration::from_secs(5));
        let lines = std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()));
        (status.is_some_and(|s| s.success()), lines)
    }
}

/// The per-worker counts of the W0050 lines (one per worker) and W0051
/// lines (N workers of one connection each).
pub(super) fn served_counts(lines: &[String]) -> Vec<u64> {
    let number_after = |line: &str, word: &str| -> Option<u64> {
        line.rsplit(word)
            .next()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let mut counts = Vec::new();
    for line in lines {
        if line.contains("W0050 ") {
            counts.extend(number_after(line, " served "));
        } else if line.contains("W0051 ") {
            let n = number_after(line, ": ").unwrap_or(0);
            counts.extend(std::iter::repeat_n(1, n as usize));
        }
    }
    counts
}

/// Samples the tree's peak memory every 100 ms until told to stop.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<tree::Reading>,
}

impl Sampler {
    fn start(root: i32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut peak = tree::Reading::default();
                loop {
                    let r = tree::read(root, true);
                    peak.pss_bytes = peak.pss_bytes.max(r.pss_bytes);
                    if stop.load(Ordering::SeqCst) {
                        return peak;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Sampler { stop, handle }
    }

    fn finish(self) -> tree::Reading {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or_default()
    }
}

/// Runs `preforkd load` against `addr` in its own process.
fn load(
    exe: &std::path::Path,
    spec: &CompareSpec,
    addr: std::net::SocketAddr,
    clients: usize,
    limit: Limit,
) -> Result<LoadResult, String> {
    let mut command = Command::new(exe);
    command.args([
        "load",
        &addr.to_string(),
        "--clients",
        &clients.to_string(),
        "--json",
    ]);
    match spec.request {
        Request::Echo(bytes) => command.args(["--bytes", &bytes.to_string()]),
        Request::Work(bytes) => command.args([
            "--send",
            &format!("{bytes}\n"),
            "--expect-bytes",
            &bytes.to_string(),
        ]),
    };
    match limit {
        Limit::Connections(n) => command.args(["--connections", &n.to_string()]),
        Limit::Duration(d) => command.args(["--duration", &format!("{}ms", d.as_millis())]),
    };
    let out = command
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot start the load generator: {e}"))?;
    // It exits 1 when connections failed, and says how many on stdout (and
    // on stderr, which the table says better): its stderr matters only
    // when there is no result.
    serde_json::from_slice(&out.stdout).map_err(|e| {
        let said = String::from_utf8_lossy(&out.stderr);
        format!(
            "the load generator failed ({}): {}",
            out.status,
            said.lines().last().map_or(e.to_string(), str::to_string)
        )
    })
}

fn stopped_cleanly(model: Model, stopped: bool, lines: &[String]) -> Result<(), String> {
    if stopped {
        Ok(())
    } else {
        Err(format!(
            "model {model} did not stop cleanly: {}",
            lines.last().map_or("no output", String::as_str)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_come_from_w0050_lines() {
        let lines = vec![
            "preforkd[1]: W0050 service echo: worker 12 served 40 connections".to_string(),
            "preforkd[1]: M0001 master 1: stopped".to_string(),
            "preforkd[1]: W0050 service echo: worker 13/2 served 2 connections".to_string(),
            "preforkd[2]: W0051 service echo: 3 workers served 1 connection each".to_string(),
        ];
        assert_eq!(served_counts(&lines), vec![40, 2, 1, 1, 1]);
    }
}
