//! What a process that cannot fork does: when it tries again, and when it
//! says so. Shared by the master's pools and by the runner of the
//! `prefork-pass` model, which forks its own children.
//!
//! When fork(2) fails (EAGAIN under `pids.max` or `RLIMIT_NPROC`, ENOMEM),
//! the next attempt is [`FIRST`] later, then twice as long after each
//! attempt that fails, up to [`MAX`]; an attempt that forked some processes
//! before it failed starts the wait at [`FIRST`] again. One line when the
//! failures start (W0005), one with their count at most every
//! [`REPORT_EVERY`] (W0009), one when all are forked again (W0015).

use std::fmt::Display;
use std::time::{Duration, Instant};

/// The wait after a first failed fork(2).
pub(crate) const FIRST: Duration = Duration::from_secs(1);

/// The longest wait between two attempts while fork(2) fails.
pub(crate) const MAX: Duration = Duration::from_secs(32);

/// While fork(2) keeps failing, a line with the count at most this often.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(10);

/// What to log about a failed fork(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    /// The first failure of a streak; the next attempt is in `retry_in`.
    Started { retry_in: Duration },
    /// `failures` more since the last line, `since` ago (at least
    /// [`REPORT_EVERY`]).
    Repeated {
        failures: u64,
        since: Duration,
        retry_in: Duration,
    },
    /// Nothing: the last line was less than [`REPORT_EVERY`] ago.
    Quiet,
}

/// A streak of failed fork(2) calls.
#[derive(Debug)]
pub(crate) struct ForkBackoff {
    since: Instant,
    failures: u64,
    unreported: u64,
    last_report: Instant,
    delay: Duration,
    retry_at: Instant,
    /// A fork succeeded since the last failure.
    progress: bool,
}

impl ForkBackoff {
    /// fork(2) failed at `now`: starts the streak in `streak`, or goes on
    /// with it. Returns what to log.
    pub(crate) fn failed(streak: &mut Option<ForkBackoff>, now: Instant) -> Report {
        let Some(f) = streak else {
            *streak = Some(ForkBackoff {
                since: now,
                failures: 1,
                unreported: 0,
                last_report: now,
                delay: FIRST,
                retry_at: now + FIRST,
                progress: false,
            });
            return Report::Started { retry_in: FIRST };
        };
        f.failures += 1;
        f.unreported += 1;
        f.delay = if f.progress {
            FIRST
        } else {
            f.delay.saturating_mul(2).min(MAX)
        };
        f.progress = false;
        f.retry_at = now + f.delay;
        let since = now.saturating_duration_since(f.last_report);
        if since < REPORT_EVERY {
            return Report::Quiet;
        }
        let failures = std::mem::take(&mut f.unreported);
        f.last_report = now;
        Report::Repeated {
            failures,
            since,
            retry_in: f.delay,
        }
    }

    /// A fork succeeded: the next failure waits [`FIRST`] again.
    pub(crate) fn forked(&mut self) {
        self.progress = true;
    }

    /// No attempt before this.
    pub(crate) fn retry_at(&self) -> Instant {
        self.retry_at
    }

    /// The streak is over: how many forks failed, over how long.
    pub(crate) fn end(self, now: Instant) -> (u64, Duration) {
        (self.failures, now.saturating_duration_since(self.since))
    }
}

/// Logs a failed fork of `service` (W0005 or W0009, or nothing above
/// debug), with `running` of `target` processes there.
pub(crate) fn log_failure(
    service: &str,
    error: &dyn Display,
    report: Report,
    running: usize,
    target: usize,
) {
    let what = if target == 1 { "worker" } else { "workers" };
    match report {
        Report::Started { retry_in } => log::error!(
            "W0005 service {service}: {error}; {running} of {target} {what} running; retrying in {} s, then doubling the wait up to {} s",
            retry_in.as_secs(),
            MAX.as_secs()
        ),
        Report::Repeated {
            failures,
            since,
            retry_in,
        } => log::warn!(
            "W0009 service {service}: {error} again: {failures} more failed attempt{} in {} s; {running} of {target} {what} running; next attempt in {} s",
            if failures == 1 { "" } else { "s" },
            since.as_secs(),
            retry_in.as_secs()
        ),
        Report::Quiet => {
            log::debug!("service {service}: {error}; {running} of {target} {what} running")
        }
    }
}

/// Logs the end of a streak (W0015): `running` processes now.
pub(crate) fn log_recovered(service: &str, (failures, over): (u64, Duration), running: usize) {
    log::info!(
        "W0015 service {service}: fork works again: {running} {} running, after {failures} failed attempt{} in {} s",
        if running == 1 { "worker" } else { "workers" },
        if failures == 1 { "" } else { "s" },
        over.as_secs()
    );
}
