//! Exec services: an external program with the connection on its stdin and
//! stdout, as inetd and tcpserver run them.
//!
//! The worker spawns the program for each connection and waits for it. The
//! program gets:
//! - the connection as descriptors 0 and 1, and as 2 the daemon's stderr
//!   or, when that is a terminal or the log is syslog, a pipe its worker
//!   relays to the log line by line (see [`stderr`](super::stderr)): the
//!   tcpserver convention, diagnostics go to the log, not to the client.
//!   No other descriptor (the worker closed everything it inherited, and
//!   everything it opens is close-on-exec);
//! - a clean environment: `PATH` ([`DEFAULT_PATH`]), the master's
//!   variables the service names in `pass_env` (read when the config is
//!   loaded), the service's `env`, and the UCSPI variables tcpserver sets,
//!   which win: `PROTO=TCP`, `TCPREMOTEIP`, `TCPREMOTEPORT`, `TCPLOCALIP`,
//!   `TCPLOCALPORT` (IPv6 addresses written plainly, IPv4 clients of a
//!   dual-stack socket as IPv4), or for a Unix socket, as ipcserver sets
//!   them, `PROTO=IPC`, `IPCLOCALPATH`, `IPCREMOTEEUID`, `IPCREMOTEEGID`.
//!   Nothing else of the master's environment (a password in it, the
//!   service manager's sockets) reaches a program;
//! - default signal dispositions and an empty signal mask.
//!
//! That is Unix. On Windows a socket cannot be a program's stdin and stdout,
//! so the Windows fallback's relay gives the program pipes and copies between
//! them and the connection; the environment is the same, except that
//! the master's `PATH`, `SystemRoot`, `windir`, `COMSPEC`, `PATHEXT`,
//! `TEMP` and `TMP` are passed, which Windows programs need to start.

use std::ffi::OsString;
use std::io;
#[cfg(unix)]
use std::net::SocketAddr;
#[cfg(unix)]
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

#[cfg(unix)]
use crate::net::Connection;
use crate::net::Peer;
use crate::sys;
#[cfg(unix)]
pub use crate::sys::spawn::Child;

/// A program's `PATH`, unless the service sets one (`env`, `pass_env`).
#[cfg(unix)]
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The master's variables a Windows program gets without `pass_env`: it
/// cannot start, or find a shell or a temporary directory, without them.
#[cfg(windows)]
const WINDOWS_VARIABLES: [&str; 7] = [
    "PATH",
    "SystemRoot",
    "windir",
    "COMSPEC",
    "PATHEXT",
    "TEMP",
    "TMP",
];

/// The variables preforkd sets for each connection (UCSPI), and those of
/// the service manager, meant for the daemon only: `pass_env` may not
/// name them.
const UCSPI_VARIABLES: [&str; 22] = [
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
    "UDPLOCALIP",
    "UDPLOCALPORT",
    "UDPREMOTEIP",
    "UDPREMOTEPORT",
];

