//! SIGHUP under load: services that stay lose nothing.

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
        if broken {
            // Workers the reload before replaced may still be finishing:
            // wait for them to go, so that `before` is the set the broken
            // reload must keep.
            wait_until(Duration::from_secs(10), || {
                d.workers().len() == expected_workers
            });
        }
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
    let served = load.finish_without_failures(|| d.report());
    eprintln!("served {served} connections during 20 reloads");
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
