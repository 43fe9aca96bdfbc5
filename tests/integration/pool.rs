//! The adaptive pool, recycling and timeouts (issue #4).

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

// Issue #4, acceptance 1.
#[test]
fn a_burst_grows_the_pool_at_once_and_it_shrinks_back() {
    let dir = TempDir::new("burst");
    let script = dir.script("slow.sh", "#!/bin/sh\necho first\nsleep 0.3\necho done\n");
    let config = format!(
        "[[service]]\nname = \"slow\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{}\"]\n\
         workers = {{ start = 2, min_spare = 2, max_spare = 4, max = 32 }}\n",
        script.display()
    );
    let d = Daemon::serve(&dir, &config);
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 2),
        "{}",
        d.report()
    );
    let addr: std::net::SocketAddr = d.address_of("slow", "tcp").parse().unwrap();
    let barrier = Arc::new(Barrier::new(30));
    let clients: Vec<_> = (0..30)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || -> Result<Duration, String> {
                barrier.wait();
                let start = Instant::now();
                let c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut lines = BufReader::new(c).lines();
                let first = lines
                    .next()
                    .ok_or("no first line")?
                    .map_err(|e| e.to_string())?;
                let ttfb = start.elapsed();
                if first != "first" {
                    return Err(format!("got {first:?}"));
                }
                let last = lines
                    .next()
                    .ok_or("no last line")?
                    .map_err(|e| e.to_string())?;
                (last == "done")
                    .then_some(ttfb)
                    .ok_or(format!("got {last:?}"))
            })
        })
        .collect();
    let mut ttfb: Vec<Duration> = Vec::new();
    for c in clients {
        ttfb.push(
            c.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("a client failed: {e}\n{}", d.report())),
        );
    }
    ttfb.sort();
    eprintln!(
        "burst of 30 against start = 2: time to first byte p50 {:?}, p99 {:?}, max {:?}",
        percentile(&ttfb, 0.5),
        percentile(&ttfb, 0.99),
        ttfb[29]
    );
    // Afterwards, idle: at most max_spare workers stay.
    let shrunk = wait_until(Duration::from_secs(15), || d.workers().len() <= 4);
    assert!(
        shrunk,
        "the pool did not shrink back: {} workers\n{}",
        d.workers().len(),
        d.report()
    );
}

// Issue #4, acceptance 2.
#[test]
fn max_requests_with_jitter_recycles_workers_and_loses_nothing() {
    let dir = TempDir::new("maxreq");
    let config = "[[service]]\nname = \"who\"\nlisten = [\"127.0.0.1:0\"]\n\
                  exec = [\"/bin/sh\", \"-c\", \"echo $PPID\"]\nworkers = 2\nmax_requests = 100\nmax_requests_jitter = 10\n";
    let d = Daemon::serve(&dir, config);
    let addr = d.address_of("who", "tcp");
    let mut per_worker = std::collections::BTreeMap::<u32, u32>::new();
    for i in 0..2000 {
        let mut c = d.connect_to(&addr);
        let mut out = String::new();
        c.read_to_string(&mut out)
            .unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", d.report()));
        let pid: u32 = out
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("connection {i}: {out:?}"));
        *per_worker.entry(pid).or_default() += 1;
    }
    let most = per_worker.values().max().unwrap();
    eprintln!(
        "2000 connections over {} workers, the busiest served {most}",
        per_worker.len()
    );
    assert!(
        *most <= 110,
        "a worker served {most} connections: {per_worker:?}"
    );
    assert!(per_worker.len() >= 2000 / 110, "{per_worker:?}");
    // The jitter spreads the restarts: not every worker stopped at the same count.
    let full: Vec<u32> = per_worker.values().copied().filter(|&n| n >= 100).collect();
    assert!(full.iter().any(|&n| n != full[0]), "no jitter: {full:?}");
}

// Issue #4, acceptance 3 (the hanging handler).
#[test]
fn a_handler_stuck_past_the_timeout_is_stopped_and_logged() {
    let dir = TempDir::new("stuck");
    let script = dir.script(
        "maybe-hang.sh",
        "#!/bin/sh\nread line\nif [ \"$line\" = hang ]; then sleep 60; fi\necho \"$line\"\n",
    );
    let config = format!(
        "[[service]]\nname = \"maybe\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{}\"]\nworkers = 2\ntimeout = \"1s\"\n",
        script.display()
    );
    let d = Daemon::serve(&dir, &config);
    let addr = d.address_of("maybe", "tcp");
    let mut stuck = d.connect_to(&addr);
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stuck.write_all(b"hang\n").unwrap();
    let stuck_port = stuck.local_addr().unwrap().port();
    // Others are served meanwhile.
    let mut other = d.connect_to(&addr);
    other.write_all(b"hello\n").unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "hello\n");
    // The stuck one is closed after the timeout, and the log says why.
    let mut rest = Vec::new();
    let _ = stuck.read_to_end(&mut rest);
    assert!(
        d.wait_for_log("W0020", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    let line = d
        .stderr()
        .lines()
        .find(|l| l.contains("W0020"))
        .unwrap()
        .to_string();
    assert!(
        line.contains(&format!("127.0.0.1:{stuck_port}")),
        "no client in {line:?}"
    );
    assert!(
        line.contains("busy for 1.") && line.contains("blocked in"),
        "{line:?}"
    );
    // The pool is whole again and serves.
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 2),
        "{}",
        d.report()
    );
    let mut again = d.connect_to(&addr);
    again.write_all(b"again\n").unwrap();
    let mut answer = String::new();
    again.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "again\n");
}

