//! SIGHUP: read the configuration again and move to it without refusing a
//! connection.
//!
//! A bad file changes nothing: every error is logged and the running
//! configuration stays. A good one is applied in this order:
//! 1. bind every new address, all or nothing (a failure changes nothing);
//! 2. keep each pool whose service, address and settings are the same
//!    (only its worker count may change), and fork the workers of new or
//!    changed pools;
//! 3. retire the pools that were changed or removed: their workers get
//!    SIGTERM, finish the connection in hand, and are killed if still busy
//!    after the graceful timeout;
//! 4. shut down the sockets no pool uses any more. Sockets that stay are
//!    never closed, so nothing waiting in their queue is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::plan::{socket_key, SocketKey};
use super::spawn::startable;
use super::{Master, NUDGE_EVERY};
use crate::config::Sizing;
use crate::models::socket::{bind, refresh};
use crate::service::{Builtin, Service};
use crate::spec::PoolSpec;
use crate::sys;

impl Master<'_> {
    /// Reloads; the result (also logged) is what `preforkd reload` prints.
    pub(super) fn reload(&mut self) -> Result<String, String> {
        let Some(reloader) = self.reloader.as_mut() else {
            log::warn!("M0004 HUP: there is no configuration file to reload; ignored");
            return Err("there is no configuration file to reload".into());
        };
        let plan = match reloader() {
            Ok(plan) => plan,
            Err(errors) => {
                // The first 20, then the count: a file with thousands of
                // errors does not flood the log or the control client.
                let shown = &errors[..errors.len().min(crate::config::diag::SHOWN)];
                for e in shown {
                    log::error!("M0010 reload refused: {e}");
                }
                let more = errors.len() - shown.len();
                let summary = format!(
                    "reload refused: {} error(s){}; the running configuration is unchanged",
                    errors.len(),
                    if more > 0 {
                        format!(" ({more} more not shown)")
                    } else {
                        String::new()
                    }
                );
                log::error!("M0010 {summary}");
                return Err(format!("{}\n{summary}", shown.join("\n")));
            }
        };

        // Services whose workers could not switch user would leave nothing
        // to serve them: refuse the whole file, as for any other error.
        for p in &plan.pools {
            if let Err(why) = startable(p) {
                let message = format!(
                    "reload refused: service {}: {why}; the running configuration is unchanged",
                    p.name
                );
                log::error!("M0010 {message}");
                return Err(message);
            }
        }

        // 1. New addresses, all or nothing.
        let mut fresh: BTreeMap<SocketKey, Rc<crate::net::Listener>> = BTreeMap::new();
        for p in &plan.pools {
            let key = socket_key(p);
            if self.sockets.contains_key(&key) || fresh.contains_key(&key) {
                continue;
            }
            match bind(p) {
                Ok(l) => {
                    fresh.insert(key, Rc::new(l));
                }
                Err(e) => {
                    let message = format!(
                        "reload refused: cannot bind {} for service {}: {}; the running configuration is unchanged",
                        p.addr,
                        p.name,
                        sys::fd::describe(&e)
                    );
                    log::error!("M0011 {message}");
                    return Err(message);
                }
            }
        }
        let new_sockets: BTreeSet<SocketKey> = fresh.keys().cloned().collect();
        self.sockets.extend(fresh);
        self.generation += 1;
        self.graceful_timeout = plan.graceful_timeout;
        if let Some(level) = plan.log_level {
            crate::log::set_level(level);
        }
        let now = Instant::now();

        // 2. Keep what is unchanged, resize it; note what must go.
        // The new pools by service and socket (each key's indices, in
        // order), so that an old pool is compared only with the new ones
        // on its own socket.
        let key = |p: &PoolSpec<'_>| (p.name.clone(), socket_key(p));
        let mut on_socket: BTreeMap<_, Vec<usize>> = BTreeMap::new();
        for (i, p) in plan.pools.iter().enumerate() {
            on_socket.entry(key(p)).or_default().push(i);
        }
        let mut wanted: Vec<_> = plan.pools.into_iter().map(Some).collect();
        let (mut kept, mut retired) = (0, 0);
        let mut retire = Vec::new();
        for run in self.pools.iter_mut().filter(|r| r.retiring.is_none()) {
            // A pool stopped for good is never kept: the reload retries it.
            let reusable = !run.pool.is_fatal();
            let same = on_socket
                .get_mut(&key(&run.plan))
                .filter(|_| reusable)
                .and_then(|indices| {
                    let at = indices.iter().position(|&i| {
                        wanted[i]
                            .as_ref()
                            .is_some_and(|w| run.plan.same_but_size(w))
                    })?;
                    Some(indices.remove(at))
                });
            match same.and_then(|i| wanted[i].take()) {
                Some(w) => {
                    // A fixed pool takes its new size; an adaptive one keeps
                    // the size its load gave it, within the new maximum.
                    let target = match w.settings.sizing {
                        _ if !w.settings.model.is_process_pool() => 1,
                        Sizing::Fixed(n) => n,
                        Sizing::Adaptive { max, .. } => run.pool.target().min(max),
                    };
                    retire.extend(run.pool.set_target(target.max(1)));
                    run.plan.settings.sizing = w.settings.sizing;
                    kept += 1;
                }
                None => {
                    run.retiring = Some(sys::time::after(now, self.graceful_timeout));
                    run.pool.set_target(0);
                    retired += 1;
                }
            }
        }
        // Sockets kept from the old plan take the new backlog and access.
        for w in wanted.iter().flatten() {
            if let Some(listener) = self.sockets.get(&socket_key(w)) {
                if let Err(e) = refresh(listener, w) {
                    log::warn!(
                        "M0014 reload: {} for service {}: {}",
                        w.addr,
                        w.name,
                        sys::fd::describe(&e)
                    );
                }
            }
        }
        for pid in retire {
            self.retire_worker(pid);
        }
        let started_before = self.pools.len();
        for w in wanted.into_iter().flatten() {
            self.add_pool(w);
        }
        let started = self.pools.len() - started_before;
        // New workers first...
        if let Err(e) = self.fill_pools(now) {
            log::error!("M0012 reload: {e}");
        }
        // 3. ...then the old ones leave.
        self.signal_workers(|r| r.retiring.is_some(), Signal::SIGTERM);
        // The metrics workers list the pools of their fork: new ones do.
        self.refresh_directory();
        if started > 0 || retired > 0 {
            let metrics: Vec<_> = self
                .pools
                .iter()
                .filter(|r| r.retiring.is_none())
                .filter(|r| {
                    matches!(
                        r.plan.job.service(),
                        Some(Service::Builtin(Builtin::Metrics))
                    )
                })
                .flat_map(|r| r.pool.pids().collect::<Vec<_>>())
                .collect();
            for pid in metrics {
                self.retire_worker(pid);
            }
        }
        if retired > 0 {
            self.leaving.next_nudge = Some(sys::time::after(now, NUDGE_EVERY));
        }

        // 4. Sockets no live pool uses.
        let planned: BTreeSet<SocketKey> = self
            .pools
            .iter()
            .filter(|r| r.retiring.is_none())
            .map(|r| socket_key(&r.plan))
            .collect();
        self.sockets.retain(|key, listener| {
            let keep = planned.contains(key);
            if !keep {
                listener.shut_down();
            }
            keep
        });

        for run in self
            .pools
            .iter()
            .filter(|r| new_sockets.contains(&socket_key(&r.plan)))
        {
            self.announce_socket(run);
        }
        let summary = format!(
            "reloaded: generation {}: {kept} pools kept, {started} started, {retired} retiring",
            self.generation
        );
        log::info!("M0013 {summary}");
        Ok(summary)
    }
}
