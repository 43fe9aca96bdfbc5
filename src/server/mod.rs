//! The library's pre-fork server: bind, set the pool, add hooks, `serve`.
//!
//! [`Server`] wraps the daemon's own machinery (`crate::master`, its pools,
//! forked workers, reload, systemd) for a Rust program that brings its own
//! [`Handler`] (or, on a UDP listener, its own [`DatagramHandler`]). Each
//! listener is one pool of the master's, described by the
//! same [`PoolSettings`] the daemon builds from its config file: the
//! builder's knobs (in `builder.rs`) set its fields, nothing else. The
//! hooks, and where each runs, are in `hooks.rs`; the crate docs show it
//! all in use. Unix only: it forks.
//!
//! What does not live here: forking, supervising and reloading (the
//! master's), serving a connection (the worker's).

mod builder;
mod hooks;

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::config::{maxima, PoolSettings, Protocol};
use crate::spec::{Job, PoolSpec, WorkerHooks};
use crate::{master, net};
use crate::{DatagramHandler, Error, Handler, ListenAddr, Listener};

use hooks::Hooks;
pub use hooks::Reload;

/// Whether a graceful stop is pending in this worker: the master sent it
/// SIGTERM (a stop, a reload that replaces its pool, a scale-down). A
/// handler serving a long connection can look at it between requests and
/// finish cleanly; the worker leaves once the handler returns. Always
/// false in the master and before the first fork.
///
/// ```no_run
/// use std::io::{BufRead, BufReader, Write};
/// use preforkd::Connection;
///
/// fn handle(conn: Connection) -> std::io::Result<()> {
///     let mut conn = BufReader::new(conn);
///     let mut line = String::new();
///     while !preforkd::stop_pending() && conn.read_line(&mut line)? > 0 {
///         conn.get_mut().write_all(line.as_bytes())?;
///         line.clear();
///     }
///     Ok(())
/// }
/// ```
pub fn stop_pending() -> bool {
    crate::sys::signal::stop_requested()
}

/// Tells `preforkd status` what this worker's handler is doing, as
/// Apache's mod_status shows the request: `status` shows it for a busy
/// worker (the `handler_state` column, and field of `--json`) until the
/// connection ends, when the worker clears it.
///
/// It runs in the worker, in the handler's own thread, and writes the
/// worker's scoreboard slot without a lock or a system call: cheap
/// enough for every request. The text is untrusted (it usually comes from
/// a client): control characters and those that reorder text become `?`,
/// and it is cut to 48 bytes on a character boundary. Before a worker
/// serves (the master, the before-fork and after-fork hooks), on a
/// thread the handler started, and under a model other than the prefork
/// ones (`iterative`, `fork`, `prefork-pass`: no worker slot per
/// connection), it does nothing; a state set between two
/// connections (the exit hook) is cleared as the next one begins.
///
/// ```
/// use std::io::{BufRead, BufReader};
/// use preforkd::Connection;
///
/// fn handle(conn: Connection) -> std::io::Result<()> {
///     let mut conn = BufReader::new(conn);
///     let mut request = String::new();
///     conn.read_line(&mut request)?;
///     preforkd::set_state(request.trim_end());
///     // ... serve it ...
///     Ok(())
/// }
///
/// // Outside a worker it does nothing.
/// preforkd::set_state("GET /");
/// # let _ = handle;
/// ```
pub fn set_state(text: &str) {
    crate::worker::set_state(text);
}

/// One listener of a [`Server`] and its pool, as the builder fills it in.
struct PoolBuild {
    name: String,
    addr: ListenAddr,
    /// Bound already; `None` when a service manager passed the sockets
    /// (the master adopts or binds it).
    listener: Option<Listener>,
    /// What `local_display` shows.
    display: String,
    settings: PoolSettings,
    /// The handler given with `listen` or `listen_udp`; the first pool's
    /// comes to `serve` or `serve_datagrams`.
    handler: Option<Handed<'static>>,
}

/// What serves a pool: a handler of connections, or of datagrams.
enum Handed<'h> {
    Connections(Rc<dyn Handler + 'h>),
    Datagrams(Rc<dyn DatagramHandler + 'h>),
}

impl Handed<'_> {
    fn protocol(&self) -> Protocol {
        match self {
            Handed::Connections(_) => Protocol::Tcp,
            Handed::Datagrams(_) => Protocol::Udp,
        }
    }
}

