//! `pool`: N threads created in advance, each blocking in accept(2) on the
//! shared socket (UNP 30.11 without its mutex, "each thread calls
//! accept"). Where there is no fork(2), preforkd runs the same design on
//! std alone (the Windows fallback's pool).
//!
//! What it teaches: pre-forking with threads. Nothing is created per
//! connection: the kernel wakes one thread asleep in accept(2), it serves
//! the connection and goes back to accept.
//!
//! What it costs: N thread stacks of memory, far less than N processes.
//! The threads share one address space, so one that crashes takes the
//! others down; a process pool isolates them.
//!
//! The threads are started and stopped by `thread_pool` (SIGURG
//! interrupts their accept when the runner stops).
//!
//! System calls per connection: accept4, the handler's, close: the same as
//! `prefork`.

use super::{thread_pool, Model, Runner};
use crate::exit::WorkerExit;

pub(crate) fn run(runner: &Runner<'_>) -> WorkerExit {
    let (listener, stop, name) = (runner.listener, runner.stop, runner.name());
    let take = move || super::accept_until_stopped(listener, stop, name);
    thread_pool::run(runner, Model::Pool, &take)
}
