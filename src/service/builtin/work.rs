//! `work`: Stevens' `web_child` (UNP 30.2) with knobs, a handler that costs
//! what it is told to, the same in every model.
//!
//! The client sends one line, the decimal number of bytes it wants ended by
//! `\n` (a `\r` before it is allowed; the line is at most [`WORK_LINE`]
//! bytes). The server burns `cpu` of the thread's CPU time (a busy loop on
//! clock_gettime(2)'s `CLOCK_THREAD_CPUTIME_ID`, not the wall clock), waits
//! `sleep` (a stand-in for I/O), sends the bytes asked for and closes. A
//! line that is not a number, a number over `max`, or a client that closes
//! first: the connection is closed, nothing sent.
//!
//! The parameters follow the name: `work` alone, or
//! `work:cpu=1ms,sleep=5ms,max=1M` (durations as `--timeout` takes them,
//! sizes as `--max-memory`), each bounded: [`MAX_WORK_TIME`],
//! [`MAX_WORK_BYTES`].

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::config::{duration::parse_duration, size::parse_size};

/// The longest request line, its `\n` included: room for any number up to
/// [`MAX_WORK_BYTES`] and more.
pub const WORK_LINE: usize = 20;

/// The most `cpu` or `sleep` may be.
pub const MAX_WORK_TIME: Duration = Duration::from_secs(10);

/// The most `max` may be, and what it is unless given: 64 MiB.
pub const MAX_WORK_BYTES: u64 = 64 << 20;

/// The server's side of `work`: what each connection costs it, and the
/// most a client may ask for. (`preforkd compare --service work:bytes=N,..`
/// keeps `bytes` for its clients and gives the server the rest.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkSpec {
    /// CPU time burnt on the serving thread per connection.
    pub cpu: Duration,
    /// Time waited, after the CPU, before answering.
    pub sleep: Duration,
    /// The most bytes a client may ask for.
    pub max: u64,
}

impl WorkSpec {
    /// `work` alone: no CPU, no sleep, up to [`MAX_WORK_BYTES`].
    pub const DEFAULT: WorkSpec = WorkSpec {
        cpu: Duration::ZERO,
        sleep: Duration::ZERO,
        max: MAX_WORK_BYTES,
    };
}

impl Default for WorkSpec {
    fn default() -> Self {
        WorkSpec::DEFAULT
    }
}

impl FromStr for WorkSpec {
    type Err = String;

    /// The parameters after `work:`: `cpu=D`, `sleep=D`, `max=SIZE`,
    /// separated by commas, each at most once; an empty string is
    /// [`WorkSpec::DEFAULT`]. The error names the parameter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = WorkSpec::DEFAULT;
        if s.is_empty() {
            return Ok(spec);
        }
        let mut seen = Vec::new();
        for param in s.split(',') {
            let Some((key, value)) = param.split_once('=') else {
                return Err(format!(
                    "parameter '{param}': expected cpu=DURATION, sleep=DURATION or max=SIZE"
                ));
            };
            if seen.contains(&key) {
                return Err(format!("parameter {key}: given twice"));
            }
            seen.push(key);
            let time = |value: &str| {
                parse_duration(value).and_then(|d| {
                    if d > MAX_WORK_TIME {
                        Err(format!("{value}: at most 10s"))
                    } else {
                        Ok(d)
                    }
                })
            };
            match key {
                "cpu" => spec.cpu = time(value).map_err(|e| format!("parameter cpu: {e}"))?,
                "sleep" => spec.sleep = time(value).map_err(|e| format!("parameter sleep: {e}"))?,
                "max" => {
                    spec.max = parse_size(value)
                        .and_then(|n| {
                            if n > MAX_WORK_BYTES {
                                Err(format!("{value}: at most 64M"))
                            } else {
                                Ok(n)
                            }
                        })
                        .map_err(|e| format!("parameter max: {e}"))?
                }
                _ => {
                    return Err(format!(
                        "unknown parameter '{key}' (expected cpu, sleep or max)"
                    ))
                }
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for WorkSpec {
    /// The parameters that differ from the default, as `from_str` reads
    /// them (empty for the default).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut params = Vec::new();
        if !self.cpu.is_zero() {
            params.push(format!("cpu={}ms", self.cpu.as_millis()));
        }
        if !self.sleep.is_zero() {
            params.push(format!("sleep={}ms", self.sleep.as_millis()));
        }
        if self.max != MAX_WORK_BYTES {
            params.push(format!("max={}", self.max));
        }
        f.write_str(&params.join(","))
    }
}

/// What a read of the request line gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Not the whole line yet.
    More,
    /// The client asks for this many bytes.
    Asked(u64),
    /// The client closed, or sent a bad line or too large a number: close.
    Close,
}

/// The request line as it arrives, in a buffer of its own size (a session
/// of the event model keeps one).
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkLine {
    buf: [u8; WORK_LINE],
    len: u8,
}

impl WorkLine {
    /// One read(2) of the line (errors, EINTR and EAGAIN included, are the
    /// caller's); what follows the `\n` is ignored.
    pub fn read_from(&mut self, r: &mut impl Read, max: u64) -> io::Result<Line> {
        let start = usize::from(self.len);
        let n = r.read(&mut self.buf[start..])?;
        if n == 0 {
            return Ok(Line::Close);
        }
        let end = start + n;
        self.len = end as u8;
        match self.buf[start..end].iter().position(|&c| c == b'\n') {
            Some(i) => Ok(asked(&self.buf[..start + i], max).map_or(Line::Close, Line::Asked)),
            None if end == WORK_LINE => Ok(Line::Close),
            None => Ok(Line::More),
        }
    }
}

/// The number a request line (without its `\n`) asks for, if it is one
/// and at most `max`.
fn asked(line: &[u8], max: u64) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() || !line.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(line)
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|&n| n <= max)
}

