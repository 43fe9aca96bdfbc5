//! `[daemon] log_level` and `--log-level` (issue 16): what each level
//! lets through.

use std::time::Duration;

use crate::util::*;

/// An echo service, a control socket that cannot be made (a warning,
/// W0040) and `log_level` if given.
fn config(dir: &TempDir, level: Option<&str>) -> std::path::PathBuf {
    let path = dir.path().join("preforkd.toml");
    let level = level.map_or(String::new(), |l| format!("log_level = \"{l}\"\n"));
    std::fs::write(
        &path,
        format!(
            "[daemon]\ncontrol = \"{}\"\n{level}\n[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 2\n",
            dir.path().join("absent/control.sock").display()
        ),
    )
    .unwrap();
    path
}

/// Serves `args`, answers one echo, stops it with SIGTERM and returns all
/// it wrote on stderr.
fn serve_and_stop(args: &[&str]) -> String {
    let mut d = Daemon::start(args);
    let mut c = d.connect_to(&d.address_of("e", "tcp"));
    assert_eq!(echo_once(&mut c, "x\n").unwrap(), "x\n");
    drop(c);
    d.signal(libc::SIGTERM);
    let status = d.wait_exit_within(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{}", d.report());
    // The reader thread has the last lines once the pipe is closed.
    std::thread::sleep(Duration::from_millis(200));
    d.stderr()
}

#[test]
fn log_level_warn_drops_info_lines_and_keeps_warnings() {
    let dir = TempDir::new("level-warn");
    let file = config(&dir, Some("warn"));
    let stderr = serve_and_stop(&["serve", "--foreground", "-c", file.to_str().unwrap()]);
    assert!(
        stderr.contains("W0040 cannot create the control socket"),
        "{stderr}"
    );
    assert!(!stderr.contains("M0001"), "an info line at warn:\n{stderr}");
    assert!(stderr.contains("listening on 127.0.0.1:"), "{stderr}");
}

#[test]
fn log_level_debug_logs_w0050_and_the_command_line_wins_over_the_file() {
    let dir = TempDir::new("level-debug");
    let file = config(&dir, Some("debug"));
    let file = file.to_str().unwrap();
    let stderr = serve_and_stop(&["serve", "--foreground", "-c", file]);
    assert!(stderr.contains("W0050 service e: worker"), "{stderr}");
    assert!(stderr.contains("M0001"), "{stderr}");

    let stderr = serve_and_stop(&["serve", "--foreground", "-c", file, "--log-level", "error"]);
    assert!(!stderr.contains("W0040"), "a warning at error:\n{stderr}");
    assert!(
        !stderr.contains("W0050"),
        "a debug line at error:\n{stderr}"
    );
    assert!(
        !stderr.contains("M0001"),
        "an info line at error:\n{stderr}"
    );

    // No log_level: info, M0001 without W0050.
    let plain = config(&dir, None);
    let stderr = serve_and_stop(&["serve", "--foreground", "-c", plain.to_str().unwrap()]);
    assert!(stderr.contains("M0001"), "{stderr}");
    assert!(!stderr.contains("W0050"), "{stderr}");
}

#[test]
fn an_unknown_log_level_is_one_line_naming_it_and_where() {
    let dir = TempDir::new("level-bad");
    let file = config(&dir, Some("loud"));
    let out = run_to_exit(&["check", "-c", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown log level 'loud' (expected one of: error, warn, info, debug)"),
        "{stderr}"
    );
    assert!(stderr.contains("preforkd.toml:3"), "{stderr}");

    let out = run_to_exit(&[
        "run",
        "127.0.0.1:0",
        "--builtin",
        "echo",
        "--log-level",
        "loud",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown log level 'loud'"), "{stderr}");

    let out = run_to_exit(&[
        "run",
        "127.0.0.1:0",
        "--builtin",
        "echo",
        "-v",
        "--log-level",
        "warn",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

// A reload applies a new log_level: once `log_level = "warn"` is
// reloaded, neither the reload's summary nor the stop's M0001 lines
// are logged.
#[test]
fn a_reload_applies_a_new_log_level() {
    let dir = TempDir::new("level-reload");
    let file = config(&dir, None);
    let mut d = Daemon::start(&["serve", "--foreground", "-c", file.to_str().unwrap()]);
    d.wait_running();
    // Its own "reloaded" line is at info, so the new pool size tells.
    let warn = std::fs::read_to_string(config(&dir, Some("warn"))).unwrap();
    std::fs::write(&file, warn.replace("workers = 2", "workers = 3")).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || d.workers().len() == 3),
        "{}",
        d.report()
    );
    d.signal(libc::SIGTERM);
    let status = d.wait_exit_within(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{}", d.report());
    std::thread::sleep(Duration::from_millis(200));
    let stderr = d.stderr();
    assert!(
        stderr.contains("running with 2 workers, generation 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("reloaded: generation 2"), "{stderr}");
    assert!(!stderr.contains("stopping gracefully"), "{stderr}");
}
