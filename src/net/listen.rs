//! Binding, listening and accepting; the accepted [`Connection`].
//!
//! Every socket is created close-on-exec. A listener is created once, by the
//! master, and inherited by the workers across fork; workers accept on it
//! with [`Listener::accept`], which reports EINTR instead of retrying it.

use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use socket2::{Domain, Socket, Type};

use super::{ListenAddr, Peer};
use crate::sys;
use crate::sys::path::{Entry, FileId, Kind, Parent, Pinned, Removal};

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

    fn bind_tcp(addr: SocketAddr, v6_only: bool, backlog: i32) -> io::Result<Listener> {
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
        Ok(Listener {
            socket: ListenSocket::Tcp(listener),
            shown,
            managed: std::sync::atomic::AtomicBool::new(false),
        })
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
        Ok(Listener {
            socket: ListenSocket::Udp(udp),
            shown,
            managed: std::sync::atomic::AtomicBool::new(false),
        })
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
                return Ok(Listener {
                    socket: ListenSocket::Udp(udp),
                    shown: ip.to_string(),
                    managed: std::sync::atomic::AtomicBool::new(false),
                });
            }
            let tcp: TcpListener = socket.into();
            return Ok(Listener {
                socket: ListenSocket::Tcp(tcp),
                shown: ip.to_string(),
                managed: std::sync::atomic::AtomicBool::new(false),
            });
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
        Ok(Listener {
            shown: format!("unix:{}", path.display()),
            managed: std::sync::atomic::AtomicBool::new(false),
            socket: ListenSocket::Unix {
                listener: UnixListener::from(OwnedFd::from(socket)),
                path,
                file,
            },
        })
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

    /// Sets the mode and owner of a Unix socket's file, where they differ
    /// (no-op for IP): a reload changed `socket_mode` or `socket_owner`.
    ///
    /// Only the file this listener made is changed, through a descriptor
    /// of its inode (see `crate::sys::path::Parent::pin_socket`): if
    /// its name holds anything else now, nothing is changed and the error
    /// says what is there. The mode first, while the file may still be
    /// the master's own: changing the mode of a file given away needs
    /// CAP_FOWNER, which the packaged systemd unit does not grant.
    pub fn set_file_access(&self, mode: Option<u32>, owner: Option<(u32, u32)>) -> io::Result<()> {
        let ListenSocket::Unix { path, file, .. } = &self.socket else {
            return Ok(());
        };
        if mode.is_none() && owner.is_none() {
            return Ok(());
        }
        let (parent, file) = our_parent(path, file.as_ref())?;
        let pinned = match parent.pin_socket(file.id)? {
            Pinned::Socket(s) => s,
            Pinned::Replaced(found) => return Err(replaced(found)),
        };
        let now = pinned.entry();
        if let Some(mode) = mode.filter(|&m| now.mode & 0o777 != m) {
            pinned.chmod(mode)?;
        }
        if let Some((uid, gid)) = owner.filter(|&o| (now.uid, now.gid) != o) {
            pinned.chown(uid, gid)?;
        }
        Ok(())
    }

    /// The UDP socket, for a datagram listener.
    pub fn as_udp(&self) -> Option<&UdpSocket> {
        match &self.socket {
            ListenSocket::Udp(u) => Some(u),
            _ => None,
        }
    }

    /// Binds a Unix stream socket at `path`, as root might in a directory
    /// others can write:
    /// 0. the directory is reached without a link anyone else could have
    ///    planted, through directories only root and the daemon's user
    ///    can change (the directory itself may be a service user's); else
    ///    nothing is bound (see [`Parent::open`], [`Parent::check_way`]);
    /// 1. a stale socket file there (ours, nobody accepts on it) is
    ///    removed; anything else is left for bind(2) to refuse;
    /// 2. bind(2) relative to the directory, under a umask that gives the
    ///    file `mode` at birth (see [`Parent::bind_socket`]);
    /// 3. the file the directory names right after must be a socket of
    ///    ours with one link: its device and inode are recorded;
    /// 4. its owner is changed through a descriptor of that inode;
    /// 5. listen(2) last: until then, a connection is refused. So the
    ///    socket is connectable only with its final mode and owner.
    fn bind_unix(
        path: &Path,
        backlog: i32,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Listener> {
        let parent = Parent::open(path)?;
        parent.check_way().map_err(io::Error::other)?;
        remove_if_stale(&parent)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        parent.bind_socket(socket.as_fd(), mode)?;
        let made = parent.entry()?.filter(|e| {
            e.kind == Kind::Socket
                && e.uid == nix::unistd::geteuid().as_raw()
                && e.nlink == 1
                && mode.is_none_or(|m| e.mode & 0o777 == m)
        });
        let Some(made) = made else {
            return Err(io::Error::other(
                "its file was replaced right after bind; nothing was changed",
            ));
        };
        let file = SocketFile {
            dir: parent.dir_id()?,
            id: made.id,
        };
        if let Some((uid, gid)) = owner {
            match parent.pin_socket(file.id)? {
                Pinned::Socket(s) => s.chown(uid, gid)?,
                Pinned::Replaced(found) => return Err(replaced(found)),
            }
        }
        socket.listen(backlog)?;
        Ok(Listener {
            socket: ListenSocket::Unix {
                listener: UnixListener::from(OwnedFd::from(socket)),
                path: path.to_path_buf(),
                file: Some(file),
            },
            shown: format!("unix:{}", path.display()),
            managed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Removes the socket of another daemon of ours (the previous master
    /// of a binary upgrade) at `path`, to bind our own there. Only a
    /// socket owned by root or by us is removed, never through a link.
    pub fn remove_our_socket(path: &Path) -> io::Result<()> {
        let parent = Parent::open(path)?;
        parent.check_way().map_err(io::Error::other)?;
        match parent.entry()? {
            Some(e) if e.kind == Kind::Socket && e.owned_by_us() => {
                parent.remove_if(e.id).map(drop)
            }
            Some(e) => Err(replaced(Some(e))),
            None => Ok(()),
        }
    }

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
        })
    }

    /// The address as `listening on` prints it, with the real port.
    pub fn local_display(&self) -> &str {
        &self.shown
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

    /// Whether the path of this Unix-domain socket still names it (and not
    /// a socket another process has bound there since). False for IP
    /// sockets.
    pub fn owns_socket_file(&self) -> bool {
        match &self.socket {
            ListenSocket::Unix { path, file, .. } => {
                our_parent(path, file.as_ref()).is_ok_and(|(parent, file)| {
                    parent
                        .entry()
                        .ok()
                        .flatten()
                        .is_some_and(|e| e.id == file.id)
                })
            }
            _ => false,
        }
    }

    /// Removes the socket's file, if its path still names it (unlinkat(2)
    /// in its directory after checking device and inode). Something else
    /// there is left alone: silently if it is a socket of ours (a newer
    /// master's), with a warning (W0071) otherwise.
    fn remove_socket_file(&self) {
        if self.managed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let ListenSocket::Unix { path, file, .. } = &self.socket else {
            return;
        };
        let Some(file) = file else { return };
        let found = match our_parent(path, Some(file)) {
            Ok((parent, file)) => match parent.remove_if(file.id) {
                Ok(Removal::Removed | Removal::Gone) => return,
                Ok(Removal::Replaced(e)) if e.kind == Kind::Socket && e.owned_by_us() => return,
                Ok(Removal::Replaced(e)) => replaced(Some(e)),
                Err(e) => e,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => e,
        };
        log::warn!(
            "W0071 the socket file {}: {}; left in place",
            path.display(),
            sys::fd::describe(&found)
        );
    }
}

/// The file of a socket someone else bound at `path` (systemd, or the old
/// master of a binary upgrade), if it may be taken for ours: a socket
/// owned by root or the daemon's user, with one link, in a directory that
/// only they can swap. Else why not: a hard link to another socket of
/// root's, planted in a directory its user can write, must not be chmod'ed
/// and chown'ed at a reload.
fn adopted_file(path: &Path) -> io::Result<SocketFile> {
    let parent = Parent::open(path)?;
    parent.check_way().map_err(io::Error::other)?;
    let e = parent
        .entry()?
        .ok_or_else(|| io::Error::other("there is no file at its path"))?;
    if e.kind != Kind::Socket || !e.owned_by_us() {
        return Err(io::Error::other(format!(
            "it is {} owned by uid {}",
            e.kind.name(),
            e.uid
        )));
    }
    if e.nlink != 1 {
        return Err(io::Error::other(format!("it has {} hard links", e.nlink)));
    }
    Ok(SocketFile {
        dir: parent.dir_id()?,
        id: e.id,
    })
}

/// The directory of a socket's file, open, if it is still the directory
/// the file was made in.
fn our_parent(path: &Path, file: Option<&SocketFile>) -> io::Result<(Parent, SocketFile)> {
    let file = *file.ok_or_else(|| io::Error::other("it was not made by this daemon"))?;
    let parent = Parent::open(path)?;
    if parent.dir_id()? != file.dir {
        return Err(io::Error::other(format!(
            "its directory {} was replaced",
            parent.dir_path().display()
        )));
    }
    Ok((parent, file))
}

/// The error for a socket's file replaced by `found` (`None`: removed).
fn replaced(found: Option<Entry>) -> io::Error {
    match found {
        None => io::Error::other("it was removed"),
        Some(e) => io::Error::other(format!(
            "it was replaced by {} owned by uid {}",
            e.kind.name(),
            e.uid
        )),
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

/// Removes the file at `parent`'s name if it is a socket of ours (root's
/// or the daemon user's) that nobody accepts on, left by a daemon that was
/// killed: connected to through its inode, never through a link. A live
/// one is "address already in use"; someone else's socket is refused;
/// anything else is left for bind to report.
fn remove_if_stale(parent: &Parent) -> io::Result<()> {
    let Some(e) = parent.entry()? else {
        return Ok(());
    };
    if e.kind != Kind::Socket {
        return Ok(());
    }
    if !e.owned_by_us() {
        return Err(io::Error::other(format!(
            "a socket owned by uid {} is in the way; not removed",
            e.uid
        )));
    }
    let Pinned::Socket(pinned) = parent.pin_socket(e.id)? else {
        return Ok(());
    };
    match parent.socket_is_live(&pinned) {
        Ok(true) => Err(io::Error::from_raw_os_error(libc::EADDRINUSE)),
        Ok(false) => parent.remove_if(e.id).map(drop),
        Err(_) => Ok(()),
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
        match &mut self.stream {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s, _) => s.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s, _) => s.write(buf),
        }
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
