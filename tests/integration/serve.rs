//! `preforkd serve`: many services from one config file, TCP and UDP.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::time::Duration;

use crate::util::*;

fn udp_exchange(from: &UdpSocket, to: &str, payload: &[u8]) -> Option<Vec<u8>> {
    from.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    from.send_to(payload, to).unwrap();
    let mut buf = [0u8; 2048];
    from.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| buf[..n].to_vec())
}

// Issue #3, acceptance 1.
#[test]
fn one_config_serves_tcp_exec_unix_and_udp_services() {
    let dir = TempDir::new("five");
    let sock = dir.path().join("echo.sock");
    let config = format!(
        r#"
[daemon]
graceful_timeout = "5s"

[[service]]
name = "echo"
listen = ["127.0.0.1:0"]
builtin = "echo"
workers = 2

[[service]]
name = "greeter"
listen = ["127.0.0.1:0"]
exec = ["/bin/sh", "-c", "echo \"hello $GREETING from $TCPREMOTEIP\"; pwd"]
env = {{ GREETING = "there" }}
directory = "/tmp"
workers = 1

[[service]]
name = "local-echo"
listen = ["unix:{}"]
builtin = "echo"
socket_mode = "0600"
workers = 1

[[service]]
name = "echo-udp"
protocol = "udp"
listen = ["127.0.0.1:0"]
builtin = "echo"
workers = 1

[[service]]
name = "daytime-udp"
protocol = "udp"
listen = ["127.0.0.1:0"]
builtin = "daytime"
workers = 1
"#,
        sock.display()
    );
    let d = Daemon::serve(&dir, &config);

    let mut c = d.connect_to(&d.address_of("echo", "tcp"));
    assert_eq!(echo_once(&mut c, "tcp echo\n").unwrap(), "tcp echo\n");

    let mut c = d.connect_to(&d.address_of("greeter", "tcp"));
    let mut out = String::new();
    c.read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("{e}: got {out:?}\n{}", d.report()));
    assert_eq!(out, "hello there from 127.0.0.1\n/tmp\n");

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut u = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    u.write_all(b"unix\n").unwrap();
    let mut buf = [0u8; 5];
    u.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"unix\n");

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echoed = udp_exchange(&client, &d.address_of("echo-udp", "udp"), b"datagram");
    assert_eq!(echoed.as_deref(), Some(&b"datagram"[..]), "{}", d.report());
    let day =
        udp_exchange(&client, &d.address_of("daytime-udp", "udp"), b"").expect("no daytime answer");
    assert_eq!(day.len(), 26, "{:?}", String::from_utf8_lossy(&day));
    assert!(day.ends_with(b"\r\n"));

    // 2 + 1 + 1 + 1 + 1 workers.
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 6),
        "{}",
        d.report()
    );
}

