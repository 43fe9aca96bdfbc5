//! Defence 11 of docs/security.md: a wait service's program gets the
//! socket and nothing more. As `nobody`, the program accepts a connection
//! on its stdin and reports what it holds; and the per-client rules that
//! preforkd cannot apply to a program that reads the socket itself are
//! refused, never silently ignored.

use std::io::Read;
use std::time::Duration;

use crate::util::*;

/// Accepts one connection on its stdin and writes back its ids, its
/// groups, its descriptors, the names of the environment it was started
/// with (/proc: Python adds LC_CTYPE to its own), and whether it could
/// open a terminal.
const HOSTILE: &str = "import os, socket
s = socket.socket(fileno=0)
c, _ = s.accept()
kinds = []
for f in sorted(int(f) for f in os.listdir('/proc/self/fd')):
    try:
        kinds.append('%d:%s' % (f, os.readlink('/proc/self/fd/%d' % f).split(':')[0]))
    except OSError:
        pass  # the directory listdir read, closed since
try:
    os.open('/dev/tty', os.O_RDWR)
    tty = 'tty-opened'
except OSError:
    tty = 'no-tty'
out = ['uid=%d' % os.getuid(), 'gid=%d' % os.getgid(), 'groups=%s' % ','.join(map(str, os.getgroups())),
       'fds=%s' % ' '.join(kinds), 'env=%s' % ','.join(sorted(v.split(b'=')[0].decode() for v in open('/proc/self/environ', 'rb').read().split(b'\\0') if v)), tty]
c.sendall(('\\n'.join(out) + '\\n').encode())
c.close()
";

#[test]
fn a_wait_program_as_nobody_holds_the_socket_and_nothing_else() {
    if !can_play_nobody() {
        return;
    }
    let dir = TempDir::new("sec-wait");
    let script = script_for_nobody(&dir, "hostile.py", HOSTILE);
    let d = Daemon::serve(
        &dir,
        &format!(
            "[[service]]\nname = \"w\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{PYTHON}\", \"{}\"]\nwait = true\nuser = \"nobody\"\n",
            script.display()
        ),
    );
    let mut c = d.connect_to(&d.address_of("w", "tcp"));
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut report = String::new();
    c.read_to_string(&mut report).unwrap();
    let field = |name: &str| {
        report
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {report:?}\n{}", d.report()))
            .to_string()
    };
    assert_eq!(field("uid"), "65534", "{report}");
    assert_eq!(field("gid"), "65534", "{report}");
    assert!(
        field("groups")
            .split(',')
            .all(|g| g == "65534" || g.is_empty()),
        "{report}"
    );
    // 0 and 1: the listening socket; 2: stderr; then the connection it
    // accepted and the directory it lists. Nothing of the master's.
    let fds = field("fds");
    let kinds: Vec<&str> = fds.split(' ').collect();
    assert!(
        kinds.len() == 4
            && kinds[0] == "0:socket"
            && kinds[1] == "1:socket"
            && kinds[3] == "3:socket",
        "a descriptor leaked, or the socket is not 0 and 1: {report}"
    );
    assert_eq!(
        field("env"),
        "PATH,PROTO,TCPLOCALIP,TCPLOCALPORT",
        "{report}"
    );
    assert!(report.contains("no-tty"), "{report}");
}

#[test]
fn per_client_rules_on_a_wait_service_are_refused_not_ignored() {
    let dir = TempDir::new("sec-wait-check");
    for (key, line) in [
        ("only_from", "only_from = [\"127.0.0.2\"]"),
        ("no_access", "no_access = [\"127.0.0.1\"]"),
        ("per_source", "per_source = 1"),
        ("rate", "rate = \"1/s\""),
    ] {
        let file = dir.path().join(format!("{key}.toml"));
        std::fs::write(
            &file,
            format!("[[service]]\nname = \"u\"\nprotocol = \"udp\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"/bin/cat\"]\n{line}\n"),
        )
        .unwrap();
        let out = run_to_exit(&["check", "-c", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        assert!(
            err.contains(&format!(
                "cannot apply {key} (use the program's own, or a firewall)"
            )),
            "{key}: {err}"
        );
    }
    let out = run_to_exit(&[
        "run",
        "127.0.0.1:0",
        "--udp",
        "--only-from",
        "127.0.0.2",
        "--",
        "/bin/cat",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot apply --only-from"), "{err}");
}
