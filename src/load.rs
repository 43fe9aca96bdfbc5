//! `preforkd load`: the one load generator. `compare` drives each model
//! with it, in a process of its own (its threads and its CPU time stay out
//! of the server's tree), and so do the benchmarks, `bench/run` and
//! `bench/burst`.
//!
//! Each of `clients` threads repeats, like the client of Stevens' chapter
//! 30: connect, write the request, shut its write side down, read until
//! end-of-file, and check the reply (by default the same bytes, for echo
//! or cat; any non-empty answer for an empty request, for daytime; or one
//! that contains a given string). A connection's latency runs from just
//! before connect(2) to the end-of-file, or to the first byte of the reply.
//! It stops after `connections` connections in all (or 10 minutes,
//! whichever comes first), or after a duration. Or, as a burst, every
//! client makes one connection, all at the same moment: how long a server
//! keeps a crowd waiting. Every socket operation times out (10 s by
//! default), so a stuck server cannot hang a run.
//!
//! What is not here: the command line (`preforkd load`'s flags), and what
//! the server's processes spend (measured by `compare`, which sits above
//! this module, or by the benchmarks' shell).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long a socket operation may wait, unless the spec says otherwise.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a run of `connections` may take: a server that accepts and
/// never answers would otherwise hold it 10 s per connection. What was not
/// made by then is neither counted as made nor as failed.
pub const MAX_CONNECTIONS_RUN: Duration = Duration::from_secs(600);

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// After this many connections in all.
    Connections(u64),
    /// After this long.
    Duration(Duration),
}

/// How the clients make their connections.
#[derive(Debug, Clone, Copy)]
pub enum Schedule {
    /// One after the other, each client as fast as it can, until the limit.
    Repeat(Limit),
    /// One connection per client, all started at the same moment.
    Burst,
}

/// Which replies are right.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The request's own bytes (echo, cat); anything but nothing when the
    /// request is empty (daytime).
    Echo,
    /// Any reply that contains these bytes.
    Contains(Vec<u8>),
    /// A reply of exactly this many bytes (the `work` builtin's).
    Length(usize),
}

/// Where a connection's latency ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The reply's end-of-file.
    End,
    /// The reply's first byte (the connection is still read to its end and
    /// checked).
    FirstByte,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The server.
    pub addr: SocketAddr,
    /// Concurrent clients (threads).
    pub clients: usize,
    /// How the clients connect, and when to stop.
    pub schedule: Schedule,
    /// What each connection sends.
    pub request: Vec<u8>,
    /// What it must get back.
    pub reply: Reply,
    /// Where its latency ends.
    pub until: Until,
    /// How long each connect, read and write may wait.
    pub timeout: Duration,
}

