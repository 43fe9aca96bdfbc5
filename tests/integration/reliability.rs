//! What the daemon survives (issue #8): workers killed under load, a
//! stopped worker, a slowloris flood, and 100,000 connections with 50
//! reloads, after which no descriptor and no memory is left over. Each test
//! prints its figures (`cargo test -- --nocapture reliability`);
//! docs/reliability.md collects them.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::util::*;

/// A small xorshift generator: which worker to kill next.
struct Dice(u64);

impl Dice {
    fn pick(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn a_worker_killed_every_50_ms_under_load_loses_only_the_connections_it_held() {
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "4", "--builtin", "echo"]);
    let load = Load::start(vec![d.listening().to_string()], 32);
    assert!(load.progress(100), "{}", d.report());
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ u64::from(d.pid()));
    let mut kills = 0;
    let mut busy_kills = 0;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let workers = d.workers();
        if !workers.is_empty() {
            let victim = workers[dice.pick(workers.len())];
            // In accept it holds no connection; anywhere else it may.
            if wchan(victim).is_none_or(|w| !w.contains("accept")) {
                busy_kills += 1;
            }
            kill(victim, libc::SIGKILL);
            kills += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (served, failures) = load.finish();
    let refused: Vec<&String> = failures.iter().filter(|f| f.contains("refused")).collect();
    eprintln!(
        "chaos: {kills} workers killed ({busy_kills} not in accept), {served} connections served, {} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(refused.is_empty(), "connections refused: {refused:?}");
    // A killed worker held one connection at most.
    assert!(
        failures.len() <= kills,
        "{} failures for {kills} kills: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        served > 1000,
        "only {served} connections served\n{}",
        d.report()
    );
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 4),
        "the pool did not come back to 4\n{}",
        d.report()
    );
    // Workers that had served do not count as dying young: only a kill
    // that lands before a fresh worker's first connection may, and those
    // are few, so the pool never slows down for long.
    let young = d.stderr().matches("W0002").count();
    eprintln!("chaos: {young} of the {kills} kills counted as young deaths");
    assert!(young * 10 <= kills, "{young} young deaths\n{}", d.report());
}

#[test]
fn a_stopped_worker_is_killed_after_the_timeout_and_its_slot_reused() {
    let dir = TempDir::new("sigstop");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 2\ntimeout = \"1s\"\n",
    );
    let addr = d.address_of("e", "tcp");
    // Both in accept first: a worker still starting is not in accept
    // either, and would be taken for the busy one below.
    assert!(wait_until(Duration::from_secs(5), || {
        let workers = d.workers();
        workers.len() == 2 && workers.iter().all(|&w| in_accept(w))
    }));
    let before = d.workers();
    // A client that is being served: its worker is busy with it.
    let mut held = d.connect_to(&addr);
    assert_eq!(echo_once(&mut held, "hello\n").unwrap(), "hello\n");
    let victim = *before
        .iter()
        .find(|&&w| wchan(w).is_some_and(|c| !c.contains("accept")))
        .unwrap_or_else(|| panic!("no busy worker\n{}", d.report()));
    kill(victim, libc::SIGSTOP);
    let stopped = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || is_gone(victim)),
        "the stopped worker is still there\n{}",
        d.report()
    );
    eprintln!(
        "sigstop: worker killed {:?} after SIGSTOP",
        stopped.elapsed()
    );
    // The log lines were written before the kill; our reader may lag.
    for line in [
        format!("W0020 service e: worker {victim} busy"),
        format!("W0021 service e: worker {victim} did not stop"),
    ] {
        assert!(
            d.wait_for_log(&line, Duration::from_secs(5)),
            "{line}\n{}",
            d.report()
        );
    }
    // Its client sees the end, and a new worker takes the place.
    let mut buf = [0u8; 16];
    assert!(matches!(held.read(&mut buf), Ok(0) | Err(_)));
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 2),
        "{}",
        d.report()
    );
    let status = run_to_exit(&[
        "status",
        "-c",
        dir.path().join("preforkd.toml").to_str().unwrap(),
    ]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(!status.contains(&victim.to_string()), "{status}");
    for _ in 0..10 {
        let mut c = d.connect_to(&addr);
        assert_eq!(echo_once(&mut c, "again\n").unwrap(), "again\n");
    }
}

