//! `preforkd compare`: runs each model as a real `preforkd run` child on a
//! loopback port, drives it with `preforkd load` in a process of its own,
//! and measures the server's whole process tree meanwhile.
//!
//! Figures that hold from run to run: a discarded warm-up round, then
//! `repeat` rounds, each of which measures every cell (a model at a
//! client count) once, in an order shuffled anew for each round, so that
//! a slow minute of the machine lands on different cells each time. A
//! cell's figure is the median of its rounds, with their range beside it
//! ([`Stat`]); the cost above `iterative` is taken round by round (each
//! round's own `iterative` at the same client count), so that what the
//! machine did in that round cancels out, and a cost whose range reaches
//! zero is printed as ≈0, never as a negative cost.
//!
//! Each measurement gets a fresh server, so that what one leaves (a grown
//! pool, a warm cache) does not flatter the next, and so that the
//! per-worker counts logged as each worker leaves (W0050) belong to that
//! run alone.
//!
//! What is not here: one measurement (`measure`), the tables (`table`),
//! the SVG charts (`chart`), the page of `--html` (`html`), the /proc
//! readings (`tree`), the load generator (`crate::load`).

pub mod chart;
pub mod html;
mod measure;
mod stats;
mod table;
pub mod tree;

use serde::Serialize;

pub use stats::{Spread, Stat};
pub use table::{brief_table, footer, table, width};

use crate::load::Limit;
use crate::models::Model;
use measure::Sample;

/// What the server runs for every model.
#[derive(Debug, Clone)]
pub enum Target {
    /// A builtin, by name (with its parameters: `work:cpu=1ms`).
    Builtin(String),
    /// A program and its arguments.
    Exec(Vec<String>),
}

/// What each client sends, and what it must get back.
#[derive(Debug, Clone, Copy)]
pub enum Request {
    /// This many bytes, sent back (echo, a `cat`); 0: only read (daytime).
    Echo(usize),
    /// The number of bytes wanted, as a line; exactly that many back
    /// (the `work` builtin, Stevens' `web_child`).
    Work(usize),
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// The models, in the order of the table.
    pub models: Vec<Model>,
    /// Concurrent clients, one row per count.
    pub clients: Vec<usize>,
    /// How long each measurement's load runs.
    pub limit: Limit,
    /// Rounds measured (after the warm-up): each cell's figures are the
    /// median of this many.
    pub repeat: usize,
    /// The handler.
    pub target: Target,
    /// What the clients send.
    pub request: Request,
    /// Workers of the models that keep a pool.
    pub workers: usize,
    /// The seed of the rounds' order (printed, so a run can be repeated).
    pub seed: u64,
    /// The command line, for the settings line and the charts' subtitle.
    pub command: String,
}

/// The settings a run was made with, and the machine it ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The command line.
    pub command: String,
    /// Rounds measured.
    pub repeat: usize,
    /// Each measurement's load: "2000 connections" or "5s".
    pub limit: String,
    /// Workers of the pools.
    pub workers: usize,
    /// CPUs this process may run on.
    pub cores: usize,
    /// The kernel's name and release.
    pub kernel: String,
    /// The seed of the rounds' order.
    pub seed: u64,
}

/// How noisy the machine was, over every cell.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Noise {
    /// The median cell's half-range of server CPU per connection, µs.
    pub cpu_per_connection_us: f64,
    /// The median cell's half-range of connections per second, as a share
    /// of its median, %.
    pub per_second_percent: f64,
}

/// One row of the table: a model at a client count, over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The model's name.
    pub model: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Rounds that measured this cell.
    pub rounds: usize,
    /// Connections that completed, over all rounds.
    pub connections: u64,
    /// Connections that failed, over all rounds.
    pub failed: u64,
    /// Completed connections per second.
    pub per_second: Stat,
    /// Median latency of a connection, ms.
    pub p50_ms: Stat,
    /// 99th percentile latency, ms.
    pub p99_ms: Stat,
    /// User + system CPU of the server's tree per connection, µs.
    pub cpu_per_connection_us: Stat,
    /// The same minus the same round's `iterative` at this client count:
    /// what the model's process or thread control costs (Stevens'
    /// measure). None when `iterative` was not run.
    pub above_iterative_us: Option<Stat>,
    /// Whether that cost's range reaches zero: printed as ≈0.
    pub within_noise: bool,
    /// At least how many times this cost `fork`'s is: fork's lowest
    /// against this one's highest (None without `fork` or `iterative`).
    pub fork_times: Option<f64>,
    /// Voluntary context switches of the server's processes and threads
    /// per connection: how many of them slept and were woken, the herd
    /// included.
    pub wakeups_per_connection: Stat,
    /// Minor page faults of the server's processes per connection: the
    /// pages a fork copies on write, a thread's new stack. A count of work,
    /// so it holds from run to run where CPU time drifts with the machine.
    pub faults_per_connection: Stat,
    /// The load generator's own CPU per connection, µs.
    pub load_cpu_per_connection_us: Stat,
    /// Whether the load generator, not the server, was the bottleneck in
    /// most rounds.
    pub load_bound: bool,
    /// The most PSS the tree had at once over the rounds, MiB.
    pub pss_peak_mib: f64,
    /// Processes of the server during the median round: the master, the
    /// runner and the workers, every one that was created.
    pub processes: u64,
    /// Threads, the same way.
    pub threads: u64,
    /// How connections spread over the workers in the median round.
    pub spread: Spread,
    /// Connections each worker served in the median round, most first
    /// (Stevens' Figure 30.2); empty for the models that start a worker
    /// per connection.
    pub per_worker: Vec<u64>,
    /// Why the first failed connection failed.
    pub first_error: Option<String>,
}

