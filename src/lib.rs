//! preforkd: a pre-fork UNIX server.
//!
//! A master process binds and listens, then forks workers that each block
//! in accept(2) on the inherited listening socket. The kernel hands each
//! connection to exactly one blocked worker; the master never touches a
//! connection. It supervises: it reaps and respawns workers (with back-off
//! when they die young), keeps spare workers ready as load comes and goes,
//! stops handlers stuck past their timeout, reloads its configuration on
//! SIGHUP without closing a socket, hands its sockets to a new binary on
//! SIGUSR2, and stops gracefully on SIGTERM or at once on SIGINT/SIGQUIT.
//!
//! # The house, one room per concern
//!
//! | module | what lives there |
//! |---|---|
//! | `cli`, `commands` | the command line (clap; the only place flag names are spelled) and what each subcommand does |
//! | [`config`] | the TOML file: typed values, every error at file:line:column; the inetd.conf importer |
//! | [`net`] | addresses, binding, listening, the accepted [`Connection`]; access rules |
//! | `master` | the supervisor: one signal loop, pools and back-off, the scoreboard watch, reload, upgrade, the control socket |
//! | `worker` | the child: drop privileges, accept, check the client, run the handler, exit with a meaning |
//! | [`scoreboard`] | one shared-memory slot per worker: state, client, served |
//! | [`privileges`] | what a worker becomes: user, group, chroot, limits |
//! | [`service`] | handlers: the RFC 862–868 builtins and exec'd programs |
//! | [`log`] | stderr or syslog, one line per message |
//! | `sys` | every `unsafe` block and OS call: fork, signals, descriptors, shared memory, privileges, daemon |
//!
//! # Writing your own pre-fork server
//!
//! Give [`Server`] a [`Handler`], or a closure over the [`Connection`]:
//!
//! ```no_run
//! use std::io::Write;
//! use preforkd::{Connection, Server};
//!
//! fn main() -> Result<(), preforkd::Error> {
//!     let server = Server::bind("127.0.0.1:8080")?.workers(4);
//!     eprintln!("serving on {}", server.local_display());
//!     server.serve(|mut conn: Connection| conn.write_all(b"hello from a worker\n"))
//! }
//! ```
//!
//! `serve` forks the workers and returns when the server is stopped by a
//! signal. The process must be single-threaded when it calls `serve`
//! (forking a multi-threaded process is refused), and each worker is a copy
//! of it: anything set up before `serve` is there in every worker.

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
mod commands;
pub mod compare;
pub mod config;
mod error;
pub mod load;
pub mod log;
mod master;
pub mod models;
pub mod net;
pub mod privileges;
pub mod scoreboard;
pub mod service;
#[allow(unsafe_code)]
mod sys;
mod worker;

use std::time::Duration;

pub use error::Error;
pub use master::Phase;
pub use net::{Connection, ListenAddr, Listener, Peer};
pub use service::{Builtin, ExecSpec, Handler, Service};
pub use worker::WorkerExit;

/// How a [`Server`] runs its pool.
#[derive(Debug, Clone)]
pub struct Options {
    /// Workers to keep forked.
    pub workers: usize,
    /// On SIGTERM, how long busy workers may take before they are killed.
    pub graceful_timeout: Duration,
    /// Retire a worker, after its connection, once its resident memory
    /// is larger than this many bytes (a handler that leaks).
    pub max_memory: Option<u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            workers: default_workers(),
            graceful_timeout: Duration::from_secs(30),
            max_memory: None,
        }
    }
}

/// One worker per CPU.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A bound listener and the options of its pool: call [`Server::serve`]
/// to fork the workers and supervise them.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    addr: ListenAddr,
    options: Options,
    name: String,
}

impl Server {
    /// Binds `addr` (`127.0.0.1:8080`, `[::1]:0`, `:8080`, `unix:/path`)
    /// with the default backlog and options.
    pub fn bind(addr: &str) -> Result<Server, Error> {
        let addr: ListenAddr = addr.parse().map_err(Error::Address)?;
        Server::bind_addr(&addr, net::DEFAULT_BACKLOG)
    }

    /// Binds `addr` with a listen queue of `backlog`.
    pub fn bind_addr(addr: &ListenAddr, backlog: i32) -> Result<Server, Error> {
        let listener = Listener::bind(addr, backlog).map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
        Ok(Server {
            listener,
            addr: addr.clone(),
            options: Options::default(),
            name: "server".into(),
        })
    }

    /// Sets the number of workers.
    pub fn workers(mut self, n: usize) -> Server {
        self.options.workers = n.max(1);
        self
    }

    /// Sets how long SIGTERM waits for busy workers.
    pub fn graceful_timeout(mut self, timeout: Duration) -> Server {
        self.options.graceful_timeout = timeout;
        self
    }

    /// Retires a worker, after its connection, once its resident memory is
    /// larger than `bytes` (it is replaced at once; nothing is lost).
    pub fn max_memory(mut self, bytes: u64) -> Server {
        self.options.max_memory = Some(bytes);
        self
    }

    /// Names the service in log lines.
    pub fn name(mut self, name: impl Into<String>) -> Server {
        self.name = name.into();
        self
    }

    /// The bound address, with the real port (`listening on` prints this).
    pub fn local_display(&self) -> &str {
        self.listener.local_display()
    }

    /// Forks the workers and supervises them until a signal stops the
    /// server: SIGTERM (graceful) or SIGINT/SIGQUIT (at once). Prints
    /// `listening on ADDR` on stderr once the workers are forked.
    pub fn serve<H: Handler>(self, handler: H) -> Result<(), Error> {
        let pool = master::plan::PoolPlan {
            service: self.name,
            addr: self.addr,
            protocol: config::Protocol::Tcp,
            backlog: net::DEFAULT_BACKLOG,
            socket_mode: None,
            socket_owner: None,
            job: master::plan::Job::Stream(std::rc::Rc::new(handler)),
            privileges: privileges::Privileges::default(),
            sizing: config::Sizing::Fixed(self.options.workers),
            max_requests: None,
            timeout: None,
            access: net::acl::Access::default(),
            max_memory: self.options.max_memory,
            log_connections: false,
            model: models::Model::Prefork,
            proxy_protocol: None,
            fingerprint: String::new(),
        };
        // The listener is bound already, under the key the pool will ask for.
        let key = pool.socket_key();
        let plan = master::plan::Plan {
            pools: vec![pool],
            graceful_timeout: self.options.graceful_timeout,
            control: None,
            take_over_control: false,
        };
        master::Master::new(
            vec![(key, self.listener)],
            plan,
            None,
            master::Announce::Address,
        )?
        .run()
        .map(|_| ())
    }
}

/// Runs a parsed command line: what `main` calls.
pub fn run(cli: cli::Cli) -> Result<(), Error> {
    commands::run(cli)
}
