//! The local time, broken down, for the daytime service (RFC 867).
//!
//! On Unix, localtime_r(3) gives it, with the TZ and /etc/localtime that
//! ctime(3) uses. Windows' time zone is out of std's reach (and this crate
//! has no `unsafe` outside Unix), so there it is UTC, broken down here.
//!
//! And, on Unix, `after`: a deadline that cannot panic, for every `now + d`
//! of the master's (Windows' fallback has no master); and
//! `thread_cpu_time`, the calling thread's CPU clock (clock_gettime(2),
//! `CLOCK_THREAD_CPUTIME_ID`), for the `work` service's busy loop.

#[cfg(unix)]
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

/// `now + d`, or the furthest instant the clock can hold when that
/// overflows: `Instant + Duration` panics on overflow, and a master must
/// not panic on a duration from its config.
#[cfg(unix)]
pub fn after(now: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(t) = now.checked_add(d) {
            return t;
        }
        d /= 2;
    }
}

/// The CPU time the calling thread has used (clock_gettime(2) with
/// `CLOCK_THREAD_CPUTIME_ID`), or `None` where there is no such clock.
#[cfg(unix)]
pub fn thread_cpu_time() -> Option<Duration> {
    let clock = nix::time::ClockId::from_raw(libc::CLOCK_THREAD_CPUTIME_ID);
    let t = nix::time::clock_gettime(clock).ok()?;
    Some(Duration::new(
        u64::try_from(t.tv_sec()).ok()?,
        u32::try_from(t.tv_nsec()).ok()?,
    ))
}

/// Windows has a thread's CPU time (GetThreadTimes) out of std's reach:
/// none here, and the caller falls back to the wall clock.
#[cfg(not(unix))]
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    None
}

/// A local calendar time, as localtime_r(3) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Years since 1900.
    pub year: i32,
    /// 0..=11.
    pub month: i32,
    /// 1..=31.
    pub day: i32,
    /// 0 (Sunday) ..= 6.
    pub weekday: i32,
    /// 0..=23.
    pub hour: i32,
    /// 0..=59.
    pub minute: i32,
    /// 0..=60.
    pub second: i32,
}

/// The current local time (TZ and /etc/localtime, as ctime(3) uses).
#[cfg(unix)]
pub fn local_now() -> LocalTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as libc::time_t;
    // SAFETY: tm is plain old data for which all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call, and
    // localtime_r is the reentrant variant (no shared static buffer).
    let ok = unsafe { !libc::localtime_r(&now, &mut tm).is_null() };
    if !ok {
        // Only for times out of range of the calendar; report the epoch.
        return LocalTime {
            year: 70,
            month: 0,
            day: 1,
            weekday: 4,
            hour: 0,
            minute: 0,
            second: 0,
        };
    }
    LocalTime {
        year: tm.tm_year,
        month: tm.tm_mon,
        day: tm.tm_mday,
        weekday: tm.tm_wday,
        hour: tm.tm_hour,
        minute: tm.tm_min,
        second: tm.tm_sec,
    }
}

/// The current time in UTC: what Windows' daytime service answers.
#[cfg(windows)]
pub fn local_now() -> LocalTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(now)
}

/// `secs` after the epoch, in UTC, on the proleptic Gregorian calendar
/// (the days-to-civil conversion of Howard Hinnant's "chrono-Compatible
/// Low-Level Date Algorithms").
#[cfg(any(windows, test))]
fn utc(secs: u64) -> LocalTime {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 0000-03-01, so that a leap day ends each 4-year cycle.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_based = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_based + 2) / 5 + 1;
    let month = if march_based < 10 {
        march_based + 2
    } else {
        march_based - 10
    };
    let year = year_of_era + era * 400 + i64::from(month <= 1);
    LocalTime {
        year: (year - 1900) as i32,
        month: month as i32,
        day: day as i32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as i32,
        hour: (rem / 3600) as i32,
        minute: (rem / 60 % 60) as i32,
        second: (rem % 60) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn after_never_panics() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(1 << 40));
    }

    #[test]
    fn utc_breaks_down_the_calendar() {
        let at = |year, month, day, weekday, hour, minute, second| LocalTime {
            year: year - 1900,
            month,
            day,
            weekday,
            hour,
            minute,
            second,
        };
        assert_eq!(utc(0), at(1970, 0, 1, 4, 0, 0, 0));
        // 2000-02-29 (a leap day of a century year) 12:34:56, a Tuesday.
        assert_eq!(utc(951_827_696), at(2000, 1, 29, 2, 12, 34, 56));
        // 2024-12-31 23:59:59, a Tuesday; the next second is a new year.
        assert_eq!(utc(1_735_689_599), at(2024, 11, 31, 2, 23, 59, 59));
        assert_eq!(utc(1_735_689_600), at(2025, 0, 1, 3, 0, 0, 0));
        // 2100-03-01: 2100 is not a leap year.
        assert_eq!(utc(4_107_542_400), at(2100, 2, 1, 1, 0, 0, 0));
    }
}
