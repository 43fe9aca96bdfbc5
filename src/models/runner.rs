//! What the single-process models share: the [`Runner`] a model is given
//! (its pool's spec, the socket, the worker's stop flag and scoreboard slot),
//! accepting with the stop flag in mind, serving one connection and
//! counting it, and starting threads with SIGTERM blocked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;

use super::accept::AcceptError;
use super::{
    event, fork, iterative, pool, pool_lock, pool_pass, prefork, prefork_pass, threads, Model,
};
use crate::exit::WorkerExit;
use crate::net::{Connection, Listener};
use crate::scoreboard::{Slot, State};
use crate::service::{serve_one, Handler, Service};
use crate::spec::PoolSpec;

/// What a single-process model is given: its pool's spec, the socket, and
/// the worker's stop flag and scoreboard slot.
pub(crate) struct Runner<'a> {
    pub spec: &'a PoolSpec<'a>,
    pub listener: &'a Listener,
    /// Set by SIGTERM.
    pub stop: &'static AtomicBool,
    /// The runner's scoreboard slot (its served count, for `status`).
    pub slot: &'a Slot<'a>,
}

/// Why a runner's accept loop ends.
pub(crate) enum Accepted {
    Connection(Connection),
    /// Asked to stop, or the listener was shut down.
    Stop,
    /// accept(2) cannot go on; exit with this.
    Fail(WorkerExit),
}

impl<'a> Runner<'a> {
    /// The service's name, for logs.
    pub(crate) fn name(&self) -> &'a str {
        &self.spec.name
    }

    /// What serves a connection: `None` for a datagram handler, whose
    /// pool `serve` gives the prefork model (a connection that reached a
    /// runner anyway is closed, and logged).
    pub(crate) fn handler(&self) -> Option<&'a dyn Handler> {
        let handler = self.spec.job.handler();
        if handler.is_none() {
            log::error!(
                "W0012 service {}: a datagram handler serves udp with the prefork model only",
                self.name()
            );
        }
        handler
    }

    /// The same handler as a builtin or exec service, when it is one (the
    /// thread and event models need it).
    pub(crate) fn service(&self) -> Option<&'a Service> {
        self.spec.job.service()
    }

    /// Worker processes or threads, for the models that keep a pool.
    pub(crate) fn workers(&self) -> usize {
        self.spec.settings.sizing.start()
    }

    /// Idle timeout of a connection.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.spec.settings.timeout
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The next connection, retrying what accept(2) reports as transient.
    pub(crate) fn accept(&self) -> Accepted {
        accept_until_stopped(self.listener, self.stop, self.name())
    }

    /// Serves one connection on this thread, as a worker would, and counts
    /// it on the scoreboard.
    pub(crate) fn serve(&self, conn: Connection) {
        if let Some(handler) = self.handler() {
            serve_counted(self.name(), handler, self.timeout(), self.slot, conn);
        }
    }

    /// Serves one connection on this thread, its timeout already set, and
    /// does not count it.
    pub(crate) fn serve_uncounted(&self, conn: Connection) {
        if let Some(handler) = self.handler() {
            serve_one(self.name(), || handler.handle(conn).map(|()| None));
        }
    }
}

/// Accepts on `listener` until a connection comes, `stop` is set, or
/// accept(2) fails for good. A socket another pool left non-blocking is
/// waited for in poll(2) (`prefork::accept`), not spun on.
pub(crate) fn accept_until_stopped(listener: &Listener, stop: &AtomicBool, name: &str) -> Accepted {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Accepted::Stop;
        }
        if let Some(accepted) = accepted(prefork::accept(listener), name) {
            return accepted;
        }
    }
}

/// One accept(2), for a loop that has polled the socket already (`event`,
/// `prefork-pass`): `None` when it should simply be tried again (a signal,
/// EAGAIN from a non-blocking socket whose connection another process
/// took, a connection that failed before we took it, or descriptors
/// running out, after a short pause: a runner's other connections are
/// still being served, and will free some).
pub(crate) fn accept_once(listener: &Listener, name: &str) -> Option<Accepted> {
    accepted(listener.accept(), name)
}

/// What an accept(2)'s result means for a runner (see [`accept_once`]).
fn accepted(result: Result<Connection, Errno>, name: &str) -> Option<Accepted> {
    match result {
        Ok(conn) => Some(Accepted::Connection(conn)),
        Err(e) => match AcceptError::classify(e) {
            AcceptError::Retry => None,
            AcceptError::ListenerClosed => Some(Accepted::Stop),
            AcceptError::Exhausted => {
                log::warn!("W0011 service {name}: accept: {}; retrying", e.desc());
                std::thread::sleep(Duration::from_millis(10));
                None
            }
            AcceptError::Broken => {
                log::error!("W0012 service {name}: accept: {}", e.desc());
                Some(Accepted::Fail(WorkerExit::Fatal))
            }
        },
    }
}

/// Serves `conn` with `handler` (timeout set, errors and panics logged) and
/// counts it on the scoreboard slot.
pub(crate) fn serve_counted(
    name: &str,
    handler: &dyn Handler,
    timeout: Option<Duration>,
    slot: &Slot<'_>,
    conn: Connection,
) {
    if timeout.is_some() {
        let _ = conn.set_timeout(timeout);
    }
    serve_one(name, || handler.handle(conn).map(|()| None));
    slot.add_served();
}

/// Marks the runner idle on the scoreboard (it is in its serving loop; the
/// master counts it ready) and returns the slot's count so far.
pub(crate) fn runner_ready(slot: &Slot<'_>) {
    slot.set(State::Idle);
}

/// Runs `f` with SIGTERM blocked in the calling thread, so that the threads
/// it spawns start with SIGTERM blocked (a new thread inherits its
/// creator's mask) and the stop signal is left to the thread that waits
/// for it.
pub(crate) fn with_stop_blocked<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    let mut old = SigSet::empty();
    // pthread_sigmask fails only for an invalid `how`.
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&term), Some(&mut old));
    let out = f();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    out
}

/// The builtin or exec service a thread or event model needs, or why it
/// cannot run.
pub(crate) fn service_of<'a>(runner: &Runner<'a>, model: Model) -> Result<&'a Service, WorkerExit> {
    runner.service().ok_or_else(|| {
        log::error!(
            "W0012 service {}: the {model} model serves builtins and programs only",
            runner.name()
        );
        WorkerExit::Fatal
    })
}

/// Runs a single-process model in the runner process the master forked.
pub(crate) fn run_single(model: Model, runner: &Runner<'_>) -> WorkerExit {
    match model {
        Model::Iterative => iterative::run(runner),
        Model::Fork => fork::run(runner),
        Model::PreforkPass => prefork_pass::run(runner),
        Model::Threads => threads::run(runner),
        Model::Pool => pool::run(runner),
        Model::PoolLock => pool_lock::run(runner),
        Model::PoolPass => pool_pass::run(runner),
        Model::Event => event::run(runner),
        // The process pools (`Model::is_process_pool`).
        _ => {
            log::error!(
                "W0012 service {}: {model} is not a single-process model",
                runner.name()
            );
            WorkerExit::Fatal
        }
    }
}
