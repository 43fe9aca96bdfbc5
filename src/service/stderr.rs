//! Programs' stderr: to the daemon's log, and never a terminal.
//!
//! A program's descriptor 2 is the daemon's stderr only when that is
//! neither a terminal nor thrown away: in the foreground with stderr on a
//! file, a pipe or the journal, the program writes there directly, as
//! tcpserver's do. Otherwise it gets the write end of a pipe that its
//! worker reads while it waits for the program, and each line becomes a
//! log line `service NAME: PROGRAM[PID]: LINE` (control characters
//! escaped):
//! - when the daemon logs to syslog (a detached `serve`), so the admin
//!   sees why a program failed instead of nothing (it was /dev/null);
//! - when the daemon's stderr is a terminal, so that no program, even one
//!   running as root, holds a descriptor of that terminal to inject input
//!   into with TIOCSTI.
//!
//! The pipe is made once per worker thread (the first program it runs)
//! and kept: a prefork worker runs one program at a time, so the lines
//! read while it waits are that program's. The `event` model reads its
//! pipe in its poll loop ([`Relay::read_fd`]). The wait uses a pidfd on
//! Linux; elsewhere the worker polls the pipe with a short timeout and
//! checks whether the program ended in between.

use std::cell::RefCell;
use std::io::{self, IsTerminal};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::OnceLock;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::sys;

/// A line longer than this is logged in pieces.
const LONGEST_LINE: usize = 2048;

/// Whether programs' stderr is relayed, and the service it is logged for;
/// decided once per process by [`prepare`] (or at the first program).
static SETTINGS: OnceLock<(bool, String)> = OnceLock::new();

thread_local! {
    /// This thread's relay, made for its first program and kept.
    static RELAY: RefCell<Option<Relay>> = const { RefCell::new(None) };
}

/// Decides, in a worker before it serves, whether its programs' stderr
/// goes through it (the log is syslog, or stderr is a terminal), and
/// names the service their lines are logged for.
pub fn prepare(service: &str) {
    let _ = SETTINGS.set((needed(), service.to_string()));
}

fn needed() -> bool {
    crate::log::to_syslog() || io::stderr().is_terminal()
}

fn settings() -> &'static (bool, String) {
    SETTINGS.get_or_init(|| (needed(), String::from("exec")))
}

/// Whether programs of this process get a relay instead of its stderr.
pub fn wanted() -> bool {
    settings().0
}

/// The read end of a pipe given to programs as their stderr, and the
/// part of a line read so far.
#[derive(Debug)]
pub struct Relay {
    read: OwnedFd,
    write: OwnedFd,
    line: Vec<u8>,
}

impl Relay {
    /// A new pipe.
    pub fn new() -> io::Result<Relay> {
        let (read, write) = sys::stdio::relay_pipe()?;
        Ok(Relay {
            read,
            write,
            line: Vec::new(),
        })
    }

    /// The program's end, for one program.
    pub fn program_end(&self) -> io::Result<Stdio> {
        Ok(Stdio::from(self.write.try_clone()?))
    }

    /// The end to poll for lines.
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Logs every complete line waiting in the pipe, as `program`'s (with
    /// its pid when known); at `end`, the unfinished one too.
    pub fn relay(&mut self, program: &str, pid: Option<u32>, end: bool) {
        let mut buf = [0u8; 4096];
        loop {
            match sys::stdio::read_some(&self.read, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.line.extend_from_slice(&buf[..n]);
                    self.log_lines(program, pid);
                }
                Err(_) => break, // WouldBlock: all read.
            }
        }
        if end && !self.line.is_empty() {
            let rest = std::mem::take(&mut self.line);
            log_line(program, pid, &rest);
        }
    }

    fn log_lines(&mut self, program: &str, pid: Option<u32>) {
        let mut start = 0;
        while let Some(at) = self.line[start..].iter().position(|&b| b == b'\n') {
            log_line(program, pid, &self.line[start..start + at]);
            start += at + 1;
        }
        self.line.drain(..start);
        while self.line.len() >= LONGEST_LINE {
            let piece: Vec<u8> = self.line.drain(..LONGEST_LINE).collect();
            log_line(program, pid, &piece);
        }
    }

    /// Waits for `child`, logging its stderr lines as they come. Without
    /// a pidfd (not Linux, or a kernel before 5.3) it polls the pipe with a
    /// timeout of 100 ms and looks whether the program ended in between;
    /// if poll(2) itself fails, it stops relaying and just waits.
    pub fn wait(&mut self, child: &mut Child, program: &str) -> io::Result<ExitStatus> {
        let pid = child.id();
        #[cfg(target_os = "linux")]
        let ended = sys::stdio::child_ended_fd(pid).ok();
        #[cfg(not(target_os = "linux"))]
        let ended: Option<OwnedFd> = None;
        loop {
            let mut fds = vec![PollFd::new(self.read.as_fd(), PollFlags::POLLIN)];
            let timeout = match &ended {
                Some(fd) => {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    PollTimeout::NONE
                }
                None => PollTimeout::from(100u8),
            };
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
            let done = match ended {
                Some(_) => fds[1].revents().is_some_and(|r| !r.is_empty()),
                None => false,
            };
            drop(fds);
            self.relay(program, Some(pid), false);
            if done || (ended.is_none() && child.try_wait()?.is_some()) {
                break;
            }
        }
        self.relay(program, Some(pid), true);
        child.wait()
    }
}

/// One line of a program's stderr, as a log line.
fn log_line(program: &str, pid: Option<u32>, bytes: &[u8]) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    let mut clean = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            clean.extend(c.escape_default());
        } else {
            clean.push(c);
        }
    }
    let service = &settings().1;
    match pid {
        Some(pid) => log::info!("service {service}: {program}[{pid}]: {clean}"),
        None => log::info!("service {service}: {program}: {clean}"),
    }
}

/// Runs `f` with this thread's relay (made now if this is its first
/// program), or with None when programs keep the daemon's stderr.
pub fn with_relay<T>(f: impl FnOnce(Option<&mut Relay>) -> io::Result<T>) -> io::Result<T> {
    if !wanted() {
        return f(None);
    }
    RELAY.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Relay::new()?);
        }
        f(slot.as_mut())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_long_ones_cut() {
        let mut relay = Relay::new().unwrap();
        relay.line = b"one\ntwo\nthr".to_vec();
        relay.log_lines("p", Some(1));
        assert_eq!(relay.line, b"thr");
        relay.line = vec![b'x'; LONGEST_LINE * 2 + 3];
        relay.log_lines("p", Some(1));
        assert_eq!(relay.line.len(), 3);
    }
}
