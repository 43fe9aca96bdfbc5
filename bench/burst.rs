//! burst: the client of `bench/burst`, in its own process.
//!
//! It measures how long a server makes a *burst* of clients wait for the
//! first byte of their answer, when they all arrive at once at a server
//! whose pool is small: the test of how fast a pre-fork server grows.
//!
//! `--clients` threads are started and wait on a barrier; once the last one
//! is there they all, at once:
//!
//! 1. connect to `--addr`,
//! 2. write `--send` (if given: an HTTP request line for a web server,
//!    nothing for a server that speaks first),
//! 3. read until the first byte arrives: the time from just before
//!    `connect` to here is the connection's *time to first byte* (TTFB),
//! 4. read to end of file, and check that the whole answer contains
//!    `--expect` (if given), so a server that cut a slow answer short
//!    counts as an error, not as a fast one.
//!
//! Anything that goes wrong (refused, reset, timeout, end of file before a
//! first byte, `--expect` missing) counts as an error, and the connection's
//! TTFB is left out of the percentiles. The whole burst is bounded: every
//! socket operation times out at `--timeout` seconds (default 30) after the
//! barrier opened, so the program never runs much longer than that.
//!
//! Output, one line on stdout:
//! `clients=N ok=N errors=N p50_us=N p90_us=N p99_us=N max_us=N total_ms=N`
//! where the percentiles (nearest rank) are over the TTFBs of the
//! connections that went well, and `total_ms` runs from the barrier to the
//! end of the last connection (its end of file or its error). With
//! `--ttfb-file FILE`, every good connection's TTFB in microseconds is
//! written to FILE, one per line, sorted. The first few errors are
//! reported on stderr.
//!
//! Usage: `burst --addr 127.0.0.1:PORT [--clients 64] [--send STRING]
//! [--expect STRING] [--timeout 30] [--ttfb-file FILE]`. In `--send` and
//! `--expect`, `\r`, `\n` and `\\` stand for CR, LF and a backslash.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Errors beyond this many are counted but not printed.
const ERRORS_REPORTED: usize = 5;

struct Args {
    addr: SocketAddr,
    clients: usize,
    send: Vec<u8>,
    expect: Vec<u8>,
    timeout: Duration,
    ttfb_file: Option<String>,
}

/// What one connection gave.
struct Outcome {
    /// The time to first byte, or why there was none / why it does not count.
    ttfb: Result<Duration, String>,
    /// When the connection ended (end of file or error).
    end: Instant,
}

/// `\r`, `\n`, `\\` to CR, LF, backslash; any other backslash is kept.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes().peekable();
    while let Some(b) = bytes.next() {
        if b == b'\\' {
            match bytes.peek() {
                Some(b'r') => out.push(b'\r'),
                Some(b'n') => out.push(b'\n'),
                Some(b'\\') => out.push(b'\\'),
                _ => {
                    out.push(b);
                    continue;
                }
            }
            bytes.next();
        } else {
            out.push(b);
        }
    }
    out
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut clients = 64usize;
    let mut send = Vec::new();
    let mut expect = Vec::new();
    let mut timeout = 30.0f64;
    let mut ttfb_file = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => addr = Some(value.parse().map_err(|e| bad(&e))?),
            "--clients" => clients = value.parse().map_err(|e| bad(&e))?,
            "--send" => send = unescape(&value),
            "--expect" => expect = unescape(&value),
            "--timeout" => timeout = value.parse().map_err(|e| bad(&e))?,
            "--ttfb-file" => ttfb_file = Some(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let addr = addr.ok_or("--addr is required")?;
    if clients == 0 {
        return Err("--clients must be positive".into());
    }
    let timeout =
        Duration::try_from_secs_f64(timeout).map_err(|e| format!("--timeout {timeout}: {e}"))?;
    if timeout.is_zero() {
        return Err("--timeout must be positive".into());
    }
    Ok(Args {
        addr,
        clients,
        send,
        expect,
        timeout,
        ttfb_file,
    })
}

/// The time left until `deadline`, as a socket timeout (never zero, which
/// would mean "no timeout"), or a TimedOut error once it has passed.
fn left(deadline: Instant) -> io::Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if d >= Duration::from_millis(1) => Ok(d),
        _ => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the burst's time is up",
        )),
    }
}

