//! Accepting, and the accepted [`Connection`] a handler receives: its
//! stream (TCP or `Unix`-domain), both ends, timeouts, and its descriptor.
//!
//! Binding is `ip`'s and `unix`'s; the PROXY protocol's header is read by
//! `crate::net::proxy`, and only recorded here ([`Connection::set_proxied`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;

use super::{ListenSocket, Listener};
use crate::net::Peer;
use crate::sys;

impl Listener {
    /// Accepts one connection. Returns the raw errno so that the caller can
    /// tell EINTR (a signal: look at your flags), EINVAL (the listener was
    /// shut down: stop) and resource exhaustion apart.
    pub fn accept(&self) -> Result<Connection, Errno> {
        let (fd, peer) = sys::fd::accept(self.as_fd())?;
        let stream = match &self.socket {
            ListenSocket::Tcp(_) => Stream::Tcp(TcpStream::from(fd)),
            ListenSocket::Unix { path, .. } => Stream::Unix(UnixStream::from(fd), path.clone()),
            ListenSocket::Udp(_) => return Err(Errno::EOPNOTSUPP),
        };
        Ok(Connection {
            stream,
            peer,
            proxied_local: None,
            traffic: Traffic::default(),
        })
    }

    /// A connection accepted by another process and passed to this one
    /// (the `prefork-pass` model), as [`Listener::accept`] would give it.
    pub fn connection_from(&self, fd: OwnedFd) -> io::Result<Connection> {
        let (stream, peer) = match &self.socket {
            ListenSocket::Tcp(_) => {
                let s = TcpStream::from(fd);
                let peer = s.peer_addr().ok();
                (Stream::Tcp(s), peer)
            }
            ListenSocket::Unix { path, .. } => {
                (Stream::Unix(UnixStream::from(fd), path.clone()), None)
            }
            ListenSocket::Udp(_) => return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
        };
        Ok(Connection {
            stream,
            peer,
            proxied_local: None,
            traffic: Traffic::default(),
        })
    }
}

/// One accepted connection, as a handler receives it.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    /// The client's address as accept(2) gave it (IP connections only), or
    /// as a PROXY protocol header named it.
    peer: Option<SocketAddr>,
    /// The address the client connected to, from a PROXY protocol header.
    proxied_local: Option<SocketAddr>,
    /// Bytes read and written through this `Connection`.
    traffic: Traffic,
}

/// Bytes read and written through the connections this process has
/// closed, and not yet taken ([`take_traffic`]).
static READ: AtomicU64 = AtomicU64::new(0);
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// A connection's byte counts: plain numbers while it is open, added to
/// the process's ([`take_traffic`]) once when it is dropped, so counting
/// costs no system call and one atomic add per connection.
#[derive(Debug, Default)]
struct Traffic {
    read: u64,
    written: u64,
}

impl Drop for Traffic {
    fn drop(&mut self) {
        if self.read > 0 {
            READ.fetch_add(self.read, Ordering::Relaxed);
        }
        if self.written > 0 {
            WRITTEN.fetch_add(self.written, Ordering::Relaxed);
        }
    }
}

/// The bytes read and written through the connections this process closed
/// since the last call: what its handlers received and sent (not what a
/// program that was given the socket itself did with it).
pub(crate) fn take_traffic() -> (u64, u64) {
    (
        READ.swap(0, Ordering::Relaxed),
        WRITTEN.swap(0, Ordering::Relaxed),
    )
}

#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    /// With the path of the listening socket (getsockname on an accepted
    /// Unix socket does not always give it back).
    Unix(UnixStream, PathBuf),
}

impl Connection {
    /// Both ends of the connection (getsockname and getpeername; not on the
    /// accept path, only for handlers that ask).
    pub fn peer(&self) -> io::Result<Peer> {
        if let (Some(remote), Some(local)) = (self.peer, self.proxied_local) {
            return Ok(Peer::of_proxied(remote, local));
        }
        match &self.stream {
            Stream::Tcp(s) => Peer::of_tcp(s),
            Stream::Unix(s, path) => Ok(Peer::Unix {
                local: path.clone(),
                remote_ids: peer_ids(s),
            }),
        }
    }

    /// Records the client and the address it connected to as a load
    /// balancer's PROXY protocol header gives them: from now on they are
    /// the connection's ends, for access rules, logs and programs.
    pub fn set_proxied(&mut self, remote: SocketAddr, local: SocketAddr) {
        self.peer = Some(remote);
        self.proxied_local = Some(local);
    }

    /// The client's address, known since accept (no system call).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The TCP stream, for handlers that want socket options.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match &self.stream {
            Stream::Tcp(s) => Some(s),
            Stream::Unix(..) => None,
        }
    }

    /// Closes the sending direction (the client reads end-of-file) while
    /// still reading.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s, _) => s.shutdown(std::net::Shutdown::Write),
        }
    }

    /// Makes reads and writes fail with `WouldBlock` after `timeout` without
    /// progress (SO_RCVTIMEO, SO_SNDTIMEO); `None`: wait for ever.
    pub fn set_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
            Stream::Unix(s, _) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
        }
    }

    /// Makes reads and writes return `WouldBlock` instead of waiting (the
    /// event model), or wait again.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => s.set_nonblocking(nonblocking),
            Stream::Unix(s, _) => s.set_nonblocking(nonblocking),
        }
    }

    /// A second descriptor for the same connection.
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn peer_ids(s: &UnixStream) -> Option<(u32, u32)> {
    let cred = nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    Some((cred.uid(), cred.gid()))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn peer_ids(s: &UnixStream) -> Option<(u32, u32)> {
    let (uid, gid) = nix::unistd::getpeereid(s).ok()?;
    Some((uid.as_raw(), gid.as_raw()))
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.stream {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s, _) => s.as_fd(),
        }
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.stream {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s, _) => s.read(buf),
        }?;
        self.traffic.read += n as u64;
        Ok(n)
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.stream {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s, _) => s.write(buf),
        }?;
        self.traffic.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl From<Connection> for OwnedFd {
    fn from(conn: Connection) -> OwnedFd {
        match conn.stream {
            Stream::Tcp(s) => s.into(),
            Stream::Unix(s, _) => s.into(),
        }
    }
}
