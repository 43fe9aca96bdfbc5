//! Where messages go: for now, stderr, one line per message, written with a
//! single write(2) so that lines from the master and its workers never
//! interleave.
//!
//! Format: `preforkd[PID]: MESSAGE`. Messages an administrator may search
//! for begin with a stable id (`W0002`, `M0001`, ...), listed in preforkd(8).
//! The `listening on` line is not a log message but part of the command-line
//! contract, printed by [`announce`] whatever the log level.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLog {
    level: LevelFilter,
}

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = match record.level() {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            _ => "",
        };
        write_line(&format!(
            "preforkd[{}]: {prefix}{}\n",
            std::process::id(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

fn write_line(line: &str) {
    // One write for the whole line; a failed write to stderr has nowhere
    // else to be reported.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Sends log messages to stderr at `level` and above. Calling it again only
/// changes nothing (the first logger stays), so library users who set up
/// their own logger keep it.
pub fn init_stderr(level: LevelFilter) {
    if log::set_boxed_logger(Box::new(StderrLog { level })).is_ok() {
        log::set_max_level(level);
    }
}

/// Prints a line of the command-line contract (`listening on ADDR`) to
/// stderr, unprefixed.
pub fn announce(line: &str) {
    write_line(&format!("{line}\n"));
}
