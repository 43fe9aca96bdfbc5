//! `preforkd import-inetd`: inetd.conf in, preforkd TOML out.
//!
//! The grammar, as openbsd-inetd and netkit-inetd read it, one service per
//! line, fields separated by blanks, `#` starting a comment:
//!
//! ```text
//! [host:]service  socket-type  protocol  wait|nowait[.max]  user[:group|.group]  program  [argv0 args...]
//! ```
//!
//! - `service` is a name from /etc/services or a port number; a `host:`
//!   prefix (an address, `[an IPv6 address]`, or `*` for all) binds to
//!   that host only, and a line holding only `host:` sets the host for the
//!   lines after it (OpenBSD).
//! - A line that starts with a blank continues the entry before it (BSD).
//! - `socket-type` is `stream` or `dgram`; `protocol` is `tcp`, `tcp4`,
//!   `tcp6`, `udp`, `udp4` or `udp6`.
//! - `program` is `internal` for the builtins, or a path; the first
//!   argument after it is the program's `argv[0]`.
//!
//! `wait` programs (`dgram udp wait`, `stream tcp wait`: the program
//! reads or accepts on the socket itself) become wait services (`wait =
//! true`). What preforkd cannot carry over becomes a comment saying why,
//! and a line of [`Import::skipped`]: RPC services, raw and seqpacket
//! sockets, unknown service names, programs over udp under `nowait`.
//! `nowait.N` (OpenBSD, netkit: at most N spawns a minute) becomes `rate
//! = "N/m"`; FreeBSD's `nowait/N/M/K` (at most N children, M connections
//! a minute from one address, K children for one address) becomes
//! `workers = { max = N }`, `rate = "M/m"` (for the whole socket:
//! preforkd has no per-address rate) and `per_source = K`, each left out
//! when 0 (no limit). An `argv[0]` that differs from the
//! program's name becomes `argv0` (tcpd needs it).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How a service name becomes a port: /etc/services, parsed.
#[derive(Debug, Default)]
pub struct Services {
    ports: BTreeMap<(String, String), u16>,
}

impl Services {
    /// Parses the text of /etc/services (`name port/proto aliases...`).
    pub fn parse(text: &str) -> Services {
        let mut ports = BTreeMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            for alias in std::iter::once(name).chain(fields) {
                ports
                    .entry((alias.to_string(), proto.to_string()))
                    .or_insert(port);
            }
        }
        Services { ports }
    }

    /// Reads /etc/services (empty if it cannot be read: numeric ports
    /// still work).
    pub fn system() -> Services {
        Services::parse(&std::fs::read_to_string(services_file()).unwrap_or_default())
    }

    fn port(&self, service: &str, proto: &str) -> Option<u16> {
        service.parse().ok().or_else(|| {
            self.ports
                .get(&(service.to_string(), proto.to_string()))
                .copied()
        })
    }
}

/// Where the system lists its service names.
#[cfg(unix)]
fn services_file() -> std::path::PathBuf {
    "/etc/services".into()
}

/// Where the system lists its service names: Windows keeps the same file
/// under %SystemRoot%.
#[cfg(windows)]
fn services_file() -> std::path::PathBuf {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
    std::path::Path::new(&root).join(r"System32\drivers\etc\services")
}

/// What an inetd.conf became.
#[derive(Debug)]
pub struct Import {
    /// The preforkd config.
    pub toml: String,
    /// How many services it holds.
    pub imported: usize,
    /// One line per entry not imported: `FILE:LINE: not imported: WHY`.
    pub skipped: Vec<String>,
}

/// The entries of an inetd.conf: (the number of its first line, its text),
/// with a line that starts with a blank joined to the entry before it, as
/// BSD inetd reads them. Comments and blank lines are left out.
fn entries(text: &str) -> Vec<(usize, String)> {
    let mut entries: Vec<(usize, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let continues = raw.starts_with([' ', '\t']);
        match entries.last_mut() {
            Some((_, entry)) if continues => {
                entry.push(' ');
                entry.push_str(line);
            }
            _ => entries.push((n + 1, line.to_string())),
        }
    }
    entries
}

