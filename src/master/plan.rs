//! What the master is asked to run: a [`Plan`] of pools, each one job
//! (a handler, or a builtin answering datagrams) on one address with N
//! workers. `preforkd run` and the library make a plan of one pool;
//! `preforkd serve` makes one from the config file, at start and at each
//! reload. The master compares plans by pool key and fingerprint to decide
//! what a reload keeps.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::config::{Config, Protocol, Sizing};
use crate::net::acl::Access;
use crate::net::ListenAddr;
use crate::privileges::Privileges;
use crate::service::{Builtin, Handler, Service};

/// A socket, as the master keys it: kept across reloads while its address
/// and protocol stay in the plan. Port 0 asks for a fresh port, so such a
/// socket belongs to its service alone (the third field names it).
/// A `reuseport` socket (bound with SO_REUSEPORT, never listening) is not
/// interchangeable with a listening one: the flag is part of the key.
pub(crate) type SocketKey = (ListenAddr, Protocol, bool, Option<String>);

/// What a worker does with its socket.
#[derive(Clone)]
pub(crate) enum Job<'a> {
    /// Accept connections and run the handler on each.
    Stream(Rc<dyn Handler + 'a>),
    /// Receive datagrams and answer each with this builtin.
    Datagram(Builtin),
}

/// One pool: a job on an address.
#[derive(Clone)]
pub(crate) struct PoolPlan<'a> {
    /// The service's name, for logs.
    pub service: String,
    /// Where.
    pub addr: ListenAddr,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// listen(2) backlog (TCP and Unix).
    pub backlog: i32,
    /// Mode and owner of a Unix socket file.
    pub socket_mode: Option<u32>,
    /// Owner (uid, gid) of a Unix socket file.
    pub socket_owner: Option<(u32, u32)>,
    /// What the workers do.
    pub job: Job<'a>,
    /// What the workers drop to.
    pub privileges: Privileges,
    /// How many, fixed or following the load.
    pub sizing: Sizing,
    /// Retire a worker after this many connections (base, jitter).
    pub max_requests: Option<(u64, u64)>,
    /// Close idle connections, kill stuck handlers, after this long.
    pub timeout: Option<Duration>,
    /// Retire a worker whose resident memory grew past this many bytes.
    pub max_memory: Option<u64>,
    /// Log one line per connection.
    pub log_connections: bool,
    /// Who may connect, how many at once, how fast.
    pub access: Access,
    /// How the pool serves its socket.
    pub model: crate::models::Model,
    /// Read a PROXY protocol header before serving each connection.
    pub proxy_protocol: Option<crate::net::proxy::Proxy>,
    /// Everything about the pool but its worker count: a reload replaces
    /// the workers of a pool whose fingerprint changed.
    pub fingerprint: String,
}

impl PoolPlan<'_> {
    /// How many processes the master keeps for this pool: the sizing for a
    /// process pool, the one runner for a single-process model.
    pub(crate) fn processes(&self) -> usize {
        if self.model.is_process_pool() {
            self.sizing.start().max(1)
        } else {
            1
        }
    }

    pub(crate) fn socket_key(&self) -> SocketKey {
        let owner = self.addr.is_port_zero().then(|| self.service.clone());
        let reuse_port = self.model == crate::models::Model::Reuseport;
        (self.addr.clone(), self.protocol, reuse_port, owner)
    }
}

/// Everything the master runs.
pub(crate) struct Plan<'a> {
    pub pools: Vec<PoolPlan<'a>>,
    pub graceful_timeout: Duration,
    /// Where the control socket goes (`serve` only).
    pub control: Option<PathBuf>,
    /// Started by a binary upgrade: the old master's control socket is
    /// replaced, not a reason to stop.
    pub take_over_control: bool,
}

/// How a socket is named when passed to a new master: `SERVICE/ADDR`, with
/// the colons of the address (which LISTEN_FDNAMES uses as its separator)
/// written as `_`.
pub(crate) fn fd_name(service: &str, addr: &ListenAddr) -> String {
    format!("{service}/{}", addr.to_string().replace(':', "_"))
}

impl Plan<'static> {
    /// One pool per service and listen address of `config`.
    pub(crate) fn from_config(config: &Config) -> Plan<'static> {
        let mut pools = Vec::new();
        for s in &config.services {
            let job = match (&s.service, s.protocol) {
                (Service::Builtin(b), Protocol::Udp) => Job::Datagram(*b),
                (service, _) => Job::Stream(Rc::new(service.clone())),
            };
            let mut fingerprinted = s.clone();
            // A process pool takes a new size in place; the thread or
            // process count of a single-process model is its runner's.
            if s.model.is_process_pool() {
                fingerprinted.sizing = Sizing::Fixed(0);
            }
            fingerprinted.listen.clear();
            for addr in &s.listen {
                pools.push(PoolPlan {
                    service: s.name.clone(),
                    addr: addr.clone(),
                    protocol: s.protocol,
                    backlog: s.backlog,
                    socket_mode: s.socket_mode,
                    socket_owner: s.socket_owner,
                    job: job.clone(),
                    privileges: s.privileges.clone(),
                    sizing: s.sizing,
                    max_requests: s.max_requests.map(|m| (m, s.max_requests_jitter)),
                    timeout: s.timeout,
                    access: s.access.clone(),
                    max_memory: s.max_memory,
                    log_connections: s.log_connections,
                    model: s.model,
                    proxy_protocol: s.proxy_protocol.clone(),
                    fingerprint: format!("{fingerprinted:?}"),
                });
            }
        }
        Plan {
            pools,
            graceful_timeout: config.daemon.graceful_timeout,
            control: Some(config.daemon.control.clone()),
            take_over_control: false,
        }
    }
}
