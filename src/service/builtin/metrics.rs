//! The `metrics` builtin: `GET /metrics` over HTTP/1.0 or 1.1, answered
//! with the numbers of every pool of the daemon, read from the scoreboard,
//! in OpenMetrics text (or Prometheus' older text format 0.0.4 for a
//! client whose `Accept` asks for `text/plain` and not for OpenMetrics).
//!
//! A prefork worker serves it like any builtin: the master never touches
//! the connection. What it reads was made before the fork and is passed by
//! reference: the board, and the list of the daemon's pools
//! ([`PoolLabel`]s: a pool's names and its shared slot). The list is the
//! one of the worker's fork, without the pools a reload is retiring (their
//! replacements have the same labels); a pool gone since is left out (its
//! slot is no longer that pool's), and after a reload that adds or removes
//! pools the master replaces the metrics workers, so that the next scrape
//! lists the new ones.
//!
//! One request per connection (`Connection: close`). The request head is
//! bounded ([`MAX_HEAD`]: 431 beyond) and so is the time to send it: the
//! service's `timeout`, or [`DEFAULT_TIMEOUT`] when it has none (408
//! after). `/metrics` (any query string) is the only path (404 for
//! others); GET and HEAD the only methods (405 for others).

use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::net::Connection;
use crate::scoreboard::{Counter, Scoreboard};

/// The longest request head read: request line and header fields.
pub const MAX_HEAD: usize = 8 * 1024;

/// The time a client has to send its request when the service sets no
/// `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the OpenMetrics answer says it is.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the older Prometheus text format says it is.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One pool of the daemon as the metrics name it, made by the master
/// before the fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLabel {
    /// The pool's shared slot on the scoreboard.
    pub slot: usize,
    /// The shared slot's serial when the label was made.
    pub serial: u64,
    /// `service="...",address="...",protocol="..."`, escaped.
    labels: String,
}

impl PoolLabel {
    /// The label of the pool of `service` on `address`, whose shared slot
    /// is `slot` with `serial`.
    pub fn new(service: &str, address: &str, protocol: &str, slot: usize, serial: u64) -> Self {
        PoolLabel {
            slot,
            serial,
            labels: format!(
                "service=\"{}\",address=\"{}\",protocol=\"{}\"",
                escape(service),
                escape(address),
                escape(protocol)
            ),
        }
    }
}

/// A label value as OpenMetrics writes it: backslash, quote and newline
/// escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One pool's numbers, as `/metrics` and `preforkd status --json` give
/// them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolCounts {
    /// Workers serving a connection.
    pub busy: u64,
    /// Workers waiting for one.
    pub idle: u64,
    /// Connections served (handed to the handler), by live and past workers.
    pub served: u64,
    /// Connections refused by only_from, no_access or per_source.
    pub refused_rule: u64,
    /// Connections refused by rate.
    pub refused_rate: u64,
    /// Connections refused for their PROXY protocol header.
    pub refused_proxy: u64,
    /// Workers forked.
    pub started: u64,
    /// Workers that died young or could not start.
    pub died_young: u64,
    /// Bytes the handlers read from clients.
    pub bytes_in: u64,
    /// Bytes the handlers wrote to clients.
    pub bytes_out: u64,
}

impl PoolCounts {
    /// The numbers of the pool whose shared slot is `slot`.
    pub fn read(board: &Scoreboard, slot: usize) -> PoolCounts {
        let (busy, idle, live) = board.pool_workers(slot);
        let shared = board.slot(slot);
        PoolCounts {
            busy,
            idle,
            served: shared.served() + live,
            refused_rule: shared.count(Counter::RefusedRule),
            refused_rate: shared.count(Counter::RefusedRate),
            refused_proxy: shared.count(Counter::RefusedProxy),
            started: shared.count(Counter::Started),
            died_young: shared.count(Counter::DiedYoung),
            bytes_in: shared.count(Counter::BytesIn),
            bytes_out: shared.count(Counter::BytesOut),
        }
    }
}

/// What a metrics worker reads, given by reference at the fork.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The board.
    pub board: &'a Scoreboard,
    /// The daemon's pools.
    pub pools: &'a [PoolLabel],
    /// The service's `timeout`.
    pub timeout: Option<Duration>,
}

/// How a family is typed, and the samples of one pool it has.
enum Kind {
    Gauge,
    Counter,
}

