//! Defence 3 of docs/security.md: fork failure backs off.
//!
//! A process limit the master runs into (a pids cgroup's `pids.max`, the
//! `RLIMIT_NPROC` of a non-root master's user) must not make it spin: it
//! tries at most once a second per pool, doubling the wait, says so in a
//! handful of lines, and says when it works again. A program that cannot
//! be spawned is a warning with its errno, never an idle client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

const PIDS: &str = "/sys/fs/cgroup/pids";
const V2: &str = "/sys/fs/cgroup";

/// A pids cgroup (v1) of its own, removed on drop, with whatever is still
/// in it killed first, whether the test passed or not.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    /// A new group allowing `max` processes; `None` (after `needs`) when
    /// there is no pids hierarchy to make one in.
    fn new(name: &str, max: &str) -> Option<PidsCgroup> {
        if !needs_root() {
            return None;
        }
        // cgroup v1's pids hierarchy, or v2's root with the pids
        // controller enabled for its children.
        let v2_pids = std::fs::read_to_string(Path::new(V2).join("cgroup.subtree_control"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "pids"));
        let root = if Path::new(PIDS).join("cgroup.procs").exists() {
            PIDS
        } else if v2_pids {
            V2
        } else {
            needs(
                false,
                "a pids cgroup: cgroup v1's at /sys/fs/cgroup/pids, or v2's pids controller in /sys/fs/cgroup/cgroup.subtree_control",
                "mount -t cgroup -o pids none /sys/fs/cgroup/pids, or echo +pids > /sys/fs/cgroup/cgroup.subtree_control",
            );
            return None;
        };
        let dir = Path::new(root).join(format!("preforkd-{name}-{}", std::process::id()));
        // A container may mount the hierarchy read-only.
        if let Err(e) = std::fs::create_dir(&dir) {
            needs(
                false,
                &format!("a pids cgroup this test can make a group in ({}: {e})", dir.display()),
                "run the tests as root on the host, or in a container with a writable /sys/fs/cgroup",
            );
            return None;
        }
        let group = PidsCgroup(dir);
        group.set_max(max);
        Some(group)
    }

    fn set_max(&self, max: &str) {
        std::fs::write(self.0.join("pids.max"), max).unwrap();
    }

    fn procs(&self) -> Vec<u32> {
        std::fs::read_to_string(self.0.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// `program ARGS`, moved into the group before it starts (so that
    /// everything it forks is counted there).
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
                self.0.display()
            ))
            .arg(program)
            .args(args);
        c
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("pids.max"), "max");
        let gone = wait_until(Duration::from_secs(10), || {
            for pid in self.procs() {
                kill(pid, libc::SIGKILL);
            }
            self.procs().is_empty() && std::fs::remove_dir(&self.0).is_ok()
        });
        if !gone {
            eprintln!("cannot remove the cgroup {}", self.0.display());
        }
    }
}

/// CPU time (user + system) of `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let getconf = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let per_second: u64 = String::from_utf8_lossy(&getconf.stdout)
        .trim()
        .parse()
        .unwrap();
    Duration::from_millis(ticks * 1000 / per_second)
}

