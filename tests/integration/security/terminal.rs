//! Defence 1 of docs/security.md: no terminal, no session. A program the
//! daemon runs, as `nobody` or as root, tries to push input into the
//! terminal preforkd was started from (TIOCSTI on its stderr and on
//! /dev/tty), under `run`, `serve --foreground` and a detached `serve`;
//! and its stderr must reach the daemon's log.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// Runs its arguments on a new pseudo-terminal, as the controlling
/// terminal of a new session with it as stdin, stdout and stderr (what a
/// shell in a terminal window gives a command), and copies everything
/// written to the terminal to its own stderr: what the admin would see.
/// The first line is `PTYCHILD PID`. Echo stays on, so input pushed into
/// the terminal shows up in the copy too.
const ON_A_TERMINAL: &str = r#"
import os, pty, sys, termios
pid, fd = pty.fork()
if pid == 0:
    attrs = termios.tcgetattr(0)
    attrs[1] &= ~termios.ONLCR
    termios.tcsetattr(0, termios.TCSANOW, attrs)
    os.execv(sys.argv[1], sys.argv[1:])
sys.stderr.write("PTYCHILD %d\n" % pid)
sys.stderr.flush()
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    sys.stderr.buffer.write(data)
    sys.stderr.flush()
"#;

/// The attacker: a program that pushes `zq...` into the terminal through
/// its stderr, through /dev/tty and (not as root) through its worker's
/// stderr in /proc, one TIOCSTI per byte, writes a line to stderr, and
/// tells its client how each attempt went.
const ATTACKER: &str = r#"#!/usr/bin/python3
import errno, fcntl, os, sys, termios
def push(fd, text):
    try:
        for b in text:
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([b]))
        return "INJECTED"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
fd2 = push(2, b"zq2zq")
try:
    tty = push(os.open("/dev/tty", os.O_RDWR), b"zqTzq")
except OSError as e:
    tty = "open:" + errno.errorcode.get(e.errno, str(e.errno))
# The worker's own stderr, through /proc (root could; it is trusted).
parent = "root"
if os.getuid() != 0:
    try:
        parent = push(os.open("/proc/%d/fd/2" % os.getppid(), os.O_RDWR), b"zqPzq")
    except OSError as e:
        parent = "open:" + errno.errorcode.get(e.errno, str(e.errno))
os.write(2, b"attacker says \x1b[31mhello\nand a second line")
sys.stdout.write("pid=%d uid=%d fd2=%s tty=%s parent=%s\n" % (os.getpid(), os.getuid(), fd2, tty, parent))
sys.stdout.flush()
"#;

/// A preforkd started on a terminal by [`ON_A_TERMINAL`]; killed, with its
/// workers, when dropped.
struct OnTerminal {
    daemon: Daemon,
    pid: u32,
}

impl OnTerminal {
    fn start(dir: &TempDir, args: &[&str]) -> OnTerminal {
        let harness = dir.path().join("on-a-terminal.py");
        std::fs::write(&harness, ON_A_TERMINAL).unwrap();
        let mut command = Command::new(PYTHON);
        command.arg(&harness).arg(BIN).args(args);
        let daemon = Daemon::start_with(&mut command, args);
        let pid = daemon
            .stderr()
            .lines()
            .find_map(|l| l.strip_prefix("PTYCHILD ")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no PTYCHILD line\n{}", daemon.report()));
        OnTerminal { daemon, pid }
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        kill(self.pid, libc::SIGKILL);
        wait_until(Duration::from_secs(5), || is_gone(self.pid));
    }
}

/// What the attacker reported: pid, uid, fd2, tty.
struct Report {
    pid: u32,
    uid: u32,
    fd2: String,
    tty: String,
    /// The worker's descriptor 2 through /proc/PPID/fd/2 (not tried as root).
    parent: String,
}

/// Connects to `addr`, lets the attacker run, and reads its report.
fn attack(addr: &str, context: &dyn Fn() -> String) -> Report {
    let addr: std::net::SocketAddr = addr.trim().parse().unwrap();
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}\n{}", context()));
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    BufReader::new(&mut c)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("no report: {e}\n{}", context()));
    let field = |name: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line:?}\n{}", context()))
            .to_string()
    };
    Report {
        pid: field("pid").parse().unwrap(),
        uid: field("uid").parse().unwrap(),
        fd2: field("fd2"),
        tty: field("tty"),
        parent: field("parent"),
    }
}

/// The attacker, where `nobody` can run it.
fn attacker(dir: &TempDir) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.script("attacker.py", ATTACKER)
}