/// Reads once into `buf`, retrying on EINTR, within `deadline`.
fn read_some(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    loop {
        stream.set_read_timeout(Some(left(deadline)?))?;
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
            }
            other => return other,
        }
    }
}

/// One connection of the burst: its time to first byte, after checking
/// the whole answer.
fn one_connection(args: &Args, deadline: Instant) -> Result<Duration, String> {
    let start = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&args.addr, left(deadline).map_err(|e| e.to_string())?)
            .map_err(|e| format!("connect: {e}"))?;
    if !args.send.is_empty() {
        stream
            .set_write_timeout(Some(left(deadline).map_err(|e| e.to_string())?))
            .and_then(|()| stream.write_all(&args.send))
            .map_err(|e| format!("write: {e}"))?;
    }
    let mut buf = [0u8; 4096];
    let n = read_some(&mut stream, &mut buf, deadline).map_err(|e| format!("first read: {e}"))?;
    let ttfb = start.elapsed();
    if n == 0 {
        return Err("end of file before a first byte".into());
    }
    let mut answer = buf[..n].to_vec();
    loop {
        match read_some(&mut stream, &mut buf, deadline) {
            Ok(0) => break,
            Ok(n) => {
                // Only the expected string is looked for: keep a bounded tail.
                answer.extend_from_slice(&buf[..n]);
                if answer.len() > 1 << 20 {
                    answer.drain(..answer.len() - (1 << 16));
                }
            }
            Err(e) => return Err(format!("read after {} bytes: {e}", answer.len())),
        }
    }
    if !args.expect.is_empty() && !answer.windows(args.expect.len()).any(|w| w == args.expect) {
        return Err(format!(
            "the answer lacks {:?}: {:?}",
            String::from_utf8_lossy(&args.expect),
            String::from_utf8_lossy(&answer[answer.len().saturating_sub(200)..])
        ));
    }
    Ok(ttfb)
}

/// The nearest-rank percentile `p` (0..=100) of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("burst: {e}");
            eprintln!(
                "usage: burst --addr 127.0.0.1:PORT [--clients 64] [--send STRING] \
                 [--expect STRING] [--timeout 30] [--ttfb-file FILE]"
            );
            return ExitCode::from(2);
        }
    };
    let barrier = Barrier::new(args.clients + 1);
    let reported = AtomicUsize::new(0);
    let mut opened = Instant::now();
    let outcomes: Vec<Outcome> = thread::scope(|s| {
        let mut handles = Vec::with_capacity(args.clients);
        for id in 0..args.clients {
            let (args, barrier, reported) = (&args, &barrier, &reported);
            let spawned =
                thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn_scoped(s, move || {
                        barrier.wait();
                        let deadline = Instant::now() + args.timeout;
                        let ttfb = one_connection(args, deadline);
                        let end = Instant::now();
                        if let Err(e) = &ttfb {
                            if reported.fetch_add(1, Ordering::Relaxed) < ERRORS_REPORTED {
                                eprintln!("burst: client {id}: {}: {e}", args.addr);
                            }
                        }
                        Outcome { ttfb, end }
                    });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The barrier waits for every client: without this one it
                    // would never open. Say so and stop before it is awaited.
                    eprintln!("burst: cannot start client thread {id}: {e}");
                    std::process::exit(1);
                }
            }
        }
        barrier.wait();
        opened = Instant::now();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| Outcome {
                    ttfb: Err("client thread panicked".into()),
                    end: Instant::now(),
                })
            })
            .collect()
    });
    let last_end = outcomes.iter().map(|o| o.end).max().unwrap_or(opened);
    let mut ttfbs: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| o.ttfb.as_ref().ok())
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .collect();
    ttfbs.sort_unstable();
    let errors = outcomes.len() - ttfbs.len();
    println!(
        "clients={} ok={} errors={} p50_us={} p90_us={} p99_us={} max_us={} total_ms={}",
        args.clients,
        ttfbs.len(),
        errors,
        percentile(&ttfbs, 50.0),
        percentile(&ttfbs, 90.0),
        percentile(&ttfbs, 99.0),
        ttfbs.last().copied().unwrap_or(0),
        last_end.saturating_duration_since(opened).as_millis(),
    );
    if let Some(path) = &args.ttfb_file {
        let text: String = ttfbs.iter().map(|t| format!("{t}\n")).collect();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("burst: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
