//! Supervision: workers killed, workers that keep dying, a master killed.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

/// The worker that holds the server end of `c`.
fn holder(d: &Daemon, c: &std::net::TcpStream) -> u32 {
    let inode = server_socket_inode(d.port(), c.local_addr().unwrap().port()).unwrap();
    socket_owners(inode, &d.workers())[0]
}

// Issue #2, acceptance 4 (worker part).
#[test]
fn a_killed_worker_is_replaced_in_accept_quickly_and_other_clients_see_nothing() {
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "4", "--builtin", "echo"]);
    assert!(wait_until(Duration::from_secs(5), || {
        let w = d.workers();
        w.len() == 4 && w.iter().all(|&p| in_accept(p))
    }));
    // Two clients in the middle of a session, on two workers.
    let mut held: Vec<_> = (0..2).map(|_| d.connect()).collect();
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(
            echo_once(c, &format!("held {i}\n")).unwrap(),
            format!("held {i}\n")
        );
    }
    let busy: BTreeSet<u32> = held.iter().map(|c| holder(&d, c)).collect();

    // Kill an idle worker three times; record how long until the pool has
    // a replacement blocked in accept.
    let mut delays = Vec::new();
    for _ in 0..3 {
        let workers = d.workers();
        let victim = *workers.iter().find(|p| !busy.contains(p)).unwrap();
        let start = Instant::now();
        kill(victim, libc::SIGKILL);
        let replaced = wait_until(Duration::from_secs(2), || {
            let now = d.workers();
            now.len() == 4
                && !now.contains(&victim)
                && now.iter().all(|&p| busy.contains(&p) || in_accept(p))
        });
        assert!(replaced, "no replacement for {victim}\n{}", d.report());
        delays.push(start.elapsed());
    }
    eprintln!("replacement in accept after: {delays:?}");
    assert!(
        delays.iter().any(|d| *d <= Duration::from_millis(50)),
        "no replacement was in accept within 50 ms: {delays:?}"
    );
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(
            echo_once(c, &format!("still {i}\n")).unwrap(),
            format!("still {i}\n")
        );
    }
    for i in 0..20 {
        let mut c = d.connect();
        assert_eq!(
            echo_once(&mut c, &format!("new {i}\n")).unwrap(),
            format!("new {i}\n")
        );
    }
}

// Issue #2, acceptance 4 (master part).
#[test]
fn workers_die_with_a_killed_master() {
    let mut d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "4", "--builtin", "echo"]);
    let workers = d.workers();
    assert_eq!(workers.len(), 4, "{}", d.report());
    // One of them busy with a client.
    let mut c = d.connect();
    echo_once(&mut c, "hi\n").unwrap();
    d.signal(libc::SIGKILL);
    let start = Instant::now();
    d.wait_exit_within(Duration::from_secs(5))
        .expect("master survived SIGKILL");
    let gone = wait_until(Duration::from_secs(1), || {
        workers.iter().all(|&p| is_gone(p))
    });
    assert!(
        gone,
        "workers alive {:?} after master died",
        workers.iter().filter(|&&p| !is_gone(p)).collect::<Vec<_>>()
    );
    eprintln!(
        "all workers gone {:?} after the master's SIGKILL",
        start.elapsed()
    );
}

// Issue #2, acceptance 5.
#[test]
fn workers_that_keep_dying_young_slow_the_master_down_and_serving_resumes() {
    let d = Daemon::start(&["run", "127.0.0.1:0", "--workers", "2", "--builtin", "echo"]);
    let master = d.pid();
    let killed = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // Something kills every worker as soon as it appears (think OOM killer,
    // or a broken setup), for 4 seconds.
    let killer = {
        let (killed, stop) = (Arc::clone(&killed), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for pid in children_of(master) {
                    kill(pid, libc::SIGKILL);
                    killed.lock().unwrap().insert(pid);
                }
                thread::sleep(Duration::from_micros(200));
            }
        })
    };
    thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    let forks = killed.lock().unwrap().len();
    eprintln!("workers forked (and killed) in 4 s: {forks}");
    assert!(!is_gone(master), "the master died\n{}", d.report());
    // With the back-off (0, 10, 20, ... 640 ms, then 1 s), 4 s allow about
    // 12 forks; without it, thousands.
    assert!(
        forks <= 25,
        "{forks} forks in 4 s: no back-off\n{}",
        d.report()
    );
    assert!(forks >= 3, "only {forks} workers appeared\n{}", d.report());
    assert!(
        d.stderr().contains("died young"),
        "no back-off log\n{}",
        d.report()
    );
    assert!(d.stderr().contains("next fork in"), "{}", d.report());

    // The cause is gone: serving resumes on its own.
    let served = wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect_timeout(&d.addr(), Duration::from_secs(1)).is_ok_and(
            |mut c| {
                c.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                echo_once(&mut c, "back\n").is_ok_and(|s| s == "back\n")
            },
        )
    });
    assert!(served, "serving did not resume\n{}", d.report());
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 2),
        "pool not back to 2\n{}",
        d.report()
    );
    let mut c = d.connect();
    c.write_all(b"x\n").unwrap();
    let mut b = [0u8; 2];
    c.read_exact(&mut b).unwrap();
}
