//! Defence 5, PROXY protocol only from the balancers you name: a header is
//! believed only from `trusted_proxies`; anyone else is judged by its real
//! address before the worker reads a byte, and a header it sends is
//! refused; a balancer's header must come within `proxy_timeout`.
//!
//! The attackers are clients run as `nobody` (a Python script: a network
//! client needs no privilege at all).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// `client.py HOST PORT MODE SOURCE=HEX...`: one connection per SOURCE
/// (an address to bind, then the bytes to send, in hex), prints `sent`
/// once all are sent; MODE `read`: then shuts each down for writing and
/// prints, per connection, what came back, in hex; MODE `hold`: keeps them
/// open until its stdin closes.
const CLIENT: &str = r#"
import socket, sys
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conns = []
for spec in sys.argv[4:]:
    source, data = spec.split("=", 1)
    s = socket.socket()
    s.bind((source, 0))
    s.connect((host, port))
    if data:
        s.sendall(bytes.fromhex(data))
    conns.append(s)
print("sent", flush=True)
if mode == "hold":
    sys.stdin.read()
    sys.exit(0)
for s in conns:
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the daemon refused and closed it already
    s.settimeout(10)
    out = b""
    try:
        while True:
            got = s.recv(4096)
            if not got:
                break
            out += got
    except OSError:
        pass
    print(out.hex() or "-", flush=True)
"#;

fn client_script(dir: &TempDir) -> PathBuf {
    script_for_nobody(dir, "client.py", CLIENT)
}

/// A client as `nobody`, started; its stdout is read line by line.
struct Attacker {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Attacker {
    fn start(script: &PathBuf, addr: &str, mode: &str, conns: &[(&str, &[u8])]) -> Attacker {
        let addr: SocketAddr = addr.parse().unwrap();
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "/usr/bin/python3",
            ])
            .arg(script)
            .args([addr.ip().to_string(), addr.port().to_string(), mode.into()]);
        for (source, bytes) in conns {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            command.arg(format!("{source}={hex}"));
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("setpriv python3");
        let out = BufReader::new(child.stdout.take().unwrap());
        Attacker { child, out }
    }

