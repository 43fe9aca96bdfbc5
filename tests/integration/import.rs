//! `preforkd import-inetd`: what it prints passes `check` and serves the
//! same services.

use std::io::Read;
use std::process::Command;

use crate::util::*;

/// Whether /etc/services names the services these files use (netbase):
/// import-inetd reads names there, and a fresh minimal system lacks it.
fn services_known() -> bool {
    let known = std::fs::read_to_string("/etc/services").is_ok_and(|s| {
        ["echo", "daytime", "chargen", "finger"]
            .iter()
            .all(|name| s.lines().any(|l| l.split_whitespace().next() == Some(name)))
    });
    needs(
        known,
        "/etc/services with echo, daytime, chargen and finger",
        "apt-get install netbase",
    )
}

// Issue #3, acceptance 5.
#[test]
fn an_imported_inetd_conf_checks_and_serves_the_same_services() {
    if !needs_root() || !services_known() {
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
             127.0.0.1:finger   stream  tcp  wait         nobody          /bin/cat cat\n"
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
        toml.contains(
            "listen = [\"127.0.0.1:79\"]\nexec = [\"/bin/cat\"]\nuser = \"nobody\"\nwait = true\n"
        ),
        "{toml}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "import-inetd: 5 services imported, 0 services not imported\n"
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
    if !services_known() {
        return;
    }
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
    let toml = import_expecting(
        &conf,
        &format!(
            "{}:4: not imported: RPC services are not supported\n\
             import-inetd: 2 services imported, 1 service not imported\n",
            conf.display()
        ),
    );
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

// Issue 14, acceptance 4: an inetd.conf as Debian's update-inetd writes it,
// with what the BSDs add, imported whole: every service, every line on
// stderr, and `check` takes the result.
#[test]
fn a_debian_inetd_conf_is_imported_faithfully() {
    if !services_known()
        || !needs(
            std::path::Path::new("/usr/sbin/tcpd").exists()
                && std::path::Path::new("/usr/sbin/in.tftpd").exists()
                && std::path::Path::new(PYTHON).exists(),
            "tcpd, in.tftpd and python3 (the programs the file names)",
            "apt-get install tcpd tftpd-hpa python3",
        )
    {
        return;
    }
    let dir = TempDir::new("import-debian");
    let conf = dir.path().join("inetd.conf");
    std::fs::write(
        &conf,
        format!(
            "#:INTERNAL: Internal services\n\
             #discard\t\tstream\ttcp\tnowait\troot\tinternal\n\
             127.0.0.1:echo\t\tstream\ttcp\tnowait\troot\tinternal\n\
             127.0.0.1:echo\t\tdgram\tudp\twait\troot\tinternal\n\
             127.0.0.1:daytime\tstream\ttcp6\tnowait\troot\tinternal\n\
             #:STANDARD: These are standard services.\n\
             127.0.0.1:finger\tstream\ttcp\tnowait\tnobody\t/usr/sbin/tcpd\t/usr/sbin/in.fingerd\n\
             [::1]:chargen\tstream\ttcp6\tnowait.30\tnobody.nogroup\tinternal\n\
             127.0.0.1:discard\tstream\ttcp\tnowait/10\tnobody:nogroup\tinternal\n\
             127.0.0.1:time\tstream\ttcp\tnowait\n\
             \troot\tinternal\n\
             127.0.0.1:tftp\tdgram\tudp\twait\troot\t/usr/sbin/in.tftpd\tin.tftpd -s /srv/tftp\n\
             127.0.0.1:7082\tstream\ttcp\twait\tnobody\t{PYTHON}\tpython3 /srv/accept.py\n\
             rstatd/1-3\tdgram\trpc/udp\twait\troot\t/usr/sbin/rpc.rstatd\trpc.rstatd\n"
        ),
    )
    .unwrap();
    let toml = import_expecting(
        &conf,
        &format!(
            "{}:14: not imported: RPC services are not supported\n\
             import-inetd: 9 services imported, 1 service not imported\n",
            conf.display()
        ),
    );
    let services: Vec<&str> = toml.split("[[service]]\n").skip(1).collect();
    let bodies: Vec<String> = services
        .iter()
        .map(|s| {
            s.lines()
                .take_while(|l| !l.starts_with('#') && !l.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let python = PYTHON;
    assert_eq!(
        bodies,
        [
            "name = \"echo\"\nlisten = [\"127.0.0.1:7\"]\nbuiltin = \"echo\"\nuser = \"root\"",
            "name = \"echo-2\"\nlisten = [\"127.0.0.1:7\"]\nprotocol = \"udp\"\nbuiltin = \"echo\"\nuser = \"root\"\nworkers = 1",
            "name = \"daytime\"\nlisten = [\"127.0.0.1:13\"]\nbuiltin = \"daytime\"\nuser = \"root\"",
            "name = \"finger\"\nlisten = [\"127.0.0.1:79\"]\nexec = [\"/usr/sbin/tcpd\"]\nargv0 = \"/usr/sbin/in.fingerd\"\nuser = \"nobody\"",
            "name = \"chargen\"\nlisten = [\"[::1]:19\"]\nbuiltin = \"chargen\"\nuser = \"nobody\"\ngroup = \"nogroup\"\nrate = \"30/m\"",
            "name = \"discard\"\nlisten = [\"127.0.0.1:9\"]\nbuiltin = \"discard\"\nuser = \"nobody\"\ngroup = \"nogroup\"\nworkers = { max = 10 }",
            "name = \"time\"\nlisten = [\"127.0.0.1:37\"]\nbuiltin = \"time\"\nuser = \"root\"",
            "name = \"tftp\"\nlisten = [\"127.0.0.1:69\"]\nprotocol = \"udp\"\nexec = [\"/usr/sbin/in.tftpd\", \"-s\", \"/srv/tftp\"]\nuser = \"root\"\nwait = true",
            &format!("name = \"7082\"\nlisten = [\"127.0.0.1:7082\"]\nexec = [\"{python}\", \"/srv/accept.py\"]\nuser = \"nobody\"\nwait = true"),
        ],
        "{toml}"
    );
    // The continued line is one entry, and the RPC line stays, commented.
    assert!(
        toml.contains("# inetd.conf:10: 127.0.0.1:time\tstream\ttcp\tnowait root\tinternal\n")
            || toml.contains(":10: 127.0.0.1:time\tstream\ttcp\tnowait root\tinternal\n"),
        "{toml}"
    );
    assert!(
        toml.contains(":14: not imported: RPC services are not supported\n#   rstatd/1-3\t"),
        "{toml}"
    );
    let imported = write_config(&dir, &toml);
    let check = run_to_exit(&["check", "-c", imported.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "check failed:\n{}\n{toml}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// The TOML `import-inetd` writes for `conf`, which must exit 0 with
/// exactly `stderr`.
fn import_expecting(conf: &std::path::Path, stderr: &str) -> String {
    let out = run_to_exit(&["import-inetd", conf.to_str().unwrap()]);
    let got = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{got}");
    assert_eq!(got, stderr);
    String::from_utf8(out.stdout).unwrap()
}
