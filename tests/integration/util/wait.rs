//! Bounded waits: polling a condition until a deadline, and reading
//! datagrams (syslog lines, systemd notifications) until the ones wanted
//! have come. Nothing here sleeps and hopes: every wait has a limit and
//! says whether it was met. Waiting for a daemon's own log lines is
//! [`Daemon::wait_for_log`](super::Daemon::wait_for_log).

use std::os::unix::net::UnixDatagram;
use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` every millisecond until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Receives datagrams from `socket` into `got`, one string each, until
/// `done(got)` holds or `limit` passes; whether it held. Each receive
/// waits at most the socket's read timeout, so set one shorter than
/// `limit`.
pub fn receive_until(
    socket: &UnixDatagram,
    got: &mut Vec<String>,
    limit: Duration,
    mut done: impl FnMut(&[String]) -> bool,
) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        if done(got) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}
