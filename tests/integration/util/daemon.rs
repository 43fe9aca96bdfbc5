//! [`Daemon`]: a `preforkd` a test started and that keeps running, with
//! its stderr collected; how it was started (plain, `serve` on a config,
//! socket activation), what it announced (`listening on` lines),
//! connections to it, signals, its workers, and the report that explains
//! a failure. Commands that run to their end are in [`run`](super::run).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::run::spawn;
use super::{
    children_of, connect_within_5s, kill, proc_state, wait_until, wchan, write_config, TempDir, BIN,
};

/// A running `preforkd` started by a test; SIGKILLed (with its workers,
/// which die with it) when dropped.
pub struct Daemon {
    child: Child,
    args: Vec<String>,
    stderr: Arc<Mutex<String>>,
    listening: String,
    status: Option<ExitStatus>,
}

/// How a test passes a socket the way a service manager does (systemd's
/// socket activation): `socket` as descriptor 3 of a program started
/// through `sh -c`, with LISTEN_FDS=1 and LISTEN_PID=`listen_pid` (`$$`,
/// the shell's pid, which `exec` keeps: the program's own).
///
/// The socket reaches the shell as its standard input, which the child
/// alone gets (std dup2s it after fork), and the shell moves it to 3: a
/// descriptor left inheritable in this many-threaded harness would leak
/// into every program another test spawns meanwhile, and dash takes only
/// one digit in `3<&N`.
pub struct Activation<'s, S: AsFd> {
    pub socket: &'s S,
    pub listen_pid: &'s str,
    /// LISTEN_FDNAMES, if any.
    pub names: Option<&'s str>,
    /// Under `umask 000`.
    pub umask_000: bool,
}

impl<S: AsFd> Activation<'_, S> {
    /// The command that runs `program ARGS` with the socket as its
    /// descriptor 3 (and /dev/null as its standard input); spawn it with
    /// [`stdin`](Activation::stdin) as its standard input.
    pub fn command(&self, program: &Path, args: &[&str]) -> Command {
        let script = format!(
            "{}LISTEN_PID={} LISTEN_FDS=1 {}exec \"$0\" \"$@\" 3<&0 0</dev/null",
            if self.umask_000 { "umask 000; " } else { "" },
            self.listen_pid,
            self.names
                .map(|n| format!("LISTEN_FDNAMES={n} "))
                .unwrap_or_default(),
        );
        let mut command = Command::new("/bin/sh");
        command.args(["-c", &script]).arg(program).args(args);
        command
    }

    /// The socket, as the shell's standard input.
    pub fn stdin(&self) -> Stdio {
        Stdio::from(self.socket.as_fd().try_clone_to_owned().unwrap())
    }
}

/// One `listening on ADDR (PROTO service NAME)` line of `preforkd serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    pub addr: String,
    pub protocol: String,
    pub service: String,
}

