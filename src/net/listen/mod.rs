//! Binding, listening and accepting; the accepted [`Connection`].
//!
//! Every socket is created close-on-exec. A listener is created once, by the
//! master, and inherited by the workers across fork; workers accept on it
//! with [`Listener::accept`], which reports EINTR instead of retrying it.
//!
//! Here: [`Listener`] itself, what it binds by address, what it adopts
//! from the service manager, and what any listener answers. By concern:
//! - `ip`: TCP and UDP sockets and their options;
//! - `unix`: `Unix`-domain sockets and their files, made, changed and
//!   removed only while they are still ours;
//! - `connection`: accepting, and the [`Connection`];
//! - `datagram`: one [`Datagram`] received on a UDP socket.

mod connection;
mod datagram;
mod ip;
mod unix;

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use socket2::{Socket, Type};

use super::ListenAddr;
use crate::sys;
use crate::sys::path::FileId;

pub(crate) use connection::take_traffic;
pub use connection::Connection;
pub use datagram::Datagram;
pub(crate) use datagram::Replies;
use unix::adopted_file;

/// A bound, listening socket.
#[derive(Debug)]
pub struct Listener {
    socket: ListenSocket,
    /// What `listening on` prints: the real address, with the real port.
    shown: String,
    /// Someone else owns it (systemd's socket activation; or, until it is
    /// ready, the old master of a binary upgrade): it is never shut down,
    /// and its file never removed, by us.
    managed: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
enum ListenSocket {
    Tcp(TcpListener),
    Udp(UdpSocket),
    Unix {
        listener: UnixListener,
        path: PathBuf,
        /// The identity of its directory and of the socket file we
        /// created (or adopted), so that we only ever change or remove
        /// our own file, not one a newer daemon bound since, nor what
        /// someone who can write the directory put in its place.
        file: Option<SocketFile>,
    },
}

/// Where a Unix socket's file is: its directory's identity and its own.
#[derive(Debug, Clone, Copy)]
struct SocketFile {
    dir: FileId,
    id: FileId,
}

impl Listener {
    /// A listener on `socket`, shown as `shown`, ours to shut down.
    fn new(socket: ListenSocket, shown: String) -> Listener {
        Listener {
            socket,
            shown,
            managed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Binds and listens on `addr` with the given backlog. TCP sockets get
    /// SO_REUSEADDR, so a restart is not refused while old connections are
    /// in TIME_WAIT. A stale Unix socket file (nobody accepts on it) is
    /// replaced; a live one is "address already in use".
    pub fn bind(addr: &ListenAddr, backlog: i32) -> io::Result<Listener> {
        Self::bind_with_access(addr, backlog, None, None)
    }

    /// As [`Listener::bind`]; a Unix socket's file gets permission bits
    /// `mode` and owner `owner` (uid, gid) before it listens, so that it
    /// is never connectable otherwise (see `Listener::bind_unix`).
    pub fn bind_with_access(
        addr: &ListenAddr,
        backlog: i32,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Listener> {
        match addr {
            ListenAddr::Ip(ip) => {
                let v6_only = ip.is_ipv6();
                Self::bind_tcp(*ip, v6_only, backlog)
            }
            ListenAddr::AnyIp(port) => {
                let any6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, *port, 0, 0));
                match Self::bind_tcp(any6, false, backlog) {
                    Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                        Self::bind_tcp(([0, 0, 0, 0], *port).into(), false, backlog)
                    }
                    other => other,
                }
            }
            ListenAddr::Unix(path) => Self::bind_unix(path, backlog, mode, owner),
        }
    }

    /// listen(2) again with a new backlog (a stream socket already
    /// listening keeps its queue and takes the new length).
    pub fn relisten(&self, backlog: i32) -> io::Result<()> {
        socket2::SockRef::from(self).listen(backlog)
    }

