//! per_source, rate, only_from and no_access (issue #4, acceptance 4).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::util::*;

/// Whether the server keeps the connection (answers an echo) or closes it
/// at once (end of file, or a reset).
fn served(mut c: TcpStream) -> bool {
    echo_once(&mut c, "ping\n").is_ok_and(|s| s == "ping\n")
}

fn closed_at_once(mut c: TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(c.read(&mut buf), Ok(0) | Err(_))
}

fn echo_service(dir: &TempDir, listen: &str, extra: &str) -> (Daemon, SocketAddr) {
    let d = Daemon::serve(
        dir,
        &format!("[[service]]\nname = \"e\"\nlisten = [\"{listen}\"]\nbuiltin = \"echo\"\nworkers = 10\n{extra}\n"),
    );
    let addr = d.address_of("e", "tcp").parse().unwrap();
    (d, addr)
}

#[test]
fn per_source_refuses_the_sixth_connection_from_one_address_only() {
    let dir = TempDir::new("per-source");
    let (d, addr) = echo_service(&dir, "127.0.0.1:0", "per_source = 5");
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut c = connect_from("127.0.0.1", addr);
        assert_eq!(echo_once(&mut c, "held\n").unwrap(), "held\n");
        held.push(c);
    }
    assert!(
        closed_at_once(connect_from("127.0.0.1", addr)),
        "a 6th connection from 127.0.0.1 was served\n{}",
        d.report()
    );
    assert!(
        served(connect_from("127.0.0.2", addr)),
        "127.0.0.2 was refused\n{}",
        d.report()
    );
    assert!(
        d.wait_for_log("per_source limit of 5 reached", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    drop(held);
    // Once they are gone, 127.0.0.1 is served again.
    assert!(
        wait_until(Duration::from_secs(5), || served(connect_from(
            "127.0.0.1",
            addr
        ))),
        "{}",
        d.report()
    );
}

#[test]
fn rate_refuses_the_excess_of_a_burst() {
    let dir = TempDir::new("rate");
    let (d, addr) = echo_service(&dir, "127.0.0.1:0", "rate = \"50/s\"");
    let start = std::time::Instant::now();
    let results: Vec<bool> = (0..200)
        .map(|_| served(connect_from("127.0.0.1", addr)))
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    let ok = results.iter().filter(|&&s| s).count();
    eprintln!(
        "a burst of 200 in {elapsed:.2}s against rate = 50/s: {ok} served, {} refused",
        200 - ok
    );
    // 50 at once, then 50 a second while the burst lasts.
    let allowed = 50 + (50.0 * elapsed).ceil() as usize + 1;
    assert!(
        ok >= 50 && ok <= allowed,
        "{ok} served, at most {allowed} allowed\n{}",
        d.report()
    );
    assert!(
        d.stderr().contains("rate limit of 50/s reached"),
        "{}",
        d.report()
    );
}

#[test]
fn only_from_and_no_access_over_ipv4() {
    let dir = TempDir::new("acl4");
    let (d, addr) = echo_service(
        &dir,
        "127.0.0.1:0",
        "only_from = [\"127.0.0.0/30\"]\nno_access = [\"127.0.0.3\"]",
    );
    assert!(served(connect_from("127.0.0.1", addr)), "{}", d.report());
    assert!(served(connect_from("127.0.0.2", addr)), "{}", d.report());
    assert!(
        closed_at_once(connect_from("127.0.0.3", addr)),
        "no_access was not applied\n{}",
        d.report()
    );
    assert!(
        closed_at_once(connect_from("127.0.0.9", addr)),
        "only_from was not applied\n{}",
        d.report()
    );
    assert!(
        d.wait_for_log("refused 127.0.0.9:", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    assert!(d.stderr().contains("not in only_from"), "{}", d.report());
}

#[test]
fn only_from_and_no_access_over_ipv6_and_dual_stack() {
    let dir = TempDir::new("acl6");
    let (d, addr) = echo_service(&dir, "[::1]:0", "only_from = [\"::1\"]");
    assert!(served(connect_from("::1", addr)), "{}", d.report());
    drop(d);
    let (d, addr) = echo_service(&dir, "[::1]:0", "no_access = [\"::1/128\"]");
    assert!(closed_at_once(connect_from("::1", addr)), "{}", d.report());
    drop(d);
    // On a dual-stack socket an IPv4 client is matched as IPv4.
    only_127_0_0_2_on_dual_stack(&dir, "127.0.0.2");
}

/// A dual-stack service with `only_from = [entry]`, an entry naming
/// 127.0.0.2: 127.0.0.2 is served over IPv4, 127.0.0.1 refused.
fn only_127_0_0_2_on_dual_stack(dir: &TempDir, entry: &str) {
    let (d, addr) = echo_service(dir, ":0", &format!("only_from = [\"{entry}\"]"));
    let v4: SocketAddr = format!("127.0.0.1:{}", addr.port()).parse().unwrap();
    assert!(served(connect_from("127.0.0.2", v4)), "{}", d.report());
    assert!(
        closed_at_once(connect_from("127.0.0.1", v4)),
        "{}",
        d.report()
    );
}

/// An access-list entry written IPv4-mapped names the IPv4 client it maps:
/// `no_access = ["::ffff:127.0.0.1"]` refuses 127.0.0.1, on an IPv4 and on
/// a dual-stack socket, where it would otherwise match no client and let
/// the one it names in. One wider than the mapped range is a check error.
#[test]
fn an_ipv4_mapped_entry_refuses_the_ipv4_client_it_names() {
    let dir = TempDir::new("acl-mapped");
    let (d, addr) = echo_service(&dir, "127.0.0.1:0", "no_access = [\"::ffff:127.0.0.1\"]");
    assert!(
        closed_at_once(connect_from("127.0.0.1", addr)),
        "{}",
        d.report()
    );
    assert!(served(connect_from("127.0.0.2", addr)), "{}", d.report());
    drop(d);
    only_127_0_0_2_on_dual_stack(&dir, "::ffff:127.0.0.2/128");
    let path = write_config(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nno_access = [\"::ffff:0.0.0.0/64\"]\n",
    );
    let out = run_to_exit(&["check", "-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("preforkd.toml:")
            && stderr.contains("IPv4-mapped network needs a prefix of /96"),
        "{stderr}"
    );
}