#[test]
fn a_builtin_closes_a_connection_idle_past_the_timeout() {
    let dir = TempDir::new("idle");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\ntimeout = \"500ms\"\n",
    );
    let mut c = d.connect_to(&d.address_of("e", "tcp"));
    assert_eq!(
        echo_once(&mut c, "still talking\n").unwrap(),
        "still talking\n"
    );
    let start = Instant::now();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    let waited = start.elapsed();
    assert!(rest.is_empty());
    assert!(
        waited >= Duration::from_millis(400),
        "closed after {waited:?}, before the timeout"
    );
    // The single worker is free again.
    let mut c = d.connect_to(&d.address_of("e", "tcp"));
    assert_eq!(echo_once(&mut c, "next\n").unwrap(), "next\n");
}

/// Connections per second of `clients` echo clients over `secs`; each
/// connection must be answered within 5 s (a starved pool fails it).
fn echo_rate(addr: std::net::SocketAddr, clients: usize, secs: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                        .unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    echo_once(&mut c, "0123456789abcde\n")
                        .unwrap_or_else(|e| panic!("connection {n} of a client: {e}"));
                    n += 1;
                }
                n
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum::<u64>() as f64 / secs
}

// Issue #4, acceptance 7.
#[test]
fn held_idle_connections_do_not_starve_the_default_pool() {
    let dir = TempDir::new("held");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\n",
    );
    let addr: std::net::SocketAddr = d.address_of("e", "tcp").parse().unwrap();
    let without_1 = echo_rate(addr, 8, 1.0);
    let held: Vec<_> = (0..100).map(|_| d.connect_to(&addr.to_string())).collect();
    // Wait until the pool has grown past the held connections.
    assert!(
        wait_until(Duration::from_secs(10), || d.workers().len() > 100),
        "{}",
        d.report()
    );
    let with_1 = echo_rate(addr, 8, 1.0);
    drop(held);
    let without_2 = echo_rate(addr, 8, 1.0);
    let held: Vec<_> = (0..100).map(|_| d.connect_to(&addr.to_string())).collect();
    assert!(
        wait_until(Duration::from_secs(10), || d.workers().len() > 100),
        "{}",
        d.report()
    );
    let with_2 = echo_rate(addr, 8, 1.0);
    drop(held);
    // Every connection made while 100 were held was answered (echo_rate
    // fails one that waits 5 s). The rate itself is printed for a reader,
    // not asserted: on a shared 2-core machine it varies by more than the
    // held connections cost (0.66x to 1.0x seen); bench/ measures speed.
    assert!(with_1 > 0.0 && with_2 > 0.0, "no connection was served");
    eprintln!(
        "8 echo clients: {:.0} conn/s alone, {:.0} conn/s with 100 idle connections held: {:.2}x",
        (without_1 + without_2) / 2.0,
        (with_1 + with_2) / 2.0,
        (with_1 + with_2) / (without_1 + without_2)
    );
}

fn voluntary_switches(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

// Issue #4, acceptance 8.
#[test]
fn no_thundering_herd_one_wake_up_per_connection() {
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "64", "--builtin", "echo"]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let w = d.workers();
            w.len() == 64 && w.iter().all(|&p| in_accept(p))
        }),
        "{}",
        d.report()
    );
    let workers = d.workers();
    let before = voluntary_switches(&workers);
    for _ in 0..10_000 {
        let mut c = d.connect();
        c.write_all(b"x").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut b = Vec::new();
        c.read_to_end(&mut b).unwrap();
    }
    let after = voluntary_switches(&workers);
    let per_connection = (after - before) as f64 / 10_000.0;
    eprintln!("64 idle workers, 10000 sequential connections: {per_connection:.2} voluntary context switches per connection");
    // One wake-up from accept, and the blocking reads of the session; a
    // herd would wake all 64.
    assert!(
        per_connection < 4.0,
        "{per_connection:.2} wake-ups per connection"
    );
}

#[test]
fn run_takes_the_same_knobs_as_the_config_file() {
    // An adaptive pool from the command line, a per_source limit and UDP.
    let d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--min-spare",
        "2",
        "--max-spare",
        "3",
        "--max-workers",
        "8",
        "--per-source",
        "1",
        "--timeout",
        "5s",
        "--builtin",
        "echo",
    ]);
    let mut first = d.connect();
    assert_eq!(echo_once(&mut first, "one\n").unwrap(), "one\n");
    // Spares are forked to keep 2 idle beside the busy one.
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() >= 3),
        "{}",
        d.report()
    );
    // A second connection from the same address is refused.
    let mut second = d.connect();
    let mut buf = [0u8; 1];
    assert!(
        matches!(second.read(&mut buf), Ok(0) | Err(_)),
        "per_source was not applied\n{}",
        d.report()
    );

    let u = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--udp",
        "--workers",
        "1",
        "--builtin",
        "echo",
    ]);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    client.send_to(b"over udp", u.addr()).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"over udp");
}

#[test]
fn at_max_connections_wait_in_the_queue_and_the_log_says_so() {
    let dir = TempDir::new("at-max");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = { start = 1, min_spare = 1, max_spare = 2, max = 2 }\n",
    );
    let addr = d.address_of("e", "tcp");
    let mut held: Vec<_> = (0..2).map(|_| d.connect_to(&addr)).collect();
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(echo_once(c, &format!("{i}\n")).unwrap(), format!("{i}\n"));
    }
    assert!(
        d.wait_for_log("M0015", Duration::from_secs(5)),
        "{}",
        d.report()
    );
    assert_eq!(
        d.workers().len(),
        2,
        "the pool went past max\n{}",
        d.report()
    );
    // A third client waits in the listen queue, and is served once a
    // worker is free.
    let mut third = d.connect_to(&addr);
    third.write_all(b"queued\n").unwrap();
    drop(held.pop());
    let mut back = [0u8; 7];
    third.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"queued\n");
}