    /// A listening socket someone else made (systemd's socket activation):
    /// its kind and address are asked of the socket itself.
    pub fn adopt(fd: OwnedFd) -> io::Result<Listener> {
        let socket = Socket::from(fd);
        let local = socket.local_addr()?;
        let datagram = socket.r#type()? == Type::DGRAM;
        if let Some(ip) = local.as_socket() {
            if datagram {
                let udp: UdpSocket = socket.into();
                return Ok(Listener::new(ListenSocket::Udp(udp), ip.to_string()));
            }
            let tcp: TcpListener = socket.into();
            return Ok(Listener::new(ListenSocket::Tcp(tcp), ip.to_string()));
        }
        let path = local
            .as_pathname()
            .map(Path::to_path_buf)
            .ok_or_else(|| io::Error::other("neither an IP nor a Unix socket with a path"))?;
        // Its file, as its directory names it now (never through a link),
        // if it passes the checks a socket we bind passes (see
        // `Listener::bind_unix`); otherwise nothing we will ever change or
        // remove.
        let file = match adopted_file(&path) {
            Ok(file) => Some(file),
            Err(why) => {
                log::warn!(
                    "W0072 the socket file {} passed by the service manager: {}; never chmod'ed, chown'ed or removed",
                    path.display(),
                    sys::fd::describe(&why)
                );
                None
            }
        };
        let shown = format!("unix:{}", path.display());
        let listener = UnixListener::from(OwnedFd::from(socket));
        Ok(Listener::new(
            ListenSocket::Unix {
                listener,
                path,
                file,
            },
            shown,
        ))
    }

    /// Whether this socket is the one `addr` over `udp` or TCP asks for.
    pub fn serves(&self, addr: &ListenAddr, udp: bool) -> bool {
        match (&self.socket, addr) {
            (ListenSocket::Tcp(_), _) if udp => false,
            (ListenSocket::Udp(_), _) if !udp => false,
            (ListenSocket::Unix { path, .. }, ListenAddr::Unix(want)) => path == want,
            (ListenSocket::Tcp(_) | ListenSocket::Udp(_), ListenAddr::Ip(want)) => {
                self.local_addr() == Some(*want)
            }
            (ListenSocket::Tcp(_) | ListenSocket::Udp(_), ListenAddr::AnyIp(port)) => self
                .local_addr()
                .is_some_and(|a| a.port() == *port && a.ip().is_unspecified()),
            _ => false,
        }
    }

    /// The UDP socket, for a datagram listener.
    pub fn as_udp(&self) -> Option<&UdpSocket> {
        match &self.socket {
            ListenSocket::Udp(u) => Some(u),
            _ => None,
        }
    }

    /// The address as `listening on` prints it, with the real port.
    pub fn local_display(&self) -> &str {
        &self.shown
    }

    /// ` (IPv4 and IPv6)` or ` (IPv6 only)` after `[::]:PORT` in the
    /// `listening on` line, else nothing (see [`super::stack_note`]).
    pub fn stack_note(&self) -> &'static str {
        let sock = socket2::SockRef::from(self);
        match sock.local_addr().ok().and_then(|a| a.as_socket()) {
            Some(addr) => super::stack_note(sock, addr),
            None => "",
        }
    }

    /// Sets or clears O_NONBLOCK on a stream listener. The flag belongs to
    /// the open file description, so it changes the socket for every
    /// process that shares it (the master, its workers, the workers of
    /// another generation). A datagram socket is left as it is.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match &self.socket {
            ListenSocket::Tcp(l) => l.set_nonblocking(nonblocking),
            ListenSocket::Unix { listener, .. } => listener.set_nonblocking(nonblocking),
            ListenSocket::Udp(_) => Ok(()),
        }
    }

    /// Whether this is a TCP listener (whose shutdown wakes every process
    /// blocked in accept on it).
    pub fn is_tcp(&self) -> bool {
        matches!(self.socket, ListenSocket::Tcp(_))
    }

    /// The bound IP address, for a TCP or UDP socket.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            ListenSocket::Tcp(l) => l.local_addr().ok(),
            ListenSocket::Udp(u) => u.local_addr().ok(),
            ListenSocket::Unix { .. } => None,
        }
    }

    /// Stops the listener for every process that shares it: blocked accepts
    /// wake, new connections are refused (shutdown(2) of the shared socket).
    /// A Unix socket's file is also removed, so new clients fail at once.
    pub fn shut_down(&self) {
        if self.managed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        sys::fd::shutdown_listener(self.as_fd());
        self.remove_socket_file();
    }

    /// Marks a socket the service manager made and keeps (socket
    /// activation): neither shut down nor its file removed by us, so that
    /// what arrives after we stop waits for the next start.
    pub fn set_managed(&self, managed: bool) {
        self.managed
            .store(managed, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.remove_socket_file();
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            ListenSocket::Tcp(l) => l.as_fd(),
            ListenSocket::Udp(u) => u.as_fd(),
            ListenSocket::Unix { listener, .. } => listener.as_fd(),
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
