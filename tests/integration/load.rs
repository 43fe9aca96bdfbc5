//! `preforkd load`: the options the benchmarks drive it with (a burst,
//! a request and an expected answer of their own, the time to the first
//! byte, every latency in a file), against the real binary on loopback.

use std::process::Command;
use std::time::Duration;

use crate::util::*;

/// `preforkd load ADDR ARGS... --json`: its exit code and its figures.
fn load_status(addr: &str, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = run_command_within(
        Command::new(BIN).args(["load", addr, "--json"]).args(args),
        Duration::from_secs(60),
    );
    let figures = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "load {addr} {args:?}: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), figures)
}

/// The latencies `--latencies FILE` wrote, one a line.
fn latencies(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn a_burst_makes_one_connection_per_client_and_times_the_first_byte() {
    // Each connection gets its first line at once and its end a second later.
    let d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--workers",
        "4",
        "--",
        "/bin/sh",
        "-c",
        "echo first; sleep 1; echo done",
    ]);
    assert!(wait_until(Duration::from_secs(5), || d.workers().len() == 4));
    let dir = TempDir::new("load-burst");
    let addr = d.listening().to_string();
    let to_end = dir.path().join("end");
    let to_first = dir.path().join("first");
    let common = [
        "--burst",
        "--clients",
        "4",
        "--bytes",
        "0",
        "--expect",
        "done",
    ];

    let (code, end) = load_status(
        &addr,
        &[&common[..], &["--latencies", to_end.to_str().unwrap()]].concat(),
    );
    assert_eq!(code, Some(0), "{end}");
    assert_eq!(end["connections"], 4, "{end}");
    assert_eq!(end["failed"], 0, "{end}");
    let end = latencies(&to_end);
    assert_eq!(end.len(), 4);
    assert!(end.windows(2).all(|w| w[0] <= w[1]), "not sorted: {end:?}");
    assert!(
        end[0] >= 1_000_000,
        "an answer ended before the handler's sleep: {end:?}"
    );

    let (code, first) = load_status(
        &addr,
        &[
            &common[..],
            &["--first-byte", "--latencies", to_first.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(code, Some(0), "{first}");
    assert_eq!(first["connections"], 4, "{first}");
    let first = latencies(&to_first);
    assert_eq!(first.len(), 4);
    assert!(
        first.iter().all(|&t| t < 1_000_000),
        "the first byte waited for the handler's sleep: {first:?}"
    );
}

#[test]
fn send_and_expect_replace_the_echoed_bytes() {
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "2", "--builtin", "echo"]);
    let addr = d.listening().to_string();

    let words = |s: &'static str| s.split(' ').collect::<Vec<_>>();
    let (code, good) = load_status(&addr, &words("--send hello --expect ell --connections 20"));
    assert_eq!(code, Some(0), "{good}");
    assert_eq!(good["connections"], 20, "{good}");

    let (code, bad) = load_status(
        &addr,
        &words("--send hello --expect bye --connections 3 --timeout 5s"),
    );
    assert_eq!(code, Some(1), "{bad}");
    assert_eq!(bad["failed"], 3, "{bad}");
    let error = bad["first_error"].as_str().unwrap_or_default();
    assert!(error.contains("without \"bye\""), "{bad}");
}

#[test]
fn a_burst_has_no_limit_and_a_timeout_is_more_than_0() {
    for args in [
        &["load", "127.0.0.1:9", "--burst", "--connections", "5"][..],
        &["load", "127.0.0.1:9", "--burst", "--duration", "1s"],
        &["load", "127.0.0.1:9", "--send", "x", "--bytes", "4"],
        &["load", "127.0.0.1:9", "--timeout", "0s"],
    ] {
        let out = run_to_exit(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}