/// The families, in order: name, type, unit, help, and each sample's
/// extra label and value.
type Samples = fn(&PoolCounts) -> Vec<(&'static str, u64)>;

const FAMILIES: [(&str, Kind, Option<&str>, &str, Samples); 6] = [
    (
        "preforkd_workers",
        Kind::Gauge,
        None,
        "Workers of the pool: busy serving a connection, idle waiting for one.",
        |c| vec![("state=\"busy\"", c.busy), ("state=\"idle\"", c.idle)],
    ),
    (
        "preforkd_connections",
        Kind::Counter,
        None,
        "Connections served: accepted, admitted, handed to the service.",
        |c| vec![("", c.served)],
    ),
    (
        "preforkd_connections_refused",
        Kind::Counter,
        None,
        "Connections refused before the service: by rule (only_from, no_access, per_source), by rate, or for their PROXY protocol header.",
        |c| {
            vec![
                ("reason=\"rule\"", c.refused_rule),
                ("reason=\"rate\"", c.refused_rate),
                ("reason=\"proxy\"", c.refused_proxy),
            ]
        },
    ),
    (
        "preforkd_workers_started",
        Kind::Counter,
        None,
        "Workers forked.",
        |c| vec![("", c.started)],
    ),
    (
        "preforkd_workers_died_young",
        Kind::Counter,
        None,
        "Workers that died young (abnormally, within 1 s of their fork, before serving) or could not start: each one slows respawning down.",
        |c| vec![("", c.died_young)],
    ),
    (
        "preforkd_received_bytes",
        Kind::Counter,
        Some("bytes"),
        "Bytes the service's handlers read from clients (builtins; not programs, which hold the socket themselves).",
        |c| vec![("", c.bytes_in)],
    ),
];

const SENT: (&str, &str) = (
    "preforkd_sent_bytes",
    "Bytes the service's handlers wrote to clients (builtins; not programs, which hold the socket themselves).",
);

/// The text of `pools`' numbers: OpenMetrics 1.0 when `open`, else
/// Prometheus' text format 0.0.4 (where a counter's family is named with
/// its `_total`, and there is no `# UNIT` nor `# EOF`).
pub fn render(pools: &[(&PoolLabel, PoolCounts)], open: bool) -> String {
    let mut out = String::with_capacity(256 + pools.len() * 1024);
    let sent: Samples = |c| vec![("", c.bytes_out)];
    let families = FAMILIES
        .iter()
        .map(|(name, kind, unit, help, samples)| (*name, kind, *unit, *help, *samples))
        .chain([(SENT.0, &Kind::Counter, Some("bytes"), SENT.1, sent)]);
    for (name, kind, unit, help, samples) in families {
        let (type_name, sample_name) = match (kind, open) {
            (Kind::Gauge, _) => (name.to_string(), name.to_string()),
            (Kind::Counter, true) => (name.to_string(), format!("{name}_total")),
            (Kind::Counter, false) => (format!("{name}_total"), format!("{name}_total")),
        };
        let type_word = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(out, "# TYPE {type_name} {type_word}");
        if let (Some(unit), true) = (unit, open) {
            let _ = writeln!(out, "# UNIT {type_name} {unit}");
        }
        let _ = writeln!(out, "# HELP {type_name} {help}");
        for (label, counts) in pools {
            for (extra, value) in samples(counts) {
                let comma = if extra.is_empty() { "" } else { "," };
                let _ = writeln!(
                    out,
                    "{sample_name}{{{}{comma}{extra}}} {value}",
                    label.labels
                );
            }
        }
    }
    if open {
        out.push_str("# EOF\n");
    }
    out
}

/// Serves one request on `conn`, then closes it.
pub fn serve(mut conn: Connection, sources: &Sources<'_>) -> io::Result<()> {
    let timeout = sources.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if sources.timeout.is_none() {
        conn.set_timeout(Some(timeout))?;
    }
    let answer = match read_head(&mut conn, Instant::now() + timeout) {
        Ok(head) => respond(&head, sources),
        Err(Bad::Closed) => return Ok(()),
        Err(Bad::TooLarge) => plain(431, "Request Header Fields Too Large", ""),
        Err(Bad::Slow) => plain(408, "Request Timeout", ""),
        Err(Bad::Io(e)) => return Err(e),
    };
    conn.write_all(&answer)?;
    // Read what the client still sends (a body, a head past the limit)
    // before closing, briefly: closing with unread data would reset the
    // connection, and the client could lose the answer.
    let _ = conn.shutdown_write();
    let _ = conn.set_timeout(Some(timeout.min(Duration::from_millis(500))));
    let mut sink = [0u8; 4096];
    for _ in 0..64 {
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Why there is no request head to answer.
enum Bad {
    /// The client closed before sending anything.
    Closed,
    /// Longer than [`MAX_HEAD`].
    TooLarge,
    /// Not complete within the timeout.
    Slow,
    Io(io::Error),
}

/// Reads the request head (through the empty line), within `deadline`.
fn read_head(conn: &mut impl Read, deadline: Instant) -> Result<Vec<u8>, Bad> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        if Instant::now() >= deadline {
            return Err(Bad::Slow);
        }
        let n = match conn.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(Bad::Slow)
            }
            Err(e) => return Err(Bad::Io(e)),
        };
        if n == 0 {
            // A client that shut its side down after a partial head is
            // answered on what it sent.
            return if head.is_empty() {
                Err(Bad::Closed)
            } else {
                Ok(head)
            };
        }
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        let end = find_end(&head[from..]).map(|end| from + end);
        if end.unwrap_or(head.len()) > MAX_HEAD {
            return Err(Bad::TooLarge);
        }
        if let Some(end) = end {
            head.truncate(end);
            return Ok(head);
        }
    }
}

