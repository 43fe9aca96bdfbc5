//! The pool knobs of a [`Server`]: each sets one field of the
//! [`PoolSettings`] of the listener added last, the same field a
//! `[[service]]` key of the daemon's config file sets (preforkd.toml(5)
//! describes each). [`Server::pool_settings`] reaches every field.

use std::path::PathBuf;
use std::time::Duration;

use super::Server;
use crate::config::{maxima, PoolSettings, Sizing};
use crate::net::acl::{parse_net, Rate};
use crate::net::proxy::{self, Proxy, ProxyVersion};
use crate::privileges::{Account, Limits};
use crate::Error;

/// Every entry of `list` as a network, or the first that is not one.
fn networks(key: &str, list: &[&str]) -> Result<Vec<ipnet::IpNet>, Error> {
    list.iter()
        .map(|s| parse_net(s).map_err(|e| Error::Usage(format!("{key}: {e}"))))
        .collect()
}

impl Server {
    /// Names the pool in log lines, `status` and the hooks' [`WorkerInfo`]
    /// (`server` for the first, `server-N` for the N-th otherwise); each
    /// listener needs its own.
    ///
    /// [`WorkerInfo`]: crate::WorkerInfo
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.name("api");
    /// # Ok(()) }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Server {
        self.current_mut().name = name.into();
        self
    }

    /// A fixed pool of `n` workers (at least one, at most
    /// [`MAX_WORKERS`](crate::config::maxima::MAX_WORKERS), as in the
    /// config): `workers = N`.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// use preforkd::config::Sizing;
    ///
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.workers(4);
    /// assert_eq!(server.settings().sizing, Sizing::Fixed(4));
    /// # Ok(()) }
    /// ```
    pub fn workers(mut self, n: usize) -> Server {
        let most = maxima::MAX_WORKERS as usize;
        self.current_mut().settings.sizing = Sizing::Fixed(n.clamp(1, most));
        self
    }

    /// An adaptive pool: `start` workers forked at first, at least
    /// `min_spare` kept idle by forking as workers turn busy, idle ones
    /// above `max_spare` retired, never more than `max` (`workers = {
    /// start, min_spare, max_spare, max }`). An error names the number that
    /// does not fit.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:8080")?.adaptive(2, 1, 4, 32)?;
    /// # Ok(()) }
    /// ```
    pub fn adaptive(
        mut self,
        start: usize,
        min_spare: usize,
        max_spare: usize,
        max: usize,
    ) -> Result<Server, Error> {
        self.current_mut().settings.sizing =
            Sizing::adaptive(Some(start), Some(min_spare), Some(max_spare), Some(max))
                .map_err(|e| Error::Usage(format!("workers: {e}")))?;
        Ok(self)
    }

    /// Retires a worker after `n` connections, plus up to `jitter` more
    /// chosen per worker so that workers started together do not all
    /// leave together (`max_requests`, `max_requests_jitter`). Its
    /// replacement is forked at once; nothing waiting is lost.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.max_requests(1000, 100);
    /// assert_eq!(server.settings().max_requests, Some(1000));
    /// assert_eq!(server.settings().max_requests_jitter, 100);
    /// # Ok(()) }
    /// ```
    pub fn max_requests(mut self, n: u64, jitter: u64) -> Server {
        let settings = &mut self.current_mut().settings;
        // Bounded as the config's are, so that their sum cannot overflow.
        settings.max_requests = Some(n.clamp(1, maxima::MAX_REQUESTS));
        settings.max_requests_jitter = jitter.min(maxima::MAX_REQUESTS);
        self
    }

    /// Closes a connection idle for `timeout` (a read or write waits no
    /// longer), and kills a worker whose handler is busy longer than that
    /// (`timeout`).
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// use std::time::Duration;
    ///
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.timeout(Duration::from_secs(30));
    /// assert_eq!(server.settings().timeout, Some(Duration::from_secs(30)));
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Server {
        // At most the config's longest, so that a deadline cannot overflow.
        self.current_mut().settings.timeout = Some(timeout.min(maxima::MAX_DURATION));
        self
    }

    /// Retires a worker, after its connection, once its resident memory is
    /// larger than `bytes` (it is replaced at once; nothing is lost):
    /// `max_memory`.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.max_memory(256 << 20);
    /// assert_eq!(server.settings().max_memory, Some(256 << 20));
    /// # Ok(()) }
    /// ```
    pub fn max_memory(mut self, bytes: u64) -> Server {
        self.current_mut().settings.max_memory = Some(bytes.min(maxima::MAX_SIZE));
        self
    }

    /// Logs one line per connection (C0001, C0003): `log_connections`.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.log_connections(true);
    /// assert!(server.settings().log_connections);
    /// # Ok(()) }
    /// ```
    pub fn log_connections(mut self, on: bool) -> Server {
        self.current_mut().settings.log_connections = on;
        self
    }

    /// Serves only clients from these networks or addresses
    /// (`10.0.0.0/8`, `::1`); others are closed at once and logged
    /// (W0030): `only_from`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind(":8080")?
    ///     .only_from(&["127.0.0.0/8", "::1"])?
    ///     .no_access(&["127.0.0.2"])?
    ///     .per_source(4)
    ///     .rate("100/s")?;
    /// # Ok(()) }
    /// ```
    pub fn only_from(mut self, networks_: &[&str]) -> Result<Server, Error> {
        self.current_mut().settings.access.only_from = networks("only_from", networks_)?;
        Ok(self)
    }

    /// Never serves clients from these networks (wins over `only_from`):
    /// `no_access`.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.no_access(&["10.1.0.0/16"])?;
    /// assert_eq!(server.settings().access.no_access.len(), 1);
    /// assert!(preforkd::Server::bind("127.0.0.1:0")?.no_access(&["no-net"]).is_err());
    /// # Ok(()) }
    /// ```
    pub fn no_access(mut self, networks_: &[&str]) -> Result<Server, Error> {
        self.current_mut().settings.access.no_access = networks("no_access", networks_)?;
        Ok(self)
    }

    /// At most `n` connections at once from one client address:
    /// `per_source`.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.per_source(8);
    /// assert_eq!(server.settings().access.per_source, Some(8));
    /// # Ok(()) }
    /// ```
    pub fn per_source(mut self, n: u32) -> Server {
        self.current_mut().settings.access.per_source = Some(n.min(maxima::MAX_PER_SOURCE as u32));
        self
    }

    /// At most this many new connections per period (`"50/s"`, `"600/m"`)
    /// on this listener; the others are closed at once: `rate`.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.rate("600/m")?;
    /// assert!(server.settings().access.rate.is_some());
    /// assert!(preforkd::Server::bind("127.0.0.1:0")?.rate("fast").is_err());
    /// # Ok(()) }
    /// ```
    pub fn rate(mut self, rate: &str) -> Result<Server, Error> {
        let rate: Rate = rate
            .parse()
            .map_err(|e| Error::Usage(format!("rate: {e}")))?;
        self.current_mut().settings.access.rate = Some(rate);
        Ok(self)
    }

    /// Expects a PROXY protocol header (`version`) first on connections
    /// from the balancers in `trusted` (at least one network), and takes
    /// the client's address from it: the access rules, `per_source` and
    /// [`Connection::remote_addr`](crate::Connection::remote_addr) see the
    /// client. Other peers are direct clients; a header from one of them
    /// is refused (W0031). `proxy_protocol`, `trusted_proxies`.
    ///
    /// ```no_run
    /// use preforkd::net::proxy::ProxyVersion;
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind(":8080")?
    ///     .proxy_protocol(ProxyVersion::V2, &["10.0.0.5"])?;
    /// # Ok(()) }
    /// ```
    pub fn proxy_protocol(
        mut self,
        version: ProxyVersion,
        trusted: &[&str],
    ) -> Result<Server, Error> {
        if trusted.is_empty() {
            return Err(Error::Usage(
                "trusted_proxies: name at least one balancer".into(),
            ));
        }
        self.current_mut().settings.proxy_protocol = Some(Proxy {
            version,
            trusted: networks("trusted_proxies", trusted)?,
            timeout: proxy::DEFAULT_TIMEOUT,
        });
        Ok(self)
    }

    /// Workers switch to `user` (and `group`, instead of the user's
    /// primary group) after fork, before the after-fork hook: `user`,
    /// `group`. The master must be root for that; `serve` refuses
    /// otherwise. An error says the user or group is unknown.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:8080")?.user("www-data", Some("www-data"))?;
    /// # Ok(()) }
    /// ```
    pub fn user(mut self, user: &str, group: Option<&str>) -> Result<Server, Error> {
        let account = Account::lookup(user, group).map_err(Error::Usage)?;
        self.current_mut().settings.privileges.account = Some(account);
        Ok(self)
    }

    /// Workers chroot(2) to `dir` after fork (the master must be root):
    /// `chroot`.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.chroot("/var/empty");
    /// assert_eq!(server.settings().privileges.chroot.as_deref(), Some("/var/empty".as_ref()));
    /// # Ok(()) }
    /// ```
    pub fn chroot(mut self, dir: impl Into<PathBuf>) -> Server {
        self.current_mut().settings.privileges.chroot = Some(dir.into());
        self
    }

    /// Resource limits each worker sets on itself after fork:
    /// `limits`.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// use preforkd::privileges::Limits;
    ///
    /// let limits = Limits {
    ///     open_files: Some(1024),
    ///     ..Limits::default()
    /// };
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.limits(limits);
    /// assert_eq!(server.settings().privileges.limits.open_files, Some(1024));
    /// # Ok(()) }
    /// ```
    pub fn limits(mut self, limits: Limits) -> Server {
        self.current_mut().settings.privileges.limits = limits;
        self
    }

    /// On SIGTERM, how long busy workers may take before they are killed
    /// (all listeners): `[daemon] graceful_timeout`.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// use std::time::Duration;
    ///
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.graceful_timeout(Duration::from_secs(5));
    /// # Ok(()) }
    /// ```
    pub fn graceful_timeout(mut self, timeout: Duration) -> Server {
        self.graceful_timeout = timeout.min(maxima::MAX_DURATION);
        self
    }

    /// Changes any field of the pool's settings: the same
    /// [`PoolSettings`] the daemon makes of a `[[service]]`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:8080")?.pool_settings(|s| {
    ///     s.model = preforkd::config::Model::PreforkLock;
    ///     s.privileges.no_new_privs = true;
    /// });
    /// # Ok(()) }
    /// ```
    pub fn pool_settings(mut self, change: impl FnOnce(&mut PoolSettings)) -> Server {
        change(&mut self.current_mut().settings);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_s_numbers_are_bounded_as_the_config_s_are() {
        let mut server = Server::bind("127.0.0.1:0")
            .unwrap()
            .workers(usize::MAX)
            .max_requests(u64::MAX, u64::MAX)
            .timeout(Duration::MAX)
            .max_memory(u64::MAX)
            .per_source(u32::MAX)
            .graceful_timeout(Duration::MAX);
        assert_eq!(server.graceful_timeout, maxima::MAX_DURATION);
        let s = &server.current_mut().settings;
        assert_eq!(s.sizing, Sizing::Fixed(maxima::MAX_WORKERS as usize));
        assert_eq!(s.max_requests, Some(maxima::MAX_REQUESTS));
        assert_eq!(s.max_requests_jitter, maxima::MAX_REQUESTS);
        assert_eq!(s.timeout, Some(maxima::MAX_DURATION));
        assert_eq!(s.max_memory, Some(maxima::MAX_SIZE));
        assert_eq!(s.access.per_source, Some(maxima::MAX_PER_SOURCE as u32));
    }

    #[test]
    fn a_handler_serves_only_its_own_kind_of_listener() {
        let refused = |result: Result<(), Error>| match result {
            Err(Error::Usage(why)) => why,
            other => panic!("not refused: {other:?}"),
        };
        let udp = Server::bind_udp("127.0.0.1:0").unwrap();
        let why = refused(udp.serve(|_c: crate::Connection| Ok(())));
        assert!(why.contains("served by a datagram handler"), "{why}");
        let tcp = Server::bind("127.0.0.1:0").unwrap();
        let why = refused(tcp.serve_datagrams(|_d: crate::Datagram<'_>| Ok(())));
        assert!(
            why.contains("a datagram handler serves a UDP listener"),
            "{why}"
        );
        // A protocol changed behind the listener's back.
        let switched = Server::bind("127.0.0.1:0")
            .unwrap()
            .listen_udp("127.0.0.1:0", |_d: crate::Datagram<'_>| Ok(()))
            .unwrap()
            .pool_settings(|s| s.protocol = crate::config::Protocol::Tcp);
        let why = refused(switched.serve(|_c: crate::Connection| Ok(())));
        assert!(why.starts_with("listener server-2: "), "{why}");
    }

    #[test]
    fn a_udp_listener_is_refused_what_the_daemon_refuses_a_udp_builtin() {
        let udp = |change: fn(Server) -> Server| {
            let server = Server::bind("127.0.0.1:0")
                .unwrap()
                .listen_udp("127.0.0.1:0", |_d: crate::Datagram<'_>| Ok(()))
                .unwrap();
            let server = change(server);
            super::super::check_udp("server-2", server.settings())
        };
        assert_eq!(udp(|s| s.workers(2).rate("10/s").unwrap()), Ok(()));
        for (change, key) in [
            (
                (|s: Server| s.timeout(Duration::from_secs(1))) as fn(Server) -> Server,
                "timeout",
            ),
            (|s| s.max_memory(1 << 20), "max_memory"),
            (|s| s.log_connections(true), "log_connections"),
            (
                |s| s.pool_settings(|p| p.model = crate::config::Model::Threads),
                "model",
            ),
        ] {
            let refused = udp(change).unwrap_err();
            assert!(
                refused.starts_with("listener server-2: ") && refused.contains(key),
                "{refused}"
            );
        }
    }
}
