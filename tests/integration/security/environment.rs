//! Defence 9 of docs/security.md: a clean environment for programs. The
//! master's secrets stay in the master, a program that is not root has an
//! empty capability bounding set and no_new_privs, and so a set-uid-root
//! program it runs does not make it root.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// Prints its environment, its capability bounding set and no_new_privs,
/// and what a set-uid-root copy of id(1) says its effective uid is.
const REPORTER: &str = "#!/bin/sh\n\
    env | sed 's/^/env /'\n\
    grep -E '^(Cap(Bnd|Eff|Prm|Inh|Amb)|NoNewPrivs):' /proc/self/status\n\
    echo \"setuid-euid $(\"$(dirname \"$0\")/id-setuid\" -u)\"\n";

/// What the reporter printed: its variables, and the other lines by name.
struct Seen {
    env: BTreeMap<String, String>,
    status: BTreeMap<String, String>,
}

fn ask(d: &Daemon, addr: &str) -> Seen {
    let mut c = d.connect_to(addr);
    let mut out = String::new();
    c.read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("{e}\n{}", d.report()));
    let mut seen = Seen {
        env: BTreeMap::new(),
        status: BTreeMap::new(),
    };
    for line in out.lines() {
        if let Some((k, v)) = line.strip_prefix("env ").and_then(|l| l.split_once('=')) {
            seen.env.insert(k.to_string(), v.to_string());
        } else if let Some((k, v)) = line.split_once([':', ' ']) {
            seen.status.insert(k.to_string(), v.trim().to_string());
        }
    }
    assert!(
        seen.status.contains_key("NoNewPrivs"),
        "{out}\n{}",
        d.report()
    );
    seen
}

/// The reporter, and a set-uid-root copy of id(1) beside it, in a
/// directory `nobody` can enter.
fn reporter(dir: &TempDir) -> std::path::PathBuf {
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = dir.path().join("id-setuid");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).unwrap();
    dir.script("report.sh", REPORTER)
}

/// Whether a set-uid program runs as its owner in `dir`: not where the
/// file system is mounted nosuid (a tmpfs /tmp often is, and nspawn's
/// is), where the set-uid checks would pass whatever the defence.
fn set_uid_works_in(dir: &TempDir) -> bool {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let nosuid = statvfs(dir.path()).is_ok_and(|s| s.flags().contains(FsFlags::ST_NOSUID));
    needs(
        !nosuid,
        &format!(
            "a temporary directory not mounted nosuid ({} is)",
            dir.path().display()
        ),
        "TMPDIR=/var/tmp cargo test",
    )
}

/// The master's environment: a secret, a variable to pass, and the
/// variables tests run with.
fn master_environment(command: &mut Command) -> &mut Command {
    command
        .env("DB_PASSWORD", "hunter2")
        .env("TZ", "Europe/Paris")
        .env("PATH", "/master/bin:/usr/bin:/bin")
}

const UCSPI: [&str; 5] = [
    "PROTO",
    "TCPREMOTEIP",
    "TCPREMOTEPORT",
    "TCPLOCALIP",
    "TCPLOCALPORT",
];

/// Serves `config` (its services' `exec` is `{p}`, the reporter) with the
/// master's environment of [`master_environment`].
fn serve(dir: &TempDir, config: &str) -> Daemon {
    let program = reporter(dir);
    let path = write_config(dir, &config.replace("{p}", program.to_str().unwrap()));
    let args = ["serve", "--foreground", "-c", path.to_str().unwrap()];
    let d = Daemon::start_with(master_environment(Command::new(BIN).args(args)), &args);
    d.wait_running();
    d
}

