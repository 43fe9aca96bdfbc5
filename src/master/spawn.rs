//! Forking a pool's workers, and the sockets they serve: binding a
//! pool's socket, refreshing one kept across a reload, and whether a pool
//! can be started at all. The rest of the master's loop is in `mod.rs`.

use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Instant;

use super::plan::PoolPlan;
use super::pool::Pool;
use super::{signals, watch, Master, PoolRun};
use crate::config::Protocol;
use crate::error::Error;
use crate::models::prefork_lock::AcceptLock;
use crate::models::Model;
use crate::net::Listener;
use crate::sys;
use crate::sys::process::{Fork, ForkError};
use crate::worker::Worker;

impl<'a> Master<'a> {
    /// Forks as many workers as each live pool wants now.
    pub(super) fn fill_pools(&mut self, now: Instant) -> Result<(), Error> {
        let udp_ports: Vec<u16> = self
            .sockets
            .iter()
            .filter(|((_, proto, _, _), _)| *proto == Protocol::Udp)
            .filter_map(|(_, l)| l.local_addr().map(|a| a.port()))
            .collect();
        for i in 0..self.pools.len() {
            let run = &self.pools[i];
            if run.retiring.is_some() {
                continue;
            }
            for _ in 0..run.pool.forks_due(now) {
                let Some(slot) = self.board.allocate(self.generation) else {
                    log::error!("W0008 the scoreboard is full: no more workers");
                    return Ok(());
                };
                let run = &self.pools[i];
                let forked = sys::process::fork(&signals::CAUGHT);
                if forked.is_err() {
                    self.board.release(slot);
                }
                match forked {
                    Ok(Fork::Child) => Worker {
                        listener: &run.listener,
                        job: &run.plan.job,
                        privileges: &run.plan.privileges,
                        master: self.pid,
                        service: &run.plan.service,
                        udp_ports: udp_ports.clone(),
                        slot: self.board.slot(slot),
                        busy_pipe: run
                            .plan
                            .sizing
                            .is_adaptive()
                            .then(|| self.busy_pipe.1.as_fd()),
                        max_requests: run.plan.max_requests.map(|(n, jitter)| {
                            n.saturating_add(watch::jitter(jitter, sys::process::current_pid()))
                        }),
                        timeout: run.plan.timeout,
                        max_memory: run.plan.max_memory,
                        log_connections: run.plan.log_connections,
                        access: &run.plan.access,
                        board: &self.board,
                        pool_slot: run.shared_slot,
                        model: run.plan.model,
                        accept_lock: run.accept_lock.as_ref(),
                        backlog: run.plan.backlog,
                        model_workers: run.plan.sizing.start(),
                        proxy_protocol: run.plan.proxy_protocol.as_ref(),
                    }
                    .run(),
                    Ok(Fork::Parent(pid)) => {
                        self.board.slot(slot).set_pid(pid.as_raw() as u32);
                        self.board.slot(slot).set_pool(self.pools[i].shared_slot);
                        self.pools[i].pool.forked(pid, now, slot);
                    }
                    Err(e @ (ForkError::Threaded(_) | ForkError::Unverifiable(_))) => {
                        return Err(Error::Fork(e));
                    }
                    Err(e) => {
                        self.fork_failed(i, now, &e);
                        break;
                    }
                }
            }
            let run = &mut self.pools[i];
            if let Some(streak) = run.pool.fork_recovered(now) {
                crate::backoff::log_recovered(&run.plan.service, streak, run.pool.len());
            }
        }
        Ok(())
    }

    /// fork(2) failed for pool `i`: the pool backs off; one line when the
    /// streak starts, then at most one every 10 s with the count.
    fn fork_failed(&mut self, i: usize, now: Instant, e: &ForkError) {
        let run = &mut self.pools[i];
        let report = run.pool.fork_failed(now);
        let (running, target) = (run.pool.len(), run.pool.target());
        crate::backoff::log_failure(&run.plan.service, e, report, running, target);
    }

    /// Adds a pool for `plan` on its socket (which must be bound).
    pub(super) fn add_pool(&mut self, plan: PoolPlan<'a>) {
        let listener = Rc::clone(&self.sockets[&plan.socket_key()]);
        let pool = Pool::new(plan.processes());
        let accept_lock = match plan.model {
            Model::PreforkLock => match AcceptLock::new() {
                Ok(lock) => Some(lock),
                Err(e) => {
                    log::error!(
                        "W0006 service {} on {}: cannot create the accept lock file: {}; not started",
                        plan.service,
                        plan.addr,
                        sys::fd::describe(&e)
                    );
                    return;
                }
            },
            _ => None,
        };
        let Some(shared_slot) = self.board.allocate_shared() else {
            log::error!(
                "W0008 the scoreboard is full: service {} not started",
                plan.service
            );
            return;
        };
        self.pools.push(PoolRun {
            shared_slot,
            served_by_gone: 0,
            accept_lock,
            plan,
            listener,
            pool,
            retiring: None,
            watch: watch::PoolWatch::default(),
        });
    }
}

/// Whether the master can start the workers of `plan`: as root always;
/// otherwise only if they need not switch to another user.
pub(super) fn startable(plan: &PoolPlan<'_>) -> Result<(), String> {
    match &plan.privileges.account {
        Some(account) => crate::privileges::can_become(account),
        None => Ok(()),
    }
}

/// Applies a plan's listen backlog and file access to a socket kept from
/// an earlier plan (listen(2) on a listening socket changes its backlog).
pub(super) fn refresh(listener: &Listener, plan: &PoolPlan<'_>) -> std::io::Result<()> {
    // The master's reuseport socket only holds the port: it never listens.
    if plan.protocol == Protocol::Tcp && plan.model != Model::Reuseport {
        listener.relisten(plan.backlog)?;
        listener.set_file_access(plan.socket_mode, plan.socket_owner)?;
    }
    Ok(())
}

/// Binds the socket of a pool's plan, with its file mode and owner.
pub(super) fn bind(plan: &PoolPlan<'_>) -> std::io::Result<Listener> {
    match plan.protocol {
        Protocol::Tcp if plan.model == Model::Reuseport => {
            Listener::bind_reuseport(&plan.addr, None)
        }
        Protocol::Tcp => Listener::bind_with_access(
            &plan.addr,
            plan.backlog,
            plan.socket_mode,
            plan.socket_owner,
        ),
        Protocol::Udp => Listener::bind_udp(&plan.addr),
    }
}
