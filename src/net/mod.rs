//! Sockets: the addresses a user writes, binding and listening, and the
//! accepted connection a handler receives, the datagram a datagram
//! handler receives.
//!
//! This module opens and accepts; it does not fork, supervise or serve.
//! Binding and accepting (`listen`) are Unix; on Windows the thread pool
//! binds std's own listener.

pub mod acl;
mod addr;
#[cfg(unix)]
mod listen;
mod peer;
pub mod proxy;

pub use addr::{AddrParseError, ListenAddr};
#[cfg(unix)]
pub(crate) use listen::{take_traffic, Replies};
#[cfg(unix)]
pub use listen::{Connection, Datagram, Listener};
pub use peer::Peer;

/// What the `listening on` line adds after an IPv6 wildcard address,
/// `[::]:PORT`, which names both kinds of socket: ` (IPv4 and IPv6)` for
/// a dual-stack one, ` (IPv6 only)` for one with IPV6_V6ONLY; asked of
/// the socket itself (one systemd passed, too). Nothing for any other
/// address, whose family says it all. The address stays the line's first
/// word, for whoever parses it.
pub fn stack_note(socket: socket2::SockRef<'_>, addr: std::net::SocketAddr) -> &'static str {
    match addr {
        std::net::SocketAddr::V6(v6) if v6.ip().is_unspecified() => match socket.only_v6() {
            Ok(false) => " (IPv4 and IPv6)",
            Ok(true) => " (IPv6 only)",
            Err(_) => "",
        },
        _ => "",
    }
}

/// The listen(2) backlog when none is given. Linux caps it at
/// net.core.somaxconn (4096 by default since 5.4).
pub const DEFAULT_BACKLOG: i32 = 1024;
