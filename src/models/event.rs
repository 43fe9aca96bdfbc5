//! `event`: one thread, non-blocking sockets, and poll(2) to learn which
//! are ready (UNP chapter 6's select server, grown up: nginx's and Node's
//! design).
//!
//! What it teaches: concurrency without processes or threads. Each
//! connection is a small state machine (what is left to send, whether the
//! client has finished), advanced whenever poll(2) says its socket is
//! ready; the only thing that waits is poll itself. An idle connection
//! costs a few hundred bytes, not a process or a stack, so one thread
//! holds thousands.
//!
//! What it costs: the handler must never block, so it cannot be an
//! ordinary blocking function: the builtins are written again here as
//! state machines, and a library handler cannot run in this model. An exec
//! service is started with the connection as its stdin and stdout and left
//! to run (it blocks in its own process); the loop reaps it. One core at
//! most, and poll(2) costs time in proportion to the number of connections
//! on every call (epoll(7) and kqueue(2) remove that cost).
//!
//! The listening socket itself is left as the master set it, blocking for
//! this model (it is shared with the master and, during a reload, with the
//! next generation's pool, which may make it non-blocking), so accept(2)
//! follows poll(2): if another process took the connection in between, a
//! blocking accept waits until the next one arrives, and a non-blocking
//! one fails with EAGAIN and the loop goes back to poll.
//!
//! System calls per connection: accept4, fcntl (non-blocking), and for each
//! readiness a poll over every connection, a read and a write; close.

use crate::service::exec::Child;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::{Accepted, Model, Runner};
use crate::exit::WorkerExit;
use crate::net::{Connection, Peer};
use crate::service::builtin::{chargen_cycle, client_went_away, daytime_text, time_since_1900};
use crate::service::stderr::Relay;
use crate::service::{Builtin, ExecSpec, Service};
use crate::sys;

/// What a builtin connection is doing.
enum Kind {
    /// Reading; `pending` is what was read and not yet sent back; `eof`
    /// once the client has finished sending.
    Echo { pending: Vec<u8>, eof: bool },
    /// Reading and throwing away.
    Discard,
    /// Sending the cycle from `at`, until the client leaves.
    Chargen { at: usize },
    /// Sending one answer from `at`, then closing (daytime, time).
    Answer { data: Vec<u8>, at: usize },
}

struct Session {
    conn: Connection,
    kind: Kind,
    /// Last progress, for the idle timeout.
    last: Instant,
}

/// What a step of a session asks for next.
enum Next {
    Read,
    Write,
    Close,
}

impl Session {
    fn new(conn: Connection, builtin: Builtin) -> Session {
        let kind = match builtin {
            Builtin::Echo => Kind::Echo {
                pending: Vec::new(),
                eof: false,
            },
            Builtin::Discard => Kind::Discard,
            Builtin::Chargen => Kind::Chargen { at: 0 },
            Builtin::Daytime => Kind::Answer {
                data: daytime_text().into_bytes(),
                at: 0,
            },
            Builtin::Time => Kind::Answer {
                data: time_since_1900().to_be_bytes().to_vec(),
                at: 0,
            },
        };
        Session {
            conn,
            kind,
            last: Instant::now(),
        }
    }

    /// What the session waits for now.
    fn wants(&self) -> Next {
        match &self.kind {
            Kind::Echo { pending, .. } if !pending.is_empty() => Next::Write,
            Kind::Echo { .. } | Kind::Discard => Next::Read,
            Kind::Chargen { .. } | Kind::Answer { .. } => Next::Write,
        }
    }

    /// Does what can be done without blocking; returns what comes next.
    fn step(&mut self, cycle: &[u8], buf: &mut [u8]) -> io::Result<Next> {
        let conn = &mut self.conn;
        let next = match &mut self.kind {
            Kind::Echo { pending, eof } => {
                if pending.is_empty() && !*eof {
                    match conn.read(buf)? {
                        0 => *eof = true,
                        n => pending.extend_from_slice(&buf[..n]),
                    }
                }
                if !pending.is_empty() {
                    let n = conn.write(pending)?;
                    pending.drain(..n);
                }
                match (pending.is_empty(), *eof) {
                    (true, true) => Next::Close,
                    (true, false) => Next::Read,
                    (false, _) => Next::Write,
                }
            }
            Kind::Discard => match conn.read(buf)? {
                0 => Next::Close,
                _ => Next::Read,
            },
            Kind::Chargen { at } => {
                let n = conn.write(&cycle[*at..])?;
                *at = (*at + n) % cycle.len();
                Next::Write
            }
            Kind::Answer { data, at } => {
                *at += conn.write(&data[*at..])?;
                if *at == data.len() {
                    Next::Close
                } else {
                    Next::Write
                }
            }
        };
        self.last = Instant::now();
        Ok(next)
    }
}

