//! Nothing the checker accepts can crash the daemon (docs/security.md, 4).
//!
//! Every duration, size and number of the config and of `run`'s flags has
//! a maximum: one above it is refused with file:line:column (or a usage
//! error), the maximum itself runs. Before the defence, `check` accepted
//! `graceful_timeout = "18446744073709551615s"` and the master panicked on
//! SIGTERM or at the next reload (`Instant + Duration` overflowed), and
//! `run --max-requests 1 --max-requests-jitter 18446744073709551615` made
//! every worker panic as it started. A boundary corpus is reloaded
//! into a running daemon, which must survive each one and keep serving;
//! and `reload`/`stop` exit 1 when the daemon closes the control connection
//! without an answer.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

/// A service that the cases below add one key to.
const SERVICE: &str =
    "[[service]]\nname = \"echo\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\n";

/// (a key one above its maximum, the text its error must point at).
const OVER: &[(&str, &str)] = &[
    ("timeout = \"577h\"", "\"577h\""),
    ("timeout = \"2073601s\"", "\"2073601s\""),
    ("timeout = \"2073600001ms\"", "\"2073600001ms\""),
    (
        "timeout = \"18446744073709551615s\"",
        "\"18446744073709551615s\"",
    ),
    ("max_memory = \"1048577G\"", "\"1048577G\""),
    ("max_memory = 1125899906842625", "1125899906842625"),
    ("max_requests = 1000000001", "1000000001"),
    ("max_requests_jitter = 1000000001", "1000000001"),
    ("per_source = 1000001", "1000001"),
    ("rate = \"1000001/s\"", "\"1000001/s\""),
    ("backlog = 65536", "65536"),
    ("workers = 4097", "4097"),
    ("workers = { start = 1, max = 4097 }", "{"),
    ("workers = { start = 1, max_spare = 4097 }", "{"),
    ("limits = { nofile = 1048577 }", "1048577"),
    ("limits = { nproc = 4194305 }", "4194305"),
    ("limits = { as = \"1048577G\" }", "\"1048577G\""),
    ("limits = { as = 1125899906842625 }", "1125899906842625"),
    ("limits = { cpu = \"577h\" }", "\"577h\""),
    ("limits = { cpu = 2073601 }", "2073601"),
];

/// The daemon's durations, one above the maximum.
const OVER_DAEMON: &[(&str, &str)] = &[
    ("graceful_timeout = \"577h\"", "\"577h\""),
    (
        "graceful_timeout = \"18446744073709551615s\"",
        "\"18446744073709551615s\"",
    ),
];

/// Every key at its maximum, all at once; `nofile` and `nproc` as given:
/// above the hard limit, setrlimit(2) needs CAP_SYS_RESOURCE, which a
/// container's root may lack.
const AT_MAXIMUM_DAEMON: &str = "graceful_timeout = \"576h\"\n";
fn at_maximum((nofile, nproc): (u64, u64)) -> String {
    format!(
        "timeout = \"576h\"\n\
         max_memory = \"1048576G\"\n\
         max_requests = 1000000000\n\
         max_requests_jitter = 1000000000\n\
         per_source = 1000000\n\
         rate = \"1000000/s\"\n\
         backlog = 65535\n\
         workers = {{ start = 1, min_spare = 1, max_spare = 4096, max = 4096 }}\n\
         limits = {{ nofile = {nofile}, nproc = {nproc}, as = \"1048576G\", cpu = \"576h\" }}\n"
    )
}

/// The maxima of `nofile` and `nproc`.
const MAXIMA: (u64, u64) = (1 << 20, 1 << 22);

/// The hard RLIMIT_NOFILE and RLIMIT_NPROC of this process (what a worker
/// can set without CAP_SYS_RESOURCE), at most their maxima.
fn hard_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard = |name: &str, max: u64| {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        words[words.len() - 2]
            .parse()
            .map_or(max, |n: u64| n.min(max))
    };
    (
        hard("Max open files", MAXIMA.0),
        hard("Max processes", MAXIMA.1),
    )
}

/// `line:column` (1-based) of the first `needle` in `text` at or after the
/// line `after` starts.
fn position(text: &str, after: &str, needle: &str) -> String {
    let start = text.find(after).expect("the case is in the file");
    let at = start
        + text[start..]
            .find(needle)
            .expect("the needle is in its line");
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{column}")
}

