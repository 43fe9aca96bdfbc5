//! `preforkd import-inetd`: what it prints passes `check` and serves the
//! same services.

use std::io::Read;
use std::process::Command;

use crate::util::*;

// Issue #3, acceptance 5.
#[test]
fn an_imported_inetd_conf_checks_and_serves_the_same_services() {
    if !needs_root() {
        return; // needs root: the builtins of inetd.conf listen on ports below 1024
    }
    let dir = TempDir::new("import");
    let conf = dir.path().join("inetd.conf");
    let cat_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &conf,
        format!(
            "# An inetd.conf as netkit and OpenBSD write it.\n\
             127.0.0.1:echo     stream  tcp  nowait       root            internal\n\
             127.0.0.1:daytime  stream  tcp  nowait       root            internal\n\
             127.0.0.1:chargen  stream  tcp  nowait.100   root            internal\n\
             127.0.0.1:{cat_port} stream tcp nowait       nobody.nogroup  /bin/cat cat\n\
             127.0.0.1:finger   stream  tcp  wait         nobody          /usr/sbin/in.fingerd\n"
        ),
    )
    .unwrap();
    let out = run_to_exit(&["import-inetd", conf.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(
        toml.contains("not imported: wait-mode stream services"),
        "{toml}"
    );

    let imported = dir.path().join("imported.toml");
    std::fs::write(&imported, with_control(&dir, &toml)).unwrap();
    let check = run_to_exit(&["check", "-c", imported.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "check failed:\n{}\n{toml}",
        String::from_utf8_lossy(&check.stderr)
    );

    let d = Daemon::start_with(
        Command::new(BIN).args(["serve", "--foreground", "-c", imported.to_str().unwrap()]),
        &["serve", "-c", "imported.toml"],
    );
    d.wait_running();
    let mut c = d.connect_to("127.0.0.1:7");
    assert_eq!(echo_once(&mut c, "imported\n").unwrap(), "imported\n");
    let mut day = String::new();
    d.connect_to("127.0.0.1:13")
        .read_to_string(&mut day)
        .unwrap();
    assert_eq!(day.len(), 26, "{day:?}");
    let mut gen = [0u8; 74];
    d.connect_to("127.0.0.1:19").read_exact(&mut gen).unwrap();
    assert_eq!(&gen[..3], b" !\"");
    let mut c = d.connect_to(&format!("127.0.0.1:{cat_port}"));
    assert_eq!(echo_once(&mut c, "through cat\n").unwrap(), "through cat\n");
}

#[test]
fn import_of_a_missing_file_is_one_line_and_exit_2() {
    let out = run_to_exit(&["import-inetd", "/nonexistent/inetd.conf"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "preforkd: cannot read /nonexistent/inetd.conf: No such file or directory"
    );
}
