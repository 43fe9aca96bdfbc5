//! `preforkd check`: every mistake in a config file, with its position;
//! and `serve` on a broken file starts nothing.

use crate::util::*;

const GOOD_SERVICE: &str =
    "[[service]]\nname = \"ok\"\nlisten = [\"127.0.0.1:7777\"]\nbuiltin = \"echo\"\n";

/// (what is broken, the file, where the error must point, what it must say)
const BROKEN: &[(&str, &str, &str, &str)] = &[
    ("bad TOML", "[[service]\nname = \"x\"\n", "1:11", "unclosed array table, expected `]`"),
    (
        "unknown key",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\ncolour = 1\n",
        "5:1",
        "unknown field `colour`",
    ),
    (
        "bad address",
        "[[service]]\nname = \"x\"\nlisten = [\"1.2.3.4:x\"]\nbuiltin = \"echo\"\n",
        "3:11",
        "invalid address '1.2.3.4:x'",
    ),
    (
        "unknown user",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\nuser = \"no-such-user-xyz\"\n",
        "5:8",
        "unknown user 'no-such-user-xyz'",
    ),
    (
        "missing program",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nexec = [\"/nonexistent/prog\"]\n",
        "4:8",
        "cannot run /nonexistent/prog: No such file or directory",
    ),
    (
        "duplicate listen address",
        "[[service]]\nname = \"a\"\nlisten = [\"127.0.0.1:7777\"]\nbuiltin = \"echo\"\n\n[[service]]\nname = \"b\"\nlisten = [\"127.0.0.1:7777\"]\nbuiltin = \"discard\"\n",
        "8:11",
        "duplicate listen address 127.0.0.1:7777/tcp (already used by service 'a')",
    ),
    (
        "zero workers",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\nworkers = 0\n",
        "5:11",
        "invalid workers = 0",
    ),
    (
        "bad duration",
        "[daemon]\ngraceful_timeout = \"soon\"\n\n[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\n",
        "2:20",
        "invalid duration 'soon'",
    ),
    (
        "unknown builtin",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"ech0\"\n",
        "4:11",
        "unknown builtin 'ech0'",
    ),
    (
        "builtin and exec",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\nexec = [\"/bin/cat\"]\n",
        "4:11",
        "either `builtin` or `exec`",
    ),
    (
        "a program on udp that does not wait",
        "[[service]]\nname = \"x\"\nprotocol = \"udp\"\nlisten = [\"127.0.0.1:1\"]\nexec = [\"/bin/cat\"]\nwait = false\n",
        "6:8",
        "a program on udp reads its datagrams itself",
    ),
    (
        "a wait service with more workers",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nexec = [\"/bin/cat\"]\nwait = true\nworkers = 4\n",
        "5:8",
        "a wait service runs one program at a time: workers must be 1",
    ),
    (
        "a wait service with an access list",
        "[[service]]\nname = \"x\"\nprotocol = \"udp\"\nlisten = [\"127.0.0.1:1\"]\nexec = [\"/bin/cat\"]\nonly_from = [\"10.0.0.0/8\"]\n",
        "1:1",
        "cannot apply only_from",
    ),
    (
        "a builtin that waits",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\nwait = true\n",
        "5:8",
        "wait = true is for programs",
    ),
    (
        "a NUL byte in a program's argument",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nexec = [\"/bin/echo\", \"a\\u0000b\"]\n",
        "4:8",
        "an argument holds a NUL byte",
    ),
    (
        "a NUL byte in a program's variable",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nexec = [\"/bin/echo\"]\nenv = { A = \"\\u0000\" }\n",
        "4:8",
        "a variable holds a NUL byte",
    ),
    (
        "unknown protocol",
        "[[service]]\nname = \"x\"\nprotocol = \"sctp\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\n",
        "3:12",
        "unknown protocol 'sctp'",
    ),
    (
        "wrong type",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\nworkers = \"many\"\n",
        "5:11",
        "invalid type",
    ),
    (
        "duplicate name",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\n\n[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:2\"]\nbuiltin = \"echo\"\n",
        "7:8",
        "duplicate service name 'x' (first defined at line 1)",
    ),
    ("no service", "[daemon]\ngraceful_timeout = \"1s\"\n", "1:1", "no [[service]] is defined"),
    (
        "unknown group",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\nuser = \"nobody\"\ngroup = \"no-such-group-xyz\"\n",
        "6:9",
        "unknown group 'no-such-group-xyz'",
    ),
    (
        "unix address over udp",
        "[[service]]\nname = \"x\"\nprotocol = \"udp\"\nlisten = [\"unix:/tmp/x.sock\"]\nbuiltin = \"echo\"\n",
        "4:11",
        "a unix: address cannot serve udp",
    ),
    (
        "env on a builtin",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\nenv = { A = \"1\" }\n",
        "5:7",
        "`env` applies to exec services only",
    ),
    (
        "missing directory",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nexec = [\"/bin/cat\"]\ndirectory = \"/nonexistent\"\n",
        "5:13",
        "directory '/nonexistent' is not an existing absolute directory",
    ),
    (
        "cpu below a second",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\nlimits = { cpu = \"500ms\" }\n",
        "5:18",
        "at least 1s",
    ),
    (
        "work with a bad parameter",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"work:cpu=x\"\n",
        "4:11",
        "invalid builtin 'work:cpu=x': parameter cpu: invalid duration 'x'",
    ),
    (
        "work over its bound",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"work:max=65M\"\n",
        "4:11",
        "parameter max: 65M: at most 64M",
    ),
    (
        "work on udp",
        "[[service]]\nname = \"x\"\nlisten = [\"127.0.0.1:1\"]\nprotocol = \"udp\"\nbuiltin = \"work\"\n",
        "4:12",
        "builtin work reads a request on a connection: it serves tcp, not udp",
    ),
];

// Issue #3, acceptance 2.
#[test]
fn check_reports_each_broken_config_with_its_position_and_exits_2() {
    let dir = TempDir::new("check");
    for (i, (what, text, position, message)) in BROKEN.iter().enumerate() {
        let path = dir.path().join(format!("broken-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let file = path.to_str().unwrap();
        let out = run_to_exit(&["check", "-c", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        let expected = format!("{file}:{position}: ");
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&expected))
            .unwrap_or_else(|| panic!("{what}: no diagnostic at {position}:\n{stderr}"));
        assert!(
            line.contains(message),
            "{what}: expected {message:?} in {line:?}"
        );
        // The offending line is quoted under it, with a caret.
        if position != &"1:1" {
            assert!(
                stderr.contains(" | "),
                "{what}: the line is not quoted:\n{stderr}"
            );
            assert!(stderr.contains('^'), "{what}: no caret:\n{stderr}");
        }
        assert!(
            stderr.lines().last().unwrap().starts_with("preforkd: "),
            "{what}: {stderr}"
        );

        // serve refuses the same file, and starts nothing (run_to_exit checks
        // that no process of it is left).
        let out = run_to_exit(&["serve", "--foreground", "-c", file]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "serve {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("listening on"),
            "serve {what} listened"
        );
    }
}

#[test]
fn check_reports_every_error_at_once() {
    let dir = TempDir::new("check-all");
    let path = dir.path().join("three.toml");
    std::fs::write(
        &path,
        "[[service]]\nname = \"a\"\nlisten = [\"1.2.3.4:x\"]\nbuiltin = \"echo\"\n\n\
         [[service]]\nname = \"b\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"nope\"\nworkers = 0\n",
    )
    .unwrap();
    let out = run_to_exit(&["check", "-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for position in [":3:11: ", ":9:11: ", ":10:11: "] {
        assert!(stderr.contains(position), "missing {position}:\n{stderr}");
    }
    assert!(
        stderr.contains("preforkd: ") && stderr.contains("3 errors"),
        "{stderr}"
    );
}

#[test]
fn check_accepts_a_good_config_and_a_missing_file_is_one_line() {
    let dir = TempDir::new("check-ok");
    let path = dir.path().join("good.toml");
    std::fs::write(&path, GOOD_SERVICE).unwrap();
    let out = run_to_exit(&["check", "-c", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 1 service on 1 address"));

    let missing = dir.path().join("missing.toml");
    let out = run_to_exit(&["check", "-c", missing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}