impl LoadSpec {
    /// `bytes` bytes of letters, echoed back, to the end-of-file, with the
    /// default timeout: what `compare` sends.
    pub fn echo(addr: SocketAddr, clients: usize, schedule: Schedule, bytes: usize) -> LoadSpec {
        LoadSpec {
            addr,
            clients,
            schedule,
            request: (0..bytes).map(|i| b'a' + (i % 26) as u8).collect(),
            reply: Reply::Echo,
            until: Until::End,
            timeout: IO_TIMEOUT,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Connections that completed with the right reply.
    pub connections: u64,
    /// Connections that failed (refused, reset, timed out, wrong reply).
    pub failed: u64,
    /// Wall-clock length of the run, from the moment the clients started
    /// to the end of the last connection.
    pub seconds: f64,
    /// Completed connections per second.
    pub per_second: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 90th percentile latency, microseconds.
    #[serde(default)]
    pub p90_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Slowest connection, microseconds.
    pub max_us: u64,
    /// The first failure, as the system described it.
    pub first_error: Option<String>,
    /// Every completed connection's latency in microseconds, sorted; not
    /// in the JSON.
    #[serde(skip)]
    pub latencies_us: Vec<u64>,
}

/// Runs the load and returns what it measured.
pub fn run(spec: &LoadSpec) -> LoadResult {
    let tickets = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let first_error = Mutex::new(None::<String>);
    let fail = |e: String| {
        failed.fetch_add(1, Ordering::SeqCst);
        first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    };
    // Held while the clients are started: each waits for it, so that they
    // all begin together (a burst), and from a known moment.
    let gate = RwLock::new(());
    let start = OnceLock::new();
    let begun = || *start.get_or_init(Instant::now);
    let take_ticket = |made: usize| match spec.schedule {
        Schedule::Repeat(Limit::Connections(n)) => {
            begun().elapsed() < MAX_CONNECTIONS_RUN && tickets.fetch_add(1, Ordering::SeqCst) < n
        }
        Schedule::Repeat(Limit::Duration(d)) => begun().elapsed() < d,
        Schedule::Burst => made == 0,
    };
    let mut latencies: Vec<u64> = std::thread::scope(|scope| {
        let held = gate.write().unwrap_or_else(|e| e.into_inner());
        let mut workers = Vec::new();
        for _ in 0..spec.clients.max(1) {
            let spawned = std::thread::Builder::new().spawn_scoped(scope, || {
                drop(gate.read().unwrap_or_else(|e| e.into_inner()));
                let mut mine = Vec::new();
                let mut made = 0;
                while take_ticket(made) {
                    made += 1;
                    match one_connection(spec) {
                        Ok(latency) => mine.push(latency.as_micros() as u64),
                        Err(e) => fail(e),
                    }
                }
                mine
            });
            match spawned {
                Ok(worker) => workers.push(worker),
                // The clients that could not start count as failed (in a
                // burst: their connection was never made).
                Err(e) => fail(format!("cannot start a client thread: {e}")),
            }
        }
        begun();
        drop(held);
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let seconds = begun().elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1]
    };
    LoadResult {
        connections: latencies.len() as u64,
        failed: failed.load(Ordering::SeqCst),
        seconds,
        per_second: latencies.len() as f64 / seconds.max(1e-9),
        p50_us: percentile(0.50),
        p90_us: percentile(0.90),
        p99_us: percentile(0.99),
        max_us: latencies.last().copied().unwrap_or(0),
        first_error: first_error.into_inner().unwrap_or_else(|e| e.into_inner()),
        latencies_us: latencies,
    }
}

/// One connection: request, end of request, the whole reply, checked; its
/// latency.
fn one_connection(spec: &LoadSpec) -> Result<Duration, String> {
    let began = Instant::now();
    let mut stream = TcpStream::connect_timeout(&spec.addr, spec.timeout)
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(spec.timeout))
        .and_then(|()| stream.set_write_timeout(Some(spec.timeout)))
        .map_err(|e| format!("setsockopt: {e}"))?;
    // Without Nagle's delay: the request goes out in one segment at once.
    let _ = stream.set_nodelay(true);
    stream
        .write_all(&spec.request)
        .map_err(|e| format!("write: {e}"))?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut reply = Vec::with_capacity(spec.request.len());
    let mut first_byte = None;
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                first_byte.get_or_insert_with(|| began.elapsed());
                reply.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read after {} bytes: {e}", reply.len())),
        }
    }
    let end = began.elapsed();
    let right = match &spec.reply {
        Reply::Echo if spec.request.is_empty() => !reply.is_empty(),
        Reply::Echo => reply == spec.request,
        Reply::Contains(s) => {
            !reply.is_empty() && (s.is_empty() || reply.windows(s.len()).any(|w| w == s))
        }
        Reply::Length(n) => reply.len() == *n,
    };
    match (right, spec.until, first_byte) {
        (true, Until::End, _) => Ok(end),
        (true, Until::FirstByte, Some(t)) => Ok(t),
        _ => Err(match &spec.reply {
            Reply::Contains(s) => format!(
                "wrong reply: {} bytes without {:?}",
                reply.len(),
                String::from_utf8_lossy(s)
            ),
            Reply::Echo => format!(
                "wrong reply: {} bytes for a request of {}",
                reply.len(),
                spec.request.len()
            ),
            Reply::Length(n) => format!("wrong reply: {} bytes, not {n}", reply.len()),
        }),
    }
}

impl std::fmt::Display for LoadResult {
    /// The text `preforkd load` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} connections, {} failed, in {:.2} s: {:.0} per second",
            self.connections, self.failed, self.seconds, self.per_second
        )?;
        write!(
            f,
            "latency: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.p50_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0,
            self.max_us as f64 / 1000.0
        )?;
        if let Some(e) = &self.first_error {
            write!(f, "\nfirst failure: {e}")?;
        }
        Ok(())
    }
}
