//! `serve` as a daemon: detaching, the pidfile, syslog (issue #5).

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

/// Runs `preforkd ARGS` and waits (10 s at most) for it to exit; what it
/// starts may outlive it (unlike [`run_to_exit`]).
fn run_detaching(args: &[&str]) -> std::process::Output {
    let (out, exited) = output_within(Command::new(BIN).args(args), Duration::from_secs(10), || {});
    assert!(exited, "serve did not return: {out:?}");
    out
}

/// Stops a detached daemon and waits until it is gone.
struct Detached(u32);

impl Drop for Detached {
    fn drop(&mut self) {
        kill(self.0, libc::SIGTERM);
        wait_until(Duration::from_secs(10), || is_gone(self.0));
        kill(self.0, libc::SIGKILL);
    }
}

// Issue #5, acceptance 2.
#[test]
fn serve_detaches_writes_its_pidfile_and_refuses_a_second_instance() {
    let dir = TempDir::new("detach");
    let pidfile = dir.path().join("preforkd.pid");
    let (syslog_path, syslog) = syslog_in(&dir, Duration::from_secs(5));
    let port = free_port();
    let config = dir.path().join("preforkd.toml");
    std::fs::write(
        &config,
        with_control(
            &dir,
            &format!(
                "[daemon]\nsyslog_socket = \"{}\"\nsyslog_facility = \"local3\"\n\n\
                 [[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:{port}\"]\nbuiltin = \"echo\"\nworkers = 2\n",
                syslog_path.display()
            ),
        ),
    )
    .unwrap();
    let (config, pid_arg) = (config.to_str().unwrap(), pidfile.to_str().unwrap());

    let out = run_detaching(&["serve", "-c", config, "--pidfile", pid_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(5), || read_pid(&pidfile).is_some()),
        "no pidfile"
    );
    let pid = read_pid(&pidfile).unwrap();
    let _daemon = Detached(pid);

    // Detached: a new session without a terminal, its parent gone (now
    // init or a subreaper).
    let fields = |pid: u32| -> Vec<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let daemon = fields(pid);
    let ours = fields(std::process::id());
    assert_ne!(daemon[3], ours[3], "same session as the test");
    assert_eq!(daemon[4], "0", "it has a controlling terminal");
    assert_ne!(daemon[1], std::process::id().to_string(), "still our child");
    assert!(
        wait_until(Duration::from_secs(5), || children_of(pid).len() == 2),
        "workers: {:?}",
        children_of(pid)
    );
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(echo_once(&mut c, "detached\n").unwrap(), "detached\n");
    drop(c);

    // Its log goes to syslog, RFC 3164: <PRI>Mmm dd hh:mm:ss preforkd[PID]: ...
    let mut lines = Vec::new();
    receive_until(&syslog, &mut lines, Duration::from_secs(10), |lines| {
        lines.iter().any(|l| l.contains("running with"))
    });
    let running = lines
        .iter()
        .find(|l| l.contains("running with"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    // local3 = 19, info = 6: 19 * 8 + 6 = 158.
    assert!(running.starts_with("<158>"), "{running}");
    assert!(
        running.contains(&format!(
            " preforkd[{pid}]: M0001 master {pid}: running with 2 workers"
        )),
        "{running}"
    );
    assert_eq!(&running[8..9], " ", "timestamp: {running}");

    // A second instance on the same pidfile refuses, naming the first.
    let out = run_detaching(&["serve", "-c", config, "--pidfile", pid_arg, "--foreground"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("already running as pid {pid}")),
        "{stderr}"
    );
    assert_eq!(
        read_pid(&pidfile),
        Some(pid),
        "the second instance touched the pidfile"
    );

    kill(pid, libc::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(10), || is_gone(pid)),
        "the daemon did not stop"
    );
    assert!(!pidfile.exists(), "the pidfile is left behind");
}

#[test]
fn a_stale_pidfile_is_taken_over() {
    let dir = TempDir::new("stale-pid");
    let pidfile = dir.path().join("preforkd.pid");
    std::fs::write(&pidfile, "999999\n").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        with_control(&dir, "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n"),
    )
    .unwrap();
    let d = Daemon::start(&[
        "serve",
        "--foreground",
        "-c",
        config.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    assert!(
        wait_until(Duration::from_secs(5), || read_pid(&pidfile)
            == Some(d.pid())),
        "{}",
        d.report()
    );
}

/// Reads notifications until one contains `want` (5 s at most), skipping
/// watchdog pings; returns it.
fn next_notification(socket: &UnixDatagram, want: &str) -> String {
    let mut got = Vec::new();
    let found = receive_until(socket, &mut got, Duration::from_secs(5), |got| {
        got.last().is_some_and(|msg| msg.lines().any(|l| l == want))
    });
    assert!(found, "no {want} notification within 5 s");
    got.pop().unwrap()
}

// Issue #5, acceptance 3.
#[test]
fn systemd_notifications_ready_reloading_stopping_and_watchdog() {
    let dir = TempDir::new("notify");
    let (notify_path, notify) = datagram_socket(&dir, "notify.sock", Duration::from_millis(200));
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        with_control(&dir, "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 3\n"),
    )
    .unwrap();
    let mut d = Daemon::start_with(
        Command::new(BIN)
            .args(["serve", "--foreground", "-c", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "200000"),
        &["serve (NOTIFY_SOCKET)"],
    );
    let ready = next_notification(&notify, "READY=1");
    // READY=1 comes once every worker is in accept.
    let workers = d.workers();
    assert_eq!(workers.len(), 3, "{}", d.report());
    for w in &workers {
        assert_eq!(
            wchan(*w).as_deref(),
            Some("inet_csk_accept"),
            "worker {w} not in accept at READY=1"
        );
    }
    assert!(
        ready.contains("STATUS=1 pools, 0 workers busy, 3 idle"),
        "{ready}"
    );

    // WATCHDOG=1 at half of WATCHDOG_USEC: about 10 in a second.
    let start = std::time::Instant::now();
    let mut pings = 0;
    let mut buf = [0u8; 512];
    while start.elapsed() < Duration::from_secs(1) {
        if let Ok(n) = notify.recv(&mut buf) {
            if &buf[..n] == b"WATCHDOG=1" {
                pings += 1;
            }
        }
    }
    eprintln!("{pings} WATCHDOG=1 in 1 s with WATCHDOG_USEC=200000");
    assert!(
        (5..=15).contains(&pings),
        "{pings} watchdog pings in a second"
    );

    d.signal(libc::SIGHUP);
    let reloading = next_notification(&notify, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    next_notification(&notify, "READY=1");

    d.signal(libc::SIGTERM);
    next_notification(&notify, "STOPPING=1");
    assert!(
        d.wait_exit_within(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        d.report()
    );
}

fn socket_inode(path: &str) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

// Issue #5, acceptance 4.
#[test]
fn socket_activation_serves_on_the_passed_socket_without_binding() {
    use std::os::fd::AsRawFd;
    let dir = TempDir::new("activation");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        with_control(&dir, &format!("[[service]]\nname = \"e\"\nlisten = [\"{addr}\"]\nbuiltin = \"echo\"\nworkers = 2\n")),
    )
    .unwrap();
    let d = Daemon::start_activated(&listener, "e", &config, false);
    assert!(
        d.stderr().contains("passed by the service manager"),
        "{}",
        d.report()
    );
    // The master's descriptor 3 is our socket: it never bound its own (it
    // could not have: we hold the address).
    let ours = socket_inode(&format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
    assert_eq!(
        socket_inode(&format!("/proc/{}/fd/3", d.pid())),
        Some(ours),
        "{}",
        d.report()
    );
    let mut c = d.connect_to(&addr.to_string());
    assert_eq!(echo_once(&mut c, "activated\n").unwrap(), "activated\n");
    drop(c);
    // The socket is the service manager's: stopping leaves it listening,
    // so what arrives meanwhile waits for the next start.
    let mut d = d;
    d.stop_gracefully();
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok(),
        "the passed socket was shut down"
    );
}

// Issue #5, acceptance 1.
#[test]
fn one_syslog_line_per_served_refused_and_failed_connection() {
    let dir = TempDir::new("connlog");
    let (syslog_path, syslog) = syslog_in(&dir, Duration::from_millis(500));
    let script = dir.script(
        "svc.sh",
        "#!/bin/sh\nread line\necho \"got $line\"\nexit 4\n",
    );
    let config = format!(
        "[daemon]\nlog = \"syslog\"\nsyslog_socket = \"{}\"\n\n\
         [[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n\
         log_connections = true\nonly_from = [\"127.0.0.1\"]\n\n\
         [[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{}\"]\nworkers = 1\nlog_connections = true\n",
        syslog_path.display(),
        script.display()
    );
    // Logs go to syslog, so wait for the `listening on` lines only.
    let path = dir.path().join("preforkd.toml");
    std::fs::write(&path, with_control(&dir, &config)).unwrap();
    let d = Daemon::start(&["serve", "--foreground", "-c", path.to_str().unwrap()]);
    assert!(
        d.wait_for_log("(tcp service x)", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    // Served: 11 bytes in, 11 out.
    let mut c = d.connect_to(&d.address_of("e", "tcp"));
    assert_eq!(echo_once(&mut c, "0123456789\n").unwrap(), "0123456789\n");
    let served_client = c.local_addr().unwrap().to_string();
    drop(c);
    // Refused: 127.0.0.2 is not in only_from.
    let e_addr: std::net::SocketAddr = d.address_of("e", "tcp").parse().unwrap();
    let s = connect_from("127.0.0.2", e_addr);
    let refused_client = s.local_addr().unwrap().to_string();
    // An exec'd program that exits 4, then one that cannot be run.
    let mut x = d.connect_to(&d.address_of("x", "tcp"));
    std::io::Write::write_all(&mut x, b"hi\n").unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut x, &mut out).unwrap();
    assert_eq!(out, "got hi\n");
    std::fs::remove_file(&script).unwrap();
    let mut y = d.connect_to(&d.address_of("x", "tcp"));
    let _ = std::io::Read::read_to_string(&mut y, &mut out);

    let mut lines = Vec::new();
    receive_until(&syslog, &mut lines, Duration::from_secs(5), |lines| {
        lines
            .iter()
            .filter(|l| ["C0001", "C0003", "W0030"].iter().any(|id| l.contains(id)))
            .count()
            >= 4
    });
    let find = |what: &str| {
        lines
            .iter()
            .find(|l| l.contains(what))
            .cloned()
            .unwrap_or_else(|| panic!("no {what:?} in {lines:#?}"))
    };
    let served = find(&format!("C0001 service e: {served_client} served by"));
    assert!(served.starts_with("<30>"), "daemon.info is <30>: {served}");
    assert!(served.contains(" ms, 11 bytes in, 11 out"), "{served}");
    let refused = find(&format!(
        "W0030 service e: refused {refused_client}: not in only_from"
    ));
    assert!(refused.contains("preforkd["), "{refused}");
    let program = find("C0001 service x:");
    assert!(
        program.contains("bytes in") && program.contains("program exit status: 4"),
        "{program}"
    );
    // The program's own status is info (daemon.info, <30>), not an error.
    let status = find("C0002 svc.sh for ");
    assert!(status.starts_with("<30>"), "daemon.info is <30>: {status}");
    assert!(status.ends_with(": exit status: 4"), "{status}");
    let failed = find("C0003 service x:");
    assert!(failed.contains("cannot run"), "{failed}");
}
