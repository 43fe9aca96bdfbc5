//! A UDP worker: it receives datagrams and gives each one it may answer
//! to its handler (a builtin's, or a library program's
//! [`DatagramHandler`]), under the service's access rules (`per_source`
//! counts datagrams per second here, by default [`UDP_PER_SOURCE`]).
//!
//! A program on UDP is a wait service instead (`wait.rs`): its worker
//! never reads the socket.

use std::io;
use std::os::fd::AsFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use super::Worker;
use crate::exit::WorkerExit;
use crate::net::acl::{Rate, UDP_PER_SOURCE};
use crate::net::{Datagram, Replies};
use crate::scoreboard::{Counter, State};
use crate::service::builtin::answerable;
use crate::service::{outcome, DatagramHandler};
use crate::sys;

impl Worker<'_> {
    /// Receives datagrams and has `handler` answer them, one at a time.
    pub(super) fn serve_datagrams(
        &self,
        handler: &dyn DatagramHandler,
        stop: &AtomicBool,
    ) -> WorkerExit {
        let Some(socket) = self.listener.as_udp() else {
            log::error!("W0012 service {}: not a datagram socket", self.name());
            return WorkerExit::Fatal;
        };
        let fd = socket.as_fd();
        let mut buf = vec![0u8; 65536];
        // Datagrams admitted (answered or not: discard), for max_requests.
        let mut taken = 0u64;
        let max_requests = self.max_requests();
        self.seat.slot.set(State::Idle);
        loop {
            if stop.load(Ordering::SeqCst) {
                return WorkerExit::Done;
            }
            if max_requests.is_some_and(|max| taken >= max) {
                log::debug!("service {}: took {taken} datagrams: retiring", self.name());
                self.seat.slot.set(State::Exiting);
                return WorkerExit::Done;
            }
            let (len, source) = match sys::ready::recv_from(fd, &mut buf, false) {
                Ok(Some(got)) => got,
                // Shut down (a stop, or a reload that removed the service):
                // no sender, and nothing more will come.
                Ok(None) => return WorkerExit::Done,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOTSOCK)) => {
                    log::error!("W0012 service {}: recvfrom: {e}", self.name());
                    return WorkerExit::Fatal;
                }
                Err(e) => {
                    // ICMP errors of earlier answers (ECONNREFUSED) and the like.
                    log::debug!("service {}: recvfrom: {e}", self.name());
                    continue;
                }
            };
            let admitted = answerable(source, self.udp_ports)
                .map_err(|why| (None, why))
                .and_then(|()| self.admit_datagram(source.ip()));
            if let Err((counter, why)) = admitted {
                if let Some(counter) = counter {
                    self.seat.board.slot(self.seat.pool).add(counter, 1);
                }
                log::debug!(
                    "service {}: dropped a datagram from {source}: {why}",
                    self.name()
                );
                continue;
            }
            self.seat.slot.begin(Some(source));
            taken += 1;
            let pool = self.seat.board.slot(self.seat.pool);
            pool.add(Counter::BytesIn, len as u64);
            let replies = Replies::default();
            let datagram = Datagram::new(&buf[..len], source, socket, &replies);
            let answered = panic::catch_unwind(AssertUnwindSafe(|| handler.handle(datagram)));
            match answered {
                // A reply that could not go (sendto: no route, no buffer)
                // is the sender's loss, not the handler's failure.
                Ok(Err(e)) if replies.failed.get() => {
                    log::debug!("service {}: sendto {source}: {e}", self.name());
                }
                answered => {
                    outcome(self.name(), answered);
                }
            }
            pool.add(Counter::BytesOut, replies.bytes.get());
            self.seat.slot.end();
        }
    }

    /// Applies the service's access rules to a datagram from `ip`: the
    /// lists, `per_source` as datagrams per second from one address (by
    /// default [`UDP_PER_SOURCE`], so that every builtin's replies to one
    /// address are limited), and `rate` for the whole socket. A refusal
    /// says which of the pool's counters it adds to.
    fn admit_datagram(&self, ip: std::net::IpAddr) -> Result<(), (Option<Counter>, &'static str)> {
        let access = &self.spec.settings.access;
        let rule = |why| (Some(Counter::RefusedRule), why);
        access.allows(ip).map_err(rule)?;
        let per_second = Rate {
            count: access.per_source.unwrap_or(UDP_PER_SOURCE),
            per_secs: 1,
        };
        let now = sys::shm::monotonic_us();
        if !self
            .seat
            .board
            .sources()
            .admit(self.seat.pool, ip, per_second, now)
        {
            return Err(rule("per_source limit reached"));
        }
        if let Some(rate) = access.rate {
            if !rate.admit(self.seat.board.slot(self.seat.pool).rate_state(), now) {
                return Err((Some(Counter::RefusedRate), "rate limit reached"));
            }
        }
        Ok(())
    }
}
