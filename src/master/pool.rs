//! A pool of workers for one listener: who is alive, how many should be,
//! and when the next fork is allowed.
//!
//! Pure bookkeeping: the pool never forks or signals; the master asks it how
//! many workers to fork now and tells it what happened. That keeps the
//! back-off rule in one place, testable without processes.
//!
//! The back-off rule. A worker that exits abnormally less than [`YOUNG`]
//! after its fork, without having served a connection, "died young": it
//! probably never got to serve (a broken setup, a resource limit,
//! something killing it). One that served and was killed (a crashing
//! handler, an administrator's kill) is replaced at once. After the first such
//! death the pool respawns at once; from the second in a row on, it forks
//! one worker at a time and waits 10 ms, 20 ms, 40 ms, ... up to
//! [`MAX_BACKOFF`] between forks. So a pool that cannot work forks at most
//! once a second, and a pool that recovers (a worker lives past `YOUNG`)
//! goes back to respawning at once. Only a worker forked after the last
//! young death shows that: the old ones say nothing about the new ones.
//!
//! When fork(2) itself fails (EAGAIN under `pids.max` or `RLIMIT_NPROC`,
//! ENOMEM), the pool has a back-off of its own, that of
//! [`crate::backoff`]: 1 s, doubling up to 32 s, until the pool is whole
//! again ([`Pool::fork_recovered`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::backoff::{ForkBackoff, Report};
use crate::exit::WorkerExit;
use crate::sys::process::{ChildExit, Pid};

/// A worker that dies younger than this, abnormally, counts as a failure.
pub(crate) const YOUNG: Duration = Duration::from_secs(1);

/// The longest wait between two forks while workers keep dying young.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);

const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// The wait before the next fork after `failures` young deaths in a row.
pub(crate) fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => FIRST_BACKOFF
            .saturating_mul(1 << (n - 2).min(16))
            .min(MAX_BACKOFF),
    }
}

/// What the master should make of a worker's exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Exited as asked, or lived long enough: replace it if the pool is short.
    Normal,
    /// Died young: the `in_a_row`-th; the next fork waits `retry_in`.
    Failure { in_a_row: u32, retry_in: Duration },
    /// Reported [`WorkerExit::Fatal`]: the pool stops forking.
    Fatal,
}

#[derive(Debug)]
pub(crate) struct Pool {
    target: usize,
    /// Live workers: when each was forked, and its scoreboard slot.
    workers: BTreeMap<Pid, (Instant, usize)>,
    failures: u32,
    /// When the last young death happened.
    last_failure: Option<Instant>,
    not_before: Option<Instant>,
    fatal: bool,
    fork_failing: Option<ForkBackoff>,
}

impl Pool {
    pub(crate) fn new(target: usize) -> Pool {
        Pool {
            target,
            workers: BTreeMap::new(),
            failures: 0,
            last_failure: None,
            not_before: None,
            fatal: false,
            fork_failing: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.workers.len()
    }

    pub(crate) fn target(&self) -> usize {
        self.target
    }

    pub(crate) fn is_fatal(&self) -> bool {
        self.fatal
    }

    pub(crate) fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.workers.keys().copied()
    }

