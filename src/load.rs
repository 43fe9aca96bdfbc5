//! `preforkd load`: the load generator `compare` drives each model with,
//! in a process of its own (its threads and its CPU time stay out of the
//! server's tree).
//!
//! Each of `clients` threads repeats, like the client of Stevens' chapter
//! 30: connect, write `bytes` bytes, shut its write side down, read until
//! end-of-file, and check the reply (the same bytes for echo or cat; any
//! non-empty answer when `bytes` is 0, for daytime). A connection's latency
//! runs from just before connect(2) to the end-of-file. It stops after
//! `connections` connections in all (or 10 minutes, whichever comes
//! first), or after a duration. Every socket operation times out after
//! 10 s, so a stuck server cannot hang a run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The server.
    pub addr: SocketAddr,
    /// Concurrent clients (threads).
    pub clients: usize,
    /// When to stop.
    pub limit: Limit,
    /// Request size; the reply must be the same bytes (0: any reply).
    pub bytes: usize,
}

/// What a run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Connections that completed with the right reply.
    pub connections: u64,
    /// Connections that failed (refused, reset, timed out, wrong reply).
    pub failed: u64,
    /// Wall-clock length of the run.
    pub seconds: f64,
    /// Completed connections per second.
    pub per_second: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Slowest connection, microseconds.
    pub max_us: u64,
    /// The first failure, as the system described it.
    pub first_error: Option<String>,
}

/// Runs the load and returns what it measured.
pub fn run(spec: &LoadSpec) -> LoadResult {
    let request: Vec<u8> = (0..spec.bytes).map(|i| b'a' + (i % 26) as u8).collect();
    let tickets = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let first_error = Mutex::new(None::<String>);
    let start = Instant::now();
    let take_ticket = || match spec.limit {
        Limit::Connections(n) => {
            start.elapsed() < MAX_CONNECTIONS_RUN && tickets.fetch_add(1, Ordering::SeqCst) < n
        }
        Limit::Duration(d) => start.elapsed() < d,
    };
    let mut latencies: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..spec.clients.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while take_ticket() {
                        let began = Instant::now();
                        match one_connection(spec.addr, &request) {
                            Ok(()) => mine.push(began.elapsed().as_micros() as u64),
                            Err(e) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                first_error
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(e);
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
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
        p99_us: percentile(0.99),
        max_us: latencies.last().copied().unwrap_or(0),
        first_error: first_error.into_inner().unwrap_or_else(|e| e.into_inner()),
    }
}

/// One connection: request, end of request, the whole reply, checked.
fn one_connection(addr: SocketAddr, request: &[u8]) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("setsockopt: {e}"))?;
    // Without Nagle's delay: the request goes out in one segment at once.
    let _ = stream.set_nodelay(true);
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut reply = Vec::with_capacity(request.len());
    stream
        .read_to_end(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    match (request.is_empty(), reply.as_slice() == request) {
        (true, _) if !reply.is_empty() => Ok(()),
        (false, true) => Ok(()),
        _ => Err(format!(
            "wrong reply: {} bytes for a request of {}",
            reply.len(),
            request.len()
        )),
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
