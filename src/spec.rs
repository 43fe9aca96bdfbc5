//! What one pool is: a [`PoolSpec`], built once and then read by
//! reference by the master (which forks and supervises its workers), the
//! worker, and the models' runners.
//!
//! A spec is made from the config file (`serve`, at start and at each
//! reload: one per service and address), from `run`'s flags (which make a
//! config of one service first, so they take the same path), or by the
//! library's `Server`. It holds what the pool serves (its [`Job`]), where,
//! and its service's [`PoolSettings`]: every setting is spelled once, in
//! `config`, and travels from there to the worker unchanged.
//!
//! What does not live here: the sockets and processes of a running pool
//! (the master's), and what each worker is given besides its spec (its
//! scoreboard slot and the listener, given by the master at the fork).

use std::rc::Rc;

use crate::config::{PoolSettings, Protocol, ServiceConfig};
use crate::exit::WorkerExit;
use crate::net::ListenAddr;
use crate::service::{DatagramHandler, Handler, Service};

/// What a pool's workers serve.
#[derive(Clone)]
pub(crate) enum Job<'h> {
    /// A builtin or a program (the daemon's services): on a TCP or Unix
    /// socket, each connection; on a UDP socket, a builtin each datagram,
    /// and a program (a wait service) the socket itself.
    Service(Service),
    /// The library's handler, for each connection, with the hooks its
    /// workers run around it.
    Handler(Rc<dyn Handler + 'h>, Rc<WorkerHooks<'h>>),
    /// The library's datagram handler, for each datagram of a UDP pool,
    /// with the same hooks.
    Datagrams(Rc<dyn DatagramHandler + 'h>, Rc<WorkerHooks<'h>>),
}

/// An after-fork hook: see [`WorkerHooks::started`].
pub(crate) type StartHook<'h> = Box<dyn Fn(&WorkerInfo) -> Result<(), String> + 'h>;

/// An exit hook: see [`WorkerHooks::exiting`].
pub(crate) type ExitHook<'h> = Box<dyn Fn(&WorkerInfo, WorkerExit) + 'h>;

/// What a library program runs in each of its workers, besides the
/// handler (the master's hooks are the `server`'s own).
#[derive(Default)]
pub(crate) struct WorkerHooks<'h> {
    /// After fork and the privilege drop, before the first accept. An
    /// error makes the worker exit with [`WorkerExit::Sick`], which the
    /// master backs off from.
    pub started: Option<StartHook<'h>>,
    /// When the worker leaves its accept loop of its own accord (a stop,
    /// `max_requests`, `max_memory`, a broken socket), before it exits.
    pub exiting: Option<ExitHook<'h>>,
}

/// The worker a hook runs in: its pool and its process.
///
/// ```
/// # fn main() -> Result<(), preforkd::Error> {
/// let server = preforkd::Server::bind("127.0.0.1:0")?.after_fork(|worker: &preforkd::WorkerInfo| {
///     eprintln!("worker {} of pool {}", worker.pid(), worker.pool());
///     Ok(())
/// });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub(crate) pool: String,
    pub(crate) pid: u32,
}

impl WorkerInfo {
    /// The name of the worker's pool (its listener's, as set by
    /// [`Server::name`](crate::Server::name)).
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?
    ///     .after_fork(|worker| {
    ///         eprintln!("a worker of {} starts", worker.pool());
    ///         Ok(())
    ///     });
    /// # Ok(()) }
    /// ```
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// The worker's process id.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?
    ///     .before_worker_exit(|worker, exit| eprintln!("{} exits: {exit:?}", worker.pid()));
    /// # Ok(()) }
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Job<'_> {
    /// What serves a connection; `None` for a datagram handler, which
    /// serves none (a UDP pool is served by the prefork model only).
    pub(crate) fn handler(&self) -> Option<&dyn Handler> {
        match self {
            Job::Service(service) => Some(service),
            Job::Handler(handler, _) => Some(handler.as_ref()),
            Job::Datagrams(..) => None,
        }
    }

