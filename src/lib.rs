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
//! | `spec` | one pool, built once (from the config, `run`'s flags or [`Server`]) and read by reference below; the hooks a library program's workers run ([`WorkerInfo`]) |
//! | [`net`] | addresses, binding, listening, the accepted [`Connection`]; access rules; the PROXY protocol of load balancers |
//! | `master` | the supervisor: one signal loop, pools and back-off, the scoreboard watch, reload, upgrade, the control socket |
//! | `backoff` | when a process that cannot fork tries again, and the lines it logs (the master's pools, the `prefork-pass` runner) |
//! | `worker` | the child: drop privileges, accept, check the client, run the handler, exit with a meaning; a UDP pool's datagrams (a builtin's or a datagram handler's); a wait service's program on the socket itself |
//! | `exit` | the exit statuses a worker and a runner tell the master why they stopped with ([`WorkerExit`]) |
//! | [`scoreboard`] | one shared-memory slot per worker: state, client, served; one per pool: its counters, which outlive its workers |
//! | [`privileges`] | what a worker becomes: user, group, chroot, limits |
//! | [`service`] | handlers: the RFC 862–868 builtins, preforkd's `work` and `metrics` (OpenMetrics from the scoreboard), and exec'd programs |
//! | [`log`] | stderr or syslog, one line per message |
//! | `sys` | every `unsafe` block and OS call: fork, spawning programs, signals, descriptors, shared memory, privileges, daemon |
//! | [`models`] | the server designs of UNP chapter 30 (`--model`): how a worker accepts, how a pool's socket is bound, the single-process runners |
//! | [`compare`], [`load`] | `preforkd compare`: every model against the same load, measured from outside; the one load generator (of `compare`, `preforkd load` and the benchmarks under bench/) |
//! | `server` | the library's [`Server`]: a pool of the master's per listener (TCP, UDP, `unix:`), each with your handler; the builder's knobs over the pool spec; the lifecycle hooks (before the first fork, after fork, worker exit, reload) |
//! | `fallback` | serving without fork (Windows), in one folder: every TCP service on a thread pool of std's, exec services through pipes |
//!
//! # The dependency rule: arrows point down
//!
//! A module uses only modules on a lower row than its own (a row's
//! modules may use each other):
//!
//! ```text
//! cli, commands, server, compare,        what a user calls
//!   fallback
//! master                                 forks workers, supervises them
//! worker                                 one forked process
//! models, backoff                        how a worker accepts and serves
//! spec, error                            one pool, built once; the crate's Error
//! config                                 the file and its types
//! net, service, scoreboard, privileges,  the parts
//!   log, exit, load
//! sys                                    a leaf: the OS, and every unsafe block
//! ```
//!
//! So the worker knows nothing of the master, the models know neither, and
//! what crosses from one to the other is a [`WorkerExit`] and a `spec`
//! passed by reference. `cli` is read by `commands` alone.
//!
//! # Where there is no fork
//!
//! All of the above is Unix, and compiled only there (`#[cfg(unix)]`),
//! except what reads the command line and the config, the builtins and the
//! exec service's environment. On Windows, `preforkd run` and `serve
//! --foreground` serve each TCP service with the `pool` model on std
//! threads, and exec services through pipes (both in `fallback`); the
//! library's [`Server`], which forks, is not there. `tools/cross-check`
//! type-checks the Windows, macOS and FreeBSD builds from Linux.
//!
//! # Writing your own pre-fork server: a tutorial
//!
//! ## A handler
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
//! signal (SIGTERM gracefully, SIGINT at once). The process must be
//! single-threaded when it calls `serve` (forking a multi-threaded process
//! is refused), and each worker is a copy of it: anything set up before
//! `serve` is there in every worker. A handler serving a long connection
//! can ask [`stop_pending`] between requests, and tell `preforkd status`
//! what it is doing with [`set_state`] (shown through the control socket
//! [`Server::control_socket`] opens).
//!
//! ## A pool
//!
//! Each listener is one pool of the master's, with the same
//! [`config::PoolSettings`] a `[[service]]` of the daemon's config file
//! gives: the knobs set its fields, [`Server::pool_settings`] reaches any.
//! [`Server::listen`] adds a listener with its own handler and pool; the
//! knobs that follow set that pool.
//!
//! ```no_run
//! use std::io::Write;
//! use std::time::Duration;
//! use preforkd::{Connection, Server};
//!
//! fn main() -> Result<(), preforkd::Error> {
//!     Server::bind("127.0.0.1:8080")?
//!         .adaptive(2, 1, 8, 64)?              // start, min_spare, max_spare, max
//!         .max_requests(10_000, 500)           // recycle, with jitter
//!         .timeout(Duration::from_secs(30))    // idle clients closed, stuck handlers killed
//!         .only_from(&["10.0.0.0/8", "127.0.0.1"])?
//!         .per_source(8)
//!         .rate("200/s")?
//!         .listen("unix:/run/app/admin.sock", |mut c: Connection| c.write_all(b"ok\n"))?
//!         .name("admin")
//!         .workers(1)
//!         .graceful_timeout(Duration::from_secs(10))
//!         .serve(|mut c: Connection| c.write_all(b"hello\n"))
//! }
//! ```
//!
//! ## Datagrams
//!
//! [`Server::listen_udp`] adds a UDP listener, whose pool's workers each
//! block in recvfrom(2) and give every datagram the pool's access rules
//! admit to a [`DatagramHandler`] (or a closure over the [`Datagram`]),
//! as the daemon's UDP builtins are served; [`Server::bind_udp`] and
//! [`Server::serve_datagrams`] make a server of UDP first.
//!
//! ```no_run
//! use std::io::Write;
//! use preforkd::{Connection, Datagram, Server};
//!
//! fn main() -> Result<(), preforkd::Error> {
//!     Server::bind("127.0.0.1:8080")?
//!         .listen_udp("127.0.0.1:8080", |d: Datagram<'_>| {
//!             let reply = format!("{} bytes from {}\n", d.data().len(), d.peer_addr());
//!             d.reply(reply.as_bytes()).map(|_| ())
//!         })?
//!         .only_from(&["127.0.0.0/8"])?        // a refused datagram is dropped
//!         .rate("1000/s")?
//!         .serve(|mut c: Connection| c.write_all(b"hello\n"))
//! }
//! ```
//!
//! ## Hooks
//!
//! [`Server::before_first_fork`] runs once in the master;
//! [`Server::after_fork`] in each worker before its first accept (the
//! place for a connection to a database); [`Server::before_worker_exit`]
//! in each worker as it leaves. An after-fork hook that fails makes the
//! worker exit with [`WorkerExit::Sick`]: the master backs off (at most
//! about one fork a second) and recovers once the hook succeeds.
//!
//! ```no_run
//! use std::cell::RefCell;
//! use std::io::Write;
//! use std::rc::Rc;
//! use preforkd::{Connection, Server};
//!
//! fn main() -> Result<(), preforkd::Error> {
//!     let db: Rc<RefCell<Option<std::fs::File>>> = Rc::default();
//!     let opening = Rc::clone(&db);
//!     Server::bind("127.0.0.1:8080")?
//!         .before_first_fork(|| Ok(()))
//!         .after_fork(move |worker| {
//!             let file = std::fs::File::open("/var/lib/app/db")
//!                 .map_err(|e| format!("worker {}: {e}", worker.pid()))?;
//!             *opening.borrow_mut() = Some(file);
//!             Ok(())
//!         })
//!         .before_worker_exit(|worker, why| eprintln!("{} leaves: {why:?}", worker.pid()))
//!         .serve(move |mut conn: Connection| {
//!             writeln!(conn, "db open: {}", db.borrow().is_some())
//!         })
//! }
//! ```
//!
//! ## Reload
//!
//! On SIGHUP the master runs [`Server::on_reload`]: it changes the pools'
//! settings, or refuses with a reason (logged; the running pools go on).
//! Pools whose settings changed get new workers; the old ones finish
//! their connection first, and no socket is closed.
//!
//! ```no_run
//! use preforkd::{config::Sizing, Connection, Server};
//!
//! fn main() -> Result<(), preforkd::Error> {
//!     Server::bind("127.0.0.1:8080")?
//!         .on_reload(|reload| {
//!             let n = std::fs::read_to_string("/etc/app/workers")
//!                 .map_err(|e| e.to_string())?;
//!             let n: usize = n.trim().parse().map_err(|_| "not a number".to_string())?;
//!             if let Some(pool) = reload.pool_mut("server") {
//!                 pool.sizing = Sizing::Fixed(n);
//!             }
//!             Ok(())
//!         })
//!         .serve(|_conn: Connection| Ok(()))
//! }
//! ```
//!
//! ## systemd
//!
//! Nothing to write: under socket activation (`$LISTEN_FDS`), `bind`
//! binds nothing and `serve` takes the passed socket of the same address;
//! under `Type=notify` (`$NOTIFY_SOCKET`) the master says `READY=1` once
//! every worker is in accept, `RELOADING=1` around a reload, `STOPPING=1`,
//! and the watchdog's `WATCHDOG=1` on time.
//!
//! ```no_run
//! // preforkd-app.service: Type=notify, ExecStart=/usr/bin/app,
//! // ExecReload=kill -HUP $MAINPID; preforkd-app.socket: ListenStream=8080
//! fn main() -> Result<(), preforkd::Error> {
//!     preforkd::Server::bind("0.0.0.0:8080")?.serve(|_c: preforkd::Connection| Ok(()))
//! }
//! ```
//!
//! What is public, and so kept across minor versions: the items this page
//! lists (`Server` and its methods, `Handler`, `Connection`,
//! `DatagramHandler`, `Datagram`, `Reload`, `WorkerInfo`, `WorkerExit`,
//! `stop_pending`, `set_state`, `Error`), and the `config`
//! types a pool's settings are made of. The modules `cli`, `compare`,
//! `load`, `models`, `service` and `scoreboard` are public for the
//! `preforkd` binary and its tests, and may change in any release.