/// Session id and controlling terminal (tty_nr) of `pid`.
fn session_and_tty(pid: u32) -> (String, String) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    (
        fields.get(3).unwrap_or(&"?").to_string(),
        fields.get(4).unwrap_or(&"?").to_string(),
    )
}

/// Checks the attack failed both ways, nothing reached the terminal's
/// input, and the program's stderr came out on the terminal as the
/// daemon's log lines, tagged with the service and the program's pid.
fn assert_defended(t: &OnTerminal, service: &str, report: &Report, expected_uid: u32) {
    let d = &t.daemon;
    assert_eq!(report.uid, expected_uid, "{}", d.report());
    assert_ne!(report.fd2, "INJECTED", "TIOCSTI on stderr\n{}", d.report());
    assert_ne!(
        report.tty,
        "INJECTED",
        "TIOCSTI on /dev/tty\n{}",
        d.report()
    );
    assert_ne!(
        report.parent,
        "INJECTED",
        "TIOCSTI on the worker's stderr\n{}",
        d.report()
    );
    // The worker is not dumpable (it changed ids): /proc will not open it.
    if expected_uid != 0 {
        assert_eq!(report.parent, "open:EACCES", "{}", d.report());
    }
    // No controlling terminal, and descriptor 2 is not a terminal.
    assert_eq!(report.tty, "open:ENXIO", "{}", d.report());
    assert_eq!(report.fd2, "ENOTTY", "{}", d.report());
    let tag = format!("service {service}: attacker.py[{}]: ", report.pid);
    assert!(
        d.wait_for_log(
            &format!("{tag}attacker says \\u{{1b}}[31mhello"),
            Duration::from_secs(5)
        ) && d.wait_for_log(&format!("{tag}and a second line"), Duration::from_secs(5)),
        "the program's stderr is not on the terminal, tagged and escaped\n{}",
        d.report()
    );
    assert!(
        !d.stderr().contains("zq"),
        "input was pushed\n{}",
        d.report()
    );
}

/// Every worker of the daemon `pid` is out of its session and has no
/// controlling terminal.
fn assert_workers_have_no_terminal(pid: u32, d: &Daemon) {
    let (master_session, master_tty) = session_and_tty(pid);
    assert_ne!(
        master_tty,
        "0",
        "the harness gave no terminal\n{}",
        d.report()
    );
    let workers = children_of(pid);
    assert!(!workers.is_empty(), "{}", d.report());
    for w in workers {
        let (session, tty) = session_and_tty(w);
        assert_ne!(
            session, master_session,
            "worker {w} in the master's session"
        );
        assert_eq!(tty, "0", "worker {w} has a controlling terminal");
    }
}

#[test]
fn a_program_run_by_run_cannot_push_input_into_the_terminal() {
    if !can_play_nobody() {
        return;
    }
    let dir = TempDir::new("tty-run");
    let program = attacker(&dir);
    let program = program.to_str().unwrap();
    // As nobody, and as root (the master's own user: no --user).
    for (user_args, uid) in [(vec!["--user", "nobody"], 65534), (vec![], 0)] {
        let mut args = vec!["run", "-w", "1"];
        args.extend(user_args);
        args.extend(["127.0.0.1:0", "--", program]);
        let t = OnTerminal::start(&dir, &args);
        let addr = t.daemon.listening().to_string();
        let report = attack(&addr, &|| t.daemon.report());
        assert_defended(&t, "attacker.py", &report, uid);
        assert_workers_have_no_terminal(t.pid, &t.daemon);
    }
}

#[test]
fn a_program_run_by_serve_in_the_foreground_cannot_push_input_into_the_terminal() {
    if !can_play_nobody() {
        return;
    }
    let dir = TempDir::new("tty-serve");
    let program = attacker(&dir);
    let config = write_config(
        &dir,
        &format!(
            "[[service]]\nname = \"as-nobody\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{p}\"]\n\
                 user = \"nobody\"\nworkers = 1\n\n\
                 [[service]]\nname = \"as-root\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{p}\"]\n\
                 user = \"root\"\nworkers = 1\n\n\
                 [[service]]\nname = \"event\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{p}\"]\n\
                 user = \"nobody\"\nmodel = \"event\"\nworkers = 1\n",
            p = program.display()
        ),
    );
    let t = OnTerminal::start(
        &dir,
        &["serve", "--foreground", "-c", config.to_str().unwrap()],
    );
    t.daemon.wait_running();
    assert!(
        wait_until(Duration::from_secs(5), || children_of(t.pid).len() == 3),
        "{}",
        t.daemon.report()
    );
    for (service, uid) in [("as-nobody", 65534), ("as-root", 0), ("event", 65534)] {
        let addr = t.daemon.address_of(service, "tcp");
        let report = attack(&addr, &|| t.daemon.report());
        assert_defended(&t, service, &report, uid);
    }
    assert_workers_have_no_terminal(t.pid, &t.daemon);
}

