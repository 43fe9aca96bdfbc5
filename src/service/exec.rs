//! Exec services: an external program with the connection on its stdin and
//! stdout, as inetd and tcpserver run them.
//!
//! The worker spawns the program for each connection and waits for it. The
//! program gets:
//! - the connection as descriptors 0 and 1, the daemon's stderr as 2 (the
//!   tcpserver convention: diagnostics go to the log, not to the client),
//!   and no other descriptor (the worker closed everything it inherited,
//!   and everything it opens is close-on-exec);
//! - the daemon's environment plus the UCSPI variables tcpserver sets:
//!   `PROTO=TCP`, `TCPREMOTEIP`, `TCPREMOTEPORT`, `TCPLOCALIP`,
//!   `TCPLOCALPORT` (IPv6 addresses written plainly, IPv4 clients of a
//!   dual-stack socket as IPv4), or for a Unix socket, as ipcserver sets
//!   them, `PROTO=IPC`, `IPCLOCALPATH`, `IPCREMOTEEUID`, `IPCREMOTEEGID`;
//! - default signal dispositions and an empty signal mask.
//!
//! That is Unix. On Windows a socket cannot be a program's stdin and stdout,
//! so [`relay`](super::relay) gives the program pipes and copies between
//! them and the connection; the environment is the same.

use std::ffi::OsString;
use std::io;
#[cfg(unix)]
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
#[cfg(unix)]
use std::process::Stdio;

#[cfg(unix)]
use crate::net::Connection;
use crate::net::Peer;
use crate::sys;

/// The variables of the UCSPI conventions that a program could inherit
/// from the daemon's own environment, and those of the service manager;
/// they are removed before the ones that describe this connection are set.
const UCSPI_VARIABLES: [&str; 18] = [
    // And the service manager's, meant for the daemon only.
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "PROTO",
    "TCPREMOTEIP",
    "TCPREMOTEPORT",
    "TCPLOCALIP",
    "TCPLOCALPORT",
    "TCPREMOTEHOST",
    "TCPLOCALHOST",
    "TCPREMOTEINFO",
    "IPCLOCALPATH",
    "IPCREMOTEEUID",
    "IPCREMOTEEGID",
    "IPCREMOTEPATH",
];

/// A program to run for each connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    directory: Option<PathBuf>,
    argv0: Option<OsString>,
}

/// Why a program cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramError {
    /// The program as the user wrote it.
    pub program: String,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for ProgramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot run {}: {}", self.program, self.reason)
    }
}

impl std::error::Error for ProgramError {}

impl ExecSpec {
    /// Checks that `program` exists and is executable (searching `$PATH`
    /// when it has no slash), so a typo is reported at startup rather than
    /// once per connection.
    pub fn new(program: &Path, args: Vec<OsString>) -> Result<ExecSpec, ProgramError> {
        ExecSpec::new_in(program, args, None)
    }

    /// As [`ExecSpec::new`], for a worker that will chroot to `root`: an
    /// absolute `program` is looked for under `root`, and kept as the
    /// path the worker will see.
    pub fn new_in(
        program: &Path,
        args: Vec<OsString>,
        root: Option<&Path>,
    ) -> Result<ExecSpec, ProgramError> {
        let err = |reason: String| ProgramError {
            program: program.display().to_string(),
            reason,
        };
        if let Some(root) = root {
            if !program.is_absolute() {
                return Err(err("must be an absolute path inside the chroot".into()));
            }
            let outside = root.join(program.strip_prefix("/").unwrap_or(program));
            ExecSpec::new_in(&outside, vec![], None)
                .map_err(|e| err(format!("{} (looked for {})", e.reason, outside.display())))?;
            return Ok(ExecSpec {
                program: program.to_path_buf(),
                args,
                env: vec![],
                directory: None,
                argv0: None,
            });
        }
        let resolved = if program.as_os_str().is_empty() {
            return Err(err("the program name is empty".into()));
        } else if program.components().count() > 1 || program.is_absolute() {
            sys::process::program_file(program)
        } else {
            let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
            std::env::split_paths(&path)
                .map(|dir| sys::process::program_file(&dir.join(program)))
                .find(|candidate| sys::process::is_executable(candidate).is_ok())
                .ok_or_else(|| err("not found in $PATH".into()))?
        };
        match std::fs::metadata(&resolved) {
            Err(e) => return Err(err(sys::fd::describe(&e))),
            Ok(meta) if meta.is_dir() => return Err(err("is a directory".into())),
            Ok(_) => {}
        }
        sys::process::is_executable(&resolved).map_err(|e| err(sys::fd::describe(&e)))?;
        Ok(ExecSpec {
            program: resolved,
            args,
            env: vec![],
            directory: None,
            argv0: None,
        })
    }

    /// Adds variables to the program's environment (before the UCSPI ones,
    /// which win).
    pub fn with_env(mut self, env: impl IntoIterator<Item = (String, String)>) -> ExecSpec {
        self.env.extend(env);
        self
    }

    /// Gives the program this `argv[0]` instead of its path (inetd.conf's
    /// first argument; tcpd finds the daemon to run by it).
    pub fn with_argv0(mut self, argv0: Option<String>) -> ExecSpec {
        self.argv0 = argv0.map(OsString::from);
        self
    }

