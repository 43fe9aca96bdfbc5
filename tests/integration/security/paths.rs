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
    let path = util::write_config(dir, config);
    let file = path.to_str().unwrap().to_string();
    let args = ["serve", "--foreground", "-c", file.as_str()];
    let d = Daemon::start_with(&mut under_umask_000(&args), &args);
    d.wait_running();
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

/// A root-owned file `name` in a fresh directory of root's, mode 0600:
/// what the attacker wants root to truncate or remove.
fn victim_named(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, "root's own\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A stale socket of root's at `path` (bound, nobody listens): what the
/// master would remove to bind its own. Its inode.
fn stale_root_socket(path: &Path) -> u64 {
    drop(std::os::unix::net::UnixListener::bind(path).unwrap());
    std::fs::symlink_metadata(path).unwrap().ino()
}

/// `dir/app`, owned by nobody and writable by it alone (not sticky), with
/// nobody's link `app/run` to `target`: the directory part of a path the
/// config names as `app/run/...`.
fn nobodys_link_to(dir: &TempDir, target: &Path) -> PathBuf {
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::os::unix::fs::chown(&app, Some(nobody_uid()), None).unwrap();
    let run = app.join("run");
    as_nobody(&format!("ln -s '{}' '{}'", target.display(), run.display()));
    run
}

/// `serve --foreground -c CONFIG ARGS` under umask 000, with `config`
/// (and a control socket in `dir` unless it names one): waits until it
/// exits or runs; one that runs is stopped (SIGTERM), as `preforkd stop`
/// would, and waited for. Whether it ran, its exit code, its stderr.
fn serve_then_stop(dir: &TempDir, config: &str, args: &[&str]) -> (bool, Option<i32>, String) {
    let file = dir.path().join("preforkd.toml");
    let text = if config.contains("control = ") {
        config.to_string()
    } else {
        with_control(dir, config)
    };
    std::fs::write(&file, text).unwrap();
    let log = dir.path().join("stderr");
    let mut all = vec!["serve", "--foreground", "-c", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut child = under_umask_000(&all)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut status = None;
    let settled = util::wait_until(Duration::from_secs(10), || {
        status = child.try_wait().unwrap();
        status.is_some() || stderr().contains("running with")
    });
    let ran = status.is_none();
    if ran {
        util::kill(child.id(), libc::SIGTERM);
        let stopped = util::wait_until(Duration::from_secs(10), || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        if !stopped {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    assert!(settled, "preforkd neither ran nor exited:\n{}", stderr());
    (ran, status.and_then(|s| s.code()), stderr())
}

// The pidfile's directory is reached through a link nobody planted in a
// directory of its own (not sticky) that lies on the pidfile's path, to a
// directory of root's. Before the defence the directory part of the path
// was followed and only the directory it led to judged: root's file there
// was truncated, got the pid, and was removed at stop. Now the start is
// refused with one line; the file is untouched before and after a stop.
#[test]
fn a_link_planted_on_the_pidfile_path_is_not_followed() {
    if !attacker_ready() {
        return;
    }
    let dir = TempDir::new("paths-pid-dirlink");
    let safe = TempDir::new("paths-pid-dirlink-victim");
    let precious = victim_named(&safe, "preforkd.pid");
    let run = nobodys_link_to(&dir, safe.path());
    let pidfile = run.join("preforkd.pid");
    let (ran, code, stderr) = serve_then_stop(
        &dir,
        "[[service]]\nname = \"echo\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
        &["--pidfile", pidfile.to_str().unwrap()],
    );
    assert!(
        std::fs::symlink_metadata(&precious).is_ok(),
        "root's file was removed at stop\n{stderr}"
    );
    assert_untouched(&precious, &stderr);
    assert!(!ran, "the pidfile was taken:\n{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("preforkd: "))
        .collect();
    assert_eq!(
        lines,
        [format!(
            "preforkd: refusing the pidfile {}: {}",
            pidfile.display(),
            link_refusal(&dir, &run)
        )],
        "{stderr}"
    );
}

/// Why a path through [`nobodys_link_to`]'s `run` in `dir` is refused.
fn link_refusal(dir: &TempDir, run: &Path) -> String {
    format!(
        "{} is a symbolic link, and the directory {} is owned by uid {}, neither root nor the daemon's user; not followed",
        run.display(),
        dir.path().join("app").display(),
        nobody_uid()
    )
}

/// A stale socket of root's, `name`, in a directory of root's that
/// nobody's link leads to ([`nobodys_link_to`]); [`serve_then_stop`] on
/// the config `config` makes of the socket's path through the link. The
/// stale socket must keep its inode; whether the daemon ran, its exit
/// code, its stderr, and the expected refusal.
fn serve_through_link_to_stale_socket(
    test: &str,
    name: &str,
    mut config: impl FnMut(&Path) -> String,
) -> (bool, Option<i32>, String, String) {
    let dir = TempDir::new(test);
    let safe = TempDir::new(&format!("{test}-victim"));
    let theirs = safe.path().join(name);
    let inode = stale_root_socket(&theirs);
    let run = nobodys_link_to(&dir, safe.path());
    let (ran, code, stderr) = serve_then_stop(&dir, &config(&run.join(name)), &[]);
    assert_eq!(
        std::fs::symlink_metadata(&theirs).map(|m| m.ino()).ok(),
        Some(inode),
        "root's socket was removed or replaced\n{stderr}"
    );
    let why = link_refusal(&dir, &run);
    (ran, code, stderr, why)
}

// The same link on the path of a unix: address: before the defence root
// removed the stale socket of root's that the link led to (in a directory
// the attacker picked), bound its own there, and removed it at stop. Now
// nothing is bound, one line says why, and the start fails.
#[test]
fn a_link_planted_on_a_unix_socket_path_is_not_followed() {
    if !attacker_ready() {
        return;
    }

    let mut wanted = String::new();
    let (ran, code, stderr, why) = serve_through_link_to_stale_socket(
        "paths-sock-dirlink",
        "echo.sock",
        |sock| {
            wanted = format!("unix:{}", sock.display());
            format!(
                "[[service]]\nname = \"local\"\nlisten = [\"{wanted}\"]\nbuiltin = \"echo\"\nworkers = 1\n"
            )
        },
    );
    assert!(!ran, "the address was bound:\n{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("preforkd: cannot bind {wanted}: {why}")),
        "{stderr}"
    );
}

// The same link on the control socket's path: no control socket is made
// (W0040 says why, the daemon serves on), and root's stale socket the link
// leads to is neither removed nor replaced, at start or at stop.
#[test]
fn a_link_planted_on_the_control_socket_path_is_not_followed() {
    if !attacker_ready() {
        return;
    }
    let mut control = PathBuf::new();
    let (ran, _, stderr, why) = serve_through_link_to_stale_socket(
        "paths-ctl-dirlink",
        "control.sock",
        |sock| {
            control = sock.to_path_buf();
            format!(
                "[daemon]\ncontrol = \"{}\"\n\n[[service]]\nname = \"echo\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
                sock.display()
            )
        },
    );
    assert!(ran, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "W0040 cannot create the control socket {}: {why}",
            control.display()
        )),
        "{stderr}"
    );
}

// A link root made in a directory only root can change, as /var/run ->
// /run, is followed: pidfile, control socket and unix: socket are made
// where it leads, and removed at stop. A link nobody made in a sticky
// directory of root's (as /tmp), to the same place, is not: the start is
// refused. Before the defence nobody's link was followed too.
#[test]
fn only_a_link_only_root_could_have_made_is_followed() {
    if !attacker_ready() {
        return;
    }
    let dir = TempDir::new("paths-rootlink");
    let real = dir.path().join("run");
    std::fs::create_dir(&real).unwrap();
    let var = dir.path().join("var");
    std::fs::create_dir(&var).unwrap();
    std::os::unix::fs::symlink("../run", var.join("run")).unwrap();
    let via = var.join("run");
    let config = format!(
        "[daemon]\ncontrol = \"{}\"\n\n[[service]]\nname = \"local\"\nlisten = [\"unix:{}\"]\nbuiltin = \"echo\"\nworkers = 1\n",
        via.join("control.sock").display(),
        via.join("echo.sock").display()
    );
    let pidfile = via.join("preforkd.pid");
    let file = dir.path().join("preforkd.toml");
    std::fs::write(&file, &config).unwrap();
    let args = [
        "serve",
        "--foreground",
        "-c",
        file.to_str().unwrap(),
        "--pidfile",
        pidfile.to_str().unwrap(),
    ];
    let mut d = Daemon::start_with(&mut under_umask_000(&args), &args);
    d.wait_running();
    for name in ["control.sock", "echo.sock"] {
        assert!(
            std::fs::symlink_metadata(real.join(name)).is_ok_and(|m| m.file_type().is_socket()),
            "{name}\n{}",
            d.report()
        );
    }
    assert_eq!(util::read_pid(&real.join("preforkd.pid")), Some(d.pid()));
    let status = util::run_to_exit(&["stop", "-c", file.to_str().unwrap()]);
    assert!(status.status.success(), "{status:?}\n{}", d.report());
    assert!(
        d.wait_exit_within(Duration::from_secs(10)).is_some(),
        "{}",
        d.report()
    );
    for name in ["control.sock", "echo.sock", "preforkd.pid"] {
        assert!(!real.join(name).exists(), "{name} left\n{}", d.report());
    }

    // nobody's link, in a sticky directory of root's, to the same place.
    let tmp = sticky_dir("paths-rootlink-tmp");
    let link = tmp.path().join("run");
    as_nobody(&format!("ln -s '{}' '{}'", real.display(), link.display()));
    let pidfile = link.join("preforkd.pid");
    let (ran, code, stderr) = serve_then_stop(
        &tmp,
        "[[service]]\nname = \"echo\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
        &["--pidfile", pidfile.to_str().unwrap()],
    );
    assert!(!ran, "nobody's link was followed:\n{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "preforkd: refusing the pidfile {}: {} is a symbolic link owned by uid {}, neither root nor the daemon's user; not followed",
            pidfile.display(),
            link.display(),
            nobody_uid()
        )),
        "{stderr}"
    );
    assert!(!real.join("preforkd.pid").exists(), "{stderr}");
}

// A socket passed by the service manager (or by an old master at a binary
// upgrade) in a service user's own directory: before the new master
// starts, the user replaces it with a hard link to another socket of
// root's (which it can where fs.protected_hardlinks = 0; the test makes
// the link as root, as the kernel would let nobody then). Before the
// defence the master took that file for the socket's, and a reload that
// changed the service chmod'ed and chown'ed root's other socket to the
// service user. Now the file is not recorded (W0072) and never changed.
#[test]
fn a_passed_socket_hard_linked_to_another_gets_no_chown_at_reload() {
    if !attacker_ready() {
        return;
    }
    let dir = TempDir::new("paths-adopt-link");
    let theirs = dir.path().join("nobody");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(nobody_uid()), None).unwrap();
    let other = TempDir::new("paths-adopt-link-other");
    let root_sock = other.path().join("root.sock");
    let _root_daemon = std::os::unix::net::UnixListener::bind(&root_sock).unwrap();
    std::fs::set_permissions(&root_sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sock = theirs.join("echo.sock");
    let passed = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    as_nobody(&format!("rm '{}'", sock.display()));
    std::fs::hard_link(&root_sock, &sock).unwrap();
    let service = |timeout: &str| {
        format!(
            "[[service]]\nname = \"local\"\nlisten = [\"unix:{}\"]\nbuiltin = \"echo\"\nworkers = 1\n\
             socket_mode = \"0660\"\nsocket_owner = \"nobody\"\ntimeout = \"{timeout}\"\n",
            sock.display()
        )
    };
    let config = dir.path().join("preforkd.toml");
    std::fs::write(&config, with_control(&dir, &service("30s"))).unwrap();
    let mut d = Daemon::start_activated(&passed, "local", &config, true);
    d.wait_running();
    std::fs::write(&config, with_control(&dir, &service("31s"))).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_log("M0013", Duration::from_secs(10)),
        "{}",
        d.report()
    );
    let meta = std::fs::symlink_metadata(&root_sock).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o7777),
        (0, 0o600),
        "root's other socket was given away\n{}",
        d.report()
    );
    assert!(
        d.stderr().contains(&format!(
            "W0072 the socket file {} passed by the service manager: it has 2 hard links",
            sock.display()
        )),
        "{}",
        d.report()
    );
    d.stop_gracefully();
    assert!(root_sock.exists(), "{}", d.report());
}
