//! Which settings fit together: the single-process models serve one way
//! and skip the daemon's per-worker features, `reuseport` needs IP
//! addresses, a wait service's program reads the socket itself, and a
//! PROXY protocol on a `unix:` socket needs a file only the balancer can
//! connect to.

use super::{Model, PoolSettings, Protocol, ServiceConfig, Sizing};
use crate::net::ListenAddr;
use crate::service::Service;

impl PoolSettings {
    /// Whether a UDP pool's settings fit: it is served by the prefork
    /// model (a worker in recvfrom(2)), and no PROXY header comes first.
    /// Also what the library's UDP listeners are checked with.
    pub(crate) fn check_udp_model(&self) -> Result<(), String> {
        if self.proxy_protocol.is_some() {
            return Err("proxy_protocol applies to tcp services, not udp".into());
        }
        match self.model {
            Model::Prefork => Ok(()),
            model => Err(format!(
                "model = \"{model}\" serves tcp; udp services use the prefork model"
            )),
        }
    }
}

impl ServiceConfig {
    /// Whether the service's settings fit its model: the single-process
    /// models take a fixed `workers = N` and none of the per-worker
    /// features of the daemon's own process pool; `reuseport` needs an IP
    /// address. Returns what does not fit, in the user's words.
    pub fn check_model(&self) -> Result<(), String> {
        let model = self.pool.model;
        if self.pool.protocol == Protocol::Udp {
            return self.pool.check_udp_model();
        }
        if model == Model::Prefork {
            return Ok(());
        }
        if model == Model::Reuseport {
            if self.listen.iter().any(|a| matches!(a, ListenAddr::Unix(_))) {
                return Err("model = \"reuseport\" needs IP addresses, not unix:".into());
            }
            return Ok(());
        }
        // These fork from the runner, which off Linux has a thread (the
        // watch that ends it when the master dies): fork(2) there would
        // copy a process with threads.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        if matches!(model, Model::Fork | Model::PreforkPass) {
            return Err(format!("model = \"{model}\" is available on Linux only"));
        }
        #[cfg(not(target_os = "linux"))]
        if matches!(model, Model::PreforkEpoll | Model::PreforkEpollExclusive) {
            return Err(format!("model = \"{model}\" needs Linux (epoll)"));
        }
        if model.is_process_pool() {
            return Ok(());
        }
        if self.pool.sizing.is_adaptive() {
            return Err(format!(
                "model = \"{model}\" takes a fixed number of workers (workers = N), not an adaptive pool"
            ));
        }
        let used = self.process_pool_keys();
        if !used.is_empty() {
            return Err(format!(
                "model = \"{model}\" does not support {} (the prefork models do)",
                used.join(", ")
            ));
        }
        Ok(())
    }

    /// Whether the builtin serves the service's protocol: `work` reads a
    /// request on a connection, and has no UDP form.
    pub fn check_protocol(&self) -> Result<(), String> {
        match &self.service {
            Service::Builtin(b) if self.pool.protocol == Protocol::Udp && !b.serves_udp() => {
                Err(format!(
                    "builtin {} reads a request on a connection: it serves tcp, not udp",
                    b.name()
                ))
            }
            Service::Builtin(b) if b.needs_scoreboard() && !self.pool.model.is_process_pool() => {
                Err(format!(
                    "builtin {} reads the workers' scoreboard: it needs a prefork model, not model = \"{}\"",
                    b.name(),
                    self.pool.model
                ))
            }
            _ => Ok(()),
        }
    }

    /// The keys set here that only the process-pool models honour: the
    /// scoreboard's (`per_source`, `log_connections`), a worker's
    /// (`max_requests`, `max_memory`), the checks a worker makes after
    /// accept (`rate`, `only_from`, `no_access`).
    pub fn process_pool_keys(&self) -> Vec<&'static str> {
        let keys = [
            ("max_requests", self.pool.max_requests.is_some()),
            ("max_memory", self.pool.max_memory.is_some()),
            ("log_connections", self.pool.log_connections),
            ("per_source", self.pool.access.per_source.is_some()),
            ("rate", self.pool.access.rate.is_some()),
            ("only_from", !self.pool.access.only_from.is_empty()),
            ("no_access", !self.pool.access.no_access.is_empty()),
            ("proxy_protocol", self.pool.proxy_protocol.is_some()),
        ];
        keys.iter()
            .filter(|(_, used)| *used)
            .map(|(key, _)| *key)
            .collect()
    }

    /// Whether a wait service (`wait = true`, and every program on UDP)
    /// can be one: a program, under the prefork model, with one worker,
    /// and none of the settings a worker applies to each client, since
    /// the program reads or accepts for itself and the worker sees no
    /// client. Returns what does not fit, in the user's words.
    pub fn check_wait(&self) -> Result<(), String> {
        let program = matches!(self.service, Service::Exec(_));
        if !self.pool.wait {
            if program && self.pool.protocol == Protocol::Udp {
                return Err("a program on udp reads its datagrams itself: it is a wait service (leave out wait = false)".into());
            }
            return Ok(());
        }
        if !program {
            return Err(
                "wait = true is for programs (exec): a builtin answers each client itself".into(),
            );
        }
        if self.pool.model != Model::Prefork {
            return Err(format!(
                "a wait service runs under the prefork model, not model = \"{}\"",
                self.pool.model
            ));
        }
        if self.pool.sizing != Sizing::Fixed(1) {
            return Err(
                "a wait service runs one program at a time: workers must be 1 (or left out)".into(),
            );
        }
        let per_client: Vec<_> = [
            ("max_requests", self.pool.max_requests.is_some()),
            ("max_memory", self.pool.max_memory.is_some()),
            ("per_source", self.pool.access.per_source.is_some()),
            ("rate", self.pool.access.rate.is_some()),
            ("only_from", !self.pool.access.only_from.is_empty()),
            ("no_access", !self.pool.access.no_access.is_empty()),
            ("proxy_protocol", self.pool.proxy_protocol.is_some()),
        ]
        .iter()
        .filter(|(_, used)| *used)
        .map(|(key, _)| *key)
        .collect();
        if !per_client.is_empty() {
            return Err(format!(
                "a wait service's program reads the socket itself, so preforkd sees no client and cannot apply {} (use the program's own, or a firewall)",
                per_client.join(", ")
            ));
        }
        Ok(())
    }

    /// A PROXY header is believed from every client of a `unix:` socket
    /// (see `trusted_proxies`): who may connect must then be said, with a
    /// `socket_mode` that gives others nothing, not left to the umask.
    pub fn check_unix_proxy(&self) -> Result<(), String> {
        let on_unix = self.listen.iter().any(|a| matches!(a, ListenAddr::Unix(_)));
        if !on_unix || self.pool.proxy_protocol.is_none() {
            return Ok(());
        }
        match self.pool.socket_mode {
            Some(mode) if mode & 0o007 == 0 => Ok(()),
            Some(mode) => Err(format!(
                "proxy_protocol on a unix: address believes the header of every client of the socket, and socket_mode = \"{mode:04o}\" lets others connect: give others no bits (as \"0660\")"
            )),
            None => Err(
                "proxy_protocol on a unix: address believes the header of every client of the socket: set socket_mode, with no bits for others (as \"0660\"), so that only the balancer's user or group can connect".into(),
            ),
        }
    }
}
