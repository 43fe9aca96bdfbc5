//! The `metrics` builtin (issue 16, acceptance 4): after a known load its
//! numbers are the load's, agree with `status --json`, pass `promtool
//! check metrics`, and a real Prometheus scrapes them; and it answers what is not a scrape (another
//! path, another method, a head too long, a client too slow) without
//! harm to the daemon.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

const CONFIG: &str = "\
[[service]]
name = \"echo\"
listen = [\"127.0.0.1:0\"]
builtin = \"echo\"
workers = 2
only_from = [\"127.0.0.1\"]

[[service]]
name = \"limited\"
listen = [\"127.0.0.1:0\"]
builtin = \"echo\"
workers = 1
rate = \"3/h\"

[[service]]
name = \"metrics\"
listen = [\"127.0.0.1:0\"]
builtin = \"metrics\"
workers = 1
timeout = \"2s\"
";

/// Sends `request` as it is and reads the whole answer (the builtin closes
/// after one).
fn http(addr: &str, request: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request).unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The body of a 200 answer to `GET /metrics`, with `accept` if given.
fn scrape(addr: &str, accept: Option<&str>) -> String {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    let answer = http(
        addr,
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}\r\n").as_bytes(),
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{answer}"
    );
    body.to_string()
}

/// `name{labels}` → value, for the samples of `service`, its labels but
/// `state` and `reason` left out: `preforkd_workers{state="busy"}`.
fn samples(body: &str, service: &str) -> BTreeMap<String, u64> {
    let tag = format!("service=\"{service}\",");
    body.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&tag))
        .map(|l| {
            let (name, rest) = l.split_once('{').unwrap();
            let (labels, value) = rest.rsplit_once("} ").unwrap();
            let extra: Vec<&str> = labels
                .split(',')
                .filter(|kv| kv.starts_with("state=") || kv.starts_with("reason="))
                .collect();
            (
                format!("{name}{{{}}}", extra.join(",")),
                value.parse().unwrap(),
            )
        })
        .collect()
}

fn status_json(config: &str) -> serde_json::Value {
    let out = run_to_exit(&["status", "-c", config, "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pool_of<'a>(status: &'a serde_json::Value, service: &str) -> &'a serde_json::Value {
    status["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["service"] == service)
        .unwrap_or_else(|| panic!("no pool {service} in {status:#}"))
}

/// What `/metrics` says of `service` equals its `status --json` counters.
fn agree(metrics: &BTreeMap<String, u64>, status: &serde_json::Value, service: &str) {
    let c = &pool_of(status, service)["counters"];
    let pairs = [
        ("preforkd_workers{state=\"busy\"}", "busy"),
        ("preforkd_workers{state=\"idle\"}", "idle"),
        ("preforkd_connections_total{}", "served"),
        (
            "preforkd_connections_refused_total{reason=\"rule\"}",
            "refused_rule",
        ),
        (
            "preforkd_connections_refused_total{reason=\"rate\"}",
            "refused_rate",
        ),
        (
            "preforkd_connections_refused_total{reason=\"proxy\"}",
            "refused_proxy",
        ),
        ("preforkd_workers_started_total{}", "started"),
        ("preforkd_workers_died_young_total{}", "died_young"),
        ("preforkd_received_bytes_total{}", "bytes_in"),
        ("preforkd_sent_bytes_total{}", "bytes_out"),
    ];
    for (metric, field) in pairs {
        assert_eq!(
            Some(&serde_json::json!(metrics[metric])),
            c.get(field),
            "{service}: {metric} against status's {field}: {c:#}"
        );
    }
}

// Issue 16, acceptance 4.
#[test]
fn metrics_count_a_known_load_agree_with_status_and_pass_promtool() {
    let dir = TempDir::new("metrics");
    let d = Daemon::serve(&dir, CONFIG);
    let config = dir.path().join("preforkd.toml");
    let config = config.to_str().unwrap();
    let (echo, limited, metrics) = (
        d.address_of("echo", "tcp"),
        d.address_of("limited", "tcp"),
        d.address_of("metrics", "tcp"),
    );
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 4),
        "{}",
        d.report()
    );

    // 10 echo sessions of 100 bytes; 2 from 127.0.0.2, refused by only_from.
    let line = format!("{}\n", "x".repeat(99));
    for _ in 0..10 {
        let mut c = d.connect_to(&echo);
        assert_eq!(echo_once(&mut c, &line).unwrap(), line);
    }
    for _ in 0..2 {
        let mut c = connect_from("127.0.0.2", echo.parse().unwrap());
        assert!(
            echo_once(&mut c, &line).is_err(),
            "only_from let 127.0.0.2 in"
        );
    }
    // rate = 3/h: 3 served, then 2 refused.
    for i in 0..5 {
        let mut c = d.connect_to(&limited);
        let echoed = echo_once(&mut c, &line);
        assert_eq!(echoed.is_ok(), i < 3, "connection {i}: {echoed:?}");
    }

    // A worker counts a connection once its client has gone, and is idle
    // again a moment after it counted a refusal.
    let settled = |body: &str| {
        let e = samples(body, "echo");
        let l = samples(body, "limited");
        let busy = "preforkd_workers{state=\"busy\"}";
        e["preforkd_connections_total{}"] == 10
            && l["preforkd_connections_total{}"] == 3
            && e[busy] == 0
            && l[busy] == 0
    };
    assert!(
        wait_until(Duration::from_secs(5), || settled(&scrape(&metrics, None))),
        "{}\n{}",
        scrape(&metrics, None),
        d.report()
    );
    let body = scrape(&metrics, None);
    let e = samples(&body, "echo");
    let want = |name: &str, n: u64, of: &BTreeMap<String, u64>| {
        assert_eq!(of.get(name), Some(&n), "{name}\n{body}");
    };
    want("preforkd_connections_total{}", 10, &e);
    want("preforkd_connections_refused_total{reason=\"rule\"}", 2, &e);
    want("preforkd_connections_refused_total{reason=\"rate\"}", 0, &e);
    want("preforkd_received_bytes_total{}", 1000, &e);
    want("preforkd_sent_bytes_total{}", 1000, &e);
    want("preforkd_workers_started_total{}", 2, &e);
    want("preforkd_workers_died_young_total{}", 0, &e);
    want("preforkd_workers{state=\"idle\"}", 2, &e);
    want("preforkd_workers{state=\"busy\"}", 0, &e);
    let l = samples(&body, "limited");
    want("preforkd_connections_total{}", 3, &l);
    want("preforkd_connections_refused_total{reason=\"rate\"}", 2, &l);
    want("preforkd_connections_refused_total{reason=\"rule\"}", 0, &l);
    want("preforkd_received_bytes_total{}", 300, &l);
    // The worker answering is busy with this very scrape.
    let m = samples(&body, "metrics");
    want("preforkd_workers{state=\"busy\"}", 1, &m);

    // OpenMetrics: every family typed and described, counters' samples
    // in _total, and the end.
    assert!(body.ends_with("\n# EOF\n"), "{body}");
    for family in [
        "preforkd_workers gauge",
        "preforkd_connections counter",
        "preforkd_connections_refused counter",
        "preforkd_workers_started counter",
        "preforkd_workers_died_young counter",
        "preforkd_received_bytes counter",
        "preforkd_sent_bytes counter",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family}\n")),
            "{family}\n{body}"
        );
        let name = family.split(' ').next().unwrap();
        assert!(body.contains(&format!("# HELP {name} ")), "{name}\n{body}");
    }

    // status --json has the same numbers (the load is over: they stay).
    let status = status_json(config);
    agree(&e, &status, "echo");
    agree(&l, &status, "limited");
    assert_eq!(pool_of(&status, "echo")["served"], 10);

    // A real client, and the content type it is given.
    if needs(
        Command::new("curl").arg("--version").output().is_ok(),
        "curl",
        "apt-get install curl",
    ) {
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "--max-time", "10"])
            .arg(format!("http://{metrics}/metrics"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(
            text.contains(
                "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
            ),
            "{text}"
        );
        assert_eq!(samples(&text, "echo"), e, "{text}");
    }

    // promtool lints Prometheus' text format (its 2.42 does not read
    // OpenMetrics): the same numbers, as a Prometheus that asks for
    // text/plain is given them.
    if needs(
        Command::new("promtool").arg("--version").output().is_ok(),
        "promtool",
        "apt-get install prometheus",
    ) {
        let text = scrape(&metrics, Some("text/plain; version=0.0.4"));
        assert!(!text.contains("# EOF"), "{text}");
        assert_eq!(samples(&text, "echo"), e, "{text}");
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = promtool.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool check metrics: {out:?}\n{text}"
        );
    }
}

