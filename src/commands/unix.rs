//! The commands on Unix: `run` and `serve` start the master, which forks
//! and supervises the workers; `status`, `reload` and `stop` talk to a
//! running daemon through its control socket.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub(super) use super::compare::compare;
use super::{init_log, Source};
use crate::cli::{ConfigArgs, ServeArgs};
use crate::config::{self, Config, ConfigError, LogTarget};
use crate::error::Error;
use crate::master::plan::Plan;
use crate::master::upgrade::Handoff;
use crate::master::{Announce, Ended, Master};
use crate::sys::daemon::{Pidfile, PidfileError};

/// Serves `run`'s one service: the master and its pool, no control socket.
pub(super) fn run(config: Config) -> Result<(), Error> {
    Master::new(vec![], Plan::from_config(&config), None, Announce::Address)?
        .run()
        .map(|_| ())
}

/// The unix-only ways to find the config: as a daemon that reloads and
/// upgrades from /, and for the control socket's path alone.
impl Source {
    /// The same, with an absolute path.
    fn absolute(self) -> Source {
        match self {
            Source::File(path) => Source::File(absolute(&path)),
            other => other,
        }
    }

    /// The control socket's path, read leniently from a file that may not
    /// pass `check` (the default when it cannot be read at all).
    fn control_path_only(&self) -> PathBuf {
        let file = match self {
            Source::File(path) => Some(path.clone()),
            Source::Default => Some(PathBuf::from(config::DEFAULT_PATH)),
        };
        file.and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(|t| t.get("daemon")?.get("control")?.as_str().map(PathBuf::from))
            .unwrap_or_else(config::default_control)
    }

    /// The file's absolute path (a detached daemon runs in /, so a binary
    /// upgrade must not be given a relative one); `None` for the embedded
    /// default.
    fn absolute_path(&self) -> Option<PathBuf> {
        let path = match self {
            Source::File(path) => path.clone(),
            Source::Default if Path::new(config::DEFAULT_PATH).exists() => {
                PathBuf::from(config::DEFAULT_PATH)
            }
            Source::Default => return None,
        };
        std::fs::canonicalize(&path).ok().or(Some(path))
    }
}

/// Sends `request` to the control socket of the daemon that `args`'
/// config describes, and prints the answer.
///
/// `reload` checks the file first and does not ask the daemon to reload a
/// file with errors (they are printed, exit 2). `status` and `stop` need only
/// the socket's path, so they work while the file is being edited.
pub(super) fn control(args: &ConfigArgs, request: &str) -> Result<(), Error> {
    let source = Source::of(args);
    let path = match source.load() {
        Ok(config) => config.daemon.control,
        Err(e) if request == "reload" => return Err(Error::Config(e)),
        Err(_) => source.control_path_only(),
    };
    // The daemon refuses to reload when the file checked here is not the
    // one it reads.
    let request = match (request, source.absolute().absolute_path()) {
        ("reload", Some(file)) => format!("reload {}", file.display()),
        (other, _) => other.to_string(),
    };
    control_at(&path, &request)
}

