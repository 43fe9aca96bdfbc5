//! The builder's pool knobs, each from a flag: the program the tests of
//! the knobs run.
//!
//! ```text
//! cargo run --example knobs -- 127.0.0.1:8080 --workers 2 --timeout 1 \
//!     --max-requests 3 --only-from 10.0.0.0/8 --second 127.0.0.1:8081 \
//!     --udp 127.0.0.1:8082 --only-from 127.0.0.0/8
//! ```
//!
//! Each connection sends one line and gets `NAME PID LINE` back, NAME
//! being `first` or `second` (the listener of `--second`, its own pool of
//! one worker with its own handler). `--udp ADDR` adds a UDP listener
//! named `udp`, whose datagram handler answers each datagram with `udp
//! PID DATA`. The knobs set the pool of the listener added last: the
//! first one's, or after `--udp` the UDP one's.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use preforkd::{Connection, Datagram, Error, Server};

/// Reads one line and answers `name pid line`.
fn answer(name: &'static str) -> impl Fn(Connection) -> std::io::Result<()> {
    move |conn| {
        let mut conn = BufReader::new(conn);
        let mut line = String::new();
        conn.read_line(&mut line)?;
        writeln!(
            conn.get_mut(),
            "{name} {} {}",
            std::process::id(),
            line.trim()
        )
    }
}

/// Answers a datagram with `udp pid data`.
fn answer_datagram(datagram: Datagram<'_>) -> std::io::Result<()> {
    let data = String::from_utf8_lossy(datagram.data());
    let reply = format!("udp {} {}", std::process::id(), data.trim());
    datagram.reply(reply.as_bytes()).map(|_| ())
}

fn build(mut args: impl Iterator<Item = String>) -> Result<Server, Error> {
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let mut server = Server::bind(&addr)?.workers(1);
    let mut second = None;
    let bad = |flag: &str| Error::Usage(format!("{flag}: expected a value"));
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| bad(&flag))?;
        let number = || value.parse::<u64>().map_err(|_| bad(&flag));
        server = match flag.as_str() {
            "--workers" => server.workers(number()? as usize),
            "--timeout" => server.timeout(Duration::from_secs(number()?)),
            "--max-requests" => server.max_requests(number()?, 0),
            "--only-from" => server.only_from(&[value.as_str()])?,
            "--no-access" => server.no_access(&[value.as_str()])?,
            "--per-source" => server.per_source(number()? as u32),
            "--rate" => server.rate(&value)?,
            "--udp" => server
                .listen_udp(&value, answer_datagram)?
                .name("udp")
                .workers(1),
            "--second" => {
                second = Some(value);
                server
            }
            other => return Err(Error::Usage(format!("unknown flag {other}"))),
        };
    }
    if let Some(addr) = second {
        server = server
            .listen(&addr, answer("second"))?
            .name("second")
            .workers(1);
    }
    Ok(server)
}

fn main() -> std::process::ExitCode {
    preforkd::log::init_stderr(log::LevelFilter::Info);
    let result = build(std::env::args().skip(1)).and_then(|s| s.serve(answer("first")));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("knobs: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