/// Converts the text of an inetd.conf (named `file` in comments) to a
/// preforkd config.
pub fn import(file: &str, text: &str, services: &Services) -> Import {
    let mut out = format!(
        "# Imported from {} by `preforkd import-inetd`.\n\
         # Check it with `preforkd check -c FILE` before you serve it.\n",
        commented(file)
    );
    let mut default_host: Option<String> = None;
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let (mut imported, mut skipped) = (0, Vec::new());
    for (n, line) in entries(text) {
        let line = line.as_str();
        let at = format!("{file}:{n}");
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 1 && fields[0].ends_with(':') {
            let host = unbracket(fields[0].trim_end_matches(':'));
            default_host = (host != "*").then(|| host.to_string());
            continue;
        }
        match convert(&fields, default_host.as_deref(), services) {
            Ok(entry) => {
                let count = names.entry(entry.name.clone()).or_insert(0);
                *count += 1;
                let name = if *count == 1 {
                    entry.name.clone()
                } else {
                    format!("{}-{}", entry.name, count)
                };
                let _ = writeln!(out, "\n# {}: {}", commented(&at), commented(line));
                let _ = writeln!(out, "[[service]]\nname = {}", quote(&name));
                let _ = writeln!(out, "listen = [{}]", quote(&entry.listen));
                if entry.udp {
                    out.push_str("protocol = \"udp\"\n");
                }
                out.push_str(&entry.body);
                imported += 1;
            }
            Err(why) => {
                let _ = writeln!(
                    out,
                    "\n# {}: not imported: {}\n#   {}",
                    commented(&at),
                    commented(&why),
                    commented(line)
                );
                skipped.push(format!(
                    "{}: not imported: {}",
                    commented(&at),
                    commented(&why)
                ));
            }
        }
    }
    Import {
        toml: out,
        imported,
        skipped,
    }
}

