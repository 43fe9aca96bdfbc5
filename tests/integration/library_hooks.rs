//! The library's hooks (issue 17, acceptance 1 and 2), through
//! `examples/hooks.rs`: each hook writes `PID HOOK` to a file, so the test
//! sees which process ran which hook, how often, in which order.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::library::example;
use crate::util::*;

/// The `(pid, hook)` lines of the hook log so far.
fn hook_lines(log: &Path) -> Vec<(u32, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pid, hook) = l.split_once(' ')?;
            Some((pid.parse().ok()?, hook.to_string()))
        })
        .collect()
}

/// The pids that ran `hook`, in order.
fn ran(log: &Path, hook: &str) -> Vec<u32> {
    hook_lines(log)
        .into_iter()
        .filter(|(_, h)| h == hook)
        .map(|(p, _)| p)
        .collect()
}

/// The pid of the worker that answers one connection.
fn served_by(d: &Daemon) -> u32 {
    let mut c = d.connect();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("unexpected answer {out:?}\n{}", d.report()))
}

fn start_hooks(dir: &TempDir, workers: &str, ready: Option<&Path>) -> (Daemon, std::path::PathBuf) {
    let log = dir.path().join("hooks.log");
    let mut command = Command::new(example("hooks"));
    command.args(["127.0.0.1:0", workers, log.to_str().unwrap()]);
    if let Some(ready) = ready {
        command.arg(ready);
    }
    let d = Daemon::start_with(&mut command, &["(examples/hooks)"]);
    (d, log)
}

// Issue 17, acceptance 1.
#[test]
fn each_hook_runs_in_its_process_in_order_and_as_often_as_documented() {
    let dir = TempDir::new("library-hook-order");
    let (mut d, log) = start_hooks(&dir, "3", None);
    let master = d.pid();
    assert!(
        wait_until(Duration::from_secs(10), || ran(&log, "after_fork").len()
            == 3),
        "{:?}\n{}",
        hook_lines(&log),
        d.report()
    );
    let lines = hook_lines(&log);
    assert_eq!(
        lines.first(),
        Some(&(master, "before_fork".to_string())),
        "the before-fork hook runs first, in the master: {lines:?}"
    );
    assert_eq!(ran(&log, "before_fork"), [master], "{lines:?}");
    let started: BTreeSet<u32> = ran(&log, "after_fork").into_iter().collect();
    assert_eq!(started.len(), 3, "one after-fork per worker: {lines:?}");
    assert!(!started.contains(&master), "{lines:?}");
    assert_eq!(started, set(&d.workers()), "{lines:?}\n{}", d.report());
    for _ in 0..10 {
        assert!(started.contains(&served_by(&d)), "{}", d.report());
    }

    // SIGHUP, no change asked: the reload hook once, in the master; the
    // pool is the same, so its workers stay and no hook runs again.
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log("M0013", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    assert_eq!(ran(&log, "reload"), [master], "{:?}", hook_lines(&log));
    assert_eq!(ran(&log, "after_fork").len(), 3, "{:?}", hook_lines(&log));
    assert_eq!(set(&d.workers()), started, "{}", d.report());

    d.stop_gracefully();
    let exited: Vec<u32> = ran(&log, "exit");
    assert_eq!(
        exited.iter().copied().collect::<BTreeSet<u32>>(),
        started,
        "one exit hook per worker: {:?}",
        hook_lines(&log)
    );
    assert_eq!(exited.len(), 3, "{:?}", hook_lines(&log));
    // Each worker's exit comes after its own start.
    let lines = hook_lines(&log);
    for pid in &started {
        let at = |hook: &str| lines.iter().position(|(p, h)| p == pid && h == hook);
        assert!(at("after_fork") < at("exit"), "{lines:?}");
    }
    assert_eq!(ran(&log, "before_fork"), [master]);
}

// Issue 17: the reload hook gives the pool a new size, or refuses.
#[test]
fn a_reload_hook_resizes_the_pool_or_refuses_with_its_reason() {
    let dir = TempDir::new("library-reload-hook");
    let (mut d, log) = start_hooks(&dir, "2", None);
    assert!(
        wait_until(Duration::from_secs(10), || d.workers().len() == 2),
        "{}",
        d.report()
    );
    let asked = dir.path().join("hooks.log.reload");
    std::fs::write(&asked, "refuse not today\n").unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log("not today", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    assert!(d.stderr().contains("M0010"), "{}", d.report());
    assert_eq!(d.workers().len(), 2, "{}", d.report());

    std::fs::write(&asked, "workers 4\n").unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || d.workers().len() == 4
            && ran(&log, "after_fork").len() == 4),
        "{:?}\n{}",
        hook_lines(&log),
        d.report()
    );
    assert_eq!(ran(&log, "reload").len(), 2);
    d.stop_gracefully();
    assert_eq!(ran(&log, "exit").len(), 4, "{:?}", hook_lines(&log));
}

