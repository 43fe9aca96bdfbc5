//! SIGUSR2: binary upgrade without losing a connection (issue #5,
//! acceptance 5).

use std::time::Duration;

use crate::util::*;

/// Replaces the file at `path` by `contents`, as a package upgrade does
/// (a new file renamed over the old: the running binary stays intact).
fn replace(path: &std::path::Path, contents: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A config of one echo service `e` on port 0 with `workers`, and a
/// control socket, written in `dir`.
fn echo_config(dir: &TempDir, workers: u32) -> std::path::PathBuf {
    let config = dir.path().join("preforkd.toml");
    let service = format!(
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = {workers}\n"
    );
    std::fs::write(&config, with_control(dir, &service)).unwrap();
    config
}

struct KillFromPidfile(std::path::PathBuf);

impl Drop for KillFromPidfile {
    fn drop(&mut self) {
        if let Some(pid) = read_pid(&self.0) {
            kill_master(pid);
        }
    }
}

/// SIGKILL to a master that is not this test's child, and its workers.
fn kill_master(pid: u32) {
    for w in children_of(pid) {
        kill(w, libc::SIGKILL);
    }
    kill(pid, libc::SIGKILL);
}

#[test]
fn five_upgrades_under_load_lose_nothing_and_a_broken_binary_changes_nothing() {
    let dir = TempDir::new("upgrade");
    let bin = binary_for_nobody(&dir);
    let pidfile = dir.path().join("preforkd.pid");
    let config = echo_config(&dir, 2);
    let d = Daemon::start_with(
        std::process::Command::new(&bin).args([
            "serve",
            "--foreground",
            "-c",
            config.to_str().unwrap(),
            "--pidfile",
            pidfile.to_str().unwrap(),
        ]),
        &["serve (upgrade test)"],
    );
    let addr = d.address_of("e", "tcp");
    // Whatever happens, the master the pidfile names at the end, and its
    // workers, are stopped (they are not children of this test).
    let _cleanup = KillFromPidfile(pidfile.clone());
    assert!(
        wait_until(Duration::from_secs(5), || read_pid(&pidfile)
            == Some(d.pid())),
        "{}",
        d.report()
    );
    let load = Load::start(vec![addr.clone()], 32);
    assert!(load.progress(100), "{}", d.report());

    let mut masters = vec![d.pid()];
    let mut old_workers = Vec::new();
    for round in 1..=5 {
        let old = *masters.last().unwrap();
        old_workers.extend(children_of(old));
        kill(old, libc::SIGUSR2);
        let new = wait_until(Duration::from_secs(10), || {
            read_pid(&pidfile).is_some_and(|p| p != old)
        });
        assert!(
            new,
            "round {round}: the pidfile still names {old}\n{}",
            d.stderr()
        );
        let new = read_pid(&pidfile).unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || is_gone(old)),
            "round {round}: old master {old} is still there"
        );
        masters.push(new);
        assert!(
            load.progress(100),
            "round {round}: no progress\n{}",
            d.stderr()
        );
    }
    let current = *masters.last().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || children_of(current).len() == 2),
        "{}",
        d.stderr()
    );

    // A new master that fails after taking the sockets (an address it
    // cannot bind, added to the file): the old master keeps its pidfile,
    // its control socket and its sockets.
    let good_config = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{good_config}\n[[service]]\nname = \"unbindable\"\nlisten = [\"192.0.2.1:7\"]\nbuiltin = \"echo\"\nworkers = 1\n"),
    )
    .unwrap();
    kill(current, libc::SIGUSR2);
    assert!(
        d.wait_for_log("M0042 upgrade failed", Duration::from_secs(10)),
        "{}",
        d.stderr()
    );
    std::fs::write(&config, &good_config).unwrap();
    assert_eq!(
        read_pid(&pidfile),
        Some(current),
        "the pidfile was lost\n{}",
        d.stderr()
    );
    let status = run_to_exit(&["status", "-c", config.to_str().unwrap()]);
    assert!(
        status.status.success(),
        "the control socket was lost: {status:?}"
    );
    assert!(
        load.progress(100),
        "no progress after the failed upgrade\n{}",
        d.stderr()
    );

    // A binary that exits at start: the upgrade fails, the master stays.
    let good = std::fs::read(&bin).unwrap();
    replace(&bin, b"#!/bin/sh\necho 'a broken build' >&2\nexit 3\n");
    kill(current, libc::SIGUSR2);
    assert!(
        d.wait_for_log("(exit status 3)", Duration::from_secs(10)),
        "{}",
        d.stderr()
    );
    assert!(
        load.progress(100),
        "no progress after the failed upgrade\n{}",
        d.stderr()
    );
    assert_eq!(read_pid(&pidfile), Some(current));
    replace(&bin, &good);

    let (served, failures) = load.finish();
    eprintln!(
        "masters {masters:?}: {served} connections served during 5 upgrades and a failed one"
    );
    assert!(
        failures.is_empty(),
        "{} failed: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        d.stderr()
    );
    for old in &masters[..masters.len() - 1] {
        assert!(is_gone(*old), "old master {old} is left");
    }
    let left: Vec<_> = old_workers.iter().filter(|&&w| !is_gone(w)).collect();
    assert!(left.is_empty(), "old workers are left: {left:?}");

    kill(current, libc::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(10), || is_gone(current)),
        "the last master did not stop"
    );
    assert!(!pidfile.exists(), "the pidfile is left behind");
}