    /// The builtin or program, when it is one (the thread and event models
    /// serve only those).
    pub(crate) fn service(&self) -> Option<&Service> {
        match self {
            Job::Service(service) => Some(service),
            Job::Handler(..) | Job::Datagrams(..) => None,
        }
    }

    /// The hooks a library program's workers run, if any.
    pub(crate) fn hooks(&self) -> Option<&WorkerHooks<'_>> {
        match self {
            Job::Service(_) => None,
            Job::Handler(_, hooks) | Job::Datagrams(_, hooks) => Some(hooks),
        }
    }

    /// Whether two jobs serve alike: the same builtin or program, or the
    /// very same library handler (a library reload that leaves a pool's
    /// settings alone keeps its workers).
    fn same_as(&self, other: &Job<'_>) -> bool {
        match (self, other) {
            (Job::Service(a), Job::Service(b)) => a == b,
            (Job::Handler(a, _), Job::Handler(b, _)) => {
                std::ptr::addr_eq(Rc::as_ptr(a), Rc::as_ptr(b))
            }
            (Job::Datagrams(a, _), Job::Datagrams(b, _)) => {
                std::ptr::addr_eq(Rc::as_ptr(a), Rc::as_ptr(b))
            }
            _ => false,
        }
    }
}

/// One pool: a job on an address, with its service's settings.
#[derive(Clone)]
pub(crate) struct PoolSpec<'h> {
    /// The service's name, for logs and the scoreboard.
    pub name: String,
    /// Where it listens.
    pub addr: ListenAddr,
    /// What its workers serve.
    pub job: Job<'h>,
    /// How it runs.
    pub settings: PoolSettings,
}

impl PoolSpec<'static> {
    /// One spec for each address `service` listens on.
    pub(crate) fn of_service(
        service: &ServiceConfig,
    ) -> impl Iterator<Item = PoolSpec<'static>> + '_ {
        service.listen.iter().map(|addr| PoolSpec {
            name: service.name.clone(),
            addr: addr.clone(),
            job: Job::Service(service.service.clone()),
            settings: service.pool.clone(),
        })
    }
}

impl PoolSpec<'_> {
    /// TCP (or a Unix stream socket) or UDP.
    pub(crate) fn protocol(&self) -> Protocol {
        self.settings.protocol
    }

    /// How many processes the master keeps for this pool: the sizing for a
    /// process pool, the one runner for a single-process model.
    pub(crate) fn processes(&self) -> usize {
        if self.settings.model.is_process_pool() {
            self.settings.sizing.start().max(1)
        } else {
            1
        }
    }

    /// Whether `other` is this pool with at most another worker count: a
    /// reload keeps such a pool's workers and only resizes it. The thread
    /// or process count of a single-process model is its runner's, so a
    /// new one replaces the runner.
    pub(crate) fn same_but_size(&self, other: &PoolSpec<'_>) -> bool {
        self.name == other.name
            && self.addr == other.addr
            && self.job.same_as(&other.job)
            && same_but_size(&self.settings, &other.settings)
    }
}

/// Whether two pools' settings differ at most in their process count: every
/// field is named, so that a new setting cannot be forgotten here, and
/// nothing is copied (a reload compares every pool it keeps).
fn same_but_size(a: &PoolSettings, b: &PoolSettings) -> bool {
    let PoolSettings {
        protocol,
        sizing,
        max_requests,
        max_requests_jitter,
        timeout,
        max_memory,
        log_connections,
        access,
        backlog,
        privileges,
        socket_mode,
        socket_owner,
        model,
        proxy_protocol,
        wait,
    } = a;
    // A single-process model's count is its runner's threads or
    // processes: another count is another runner.
    (sizing == &b.sizing || model.is_process_pool())
        && protocol == &b.protocol
        && max_requests == &b.max_requests
        && max_requests_jitter == &b.max_requests_jitter
        && timeout == &b.timeout
        && max_memory == &b.max_memory
        && log_connections == &b.log_connections
        && access == &b.access
        && backlog == &b.backlog
        && privileges == &b.privileges
        && socket_mode == &b.socket_mode
        && socket_owner == &b.socket_owner
        && model == &b.model
        && proxy_protocol == &b.proxy_protocol
        && wait == &b.wait
}
