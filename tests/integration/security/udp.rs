//! Defence 7, UDP is held to the same rules as TCP: `only_from`,
//! `no_access`, `per_source` (datagrams per second from one address, 10
//! unless set) and `rate` apply to every datagram, so a forged source can
//! draw at most that many answers, and a reply loop between two echo
//! servers dies at the first datagram dropped.
//!
//! The senders run as `nobody` (a Python script), except the forger of the
//! loop, which needs a raw socket (root) to write another host's address
//! as its source, as an attacker off the path does on a real network.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

/// `udp.py HOST PORT SOURCES COUNT`: sends COUNT datagrams to HOST:PORT,
/// from the comma-separated SOURCES in turn (each its own socket), then
/// collects answers for a second and prints `ANSWERS LONGEST`.
const SENDER: &str = r#"
import socket, sys, time
host, port, sources, count = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4])
socks = []
for source in sources:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.setblocking(False)
    socks.append(s)
for i in range(count):
    socks[i % len(socks)].sendto(b"datagram %d" % i, (host, port))
answers, longest = 0, 0
end = time.time() + 1.0
while time.time() < end:
    for s in socks:
        try:
            data = s.recv(65536)
            answers += 1
            longest = max(longest, len(data))
        except BlockingIOError:
            pass
    time.sleep(0.001)
print(answers, longest)
"#;

/// `forge.py SRC_PORT DST_PORT`: one UDP datagram to 127.0.0.1:DST_PORT
/// whose source is 127.0.0.1:SRC_PORT, written whole (IP_HDRINCL).
const FORGER: &str = r#"
import socket, struct, sys
sport, dport = int(sys.argv[1]), int(sys.argv[2])
payload = b"ping-pong"
udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
lo = socket.inet_aton("127.0.0.1")
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0, lo, lo)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + udp, ("127.0.0.1", 0))
print("forged")
"#;

/// Sends `count` datagrams to `addr` from `sources` as nobody; returns how
/// many were answered and the longest answer.
fn send_as_nobody(sender: &PathBuf, addr: &str, sources: &str, count: u32) -> (u32, usize) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = run_command_within(
        Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "/usr/bin/python3",
            ])
            .arg(sender)
            .args([host, port, sources, &count.to_string()]),
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(a), Some(l)) => (a.parse().unwrap(), l.parse().unwrap()),
        _ => panic!("sender: {out:?}"),
    }
}

#[test]
fn the_access_rules_and_limits_apply_to_every_datagram() {
    if !can_play_nobody() {
        return;
    }
    let dir = TempDir::new("sec-udp-rules");
    let sender = script_for_nobody(&dir, "udp.py", SENDER);
    let service = |name: &str, builtin: &str, extra: &str| {
        format!(
            "[[service]]\nname = \"{name}\"\nprotocol = \"udp\"\nlisten = [\"127.0.0.1:0\"]\n\
             builtin = \"{builtin}\"\nworkers = 2\n{extra}\n"
        )
    };
    let config = [
        service("only", "echo", "only_from = [\"127.0.0.2\"]"),
        service("deny", "echo", "no_access = [\"127.0.0.3\"]"),
        service("three", "echo", "per_source = 3"),
        service("default", "chargen", ""),
        service("rated", "echo", "rate = \"5/s\"\nper_source = 1000"),
    ]
    .concat();
    let d = Daemon::serve(&dir, &config);
    let at = |name: &str| d.address_of(name, "udp");

    assert_eq!(send_as_nobody(&sender, &at("only"), "127.0.0.1", 3).0, 0);
    assert_eq!(send_as_nobody(&sender, &at("only"), "127.0.0.2", 3).0, 3);
    assert_eq!(send_as_nobody(&sender, &at("deny"), "127.0.0.3", 3).0, 0);
    assert_eq!(send_as_nobody(&sender, &at("deny"), "127.0.0.2", 3).0, 3);
    // A burst of 30 from one address: its per_source, then one per period.
    let (three, _) = send_as_nobody(&sender, &at("three"), "127.0.0.4", 30);
    let (chargen, longest) = send_as_nobody(&sender, &at("default"), "127.0.0.5", 30);
    // Five sources, four datagrams each: the service's rate.
    let (rated, _) = send_as_nobody(
        &sender,
        &at("rated"),
        "127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9,127.0.0.10",
        20,
    );
    eprintln!(
        "udp: per_source = 3: {three} of 30 answered; default: {chargen} of 30 (chargen, {longest} bytes each); rate = 5/s: {rated} of 20"
    );
    assert!((3..=4).contains(&three), "{three}\n{}", d.report());
    assert!((10..=11).contains(&chargen), "{chargen}\n{}", d.report());
    assert!((5..=6).contains(&rated), "{rated}\n{}", d.report());
    assert_eq!(longest, 512, "RFC 864: at most 512 bytes");
}