#[test]
fn a_program_running_as_nobody_gets_no_secret_no_capability_and_no_new_privileges() {
    if !needs_root() {
        return;
    }
    let dir = TempDir::new("clean-env");
    if !set_uid_works_in(&dir) {
        return;
    }
    let d = serve(
        &dir,
        "[[service]]\nname = \"nobody\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{p}\"]\n\
         user = \"nobody\"\nworkers = 1\nenv = { LANG = \"C.UTF-8\" }\n",
    );
    // PATH (the default), env, UCSPI; nothing of the master's.
    let seen = ask(&d, &d.address_of("nobody", "tcp"));
    assert!(!seen.env.contains_key("DB_PASSWORD"), "{:?}", seen.env);
    let mut expected: Vec<&str> = vec!["LANG", "PATH"];
    expected.extend(UCSPI);
    expected.sort();
    // sh itself adds PWD.
    let names: Vec<&str> = seen
        .env
        .keys()
        .map(String::as_str)
        .filter(|n| *n != "PWD")
        .collect();
    assert_eq!(names, expected, "{:?}\n{}", seen.env, d.report());
    assert_eq!(seen.env["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(seen.env["LANG"], "C.UTF-8");
    // No capability can come back: not through the bounding set, not
    // through a set-uid-root program.
    assert_eq!(seen.status["CapBnd"], "0000000000000000");
    assert_eq!(seen.status["NoNewPrivs"], "1");
    assert_eq!(seen.status["setuid-euid"], "65534", "set-uid root worked");
}

#[test]
fn pass_env_passes_a_variable_and_allow_new_privileges_lets_set_uid_work() {
    if !needs_root() {
        return;
    }
    let dir = TempDir::new("pass-env");
    if !set_uid_works_in(&dir) {
        return;
    }
    let d = serve(
        &dir,
        "[[service]]\nname = \"nobody\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{p}\"]\n\
         user = \"nobody\"\nworkers = 1\npass_env = [\"TZ\", \"NOT_SET_ANYWHERE\"]\n\n\
         [[service]]\nname = \"setuid\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{p}\"]\n\
         user = \"nobody\"\nworkers = 1\nallow_new_privileges = true\n\n\
         [[service]]\nname = \"root\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{p}\"]\n\
         user = \"root\"\nworkers = 1\n",
    );
    let seen = ask(&d, &d.address_of("nobody", "tcp"));
    assert!(!seen.env.contains_key("DB_PASSWORD"));
    assert!(!seen.env.contains_key("NOT_SET_ANYWHERE"));
    assert_eq!(seen.env["TZ"], "Europe/Paris");
    assert_eq!(seen.status["NoNewPrivs"], "1");

    // allow_new_privileges: the risk the admin took, a set-uid program
    // makes it root.
    let seen = ask(&d, &d.address_of("setuid", "tcp"));
    assert!(!seen.env.contains_key("DB_PASSWORD"));
    assert_eq!(seen.status["NoNewPrivs"], "0");
    assert_ne!(seen.status["CapBnd"], "0000000000000000");
    assert_eq!(seen.status["setuid-euid"], "0");

    // A root service keeps its capabilities, but not the secret.
    let seen = ask(&d, &d.address_of("root", "tcp"));
    assert!(!seen.env.contains_key("DB_PASSWORD"));
    assert_ne!(seen.status["CapEff"], "0000000000000000");
}

#[test]
fn run_gives_its_program_the_same_clean_environment() {
    if !needs_root() {
        return;
    }
    let dir = TempDir::new("clean-env-run");
    if !set_uid_works_in(&dir) {
        return;
    }
    let program = reporter(&dir);
    let program = program.to_str().unwrap();
    let args = [
        "run",
        "-w",
        "1",
        "--user",
        "nobody",
        "--pass-env",
        "TZ",
        "127.0.0.1:0",
        "--",
        program,
    ];
    let d = Daemon::start_with(master_environment(Command::new(BIN).args(args)), &args);
    let seen = ask(&d, d.listening());
    assert!(!seen.env.contains_key("DB_PASSWORD"), "{:?}", seen.env);
    assert_eq!(seen.env["PATH"], "/usr/local/bin:/usr/bin:/bin");
    assert_eq!(seen.env["TZ"], "Europe/Paris");
    assert_eq!(seen.status["CapBnd"], "0000000000000000");
    assert_eq!(seen.status["NoNewPrivs"], "1");
    assert_eq!(seen.status["setuid-euid"], "65534");
}

#[test]
fn check_refuses_pass_env_of_what_preforkd_sets_and_contradicting_privileges() {
    let dir = TempDir::new("pass-env-check");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[service]]\nname = \"a\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"/bin/true\"]\n\
         pass_env = [\"TCPREMOTEIP\"]\n\n\
         [[service]]\nname = \"b\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"/bin/true\"]\n\
         no_new_privs = true\nallow_new_privileges = true\n\n\
         [[service]]\nname = \"c\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\n\
         pass_env = [\"TZ\"]\n",
    )
    .unwrap();
    let out = run_to_exit(&["check", "-c", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let file = config.display().to_string();
    assert!(
        err.contains(&format!("{file}:5:13: pass_env cannot name TCPREMOTEIP")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:12:24: allow_new_privileges = true contradicts no_new_privs = true"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:18:12: `pass_env` applies to exec services only"
        )),
        "{err}"
    );
}

#[test]
fn run_refuses_pass_env_for_a_builtin_or_of_what_preforkd_sets() {
    for (args, expect) in [
        (
            vec![
                "run",
                "--pass-env",
                "TZ",
                "127.0.0.1:0",
                "--builtin",
                "echo",
            ],
            "preforkd: --pass-env is for programs (-- PROGRAM), not builtins",
        ),
        (
            vec![
                "run",
                "--pass-env",
                "PROTO",
                "127.0.0.1:0",
                "--",
                "/bin/true",
            ],
            "preforkd: --pass-env cannot name PROTO",
        ),
    ] {
        let out = run_to_exit(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with(expect) && err.lines().count() == 1, "{err}");
    }
}

/// A non-root master started with ambient capabilities (systemd's `User=`
/// with `AmbientCapabilities=`): its programs get none of them, neither
/// ambient nor inheritable nor effective; and when it holds CAP_SETPCAP,
/// their bounding set is empty too.
#[test]
fn a_non_root_master_with_ambient_capabilities_passes_none_to_its_programs() {
    if !needs_root()
        || !needs(
            Path::new("/usr/bin/setpriv").exists(),
            "setpriv",
            "apt-get install util-linux",
        )
    {
        return;
    }
    let dir = TempDir::new("ambient-caps");
    let program = reporter(&dir);
    let bin = binary_for_nobody(&dir);
    for (caps, setpcap) in [
        ("+net_bind_service,+net_raw", false),
        ("+net_bind_service,+net_raw,+setpcap", true),
    ] {
        let mut command = Command::new("/usr/bin/setpriv");
        command
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                &format!("--inh-caps={caps}"),
                &format!("--ambient-caps={caps}"),
            ])
            .arg(&bin)
            .args(["run", "-w", "1", "127.0.0.1:0", "--"])
            .arg(&program);
        let d = Daemon::start_with(&mut command, &["run", caps]);
        // The master did get them (else the test proves nothing).
        let master = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
        assert!(
            master
                .lines()
                .any(|l| l.starts_with("CapAmb:") && !l.ends_with("0000000000000000")),
            "{master}"
        );
        let seen = ask(&d, d.listening());
        for set in ["CapAmb", "CapInh", "CapEff", "CapPrm"] {
            assert_eq!(
                seen.status[set],
                "0000000000000000",
                "{set} with {caps}: {:?}\n{}",
                seen.status,
                d.report()
            );
        }
        if setpcap {
            assert_eq!(
                seen.status["CapBnd"], "0000000000000000",
                "{:?}",
                seen.status
            );
        }
        assert_eq!(seen.status["NoNewPrivs"], "1");
    }
}
