//! The library: `examples/hello.rs` serves with its own handler, and on
//! the socket a service manager passed.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::AsRawFd;
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

/// The inodes of the TCP sockets in LISTEN state (/proc/net/tcp, tcp6).
fn listening_tcp_inodes() -> BTreeSet<String> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    (fields.get(3) == Some(&"0A")).then(|| fields.get(9).map(|i| i.to_string()))?
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The inodes of the sockets process `pid` holds.
fn socket_inodes_of(pid: u32) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}

// Issue 17: sockets adopted from systemd (`LISTEN_FDS`), through a
// library program.
#[test]
fn a_library_program_serves_on_the_socket_systemd_passed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
    let inode = link
        .to_string_lossy()
        .trim_start_matches("socket:[")
        .trim_end_matches(']')
        .to_string();
    // Waiting in the socket's queue before the program even starts.
    let mut early = connect_within_5s(&listener.local_addr().unwrap()).unwrap();
    let hello = example("hello");
    let activation = Activation {
        socket: &listener,
        listen_pid: "$$",
        names: None,
        umask_000: false,
    };
    let mut d = Daemon::start_from(
        &mut activation.command(&hello, &[&addr, "2"]),
        activation.stdin(),
        &["(examples/hello, LISTEN_FDS=1)"],
    );
    assert_eq!(d.listening(), addr, "{}", d.report());
    assert!(
        d.stderr().contains("passed by the service manager"),
        "{}",
        d.report()
    );
    let mut out = String::new();
    early
        .read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("{e}\n{}", d.report()));
    assert!(
        out.starts_with("hello from worker "),
        "the connection made before the start got {out:?}\n{}",
        d.report()
    );
    // The program listens on our socket and on no socket of its own.
    let listening: BTreeSet<String> = socket_inodes_of(d.pid())
        .intersection(&listening_tcp_inodes())
        .cloned()
        .collect();
    assert_eq!(
        listening,
        BTreeSet::from([inode]),
        "the program listens on sockets other than the one passed\n{}",
        d.report()
    );
    d.stop_gracefully();
}

#[test]
fn a_library_program_ignores_sockets_passed_to_another_pid() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let activation = Activation {
        socket: &listener,
        // The shell's parent: not the program.
        listen_pid: "$PPID",
        names: None,
        umask_000: false,
    };
    // So it binds the address itself, which our socket holds.
    let out = run_command_from(
        &mut activation.command(&example("hello"), &[&addr, "1"]),
        activation.stdin(),
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot bind {addr}")) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("passed by the service manager"),
        "{stderr}"
    );
}
