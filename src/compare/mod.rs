//! `preforkd compare`: runs each model as a real `preforkd run` child on a
//! loopback port, drives it with `preforkd load` in a process of its own,
//! and measures the server's whole process tree meanwhile; one table row
//! per model and client count.
//!
//! Each row gets a fresh server, so that what one row leaves (a grown
//! pool, a warm cache) does not flatter the next, and so that the
//! server's per-worker counts, logged as each worker leaves (W0050), belong
//! to that row alone: they make the spread column.
//!
//! CPU time: the server's whole tree, as the rusage of its exit reports it
//! (every process of the tree reaped by another, down to the exec'd
//! programs, to the microsecond), minus the same for the same server
//! started and stopped without a client. /proc would give the live tree's
//! in 10 ms ticks per process, too coarse for a row of 2000 connections.
//!
//! What is not here: the load generator (`crate::load`), the /proc
//! readings (`tree`), the SVG chart (`chart`).

pub mod chart;
pub mod tree;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::load::{Limit, LoadResult};
use crate::models::Model;

/// What the server runs for every model.
#[derive(Debug, Clone)]
pub enum Target {
    /// A builtin, by name.
    Builtin(String),
    /// A program and its arguments.
    Exec(Vec<String>),
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// The models, in the order of the table.
    pub models: Vec<Model>,
    /// Concurrent clients, one row per count.
    pub clients: Vec<usize>,
    /// How long each row's load runs.
    pub limit: Limit,
    /// The handler.
    pub target: Target,
    /// Request (and reply) size.
    pub bytes: usize,
    /// Workers of the models that keep a pool.
    pub workers: usize,
}

/// How connections spread over the workers that served them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    /// Workers (processes or threads) that reported.
    pub workers: usize,
    /// Fewest connections one worker served.
    pub min: u64,
    /// The median worker's.
    pub median: u64,
    /// Most.
    pub max: u64,
    /// All of them: equal to the connections made when nothing failed.
    pub total: u64,
}

