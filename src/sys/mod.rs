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
//! - [`path`]: files made, changed and removed as root without following
//!   a link or racing whoever can write their directory (`*at` calls,
//!   `O_NOFOLLOW`, a umask around bind).
//! - [`fd`]: `accept4` without a hidden EINTR retry, closing every inherited
//!   descriptor, `shutdown` of a listening socket.
//! - [`ready`]: poll(2) for a socket a worker watches but does not read,
//!   and recvfrom(2) that says plainly when a datagram socket was shut
//!   down.
//! - [`spawn`]: starting a program on given descriptors with a prepared
//!   argv and environment (`clone(CLONE_VM | CLONE_VFORK)` on Linux).
//! - [`privs`]: account lookups, setrlimit, chroot, setgroups/setgid/setuid.
//! - [`stdio`]: the pipe for programs' stderr, and pidfd_open(2) to wait
//!   for a program while reading it.
//! - [`shm`]: the shared mapping under the scoreboard, and the monotonic clock.
//! - [`mutex`]: a robust, process-shared pthread mutex in a shared mapping
//!   (`prefork-mutex`'s lock around accept).
//! - [`epoll`] (Linux): epoll(7), the event model's readiness, and one
//!   socket watched with or without EPOLLEXCLUSIVE (`prefork-epoll`,
//!   `prefork-epoll-exclusive`).
//! - [`time`]: local broken-down time for the daytime service, and the
//!   calling thread's CPU clock for the work service.
//!
//! Nothing here knows about services, pools or configuration.
//!
//! All of it but `time` is Unix. On Windows, `windows` stands in for the
//! few calls the portable code makes (the config's checks, the builtins,
//! the exec service), under the same names, and has no `unsafe` at all.

#[cfg(unix)]
pub mod daemon;
#[cfg(target_os = "linux")]
pub mod epoll;
#[cfg(unix)]
pub mod fd;
#[cfg(unix)]
pub mod mutex;
#[cfg(unix)]
pub mod path;
#[cfg(unix)]
pub mod privs;
#[cfg(unix)]
pub mod process;
#[cfg(unix)]
pub mod ready;
#[cfg(unix)]
pub mod shm;
#[cfg(unix)]
pub mod signal;
#[cfg(unix)]
pub mod spawn;
#[cfg(unix)]
pub mod stdio;
pub mod time;
#[cfg(windows)]
mod windows;

#[cfg(windows)]
pub use windows::{fd, privs, process};
