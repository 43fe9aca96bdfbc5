//! `preforkd status`, `reload` and `stop` through the control socket
//! (issue #4, acceptance 5).

use std::time::Duration;

use crate::util::*;

fn preforkd(args: &[&str]) -> std::process::Output {
    run_to_exit(args)
}

// Issue #4, acceptance 5.
#[test]
fn status_shows_busy_and_idle_workers_and_every_connection_served() {
    let dir = TempDir::new("status");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 8\n",
    );
    let config = dir.path().join("preforkd.toml");
    let config = config.to_str().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 8),
        "{}",
        d.report()
    );
    // 20 finished connections, then 5 held.
    for i in 0..20 {
        let mut c = d.connect_to(&d.address_of("e", "tcp"));
        echo_once(&mut c, &format!("{i}\n")).unwrap();
    }
    let mut held = Vec::new();
    for i in 0..5 {
        let mut c = d.connect_to(&d.address_of("e", "tcp"));
        echo_once(&mut c, &format!("held {i}\n")).unwrap();
        held.push(c);
    }
    // A worker forked last may still be starting (not yet in accept) on a
    // loaded machine: asked again until none is, for 5 s at most.
    let ask = || {
        let out = preforkd(&["status", "-c", config, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let mut status = ask();
    wait_until(Duration::from_secs(5), || {
        status = ask();
        !status["pools"][0]["workers"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["state"] == "starting"))
    });
    let pool = &status["pools"][0];
    assert_eq!(status["master"], d.pid(), "{status:#}");
    assert_eq!(pool["service"], "e");
    assert_eq!(pool["busy"], 5, "{status:#}");
    assert_eq!(pool["idle"], 3, "{status:#}");
    // The 5 held count once they are over; the 20 are counted already.
    assert_eq!(pool["served"], 20, "{status:#}");
    let busy_clients: Vec<&str> = pool["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["state"] == "busy")
        .map(|w| w["client"].as_str().unwrap())
        .collect();
    assert_eq!(busy_clients.len(), 5);
    for c in &held {
        let me = c.local_addr().unwrap().to_string();
        assert!(
            busy_clients.contains(&me.as_str()),
            "{me} not in {busy_clients:?}"
        );
    }
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let out = preforkd(&["status", "-c", config, "--json"]);
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            s["pools"][0]["served"] == 25 && s["pools"][0]["idle"] == 8
        }),
        "the sum of served is not the 25 connections made\n{}",
        d.report()
    );
    let text = preforkd(&["status", "-c", config]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("0 busy, 8 idle, 25 served"), "{text}");
    assert!(
        text.contains(&format!(
            "preforkd master {}: running, generation 1",
            d.pid()
        )),
        "{text}"
    );
}

#[test]
fn reload_and_stop_through_the_control_socket() {
    let dir = TempDir::new("ctl");
    let mut d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
    );
    let path = dir.path().join("preforkd.toml");
    let config = path.to_str().unwrap();
    let out = preforkd(&["reload", "-c", config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok: reloaded: generation 2"),
        "{out:?}"
    );

    // A broken file: `reload` checks it first, prints the errors and does
    // not ask the daemon (exit 2); `status` still works meanwhile.
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace("\"echo\"", "\"ech0\"")).unwrap();
    let out = preforkd(&["reload", "-c", config]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown builtin 'ech0'"), "{stderr}");
    let status = preforkd(&["status", "-c", config]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("running, generation 2"),
        "{status:?}"
    );
    std::fs::write(&path, &good).unwrap();

    let out = preforkd(&["stop", "-c", config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = d
        .wait_exit_within(Duration::from_secs(10))
        .expect("stop did not stop");
    assert!(status.success(), "{}", d.report());
    assert!(
        !dir.path().join("control.sock").exists(),
        "the control socket is left behind"
    );
}

#[test]
fn an_unprivileged_user_gets_permission_denied_from_the_control_socket() {
    if !needs_root() {
        return; // needs root: to run `status` as nobody
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("ctl-perm");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
    );
    let config = dir.path().join("preforkd.toml");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let copy = binary_for_nobody(&dir);
    let out =
        run_command_to_exit(as_uid_65534(&copy).args(["status", "-c", config.to_str().unwrap()]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(d.workers().len() == 1, "{}", d.report());
}

#[test]
fn status_without_a_daemon_says_so() {
    let dir = TempDir::new("ctl-none");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        with_control(
            &dir,
            "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\n",
        ),
    )
    .unwrap();
    let out = preforkd(&["status", "-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is `preforkd serve` running?"), "{stderr}");
}

// Issue 16: root's stale control socket (mode 0600, in a directory only
// root may write, as /run/preforkd.sock) in the way of a daemon run by
// another user. It cannot be probed or removed: W0040, and the daemon
// serves. Before, bind(2) failed and `serve` exited 1 with "Address
// already in use".
#[test]
fn a_stale_control_socket_of_roots_gives_w0040_to_another_user_and_serving_goes_on() {
    if !needs_root() {
        return; // needs root: a socket of root's, and the daemon as nobody
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("ctl-stale-root");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = binary_for_nobody(&dir);
    let sock = dir.path().join("control.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = write_config(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
    );
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = Daemon::start_with(
        as_uid_65534(&copy).args(["serve", "--foreground", "-c", config.to_str().unwrap()]),
        &["(as nobody) serve"],
    );
    d.wait_running();
    let mut c = d.connect_to(&d.address_of("e", "tcp"));
    assert_eq!(echo_once(&mut c, "on\n").unwrap(), "on\n");
    let stderr = d.stderr();
    let w0040: Vec<&str> = stderr.lines().filter(|l| l.contains("W0040")).collect();
    assert_eq!(w0040.len(), 1, "{}", d.report());
    assert!(
        w0040[0].contains(&format!(
            "cannot create the control socket {}: a socket owned by uid 0 is in the way",
            sock.display()
        )),
        "{}",
        w0040[0]
    );
    assert!(sock.exists(), "root's socket was removed");
}

// Issue 16: `reload -c FILE` checked FILE and reloaded the daemon's own
// file. Another FILE is refused now (exit 1, one line naming both files),
// and nothing is reloaded; the daemon's file by another name (a symlink)
// is the same file, and is reloaded.
#[test]
fn reload_of_another_file_than_the_daemons_is_refused() {
    let dir = TempDir::new("ctl-other");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n",
    );
    let own = dir.path().join("preforkd.toml");
    let other = dir.path().join("other.toml");
    let text = std::fs::read_to_string(&own).unwrap();
    std::fs::write(&other, text.replace("workers = 1", "workers = 2")).unwrap();
    let out = preforkd(&["reload", "-c", other.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "this daemon reads {}, not {}: nothing reloaded",
            std::fs::canonicalize(&own).unwrap().display(),
            std::fs::canonicalize(&other).unwrap().display()
        )),
        "{stderr}"
    );
    let status = preforkd(&["status", "-c", own.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("running, generation 1"),
        "{status:?}"
    );
    assert_eq!(d.workers().len(), 1, "{}", d.report());

    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&own, &link).unwrap();
    let out = preforkd(&["reload", "-c", link.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok: reloaded: generation 2"),
        "{out:?}"
    );
}
