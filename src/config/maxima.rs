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

/// Checks the numbers of `settings` against the bounds `check` holds a
/// config's to: settings built in code (the library's
/// `Server::pool_settings`, a reload hook) meet the same maxima as a
/// file's. The first number out of bounds is the error, naming its key and
/// the bound (`max_requests = 0: expected 1 to 1000000000`).
pub fn check_settings(settings: &super::PoolSettings) -> Result<(), String> {
    use super::Sizing;
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs());
    match settings.sizing {
        Sizing::Fixed(n) if n == 0 || n as u64 > MAX_WORKERS => {
            return Err(format!(
                "workers = {n}: expected a number from 1 to {MAX_WORKERS}"
            ));
        }
        Sizing::Fixed(_) => {}
        Sizing::Adaptive {
            start,
            min_spare,
            max_spare,
            max,
        } => {
            Sizing::adaptive(Some(start), Some(min_spare), Some(max_spare), Some(max))
                .map_err(|e| format!("workers: {e}"))?;
        }
    }
    if let Some(n) = settings.max_requests {
        if !(1..=MAX_REQUESTS).contains(&n) {
            return Err(format!("max_requests = {n}: expected 1 to {MAX_REQUESTS}"));
        }
    }
    let jitter = settings.max_requests_jitter;
    if jitter > MAX_REQUESTS {
        return Err(format!(
            "max_requests_jitter = {jitter}: at most {MAX_REQUESTS}"
        ));
    }
    if let Some(t) = settings.timeout {
        if t.is_zero() || t > MAX_DURATION {
            return Err(format!(
                "timeout = {t:?}: expected more than 0s and at most {}",
                secs(MAX_DURATION)
            ));
        }
    }
    if let Some(n) = settings.max_memory {
        if n == 0 || n > MAX_SIZE {
            return Err(format!("max_memory = {n}: expected 1 to {MAX_SIZE} bytes"));
        }
    }
    let access = &settings.access;
    if let Some(n) = access.per_source {
        if n == 0 || u64::from(n) > MAX_PER_SOURCE {
            return Err(format!("per_source = {n}: expected 1 to {MAX_PER_SOURCE}"));
        }
    }
    if let Some(rate) = access.rate {
        if rate.count == 0 || rate.count > MAX_RATE || rate.per_secs == 0 {
            return Err(format!(
                "rate = {}/{}s: expected 1 to {MAX_RATE} per period of at least 1s",
                rate.count, rate.per_secs
            ));
        }
    }
    let backlog = settings.backlog;
    if backlog < 1 || backlog as u64 > MAX_BACKLOG {
        return Err(format!("backlog = {backlog}: expected 1 to {MAX_BACKLOG}"));
    }
    let limits = &settings.privileges.limits;
    let limit = |key: &str, v: Option<u64>, max: u64| match v {
        Some(n) if n > max => Err(format!("limits.{key} = {n}: at most {max}")),
        _ => Ok(()),
    };
    limit("nofile", limits.open_files, MAX_NOFILE)?;
    limit("nproc", limits.processes, MAX_NPROC)?;
    limit("as", limits.address_space, MAX_SIZE)?;
    limit("cpu", limits.cpu_seconds, MAX_DURATION.as_secs())?;
    if let Some(proxy) = &settings.proxy_protocol {
        let max = crate::net::proxy::MAX_TIMEOUT;
        if proxy.timeout.is_zero() || proxy.timeout > max {
            return Err(format!(
                "proxy_timeout = {:?}: expected more than 0s and at most {}",
                proxy.timeout,
                secs(max)
            ));
        }
        if proxy.trusted.is_empty() {
            return Err("trusted_proxies: name at least one balancer".into());
        }
    }
    Ok(())
}

/// Checks `[daemon] graceful_timeout` as a config's is.
pub fn check_graceful_timeout(t: std::time::Duration) -> Result<(), String> {
    if t > MAX_DURATION {
        return Err(format!(
            "graceful_timeout = {t:?}: at most {}s",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{PoolSettings, Sizing};

    /// Each field out of bounds, one at a time, and the words its error
    /// must hold.
    #[test]
    fn every_number_of_a_pool_s_settings_is_bounded_and_named() {
        assert_eq!(check_settings(&PoolSettings::default()), Ok(()));
        type Change = fn(&mut PoolSettings);
        let cases: &[(Change, &str)] = &[
            (
                |s| s.sizing = Sizing::Fixed(0),
                "workers = 0: expected a number from 1 to 4096",
            ),
            (|s| s.sizing = Sizing::Fixed(4097), "workers = 4097"),
            (
                |s| {
                    s.sizing = Sizing::Adaptive {
                        start: 1,
                        min_spare: 1,
                        max_spare: 2,
                        max: usize::MAX,
                    }
                },
                "workers: max = ",
            ),
            (
                |s| s.max_requests = Some(0),
                "max_requests = 0: expected 1 to 1000000000",
            ),
            (
                |s| s.max_requests = Some(u64::MAX),
                "max_requests = 18446744073709551615",
            ),
            (
                |s| s.max_requests_jitter = u64::MAX,
                "max_requests_jitter = ",
            ),
            (|s| s.timeout = Some(Duration::MAX), "timeout = "),
            (
                |s| s.timeout = Some(Duration::ZERO),
                "timeout = 0ns: expected more than 0s",
            ),
            (|s| s.max_memory = Some(u64::MAX), "max_memory = "),
            (
                |s| s.access.per_source = Some(u32::MAX),
                "per_source = 4294967295: expected 1 to 1000000",
            ),
            (
                |s| {
                    s.access.rate = Some(crate::net::acl::Rate {
                        count: u32::MAX,
                        per_secs: 1,
                    })
                },
                "rate = 4294967295/1s",
            ),
            (
                |s| s.backlog = i32::MAX,
                "backlog = 2147483647: expected 1 to 65535",
            ),
            (
                |s| s.privileges.limits.open_files = Some(u64::MAX),
                "limits.nofile = ",
            ),
            (
                |s| s.privileges.limits.processes = Some(u64::MAX),
                "limits.nproc = ",
            ),
            (
                |s| s.privileges.limits.address_space = Some(u64::MAX),
                "limits.as = ",
            ),
            (
                |s| s.privileges.limits.cpu_seconds = Some(u64::MAX),
                "limits.cpu = ",
            ),
        ];
        for (change, words) in cases {
            let mut s = PoolSettings::default();
            change(&mut s);
            let err = check_settings(&s).expect_err(words);
            assert!(
                err.starts_with(words),
                "{err:?} does not start with {words:?}"
            );
        }
        assert!(check_graceful_timeout(Duration::MAX)
            .unwrap_err()
            .starts_with("graceful_timeout = "));
        assert_eq!(check_graceful_timeout(MAX_DURATION), Ok(()));
    }
}
