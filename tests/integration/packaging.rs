//! The files of packaging/ work with the binary: the packaged config is
//! valid, and the capabilities the systemd unit leaves the daemon are all
//! it needs (the unit itself is checked by `systemd-analyze verify` in
//! packaging/ci-package.sh: systemd is not PID 1 on the CI machine).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use crate::util::*;

const PACKAGED: &str = include_str!("../../packaging/preforkd.toml");
const UNIT: &str = include_str!("../../packaging/systemd/preforkd.service");

#[test]
fn the_packaged_config_is_valid_once_its_user_exists() {
    // The package's postinst creates the user preforkd; here, nobody
    // stands in for it.
    let text = PACKAGED.replace("user = \"preforkd\"", "user = \"nobody\"");
    assert_ne!(text, PACKAGED, "the packaged config names its user");
    let config = match preforkd::config::parse("packaging/preforkd.toml", &text) {
        Ok(config) => config,
        Err(diags) => panic!("{}", preforkd::config::ConfigError::Invalid(diags)),
    };
    let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["echo", "discard", "daytime", "chargen", "time"]);
    for s in &config.services {
        for addr in &s.listen {
            assert!(
                addr.to_string().starts_with("127.0.0.1:"),
                "service {} listens on {addr}: the packaged config serves localhost only",
                s.name
            );
        }
    }
}

/// `CapabilityBoundingSet=` of the unit, as setpriv(1) takes it:
/// "-all,+net_bind_service,...".
fn unit_bounding_set() -> String {
    let line = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet=");
    let caps: Vec<String> = line
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    assert!(caps.len() >= 3, "{caps:?}");
    format!("-all,{}", caps.join(","))
}

// Every privileged thing the master does, with only the capabilities the
// unit leaves it and no_new_privs: bind a low port, drop workers to nobody
// in a chroot, give a Unix socket a mode and an owner, signal workers of
// another user (TTOU, then TERM), reload.
#[test]
fn the_units_capabilities_are_enough_for_the_master() {
    if !needs_root() {
        return; // needs root: binding a low port, switching users, chroot, chown
    }
    let dir = TempDir::new("unit-caps");
    let jail = TempDir::new("unit-caps-jail");
    let port = free_low_port(false);
    let sock = dir.path().join("echo.sock");
    let config = format!(
        "[daemon]\nuser = \"nobody\"\ngraceful_timeout = \"5s\"\n\n\
         [[service]]\nname = \"low\"\nlisten = [\"127.0.0.1:{port}\"]\nbuiltin = \"echo\"\nworkers = 2\n\
         chroot = \"{}\"\nno_new_privs = true\nlimits = {{ nofile = 256 }}\n\n\
         [[service]]\nname = \"local\"\nlisten = [\"unix:{}\"]\nbuiltin = \"echo\"\nworkers = 1\n\
         socket_mode = \"0660\"\nsocket_owner = \"nobody\"\n",
        jail.path().display(),
        sock.display()
    );
    let path = dir.path().join("preforkd.toml");
    std::fs::write(&path, with_control(&dir, &config)).unwrap();
    let path = path.to_str().unwrap();
    let bounding = unit_bounding_set();
    let args = ["serve", "--foreground", "-c", path];
    let mut command = Command::new("setpriv");
    command
        .args(["--bounding-set", &bounding, "--no-new-privs", BIN])
        .args(args);
    let mut d = Daemon::start_with(&mut command, &args);
    assert!(
        d.wait_for_log("running with", Duration::from_secs(10)),
        "with {bounding}:\n{}",
        d.report()
    );

    let mut c = d.connect_to(&format!("127.0.0.1:{port}"));
    assert_eq!(echo_once(&mut c, "low\n").unwrap(), "low\n");
    drop(c);
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660, "{}", d.report());
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(meta.uid(), nobody.uid.as_raw(), "{}", d.report());

    // TTOU: the echo pool gives up one of its workers, which run as nobody
    // (the pool of one keeps its one).
    let before = d.workers().len();
    assert_eq!(before, 3, "{}", d.report());
    d.signal(libc::SIGTTOU);
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 2),
        "TTOU did not retire a worker running as nobody:\n{}",
        d.report()
    );
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log("M0013", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    let workers = d.workers();
    d.stop_gracefully();
    assert!(
        workers.iter().all(|&w| is_gone(w)),
        "workers outlived the master: {}",
        d.report()
    );
}