impl Daemon {
    /// Starts `preforkd ARGS` and waits (10 s at most) for `listening on`.
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_with(Command::new(BIN).args(args), args)
    }

    /// As [`Daemon::start`], with a prepared command (environment, ...).
    pub fn start_with(command: &mut Command, args: &[&str]) -> Daemon {
        Daemon::start_from(command, Stdio::null(), args)
    }

    /// As [`Daemon::start_with`], with `stdin` as its standard input.
    pub fn start_from(command: &mut Command, stdin: Stdio, args: &[&str]) -> Daemon {
        let mut child = spawn(command, stdin, Stdio::null());
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut d = Daemon {
            child,
            args: args.iter().map(|s| s.to_string()).collect(),
            stderr,
            listening: String::new(),
            status: None,
        };
        let found = wait_until(Duration::from_secs(10), || {
            d.stderr().lines().any(|l| l.starts_with("listening on "))
                || d.child.try_wait().ok().flatten().is_some()
        });
        let line = d
            .stderr()
            .lines()
            .find(|l| l.starts_with("listening on "))
            .map(str::to_string);
        match line {
            Some(l) if found => d.listening = announced_addr(&l).to_string(),
            _ => panic!("preforkd did not start listening\n{}", d.report()),
        }
        d
    }

    /// Starts `preforkd serve -c FILE` on `config` (written to `dir`) and
    /// waits until the master runs.
    pub fn serve(dir: &TempDir, config: &str) -> Daemon {
        let path = write_config(dir, config);
        let path = path.to_str().unwrap().to_string();
        let d = Daemon::start(&["serve", "--foreground", "-c", &path]);
        assert!(
            d.wait_for_log("M0001", Duration::from_secs(10))
                && d.wait_for_log("running with", Duration::from_secs(10)),
            "{}",
            d.report()
        );
        d
    }

    /// Starts `preforkd serve --foreground -c CONFIG` as a service manager
    /// does for socket activation: `socket` as its descriptor 3, with
    /// LISTEN_PID, LISTEN_FDS=1 and LISTEN_FDNAMES=`name`; under `umask
    /// 000` when `umask_000`. Only that child inherits `socket`.
    pub fn start_activated(
        socket: &impl AsFd,
        name: &str,
        config: &Path,
        umask_000: bool,
    ) -> Daemon {
        let config = config.to_str().unwrap();
        let activation = Activation {
            socket,
            listen_pid: "$$",
            names: Some(name),
            umask_000,
        };
        Daemon::start_from(
            &mut activation.command(Path::new(BIN), &["serve", "--foreground", "-c", config]),
            activation.stdin(),
            &["serve (LISTEN_FDS=1)"],
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address of the first `listening on` line.
    pub fn listening(&self) -> &str {
        &self.listening
    }

    pub fn addr(&self) -> SocketAddr {
        self.listening
            .parse()
            .unwrap_or_else(|_| panic!("not an IP address: {}", self.listening))
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// Every `listening on` line with its service, in order.
    pub fn listening_lines(&self) -> Vec<Listening> {
        self.stderr()
            .lines()
            .filter(|l| l.starts_with("listening on "))
            .filter_map(|l| {
                let addr = announced_addr(l);
                let (_, tail) = l.rsplit_once(" (")?;
                let tail = tail.strip_suffix(')')?;
                let mut words = tail.split(' ');
                let protocol = words.next()?.to_string();
                let service = words.nth(1)?.to_string();
                Some(Listening {
                    addr: addr.to_string(),
                    protocol,
                    service,
                })
            })
            .collect()
    }

    /// The address service `name` listens on over `protocol` (the last
    /// announced, so after a reload the newest).
    pub fn address_of(&self, name: &str, protocol: &str) -> String {
        self.listening_lines()
            .into_iter()
            .rev()
            .find(|l| l.service == name && l.protocol == protocol)
            .unwrap_or_else(|| {
                panic!(
                    "no {protocol} address for service {name}\n{}",
                    self.report()
                )
            })
            .addr
    }

    /// A client connection with 5 s read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        connect_within_5s(&self.addr())
            .unwrap_or_else(|e| panic!("connect to {}: {e}\n{}", self.addr(), self.report()))
    }

    /// As [`Daemon::connect`], to `addr` (one of its services').
    pub fn connect_to(&self, addr: &str) -> TcpStream {
        let addr: SocketAddr = addr.parse().unwrap();
        connect_within_5s(&addr)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}\n{}", self.report()))
    }

    pub fn signal(&self, sig: libc::c_int) {
        kill(self.pid(), sig);
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `text`.
    pub fn wait_for_log(&self, text: &str, limit: Duration) -> bool {
        wait_until(limit, || self.stderr().contains(text))
    }

    /// Checks the master logs `running with` (its workers are forked)
    /// within 10 s.
    pub fn wait_running(&self) {
        assert!(
            self.wait_for_log("running with", Duration::from_secs(10)),
            "{}",
            self.report()
        );
    }

    /// The worker processes: live children of the master.
    pub fn workers(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// Waits for the master to exit; `None` if it is still running after `limit`.
    pub fn wait_exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = &mut self.child;
        let mut status = None;
        wait_until(limit, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        self.status = status;
        status
    }

    /// SIGTERM, then checks the master exits 0 within 10 s.
    pub fn stop_gracefully(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit_within(Duration::from_secs(10));
        assert!(status.is_some_and(|s| s.success()), "{}", self.report());
    }

    /// Everything a person needs to understand a failure.
    pub fn report(&self) -> String {
        let mut out = format!("command: {BIN} {}\n", self.args.join(" "));
        out += &format!("master pid: {}, exit: {:?}\n", self.pid(), self.status);
        for pid in children_of(self.pid()) {
            out += &format!(
                "  child {pid}: state {} wchan {}\n",
                proc_state(pid).unwrap_or('?'),
                wchan(pid).unwrap_or_default()
            );
        }
        out += "stderr:\n";
        out += &self.stderr();
        out
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Workers die with the master; kill them too, so that a test
            // that found a bug in that does not leave them behind.
            let workers = self.workers();
            let _ = self.child.kill();
            let _ = self.child.wait();
            for w in workers {
                kill(w, libc::SIGKILL);
            }
        }
    }
}

/// The address in a `listening on ADDR[ (IPv4 and IPv6)][ (PROTO service
/// NAME)]` line: what follows `listening on ` up to the first ` (`.
pub fn announced_addr(line: &str) -> &str {
    let rest = line.strip_prefix("listening on ").unwrap_or(line);
    rest.split(" (").next().unwrap_or(rest)
}
