//! `pool-pass`: N threads created in advance; the main thread accepts and
//! hands each connection to the pool through a queue (UNP 30.12, "main
//! thread does all the accepts").
//!
//! What it teaches: the queue between an acceptor and its workers, guarded
//! by a mutex and a condition variable, as in Stevens' `clifd` array. The
//! same shape as `prefork-pass`, but passing a connection to a thread is
//! just moving a value: no descriptor passing, no system call.
//!
//! What it costs: every connection goes through the main thread and a
//! wake-up of a pool thread (a futex call), which Stevens found a little
//! slower than letting each thread accept. On stop, the connections
//! already queued are served before the threads leave.
//!
//! The queue is bounded, as Stevens' `clifd` is a fixed array: twice as
//! many slots as threads (a fixed choice, no setting). When every slot is
//! taken, the main thread waits for one before it accepts again, so
//! further clients wait in the listen queue, where the kernel bounds them
//! by the backlog, rather than in memory here. (Stevens' server quits when
//! its array overflows.) A main thread waiting for a slot sees SIGTERM
//! once a thread frees one, as the pool keeps serving meanwhile.
//!
//! System calls per connection: accept4, futex (wake a pool thread), the
//! handler's, close; a futex wait and wake more when the queue is full.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use super::{Accepted, Model, Runner};
use crate::exit::WorkerExit;
use crate::net::Connection;

/// Slots in the queue per pool thread.
const SLOTS_PER_THREAD: usize = 2;

/// The queue between the acceptor and the pool.
struct Queue {
    state: Mutex<(VecDeque<Connection>, bool)>,
    /// A connection was queued, or the queue closed.
    ready: Condvar,
    /// A slot was freed.
    room: Condvar,
    slots: usize,
}

impl Queue {
    /// Queues `conn`, waiting while every slot is taken.
    fn push(&self, conn: Connection) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.0.len() >= self.slots {
            state = self.room.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.0.push_back(conn);
        self.ready.notify_one();
    }

    /// No more connections will come: wake every thread.
    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.ready.notify_all();
    }

    /// The next connection; `None` once closed and empty.
    fn pop(&self) -> Option<Connection> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(conn) = state.0.pop_front() {
                self.room.notify_one();
                return Some(conn);
            }
            if state.1 {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

pub(crate) fn run(runner: &Runner<'_>) -> WorkerExit {
    let service = match super::service_of(runner, Model::PoolPass) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let threads = runner.workers().max(1);
    let queue = Queue {
        state: Mutex::new((VecDeque::new(), false)),
        ready: Condvar::new(),
        room: Condvar::new(),
        slots: SLOTS_PER_THREAD * threads,
    };
    let (name, timeout, slot) = (runner.name(), runner.timeout(), runner.slot);
    std::thread::scope(|scope| {
        // The pool threads never see SIGTERM: it interrupts the main
        // thread's accept(2).
        let started = super::with_stop_blocked(|| {
            let mut started = 0;
            for i in 0..threads {
                let queue = &queue;
                let spawned = std::thread::Builder::new()
                    .name(format!("pool-{i}"))
                    .spawn_scoped(scope, move || {
                        let mut served = 0u64;
                        while let Some(conn) = queue.pop() {
                            super::serve_counted(name, service, timeout, slot, conn);
                            served += 1;
                        }
                        super::report_served(name, &format!("{}/{i}", std::process::id()), served);
                    });
                match spawned {
                    Ok(_) => started += 1,
                    Err(e) => log::error!("W0005 service {name}: cannot start thread {i}: {e}"),
                }
            }
            started
        });
        // Nobody would empty the queue.
        if started == 0 {
            return WorkerExit::Fatal;
        }
        super::runner_ready(slot);
        let exit = loop {
            match runner.accept() {
                Accepted::Connection(conn) => queue.push(conn),
                Accepted::Stop => break WorkerExit::Done,
                Accepted::Fail(exit) => break exit,
            }
        };
        queue.close();
        exit
    })
}