/// A program to run for each connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    /// The master's variables named by `pass_env`, read when built.
    passed: Vec<(String, OsString)>,
    directory: Option<PathBuf>,
    argv0: Option<OsString>,
    /// All of the above as execve(2) takes it, made again by each
    /// builder method, so that a connection only adds its own variables;
    /// or why it cannot be (a NUL byte).
    #[cfg(unix)]
    prepared: Result<Box<sys::spawn::Program>, String>,
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
            return Ok(ExecSpec::prepared(program.to_path_buf(), args));
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
        Ok(ExecSpec::prepared(resolved, args))
    }

    /// The spec of `program` with `args` and nothing else, prepared.
    fn prepared(program: PathBuf, args: Vec<OsString>) -> ExecSpec {
        ExecSpec {
            program,
            args,
            env: vec![],
            passed: vec![],
            directory: None,
            argv0: None,
            #[cfg(unix)]
            prepared: Err(String::new()),
        }
        .prepare()
    }

    /// Makes [`ExecSpec::prepared`] again from the fields.
    #[cfg(unix)]
    fn prepare(mut self) -> ExecSpec {
        let mut env: Vec<(OsString, OsString)> = vec![("PATH".into(), DEFAULT_PATH.into())];
        env.extend(self.passed.iter().map(|(k, v)| (k.into(), v.clone())));
        env.extend(self.env.iter().map(|(k, v)| (k.into(), v.into())));
        let argv0 = self.argv0.as_deref().unwrap_or(self.program.as_os_str());
        self.prepared = sys::spawn::Program::new(
            &self.program,
            argv0,
            &self.args,
            &env,
            self.directory.as_deref(),
        )
        .map(Box::new);
        self
    }

    #[cfg(windows)]
    fn prepare(self) -> ExecSpec {
        self
    }

    /// Whether the program can be given what the spec says: no NUL byte
    /// in an argument, a variable or the directory, no `=` in a name.
    pub fn check(&self) -> Result<(), ProgramError> {
        #[cfg(unix)]
        if let Err(reason) = &self.prepared {
            return Err(ProgramError {
                program: self.program.display().to_string(),
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    /// Adds variables to the program's environment (before the UCSPI ones,
    /// which win).
    pub fn with_env(mut self, env: impl IntoIterator<Item = (String, String)>) -> ExecSpec {
        self.env.extend(env);
        self.prepare()
    }

    /// Passes the master's variables `names` (those it has) to the
    /// program, read now, as xinetd's `passenv` does.
    pub fn with_pass_env<'n>(mut self, names: impl IntoIterator<Item = &'n str>) -> ExecSpec {
        for name in names {
            if let Some(value) = std::env::var_os(name) {
                self.passed.push((name.to_string(), value));
            }
        }
        self.prepare()
    }

    /// Why `pass_env` may not name `name`, if it may not.
    pub fn check_pass_env(name: &str) -> Result<(), String> {
        if name.is_empty() || name.contains(['=', '\0']) {
            Err(format!("invalid pass_env name '{}'", name.escape_debug()))
        } else if UCSPI_VARIABLES.contains(&name) {
            Err(format!(
                "pass_env cannot name {name}: preforkd sets it (UCSPI) or it is the service manager's"
            ))
        } else {
            Ok(())
        }
    }

    /// Gives the program this `argv[0]` instead of its path (inetd.conf's
    /// first argument; tcpd finds the daemon to run by it).
    pub fn with_argv0(mut self, argv0: Option<String>) -> ExecSpec {
        self.argv0 = argv0.map(OsString::from);
        self.prepare()
    }

    /// Runs the program in `dir` instead of the worker's directory.
    pub fn with_directory(mut self, dir: Option<PathBuf>) -> ExecSpec {
        self.directory = dir;
        self.prepare()
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

    /// The program's command for the connection of `peer`, for the
    /// thread-pool fallback, which relays through pipes (a Unix worker
    /// starts the prepared program itself): its arguments, its clean
    /// environment (`PATH`, `pass_env`, `env`, then the UCSPI variables,
    /// which win), its directory. Its standard streams are for the caller
    /// to set.
    pub fn command(&self, peer: &Peer) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command.env_clear();
        #[cfg(unix)]
        command.env("PATH", DEFAULT_PATH);
        #[cfg(windows)]
        for name in WINDOWS_VARIABLES {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command.envs(self.passed.iter().map(|(k, v)| (k, v)));
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
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

    /// Logs how the program for `peer` ended, if not with success: C0002,
    /// at info, since a status of a program's own is no error of ours
    /// (rsync's module listing exits 255).
    pub fn ended(&self, peer: &Peer, status: std::process::ExitStatus) {
        if !status.success() {
            log::info!(
                "C0002 {} for {}: {}",
                self.name(),
                describe_peer(peer),
                status
            );
        }
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
        self.run(conn).map(|_| ())
    }

    /// The same, saying how the program ended. Its stderr, when the log
    /// wants it ([`stderr::wanted`](super::stderr::wanted)), is a pipe of
    /// its own, read until it exits.
    pub fn run(&self, conn: Connection) -> io::Result<std::process::ExitStatus> {
        let mut relay = super::stderr::wanted()
            .then(super::stderr::Relay::new)
            .transpose()?;
        let (mut child, peer) = self.spawn(conn, relay.as_ref())?;
        let status = match &mut relay {
            Some(relay) => relay.wait(&mut child, &self.name())?,
            None => child.wait()?,
        };
        self.ended(&peer, status);
        Ok(status)
    }

    /// Starts the program on `conn` without waiting for it (the event
    /// model reaps it later and calls [`ExecSpec::ended`]), its stderr on
    /// `stderr`'s pipe, or the daemon's stderr without one. Returns the
    /// child and the connection's ends.
    pub fn spawn(
        &self,
        conn: Connection,
        stderr: Option<&super::stderr::Relay>,
    ) -> io::Result<(Child, Peer)> {
        let peer = conn.peer()?;
        let child = self.start(&ucspi_environment(&peer), conn.as_fd(), stderr)?;
        // Our copy of the connection is closed now (`conn` is dropped), so
        // the client sees end-of-file as soon as the program closes its own.
        Ok((child, peer))
    }

    /// Starts the prepared program with `socket` as its stdin and stdout,
    /// told `ucspi` of it.
    fn start(
        &self,
        ucspi: &[(&'static str, String)],
        socket: BorrowedFd<'_>,
        stderr: Option<&super::stderr::Relay>,
    ) -> io::Result<Child> {
        let program = self.prepared.as_ref().map_err(|why| {
            io::Error::other(format!("cannot run {}: {why}", self.program.display()))
        })?;
        let stdio = sys::spawn::Stdio {
            stdin: socket,
            stdout: socket,
            stderr: stderr.map(super::stderr::Relay::program_fd),
        };
        sys::spawn::spawn(program, ucspi, stdio).map_err(|e| self.cannot_run(e))
    }

    /// Starts the program of a wait service with `socket` itself, the
    /// pool's, as its stdin and stdout (inetd's `wait`): it reads the
    /// datagrams or accepts the connections. Told of it as `waiting` says.
    pub fn spawn_waiting(
        &self,
        socket: BorrowedFd<'_>,
        waiting: &Waiting<'_>,
        stderr: Option<&super::stderr::Relay>,
    ) -> io::Result<Child> {
        self.start(&waiting.environment(), socket, stderr)
    }
}

/// The socket a wait service's program is given, as its UCSPI-style
/// variables describe it.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting<'a> {
    /// A UDP socket.
    Udp {
        /// The address it is bound to.
        local: SocketAddr,
        /// Who sent the datagram that started the program (the first it
        /// will read).
        sender: Option<SocketAddr>,
    },
    /// A TCP listener.
    Tcp {
        /// The address it listens on.
        local: SocketAddr,
    },
    /// A Unix stream listener.
    Unix {
        /// The socket file.
        local: &'a Path,
    },
}

#[cfg(unix)]
impl Waiting<'_> {
    /// `PROTO=UDP`, `UDPLOCALIP`, `UDPLOCALPORT`, and `UDPREMOTEIP`,
    /// `UDPREMOTEPORT` of the first datagram's sender; `PROTO=TCP`,
    /// `TCPLOCALIP`, `TCPLOCALPORT` for a TCP listener (no remote: the
    /// program accepts); `PROTO=IPC`, `IPCLOCALPATH` for a Unix one.
    fn environment(&self) -> Vec<(&'static str, String)> {
        match *self {
            Waiting::Udp { local, sender } => {
                let mut env = vec![
                    ("PROTO", "UDP".into()),
                    ("UDPLOCALIP", local.ip().to_string()),
                    ("UDPLOCALPORT", local.port().to_string()),
                ];
                if let Some(sender) = sender {
                    env.push(("UDPREMOTEIP", canonical(sender).ip().to_string()));
                    env.push(("UDPREMOTEPORT", sender.port().to_string()));
                }
                env
            }
            Waiting::Tcp { local } => vec![
                ("PROTO", "TCP".into()),
                ("TCPLOCALIP", local.ip().to_string()),
                ("TCPLOCALPORT", local.port().to_string()),
            ],
            Waiting::Unix { local } => vec![
                ("PROTO", "IPC".into()),
                ("IPCLOCALPATH", local.display().to_string()),
            ],
        }
    }
}

/// An IPv4 client of a dual-stack socket as IPv4, as the TCP variables
/// write it.
#[cfg(unix)]
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
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