/// The master's CPU use (a fraction of one CPU) and the lines it logged,
/// over 5 s.
fn measure(d: &Daemon) -> (f64, usize) {
    let window = Duration::from_secs(5);
    let (cpu0, lines0, t0) = (
        cpu_time(d.pid()),
        d.stderr().lines().count(),
        Instant::now(),
    );
    std::thread::sleep(window);
    let (cpu1, lines1) = (cpu_time(d.pid()), d.stderr().lines().count());
    let used = (cpu1 - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    (used, lines1 - lines0)
}

/// With `limit_reached` holding, the master backs off: under 5 % of a CPU
/// and at most 2 lines over 5 s; it still serves with the workers it has;
/// and once `raise` lifts the limit it says so (W0015) and fills the pool.
fn backs_off_and_recovers(d: &Daemon, workers: usize, running: usize, raise: impl FnOnce()) {
    assert!(
        d.wait_for_log("W0005", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    let first = d
        .stderr()
        .lines()
        .find(|l| l.contains("W0005"))
        .unwrap()
        .to_string();
    let (cpu, lines) = measure(d);
    eprintln!(
        "while fork fails: master CPU {:.2} %, {lines} lines in 5 s",
        cpu * 100.0
    );
    assert!(
        cpu < 0.05,
        "the master used {:.1} % of a CPU while fork failed\n{}",
        cpu * 100.0,
        tail(d)
    );
    assert!(
        lines <= 2,
        "{lines} log lines in 5 s while fork failed\n{}",
        tail(d)
    );
    assert!(first.contains("EAGAIN"), "{first}");
    assert_eq!(d.workers().len(), running, "{}", tail(d));
    if running > 0 {
        let mut c = d.connect();
        assert_eq!(echo_once(&mut c, "still\n").unwrap(), "still\n");
    }
    raise();
    let raised = Instant::now();
    assert!(
        d.wait_for_log("W0015", Duration::from_secs(40)),
        "no recovery line 40 s after the limit was raised\n{}",
        tail(d)
    );
    eprintln!(
        "recovered {:?} after the limit was raised",
        raised.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == workers),
        "{}",
        tail(d)
    );
    let mut c = d.connect();
    assert_eq!(echo_once(&mut c, "again\n").unwrap(), "again\n");
}

/// The daemon's report with only the last lines of a long log.
fn tail(d: &Daemon) -> String {
    let report = d.report();
    let lines: Vec<&str> = report.lines().collect();
    if lines.len() <= 60 {
        return report;
    }
    format!(
        "{}\n... {} lines ...\n{}",
        lines[..10].join("\n"),
        lines.len() - 60,
        lines[lines.len() - 50..].join("\n")
    )
}

#[test]
fn fork_failing_in_a_pids_cgroup_backs_off_and_recovers() {
    // The master and 2 workers fit; a pool of 6 does not.
    let Some(group) = PidsCgroup::new("fork", "3") else {
        return;
    };
    let args = ["run", "127.0.0.1:0", "-w", "6", "--builtin", "echo"];
    let d = Daemon::start_with(&mut group.command(BIN, &args), &args);
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 2),
        "{}",
        tail(&d)
    );
    backs_off_and_recovers(&d, 6, 2, || group.set_max("max"));
}

#[test]
fn a_runner_that_cannot_be_forked_backs_off_and_recovers() {
    // Only the master fits: the runner of a single-process model cannot
    // be forked.
    let Some(group) = PidsCgroup::new("runner", "1") else {
        return;
    };
    let args = [
        "run",
        "127.0.0.1:0",
        "--model",
        "iterative",
        "--builtin",
        "echo",
    ];
    let d = Daemon::start_with(&mut group.command(BIN, &args), &args);
    backs_off_and_recovers(&d, 1, 0, || group.set_max("max"));
}

#[test]
fn a_prefork_pass_runner_that_cannot_fork_its_children_backs_off_and_recovers() {
    // The master, the runner and one of its 4 children fit.
    let Some(group) = PidsCgroup::new("pass", "3") else {
        return;
    };
    let args = [
        "run",
        "127.0.0.1:0",
        "-w",
        "4",
        "--model",
        "prefork-pass",
        "--builtin",
        "echo",
    ];
    let d = Daemon::start_with(&mut group.command(BIN, &args), &args);
    backs_off_and_recovers(&d, 1, 1, || group.set_max("max"));
    let runner = d.workers()[0];
    assert!(
        wait_until(Duration::from_secs(5), || children_of(runner).len() == 4),
        "{}",
        tail(&d)
    );
}

/// A uid that no process uses (RLIMIT_NPROC counts a user's processes
/// system-wide, so `nobody`'s would depend on what else runs).
fn unused_uid() -> u32 {
    let used: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    (61000 + std::process::id() % 1000..)
        .find(|uid| !used.contains(uid))
        .unwrap()
}

