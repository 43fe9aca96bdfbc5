//! The checked configuration's types: what the checker makes of the file,
//! and what `run`'s flags and the library build directly.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{maxima, Model};
use crate::net::acl::Access;
use crate::net::proxy::Proxy;
use crate::net::ListenAddr;
use crate::privileges::Privileges;
use crate::service::Service;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Stream: accept, then serve a connection.
    Tcp,
    /// Datagram: each worker receives and answers datagrams.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// On SIGTERM, how long busy workers may take.
    pub graceful_timeout: Duration,
    /// The control socket of `status`, `reload` and `stop`.
    pub control: PathBuf,
    /// The pidfile (`serve` detached writes /run/preforkd.pid without one).
    pub pidfile: Option<PathBuf>,
    /// Where logs go; `None`: stderr in the foreground, syslog detached.
    pub log: Option<LogTarget>,
    /// The least level logged (`log_level`); `None`: info.
    pub log_level: Option<log::LevelFilter>,
    /// The syslog facility code (RFC 3164; daemon = 3).
    pub syslog_facility: u8,
    /// syslogd's datagram socket.
    pub syslog_socket: PathBuf,
}

/// `[daemon] log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard error.
    Stderr,
    /// syslog.
    Syslog,
}

/// How many workers a pool has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// Always this many (`workers = N`).
    Fixed(usize),
    /// Start with `start`; keep at least `min_spare` idle by forking when
    /// workers turn busy, retire idle ones above `max_spare`, never more
    /// than `max` (`workers = { ... }`, and the default).
    Adaptive {
        /// Workers forked at start.
        start: usize,
        /// Idle workers to keep ready.
        min_spare: usize,
        /// Idle workers above which extras are retired.
        max_spare: usize,
        /// The most workers.
        max: usize,
    },
}

impl Sizing {
    /// The default pool: one worker per CPU to start, as many kept idle,
    /// up to four per CPU idle, at most 256 (Apache prefork's
    /// MaxRequestWorkers).
    pub fn default_adaptive() -> Sizing {
        let cpus = crate::default_workers();
        Sizing::Adaptive {
            start: cpus,
            min_spare: cpus,
            max_spare: 4 * cpus,
            max: 256,
        }
    }

    /// An adaptive pool from the parts given, the default filling in the
    /// rest; an error names the part that does not fit.
    pub fn adaptive(
        start: Option<usize>,
        min_spare: Option<usize>,
        max_spare: Option<usize>,
        max: Option<usize>,
    ) -> Result<Sizing, String> {
        let Sizing::Adaptive {
            start: d_start,
            min_spare: d_min,
            max_spare: d_max_spare,
            max: d_max,
        } = Sizing::default_adaptive()
        else {
            unreachable!("the default is adaptive")
        };
        let max = max.unwrap_or(d_max);
        let min_spare = min_spare.unwrap_or(d_min.min(max));
        let max_spare = max_spare.unwrap_or(d_max_spare.max(min_spare));
        let start = start.unwrap_or(d_start.min(max));
        let most = maxima::MAX_WORKERS as usize;
        if !(1..=most).contains(&max) {
            return Err(format!("max = {max}: expected a number from 1 to {most}"));
        }
        if max_spare > most {
            return Err(format!(
                "max_spare = {max_spare}: expected a number from 0 to {most}"
            ));
        }
        if start < 1 || start > max {
            return Err(format!("start = {start}: expected 1 to max ({max})"));
        }
        if min_spare > max_spare || min_spare > max {
            return Err(format!(
                "min_spare = {min_spare} must be at most max_spare ({max_spare}) and max ({max})"
            ));
        }
        Ok(Sizing::Adaptive {
            start,
            min_spare,
            max_spare,
            max,
        })
    }

    /// Workers to fork at start.
    pub fn start(&self) -> usize {
        match *self {
            Sizing::Fixed(n) => n,
            Sizing::Adaptive { start, .. } => start,
        }
    }

    /// Whether the pool follows its load.
    pub fn is_adaptive(&self) -> bool {
        matches!(self, Sizing::Adaptive { .. })
    }
}

/// One `[[service]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Its name, unique in the file.
    pub name: String,
    /// Where it listens; one pool of workers per address.
    pub listen: Vec<ListenAddr>,
    /// What serves a connection.
    pub service: Service,
    /// How each of its pools runs: the same on every address.
    pub pool: PoolSettings,
}

/// How one pool runs, whatever it serves and wherever it listens: the
/// settings a `[[service]]` gives each of its addresses, which `run`'s
/// flags and the library's `Server` give too, so that each setting is
/// spelled once from the file to the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Workers per address.
    pub sizing: Sizing,
    /// Retire a worker after about this many connections.
    pub max_requests: Option<u64>,
    /// Add up to this many, at random per worker, to `max_requests`.
    pub max_requests_jitter: u64,
    /// Close a connection idle this long; kill a handler busy this long.
    pub timeout: Option<Duration>,
    /// Retire a worker whose resident memory grew past this many bytes.
    pub max_memory: Option<u64>,
    /// Log one line per connection (xinetd's log_on_success/failure).
    pub log_connections: bool,
    /// Who may connect, how many at once, how fast.
    pub access: Access,
    /// listen(2) backlog.
    pub backlog: i32,
    /// What the workers drop to.
    pub privileges: Privileges,
    /// Mode of a Unix socket file.
    pub socket_mode: Option<u32>,
    /// Owner (uid, gid) of a Unix socket file.
    pub socket_owner: Option<(u32, u32)>,
    /// How the service's socket is served (`prefork` unless asked).
    pub model: Model,
    /// Read a PROXY protocol header before serving, from the balancers
    /// named.
    pub proxy_protocol: Option<Proxy>,
    /// inetd's `wait`: the program gets the socket itself and reads or
    /// accepts for itself, one program at a time (UDP programs always).
    pub wait: bool,
}

impl Default for PoolSettings {
    /// A TCP pool of the `prefork` model with one worker per CPU, open to
    /// every client, with no limits: the library's `Server` as it starts.
    fn default() -> PoolSettings {
        PoolSettings {
            protocol: Protocol::Tcp,
            sizing: Sizing::Fixed(crate::default_workers()),
            max_requests: None,
            max_requests_jitter: 0,
            timeout: None,
            max_memory: None,
            log_connections: false,
            access: Access::default(),
            backlog: crate::net::DEFAULT_BACKLOG,
            privileges: Privileges::default(),
            socket_mode: None,
            socket_owner: None,
            model: Model::Prefork,
            proxy_protocol: None,
            wait: false,
        }
    }
}
