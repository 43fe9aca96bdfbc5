//! TCP and UDP sockets: the options each is bound with (SO_REUSEADDR,
//! SO_REUSEPORT, IPV6_V6ONLY) and `:PORT` on IPv6 and IPv4 both.
//!
//! Unix-domain sockets are `unix`'s; accepting is `connection`'s.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, UdpSocket};

use socket2::{Domain, Socket, Type};

use super::{ListenSocket, Listener};
use crate::net::ListenAddr;

impl Listener {
    pub(super) fn bind_tcp(addr: SocketAddr, v6_only: bool, backlog: i32) -> io::Result<Listener> {
        Self::bind_tcp_with(addr, v6_only, Some(backlog), false)
    }

    /// A TCP socket with SO_REUSEPORT on `addr` (the `reuseport` model):
    /// listening with `backlog`, or only bound when `backlog` is `None` (the
    /// master's, which holds the port without taking any connection:
    /// the kernel spreads connections over listening sockets only).
    /// `:PORT` is IPv6 and IPv4 both where the system can, as for
    /// [`Listener::bind`].
    pub fn bind_reuseport(addr: &ListenAddr, backlog: Option<i32>) -> io::Result<Listener> {
        match addr {
            ListenAddr::Ip(ip) => Self::bind_tcp_with(*ip, ip.is_ipv6(), backlog, true),
            ListenAddr::AnyIp(port) => {
                let any6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, *port, 0, 0));
                match Self::bind_tcp_with(any6, false, backlog, true) {
                    Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                        Self::bind_tcp_with(([0, 0, 0, 0], *port).into(), false, backlog, true)
                    }
                    other => other,
                }
            }
            ListenAddr::Unix(_) => Err(io::Error::from_raw_os_error(libc::EPROTONOSUPPORT)),
        }
    }

    /// Another listening SO_REUSEPORT socket on this one's address, IPv6
    /// only or not as this one is (a worker's own, in `reuseport`).
    pub fn rebind_reuseport(&self, backlog: i32) -> io::Result<Listener> {
        let addr = self
            .local_addr()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EPROTONOSUPPORT))?;
        let v6_only = addr.is_ipv6() && socket2::SockRef::from(self).only_v6()?;
        Self::bind_tcp_with(addr, v6_only, Some(backlog), true)
    }

    fn bind_tcp_with(
        addr: SocketAddr,
        v6_only: bool,
        backlog: Option<i32>,
        reuse_port: bool,
    ) -> io::Result<Listener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
            // FreeBSD spreads connections over the sockets only with this.
            #[cfg(target_os = "freebsd")]
            socket.set_reuse_port_lb(true)?;
        }
        if addr.is_ipv6() {
            socket.set_only_v6(v6_only)?;
        }
        socket.bind(&addr.into())?;
        if let Some(backlog) = backlog {
            socket.listen(backlog)?;
        }
        let listener: TcpListener = socket.into();
        let shown = listener.local_addr()?.to_string();
        Ok(Listener::new(ListenSocket::Tcp(listener), shown))
    }

    /// Binds a UDP socket (an explicit `[::]` is IPv6 only,
    /// `:PORT` dual-stack). Unix addresses are refused: datagram services
    /// are IP only.
    pub fn bind_udp(addr: &ListenAddr) -> io::Result<Listener> {
        let (ip, v6_only) = match addr {
            ListenAddr::Ip(ip) => (*ip, ip.is_ipv6()),
            ListenAddr::AnyIp(port) => (
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, *port, 0, 0)),
                false,
            ),
            ListenAddr::Unix(_) => return Err(io::Error::from_raw_os_error(libc::EPROTONOSUPPORT)),
        };
        // No SO_REUSEADDR: for UDP it would let a second daemon bind the
        // same port and share its datagrams.
        let socket = Socket::new(Domain::for_address(ip), Type::DGRAM, None)?;
        if ip.is_ipv6() {
            socket.set_only_v6(v6_only)?;
        }
        socket.bind(&ip.into())?;
        let udp: UdpSocket = socket.into();
        let shown = udp.local_addr()?.to_string();
        Ok(Listener::new(ListenSocket::Udp(udp), shown))
    }
}