/// What `compare` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How it was run.
    pub settings: Settings,
    /// How noisy the machine was.
    pub noise: Noise,
    /// One per model and client count.
    pub rows: Vec<Row>,
    /// What the reader should know before trusting a figure.
    pub warnings: Vec<String>,
}

/// What `run` reports as it goes.
pub enum Progress<'a> {
    /// A measurement begins.
    Starting(&'a str),
    /// It could not be made, and why.
    Failed(&'a str),
    /// It is over.
    Done,
}

/// Measurements `run` makes: the warm-up round, then every cell in every
/// round.
pub fn measurements(spec: &CompareSpec) -> usize {
    spec.models.len() * (1 + spec.repeat * spec.clients.len())
}

/// Runs the warm-up and the rounds; `progress` is told of each
/// measurement as it starts and ends, and of each that could not be made
/// (the others go on; a cell no round measured is left out).
pub fn run(spec: &CompareSpec, mut progress: impl FnMut(Progress<'_>)) -> Result<Report, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    // Warm-up: every model once, at the first client count, with a tenth
    // of the load; what it measures is thrown away (page cache, CPU
    // frequency, the binary's pages).
    let warm_up = match spec.limit {
        Limit::Connections(n) => Limit::Connections((n / 10).max(20)),
        Limit::Duration(d) => Limit::Duration(d / 10),
    };
    let first_clients = spec.clients.first().copied().unwrap_or(1);
    for &model in &spec.models {
        progress(Progress::Starting(&format!("{model}, warm-up")));
        let _ = measure::measure(&exe, spec, model, first_clients, warm_up);
        progress(Progress::Done);
    }
    let cells: Vec<(Model, usize)> = spec
        .models
        .iter()
        .flat_map(|&m| spec.clients.iter().map(move |&c| (m, c)))
        .collect();
    // samples[cell][round]: None where that round's measurement failed.
    let mut samples: Vec<Vec<Option<Sample>>> = vec![Vec::new(); cells.len()];
    let mut order: Vec<usize> = (0..cells.len()).collect();
    let mut rng = XorShift(spec.seed.max(1));
    for round in 0..spec.repeat {
        rng.shuffle(&mut order);
        for &cell in &order {
            let (model, clients) = cells[cell];
            let what = format!(
                "round {}/{}: {model}, {clients} clients",
                round + 1,
                spec.repeat
            );
            progress(Progress::Starting(&what));
            match measure::measure(&exe, spec, model, clients, spec.limit) {
                Ok(sample) => samples[cell].push(Some(sample)),
                Err(why) => {
                    samples[cell].push(None);
                    progress(Progress::Failed(&why));
                }
            }
            progress(Progress::Done);
        }
    }
    less_idle(&cells, &mut samples);
    Ok(report(spec, &cells, &samples))
}

/// Takes from every sample the median cost of starting and stopping its
/// model's server, over all of that model's idle runs (every client count,
/// every round): the same for each, so that one slow idle run does not
/// skew one round.
fn less_idle(cells: &[(Model, usize)], samples: &mut [Vec<Option<Sample>>]) {
    let mut models: Vec<Model> = cells.iter().map(|c| c.0).collect();
    models.dedup();
    for &model in &models {
        let idles: Vec<measure::Usage> = cells
            .iter()
            .zip(samples.iter())
            .filter(|(c, _)| c.0 == model)
            .flat_map(|(_, s)| s.iter().flatten().map(|s| s.idle))
            .collect();
        let idle = measure::Usage {
            cpu_seconds: Stat::of(idles.iter().map(|u| u.cpu_seconds)).median,
            wakeups: Stat::of(idles.iter().map(|u| u.wakeups)).median,
            faults: Stat::of(idles.iter().map(|u| u.faults)).median,
        };
        for (c, cell) in cells.iter().zip(samples.iter_mut()) {
            if c.0 == model {
                cell.iter_mut().flatten().for_each(|s| s.less_idle(idle));
            }
        }
    }
}

/// The rows, the noise and the warnings of the samples.
fn report(spec: &CompareSpec, cells: &[(Model, usize)], samples: &[Vec<Option<Sample>>]) -> Report {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = Vec::new();
    for (i, &(model, clients)) in cells.iter().enumerate() {
        let ok: Vec<&Sample> = samples[i].iter().flatten().collect();
        if ok.is_empty() {
            continue;
        }
        let above_iterative = cost_above(cells, samples, (model, clients), Model::Iterative);
        let stat = |f: &dyn Fn(&Sample) -> f64| Stat::of(ok.iter().map(|s| f(s)));
        let cpu = stat(&|s| s.cpu_per_connection_us());
        // The round whose CPU per connection is nearest the median.
        let median_round = ok
            .iter()
            .min_by(|a, b| {
                let d = |s: &Sample| (s.cpu_per_connection_us() - cpu.median).abs();
                d(a).total_cmp(&d(b))
            })
            .copied()
            .unwrap_or(ok[0]);
        let load_bound_rounds = ok
            .iter()
            .filter(|s| {
                let wall_ms = s.load.seconds * 1000.0;
                s.load_cpu_ms > s.server_cpu_ms
                    && wall_ms > 0.0
                    && (s.load_cpu_ms + s.server_cpu_ms) / wall_ms >= 0.8 * cores as f64
            })
            .count();
        let load_bound = load_bound_rounds * 2 > ok.len();
        let (processes, threads) = created(model, &median_round.served);
        let one_each = matches!(model, Model::Fork | Model::Threads);
        let mut per_worker = if one_each {
            Vec::new()
        } else {
            median_round.served.clone()
        };
        per_worker.sort_unstable_by(|a, b| b.cmp(a));
        rows.push(Row {
            model: model.name().to_string(),
            clients,
            rounds: ok.len(),
            connections: ok.iter().map(|s| s.load.connections).sum(),
            failed: ok.iter().map(|s| s.load.failed).sum(),
            per_second: stat(&|s| s.load.per_second),
            p50_ms: stat(&|s| s.load.p50_us as f64 / 1000.0),
            p99_ms: stat(&|s| s.load.p99_us as f64 / 1000.0),
            cpu_per_connection_us: cpu,
            above_iterative_us: above_iterative,
            within_noise: above_iterative.is_some_and(|a| a.within_noise_of_zero()),
            fork_times: None,
            wakeups_per_connection: stat(&|s| s.wakeups_per_connection()),
            faults_per_connection: stat(&|s| s.faults_per_connection()),
            load_cpu_per_connection_us: stat(&|s| s.load_cpu_per_connection_us()),
            load_bound,
            pss_peak_mib: ok.iter().map(|s| s.pss_peak_bytes).max().unwrap_or(0) as f64
                / (1024.0 * 1024.0),
            processes,
            threads,
            spread: Spread::of(&median_round.served),
            per_worker,
            first_error: ok.iter().find_map(|s| s.load.first_error.clone()),
        });
    }
    let mut warnings = Vec::new();
    if let Some(cells) = load_bound_cells(&rows) {
        warnings.push(format!(
            "the load generator, not the server, limited conn/s {cells}: it used more CPU than the server, with the {cores} cores nearly full"
        ));
    }
    let median_of = |f: &dyn Fn(&Row) -> f64| Stat::of(rows.iter().map(f)).median;
    let noise = Noise {
        cpu_per_connection_us: median_of(&|r| r.cpu_per_connection_us.half_range()),
        per_second_percent: median_of(&|r| {
            100.0 * r.per_second.half_range() / r.per_second.median.max(1e-9)
        }),
    };
    // fork's lowest against each one's highest, and never against less
    // than the machine's noise: a bound the rounds support, never
    // flattered by one lucky round or by a cost too small to measure.
    let floor = noise.cpu_per_connection_us.max(1.0);
    let fork: Vec<(usize, Stat)> = rows
        .iter()
        .filter(|r| r.model == Model::Fork.name())
        .filter_map(|r| Some((r.clients, r.above_iterative_us?)))
        .collect();
    for r in &mut rows {
        let fork = fork.iter().find(|(c, _)| *c == r.clients).map(|(_, f)| f);
        r.fork_times = match (fork, r.above_iterative_us) {
            (Some(fork), Some(mine)) => Some(
                (fork.median - fork.half_range()) / (mine.median + mine.half_range()).max(floor),
            ),
            _ => None,
        };
    }
    Report {
        settings: Settings {
            command: spec.command.clone(),
            repeat: spec.repeat,
            limit: match spec.limit {
                Limit::Connections(n) => format!("{n} connections"),
                Limit::Duration(d) => format!("{} ms", d.as_millis()),
            },
            workers: spec.workers,
            cores,
            kernel: kernel(),
            seed: spec.seed,
        },
        noise,
        rows,
        warnings,
    }
}

/// "1 client", "8 clients".
pub fn clients_text(n: usize) -> String {
    match n {
        1 => "1 client".to_string(),
        n => format!("{n} clients"),
    }
}

/// Where the load generator was the bottleneck, grouped by client count:
/// "at 8 clients for every model but fork, threads; at 64 clients for
/// pool"; None where it never was.
fn load_bound_cells(rows: &[Row]) -> Option<String> {
    let mut clients: Vec<usize> = rows.iter().map(|r| r.clients).collect();
    clients.sort_unstable();
    clients.dedup();
    let parts: Vec<String> = clients
        .into_iter()
        .filter_map(|c| {
            let at: Vec<&Row> = rows.iter().filter(|r| r.clients == c).collect();
            let names = |bound: bool| -> Vec<&str> {
                at.iter()
                    .filter(|r| r.load_bound == bound)
                    .map(|r| r.model.as_str())
                    .collect()
            };
            let (bound, free) = (names(true), names(false));
            let clients = clients_text(c);
            match (bound.len(), free.len()) {
                (0, _) => None,
                (_, 0) => Some(format!("at {clients} for every model")),
                (b, f) if b > f => Some(format!(
                    "at {clients} for every model but {}",
                    free.join(", ")
                )),
                _ => Some(format!("at {clients} for {}", bound.join(", "))),
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// What `cell` costs above `baseline` at the same client count, per
/// connection, round by round (each round against its own baseline, so
/// that what the machine did in that round cancels out).
fn cost_above(
    cells: &[(Model, usize)],
    samples: &[Vec<Option<Sample>>],
    cell: (Model, usize),
    baseline: Model,
) -> Option<Stat> {
    let at = |c: (Model, usize)| cells.iter().position(|&x| x == c);
    let mine = &samples[at(cell)?];
    let base = &samples[at((baseline, cell.1))?];
    let diffs: Vec<f64> = mine
        .iter()
        .zip(base)
        .filter_map(|(m, b)| {
            Some(m.as_ref()?.cpu_per_connection_us() - b.as_ref()?.cpu_per_connection_us())
        })
        .collect();
    (!diffs.is_empty()).then(|| Stat::of(diffs))
}

/// The processes and threads a model's server created in a run, from the
/// workers that reported (`served`, one count each) and what the model's
/// workers are: the master counts one, a runner one more.
fn created(model: Model, served: &[u64]) -> (u64, u64) {
    let workers = served.len() as u64;
    match model {
        // The master's workers, each a single-threaded process.
        Model::Prefork
        | Model::PreforkPoll
        | Model::PreforkEpoll
        | Model::PreforkEpollExclusive
        | Model::PreforkLock
        | Model::PreforkMutex
        | Model::Reuseport => (1 + workers, 1 + workers),
        // The runner serves for itself: it is the one worker.
        Model::Iterative | Model::Event => (1 + workers, 1 + workers),
        // A runner and the processes it forked.
        Model::Fork | Model::PreforkPass => (2 + workers, 2 + workers),
        // A runner and its threads.
        Model::Threads | Model::Pool | Model::PoolLock | Model::PoolPass => (2, 2 + workers),
    }
}

/// uname's system name and release, from /proc where there is one.
fn kernel() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    match (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    ) {
        (Some(os), Some(release)) => format!("{os} {release}"),
        _ => std::env::consts::OS.to_string(),
    }
}

/// A small generator for the rounds' order (xorshift64): enough to
/// shuffle, and repeatable from the printed seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fisher–Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_keeps_every_item_and_repeats_from_its_seed() {
        let mut a: Vec<u32> = (0..20).collect();
        let mut b = a.clone();
        XorShift(7).shuffle(&mut a);
        XorShift(7).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..20).collect::<Vec<_>>());
        a.sort_unstable();
        assert_eq!(a, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn created_counts_the_master_the_runner_and_the_workers() {
        assert_eq!(created(Model::Prefork, &[5, 5]), (3, 3));
        assert_eq!(created(Model::Fork, &[1, 1, 1]), (5, 5));
        assert_eq!(created(Model::Pool, &[3, 4]), (2, 4));
        assert_eq!(created(Model::Iterative, &[9]), (2, 2));
    }
}
