//! The harness: start the real binary, read its `listening on` line, poll
//! /proc with deadlines, and explain a failure with everything it saw.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_preforkd");

/// Polls `cond` every millisecond until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// A running `preforkd` started by a test; SIGKILLed (with its workers,
/// which die with it) when dropped.
pub struct Daemon {
    child: Child,
    args: Vec<String>,
    stderr: Arc<Mutex<String>>,
    listening: String,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `preforkd ARGS` and waits (10 s at most) for `listening on`.
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_with(Command::new(BIN).args(args), args)
    }

    /// As [`Daemon::start`], with a prepared command (environment, ...).
    pub fn start_with(command: &mut Command, args: &[&str]) -> Daemon {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn preforkd");
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
            Some(l) if found => d.listening = l.trim_start_matches("listening on ").to_string(),
            _ => panic!("preforkd did not start listening\n{}", d.report()),
        }
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What followed `listening on`.
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

    /// A client connection with 5 s read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {}: {e}\n{}", self.addr(), self.report()));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s
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

pub fn kill(pid: u32, sig: libc::c_int) {
    // A test may signal a process that is already gone; that is fine.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::try_from(sig).unwrap(),
    );
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The process state letter (R, S, Z, ...), `None` if the process is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// True when `pid` no longer exists or is a zombie.
pub fn is_gone(pid: u32) -> bool {
    matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

pub fn wchan(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).ok()
}

/// Live (non-zombie) children of `parent`, from every /proc/PID/stat.
pub fn children_of(parent: u32) -> Vec<u32> {
    all_children_of(parent)
        .into_iter()
        .filter(|&p| !is_gone(p))
        .collect()
}

/// Every child of `parent`, zombies included.
pub fn all_children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(parent))
        .collect();
    pids.sort_unstable();
    pids
}

/// Zombie children of `parent`.
pub fn zombies_of(parent: u32) -> Vec<u32> {
    all_children_of(parent)
        .into_iter()
        .filter(|&p| proc_state(p) == Some('Z'))
        .collect()
}

/// Pids of the processes that hold a descriptor for socket inode `inode`.
pub fn socket_owners(inode: u64, among: &[u32]) -> Vec<u32> {
    let target = format!("socket:[{inode}]");
    among
        .iter()
        .copied()
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| {
                d.filter_map(|e| e.ok()).any(|e| {
                    std::fs::read_link(e.path()).is_ok_and(|l| l.to_str() == Some(&target))
                })
            })
        })
        .collect()
}

/// The inode of the server's end of a TCP connection over IPv4 loopback:
/// the /proc/net/tcp row whose local port is `server_port` and remote port
/// is `client_port`.
pub fn server_socket_inode(server_port: u16, client_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|row| {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let port = |col: &str| u16::from_str_radix(col.rsplit(':').next()?, 16).ok();
        (port(cols.get(1)?) == Some(server_port) && port(cols.get(2)?) == Some(client_port))
            .then(|| cols.get(9)?.parse().ok())
            .flatten()
    })
}

/// Sends `line`, reads back as many bytes, and returns them as text.
pub fn echo_once(stream: &mut TcpStream, line: &str) -> std::io::Result<String> {
    stream.write_all(line.as_bytes())?;
    let mut buf = vec![0u8; line.len()];
    stream.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Runs `preforkd ARGS` to completion (10 s at most; killed after that)
/// with a tag in its environment, and checks nothing it started outlives it.
pub fn run_to_exit(args: &[&str]) -> Output {
    run_command_to_exit(Command::new(BIN).args(args))
}

pub fn run_command_to_exit(command: &mut Command) -> Output {
    run_command_within(command, Duration::from_secs(10))
}

/// As [`run_command_to_exit`], allowing `limit` for a long run.
pub fn run_command_within(command: &mut Command, limit: Duration) -> Output {
    let tag = format!("{}-{:?}", std::process::id(), Instant::now());
    let mut child = command
        .env("PREFORKD_TEST_TAG", &tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn preforkd");
    let exited = wait_until(limit, || child.try_wait().ok().flatten().is_some());
    if !exited {
        // And whatever it started (servers, load generators).
        let _ = child.kill();
        for pid in processes_tagged(&tag) {
            kill(pid, libc::SIGKILL);
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(exited, "preforkd did not exit within {limit:?}: {output:?}");
    let left = processes_tagged(&tag);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    output
}

/// Processes whose environment holds PREFORKD_TEST_TAG=tag.
pub fn processes_tagged(tag: &str) -> Vec<u32> {
    let needle = format!("PREFORKD_TEST_TAG={tag}\0");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| String::from_utf8_lossy(&env).contains(&needle))
        })
        .filter(|&pid| !is_gone(pid))
        .collect()
}

/// A fresh directory under the target dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("preforkd-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes an executable script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Distinct set helper for reports.
pub fn set(v: &[u32]) -> BTreeSet<u32> {
    v.iter().copied().collect()
}

/// One `listening on ADDR (PROTO service NAME)` line of `preforkd serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    pub addr: String,
    pub protocol: String,
    pub service: String,
}