impl Spread {
    fn of(mut counts: Vec<u64>) -> Spread {
        counts.sort_unstable();
        Spread {
            workers: counts.len(),
            min: counts.first().copied().unwrap_or(0),
            median: counts.get(counts.len() / 2).copied().unwrap_or(0),
            max: counts.last().copied().unwrap_or(0),
            total: counts.iter().sum(),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The model's name.
    pub model: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Connections that completed.
    pub connections: u64,
    /// Connections that failed.
    pub failed: u64,
    /// Completed connections per second.
    pub per_second: f64,
    /// Median latency of a connection.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// User + system CPU of the server's tree during the load.
    pub server_cpu_ms: f64,
    /// `server_cpu_ms` per connection, in microseconds.
    pub cpu_per_connection_us: f64,
    /// The same minus `iterative`'s at this client count: what the
    /// model's process or thread control costs (Stevens' measure).
    pub above_iterative_us: Option<f64>,
    /// The most PSS the tree had at once, MiB.
    pub pss_peak_mib: f64,
    /// The most processes the tree had at once.
    pub processes: usize,
    /// The most threads the tree had at once.
    pub threads: usize,
    /// How connections spread over the workers.
    pub spread: Spread,
    /// Why the first failed connection failed.
    pub first_error: Option<String>,
}

/// A server started for one row.
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
                    if let Some(addr) = line.split("listening on ").nth(1) {
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
                    std::thread::sleep(Duration::from_millis(10))
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
fn served_counts(lines: &[String]) -> Vec<u64> {
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

/// Samples the tree's peak memory, processes and threads every 100 ms
/// until told to stop.
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
                    peak.processes = peak.processes.max(r.processes);
                    peak.threads = peak.threads.max(r.threads);
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
) -> Result<LoadResult, String> {
    let mut command = Command::new(exe);
    command.args([
        "load",
        &addr.to_string(),
        "--clients",
        &clients.to_string(),
        "--bytes",
        &spec.bytes.to_string(),
        "--json",
    ]);
    match spec.limit {
        Limit::Connections(n) => command.args(["--connections", &n.to_string()]),
        Limit::Duration(d) => command.args(["--duration", &format!("{}ms", d.as_millis())]),
    };
    let out = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the load generator: {e}"))?;
    // It exits 1 when connections failed, and says how many on stdout.
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("the load generator failed ({}): {e}", out.status))
}

/// User + system CPU time of every child this process has reaped, and of
/// their reaped children in turn (getrusage RUSAGE_CHILDREN), in seconds,
/// to the microsecond.
fn reaped_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        seconds(u.user_time()) + seconds(u.system_time())
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

/// Measures one model at one client count.
fn measure(
    exe: &std::path::Path,
    spec: &CompareSpec,
    model: Model,
    clients: usize,
) -> Result<Row, String> {
    // What starting and stopping this server costs, without a client.
    let idle_cpu = {
        let before = reaped_cpu_seconds();
        let (stopped, lines) = Server::start(exe, spec, model)?.stop();
        stopped_cleanly(model, stopped, &lines)?;
        reaped_cpu_seconds() - before
    };
    let server = Server::start(exe, spec, model)?;
    let root = server.pid();
    let sampler = Sampler::start(root);
    let result = load(exe, spec, server.addr, clients);
    let peak = sampler.finish();
    // The load generator has been reaped: from here until the server is,
    // no other child of ours ends.
    let before = reaped_cpu_seconds();
    let (stopped, lines) = server.stop();
    let server_cpu = reaped_cpu_seconds() - before;
    let result = result?;
    stopped_cleanly(model, stopped, &lines)?;
    let cpu_ms = (server_cpu - idle_cpu).max(0.0) * 1000.0;
    let per_connection = |n: u64| {
        if n == 0 {
            0.0
        } else {
            cpu_ms * 1000.0 / n as f64
        }
    };
    Ok(Row {
        model: model.name().to_string(),
        clients,
        connections: result.connections,
        failed: result.failed,
        per_second: result.per_second,
        p50_ms: result.p50_us as f64 / 1000.0,
        p99_ms: result.p99_us as f64 / 1000.0,
        server_cpu_ms: cpu_ms,
        cpu_per_connection_us: per_connection(result.connections + result.failed),
        above_iterative_us: None,
        pss_peak_mib: peak.pss_bytes as f64 / (1024.0 * 1024.0),
        processes: peak.processes,
        threads: peak.threads,
        spread: Spread::of(served_counts(&lines)),
        first_error: result.first_error,
    })
}

/// Runs every row; `progress` is told of each as it starts and ends, and
/// of each row that could not be measured (which is left out: the others
/// go on).
pub fn run(spec: &CompareSpec, mut progress: impl FnMut(Progress<'_>)) -> Result<Vec<Row>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut rows = Vec::new();
    for &model in &spec.models {
        for &clients in &spec.clients {
            let what = format!("{model}, {clients} clients");
            progress(Progress::Starting(&what));
            match measure(&exe, spec, model, clients) {
                Ok(row) => rows.push(row),
                Err(why) => progress(Progress::Failed(&why)),
            }
            progress(Progress::Done);
        }
    }
    for i in 0..rows.len() {
        let baseline = rows
            .iter()
            .find(|r| r.model == Model::Iterative.name() && r.clients == rows[i].clients)
            .map(|r| r.cpu_per_connection_us);
        rows[i].above_iterative_us = baseline.map(|b| rows[i].cpu_per_connection_us - b);
    }
    Ok(rows)
}

/// What `run` reports as it goes.
pub enum Progress<'a> {
    /// A row begins.
    Starting(&'a str),
    /// The row could not be measured, and why.
    Failed(&'a str),
    /// The row is over.
    Done,
}

/// The table `compare` prints.
pub fn table(rows: &[Row]) -> String {
    let head = [
        "model",
        "clients",
        "conn/s",
        "p50 ms",
        "p99 ms",
        "CPU ms",
        "CPU/conn µs",
        "above iter. µs",
        "PSS MiB",
        "procs",
        "threads",
        "spread min/med/max (workers)",
        "failed",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.model.clone(),
                r.clients.to_string(),
                format!("{:.0}", r.per_second),
                format!("{:.3}", r.p50_ms),
                format!("{:.3}", r.p99_ms),
                format!("{:.0}", r.server_cpu_ms),
                format!("{:.1}", r.cpu_per_connection_us),
                r.above_iterative_us
                    .map_or("-".to_string(), |a| format!("{a:.1}")),
                format!("{:.1}", r.pss_peak_mib),
                r.processes.to_string(),
                r.threads.to_string(),
                format!(
                    "{}/{}/{} ({})",
                    r.spread.min, r.spread.median, r.spread.max, r.spread.workers
                ),
                r.failed.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([head[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cols: Vec<&str>| -> String {
        let padded: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                // Names left, numbers right.
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(head.to_vec())];
    for c in &cells {
        out.push(line(c.iter().map(String::as_str).collect()));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_counts() {
        let s = Spread::of(vec![5, 1, 3, 7]);
        assert_eq!(
            (s.workers, s.min, s.median, s.max, s.total),
            (4, 1, 5, 7, 16)
        );
        let none = Spread::of(Vec::new());
        assert_eq!((none.workers, none.total), (0, 0));
    }

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
