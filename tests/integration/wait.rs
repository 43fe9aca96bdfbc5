//! Wait services (inetd's `wait`): the program gets the socket itself.
//! in.tftpd from tftpd-hpa fetched from with the tftp-hpa client, over
//! IPv4 and IPv6, through `run`, `serve` and an imported inetd.conf, with
//! a reload and a stop in the middle of a transfer; a Python program that
//! accepts on its stdin; a UDP program that reads its datagram; the pause
//! after a program that reads nothing, `timeout`, and a clean UDP stop.

use std::fs::File;
use std::io::Read;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const IN_TFTPD: &str = "/usr/sbin/in.tftpd";
const TFTP: &str = "/usr/bin/tftp";

/// Whether in.tftpd and the tftp client are here, and root to run
/// in.tftpd's chroot (`-s`).
fn can_run_tftpd() -> bool {
    needs_root()
        && needs(
            Path::new(IN_TFTPD).exists() && Path::new(TFTP).exists(),
            "in.tftpd and tftp",
            "apt-get install tftpd-hpa tftp-hpa",
        )
}

/// Whether Python is here for the test programs.
fn can_run_python() -> bool {
    needs(
        Path::new(PYTHON).exists(),
        "python3",
        "apt-get install python3",
    )
}

/// A directory for in.tftpd's chroot, readable by the user it drops to,
/// holding `files` of pseudo-random bytes of the sizes given.
fn tftp_root(dir: &TempDir, name: &str, files: &[(&str, usize)]) -> PathBuf {
    let root = dir.path().join(name);
    std::fs::create_dir_all(&root).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ name.len() as u64;
    for (file, size) in files {
        let bytes: Vec<u8> = (0..*size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        std::fs::write(root.join(file), bytes).unwrap();
    }
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir.path())
        .status()
        .unwrap();
    root
}

/// `tftp HOST PORT -m binary -c get FILE TO`, started.
fn tftp_get(host: &str, port: u16, file: &str, to: &Path) -> Child {
    Command::new(TFTP)
        .args([host, &port.to_string(), "-m", "binary", "-c", "get", file])
        .arg(to)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (30 s at most) for a tftp client and checks it fetched `file`
/// of `root` byte for byte into `to`.
fn fetched(mut client: Child, root: &Path, file: &str, to: &Path, d: &Daemon) {
    let exited = wait_until(Duration::from_secs(30), || {
        client.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = client.kill();
    }
    let out = client.wait_with_output().unwrap();
    let want = std::fs::read(root.join(file)).unwrap();
    let got = std::fs::read(to).unwrap_or_default();
    assert!(
        exited && out.status.success() && got == want,
        "tftp get {file}: exited {exited}, {:?}, {} bytes of {}: {}{}\n{}",
        out.status,
        got.len(),
        want.len(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.report()
    );
}

/// A fetch whose client writes into a FIFO the test reads, so that the
/// transfer goes at the test's pace: it is still running when the test
/// reloads or stops the daemon.
struct SlowFetch {
    client: Child,
    fifo: File,
    got: Vec<u8>,
}

impl SlowFetch {
    fn start(dir: &TempDir, port: u16, file: &str) -> SlowFetch {
        let path = dir.path().join(format!("{file}.fifo"));
        let _ = std::fs::remove_file(&path);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Read and write: the open does not wait for the client, and the
        // test never sees end-of-file (it knows the size).
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let client = tftp_get("127.0.0.1", port, file, &path);
        SlowFetch {
            client,
            fifo,
            got: Vec::new(),
        }
    }

    /// Reads until `n` bytes have come, for 20 s at most.
    fn read_until(&mut self, n: usize, d: &Daemon) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = vec![0u8; 65536];
        while self.got.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} bytes came\n{}",
                self.got.len(),
                d.report()
            );
            let mut fds = [nix::poll::PollFd::new(
                self.fifo.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)).unwrap_or(0) == 0 {
                continue;
            }
            let want = (n - self.got.len()).min(buf.len());
            let got = self.fifo.read(&mut buf[..want]).unwrap();
            self.got.extend_from_slice(&buf[..got]);
        }
    }

    /// Reads the rest and checks the transfer is whole and the client
    /// succeeded.
    fn finish(mut self, want: &[u8], d: &Daemon) {
        self.read_until(want.len(), d);
        let exited = wait_until(Duration::from_secs(20), || {
            self.client.try_wait().ok().flatten().is_some()
        });
        assert!(exited, "tftp did not exit\n{}", d.report());
        let status = self.client.wait().unwrap();
        assert!(
            status.success() && self.got == want,
            "the transfer broke: {status:?}, {} bytes of {}\n{}",
            self.got.len(),
            want.len(),
            d.report()
        );
    }
}

