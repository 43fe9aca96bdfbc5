//! Load on a daemon: [`Load`], client threads that loop connect, line,
//! echo, close while a test reloads, upgrades or kills; and [`load`],
//! the `preforkd load` generator run to its end for its figures.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::{run_command_within, wait_until, BIN};

/// Clients that loop connect / line / echo / close and count failures.
pub struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(targets: Vec<String>, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|i| {
                let target: std::net::SocketAddr = targets[i % targets.len()].parse().unwrap();
                let (stop, served, failures) = (
                    Arc::clone(&stop),
                    Arc::clone(&served),
                    Arc::clone(&failures),
                );
                thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let line = format!("client {i} request {n}\n");
                        let result = (|| -> std::io::Result<String> {
                            let mut c = std::net::TcpStream::connect_timeout(
                                &target,
                                Duration::from_secs(5),
                            )?;
                            c.set_read_timeout(Some(Duration::from_secs(10)))?;
                            c.write_all(line.as_bytes())?;
                            let mut back = vec![0u8; line.len()];
                            c.read_exact(&mut back)?;
                            Ok(String::from_utf8_lossy(&back).into_owned())
                        })();
                        match result {
                            Ok(back) if back == line => {
                                served.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(back) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{target}: got {back:?}")),
                            Err(e) => failures.lock().unwrap().push(format!("{target}: {e}")),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            served,
            failures,
            threads,
        }
    }

    /// Waits until `n` more connections have been served (10 s at most).
    pub fn progress(&self, n: usize) -> bool {
        let target = self.served.load(Ordering::SeqCst) + n;
        wait_until(Duration::from_secs(10), || {
            self.served.load(Ordering::SeqCst) >= target
        })
    }

    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.served.load(Ordering::SeqCst),
            self.failures.lock().unwrap().clone(),
        )
    }

    /// Stops the clients and returns how many connections they made; fails
    /// the test, with the first failures and `report` (the daemon's), if
    /// any connection failed.
    pub fn finish_without_failures(self, report: impl FnOnce() -> String) -> usize {
        let (served, failures) = self.finish();
        assert!(
            failures.is_empty(),
            "{} failed connections: {:?}\n{}",
            failures.len(),
            &failures[..failures.len().min(10)],
            report()
        );
        served
    }
}

/// Runs `preforkd load ADDR ARGS... --json` to the end and returns its
/// figures (connections, failed, per_second, p50_us, p99_us, ...).
pub fn load(addr: &str, args: &[&str]) -> serde_json::Value {
    let out = run_command_within(
        Command::new(BIN).args(["load", addr, "--json"]).args(args),
        Duration::from_secs(120),
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "load {addr} {args:?}: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
