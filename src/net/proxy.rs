//! The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer in
//! front of the daemon sends, before anything else on the connection, who
//! the client really is.
//!
//! Two halves:
//! - [`decode`], pure: the bytes received so far are a complete header
//!   (with its length and addresses), the start of one, or not one at all.
//!   The `ppp` crate does the parsing; this is what the `proxy` fuzz target
//!   drives.
//! - [`read_header`]: takes the header off an accepted socket *without
//!   reading one byte past it*, since what follows belongs to the handler,
//!   or to the program an exec service hands the socket to. Version 2
//!   announces its length in its first 16 bytes; version 1 ends at CRLF, so
//!   it is peeked at (MSG_PEEK) and only what precedes the CRLF is read.
//!   The whole header must arrive within the service's `proxy_timeout`
//!   ([`DEFAULT_TIMEOUT`], at most [`MAX_TIMEOUT`]; or the service's
//!   `timeout`, if shorter: the time counts as busy) and fit in [`MAX_V2`]
//!   bytes (107 for version 1, as the protocol says).
//!
//! A header is believed only from the balancers a service names
//! (`trusted_proxies`, see [`Proxy`]). Any other peer is a direct client:
//! judged by its own address, never waited for, and refused if what it has
//! sent already starts like a header ([`looks_like_header`]).
//!
//! A LOCAL command (version 2; a load balancer's health check) and an
//! UNKNOWN one (version 1) carry no client: the connection's own addresses
//! stay.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use ppp::PartialResult;

#[cfg(unix)]
pub use reader::{peek_now, read_header};

/// How long a trusted balancer may take to send its whole header, unless
/// the service says (`proxy_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest `proxy_timeout` accepted: a balancer sends its header with
/// the connection's first bytes, and every second allowed is a second a
/// stalled connection holds a worker.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// A service's PROXY protocol settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Which versions it accepts.
    pub version: ProxyVersion,
    /// The balancers whose headers are believed (never empty).
    pub trusted: Vec<IpNet>,
    /// How long a trusted balancer may take to send its header.
    pub timeout: Duration,
}

impl Proxy {
    /// Whether a connection from `peer` (its real address) is one of the
    /// trusted balancers', and so must start with a header.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|n| n.contains(&peer))
    }
}

/// Whether `buf`, what a client sent first, is (the start of) a PROXY
/// protocol header of either version: from a peer that is not a trusted
/// balancer, that is a forged claim.
pub fn looks_like_header(buf: &[u8]) -> bool {
    const V1: &[u8] = b"PROXY ";
    let n = buf.len().min(V1.len());
    let m = buf.len().min(V2_SIGNATURE.len());
    !buf.is_empty() && (buf[..n] == V1[..n] || buf[..m] == V2_SIGNATURE[..m])
}

/// The longest version 1 header, CRLF included (the protocol's limit).
pub const MAX_V1: usize = 107;

/// The longest version 2 header accepted (16 bytes, addresses and TLVs).
pub const MAX_V2: usize = 1024;

/// The 12-byte signature that starts every version 2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Which versions a service accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// Text headers only.
    V1,
    /// Binary headers only.
    V2,
    /// Either.
    Any,
}

impl FromStr for ProxyVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<ProxyVersion, String> {
        match s {
            "v1" => Ok(ProxyVersion::V1),
            "v2" => Ok(ProxyVersion::V2),
            "any" => Ok(ProxyVersion::Any),
            other => Err(format!(
                "unknown PROXY protocol version '{other}' (expected v1, v2 or any)"
            )),
        }
    }
}

impl fmt::Display for ProxyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
            ProxyVersion::Any => "any",
        })
    }
}

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxied {
    /// The client (source) and the address it connected to (destination).
    Client {
        /// The client.
        source: SocketAddr,
        /// Where it connected, on the load balancer.
        destination: SocketAddr,
    },
    /// No client to report (LOCAL, UNKNOWN, or a family other than IP).
    Local,
}

