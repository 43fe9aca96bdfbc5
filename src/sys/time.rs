//! The local time, broken down, for the daytime service (RFC 867).

use std::time::{SystemTime, UNIX_EPOCH};

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
