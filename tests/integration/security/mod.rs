//! The attacker's side of docs/security.md: one file per defence, each
//! test playing a hostile client, service user or program against the real
//! binary, and failing on the code before the defence.

mod defaults;
mod environment;
mod fork;
mod limits;
mod paths;
mod proxy;
mod stall;
mod terminal;
mod udp;
mod wait;
