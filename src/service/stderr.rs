//! Programs' stderr: to the daemon's log, and never a terminal.
//!
//! A program's descriptor 2 is the daemon's stderr only when that is a
//! plain file or pipe (in the foreground): the program writes there
//! directly, as tcpserver's do. Otherwise it gets the write end of a pipe
//! that its worker reads while it waits for the program, and each line
//! becomes a log line `service NAME: PROGRAM[PID]: LINE` (control
//! characters escaped):
//! - when the daemon logs to syslog (a detached `serve`), so the admin
//!   sees why a program failed instead of nothing (it was /dev/null);
//! - when the daemon's stderr is the journal (under systemd), so each line
//!   says which service and program wrote it, at priority info, rather
//!   than standing untagged under the master's pid;
//! - when the daemon's stderr is a terminal, so that no program, even one
//!   running as root, holds a descriptor of that terminal to inject input
//!   into with TIOCSTI.
//!
//! Each program gets a pipe of its own, made when it starts and closed
//! when its worker has waited for it ([`Relay::wait`]): the lines read
//! meanwhile are that program's, and a background child the program left
//! writing gets EPIPE rather than the next program's pipe. Each read takes at most
//! `READ_BUDGET` bytes and at most `LOG_CAP` bytes of a program are
//! logged, so a flood neither holds the worker nor fills the log. The
//! `event` model reads its shared pipe in its poll loop
//! ([`Relay::read_fd`]) and renews it when no program runs. The wait uses
//! a pidfd on Linux; elsewhere (or if poll fails) the worker polls the
//! pipe with a short timeout and checks whether the program ended in
//! between.

use std::io::{self, IsTerminal};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitStatus;
use std::sync::OnceLock;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::sys;
use crate::sys::spawn::Child;

/// A line longer than this is logged in pieces.
const LONGEST_LINE: usize = 2048;

/// Whether programs' stderr is relayed, and the service it is logged for;
/// decided once per process by [`prepare`] (or at the first program).
static SETTINGS: OnceLock<(bool, String)> = OnceLock::new();

/// Decides, in a worker before it serves, whether its programs' stderr
/// goes through it (the log is syslog or the journal, or stderr is a
/// terminal), and
/// names the service their lines are logged for.
pub fn prepare(service: &str) {
    let _ = SETTINGS.set((needed(), service.to_string()));
}

fn needed() -> bool {
    crate::log::to_syslog() || crate::log::to_journal() || io::stderr().is_terminal()
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
    /// Bytes logged since the last program ended, and bytes read but not
    /// logged since then (past [`LOG_CAP`]).
    logged: usize,
    dropped: usize,
}

/// At most this much is read from the pipe by one [`Relay::relay`], so a
/// program that keeps the pipe full cannot keep its worker from its
/// other descriptors (the program's end, other sessions).
const READ_BUDGET: usize = 64 * 1024;

/// At most this much of a program's stderr is logged (in `event`, whose
/// programs share a pipe, between two renewals of it: [`Relay::renew`]);
/// the rest is read and dropped, and counted in one line when the program
/// ends (at the renewal).
pub const LOG_CAP: usize = 256 * 1024;

impl Relay {
    /// A new pipe.
    pub fn new() -> io::Result<Relay> {
        let (read, write) = sys::stdio::relay_pipe()?;
        Ok(Relay {
            read,
            write,
            line: Vec::new(),
            logged: 0,
            dropped: 0,
        })
    }

    /// The program's end, which it gets as its stderr.
    pub fn program_fd(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }

    /// The end to poll for lines.
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Logs the complete lines waiting in the pipe, up to `READ_BUDGET`
    /// bytes, as `program`'s (with its pid when known); at `end`, the
    /// unfinished one too, and how much was dropped past [`LOG_CAP`].
    /// True when the budget ran out before the pipe was empty.
    pub fn relay(&mut self, program: &str, pid: Option<u32>, end: bool) -> bool {
        let mut buf = [0u8; 4096];
        let mut read = 0;
        let more = loop {
            if read >= READ_BUDGET {
                break true;
            }
            match sys::stdio::read_some(&self.read, &mut buf) {
                Ok(0) => break false,
                Ok(n) => {
                    read += n;
                    if self.logged >= LOG_CAP {
                        self.dropped += n;
                        continue;
                    }
                    self.line.extend_from_slice(&buf[..n]);
                    self.log_lines(program, pid);
                }
                Err(_) => break false, // WouldBlock: all read.
            }
        };
        if end && !self.line.is_empty() {
            let rest = std::mem::take(&mut self.line);
            self.log(program, pid, &rest);
        }
        more
    }

