//! Descriptors: accepting, closing what a child should not hold, shutting
//! a listener down, and naming an errno the way a user reads it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use nix::sys::socket::Shutdown;

/// accept4(2) with SOCK_CLOEXEC on `listener`, with the client's address
/// (which the kernel fills in for free; `None` for a Unix socket).
///
/// Unlike `std::net::TcpListener::accept`, EINTR is *returned*, not retried:
/// a worker blocked here must see its stop signal.
pub fn accept(listener: BorrowedFd<'_>) -> Result<(OwnedFd, Option<SocketAddr>), Errno> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let addr_ptr = std::ptr::addr_of_mut!(storage).cast::<libc::sockaddr>();
    #[cfg(not(target_vendor = "apple"))]
    // SAFETY: the pointers are valid for the sizes given, and the kernel
    // writes at most `len` bytes of address.
    let fd = unsafe { libc::accept4(listener.as_raw_fd(), addr_ptr, &mut len, libc::SOCK_CLOEXEC) };
    #[cfg(target_vendor = "apple")]
    // SAFETY: as above; macOS has no accept4 (close-on-exec is set below;
    // the gap is harmless in a single-threaded worker).
    let fd = unsafe { libc::accept(listener.as_raw_fd(), addr_ptr, &mut len) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: accept just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The BSD accept(2) of macOS also gives the new socket the listener's
    // O_NONBLOCK, which the readiness models set: cleared, so that every
    // connection starts blocking, as accept4 makes it elsewhere.
    #[cfg(target_vendor = "apple")]
    {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        let status = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
        if status.contains(OFlag::O_NONBLOCK) {
            fcntl(
                fd.as_raw_fd(),
                FcntlArg::F_SETFL(status - OFlag::O_NONBLOCK),
            )?;
        }
    }
    Ok((fd, socket_addr(&storage, true)))
}

/// The IP address in a sockaddr_storage the kernel filled in; an
/// IPv4-mapped IPv6 address as the IPv4 address it maps when `canonical`
/// (a client's address to log and match), as it is otherwise (an address
/// to send to on the same socket).
pub(super) fn socket_addr(storage: &libc::sockaddr_storage, canonical: bool) -> Option<SocketAddr> {
    let ptr = std::ptr::addr_of!(*storage);
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: ss_family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let sin = unsafe { &*ptr.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*ptr.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let ip = if canonical {
                ip.to_canonical()
            } else {
                ip.into()
            };
            Some(SocketAddr::new(ip, u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

/// shutdown(2) of a listening socket. On Linux this stops a TCP listener at
/// once: processes blocked in accept on it (in any process sharing it) wake
/// with EINVAL, and new connection attempts are refused, even while other
/// processes still hold the descriptor.
pub fn shutdown_listener(listener: BorrowedFd<'_>) {
    // ENOTCONN on some systems and for some socket types: nothing to undo.
    let _ = nix::sys::socket::shutdown(listener.as_raw_fd(), Shutdown::Both);
}

/// Closes every descriptor of the process except those in `keep`.
///
/// A forked worker calls this first, so that neither the master's private
/// descriptors nor anything the daemon itself inherited reaches a handler
/// or an exec'd program.
pub fn close_all_except(keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<RawFd> = keep.to_vec();
    keep.sort_unstable();
    keep.dedup();
    let mut first: RawFd = 0;
    for &k in &keep {
        if k > first {
            close_range(first, k - 1)?;
        }
        first = k + 1;
    }
    close_range(first, RawFd::MAX)
}

#[cfg(target_os = "linux")]
fn close_range(first: RawFd, last: RawFd) -> io::Result<()> {
    // SAFETY: close_range(2) only closes descriptors. The caller owns the
    // whole process (a freshly forked, single-threaded child) and the Rust
    // objects that own the closed descriptors are never used or dropped
    // again (the child leaves with _exit).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOSYS) {
        return close_listed(first, last);
    }
    Err(err)
}

#[cfg(not(target_os = "linux"))]
fn close_range(first: RawFd, last: RawFd) -> io::Result<()> {
    close_listed(first, last)
}

/// The portable way: read the list of open descriptors, then close those in
/// range (collect first: closing while reading would close the directory).
fn close_listed(first: RawFd, last: RawFd) -> io::Result<()> {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let open: Vec<RawFd> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| (first..=last).contains(fd))
        .collect();
    for fd in open {
        // SAFETY: as in close_range above; EBADF (the directory's own
        // descriptor, already closed) is harmless.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// A pipe, both ends close-on-exec and non-blocking: (read, write).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let (read, write) = nix::unistd::pipe()?;
    for fd in [&read, &write] {
        fcntl(
            fd.as_raw_fd(),
            FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    }
    Ok((read, write))
}

/// Reads and discards what is waiting in a non-blocking descriptor.
pub fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 512];
    while matches!(nix::unistd::read(fd.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
}

/// Writes one byte to a non-blocking descriptor; a full pipe (the reader
/// has wake-ups pending already) or any other error is ignored.
pub fn poke(fd: BorrowedFd<'_>) {
    let _ = nix::unistd::write(fd, &[1u8]);
}

/// The text of an I/O error as a user reads it: "Address already in use",
/// not "Address already in use (os error 98)".
pub fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// An error with its errno's name, for a log line an administrator may
/// search: "EAGAIN (Resource temporarily unavailable)".
pub fn describe_errno(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => {
            let text = err.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            format!("{:?} ({text})", Errno::from_raw(code))
        }
        None => err.to_string(),
    }
}

/// Bytes received from and sent to (acknowledged by) the peer of a TCP
/// socket, from TCP_INFO (Linux 4.2 and later); `None` elsewhere or for
/// other sockets. glibc's `struct tcp_info` stops before these fields, so
/// they are read at their offsets in the kernel's (UAPI) layout.
#[cfg(target_os = "linux")]
pub fn tcp_bytes(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    const BYTES_ACKED: usize = 120;
    const BYTES_RECEIVED: usize = 128;
    let mut buf = [0u8; 136];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the buffer is valid for `len` bytes, and the kernel writes at
    // most `len` bytes and updates `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < buf.len() {
        return None;
    }
    let word = |at: usize| u64::from_ne_bytes(buf[at..at + 8].try_into().unwrap_or([0; 8]));
    // The peer's FIN takes one byte of sequence space, counted as
    // received: take it off once the peer has closed (TIME_WAIT,
    // CLOSE_WAIT, LAST_ACK, CLOSING; not CLOSE, reached by a reset too).
    let peer_closed = matches!(buf[0], 6 | 8 | 9 | 11);
    let received = word(BYTES_RECEIVED).saturating_sub(u64::from(peer_closed));
    Some((received, word(BYTES_ACKED)))
}

/// How many connections wait in the accept queue of the TCP listener `fd`
/// (TCP_INFO's `tcpi_unacked`, which for a listener is its backlog);
/// `None` elsewhere or for other sockets.
#[cfg(target_os = "linux")]
pub fn accept_queue(fd: BorrowedFd<'_>) -> Option<u32> {
    // SAFETY: tcp_info is plain old data; all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is valid for `len` bytes, and the kernel writes at
    // most `len` bytes and updates `len` to what it wrote.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast(),
            &mut len,
        )
    };
    // TCP_LISTEN is 10 in the kernel's states.
    (rc == 0 && info.tcpi_state == 10).then_some(info.tcpi_unacked)
}

/// Not known on this system.
#[cfg(not(target_os = "linux"))]
pub fn accept_queue(_fd: BorrowedFd<'_>) -> Option<u32> {
    None
}

/// Not known on this system.
#[cfg(not(target_os = "linux"))]
pub fn tcp_bytes(_fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    None
}

/// A whole-file POSIX record lock request of `kind` (F_WRLCK, F_UNLCK).
fn whole_file(kind: libc::c_int) -> libc::flock {
    // SAFETY: flock is plain old data (its layout and extra fields vary by
    // system, hence no struct literal); all-zero is a valid value, and
    // means from offset 0 (SEEK_SET) to the end of the file.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock
}

/// Waits for an exclusive POSIX record lock on the whole file (fcntl
/// F_SETLKW). Such a lock belongs to the process: a child that inherited
/// the descriptor competes for it like any other process. EINTR is
/// returned, not retried.
pub fn lock_wait(file: BorrowedFd<'_>) -> Result<(), Errno> {
    // A c_short on macOS and the BSDs, a c_int on Linux.
    let lock = whole_file(libc::F_WRLCK as libc::c_int);
    nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_SETLKW(&lock)).map(drop)
}

