//! Stopping: SIGTERM lets a session finish, SIGINT stops at once.

use std::io::ErrorKind;
use std::time::Duration;

use crate::util::*;

// Issue #2, acceptance 6 (TERM).
#[test]
fn term_lets_a_busy_worker_finish_its_exchange_and_refuses_new_connections() {
    let mut d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "2", "--builtin", "echo"]);
    let workers = d.workers();
    let mut c = d.connect();
    assert_eq!(echo_once(&mut c, "first\n").unwrap(), "first\n");

    d.signal(libc::SIGTERM);
    let refused = wait_until(Duration::from_secs(5), || {
        matches!(
            std::net::TcpStream::connect_timeout(&d.addr(), Duration::from_secs(1)),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused
        )
    });
    assert!(
        refused,
        "new connections still accepted after TERM\n{}",
        d.report()
    );

    // The session in progress goes on and completes.
    assert_eq!(
        echo_once(&mut c, "second\n").unwrap(),
        "second\n",
        "{}",
        d.report()
    );
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 1),
        "the busy worker should be the only one left\n{}",
        d.report()
    );
    drop(c);

    let status = d
        .wait_exit_within(Duration::from_secs(10))
        .expect("master did not exit");
    assert!(status.success(), "exit {status:?}\n{}", d.report());
    assert!(wait_until(Duration::from_secs(2), || workers
        .iter()
        .all(|&p| is_gone(p))));
}

#[test]
fn term_kills_a_worker_still_busy_after_the_graceful_timeout() {
    let mut d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--graceful-timeout",
        "500ms",
        "--builtin",
        "echo",
    ]);
    let mut c = d.connect();
    echo_once(&mut c, "stay\n").unwrap();
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit_within(Duration::from_secs(10))
        .expect("master did not exit");
    assert!(status.success(), "{}", d.report());
    assert!(d.stderr().contains("graceful timeout"), "{}", d.report());
    assert!(all_children_of(d.pid()).is_empty());
}

// Issue #2, acceptance 6 (INT and QUIT).
#[test]
fn int_and_quit_stop_at_once_leaving_no_worker() {
    for sig in [libc::SIGINT, libc::SIGQUIT] {
        let mut d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "3", "--builtin", "echo"]);
        let workers = d.workers();
        let mut c = d.connect();
        echo_once(&mut c, "busy\n").unwrap();
        d.signal(sig);
        let status = d
            .wait_exit_within(Duration::from_secs(2))
            .expect("master did not exit at once");
        assert!(status.success(), "{}", d.report());
        assert!(
            workers.iter().all(|&p| is_gone(p)),
            "workers left: {workers:?}"
        );
        // The busy client's connection was closed under it.
        assert!(echo_once(&mut c, "again\n").is_err());
    }
}

#[test]
fn ttin_and_ttou_change_the_worker_count_by_one() {
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "2", "--builtin", "echo"]);
    d.signal(libc::SIGTTIN);
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 3),
        "{}",
        d.report()
    );
    d.signal(libc::SIGTTOU);
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 2),
        "{}",
        d.report()
    );
    // A TERM sent to one worker (as TTOU does) must not stop the master.
    let mut c = d.connect();
    assert_eq!(echo_once(&mut c, "ok\n").unwrap(), "ok\n");
}

#[test]
fn int_also_kills_the_programs_workers_are_running() {
    let mut d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--",
        "/bin/sleep",
        "60",
    ]);
    let _c = d.connect();
    let mut programs = Vec::new();
    let started = wait_until(Duration::from_secs(5), || {
        programs = d.workers().into_iter().flat_map(children_of).collect();
        !programs.is_empty()
    });
    assert!(started, "no program started\n{}", d.report());
    d.signal(libc::SIGINT);
    d.wait_exit_within(Duration::from_secs(2))
        .expect("master did not exit at once");
    assert!(
        wait_until(Duration::from_secs(1), || programs
            .iter()
            .all(|&p| is_gone(p))),
        "programs left running: {programs:?}"
    );
}

#[test]
fn term_waits_for_a_running_program_to_finish() {
    let dir = TempDir::new("slowprog");
    let script = dir.script("slow.sh", "#!/bin/sh\nread line\necho \"got $line\"\n");
    let mut d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--",
        script.to_str().unwrap(),
    ]);
    let mut c = d.connect();
    // The program is running, waiting for a line.
    assert!(wait_until(Duration::from_secs(5), || d
        .workers()
        .iter()
        .any(|&w| !children_of(w).is_empty())));
    d.signal(libc::SIGTERM);
    // The master has acted on TERM once new connections are refused.
    assert!(wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect_timeout(&d.addr(), Duration::from_secs(1)).is_err()
    }));
    use std::io::{Read, Write};
    c.write_all(b"late\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert_eq!(out, "got late\n", "{}", d.report());
    let status = d
        .wait_exit_within(Duration::from_secs(10))
        .expect("master did not exit");
    assert!(status.success(), "{}", d.report());
}

#[test]
fn ttin_at_max_changes_nothing() {
    let d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--min-spare",
        "0",
        "--max-spare",
        "2",
        "--max-workers",
        "2",
        "--builtin",
        "echo",
    ]);
    d.signal(libc::SIGTTIN);
    assert!(
        d.wait_for_log("TTIN: now 2 workers", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    assert_eq!(d.workers().len(), 2, "{}", d.report());
}
