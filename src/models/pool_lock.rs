//! `pool-lock`: N threads created in advance that take turns in accept(2)
//! under a mutex, one thread at a time (UNP 30.11, "mutex locking to
//! protect accept").
//!
//! What it teaches: the threaded twin of `prefork-mutex`. Stevens locked
//! accept because some kernels did not allow several threads in accept(2)
//! on one socket, and others woke them all; on Linux, which wakes one
//! thread blocked in accept, the mutex only adds work, as `compare` shows
//! next to `pool`.
//!
//! What it costs: a std mutex (a futex) taken and released per connection,
//! and a futex wake of the next waiting thread when there is one; the rest
//! as `pool`. The threads are started and stopped by `thread_pool`: on
//! stop, SIGURG interrupts the thread in accept; the others leave as each
//! gets the mutex and sees the stop flag.
//!
//! System calls per connection: accept4, futex (wake the next thread
//! waiting for the mutex), the handler's, close.

use std::sync::Mutex;

use super::{thread_pool, Model, Runner};
use crate::exit::WorkerExit;

pub(crate) fn run(runner: &Runner<'_>) -> WorkerExit {
    let accepting = Mutex::new(());
    let (listener, stop, name) = (runner.listener, runner.stop, runner.name());
    let take = || {
        // Nothing is guarded but the turn: a thread that panicked with it
        // (it cannot, in accept) leaves it usable.
        let _turn = accepting.lock().unwrap_or_else(|e| e.into_inner());
        super::accept_until_stopped(listener, stop, name)
    };
    thread_pool::run(runner, Model::PoolLock, &take)
}