#[test]
fn a_detached_daemon_logs_its_programs_stderr_to_syslog_line_by_line() {
    if !can_play_nobody() {
        return;
    }
    let dir = TempDir::new("tty-detached");
    let program = attacker(&dir);
    let (syslog_path, syslog) = syslog_in(&dir, Duration::from_millis(200));
    let port = free_port();
    let pidfile = dir.path().join("preforkd.pid");
    let config = write_config(
        &dir,
        &format!(
            "[daemon]\nsyslog_socket = \"{}\"\n\n\
                 [[service]]\nname = \"detached\"\nlisten = [\"127.0.0.1:{port}\"]\n\
                 exec = [\"{}\"]\nuser = \"nobody\"\nworkers = 1\n",
            syslog_path.display(),
            program.display()
        ),
    );
    // The detached daemon and its workers carry this tag: they are killed
    // at the end whatever happened, even with no pidfile.
    let tag = format!("tty-detached-{}", std::process::id());
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            for pid in processes_tagged(&self.0) {
                kill(pid, libc::SIGTERM);
            }
            wait_until(Duration::from_secs(10), || {
                processes_tagged(&self.0).is_empty()
            });
            for pid in processes_tagged(&self.0) {
                kill(pid, libc::SIGKILL);
            }
        }
    }
    let _stop = Stop(tag.clone());
    // serve returns once its child has detached (which outlives it).
    let mut serve = Command::new(BIN)
        .args(["serve", "-c", config.to_str().unwrap(), "--pidfile"])
        .arg(&pidfile)
        .env("PREFORKD_TEST_TAG", &tag)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let returned = wait_until(Duration::from_secs(10), || {
        serve.try_wait().ok().flatten().is_some()
    });
    if !returned {
        let _ = serve.kill();
    }
    assert!(returned && serve.wait().unwrap().success(), "serve failed");
    assert!(
        wait_until(Duration::from_secs(5), || read_pid(&pidfile).is_some()),
        "no pidfile"
    );
    let pid = read_pid(&pidfile).unwrap();
    assert!(
        processes_tagged(&tag).contains(&pid),
        "the daemon {pid} does not carry its tag"
    );
    let mut lines: Vec<String> = Vec::new();
    assert!(
        receive_until(&syslog, &mut lines, Duration::from_secs(10), |lines| {
            lines.iter().any(|l| l.contains("running with"))
        }),
        "{lines:?}"
    );
    let report = attack(&format!("127.0.0.1:{port}"), &|| String::new());
    assert_eq!(report.uid, 65534);
    assert_ne!(report.fd2, "INJECTED");
    assert_ne!(report.tty, "INJECTED");
    let tag = format!(": service detached: attacker.py[{}]: ", report.pid);
    let wanted = [
        format!("{tag}attacker says \\u{{1b}}[31mhello"),
        format!("{tag}and a second line"),
    ];
    let found = receive_until(&syslog, &mut lines, Duration::from_secs(5), |lines| {
        wanted
            .iter()
            .all(|w| lines.iter().any(|l| l.trim_end().ends_with(w.as_str())))
    });
    assert!(found, "wanted {wanted:?} among {lines:#?}");
    // One datagram per line, RFC 3164, from the worker: daemon.info.
    let first = lines.iter().find(|l| l.ends_with(&wanted[0])).unwrap();
    assert!(first.starts_with("<30>"), "{first}");
}

/// A program that reads a mode from its client: `live` floods its stderr
/// for as long as it runs (it never ends); `bg` leaves a background child
/// flooding its stderr and ends; both tell the client `served`. The
/// flooders' command line holds `TAG` (`TAG-live`), to find them.
const FLOODER: &str = r#"#!/bin/sh
read -r mode
case "$mode" in
live) echo served; exec yes TAG-live >&2 ;;
bg) (exec yes TAG </dev/null >&2 &) ;;
esac
echo served
"#;

/// The flooding processes still running: `yes TAG`.
fn flooders(tag: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == tag.as_bytes()))
        })
        .filter(|&pid| !is_gone(pid))
        .collect()
}