#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(not(any(unix, windows)))]
compile_error!("preforkd runs on Unix (pre-forked processes) and Windows (a thread pool)");

#[cfg(unix)]
mod backoff;
pub mod cli;
mod commands;
#[cfg(unix)]
pub mod compare;
pub mod config;
mod error;
#[cfg(unix)]
mod exit;
#[cfg(any(windows, test))]
mod fallback;
pub mod load;
pub mod log;
#[cfg(unix)]
mod master;
pub mod models;
pub mod net;
pub mod privileges;
#[cfg(unix)]
pub mod scoreboard;
#[cfg(unix)]
mod server;
pub mod service;
#[cfg(unix)]
mod spec;
#[allow(unsafe_code)]
mod sys;
#[cfg(unix)]
mod worker;

pub use error::Error;
pub use net::{ListenAddr, Peer};
pub use service::{Builtin, ExecSpec, Service};
#[cfg(unix)]
pub use {
    exit::WorkerExit,
    net::{Connection, Datagram, Listener},
    server::{set_state, stop_pending, Reload, Server},
    service::{DatagramHandler, Handler},
    spec::WorkerInfo,
};

/// One worker per CPU. Counted once per process: finding out reads
/// several files (the affinity mask, the cgroup's CPU quota), and a config
/// asks for each of its services.
pub fn default_workers() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Runs a parsed command line: what `main` calls.
pub fn run(cli: cli::Cli) -> Result<(), Error> {
    commands::run(cli)
}
