//! The serving models of `--model` (issue #6): each serves the echo builtin
//! and /bin/cat correctly to 64 concurrent clients; `event` holds 1000 idle
//! connections in one thread. `compare`, which runs them all, is tested
//! in `compare`.

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