/// A pre-fork server: its listeners, each with its pool and handler, and
/// the hooks of its lifecycle. Call [`Server::serve`] to fork the workers
/// and supervise them.
///
/// The pool knobs ([`workers`](Server::workers),
/// [`timeout`](Server::timeout), [`only_from`](Server::only_from), ...)
/// set the pool of the listener added last: the one of
/// [`bind`](Server::bind) until [`listen`](Server::listen) or
/// [`listen_udp`](Server::listen_udp) adds another.
///
/// ```no_run
/// use std::io::Write;
/// use preforkd::{Connection, Datagram, Server};
///
/// # fn main() -> Result<(), preforkd::Error> {
/// Server::bind("127.0.0.1:8080")?
///     .workers(4)                                  // the pool of 127.0.0.1:8080
///     .listen_udp("127.0.0.1:8080", |d: Datagram<'_>| d.reply(b"up\n").map(|_| ()))?
///     .workers(1)                                  // the pool of the UDP listener
///     .serve(|mut c: Connection| c.write_all(b"hello\n"))
/// # }
/// ```
pub struct Server {
    pools: Vec<PoolBuild>,
    graceful_timeout: Duration,
    hooks: Hooks,
    /// Where `serve` opens the control socket, if anywhere.
    control: Option<PathBuf>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field(
                "listeners",
                &self
                    .pools
                    .iter()
                    .map(|p| (&p.name, &p.display))
                    .collect::<Vec<_>>(),
            )
            .field("graceful_timeout", &self.graceful_timeout)
            .finish_non_exhaustive()
    }
}

/// Whether a service manager passed this process its sockets
/// (`$LISTEN_PID` is ours and `$LISTEN_FDS` is set): then the master
/// adopts them, matched by address, and binds only what is missing.
fn socket_activated() -> bool {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    ours && std::env::var("LISTEN_FDS").is_ok_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0))
}

/// Binds `addr` (`127.0.0.1:8080`, `[::1]:0`, `:8080`, `unix:/path`; an
/// IP address only for UDP), unless a service manager passed the sockets.
fn bind_pool(addr: &str, name: String, protocol: Protocol) -> Result<PoolBuild, Error> {
    let addr: ListenAddr = addr.parse().map_err(Error::Address)?;
    if protocol == Protocol::Udp && matches!(addr, ListenAddr::Unix(_)) {
        return Err(Error::Usage(format!(
            "{addr}: a unix: address cannot serve udp"
        )));
    }
    let listener = if socket_activated() {
        None
    } else {
        let bound = match protocol {
            Protocol::Tcp => Listener::bind(&addr, net::DEFAULT_BACKLOG),
            Protocol::Udp => Listener::bind_udp(&addr),
        };
        Some(bound.map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?)
    };
    Ok(PoolBuild {
        display: listener
            .as_ref()
            .map_or_else(|| addr.to_string(), |l| l.local_display().to_string()),
        name,
        addr,
        listener,
        settings: PoolSettings {
            protocol,
            ..PoolSettings::default()
        },
        handler: None,
    })
}

/// Whether `handler` can serve `pool`: a handler of connections a TCP or
/// `unix:` listener, a datagram handler a UDP one (as bound: a protocol
/// changed by `pool_settings` is refused), with what UDP allows.
fn check_handled(pool: &PoolBuild, handler: &Handed<'_>) -> Result<(), Error> {
    let protocol = pool.settings.protocol;
    if protocol != handler.protocol() {
        return Err(Error::Usage(format!(
            "listener {}: {}",
            pool.name,
            match handler {
                Handed::Connections(_) =>
                    "a UDP listener is served by a datagram handler \
                     (bind_udp and serve_datagrams, or listen_udp)",
                Handed::Datagrams(_) =>
                    "a datagram handler serves a UDP listener \
                     (bind_udp or listen_udp), and its protocol stays udp",
            }
        )));
    }
    if protocol == Protocol::Udp {
        check_udp(&pool.name, &pool.settings).map_err(Error::Usage)?;
    }
    Ok(())
}

/// What a UDP pool cannot do, refused as the daemon's config refuses it
/// for a UDP builtin: a worker answers each datagram at once, in the
/// memory it started with, and logs no line per datagram.
/// `name` is the listener's, for the message.
pub(super) fn check_udp(name: &str, s: &PoolSettings) -> Result<(), String> {
    let unfit = [
        ("timeout", s.timeout.is_some()),
        ("max_memory", s.max_memory.is_some()),
        ("log_connections", s.log_connections),
    ];
    let refused = |why: String| format!("listener {name}: {why}");
    if let Some((key, _)) = unfit.iter().find(|(_, set)| *set) {
        return Err(refused(format!(
            "`{key}` applies to tcp listeners, not udp"
        )));
    }
    s.check_udp_model().map_err(refused)
}

