//! `event`: one thread, non-blocking sockets, and epoll(7) on Linux,
//! poll(2) elsewhere, to learn which are ready (UNP chapter 6's select
//! server, grown up: nginx's and Node's design).
//!
//! What it teaches: concurrency without processes or threads. Each
//! connection is a small state machine (`session`: what is left to send,
//! whether the client has finished), advanced whenever its socket is
//! ready; the only thing that waits is epoll_wait(2) or poll(2) itself. An
//! idle connection costs a few hundred bytes, not a process or a stack, so
//! one thread holds thousands.
//!
//! What it costs: the handler must never block, so it cannot be an
//! ordinary blocking function: the builtins are written again here as
//! state machines, and a library handler cannot run in this model. The
//! `work` builtin's CPU time is burnt in the loop (CPU cannot be waited
//! out), its sleep is a timer: the loop's wait ends at the earliest
//! sleeping session's deadline. An exec service is started with the
//! connection as its stdin and stdout and left to run (it blocks in its
//! own process); the loop reaps it. One core at most.
//!
//! Readiness (`readiness`): epoll on Linux, where each socket is
//! registered once, modified as its session's state changes and removed
//! before it is closed, so a wait costs in proportion to the sockets that
//! are ready; poll(2) on the other Unixes (and on Linux should epoll be
//! refused), which is given every socket at every wait and costs in
//! proportion to all of them. The runner logs which it uses, at debug
//! level, when it starts.
//!
//! The listening socket itself is left as the master set it, blocking for
//! this model (it is shared with the master and, during a reload, with the
//! next generation's pool, which may make it non-blocking), so accept(2)
//! follows the wait: if another process took the connection in between, a
//! blocking accept waits until the next one arrives, and a non-blocking
//! one fails with EAGAIN and the loop goes back to its wait.
//!
//! System calls per connection: accept4, fcntl (non-blocking), epoll_ctl
//! to add it; for each readiness a wait, a read or a write (and an
//! epoll_ctl when it turns from reading to writing); epoll_ctl to delete
//! it, close.

mod readiness;
mod session;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use self::readiness::{Interest, Readiness, Token, LISTENER, STDERR};
use self::session::{Next, Session, Sessions};
use super::{Accepted, Model, Runner};
use crate::exit::WorkerExit;
use crate::net::{Connection, Peer};
use crate::service::builtin::{chargen_cycle, client_went_away, WorkSpec};
use crate::service::exec::Child;
use crate::service::stderr::Relay;
use crate::service::{Builtin, ExecSpec, Service};
use crate::sys;

/// How often, at most, the sessions are looked over for the idle timeout,
/// and how long a wait lasts while a program runs.
const TICK: Duration = Duration::from_millis(100);

/// The event loop's state.
struct Loop<'r, 'a> {
    runner: &'r Runner<'a>,
    readiness: Readiness,
    sessions: Sessions,
    /// `work`'s sleeping sessions: when each is due, and its slot (a slot
    /// closed and taken again meanwhile is told apart by `Session::wake`).
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// When the sessions are next looked over for the idle timeout.
    idle_scan: Instant,
    /// Programs of an exec service still running, with their clients.
    programs: Vec<(Child, Peer)>,
    /// The pipe programs write their stderr to, when it goes to the log
    /// (see `crate::service::stderr`); read in the loop.
    stderr: Option<Relay>,
    served: u64,
}

