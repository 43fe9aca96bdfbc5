//! The errors a user can meet, each a closed variant whose `Display` is the
//! one line `preforkd:` prints, and whose kind decides the exit status.

use std::fmt;
use std::io;

use crate::net::AddrParseError;
use crate::service::builtin::UnknownBuiltin;
use crate::service::exec::ProgramError;
use crate::sys::fd::describe;
#[cfg(unix)]
use crate::sys::process::ForkError;

/// Everything that can stop preforkd from starting or running.
#[derive(Debug)]
pub enum Error {
    /// A command-line mistake clap did not catch.
    Usage(String),
    /// An address that does not parse.
    Address(AddrParseError),
    /// A builtin name that does not exist.
    UnknownBuiltin(UnknownBuiltin),
    /// A program that does not exist or cannot be executed.
    Program(ProgramError),
    /// bind(2) or listen(2) failed.
    Bind {
        /// The address as the user wrote it.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// Something the master needs at startup failed.
    Startup {
        /// What could not be done.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The master could not fork.
    #[cfg(unix)]
    Fork(ForkError),
    /// The config file cannot be read or is wrong.
    Config(crate::config::ConfigError),
    /// Another daemon holds the pidfile's lock.
    AlreadyRunning {
        /// The pidfile.
        pidfile: std::path::PathBuf,
        /// The pid it names, if it can be read.
        pid: Option<u32>,
    },
    /// The pidfile cannot be created or written.
    Pidfile {
        /// Its path.
        path: std::path::PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The pidfile, or its directory, could be changed by another user.
    UnsafePidfile {
        /// Its path.
        path: std::path::PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The control socket of the daemon cannot be reached.
    Control {
        /// Its path.
        path: std::path::PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The daemon refused a request (a reload with a bad config).
    Refused(String),
    /// A measurement could not be made, or found failures (`compare`,
    /// `load`).
    Failed(String),
    /// The workers report they cannot work (exit status 78).
    WorkersFailed {
        /// The service whose workers failed.
        service: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => f.write_str(msg),
            Error::Failed(msg) => f.write_str(msg),
            Error::Address(e) => write!(f, "{e}"),
            Error::UnknownBuiltin(e) => write!(f, "{e}"),
            Error::Program(e) => write!(f, "{e}"),
            Error::Bind { addr, source } => write!(f, "cannot bind {addr}: {}", describe(source)),
            Error::Startup { what, source } => write!(f, "{what}: {}", describe(source)),
            #[cfg(unix)]
            Error::Fork(e) => write!(f, "{e}"),
            Error::Config(e) => write!(f, "{e}"),
            Error::Control { path, source } => write!(
                f,
                "cannot talk to the daemon at {}: {}{}",
                path.display(),
                describe(source),
                if source.kind() == io::ErrorKind::NotFound {
                    " (is `preforkd serve` running?)"
                } else {
                    ""
                }
            ),
            Error::Refused(why) => f.write_str(why),
            Error::AlreadyRunning {
                pidfile,
                pid: Some(pid),
            } => {
                write!(
                    f,
                    "already running as pid {pid} (pidfile {})",
                    pidfile.display()
                )
            }
            Error::AlreadyRunning { pidfile, pid: None } => {
                write!(
                    f,
                    "already running (pidfile {} is locked)",
                    pidfile.display()
                )
            }
            Error::Pidfile { path, source } => {
                write!(
                    f,
                    "cannot write the pidfile {}: {}",
                    path.display(),
                    describe(source)
                )
            }
            Error::UnsafePidfile { path, why } => {
                write!(f, "refusing the pidfile {}: {why}", path.display())
            }
            Error::WorkersFailed { service } => {
                write!(
                    f,
                    "service {service}: workers cannot start (see the log above)"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Everything to print for this error: one line `preforkd: ...`, or
    /// for a config file its diagnostics (file:line:column, the line, a
    /// caret), the first 20 of them, and then one `preforkd:` line counting
    /// them all.
    pub fn report(&self) -> String {
        match self {
            Error::Config(crate::config::ConfigError::Invalid(diags)) => {
                let (shown, more) = crate::config::Diagnostic::shown(diags);
                let mut out: Vec<String> = shown.iter().map(|d| d.to_string()).collect();
                let file = diags.first().map_or("config", |d| d.file.as_str());
                let n = diags.len();
                out.push(format!(
                    "preforkd: {file}: {n} error{}{}",
                    if n == 1 { "" } else { "s" },
                    if more > 0 {
                        format!(" ({more} more not shown)")
                    } else {
                        String::new()
                    }
                ));
                out.join("\n")
            }
            other => format!("preforkd: {other}"),
        }
    }

    /// 2 for a mistake in what the user asked (fix the command or config),
    /// 1 for a failure at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::Address(_)
            | Error::UnknownBuiltin(_)
            | Error::Program(_)
            | Error::Config(_) => 2,
            Error::Bind { .. }
            | Error::Startup { .. }
            | Error::Control { .. }
            | Error::AlreadyRunning { .. }
            | Error::Pidfile { .. }
            | Error::UnsafePidfile { .. }
            | Error::Refused(_)
            | Error::WorkersFailed { .. }
            | Error::Failed(_) => 1,
            #[cfg(unix)]
            Error::Fork(_) => 1,
        }
    }
}
