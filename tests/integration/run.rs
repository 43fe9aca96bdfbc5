//! `preforkd run`: the pool, who accepts, many clients.

use std::io::{Read, Write};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::util::*;

// Issue #2, acceptance 1.
#[test]
fn four_workers_block_in_accept_and_the_master_never_accepts() {
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "4", "--builtin", "echo"]);
    let all_in_accept = wait_until(Duration::from_secs(5), || {
        let w = d.workers();
        w.len() == 4 && w.iter().all(|&p| in_accept(p))
    });
    assert!(
        all_in_accept,
        "expected 4 workers in accept\n{}",
        d.report()
    );

    let master = d.pid();
    for i in 0..20 {
        let mut c = d.connect();
        assert_eq!(
            echo_once(&mut c, &format!("line {i}\n")).unwrap(),
            format!("line {i}\n")
        );
        let client_port = c.local_addr().unwrap().port();
        let inode = server_socket_inode(d.port(), client_port)
            .unwrap_or_else(|| panic!("no server socket for client port {client_port}"));
        let mut candidates = d.workers();
        candidates.push(master);
        let owners = socket_owners(inode, &candidates);
        assert_eq!(
            owners.len(),
            1,
            "connection {i} held by {owners:?}\n{}",
            d.report()
        );
        assert_ne!(
            owners[0],
            master,
            "the master accepted connection {i}\n{}",
            d.report()
        );
    }
    assert_eq!(d.workers().len(), 4, "{}", d.report());
}

// Issue #2, acceptance 3.
#[test]
fn two_hundred_concurrent_clients_are_all_served_and_no_zombie_is_left() {
    let mut d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "4", "--builtin", "echo"]);
    let addr = d.addr();
    let barrier = Arc::new(Barrier::new(200));
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || -> Result<(), String> {
                barrier.wait();
                let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                    .map_err(|e| format!("client {i}: connect: {e}"))?;
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let line = format!("client {i:03} says hello\n");
                s.write_all(line.as_bytes())
                    .map_err(|e| format!("client {i}: write: {e}"))?;
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut back = String::new();
                s.read_to_string(&mut back)
                    .map_err(|e| format!("client {i}: read: {e}"))?;
                if back != line {
                    return Err(format!("client {i}: got {back:?}"));
                }
                Ok(())
            })
        })
        .collect();
    let failures: Vec<String> = clients
        .into_iter()
        .filter_map(|t| t.join().unwrap().err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} clients failed: {failures:?}\n{}",
        failures.len(),
        d.report()
    );
    assert!(
        zombies_of(d.pid()).is_empty(),
        "zombies: {:?}\n{}",
        zombies_of(d.pid()),
        d.report()
    );

    d.signal(libc::SIGTERM);
    assert!(
        d.wait_exit_within(Duration::from_secs(10)).is_some(),
        "{}",
        d.report()
    );
    assert!(all_children_of(d.pid()).is_empty(), "{}", d.report());
}

#[test]
fn every_address_form_listens_and_reports_the_real_port() {
    for (addr, expect_prefix) in [
        ("127.0.0.1:0", "127.0.0.1:"),
        ("[::1]:0", "[::1]:"),
        (":0", "[::]:"),
    ] {
        let d = Daemon::start(&["run", addr, "--workers", "1", "--builtin", "echo"]);
        assert!(
            d.listening().starts_with(expect_prefix),
            "{addr}: {}",
            d.listening()
        );
        assert_ne!(d.port(), 0, "{addr}: the real port must be printed");
        // Connect by loopback of the listener's own family.
        let target: std::net::SocketAddr = if addr.starts_with("127") {
            d.addr()
        } else {
            format!("[::1]:{}", d.port()).parse().unwrap()
        };
        let mut c = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(echo_once(&mut c, "x\n").unwrap(), "x\n", "{addr}");
    }
}

#[test]
fn a_dual_stack_listener_serves_ipv4_clients_too() {
    let d = Daemon::start(&["run", ":0", "--workers", "1", "--builtin", "echo"]);
    let v4: std::net::SocketAddr = format!("127.0.0.1:{}", d.port()).parse().unwrap();
    let mut c = std::net::TcpStream::connect_timeout(&v4, Duration::from_secs(5)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(echo_once(&mut c, "v4\n").unwrap(), "v4\n");
}

#[test]
fn a_unix_socket_serves_and_is_removed_on_stop() {
    let dir = TempDir::new("unix");
    let path = dir.path().join("echo.sock");
    let spec = format!("unix:{}", path.display());
    let mut d = Daemon::start(&["run", &spec, "--workers", "2", "--builtin", "echo"]);
    assert_eq!(d.listening(), spec);
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"over unix\n").unwrap();
    let mut buf = [0u8; 10];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"over unix\n");
    drop(c);
    d.stop_gracefully();
    assert!(!path.exists(), "the socket file is left behind");
}

#[test]
fn a_stale_unix_socket_file_is_replaced() {
    let dir = TempDir::new("stale");
    let path = dir.path().join("stale.sock");
    // A socket file nobody listens on, as a SIGKILLed daemon leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let spec = format!("unix:{}", path.display());
    let d = Daemon::start(&["run", &spec, "--workers", "1", "--builtin", "echo"]);
    assert!(
        std::os::unix::net::UnixStream::connect(&path).is_ok(),
        "{}",
        d.report()
    );
}

// Issue 16: `[::]:P` named a dual-stack and an IPv6-only socket alike.
// The line says which, after the address, which stays parsable alone.
#[test]
fn the_listening_line_says_whether_the_ipv6_wildcard_takes_ipv4_too() {
    for (addr, note) in [(":0", "(IPv4 and IPv6)"), ("[::]:0", "(IPv6 only)")] {
        let d = Daemon::start(&["run", addr, "--workers", "1", "--builtin", "echo"]);
        let line = d
            .stderr()
            .lines()
            .find(|l| l.starts_with("listening on "))
            .map(str::to_string)
            .unwrap();
        assert_eq!(
            line,
            format!("listening on [::]:{} {note}", d.port()),
            "{addr}"
        );
    }
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "1", "--builtin", "echo"]);
    assert_eq!(d.listening(), format!("127.0.0.1:{}", d.port()));
    assert!(
        d.stderr()
            .contains(&format!("listening on 127.0.0.1:{}\n", d.port())),
        "{}",
        d.report()
    );
}
