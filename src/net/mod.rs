//! Sockets: the addresses a user writes, binding and listening, and the
//! accepted connection a handler receives.
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
pub use listen::{Connection, Listener};
pub use peer::Peer;

/// The listen(2) backlog when none is given. Linux caps it at
/// net.core.somaxconn (4096 by default since 5.4).
pub const DEFAULT_BACKLOG: i32 = 1024;
