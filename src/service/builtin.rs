//! The built-in services of inetd, each to its RFC: echo (862), discard
//! (863), chargen (864), daytime (867) and time (868), over TCP and UDP;
//! and preforkd's own `work` (TCP only, see [`work`]), a handler whose CPU
//! time, wait and answer size are set, to compare the models with; and
//! `metrics` (TCP, the prefork models only, see [`metrics`]), which
//! answers `GET /metrics` with the scoreboard's numbers, for Prometheus.
//!
//! echo and discard serve until the client closes; chargen sends until the
//! client closes; daytime and time send one answer and close. A client that
//! goes away (reset, broken pipe) is the normal end of a session, not an
//! error.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(unix)]
use crate::net::{Connection, Datagram};
#[cfg(unix)]
use crate::service::DatagramHandler;
use crate::sys;

#[cfg(unix)]
pub mod metrics;
pub mod work;
pub use work::WorkSpec;

/// One of the built-in services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// RFC 862: send back what was received.
    Echo,
    /// RFC 863: read and throw away.
    Discard,
    /// RFC 864: send lines of rotating printable ASCII until the client leaves.
    Chargen,
    /// RFC 867: the date and time as text, then close.
    Daytime,
    /// RFC 868: seconds since 1900-01-01 as a 32-bit big-endian number, then close.
    Time,
    /// preforkd's: read how many bytes the client wants, burn CPU, wait,
    /// send them, close (UNP's `web_child`; see [`work`]).
    Work(WorkSpec),
    /// preforkd's: `GET /metrics` over HTTP/1.x, the daemon's pools in
    /// OpenMetrics text, read from the scoreboard (see [`metrics`]).
    Metrics,
}

/// Every builtin, with its name and its standard port (inetd's `biltins[]`;
/// 0 for `work`, which is preforkd's own and has none), `work` with its
/// default parameters; `metrics`, preforkd's own too.
pub const BUILTINS: [(Builtin, &str, u16); 7] = [
    (Builtin::Echo, "echo", 7),
    (Builtin::Discard, "discard", 9),
    (Builtin::Daytime, "daytime", 13),
    (Builtin::Chargen, "chargen", 19),
    (Builtin::Time, "time", 37),
    (Builtin::Work(WorkSpec::DEFAULT), "work", 0),
    (Builtin::Metrics, "metrics", 0),
];

/// The error for a name that is not a builtin, or for parameters a builtin
/// does not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownBuiltin {
    /// What was given.
    pub name: String,
    /// What is wrong with its parameters (`None`: no such builtin).
    pub why: Option<String>,
}

impl fmt::Display for UnknownBuiltin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.why {
            return write!(f, "invalid builtin '{}': {why}", self.name);
        }
        let names: Vec<&str> = BUILTINS.iter().map(|(_, name, _)| *name).collect();
        write!(
            f,
            "unknown builtin '{}' (expected one of: {})",
            self.name,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownBuiltin {}

impl FromStr for Builtin {
    type Err = UnknownBuiltin;

    /// A name of [`BUILTINS`]; `work` may be followed by `:` and its
    /// parameters (`work:cpu=1ms,sleep=5ms,max=1M`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |why: Option<String>| UnknownBuiltin {
            name: s.to_string(),
            why,
        };
        let (name, params) = match s.split_once(':') {
            Some((name, params)) => (name, Some(params)),
            None => (s, None),
        };
        let builtin = BUILTINS
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(b, _, _)| *b)
            .ok_or_else(|| error(None))?;
        match (builtin, params) {
            (_, None) => Ok(builtin),
            (Builtin::Work(_), Some(params)) => params
                .parse()
                .map(Builtin::Work)
                .map_err(|why| error(Some(why))),
            (_, Some(_)) => Err(error(Some(format!(
                "{name} takes no parameters (work does: work:cpu=1ms,sleep=5ms,max=1M)"
            )))),
        }
    }
}

impl fmt::Display for Builtin {
    /// The name, and `work`'s parameters where they are not the default:
    /// what `from_str` reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            Builtin::Work(spec) if *spec != WorkSpec::DEFAULT => write!(f, ":{spec}"),
            _ => Ok(()),
        }
    }
}

impl Builtin {
    /// The inetd builtin of this name, or of one of inetd's aliases for it
    /// (`sink`/`null` for discard, `source`/`ttytst` for chargen); not
    /// `work`, which inetd has not.
    pub fn from_name(name: &str) -> Option<Builtin> {
        match name {
            "sink" | "null" => Some(Builtin::Discard),
            "source" | "ttytst" => Some(Builtin::Chargen),
            other => other
                .parse()
                .ok()
                .filter(|b| !matches!(b, Builtin::Work(_) | Builtin::Metrics)),
        }
    }