/// What is sent: a repeating run of printable ASCII, lines of 64.
static PATTERN: [u8; 16 * 1024] = pattern();

const fn pattern() -> [u8; 16 * 1024] {
    let mut out = [0u8; 16 * 1024];
    let mut i = 0;
    while i < out.len() {
        out[i] = if i % 65 == 64 {
            b'\n'
        } else {
            b' ' + (i % 95) as u8
        };
        i += 1;
    }
    out
}

/// The answer being sent: how much is left, and where in the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkSend {
    left: u64,
    at: usize,
}

impl WorkSend {
    /// An answer of `bytes`.
    pub fn new(bytes: u64) -> WorkSend {
        WorkSend { left: bytes, at: 0 }
    }

    /// One write(2) of what is left (errors, EINTR and EAGAIN included,
    /// are the caller's): `true` once all is sent.
    pub fn write_to(&mut self, w: &mut impl Write) -> io::Result<bool> {
        if self.left == 0 {
            return Ok(true);
        }
        let chunk = (PATTERN.len() - self.at).min(self.left.min(usize::MAX as u64) as usize);
        let n = w.write(&PATTERN[self.at..self.at + chunk])?;
        if n == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        self.left -= n as u64;
        self.at = (self.at + n) % PATTERN.len();
        Ok(self.left == 0)
    }
}

/// Burns `cpu` of the calling thread's CPU time, measured by its CPU clock
/// (where there is none, Windows, by the wall clock).
pub fn burn_cpu(cpu: Duration) {
    if cpu.is_zero() {
        return;
    }
    let wall = Instant::now();
    let start = crate::sys::time::thread_cpu_time();
    let used = || match start {
        Some(start) => crate::sys::time::thread_cpu_time()
            .map_or(Duration::MAX, |now| now.saturating_sub(start)),
        None => wall.elapsed(),
    };
    let mut x = 1u64;
    while used() < cpu {
        // Some arithmetic between readings of the clock, so the loop's
        // time is mostly the thread's own, not the system call's.
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// Serves one connection, blocking: the work of every model but `event`.
pub(super) fn serve(spec: WorkSpec, conn: &mut (impl Read + Write)) -> io::Result<()> {
    let mut line = WorkLine::default();
    let bytes = loop {
        match line.read_from(conn, spec.max) {
            Ok(Line::More) => {}
            Ok(Line::Asked(n)) => break n,
            Ok(Line::Close) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    burn_cpu(spec.cpu);
    std::thread::sleep(spec.sleep);
    let mut send = WorkSend::new(bytes);
    loop {
        match send.write_to(conn) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_bounded_and_named() {
        assert_eq!("".parse::<WorkSpec>(), Ok(WorkSpec::DEFAULT));
        let spec: WorkSpec = "cpu=1ms,sleep=5ms,max=1048576".parse().unwrap();
        assert_eq!(spec.cpu, Duration::from_millis(1));
        assert_eq!(spec.sleep, Duration::from_millis(5));
        assert_eq!(spec.max, 1 << 20);
        assert_eq!(spec.to_string().parse::<WorkSpec>(), Ok(spec));
        assert_eq!("max=1M".parse::<WorkSpec>().unwrap().max, 1 << 20);
        for (bad, names) in [
            ("cpu=x", "cpu"),
            ("cpu=11s", "cpu"),
            ("sleep=10001ms", "sleep"),
            ("max=65M", "max"),
            ("max=-1", "max"),
            ("bytes=10", "bytes"),
            ("cpu=1ms,cpu=2ms", "cpu"),
            ("cpu", "cpu"),
        ] {
            let e = bad.parse::<WorkSpec>().unwrap_err();
            assert!(e.contains(names), "{bad}: {e}");
        }
        assert!("cpu=10s,sleep=10s,max=64M".parse::<WorkSpec>().is_ok());
    }

    fn line(input: &[&[u8]], max: u64) -> Line {
        let mut l = WorkLine::default();
        let mut out = Line::More;
        for part in input {
            out = l.read_from(&mut &part[..], max).unwrap();
        }
        out
    }

    #[test]
    fn request_lines() {
        assert_eq!(line(&[b"4000\n"], 10_000), Line::Asked(4000));
        assert_eq!(line(&[b"40", b"00\r\nextra"], 10_000), Line::Asked(4000));
        assert_eq!(line(&[b"40"], 10_000), Line::More);
        assert_eq!(line(&[b"40", b""], 10_000), Line::Close);
        assert_eq!(line(&[b"10001\n"], 10_000), Line::Close);
        assert_eq!(line(&[b"\n"], 10_000), Line::Close);
        assert_eq!(line(&[b"-4\n"], 10_000), Line::Close);
        assert_eq!(line(&[b"99999999999999999999999\n"], u64::MAX), Line::Close);
        assert_eq!(line(&[b"0000000000000000000"], u64::MAX), Line::More);
        assert_eq!(line(&[b"00000000000000000000"], u64::MAX), Line::Close);
    }

    #[test]
    fn answers_have_the_size_asked() {
        for bytes in [0u64, 1, 4000, 16 * 1024, 100_000] {
            let mut out = Vec::new();
            let mut send = WorkSend::new(bytes);
            while !send.write_to(&mut out).unwrap() {}
            assert_eq!(out.len() as u64, bytes);
        }
    }

    #[test]
    #[cfg(unix)]
    fn burns_the_threads_cpu_time() {
        let before = crate::sys::time::thread_cpu_time().unwrap();
        burn_cpu(Duration::from_millis(20));
        let used = crate::sys::time::thread_cpu_time().unwrap() - before;
        assert!(used >= Duration::from_millis(20), "{used:?}");
    }
}
