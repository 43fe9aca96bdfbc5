//! The largest value of every number a config or a command-line flag may
//! give, in one place: `check` refuses a value above its maximum with
//! file:line:column, and clap refuses a flag above it, so nothing the
//! checker accepts can overflow the arithmetic that uses it (a deadline, a
//! jitter, a token bucket). Each is far above what an admin means;
//! preforkd.toml(5) lists them under DURATIONS AND SIZES.

pub use super::duration::MAX_DURATION;
pub use super::size::MAX_SIZE;
/// The count of a `rate` (`N/s`, `N/m`, `N/h`).
pub use crate::net::acl::MAX_RATE;

/// `workers`, and each of `start`, `min_spare`, `max_spare`, `max`.
pub const MAX_WORKERS: u64 = 4096;
/// `max_requests` and `max_requests_jitter`.
pub const MAX_REQUESTS: u64 = 1_000_000_000;
/// `per_source`.
pub const MAX_PER_SOURCE: u64 = 1_000_000;
/// `backlog` (the kernel caps it at net.core.somaxconn anyway).
pub const MAX_BACKLOG: u64 = 65535;
/// `limits.nofile`: fs.nr_open's default, the most setrlimit(2) allows
/// unless that sysctl was raised.
pub const MAX_NOFILE: u64 = 1 << 20;
/// `limits.nproc`: kernel.pid_max is at most 2^22.
pub const MAX_NPROC: u64 = 1 << 22;

/// `n` if it is at most `max`, else the words of the error: "at most MAX".
pub fn at_most(n: u64, max: u64) -> Result<u64, String> {
    if n > max {
        return Err(format!("at most {max}"));
    }
    Ok(n)
}
