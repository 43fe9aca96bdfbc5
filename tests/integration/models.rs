//! The serving models of `--model` (issue #6): each serves the echo builtin
//! and /bin/cat correctly to 64 concurrent clients; `event` holds 1000 idle
//! connections in one thread; `compare` fills every column with real
//! figures.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::util::*;

const CLIENTS: usize = 64;

/// 64 clients connect, wait for each other, then each sends its own data
/// (a few kilobytes, so it takes more than one read), closes its side, and
/// must get exactly its data back; three rounds.
fn sixty_four_clients_get_their_bytes_back(addr: SocketAddr) -> Result<(), String> {
    for round in 0..3 {
        let start = Arc::new(Barrier::new(CLIENTS));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let start = Arc::clone(&start);
                std::thread::spawn(move || -> Result<(), String> {
                    let mut c = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
                    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    start.wait();
                    let data: Vec<u8> = format!("client {i} round {round} ")
                        .bytes()
                        .cycle()
                        .take(4000 + i * 37)
                        .collect();
                    c.write_all(&data).map_err(|e| format!("write: {e}"))?;
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut back = Vec::new();
                    c.read_to_end(&mut back).map_err(|e| format!("read: {e}"))?;
                    if back != data {
                        return Err(format!(
                            "client {i}: {} bytes back of {}",
                            back.len(),
                            data.len()
                        ));
                    }
                    Ok(())
                })
            })
            .collect();
        for c in clients {
            c.join().map_err(|_| "a client panicked".to_string())??;
        }
    }
    Ok(())
}

fn serves_echo_and_cat(model: &str) {
    for handler in [&["--builtin", "echo"][..], &["--", "/bin/cat"][..]] {
        let mut args = vec!["run", "127.0.0.1:0", "--model", model, "--workers", "4"];
        args.extend_from_slice(handler);
        let mut d = Daemon::start(&args);
        if let Err(e) = sixty_four_clients_get_their_bytes_back(d.addr()) {
            panic!("{model} {handler:?}: {e}\n{}", d.report());
        }
        d.stop_gracefully();
    }
}

/// SIGTERM with a connection in the middle of an exchange: it is served
/// to its end, and the daemon then exits 0, well before its graceful
/// timeout. With `--timeout 1s`, an idle connection is closed by that
/// timeout during the drain (nothing restarts it), and again the daemon
/// exits 0 without killing anyone.
fn stops_gracefully_with_a_connection_in_flight(model: &str) {
    let args = [
        "run",
        "127.0.0.1:0",
        "--model",
        model,
        "--workers",
        "2",
        "--graceful-timeout",
        "20s",
        "--timeout",
        "1s",
        "--builtin",
        "echo",
    ];
    let mut d = Daemon::start(&args);
    let mut busy = d.connect();
    assert_eq!(echo_once(&mut busy, "before\n").unwrap(), "before\n");
    d.signal(libc::SIGTERM);
    // Served to its end, across the stop.
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        let line = format!("during {i}\n");
        assert_eq!(
            echo_once(&mut busy, &line).unwrap_or_else(|e| panic!("{model}: {e}\n{}", d.report())),
            line
        );
    }
    busy.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    busy.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let status = d.wait_exit_within(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{model}\n{}",
        d.report()
    );
    assert!(
        !d.stderr().contains("M0008"),
        "{model}: workers were killed\n{}",
        d.report()
    );

    // An idle connection during the drain: closed by the timeout.
    let mut d = Daemon::start(&args);
    let mut idle = d.connect();
    assert_eq!(echo_once(&mut idle, "hello\n").unwrap(), "hello\n");
    let stopped = std::time::Instant::now();
    d.signal(libc::SIGTERM);
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)), "{model}");
    let status = d.wait_exit_within(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{model}\n{}",
        d.report()
    );
    eprintln!(
        "{model}: an idle connection closed {:?} after SIGTERM",
        stopped.elapsed()
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "{model}: the idle connection lasted the graceful timeout\n{}",
        d.report()
    );
}

macro_rules! model_tests {
    ($($serves:ident, $stops:ident: $model:literal,)*) => {$(
        #[test]
        fn $serves() {
            serves_echo_and_cat($model);
        }

        #[test]
        fn $stops() {
            stops_gracefully_with_a_connection_in_flight($model);
        }
    )*};
}

model_tests! {
    iterative_serves_64_clients, iterative_stops_gracefully: "iterative",
    fork_serves_64_clients, fork_stops_gracefully: "fork",
    prefork_serves_64_clients, prefork_stops_gracefully: "prefork",
    prefork_lock_serves_64_clients, prefork_lock_stops_gracefully: "prefork-lock",
    prefork_pass_serves_64_clients, prefork_pass_stops_gracefully: "prefork-pass",
    threads_serves_64_clients, threads_stops_gracefully: "threads",
    pool_serves_64_clients, pool_stops_gracefully: "pool",
    pool_pass_serves_64_clients, pool_pass_stops_gracefully: "pool-pass",
    event_serves_64_clients, event_stops_gracefully: "event",
    reuseport_serves_64_clients, reuseport_stops_gracefully: "reuseport",
}

fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn event_holds_1000_idle_connections_in_one_thread_and_still_serves() {
    allow_descriptors(1200);
    let d = Daemon::start(&[
        "run",
        "127.0.0.1:0",
        "--model",
        "event",
        "--builtin",
        "echo",
    ]);
    let runner = d.workers();
    assert_eq!(runner.len(), 1, "{}", d.report());
    // The loop is running, its buffers made, before memory is measured.
    let mut first = d.connect();
    assert_eq!(echo_once(&mut first, "first\n").unwrap(), "first\n");
    let resident_before = resident_kib(runner[0]);
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|i| {
            TcpStream::connect(d.addr())
                .unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", d.report()))
        })
        .collect();
    // Every one of them is accepted and held: the runner has 1000 more
    // descriptors open (the listener, stdio and a few of its own besides).
    let fds = open_descriptors;
    assert!(
        wait_until(Duration::from_secs(10), || fds(runner[0]) >= 1000),
        "the runner holds {} descriptors\n{}",
        fds(runner[0]),
        d.report()
    );
    // Each held connection costs the runner well under 2 KiB of its own
    // memory (its session; the socket's buffers are the kernel's).
    let grown = resident_kib(runner[0]).saturating_sub(resident_before);
    eprintln!("1000 idle connections: the runner grew by {grown} KiB");
    assert!(
        grown < 2000,
        "1000 idle connections cost the runner {grown} KiB\n{}",
        d.report()
    );
    // New clients are served meanwhile, one after another and at once.
    let mut fresh = d.connect();
    for i in 0..50 {
        let line = format!("fresh {i}\n");
        assert_eq!(echo_once(&mut fresh, &line).unwrap(), line);
    }
    if let Err(e) = sixty_four_clients_get_their_bytes_back(d.addr()) {
        panic!("{e}\n{}", d.report());
    }
    // The idle ones are alive too: the first and the last still echo.
    for c in [0, 999] {
        let line = format!("idle {c}\n");
        idle[c]
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(echo_once(&mut idle[c], &line).unwrap(), line);
    }
    assert_eq!(
        threads_of(runner[0]),
        1,
        "the event runner must have one thread"
    );
    drop(idle);
}

/// Runs `preforkd compare ARGS --json` and returns its rows.
fn compare(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["compare"];
    all.extend_from_slice(args);
    all.push("--json");
    // Ten servers started and stopped, on a machine that runs the other
    // tests meanwhile: minutes, not seconds, before calling it stuck.
    let out = run_command_within(
        std::process::Command::new(BIN).args(&all),
        Duration::from_secs(180),
    );
    assert!(
        out.status.success(),
        "compare failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

const MODELS: [&str; 10] = [
    "iterative",
    "fork",
    "prefork",
    "prefork-lock",
    "prefork-pass",
    "threads",
    "pool",
    "pool-pass",
    "event",
    "reuseport",
];

#[test]
fn compare_runs_every_model_fills_every_column_and_draws_one_series_per_model() {
    let dir = TempDir::new("compare");
    let chart = dir.path().join("models.svg");
    let started = std::time::Instant::now();
    let rows = compare(&[
        "--clients",
        "8",
        "--connections",
        "2000",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    eprintln!(
        "compare over {} models took {:?}",
        rows.len(),
        started.elapsed()
    );
    let names: Vec<&str> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(names, MODELS);
    for r in &rows {
        let model = r["model"].as_str().unwrap();
        assert_eq!(r["clients"], 8, "{r}");
        assert_eq!(r["connections"], 2000, "{model}: {r}");
        assert_eq!(r["failed"], 0, "{model}: {r}");
        for column in ["per_second", "p50_ms", "p99_ms", "pss_peak_mib"] {
            assert!(
                r[column].as_f64().unwrap() > 0.0,
                "{model}: {column} in {r}"
            );
        }
        for column in [
            "server_cpu_ms",
            "cpu_per_connection_us",
            "above_iterative_us",
        ] {
            assert!(r[column].as_f64().is_some(), "{model}: {column} in {r}");
        }
        assert!(r["processes"].as_u64().unwrap() >= 2, "{model}: {r}");
        assert!(r["threads"].as_u64().unwrap() >= 2, "{model}: {r}");
        // The spread adds up to the connections made.
        assert_eq!(r["spread"]["total"], 2000, "{model}: {r}");
        assert!(
            r["spread"]["workers"].as_u64().unwrap() >= 1,
            "{model}: {r}"
        );
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    for model in MODELS {
        assert_eq!(
            texts.iter().filter(|t| *t == model).count(),
            1,
            "one legend entry for {model}: {texts:?}"
        );
    }
    // One point per model at the one client count.
    let points = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert_eq!(points, MODELS.len());
}

#[test]
fn fork_spends_more_server_cpu_per_connection_than_prefork() {
    // The lesson of UNP chapter 30: fork(2) per connection costs far more
    // than a pool. 2000 connections, so the 10 ms ticks of the CPU clock
    // are small next to the difference.
    let rows = compare(&[
        "--models",
        "fork,prefork",
        "--clients",
        "4",
        "--connections",
        "2000",
    ]);
    let cpu = |model: &str| {
        rows.iter()
            .find(|r| r["model"] == model)
            .and_then(|r| r["cpu_per_connection_us"].as_f64())
            .unwrap()
    };
    eprintln!(
        "CPU per connection: fork {:.1} µs, prefork {:.1} µs",
        cpu("fork"),
        cpu("prefork")
    );
    assert!(cpu("fork") > cpu("prefork"), "{rows:?}");
    for r in &rows {
        assert_eq!(r["spread"]["total"], r["connections"], "{r}");
    }
}