/// A stop while the new master is not ready yet: the sockets it would take
/// are being shut down, so it is killed, and the old master stops as
/// asked, without leaving it behind.
#[test]
fn a_stop_during_an_upgrade_kills_the_new_master_that_is_not_ready() {
    let dir = TempDir::new("upgrade-stop");
    let bin = binary_for_nobody(&dir);
    let config = echo_config(&dir, 1);
    let mut d = Daemon::start_with(
        std::process::Command::new(&bin).args([
            "serve",
            "--foreground",
            "-c",
            config.to_str().unwrap(),
        ]),
        &["serve (upgrade stop test)"],
    );
    // A "new binary" that never says ready.
    replace(&bin, b"#!/bin/sh\nexec sleep 60\n");
    kill(d.pid(), libc::SIGUSR2);
    assert!(
        d.wait_for_log(
            "M0041 USR2: upgrading: new master ",
            Duration::from_secs(10)
        ),
        "{}",
        d.report()
    );
    let stderr = d.stderr();
    let new_master: u32 = stderr
        .split("upgrading: new master ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in the M0041 line\n{stderr}"));
    let _cleanup = KillOnDrop(new_master);
    kill(d.pid(), libc::SIGTERM);
    let status = d.wait_exit_within(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{}", d.report());
    assert!(
        d.stderr()
            .contains("M0042 upgrade abandoned: the master is stopping"),
        "{}",
        d.report()
    );
    assert!(
        wait_until(Duration::from_secs(5), || is_gone(new_master)),
        "the new master {new_master} outlived the old one\n{}",
        d.report()
    );
}

/// SIGKILL to a process the test made, whatever happens to the test.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill(self.0, libc::SIGKILL);
    }
}

/// The parent of `pid`, from /proc/PID/status.
fn parent_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("PPid:"))?;
    line["PPid:".len()..].trim().parse().ok()
}