    /// The next line it prints (its sockets time out after 10 s).
    fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.out.read_line(&mut line);
        line.trim().to_string()
    }

    /// What its next connection got back (`read` mode).
    fn answer(&mut self) -> Vec<u8> {
        let line = self.line();
        if line == "-" {
            return Vec::new();
        }
        (0..line.len() / 2)
            .map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo_service(dir: &TempDir, extra: &str) -> (Daemon, String) {
    let d = Daemon::serve(
        dir,
        &format!(
            "[[service]]\nname = \"echo\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\n\
             proxy_protocol = \"v1\"\n{extra}\n"
        ),
    );
    let addr = d.address_of("echo", "tcp");
    (d, addr)
}

#[test]
fn proxy_protocol_without_trusted_proxies_is_refused_by_check_and_run() {
    let dir = TempDir::new("sec-proxy-check");
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nproxy_protocol = \"v2\"\n",
    )
    .unwrap();
    let out = run_to_exit(&["check", "-c", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:5:18: ", file.display()))
            && err.contains("proxy_protocol needs trusted_proxies"),
        "{err}"
    );
    let out = run_to_exit(&[
        "run",
        "127.0.0.1:0",
        "--proxy-protocol",
        "v1",
        "--builtin",
        "echo",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--proxy-protocol needs --trusted-proxy"),
        "{err}"
    );
}

#[test]
fn a_direct_client_naming_an_allowed_address_in_a_header_is_refused() {
    if !can_play_nobody() {
        return;
    }
    let dir = TempDir::new("sec-proxy-direct");
    let script = client_script(&dir);
    // Only 127.0.0.2 may use the service; the balancer is 127.0.0.3.
    let (d, addr) = echo_service(
        &dir,
        "workers = 1\nonly_from = [\"127.0.0.2\"]\ntrusted_proxies = [\"127.0.0.3\"]",
    );
    let forged = b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 7\r\nlet me in\n";
    let mut attacker = Attacker::start(&script, &addr, "read", &[("127.0.0.1", forged)]);
    assert_eq!(attacker.line(), "sent");
    assert_eq!(attacker.answer(), b"", "{}", d.report());
    assert!(
        d.wait_for_log(
            "W0030 service echo: refused 127.0.0.1:",
            Duration::from_secs(5)
        ),
        "{}",
        d.report()
    );

    // A direct client the lists allow is served as itself; a header it
    // sends is refused (W0031), not believed. The worker is kept busy
    // first, so that the forged header is there when it takes the
    // connection.
    let dir = TempDir::new("sec-proxy-direct2");
    let script = client_script(&dir);
    let (d, addr) = echo_service(
        &dir,
        "workers = 1\nonly_from = [\"127.0.0.0/8\"]\ntrusted_proxies = [\"127.0.0.3\"]\nlog_connections = true",
    );
    let mut holder = d.connect_to(&addr);
    assert_eq!(echo_once(&mut holder, "plain\n").unwrap(), "plain\n");
    let forged = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 7\r\nhello\n";
    let mut attacker = Attacker::start(&script, &addr, "read", &[("127.0.0.1", forged)]);
    assert_eq!(attacker.line(), "sent");
    drop(holder);
    assert_eq!(attacker.answer(), b"", "{}", d.report());
    assert!(
        d.wait_for_log(
            "a PROXY protocol header from 127.0.0.1, not in trusted_proxies",
            Duration::from_secs(5)
        ),
        "{}",
        d.report()
    );
    assert!(!d.stderr().contains("192.0.2.7"), "{}", d.report());
}

#[test]
fn four_stalled_headers_cannot_deny_a_four_worker_pool() {
    if !can_play_nobody() {
        return;
    }
    let dir = TempDir::new("sec-proxy-stall");
    let script = client_script(&dir);
    let (d, addr) = echo_service(
        &dir,
        "workers = 4\nper_source = 1\ntimeout = \"30s\"\nproxy_timeout = \"1s\"\n\
         trusted_proxies = [\"127.0.0.1\"]",
    );
    // Four direct clients from 127.0.0.2 that never send a byte (served
    // as themselves: per_source lets one of them hold a worker), and four
    // connections from the balancer's address whose header never ends.
    let mut stallers: Vec<(&str, &[u8])> = vec![("127.0.0.2", b""); 4];
    stallers.extend([("127.0.0.1", &b"PROXY TCP4 192.0.2."[..]); 4]);
    let mut attacker = Attacker::start(&script, &addr, "hold", &stallers);
    assert_eq!(attacker.line(), "sent");
    let start = Instant::now();
    // The balancer's legitimate client.
    let addr_: SocketAddr = addr.parse().unwrap();
    let mut c = TcpStream::connect_timeout(&addr_, Duration::from_secs(5)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    c.write_all(b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 7\r\nserved\n")
        .unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let waited = start.elapsed();
    eprintln!("legitimate client served after {waited:?} behind 8 stallers");
    assert_eq!(out, "served\n", "{}", d.report());
    // proxy_timeout (1 s) per stalled header, on the three workers the
    // idle direct client cannot take; without the defence each waits 5 s.
    assert!(
        waited < Duration::from_secs(3),
        "{waited:?}\n{}",
        d.report()
    );
    assert!(
        d.wait_for_log(
            "no whole PROXY protocol header in time",
            Duration::from_secs(5)
        ) && d.wait_for_log("per_source limit of 1 reached", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    drop(attacker);
}

/// Every client of a unix: socket is believed when it sends a header: a
/// local user who may connect could name any client (and pass only_from).
/// So `check` wants the socket file shut to others, and `run`, which has
/// no --socket-mode, refuses --proxy-protocol on unix: altogether.
#[test]
fn proxy_protocol_on_a_unix_socket_needs_a_mode_that_shuts_others_out() {
    let dir = TempDir::new("sec-proxy-unix");
    let socket = dir.path().join("p.sock");
    let file = dir.path().join("p.toml");
    let check = |mode_line: &str| {
        std::fs::write(
            &file,
            format!(
                "[[service]]\nname = \"e\"\nlisten = [\"unix:{}\"]\nbuiltin = \"echo\"\nproxy_protocol = \"v2\"\ntrusted_proxies = [\"127.0.0.1\"]\n{mode_line}",
                socket.display()
            ),
        )
        .unwrap();
        let out = run_to_exit(&["check", "-c", file.to_str().unwrap()]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check("");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:5:18: ", file.display()))
            && err.contains("set socket_mode, with no bits for others"),
        "{err}"
    );
    let (code, err) = check("socket_mode = \"0666\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("socket_mode = \"0666\" lets others connect"),
        "{err}"
    );
    let (code, err) = check("socket_mode = \"0660\"\n");
    assert_eq!(code, Some(0), "{err}");

    let out = run_to_exit(&[
        "run",
        &format!("unix:{}", socket.display()),
        "--proxy-protocol",
        "v1",
        "--trusted-proxy",
        "127.0.0.1",
        "--builtin",
        "echo",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--proxy-protocol needs an IP address"),
        "{err}"
    );
}