// Issue 17, acceptance 2.
#[test]
fn a_failing_after_fork_hook_backs_off_is_logged_and_recovers() {
    let dir = TempDir::new("library-failing-hook");
    let ready = dir.path().join("ready");
    let (mut d, log) = start_hooks(&dir, "1", Some(&ready));
    let failures = || ran(&log, "after_fork_failed").len();
    // The back-off grows to a second within about 1.3 s of the start.
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || failures() >= 9),
        "{:?}\n{}",
        hook_lines(&log),
        d.report()
    );
    let ramp = start.elapsed();
    let before = failures();
    let window = Duration::from_secs(3);
    let t0 = Instant::now();
    // Nothing to wait for: the count over a fixed window is the measure.
    std::thread::sleep(window);
    let forks = failures() - before;
    let per_second = forks as f64 / t0.elapsed().as_secs_f64();
    eprintln!(
        "failing after-fork hook: {before} forks in the first {ramp:?}, then {forks} in {window:?} ({per_second:.2}/s)"
    );
    assert!(
        per_second <= 2.0,
        "{forks} forks in {window:?}: a fork storm\n{}",
        d.report()
    );
    assert!(forks >= 1, "the master stopped retrying\n{}", d.report());
    let stderr = d.stderr();
    assert!(
        stderr.contains("W0017") && stderr.contains("does not exist yet"),
        "{}",
        d.report()
    );
    assert!(stderr.contains("W0002"), "{}", d.report());
    assert!(
        stderr.contains("forking at most once a second"),
        "{}",
        d.report()
    );
    assert!(ran(&log, "after_fork").is_empty());

    // The cause goes away: the next worker starts and serves, and the
    // master says the back-off is over.
    std::fs::write(&ready, "").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || ran(&log, "after_fork").len()
            == 1),
        "{}",
        d.report()
    );
    let worker = ran(&log, "after_fork")[0];
    assert_eq!(served_by(&d), worker, "{}", d.report());
    assert!(
        d.wait_for_log("W0004", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    d.stop_gracefully();
}

// Issue 17: a reload hook's settings meet the config's bounds.
#[test]
fn a_reload_hook_s_settings_out_of_bounds_refuse_the_reload_and_the_old_pool_serves() {
    let dir = TempDir::new("library-reload-bounds");
    let (mut d, log) = start_hooks(&dir, "2", None);
    assert!(
        wait_until(Duration::from_secs(10), || d.workers().len() == 2),
        "{}",
        d.report()
    );
    let before = set(&d.workers());
    std::fs::write(dir.path().join("hooks.log.reload"), "workers 5000\n").unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log(
            "M0010 reload refused: pool hooks: workers = 5000: expected a number from 1 to 4096",
            Duration::from_secs(10)
        ),
        "{}",
        d.report()
    );
    assert_eq!(ran(&log, "reload").len(), 1, "{:?}", hook_lines(&log));
    // The old workers go on, and no new one was forked.
    assert_eq!(set(&d.workers()), before, "{}", d.report());
    assert_eq!(ran(&log, "after_fork").len(), 2, "{:?}", hook_lines(&log));
    assert!(before.contains(&served_by(&d)), "{}", d.report());
    d.stop_gracefully();
}