impl Daemon {
    /// Starts `preforkd serve -c FILE` on `config` (written to `dir`) and
    /// waits until the master runs.
    pub fn serve(dir: &TempDir, config: &str) -> Daemon {
        let path = dir.path().join("preforkd.toml");
        std::fs::write(&path, with_control(dir, config)).unwrap();
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

    /// Every `listening on` line with its service, in order.
    pub fn listening_lines(&self) -> Vec<Listening> {
        self.stderr()
            .lines()
            .filter_map(|l| l.strip_prefix("listening on "))
            .filter_map(|rest| {
                let (addr, tail) = rest.split_once(" (")?;
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

    pub fn connect_to(&self, addr: &str) -> TcpStream {
        let addr: SocketAddr = addr.parse().unwrap();
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}\n{}", self.report()));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }
}

/// The Uid:, Gid: and Groups: lines of /proc/PID/status.
pub fn ids_of(pid: u32) -> (String, String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

/// A loopback port below 1024 that nothing listens on for `udp` or TCP
/// (needs root to be used).
pub fn free_low_port(udp: bool) -> u16 {
    (600..1000)
        .find(|&p| {
            if udp {
                std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
            } else {
                std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            }
        })
        .expect("no free port below 1024")
}

/// Whether a test can run here: false, after printing `skipped: needs
/// WHAT (HOW)`, when `available` is false, so the test returns and passes
/// on a machine without it. Under `PREFORKD_TEST_STRICT=1`, which CI sets,
/// a skip fails the test instead.
pub fn needs(available: bool, what: &str, how: &str) -> bool {
    if available {
        return true;
    }
    let strict = std::env::var_os("PREFORKD_TEST_STRICT").is_some_and(|v| v == "1");
    assert!(
        !strict,
        "needs {what} ({how}), and PREFORKD_TEST_STRICT=1 forbids skipping"
    );
    eprintln!("skipped: needs {what} ({how})");
    false
}

/// [`needs`] root: the tests that play an unprivileged attacker against a
/// root master start the master as root and the attacker as `nobody`.
pub fn needs_root() -> bool {
    needs(
        nix::unistd::geteuid().is_root(),
        "root",
        "run the tests with sudo, as CI does",
    )
}

/// `config` with its own control socket in `dir` (tests run in parallel;
/// the default /run/preforkd.sock would be shared).
pub fn with_control(dir: &TempDir, config: &str) -> String {
    let line = format!(
        "control = \"{}\"\n",
        dir.path().join("control.sock").display()
    );
    match config.find("[daemon]\n") {
        Some(i) => format!("{}[daemon]\n{line}{}", &config[..i], &config[i + 9..]),
        None => format!("[daemon]\n{line}\n{config}"),
    }
}

/// A copy of the binary in `dir` (made world-readable and searchable) that
/// `nobody` can execute whatever the permissions of the checkout. Waits
/// until the copy can be executed: another test thread that forked while
/// the copy was being written holds it open for writing until its own exec
/// (ETXTBSY, "Text file busy").
pub fn binary_for_nobody(dir: &TempDir) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("preforkd");
    std::fs::copy(BIN, &copy).unwrap();
    let runs = wait_until(Duration::from_secs(5), || {
        Command::new(&copy)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(runs, "the copy {} cannot be executed", copy.display());
    copy
}

/// A free TCP port on 127.0.0.1 (bound, then released), for a daemon
/// that does not report the port it picked (a detached one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A syslog stand-in: a datagram socket bound at `log.sock` in `dir`,
/// whose reads wait at most `limit`.
pub fn syslog_in(dir: &TempDir, limit: Duration) -> (PathBuf, std::os::unix::net::UnixDatagram) {
    let path = dir.path().join("log.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(limit)).unwrap();
    (path, socket)
}

/// The pid a pidfile names.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Raises this process's descriptor limit so that it can hold `n`
/// connections.
pub fn allow_descriptors(n: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= n,
        "the hard limit on descriptors ({hard}) is below {n}"
    );
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

/// How many descriptors process `pid` has open.
pub fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Resident memory of process `pid`, in KiB (VmRSS).
pub fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `preforkd load ADDR ARGS... --json` to the end and returns its
/// figures (connections, failed, per_second, p50_us, p99_us, ...).
pub fn load(addr: &str, args: &[&str]) -> serde_json::Value {
    let out = run_command_within(
        Command::new(BIN).args(["load", addr, "--json"]).args(args),
        Duration::from_secs(120),
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "load {addr} {args:?}: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
