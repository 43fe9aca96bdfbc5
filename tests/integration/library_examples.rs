//! The library's example programs (issue 17), each tested through its
//! binary: `examples/kv.rs`, a key/value server whose workers open their
//! store in the after-fork hook.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::time::Duration;

use crate::library::example;
use crate::util::*;

/// Sends `commands` (one per line, then QUIT) and returns the answers.
fn talk(d: &Daemon, commands: &[&str]) -> Vec<String> {
    let mut c = d.connect();
    let mut text = commands.join("\n");
    text.push_str("\nQUIT\n");
    c.write_all(text.as_bytes()).unwrap();
    BufReader::new(c)
        .lines()
        .map(|l| l.unwrap_or_else(|e| panic!("{e}\n{}", d.report())))
        .collect()
}

#[test]
fn the_kv_example_opens_a_store_per_worker_and_every_worker_sees_it() {
    let dir = TempDir::new("library-kv");
    let store = dir.path().join("kv.store");
    let d = Daemon::start_with(
        Command::new(example("kv")).args(["127.0.0.1:0", "3", store.to_str().unwrap()]),
        &["(examples/kv)"],
    );
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 3),
        "{}",
        d.report()
    );
    // Each worker holds its own descriptor of the store, opened after the
    // fork; the master holds none.
    let holds_store = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten()
                    .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                    .any(|target| target == store)
            })
            .unwrap_or(false)
    };
    assert!(
        wait_until(Duration::from_secs(5), || d
            .workers()
            .iter()
            .all(|&w| holds_store(w))),
        "{}",
        d.report()
    );
    assert!(!holds_store(d.pid()), "the master opened the store");

    assert_eq!(talk(&d, &["SET colour blue", "GET colour"]), ["OK", "blue"]);
    // Whichever workers serve them, later connections see it.
    for _ in 0..10 {
        assert_eq!(talk(&d, &["GET colour", "GET shape"]), ["blue", "NONE"]);
    }
    assert_eq!(talk(&d, &["SET colour red", "NOPE"])[0], "OK");
    assert_eq!(talk(&d, &["GET colour"]), ["red"]);
}

/// One HTTP/1.1 request on a fresh connection: the whole response.
fn get(d: &Daemon, request: &str) -> String {
    let mut c = d.connect();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut c, &mut out)
        .unwrap_or_else(|e| panic!("{e}\n{}", d.report()));
    out
}

#[test]
fn the_http_example_serves_a_directory_and_nothing_outside_it() {
    let dir = TempDir::new("library-http");
    let root = dir.path().join("public");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("index.html"), "<p>hello</p>\n").unwrap();
    std::fs::write(dir.path().join("secret"), "secret\n").unwrap();
    let d = Daemon::start_with(
        Command::new(example("http")).args(["127.0.0.1:0", "2", root.to_str().unwrap()]),
        &["(examples/http)"],
    );
    let ok = get(&d, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok:?}");
    assert!(
        ok.contains("Content-Length: 13\r\n") && ok.ends_with("<p>hello</p>\n"),
        "{ok:?}"
    );
    let head = get(&d, "HEAD /index.html HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"),
        "{head:?}"
    );
    for path in ["/../secret", "/nothing", "/%2e%2e/secret"] {
        let out = get(&d, &format!("GET {path} HTTP/1.1\r\n\r\n"));
        assert!(out.starts_with("HTTP/1.1 404"), "{path}: {out:?}");
    }
    let bad = get(&d, "POST / HTTP/1.1\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 405"), "{bad:?}");
}

#[test]
fn the_http_example_refuses_to_start_without_its_directory() {
    let dir = TempDir::new("library-http-missing");
    let missing = dir.path().join("missing");
    let out = run_command_within(
        Command::new(example("http")).args(["127.0.0.1:0", "1", missing.to_str().unwrap()]),
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the before-fork hook failed") && stderr.contains("is not a directory"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}
