//! What a reload is given: arbitrary text through the checker, and for
//! every config it accepts, the arithmetic the master then does with it
//! (a deadline `graceful_timeout` or `timeout` ahead, a worker's
//! `max_requests` plus its jitter, a rate's token bucket, an rlimit) must
//! not overflow, and every value must be within the maxima that
//! preforkd.toml(5) documents. The real reload into a running daemon is
//! tests/integration/security/limits.rs, on a corpus of boundary configs.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use preforkd::config::{maxima, Sizing};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = preforkd::config::parse("reload.toml", text) else {
        return;
    };
    let now = Instant::now();
    let within = |d: Duration, what: &str| {
        assert!(d <= maxima::MAX_DURATION, "{what} = {d:?}");
        assert!(now.checked_add(d).is_some(), "now + {what} overflows");
    };
    within(config.daemon.graceful_timeout, "graceful_timeout");
    for s in config.services.iter().map(|s| &s.pool) {
        if let Some(t) = s.timeout {
            within(t, "timeout");
        }
        match s.sizing {
            Sizing::Fixed(n) => assert!((1..=maxima::MAX_WORKERS as usize).contains(&n)),
            Sizing::Adaptive {
                start,
                min_spare,
                max_spare,
                max,
            } => {
                let max_workers = maxima::MAX_WORKERS as usize;
                assert!(start >= 1 && start <= max && max <= max_workers, "{:?}", s.sizing);
                assert!(min_spare <= max_spare && max_spare <= max_workers, "{:?}", s.sizing);
            }
        }
        if let Some(m) = s.max_requests {
            assert!(m <= maxima::MAX_REQUESTS && s.max_requests_jitter <= maxima::MAX_REQUESTS);
            assert!(m.checked_add(s.max_requests_jitter).is_some());
        }
        if let Some(m) = s.max_memory {
            assert!(m <= maxima::MAX_SIZE);
        }
        if let Some(n) = s.access.per_source {
            assert!(u64::from(n) <= maxima::MAX_PER_SOURCE);
        }
        if let Some(r) = s.access.rate {
            assert!(r.count <= maxima::MAX_RATE);
            // The bucket: an interval in microseconds times the count.
            let interval = (u64::from(r.per_secs) * 1_000_000 / u64::from(r.count)).max(1);
            assert!(interval.checked_mul(u64::from(r.count)).is_some());
        }
        assert!((1..=maxima::MAX_BACKLOG as i32).contains(&s.backlog));
        let l = &s.privileges.limits;
        assert!(l.open_files.is_none_or(|n| n <= maxima::MAX_NOFILE));
        assert!(l.processes.is_none_or(|n| n <= maxima::MAX_NPROC));
        assert!(l.address_space.is_none_or(|n| n <= maxima::MAX_SIZE));
        assert!(l
            .cpu_seconds
            .is_none_or(|n| n <= maxima::MAX_DURATION.as_secs()));
    }
});