pub(crate) fn run(runner: &Runner<'_>) -> WorkerExit {
    let service = match super::service_of(runner, Model::Event) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    // SIGCHLD interrupts the wait, so programs are reaped when they end.
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
    let readiness = Readiness::new();
    log::debug!(
        "service {}: the event loop waits with {}",
        runner.name(),
        readiness.name()
    );
    let mut state = Loop {
        runner,
        readiness,
        sessions: Sessions::default(),
        timers: BinaryHeap::new(),
        idle_scan: Instant::now(),
        programs: Vec::new(),
        stderr,
        served: 0,
    };
    let watched = state
        .readiness
        .add(runner.listener.as_fd(), LISTENER, Interest::Read)
        .and_then(|()| match &state.stderr {
            Some(relay) => state.readiness.add(relay.read_fd(), STDERR, Interest::Read),
            None => Ok(()),
        });
    if let Err(e) = watched {
        log::error!(
            "W0012 service {}: {}: {e}",
            runner.name(),
            state.readiness.name()
        );
        return WorkerExit::Fatal;
    }
    super::runner_ready(runner.slot);
    let exit = state.run(service);
    super::report_served(runner.name(), &std::process::id().to_string(), state.served);
    exit
}

/// What the loop keeps between sessions' steps: chargen's cycle, the read
/// buffer all sessions share, and `work`'s parameters.
struct Scratch {
    cycle: Vec<u8>,
    buf: Vec<u8>,
    work: WorkSpec,
}

