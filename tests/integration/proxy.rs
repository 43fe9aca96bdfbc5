//! PROXY protocol (issue #9): a service with `proxy_protocol` takes the
//! client from the header, for programs, access rules and logs; and a real
//! HAProxy in front of two instances, one of which is then killed.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// Prints who the program thinks its client is, then echoes its input.
const WHO_SCRIPT: &str = "#!/bin/sh\n\
    echo \"${INSTANCE-x} $TCPREMOTEIP $TCPREMOTEPORT $TCPLOCALIP $TCPLOCALPORT\"\n\
    exec cat\n";

fn v2_tcp4(source: ([u8; 4], u16), destination: ([u8; 4], u16)) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&source.0);
    h.extend_from_slice(&destination.0);
    h.extend_from_slice(&source.1.to_be_bytes());
    h.extend_from_slice(&destination.1.to_be_bytes());
    h
}

/// Sends `bytes`, closes the sending side, and returns everything that
/// comes back (empty when the server closes at once).
fn exchange(addr: &str, bytes: &[u8]) -> String {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.write_all(bytes);
    let _ = c.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn who_service(dir: &TempDir, extra: &str) -> (Daemon, String) {
    let script = dir.script("who.sh", WHO_SCRIPT);
    let d = Daemon::serve(
        dir,
        &format!(
            "[[service]]\nname = \"who\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{}\"]\nworkers = 2\n{extra}\n",
            script.display()
        ),
    );
    let addr = d.address_of("who", "tcp");
    (d, addr)
}

#[test]
fn the_header_names_the_client_for_programs_and_nothing_after_it_is_lost() {
    let dir = TempDir::new("proxy-env");
    let (d, addr) = who_service(
        &dir,
        "proxy_protocol = \"any\"\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    let out = exchange(
        &addr,
        b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 7\r\nhello after v1",
    );
    assert_eq!(
        out,
        "x 192.0.2.7 40000 198.51.100.1 7\nhello after v1",
        "{}",
        d.report()
    );
    let mut v2 = v2_tcp4(([203, 0, 113, 9], 5555), ([198, 51, 100, 2], 443));
    v2.extend_from_slice(b"hello after v2");
    assert_eq!(
        exchange(&addr, &v2),
        "x 203.0.113.9 5555 198.51.100.2 443\nhello after v2"
    );
    let v1_ipv6 = b"PROXY TCP6 2001:db8::5 2001:db8::1 4000 443\r\n";
    assert_eq!(
        exchange(&addr, v1_ipv6),
        "x 2001:db8::5 4000 2001:db8::1 443\n"
    );
    // A LOCAL header (a health check): the connection's own addresses.
    let local = exchange(&addr, b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00ok");
    assert!(local.starts_with("x 127.0.0.1 "), "{local}");
    assert!(local.ends_with("ok"), "{local}");
}

#[test]
fn no_header_a_bad_one_or_the_wrong_version_is_closed_and_logged() {
    let dir = TempDir::new("proxy-bad");
    let (d, addr) = who_service(
        &dir,
        "proxy_protocol = \"v2\"\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    for (bytes, why) in [
        (&b"GET / HTTP/1.0\r\n\r\n"[..], "no PROXY protocol header"),
        (
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 7\r\n",
            "a version 1 header where version 2 is expected",
        ),
        (b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff", "more than 1024"),
        (
            b"\r\n\r\n\0\r\nQUIT",
            "closed before its PROXY protocol header ended",
        ),
    ] {
        assert_eq!(exchange(&addr, bytes), "", "{why}");
        assert!(
            d.wait_for_log(
                "W0031 service who: refused 127.0.0.1:",
                Duration::from_secs(5)
            ) && d.wait_for_log(why, Duration::from_secs(5)),
            "{why}\n{}",
            d.report()
        );
    }
    // Nothing was served, and the workers are still there.
    assert!(!d.stderr().contains("C0001"));
    assert_eq!(d.workers().len(), 2, "{}", d.report());
}

#[test]
fn access_rules_apply_to_the_client_the_header_names() {
    let dir = TempDir::new("proxy-acl");
    let (d, addr) = who_service(
        &dir,
        "proxy_protocol = \"v1\"\ntrusted_proxies = [\"127.0.0.1\"]\nonly_from = [\"192.0.2.0/24\"]\nlog_connections = true",
    );
    // The balancer itself (127.0.0.1) is not in only_from: its clients are.
    let served = exchange(&addr, b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 7\r\n");
    assert!(
        served.starts_with("x 192.0.2.7 "),
        "{served}\n{}",
        d.report()
    );
    let refused = exchange(&addr, b"PROXY TCP4 203.0.113.9 198.51.100.1 40001 7\r\n");
    assert_eq!(refused, "");
    assert!(
        d.wait_for_log(
            "W0030 service who: refused 203.0.113.9:40001: not in only_from",
            Duration::from_secs(5)
        ),
        "{}",
        d.report()
    );
    assert!(
        d.wait_for_log(
            "C0001 service who: 192.0.2.7:40000 served",
            Duration::from_secs(5)
        ),
        "{}",
        d.report()
    );
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One connection through the balancer from 127.0.0.5: the instance that
/// served it and the client address its program saw.
fn through(frontend: SocketAddr) -> Result<(String, String), String> {
    let mut c = try_connect_from("127.0.0.5", frontend).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"ping\n").map_err(|e| format!("write: {e}"))?;
    c.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut out = String::new();
    c.read_to_string(&mut out)
        .map_err(|e| format!("read: {e}"))?;
    let mut words = out.split_whitespace();
    match (words.next(), words.next(), out.ends_with("ping\n")) {
        (Some(instance), Some(ip), true) => Ok((instance.to_string(), ip.to_string())),
        _ => Err(format!("unexpected answer {out:?}")),
    }
}

#[test]
fn haproxy_in_front_of_two_instances_with_send_proxy_v2() {
    let haproxy_runs = Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !needs(haproxy_runs, "haproxy", "apt-get install haproxy") {
        return;
    }
    let dirs = [TempDir::new("haproxy-a"), TempDir::new("haproxy-b")];
    let mut instances: Vec<(Daemon, String)> = ["a", "b"]
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| {
            who_service(
                dir,
                &format!("proxy_protocol = \"v2\"\ntrusted_proxies = [\"127.0.0.1\"]\nenv = {{ INSTANCE = \"{name}\" }}"),
            )
        })
        .collect();
    let frontend: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = dirs[0].path().join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n    maxconn 256\n\n\
             defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    retries 3\n    option redispatch\n\n\
             frontend in\n    bind {frontend}\n    default_backend preforkd\n\n\
             backend preforkd\n    balance roundrobin\n\
             \x20   server a {} send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1\n\
             \x20   server b {} send-proxy-v2 check check-send-proxy inter 200ms fall 1 rise 1\n",
            instances[0].1, instances[1].1
        ),
    )
    .unwrap();
    let _haproxy = Haproxy(
        Command::new("haproxy")
            .args(["-db", "-f", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy"),
    );
    // Both instances get traffic, and every program sees 127.0.0.5.
    let mut seen = std::collections::BTreeMap::new();
    let ready = wait_until(Duration::from_secs(10), || {
        if let Ok((instance, ip)) = through(frontend) {
            assert_eq!(ip, "127.0.0.5", "the program saw {ip}, not the client");
            *seen.entry(instance).or_insert(0) += 1;
        }
        seen.len() == 2
    });
    assert!(ready, "traffic reached {seen:?} only");
    for _ in 0..100 {
        let (instance, ip) = through(frontend).unwrap();
        assert_eq!(ip, "127.0.0.5");
        *seen.entry(instance).or_insert(0) += 1;
    }
    eprintln!("haproxy: 100+ connections spread over the instances: {seen:?}");
    assert!(seen.values().all(|&n| n >= 20), "{seen:?}");

    // Four clients in a loop; instance a is SIGKILLed under them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut results = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    results.push((Instant::now(), through(frontend)));
                }
                results
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (a, _) = instances.remove(0);
    let a_workers = a.workers();
    let killed_at = Instant::now();
    a.signal(libc::SIGKILL);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let results: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    for w in a_workers {
        assert!(
            wait_until(Duration::from_secs(5), || is_gone(w)),
            "worker {w} of a is left"
        );
    }
    let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    let after: Vec<_> = results
        .iter()
        .filter(|(t, _)| *t > killed_at + Duration::from_secs(1))
        .collect();
    let served_by_a_after = after
        .iter()
        .filter(|(_, r)| matches!(r, Ok((i, _)) if i == "a"))
        .count();
    eprintln!(
        "haproxy: {} connections while a was killed, {} failed (at most one in flight per client: 4): {:?}; {} in the last second, all by b",
        results.len(),
        failed.len(),
        failed.iter().map(|(_, r)| r.clone().unwrap_err()).collect::<Vec<_>>(),
        after.len()
    );
    assert!(failed.len() <= 4, "{} connections failed", failed.len());
    assert!(!after.is_empty());
    assert_eq!(served_by_a_after, 0);
    assert!(after
        .iter()
        .all(|(_, r)| matches!(r, Ok((i, ip)) if i == "b" && ip == "127.0.0.5")));
    drop(a);
}
