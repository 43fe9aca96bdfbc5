//! Defence 2 of docs/security.md, "No path trick": as root, the daemon
//! never follows a link nobody planted and never races a user who can
//! write the directory of its pidfile, its control socket or the socket
//! of a `unix:` address. The attacker is `nobody`; the master runs as
//! root under `umask 000`.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::{self, with_control, Daemon, TempDir, BIN};

/// Whether the attacker's tools are here: setpriv(1) to become nobody.
fn attacker_ready() -> bool {
    util::needs_root()
        && util::needs(
            Command::new("setpriv").arg("--version").output().is_ok(),
            "setpriv",
            "apt-get install util-linux",
        )
}

/// Runs `script` in sh as nobody (nogroup, no other group); it must
/// succeed.
fn as_nobody(script: &str) {
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "as nobody: {script}: {out:?}");
}

fn nobody_uid() -> u32 {
    nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

/// `preforkd ARGS` run through `sh -c 'umask 000; exec preforkd ARGS'`:
/// every file the master makes would be mode 0777/0666 unless it chooses
/// otherwise.
fn under_umask_000(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "umask 000 && exec \"$0\" \"$@\"", BIN])
        .args(args);
    c
}

/// Starts `serve --foreground` on `config` (with a control socket in
/// `dir`) under umask 000, and waits until it runs.
fn serve_under_umask_000(dir: &TempDir, config: &str) -> (Daemon, PathBuf) {
    let path = dir.path().join("preforkd.toml");
    std::fs::write(&path, with_control(dir, config)).unwrap();
    let file = path.to_str().unwrap().to_string();
    let args = ["serve", "--foreground", "-c", file.as_str()];
    let d = Daemon::start_with(&mut under_umask_000(&args), &args);
    assert!(
        d.wait_for_log("running with", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    (d, path)
}

/// A root-owned file, mode 0600, that the attacker wants truncated,
/// chowned or removed.
fn victim(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("precious");
    std::fs::write(&path, "root's own\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The victim is as it was: content, owner root, mode 0600.
fn assert_untouched(victim: &Path, report: &str) {
    let meta = std::fs::metadata(victim).unwrap();
    assert_eq!(
        std::fs::read_to_string(victim).unwrap(),
        "root's own\n",
        "{}: content changed\n{report}",
        victim.display()
    );
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o600),
        "{}: owner or mode changed\n{report}",
        victim.display()
    );
}

/// A directory anyone may create files in, as /tmp: world-writable and
/// sticky, owned by root. The daemon accepts it for its pidfile.
fn sticky_dir(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// `serve --pidfile PIDFILE` under umask 000 must exit 1 with one line
/// that refuses the pidfile and says why (`because`).
fn assert_pidfile_refused(pidfile: &Path, because: &str) -> Output {
    let dir = TempDir::new("paths-refused");
    let config = dir.path().join("preforkd.toml");
    std::fs::write(
        &config,
        with_control(
            &dir,
            "[[service]]\nname = \"echo\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
        ),
    )
    .unwrap();
    let args = [
        "serve",
        "--foreground",
        "-c",
        config.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ];
    let out = util::run_command_within(&mut under_umask_000(&args), Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("preforkd: "))
        .collect();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the pidfile {} was not refused:\n{stderr}",
        pidfile.display()
    );
    assert_eq!(
        lines,
        [format!(
            "preforkd: refusing the pidfile {}: {because}",
            pidfile.display()
        )],
        "{stderr}"
    );
    assert!(
        !stderr.contains("listening on"),
        "it bound its sockets first:\n{stderr}"
    );
    out
}

// nobody plants a link at the pidfile's path, in a sticky directory it may
// write (as /tmp), pointing to a file of root's. Before the defence root
// opened through the link and truncated the file to write its pid there
// (and removed the link at exit). Now the start is refused with one line,
// and neither the file nor the link is touched.
#[test]
fn a_link_planted_at_the_pidfile_is_not_followed() {
    if !attacker_ready() {
        return;
    }
    let dir = sticky_dir("paths-pid-link");
    let safe = TempDir::new("paths-pid-victim");
    let precious = victim(&safe);
    let pidfile = dir.path().join("preforkd.pid");
    as_nobody(&format!(
        "ln -s '{}' '{}'",
        precious.display(),
        pidfile.display()
    ));
    assert_pidfile_refused(&pidfile, "it is a symbolic link");
    assert_untouched(&precious, "");
    assert!(
        std::fs::symlink_metadata(&pidfile).is_ok_and(|m| m.file_type().is_symlink()),
        "the attacker's link was removed"
    );
}

// A pidfile whose directory nobody may change it in (writable by others
// without the sticky bit, or owned by nobody), or a pidfile nobody owns:
// nobody could swap it for a link to a file of root's before the next
// start, or write another pid in it for `kill $(cat ...)`. Refused, each
// with one line; before the defence each was taken.
#[test]
fn a_pidfile_that_another_user_can_change_is_refused() {
    if !attacker_ready() {
        return;
    }
    let open = TempDir::new("paths-pid-open");
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let pidfile = open.path().join("preforkd.pid");
    assert_pidfile_refused(
        &pidfile,
        &format!(
            "the directory {} is writable by others (mode 0777) and has no sticky bit",
            open.path().display()
        ),
    );
    assert!(!pidfile.exists(), "the pidfile was created");

    let theirs = TempDir::new("paths-pid-theirs");
    std::os::unix::fs::chown(theirs.path(), Some(nobody_uid()), None).unwrap();
    assert_pidfile_refused(
        &theirs.path().join("preforkd.pid"),
        &format!(
            "the directory {} is owned by uid {}, neither root nor the daemon's user",
            theirs.path().display(),
            nobody_uid()
        ),
    );

    let sticky = sticky_dir("paths-pid-planted");
    let planted = sticky.path().join("preforkd.pid");
    as_nobody(&format!("echo 1 > '{}'", planted.display()));
    assert_pidfile_refused(
        &planted,
        &format!(
            "it is owned by uid {}, neither root nor the daemon's user",
            nobody_uid()
        ),
    );
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "1\n");
}

// The service user owns its socket (socket_owner = "nobody") in a
// directory of its own, so it can replace the socket's file with a link to
// a file of root's. Before the defence a reload that changed the service
// chmod'ed and chown'ed the path, following the link: root's file became
// nobody's, mode 0640. Now the master changes only the inode it made
// (M0014 says the file was replaced), and at stop it leaves the
// attacker's link in place (W0071).
#[test]
fn a_socket_swapped_for_a_link_gets_no_chown_at_reload_or_stop() {
    if !attacker_ready() {
        return;
    }
    let dir = TempDir::new("paths-sock-swap");
    let theirs = dir.path().join("nobody");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(nobody_uid()), None).unwrap();
    let safe = TempDir::new("paths-sock-victim");
    let precious = victim(&safe);
    let sock = theirs.join("echo.sock");
    let service = |mode: &str, timeout: &str| {
        format!(
            "[[service]]\nname = \"local\"\nlisten = [\"unix:{}\"]\nbuiltin = \"echo\"\nworkers = 1\n\
             socket_mode = \"{mode}\"\nsocket_owner = \"nobody\"\ntimeout = \"{timeout}\"\n",
            sock.display()
        )
    };
    let reload = |d: &Daemon, config: &Path, text: String, nth: usize| {
        std::fs::write(config, with_control(&dir, &text)).unwrap();
        d.signal(libc::SIGHUP);
        assert!(
            util::wait_until(Duration::from_secs(10), || d
                .stderr()
                .matches("M0013")
                .count()
                >= nth),
            "{}",
            d.report()
        );
    };
    let (mut d, config) = serve_under_umask_000(&dir, &service("0660", "30s"));
    let access = || {
        let meta = std::fs::symlink_metadata(&sock).unwrap();
        assert!(meta.file_type().is_socket(), "{}", d.report());
        (meta.uid(), meta.mode() & 0o777)
    };
    assert_eq!(access(), (nobody_uid(), 0o660), "{}", d.report());
    // The file the master made still takes a new mode at a reload.
    reload(&d, &config, service("0640", "30s"), 1);
    assert_eq!(access(), (nobody_uid(), 0o640), "{}", d.report());

    as_nobody(&format!(
        "mv '{s}' '{s}.moved' && ln -s '{}' '{s}'",
        precious.display(),
        s = sock.display()
    ));
    // A changed setting: the pool is replaced, its socket kept and given
    // the file access the file asks for.
    reload(&d, &config, service("0640", "31s"), 2);
    assert_untouched(&precious, &d.report());
    assert!(
        d.stderr().contains(&format!(
            "M0014 reload: unix:{} for service local: it was replaced by a symbolic link owned by uid {}",
            sock.display(),
            nobody_uid()
        )),
        "{}",
        d.report()
    );

    d.stop_gracefully();
    assert_untouched(&precious, &d.report());
    assert!(
        std::fs::symlink_metadata(&sock).is_ok_and(|m| m.file_type().is_symlink()),
        "the attacker's link was removed\n{}",
        d.report()
    );
    assert!(
        d.stderr()
            .contains(&format!("W0071 the socket file {}", sock.display())),
        "{}",
        d.report()
    );
}