#[test]
fn metrics_answers_other_paths_methods_and_bad_requests_and_keeps_serving() {
    let dir = TempDir::new("metrics-http");
    let d = Daemon::serve(
        &dir,
        "[[service]]\nname = \"m\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"metrics\"\nworkers = 1\ntimeout = \"1s\"\n",
    );
    let addr = d.address_of("m", "tcp");
    let status_line = |request: &[u8]| {
        let answer = http(&addr, request);
        answer.lines().next().unwrap_or("").to_string()
    };
    assert_eq!(
        status_line(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP/1.1 404 Not Found"
    );
    let post = http(
        &addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
    );
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
    assert_eq!(
        status_line(b"GET /metrics HTTP/2.0\r\n\r\n"),
        "HTTP/1.1 505 HTTP Version Not Supported"
    );
    // HTTP/1.0, lines ended by LF alone.
    let old = http(&addr, b"GET /metrics HTTP/1.0\n\n");
    assert!(
        old.starts_with("HTTP/1.1 200 OK\r\n") && old.ends_with("# EOF\n"),
        "{old}"
    );
    // A head of 64 KiB: 431 once 8 KiB are read, and the answer arrives.
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_eq!(
        status_line(huge.as_bytes()),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // A client that sends half a head and waits: 408 after the timeout.
    let started = Instant::now();
    let slow = http(&addr, b"GET /metrics HTTP/1.1\r\n");
    assert!(slow.starts_with("HTTP/1.1 408 Request Timeout"), "{slow}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Nothing of this hurt the worker or the daemon.
    let ok = http(&addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}\n{}", d.report());
    assert!(
        ok.contains("preforkd_connections_total{service=\"m\""),
        "{ok}"
    );
    assert!(!d.stderr().contains("panick"), "{}", d.report());
}

#[test]
fn check_refuses_metrics_on_udp_and_off_the_prefork_models() {
    let dir = TempDir::new("metrics-check");
    for (extra, why) in [
        ("protocol = \"udp\"\n", "it serves tcp, not udp"),
        (
            "model = \"threads\"\nworkers = 2\n",
            "it needs a prefork model",
        ),
    ] {
        let path = write_config(
            &dir,
            &format!(
                "[[service]]\nname = \"m\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"metrics\"\n{extra}"
            ),
        );
        let out = run_to_exit(&["check", "-c", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {stderr}");
        assert!(stderr.contains(why), "{extra}: {stderr}");
    }
}

#[test]
fn a_reload_shows_new_pools_and_a_changed_one_once() {
    let dir = TempDir::new("metrics-reload");
    let first = "[[service]]\nname = \"m\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"metrics\"\nworkers = 1\n";
    let d = Daemon::serve(&dir, first);
    let addr = d.address_of("m", "tcp");
    assert!(!scrape(&addr, None).contains("service=\"added\""));
    let more = format!(
        "{first}\n[[service]]\nname = \"added\"\nlisten = [\"127.0.0.1:0\"]\nbuiltin = \"echo\"\nworkers = 1\n"
    );
    let path = write_config(&dir, &more);
    let out = run_to_exit(&["reload", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    // The metrics worker forked before the reload is replaced by one that
    // knows the new pool.
    assert!(
        wait_until(Duration::from_secs(5), || {
            samples(&scrape(&addr, None), "added").get("preforkd_workers_started_total{}")
                == Some(&1)
        }),
        "{}\n{}",
        scrape(&addr, None),
        d.report()
    );
    // A changed service: its old pool retires, busy with a client, while
    // the new one serves; the scrape names one pool, the new one, never
    // two with the same labels.
    let mut held = d.connect_to(&d.address_of("added", "tcp"));
    echo_once(&mut held, "hold\n").unwrap();
    write_config(
        &dir,
        &more.replace("workers = 1\n", "workers = 1\ntimeout = \"30s\"\n"),
    );
    let out = run_to_exit(&["reload", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        wait_until(Duration::from_secs(5), || {
            let s = status_json(path.to_str().unwrap());
            s["pools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["retiring"] == true)
        }),
        "{}",
        d.report()
    );
    let body = scrape(&addr, None);
    let lines = |what: &str| body.lines().filter(|l| l.starts_with(what)).count();
    assert_eq!(
        lines("preforkd_workers{service=\"added\""),
        2,
        "one busy, one idle line\n{body}"
    );
    drop(held);
}

/// A process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The JSON of Prometheus' HTTP API at `path`, if it answers.
fn prometheus_api(web: &str, path: &str) -> Option<serde_json::Value> {
    let mut c = TcpStream::connect(web).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    serde_json::from_str(answer.split_once("\r\n\r\n")?.1).ok()
}

// Issue 16: "Scrape it with a real Prometheus (the Debian package)".
#[test]
fn a_real_prometheus_scrapes_the_openmetrics_answer() {
    if !needs(
        Command::new("prometheus").arg("--version").output().is_ok(),
        "prometheus",
        "apt-get install prometheus",
    ) {
        return;
    }
    let dir = TempDir::new("metrics-prometheus");
    let d = Daemon::serve(&dir, CONFIG);
    let (echo, metrics) = (d.address_of("echo", "tcp"), d.address_of("metrics", "tcp"));
    for _ in 0..3 {
        let mut c = d.connect_to(&echo);
        echo_once(&mut c, "ping\n").unwrap();
    }
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: preforkd\n    static_configs:\n      - targets: [\"{metrics}\"]\n"
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let query = "/api/v1/query?query=preforkd_connections_total%7Bservice%3D%22echo%22%7D";
    let served = || {
        prometheus_api(&web, query).and_then(|v| {
            v["data"]["result"][0]["value"][1]
                .as_str()
                .map(String::from)
        })
    };
    let ok = wait_until(Duration::from_secs(60), || served().as_deref() == Some("3"));
    let targets = prometheus_api(&web, "/api/v1/targets");
    assert!(
        ok,
        "Prometheus has {:?}; its targets: {targets:#?}\n{}",
        served(),
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
    let target = &targets.unwrap()["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target:#}");
    assert_eq!(target["lastError"], "", "{target:#}");
    // It read the bytes' family, whose unit only OpenMetrics declares.
    let bytes = prometheus_api(
        &web,
        "/api/v1/query?query=preforkd_received_bytes_total%7Bservice%3D%22echo%22%7D",
    )
    .unwrap();
    assert_eq!(bytes["data"]["result"][0]["value"][1], "15", "{bytes:#}");
}

#[test]
fn workers_killed_young_are_counted_as_the_master_logs_them() {
    let dir = TempDir::new("metrics-young");
    let d = Daemon::serve(&dir, CONFIG);
    let metrics = d.address_of("metrics", "tcp");
    // Three workers killed as soon as they are there, before they serve:
    // each a young death unless the machine took a second to get to it,
    // as the master's W0002 lines tell.
    let mut killed = Vec::new();
    for _ in 0..3 {
        let mut victim = None;
        assert!(
            wait_until(Duration::from_secs(5), || {
                victim = children_of(d.pid())
                    .into_iter()
                    .filter(|p| !killed.contains(p))
                    .max();
                victim.is_some() && d.workers().len() == 4
            }),
            "{}",
            d.report()
        );
        // Whichever pool's it is.
        let victim = victim.unwrap();
        kill(victim, libc::SIGKILL);
        killed.push(victim);
        assert!(wait_until(Duration::from_secs(5), || is_gone(victim)));
    }
    assert!(
        wait_until(Duration::from_secs(5), || d.workers().len() == 4),
        "{}",
        d.report()
    );
    let body = scrape(&metrics, None);
    let young: u64 = ["echo", "limited", "metrics"]
        .iter()
        .map(|s| samples(&body, s)["preforkd_workers_died_young_total{}"])
        .sum();
    let started: u64 = ["echo", "limited", "metrics"]
        .iter()
        .map(|s| samples(&body, s)["preforkd_workers_started_total{}"])
        .sum();
    assert_eq!(started, 4 + 3, "{body}");
    assert!(young >= 1, "{body}\n{}", d.report());
    let logged = || d.stderr().matches("W0002").count() as u64;
    assert!(
        wait_until(Duration::from_secs(5), || logged() == young),
        "{young} died young, {} logged\n{body}\n{}",
        logged(),
        d.report()
    );
}