    /// Each live worker with its scoreboard slot.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (Pid, usize)> + '_ {
        self.workers.iter().map(|(&pid, &(_, slot))| (pid, slot))
    }

    /// How many workers to fork now: none while stopped by a fatal exit or
    /// waiting out a back-off, one at a time while failing, else all that
    /// are missing.
    pub(crate) fn forks_due(&self, now: Instant) -> usize {
        let missing = self.target.saturating_sub(self.workers.len());
        if self.fatal || missing == 0 || self.fork_allowed_at().is_some_and(|t| now < t) {
            0
        } else if self.failures > 0 {
            1
        } else {
            missing
        }
    }

    /// The earliest moment the next fork may be tried, if any is set.
    fn fork_allowed_at(&self) -> Option<Instant> {
        [
            self.not_before,
            self.fork_failing.as_ref().map(|f| f.retry_at()),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    pub(crate) fn forked(&mut self, pid: Pid, now: Instant, slot: usize) {
        self.workers.insert(pid, (now, slot));
        self.not_before = (self.failures > 0).then(|| now + backoff(self.failures));
        if let Some(f) = &mut self.fork_failing {
            f.forked();
        }
    }

    /// fork(2) itself failed: no attempt before the back-off has passed.
    /// Returns what to log.
    pub(crate) fn fork_failed(&mut self, now: Instant) -> Report {
        ForkBackoff::failed(&mut self.fork_failing, now)
    }

    /// Ends a streak of failed forks once the pool has all its workers
    /// (or wants no more): how many forks failed, over how long.
    pub(crate) fn fork_recovered(&mut self, now: Instant) -> Option<(u64, Duration)> {
        if self.workers.len() < self.target && !self.fatal {
            return None;
        }
        Some(self.fork_failing.take()?.end(now))
    }

    /// Records the exit of `pid`: what to make of it, and the slot it
    /// held; `None` if it is not one of ours.
    /// The scoreboard slot of a live worker.
    pub(crate) fn slot_of(&self, pid: Pid) -> Option<usize> {
        self.workers.get(&pid).map(|&(_, slot)| slot)
    }

    /// Records the exit of `pid`, which served `served` connections: what
    /// to make of it, and the slot it held; `None` if it is not one of ours.
    pub(crate) fn exited(
        &mut self,
        pid: Pid,
        exit: ChildExit,
        now: Instant,
        served: u64,
    ) -> Option<(Verdict, usize)> {
        let (started, slot) = self.workers.remove(&pid)?;
        let young = now.duration_since(started) < YOUNG && served == 0;
        let verdict = match exit {
            ChildExit::Exited(code) if WorkerExit::from_code(code) == Some(WorkerExit::Fatal) => {
                self.fatal = true;
                Verdict::Fatal
            }
            ChildExit::Exited(0) => Verdict::Normal,
            ChildExit::Exited(code) if WorkerExit::from_code(code) == Some(WorkerExit::Sick) => {
                self.fail(now)
            }
            _ if young => self.fail(now),
            _ => Verdict::Normal,
        };
        if verdict == Verdict::Normal && !young {
            self.recovered();
        }
        Some((verdict, slot))
    }

    fn fail(&mut self, now: Instant) -> Verdict {
        self.failures += 1;
        self.last_failure = Some(now);
        let retry_in = backoff(self.failures);
        let earliest = now + retry_in;
        self.not_before = Some(self.not_before.map_or(earliest, |t| t.max(earliest)));
        Verdict::Failure {
            in_a_row: self.failures,
            retry_in,
        }
    }

    fn recovered(&mut self) {
        self.failures = 0;
        self.last_failure = None;
        self.not_before = None;
    }

    /// When the workers forked since the last young death were forked.
    fn forked_since_failure(&self) -> impl Iterator<Item = Instant> + '_ {
        let last = self.last_failure;
        self.workers
            .values()
            .map(|&(t, _)| t)
            .filter(move |&t| last.is_some_and(|last| t >= last))
    }

    /// After failures, a worker forked since the last one that has lived
    /// past [`YOUNG`] shows the pool works again. Returns true when that
    /// ends a failing streak.
    pub(crate) fn check_recovered(&mut self, now: Instant) -> bool {
        if self.failures == 0 {
            return false;
        }
        if self
            .forked_since_failure()
            .any(|t| now.duration_since(t) >= YOUNG)
        {
            self.recovered();
            return true;
        }
        false
    }

    /// The next moment the pool needs the master's attention: a back-off
    /// ending while workers are missing, or a young worker coming of age
    /// while failures are counted.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let missing = self.workers.len() < self.target && !self.fatal;
        let backoff_end = self.fork_allowed_at().filter(|_| missing);
        let coming_of_age = (self.failures > 0)
            .then(|| self.forked_since_failure().min().map(|t| t + YOUNG))
            .flatten();
        [backoff_end, coming_of_age].into_iter().flatten().min()
    }

    /// Sets the pool's size; returns the workers to retire (the newest)
    /// when it shrinks. Zero retires the whole pool.
    pub(crate) fn set_target(&mut self, target: usize) -> Vec<Pid> {
        self.target = target;
        let mut by_age: Vec<(Instant, Pid)> =
            self.workers.iter().map(|(&p, &(t, _))| (t, p)).collect();
        by_age.sort_unstable();
        let extra = self.workers.len().saturating_sub(target);
        by_age.iter().rev().take(extra).map(|&(_, p)| p).collect()
    }

    /// One worker fewer, chosen by the caller (an idle one); never below
    /// one.
    pub(crate) fn retire_one(&mut self) -> bool {
        if self.target <= 1 {
            return false;
        }
        self.target -= 1;
        true
    }

    /// Raises the pool's size to `target` if it is smaller.
    pub(crate) fn grow_to(&mut self, target: usize) {
        self.target = self.target.max(target);
    }

    /// One worker more.
    pub(crate) fn grow(&mut self) {
        self.target += 1;
    }

    /// One worker less (never below one); returns the worker to retire, the
    /// most recently forked one.
    pub(crate) fn shrink(&mut self) -> Option<Pid> {
        if self.target <= 1 {
            return None;
        }
        self.target -= 1;
        if self.workers.len() > self.target {
            self.workers
                .iter()
                .max_by_key(|(_, &t)| t)
                .map(|(&pid, _)| pid)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    fn pid(n: i32) -> Pid {
        Pid::from_raw(n)
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(10));
        assert_eq!(backoff(3), Duration::from_millis(20));
        assert_eq!(backoff(8), Duration::from_millis(640));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }

    #[test]
    fn a_killed_old_worker_is_replaced_at_once() {
        let t0 = Instant::now();
        let mut pool = Pool::new(2);
        pool.forked(pid(1), t0, 0);
        pool.forked(pid(2), t0, 1);
        let later = t0 + Duration::from_secs(5);
        let v = pool.exited(pid(1), ChildExit::Signaled(Signal::SIGKILL), later, 0);
        assert_eq!(v, Some((Verdict::Normal, 0)));
        assert_eq!(pool.forks_due(later), 1);
    }

    #[test]
    fn a_young_worker_killed_after_serving_is_replaced_at_once() {
        let t0 = Instant::now();
        let mut pool = Pool::new(1);
        for n in 1..=20 {
            let now = t0 + Duration::from_millis(50 * n as u64);
            assert_eq!(pool.forks_due(now), 1, "fork {n}");
            pool.forked(pid(n), now, 0);
            let v = pool.exited(pid(n), ChildExit::Signaled(Signal::SIGKILL), now, 3);
            assert_eq!(v, Some((Verdict::Normal, 0)));
        }
    }

    #[test]
    fn young_deaths_slow_forking_down_and_recovery_resets_it() {
        let t0 = Instant::now();
        let mut pool = Pool::new(1);
        let mut now = t0;
        let mut forks = 0;
        // Every worker dies 1 ms after its fork, for 10 simulated seconds.
        while now < t0 + Duration::from_secs(10) {
            if pool.forks_due(now) > 0 {
                forks += 1;
                pool.forked(pid(forks), now, 0);
                now += Duration::from_millis(1);
                pool.exited(pid(forks), ChildExit::Signaled(Signal::SIGKILL), now, 0);
            }
            now += Duration::from_millis(1);
        }
        assert!(forks <= 20, "{forks} forks in 10 s");
        // The cause goes away: the next worker lives.
        let deadline = pool.next_deadline().unwrap();
        assert_eq!(pool.forks_due(deadline), 1);
        pool.forked(pid(1000), deadline, 0);
        assert!(!pool.check_recovered(deadline + Duration::from_millis(10)));
        assert!(pool.check_recovered(deadline + YOUNG));
        assert_eq!(backoff(pool.failures), Duration::ZERO);
    }

    #[test]
    fn failed_forks_back_off_to_32_s_report_every_10_s_and_recover() {
        let t0 = Instant::now();
        let mut pool = Pool::new(3);
        pool.forked(pid(1), t0, 0);
        let mut now = t0;
        let mut attempts = vec![];
        let mut reports = vec![];
        while now < t0 + Duration::from_secs(200) {
            if pool.forks_due(now) > 0 {
                attempts.push(now.duration_since(t0).as_secs());
                reports.push(pool.fork_failed(now));
            }
            assert!(pool.next_deadline().is_some_and(|t| t > now));
            now += Duration::from_millis(100);
        }
        assert_eq!(attempts, [0, 1, 3, 7, 15, 31, 63, 95, 127, 159, 191]);
        let secs = Duration::from_secs;
        assert_eq!(reports[0], Report::Started { retry_in: secs(1) });
        assert_eq!(reports[1..4], [Report::Quiet; 3]);
        assert_eq!(
            reports[4],
            Report::Repeated {
                failures: 4,
                since: secs(15),
                retry_in: secs(16)
            }
        );
        assert_eq!(pool.fork_recovered(now), None);
        // The limit goes: both missing workers are forked at the next try.
        let next = pool.next_deadline().unwrap();
        assert_eq!(pool.forks_due(next), 2);
        pool.forked(pid(2), next, 1);
        pool.forked(pid(3), next, 2);
        assert_eq!(pool.fork_recovered(next), Some((11, next - t0)));
        assert_eq!(pool.fork_recovered(next), None);
    }

    #[test]
    fn an_old_worker_does_not_reset_the_back_off_of_young_deaths() {
        let t0 = Instant::now();
        let mut pool = Pool::new(2);
        pool.forked(pid(1), t0, 0);
        let mut now = t0 + Duration::from_secs(10);
        let mut forks = 0;
        while now < t0 + Duration::from_secs(20) {
            assert!(!pool.check_recovered(now));
            if pool.forks_due(now) > 0 {
                forks += 1;
                pool.forked(pid(100 + forks), now, 1);
                pool.exited(pid(100 + forks), ChildExit::Exited(1), now, 0);
            }
            now += Duration::from_millis(1);
        }
        assert!(forks <= 20, "{forks} forks in 10 s");
    }

    #[test]
    fn fatal_stops_the_pool() {
        let now = Instant::now();
        let mut pool = Pool::new(3);
        pool.forked(pid(1), now, 3);
        assert_eq!(
            pool.exited(pid(1), ChildExit::Exited(78), now, 0),
            Some((Verdict::Fatal, 3))
        );
        assert_eq!(pool.forks_due(now + Duration::from_secs(60)), 0);
    }

    #[test]
    fn shrink_retires_the_newest_and_never_the_last() {
        let t0 = Instant::now();
        let mut pool = Pool::new(2);
        pool.forked(pid(10), t0, 0);
        pool.forked(pid(5), t0 + Duration::from_millis(1), 1);
        assert_eq!(pool.shrink(), Some(pid(5)));
        assert_eq!(pool.shrink(), None);
        assert_eq!(pool.target(), 1);
    }
}