impl Server {
    /// Binds `addr` (`127.0.0.1:8080`, `[::1]:0`, `:8080`, `unix:/path`)
    /// with the default backlog, for a pool with the default settings (one
    /// worker per CPU, open to every client, no limits).
    ///
    /// Under systemd socket activation (`$LISTEN_FDS` for this process)
    /// nothing is bound here: `serve` takes the passed socket whose
    /// address is `addr`, and binds `addr` only if none is.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?;
    /// eprintln!("bound {}", server.local_display());
    /// # Ok(()) }
    /// ```
    pub fn bind(addr: &str) -> Result<Server, Error> {
        Server::bind_as(addr, Protocol::Tcp)
    }

    /// Binds the UDP socket `addr` (`127.0.0.1:5353`, `[::1]:0`, `:5353`),
    /// for a pool with the default settings whose workers each answer
    /// datagrams with the [`DatagramHandler`] given to
    /// [`serve_datagrams`](Server::serve_datagrams). Under socket
    /// activation, as [`bind`](Server::bind).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// preforkd::Server::bind_udp("127.0.0.1:5353")?
    ///     .workers(2)
    ///     .serve_datagrams(|d: preforkd::Datagram<'_>| d.reply(d.data()).map(|_| ()))
    /// # }
    /// ```
    pub fn bind_udp(addr: &str) -> Result<Server, Error> {
        Server::bind_as(addr, Protocol::Udp)
    }

    fn bind_as(addr: &str, protocol: Protocol) -> Result<Server, Error> {
        Ok(Server {
            pools: vec![bind_pool(addr, "server".into(), protocol)?],
            graceful_timeout: Duration::from_secs(30),
            hooks: Hooks::default(),
            control: None,
        })
    }

    /// Opens a control socket at `path` (mode 0600) as the daemon's
    /// `[daemon] control` is: `preforkd status --control PATH` shows the
    /// pools, each worker's state, client and [`set_state`] text.
    /// Without one, a library program answers only signals. A path where
    /// another live program listens makes `serve` fail (a socket file
    /// left by a program that died is replaced); one that cannot be made
    /// is logged (W0040) and `serve` goes on without it. The file is
    /// removed when the server stops.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// preforkd::Server::bind("127.0.0.1:8080")?
    ///     .control_socket("/run/app/control.sock")
    ///     .serve(|_conn: preforkd::Connection| Ok(()))
    /// # }
    /// ```
    pub fn control_socket(mut self, path: impl Into<PathBuf>) -> Server {
        self.control = Some(path.into());
        self
    }