/// Whether a process runs with this command line (its arguments, each
/// ended by NUL).
fn running(cmdline: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().any(|e| {
        let path = e.unwrap().path().join("cmdline");
        std::fs::read(path).is_ok_and(|c| c == cmdline.as_bytes())
    })
}

/// The port of `HOST:PORT`.
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn tftp_service(name: &str, addr: &str, root: &Path) -> String {
    format!(
        "[[service]]\nname = \"{name}\"\nprotocol = \"udp\"\nlisten = [\"{addr}\"]\nexec = [\"{IN_TFTPD}\", \"-s\", \"{}\"]\n",
        root.display()
    )
}

// Issue 14, acceptance 1: through `run`, IPv4 and IPv6, two clients at once.
#[test]
fn in_tftpd_under_run_serves_two_clients_at_once_over_ipv4_and_ipv6() {
    if !can_run_tftpd() {
        return;
    }
    let dir = TempDir::new("tftp-run");
    let root = tftp_root(&dir, "root", &[("a.bin", 300_000), ("b.bin", 70_001)]);
    for (listen, host) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
        let root_arg = root.to_str().unwrap();
        let d = Daemon::start(&["run", listen, "--udp", "--", IN_TFTPD, "-s", root_arg]);
        let a = dir.path().join(format!("a-{host}.got"));
        let b = dir.path().join(format!("b-{host}.got"));
        let first = tftp_get(host, d.port(), "a.bin", &a);
        let second = tftp_get(host, d.port(), "b.bin", &b);
        fetched(first, &root, "a.bin", &a, &d);
        fetched(second, &root, "b.bin", &b, &d);
        // One worker, which started the program: nothing forked per datagram.
        assert_eq!(d.workers().len(), 1, "{}", d.report());
    }
}

