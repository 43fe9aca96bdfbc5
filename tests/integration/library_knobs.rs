//! The builder's pool knobs (issue 17, acceptance 3), each through
//! `examples/knobs.rs`, a library program that sets them from its flags;
//! its UDP listener with a datagram handler, beside a TCP one.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::library::example;
use crate::util::*;

fn start_knobs(args: &[&str]) -> Daemon {
    let mut all = vec!["127.0.0.1:0"];
    all.extend_from_slice(args);
    Daemon::start_with(Command::new(example("knobs")).args(&all), &all)
}

/// As [`start_knobs`], for a second listener named `name`: once it is
/// announced too.
fn start_knobs_with(args: &[&str], name: &str) -> Daemon {
    let d = start_knobs(args);
    assert!(
        d.wait_for_log(&format!("service {name}"), Duration::from_secs(10)),
        "{}",
        d.report()
    );
    d
}

/// Asserts that `answer` (`NAME PID LINE...`) came from the handler
/// `name` and carries `line`.
fn assert_answer(answer: &[String], name: &str, line: &str, d: &Daemon) {
    let (got_name, got_line) = (answer.first(), answer.get(2..).map(|l| l.join(" ")));
    assert_eq!(
        (got_name.map(String::as_str), got_line.as_deref()),
        (Some(name), Some(line)),
        "{}",
        d.report()
    );
}

/// Sends one line on `c`; the answer's words (`NAME PID LINE`), or
/// nothing if the server closed without answering.
fn ask(c: &mut TcpStream, line: &str) -> Vec<String> {
    let _ = c.write_all(format!("{line}\n").as_bytes());
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out.split_whitespace().map(str::to_string).collect()
}

#[test]
fn a_library_timeout_closes_an_idle_client() {
    let d = start_knobs(&["--timeout", "1"]);
    let mut c = d.connect();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    // The server closes: read returns 0 well before the client's own 5 s.
    let n = c
        .read(&mut buf)
        .unwrap_or_else(|e| panic!("{e}\n{}", d.report()));
    let waited = start.elapsed();
    assert_eq!(n, 0, "{}", d.report());
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}\n{}",
        d.report()
    );
    // The worker goes on.
    assert_eq!(ask(&mut d.connect(), "again")[0], "first");
}

#[test]
fn a_library_worker_is_recycled_after_max_requests() {
    let d = start_knobs(&["--workers", "1", "--max-requests", "3"]);
    let pids: Vec<String> = (0..6)
        .map(|i| ask(&mut d.connect(), &format!("n{i}"))[1].clone())
        .collect();
    assert_eq!(pids[0], pids[1], "{pids:?}");
    assert_eq!(pids[1], pids[2], "{pids:?}");
    assert_ne!(pids[2], pids[3], "not recycled after 3: {pids:?}");
    assert_eq!(pids[3], pids[5], "{pids:?}");
}

#[test]
fn a_library_only_from_refuses_other_clients() {
    let d = start_knobs(&["--only-from", "10.0.0.0/8"]);
    let answer = ask(&mut d.connect(), "hello");
    assert!(answer.is_empty(), "answered {answer:?}\n{}", d.report());
    assert!(
        d.wait_for_log("W0030", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    let d = start_knobs(&["--only-from", "127.0.0.0/8"]);
    assert_eq!(ask(&mut d.connect(), "hello")[0], "first");
}

#[test]
fn two_library_listeners_serve_with_their_own_handlers_and_pools() {
    let d = start_knobs_with(&["--workers", "2", "--second", "127.0.0.1:0"], "second");
    let first = d.address_of("server", "tcp");
    let second = d.address_of("second", "tcp");
    assert_ne!(first, second);
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 3),
        "{}",
        d.report()
    );
    let a = ask(&mut d.connect_to(&first), "x");
    let b = ask(&mut d.connect_to(&second), "y");
    assert_answer(&a, "first", "x", &d);
    assert_answer(&b, "second", "y", &d);
    assert_ne!(a[1], b[1], "one worker served both pools");
}

/// A UDP client socket on `from` (an address of loopback), with a 5 s
/// read timeout.
fn udp_client(from: &str) -> UdpSocket {
    let socket = UdpSocket::bind((from, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

/// The words of the answer to a datagram `socket` sent to `to`, or
/// nothing after 5 s without one.
fn udp_ask(socket: &UdpSocket, to: &str, text: &str) -> Vec<String> {
    socket.send_to(text.as_bytes(), to).unwrap();
    let mut buf = [0u8; 1024];
    match socket.recv_from(&mut buf) {
        Ok((n, from)) => {
            assert_eq!(from.to_string(), to, "answered from another address");
            String::from_utf8_lossy(&buf[..n])
                .split_whitespace()
                .map(str::to_string)
                .collect()
        }
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_library_udp_listener_answers_datagrams_beside_a_tcp_listener() {
    let d = start_knobs_with(&["--workers", "1", "--udp", "127.0.0.1:0"], "udp");
    let tcp = d.address_of("server", "tcp");
    let udp = d.address_of("udp", "udp");
    let client = udp_client("127.0.0.1");
    let a = udp_ask(&client, &udp, "ping 1");
    assert_answer(&a, "udp", "ping 1", &d);
    // The same worker answers the next one: it stays in recvfrom.
    let b = udp_ask(&client, &udp, "ping 2");
    assert_eq!(b.get(1), Some(&a[1]), "{b:?}\n{}", d.report());
    let t = ask(&mut d.connect_to(&tcp), "x");
    assert_answer(&t, "first", "x", &d);
    assert_ne!(a[1], t[1], "one worker served both pools");
    let workers = set(&d.workers());
    for pid in [&a[1], &t[1]] {
        assert!(
            workers.contains(&pid.parse().unwrap()),
            "{pid} is not a worker of {workers:?}"
        );
    }
}

#[test]
fn a_library_udp_only_from_drops_a_datagram_from_another_address() {
    let d = start_knobs_with(&["--udp", "127.0.0.1:0", "--only-from", "127.0.0.2"], "udp");
    let udp = d.address_of("udp", "udp");
    let refused = udp_client("127.0.0.1");
    refused.send_to(b"from 127.0.0.1", &udp).unwrap();
    // The one worker takes datagrams in the order they came: once the
    // allowed one is answered, the refused one was dropped before it.
    let allowed = udp_client("127.0.0.2");
    let answer = udp_ask(&allowed, &udp, "from 127.0.0.2");
    assert_eq!(
        answer.first().map(String::as_str),
        Some("udp"),
        "{}",
        d.report()
    );
    refused.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    let got = refused.recv_from(&mut buf);
    assert!(
        matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a datagram from outside only_from was answered: {got:?}\n{}",
        d.report()
    );
}

#[test]
fn a_library_udp_listener_refuses_a_timeout_before_forking() {
    let args = ["127.0.0.1:0", "--udp", "127.0.0.1:0", "--timeout", "1"];
    let stderr = expect_usage_error(
        Command::new(example("knobs")).args(args),
        "listener udp: `timeout` applies to tcp listeners, not udp",
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}
