//! The `work` builtin (UNP's `web_child` with knobs): the bytes asked for,
//! its CPU time spent on the server, its sleep a timer in the event model,
//! and its parameters and request lines checked.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

fn serve(model: &str, builtin: &str) -> Daemon {
    let args = [
        "run",
        "127.0.0.1:0",
        "-w",
        "1",
        "--model",
        model,
        "--builtin",
        builtin,
    ];
    Daemon::start(&args)
}

/// Sends `request` and reads until the server closes: what it sent. (A
/// server that closes with some of the request unread resets the
/// connection: that is a close too.)
fn ask(d: &Daemon, request: &[u8]) -> Vec<u8> {
    let mut c = d.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request).unwrap();
    let mut out = Vec::new();
    match c.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{request:?}: {e}\n{}", d.report()),
    }
    out
}

#[test]
fn work_sends_exactly_the_bytes_asked_for_then_closes() {
    for model in ["prefork", "event", "threads"] {
        let d = serve(model, "work");
        for bytes in [4000usize, 0, 100_000] {
            let out = ask(&d, format!("{bytes}\n").as_bytes());
            assert_eq!(out.len(), bytes, "{model}: asked {bytes}\n{}", d.report());
        }
        // Sent in pieces, with CRLF, as telnet does.
        let mut c = d.connect();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"40").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        c.write_all(b"00\r\n").unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 4000, "{model}");
    }
}

#[test]
fn work_closes_on_a_bad_line_or_too_large_a_number() {
    for model in ["prefork", "event"] {
        let d = serve(model, "work:max=1000");
        for bad in [&b"abc\n"[..], b"1001\n", b"-1\n", b"\n", &[b'1'; 25]] {
            assert!(ask(&d, bad).is_empty(), "{model}: {bad:?} was answered");
        }
        // A client that sends nothing and closes; the next is served.
        drop(d.connect());
        assert_eq!(ask(&d, b"1000\n").len(), 1000, "{model}\n{}", d.report());
    }
}

#[test]
fn event_sleeps_on_a_timer_so_sleeping_clients_are_answered_together() {
    let d = serve("event", "work:sleep=200ms");
    let mut clients: Vec<TcpStream> = (0..5).map(|_| d.connect()).collect();
    let start = Instant::now();
    for c in &mut clients {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"4000\n").unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 4000, "client {i}\n{}", d.report());
    }
    let took = start.elapsed();
    // Each waited its 200 ms; one after another (a blocking sleep in the
    // loop) would take a second.
    assert!(took >= Duration::from_millis(200), "{took:?}: no sleep");
    assert!(
        took < Duration::from_millis(800),
        "5 clients of a 200 ms sleep took {took:?}: the sleep blocks the loop\n{}",
        d.report()
    );
}

#[test]
fn work_cpu_is_spent_on_the_serving_process() {
    for model in ["prefork", "event"] {
        let d = serve(model, "work:cpu=50ms");
        let worker = d.workers();
        assert_eq!(worker.len(), 1, "{model}: {}", d.report());
        let before = cpu_time(worker[0]).unwrap();
        for _ in 0..4 {
            assert_eq!(ask(&d, b"10\n").len(), 10, "{model}");
        }
        let used = cpu_time(worker[0]).unwrap() - before;
        assert!(
            used >= Duration::from_millis(4 * 40),
            "{model}: 4 connections of cpu=50ms used {used:?} of the worker's CPU"
        );
    }
}

#[test]
fn run_refuses_bad_work_parameters_in_one_line() {
    for (builtin, named) in [
        ("work:cpu=x", "parameter cpu"),
        ("work:sleep=11s", "parameter sleep"),
        ("work:max=65M", "parameter max"),
        ("work:bytes=10", "unknown parameter 'bytes'"),
        ("echo:cpu=1ms", "echo takes no parameters"),
    ] {
        let out = run_to_exit(&["run", "127.0.0.1:0", "--builtin", builtin]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{builtin}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{builtin}: {stderr}");
        assert!(stderr.contains(named), "{builtin}: {stderr}");
    }
    let out = run_to_exit(&["run", "127.0.0.1:0", "--udp", "--builtin", "work"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("serves tcp, not udp"), "{stderr}");
}
