//! The child's side of signals.
//!
//! The master catches its signals through signal-hook, whose handlers write
//! to a socket pair. A forked worker inherits both the handlers and the
//! socket pair, so a signal sent to a worker would be reported to the
//! *master*. [`set_default`] is what [`super::process::fork`] runs in the
//! child to undo that; [`install_stop_flag`] is the worker's own handler.
//! The signals given a handler here are recorded ([`handled`]), so that a
//! program started by [`super::spawn`] gets them back at their default
//! before it can receive one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Bit `n`: this process installed a handler for signal `n` here.
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// The signals this process gave a handler through this module, bit `n`
/// for signal `n` (read by `spawn` on Linux; std's `Command` elsewhere
/// resets them itself).
#[cfg(target_os = "linux")]
pub fn handled() -> u64 {
    HANDLED.load(Ordering::SeqCst)
}

fn record_handler(signal: Signal) {
    HANDLED.fetch_or(1 << (signal as i32), Ordering::SeqCst);
}

/// Sets the disposition of `signal` back to the default action.
pub fn set_default(signal: Signal) {
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_DFL runs no code of ours in signal context, so
    // it cannot break any invariant; sigaction only fails for invalid
    // signals (SIGKILL, SIGSTOP), which callers do not pass.
    let _ = unsafe { nix::sys::signal::sigaction(signal, &action) };
}

/// Set by the handler [`install_stop_flag`] installs.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn record_stop(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Whether the handler [`install_stop_flag`] installed has run: in a
/// worker, a stop is pending.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Installs a handler for `signal` that only records its arrival, and
/// returns the flag it sets.
///
/// The handler is installed *without* SA_RESTART, so a blocking accept(2),
/// read(2) or write(2) in progress returns EINTR and the caller gets to look
/// at the flag.
pub fn install_stop_flag(signal: Signal) -> nix::Result<&'static AtomicBool> {
    let action = SigAction::new(
        SigHandler::Handler(record_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler performs a single atomic store, which is
    // async-signal-safe, and touches no other state.
    unsafe { nix::sys::signal::sigaction(signal, &action) }?;
    record_handler(signal);
    Ok(&STOP)
}

extern "C" fn do_nothing(_: libc::c_int) {}

/// Installs a handler for `signal` that does nothing but interrupt: a
/// blocking system call in progress returns EINTR (no SA_RESTART), so a
/// loop gets to act on it (the `fork` model reaps its children on SIGCHLD).
pub fn interrupt_on(signal: Signal) -> nix::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(do_nothing),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing at all, which is async-signal-safe.
    unsafe { nix::sys::signal::sigaction(signal, &action) }?;
    record_handler(signal);
    Ok(())
}
