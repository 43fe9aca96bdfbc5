//! `[daemon] log_level` and `--log-level` (issue 16): what each level
//! lets through, and a program's exit status logged at info (C0002).

use std::io::Read;
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

    // Usage errors of `run`: a bad level, and -v with --log-level.
    for (flags, why) in [
        (&["--log-level", "loud"][..], "unknown log level 'loud'"),
        (&["-v", "--log-level", "warn"][..], "cannot be used with"),
    ] {
        let mut args = vec!["run", "127.0.0.1:0", "--builtin", "echo"];
        args.extend_from_slice(flags);
        let out = run_to_exit(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(why), "{flags:?}: {stderr}");
    }
}

// rsync's module listing exits 255: a program's status is C0002 at info,
// not an error, and `--log-level warn` silences it.
#[test]
fn a_programs_non_zero_exit_is_an_info_line_with_an_id() {
    let dir = TempDir::new("level-exit");
    let script = dir.script("modules.sh", "#!/bin/sh\necho modules\nexit 255\n");
    let script = script.to_str().unwrap();
    for (level, logged) in [("info", true), ("warn", false)] {
        let d = Daemon::start(&[
            "run",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--log-level",
            level,
            "--",
            script,
        ]);
        let answer = || {
            let mut out = String::new();
            d.connect().read_to_string(&mut out).unwrap();
            out
        };
        assert_eq!(answer(), "modules\n");
        if logged {
            assert!(
                d.wait_for_log("C0002 modules.sh for 127.0.0.1:", Duration::from_secs(5)),
                "{}",
                d.report()
            );
            let stderr = d.stderr();
            let found = stderr.lines().find(|l| l.contains("C0002")).unwrap();
            assert!(found.ends_with(": exit status: 255"), "{found}");
        } else {
            // A second client is served after the first one's program ended.
            assert_eq!(answer(), "modules\n");
            std::thread::sleep(Duration::from_millis(200));
            assert!(!d.stderr().contains("C0002"), "{}", d.report());
        }
    }
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

// Under systemd, stderr is the journal ($JOURNAL_STREAM names its device
// and inode): a program's stderr is then relayed, one line each at
// priority info, tagged with the service and the program's pid, rather
// than written untagged into the master's stream. A file stands in for
// the journal's stream here; packaging/systemd-test.sh checks the real one.
#[test]
fn under_the_journal_a_programs_stderr_is_tagged_with_its_service_and_pid() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("level-journal");
    let script = dir.script(
        "talker.sh",
        "#!/bin/sh\necho to-the-log-from-$$ >&2\necho hello\n",
    );
    let log = dir.path().join("journal");
    let stream = std::fs::File::create(&log).unwrap();
    let meta = stream.metadata().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["run", "127.0.0.1:0", "--workers", "1", "--"])
        .arg(&script)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stream)
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut addr = None;
    wait_until(Duration::from_secs(10), || {
        addr = read().lines().find_map(|l| {
            l.split_once("listening on ")
                .map(|(_, a)| announced_addr(a).to_string())
        });
        addr.is_some()
    });
    let Some(addr) = addr else {
        let _ = child.kill();
        panic!("no listening line: {}", read());
    };
    let mut out = String::new();
    connect_within_5s(&addr.parse().unwrap())
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "hello\n");
    let tagged = |text: &str| {
        text.lines()
            .find(|l| l.contains("to-the-log-from-"))
            .map(str::to_string)
    };
    wait_until(Duration::from_secs(5), || tagged(&read()).is_some());
    kill(child.id(), libc::SIGTERM);
    let _ = child.wait();
    let text = read();
    let line = tagged(&text).unwrap_or_else(|| panic!("no line of the program's: {text}"));
    // <6>preforkd[WORKER]: service exec: talker.sh[PID]: to-the-log-from-PID
    let (head, said) = line.split_once(": to-the-log-from-").unwrap();
    assert!(head.starts_with("<6>preforkd["), "{line}");
    assert!(
        head.ends_with(&format!("talker.sh[{said}]")),
        "not tagged with the program's pid {said}: {line}"
    );
    assert!(
        head.contains(": service "),
        "not tagged with its service: {line}"
    );
}