/// `[::1]` is `::1`: how inetd.conf writes an IPv6 host before its colon.
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// `text` made safe for a TOML comment: control characters (which TOML
/// forbids there, and which a line break would turn into TOML) are written
/// as escapes, so the comment still shows what the file held.
fn commented(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

struct Entry {
    name: String,
    listen: String,
    udp: bool,
    body: String,
}

fn convert(
    fields: &[&str],
    default_host: Option<&str>,
    services: &Services,
) -> Result<Entry, String> {
    let [service, socket_type, protocol, wait, user, program, args @ ..] = fields else {
        return Err(format!(
            "expected at least 6 fields, found {}",
            fields.len()
        ));
    };
    let (host, service) = match service.rsplit_once(':') {
        Some((h, s)) => ((h != "*").then_some(unbracket(h)), s),
        None => (default_host, *service),
    };
    if protocol.starts_with("rpc/") {
        return Err("RPC services are not supported".into());
    }
    let (proto, v6) = match *protocol {
        "tcp" | "tcp4" => ("tcp", false),
        "tcp6" => ("tcp", true),
        "udp" | "udp4" => ("udp", false),
        "udp6" => ("udp", true),
        other => {
            return Err(format!(
                "protocol '{other}' is not supported (tcp, tcp6, udp, udp6)"
            ))
        }
    };
    match (*socket_type, proto) {
        ("stream", "tcp") | ("dgram", "udp") => {}
        (other, _) => {
            return Err(format!(
                "socket type '{other}' with {proto} is not supported"
            ))
        }
    }
    let (mode, limits) = wait_limits(wait)?;
    let port = services
        .port(service, proto)
        .ok_or_else(|| format!("unknown service '{service}/{proto}' (not in /etc/services)"))?;
    let listen = match (host, v6) {
        (Some(h), _) if h.contains(':') => format!("[{h}]:{port}"),
        (Some(h), _) => format!("{h}:{port}"),
        (None, true) => format!("[::]:{port}"),
        (None, false) => format!("0.0.0.0:{port}"),
    };
    let (user, group) = match user.split_once([':', '.']) {
        Some((u, g)) => (u, Some(g)),
        None => (*user, None),
    };
    let mut body = String::new();
    if *program == "internal" {
        let builtin = crate::service::Builtin::from_name(service)
            .ok_or_else(|| format!("'{service}' is not a builtin preforkd has"))?;
        let _ = writeln!(body, "builtin = {}", quote(&builtin.to_string()));
    } else {
        if proto == "udp" && mode == "nowait" {
            return Err(
                "a program over udp under nowait: preforkd runs it as a wait service (it reads the datagrams itself); write wait".into(),
            );
        }
        let name = program.rsplit('/').next().unwrap_or(program);
        let argv: Vec<String> = std::iter::once(*program)
            .chain(args.iter().skip(1).copied())
            .map(quote)
            .collect();
        let _ = writeln!(body, "exec = [{}]", argv.join(", "));
        if let Some(argv0) = args.first().filter(|a| **a != name) {
            let _ = writeln!(body, "argv0 = {}", quote(argv0));
        }
    }
    let _ = writeln!(body, "user = {}", quote(user));
    if let Some(g) = group {
        let _ = writeln!(body, "group = {}", quote(g));
    }
    match (mode, *program == "internal") {
        ("wait", true) => body.push_str("workers = 1\n"),
        // The program gets the socket itself, one at a time: the worker
        // sees no client to count (see preforkd.toml(5), Wait services).
        ("wait", false) => {
            body.push_str("wait = true\n");
            if limits.per_minute.is_some() {
                let _ = writeln!(
                    body,
                    "# {wait}: a wait service has no rate; preforkd pauses a program that leaves the socket unread"
                );
            }
            return Ok(Entry {
                name: service.to_string(),
                listen,
                udp: proto == "udp",
                body,
            });
        }
        _ => {
            if let Some(n) = limits.children {
                let _ = writeln!(body, "workers = {{ max = {n} }}");
            }
        }
    }
    if let Some(n) = limits.per_minute {
        let _ = writeln!(body, "rate = \"{n}/m\"");
    }
    if let Some(n) = limits.per_source {
        let _ = writeln!(body, "per_source = {n}");
    }
    Ok(Entry {
        name: service.to_string(),
        listen,
        udp: proto == "udp",
        body,
    })
}

/// The limits a `wait` field carries, each `None` when absent or 0 (no
/// limit).
#[derive(Debug, Default)]
struct Limits {
    /// Children at once (FreeBSD's N): `workers.max`.
    children: Option<u32>,
    /// Connections a minute (OpenBSD's `.N`, FreeBSD's M): `rate`.
    per_minute: Option<u32>,
    /// Children for one address (FreeBSD's K): `per_source`.
    per_source: Option<u32>,
}

/// Splits `wait|nowait[.N]` (OpenBSD, netkit) or `wait|nowait[/N[/M[/K]]]`
/// (FreeBSD) into the mode and its limits.
fn wait_limits(field: &str) -> Result<(&str, Limits), String> {
    let number = |text: &str| {
        text.parse::<u32>()
            .map(|n| (n > 0).then_some(n))
            .map_err(|_| format!("'{field}': '{text}' is not a count"))
    };
    let (mode, limits) = match field.split_once('.') {
        Some((mode, n)) => (
            mode,
            Limits {
                per_minute: number(n)?.map(|n| n.min(crate::config::maxima::MAX_RATE)),
                ..Limits::default()
            },
        ),
        None => {
            let mut parts = field.split('/');
            let mode = parts.next().unwrap_or(field);
            let counts: Vec<&str> = parts.collect();
            if counts.len() > 3 {
                return Err(format!("'{field}': at most nowait/N/M/K"));
            }
            let at = |i: usize| counts.get(i).map_or(Ok(None), |n| number(n));
            (
                mode,
                Limits {
                    children: at(0)?.map(|n| n.min(crate::config::maxima::MAX_WORKERS as u32)),
                    per_minute: at(1)?.map(|n| n.min(crate::config::maxima::MAX_RATE)),
                    per_source: at(2)?.map(|n| n.min(crate::config::maxima::MAX_PER_SOURCE as u32)),
                },
            )
        }
    };
    if mode != "wait" && mode != "nowait" {
        return Err(format!("'{field}' is neither wait nor nowait"));
    }
    Ok((mode, limits))
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Services {
        Services::parse(
            "echo 7/tcp\necho 7/udp\nchargen 19/tcp ttytst source\nfinger 79/tcp\ntftp 69/udp\n",
        )
    }

    /// Found by the `inetd` fuzz target: a NUL byte in a line that was not
    /// imported was copied into a TOML comment, where TOML forbids it, so
    /// the whole output failed to parse.
    #[test]
    fn a_control_character_in_a_line_stays_an_escape_in_its_comment() {
        let conf = "ftp stream tcp nowait \"user wit\0\0\x03h space\" /bin/x\n\
                    echo stream tcp nowait root internal extra\x07words\r\n";
        let out = import("inetd\u{1b}.conf", conf, &services()).toml;
        out.parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert!(out.contains("wit\\u{0}\\u{0}\\u{3}h"), "{out}");
    }

    #[test]
    fn imports_builtins_programs_and_explains_the_rest() {
        let conf = "\
# comment
echo   stream tcp  nowait root internal
echo   dgram  udp  wait   root internal
127.0.0.1:source stream tcp nowait.40 nobody:nogroup internal
finger stream tcp  nowait nobody /usr/sbin/tcpd in.fingerd -w
finger stream tcp  wait   nobody /usr/sbin/in.fingerd
rstatd/1-3 dgram rpc/udp wait root /usr/sbin/rpc.rstatd
nosuch stream tcp nowait root internal
tftp dgram udp wait.20 root /usr/sbin/in.tftpd in.tftpd -s /srv/tftp
tftp dgram udp nowait root /usr/sbin/in.tftpd in.tftpd -s /srv/tftp
";
        let imported = import("inetd.conf", conf, &services());
        assert_eq!(imported.imported, 6);
        assert_eq!(
            imported.skipped,
            [
                "inetd.conf:7: not imported: RPC services are not supported",
                "inetd.conf:8: not imported: unknown service 'nosuch/tcp' (not in /etc/services)",
                "inetd.conf:10: not imported: a program over udp under nowait: preforkd runs it as a wait service (it reads the datagrams itself); write wait",
            ]
        );
        let out = imported.toml;
        assert!(
            out.contains(
                "name = \"echo\"\nlisten = [\"0.0.0.0:7\"]\nbuiltin = \"echo\"\nuser = \"root\""
            ),
            "{out}"
        );
        assert!(
            out.contains("exec = [\"/usr/sbin/in.fingerd\"]\nuser = \"nobody\"\nwait = true\n"),
            "{out}"
        );
        assert!(
            out.contains("name = \"tftp\"\nlisten = [\"0.0.0.0:69\"]\nprotocol = \"udp\"\nexec = [\"/usr/sbin/in.tftpd\", \"-s\", \"/srv/tftp\"]\nuser = \"root\"\nwait = true\n# wait.20: a wait service has no rate"),
            "{out}"
        );
        assert!(out.contains("name = \"echo-2\"\nlisten = [\"0.0.0.0:7\"]\nprotocol = \"udp\"\nbuiltin = \"echo\""), "{out}");
        assert!(out.contains("listen = [\"127.0.0.1:19\"]\nbuiltin = \"chargen\"\nuser = \"nobody\"\ngroup = \"nogroup\""), "{out}");
        assert!(
            out.contains("group = \"nogroup\"\nrate = \"40/m\""),
            "{out}"
        );
        assert!(
            out.contains("exec = [\"/usr/sbin/tcpd\", \"-w\"]\nargv0 = \"in.fingerd\""),
            "{out}"
        );
        assert!(
            out.contains("inetd.conf:7: not imported: RPC services"),
            "{out}"
        );
        assert!(
            out.contains("inetd.conf:8: not imported: unknown service 'nosuch/tcp'"),
            "{out}"
        );
    }

    #[test]
    fn bracketed_ipv6_hosts_continued_lines_and_freebsd_limits() {
        let conf = "\
[::1]:echo stream tcp6 nowait root internal
[::1]:
chargen stream tcp6 nowait/40/600/4 nobody internal
finger stream tcp nowait/0/0/2
    nobody /usr/sbin/tcpd in.fingerd
echo stream tcp nowait/1/2/3/4 root internal
echo stream tcp nowait.x root internal
";
        let imported = import("inetd.conf", conf, &services());
        let out = &imported.toml;
        assert!(
            out.contains("listen = [\"[::1]:7\"]\nbuiltin = \"echo\""),
            "{out}"
        );
        assert!(
            out.contains("listen = [\"[::1]:19\"]\nbuiltin = \"chargen\"\nuser = \"nobody\"\nworkers = { max = 40 }\nrate = \"600/m\"\nper_source = 4\n"),
            "{out}"
        );
        // Continued on its next line; 0 is no limit.
        assert!(
            out.contains(
                "# inetd.conf:4: finger stream tcp nowait/0/0/2 nobody /usr/sbin/tcpd in.fingerd\n"
            ),
            "{out}"
        );
        assert!(out.contains("user = \"nobody\"\nper_source = 2\n"), "{out}");
        assert_eq!(imported.imported, 3, "{out}");
        assert_eq!(
            imported.skipped,
            [
                "inetd.conf:6: not imported: 'nowait/1/2/3/4': at most nowait/N/M/K",
                "inetd.conf:7: not imported: 'nowait.x': 'x' is not a count",
            ]
        );
        out.parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("{e}\n{out}"));
    }
}
