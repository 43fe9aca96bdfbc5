//! `threads`: one thread per connection (UNP 30.10).
//!
//! What it teaches: the threaded twin of `fork`. The main thread accepts
//! and starts a thread for the connection; the thread serves it and ends.
//! A thread shares the process's memory, so starting one costs a stack
//! mapping and a clone(2), much less than a fork's copy of the address
//! space, which `compare` shows.
//!
//! What it costs: still a thread created and destroyed per connection, and
//! nothing bounds how many run at once. One crashing thread (a panic that
//! is not caught, a bad pointer in C) takes every connection down with it.
//!
//! System calls per connection: accept4, mmap and mprotect (the stack),
//! clone3, rt_sigprocmask, the handler's, close, munmap, exit.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Accepted, Model, Runner};
use crate::exit::WorkerExit;

pub(crate) fn run(runner: &Runner<'_>) -> WorkerExit {
    let service = match super::service_of(runner, Model::Threads) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    super::runner_ready(runner.slot);
    let served = AtomicU64::new(0);
    // The scope waits for every connection's thread before it returns.
    let exit = std::thread::scope(|scope| loop {
        match runner.accept() {
            Accepted::Connection(conn) => {
                let (served, slot, name, timeout) =
                    (&served, runner.slot, runner.name(), runner.timeout());
                let spawned = super::with_stop_blocked(|| {
                    std::thread::Builder::new().spawn_scoped(scope, move || {
                        super::serve_counted(name, service, timeout, slot, conn);
                        served.fetch_add(1, Ordering::Relaxed);
                    })
                });
                if let Err(e) = spawned {
                    // The connection went down with the closure; the next
                    // one may find memory for a thread again.
                    log::error!(
                        "W0005 service {name}: cannot start a thread: {e}; connection closed"
                    );
                }
            }
            Accepted::Stop => break WorkerExit::Done,
            Accepted::Fail(exit) => break exit,
        }
    });
    super::report_one_each(runner.name(), served.load(Ordering::Relaxed));
    exit
}
