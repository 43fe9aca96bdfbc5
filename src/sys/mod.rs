//! Every `unsafe` block of the crate, and every raw OS call, lives below.
//!
//! The rest of the crate is compiled under `#![deny(unsafe_code)]` and calls
//! these wrappers, each of which states and, where it can, checks the
//! precondition that makes it sound:
//!
//! - [`process`]: `fork` (refused unless the process has one thread), the
//!   reaping loop, process groups, `kill`, `_exit`, dying with the parent.
//! - [`signal`]: the child's side of signal handling: resetting what the
//!   master caught, and the worker's own stop flag.
//! - [`daemon`]: detaching, the pidfile, sd_notify.
//! - [`fd`]: `accept4` without a hidden EINTR retry, closing every inherited
//!   descriptor, `shutdown` of a listening socket.
//! - [`privs`]: account lookups, setrlimit, chroot, setgroups/setgid/setuid.
//! - [`shm`]: the shared mapping under the scoreboard, and the monotonic clock.
//! - [`time`]: local broken-down time for the daytime service.
//!
//! Nothing here knows about services, pools or configuration.

pub mod daemon;
pub mod fd;
pub mod privs;
pub mod process;
pub mod shm;
pub mod signal;
pub mod time;