/// `preforkd run SPEC --builtin echo` under umask 000 must exit 1 with
/// `cannot bind SPEC: WHY`; its stderr.
fn run_refused(spec: &str, why: &str) -> String {
    let out = util::run_command_within(
        &mut under_umask_000(&["run", spec, "--builtin", "echo"]),
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("preforkd: cannot bind {spec}: {why}")),
        "{stderr}"
    );
    stderr
}

// nobody plants a stale socket of its own (its preforkd, SIGKILLed) at a
// unix: address in a sticky directory. The master neither removes it nor
// takes it: one line says whose it is, and the start fails. Before the
// defence root removed it and bound its own. A link planted at an address
// is left as it is too.
#[test]
fn a_socket_another_user_planted_is_not_removed() {
    if !attacker_ready() {
        return;
    }
    let dir = sticky_dir("paths-sock-planted");
    let bin = TempDir::new("paths-sock-planted-bin");
    let copy = util::binary_for_nobody(&bin);
    let sock = dir.path().join("echo.sock");
    let spec = format!("unix:{}", sock.display());
    // nobody's own preforkd, killed: its socket file stays, stale.
    let args = ["run", spec.as_str(), "--builtin", "echo"];
    let theirs = Daemon::start_with(
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&copy)
            .args(args),
        &args,
    );
    drop(theirs);
    run_refused(
        &spec,
        &format!(
            "a socket owned by uid {} is in the way; not removed",
            nobody_uid()
        ),
    );
    assert_eq!(
        std::fs::symlink_metadata(&sock).map(|m| m.uid()).ok(),
        Some(nobody_uid())
    );

    // A link planted at an address, to a file of root's: not followed,
    // not removed, and the address is not bound.
    let safe = TempDir::new("paths-sock-link-victim");
    let precious = victim(&safe);
    let link = dir.path().join("link.sock");
    as_nobody(&format!(
        "ln -s '{}' '{}'",
        precious.display(),
        link.display()
    ));
    let spec = format!("unix:{}", link.display());
    let stderr = run_refused(&spec, "Address already in use");
    assert_untouched(&precious, &stderr);
    assert!(std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()));
}

