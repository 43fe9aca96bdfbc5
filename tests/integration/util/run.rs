//! Commands run to completion: `preforkd ARGS` (or any command) within a
//! deadline, killed after it, with a check that nothing it started
//! outlives it; and the command that runs a program as `nobody`. A
//! daemon that keeps running is a [`Daemon`](super::Daemon).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{kill, processes_tagged, wait_until, BIN};

/// Runs `preforkd ARGS` to completion (10 s at most; killed after that)
/// with a tag in its environment, and checks nothing it started outlives it.
pub fn run_to_exit(args: &[&str]) -> Output {
    run_command_to_exit(Command::new(BIN).args(args))
}

pub fn run_command_to_exit(command: &mut Command) -> Output {
    run_command_within(command, Duration::from_secs(10))
}

/// Runs `command` to completion and checks that it failed as a usage or
/// configuration error does: exit status 2, `message` on stderr. Its
/// stderr.
pub fn expect_usage_error(command: &mut Command, message: &str) -> String {
    let out = run_command_to_exit(command);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(message), "not {message:?} in {stderr}");
    stderr
}

/// As [`run_command_to_exit`], allowing `limit` for a long run.
pub fn run_command_within(command: &mut Command, limit: Duration) -> Output {
    run_command_from(command, Stdio::null(), limit)
}

/// As [`run_command_within`], with `stdin` as its standard input.
pub fn run_command_from(command: &mut Command, stdin: Stdio, limit: Duration) -> Output {
    let tag = format!("{}-{:?}", std::process::id(), Instant::now());
    let (output, exited) =
        output_from(command.env("PREFORKD_TEST_TAG", &tag), stdin, limit, || {
            // And whatever it started (servers, load generators).
            for pid in processes_tagged(&tag) {
                kill(pid, libc::SIGKILL);
            }
        });
    assert!(exited, "preforkd did not exit within {limit:?}: {output:?}");
    let left = processes_tagged(&tag);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    output
}

/// Runs `command` (no stdin, its output piped) until it exits or `limit`
/// passes; then kills it and calls `on_timeout` (before its output is read
/// to the end). Its output, and whether it exited by itself.
pub fn output_within(
    command: &mut Command,
    limit: Duration,
    on_timeout: impl FnOnce(),
) -> (Output, bool) {
    output_from(command, Stdio::null(), limit, on_timeout)
}

fn output_from(
    command: &mut Command,
    stdin: Stdio,
    limit: Duration,
    on_timeout: impl FnOnce(),
) -> (Output, bool) {
    let mut child = spawn(command, stdin, Stdio::piped());
    let exited = wait_until(limit, || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
        on_timeout();
    }
    (child.wait_with_output().unwrap(), exited)
}

/// The variables systemd sets for a service (sd_notify(3),
/// sd_listen_fds(3), sd_watchdog_enabled(3), systemd.exec(5)).
const SERVICE_MANAGER_VARIABLES: [&str; 7] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "JOURNAL_STREAM",
];

/// Spawns `command` with `stdin`, `stdout`, and its stderr piped: how
/// the harness starts a `preforkd`, to its end or to keep running.
pub(super) fn spawn(command: &mut Command, stdin: Stdio, stdout: Stdio) -> Child {
    // What a service manager gives the process it runs, and a test run
    // under one (in a container, a CI unit) would pass on: only where the
    // test sets it itself.
    for name in SERVICE_MANAGER_VARIABLES {
        if !command.get_envs().any(|(k, _)| k == name) {
            command.env_remove(name);
        }
    }
    command
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn preforkd")
}

/// `setpriv` running `program` as uid and gid 65534 (nobody, nogroup) with
/// no other group; the caller adds the arguments.
pub fn as_uid_65534(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(program);
    command
}