    fn log_lines(&mut self, program: &str, pid: Option<u32>) {
        let mut start = 0;
        let line = std::mem::take(&mut self.line);
        while let Some(at) = line[start..].iter().position(|&b| b == b'\n') {
            self.log(program, pid, &line[start..start + at]);
            start += at + 1;
        }
        let mut rest = &line[start..];
        while rest.len() >= LONGEST_LINE {
            self.log(program, pid, &rest[..LONGEST_LINE]);
            rest = &rest[LONGEST_LINE..];
        }
        self.line = rest.to_vec();
    }

    /// Logs one line unless the cap is reached (then counts it dropped);
    /// says so when it is reached.
    fn log(&mut self, program: &str, pid: Option<u32>, bytes: &[u8]) {
        if self.logged >= LOG_CAP {
            self.dropped += bytes.len() + 1;
            return;
        }
        self.logged += bytes.len() + 1;
        log_line(program, pid, bytes);
        if self.logged >= LOG_CAP {
            log::warn!(
                "service {}: {}: {LOG_CAP} bytes of stderr logged: the rest is dropped",
                settings().1,
                who(program, pid)
            );
        }
    }

    /// Replaces the pipe with a new one, once no program of ours holds the
    /// old one: whatever the programs left behind (a background child
    /// still writing) gets EPIPE (SIGPIPE) instead of filling the next
    /// program's pipe or having its lines logged as the next program's.
    /// Logs how much of `program`'s stderr was dropped, if any, and starts
    /// counting afresh for the next.
    pub fn renew(&mut self, program: &str, pid: Option<u32>) -> io::Result<()> {
        self.report_dropped(program, pid);
        self.logged = 0;
        self.dropped = 0;
        self.line.clear();
        let (read, write) = sys::stdio::relay_pipe()?;
        self.read = read;
        self.write = write;
        Ok(())
    }

    /// Logs how much of `program`'s stderr was dropped past [`LOG_CAP`], if
    /// any.
    fn report_dropped(&self, program: &str, pid: Option<u32>) {
        if self.dropped > 0 {
            log::warn!(
                "service {}: {}: {} bytes of stderr dropped",
                settings().1,
                who(program, pid),
                self.dropped
            );
        }
    }

    /// Waits for `child`, logging its stderr lines as they come, at most
    /// `READ_BUDGET` bytes between two looks at whether it ended. Without
    /// a pidfd (not Linux, or a kernel before 5.3), or if poll(2) fails, it
    /// polls the pipe with a timeout of 100 ms (sleeps, if poll fails) and
    /// looks whether the program ended in between. Once it has, it logs
    /// what is already in the pipe (one budget) and how much was dropped, before
    /// the worker goes back to accept.
    pub fn wait(&mut self, child: &mut Child, program: &str) -> io::Result<ExitStatus> {
        let pid = child.id();
        #[cfg(target_os = "linux")]
        let mut ended = sys::stdio::child_ended_fd(pid).ok();
        #[cfg(not(target_os = "linux"))]
        let mut ended: Option<OwnedFd> = None;
        let mut poll_works = true;
        loop {
            let mut done = false;
            if poll_works {
                let mut fds = vec![PollFd::new(self.read.as_fd(), PollFlags::POLLIN)];
                let timeout = match &ended {
                    Some(fd) => {
                        fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                        PollTimeout::NONE
                    }
                    None => PollTimeout::from(100u8),
                };
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {
                        done = fds
                            .get(1)
                            .is_some_and(|fd| fd.revents().is_some_and(|r| !r.is_empty()));
                    }
                    Err(e) => {
                        log::warn!("service {}: {program}[{pid}]: poll: {e}", settings().1);
                        poll_works = false;
                    }
                }
            }
            if !poll_works {
                ended = None;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            self.relay(program, Some(pid), false);
            if done || (ended.is_none() && child.try_wait()?.is_some()) {
                break;
            }
        }
        let status = child.wait();
        self.finish(program, Some(pid));
        status
    }

    /// Once `program` has ended: logs what is left in the pipe (one
    /// budget), its unfinished line, and how much was dropped.
    pub fn finish(&mut self, program: &str, pid: Option<u32>) {
        self.relay(program, pid, true);
        self.report_dropped(program, pid);
    }
}

/// The program a line is from: `NAME[PID]`, or `NAME`.
fn who(program: &str, pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("{program}[{pid}]"),
        None => program.to_string(),
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
