//! Every hook of the library, each writing `PID HOOK` to a file: the
//! program the tests of the hooks' order and of a failing after-fork hook
//! run.
//!
//! ```text
//! cargo run --example hooks -- 127.0.0.1:8080 3 /tmp/hooks.log
//! cargo run --example hooks -- 127.0.0.1:8080 1 /tmp/hooks.log /tmp/ready
//! ```
//!
//! Each connection gets the pid of the worker that serves it. With a
//! fourth argument, the after-fork hook fails (`after_fork_failed`) until
//! that file exists. On SIGHUP the reload hook reads `LOG.reload` if there
//! is one: `workers N` resizes the pool, `refuse REASON` refuses the
//! reload, and without the file the pool stays as it is.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use preforkd::config::Sizing;
use preforkd::{Connection, Server};

/// Appends `PID HOOK` to `log`, in one write(2) (O_APPEND: the workers'
/// lines never mix).
fn record(log: &Path, hook: &str) {
    let line = format!("{} {hook}\n", std::process::id());
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the hook log opens");
    file.write_all(line.as_bytes())
        .expect("the hook log takes a line");
}

/// What `LOG.reload` asks of the reload hook.
fn reload(log: &Path, reload: &mut preforkd::Reload<'_>) -> Result<(), String> {
    let mut asked = log.as_os_str().to_owned();
    asked.push(".reload");
    let Ok(text) = std::fs::read_to_string(PathBuf::from(asked)) else {
        return Ok(());
    };
    match text.trim().split_once(' ') {
        Some(("refuse", why)) => Err(why.to_string()),
        Some(("workers", n)) => {
            let n: usize = n
                .parse()
                .map_err(|_| format!("workers {n}: not a number"))?;
            for (_, settings) in reload.pools_mut() {
                settings.sizing = Sizing::Fixed(n);
            }
            Ok(())
        }
        _ => Err(format!("cannot read {text:?}")),
    }
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(2);
    let log = PathBuf::from(args.next().unwrap_or_else(|| "hooks.log".into()));
    let ready = args.next().map(PathBuf::from);
    preforkd::log::init_stderr(log::LevelFilter::Info);

    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    let result = Server::bind(&addr).and_then(|server| {
        server
            .workers(workers)
            .name("hooks")
            .before_first_fork(move || {
                record(&l1, "before_fork");
                Ok(())
            })
            .after_fork(move |_worker| match &ready {
                Some(file) if !file.exists() => {
                    record(&l2, "after_fork_failed");
                    Err(format!("{} does not exist yet", file.display()))
                }
                _ => {
                    record(&l2, "after_fork");
                    Ok(())
                }
            })
            .before_worker_exit(move |_worker, _exit| record(&l3, "exit"))
            .on_reload(move |r| {
                record(&l4, "reload");
                reload(&l4, r)
            })
            .serve(|mut conn: Connection| writeln!(conn, "{}", std::process::id()))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hooks: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