/// Releases the lock [`lock_wait`] took.
pub fn unlock(file: BorrowedFd<'_>) {
    let lock = whole_file(libc::F_UNLCK as libc::c_int);
    // Unlocking a lock we hold cannot fail for a valid descriptor.
    let _ = nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_SETLK(&lock));
}

/// Sends `fd` over the Unix stream socket `channel` (SCM_RIGHTS), with one
/// byte of data to carry it.
pub fn send_fd(channel: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let data = [b'c'];
    let iov = [io::IoSlice::new(&data)];
    let fds = [fd.as_raw_fd()];
    loop {
        match sendmsg::<()>(
            channel.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// Receives a descriptor sent by [`send_fd`]; `None` at end-of-file (the
/// other end closed). EINTR is returned, for the caller to look at its
/// flags.
pub fn recv_fd(channel: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut data = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    #[cfg(not(target_vendor = "apple"))]
    let flags = MsgFlags::MSG_CMSG_CLOEXEC;
    #[cfg(target_vendor = "apple")]
    let flags = MsgFlags::empty();
    let msg = recvmsg::<()>(channel.as_raw_fd(), &mut iov, Some(&mut space), flags)?;
    if msg.bytes == 0 {
        return Ok(None);
    }
    let mut received = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for raw in fds {
                // SAFETY: the kernel just installed this descriptor in our
                // table for us (SCM_RIGHTS); nothing else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                #[cfg(target_vendor = "apple")]
                nix::fcntl::fcntl(
                    fd.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                )?;
                // More than one would be a bug of the sender: extras close.
                received.get_or_insert(fd);
            }
        }
    }
    received
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a message without a descriptor"))
}
