//! A pre-fork server with its own handler, in a dozen lines.
//!
//! ```text
//! cargo run --example hello -- 127.0.0.1:8080 4
//! ```
//!
//! Each connection gets one line naming the worker that served it and how
//! many connections that worker has served: state kept in a worker lives as
//! long as the worker does. SIGTERM stops it gracefully, SIGINT at once.

use std::cell::Cell;
use std::io::Write;

use preforkd::{Connection, Server};

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(4);
    preforkd::log::init_stderr(log::LevelFilter::Info);

    // Copied into every worker by fork: each worker counts its own.
    let served = Cell::new(0u64);
    let result = Server::bind(&addr)
        .map(|s| s.workers(workers).name("hello"))
        .and_then(|server| {
            server.serve(|mut conn: Connection| {
                served.set(served.get() + 1);
                writeln!(
                    conn,
                    "hello from worker {}, connection {}",
                    std::process::id(),
                    served.get()
                )
            })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
