//! Where messages go: stderr (in the foreground), or syslog (a daemon).
//!
//! One line per message, sent with a single write(2) or send(2), so lines
//! from the master and its workers never interleave. On stderr:
//! `preforkd[PID]: MESSAGE`; to syslog, an RFC 3164 datagram
//! `<PRI>Mmm dd hh:mm:ss preforkd[PID]: MESSAGE` on a Unix datagram socket
//! (/dev/log unless the config names another). Messages an administrator
//! may search for begin with a stable id (`W0002`, `M0001`, ...), listed in
//! preforkd(8). The `listening on` line is not a log message but part of
//! the command-line contract, printed by [`announce`] whatever the sink.
//!
//! A forked worker calls `reopen_after_fork` after closing the descriptors
//! it inherited, so it has its own connection to syslog.
//!
//! syslog is Unix only: on Windows every line goes to stderr.

use std::io::Write;
#[cfg(unix)]
use std::os::unix::net::UnixDatagram;
#[cfg(unix)]
use std::path::PathBuf;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where log lines go.
#[derive(Debug)]
enum Sink {
    Stderr,
    #[cfg(unix)]
    Syslog {
        path: PathBuf,
        facility: u8,
        socket: Option<UnixDatagram>,
    },
}

static SINK: Mutex<Sink> = Mutex::new(Sink::Stderr);

/// The syslog facilities a config may name, with their codes (RFC 3164).
pub const FACILITIES: [(&str, u8); 12] = [
    ("user", 1),
    ("daemon", 3),
    ("auth", 4),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The levels `[daemon] log_level` and `--log-level` name, least first.
pub const LEVELS: [(&str, LevelFilter); 4] = [
    ("error", LevelFilter::Error),
    ("warn", LevelFilter::Warn),
    ("info", LevelFilter::Info),
    ("debug", LevelFilter::Debug),
];

/// The level named `name`, or why not.
pub fn parse_level(name: &str) -> Result<LevelFilter, String> {
    LEVELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, level)| *level)
        .ok_or_else(|| {
            let names: Vec<&str> = LEVELS.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown log level '{name}' (expected one of: {})",
                names.join(", ")
            )
        })
}

/// The name of `level`, as `parse_level` reads it.
pub fn level_name(level: LevelFilter) -> &'static str {
    LEVELS
        .iter()
        .find(|(_, l)| *l == level)
        .map_or("info", |(n, _)| n)
}

/// Our logger: the level is log's global maximum, so that [`set_level`]
/// changes it after the logger is installed.
struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let pid = std::process::id();
        let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *sink {
            Sink::Stderr => {
                let prefix = match record.level() {
                    Level::Error => "error: ",
                    Level::Warn => "warning: ",
                    _ => "",
                };
                // Into the journal, each line at its own priority, not
                // all at info.
                let priority = if stderr_is_journal() {
                    match record.level() {
                        Level::Error => "<3>",
                        Level::Warn => "<4>",
                        Level::Info => "<6>",
                        Level::Debug | Level::Trace => "<7>",
                    }
                } else {
                    ""
                };
                write_line(&format!(
                    "{priority}preforkd[{pid}]: {prefix}{}\n",
                    record.args()
                ));
            }
            #[cfg(unix)]
            Sink::Syslog {
                path,
                facility,
                socket,
            } => {
                let severity = match record.level() {
                    Level::Error => 3,
                    Level::Warn => 4,
                    Level::Info => 6,
                    Level::Debug | Level::Trace => 7,
                };
                let t = crate::sys::time::local_now();
                const MONTHS: [&str; 12] = [
                    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec",
                ];
                let line = format!(
                    "<{}>{} {:2} {:02}:{:02}:{:02} preforkd[{pid}]: {}",
                    u16::from(*facility) * 8 + severity,
                    MONTHS[t.month.rem_euclid(12) as usize],
                    t.day,
                    t.hour,
                    t.minute,
                    t.second,
                    record.args()
                );
                if socket.is_none() {
                    *socket = connect(path);
                }
                let sent = socket
                    .as_ref()
                    .is_some_and(|s| s.send(line.as_bytes()).is_ok());
                if !sent {
                    // syslogd restarted: connect again once, then give up
                    // on this line (there is nowhere else to report it).
                    *socket = connect(path);
                    if let Some(s) = socket {
                        let _ = s.send(line.as_bytes());
                    }
                }
            }
        }
    }

    fn flush(&self) {}
}

#[cfg(unix)]
fn connect(path: &PathBuf) -> Option<UnixDatagram> {
    let socket = UnixDatagram::unbound().ok()?;
    socket.connect(path).ok()?;
    Some(socket)
}

fn write_line(line: &str) {
    // One write for the whole line; a failed write to stderr has nowhere
    // else to be reported.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Sends log messages to stderr at `level` and above. Calling it again
/// changes nothing (the first logger stays), so library users who set up
/// their own logger keep it.
pub fn init_stderr(level: LevelFilter) {
    if log::set_boxed_logger(Box::new(Logger)).is_ok() {
        log::set_max_level(level);
    }
}

/// From now on, log at `level` and above (`[daemon] log_level`, read
/// once the file is; a process forked later inherits it).
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// From now on, log to syslog through the datagram socket at `path`.
#[cfg(unix)]
pub fn use_syslog(path: PathBuf, facility: u8) {
    let socket = connect(&path);
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Sink::Syslog {
        path,
        facility,
        socket,
    };
}

/// Whether log lines go to syslog (rather than to stderr).
pub fn to_syslog() -> bool {
    #[cfg(unix)]
    {
        matches!(
            &*SINK.lock().unwrap_or_else(|e| e.into_inner()),
            Sink::Syslog { .. }
        )
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Whether log lines go to the service manager's journal: to standard
/// error, when that is the stream $JOURNAL_STREAM names.
pub fn to_journal() -> bool {
    !to_syslog() && stderr_is_journal()
}

/// Connects to syslog again (USR1, or syslogd restarted). Nothing to do on
/// stderr.
#[cfg(unix)]
pub fn reopen() {
    if let Sink::Syslog { path, socket, .. } = &mut *SINK.lock().unwrap_or_else(|e| e.into_inner())
    {
        *socket = connect(path);
    }
}

/// In a forked worker that has closed every inherited descriptor: connects
/// to syslog anew. The inherited socket object is forgotten, not dropped:
/// its descriptor is closed already, and its number may belong to another
/// file by now.
#[cfg(unix)]
pub fn reopen_after_fork() {
    if let Sink::Syslog { path, socket, .. } = &mut *SINK.lock().unwrap_or_else(|e| e.into_inner())
    {
        std::mem::forget(socket.take());
        *socket = connect(path);
    }
}

/// Prints a line of the command-line contract (`listening on ADDR`) to
/// stderr, unprefixed.
pub fn announce(line: &str) {
    write_line(&format!("{line}\n"));
}

/// Whether standard error is the journal's stream, looked at once (an
/// fstat(2) and the environment) rather than for every line: a worker
/// inherits the answer with the descriptor it is about.
#[cfg(unix)]
fn stderr_is_journal() -> bool {
    static JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *JOURNAL.get_or_init(crate::sys::daemon::stderr_is_journal)
}

/// There is no journal where there is no systemd.
#[cfg(not(unix))]
fn stderr_is_journal() -> bool {
    false
}