// Under umask 000, bind(2) alone makes a socket file mode 0777: anyone may
// connect. A thread stats every socket path in a tight loop while the
// master binds 40 of them with socket_mode = "0600" (and its control
// socket, 0600), at start and again at a reload that adds 40 more, for
// several starts; a file seen with more than 0600 fails the test. Before
// the defence the master chmod'ed after bind, and the poller saw 0777.
#[test]
fn no_socket_is_ever_connectable_with_a_looser_mode() {
    if !attacker_ready() {
        return;
    }
    const SOCKETS: usize = 40;
    let dir = TempDir::new("paths-umask");
    let paths: Vec<PathBuf> = (0..2 * SOCKETS)
        .map(|i| dir.path().join(format!("s{i}.sock")))
        .chain([dir.path().join("control.sock")])
        .collect();
    let config = |n: usize| {
        paths[..n]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "[[service]]\nname = \"s{i}\"\nlisten = [\"unix:{}\"]\nbuiltin = \"echo\"\n\
                     workers = 1\nsocket_mode = \"0600\"\nsocket_owner = \"nobody\"\n",
                    p.display()
                )
            })
            .collect::<String>()
    };
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (paths, seen, done) = (paths.clone(), Arc::clone(&seen), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut stats = 0u64;
            while !done.load(Ordering::Relaxed) {
                for p in &paths {
                    if let Ok(m) = std::fs::symlink_metadata(p) {
                        stats += 1;
                        if m.mode() & 0o177 != 0 {
                            seen.lock().unwrap().push(format!(
                                "{} mode {:o} owner {}",
                                p.display(),
                                m.mode() & 0o7777,
                                m.uid()
                            ));
                        }
                    }
                }
            }
            stats
        })
    };
    for _ in 0..5 {
        let (mut d, file) = serve_under_umask_000(&dir, &config(SOCKETS));
        std::fs::write(&file, with_control(&dir, &config(2 * SOCKETS))).unwrap();
        d.signal(libc::SIGHUP);
        assert!(
            d.wait_for_log("M0013", Duration::from_secs(20)),
            "{}",
            d.report()
        );
        d.stop_gracefully();
        if !seen.lock().unwrap().is_empty() {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    let stats = poller.join().unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.is_empty(),
        "{} of {stats} stats saw a socket looser than 0600, e.g. {:?}",
        seen.len(),
        &seen[..seen.len().min(5)]
    );
    assert!(stats > 0, "the poller never saw a socket");
}