#[test]
fn fork_failing_under_rlimit_nproc_for_a_non_root_master_backs_off_and_recovers() {
    if !needs_root() {
        return;
    }
    let tools = ["prlimit", "setpriv"]
        .iter()
        .all(|t| Command::new(t).arg("--version").output().is_ok());
    if !needs(tools, "prlimit and setpriv", "apt-get install util-linux") {
        return;
    }
    let dir = TempDir::new("nproc");
    let bin = binary_for_nobody(&dir);
    let uid = unused_uid().to_string();
    // The master and 2 workers fit under the limit; a pool of 6 does not.
    let args = ["run", "127.0.0.1:0", "-w", "6", "--builtin", "echo"];
    let mut command = Command::new("prlimit");
    command
        .args(["--nproc=3:", "setpriv"])
        .args([&format!("--reuid={uid}"), &format!("--regid={uid}")])
        .arg("--clear-groups")
        .arg(&bin)
        .args(args);
    let d = Daemon::start_with(&mut command, &args);
    assert_eq!(ids_of(d.pid()).0.split(' ').next(), Some(uid.as_str()));
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 2),
        "{}",
        tail(&d)
    );
    backs_off_and_recovers(&d, 6, 2, || {
        // As the master's user: root may lack CAP_SYS_RESOURCE (in a
        // container), which prlimit(2) on another user's process needs.
        let pid = d.pid().to_string();
        let raised = Command::new("setpriv")
            .args([&format!("--reuid={uid}"), &format!("--regid={uid}")])
            .args(["--clear-groups", "prlimit", "--pid", &pid, "--nproc=100:"])
            .status()
            .unwrap();
        assert!(raised.success());
    });
}

/// A connection to service `prog`, whose program cannot start: the client
/// sees the end at once, with nothing sent, and the worker logs `warned`
/// and the connection as failed (C0003), not as served.
fn fails_with(d: &Daemon, warned: &str) {
    use std::io::{Read, Write};
    let mut c = d.connect_to(&d.address_of("prog", "tcp"));
    let _ = c.write_all(b"hello\n");
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(got.is_empty(), "{got:?}");
    assert!(
        d.wait_for_log(warned, Duration::from_secs(5)),
        "{}",
        d.report()
    );
    assert!(
        d.wait_for_log("C0003 service prog:", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    assert!(!d.stderr().contains("C0001"), "{}", d.report());
}

fn exec_config(program: &Path) -> String {
    format!(
        "[[service]]\nname = \"prog\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{}\"]\nuser = \"nobody\"\nworkers = 1\nlog_connections = true\ntimeout = \"5s\"\n",
        program.display()
    )
}

#[test]
fn a_program_that_cannot_be_spawned_for_lack_of_processes_is_a_warning_not_an_idle_client() {
    // The master and its one worker fit; the worker's program does not.
    let Some(group) = PidsCgroup::new("spawn", "2") else {
        return;
    };
    let dir = TempDir::new("spawn");
    let path = dir.path().join("preforkd.toml");
    std::fs::write(
        &path,
        with_control(&dir, &exec_config(Path::new("/bin/cat"))),
    )
    .unwrap();
    let args = ["serve", "--foreground", "-c", path.to_str().unwrap()];
    let d = Daemon::start_with(&mut group.command(BIN, &args), &args);
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 1),
        "{}",
        d.report()
    );
    fails_with(&d, "W0013 service prog: cannot run /bin/cat: EAGAIN");
}

#[test]
fn a_program_that_cannot_be_executed_any_more_is_a_warning_with_its_errno() {
    use std::os::unix::fs::PermissionsExt;
    if !needs_root() {
        return;
    }
    let dir = TempDir::new("eacces");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = dir.script("prog.sh", "#!/bin/sh\nexec cat\n");
    let d = Daemon::serve(&dir, &exec_config(&program));
    // Removed from under the running daemon: execve(2) fails with EACCES.
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warned = format!(
        "W0013 service prog: cannot run {}: EACCES",
        program.display()
    );
    fails_with(&d, &warned);
}
