//! A tiny HTTP/1.1 server that serves the files of a directory, one
//! request per connection (`Connection: close`), GET and HEAD only.
//!
//! ```text
//! cargo run --example http -- 127.0.0.1:8000 4 ./public /tmp/http.sock
//! curl -i http://127.0.0.1:8000/index.html
//! preforkd status --control /tmp/http.sock
//! ```
//!
//! A path that leaves the directory (`..`), or names no file, is 404.
//! The before-fork hook checks the directory once, in the master. Each
//! worker reports its current request (`GET /path`) on the scoreboard,
//! from the moment its request line is read until the response is sent:
//! `status` shows it through the control socket, the optional fourth
//! argument.

use std::io::{BufRead, BufReader, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use preforkd::{Connection, Server};

/// The file `target` names under `root`, if it stays under it.
fn file_for(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let mut file = root.to_path_buf();
    for part in Path::new(path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => file.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if file.is_dir() {
        file.push("index.html");
    }
    file.is_file().then_some(file)
}

fn respond(conn: &mut Connection, status: &str, body: &[u8], head: bool) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if !head {
        conn.write_all(body)?;
    }
    conn.flush()
}

fn serve(root: &Path, conn: Connection) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // What `preforkd status` shows while this connection lasts: the
    // method and the target, sanitized and cut there.
    let shown: Vec<&str> = request.split_whitespace().take(2).collect();
    preforkd::set_state(&shown.join(" "));
    // The headers, up to the empty line; none is needed here.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 0 && header != "\r\n" && header != "\n" {
        header.clear();
    }
    let conn = reader.get_mut();
    let mut words = request.split_whitespace();
    let (method, target) = match (words.next(), words.next(), words.next()) {
        (Some(m), Some(t), Some(v)) if v.starts_with("HTTP/1.") => (m, t),
        _ => return respond(conn, "400 Bad Request", b"bad request\n", false),
    };
    let head = method == "HEAD";
    if method != "GET" && !head {
        return respond(conn, "405 Method Not Allowed", b"GET or HEAD\n", false);
    }
    match file_for(root, target).map(std::fs::read) {
        Some(Ok(body)) => respond(conn, "200 OK", &body, head),
        _ => respond(conn, "404 Not Found", b"not found\n", head),
    }
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8000".into());
    let workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(4);
    let root = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let control = args.next().map(PathBuf::from);
    preforkd::log::init_stderr(log::LevelFilter::Info);

    let checked = root.clone();
    let result = Server::bind(&addr).and_then(|server| {
        let server = match control {
            Some(path) => server.control_socket(path),
            None => server,
        };
        server
            .workers(workers)
            .name("http")
            .timeout(Duration::from_secs(10))
            .before_first_fork(move || match checked.is_dir() {
                true => Ok(()),
                false => Err(format!("{} is not a directory", checked.display())),
            })
            .serve(move |conn: Connection| serve(&root, conn))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
