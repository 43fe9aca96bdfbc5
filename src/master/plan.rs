//! What the master is asked to run: a [`Plan`] of pools, each a
//! [`PoolSpec`], and how long a stop waits for them. (The control socket
//! is not the plan's: `serve` opens it, `run` and the library have none.)
//! `preforkd run` and the library make a plan of one
//! pool; `preforkd serve` makes one from the config file, at start and at
//! each reload. The master keys sockets by [`SocketKey`], and a reload
//! keeps a pool whose spec is the same but for its size.

use std::time::Duration;

use crate::config::{Config, Protocol};
use crate::net::ListenAddr;
use crate::spec::PoolSpec;

/// A socket, as the master keys it: kept across reloads while its address
/// and protocol stay in the plan. Port 0 asks for a fresh port, so such a
/// socket belongs to its service alone (the last field names it).
/// A `reuseport` socket (bound with SO_REUSEPORT, never listening) is not
/// interchangeable with a listening one: the flag (the third field) is
/// part of the key.
pub(crate) type SocketKey = (ListenAddr, Protocol, bool, Option<String>);

/// The socket `spec`'s pool serves, as the master keys it.
pub(crate) fn socket_key(spec: &PoolSpec<'_>) -> SocketKey {
    let owner = spec.addr.is_port_zero().then(|| spec.name.clone());
    let own_socket_each = crate::models::socket::bound_per_worker(spec.settings.model);
    (spec.addr.clone(), spec.protocol(), own_socket_each, owner)
}

/// Everything the master runs.
pub(crate) struct Plan<'a> {
    pub pools: Vec<PoolSpec<'a>>,
    pub graceful_timeout: Duration,
    /// The log level a reload sets (`[daemon] log_level`, info without
    /// it); `None`: leave it (`--log-level` or `-v` fixed it).
    pub log_level: Option<log::LevelFilter>,
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
        Plan {
            pools: config
                .services
                .iter()
                .flat_map(PoolSpec::of_service)
                .collect(),
            graceful_timeout: config.daemon.graceful_timeout,
            log_level: Some(config.daemon.log_level.unwrap_or(log::LevelFilter::Info)),
        }
    }
}
