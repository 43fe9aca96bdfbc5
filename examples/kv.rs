//! A line-protocol key/value server whose workers share one store: each
//! worker opens its own connection to the store (here a file, appended
//! to) in the after-fork hook, and its handler uses it.
//!
//! ```text
//! cargo run --example kv -- 127.0.0.1:7070 4 /tmp/kv.store
//! printf 'SET colour blue\nGET colour\nQUIT\n' | nc 127.0.0.1 7070
//! ```
//!
//! Commands, one per line: `SET KEY VALUE` (answers `OK`), `GET KEY`
//! (answers the value, or `NONE`), `QUIT`. Any worker sees what another
//! stored: the store is the file, not the worker. The store is flushed
//! in the exit hook.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::rc::Rc;

use preforkd::{Connection, Server};

/// A worker's connection to the store.
struct Store {
    file: File,
}

impl Store {
    fn open(path: &PathBuf) -> std::io::Result<Store> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        Ok(Store { file })
    }

    fn set(&mut self, key: &str, value: &str) -> std::io::Result<()> {
        // One write(2) per record, O_APPEND: the workers' records never mix.
        self.file.write_all(format!("{key}\t{value}\n").as_bytes())
    }

    fn get(&mut self, key: &str) -> std::io::Result<Option<String>> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_string(&mut text)?;
        Ok(text
            .lines()
            .rev()
            .filter_map(|l| l.split_once('\t'))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string()))
    }
}

/// Serves one client's commands with the worker's store.
fn serve(store: &RefCell<Option<Store>>, conn: Connection) -> std::io::Result<()> {
    let mut store = store.borrow_mut();
    let store = store
        .as_mut()
        .ok_or_else(|| std::io::Error::other("no store: the after-fork hook did not run"))?;
    let mut conn = BufReader::new(conn);
    let mut line = String::new();
    while !preforkd::stop_pending() && conn.read_line(&mut line)? > 0 {
        let mut words = line.trim().splitn(3, ' ');
        let answer = match (words.next(), words.next(), words.next()) {
            (Some("SET"), Some(k), Some(v)) => store.set(k, v).map(|()| "OK".to_string())?,
            (Some("GET"), Some(k), None) => store.get(k)?.unwrap_or_else(|| "NONE".into()),
            (Some("QUIT"), None, None) => return Ok(()),
            _ => "ERROR expected SET KEY VALUE, GET KEY or QUIT".to_string(),
        };
        writeln!(conn.get_mut(), "{answer}")?;
        line.clear();
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7070".into());
    let workers = args.next().and_then(|n| n.parse().ok()).unwrap_or(4);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "kv.store".into()));
    preforkd::log::init_stderr(log::LevelFilter::Info);

    // Empty in the master; each worker fills its own copy after fork.
    let store: Rc<RefCell<Option<Store>>> = Rc::default();
    let (opening, flushing) = (Rc::clone(&store), Rc::clone(&store));
    let result = Server::bind(&addr).and_then(|server| {
        server
            .workers(workers)
            .name("kv")
            .after_fork(move |worker| {
                let opened = Store::open(&path)
                    .map_err(|e| format!("worker {}: {}: {e}", worker.pid(), path.display()))?;
                *opening.borrow_mut() = Some(opened);
                Ok(())
            })
            .before_worker_exit(move |_, _| {
                if let Some(s) = flushing.borrow_mut().as_mut() {
                    let _ = s.file.sync_data();
                }
            })
            .serve(move |conn: Connection| serve(&store, conn))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