// Issue #3, acceptance 1: no config at all.
#[test]
fn serve_without_a_config_serves_the_embedded_default() {
    assert!(
        !std::path::Path::new("/etc/preforkd/preforkd.toml").exists(),
        "/etc/preforkd/preforkd.toml exists: this test checks the embedded default"
    );
    let d = Daemon::start(&["serve", "--foreground"]);
    d.wait_running();
    assert!(d.stderr().contains("embedded default"), "{}", d.report());
    let names: Vec<(String, String)> = d
        .listening_lines()
        .into_iter()
        .map(|l| (l.service, l.addr))
        .collect();
    assert_eq!(
        names,
        [
            ("echo", "127.0.0.1:7007"),
            ("discard", "127.0.0.1:7009"),
            ("daytime", "127.0.0.1:7013"),
            ("chargen", "127.0.0.1:7019"),
            ("time", "127.0.0.1:7037"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let mut c = d.connect_to("127.0.0.1:7007");
    assert_eq!(echo_once(&mut c, "default\n").unwrap(), "default\n");
    drop(c);
    let mut c = d.connect_to("127.0.0.1:7037");
    let mut t = Vec::new();
    c.read_to_end(&mut t).unwrap();
    assert_eq!(t.len(), 4);
    // Stopped properly, it leaves no control socket behind.
    let mut d = d;
    d.stop_gracefully();
    assert!(
        !std::path::Path::new("/run/preforkd.sock").exists() || !nix::unistd::geteuid().is_root(),
        "the control socket is left behind"
    );
}

// Issue #3, acceptance 4.
#[test]
fn udp_echo_drops_datagrams_from_privileged_ports_and_answers_others() {
    if !needs_root() {
        return; // needs root: binding a UDP client to a port below 1024
    }
    let dir = TempDir::new("udp");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"echo-udp\"\nprotocol = \"udp\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 2\n",
    );
    let server = d.address_of("echo-udp", "udp");
    let low = UdpSocket::bind(("127.0.0.1", free_low_port(true))).unwrap();
    assert_eq!(
        udp_exchange(&low, &server, b"from a low port"),
        None,
        "answered a privileged port"
    );
    let high = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        udp_exchange(&high, &server, b"ok").as_deref(),
        Some(&b"ok"[..])
    );
    // The daemon's own UDP port as a source (the ping-pong) is refused too.
    let port: u16 = server.rsplit(':').next().unwrap().parse().unwrap();
    drop(d);
    let _ = port;
}

// Issue #3, acceptance 3.
#[test]
fn workers_drop_to_nobody_on_a_low_port_and_the_master_stays_root() {
    if !needs_root() {
        return; // needs root: binding a port below 1024 and switching users
    }
    let dir = TempDir::new("nobody");
    let port = free_low_port(false);
    let config = format!(
        "[[service]]\nname = \"low\"\nlisten = [\"127.0.0.1:{port}\"]\nbuiltin = \"echo\"\nuser = \"nobody\"\nworkers = 2\n"
    );
    let d = Daemon::serve(&dir, &config);
    let mut c = d.connect_to(&format!("127.0.0.1:{port}"));
    assert_eq!(echo_once(&mut c, "low\n").unwrap(), "low\n");
    let workers = d.workers();
    assert_eq!(workers.len(), 2, "{}", d.report());
    let (nobody_uid, nobody_gid) = {
        let line = std::fs::read_to_string("/etc/passwd").unwrap();
        let f: Vec<String> = line
            .lines()
            .find(|l| l.starts_with("nobody:"))
            .unwrap()
            .split(':')
            .map(str::to_string)
            .collect();
        (f[2].clone(), f[3].clone())
    };
    // A worker is root until it drops its privileges, just before its
    // first accept: the one that did not serve may not be there yet.
    let nobody = format!("{0} {0} {0} {0}", nobody_uid);
    wait_until(Duration::from_secs(5), || {
        workers.iter().all(|&w| ids_of(w).0 == nobody)
    });
    for w in workers {
        let (uid, gid, groups) = ids_of(w);
        assert_eq!(uid, nobody, "worker {w}");
        assert_eq!(gid, format!("{0} {0} {0} {0}", nobody_gid), "worker {w}");
        assert_eq!(groups, "", "worker {w} kept supplementary groups");
    }
    let (uid, _, _) = ids_of(d.pid());
    assert_eq!(uid, "0 0 0 0", "the master must stay root");
}

// Found while running the tests: changing the effective uid clears the
// parent-death signal, so workers that had dropped to nobody outlived a
// SIGKILLed master and kept serving. They must die with it too.
#[test]
fn workers_that_dropped_privileges_still_die_with_the_master() {
    if !needs_root() {
        return; // needs root: switching users
    }
    let dir = TempDir::new("nobody-orphans");
    let mut d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nuser = \"nobody\"\nworkers = 3\n",
    );
    let workers = d.workers();
    assert_eq!(workers.len(), 3, "{}", d.report());
    d.signal(libc::SIGKILL);
    d.wait_exit_within(Duration::from_secs(5))
        .expect("master survived SIGKILL");
    assert!(
        wait_until(Duration::from_secs(1), || workers
            .iter()
            .all(|&p| is_gone(p))),
        "workers outlived the master: {:?}",
        workers.iter().filter(|&&p| !is_gone(p)).collect::<Vec<_>>()
    );
}

