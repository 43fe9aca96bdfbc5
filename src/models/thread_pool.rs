//! What the thread pools (`pool`, `pool-lock`) share: N threads started
//! in advance, each taking connections in a loop and serving them, and the
//! main thread that waits for SIGTERM and then stops them. A pool gives
//! only how a thread takes its next connection.
//!
//! Stopping: the threads run with SIGTERM blocked, so the signal reaches
//! the main thread, asleep in sigsuspend(2). It then interrupts each
//! thread waiting for a connection with SIGURG (whose handler does
//! nothing but make a blocking call return EINTR), again every few
//! milliseconds until they have all left, since a signal can land just
//! before a thread blocks. A thread serving a connection finishes it
//! first. A thread waiting for a lock that does not return EINTR (a
//! futex) is not interrupted, but the holder is, and each thread looks at
//! the stop flag once it has the lock, so they leave one after another.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::pthread::{pthread_kill, pthread_self, Pthread};
use nix::sys::signal::{SigSet, Signal};

use super::{Accepted, Model, Runner};
use crate::exit::WorkerExit;
use crate::sys;

/// Runs a thread pool of `model`, whose threads take each connection with
/// `take` (which looks at the stop flag, and returns when a signal
/// interrupts its wait).
pub(crate) fn run(
    runner: &Runner<'_>,
    model: Model,
    take: &(dyn Fn() -> Accepted + Sync),
) -> WorkerExit {
    let service = match super::service_of(runner, model) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    if let Err(e) = sys::signal::interrupt_on(Signal::SIGURG) {
        log::error!("W0012 service {}: cannot catch SIGURG: {e}", runner.name());
        return WorkerExit::Fatal;
    }
    let threads: Mutex<Vec<Arc<PoolThread>>> = Mutex::new(Vec::new());
    let running = AtomicUsize::new(0);
    let failed = AtomicU64::new(0);
    let (stop, name, timeout, slot) = (runner.stop, runner.name(), runner.timeout(), runner.slot);
    // Each thread that leaves wakes the main thread to count again.
    let main = pthread_self();
    super::with_stop_blocked(|| {
        std::thread::scope(|scope| {
            // Kept, not dropped: a dropped handle detaches its thread, whose
            // id would then be freed when it ends.
            let mut handles = Vec::new();
            for i in 0..runner.workers().max(1) {
                let (threads, running, failed) = (&threads, &running, &failed);
                running.fetch_add(1, Ordering::SeqCst);
                let spawned = std::thread::Builder::new()
                    .name(format!("pool-{i}"))
                    .spawn_scoped(scope, move || {
                        let me = Arc::new(PoolThread {
                            id: pthread_self(),
                            waiting: AtomicBool::new(false),
                        });
                        lock(threads).push(Arc::clone(&me));
                        let mut served = 0u64;
                        loop {
                            me.waiting.store(true, Ordering::SeqCst);
                            let accepted = take();
                            me.waiting.store(false, Ordering::SeqCst);
                            match accepted {
                                Accepted::Connection(conn) => {
                                    super::serve_counted(name, service, timeout, slot, conn);
                                    served += 1;
                                }
                                Accepted::Stop => break,
                                Accepted::Fail(_) => {
                                    failed.fetch_add(1, Ordering::SeqCst);
                                    break;
                                }
                            }
                        }
                        super::report_served(name, &format!("{}/{i}", std::process::id()), served);
                        // Out of the list before leaving: never signalled
                        // again once it is gone.
                        lock(threads).retain(|t| !Arc::ptr_eq(t, &me));
                        running.fetch_sub(1, Ordering::SeqCst);
                        let _ = pthread_kill(main, Signal::SIGURG);
                    });
                match spawned {
                    Ok(handle) => handles.push(handle),
                    Err(e) => {
                        running.fetch_sub(1, Ordering::SeqCst);
                        log::error!("W0005 service {name}: cannot start thread {i}: {e}");
                    }
                }
            }
            super::runner_ready(slot);
            // Sleep until SIGTERM (blocked here, and in every pool thread)
            // or until every thread has left on its own. SIGURG is blocked
            // here too between the checks, so none is lost before the wait.
            let mut urg = SigSet::empty();
            urg.add(Signal::SIGURG);
            let _ = urg.thread_block();
            while !stop.load(Ordering::SeqCst) && running.load(Ordering::SeqCst) > 0 {
                wait_for_signal();
            }
            stop.store(true, Ordering::SeqCst);
            // Wake the threads waiting for a connection, again until they have
            // all left (a signal may land just before one blocks). A thread
            // serving a connection is left alone to finish it: a signal
            // would restart its reads' idle timeout.
            while running.load(Ordering::SeqCst) > 0 {
                for t in lock(&threads).iter() {
                    if t.waiting.load(Ordering::SeqCst) {
                        let _ = pthread_kill(t.id, Signal::SIGURG);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            for handle in handles {
                let _ = handle.join();
            }
        })
    });
    if failed.load(Ordering::SeqCst) > 0 {
        WorkerExit::Fatal
    } else {
        WorkerExit::Done
    }
}

/// A pool thread, as the main thread knows it.
struct PoolThread {
    id: Pthread,
    /// Waiting (or about to wait) for a connection.
    waiting: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// sigsuspend(2) with SIGTERM unblocked: returns once a handler has run
/// (SIGTERM's, or SIGURG's from a pool thread that left).
fn wait_for_signal() {
    let mut mask = SigSet::thread_get_mask().unwrap_or_else(|_| SigSet::empty());
    mask.remove(Signal::SIGTERM);
    mask.remove(Signal::SIGURG);
    // Returns when a handler has run (always "fails" with EINTR).
    let _ = mask.suspend();
}
