//! The library's pre-fork server: bind, give a handler, `serve`.
//!
//! [`Server`] wraps the daemon's own machinery (`crate::master`, one pool,
//! forked workers) for a Rust program that brings its own [`Handler`]; the
//! crate docs show it in use. Unix only: it forks.

use std::time::Duration;

use crate::spec::{Job, PoolSpec};
use crate::{config, master, net};
use crate::{default_workers, Error, Handler, ListenAddr, Listener};

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
        let pool = PoolSpec {
            name: self.name,
            addr: self.addr,
            job: Job::Handler(std::rc::Rc::new(handler)),
            settings: config::PoolSettings {
                sizing: config::Sizing::Fixed(self.options.workers),
                max_memory: self.options.max_memory,
                ..config::PoolSettings::default()
            },
        };
        // The listener is bound already, under the key the pool will ask for.
        let key = master::plan::socket_key(&pool);
        let plan = master::plan::Plan {
            pools: vec![pool],
            graceful_timeout: self.options.graceful_timeout,
            log_level: None,
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