#[test]
fn workers_get_their_limits_chroot_and_no_new_privs() {
    if !needs_root() {
        return; // needs root: chroot and switching users
    }
    let dir = TempDir::new("limits");
    let jail = TempDir::new("jail");
    let config = format!(
        "[[service]]\nname = \"jailed\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n\
         user = \"nobody\"\nchroot = \"{}\"\nno_new_privs = true\n\
         limits = {{ nofile = 256, as = \"1G\", cpu = \"1h\", nproc = 100 }}\n",
        jail.path().display()
    );
    let d = Daemon::serve(&dir, &config);
    let mut c = d.connect_to(&d.address_of("jailed", "tcp"));
    assert_eq!(echo_once(&mut c, "jailed\n").unwrap(), "jailed\n");
    let w = d.workers()[0];
    let limits = std::fs::read_to_string(format!("/proc/{w}/limits")).unwrap();
    let row = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(row("Max open files").contains("256 256"), "{limits}");
    assert!(
        row("Max address space").contains("1073741824 1073741824"),
        "{limits}"
    );
    assert!(row("Max cpu time").contains("3600 3600"), "{limits}");
    assert!(row("Max processes").contains("100 100"), "{limits}");
    let status = std::fs::read_to_string(format!("/proc/{w}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]),
        "{status}"
    );
    let root = std::fs::read_link(format!("/proc/{w}/root")).unwrap();
    assert_eq!(root, jail.path(), "the worker is not in its chroot");
}

#[test]
fn a_service_that_cannot_switch_user_is_not_started_and_the_others_serve() {
    if !needs_root() {
        return; // needs root: to run the daemon as nobody
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("not-root");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = binary_for_nobody(&dir);
    let config = dir.path().join("preforkd.toml");
    std::fs::write(
        &config,
        with_control(
            &dir,
        "[[service]]\nname = \"fine\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n\n\
         [[service]]\nname = \"wants-root\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 3\nuser = \"root\"\n",
        ),
    )
    .unwrap();
    let d = Daemon::start_with(
        as_uid_65534(&copy).args(["serve", "--foreground", "-c", config.to_str().unwrap()]),
        &["(as nobody) serve"],
    );
    d.wait_running();
    let mut c = d.connect_to(&d.address_of("fine", "tcp"));
    assert_eq!(echo_once(&mut c, "fine\n").unwrap(), "fine\n");
    let lines: Vec<String> = d
        .stderr()
        .lines()
        .filter(|l| l.contains("W0006"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{}", d.report());
    assert!(
        lines[0].contains("service wants-root on 127.0.0.1:0: cannot switch to user root"),
        "{}",
        lines[0]
    );
    assert_eq!(
        d.workers().len(),
        1,
        "workers were forked for the service that cannot start\n{}",
        d.report()
    );
}

// Issue 16: serve's line has the note before the service, and the
// address and service are still read from it.
#[test]
fn serve_says_which_ipv6_wildcard_it_listens_on() {
    let dir = TempDir::new("stack-note");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"both\"\nlisten = [\":0\"]\nbuiltin = \"echo\"\nworkers = 1\n\n\
         [[service]]\nname = \"six\"\nlisten = [\"[::]:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
    );
    let both = d.address_of("both", "tcp");
    let six = d.address_of("six", "tcp");
    let stderr = d.stderr();
    assert!(
        stderr.contains(&format!(
            "listening on {both} (IPv4 and IPv6) (tcp service both)\n"
        )),
        "{}",
        d.report()
    );
    assert!(
        stderr.contains(&format!(
            "listening on {six} (IPv6 only) (tcp service six)\n"
        )),
        "{}",
        d.report()
    );
    let port: u16 = both.parse::<std::net::SocketAddr>().unwrap().port();
    let mut c = d.connect_to(&format!("127.0.0.1:{port}"));
    assert_eq!(echo_once(&mut c, "v4\n").unwrap(), "v4\n");
}