// Issue 14, acceptance 1: through `serve`; a reload and a stop in the
// middle of a transfer lose nothing, and the reloaded service's program
// starts once the old one has left.
#[test]
fn in_tftpd_under_serve_finishes_transfers_across_a_reload_and_a_stop() {
    if !can_run_tftpd() {
        return;
    }
    let dir = TempDir::new("tftp-serve");
    let big = 4_000_000;
    let old = tftp_root(&dir, "old", &[("big.bin", big)]);
    let new = tftp_root(&dir, "new", &[("big.bin", big), ("only-new.bin", 1000)]);
    let config = |root: &Path| tftp_service("tftp", "127.0.0.1:0", root);
    let mut d = Daemon::serve(&dir, &config(&old));
    let port = port_of(&d.address_of("tftp", "udp"));
    let old_worker = d.workers();

    let mut during_reload = SlowFetch::start(&dir, port, "big.bin");
    during_reload.read_until(100_000, &d);
    write_config(&dir, &config(&new));
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log("M0013 reloaded", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    // The old program's transfer runs on: the new pool waits for it.
    assert_eq!(d.workers(), old_worker, "{}", d.report());
    during_reload.finish(&std::fs::read(old.join("big.bin")).unwrap(), &d);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let now = d.workers();
            now.len() == 1 && now != old_worker
        }),
        "the new program's worker did not start\n{}",
        d.report()
    );
    let got = dir.path().join("only-new.got");
    fetched(
        tftp_get("127.0.0.1", port, "only-new.bin", &got),
        &new,
        "only-new.bin",
        &got,
        &d,
    );

    let mut during_stop = SlowFetch::start(&dir, port, "big.bin");
    during_stop.read_until(100_000, &d);
    d.signal(libc::SIGTERM);
    assert!(
        d.wait_for_log("stopping: SIGTERM to in.tftpd", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    // The worker waits for the transfer, which runs in a child in.tftpd
    // left: the daemon is still there while it runs.
    assert!(
        d.wait_exit_within(Duration::from_millis(500)).is_none(),
        "the daemon left before the transfer ended\n{}",
        d.report()
    );
    during_stop.finish(&std::fs::read(new.join("big.bin")).unwrap(), &d);
    let status = d.wait_exit_within(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{}", d.report());
    assert!(
        !d.stderr().contains("M0008"),
        "killed at the timeout\n{}",
        d.report()
    );
}

/// `import-inetd` on `conf`, with the ports it names replaced by port 0
/// (so that the test runs beside others), checked by `check`: the path of
/// the config.
fn import_to_config(dir: &TempDir, conf: &str, ports: &[&str]) -> (String, PathBuf) {
    let path = dir.path().join("inetd.conf");
    std::fs::write(&path, conf).unwrap();
    let out = run_to_exit(&["import-inetd", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut toml = String::from_utf8(out.stdout).unwrap();
    for port in ports {
        toml = toml.replace(&format!(":{port}\"]"), ":0\"]");
    }
    let config = write_config(dir, &toml);
    let check = run_to_exit(&["check", "-c", config.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "check: {}\n{toml}",
        String::from_utf8_lossy(&check.stderr)
    );
    (toml, config)
}

// Issue 14: `dgram udp wait` through import-inetd, then served.
#[test]
fn in_tftpd_from_an_imported_inetd_conf_serves() {
    if !can_run_tftpd() {
        return;
    }
    let dir = TempDir::new("tftp-import");
    let root = tftp_root(&dir, "srv", &[("pxelinux.0", 42_000)]);
    let (toml, config) = import_to_config(
        &dir,
        &format!(
            "127.0.0.1:tftp dgram udp wait root {IN_TFTPD} in.tftpd -s {}\n",
            root.display()
        ),
        &["69"],
    );
    assert!(toml.contains("protocol = \"udp\"\nexec = ["), "{toml}");
    assert!(toml.contains("wait = true\n"), "{toml}");
    let d = Daemon::start(&["serve", "--foreground", "-c", config.to_str().unwrap()]);
    d.wait_running();
    let got = dir.path().join("pxelinux.got");
    let port = port_of(&d.address_of("tftp", "udp"));
    fetched(
        tftp_get("127.0.0.1", port, "pxelinux.0", &got),
        &root,
        "pxelinux.0",
        &got,
        &d,
    );
}

/// A stream wait program: accepts one connection on its stdin, says who
/// it is, and exits.
const ACCEPT_ONE: &str = "import os, socket
s = socket.socket(fileno=0)
c, peer = s.accept()
c.sendall(('%s %d %d %s %s\\n' % (peer[0], os.getpid(), os.getuid(), os.environ.get('PROTO'), os.environ.get('TCPLOCALPORT'))).encode())
c.close()
";

/// Two clients in turn get answers from two runs of the program, each of
/// which accepted on the listening socket itself.
fn two_clients_in_turn(d: &Daemon, addr: &str) -> Vec<String> {
    let port = port_of(addr).to_string();
    let mut pids = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut c = d.connect_to(addr);
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = String::new();
        c.read_to_string(&mut line).unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(
            fields.len() == 5
                && fields[0] == "127.0.0.1"
                && fields[3] == "TCP"
                && fields[4] == port,
            "{line:?}\n{}",
            d.report()
        );
        pids.push(fields[1].to_string());
        lines.push(line);
    }
    assert_ne!(pids[0], pids[1], "not restarted\n{}", d.report());
    lines
}

// Issue 14, acceptance 2: `stream tcp wait` through run, serve and an
// imported inetd.conf.
#[test]
fn a_stream_wait_program_accepts_two_clients_in_turn() {
    if !can_run_python() {
        return;
    }
    let dir = TempDir::new("stream-wait");
    let script = dir.path().join("accept_one.py");
    std::fs::write(&script, ACCEPT_ONE).unwrap();
    let script = script.to_str().unwrap();

    let d = Daemon::start(&["run", "127.0.0.1:0", "--wait", "--", PYTHON, script]);
    two_clients_in_turn(&d, &d.addr().to_string());
    // TTIN does not give it a second worker, which would start a second
    // program on the socket; TTOU does not take its only one.
    for (sig, name) in [(libc::SIGTTIN, "TTIN"), (libc::SIGTTOU, "TTOU")] {
        d.signal(sig);
        assert!(
            d.wait_for_log(
                &format!("{name}: keeps its one worker"),
                Duration::from_secs(5)
            ),
            "{}",
            d.report()
        );
        assert_eq!(d.workers().len(), 1, "after {name}\n{}", d.report());
    }
    two_clients_in_turn(&d, &d.addr().to_string());

    let d = Daemon::serve(
        &dir,
        &format!("[[service]]\nname = \"acc\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{PYTHON}\", \"{script}\"]\nwait = true\n"),
    );
    two_clients_in_turn(&d, &d.address_of("acc", "tcp"));
    drop(d);

    if !nix::unistd::geteuid().is_root() {
        return; // the imported line names a user: as root only (CI)
    }
    let readable = dir.path().join("accept_nobody.py");
    std::fs::write(&readable, ACCEPT_ONE).unwrap();
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir.path())
        .status()
        .unwrap();
    let (toml, config) = import_to_config(
        &dir,
        &format!(
            "127.0.0.1:7081 stream tcp wait nobody {PYTHON} python3 {}\n",
            readable.display()
        ),
        &["7081"],
    );
    assert!(toml.contains("wait = true\n"), "{toml}");
    let d = Daemon::start(&["serve", "--foreground", "-c", config.to_str().unwrap()]);
    d.wait_running();
    let lines = two_clients_in_turn(&d, &d.address_of("7081", "tcp"));
    let nobody_uid = "65534";
    assert!(
        lines
            .iter()
            .all(|l| l.split_whitespace().nth(2) == Some(nobody_uid)),
        "{lines:?}"
    );
}

/// A UDP program: reads one datagram from its stdin and answers with what
/// it read, its uid and the UCSPI-style variables it was given.
const READ_ONE_DATAGRAM: &str = "import os, socket
s = socket.socket(fileno=0)
data, peer = s.recvfrom(512)
names = ['PROTO', 'UDPLOCALIP', 'UDPLOCALPORT', 'UDPREMOTEIP', 'UDPREMOTEPORT', 'TCPREMOTEIP']
env = ' '.join('%s=%s' % (n, os.environ.get(n, '-')) for n in names)
s.sendto(('%s uid=%d %s' % (data.decode(), os.getuid(), env)).encode(), peer)
";

// Issue 14: the program reads the datagram itself, as the user the
// service names, told of its socket and sender.
#[test]
fn a_udp_program_reads_its_datagram_and_is_told_who_sent_it() {
    if !can_run_python() {
        return;
    }
    let dir = TempDir::new("udp-wait");
    let script = dir.path().join("read_one.py");
    std::fs::write(&script, READ_ONE_DATAGRAM).unwrap();
    let root = nix::unistd::geteuid().is_root();
    if root {
        Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(dir.path())
            .status()
            .unwrap();
    }
    let user = if root { "user = \"nobody\"\n" } else { "" };
    let d = Daemon::serve(
        &dir,
        &format!(
                "[[service]]\nname = \"u\"\nprotocol = \"udp\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{PYTHON}\", \"{}\"]\n{user}log_connections = true\n",
                script.display()
            ),
    );
    let server = d.address_of("u", "udp");
    let port = port_of(&server);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for n in 0..2 {
        client
            .send_to(format!("ping{n}").as_bytes(), &server)
            .unwrap();
        let mut buf = [0u8; 512];
        let (len, _) = client
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no answer: {e}\n{}", d.report()));
        let answer = String::from_utf8_lossy(&buf[..len]).to_string();
        let uid = if root {
            "65534".to_string()
        } else {
            nix::unistd::getuid().to_string()
        };
        let me = client.local_addr().unwrap();
        assert_eq!(
            answer,
            format!(
                "ping{n} uid={uid} PROTO=UDP UDPLOCALIP=127.0.0.1 UDPLOCALPORT={port} UDPREMOTEIP=127.0.0.1 UDPREMOTEPORT={} TCPREMOTEIP=-",
                me.port()
            ),
            "{}",
            d.report()
        );
    }
    assert!(
        d.wait_for_log("C0005 service u: python3.11[", Duration::from_secs(5))
            || d.wait_for_log("C0005 service u: python3[", Duration::from_secs(5)),
        "{}",
        d.report()
    );
}

// Issue 14: a program that exits without reading is started again only
// after a pause that grows, and the log says so.
#[test]
fn a_program_that_leaves_its_datagram_unread_is_paused_not_looped() {
    let dir = TempDir::new("udp-unread");
    let d = Daemon::start(&["run", "127.0.0.1:0", "--udp", "--", "/bin/true"]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"never read", d.addr()).unwrap();
    assert!(
        d.wait_for_log("next start in 400 ms (3 in a row)", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    let log = d.stderr();
    for expected in [
        "W0025 service true: true[",
        "exited (exit status: 0) and left the socket unread; next start in 100 ms (1 in a row)",
        "next start in 200 ms (2 in a row)",
    ] {
        assert!(log.contains(expected), "{expected}\n{}", d.report());
    }
    // 100 + 200 + 400 ms of pauses: at most a handful of starts in a second.
    let started = Instant::now();
    let before = d.stderr().matches("W0025").count();
    std::thread::sleep(Duration::from_secs(1));
    let starts = d.stderr().matches("W0025").count() - before;
    assert!(
        starts <= 2,
        "{starts} starts in {:?}\n{}",
        started.elapsed(),
        d.report()
    );
    drop(dir);
}

// Issue 14: `timeout` stops a wait program that runs past it, and a
// fresh worker watches the socket again.
#[test]
fn timeout_stops_a_wait_program_that_runs_past_it() {
    let d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--udp",
        "--timeout",
        "1s",
        "--",
        "/bin/sleep",
        "61.234",
    ]);
    let first = d.workers();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"x", d.addr()).unwrap();
    let me = client.local_addr().unwrap();
    assert!(
        d.wait_for_log("W0020 service sleep: worker", Duration::from_secs(10))
            && d.wait_for_log(&format!("with {me}"), Duration::from_secs(1)),
        "{}",
        d.report()
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let now = d.workers();
            now.len() == 1 && now != first && !running("/bin/sleep\u{0}61.234\u{0}")
        }),
        "{}",
        d.report()
    );
}