#[test]
fn slowloris_from_one_address_does_not_starve_the_others() {
    allow_descriptors(2500);
    let dir = TempDir::new("slowloris");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"e\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\n\
         workers = { start = 4, max = 64 }\nper_source = 10\ntimeout = \"2s\"\nbacklog = 4096\n",
    );
    let addr: SocketAddr = d.address_of("e", "tcp").parse().unwrap();
    // 2000 connections that never send a byte, from 127.0.0.1.
    let flood: Vec<TcpStream> = (0..2000)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}\n{}", d.report()))
        })
        .collect();
    // Meanwhile, 400 clients from 127.0.0.2 to 127.0.0.9, one at a time.
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for i in 0..400 {
        let from = format!("127.0.0.{}", 2 + i % 8);
        let began = Instant::now();
        let result = try_connect_from(&from, addr).and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(10)))?;
            echo_once(&mut c, "ping\n")
        });
        match result {
            Ok(back) if back == "ping\n" => latencies.push(began.elapsed()),
            other => failures.push(format!("{from}: {other:?}")),
        }
    }
    latencies.sort();
    let p = |q: f64| latencies[((q * latencies.len() as f64) as usize).min(latencies.len() - 1)];
    eprintln!(
        "slowloris: 2000 idle connections from 127.0.0.1; 400 others served, p50 {:?}, p99 {:?}, max {:?}; {} failed",
        p(0.5),
        p(0.99),
        latencies.last().unwrap(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}\n{}", d.report());
    // Every idle connection is closed: refused at once by per_source, or
    // closed by the timeout.
    let mut open = flood;
    for c in &open {
        c.set_nonblocking(true).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !open.is_empty() && Instant::now() < deadline {
        open.retain(|c| {
            let mut buf = [0u8; 1];
            matches!((&*c).read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        open.is_empty(),
        "{} idle connections still open after 20 s\n{}",
        open.len(),
        d.report()
    );
    let workers = d.workers().len();
    assert!(workers <= 64, "{workers} workers");
}

/// Descriptors of the master and of each worker, by pid.
fn descriptors(d: &Daemon) -> Vec<(u32, usize)> {
    let mut all = vec![(d.pid(), open_descriptors(d.pid()))];
    all.extend(d.workers().into_iter().map(|w| (w, open_descriptors(w))));
    all
}

#[test]
fn a_hundred_thousand_connections_and_fifty_reloads_leave_no_descriptor_and_no_memory() {
    let dir = TempDir::new("leaks");
    let script = dir.script("report.sh", REPORT_SCRIPT);
    let config = format!(
        "[daemon]\ngraceful_timeout = \"5s\"\n\n\
         [[service]]\nname = \"echo\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 2\n\n\
         [[service]]\nname = \"cat\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"/bin/cat\"]\nworkers = 2\n\n\
         [[service]]\nname = \"report\"\nlisten = [\"127.0.0.1:0\"]\nexec = [\"{}\"]\nworkers = 1\n",
        script.display()
    );
    let d = Daemon::serve(&dir, &config);
    let echo = d.address_of("echo", "tcp");
    let cat = d.address_of("cat", "tcp");
    let report = d.address_of("report", "tcp");
    // Counted once every worker is in accept: one still starting holds
    // the descriptors it closes before its first accept.
    assert!(wait_until(Duration::from_secs(5), || {
        let workers = d.workers();
        workers.len() == 5 && workers.iter().all(|&w| in_accept(w))
    }));
    let at_start = descriptors(&d);
    let rss_at_start = resident_kib(d.pid());

    // 80,000 connections to the builtin and 20,000 to the program, at
    // once, each from its own load generator, while the master reloads
    // its (unchanged) config 50 times.
    let (builtin, exec) = std::thread::scope(|s| {
        let builtin = s.spawn(|| {
            load(
                &echo,
                &["--clients", "8", "--connections", "80000", "--bytes", "64"],
            )
        });
        let exec = s.spawn(|| {
            load(
                &cat,
                &["--clients", "4", "--connections", "20000", "--bytes", "64"],
            )
        });
        for generation in 2..=51 {
            d.signal(libc::SIGHUP);
            let line = format!("reloaded: generation {generation}:");
            assert!(
                d.wait_for_log(&line, Duration::from_secs(10)),
                "{}",
                d.report()
            );
        }
        (builtin.join().unwrap(), exec.join().unwrap())
    });
    eprintln!("leaks: builtin {builtin}\nleaks: exec {exec}");
    assert_eq!(builtin["connections"], 80000, "{builtin}");
    assert_eq!(exec["connections"], 20000, "{exec}");

    // The same workers, with as many descriptors as at the start; the
    // master too.
    let at_end = descriptors(&d);
    eprintln!("leaks: descriptors at start {at_start:?}, at the end {at_end:?}");
    assert_eq!(at_end, at_start, "{}", d.report());
    let rss_at_end = resident_kib(d.pid());
    eprintln!("leaks: master RSS {rss_at_start} KiB at start, {rss_at_end} KiB at the end");
    assert!(
        rss_at_end <= rss_at_start + 1024,
        "the master grew from {rss_at_start} to {rss_at_end} KiB"
    );
    // And a program still sees its connection and nothing else.
    let mut c = d.connect_to(&report);
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let (_, fds) = parse_report(&out);
    check_fds(&fds, &format!("{out}\n{}", d.report()));
}
