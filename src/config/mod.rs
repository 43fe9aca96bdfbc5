//! The configuration: the TOML file `preforkd serve` runs and `preforkd
//! check` validates, turned into typed values, with every mistake reported
//! at its file:line:column.
//!
//! Reading happens in three steps, so that one run reports every error it
//! can: the TOML syntax (all syntax errors), the shape of each table
//! (unknown keys, wrong types: one error per table), and the meaning of each
//! value (addresses, users, programs, durations: every error). This module
//! does not bind, fork or look at running processes.

pub mod diag;
pub mod duration;
pub mod inetd;
pub mod maxima;
mod raw;
pub mod size;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

pub use diag::Diagnostic;
use diag::LineIndex;
use raw::{RawDaemon, RawLimits, RawService, SizeOrNumber};

pub use crate::models::Model;
use crate::net::acl::{Access, Rate};
use crate::net::proxy::{Proxy, ProxyVersion};
use crate::net::ListenAddr;
use crate::privileges::{Account, Limits, Privileges};
use crate::service::{Builtin, ExecSpec, Service};

/// Where `serve` and `check` look without `-c`.
pub const DEFAULT_PATH: &str = "/etc/preforkd/preforkd.toml";

/// What `serve` runs when there is no config file at all: the five
/// builtins on 127.0.0.1, each on 7000 + its standard port, so a first run
/// works without root; each with a `timeout` and a `per_source` limit.
pub const EMBEDDED_DEFAULT: &str = r#"# The embedded default of preforkd: the inetd builtins on localhost,
# each on port 7000 + its standard port. Each has the adaptive pool (no
# `workers`), a timeout and a per_source limit, so that idle clients
# from one address cannot take every worker.
[[service]]
name = "echo"
listen = ["127.0.0.1:7007"]
builtin = "echo"
timeout = "60s"
per_source = 10

[[service]]
name = "discard"
listen = ["127.0.0.1:7009"]
builtin = "discard"
timeout = "60s"
per_source = 10

[[service]]
name = "daytime"
listen = ["127.0.0.1:7013"]
builtin = "daytime"
timeout = "60s"
per_source = 10

[[service]]
name = "chargen"
listen = ["127.0.0.1:7019"]
builtin = "chargen"
timeout = "60s"
per_source = 10

[[service]]
name = "time"
listen = ["127.0.0.1:7037"]
builtin = "time"
timeout = "60s"
per_source = 10
"#;

/// Where the control socket is when `[daemon] control` does not say, for
/// root.
pub const DEFAULT_CONTROL: &str = "/run/preforkd.sock";

/// The control socket's default: /run/preforkd.sock for root; for another
/// user, `$XDG_RUNTIME_DIR/preforkd.sock` when that is set (a directory only
/// that user can write), else the same /run path (which such a user cannot
/// create: `serve` then runs without it and says so). Windows, which has
/// no control socket, keeps the /run path as the value `check` shows.
pub fn default_control() -> PathBuf {
    #[cfg(unix)]
    if crate::sys::privs::current_ids().0 != 0 {
        if let Some(dir) =
            std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_absolute())
        {
            return Path::new(&dir).join("preforkd.sock");
        }
    }
    PathBuf::from(DEFAULT_CONTROL)
}

/// The name diagnostics give the embedded default.
pub const EMBEDDED_NAME: &str = "(embedded default)";

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
        if self.pool.protocol == Protocol::Udp && self.pool.proxy_protocol.is_some() {
            return Err("proxy_protocol applies to tcp services, not udp".into());
        }
        if model == Model::Prefork {
            return Ok(());
        }
        if self.pool.protocol == Protocol::Udp {
            return Err(format!(
                "model = \"{model}\" serves tcp; udp services use the prefork model"
            ));
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
}

/// A checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from, as named.
    pub file: String,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// Every `[[service]]`, in file order.
    pub services: Vec<ServiceConfig>,
}