/// Sends `request` to the control socket at `path` (`status --control`:
/// a library program's, or a daemon's named directly), and prints the
/// answer.
pub(super) fn control_at(path: &Path, request: &str) -> Result<(), Error> {
    let failed = |source| Error::Control {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(failed)?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(failed)?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .map_err(failed)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(failed)?;
    // Every answer ends its last line: anything short of that means the
    // daemon closed the connection, or died, before it had answered.
    if !answer.ends_with('\n') {
        return Err(Error::Failed(format!(
            "the daemon at {} closed the control connection without {} answer (did it die?): `{request}` not confirmed",
            path.display(),
            if answer.is_empty() { "an" } else { "a whole" },
        )));
    }
    match answer.strip_prefix("error: ") {
        Some(why) => Err(Error::Refused(why.trim_end().to_string())),
        None => {
            print!("{answer}");
            Ok(())
        }
    }
}

pub(super) fn serve(args: ServeArgs) -> Result<(), Error> {
    init_log(args.verbose, args.log_level);
    // Started by an old master's USR2: it passed the pidfile and a pipe to
    // say "ready" on; the sockets come as socket activation's do.
    let handoff = Handoff::take_from_env();
    let upgrading = handoff.is_some();
    let foreground = args.foreground || upgrading;
    // A master started by an upgrade of a detached one logs as that did.
    let detached = !foreground || handoff.as_ref().is_some_and(|h| h.detached);
    let (inherited_pidfile, inherited_pidfile_path, ready_pipe, old_master) = match handoff {
        Some(h) => (h.pidfile_fd, h.pidfile, h.ready, h.from),
        None => (None, None, None, None),
    };

    // Absolute paths: a detached daemon runs in /, and reloads later.
    let source = Source::of(&args.config).absolute();
    let config = source.load_to_serve()?;
    // `[daemon] log_level`, unless the command line set the level.
    let level_fixed = args.verbose || args.log_level.is_some();
    if let (false, Some(level)) = (level_fixed, config.daemon.log_level) {
        crate::log::set_level(level);
    }
    if crate::sys::privs::current_ids().0 == 0 {
        for s in config
            .services
            .iter()
            .filter(|s| s.pool.privileges.account.is_none())
        {
            log::warn!(
                "W0007 service {}: no user set: its workers run as root",
                s.name
            );
        }
    }

    // A second instance is told at the terminal, before it tries to bind
    // the addresses the first one holds.
    let pidfile_path = inherited_pidfile_path
        .or(args.pidfile.as_deref().map(absolute))
        .or(config.daemon.pidfile.clone())
        .or_else(|| (!foreground).then(|| PathBuf::from(DEFAULT_PIDFILE)));
    let pidfile_error = |path: &Option<PathBuf>, source| Error::Pidfile {
        path: path.clone().unwrap_or_default(),
        source,
    };
    let locked = match (inherited_pidfile, &pidfile_path) {
        (Some(fd), Some(path)) => Some(Pidfile::inherit(fd, path)),
        (_, Some(path)) => Some(Pidfile::lock(path)),
        (_, None) => None,
    };
    let mut pidfile = match locked {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(PidfileError::Running(pid))) => {
            return Err(Error::AlreadyRunning {
                pidfile: pidfile_path.unwrap_or_default(),
                pid,
            })
        }
        Some(Err(PidfileError::Io(source))) => return Err(pidfile_error(&pidfile_path, source)),
        Some(Err(PidfileError::Unsafe(why))) => {
            return Err(Error::UnsafePidfile {
                path: pidfile_path.unwrap_or_default(),
                why,
            })
        }
    };

    let plan = Plan::from_config(&config);
    let config_path = source.absolute_path();
    let reloader = Box::new(move || {
        source
            .load()
            .map(|c| {
                let mut plan = Plan::from_config(&c);
                if level_fixed {
                    plan.log_level = None;
                }
                plan
            })
            .map_err(|e| match e {
                ConfigError::Invalid(diags) => diags.iter().map(|d| d.headline()).collect(),
                read => vec![read.to_string()],
            })
    });
    // The control socket, an old master's taken over after an upgrade.
    let control = config.daemon.control.clone();
    let made =
        Master::new(vec![], plan, Some(reloader), Announce::WithService).and_then(|mut m| {
            m.reads_config(config_path.clone());
            m.open_control(control, upgrading).map(|()| m)
        });
    let mut master = match made {
        Ok(m) => m,
        Err(e) => {
            // Started by an upgrade and failed: the pidfile is still the
            // old master's.
            if let (true, Some(p)) = (upgrading, pidfile) {
                p.keep();
            }
            return Err(e);
        }
    };
    // USR2 starts the binary again on the same config, in the foreground
    // (this process has detached already if it was going to).
    if let Ok(exe) = std::env::current_exe() {
        let mut upgrade_args: Vec<std::ffi::OsString> = vec!["serve".into(), "--foreground".into()];
        if let Some(path) = &config_path {
            upgrade_args.extend(["-c".into(), path.clone().into_os_string()]);
        }
        if args.verbose {
            upgrade_args.push("-v".into());
        }
        if let Some(level) = args.log_level {
            upgrade_args.extend(["--log-level".into(), crate::log::level_name(level).into()]);
        }
        master.allow_upgrade(crate::master::upgrade::Upgrader {
            exe,
            args: upgrade_args,
            pidfile: pidfile
                .as_ref()
                .zip(pidfile_path.clone())
                .map(|(p, path)| (path, p.as_raw_fd())),
            detached,
        });
    }
    if let Some(pipe) = ready_pipe {
        // The pidfile names the old master until this one is ready.
        master.report_ready_on(pipe, pidfile.as_ref().map(|p| p.as_raw_fd()), old_master);
    }

    // Every check that can fail has passed: from here on, errors go to the log.
    let log_target = config.daemon.log.unwrap_or(if detached {
        LogTarget::Syslog
    } else {
        LogTarget::Stderr
    });
    if log_target == LogTarget::Syslog {
        crate::log::use_syslog(
            config.daemon.syslog_socket.clone(),
            config.daemon.syslog_facility,
        );
    }
    if !foreground {
        crate::sys::daemon::detach().map_err(|source| Error::Startup {
            what: "cannot detach",
            source,
        })?;
    }
    if let (false, Some(p)) = (upgrading, &mut pidfile) {
        p.write_pid()
            .map_err(|source| pidfile_error(&pidfile_path, source))?;
    }
    let result = master.run();
    let upgrade_failed = result.is_err()
        && upgrading
        && pidfile
            .as_ref()
            .and_then(Pidfile::read_pid)
            .is_some_and(|pid| pid != std::process::id());
    match result {
        // The new master owns the pidfile now; or, an upgraded master
        // that failed before it was ready leaves it to the old one.
        Ok(Ended::HandedOver) => {
            if let Some(p) = pidfile {
                p.keep();
            }
            Ok(())
        }
        Err(e) if upgrade_failed => {
            if let Some(p) = pidfile {
                p.keep();
            }
            Err(e)
        }
        Ok(Ended::Stopped) => {
            remove_pidfile(pidfile);
            Ok(())
        }
        Err(e) => {
            remove_pidfile(pidfile);
            // Detached, the terminal is gone: the log is where it is read.
            if detached {
                log::error!("M0050 {e}");
            }
            Err(e)
        }
    }
}

/// Removes the pidfile at exit, unless its path names another file now.
fn remove_pidfile(pidfile: Option<Pidfile>) {
    let Some(p) = pidfile else { return };
    let path = p.path().to_path_buf();
    if let Err(why) = p.remove() {
        log::warn!("W0070 the pidfile {}: {why}; left in place", path.display());
    }
}

/// `path` made absolute against the current directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The pidfile a detached `serve` writes when neither --pidfile nor
/// `[daemon] pidfile` names one.
pub const DEFAULT_PIDFILE: &str = "/run/preforkd.pid";