/// The event loop's state.
struct Loop<'r, 'a> {
    runner: &'r Runner<'a>,
    sessions: Vec<Session>,
    /// Programs of an exec service still running, with their clients.
    programs: Vec<(Child, Peer)>,
    /// The pipe programs write their stderr to, when it goes to the log
    /// (see `crate::service::stderr`); read in the poll loop.
    stderr: Option<Relay>,
    served: u64,
}

pub(crate) fn run(runner: &Runner<'_>) -> WorkerExit {
    let service = match super::service_of(runner, Model::Event) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    // SIGCHLD interrupts poll(2), so programs are reaped when they end.
    if let Err(e) = sys::signal::interrupt_on(Signal::SIGCHLD) {
        log::error!("W0012 service {}: cannot catch SIGCHLD: {e}", runner.name());
        return WorkerExit::Fatal;
    }
    // Thousands of connections need thousands of descriptors: take the
    // hard limit (as Go and nginx do).
    sys::process::raise_descriptor_limit();
    let stderr = match service {
        Service::Exec(_) if crate::service::stderr::wanted() => match Relay::new() {
            Ok(relay) => Some(relay),
            Err(e) => {
                log::error!("W0012 service {}: cannot make a pipe: {e}", runner.name());
                return WorkerExit::Fatal;
            }
        },
        _ => None,
    };
    let mut state = Loop {
        runner,
        sessions: Vec::new(),
        programs: Vec::new(),
        stderr,
        served: 0,
    };
    super::runner_ready(runner.slot);
    let exit = state.run(service);
    super::report_served(runner.name(), &std::process::id().to_string(), state.served);
    exit
}

