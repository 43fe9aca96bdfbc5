//! Serving without fork(2): the Windows fallback, in one place.
//!
//! Where there is no fork, `preforkd run` and `preforkd serve --foreground`
//! hand their configuration here, and every TCP service runs the `pool`
//! model on std threads ([`StdPool`](pool::StdPool)): each address of a
//! service is bound, gets its pool of `workers` threads, and is announced
//! with the same `listening on ADDR` line as on Unix. There is no master
//! process: no signals, no reload, no control socket, no scoreboard. The
//! process serves until it is ended (ctrl-c, on Windows, ends it with its
//! pools).
//!
//! What the pool cannot do is refused when the service is checked, in one
//! line a user can act on, rather than ignored: other models, UDP, `unix:`
//! addresses, privileges and limits, `argv0`, and the per-worker features
//! of the process pool.
//!
//! By concern:
//! - `serve`: a configuration served: its services checked, their
//!   addresses bound, a pool started on each and announced (compiled for
//!   Windows and for the tests);
//! - [`pool`]: the `pool` model on std alone;
//! - [`relay`]: exec services through pipes.
//!
//! Not here: the commands' Windows side (`commands/windows.rs`: `run` and
//! `serve --foreground` call `serve::start`, the rest is refused),
//! since only `commands` reads the command line; and the few OS calls the
//! portable code makes, which are `sys`'s (`sys/windows.rs`).
//!
//! Compiled for Windows and for the tests: nothing here is
//! Windows-specific, and the tests run it on Linux.

pub(crate) mod pool;
pub(crate) mod relay;
mod serve;

#[cfg(windows)]
pub(crate) use serve::start;