/// The result of looking at the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole header of this many bytes.
    Complete(Proxied, usize),
    /// The start of a header: more bytes are needed.
    Incomplete,
    /// Not a header this service accepts, and why.
    Invalid(String),
}

/// Decodes the header at the start of `buf`.
pub fn decode(buf: &[u8], accept: ProxyVersion) -> Decoded {
    let Some(&first) = buf.first() else {
        return Decoded::Incomplete;
    };
    match first {
        b'\r' if accept != ProxyVersion::V1 => decode_v2(buf),
        b'P' if accept != ProxyVersion::V2 => decode_v1(buf),
        b'\r' => Decoded::Invalid("a version 2 header where version 1 is expected".into()),
        b'P' => Decoded::Invalid("a version 1 header where version 2 is expected".into()),
        _ => Decoded::Invalid("no PROXY protocol header".into()),
    }
}

fn decode_v1(buf: &[u8]) -> Decoded {
    // A version 1 header is whole at its CRLF; before that, it is the
    // start of one as long as it starts like one and is not too long.
    const PREFIX: &[u8] = b"PROXY ";
    let Some(cr) = buf.iter().position(|&c| c == b'\r') else {
        return if !PREFIX.starts_with(&buf[..buf.len().min(PREFIX.len())]) {
            Decoded::Invalid("no PROXY protocol header".into())
        } else if buf.len() >= MAX_V1 {
            Decoded::Invalid(format!("a version 1 header longer than {MAX_V1} bytes"))
        } else {
            Decoded::Incomplete
        };
    };
    if cr + 2 > MAX_V1 {
        return Decoded::Invalid(format!("a version 1 header longer than {MAX_V1} bytes"));
    }
    if buf.len() < cr + 2 {
        return Decoded::Incomplete;
    }
    let header = ppp::v1::Header::try_from(&buf[..cr + 2]);
    match header {
        Ok(h) => {
            let proxied = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => Proxied::Client {
                    source: (a.source_address, a.source_port).into(),
                    destination: (a.destination_address, a.destination_port).into(),
                },
                ppp::v1::Addresses::Tcp6(a) => Proxied::Client {
                    source: (a.source_address, a.source_port).into(),
                    destination: (a.destination_address, a.destination_port).into(),
                },
                ppp::v1::Addresses::Unknown => Proxied::Local,
            };
            Decoded::Complete(proxied, h.header.len())
        }
        Err(e) => Decoded::Invalid(format!("a bad version 1 header: {e}")),
    }
}

fn decode_v2(buf: &[u8]) -> Decoded {
    if buf.len() >= 16 && buf.starts_with(V2_SIGNATURE) {
        let total = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if total > MAX_V2 {
            return Decoded::Invalid(format!(
                "a version 2 header of {total} bytes, more than {MAX_V2}"
            ));
        }
    }
    let header = ppp::v2::Header::try_from(buf);
    if header.is_incomplete() {
        return Decoded::Incomplete;
    }
    match header {
        Ok(h) => {
            let proxied = match (h.command, h.addresses) {
                (ppp::v2::Command::Local, _) => Proxied::Local,
                (_, ppp::v2::Addresses::IPv4(a)) => Proxied::Client {
                    source: (a.source_address, a.source_port).into(),
                    destination: (a.destination_address, a.destination_port).into(),
                },
                (_, ppp::v2::Addresses::IPv6(a)) => Proxied::Client {
                    source: (a.source_address, a.source_port).into(),
                    destination: (a.destination_address, a.destination_port).into(),
                },
                (_, ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_)) => {
                    Proxied::Local
                }
            };
            Decoded::Complete(proxied, h.len())
        }
        Err(e) => Decoded::Invalid(format!("a bad version 2 header: {e}")),
    }
}

