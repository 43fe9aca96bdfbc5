//! A library handler's state on the scoreboard (issue 17): the `http`
//! example reports its current request with `preforkd::set_state`, and
//! `preforkd status --control` shows it through the example's control
//! socket while the request is in flight, sanitized, and no more once it
//! is done.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::library::example;
use crate::util::*;

/// The http example with one worker, serving `dir`/public, with its
/// control socket in `dir`; the socket's path.
fn start_http(dir: &TempDir) -> (Daemon, String) {
    let root = dir.path().join("public");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), "<p>hello</p>\n").unwrap();
    let control = dir.path().join("control.sock");
    let d = Daemon::start_with(
        Command::new(example("http")).args([
            "127.0.0.1:0",
            "1",
            root.to_str().unwrap(),
            control.to_str().unwrap(),
        ]),
        &["(examples/http)"],
    );
    (d, control.to_str().unwrap().to_string())
}

/// `preforkd status --control SOCKET [--json]`: its stdout, raw.
fn status(control: &str, json: bool) -> Vec<u8> {
    let mut args = vec!["status", "--control", control];
    if json {
        args.push("--json");
    }
    let out = run_to_exit(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The one worker's entry in `status --json`, once it is there.
fn worker(control: &str) -> serde_json::Value {
    let s: serde_json::Value = serde_json::from_slice(&status(control, true)).unwrap_or_default();
    s["pools"][0]["workers"][0].clone()
}

/// Sends `head` (a request line and headers, not yet the empty line that
/// ends them): the worker has read the request line and waits for the
/// rest. Waits until `status` shows it busy, with some handler state.
fn hold(d: &Daemon, control: &str, head: &[u8]) -> (TcpStream, serde_json::Value) {
    let mut c = d.connect();
    c.write_all(head).unwrap();
    let mut seen = serde_json::Value::Null;
    let shown = wait_until(Duration::from_secs(5), || {
        seen = worker(control);
        seen["state"] == "busy" && seen["handler_state"].is_string()
    });
    assert!(
        shown,
        "status never showed the request: {seen}\n{}",
        d.report()
    );
    (c, seen)
}

/// Ends the held request, reads the response, and waits until `status`
/// shows the worker idle again; its entry then.
fn finish(d: &Daemon, control: &str, mut c: TcpStream) -> (String, serde_json::Value) {
    c.write_all(b"\r\n").unwrap();
    let mut response = String::new();
    c.read_to_string(&mut response).unwrap();
    let mut seen = serde_json::Value::Null;
    let idle = wait_until(Duration::from_secs(5), || {
        seen = worker(control);
        seen["state"] == "idle"
    });
    assert!(idle, "the worker is not idle again: {seen}\n{}", d.report());
    (response, seen)
}

/// Whether `text` holds a byte a terminal would act on: C0 controls but
/// the newline, DEL, and C1 controls (as UTF-8).
fn has_control_bytes(text: &[u8]) -> bool {
    text.iter().any(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
        || text
            .windows(2)
            .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]))
}

#[test]
fn status_shows_the_http_example_s_request_while_it_is_in_flight_and_not_after() {
    let dir = TempDir::new("library-state");
    let (mut d, control) = start_http(&dir);
    let (c, seen) = hold(&d, &control, b"GET /index.html HTTP/1.1\r\nHost: x\r\n");
    assert_eq!(seen["handler_state"], "GET /index.html", "{seen}");
    let text = String::from_utf8(status(&control, false)).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(" busy "))
        .unwrap_or_else(|| panic!("no busy worker:\n{text}"));
    assert!(line.ends_with("  GET /index.html"), "{text}");
    assert!(text.contains("handler_state"), "{text}");

    let (response, seen) = finish(&d, &control, c);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response:?}");
    assert_eq!(seen["handler_state"], serde_json::Value::Null, "{seen}");
    // Cleared in the slot, not only hidden while idle: the next request,
    // held before its line is complete, shows nothing yet.
    let mut next = d.connect();
    next.write_all(b"GE").unwrap();
    let mut busy = serde_json::Value::Null;
    assert!(
        wait_until(Duration::from_secs(5), || {
            busy = worker(&control);
            busy["state"] == "busy"
        }),
        "{busy}\n{}",
        d.report()
    );
    assert_eq!(busy["handler_state"], serde_json::Value::Null, "{busy}");
    drop(next);
    d.stop_gracefully();
    assert!(!Path::new(&control).exists(), "the control socket was left");
}

#[test]
fn a_hostile_request_line_is_shown_sanitized_and_cut_to_48_bytes() {
    let dir = TempDir::new("library-state-hostile");
    let (d, control) = start_http(&dir);
    // An escape sequence, BEL, a C1 control, a right-to-left override,
    // then two-byte characters past 48 bytes.
    let target = format!("/\x1b[2J\x07\u{9b}\u{202e}x{}", "é".repeat(40));
    let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\n");
    let (c, seen) = hold(&d, &control, head.as_bytes());
    // "GET /?[2J???x" is 13 bytes; 17 é make 47, an 18th would pass 48.
    let expected = format!("GET /?[2J???x{}", "é".repeat(17));
    assert_eq!(expected.len(), 47);
    assert_eq!(seen["handler_state"], expected.as_str(), "{seen}");
    let text = status(&control, false);
    assert!(
        !has_control_bytes(&text),
        "{:?}",
        String::from_utf8_lossy(&text)
    );
    assert!(
        String::from_utf8_lossy(&text).contains(&expected),
        "{}",
        String::from_utf8_lossy(&text)
    );
    let json = status(&control, true);
    assert!(
        !has_control_bytes(&json),
        "{}",
        String::from_utf8_lossy(&json)
    );
    let (response, seen) = finish(&d, &control, c);
    assert!(response.starts_with("HTTP/1.1 404"), "{response:?}");
    assert_eq!(seen["handler_state"], serde_json::Value::Null, "{seen}");
}
