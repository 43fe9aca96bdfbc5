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
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "{}:6: not imported: wait-mode stream services (the program accepts itself) are not supported\n\
             import-inetd: 4 services imported, 1 service not imported\n",
            conf.display()
        )
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

/// The BSDs' forms: an IPv6 host in brackets, an entry continued on a line
/// that starts with a blank, FreeBSD's `nowait/N/M/K`. What is left out is
/// said on stderr, line by line, with a count; a file of which nothing can
/// be imported exits 1.
#[test]
fn import_takes_the_bsd_forms_and_says_what_it_leaves_out() {
    let dir = TempDir::new("import-bsd");
    let conf = dir.path().join("inetd.conf");
    std::fs::write(
        &conf,
        "[::1]:echo stream tcp6 nowait/40/600/4 nobody internal\n\
         127.0.0.1:7079 stream tcp nowait/0/0/2\n\
         \tnobody /bin/cat cat\n\
         rstatd/1-3 dgram rpc/udp wait root /usr/sbin/rpc.rstatd\n",
    )
    .unwrap();
    let out = run_to_exit(&["import-inetd", conf.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "{}:4: not imported: RPC services are not supported\n\
             import-inetd: 2 services imported, 1 service not imported\n",
            conf.display()
        )
    );
    let toml = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "listen = [\"[::1]:7\"]\nbuiltin = \"echo\"\nuser = \"nobody\"\nworkers = { max = 40 }\nrate = \"600/m\"\nper_source = 4\n",
        "listen = [\"127.0.0.1:7079\"]\nexec = [\"/bin/cat\"]\nuser = \"nobody\"\nper_source = 2\n",
    ] {
        assert!(toml.contains(expected), "{toml}");
    }
    let imported = write_config(&dir, &toml);
    let check = run_to_exit(&["check", "-c", imported.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "check failed:\n{}\n{toml}",
        String::from_utf8_lossy(&check.stderr)
    );

    std::fs::write(
        &conf,
        "rstatd/1-3 dgram rpc/udp wait root /usr/sbin/rpc.rstatd\n",
    )
    .unwrap();
    let out = run_to_exit(&["import-inetd", conf.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("import-inetd: 0 services imported, 1 service not imported\n")
            && stderr.contains(&format!("nothing in {} could be imported", conf.display())),
        "{stderr}"
    );
}