    /// This builtin's entry in [`BUILTINS`] (`work` whatever its parameters).
    fn entry(self) -> Option<&'static (Builtin, &'static str, u16)> {
        BUILTINS
            .iter()
            .find(|(b, _, _)| std::mem::discriminant(b) == std::mem::discriminant(&self))
    }

    /// The name, without parameters.
    pub fn name(self) -> &'static str {
        self.entry().map_or("?", |(_, name, _)| name)
    }

    /// The port inetd serves this builtin on (0 for `work`).
    pub fn standard_port(self) -> u16 {
        self.entry().map_or(0, |(_, _, port)| *port)
    }

    /// Whether it serves UDP too: all but `work` and `metrics`, which
    /// read a request on a connection.
    pub fn serves_udp(self) -> bool {
        !matches!(self, Builtin::Work(_) | Builtin::Metrics)
    }

    /// Whether only a prefork model's worker can serve it: `metrics`,
    /// which reads the scoreboard and the daemon's list of pools.
    pub fn needs_scoreboard(self) -> bool {
        matches!(self, Builtin::Metrics)
    }

    /// Serves one TCP connection.
    #[cfg(unix)]
    pub fn handle(self, conn: Connection) -> io::Result<()> {
        self.serve(conn)
    }

    /// Serves one stream: a worker's `Connection`, or a std `TcpStream` of
    /// the thread pool that Windows runs.
    pub fn serve<S: Read + Write>(self, mut stream: S) -> io::Result<()> {
        let result = match self {
            Builtin::Echo => echo(&mut stream),
            Builtin::Discard => discard(&mut stream),
            Builtin::Chargen => chargen(&mut stream),
            Builtin::Daytime => stream.write_all(daytime_text().as_bytes()),
            Builtin::Time => stream.write_all(&time_since_1900().to_be_bytes()),
            Builtin::Work(spec) => work::serve(spec, &mut stream),
            // A worker serves it with the scoreboard (`metrics::serve`);
            // the config's checks keep it from every other runner.
            Builtin::Metrics => Err(io::Error::new(
                ErrorKind::Unsupported,
                "builtin metrics is served by prefork workers only",
            )),
        };
        match result {
            Err(e) if client_went_away(&e) => Ok(()),
            other => other,
        }
    }
}

/// The most a chargen datagram carries (RFC 864: "between 0 and 512").
pub const CHARGEN_DATAGRAM: usize = 512;

impl Builtin {
    /// The answer to one datagram (RFC 862-868, UDP): `None` for discard.
    /// echo's answer is as large as the request; the others ignore the
    /// request, which may be empty: chargen answers [`CHARGEN_DATAGRAM`]
    /// bytes (RFC 864's upper bound), daytime 26, time 4. So a forged
    /// source address does amplify: an empty request (28 bytes of IPv4 and
    /// UDP headers) draws 540 bytes from chargen (19 times as many), 54
    /// from daytime (1.9), 32 from time (1.1). What bounds the traffic a
    /// forger can aim at one address is the worker's per-source limit
    /// (`per_source`, by default `net::acl::UDP_PER_SOURCE` datagrams per
    /// second), not the sizes.
    /// `sent` counts the datagrams this worker answered, to rotate chargen.
    pub fn datagram_reply(self, request: &[u8], sent: usize) -> Option<Vec<u8>> {
        match self {
            Builtin::Echo => Some(request.to_vec()),
            Builtin::Discard => None,
            Builtin::Chargen => {
                let cycle = chargen_cycle();
                let line = CHARGEN_LINE + 2;
                let start = (sent % 95) * line;
                Some(
                    cycle
                        .iter()
                        .cycle()
                        .skip(start)
                        .take(CHARGEN_DATAGRAM)
                        .copied()
                        .collect(),
                )
            }
            Builtin::Daytime => Some(daytime_text().into_bytes()),
            Builtin::Time => Some(time_since_1900().to_be_bytes().to_vec()),
            // Refused on UDP by the config's checks (`serves_udp`).
            Builtin::Work(_) | Builtin::Metrics => None,
        }
    }
}

/// A builtin as a UDP worker serves it: each datagram answered with its
/// [`datagram_reply`](Builtin::datagram_reply), the replies counted (to
/// rotate chargen).
#[cfg(unix)]
pub(crate) struct DatagramBuiltin {
    builtin: Builtin,
    answered: std::cell::Cell<usize>,
}

#[cfg(unix)]
impl DatagramBuiltin {
    pub(crate) fn new(builtin: Builtin) -> DatagramBuiltin {
        DatagramBuiltin {
            builtin,
            answered: std::cell::Cell::new(0),
        }
    }
}

#[cfg(unix)]
impl DatagramHandler for DatagramBuiltin {
    fn handle(&self, datagram: Datagram<'_>) -> io::Result<()> {
        let answered = self.answered.get();
        if let Some(reply) = self.builtin.datagram_reply(datagram.data(), answered) {
            datagram.reply(&reply)?;
            self.answered.set(answered + 1);
        }
        Ok(())
    }
}

/// Whether a datagram from `source` may be answered. Refused, as inetd
/// does: a privileged source port (below 1024: a service port, perhaps
/// another echo or chargen server, the classic ping-pong loop), a source
/// port that is one of this daemon's own UDP service ports, and broadcast
/// or multicast sources (always forged).
pub fn answerable(source: SocketAddr, daemon_udp_ports: &[u16]) -> Result<(), &'static str> {
    let ip = source.ip().to_canonical();
    if source.port() < 1024 {
        return Err("source port below 1024");
    }
    if daemon_udp_ports.contains(&source.port()) {
        return Err("source port is a UDP service port of this daemon");
    }
    let broadcast = match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    };
    if broadcast || ip.is_unspecified() {
        return Err("broadcast, multicast or unspecified source");
    }
    Ok(())
}

