//! `fork`: one child process per connection (UNP 30.5; inetd's `nowait`).
//!
//! What it teaches: the classic concurrent server. The parent accepts,
//! forks, closes its copy of the connection and goes back to accept; the
//! child closes the listener, serves, and exits. The parent reaps its
//! children as SIGCHLD interrupts accept(2).
//!
//! What it costs: a fork and an exit per connection (copying page tables,
//! then tearing them down), which `compare` shows as the largest CPU per
//! connection of all the designs: Stevens' reason for pre-forking. Nothing
//! bounds the number of children but the system's limits.
//!
//! System calls per connection: accept4, fork (clone), close in the parent;
//! close, the handler's reads and writes, exit in the child; wait4.

use nix::sys::signal::Signal;

use std::time::Duration;

use super::{Accepted, Runner};
use crate::exit::WorkerExit;
use crate::sys;
use crate::sys::process::Fork;

pub(crate) fn run(runner: &Runner<'_>) -> WorkerExit {
    // SIGCHLD interrupts accept(2) (its handler has no SA_RESTART), so
    // children are reaped as they end, not only when the next client comes.
    if let Err(e) = sys::signal::interrupt_on(Signal::SIGCHLD) {
        log::error!("W0012 service {}: cannot catch SIGCHLD: {e}", runner.name());
        return WorkerExit::Fatal;
    }
    super::runner_ready(runner.slot);
    let parent = sys::process::current_pid();
    let mut children = 0usize;
    let mut forked = 0u64;
    let exit = loop {
        reap(&mut children, false);
        if runner.stopping() {
            break WorkerExit::Done;
        }
        let conn = match super::accept_once(runner.listener, runner.name()) {
            None => continue,
            Some(Accepted::Connection(conn)) => conn,
            Some(Accepted::Stop) => break WorkerExit::Done,
            Some(Accepted::Fail(exit)) => break exit,
        };
        // The child keeps the stop flag's handler (a SIGTERM lets it finish
        // its connection) and gets SIGCHLD back to the default.
        match sys::process::fork(&[Signal::SIGCHLD]) {
            Ok(Fork::Child) => {
                // Like a worker, a child does not outlive a killed runner.
                let _ = sys::process::die_with_parent(parent);
                runner.serve(conn);
                let _ = std::io::Write::flush(&mut std::io::stderr());
                sys::process::exit_now(0);
            }
            Ok(Fork::Parent(_)) => {
                children += 1;
                forked += 1;
                drop(conn);
            }
            Err(e) => {
                // This client is closed; the next one may find memory or a
                // process slot free again.
                log::error!("W0005 service {}: {e}; connection closed", runner.name());
                drop(conn);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    // Let the children finish their connections (the master's graceful
    // timeout kills the whole process group if they take too long).
    reap(&mut children, true);
    super::report_one_each(runner.name(), forked);
    exit
}

/// Reaps ended children; with `all`, waits for every one.
fn reap(children: &mut usize, all: bool) {
    while *children > 0 {
        let reaped = if all {
            sys::process::reap_blocking()
        } else {
            sys::process::reap_any()
        };
        match reaped {
            Ok(Some(_)) => *children -= 1,
            Ok(None) | Err(_) => return,
        }
    }
}
