//! The library: `examples/hello.rs` serves with its own handler.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

/// Cargo builds examples next to the binary's directory, under examples/.
fn example(name: &str) -> PathBuf {
    let bin = PathBuf::from(BIN);
    bin.parent().unwrap().join("examples").join(name)
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
    d.signal(libc::SIGTERM);
    assert!(
        d.wait_exit_within(Duration::from_secs(10))
            .is_some_and(|s| s.success()),
        "{}",
        d.report()
    );
}
