//! The library: `examples/hello.rs` serves with its own handler.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

/// Cargo builds examples next to the binary's directory, under examples/.
pub fn example(name: &str) -> PathBuf {
    let bin = PathBuf::from(BIN);
    let path = bin.parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built (cargo test builds examples)",
        path.display()
    );
    path
}

#[test]
fn the_hello_example_serves_its_own_handler_in_prefork_workers() {
    let hello = example("hello");
    assert!(
        hello.exists(),
        "{} not built (cargo test builds examples)",
        hello.display()
    );
    let mut d = Daemon::start_with(
        Command::new(&hello).args(["127.0.0.1:0", "3"]),
        &["(examples/hello)"],
    );
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 3),
        "{}",
        d.report()
    );
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let mut c = d.connect();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        // "hello from worker 1234, connection 5\n"
        let pid: u32 = out
            .strip_prefix("hello from worker ")
            .and_then(|r| r.split(',').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected answer {out:?}"));
        pids.insert(pid);
    }
    let workers = set(&d.workers());
    assert!(
        pids.is_subset(&workers),
        "answered by {pids:?}, workers {workers:?}"
    );
    assert!(!pids.contains(&d.pid()), "the master answered");
    d.stop_gracefully();
}

// Issue #4, acceptance 3 (max_memory).
#[test]
fn a_leaking_handler_is_retired_by_max_memory_and_nothing_is_lost() {
    let leaky = example("leaky");
    assert!(leaky.exists(), "{} not built", leaky.display());
    let d = Daemon::start_with(
        Command::new(&leaky).args(["127.0.0.1:0", "2", "16M"]),
        &["(examples/leaky)"],
    );
    let mut pids = std::collections::BTreeSet::new();
    let mut most = 0;
    for i in 0..60 {
        let mut c = d.connect();
        let mut out = String::new();
        c.read_to_string(&mut out)
            .unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", d.report()));
        let mut words = out.split_whitespace();
        let pid: u32 = words
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("connection {i}: {out:?}"));
        let leaked: u32 = words.next().and_then(|p| p.parse().ok()).unwrap();
        pids.insert(pid);
        most = most.max(leaked);
    }
    eprintln!(
        "60 connections, 1 MiB leaked each: {} workers, at most {most} MiB leaked by one",
        pids.len()
    );
    assert!(pids.len() > 2, "no worker was retired\n{}", d.report());
    assert!(
        most <= 16,
        "a worker leaked {most} MiB past a 16 MiB limit\n{}",
        d.report()
    );
    assert!(d.stderr().contains("W0022"), "{}", d.report());
}