/// Kills the flooders left, whatever happened.
struct KillFlooders(String);

impl Drop for KillFlooders {
    fn drop(&mut self) {
        for pid in flooders(&self.0) {
            kill(pid, libc::SIGKILL);
        }
    }
}

/// Sends `mode` to the daemon at `addr` and reads `served`, within 10 s.
/// With `keep`, the connection is returned open (a `live` program).
fn ask(addr: &str, mode: &str, context: &dyn Fn() -> String) -> std::net::TcpStream {
    use std::io::Write;
    let addr: std::net::SocketAddr = addr.trim().parse().unwrap();
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}\n{}", context()));
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(format!("{mode}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(&mut c)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{mode}: not served: {e}\n{}", context()));
    assert_eq!(line, "served\n", "{mode}\n{}", context());
    c
}

/// The end of the daemon's log (it may be huge).
fn tail(d: &Daemon) -> String {
    let log = d.stderr();
    let from = log.len().saturating_sub(3000);
    let from = (from..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(log.len());
    format!("{} bytes of log, ending\n{}", log.len(), &log[from..])
}

/// Starts `run ARGS -- FLOODER` on a terminal, as nobody, so the
/// programs' stderr goes through the worker's relay.
fn start_flooder(dir: &TempDir, tag: &str, model: &str) -> OnTerminal {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = dir.script("flood.sh", &FLOODER.replace("TAG", tag));
    let program = program.to_str().unwrap();
    let args = [
        "run",
        "-w",
        "1",
        "--model",
        model,
        "--user",
        "nobody",
        "127.0.0.1:0",
        "--",
        program,
    ];
    OnTerminal::start(dir, &args)
}

#[test]
fn a_program_whose_child_floods_stderr_after_it_ended_cannot_stop_its_worker() {
    if !can_play_nobody() {
        return;
    }
    let dir = TempDir::new("tty-flood");
    let tag = format!("zzflood-{}-prefork", std::process::id());
    let _cleanup = KillFlooders(tag.clone());
    let t = start_flooder(&dir, &tag, "prefork");
    let addr = t.daemon.listening().to_string();
    let context = || tail(&t.daemon);
    // Each program leaves a child writing to the pipe for ever; the one
    // worker still serves the next client, and the next.
    for _ in 0..3 {
        ask(&addr, "bg", &context);
    }
    // The leftover writers lost their pipe (SIGPIPE), and the log stayed
    // bounded: at most what is logged of each program, plus the notes.
    assert!(
        wait_until(Duration::from_secs(10), || flooders(&tag).is_empty()),
        "flooders still running: {:?}\n{}",
        flooders(&tag),
        context()
    );
    let log = t.daemon.stderr().len();
    assert!(log < 4 * 2 * 256 * 1024, "{}", context());
}

#[test]
fn a_program_flooding_stderr_cannot_stall_an_event_worker() {
    if !can_play_nobody() {
        return;
    }
    let dir = TempDir::new("tty-flood-event");
    let tag = format!("zzflood-{}-event", std::process::id());
    let _cleanup = KillFlooders(tag.clone());
    let t = start_flooder(&dir, &tag, "event");
    let addr = t.daemon.listening().to_string();
    let context = || tail(&t.daemon);
    // One program floods its stderr as long as it runs; the same worker
    // still serves other clients, and stops logging it past the cap.
    let live = ask(&addr, "live", &context);
    for _ in 0..3 {
        ask(&addr, "bg", &context);
    }
    assert!(
        t.daemon.wait_for_log(
            "bytes of stderr logged: the rest is dropped",
            Duration::from_secs(10)
        ),
        "{}",
        context()
    );
    // Once the live one ends, what was not logged of it is counted, and
    // with no program left the pipe is renewed: the leftover writers lose
    // it (SIGPIPE).
    let live_tag = format!("{tag}-live");
    let _cleanup_live = KillFlooders(live_tag.clone());
    for pid in flooders(&live_tag) {
        kill(pid, libc::SIGKILL);
    }
    assert!(
        t.daemon
            .wait_for_log("bytes of stderr dropped", Duration::from_secs(10)),
        "{}",
        context()
    );
    assert!(
        wait_until(Duration::from_secs(10), || flooders(&tag).is_empty()),
        "flooders still running: {:?}\n{}",
        flooders(&tag),
        context()
    );
    drop(live);
    let log = t.daemon.stderr().len();
    assert!(log < 6 * 2 * 256 * 1024, "{}", context());
}
