//! The server designs of UNIX Network Programming, chapter 30, each a
//! [`Model`] the daemon can run a service with (`run --model`, `model =` in
//! the config), so that `preforkd compare` can measure them side by side
//! with the same handler.
//!
//! Two families:
//! - *process pools* (`prefork`, `prefork-lock`, `reuseport`): N worker
//!   processes forked and supervised by the master, each accepting for
//!   itself. Their files here hold only what differs between them: how a
//!   worker gets its next connection (`accept`: the lock the workers
//!   share, the acceptor each makes) and how their socket is bound
//!   (`socket`). The loop around it is the worker's.
//! - *single-process runners* (`iterative`, `fork`, `prefork-pass`,
//!   `threads`, `pool`, `pool-pass`, `event`): the master forks one process,
//!   the runner, and supervises it like a worker; the runner serves the
//!   socket its own way, with its own threads or children.
//!
//! Each design lives in its own file with a module doc saying what it
//! teaches and what it costs. What is common to the runners (accepting with
//! the stop flag in mind, serving one connection, counting) is in `runner`.
//!
//! The models know neither the master nor the worker: they are given a
//! pool's spec (`crate::spec`), a socket and a scoreboard slot, and return
//! a [`WorkerExit`](crate::WorkerExit).
//!
//! All of them are Unix. Where there is no fork(2) (Windows), every service
//! runs `pool` built on std alone, [`pool_std`]: threads, no signals, no
//! master. It lives with the rest of the Windows fallback
//! (`crate::fallback`), and is re-exported here under its old name.

#[cfg(unix)]
pub(crate) mod accept;
#[cfg(unix)]
pub mod event;
#[cfg(unix)]
pub mod fork;
#[cfg(unix)]
pub mod iterative;
#[cfg(unix)]
pub mod pool;
#[cfg(unix)]
pub mod pool_pass;
// The fallback's pool, kept at its public path: the one name here that
// points up, to `fallback`.
pub use crate::fallback::pool as pool_std;
#[cfg(unix)]
pub mod prefork;
#[cfg(unix)]
pub mod prefork_lock;
#[cfg(unix)]
pub mod prefork_pass;
#[cfg(unix)]
pub mod reuseport;
#[cfg(unix)]
mod runner;
#[cfg(unix)]
pub(crate) mod socket;
#[cfg(unix)]
pub mod threads;

use std::fmt;
use std::str::FromStr;

#[cfg(unix)]
pub(crate) use runner::*;

/// A serving strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Model {
    /// One process, one connection at a time.
    Iterative,
    /// One fork per connection (inetd's `nowait`).
    Fork,
    /// N processes, each blocking in accept(2) on the shared socket.
    #[default]
    Prefork,
    /// `prefork` with a file lock around accept(2).
    PreforkLock,
    /// The parent accepts and passes each descriptor to an idle child.
    PreforkPass,
    /// A thread per connection.
    Threads,
    /// N threads, each blocking in accept(2).
    Pool,
    /// The main thread accepts and hands each connection to a pool thread.
    PoolPass,
    /// One thread, non-blocking sockets, poll(2).
    Event,
    /// One SO_REUSEPORT socket per worker process.
    Reuseport,
}

/// Every model with its name, in the order of the chapter.
pub const MODELS: [(Model, &str); 10] = [
    (Model::Iterative, "iterative"),
    (Model::Fork, "fork"),
    (Model::Prefork, "prefork"),
    (Model::PreforkLock, "prefork-lock"),
    (Model::PreforkPass, "prefork-pass"),
    (Model::Threads, "threads"),
    (Model::Pool, "pool"),
    (Model::PoolPass, "pool-pass"),
    (Model::Event, "event"),
    (Model::Reuseport, "reuseport"),
];

impl Model {
    /// The name `--model` takes.
    pub fn name(self) -> &'static str {
        MODELS
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("?", |(_, name)| name)
    }

    /// Run by the master's own workers, N processes that each accept.
    pub fn is_process_pool(self) -> bool {
        matches!(self, Model::Prefork | Model::PreforkLock | Model::Reuseport)
    }

    /// Serves a builtin or an exec service only, not a library handler:
    /// its threads share the service, or its event loop drives it.
    pub fn needs_service(self) -> bool {
        matches!(
            self,
            Model::Threads | Model::Pool | Model::PoolPass | Model::Event
        )
    }

    /// Makes use of a worker count (processes or threads).
    pub fn has_workers(self) -> bool {
        !matches!(
            self,
            Model::Iterative | Model::Fork | Model::Threads | Model::Event
        )
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownModel(pub String);

impl fmt::Display for UnknownModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = MODELS.iter().map(|(_, n)| *n).collect();
        write!(
            f,
            "unknown model '{}' (expected one of: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownModel {}

impl FromStr for Model {
    type Err = UnknownModel;

    fn from_str(s: &str) -> Result<Model, UnknownModel> {
        MODELS
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(m, _)| *m)
            .ok_or_else(|| UnknownModel(s.to_string()))
    }
}

/// Logs how many connections one worker (process or thread) served, at
/// debug level, with a stable id: `preforkd compare` adds these lines up to
/// show how the connections spread over the workers.
pub fn report_served(service: &str, worker: &str, served: u64) {
    log::debug!("W0050 service {service}: worker {worker} served {served} connections");
}

/// The same for the models that start a worker per connection (`fork`,
/// `threads`): one line for all of them, when the runner leaves, rather
/// than one per connection, which would cost them a write each.
pub fn report_one_each(service: &str, workers: u64) {
    log::debug!("W0051 service {service}: {workers} workers served 1 connection each");
}
