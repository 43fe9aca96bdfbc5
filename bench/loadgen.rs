//! loadgen: the load generator of `bench/run`, in its own process.
//!
//! It measures how many *short connections* per second a TCP echo server
//! completes, and how long each one takes. Each of `--clients` threads loops
//! until the time is up:
//!
//! 1. connect to `--addr`,
//! 2. write one line of `--bytes` bytes (the last one `\n`),
//! 3. read until the same bytes came back, and check that they match,
//! 4. close.
//!
//! A connection's latency runs from just before `connect` to just after the
//! last byte of the echo is read (the close is not included). Connections
//! started during `--warmup` are made but not counted. Anything that goes
//! wrong (refused, reset, timeout, short or wrong echo) counts as an error,
//! not a connection; every socket operation times out after 5 s, so a run
//! never outlasts warmup + duration + 5 s by much.
//!
//! Output, one line on stdout:
//! `conns=N errors=N secs=S cps=X p50_us=N p99_us=N max_us=N`
//! where `cps` is connections completed per second of the measured window
//! and the percentiles are over every counted connection. The first error
//! of each thread is reported on stderr.
//!
//! Usage: `loadgen --addr 127.0.0.1:PORT --clients C --duration SECS
//! [--warmup SECS] [--bytes 16]`

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

struct Args {
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    warmup: Duration,
    bytes: usize,
}

/// What one client thread measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let (mut clients, mut duration, mut warmup, mut bytes) = (1usize, 3.0f64, 0.5f64, 16usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => addr = Some(value.parse().map_err(|e| bad(&e))?),
            "--clients" => clients = value.parse().map_err(|e| bad(&e))?,
            "--duration" => duration = value.parse().map_err(|e| bad(&e))?,
            "--warmup" => warmup = value.parse().map_err(|e| bad(&e))?,
            "--bytes" => bytes = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let addr = addr.ok_or("--addr is required")?;
    if clients == 0 || bytes == 0 {
        return Err("--clients and --bytes must be positive".into());
    }
    let seconds = |flag: &str, secs: f64| {
        Duration::try_from_secs_f64(secs).map_err(|e| format!("{flag} {secs}: {e}"))
    };
    let duration = seconds("--duration", duration)?;
    if duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    let warmup = seconds("--warmup", warmup)?;
    Ok(Args {
        addr,
        clients,
        duration,
        warmup,
        bytes,
    })
}

/// One short connection: connect, send `line`, read it back, close.
fn one_connection(addr: &SocketAddr, line: &[u8], buf: &mut [u8]) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(line)?;
    stream.read_exact(buf)?; // UnexpectedEof on a short echo
    if buf != line {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "echo differs from the line sent",
        ));
    }
    Ok(())
}

/// The loop of one client thread, until `end`; counts only what starts after `measure_from`.
fn client(id: usize, args: &Args, measure_from: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut buf = vec![0u8; args.bytes];
    let mut line = vec![0u8; args.bytes];
    let mut seq = 0usize;
    let mut reported = false;
    loop {
        let start = Instant::now();
        if start >= end {
            return tally;
        }
        // A line that differs per client and per connection, so crossed echoes show.
        for (i, b) in line.iter_mut().enumerate() {
            *b = b'a' + ((id * 7 + seq + i) % 26) as u8;
        }
        *line.last_mut().unwrap() = b'\n';
        seq += 1;
        let result = one_connection(&args.addr, &line, &mut buf);
        let elapsed = start.elapsed();
        let counted = start >= measure_from;
        match result {
            Ok(()) if counted => tally
                .latencies_us
                .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)),
            Ok(()) => {}
            Err(e) => {
                if !reported {
                    eprintln!("loadgen: client {id}: {}: {e}", args.addr);
                    reported = true;
                }
                if counted {
                    tally.errors += 1;
                }
                // Do not spin on a server that refuses: errors are counted, not raced.
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// The nearest-rank percentile `p` (0..=100) of sorted values.
fn percentile(sorted: &[u32], p: f64) -> u32 {
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
            eprintln!("loadgen: {e}");
            eprintln!(
                "usage: loadgen --addr 127.0.0.1:PORT --clients C --duration SECS \
                 [--warmup SECS] [--bytes 16]"
            );
            return ExitCode::from(2);
        }
    };
    let measure_from = Instant::now() + args.warmup;
    let end = measure_from + args.duration;
    let tallies: Vec<Tally> = thread::scope(|s| {
        let handles: Vec<_> = (0..args.clients)
            .map(|id| {
                let args = &args;
                thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn_scoped(s, move || client(id, args, measure_from, end))
                    .expect("cannot spawn a client thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect()
    });
    // Connections finish a little after `end`; the window is the time they had to start in.
    let secs = args.duration.as_secs_f64();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let mut all: Vec<u32> = tallies.into_iter().flat_map(|t| t.latencies_us).collect();
    all.sort_unstable();
    println!(
        "conns={} errors={} secs={:.2} cps={:.1} p50_us={} p99_us={} max_us={}",
        all.len(),
        errors,
        secs,
        all.len() as f64 / secs,
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        all.last().copied().unwrap_or(0),
    );
    ExitCode::SUCCESS
}