// Issue 14, acceptance 3: a UDP builtin's worker that has answered
// datagrams stops cleanly, at SIGTERM and when a reload removes it.
#[test]
fn a_udp_builtin_stops_cleanly_after_answering() {
    let dir = TempDir::new("udp-stop");
    // As root, a user, so that the only lines are the master's (no W0007).
    let user = if nix::unistd::geteuid().is_root() {
        "user = \"nobody\"\n"
    } else {
        ""
    };
    let udp = &format!("[[service]]\nname = \"echo-udp\"\nprotocol = \"udp\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 2\n{user}");
    let tcp = &format!("[[service]]\nname = \"echo-tcp\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n{user}");
    let mut d = Daemon::serve(&dir, &format!("{udp}{tcp}"));
    let server = d.address_of("echo-udp", "udp");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let exchange = || {
        for n in 0..5 {
            let payload = format!("datagram {n}");
            client.send_to(payload.as_bytes(), &server).unwrap();
            let mut buf = [0u8; 64];
            let (len, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], payload.as_bytes());
        }
    };
    exchange();
    // A reload that removes the UDP service: its workers leave cleanly.
    write_config(&dir, tcp);
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log("M0013 reloaded", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    assert!(
        wait_until(Duration::from_secs(10), || d.workers().len() == 1),
        "{}",
        d.report()
    );
    write_config(&dir, &format!("{udp}{tcp}"));
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || d
            .stderr()
            .matches("M0013")
            .count()
            == 2),
        "{}",
        d.report()
    );
    let server = d.address_of("echo-udp", "udp");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for n in 0..5 {
        let payload = format!("again {n}");
        client.send_to(payload.as_bytes(), &server).unwrap();
        let mut buf = [0u8; 64];
        let (len, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], payload.as_bytes());
    }
    d.signal(libc::SIGTERM);
    let status = d.wait_exit_within(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.code() == Some(0)),
        "{}",
        d.report()
    );
    let others: Vec<String> = d
        .stderr()
        .lines()
        .filter(|l| !l.starts_with("listening on ") && !l.contains("]: M00"))
        .map(str::to_string)
        .collect();
    assert!(
        others.is_empty(),
        "not only M lines: {others:#?}\n{}",
        d.report()
    );
}