/// Datagrams the UDP pool of `dir`'s daemon has answered.
fn answered(dir: &TempDir) -> u64 {
    let config = dir.path().join("preforkd.toml");
    let out = run_to_exit(&["status", "-c", config.to_str().unwrap(), "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    status["pools"][0]["served"].as_u64().unwrap_or(0)
}

#[test]
fn a_forged_reply_loop_between_two_echo_servers_dies_out() {
    if !can_play_nobody() {
        return;
    }
    let dirs = [
        TempDir::new("sec-udp-loop-a"),
        TempDir::new("sec-udp-loop-b"),
    ];
    let config = "[[service]]\nname = \"echo\"\nprotocol = \"udp\"\nlisten = [\"127.0.0.1:0\"]\n\
                  builtin = \"echo\"\nworkers = 2\n";
    let a = Daemon::serve(&dirs[0], config);
    let b = Daemon::serve(&dirs[1], config);
    let port = |d: &Daemon| {
        d.address_of("echo", "udp")
            .rsplit_once(':')
            .unwrap()
            .1
            .to_string()
    };
    let (port_a, port_b) = (port(&a), port(&b));
    let forger = script_for_nobody(&dirs[0], "forge.py", FORGER);
    // To A, from B's address: A answers B, B answers A, ...
    let out = run_command_within(
        Command::new("/usr/bin/python3")
            .arg(&forger)
            .args([&port_b, &port_a]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{out:?}");
    // The loop ends when the counts stop moving for a second.
    let start = Instant::now();
    let mut last = (u64::MAX, u64::MAX);
    let mut still_since = Instant::now();
    let died = wait_until(Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(100));
        let now = (answered(&dirs[0]), answered(&dirs[1]));
        if now != last {
            last = now;
            still_since = Instant::now();
        }
        now.0 > 0 && still_since.elapsed() >= Duration::from_secs(1)
    });
    eprintln!(
        "udp loop: A answered {}, B answered {}; over after {:?}",
        last.0,
        last.1,
        still_since.duration_since(start)
    );
    assert!(
        died,
        "the loop still runs: {last:?}\n{}\n{}",
        a.report(),
        b.report()
    );
    // At most a burst of 10 each, plus what the refill lets through.
    assert!(last.0 <= 15 && last.1 <= 15, "{last:?}");
    // Both still answer a real client.
    let sender = script_for_nobody(&dirs[1], "udp.py", SENDER);
    assert_eq!(
        send_as_nobody(&sender, &a.address_of("echo", "udp"), "127.0.0.1", 1).0,
        1
    );
}

#[test]
fn what_a_udp_service_cannot_honour_is_refused_not_ignored() {
    let dir = TempDir::new("sec-udp-check");
    let file = dir.path().join("u.toml");
    std::fs::write(
        &file,
        "[[service]]\nname = \"u\"\nprotocol = \"udp\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\n\
         timeout = \"5s\"\nlog_connections = true\nper_source = 5\nrate = \"50/s\"\n",
    )
    .unwrap();
    let out = run_to_exit(&["check", "-c", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let at = |line: u32| format!("{}:{line}:", file.display());
    assert!(
        err.contains(&format!(
            "{}11: `timeout` applies to tcp services and programs, not a udp builtin",
            at(6)
        )) && err.contains(&format!(
            "{}19: `log_connections` applies to tcp services",
            at(7)
        )),
        "{err}"
    );
    // per_source and rate are honoured: nothing is said about them.
    assert!(err.contains(": 2 errors"), "{err}");
    let out = run_to_exit(&[
        "run",
        "127.0.0.1:0",
        "--udp",
        "--timeout",
        "5s",
        "--builtin",
        "echo",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--timeout applies to tcp services and programs, not a builtin on --udp"),
        "{err}"
    );
}
