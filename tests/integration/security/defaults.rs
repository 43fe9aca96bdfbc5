//! Safe defaults against idle clients (docs/security.md, 6): the embedded
//! default config, the packaged config and `run` without flags each serve
//! a client from 127.0.0.2 while one from 127.0.0.1 holds 100 connections
//! that send and read nothing. Before the defence, a fixed pool of two
//! (the configs' echo, `run`'s one worker per CPU on two CPUs) was taken
//! by the first two of them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::util::*;

/// The idle connections the attacker opens from one address.
const IDLE: usize = 100;

/// How long the other client may wait: far below the configs' 60 s
/// timeout, so that it is per_source and the pool that serve it, not the
/// attacker's connections timing out.
const PATIENCE: Duration = Duration::from_secs(15);

/// `IDLE` connections from 127.0.0.1 to `addr`, open and silent.
fn hold_idle(addr: SocketAddr) -> Vec<TcpStream> {
    (0..IDLE)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("idle connection {i} to {addr}: {e}"))
        })
        .collect()
}

/// A client from another loopback address, 127.0.0.2.
fn from_another_address(addr: SocketAddr) -> TcpStream {
    let s = connect_from("127.0.0.2", addr);
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Whether `builtin` on `addr` serves the client from 127.0.0.2 within
/// `PATIENCE`, each in its own way; `Err` says what it got instead.
fn served(d: &Daemon, builtin: &str, addr: SocketAddr) -> Result<(), String> {
    let mut c = from_another_address(addr);
    match builtin {
        "echo" => match echo_once(&mut c, "from 127.0.0.2\n") {
            Ok(back) if back == "from 127.0.0.2\n" => Ok(()),
            other => Err(format!("no echo: {other:?}")),
        },
        "chargen" => {
            let mut buf = [0u8; 74];
            c.read_exact(&mut buf)
                .map_err(|e| format!("no characters: {e}"))
        }
        "daytime" | "time" => {
            let mut buf = Vec::new();
            let _ = c.read_to_end(&mut buf);
            let want = if builtin == "time" { 4 } else { 1 };
            (buf.len() >= want)
                .then_some(())
                .ok_or(format!("{} bytes", buf.len()))
        }
        // discard answers nothing: served means a worker holds the
        // connection.
        "discard" => {
            c.write_all(b"thrown away\n").map_err(|e| e.to_string())?;
            let client_port = c.local_addr().unwrap().port();
            wait_until(PATIENCE, || {
                server_socket_inode(addr.port(), client_port).is_some_and(|inode| {
                    inode != 0 && !socket_owners(inode, &d.workers()).is_empty()
                })
            })
            .then_some(())
            .ok_or("no worker took the connection".into())
        }
        other => panic!("no check for builtin {other}"),
    }
}

/// Each service of `d` in turn: 100 idle connections, then the other
/// client, which must be served.
fn attack_every_service(d: &Daemon, services: &[&str]) {
    for &service in services {
        let addr: SocketAddr = d.address_of(service, "tcp").parse().unwrap();
        let idle = hold_idle(addr);
        let result = served(d, service, addr);
        assert!(
            result.is_ok(),
            "{service}: {IDLE} idle connections from 127.0.0.1 kept 127.0.0.2 from being served ({}): {}",
            result.unwrap_err(),
            d.report()
        );
        drop(idle);
    }
}

/// `config` on port 0 everywhere: its 70xx (and 7) ports, and its own
/// control socket.
fn on_port_zero(config: &str) -> String {
    let mut out = String::new();
    for line in config.lines() {
        let line = match line.find("\"127.0.0.1:") {
            Some(i) if line.starts_with("listen") => {
                let end = line[i + 1..].find('"').map_or(line.len(), |j| i + 1 + j);
                format!("{}\"127.0.0.1:0{}", &line[..i], &line[end..])
            }
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn listens_on_port_zero(config: &str) -> bool {
    config
        .lines()
        .filter(|l| l.starts_with("listen"))
        .map(|l| l.split('#').next().unwrap_or_default())
        .all(|l| l.contains("\"127.0.0.1:0\"") && !l.contains(":70"))
}

const BUILTINS: [&str; 5] = ["echo", "discard", "daytime", "chargen", "time"];

/// Serves `config`, moved to port 0, and attacks each of its five builtins.
fn serve_and_attack(name: &str, config: &str) {
    let config = on_port_zero(config);
    assert!(listens_on_port_zero(&config), "{config}");
    let dir = TempDir::new(name);
    let mut d = Daemon::serve(&dir, &config);
    assert_eq!(d.listening_lines().len(), 5, "{}", d.report());
    attack_every_service(&d, &BUILTINS);
    d.stop_gracefully();
}

#[test]
fn idle_clients_from_one_address_do_not_lock_out_the_embedded_default() {
    serve_and_attack("defaults-embedded", preforkd::config::EMBEDDED_DEFAULT);
}

#[test]
fn idle_clients_from_one_address_do_not_lock_out_the_packaged_config() {
    // Its workers drop to the package's user; nobody stands in for it.
    if !needs_root() {
        return;
    }
    let packaged = include_str!("../../../packaging/preforkd.toml");
    let config = packaged
        .replace("user = \"preforkd\"", "user = \"nobody\"")
        .replace("control = \"/run/preforkd/preforkd.sock\"", "");
    serve_and_attack("defaults-packaged", &config);
}

#[test]
fn idle_clients_from_one_address_do_not_lock_out_run_without_workers() {
    for builtin in ["echo", "discard"] {
        let mut d = Daemon::start(&["run", "127.0.0.1:0", "--builtin", builtin]);
        let addr = d.addr();
        let idle = hold_idle(addr);
        let result = served(&d, builtin, addr);
        assert!(
            result.is_ok(),
            "run --builtin {builtin}: {IDLE} idle connections from 127.0.0.1 kept 127.0.0.2 from being served ({}): {}",
            result.unwrap_err(),
            d.report()
        );
        drop(idle);
        d.stop_gracefully();
    }
}
