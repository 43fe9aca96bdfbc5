//! The hooks of a [`Server`]'s lifecycle: where each runs, what it may do
//! there, and how its failure is handled.
//!
//! | hook | runs in | when | on failure |
//! |---|---|---|---|
//! | [`before_first_fork`](Server::before_first_fork) | the master, single-threaded | once, sockets bound, before the first fork | `serve` returns the error; nothing was forked |
//! | [`after_fork`](Server::after_fork) | each worker | after fork and the privilege drop, before its first accept | the worker exits 75 ([`WorkerExit::Sick`]); the master backs off (W0002) |
//! | [`before_worker_exit`](Server::before_worker_exit) | each worker | when it leaves its accept loop of its own accord | (it cannot fail) |
//! | [`on_reload`](Server::on_reload) | the master | on SIGHUP | the reload is refused (M0010); the old pools go on |
//!
//! The master is single-threaded and forks from its loop: a hook that runs
//! there must not start threads (the next fork would be refused) and
//! should not block for long (the master supervises nothing meanwhile).
//! What `before_first_fork` sets up (a cache, a parsed file) is copied
//! into every worker by fork.

use std::time::Duration;

use super::Server;
use crate::config::{maxima, PoolSettings, Protocol};
use crate::master::plan::Plan;
use crate::master::Reloader;
use crate::net::ListenAddr;
use crate::spec::{ExitHook, Job, PoolSpec, StartHook, WorkerInfo};
use crate::WorkerExit;

/// A reload hook: see [`Server::on_reload`].
type ReloadHook = Box<dyn FnMut(&mut Reload<'_>) -> Result<(), String>>;

/// The hooks a [`Server`] was given.
#[derive(Default)]
pub(super) struct Hooks {
    pub before_first_fork: Option<Box<dyn FnOnce() -> Result<(), String>>>,
    pub after_fork: Option<StartHook<'static>>,
    pub before_worker_exit: Option<ExitHook<'static>>,
    pub on_reload: Option<ReloadHook>,
}

/// What a reload hook may change: each pool's settings, and the graceful
/// timeout. A pool left as it was keeps its workers; a pool whose
/// settings change gets new workers (which run the after-fork hook), and
/// the old ones finish their connection and leave, as in a reload of the
/// daemon's config file.
///
/// ```
/// use preforkd::config::Sizing;
///
/// # fn main() -> Result<(), preforkd::Error> {
/// let server = preforkd::Server::bind("127.0.0.1:0")?.on_reload(|reload| {
///     let Some(pool) = reload.pool_mut("server") else {
///         return Err("no pool named server".into());
///     };
///     pool.sizing = Sizing::Fixed(8);
///     Ok(())
/// });
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Reload<'r> {
    pools: &'r mut [(String, PoolSettings)],
    graceful_timeout: &'r mut Duration,
}

