//! Exec services: the connection on stdin/stdout, nothing else open, and
//! the UCSPI variables of tcpserver.

use std::io::{Read, Write};
use std::time::Duration;

use crate::util::*;

fn exchange(d: &Daemon, target: std::net::SocketAddr) -> (String, u16) {
    let mut c = connect_within_5s(&target).unwrap();
    let port = c.local_addr().unwrap().port();
    let mut out = String::new();
    c.read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("{e}\n{}", d.report()));
    (out, port)
}

// Issue #2, acceptance 2 (exec part).
#[test]
fn an_exec_service_sees_only_its_connection_and_the_ucspi_variables() {
    let dir = TempDir::new("exec");
    let script = dir.script("report.sh", REPORT_SCRIPT);
    for listen in ["127.0.0.1:0", "[::1]:0"] {
        let d = Daemon::start(&[
            "run",
            listen,
            "--workers",
            "2",
            "--",
            script.to_str().unwrap(),
        ]);
        let (out, client_port) = exchange(&d, d.addr());
        let (env, fds) = parse_report(&out);
        let ip = d.addr().ip().to_string();
        assert_eq!(env["PROTO"], "TCP", "{out}");
        assert_eq!(env["TCPREMOTEIP"], ip, "{out}");
        assert_eq!(env["TCPREMOTEPORT"], client_port.to_string(), "{out}");
        assert_eq!(env["TCPLOCALIP"], ip, "{out}");
        assert_eq!(env["TCPLOCALPORT"], d.port().to_string(), "{out}");
        assert_eq!(env["IPCLOCALPATH"], "unset", "{out}");
        check_fds(&fds, &format!("{out}\n{}", d.report()));
    }
}

#[test]
fn an_exec_service_reads_stdin_and_writes_stdout() {
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "2", "--", "/bin/cat"]);
    let mut c = d.connect();
    assert_eq!(echo_once(&mut c, "through cat\n").unwrap(), "through cat\n");
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // A program found through $PATH.
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "1", "--", "cat"]);
    let mut c = d.connect();
    assert_eq!(echo_once(&mut c, "via PATH\n").unwrap(), "via PATH\n");
}

#[test]
fn an_exec_service_on_a_unix_socket_gets_the_ipc_variables() {
    let dir = TempDir::new("exec-unix");
    let script = dir.script(
        "ipc.sh",
        "#!/bin/sh\nprintf '%s %s %s\\n' \"$PROTO\" \"$IPCLOCALPATH\" \"$IPCREMOTEEUID\"\n",
    );
    let sock = dir.path().join("svc.sock");
    let spec = format!("unix:{}", sock.display());
    let _d = Daemon::start(&[
        "run",
        &spec,
        "--workers",
        "1",
        "--",
        script.to_str().unwrap(),
    ]);
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let uid = nix::unistd::geteuid().as_raw();
    assert_eq!(out, format!("IPC {} {uid}\n", sock.display()));
}

// Issue #2: "A program that fails to exec for one connection closes that
// connection and is logged; the pool keeps serving."
/// The signal masks of /proc/self/status, by name.
fn signal_masks(out: &str) -> std::collections::BTreeMap<String, u64> {
    out.lines()
        .filter(|l| l.starts_with("Sig"))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.to_string(),
                u64::from_str_radix(v.trim(), 16).unwrap_or(u64::MAX),
            )
        })
        .collect()
}

// A worker ignores SIGPIPE (std does), has a handler for SIGTERM and,
// in some models, SIGCHLD, and blocks signals while it starts a program:
// the program gets none of that, whichever model starts it.
#[test]
fn a_program_starts_with_default_signals_and_an_empty_mask() {
    for model in ["prefork", "fork", "event"] {
        let d = Daemon::start(&[
            "run",
            "127.0.0.1:0",
            "--model",
            model,
            "--workers",
            "1",
            "--",
            "/bin/cat",
            "/proc/self/status",
        ]);
        let (out, _) = exchange(&d, d.addr());
        let masks = signal_masks(&out);
        for mask in ["SigBlk", "SigIgn", "SigCgt"] {
            // But glibc's own signals 32 and 33, which its posix_spawn
            // ignores in the children it starts (this daemon, here), and
            // which its sigaction() will not touch.
            let glibc = 1 << 31 | 1 << 32;
            assert_eq!(
                masks.get(mask).map(|m| m & !glibc),
                Some(0),
                "--model {model}: {mask} of the program\n{out}\n{}",
                d.report()
            );
        }
    }
}

#[test]
fn a_program_that_cannot_be_run_closes_that_connection_and_the_pool_keeps_serving() {
    let dir = TempDir::new("vanish");
    let body = "#!/bin/sh\necho served\n";
    let script = dir.script("svc.sh", body);
    let d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--",
        script.to_str().unwrap(),
    ]);
    let workers = set(&d.workers());

    std::fs::remove_file(&script).unwrap();
    let mut c = d.connect();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    assert!(out.is_empty(), "got {out:?}");
    assert!(
        d.wait_for_log("cannot run", Duration::from_secs(5)),
        "no log line for the failed exec\n{}",
        d.report()
    );

    dir.script("svc.sh", body);
    let mut c = d.connect();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert_eq!(out, "served\n");
    assert_eq!(
        set(&d.workers()),
        workers,
        "workers were replaced\n{}",
        d.report()
    );
}

#[test]
fn a_failing_program_is_logged_and_the_next_client_is_served() {
    let dir = TempDir::new("fail");
    let script = dir.script("fail.sh", "#!/bin/sh\necho bye\nexit 3\n");
    let d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--",
        script.to_str().unwrap(),
    ]);
    for _ in 0..3 {
        let mut c = d.connect();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out, "bye\n");
    }
    assert!(
        d.wait_for_log("exit status: 3", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    let mut c = d.connect();
    c.write_all(b"").unwrap();
}