/// `preforkd check -c FILE` on `text`.
fn check(dir: &TempDir, text: &str) -> (i32, String) {
    let path = dir.path().join("check.toml");
    std::fs::write(&path, text).unwrap();
    let out = run_to_exit(&["check", "-c", path.to_str().unwrap()]);
    let stderr =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn every_maximum_plus_one_is_refused_with_its_position() {
    let dir = TempDir::new("limits-over");
    let cases = OVER
        .iter()
        .map(|&(line, needle)| (format!("{SERVICE}{line}\n"), line, needle))
        .chain(
            OVER_DAEMON
                .iter()
                .map(|&(line, needle)| (format!("[daemon]\n{line}\n\n{SERVICE}"), line, needle)),
        );
    let mut wrong = Vec::new();
    for (text, line, needle) in cases {
        let (code, out) = check(&dir, &text);
        let at = format!("check.toml:{}:", position(&text, line, needle));
        if code != 2 || !out.lines().any(|l| l.contains(&at)) {
            wrong.push(format!("{line}: exit {code}, want 2 and {at}...\n{out}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_maximum_is_accepted_and_runs() {
    // RLIMIT_NOFILE above the hard limit needs root; the workers drop to
    // nobody.
    if !needs_root() {
        return;
    }
    let dir = TempDir::new("limits-max");
    let config = |nofile| {
        format!(
            "[daemon]\n{AT_MAXIMUM_DAEMON}\n{SERVICE}{}user = \"nobody\"\n",
            at_maximum(nofile)
        )
    };
    let (code, out) = check(&dir, &config(MAXIMA));
    assert_eq!(code, 0, "{out}");
    let text = config(hard_limits());
    let (code, out) = check(&dir, &format!("{SERVICE}workers = 4096\n"));
    assert_eq!(code, 0, "workers = 4096: {out}");
    let d = Daemon::serve(&dir, &text);
    let addr = d.address_of("echo", "tcp");
    echo_once_and_stop(d, &addr);
}

/// One echo from `addr`, then SIGTERM: exit 0, and no panic in the log.
fn echo_once_and_stop(mut d: Daemon, addr: &str) {
    let mut c = d.connect_to(addr);
    assert_eq!(
        echo_once(&mut c, "at the maximum\n").unwrap(),
        "at the maximum\n"
    );
    drop(c);
    d.stop_gracefully();
    assert!(!d.stderr().contains("panicked"), "{}", d.report());
}

/// `run`'s flags, at their maxima (accepted) and one above (refused).
const RUN_MAXIMA: &[(&str, &str, &str)] = &[
    ("--timeout", "576h", "577h"),
    ("--graceful-timeout", "576h", "18446744073709551615s"),
    ("--max-memory", "1048576G", "1048577G"),
    ("--max-requests", "1000000000", "18446744073709551615"),
    (
        "--max-requests-jitter",
        "1000000000",
        "18446744073709551615",
    ),
    ("--per-source", "1000000", "1000001"),
    ("--rate", "1000000/s", "1000001/s"),
    ("--backlog", "65535", "65536"),
    ("--max-workers", "4096", "4097"),
    ("--max-spare", "4096", "4097"),
];

#[test]
fn run_refuses_every_flag_above_its_maximum_and_runs_at_it() {
    for &(flag, _, over) in RUN_MAXIMA {
        let mut args = vec!["run", "127.0.0.1:0", "--builtin", "echo", flag, over];
        if flag == "--max-requests-jitter" {
            args.extend(["--max-requests", "1"]);
        }
        let out = run_to_exit(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag} {over} was not refused: {stderr}"
        );
        assert!(
            stderr.contains(flag) || stderr.contains(over),
            "{flag} {over}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{flag} {over}: {stderr}");
    }
    let mut args = vec!["run", "127.0.0.1:0", "--builtin", "echo", "-w", "1"];
    for &(flag, max, _) in RUN_MAXIMA {
        args.extend([flag, max]);
    }
    let d = Daemon::start(&args);
    let addr = d.addr().to_string();
    echo_once_and_stop(d, &addr);
}

/// The boundary corpus: configs that pass `check` (the maxima, the
/// smallest values, empty lists) and configs just past it. Each is
/// reloaded into one running daemon; `serves`: its echo must answer.
fn corpus() -> Vec<(&'static str, String, bool)> {
    let svc = |keys: &str| format!("{SERVICE}{keys}");
    vec![
        (
            "maxima",
            format!(
                "[daemon]\n{AT_MAXIMUM_DAEMON}\n{}",
                svc(&at_maximum(hard_limits()))
            ),
            true,
        ),
        (
            "smallest",
            format!(
                "[daemon]\ngraceful_timeout = \"0s\"\n\n{}",
                svc(
                    "timeout = \"1ms\"\nmax_requests = 1\nmax_requests_jitter = 0\n\
                     per_source = 1\nrate = \"1/h\"\nbacklog = 1\n\
                     workers = { start = 1, min_spare = 0, max_spare = 0, max = 1 }\n\
                     max_memory = 1\nlimits = { cpu = 1 }\n"
                )
            ),
            false,
        ),
        (
            "empty lists",
            svc("only_from = []\nno_access = []\nworkers = {}\n"),
            true,
        ),
        (
            "one fixed worker",
            svc("workers = 1\ntimeout = \"1s\"\n"),
            true,
        ),
        (
            "graceful_timeout past the maximum",
            format!("[daemon]\ngraceful_timeout = \"18446744073709551615s\"\n\n{SERVICE}"),
            true,
        ),
        (
            "timeout past the maximum",
            svc("timeout = \"18446744073709551615s\"\n"),
            true,
        ),
        (
            "max_requests past the maximum",
            svc("max_requests = 9223372036854775807\nmax_requests_jitter = 9223372036854775807\n"),
            true,
        ),
    ]
}

/// `preforkd ARGS -c FILE`, with its exit status and everything it said.
fn command(args: &[&str], file: &Path) -> (i32, String) {
    let out = run_command_to_exit(Command::new(BIN).args(args).arg("-c").arg(file));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), said)
}

#[test]
fn a_running_daemon_survives_a_reload_of_every_boundary_config() {
    if !needs_root() {
        return;
    }
    let dir = TempDir::new("limits-reload");
    let file = dir.path().join("preforkd.toml");
    let mut d = Daemon::serve(&dir, SERVICE);
    for (name, text, serves) in corpus() {
        let text = with_control(&dir, &format!("{text}user = \"nobody\"\n"));
        std::fs::write(&file, &text).unwrap();
        let (checked, why) = command(&["check"], &file);
        let (code, said) = command(&["reload"], &file);
        // The master applies a reload before it answers; a panic shows in
        // its log, or as a closed control connection.
        assert_eq!(
            code,
            checked,
            "{name}: check exit {checked} ({why}), reload exit {code} ({said})\n{}",
            d.report()
        );
        let alive = d.wait_exit_within(Duration::from_millis(300)).is_none();
        assert!(
            alive && !d.stderr().contains("panicked"),
            "{name}: the daemon died on this reload\n{text}\n{}",
            d.report()
        );
        let (status, said) = command(&["status"], &file);
        assert_eq!(status, 0, "{name}: status: {said}\n{}", d.report());
        if serves || checked != 0 {
            let addr = d.address_of("echo", "tcp");
            let mut c = d.connect_to(&addr);
            let echoed = echo_once(&mut c, "still here\n");
            assert_eq!(
                echoed.as_deref().ok(),
                Some("still here\n"),
                "{name}: the daemon stopped serving ({echoed:?})\n{}",
                d.report()
            );
        }
    }
    // A stop after all that drains within the maximum's deadline.
    std::fs::write(&file, with_control(&dir, SERVICE)).unwrap();
    assert_eq!(command(&["reload"], &file).0, 0, "{}", d.report());
    d.stop_gracefully();
    assert!(!d.stderr().contains("panicked"), "{}", d.report());
}

/// A control socket that reads the request, answers `answer` and hangs up,
/// as a daemon that dies in the middle of a request does.
fn hanging_up_control(dir: &TempDir, answer: &'static [u8]) -> std::path::PathBuf {
    let socket = dir.path().join("control.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(2) {
            let Ok(mut conn) = conn else { return };
            let mut request = [0u8; 64];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(answer);
        }
    });
    let file = dir.path().join("preforkd.toml");
    std::fs::write(&file, with_control(dir, SERVICE)).unwrap();
    file
}

#[test]
fn reload_and_stop_fail_when_the_daemon_hangs_up_without_an_answer() {
    for (answer, what) in [
        (&b""[..], "without an answer"),
        (&b"ok: relo"[..], "without a whole answer"),
    ] {
        let dir = TempDir::new("limits-hangup");
        let file = hanging_up_control(&dir, answer);
        for request in ["reload", "stop"] {
            let (code, said) = command(&[request], &file);
            assert_eq!(code, 1, "{request} after {answer:?}: {said}");
            assert!(
                said.contains(what) && said.starts_with("preforkd: ") && said.lines().count() == 1,
                "{request} after {answer:?}: {said}"
            );
        }
    }
}
