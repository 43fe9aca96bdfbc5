//! Defence 8 of docs/security.md: the master's loop never stalls.
//!
//! A control client that drips its request cannot hold the master: workers
//! are still reaped and replaced, and other clients answered. A config
//! file checks in time linear in its size, and one with tens of thousands
//! of errors prints a bounded number of lines.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

/// A control client that sends one byte every 90 ms, never a newline,
/// until the master closes it or 10 s pass. Returns how long it was kept.
fn drip(socket: &Path) -> std::thread::JoinHandle<Duration> {
    let mut s = UnixStream::connect(socket).unwrap();
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) && s.write_all(b"x").is_ok() {
            std::thread::sleep(Duration::from_millis(90));
        }
        start.elapsed()
    })
}

#[test]
fn a_control_client_dripping_its_request_delays_neither_respawn_nor_other_clients() {
    let dir = TempDir::new("drip");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 2\n",
    );
    let socket = dir.path().join("control.sock");
    let config = dir.path().join("preforkd.toml");
    assert!(
        wait_until(Duration::from_secs(5), || {
            let w = d.workers();
            w.len() == 2 && w.iter().all(|&p| in_accept(p))
        }),
        "{}",
        d.report()
    );
    // Two: a master that reads a client inline until it is done may be
    // woken from the first by SIGCHLD, and then take the second.
    let drippers = [drip(&socket), drip(&socket)];
    std::thread::sleep(Duration::from_millis(200));
    let victim = d.workers()[0];
    kill(victim, libc::SIGKILL);
    let killed = Instant::now();
    let replaced = wait_until(Duration::from_millis(1500), || {
        let w = d.workers();
        w.len() == 2 && !w.contains(&victim) && w.iter().all(|&p| in_accept(p))
    });
    let after = killed.elapsed();
    assert!(
        replaced,
        "no replacement in accept 1.5 s after the kill, while a control client dripped\n{}",
        d.report()
    );
    eprintln!("replacement in accept after {after:?}");

    // Another client's request, while a second one drips.
    let second = drip(&socket);
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    let out = run_command_within(
        Command::new(BIN).args(["status", "-c", config.to_str().unwrap()]),
        Duration::from_millis(1500),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "status answered in {:?} while a client dripped",
        asked.elapsed()
    );
    for client in drippers.into_iter().chain([second]) {
        let kept = client.join().unwrap();
        assert!(
            kept < Duration::from_secs(3),
            "a dripping control client was kept for {kept:?}"
        );
    }
}

fn services(n: usize, builtin: &str) -> String {
    let mut text = String::new();
    for i in 0..n {
        text += &format!(
            "[[service]]\nname = \"s{i}\"\nlisten = [\"127.0.0.1:{}\"]\nbuiltin = \"{builtin}\"\n\n",
            1 + i
        );
    }
    text
}

// The issue asks that 12,000 services check in under 2 s; tests assert no
// speed (release figures are in docs/reliability.md). This one asks for
// linear time loosely: 24,000 services in a debug build within 20 s, which
// a check that scans the text before each service (quadratic) misses by
// far (the code before this defence took 25 s for 12,000).
#[test]
fn checking_a_config_of_24000_services_takes_time_linear_in_its_size() {
    let dir = TempDir::new("big-check");
    let path = dir.path().join("big.toml");
    std::fs::write(&path, services(24_000, "echo")).unwrap();
    let start = Instant::now();
    let out = run_command_within(
        Command::new(BIN).args(["check", "-c", path.to_str().unwrap()]),
        Duration::from_secs(20),
    );
    eprintln!("check of 24,000 services: {:?}", start.elapsed());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_config_with_60000_errors_prints_the_first_20_and_a_count() {
    let dir = TempDir::new("many-errors");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, services(60_000, "ech0")).unwrap();
    let out = run_command_within(
        Command::new(BIN).args(["check", "-c", path.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let file = path.to_str().unwrap();
    let diagnostics = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{file}:")))
        .count();
    // Each diagnostic is its line, the text it points at and a caret.
    assert_eq!(diagnostics, 20, "{}", &stderr[..stderr.len().min(4000)]);
    assert!(lines.len() <= 20 * 3 + 1, "{} lines", lines.len());
    assert_eq!(
        lines.last().copied(),
        Some(format!("preforkd: {file}: 60000 errors (59980 more not shown)").as_str())
    );
}

#[test]
fn a_reload_of_a_file_with_60000_errors_logs_the_first_20_and_a_count() {
    let dir = TempDir::new("many-errors-reload");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
    );
    let path = dir.path().join("preforkd.toml");
    std::fs::write(&path, with_control(&dir, &services(60_000, "ech0"))).unwrap();
    // `preforkd reload` would refuse the file itself; SIGHUP and the
    // control socket hand it to the master.
    d.signal(libc::SIGHUP);
    let summary = "M0010 reload refused: 60000 error(s) (59980 more not shown)";
    assert!(
        d.wait_for_log(summary, Duration::from_secs(60)),
        "{}",
        &d.stderr()[..d.stderr().len().min(4000)]
    );
    let logged = d.stderr().lines().filter(|l| l.contains("M0010")).count();
    assert_eq!(logged, 21, "{logged} M0010 lines");
    let mut control = UnixStream::connect(dir.path().join("control.sock")).unwrap();
    control
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    control.write_all(b"reload\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut control, &mut answer).unwrap();
    assert_eq!(answer.lines().count(), 21, "{answer}");
    assert!(
        answer.ends_with("(59980 more not shown); the running configuration is unchanged\n"),
        "{answer}"
    );
    let mut c = d.connect_to(&d.address_of("e", "tcp"));
    assert_eq!(echo_once(&mut c, "still\n").unwrap(), "still\n");
}
