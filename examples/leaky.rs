//! A handler that leaks 1 MiB per connection, kept in check by
//! `max_memory`: each worker is retired once its memory passes the limit,
//! after the connection in hand, and a fresh one takes its place.
//!
//! ```text
//! cargo run --example leaky -- 127.0.0.1:8080 2 16M
//! ```

use std::cell::RefCell;
use std::io::Write;

use preforkd::{Connection, Server};

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(2);
    let limit = args
        .next()
        .and_then(|s| preforkd::config::size::parse_size(&s).ok())
        .unwrap_or(16 << 20);
    preforkd::log::init_stderr(log::LevelFilter::Info);

    let leaked: RefCell<Vec<Vec<u8>>> = RefCell::new(Vec::new());
    let result = Server::bind(&addr)
        .map(|s| s.workers(workers).max_memory(limit).name("leaky"))
        .and_then(|server| {
            server.serve(|mut conn: Connection| {
                // A megabyte that is never freed, touched so it is resident.
                leaked.borrow_mut().push(vec![1u8; 1 << 20]);
                writeln!(conn, "{} {}", std::process::id(), leaked.borrow().len())
            })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leaky: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