impl Loop<'_, '_> {
    fn run(&mut self, service: &Service) -> WorkerExit {
        let cycle = chargen_cycle();
        let mut buf = vec![0u8; 16 * 1024];
        // Until SIGTERM, or the listener is shut down or broken; then the
        // sessions and programs in progress are finished.
        let mut accepting = true;
        let mut exit = WorkerExit::Done;
        loop {
            self.reap_programs();
            self.close_idle();
            accepting &= !self.runner.stopping();
            if !accepting && self.sessions.is_empty() && self.programs.is_empty() {
                return exit;
            }
            // The sessions, then the listener while accepting (a listener
            // shut down reports POLLHUP even when asked for nothing).
            let mut fds = Vec::with_capacity(self.sessions.len() + 1);
            for s in &self.sessions {
                let events = match s.wants() {
                    Next::Write => PollFlags::POLLOUT,
                    _ => PollFlags::POLLIN,
                };
                fds.push(PollFd::new(s.conn.as_fd(), events));
            }
            if accepting {
                fds.push(PollFd::new(self.runner.listener.as_fd(), PollFlags::POLLIN));
            }
            // Last, so the indices above stay those of the sessions and the
            // listener.
            if let Some(relay) = &self.stderr {
                fds.push(PollFd::new(relay.read_fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, self.poll_timeout()) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("W0012 service {}: poll: {e}", self.runner.name());
                    return WorkerExit::Fatal;
                }
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            let listener_ready = accepting && ready.get(self.sessions.len()) == Some(&true);
            if self.stderr.is_some() && ready.last() == Some(&true) {
                self.relay_stderr(false);
            }
            // Sessions first, from the end, so removing one does not move
            // the ones still to visit.
            for i in (0..self.sessions.len()).rev() {
                if !ready[i] {
                    continue;
                }
                match self.sessions[i].step(&cycle, &mut buf) {
                    Ok(Next::Close) => self.finish(i),
                    Ok(_) => {}
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(e) => {
                        if !client_went_away(&e) {
                            log::warn!("W0013 service {}: {e}", self.runner.name());
                        }
                        self.finish(i);
                    }
                }
            }
            if listener_ready {
                if let Some(end) = self.accept(service) {
                    accepting = false;
                    exit = end;
                }
            }
        }
    }

    /// Takes one new connection and starts serving it; `Some` when there
    /// will be no more (asked to stop, or the listener is broken).
    fn accept(&mut self, service: &Service) -> Option<WorkerExit> {
        let name = self.runner.name();
        let conn = match super::accept_once(self.runner.listener, name) {
            None => return None,
            Some(Accepted::Connection(conn)) => conn,
            Some(Accepted::Stop) => return Some(WorkerExit::Done),
            Some(Accepted::Fail(exit)) => return Some(exit),
        };
        match service {
            Service::Builtin(b) => match conn.set_nonblocking(true) {
                Ok(()) => self.sessions.push(Session::new(conn, *b)),
                Err(e) => log::warn!("W0013 service {name}: {e}"),
            },
            // The program gets the connection as it was accepted: blocking.
            Service::Exec(spec) => self.start_program(spec, conn),
        }
        None
    }

    fn start_program(&mut self, spec: &ExecSpec, conn: Connection) {
        match spec.spawn(conn, self.stderr.as_ref()) {
            Ok(started) => self.programs.push(started),
            Err(e) => {
                log::warn!("W0013 service {}: {e}", self.runner.name());
                self.runner.slot.add_served();
                self.served += 1;
            }
        }
    }

    /// A session is over: close it and count it.
    fn finish(&mut self, i: usize) {
        self.sessions.swap_remove(i);
        self.runner.slot.add_served();
        self.served += 1;
    }

    /// Reaps the programs that have ended.
    fn reap_programs(&mut self) {
        let mut i = 0;
        while i < self.programs.len() {
            match self.programs[i].0.try_wait() {
                Ok(None) => i += 1,
                ended => {
                    self.relay_stderr(true);
                    let (_, peer) = self.programs.swap_remove(i);
                    if let (Ok(Some(status)), Service::Exec(spec)) =
                        (ended, self.runner.service().expect("checked"))
                    {
                        spec.ended(&peer, status);
                    }
                    self.runner.slot.add_served();
                    self.served += 1;
                    if self.programs.is_empty() {
                        self.renew_stderr();
                    }
                }
            }
        }
    }

    /// No program runs: a new stderr pipe, so what the ended ones left
    /// behind (a background child still writing) gets EPIPE instead of
    /// filling the pipe of the programs to come.
    fn renew_stderr(&mut self) {
        if let (Some(relay), Some(Service::Exec(spec))) = (&mut self.stderr, self.runner.service())
        {
            if let Err(e) = relay.renew(&spec.name(), None) {
                log::warn!("W0013 service {}: stderr pipe: {e}", self.runner.name());
            }
        }
    }

    /// Logs the lines programs wrote to stderr, with the program's pid when
    /// only one runs (the pipe is shared); at `end` the unfinished line too.
    /// At most one budget of the pipe per call (per poll round), so a
    /// program that floods its stderr does not stall the other sessions.
    fn relay_stderr(&mut self, end: bool) {
        let (Some(relay), Some(Service::Exec(spec))) = (&mut self.stderr, self.runner.service())
        else {
            return;
        };
        let pid = match self.programs.as_slice() {
            [(child, _)] => Some(child.id()),
            _ => None,
        };
        relay.relay(&spec.name(), pid, end);
    }

    /// Closes the connections idle longer than the service's timeout.
    fn close_idle(&mut self) {
        let Some(timeout) = self.runner.timeout() else {
            return;
        };
        for i in (0..self.sessions.len()).rev() {
            if self.sessions[i].last.elapsed() >= timeout {
                log::debug!(
                    "service {}: connection idle past the timeout: closed",
                    self.runner.name()
                );
                self.finish(i);
            }
        }
    }

    /// How long poll may sleep: for ever, unless an idle timeout or a
    /// program is pending (SIGCHLD wakes it, but a signal that lands
    /// between the reaping and poll would wait for the next event).
    fn poll_timeout(&self) -> PollTimeout {
        if self.programs.is_empty() && (self.runner.timeout().is_none() || self.sessions.is_empty())
        {
            PollTimeout::NONE
        } else {
            PollTimeout::from(Duration::from_millis(100).as_millis() as u16)
        }
    }
}
