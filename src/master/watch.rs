//! What the master does with the scoreboard: keep spare workers ready in
//! adaptive pools, retire extras, and stop handlers stuck past `timeout`.
//!
//! Growing reacts to the event itself: a worker of an adaptive pool writes
//! a byte to the master's busy pipe when it turns busy or idle, the master
//! wakes, counts idle workers here and forks at once (Apache's prefork
//! looks once a second). Shrinking is gradual: one idle worker every
//! [`SHRINK_EVERY`] while there are more than `max_spare`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Master;
use crate::config::Sizing;
use crate::scoreboard::State;
use crate::sys;
use crate::sys::process::Pid;

/// At most one idle worker is retired per this much time.
const SHRINK_EVERY: Duration = Duration::from_millis(100);

/// How often busy times are compared with `timeout`.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// A stuck worker gets SIGTERM, then SIGKILL this much later.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// The "every worker is busy" warning is repeated at most this often.
const FULL_LOG_EVERY: Duration = Duration::from_secs(1);

/// What the watch remembers about one pool.
#[derive(Debug, Default)]
pub(super) struct PoolWatch {
    next_shrink: Option<Instant>,
    full_logged: Option<Instant>,
    /// Workers stopped for a stuck handler, and when they got SIGTERM.
    stuck: BTreeMap<Pid, Instant>,
}

impl PoolWatch {
    /// The worker was reaped.
    pub(super) fn forget(&mut self, pid: Pid) {
        self.stuck.remove(&pid);
    }
}

impl Master<'_> {
    /// Looks at every live pool's slots and acts: fork spares, retire an
    /// idle extra, stop stuck handlers.
    pub(super) fn watch(&mut self, now: Instant) {
        let mut retire = Vec::new();
        for run in self.pools.iter_mut().filter(|r| r.retiring.is_none()) {
            let mut idle = Vec::new();
            let mut starting = 0;
            for (pid, slot) in run.pool.slots() {
                match self.board.slot(slot).state() {
                    State::Idle => idle.push(pid),
                    State::Starting => starting += 1,
                    _ => {}
                }
            }
            if let Sizing::Adaptive {
                min_spare,
                max_spare,
                max,
                ..
            } = run.plan.settings.sizing
            {
                let total = run.pool.len();
                let spare = idle.len() + starting;
                // With no idle worker at all, a connection may be waiting:
                // grow by one even when min_spare is 0.
                let wanted = min_spare.max(1);
                if spare < wanted && total < max {
                    run.pool.grow_to((total + wanted - spare).min(max));
                }
                if total >= max
                    && spare == 0
                    && run
                        .watch
                        .full_logged
                        .is_none_or(|t| now >= t + FULL_LOG_EVERY)
                {
                    log::warn!(
                        "M0015 service {}: all {max} workers are busy; new connections wait in the listen queue",
                        run.plan.name
                    );
                    run.watch.full_logged = Some(now);
                }
                if idle.len() > max_spare && run.watch.next_shrink.is_none_or(|t| now >= t) {
                    if let Some(&pid) = idle.last() {
                        if run.pool.retire_one() {
                            log::debug!("service {}: retiring idle worker {pid}", run.plan.name);
                            retire.push(pid);
                        }
                    }
                    run.watch.next_shrink = Some(sys::time::after(now, SHRINK_EVERY));
                }
            }
            if let Some(timeout) = run.plan.settings.timeout {
                for (pid, slot) in run.pool.slots() {
                    let slot = self.board.slot(slot);
                    let busy = Duration::from_millis(slot.busy_for_ms());
                    if busy > timeout && !run.watch.stuck.contains_key(&pid) {
                        let client = slot
                            .client()
                            .map_or("an unknown client".to_string(), |c| c.to_string());
                        log::warn!(
                            "W0020 service {}: worker {pid} busy for {:.1}s with {client} (blocked in {}); stopping it",
                            run.plan.name,
                            busy.as_secs_f64(),
                            sys::process::where_blocked(pid)
                        );
                        sys::process::kill_group(pid, Signal::SIGTERM);
                        run.watch.stuck.insert(pid, now);
                    }
                }
                for (&pid, since) in run.watch.stuck.iter_mut() {
                    if now >= *since + KILL_GRACE {
                        // Not again until it is reaped (and forgotten).
                        *since = sys::time::after(now, Duration::from_secs(3600));
                        log::warn!(
                            "W0021 service {}: worker {pid} did not stop; killing it",
                            run.plan.name
                        );
                        sys::process::kill_group(pid, Signal::SIGKILL);
                        sys::process::kill(pid, Signal::SIGKILL);
                    }
                }
            }
        }
        for pid in retire {
            self.retire_worker(pid);
        }
    }

    /// When the watch must look again without an event: while an adaptive
    /// pool has idle extras to retire, and while a pool has a timeout.
    pub(super) fn next_watch(&self) -> Option<Instant> {
        let now = Instant::now();
        self.pools
            .iter()
            .filter(|r| r.retiring.is_none())
            .filter_map(|r| {
                let shrinking = match r.plan.settings.sizing {
                    Sizing::Adaptive { max_spare, .. } => {
                        let idle = r
                            .pool
                            .slots()
                            .filter(|&(_, s)| self.board.slot(s).state() == State::Idle)
                            .count();
                        (idle > max_spare).then(|| r.watch.next_shrink.unwrap_or(now))
                    }
                    Sizing::Fixed(_) => None,
                };
                let timeouts = r
                    .plan
                    .settings
                    .timeout
                    .map(|_| sys::time::after(now, CHECK_EVERY));
                [shrinking, timeouts].into_iter().flatten().min()
            })
            .min()
    }
}