/// Why a config could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is wrong; every problem found.
    Invalid(Vec<Diagnostic>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(
                f,
                "cannot read {}: {}",
                path.display(),
                crate::sys::fd::describe(source)
            ),
            ConfigError::Invalid(diags) => {
                let (shown, more) = Diagnostic::shown(diags);
                let mut lines: Vec<String> = shown.iter().map(|d| d.to_string()).collect();
                if more > 0 {
                    lines.push(format!("... and {more} more errors"));
                }
                write!(f, "{}", lines.join("\n"))
            }
        }
    }
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&path.display().to_string(), &text).map_err(ConfigError::Invalid)
}

/// Checks `text`, naming it `file` in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut checker = Checker {
        file,
        text,
        lines: LineIndex::new(text),
        diags: Vec::new(),
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            checker.toml_error(&e, 0..0);
        }
        return Err(checker.diags);
    }
    let config = checker.config(root.into_inner());
    match config {
        Some(c) if checker.diags.is_empty() => Ok(c),
        _ => Err(checker.diags),
    }
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    /// Where each line of `text` starts: diagnostics find their line by a
    /// binary search, so checking stays linear in the file's size.
    lines: LineIndex,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = Diagnostic::at_indexed(self.file, self.text, &self.lines, span, message);
        self.diags.push(d);
    }

    fn toml_error(&mut self, e: &toml::de::Error, fallback: Range<usize>) {
        let mut message = e.message().trim().replace('\n', " ");
        // serde's words for an untagged enum say nothing to a user.
        for (inner, expected) in [
            ("RawWorkers", "invalid type for workers: expected a number, or a table { start, min_spare, max_spare, max } of numbers"),
            ("SizeOrNumber", "invalid type: expected a number, or a string with a unit"),
        ] {
            if message.contains(&format!("untagged enum {inner}")) {
                message = expected.to_string();
            }
        }
        self.error(e.span().unwrap_or(fallback), message);
    }

    fn deserialize<T: for<'de> Deserialize<'de>>(
        &mut self,
        value: Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let span = value.span();
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(t) => Some(t),
            Err(e) => {
                self.toml_error(&e, span);
                None
            }
        }
    }

    fn config(&mut self, root: DeTable<'_>) -> Option<Config> {
        let mut raw_daemon = RawDaemon::default();
        let mut raw_services = Vec::new();
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "daemon" => {
                    // A mistake here must not hide those in the services.
                    if let Some(d) = self.deserialize(value) {
                        raw_daemon = d;
                    }
                }
                "service" => {
                    let span = value.span();
                    match value.into_inner() {
                        DeValue::Array(items) => {
                            for item in items {
                                let span = item.span();
                                if let Some(s) = self.deserialize::<RawService>(item) {
                                    raw_services.push((s, span));
                                }
                            }
                        }
                        _ => self.error(span, "`service` must be written as [[service]] tables"),
                    }
                }
                other => self.error(
                    key.span(),
                    format!("unknown section '{other}' (expected [daemon] or [[service]])"),
                ),
            }
        }
        let daemon = self.daemon(&raw_daemon);
        let default_account = self.account(raw_daemon.user.as_ref(), raw_daemon.group.as_ref());
        if raw_services.is_empty() && self.diags.is_empty() {
            self.diags.push(Diagnostic::whole_file(
                self.file,
                "no [[service]] is defined",
            ));
        }
        let mut services = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut addresses: BTreeMap<(ListenAddr, Protocol), String> = BTreeMap::new();
        for (raw, span) in &raw_services {
            let Some(service) = self.service(raw, span.clone(), default_account.clone().flatten())
            else {
                continue;
            };
            let (line, _) = self.lines.line_of(span.start);
            if let Some(first) = names.insert(service.name.clone(), line) {
                self.error(
                    raw.name.span(),
                    format!(
                        "duplicate service name '{}' (first defined at line {first})",
                        service.name
                    ),
                );
            }
            for (addr, spanned) in service.listen.iter().zip(raw.listen.get_ref()) {
                // Port 0 asks the system for a fresh port each time.
                let key = (addr.clone(), service.pool.protocol);
                if addr.is_port_zero() {
                    continue;
                }
                if let Some(other) = addresses.insert(key, service.name.clone()) {
                    self.error(
                        spanned.span(),
                        format!("duplicate listen address {addr}/{} (already used by service '{other}')", service.pool.protocol),
                    );
                }
            }
            services.push(service);
        }
        Some(Config {
            file: self.file.to_string(),
            daemon: daemon?,
            services,
        })
    }

    fn daemon(&mut self, raw: &RawDaemon) -> Option<DaemonConfig> {
        let graceful_timeout = match &raw.graceful_timeout {
            None => Duration::from_secs(30),
            Some(s) => self.duration(s)?,
        };
        let control = match &raw.control {
            None => default_control(),
            Some(c) if Path::new(c.get_ref()).is_absolute() => PathBuf::from(c.get_ref()),
            Some(c) => {
                self.error(
                    c.span(),
                    format!("control '{}' must be an absolute path", c.get_ref()),
                );
                return None;
            }
        };
        let absolute = |checker: &mut Self,
                        v: &Option<Spanned<String>>,
                        what: &str|
         -> Option<Option<PathBuf>> {
            match v {
                None => Some(None),
                Some(p) if Path::new(p.get_ref()).is_absolute() => {
                    Some(Some(PathBuf::from(p.get_ref())))
                }
                Some(p) => {
                    checker.error(
                        p.span(),
                        format!("{what} '{}' must be an absolute path", p.get_ref()),
                    );
                    None
                }
            }
        };
        let pidfile = absolute(self, &raw.pidfile, "pidfile")?;
        let syslog_socket = absolute(self, &raw.syslog_socket, "syslog_socket")?
            .unwrap_or_else(|| PathBuf::from("/dev/log"));
        let log = match raw.log.as_ref().map(|l| (l, l.get_ref().as_str())) {
            None => None,
            Some((_, "stderr")) => Some(LogTarget::Stderr),
            Some((_, "syslog")) => Some(LogTarget::Syslog),
            Some((l, other)) => {
                self.error(
                    l.span(),
                    format!("unknown log '{other}' (expected stderr or syslog)"),
                );
                return None;
            }
        };
        let syslog_facility = match &raw.syslog_facility {
            None => 3,
            Some(f) => match crate::log::FACILITIES
                .iter()
                .find(|(name, _)| name == f.get_ref())
            {
                Some((_, code)) => *code,
                None => {
                    let names: Vec<&str> = crate::log::FACILITIES.iter().map(|(n, _)| *n).collect();
                    self.error(
                        f.span(),
                        format!(
                            "unknown syslog_facility '{}' (expected one of: {})",
                            f.get_ref(),
                            names.join(", ")
                        ),
                    );
                    return None;
                }
            },
        };
        Some(DaemonConfig {
            graceful_timeout,
            control,
            pidfile,
            log,
            syslog_facility,
            syslog_socket,
        })
    }

    fn duration(&mut self, s: &Spanned<String>) -> Option<Duration> {
        duration::parse_duration(s.get_ref())
            .map_err(|e| self.error(s.span(), e))
            .ok()
    }

    /// The account of `user` (and `group`); `Some(None)` when none is asked
    /// for, `None` on an error (already reported).
    fn account(
        &mut self,
        user: Option<&Spanned<String>>,
        group: Option<&Spanned<String>>,
    ) -> Option<Option<Account>> {
        let Some(user) = user else {
            if let Some(g) = group {
                self.error(g.span(), "`group` needs a `user` to go with it");
                return None;
            }
            return Some(None);
        };
        match Account::lookup(user.get_ref(), group.map(|g| g.get_ref().as_str())) {
            Ok(a) => Some(Some(a)),
            Err(e) => {
                let span = if e.contains("group") {
                    group.map(|g| g.span())
                } else {
                    None
                };
                self.error(span.unwrap_or(user.span()), e);
                None
            }
        }
    }

    fn service(
        &mut self,
        raw: &RawService,
        span: Range<usize>,
        default_account: Option<Account>,
    ) -> Option<ServiceConfig> {
        let errors_before = self.diags.len();
        let name = raw.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.error(
                raw.name.span(),
                format!("invalid service name '{name}': use letters, digits, '-', '_' and '.'"),
            );
        }
        let protocol = match raw.protocol.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some(other) => {
                let span = raw
                    .protocol
                    .as_ref()
                    .map(|p| p.span())
                    .unwrap_or(span.clone());
                self.error(
                    span,
                    format!("unknown protocol '{other}' (expected tcp or udp)"),
                );
                Protocol::Tcp
            }
        };
        if protocol == Protocol::Udp {
            self.not_for_udp(raw);
        }
        if raw.listen.get_ref().is_empty() {
            self.error(raw.listen.span(), "`listen` needs at least one address");
        }
        let mut listen = Vec::new();
        for addr in raw.listen.get_ref() {
            match addr.get_ref().parse::<ListenAddr>() {
                Ok(ListenAddr::Unix(_)) if protocol == Protocol::Udp => {
                    self.error(addr.span(), "a unix: address cannot serve udp")
                }
                Ok(a) => listen.push(a),
                Err(e) => self.error(addr.span(), e.to_string()),
            }
        }
        let sizing = match &raw.workers {
            None => Sizing::default_adaptive(),
            Some(w) => self.sizing(w),
        };
        let positive = |checker: &mut Self, v: &Option<Spanned<i64>>, what: &str| -> Option<u64> {
            let v = v.as_ref()?;
            match u64::try_from(*v.get_ref()) {
                Ok(n) if n > maxima::MAX_REQUESTS => {
                    checker.error(
                        v.span(),
                        format!("invalid {what} = {n}: at most {}", maxima::MAX_REQUESTS),
                    );
                    None
                }
                Ok(n) if n > 0 || what == "max_requests_jitter" => Some(n),
                _ => {
                    checker.error(
                        v.span(),
                        format!(
                            "invalid {what} = {}: expected a positive number",
                            v.get_ref()
                        ),
                    );
                    None
                }
            }
        };
        let max_requests = positive(self, &raw.max_requests, "max_requests");
        let max_requests_jitter = positive(self, &raw.max_requests_jitter, "max_requests_jitter")
            .unwrap_or_else(|| max_requests.map_or(0, |m| m / 10));
        let access = self.access(raw);
        let max_memory = raw.max_memory.as_ref().and_then(|m| match m.get_ref() {
            SizeOrNumber::Number(n) if *n > 0 => size::check_size(*n as u64)
                .map_err(|e| self.error(m.span(), format!("invalid max_memory = {n}: {e}")))
                .ok(),
            SizeOrNumber::Text(t) => match size::parse_size(t) {
                Ok(0) => {
                    self.error(m.span(), "invalid max_memory: it must be larger than 0");
                    None
                }
                Ok(n) => Some(n),
                Err(e) => {
                    self.error(m.span(), e);
                    None
                }
            },
            SizeOrNumber::Number(n) => {
                self.error(
                    m.span(),
                    format!("invalid max_memory = {n}: expected a positive size"),
                );
                None
            }
        });
        let timeout = raw.timeout.as_ref().and_then(|t| {
            let d = self.duration(t)?;
            if d.is_zero() {
                self.error(t.span(), "invalid timeout: it must be longer than 0s");
                return None;
            }
            Some(d)
        });
        let backlog = match &raw.backlog {
            None => crate::net::DEFAULT_BACKLOG,
            Some(b) if (1..=maxima::MAX_BACKLOG as i64).contains(b.get_ref()) => {
                *b.get_ref() as i32
            }
            Some(b) => {
                self.error(
                    b.span(),
                    format!(
                        "invalid backlog = {}: expected a number from 1 to {}",
                        b.get_ref(),
                        maxima::MAX_BACKLOG
                    ),
                );
                1
            }
        };
        let account = match (&raw.user, &raw.group) {
            (None, None) => default_account,
            (user, group) => self.account(user.as_ref(), group.as_ref()).flatten(),
        };
        let chroot = raw.chroot.as_ref().map(|c| PathBuf::from(c.get_ref()));
        if let (Some(dir), Some(raw_dir)) = (&chroot, &raw.chroot) {
            if !dir.is_absolute() || !dir.is_dir() {
                self.error(
                    raw_dir.span(),
                    format!(
                        "chroot '{}' is not an existing absolute directory",
                        dir.display()
                    ),
                );
            }
        }
        let limits = raw
            .limits
            .as_ref()
            .map(|l| self.limits(l.get_ref()))
            .unwrap_or_default();
        let service = self.handler(raw, &span, protocol, chroot.as_deref());
        let allow_new_privileges = match &raw.allow_new_privileges {
            Some(allow) if *allow.get_ref() && raw.no_new_privs == Some(true) => {
                self.error(
                    allow.span(),
                    "allow_new_privileges = true contradicts no_new_privs = true",
                );
                false
            }
            Some(allow) => *allow.get_ref(),
            None => false,
        };
        let (socket_mode, socket_owner) = self.socket_file(raw);
        let model = match &raw.model {
            None => Model::Prefork,
            Some(m) => match m.get_ref().parse::<Model>() {
                Ok(model) => model,
                Err(e) => {
                    self.error(m.span(), e.to_string());
                    Model::Prefork
                }
            },
        };
        let proxy_protocol = self.proxy(raw);
        // A single-process model without `workers` gets a fixed count.
        let sizing = match (&raw.workers, model.is_process_pool()) {
            (None, false) => Sizing::Fixed(crate::default_workers()),
            _ => sizing,
        };
        if self.diags.len() > errors_before {
            return None;
        }
        let config = ServiceConfig {
            name,
            listen,
            service: service?,
            pool: PoolSettings {
                protocol,
                sizing,
                max_requests,
                max_requests_jitter,
                timeout,
                max_memory,
                log_connections: raw.log_connections.as_ref().is_some_and(|b| *b.get_ref()),
                access,
                backlog,
                privileges: Privileges {
                    account,
                    chroot,
                    limits,
                    no_new_privs: raw.no_new_privs.unwrap_or(false),
                    allow_new_privileges,
                },
                socket_mode,
                socket_owner,
                model,
                proxy_protocol,
            },
        };
        if let Err(why) = config.check_model() {
            let at = raw.model.as_ref().map_or(span, |m| m.span());
            self.error(at, why);
            return None;
        }
        Some(config)
    }

    /// The keys a UDP service cannot honour, refused rather than ignored: a
    /// worker answers each datagram at once (`timeout`), in the memory it
    /// had when it started (`max_memory`), and logs no line per datagram
    /// (`log_connections`), which a flood of forged ones would turn into a
    /// flood of lines.
    fn not_for_udp(&mut self, raw: &RawService) {
        for (key, span) in [
            ("timeout", raw.timeout.as_ref().map(|t| t.span())),
            ("max_memory", raw.max_memory.as_ref().map(|m| m.span())),
            (
                "log_connections",
                raw.log_connections.as_ref().map(|l| l.span()),
            ),
        ] {
            if let Some(span) = span {
                self.error(
                    span,
                    format!("`{key}` applies to tcp services, not udp (see preforkd(8), Over UDP)"),
                );
            }
        }
    }

    /// `proxy_protocol`, `trusted_proxies` and `proxy_timeout`: the first
    /// needs the second, and the others mean nothing without the first.
    fn proxy(&mut self, raw: &RawService) -> Option<Proxy> {
        let Some(p) = &raw.proxy_protocol else {
            for (key, span) in [
                (
                    "trusted_proxies",
                    raw.trusted_proxies.as_ref().map(|t| t.span()),
                ),
                (
                    "proxy_timeout",
                    raw.proxy_timeout.as_ref().map(|t| t.span()),
                ),
            ] {
                if let Some(span) = span {
                    self.error(span, format!("`{key}` applies only with proxy_protocol"));
                }
            }
            return None;
        };
        let version = p
            .get_ref()
            .parse::<ProxyVersion>()
            .map_err(|e| self.error(p.span(), e))
            .ok();
        let mut trusted = Vec::new();
        match &raw.trusted_proxies {
            None => self.error(
                p.span(),
                "proxy_protocol needs trusted_proxies = [\"NET\", ...]: the load balancers whose headers are believed",
            ),
            Some(list) if list.get_ref().is_empty() => self.error(
                list.span(),
                "trusted_proxies is empty: name the load balancers whose headers are believed",
            ),
            Some(list) => {
                for entry in list.get_ref() {
                    match crate::net::acl::parse_net(entry.get_ref()) {
                        Ok(n) => trusted.push(n),
                        Err(e) => self.error(entry.span(), e),
                    }
                }
            }
        }
        let timeout = match &raw.proxy_timeout {
            None => Some(crate::net::proxy::DEFAULT_TIMEOUT),
            Some(t) => self.duration(t).and_then(|d| {
                let max = crate::net::proxy::MAX_TIMEOUT;
                if d.is_zero() || d > max {
                    self.error(
                        t.span(),
                        format!(
                            "invalid proxy_timeout: expected more than 0s and at most {}s",
                            max.as_secs()
                        ),
                    );
                    return None;
                }
                Some(d)
            }),
        };
        Some(Proxy {
            version: version?,
            trusted,
            timeout: timeout?,
        })
    }

    fn access(&mut self, raw: &RawService) -> Access {
        let mut nets = |list: &Option<Vec<Spanned<String>>>| -> Vec<ipnet::IpNet> {
            let mut out = Vec::new();
            for entry in list.iter().flatten() {
                match crate::net::acl::parse_net(entry.get_ref()) {
                    Ok(n) => out.push(n),
                    Err(e) => self.error(entry.span(), e),
                }
            }
            out
        };
        let only_from = nets(&raw.only_from);
        let no_access = nets(&raw.no_access);
        let per_source = raw
            .per_source
            .as_ref()
            .and_then(|p| match u32::try_from(*p.get_ref()) {
                Ok(n) if n > 0 && u64::from(n) <= maxima::MAX_PER_SOURCE => Some(n),
                _ => {
                    self.error(
                        p.span(),
                        format!(
                            "invalid per_source = {}: expected a number from 1 to {}",
                            p.get_ref(),
                            maxima::MAX_PER_SOURCE
                        ),
                    );
                    None
                }
            });
        let rate = raw.rate.as_ref().and_then(|r| {
            r.get_ref()
                .parse::<Rate>()
                .map_err(|e| self.error(r.span(), e))
                .ok()
        });
        Access {
            only_from,
            no_access,
            per_source,
            rate,
        }
    }

    fn sizing(&mut self, w: &Spanned<raw::RawWorkers>) -> Sizing {
        let sizing = match w.get_ref() {
            raw::RawWorkers::Count(n) if (1..=maxima::MAX_WORKERS as i64).contains(n) => {
                Ok(Sizing::Fixed(*n as usize))
            }
            raw::RawWorkers::Count(n) => Err(format!(
                "invalid workers = {n}: expected a number from 1 to {}",
                maxima::MAX_WORKERS
            )),
            raw::RawWorkers::Adaptive(t) => {
                let get = |v: Option<i64>| v.map(usize::try_from).transpose();
                match (get(t.start), get(t.min_spare), get(t.max_spare), get(t.max)) {
                    (Ok(start), Ok(min_spare), Ok(max_spare), Ok(max)) => {
                        Sizing::adaptive(start, min_spare, max_spare, max)
                            .map_err(|e| format!("invalid workers: {e}"))
                    }
                    _ => Err("invalid workers: numbers must not be negative".into()),
                }
            }
        };
        sizing.unwrap_or_else(|message| {
            self.error(w.span(), message);
            Sizing::Fixed(1)
        })
    }

    fn handler(
        &mut self,
        raw: &RawService,
        span: &Range<usize>,
        protocol: Protocol,
        chroot: Option<&Path>,
    ) -> Option<Service> {
        if raw.builtin.is_some() {
            for (key, span) in [
                ("env", raw.env.as_ref().map(|e| e.span())),
                ("pass_env", raw.pass_env.as_ref().map(|e| e.span())),
                ("directory", raw.directory.as_ref().map(|d| d.span())),
                ("argv0", raw.argv0.as_ref().map(|a| a.span())),
            ] {
                if let Some(span) = span {
                    self.error(span, format!("`{key}` applies to exec services only"));
                }
            }
        }
        match (&raw.builtin, &raw.exec) {
            (Some(b), None) => match b.get_ref().parse::<Builtin>() {
                Ok(builtin) => Some(Service::Builtin(builtin)),
                Err(e) => {
                    self.error(b.span(), e.to_string());
                    None
                }
            },
            (None, Some(exec)) => {
                if protocol == Protocol::Udp {
                    self.error(
                        exec.span(),
                        "exec services are tcp only (udp serves builtins)",
                    );
                    return None;
                }
                let Some((program, args)) = exec.get_ref().split_first() else {
                    self.error(
                        exec.span(),
                        "`exec` needs a program: exec = [\"/path/to/program\", \"arg\", ...]",
                    );
                    return None;
                };
                let args: Vec<OsString> = args.iter().map(OsString::from).collect();
                let directory = raw.directory.as_ref().and_then(|d| {
                    let dir = PathBuf::from(d.get_ref());
                    let outside = match chroot {
                        Some(root) => root.join(dir.strip_prefix("/").unwrap_or(&dir)),
                        None => dir.clone(),
                    };
                    if dir.is_absolute() && outside.is_dir() {
                        Some(dir)
                    } else {
                        let message = format!(
                            "directory '{}' is not an existing absolute directory",
                            dir.display()
                        );
                        self.error(d.span(), message);
                        None
                    }
                });
                let env = raw
                    .env
                    .as_ref()
                    .map(|e| e.get_ref().clone())
                    .unwrap_or_default();
                let mut pass_env = Vec::new();
                for name in raw.pass_env.iter().flat_map(|p| p.get_ref()) {
                    match ExecSpec::check_pass_env(name.get_ref()) {
                        Ok(()) => pass_env.push(name.get_ref().as_str()),
                        Err(e) => self.error(name.span(), e),
                    }
                }
                let argv0 = raw.argv0.as_ref().map(|a| a.get_ref().clone());
                match ExecSpec::new_in(Path::new(program), args, chroot) {
                    Ok(spec) => Some(Service::Exec(
                        spec.with_env(env)
                            .with_pass_env(pass_env)
                            .with_directory(directory)
                            .with_argv0(argv0),
                    )),
                    Err(e) => {
                        self.error(exec.span(), e.to_string());
                        None
                    }
                }
            }
            (Some(b), Some(_)) => {
                self.error(
                    b.span(),
                    "a service has either `builtin` or `exec`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    span.clone(),
                    format!(
                        "service '{}' needs `builtin = \"NAME\"` or `exec = [\"PROGRAM\", ...]`",
                        raw.name.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn limits(&mut self, raw: &RawLimits) -> Limits {
        let mut count = |v: &Option<Spanned<i64>>, what: &str, max: u64| -> Option<u64> {
            let v = v.as_ref()?;
            u64::try_from(*v.get_ref())
                .map_err(|_| "expected a positive number".to_string())
                .and_then(|n| maxima::at_most(n, max))
                .map_err(|e| self.error(v.span(), format!("invalid {what}: {e}")))
                .ok()
        };
        let open_files = count(&raw.nofile, "nofile", maxima::MAX_NOFILE);
        let processes = count(&raw.nproc, "nproc", maxima::MAX_NPROC);
        let address_space = raw.address_space.as_ref().and_then(|v| match v.get_ref() {
            SizeOrNumber::Number(n) => u64::try_from(*n)
                .map_err(|_| "expected a positive number of bytes".to_string())
                .and_then(size::check_size)
                .map_err(|e| self.error(v.span(), format!("invalid as: {e}")))
                .ok(),
            SizeOrNumber::Text(t) => size::parse_size(t)
                .map_err(|e| self.error(v.span(), e))
                .ok(),
        });
        let cpu_seconds = raw.cpu.as_ref().and_then(|v| match v.get_ref() {
            SizeOrNumber::Number(n) => u64::try_from(*n)
                .map_err(|_| "expected a positive number of seconds".to_string())
                .and_then(|n| maxima::at_most(n, maxima::MAX_DURATION.as_secs()))
                .map_err(|e| self.error(v.span(), format!("invalid cpu: {e} seconds")))
                .ok(),
            SizeOrNumber::Text(t) => duration::parse_duration(t)
                .map(|d| d.as_secs())
                .map_err(|e| self.error(v.span(), e))
                .ok(),
        });
        // RLIMIT_CPU counts whole seconds, and Linux takes 0 as 1.
        let cpu_seconds = match (cpu_seconds, &raw.cpu) {
            (Some(0), Some(v)) => {
                self.error(v.span(), "invalid cpu: at least 1s of CPU time");
                None
            }
            (other, _) => other,
        };
        Limits {
            open_files,
            address_space,
            cpu_seconds,
            processes,
        }
    }

    fn socket_file(&mut self, raw: &RawService) -> (Option<u32>, Option<(u32, u32)>) {
        let mode = raw.socket_mode.as_ref().and_then(|m| {
            u32::from_str_radix(m.get_ref().trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .or_else(|| {
                    self.error(
                        m.span(),
                        format!(
                            "invalid socket_mode '{}': expected octal, as in \"0660\"",
                            m.get_ref()
                        ),
                    );
                    None
                })
        });
        let owner = raw.socket_owner.as_ref().and_then(|o| {
            let (user, group) = match o.get_ref().split_once([':', '.']) {
                Some((u, g)) => (u, Some(g)),
                None => (o.get_ref().as_str(), None),
            };
            Account::lookup(user, group)
                .map(|a| (a.uid, a.gid))
                .map_err(|e| self.error(o.span(), e))
                .ok()
        });
        (mode, owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid() {
        let c = parse(EMBEDDED_NAME, EMBEDDED_DEFAULT).unwrap();
        let ports: Vec<String> = c.services.iter().map(|s| s.listen[0].to_string()).collect();
        assert_eq!(
            ports,
            [
                "127.0.0.1:7007",
                "127.0.0.1:7009",
                "127.0.0.1:7013",
                "127.0.0.1:7019",
                "127.0.0.1:7037"
            ]
        );
        // Idle clients: every service times out and limits one address,
        // on the adaptive pool.
        for s in &c.services {
            assert!(
                s.pool.timeout.is_some() && s.pool.access.per_source.is_some(),
                "{}",
                s.name
            );
            assert!(s.pool.sizing.is_adaptive(), "{}", s.name);
        }
    }

    #[test]
    fn reports_every_error_with_its_position() {
        let text = "[[service]]\nname = \"a\"\nlisten = [\"1.2.3.4:x\"]\nbuiltin = \"ech0\"\nworkers = 0\n";
        let diags = parse("t.toml", text).unwrap_err();
        let heads: Vec<String> = diags.iter().map(|d| d.headline()).collect();
        assert_eq!(heads.len(), 3, "{heads:?}");
        assert!(
            heads[0].starts_with("t.toml:3:11: invalid address"),
            "{heads:?}"
        );
        assert!(
            heads
                .iter()
                .any(|h| h.starts_with("t.toml:4:11: unknown builtin")),
            "{heads:?}"
        );
        assert!(
            heads
                .iter()
                .any(|h| h.starts_with("t.toml:5:11: invalid workers")),
            "{heads:?}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_position() {
        let text = "[[service]]\nname = \"a\"\nlisten = [\"127.0.0.1:1\"]\nbuiltin = \"echo\"\ncolour = 1\n";
        let diags = parse("t.toml", text).unwrap_err();
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(
            diags[0]
                .headline()
                .starts_with("t.toml:5:1: unknown field `colour`"),
            "{}",
            diags[0]
        );
    }
}
