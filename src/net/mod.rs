//! Sockets: the addresses a user writes, binding and listening, and the
//! accepted connection a handler receives.
//!
//! This module opens and accepts; it does not fork, supervise or serve.

pub mod acl;
mod addr;
mod listen;
pub mod proxy;

pub use addr::{AddrParseError, ListenAddr};
pub use listen::{Connection, Listener, Peer, DEFAULT_BACKLOG};