// Issue 16: under systemd, a new master that is the old one's child when
// MAINPID= names it stays "not our child" for systemd, and is SIGKILLed
// at the next stop. Under a service manager the new master is forked by
// an intermediate process, so it is never the old master's child; and
// once the old master is gone, it says MAINPID=, READY=1 and STATUS= itself.
#[test]
fn under_a_service_manager_the_new_master_is_not_the_old_ones_child() {
    use std::process::Command;
    let dir = TempDir::new("upgrade-notify");
    let (notify_path, notify) = datagram_socket(&dir, "notify.sock", Duration::from_millis(200));
    let config = echo_config(&dir, 2);
    let mut d = Daemon::start_with(
        Command::new(BIN)
            .args(["serve", "--foreground", "-c", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &notify_path),
        &["serve (NOTIFY_SOCKET, upgrade)"],
    );
    let old = d.pid();
    let mut got = Vec::new();
    let ready = |got: &[String]| got.iter().any(|m| m.lines().any(|l| l == "READY=1"));
    assert!(
        receive_until(&notify, &mut got, Duration::from_secs(5), ready),
        "no READY=1: {got:?}\n{}",
        d.report()
    );
    kill(old, libc::SIGUSR2);
    let mainpid = |m: &String| {
        m.lines()
            .find_map(|l| l.strip_prefix("MAINPID="))
            .and_then(|p| p.parse::<u32>().ok())
    };
    got.clear();
    assert!(
        receive_until(&notify, &mut got, Duration::from_secs(10), |g| g
            .iter()
            .any(|m| mainpid(m).is_some())),
        "no MAINPID=: {got:?}\n{}",
        d.stderr()
    );
    let new = got.iter().find_map(mainpid).unwrap();
    let _cleanup = KillFromPids(new);
    assert_ne!(new, old, "{got:?}");
    let parent = parent_of(new);
    assert!(
        parent.is_some() && parent != Some(old),
        "the new master {new} has parent {parent:?}, the old master is {old}"
    );
    assert!(
        d.wait_exit_within(Duration::from_secs(10)).is_some(),
        "the old master did not exit\n{}",
        d.report()
    );
    // Then the new master names itself, READY=1 and its status.
    got.clear();
    let again = |g: &[String]| {
        g.iter().any(|m| {
            m.lines().any(|l| l == format!("MAINPID={new}"))
                && m.lines().any(|l| l == "READY=1")
                && m.contains("STATUS=1 pools")
        })
    };
    assert!(
        receive_until(&notify, &mut got, Duration::from_secs(5), again),
        "the new master did not say MAINPID={new}, READY=1, STATUS=: {got:?}"
    );
}

// Under a service manager the new master is not our child, so no SIGCHLD
// says it died: the end of its pipe does. A closed pipe polls as POLLHUP
// without POLLIN, which the old master ignored, spinning in poll until the
// graceful timeout (30 s) gave the upgrade up. It must say M0042 at once,
// and go on serving, with its CPU time to show it does not spin.
#[test]
fn under_a_service_manager_a_new_master_that_fails_is_noticed_at_once() {
    use std::process::Command;
    let dir = TempDir::new("upgrade-notify-fail");
    let (notify_path, _notify) = datagram_socket(&dir, "notify.sock", Duration::from_millis(200));
    let config = echo_config(&dir, 2);
    let d = Daemon::start_with(
        Command::new(BIN)
            .args(["serve", "--foreground", "-c", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &notify_path),
        &["serve (NOTIFY_SOCKET, failed upgrade)"],
    );
    d.wait_running();
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{good}\n[[service]]\nname = \"unbindable\"\nlisten = [\"192.0.2.1:7\"]\nbuiltin = \"echo\"\nworkers = 1\n"),
    )
    .unwrap();
    let before = cpu_time(d.pid()).unwrap();
    kill(d.pid(), libc::SIGUSR2);
    assert!(
        d.wait_for_log("M0042 upgrade failed", Duration::from_secs(10)),
        "the old master did not notice its new master fail\n{}",
        d.stderr()
    );
    let spent = cpu_time(d.pid()).unwrap().saturating_sub(before);
    let mut c = d.connect_to(&d.address_of("e", "tcp"));
    assert_eq!(echo_once(&mut c, "still\n").unwrap(), "still\n");
    // A spinning master burns its whole core until the message; one that
    // waits, a few milliseconds for the fork.
    assert!(
        spent < Duration::from_millis(500),
        "the old master spent {spent:?} of CPU during the failed upgrade\n{}",
        d.stderr()
    );
}

/// Kills the new master at the end, whatever happened.
struct KillFromPids(u32);

impl Drop for KillFromPids {
    fn drop(&mut self) {
        kill_master(self.0);
    }
}