/// Errors that only mean the client closed or reset the connection.
pub fn client_went_away(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
    )
}

/// Reads into `buf`, retrying when a signal interrupts the read.
fn read_some(conn: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match conn.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn echo(conn: &mut (impl Read + Write)) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = read_some(conn, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}

fn discard(conn: &mut impl Read) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    while read_some(conn, &mut buf)? > 0 {}
    Ok(())
}

/// Characters per chargen line, CRLF excluded (RFC 864).
pub const CHARGEN_LINE: usize = 72;

/// One full chargen cycle: 95 lines, line `i` being the 72 printable
/// characters that start at the `i`-th of the 95 (space to tilde), wrapping.
/// After 95 lines the pattern repeats, so the cycle is sent over and over.
pub fn chargen_cycle() -> Vec<u8> {
    let printable: Vec<u8> = (b' '..=b'~').collect();
    let mut out = Vec::with_capacity(printable.len() * (CHARGEN_LINE + 2));
    for start in 0..printable.len() {
        out.extend((0..CHARGEN_LINE).map(|i| printable[(start + i) % printable.len()]));
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn chargen(conn: &mut impl Write) -> io::Result<()> {
    let cycle = chargen_cycle();
    loop {
        conn.write_all(&cycle)?;
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The daytime answer as inetd gives it: ctime(3) of the local time, CRLF.
/// RFC 867 leaves the format free; this one is what clients of inetd parse.
pub fn daytime_text() -> String {
    let t = sys::time::local_now();
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}\r\n",
        WEEKDAYS[t.weekday.rem_euclid(7) as usize],
        MONTHS[t.month.rem_euclid(12) as usize],
        t.day,
        t.hour,
        t.minute,
        t.second,
        1900 + t.year
    )
}

/// Seconds between 1900-01-01 and 1970-01-01 (RFC 868).
pub const SECONDS_1900_TO_1970: u64 = 2_208_988_800;

/// RFC 868 time: seconds since 1900, modulo 2^32 (the field is 32 bits and
/// wraps in 2036, as the RFC's own arithmetic does).
pub fn time_since_1900() -> u32 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (unix + SECONDS_1900_TO_1970) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (b, name, _) in BUILTINS {
            assert_eq!(name.parse::<Builtin>(), Ok(b));
            assert_eq!(b.to_string(), name);
        }
        assert!("ech0"
            .parse::<Builtin>()
            .unwrap_err()
            .to_string()
            .contains("echo, discard"));
        let work: Builtin = "work:cpu=2ms".parse().unwrap();
        assert_eq!(work.to_string(), "work:cpu=2ms");
        assert_eq!(work.to_string().parse::<Builtin>(), Ok(work));
        assert_eq!(work.standard_port(), 0);
        let e = "work:cpu=x".parse::<Builtin>().unwrap_err().to_string();
        assert!(
            e.starts_with("invalid builtin 'work:cpu=x': parameter cpu"),
            "{e}"
        );
        assert!("echo:cpu=1ms".parse::<Builtin>().is_err());
        assert_eq!(Builtin::from_name("work"), None);
    }

    #[test]
    fn chargen_cycle_is_rfc_864() {
        let cycle = chargen_cycle();
        let lines: Vec<&[u8]> = cycle
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 95);
        assert_eq!(&lines[0][..10], b" !\"#$%&'()");
        assert_eq!(&lines[1][..3], b"!\"#");
        assert!(lines
            .iter()
            .all(|l| l.len() == CHARGEN_LINE + 1 && l.ends_with(b"\r")));
    }

    #[test]
    fn datagram_answers_are_capped_and_sources_checked() {
        assert_eq!(
            Builtin::Echo.datagram_reply(b"abc", 0),
            Some(b"abc".to_vec())
        );
        assert_eq!(Builtin::Discard.datagram_reply(b"abc", 0), None);
        let c0 = Builtin::Chargen.datagram_reply(b"", 0).unwrap();
        let c1 = Builtin::Chargen.datagram_reply(b"", 1).unwrap();
        assert_eq!(c0.len(), CHARGEN_DATAGRAM);
        assert_eq!(&c1[..2], b"!\"");
        let ok: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(answerable(ok, &[7007]), Ok(()));
        assert!(answerable("127.0.0.1:7".parse().unwrap(), &[]).is_err());
        assert!(answerable("127.0.0.1:7007".parse().unwrap(), &[7007]).is_err());
        assert!(answerable("255.255.255.255:4000".parse().unwrap(), &[]).is_err());
        assert!(answerable("[::ffff:127.0.0.1]:80".parse().unwrap(), &[]).is_err());
    }

    #[test]
    fn daytime_looks_like_ctime() {
        let text = daytime_text();
        assert_eq!(text.len(), 26, "{text:?}");
        assert!(text.ends_with("\r\n"));
    }
}
