//! The commands on Windows, where there is no fork(2): `run` and
//! `serve --foreground` serve with the thread pool of `crate::fallback`
//! until the process is ended (ctrl-c); what needs the Unix daemon (a
//! detached `serve`, a pidfile, syslog, the control socket of `status`,
//! `reload` and `stop`) is refused with one line that says what to use.

use super::{init_log, Source};
use crate::cli::{ConfigArgs, ServeArgs};
use crate::config::{Config, LogTarget};
use crate::error::Error;

/// Serves `run`'s one service with the pool model.
pub(super) fn run(config: Config) -> Result<(), Error> {
    crate::fallback::start(&config, false)?.wait();
    Ok(())
}

/// `serve --foreground`: every service of the config, each with the pool
/// model, logging to stderr.
pub(super) fn serve(args: ServeArgs) -> Result<(), Error> {
    if !args.foreground {
        return Err(unsupported(
            "serve without --foreground (a detached daemon)",
            "`preforkd serve --foreground` or `preforkd run`",
        ));
    }
    if args.pidfile.is_some() {
        return Err(unsupported("--pidfile", "`preforkd serve --foreground`"));
    }
    init_log(args.verbose, args.log_level);
    let config = Source::of(&args.config).load_to_serve()?;
    if let (false, None, Some(level)) = (args.verbose, args.log_level, config.daemon.log_level) {
        crate::log::set_level(level);
    }
    if config.daemon.pidfile.is_some() {
        return Err(unsupported("[daemon] pidfile", "no pidfile"));
    }
    if config.daemon.log == Some(LogTarget::Syslog) {
        return Err(unsupported("[daemon] log = \"syslog\"", "log = \"stderr\""));
    }
    crate::fallback::start(&config, true)?.wait();
    Ok(())
}

/// `compare` forks every model and reads /proc.
pub(super) fn compare(_args: crate::cli::CompareArgs) -> Result<(), Error> {
    Err(unsupported("compare", "a Linux machine"))
}

/// `status`, `reload` and `stop`: there is no daemon to talk to.
pub(super) fn control(_args: &ConfigArgs, request: &str) -> Result<(), Error> {
    let command = request.split_whitespace().next().unwrap_or(request);
    Err(unsupported(
        command,
        "`preforkd run` or `preforkd serve --foreground`, and ctrl-c to stop",
    ))
}

pub(super) fn control_at(_path: &std::path::Path, request: &str) -> Result<(), Error> {
    control(&ConfigArgs { config: None }, request)
}

/// The one line for what Windows cannot do.
fn unsupported(what: &str, instead: &str) -> Error {
    Error::Usage(format!("{what}: not supported on Windows; use {instead}"))
}