    /// Runs the program in `dir` instead of the worker's directory.
    pub fn with_directory(mut self, dir: Option<PathBuf>) -> ExecSpec {
        self.directory = dir;
        self
    }

    /// The program's file name, for logs.
    pub fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string())
    }

    /// The program's path, as resolved at startup.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The `argv[0]` given with [`ExecSpec::with_argv0`], if any (Unix
    /// passes it; Windows has no separate `argv[0]` to set, and refuses it).
    pub fn argv0(&self) -> Option<&std::ffi::OsStr> {
        self.argv0.as_deref()
    }

    /// The program's command for the connection of `peer`: its arguments,
    /// the service's variables, the UCSPI ones (which win), its directory.
    /// Its standard streams are for the caller to set.
    pub fn command(&self, peer: &Peer) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        for name in UCSPI_VARIABLES {
            command.env_remove(name);
        }
        command.envs(ucspi_environment(peer));
        if let Some(dir) = &self.directory {
            command.current_dir(dir);
        }
        command
    }

    /// The error for a program that would not start: `cannot run PATH:
    /// ERRNO (why)`. Its kind is `Other` whatever the cause: a spawn that
    /// failed with EAGAIN (a process limit) is not a client idle past the
    /// timeout, nor one that went away, and is logged as the failure it is.
    pub fn cannot_run(&self, e: io::Error) -> io::Error {
        io::Error::other(format!(
            "cannot run {}: {}",
            self.program.display(),
            sys::fd::describe_errno(&e)
        ))
    }

    /// Logs how the program for `peer` ended, if not with success, and
    /// keeps it for the connection's log line.
    pub fn ended(&self, peer: &Peer, status: std::process::ExitStatus) {
        if !status.success() {
            log::info!("{} for {}: {}", self.name(), describe_peer(peer), status);
        }
        LAST_EXIT.with(|last| last.set(Some(status)));
    }
}

/// Running the program with the connection itself as its stdin and stdout.
#[cfg(unix)]
impl ExecSpec {
    /// Runs the program on `conn` and waits for it. A program that cannot
    /// be started (removed since startup, say) is an error for this
    /// connection only; a program that exits non-zero or is killed is
    /// logged.
    pub fn handle(&self, conn: Connection) -> io::Result<()> {
        let (mut child, peer) = self.spawn(conn)?;
        let status = child.wait()?;
        self.ended(&peer, status);
        Ok(())
    }

    /// Starts the program on `conn` without waiting for it (the event
    /// model reaps it later and calls [`ExecSpec::ended`]). Returns the
    /// child and the connection's ends.
    pub fn spawn(&self, conn: Connection) -> io::Result<(std::process::Child, Peer)> {
        let peer = conn.peer()?;
        let stdin = conn.try_clone_fd()?;
        let stdout = OwnedFd::from(conn);
        let mut command = self.command(&peer);
        command
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout));
        if let Some(argv0) = &self.argv0 {
            std::os::unix::process::CommandExt::arg0(&mut command, argv0);
        }
        let spawned = command.spawn();
        // The Command holds our copies of the connection: close them now, so
        // the client sees end-of-file as soon as the program closes its own.
        drop(command);
        let child = spawned.map_err(|e| self.cannot_run(e))?;
        Ok((child, peer))
    }
}

thread_local! {
    /// How the last program this worker ran ended, for its connection's
    /// log line.
    static LAST_EXIT: std::cell::Cell<Option<std::process::ExitStatus>> = const { std::cell::Cell::new(None) };
}

/// How the program of the connection just served ended (taken once).
pub fn take_last_exit() -> Option<std::process::ExitStatus> {
    LAST_EXIT.with(|last| last.take())
}

/// The UCSPI variables for one connection.
pub fn ucspi_environment(peer: &Peer) -> Vec<(&'static str, String)> {
    match peer {
        Peer::Tcp { local, remote } => vec![
            ("PROTO", "TCP".into()),
            ("TCPREMOTEIP", remote.ip().to_string()),
            ("TCPREMOTEPORT", remote.port().to_string()),
            ("TCPLOCALIP", local.ip().to_string()),
            ("TCPLOCALPORT", local.port().to_string()),
        ],
        Peer::Unix { local, remote_ids } => {
            let mut env = vec![
                ("PROTO", "IPC".into()),
                ("IPCLOCALPATH", local.display().to_string()),
            ];
            if let Some((uid, gid)) = remote_ids {
                env.push(("IPCREMOTEEUID", uid.to_string()));
                env.push(("IPCREMOTEEGID", gid.to_string()));
            }
            env
        }
    }
}

/// A client as logs name it: `192.0.2.1:4321` or `unix:/path`.
pub fn describe_peer(peer: &Peer) -> String {
    match peer {
        Peer::Tcp { remote, .. } => remote.to_string(),
        Peer::Unix {
            local,
            remote_ids: Some((uid, _)),
        } => {
            format!("uid {uid} on unix:{}", local.display())
        }
        Peer::Unix { local, .. } => format!("unix:{}", local.display()),
    }
}