/// Where the head ends in `bytes` (after its empty line), if it does.
fn find_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find_map(|i| {
        let rest = &bytes[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if rest.starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// The whole answer to a request head.
fn respond(head: &[u8], sources: &Sources<'_>) -> Vec<u8> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let request: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let [method, target, version] = request[..] else {
        return plain(400, "Bad Request", "");
    };
    if !version.starts_with("HTTP/1.") {
        return if version.starts_with("HTTP/") {
            plain(505, "HTTP Version Not Supported", "")
        } else {
            plain(400, "Bad Request", "")
        };
    }
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return plain(405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
    }
    if path != "/metrics" {
        return plain(404, "Not Found", "");
    }
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map(|(_, value)| value.to_ascii_lowercase());
    let open = accept
        .as_deref()
        .is_none_or(|a| a.contains("application/openmetrics-text") || !a.contains("text/plain"));
    let counts: Vec<(&PoolLabel, PoolCounts)> = sources
        .pools
        .iter()
        .filter(|p| sources.board.is_pool(p.slot, p.serial))
        .map(|p| (p, PoolCounts::read(sources.board, p.slot)))
        .collect();
    let body = render(&counts, open);
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if open { OPENMETRICS } else { PROMETHEUS_TEXT },
        body.len()
    )
    .into_bytes();
    if method == "GET" {
        answer.extend_from_slice(body.as_bytes());
    }
    answer
}

/// A short answer with no metrics: its status line, `extra` header lines,
/// and the reason as the body.
fn plain(code: u16, reason: &str, extra: &str) -> Vec<u8> {
    let body = format!("{code} {reason}\n");
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(board: &Scoreboard, pools: &[PoolLabel], request: &str) -> String {
        let sources = Sources {
            board,
            pools,
            timeout: None,
        };
        let head = read_head(&mut request.as_bytes(), Instant::now() + DEFAULT_TIMEOUT)
            .ok()
            .unwrap();
        String::from_utf8(respond(&head, &sources)).unwrap()
    }

    #[test]
    fn answers_get_metrics_and_refuses_the_rest() {
        let mut board = Scoreboard::new().unwrap();
        let shared = board.allocate_shared().unwrap();
        let serial = 1;
        assert!(board.is_pool(shared, serial));
        let worker = board.allocate(0).unwrap();
        board.slot(worker).set_pool(shared);
        board.slot(worker).begin(None);
        board.slot(worker).end();
        board.slot(shared).add(Counter::BytesIn, 5);
        board.slot(shared).add(Counter::RefusedRate, 2);
        let pools = [
            PoolLabel::new("e\"cho", "127.0.0.1:7", "tcp", shared, serial),
            PoolLabel::new("gone", "127.0.0.1:8", "tcp", shared, serial + 1),
        ];
        let ok = answer(&board, &pools, "GET /metrics HTTP/1.0\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(OPENMETRICS), "{ok}");
        assert!(ok.ends_with("# EOF\n"), "{ok}");
        let labels = r#"service="e\"cho",address="127.0.0.1:7",protocol="tcp""#;
        assert!(ok.contains(&format!("preforkd_workers{{{labels},state=\"idle\"}} 1\n")));
        assert!(ok.contains(&format!("preforkd_connections_total{{{labels}}} 1\n")));
        assert!(ok.contains(&format!("preforkd_received_bytes_total{{{labels}}} 5\n")));
        assert!(ok.contains(&format!(
            "preforkd_connections_refused_total{{{labels},reason=\"rate\"}} 2\n"
        )));
        assert!(ok.contains("# UNIT preforkd_received_bytes bytes\n"));
        assert!(!ok.contains("gone"), "a pool since gone is left out: {ok}");
        // The fold of a reaped worker keeps the total.
        board.fold_served(worker, shared);
        board.release(worker);
        assert_eq!(PoolCounts::read(&board, shared).served, 1);

        let old = answer(
            &board,
            &pools,
            "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain;version=0.0.4\r\n\r\n",
        );
        assert!(old.contains(PROMETHEUS_TEXT), "{old}");
        assert!(old.contains("# TYPE preforkd_connections_total counter\n"));
        assert!(!old.contains("# EOF") && !old.contains("# UNIT"));

        let head = answer(&board, &pools, "HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"));
        let status = |r: &str| answer(&board, &pools, r)[9..12].to_string();
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), "404");
        assert_eq!(status("POST /metrics HTTP/1.1\r\n\r\n"), "405");
        assert_eq!(status("GET /metrics HTTP/2.0\r\n\r\n"), "505");
        assert_eq!(status("GET /metrics\r\n\r\n"), "400");
        assert_eq!(status("hello\n\n"), "400");
    }

    #[test]
    fn a_head_is_bounded() {
        let long = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        let read = read_head(&mut long.as_bytes(), Instant::now() + DEFAULT_TIMEOUT);
        assert!(matches!(read, Err(Bad::TooLarge)));
        let read = read_head(&mut &b""[..], Instant::now() + DEFAULT_TIMEOUT);
        assert!(matches!(read, Err(Bad::Closed)));
        assert_eq!(find_end(b"GET / HTTP/1.0\n\nrest"), Some(16));
    }
}
