//! Every error a user can cause: one line, the right exit status, and
//! nothing left running.

use std::os::unix::fs::PermissionsExt;

use crate::util::*;

/// Runs preforkd, checks the exit status and that stderr is exactly one
/// line starting with `preforkd: ` and containing `expect`.
fn fails_with(args: &[&str], code: i32, expect: &str) {
    check_failure(run_to_exit(args), args, code, expect);
}

fn check_failure(out: std::process::Output, args: &[&str], code: i32, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "preforkd {args:?}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "preforkd {args:?} printed more than one line:\n{stderr}"
    );
    assert!(stderr.starts_with("preforkd: "), "{stderr}");
    assert!(
        stderr.contains(expect),
        "preforkd {args:?}: expected {expect:?} in {stderr:?}"
    );
}

// Issue #2, acceptance 7.
#[test]
fn address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with(
        &["run", &addr, "--builtin", "echo"],
        1,
        &format!("cannot bind {addr}: Address already in use"),
    );
}

#[test]
fn permission_denied_on_a_low_port() {
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(1024);
    assert!(
        start > 1,
        "every port is unprivileged here (ip_unprivileged_port_start = {start}): cannot test"
    );
    let args = ["run", "127.0.0.1:1", "--builtin", "echo"];
    let out = if nix::unistd::geteuid().is_root() {
        // As root, run it as nobody (setpriv, util-linux), from a copy that
        // nobody can reach whatever the permissions of the checkout are.
        let dir = TempDir::new("lowport");
        let copy = binary_for_nobody(&dir);
        run_command_to_exit(as_uid_65534(&copy).args(args))
    } else {
        run_to_exit(&args)
    };
    check_failure(out, &args, 1, "cannot bind 127.0.0.1:1: Permission denied");
}

#[test]
fn malformed_addresses() {
    for (addr, why) in [
        ("127.0.0.1", "expected"),
        ("127.0.0.1:http", "port"),
        ("::1:7000", "brackets"),
        ("localhost:7000", "IP address"),
        ("unix:", "path"),
        (":99999", "port"),
    ] {
        fails_with(
            &["run", addr, "--builtin", "echo"],
            2,
            &format!("invalid address '{addr}'"),
        );
        fails_with(&["run", addr, "--builtin", "echo"], 2, why);
    }
}

#[test]
fn missing_and_non_executable_programs() {
    fails_with(
        &["run", "127.0.0.1:0", "--", "/nonexistent/prog"],
        2,
        "cannot run /nonexistent/prog: No such file or directory",
    );
    fails_with(
        &["run", "127.0.0.1:0", "--", "no-such-program-xyz"],
        2,
        "not found in $PATH",
    );
    let dir = TempDir::new("noexec");
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = file.to_str().unwrap();
    fails_with(&["run", "127.0.0.1:0", "--", file], 2, "Permission denied");
    fails_with(&["run", "127.0.0.1:0", "--", "/tmp"], 2, "is a directory");
}

#[test]
fn unknown_builtin() {
    fails_with(
        &["run", "127.0.0.1:0", "--builtin", "ech0"],
        2,
        "unknown builtin 'ech0' (expected one of: echo, discard, daytime, chargen, time, work, metrics)",
    );
}

#[test]
fn bad_flags() {
    fails_with(
        &["run", "127.0.0.1:0", "--builtin", "echo", "--frobnicate"],
        2,
        "--frobnicate",
    );
    fails_with(
        &["run", "127.0.0.1:0", "--workers", "0", "--builtin", "echo"],
        2,
        "0",
    );
    fails_with(
        &[
            "run",
            "127.0.0.1:0",
            "--workers",
            "many",
            "--builtin",
            "echo",
        ],
        2,
        "many",
    );
    fails_with(&["run", "127.0.0.1:0"], 2, "--builtin");
    fails_with(
        &["run", "127.0.0.1:0", "--builtin", "echo", "--", "/bin/cat"],
        2,
        "cannot be used with",
    );
    fails_with(
        &[
            "run",
            "127.0.0.1:0",
            "--graceful-timeout",
            "soon",
            "--builtin",
            "echo",
        ],
        2,
        "invalid duration",
    );
    fails_with(&["serve-all"], 2, "serve-all");
    fails_with(
        &[
            "run",
            "127.0.0.1:0",
            "--udp",
            "--workers",
            "2",
            "--",
            "/bin/cat",
        ],
        2,
        "--workers must be 1",
    );
    fails_with(
        &["run", "127.0.0.1:0", "--timeout", "0s", "--builtin", "echo"],
        2,
        "--timeout must be longer",
    );
}

#[test]
fn help_and_version_exit_zero() {
    let out = run_to_exit(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("preforkd "));
    let out = run_to_exit(&["run", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--graceful-timeout"));
}

#[test]
fn a_udp_port_already_taken_is_refused() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = TempDir::new("udp-taken");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("[[service]]\nname = \"u\"\nprotocol = \"udp\"\nlisten = [\"{addr}\"]\nbuiltin = \"echo\"\n"),
    )
    .unwrap();
    let out = run_to_exit(&["serve", "--foreground", "-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "preforkd: cannot bind {addr}: Address already in use"
        )),
        "{stderr}"
    );
}
