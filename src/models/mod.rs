//! The server designs of UNIX Network Programming, chapter 30, each a
//! [`Model`] the daemon can run a service with (`run --model`, `model =` in
//! the config), so that `preforkd compare` can measure them side by side
//! with the same handler.
//!
//! Two families:
//! - *process pools* (`prefork`, `prefork-poll`, `prefork-epoll`,
//!   `prefork-epoll-exclusive`, `prefork-lock`, `prefork-mutex`,
//!   `reuseport`): N worker processes forked and supervised by the master,
//!   each accepting for itself. Their files here hold only what differs
//!   between them: how a worker gets its next connection (`accept`: what
//!   the workers share, the acceptor each makes) and how their socket is
//!   bound (`socket`). The loop around it is the worker's.
//! - *single-process runners* (`iterative`, `fork`, `prefork-pass`,
//!   `threads`, `pool`, `pool-lock`, `pool-pass`, `event`): the master
//!   forks one process, the runner, and supervises it like a worker; the
//!   runner serves the socket its own way, with its own threads or
//!   children. The thread pools share their machinery (`thread_pool`).
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
//! runs `pool` built on std alone: threads, no signals, no master. It
//! lives with the rest of the Windows fallback, above the models.

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
pub mod pool_lock;
#[cfg(unix)]
pub mod pool_pass;
#[cfg(unix)]
pub mod prefork;
#[cfg(unix)]
pub mod prefork_epoll;
#[cfg(unix)]
pub mod prefork_epoll_exclusive;
#[cfg(unix)]
pub mod prefork_lock;
#[cfg(unix)]
pub mod prefork_mutex;
#[cfg(unix)]
pub mod prefork_pass;
#[cfg(unix)]
pub mod prefork_poll;
#[cfg(unix)]
pub mod reuseport;
#[cfg(unix)]
mod runner;
#[cfg(unix)]
pub(crate) mod socket;
#[cfg(unix)]
mod thread_pool;
#[cfg(unix)]
pub mod threads;

#[cfg(unix)]
pub(crate) use runner::*;

pub use crate::config::{Model, UnknownModel, MODELS};

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
