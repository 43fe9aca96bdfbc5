//! The builder's pool knobs (issue 17, acceptance 3), each through
//! `examples/knobs.rs`, a library program that sets them from its flags.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::library::example;
use crate::util::*;

fn start_knobs(args: &[&str]) -> Daemon {
    let mut all = vec!["127.0.0.1:0"];
    all.extend_from_slice(args);
    Daemon::start_with(Command::new(example("knobs")).args(&all), &all)
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
    let d = start_knobs(&["--workers", "2", "--second", "127.0.0.1:0"]);
    assert!(
        d.wait_for_log("service second", Duration::from_secs(10)),
        "{}",
        d.report()
    );
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
    assert_eq!(
        (a[0].as_str(), a[2].as_str()),
        ("first", "x"),
        "{}",
        d.report()
    );
    assert_eq!(
        (b[0].as_str(), b[2].as_str()),
        ("second", "y"),
        "{}",
        d.report()
    );
    assert_ne!(a[1], b[1], "one worker served both pools");
}
