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
//!   prefix (an address, or `*` for all) binds to that host only, and a line
//!   holding only `host:` sets the host for the lines after it (OpenBSD).
//! - `socket-type` is `stream` or `dgram`; `protocol` is `tcp`, `tcp4`,
//!   `tcp6`, `udp`, `udp4` or `udp6`.
//! - `program` is `internal` for the builtins, or a path; the first
//!   argument after it is the program's `argv[0]`.
//!
//! What preforkd cannot carry over becomes a comment saying why: wait-mode
//! stream services (the program accepts on the listening socket itself),
//! RPC services, raw and seqpacket sockets, unknown service names.
//! `nowait.N` (at most N spawns a minute) becomes `rate = "N/m"`; an
//! `argv[0]` that differs from the program's name becomes `argv0` (tcpd
//! needs it).

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

/// Converts the text of an inetd.conf (named `file` in comments) to a
/// preforkd config.
pub fn import(file: &str, text: &str, services: &Services) -> String {
    let mut out = format!(
        "# Imported from {} by `preforkd import-inetd`.\n\
         # Check it with `preforkd check -c FILE` before you serve it.\n",
        commented(file)
    );
    let mut default_host: Option<String> = None;
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{file}:{}", n + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 1 && fields[0].ends_with(':') {
            let host = fields[0].trim_end_matches(':');
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
            }
            Err(why) => {
                let _ = writeln!(
                    out,
                    "\n# {}: not imported: {}\n#   {}",
                    commented(&at),
                    commented(&why),
                    commented(line)
                );
            }
        }
    }
    out
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
        Some((h, s)) => ((h != "*").then_some(h), s),
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
    // `nowait.N` (OpenBSD, netkit): at most N spawns a minute, a rate.
    // `nowait/N/...` (FreeBSD): limits on children, which a pre-forked pool
    // has by its size; not carried over.
    let (mode, max) = match wait.split_once('.') {
        Some((m, max)) => (m, Some(max)),
        None => (wait.split('/').next().unwrap_or(wait), None),
    };
    if mode == "wait" && proto == "tcp" {
        return Err(
            "wait-mode stream services (the program accepts itself) are not supported".into(),
        );
    }
    // nowait.N: at most N spawns a minute, which preforkd's rate limits.
    let rate = max.and_then(|m| m.parse::<u32>().ok()).filter(|&m| m > 0);
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
        if proto == "udp" {
            return Err("external programs over udp are not supported".into());
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
    if mode == "wait" {
        body.push_str("workers = 1\n");
    }
    if let Some(n) = rate {
        let _ = writeln!(body, "rate = \"{n}/m\"");
    }
    Ok(Entry {
        name: service.to_string(),
        listen,
        udp: proto == "udp",
        body,
    })
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
        Services::parse("echo 7/tcp\necho 7/udp\nchargen 19/tcp ttytst source\nfinger 79/tcp\n")
    }

    /// Found by the `inetd` fuzz target: a NUL byte in a line that was not
    /// imported was copied into a TOML comment, where TOML forbids it, so
    /// the whole output failed to parse.
    #[test]
    fn a_control_character_in_a_line_stays_an_escape_in_its_comment() {
        let conf = "ftp stream tcp nowait \"user wit\0\0\x03h space\" /bin/x\n\
                    echo stream tcp nowait root internal extra\x07words\r\n";
        let out = import("inetd\u{1b}.conf", conf, &services());
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
";
        let out = import("inetd.conf", conf, &services());
        assert!(
            out.contains(
                "name = \"echo\"\nlisten = [\"0.0.0.0:7\"]\nbuiltin = \"echo\"\nuser = \"root\""
            ),
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
            out.contains("inetd.conf:6: not imported: wait-mode stream services"),
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
}
