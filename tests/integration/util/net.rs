//! The client side: connections with timeouts (from a chosen loopback
//! address too), one echo exchange, free ports, datagram sockets that
//! stand in for syslog or the service manager, and the descriptor limit
//! a test with many connections needs.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::TempDir;

/// A connection to `addr` with 5 s connect, read and write timeouts.
pub fn connect_within_5s(addr: &SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// A connection to `to` from the local address `from` (127.0.0.2, ::1...),
/// with a 5 s connect and read timeout.
pub fn try_connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let from: IpAddr = from.parse().unwrap();
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// As [`try_connect_from`], panicking when it fails.
pub fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    try_connect_from(from, to).unwrap_or_else(|e| panic!("connect to {to} from {from}: {e}"))
}

/// Sends `line`, reads back as many bytes, and returns them as text.
pub fn echo_once(stream: &mut TcpStream, line: &str) -> std::io::Result<String> {
    stream.write_all(line.as_bytes())?;
    let mut buf = vec![0u8; line.len()];
    stream.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A free TCP port on 127.0.0.1 (bound, then released), for a daemon
/// that does not report the port it picked (a detached one, HAProxy).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port below 1024 that nothing listens on for `udp` or TCP
/// (needs root to be used).
pub fn free_low_port(udp: bool) -> u16 {
    (600..1000)
        .find(|&p| {
            if udp {
                std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
            } else {
                std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            }
        })
        .expect("no free port below 1024")
}

/// A datagram socket bound at `name` in `dir`, whose reads wait at most
/// `limit`: where a daemon sends its syslog lines or its notifications.
pub fn datagram_socket(dir: &TempDir, name: &str, limit: Duration) -> (PathBuf, UnixDatagram) {
    let path = dir.path().join(name);
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(limit)).unwrap();
    (path, socket)
}

/// A syslog stand-in: [`datagram_socket`] `log.sock` in `dir`.
pub fn syslog_in(dir: &TempDir, limit: Duration) -> (PathBuf, UnixDatagram) {
    datagram_socket(dir, "log.sock", limit)
}

/// Raises this process's descriptor limit so that it can hold `n`
/// connections.
pub fn allow_descriptors(n: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= n,
        "the hard limit on descriptors ({hard}) is below {n}"
    );
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}