    /// Adds a listener on `addr` with its own `handler` and its own pool
    /// (default settings, named `server-N` for the N-th listener); the
    /// pool knobs that follow set this pool.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// use preforkd::{Connection, Server};
    ///
    /// # fn main() -> Result<(), preforkd::Error> {
    /// Server::bind("127.0.0.1:8080")?
    ///     .workers(4)
    ///     .listen("unix:/run/app/admin.sock", |mut c: Connection| c.write_all(b"ok\n"))?
    ///     .name("admin")
    ///     .workers(1)
    ///     .serve(|mut c: Connection| c.write_all(b"hello\n"))
    /// # }
    /// ```
    pub fn listen<H: Handler + 'static>(self, addr: &str, handler: H) -> Result<Server, Error> {
        self.add_pool(addr, Handed::Connections(Rc::new(handler)))
    }

    /// Adds a UDP listener on `addr` (an IP address) with its own pool,
    /// whose workers each block in recvfrom(2) and give every datagram to
    /// `handler` (a [`DatagramHandler`], or a closure over the
    /// [`Datagram`](crate::Datagram)), one at a time, as the daemon's UDP
    /// builtins do. Named `server-N` for the N-th listener; the pool
    /// knobs that follow set this pool.
    ///
    /// The access rules apply to each datagram: one refused by
    /// [`only_from`](Server::only_from) or
    /// [`no_access`](Server::no_access) is dropped unanswered;
    /// [`per_source`](Server::per_source) counts datagrams per second
    /// from one address (100 by default, so that a forged source cannot
    /// aim a flood of replies anywhere), and [`rate`](Server::rate) those
    /// of the whole listener. As inetd does, a datagram from a port below
    /// 1024, or from one of the server's own UDP ports, is dropped too:
    /// two servers never answer each other in a loop. `max_requests`
    /// counts datagrams. `timeout`, `max_memory`, `log_connections` and
    /// the PROXY protocol are for connections: `serve` refuses them here,
    /// and any model but [`Prefork`](crate::config::Model::Prefork).
    ///
    /// ```no_run
    /// use std::io::Write;
    /// use preforkd::{Connection, Datagram, Server};
    ///
    /// # fn main() -> Result<(), preforkd::Error> {
    /// Server::bind("127.0.0.1:8080")?
    ///     .listen_udp("127.0.0.1:8080", |d: Datagram<'_>| d.reply(b"pong\n").map(|_| ()))?
    ///     .name("ping")
    ///     .workers(1)
    ///     .only_from(&["127.0.0.0/8"])?
    ///     .serve(|mut c: Connection| c.write_all(b"hello\n"))
    /// # }
    /// ```
    pub fn listen_udp<D: DatagramHandler + 'static>(
        self,
        addr: &str,
        handler: D,
    ) -> Result<Server, Error> {
        self.add_pool(addr, Handed::Datagrams(Rc::new(handler)))
    }

    fn add_pool(mut self, addr: &str, handler: Handed<'static>) -> Result<Server, Error> {
        let name = format!("server-{}", self.pools.len() + 1);
        let mut pool = bind_pool(addr, name, handler.protocol())?;
        pool.handler = Some(handler);
        self.pools.push(pool);
        Ok(self)
    }

    /// The address of the listener added last, with the real port
    /// (`listening on` prints this); the address asked for under socket
    /// activation.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?;
    /// assert!(server.local_display().starts_with("127.0.0.1:"));
    /// assert!(!server.local_display().ends_with(":0"));
    /// # Ok(()) }
    /// ```
    pub fn local_display(&self) -> &str {
        &self.current().display
    }

    /// The settings of the pool of the listener added last: the same type
    /// the daemon builds from a `[[service]]` of its config file.
    ///
    /// ```
    /// use preforkd::config::Protocol;
    ///
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?
    ///     .listen_udp("127.0.0.1:0", |_d: preforkd::Datagram<'_>| Ok(()))?;
    /// assert_eq!(server.settings().protocol, Protocol::Udp);
    /// # Ok(()) }
    /// ```
    pub fn settings(&self) -> &PoolSettings {
        &self.current().settings
    }

    fn current(&self) -> &PoolBuild {
        self.pools.last().expect("a server has a listener")
    }

    fn current_mut(&mut self) -> &mut PoolBuild {
        self.pools.last_mut().expect("a server has a listener")
    }

    /// Runs the before-fork hook, forks the workers and supervises them
    /// until a signal stops the server: SIGTERM (graceful) or
    /// SIGINT/SIGQUIT (at once). SIGHUP runs the reload hook. Prints
    /// `listening on ADDR` on stderr for each listener once its workers
    /// are forked (with ` (tcp service NAME)` after it when there are
    /// several), and tells systemd `READY=1` then when it runs under a
    /// `Type=notify` unit (`$NOTIFY_SOCKET`).
    ///
    /// `handler` serves the first listener (the one of
    /// [`bind`](Server::bind)); a server made by
    /// [`bind_udp`](Server::bind_udp) is served by
    /// [`serve_datagrams`](Server::serve_datagrams) instead. The process
    /// must be single-threaded here: forking a multi-threaded process is
    /// refused. A setting a listener cannot have (see
    /// [`listen_udp`](Server::listen_udp)), a handler of the wrong kind
    /// for its listener, or two listeners of one name, is refused before
    /// anything is forked.
    ///
    /// Each pool's settings are first held to the bounds `preforkd check`
    /// holds a config file's to (preforkd.toml(5), DURATIONS AND SIZES):
    /// a number that [`pool_settings`](Server::pool_settings) set out of
    /// them (`workers`, `max_requests`, `timeout`, `per_source`, `backlog`,
    /// a limit, ...) is an [`Error::Usage`] naming the pool, the field and
    /// its bound.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// preforkd::Server::bind("127.0.0.1:8080")?
    ///     .workers(2)
    ///     .serve(|_conn: preforkd::Connection| Ok(()))
    /// # }
    /// ```
    pub fn serve<H: Handler>(self, handler: H) -> Result<(), Error> {
        self.serve_with(Handed::Connections(Rc::new(handler)))
    }

    /// As [`serve`](Server::serve), for a server whose first listener is
    /// the UDP one of [`bind_udp`](Server::bind_udp): `handler` answers
    /// its datagrams.
    ///
    /// ```no_run
    /// use preforkd::{Datagram, Server};
    ///
    /// # fn main() -> Result<(), preforkd::Error> {
    /// Server::bind_udp("127.0.0.1:7013")?
    ///     .rate("1000/s")?
    ///     .serve_datagrams(|d: Datagram<'_>| d.reply(b"a time of day\r\n").map(|_| ()))
    /// # }
    /// ```
    pub fn serve_datagrams<D: DatagramHandler>(self, handler: D) -> Result<(), Error> {
        self.serve_with(Handed::Datagrams(Rc::new(handler)))
    }

    fn serve_with(self, first: Handed<'_>) -> Result<(), Error> {
        let Server {
            pools,
            graceful_timeout,
            hooks,
            control,
        } = self;
        // What `pool_settings` set is held to the config's bounds, as a
        // `[[service]]` is by `check`.
        for pool in &pools {
            maxima::check_settings(&pool.settings)
                .map_err(|e| Error::Usage(format!("pool {}: {e}", pool.name)))?;
        }
        maxima::check_graceful_timeout(graceful_timeout).map_err(Error::Usage)?;
        let mut names = std::collections::BTreeSet::new();
        if let Some(p) = pools.iter().find(|p| !names.insert(p.name.as_str())) {
            return Err(Error::Usage(format!(
                "two listeners are named {}: give each its own name",
                p.name
            )));
        }
        let Hooks {
            before_first_fork,
            after_fork,
            before_worker_exit,
            on_reload,
        } = hooks;
        let worker_hooks: Rc<WorkerHooks<'_>> = Rc::new(WorkerHooks {
            started: after_fork,
            exiting: before_worker_exit,
        });
        // The first listener's handler came to `serve` or `serve_datagrams`.
        let mut first = Some(first);
        let mut handed = Vec::new();
        for mut pool in pools {
            let handler = match (first.take(), pool.handler.take()) {
                (Some(h), _) | (None, Some(h)) => h,
                (None, None) => unreachable!("every listener after the first has a handler"),
            };
            check_handled(&pool, &handler)?;
            handed.push((pool, handler));
        }
        let mut bound = Vec::new();
        let mut specs = Vec::new();
        for (pool, handed) in handed {
            let hooks = Rc::clone(&worker_hooks);
            let job = match handed {
                Handed::Connections(h) => Job::Handler(h, hooks),
                Handed::Datagrams(h) => Job::Datagrams(h, hooks),
            };
            let spec = PoolSpec {
                name: pool.name,
                addr: pool.addr,
                job,
                settings: pool.settings,
            };
            // Bound already, under the key the pool will ask for.
            if let Some(listener) = pool.listener {
                bound.push((master::plan::socket_key(&spec), listener));
            }
            specs.push(spec);
        }
        let announce = if specs.len() > 1 {
            master::Announce::WithService
        } else {
            master::Announce::Address
        };
        let reloader = on_reload.map(|hook| hooks::reloader(hook, &specs, graceful_timeout));
        let plan = master::plan::Plan {
            pools: specs,
            graceful_timeout,
            log_level: None,
        };
        let mut master = master::Master::new(bound, plan, reloader, announce)?;
        if let Some(path) = control {
            master.open_control(path, false)?;
        }
        if let Some(hook) = before_first_fork {
            hook().map_err(|why| Error::Failed(format!("the before-fork hook failed: {why}")))?;
        }
        master.run().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serve` refuses before it forks (the test process has threads, so
    /// a fork would be refused with another error).
    #[test]
    fn serve_refuses_settings_out_of_the_config_s_bounds_naming_the_field() {
        type Change = fn(&mut PoolSettings);
        let cases: [(Change, &str); 3] = [
            (
                |s| s.max_requests = Some(0),
                "pool server: max_requests = 0: expected 1 to 1000000000",
            ),
            (
                |s| s.sizing = crate::config::Sizing::Fixed(1_000_000),
                "pool server: workers = 1000000: expected a number from 1 to 4096",
            ),
            (
                |s| s.timeout = Some(Duration::MAX),
                "pool server: timeout = ",
            ),
        ];
        for (change, words) in cases {
            let err = Server::bind("127.0.0.1:0")
                .unwrap()
                .pool_settings(change)
                .serve(|_c: crate::Connection| Ok(()))
                .unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{err:?}");
            assert!(err.to_string().starts_with(words), "{err}");
        }
    }
}