impl Loop<'_, '_> {
    fn run(&mut self, service: &Service) -> WorkerExit {
        let mut scratch = Scratch {
            cycle: chargen_cycle(),
            buf: vec![0u8; 16 * 1024],
            work: match service {
                Service::Builtin(Builtin::Work(spec)) => *spec,
                _ => WorkSpec::DEFAULT,
            },
        };
        let mut ready: Vec<Token> = Vec::new();
        // Until SIGTERM, or the listener is shut down or broken; then the
        // sessions and programs in progress are finished.
        let mut accepting = true;
        let mut exit = WorkerExit::Done;
        loop {
            self.reap_programs();
            self.close_idle();
            if accepting && self.runner.stopping() {
                accepting = false;
                self.unwatch_listener();
            }
            if !accepting && self.sessions.is_empty() && self.programs.is_empty() {
                return exit;
            }
            // The listener only while accepting (a listener shut down
            // reports a hang-up even when watched for nothing).
            let listener =
                accepting.then(|| (self.runner.listener.as_fd(), LISTENER, Interest::Read));
            let stderr = self
                .stderr
                .as_ref()
                .map(|r| (r.read_fd(), STDERR, Interest::Read));
            let all = self
                .sessions
                .iter()
                .map(|(i, s)| (s.conn.as_fd(), i as Token, s.watched))
                .chain(listener)
                .chain(stderr);
            let timeout = self.wait_timeout();
            match self.readiness.wait(timeout, all, &mut ready) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!(
                        "W0012 service {}: {}: {e}",
                        self.runner.name(),
                        self.readiness.name()
                    );
                    return WorkerExit::Fatal;
                }
            }
            let mut listener_ready = false;
            for &token in &ready {
                match token {
                    LISTENER => listener_ready = accepting,
                    STDERR => self.relay_stderr(false),
                    i => self.advance(i as usize, &mut scratch),
                }
            }
            self.wake_due(&mut scratch);
            if listener_ready {
                if let Some(end) = self.accept(service) {
                    accepting = false;
                    self.unwatch_listener();
                    exit = end;
                }
            }
        }
    }

    /// Steps session `i`, ready or due, and watches it for what it waits
    /// for next.
    fn advance(&mut self, i: usize, scratch: &mut Scratch) {
        let Some(session) = self.sessions.get_mut(i) else {
            return;
        };
        match session.step(&scratch.cycle, &mut scratch.buf, &scratch.work) {
            Ok(Next::Close) => self.finish(i),
            Ok(Next::Wait) => self.rewatch(i),
            Ok(Next::Sleep(until)) => {
                self.timers.push(Reverse((until, i)));
                self.rewatch(i);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => {
                if !client_went_away(&e) {
                    log::warn!("W0013 service {}: {e}", self.runner.name());
                }
                self.finish(i);
            }
        }
    }

    /// Watches session `i` for what it now waits for, if that changed.
    fn rewatch(&mut self, i: usize) {
        let Some(session) = self.sessions.get_mut(i) else {
            return;
        };
        let interest = session.interest();
        if interest == session.watched {
            return;
        }
        match self
            .readiness
            .modify(session.conn.as_fd(), i as Token, interest)
        {
            Ok(()) => session.watched = interest,
            Err(e) => {
                log::warn!("W0013 service {}: {e}", self.runner.name());
                self.finish(i);
            }
        }
    }

    /// Wakes the sleeping sessions that are due, and lets them answer.
    fn wake_due(&mut self, scratch: &mut Scratch) {
        let now = Instant::now();
        while let Some(&Reverse((until, i))) = self.timers.peek() {
            if until > now {
                return;
            }
            self.timers.pop();
            if self.sessions.get_mut(i).is_some_and(|s| s.wake(now)) {
                // Most likely writable already: try before waiting.
                self.advance(i, scratch);
            }
        }
    }

    fn unwatch_listener(&mut self) {
        let _ = self.readiness.delete(self.runner.listener.as_fd());
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
            Service::Builtin(b) => {
                if let Err(e) = conn.set_nonblocking(true) {
                    log::warn!("W0013 service {name}: {e}");
                    return None;
                }
                let session = Session::new(conn, *b);
                let slot = self.sessions.next_slot();
                let watched =
                    self.readiness
                        .add(session.conn.as_fd(), slot as Token, session.watched);
                match watched {
                    Ok(()) => {
                        self.sessions.insert(session);
                    }
                    Err(e) => {
                        log::warn!("W0013 service {name}: {e}");
                        self.count_served();
                    }
                }
            }
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
                self.count_served();
            }
        }
    }

    /// A session is over: stop watching it, close it and count it.
    fn finish(&mut self, i: usize) {
        if let Some(session) = self.sessions.remove(i) {
            let _ = self.readiness.delete(session.conn.as_fd());
            self.count_served();
        }
    }

    /// One more connection served, on the scoreboard and in the log's count.
    fn count_served(&mut self) {
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
                    self.count_served();
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
            // The pipe changes: the old one is forgotten, the new watched.
            let _ = self.readiness.delete(relay.read_fd());
            let renewed = relay
                .renew(&spec.name(), None)
                .and_then(|()| self.readiness.add(relay.read_fd(), STDERR, Interest::Read));
            if let Err(e) = renewed {
                log::warn!("W0013 service {}: stderr pipe: {e}", self.runner.name());
            }
        }
    }

    /// Logs the lines programs wrote to stderr, with the program's pid when
    /// only one runs (the pipe is shared); at `end` the unfinished line too.
    /// At most one budget of the pipe per call (per wait), so a
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

    /// Closes the connections idle longer than the service's timeout (not
    /// those waiting for their own timer), looking them over once a
    /// [`TICK`] at most.
    fn close_idle(&mut self) {
        let Some(timeout) = self.runner.timeout() else {
            return;
        };
        let now = Instant::now();
        if now < self.idle_scan {
            return;
        }
        self.idle_scan = sys::time::after(now, TICK);
        let idle: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.sleeping() && now.duration_since(s.last) >= timeout)
            .map(|(i, _)| i)
            .collect();
        for i in idle {
            log::debug!(
                "service {}: connection idle past the timeout: closed",
                self.runner.name()
            );
            self.finish(i);
        }
    }

    /// How long the wait may last: until the first sleeping session is
    /// due; a [`TICK`] while an idle timeout or a program is pending
    /// (SIGCHLD ends the wait, but a signal that lands between the reaping
    /// and the wait would wait for the next event); else for ever.
    fn wait_timeout(&self) -> Option<Duration> {
        let ticking = !self.programs.is_empty()
            || (self.runner.timeout().is_some() && !self.sessions.is_empty());
        let tick = ticking.then_some(TICK);
        let timer = self
            .timers
            .peek()
            .map(|Reverse((until, _))| until.saturating_duration_since(Instant::now()));
        match (tick, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
