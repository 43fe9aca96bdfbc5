//! `iterative`: one process serves one connection at a time (UNP 30.4, the
//! baseline every other design is measured against).
//!
//! What it teaches: the loop every server starts from, accept then serve
//! then accept again. There is no process control at all, so the CPU it
//! spends per connection is the handler's own; `compare` subtracts it from
//! every other model to show what their process or thread control costs.
//!
//! What it costs: a slow client holds up everyone behind it in the listen
//! queue; one core is all it can use.
//!
//! System calls per connection: accept4, the handler's reads and writes,
//! close.

use super::{Accepted, Runner};
use crate::exit::WorkerExit;

pub(crate) fn run(runner: &Runner<'_>) -> WorkerExit {
    super::runner_ready(runner.slot);
    let mut served = 0u64;
    let exit = loop {
        match runner.accept() {
            Accepted::Connection(conn) => {
                // Busy on the scoreboard while serving, as a prefork worker:
                // the master's `timeout` watch applies, and its stop nudges
                // leave the connection alone.
                runner.slot.begin(conn.remote_addr());
                let _ = conn.set_timeout(runner.timeout());
                runner.serve_uncounted(conn);
                runner.slot.end();
                served += 1;
            }
            Accepted::Stop => break WorkerExit::Done,
            Accepted::Fail(exit) => break exit,
        }
    };
    super::report_served(runner.name(), &std::process::id().to_string(), served);
    exit
}