/// Why no header could be taken off a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// Not a header, or not one the service accepts.
    Invalid(String),
    /// Nothing, or not all of it, within the service's `proxy_timeout`.
    Timeout,
    /// The client closed (or reset) the connection first.
    Closed,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Invalid(why) => f.write_str(why),
            ProxyError::Timeout => f.write_str("no whole PROXY protocol header in time"),
            ProxyError::Closed => f.write_str("closed before its PROXY protocol header ended"),
        }
    }
}

/// Taking the header off a socket: Unix only, like the workers that do
/// it (it peeks with recv(2) and MSG_PEEK).
#[cfg(unix)]
mod reader {
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
    use std::time::{Duration, Instant};

    use nix::errno::Errno;
    use nix::sys::socket::{recv, MsgFlags};

    use super::{decode, Decoded, Proxied, ProxyError, ProxyVersion, MAX_V2};

    /// Takes the header off `socket` (which must wait for data: the worker's
    /// accepted sockets do), leaving every byte after it unread.
    ///
    /// Peeks at what has arrived; while that is only the start of a header,
    /// every byte of it is header (a version 1 header has no CRLF among them
    /// yet; a version 2 header is shorter than its announced length), so it
    /// is taken, and the next peek waits for more. Once the header is whole,
    /// exactly its remaining bytes are taken.
    ///
    /// The header must be whole within `timeout` (the service's
    /// `proxy_timeout`, or its `timeout` if shorter).
    pub fn read_header(
        socket: BorrowedFd<'_>,
        accept: ProxyVersion,
        timeout: Duration,
    ) -> Result<Proxied, ProxyError> {
        // Both are bounded by the checker; `now` plus a minute cannot overflow.
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now);
        let mut head: Vec<u8> = Vec::with_capacity(64);
        let mut peeked = [0u8; MAX_V2];
        loop {
            let room = MAX_V2 - head.len();
            if room == 0 {
                return Err(ProxyError::Invalid(format!(
                    "a header longer than {MAX_V2} bytes"
                )));
            }
            let n = receive(socket, &mut peeked[..room], MsgFlags::MSG_PEEK, deadline)?;
            let taken = head.len();
            head.extend_from_slice(&peeked[..n]);
            match decode(&head, accept) {
                Decoded::Complete(proxied, len) => {
                    take(socket, len - taken, deadline)?;
                    return Ok(proxied);
                }
                Decoded::Invalid(why) => return Err(ProxyError::Invalid(why)),
                Decoded::Incomplete => take(socket, n, deadline)?,
            }
        }
    }

    /// What a client has sent already, up to `buf`'s size, without waiting
    /// and without taking it off the socket (recv(2) with MSG_PEEK and
    /// MSG_DONTWAIT): 0 when nothing has arrived yet, or it has closed.
    pub fn peek_now(socket: BorrowedFd<'_>, buf: &mut [u8]) -> usize {
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        loop {
            match recv(socket.as_fd().as_raw_fd(), buf, flags) {
                Err(Errno::EINTR) => continue,
                Ok(n) => return n,
                Err(_) => return 0,
            }
        }
    }

    /// One recv(2) with the time left before `deadline` as SO_RCVTIMEO.
    fn receive(
        socket: BorrowedFd<'_>,
        buf: &mut [u8],
        flags: MsgFlags,
        deadline: Instant,
    ) -> Result<usize, ProxyError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ProxyError::Timeout);
            }
            // Under a microsecond would round to 0, which means no timeout.
            let left = left.max(Duration::from_millis(1));
            let _ = socket2::SockRef::from(&socket).set_read_timeout(Some(left));
            match recv(socket.as_fd().as_raw_fd(), buf, flags) {
                Ok(0) => return Err(ProxyError::Closed),
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Err(ProxyError::Timeout),
                Err(_) => return Err(ProxyError::Closed),
            }
        }
    }

    /// Reads and drops exactly `n` bytes.
    fn take(socket: BorrowedFd<'_>, mut n: usize, deadline: Instant) -> Result<(), ProxyError> {
        let mut sink = [0u8; MAX_V2];
        while n > 0 {
            let got = receive(
                socket,
                &mut sink[..n.min(MAX_V2)],
                MsgFlags::empty(),
                deadline,
            )?;
            n -= got;
        }
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::reader::read_header as read_header_within;
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        let len = (addresses.len() + tlvs.len()) as u16;
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(addresses);
        h.extend_from_slice(tlvs);
        h
    }

    fn client(source: &str, destination: &str) -> Proxied {
        Proxied::Client {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    #[test]
    fn version_1_ipv4_ipv6_and_unknown() {
        let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 7\r\nhello";
        assert_eq!(
            decode(h, ProxyVersion::V1),
            Decoded::Complete(client("192.0.2.7:40000", "198.51.100.1:7"), h.len() - 5)
        );
        let h = b"PROXY TCP6 2001:db8::5 2001:db8::1 4000 443\r\n";
        assert_eq!(
            decode(h, ProxyVersion::Any),
            Decoded::Complete(client("[2001:db8::5]:4000", "[2001:db8::1]:443"), h.len())
        );
        assert_eq!(
            decode(b"PROXY UNKNOWN\r\n", ProxyVersion::Any),
            Decoded::Complete(Proxied::Local, 15)
        );
    }

    #[test]
    fn version_2_ipv4_ipv6_local_and_tlvs() {
        let mut a4 = vec![192, 0, 2, 7, 198, 51, 100, 1];
        a4.extend_from_slice(&40000u16.to_be_bytes());
        a4.extend_from_slice(&7u16.to_be_bytes());
        let h = v2(1, 0x11, &a4, &[]);
        assert_eq!(
            decode(&h, ProxyVersion::V2),
            Decoded::Complete(client("192.0.2.7:40000", "198.51.100.1:7"), 28)
        );
        let mut a6 = Vec::new();
        a6.extend_from_slice(
            &"2001:db8::5"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        a6.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        a6.extend_from_slice(&4000u16.to_be_bytes());
        a6.extend_from_slice(&443u16.to_be_bytes());
        // With a NOOP TLV, which is skipped.
        let h = v2(1, 0x21, &a6, &[0x04, 0, 2, 0, 0]);
        let mut with_data = h.clone();
        with_data.extend_from_slice(b"GET /");
        assert_eq!(
            decode(&with_data, ProxyVersion::Any),
            Decoded::Complete(client("[2001:db8::5]:4000", "[2001:db8::1]:443"), h.len())
        );
        // LOCAL: a health check, no client.
        let h = v2(0, 0x00, &[], &[]);
        assert_eq!(
            decode(&h, ProxyVersion::Any),
            Decoded::Complete(Proxied::Local, 16)
        );
    }

    #[test]
    fn truncated_headers_ask_for_more() {
        let v1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 7\r\n";
        for end in 1..v1.len() {
            assert_eq!(
                decode(&v1[..end], ProxyVersion::V1),
                Decoded::Incomplete,
                "{end}"
            );
        }
        let mut a4 = vec![192, 0, 2, 7, 198, 51, 100, 1, 0, 1, 0, 2];
        a4.extend_from_slice(&[0x04, 0, 1, 0]);
        let h = v2(1, 0x11, &a4, &[]);
        for end in 1..h.len() {
            assert_eq!(
                decode(&h[..end], ProxyVersion::V2),
                Decoded::Incomplete,
                "{end}"
            );
        }
    }

    #[test]
    fn oversized_garbage_and_the_wrong_version_are_refused() {
        let long = format!("PROXY TCP4 {}", "1".repeat(120));
        assert!(matches!(
            decode(long.as_bytes(), ProxyVersion::V1),
            Decoded::Invalid(_)
        ));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(
            matches!(decode(&huge, ProxyVersion::V2), Decoded::Invalid(w) if w.contains("more than"))
        );
        for garbage in [
            &b"GET / HTTP/1.0\r\n"[..],
            b"\x00\x01",
            b"PROXY TCP4 nonsense here\r\n",
        ] {
            assert!(
                matches!(decode(garbage, ProxyVersion::Any), Decoded::Invalid(_)),
                "{garbage:?}"
            );
        }
        assert!(matches!(
            decode(b"PROXY UNKNOWN\r\n", ProxyVersion::V2),
            Decoded::Invalid(_)
        ));
        assert!(matches!(
            decode(&v2(0, 0, &[], &[]), ProxyVersion::V1),
            Decoded::Invalid(_)
        ));
        // A bad version or command byte.
        let mut bad = v2(0, 0, &[], &[]);
        bad[12] = 0x13;
        assert!(matches!(
            decode(&bad, ProxyVersion::V2),
            Decoded::Invalid(_)
        ));
    }

    #[test]
    fn what_looks_like_a_header_and_who_is_trusted() {
        for yes in [
            &b"P"[..],
            b"PROXY",
            b"PROXY TCP4 1.2.3.4",
            b"\r\n\r",
            b"\r\n\r\n\0\r\nQUIT\n\x21",
        ] {
            assert!(looks_like_header(yes), "{yes:?}");
        }
        for no in [&b""[..], b"POST /", b"hello", b"\r\nX", b"PROXYX"] {
            assert!(!looks_like_header(no), "{no:?}");
        }
        let p = Proxy {
            version: ProxyVersion::Any,
            trusted: vec!["10.0.0.0/8".parse().unwrap()],
            timeout: DEFAULT_TIMEOUT,
        };
        assert!(p.trusts("10.1.2.3".parse().unwrap()));
        assert!(p.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!p.trusts("127.0.0.1".parse().unwrap()));
    }

    /// Sends `parts` with pauses, as a slow client would.
    fn slowly(mut to: UnixStream, parts: Vec<Vec<u8>>) -> std::thread::JoinHandle<UnixStream> {
        std::thread::spawn(move || {
            for p in parts {
                to.write_all(&p).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            to
        })
    }

    #[test]
    fn the_header_is_read_in_pieces_and_nothing_after_it() {
        let (server, client_end) = UnixStream::pair().unwrap();
        let sender = slowly(
            client_end,
            vec![
                b"PROX".to_vec(),
                b"Y TCP4 192.0.2.7 198.51.100.1 ".to_vec(),
                b"40000 7\r".to_vec(),
                b"\nhello".to_vec(),
            ],
        );
        let got = read_header_within(server.as_fd(), ProxyVersion::Any, Duration::from_secs(5));
        assert_eq!(got, Ok(client("192.0.2.7:40000", "198.51.100.1:7")));
        let _client = sender.join().unwrap();
        let mut rest = [0u8; 5];
        (&server).read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"hello");

        let (server, client_end) = UnixStream::pair().unwrap();
        let h = v2(0, 0, &[], &[0x04, 0, 3, 1, 2, 3]);
        let sender = slowly(
            client_end,
            vec![
                h[..10].to_vec(),
                h[10..17].to_vec(),
                [&h[17..], b"data"].concat(),
            ],
        );
        let got = read_header_within(server.as_fd(), ProxyVersion::V2, Duration::from_secs(5));
        assert_eq!(got, Ok(Proxied::Local));
        let _client = sender.join().unwrap();
        let mut rest = [0u8; 4];
        (&server).read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"data");
    }

    #[test]
    fn a_silent_or_departing_client_gives_up() {
        let (server, client_end) = UnixStream::pair().unwrap();
        let got = read_header_within(
            server.as_fd(),
            ProxyVersion::Any,
            Duration::from_millis(100),
        );
        assert_eq!(got, Err(ProxyError::Timeout));
        (&client_end).write_all(b"PROXY TCP4").unwrap();
        drop(client_end);
        let got = read_header_within(server.as_fd(), ProxyVersion::Any, Duration::from_secs(5));
        assert_eq!(got, Err(ProxyError::Closed));
    }
}
