//! How a worker tells the master why it exited: its exit status, the one
//! word of the protocol between the two, shared by both sides (the worker
//! and the models' runners exit with it, the master reads it back).

/// Why a worker exited. The values are part of the master/worker protocol
/// and listed under EXIT STATUS in preforkd(8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerExit {
    /// Finished: asked to stop, or the listener was shut down.
    Done = 0,
    /// A panic reached the top of the worker: a bug, logged where it
    /// happened. The master respawns it as it does a worker that died.
    Panicked = 70, // EX_SOFTWARE
    /// Out of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM) in accept.
    /// The master respawns it with back-off.
    Sick = 75, // EX_TEMPFAIL
    /// Cannot work at all (its setup failed, the socket is unusable). The
    /// master stops the pool instead of respawning in a loop.
    Fatal = 78, // EX_CONFIG
}

impl WorkerExit {
    /// The exit status with this meaning, if any.
    pub fn from_code(code: i32) -> Option<WorkerExit> {
        [
            WorkerExit::Done,
            WorkerExit::Panicked,
            WorkerExit::Sick,
            WorkerExit::Fatal,
        ]
        .into_iter()
        .find(|w| *w as i32 == code)
    }
}