impl Reload<'_> {
    /// The names of the pools, in the order they were added.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.on_reload(|reload| {
    ///     eprintln!("reloading {}", reload.names().collect::<Vec<_>>().join(", "));
    ///     Ok(())
    /// });
    /// # Ok(()) }
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pools.iter().map(|(name, _)| name.as_str())
    }

    /// The settings of the pool named `name`, to change.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// use std::time::Duration;
    ///
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.name("api").on_reload(|reload| {
    ///     let api = reload.pool_mut("api").ok_or("no api pool")?;
    ///     api.timeout = Some(Duration::from_secs(10));
    ///     Ok(())
    /// });
    /// # Ok(()) }
    /// ```
    pub fn pool_mut(&mut self, name: &str) -> Option<&mut PoolSettings> {
        self.pools
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    /// Every pool's name and settings, to change.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.on_reload(|reload| {
    ///     for (_name, settings) in reload.pools_mut() {
    ///         settings.log_connections = true;
    ///     }
    ///     Ok(())
    /// });
    /// # Ok(()) }
    /// ```
    pub fn pools_mut(&mut self) -> impl Iterator<Item = (&str, &mut PoolSettings)> {
        self.pools.iter_mut().map(|(n, s)| (n.as_str(), s))
    }

    /// How long a stop (or the old workers of a reload) may take.
    ///
    /// ```
    /// # fn main() -> Result<(), preforkd::Error> {
    /// use std::time::Duration;
    ///
    /// let server = preforkd::Server::bind("127.0.0.1:0")?.on_reload(|reload| {
    ///     reload.set_graceful_timeout(Duration::from_secs(60));
    ///     Ok(())
    /// });
    /// # Ok(()) }
    /// ```
    pub fn set_graceful_timeout(&mut self, timeout: Duration) {
        *self.graceful_timeout = timeout;
    }
}

impl Server {
    /// Runs `hook` once in the master, before the first worker is forked:
    /// the sockets are bound (or adopted from systemd), the process is
    /// single-threaded, and whatever the hook loads is copied into every
    /// worker by fork (gunicorn's `on_starting`). An error stops `serve`
    /// before anything is forked: it returns the error.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// preforkd::Server::bind("127.0.0.1:8080")?
    ///     .before_first_fork(|| {
    ///         std::fs::metadata("/srv/www").map_err(|e| format!("/srv/www: {e}"))?;
    ///         Ok(())
    ///     })
    ///     .serve(|_conn: preforkd::Connection| Ok(()))
    /// # }
    /// ```
    pub fn before_first_fork(
        mut self,
        hook: impl FnOnce() -> Result<(), String> + 'static,
    ) -> Server {
        self.hooks.before_first_fork = Some(Box::new(hook));
        self
    }

    /// Runs `hook` in each worker of every pool, after fork and after the
    /// worker dropped to its pool's user, group and chroot, before its
    /// first accept (gunicorn's `post_fork`): the place for per-worker
    /// state, such as a connection to a database, kept where the handler
    /// finds it (a `thread_local!`, or an `Rc` both closures hold).
    ///
    /// If it fails, the worker logs W0017 with the reason and exits with
    /// status 75 ([`WorkerExit::Sick`]) without serving; the master treats
    /// that as a worker that cannot start: it logs W0002 and forks the
    /// next one after a back-off that doubles up to one second, so a hook
    /// that keeps failing costs at most about one fork a second, and the
    /// pool recovers by itself once the hook succeeds again.
    ///
    /// ```no_run
    /// use std::cell::RefCell;
    /// use std::io::Write;
    /// use std::rc::Rc;
    ///
    /// # fn main() -> Result<(), preforkd::Error> {
    /// let store: Rc<RefCell<Option<std::fs::File>>> = Rc::default();
    /// let opened = Rc::clone(&store);
    /// preforkd::Server::bind("127.0.0.1:8080")?
    ///     .after_fork(move |worker| {
    ///         let file = std::fs::File::open("/var/lib/app/data")
    ///             .map_err(|e| format!("worker {}: {e}", worker.pid()))?;
    ///         *opened.borrow_mut() = Some(file);
    ///         Ok(())
    ///     })
    ///     .serve(move |mut conn: preforkd::Connection| {
    ///         let open = store.borrow().is_some();
    ///         writeln!(conn, "store open: {open}")
    ///     })
    /// # }
    /// ```
    pub fn after_fork(
        mut self,
        hook: impl Fn(&WorkerInfo) -> Result<(), String> + 'static,
    ) -> Server {
        self.hooks.after_fork = Some(Box::new(hook));
        self
    }

    /// Runs `hook` in a worker that leaves its accept loop of its own
    /// accord, just before it exits (gunicorn's `worker_exit`): told to
    /// stop (SIGTERM, a reload, a scale-down), retired by `max_requests`
    /// or `max_memory`, or its socket broken; the [`WorkerExit`] says
    /// which way it exits. The place to flush. It does not run in a
    /// worker that is killed (a handler stuck past `timeout`, a fast stop,
    /// SIGKILL), nor in one whose after-fork hook failed.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// preforkd::Server::bind("127.0.0.1:8080")?
    ///     .before_worker_exit(|worker, exit| {
    ///         eprintln!("worker {} leaves ({exit:?})", worker.pid());
    ///     })
    ///     .serve(|_conn: preforkd::Connection| Ok(()))
    /// # }
    /// ```
    pub fn before_worker_exit(
        mut self,
        hook: impl Fn(&WorkerInfo, WorkerExit) + 'static,
    ) -> Server {
        self.hooks.before_worker_exit = Some(Box::new(hook));
        self
    }

    /// Runs `hook` in the master on SIGHUP (gunicorn's `on_reload`): it
    /// may change each pool's settings through the [`Reload`], or refuse
    /// the reload with a reason, which is logged (M0010) while the running
    /// pools go on unchanged. Settings out of the config's bounds (see
    /// [`Server::serve`]) refuse the reload the same way, naming the pool,
    /// the field and its bound. Without a reload hook, SIGHUP is ignored
    /// (M0004). A pool's address and handler stay; its protocol cannot
    /// change, and a UDP pool is refused what [`serve`](Server::serve)
    /// refuses it (see [`listen_udp`](Server::listen_udp)).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), preforkd::Error> {
    /// preforkd::Server::bind("127.0.0.1:8080")?
    ///     .on_reload(|reload| {
    ///         let text = std::fs::read_to_string("/etc/app/workers")
    ///             .map_err(|e| format!("/etc/app/workers: {e}"))?;
    ///         let n: usize = text.trim().parse().map_err(|_| format!("not a number: {text}"))?;
    ///         for (_, settings) in reload.pools_mut() {
    ///             settings.sizing = preforkd::config::Sizing::Fixed(n);
    ///         }
    ///         Ok(())
    ///     })
    ///     .serve(|_conn: preforkd::Connection| Ok(()))
    /// # }
    /// ```
    pub fn on_reload(
        mut self,
        hook: impl FnMut(&mut Reload<'_>) -> Result<(), String> + 'static,
    ) -> Server {
        self.hooks.on_reload = Some(Box::new(hook));
        self
    }
}

/// The master's reloader for a library program: asks `hook` for the new
/// settings of the pools in `specs` and makes the plan of them, with the
/// same names, addresses, handlers and worker hooks.
pub(super) fn reloader<'h>(
    mut hook: ReloadHook,
    specs: &[PoolSpec<'h>],
    graceful_timeout: Duration,
) -> Reloader<'h> {
    type Fixed<'h> = (ListenAddr, Job<'h>);
    let fixed: Vec<Fixed<'h>> = specs
        .iter()
        .map(|s| (s.addr.clone(), s.job.clone()))
        .collect();
    let mut current: Vec<(String, PoolSettings)> = specs
        .iter()
        .map(|s| (s.name.clone(), s.settings.clone()))
        .collect();
    let mut current_timeout = graceful_timeout;
    Box::new(move || {
        let mut pools = current.clone();
        let mut timeout = current_timeout;
        hook(&mut Reload {
            pools: &mut pools,
            graceful_timeout: &mut timeout,
        })
        .map_err(|why| vec![format!("the reload hook refused: {why}")])?;
        let mut errors = Vec::new();
        for ((name, new), (_, old)) in pools.iter().zip(&current) {
            if new.protocol != old.protocol {
                errors.push(format!(
                    "pool {name}: the protocol cannot change ({} to {})",
                    old.protocol, new.protocol
                ));
            }
            if new.protocol == Protocol::Udp {
                errors.extend(super::check_udp(name, new).err());
            }
            // The config's bounds, as at `serve`: a hook's numbers must
            // not overflow a deadline or fork thousands of workers.
            if let Err(e) = maxima::check_settings(new) {
                errors.push(format!("pool {name}: {e}"));
            }
        }
        if let Err(e) = maxima::check_graceful_timeout(timeout) {
            errors.push(e);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        current.clone_from(&pools);
        current_timeout = timeout;
        Ok(Plan {
            pools: pools
                .into_iter()
                .zip(&fixed)
                .map(|((name, settings), (addr, job))| PoolSpec {
                    name,
                    addr: addr.clone(),
                    job: job.clone(),
                    settings,
                })
                .collect(),
            graceful_timeout: timeout,
            log_level: None,
        })
    })
}
