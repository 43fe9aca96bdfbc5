//! SIGHUP under load: services that stay lose nothing.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::util::*;

fn config(
    changing_workers: usize,
    changing_exec: bool,
    with_added: bool,
    with_leaving: bool,
) -> String {
    let mut c = String::from(
        "[daemon]\ngraceful_timeout = \"5s\"\n\n\
         [[service]]\nname = \"stay\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 2\n\n",
    );
    c += &format!("[[service]]\nname = \"changing\"\nlisten = [\"127.0.0.1:0\"]\nworkers = {changing_workers}\n");
    c += if changing_exec {
        "exec = [\"/bin/cat\"]\n\n"
    } else {
        "builtin = \"echo\"\n\n"
    };
    if with_leaving {
        c += "[[service]]\nname = \"leaving\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"discard\"\nworkers = 1\n\n";
    }
    if with_added {
        c += "[[service]]\nname = \"added\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n\n";
    }
    c
}

/// Clients that loop connect / line / echo / close and count failures.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(targets: Vec<String>, clients: usize) -> Load {
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
    pub(crate) fn progress(&self, n: usize) -> bool {
        let target = self.served.load(Ordering::SeqCst) + n;
        wait_until(Duration::from_secs(10), || {
            self.served.load(Ordering::SeqCst) >= target
        })
    }

    pub(crate) fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.served.load(Ordering::SeqCst),
            self.failures.lock().unwrap().clone(),
        )
    }
}

// Issue #3, acceptance 6.
#[test]
fn twenty_reloads_under_load_lose_no_connection() {
    let dir = TempDir::new("reload");
    let path = dir.path().join("preforkd.toml");
    let d = Daemon::serve(&dir, &config(2, false, false, true));
    let stay = d.address_of("stay", "tcp");
    let changing = d.address_of("changing", "tcp");
    let leaving = d.address_of("leaving", "tcp");
    let load = Load::start(vec![stay.clone(), changing.clone()], 32);

    let mut generation = 1;
    let mut expected_workers = 2 + 2 + 1;
    for i in 1..=20 {
        let broken = i == 15;
        let with_added = i >= 5;
        let with_leaving = i < 10;
        let workers = 1 + i % 4;
        let exec = i % 3 == 0;
        let text = if broken {
            "[[service]]\nname = \"stay\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"ech0\"\n"
                .to_string()
        } else {
            config(workers, exec, with_added, with_leaving)
        };
        std::fs::write(&path, with_control(&dir, &text)).unwrap();
        let before = d.workers();
        d.signal(libc::SIGHUP);
        if broken {
            assert!(
                d.wait_for_log("M0010 reload refused", Duration::from_secs(10)),
                "{}",
                d.report()
            );
            // Nothing changed: the same workers go on serving.
            assert!(
                load.progress(50),
                "no progress after the broken reload\n{}",
                d.report()
            );
            assert_eq!(
                set(&d.workers()),
                set(&before),
                "the broken reload changed the workers"
            );
            continue;
        }
        generation += 1;
        let done = format!("reloaded: generation {generation}:");
        assert!(
            d.wait_for_log(&done, Duration::from_secs(10)),
            "reload {i} did not finish\n{}",
            d.report()
        );
        expected_workers = 2 + workers + usize::from(with_added) + usize::from(with_leaving);
        // The load goes on between reloads.
        assert!(
            load.progress(50),
            "no progress after reload {i}\n{}",
            d.report()
        );
        if i == 5 {
            let mut c = d.connect_to(&d.address_of("added", "tcp"));
            assert_eq!(echo_once(&mut c, "new service\n").unwrap(), "new service\n");
        }
        if i == 10 {
            let refused = wait_until(Duration::from_secs(5), || {
                std::net::TcpStream::connect_timeout(
                    &leaving.parse().unwrap(),
                    Duration::from_secs(1),
                )
                .is_err()
            });
            assert!(refused, "the removed service still accepts\n{}", d.report());
        }
    }
    assert!(load.progress(200), "{}", d.report());
    let (served, failures) = load.finish();
    eprintln!("served {served} connections during 20 reloads");
    assert!(
        failures.is_empty(),
        "{} failed connections: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        d.report()
    );
    assert!(served > 100, "only {served} connections served");
    // No worker of a replaced generation is left: the count is what the
    // final configuration asks for.
    let settled = wait_until(Duration::from_secs(10), || {
        d.workers().len() == expected_workers
    });
    assert!(
        settled,
        "expected {expected_workers} workers, have {}\n{}",
        d.workers().len(),
        d.report()
    );
    let mut c = d.connect_to(&d.address_of("added", "tcp"));
    assert_eq!(echo_once(&mut c, "after\n").unwrap(), "after\n");
}
