//! `ListenAddr`: what a user may write after `preforkd run`.
//!
//! - `127.0.0.1:7000`, `[::1]:7000`: one address.
//! - `:7000`: every address, IPv6 and IPv4 on one dual-stack socket where the
//!   system has IPv6, IPv4 only where it has not.
//! - `unix:/path`: a Unix-domain stream socket.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// An address to listen on, as parsed from the command line or config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenAddr {
    /// One IPv4 or IPv6 address and port. An explicit `[::]` is IPv6 only,
    /// so that `0.0.0.0:7` and `[::]:7` can both be listed.
    Ip(SocketAddr),
    /// `:PORT`: all addresses of both families.
    AnyIp(u16),
    /// `unix:/path`.
    Unix(PathBuf),
}

/// Why a string is not a [`ListenAddr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrParseError {
    /// What the user wrote.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for AddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid address '{}': {}", self.input, self.reason)
    }
}

impl std::error::Error for AddrParseError {}

const EXPECTED: &str = "expected IPv4:PORT, [IPv6]:PORT, :PORT or unix:/PATH";

impl FromStr for ListenAddr {
    type Err = AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| AddrParseError {
            input: s.to_string(),
            reason,
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(err("unix: needs a path, as in unix:/run/echo.sock"));
            }
            // sun_path holds 108 bytes on Linux, 104 on the BSDs, NUL included.
            if path.len() > 103 {
                return Err(err("a unix socket path must be shorter than 104 bytes"));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(port) = s.strip_prefix(':').filter(|p| !p.contains(':')) {
            return port
                .parse()
                .map(ListenAddr::AnyIp)
                .map_err(|_| err("the port must be a number from 0 to 65535"));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr::Ip(addr));
        }
        // Give the most useful reason we can.
        match s.rsplit_once(':') {
            None => Err(err(EXPECTED)),
            Some((_, port)) if port.parse::<u16>().is_err() => {
                Err(err("the port must be a number from 0 to 65535"))
            }
            Some((host, _)) if host.contains(':') && !host.starts_with('[') => {
                Err(err("an IPv6 address must be in brackets, as in [::1]:7000"))
            }
            Some(_) => Err(err(
                "the host must be an IP address (names are not resolved)",
            )),
        }
    }
}

impl ListenAddr {
    /// Port 0: the system picks a free port at bind time.
    pub fn is_port_zero(&self) -> bool {
        matches!(self, ListenAddr::Ip(a) if a.port() == 0) || *self == ListenAddr::AnyIp(0)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Ip(addr) => write!(f, "{addr}"),
            ListenAddr::AnyIp(port) => write!(f, ":{port}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "127.0.0.1:7".parse(),
            Ok(ListenAddr::Ip("127.0.0.1:7".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:0".parse(),
            Ok(ListenAddr::Ip("[::1]:0".parse().unwrap()))
        );
        assert_eq!(":7000".parse(), Ok(ListenAddr::AnyIp(7000)));
        assert_eq!("unix:/tmp/x".parse(), Ok(ListenAddr::Unix("/tmp/x".into())));
    }

    #[test]
    fn explains_what_is_wrong() {
        let reason = |s: &str| s.parse::<ListenAddr>().unwrap_err().reason;
        assert!(reason("1.2.3.4:x").contains("port"));
        assert!(reason(":70000").contains("port"));
        assert!(reason("::1:7").contains("brackets"));
        assert!(reason("localhost:7").contains("IP address"));
        assert!(reason("unix:").contains("path"));
        assert!(reason("7000").contains("expected"));
    }

    #[test]
    fn displays_as_written() {
        for s in ["127.0.0.1:7", "[::1]:7", ":7", "unix:/run/x.sock"] {
            assert_eq!(s.parse::<ListenAddr>().unwrap().to_string(), s);
        }
    }
}
